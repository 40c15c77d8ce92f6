//! The server side of an SMTP session, as a state machine without I/O.
//!
//! The driver feeds complete command lines ([`Session::line`], split with
//! [`LineSplitter`](super::line::LineSplitter)), line errors
//! ([`Session::line_error`]) and events ([`Session::event`]); every call
//! returns [`Actions`] to perform in order. Replies and their texts follow
//! Postfix's `smtpd`.
//!
//! Driver contract:
//! * Call [`Session::greeting`] first (after the TLS handshake for implicit
//!   TLS).
//! * Feed lines only while [`Session::wants_line`] is true; the session
//!   otherwise waits for an event (TLS handshake, AUTH verdict, end of
//!   DATA / queue commit). A line fed while waiting closes the session
//!   without executing it.
//! * On [`Action::StartTls`] the driver must drop every byte it has read
//!   but not yet fed ([`LineSplitter::discard`](super::line::LineSplitter::discard)):
//!   a client's plaintext pipelined after `STARTTLS` must never be taken
//!   as if it came over TLS (CVE-2011-0411).
//! * On [`Action::BeginData`] the driver streams the body through
//!   [`Session::data_reader`] and answers with [`Event::Committed`],
//!   [`Event::CommitFailed`], [`Event::DataTooBig`] or
//!   [`Event::DataBareLf`] according to the [`DataEnd`](super::data::DataEnd).
//! * On [`Action::Pause`] the driver waits that many seconds before the
//!   next action (Postfix's `smtpd_error_sleep_time` once
//!   `smtpd_soft_error_limit` errors were made).

use super::command::{self, Body, Command, CommandError, Path, Verb};
use super::data::{BareNewline, DataReader};
use super::line::LineError;
use super::reply::Reply;
use crate::base64;
use core::fmt::Write as _;

/// Session settings (Postfix names in brackets).
#[derive(Debug, Clone)]
pub struct ServerParams {
    /// `myhostname`
    pub hostname: String,
    /// `message_size_limit`; 0 means no limit.
    pub message_size_limit: u64,
    /// `smtpd_recipient_limit`
    pub recipient_limit: usize,
    /// `smtpd_recipient_overshoot_limit`: RCPTs past the recipient limit
    /// that get `452 4.5.3` without counting as errors, so a client with
    /// a long list can finish and send DATA for the accepted part (the
    /// rest is retried by the client); beyond them each one is an error.
    pub recipient_overshoot_limit: u32,
    /// `smtpd_forbid_unauth_pipelining` (Postfix 3.9: yes): improper
    /// pipelining is answered `554 5.5.0 Error: SMTP protocol
    /// synchronization` and the session ends.
    pub forbid_unauth_pipelining: bool,
    /// STARTTLS can be offered (a certificate is loaded).
    pub tls_available: bool,
    /// The connection is TLS from the start (submissions, port 465).
    pub implicit_tls: bool,
    /// `smtpd_tls_security_level = encrypt`: only HELO, EHLO, STARTTLS,
    /// NOOP and QUIT before TLS.
    pub tls_required: bool,
    /// AUTH can be offered (a password file is loaded).
    pub auth_available: bool,
    /// Submission: MAIL needs a successful AUTH first.
    pub auth_required: bool,
    /// Offer AUTH without TLS (`smtpd_tls_auth_only = no`).
    pub allow_plaintext_auth: bool,
    /// The client address matched `mynetworks`: may relay.
    pub client_in_mynetworks: bool,
    /// `smtpd_soft_error_limit`
    pub soft_error_limit: u32,
    /// `smtpd_hard_error_limit`
    pub hard_error_limit: u32,
    /// `smtpd_junk_command_limit`: HELO, EHLO, RSET, NOOP, VRFY and HELP
    /// beyond this many each count as an error as well (Postfix's rule:
    /// the counter and the errors are forgiven when a message is queued).
    pub junk_command_limit: u32,
    /// `smtpd_error_sleep_time`, seconds.
    pub error_sleep_time: u32,
    /// `smtpd_forbid_bare_newline`
    pub bare_newline: BareNewline,
    /// `smtpd_forbid_bare_newline_reject_code` (Postfix default 550;
    /// RFC 5321 would suggest 521 for a closing reply).
    pub bare_newline_reject_code: u16,
    /// `smtpd_helo_required` (tern's default: yes).
    pub helo_required: bool,
    /// `smtpd_banner`: the text after `220 `; empty means
    /// `hostname ESMTP tern`.
    pub banner: String,
}

impl Default for ServerParams {
    fn default() -> Self {
        ServerParams {
            hostname: "localhost".into(),
            message_size_limit: 10_240_000,
            recipient_limit: 1000,
            recipient_overshoot_limit: 1000,
            forbid_unauth_pipelining: true,
            tls_available: false,
            implicit_tls: false,
            tls_required: false,
            auth_available: false,
            auth_required: false,
            allow_plaintext_auth: false,
            client_in_mynetworks: false,
            soft_error_limit: 10,
            hard_error_limit: 20,
            junk_command_limit: 100,
            error_sleep_time: 1,
            bare_newline: BareNewline::Normalize,
            bare_newline_reject_code: 550,
            helo_required: true,
            banner: String::new(),
        }
    }
}

/// What the driver's address tables say about a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcptClass {
    /// A local domain and a known user (or an alias).
    Local,
    /// A local domain, but no such user.
    LocalUnknown,
    /// Not a local domain: relaying.
    Remote,
}

/// Postfix's answer when the queue file system is short of space.
const INSUFFICIENT_STORAGE: &str = "452 4.3.1 Insufficient system storage";

/// Postfix's `state->where` while the body streams (`SMTPD_AFTER_DATA`).
pub const AFTER_DATA: &str = "DATA content";
/// Postfix's `state->where` once the body ended (`SMTPD_AFTER_EOM`), until
/// the next command.
pub const AFTER_EOM: &str = "END-OF-MESSAGE";

/// Why a session ended abnormally: Postfix's `state->reason`, the first
/// word of its `... after CMD from host[addr]` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client closed the connection or the transport failed.
    LostConnection,
    /// `smtpd_timeout` (or the session time limit) expired.
    Timeout,
    /// `smtpd_hard_error_limit` was reached (after the `421`).
    TooManyErrors,
}

impl EndReason {
    /// Postfix's wording (`REASON_*` in smtpd.c).
    pub fn text(self) -> &'static str {
        match self {
            EndReason::LostConnection => "lost connection",
            EndReason::Timeout => "timeout",
            EndReason::TooManyErrors => "too many errors",
        }
    }
}

/// A reject that Postfix logs as `NOQUEUE: reject: VERB from ...`, kept
/// until the driver (which knows the client's name) takes it.
#[derive(Debug, Clone)]
struct LoggedReject {
    verb: &'static str,
    text: String,
    sender: String,
    /// `to=<...>` for RCPT.
    rcpt: Option<String>,
}

/// Classifies recipients (and answers the spool-space question); supplied
/// by the driver per call so the session holds no reference to tables.
pub trait Recipients {
    /// Classifies one recipient path (never the null path).
    fn classify(&mut self, rcpt: &Path<'_>) -> RcptClass;

    /// Whether the spool has room for a message of `size` bytes (0 when
    /// not declared); asked at `MAIL FROM` and before `354`. `false`
    /// answers `452 4.3.1 Insufficient system storage` (`queue_minfree`).
    fn storage_ok(&mut self, _size: u64) -> bool {
        true
    }

    /// The per-client message rate (`smtpd_client_message_rate_limit`),
    /// asked at each `MAIL FROM` that passed the other checks: a reply
    /// (Postfix's `450 4.7.1 Error: too much mail from ADDR`) refuses it.
    fn mail_limit(&mut self) -> Option<String> {
        None
    }

    /// The per-client AUTH rate (`smtpd_client_auth_rate_limit`), asked at
    /// each `AUTH` command that may proceed: a reply refuses it.
    fn auth_limit(&mut self) -> Option<String> {
        None
    }
}

impl<F: FnMut(&Path<'_>) -> RcptClass> Recipients for F {
    fn classify(&mut self, rcpt: &Path<'_>) -> RcptClass {
        self(rcpt)
    }
}

/// SASL mechanisms tern implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// RFC 4616
    Plain,
    /// draft-murchison-sasl-login
    Login,
}

/// Credentials the driver must verify, answering with
/// [`Event::AuthVerdict`].
#[derive(Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Mechanism used (for the log line `sasl_method=`).
    pub mechanism: AuthMechanism,
    /// Authentication identity.
    pub user: String,
    /// Password (never log it).
    pub password: String,
}

impl core::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "AuthRequest({:?}, {:?}, <password>)",
            self.mechanism, self.user
        )
    }
}

/// Something the driver must do.
// `Send` carries its reply inline on purpose: actions live in a fixed list
// on the stack, and boxing would allocate for every reply.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the client.
    Send(Reply),
    /// Wait this many seconds before the next action (error throttling).
    Pause(u32),
    /// The `220 2.0.0 Ready to start TLS` reply was queued before this:
    /// send it, then **discard all buffered unread input**
    /// (CVE-2011-0411), then run the TLS handshake and report
    /// [`Event::TlsEstablished`] or [`Event::TlsFailed`].
    StartTls,
    /// Verify credentials, then report [`Event::AuthVerdict`].
    CheckAuth(AuthRequest),
    /// The 354 reply was queued before this: stream the message body with
    /// [`Session::data_reader`]; the envelope is [`Session::envelope`].
    BeginData,
    /// Close the connection (after sending what came before).
    Close,
}

/// Up to six actions, in order (the longest sequence is pause, error
/// reply, pause, `421`, close).
pub type Actions = heapless::Vec<Action, 6>;

/// Things that happened outside the command stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The TLS handshake after STARTTLS finished.
    TlsEstablished,
    /// The TLS handshake failed; the session closes.
    TlsFailed,
    /// The credentials of the last [`Action::CheckAuth`] are valid or not.
    AuthVerdict(bool),
    /// The credentials of the last [`Action::CheckAuth`] were not checked:
    /// the driver's budget of password checks is spent for now.
    AuthTempFail,
    /// The body was stored and committed under this queue ID.
    Committed(&'a str),
    /// Storing the body failed.
    CommitFailed,
    /// [`DataEnd::TooBig`](super::data::DataEnd::TooBig): the body was read
    /// to its end, but exceeded `message_size_limit`.
    DataTooBig,
    /// [`DataEnd::BareLf`](super::data::DataEnd::BareLf): the body was read
    /// to its end, but had a bare LF in reject mode.
    DataBareLf,
    /// The client was idle too long (`smtpd_timeout`).
    Timeout,
}

/// The mail transaction collected so far.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// Reverse path without brackets; empty for `<>`.
    pub sender: String,
    /// Accepted forward paths without brackets, in order.
    pub recipients: Vec<String>,
    /// `BODY=` parameter, if given.
    pub body: Option<Body>,
    /// `SMTPUTF8` parameter given.
    pub smtputf8: bool,
    /// `SIZE=` parameter, if given.
    pub declared_size: Option<u64>,
    /// RCPTs refused for `smtpd_recipient_limit` in this transaction
    /// (Postfix's `rcpt_overshoot`, also reset with the transaction).
    pub overshoot: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthStep {
    PlainResponse,
    LoginUser,
    LoginPassword(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for a command line.
    Command,
    /// Waiting for a SASL response line.
    Auth(AuthStep),
    /// Waiting for [`Event::AuthVerdict`].
    AuthVerdict(String),
    /// Waiting for the TLS handshake.
    Tls,
    /// Body being streamed by the driver.
    Data,
    /// Finished.
    Closed,
}

/// One SMTP server session.
#[derive(Debug, Clone)]
pub struct Session {
    p: ServerParams,
    state: State,
    helo: Option<String>,
    esmtp: bool,
    tls_active: bool,
    auth_user: Option<String>,
    envelope: Option<Envelope>,
    error_count: u32,
    /// Junk commands so far (`smtpd_junk_command_limit`).
    junk_count: u32,
    /// (ok, total) per [`Verb`].
    counts: [(u32, u32); 12],
    /// Postfix's `state->where`: the last command, [`AFTER_DATA`] or
    /// [`AFTER_EOM`]; `CONNECT` before the first command.
    where_: &'static str,
    /// `improper command pipelining` was logged (once per session).
    ill_pipelining: bool,
    /// The hard error limit closed the session.
    error_limit: bool,
    /// [`Event::Timeout`] closed the session.
    timed_out: bool,
    /// A reject for the driver's `NOQUEUE` line.
    logged_reject: Option<LoggedReject>,
}

const LOGIN_USER_CHALLENGE: &str = "334 VXNlcm5hbWU6";
const LOGIN_PASS_CHALLENGE: &str = "334 UGFzc3dvcmQ6";

impl Session {
    /// A new session with these settings.
    pub fn new(params: ServerParams) -> Session {
        let tls_active = params.implicit_tls;
        Session {
            p: params,
            state: State::Command,
            helo: None,
            esmtp: false,
            tls_active,
            auth_user: None,
            envelope: None,
            error_count: 0,
            junk_count: 0,
            counts: [(0, 0); 12],
            where_: "CONNECT",
            ill_pipelining: false,
            error_limit: false,
            timed_out: false,
            logged_reject: None,
        }
    }

    /// The `220` banner: `220 host ESMTP tern`.
    pub fn greeting(&mut self) -> Actions {
        let mut out = Actions::new();
        self.send(
            &mut out,
            if self.p.banner.is_empty() {
                Reply::fmt(format_args!("220 {} ESMTP tern", self.p.hostname))
            } else {
                Reply::fmt(format_args!("220 {}", self.p.banner))
            },
        );
        out
    }

    /// True when the next input must be a line (command or AUTH response).
    pub fn wants_line(&self) -> bool {
        matches!(self.state, State::Command | State::Auth(_))
    }

    /// True once the session ended; the driver closes the connection.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// TLS is active (STARTTLS done or implicit TLS).
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The HELO/EHLO name, if given (since the last STARTTLS).
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// The authenticated user, if any.
    pub fn auth_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }

    /// The current mail transaction, if MAIL was accepted.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// Errors counted so far (for `smtpd_*_error_limit`).
    pub fn error_count(&self) -> u32 {
        self.error_count
    }

    /// RFC 3848 / RFC 6531 `with` protocol for the Received header:
    /// SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, or UTF8SMTP... when the
    /// transaction uses SMTPUTF8.
    pub fn protocol(&self) -> &'static str {
        if !self.esmtp {
            return "SMTP";
        }
        let utf8 = self.envelope.as_ref().is_some_and(|e| e.smtputf8);
        match (utf8, self.tls_active, self.auth_user.is_some()) {
            (false, false, false) => "ESMTP",
            (false, true, false) => "ESMTPS",
            (false, false, true) => "ESMTPA",
            (false, true, true) => "ESMTPSA",
            (true, false, false) => "UTF8SMTP",
            (true, true, false) => "UTF8SMTPS",
            (true, false, true) => "UTF8SMTPA",
            (true, true, true) => "UTF8SMTPSA",
        }
    }

    /// A DATA decoder for this session's limits.
    pub fn data_reader(&self) -> DataReader {
        DataReader::new(self.p.message_size_limit, self.p.bare_newline)
    }

    /// The counters of Postfix's disconnect line, e.g.
    /// ` ehlo=1 starttls=1 mail=1 rcpt=0/1 data=0/1 quit=1 commands=4/6`
    /// (leading space; verbs in Postfix's table order; `ok/total` where
    /// some failed, and ` commands=0/0` when there was no command).
    pub fn command_counts(&self) -> String {
        let mut s = String::new();
        let (mut ok, mut total) = (0, 0);
        for v in Verb::ALL {
            let (o, t) = self.counts[v.index()];
            if t == 0 {
                continue;
            }
            ok += o;
            total += t;
            let _ = write!(s, " {}={}", v.name(), o);
            if o != t {
                let _ = write!(s, "/{t}");
            }
        }
        let _ = write!(s, " commands={ok}");
        // Postfix: `commands=0/0` for a client that sent nothing.
        if ok != total || total == 0 {
            let _ = write!(s, "/{total}");
        }
        s
    }

    /// `disconnect from host[addr] ehlo=1 ... commands=N`, as Postfix logs it.
    pub fn disconnect_line(&self, host: &str, addr: &str) -> String {
        format!("disconnect from {host}[{addr}]{}", self.command_counts())
    }

    /// Postfix's `state->where`: `CONNECT`, the last command's verb
    /// (`UNKNOWN` for an unrecognised one), [`AFTER_DATA`] or
    /// [`AFTER_EOM`].
    pub fn where_now(&self) -> &'static str {
        self.where_
    }

    /// Why the session closed itself abnormally, if it did: the timeout
    /// reply or the hard error limit. A lost connection is the driver's to
    /// know.
    pub fn end_reason(&self) -> Option<EndReason> {
        if self.timed_out {
            Some(EndReason::Timeout)
        } else if self.error_limit {
            Some(EndReason::TooManyErrors)
        } else {
            None
        }
    }

    /// Postfix's line for an abnormal end (smtpd.c, end of `smtpd_proto`):
    /// `REASON after CMD from host[addr]`; in the body
    /// `REASON after DATA (N bytes) from host[addr]` with the body bytes
    /// received so far; and nothing for a lost connection right after the
    /// end of a message ("don't complain about clients that go away
    /// without sending QUIT"). `client` is `host[addr]`.
    pub fn end_line(&self, reason: EndReason, data_bytes: u64, client: &str) -> Option<String> {
        let r = reason.text();
        match self.where_ {
            AFTER_DATA => Some(format!("{r} after DATA ({data_bytes} bytes) from {client}")),
            AFTER_EOM if reason == EndReason::LostConnection => None,
            w => Some(format!("{r} after {w} from {client}")),
        }
    }

    /// Postfix's `improper command pipelining after CMD from host[addr]:
    /// BYTES` check, made before `line` is executed: the client sent
    /// `pending` (input after `line`) where it must wait for the reply, that
    /// is after HELO, EHLO, DATA, NOOP or VRFY, or after any command before
    /// EHLO (PIPELINING not negotiated). Logged once per session; unknown
    /// commands and those refused before STARTTLS are not checked, as in
    /// Postfix. Returns the log line. `client` is `host[addr]`.
    pub fn improper_pipelining(
        &mut self,
        line: &[u8],
        pending: &[u8],
        client: &str,
    ) -> Option<String> {
        if pending.is_empty() {
            return None;
        }
        let verb = self.pipelining_check(line)?;
        self.ill_pipelining = true;
        Some(format!(
            "improper command pipelining after {} from {client}: {}",
            verb_word(verb),
            escape(pending)
        ))
    }

    /// Whether [`improper_pipelining`](Self::improper_pipelining) would
    /// look at pending input for `line`: the driver asks the kernel for
    /// unread bytes only then (a syscall it spares the other commands).
    pub fn checks_pipelining(&self, line: &[u8]) -> bool {
        self.pipelining_check(line).is_some()
    }

    fn pipelining_check(&self, line: &[u8]) -> Option<Verb> {
        if self.ill_pipelining || self.state != State::Command {
            return None;
        }
        let verb = match command::parse_with_verb(line) {
            Ok(c) => c.verb(),
            Err((v, _)) => v,
        };
        if verb == Verb::Unknown || (self.p.tls_required && !self.tls_active && !pre_tls(verb)) {
            return None;
        }
        // Postfix's SMTPD_CMD_FLAG_LAST: the end of a command group.
        let last = matches!(
            verb,
            Verb::Helo | Verb::Ehlo | Verb::Data | Verb::Noop | Verb::Vrfy
        );
        if self.esmtp && !last {
            return None;
        }
        Some(verb)
    }

    /// The same check before the greeting: anything the client sent before
    /// it saw the `220` (Postfix logs it `after CONNECT`).
    pub fn improper_pipelining_at_connect(
        &mut self,
        pending: &[u8],
        client: &str,
    ) -> Option<String> {
        if self.ill_pipelining || pending.is_empty() {
            return None;
        }
        self.ill_pipelining = true;
        Some(format!(
            "improper command pipelining after CONNECT from {client}: {}",
            escape(pending)
        ))
    }

    /// Postfix's `NOQUEUE: reject: MAIL from host[addr]: 452 4.3.1
    /// Insufficient system storage; from=<s> proto=ESMTP helo=<h>` line
    /// (smtpd_check.c `log_whatsup`) for the last command, if it was
    /// refused by a check Postfix logs (size and queue space at MAIL and
    /// DATA; relay access and unknown users at RCPT, with `to=<...>`);
    /// protocol errors such as `503` or `452 too many recipients` are not
    /// logged, as in Postfix. `client` is `host[addr]`.
    pub fn take_reject_log(&mut self, client: &str) -> Option<String> {
        let r = self.logged_reject.take()?;
        let mut line = format!(
            "NOQUEUE: reject: {} from {client}: {}; from=<{}>",
            r.verb, r.text, r.sender
        );
        if let Some(to) = &r.rcpt {
            let _ = write!(line, " to=<{to}>");
        }
        let _ = write!(line, " proto={}", if self.esmtp { "ESMTP" } else { "SMTP" });
        if let Some(h) = &self.helo {
            let _ = write!(line, " helo=<{h}>");
        }
        Some(line)
    }

    fn count(&mut self, v: Verb, ok: bool) {
        if let Some(c) = self.counts.get_mut(v.index()) {
            c.1 += 1;
            if ok {
                c.0 += 1;
            }
        }
    }

    fn count_ok_later(&mut self, v: Verb) {
        if let Some(c) = self.counts.get_mut(v.index()) {
            c.0 += 1;
        }
    }

    fn send(&mut self, out: &mut Actions, r: Reply) {
        if self.error_count >= self.p.soft_error_limit && self.p.error_sleep_time > 0 {
            let _ = out.push(Action::Pause(self.p.error_sleep_time));
        }
        let _ = out.push(Action::Send(r));
    }

    fn close(&mut self, out: &mut Actions) {
        let _ = out.push(Action::Close);
        self.state = State::Closed;
        self.envelope = None;
    }

    /// Records a failed command: count it, and at the hard limit say
    /// `421 4.7.0 host Error: too many errors` and close.
    fn failed(&mut self, out: &mut Actions) {
        self.error_count = self.error_count.saturating_add(1);
        if self.error_count >= self.p.hard_error_limit && self.state != State::Closed {
            let r = Reply::fmt(format_args!(
                "421 4.7.0 {} Error: too many errors",
                self.p.hostname
            ));
            self.send(out, r);
            self.close(out);
            self.error_limit = true;
        }
    }

    /// A reject that Postfix also logs (`NOQUEUE: reject: ...`).
    fn reject_logged(&mut self, out: &mut Actions, v: Verb, text: &str, sender: &str) {
        self.logged_reject = Some(LoggedReject {
            verb: verb_word(v),
            text: text.to_string(),
            sender: sender.to_string(),
            rcpt: None,
        });
        self.reject(out, v, Reply::new(text));
    }

    /// A RCPT reject that Postfix logs, with the recipient.
    fn reject_rcpt_logged(&mut self, out: &mut Actions, text: &str, rcpt: &str) {
        let sender = self
            .envelope
            .as_ref()
            .map(|e| e.sender.clone())
            .unwrap_or_default();
        self.logged_reject = Some(LoggedReject {
            verb: verb_word(Verb::Rcpt),
            text: text.to_string(),
            sender,
            rcpt: Some(rcpt.to_string()),
        });
        self.reject(out, Verb::Rcpt, Reply::new(text));
    }

    /// Counts a junk command (one that can be repeated without end and
    /// costs the client nothing): past `smtpd_junk_command_limit` each one
    /// is also an error, so the hard error limit ends the session, as in
    /// Postfix (`junk_cmds++ > limit`).
    fn junk(&mut self, out: &mut Actions) {
        let over = self.junk_count > self.p.junk_command_limit;
        self.junk_count = self.junk_count.saturating_add(1);
        if over && self.state != State::Closed {
            self.failed(out);
        }
    }

    /// Sends an error reply for verb `v`, counting it.
    fn reject(&mut self, out: &mut Actions, v: Verb, r: Reply) {
        self.count(v, false);
        self.send(out, r);
        self.failed(out);
    }

    /// Handles a read error from the line splitter.
    pub fn line_error(&mut self, e: LineError) -> Actions {
        let mut out = Actions::new();
        if self.state == State::Closed {
            return out;
        }
        match e {
            LineError::TooLong => self.reject(
                &mut out,
                Verb::Unknown,
                Reply::new("500 5.5.2 Error: line too long"),
            ),
            LineError::BareLf => {
                let r = self.bare_lf_reply();
                self.count(Verb::Unknown, false);
                self.send(&mut out, r);
                self.close(&mut out);
            }
        }
        out
    }

    /// Handles one input line (without its line end).
    pub fn line(&mut self, line: &[u8], rcpts: &mut dyn Recipients) -> Actions {
        let mut out = Actions::new();
        match core::mem::replace(&mut self.state, State::Command) {
            // Postfix 3.9 `smtpd_forbid_unauth_pipelining = yes`: once
            // improper pipelining was seen (at this command, or before the
            // greeting), the command is not run; the client gets the 554
            // and the session ends. Postfix exempts no client class.
            State::Command if self.ill_pipelining && self.p.forbid_unauth_pipelining => {
                self.count(Verb::Unknown, false);
                self.send(
                    &mut out,
                    Reply::new("554 5.5.0 Error: SMTP protocol synchronization"),
                );
                self.close(&mut out);
            }
            State::Command => self.command(&mut out, line, rcpts),
            State::Auth(step) => self.auth_response(&mut out, step, line),
            State::Closed => self.state = State::Closed,
            // A line while waiting for an event means the driver read ahead
            // (after STARTTLS: possibly injected plaintext). Never run it.
            State::Tls | State::Data | State::AuthVerdict(_) => self.close(&mut out),
        }
        out
    }

    /// Handles an event.
    pub fn event(&mut self, ev: Event<'_>) -> Actions {
        let mut out = Actions::new();
        if self.state == State::Closed {
            return out;
        }
        match (core::mem::replace(&mut self.state, State::Command), ev) {
            (_, Event::Timeout) => {
                let r = Reply::fmt(format_args!(
                    "421 4.4.2 {} Error: timeout exceeded",
                    self.p.hostname
                ));
                self.send(&mut out, r);
                self.close(&mut out);
                self.timed_out = true;
            }
            (State::Tls, Event::TlsEstablished) => {
                // RFC 3207 §4.2: forget everything learnt in plaintext.
                self.tls_active = true;
                self.helo = None;
                self.esmtp = false;
                self.envelope = None;
                self.auth_user = None;
                self.count_ok_later(Verb::StartTls);
            }
            (State::Tls, Event::TlsFailed) => self.close(&mut out),
            (State::AuthVerdict(user), Event::AuthVerdict(ok)) => {
                if ok {
                    self.auth_user = Some(user);
                    self.count_ok_later(Verb::Auth);
                    self.send(&mut out, Reply::new("235 2.7.0 Authentication successful"));
                } else {
                    self.send(&mut out, auth_failed());
                    self.failed(&mut out);
                }
            }
            (State::AuthVerdict(_), Event::AuthTempFail) => {
                // Postfix's reply when the SASL server fails temporarily;
                // an error for smtpd_hard_error_limit, as there.
                self.send(
                    &mut out,
                    Reply::new("454 4.7.0 Temporary authentication failure"),
                );
                self.failed(&mut out);
            }
            (State::Data, Event::Committed(id)) => {
                self.where_ = AFTER_EOM;
                self.count_ok_later(Verb::Data);
                self.envelope = None;
                // Postfix forgives earlier errors and junk once a message
                // was received.
                self.error_count = 0;
                self.junk_count = 0;
                self.send(
                    &mut out,
                    Reply::fmt(format_args!("250 2.0.0 Ok: queued as {id}")),
                );
            }
            (State::Data, Event::CommitFailed) => {
                self.where_ = AFTER_EOM;
                self.envelope = None;
                self.send(
                    &mut out,
                    Reply::new("451 4.3.0 Error: queue file write error"),
                );
                self.failed(&mut out);
            }
            (State::Data, Event::DataTooBig) => {
                self.where_ = AFTER_EOM;
                self.envelope = None;
                self.send(
                    &mut out,
                    Reply::new("552 5.3.4 Error: message file too big"),
                );
                self.failed(&mut out);
            }
            (State::Data, Event::DataBareLf) => {
                self.where_ = AFTER_EOM;
                // Postfix 3.7.11 answers and goes on after DATA; it only
                // disconnects for a bare LF in a command line.
                self.envelope = None;
                let r = self.bare_lf_reply();
                self.send(&mut out, r);
                self.failed(&mut out);
            }
            // An event the session is not waiting for: a driver bug. Do
            // not guess; end the session.
            (_, _) => self.close(&mut out),
        }
        out
    }

    fn bare_lf_reply(&self) -> Reply {
        Reply::fmt(format_args!(
            "{} 5.5.2 {} Error: bare <LF> received",
            self.p.bare_newline_reject_code, self.p.hostname
        ))
    }

    fn in_transaction(&self) -> bool {
        self.envelope.is_some()
    }

    fn auth_offered(&self) -> bool {
        self.p.auth_available && (self.tls_active || self.p.allow_plaintext_auth)
    }

    fn ehlo_reply(&self) -> Reply {
        let size = if self.p.message_size_limit > 0 {
            format!("SIZE {}", self.p.message_size_limit)
        } else {
            "SIZE".to_string()
        };
        let mut lines: heapless::Vec<&str, 10> = heapless::Vec::new();
        let _ = lines.push(&self.p.hostname);
        let _ = lines.push("PIPELINING");
        let _ = lines.push(&size);
        if self.p.tls_available && !self.tls_active {
            let _ = lines.push("STARTTLS");
        }
        if self.auth_offered() {
            let _ = lines.push("AUTH PLAIN LOGIN");
        }
        let _ = lines.push("ENHANCEDSTATUSCODES");
        let _ = lines.push("8BITMIME");
        let _ = lines.push("SMTPUTF8");
        Reply::multi(250, &lines)
    }

    fn command(&mut self, out: &mut Actions, line: &[u8], rcpts: &mut dyn Recipients) {
        let parsed = command::parse_with_verb(line);
        let verb = match &parsed {
            Ok(c) => c.verb(),
            Err((v, _)) => *v,
        };
        // Postfix names an unrecognised command UNKNOWN in its `after X`
        // lines; an empty or non-UTF-8 line leaves the last name.
        if matches!(
            parsed,
            Ok(Command::Help) | Err((_, CommandError::Unrecognized))
        ) {
            self.where_ = "UNKNOWN";
        }
        // Postfix checks `smtpd_tls_security_level = encrypt` before the
        // command's own syntax.
        if self.p.tls_required && !self.tls_active && !pre_tls(verb) {
            return self.reject(
                out,
                verb,
                Reply::new("530 5.7.0 Must issue a STARTTLS command first"),
            );
        }
        if verb != Verb::Unknown {
            self.where_ = verb_word(verb);
        }
        let cmd = match parsed {
            Ok(c) => c,
            // Postfix answers an empty line but does not count it as a
            // command in its disconnect line (it is still an error).
            Err((_, CommandError::Empty)) => {
                self.send(out, CommandError::Empty.reply());
                return self.failed(out);
            }
            Err((v, e)) => return self.reject(out, v, e.reply()),
        };
        match cmd {
            Command::Helo(name) | Command::Ehlo(name) => {
                let ehlo = matches!(cmd, Command::Ehlo(_));
                self.helo = Some(name.to_string());
                self.esmtp = ehlo;
                self.envelope = None;
                let r = if ehlo {
                    self.ehlo_reply()
                } else {
                    Reply::fmt(format_args!("250 {}", self.p.hostname))
                };
                self.count(verb, true);
                self.send(out, r);
                self.junk(out);
            }
            Command::StartTls => {
                if self.tls_active {
                    self.reject(out, verb, Reply::new("554 5.5.1 Error: TLS already active"));
                } else if !self.p.tls_available {
                    self.reject(
                        out,
                        verb,
                        Reply::new("502 5.5.1 Error: command not implemented"),
                    );
                } else {
                    // Counted as success once the handshake completes.
                    self.count(verb, false);
                    self.send(out, Reply::new("220 2.0.0 Ready to start TLS"));
                    let _ = out.push(Action::StartTls);
                    self.state = State::Tls;
                }
            }
            Command::Auth { mechanism, initial } => {
                self.auth_command(out, mechanism, initial, rcpts)
            }
            Command::Mail { from, params } => {
                if self.p.helo_required && self.helo.is_none() {
                    return self.reject(
                        out,
                        verb,
                        Reply::new("503 5.5.1 Error: send HELO/EHLO first"),
                    );
                }
                if self.in_transaction() {
                    return self.reject(
                        out,
                        verb,
                        Reply::new("503 5.5.1 Error: nested MAIL command"),
                    );
                }
                if self.p.auth_required && self.auth_user.is_none() {
                    return self.reject(out, verb, Reply::new("530 5.7.0 Authentication required"));
                }
                if let Some(size) = params.size {
                    if self.p.message_size_limit > 0 && size > self.p.message_size_limit {
                        return self.reject_logged(
                            out,
                            verb,
                            "552 5.3.4 Message size exceeds fixed limit",
                            from.mailbox(),
                        );
                    }
                }
                if !rcpts.storage_ok(params.size.unwrap_or(0)) {
                    return self.reject_logged(out, verb, INSUFFICIENT_STORAGE, from.mailbox());
                }
                if let Some(r) = rcpts.mail_limit() {
                    return self.reject(out, verb, Reply::new(&r));
                }
                self.envelope = Some(Envelope {
                    sender: from.mailbox().to_string(),
                    recipients: Vec::new(),
                    body: params.body,
                    smtputf8: params.smtputf8,
                    declared_size: params.size,
                    overshoot: 0,
                });
                self.count(verb, true);
                self.send(out, Reply::new("250 2.1.0 Ok"));
            }
            Command::Rcpt { to } => self.rcpt(out, to, rcpts),
            Command::Data => {
                let Some(env) = &self.envelope else {
                    return self.reject(
                        out,
                        verb,
                        Reply::new("503 5.5.1 Error: need RCPT command"),
                    );
                };
                if env.recipients.is_empty() {
                    return self.reject(
                        out,
                        verb,
                        Reply::new("554 5.5.1 Error: no valid recipients"),
                    );
                }
                if !rcpts.storage_ok(env.declared_size.unwrap_or(0)) {
                    let sender = env.sender.clone();
                    return self.reject_logged(out, verb, INSUFFICIENT_STORAGE, &sender);
                }
                // Counted as success when the message is queued.
                self.count(verb, false);
                self.send(out, Reply::new("354 End data with <CR><LF>.<CR><LF>"));
                let _ = out.push(Action::BeginData);
                self.state = State::Data;
                self.where_ = AFTER_DATA;
            }
            Command::Rset => {
                self.envelope = None;
                self.count(verb, true);
                self.send(out, Reply::new("250 2.0.0 Ok"));
                self.junk(out);
            }
            Command::Noop => {
                self.count(verb, true);
                self.send(out, Reply::new("250 2.0.0 Ok"));
                self.junk(out);
            }
            Command::Quit => {
                self.count(verb, true);
                self.send(out, Reply::new("221 2.0.0 Bye"));
                self.close(out);
            }
            Command::Vrfy(_) => {
                self.reject(out, verb, Reply::new("502 5.5.1 VRFY command is disabled"));
                self.junk(out);
            }
            Command::Help => {
                self.reject(out, verb, CommandError::Unrecognized.reply());
                self.junk(out);
            }
        }
    }

    fn rcpt(&mut self, out: &mut Actions, to: Path<'_>, rcpts: &mut dyn Recipients) {
        let v = Verb::Rcpt;
        let relay_ok = self.p.client_in_mynetworks || self.auth_user.is_some();
        let limit = self.p.recipient_limit;
        let overshoot_limit = self.p.recipient_overshoot_limit;
        let Some(env) = &mut self.envelope else {
            return self.reject(out, v, Reply::new("503 5.5.1 Error: need MAIL command"));
        };
        if env.recipients.len() >= limit {
            let r = Reply::new("452 4.5.3 Error: too many recipients");
            // Postfix (smtpd.c rcpt_cmd): `rcpt_overshoot++ < overlim`
            // returns success, so neither the error count nor the
            // command's failure count moves; the accepted recipients stay
            // and DATA can still deliver to them.
            if env.overshoot < overshoot_limit {
                env.overshoot += 1;
                self.count(v, true);
                self.send(out, r);
                return;
            }
            return self.reject(out, v, r);
        }
        if to.is_utf8() && !env.smtputf8 {
            return self.reject(
                out,
                v,
                Reply::new("553 5.6.7 Must declare SMTPUTF8 to send unicode address"),
            );
        }
        let addr = to.mailbox();
        match rcpts.classify(&to) {
            RcptClass::Remote if !relay_ok => {
                let r = format!("554 5.7.1 <{addr}>: Relay access denied");
                self.reject_rcpt_logged(out, &r, addr)
            }
            RcptClass::LocalUnknown => {
                let r = format!(
                    "550 5.1.1 <{addr}>: Recipient address rejected: User unknown in local recipient table"
                );
                self.reject_rcpt_logged(out, &r, addr)
            }
            RcptClass::Local | RcptClass::Remote => {
                if let Some(env) = &mut self.envelope {
                    env.recipients.push(addr.to_string());
                }
                self.count(v, true);
                self.send(out, Reply::new("250 2.1.5 Ok"));
            }
        }
    }

    fn auth_command(
        &mut self,
        out: &mut Actions,
        mechanism: &str,
        initial: Option<&str>,
        rcpts: &mut dyn Recipients,
    ) {
        let v = Verb::Auth;
        if !self.p.auth_available {
            return self.reject(
                out,
                v,
                Reply::new("503 5.5.1 Error: authentication not enabled"),
            );
        }
        if self.in_transaction() {
            return self.reject(
                out,
                v,
                Reply::new("503 5.5.1 Error: MAIL transaction in progress"),
            );
        }
        if !self.tls_active && !self.p.allow_plaintext_auth {
            return self.reject(
                out,
                v,
                Reply::new("504 5.5.4 Encryption required for requested authentication mechanism"),
            );
        }
        if self.auth_user.is_some() {
            return self.reject(out, v, Reply::new("503 5.5.1 Error: already authenticated"));
        }
        // Counted across sessions by the driver (anvil); as in Postfix an
        // error for smtpd_hard_error_limit.
        if let Some(r) = rcpts.auth_limit() {
            return self.reject(out, v, Reply::new(&r));
        }
        // Counted as success when the verdict is positive.
        self.count(v, false);
        if mechanism.eq_ignore_ascii_case("PLAIN") {
            match initial {
                Some(resp) => self.plain_response(out, resp.as_bytes()),
                None => {
                    self.send(out, Reply::new("334 "));
                    self.state = State::Auth(AuthStep::PlainResponse);
                }
            }
        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
            match initial {
                Some(resp) => self.login_user(out, resp.as_bytes()),
                None => {
                    self.send(out, Reply::new(LOGIN_USER_CHALLENGE));
                    self.state = State::Auth(AuthStep::LoginUser);
                }
            }
        } else {
            self.send(
                out,
                Reply::new(
                    "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
                ),
            );
            self.failed(out);
        }
    }

    fn auth_response(&mut self, out: &mut Actions, step: AuthStep, line: &[u8]) {
        if line == b"*" {
            self.send(out, Reply::new("501 5.7.0 Authentication aborted"));
            return self.failed(out);
        }
        match step {
            AuthStep::PlainResponse => self.plain_response(out, line),
            AuthStep::LoginUser => self.login_user(out, line),
            AuthStep::LoginPassword(user) => match decode_text(line) {
                Some(password) => self.check(out, AuthMechanism::Login, user, password),
                None => self.auth_decode_error(out),
            },
        }
    }

    fn auth_decode_error(&mut self, out: &mut Actions) {
        self.send(out, Reply::new("501 5.5.2 Cannot decode response"));
        self.failed(out);
    }

    fn plain_response(&mut self, out: &mut Actions, resp: &[u8]) {
        let Some(raw) = decode_response(resp) else {
            return self.auth_decode_error(out);
        };
        // authzid NUL authcid NUL passwd (RFC 4616 §2).
        let mut parts = raw.split(|&b| b == 0);
        let (Some(authz), Some(user), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            self.send(out, auth_failed());
            return self.failed(out);
        };
        let (Ok(authz), Ok(user), Ok(pass)) = (
            core::str::from_utf8(authz),
            core::str::from_utf8(user),
            core::str::from_utf8(pass),
        ) else {
            self.send(out, auth_failed());
            return self.failed(out);
        };
        // tern does not let one user act for another.
        if user.is_empty() || (!authz.is_empty() && authz != user) {
            self.send(out, auth_failed());
            return self.failed(out);
        }
        self.check(
            out,
            AuthMechanism::Plain,
            user.to_string(),
            pass.to_string(),
        );
    }

    fn login_user(&mut self, out: &mut Actions, resp: &[u8]) {
        match decode_text(resp) {
            Some(user) if !user.is_empty() => {
                self.send(out, Reply::new(LOGIN_PASS_CHALLENGE));
                self.state = State::Auth(AuthStep::LoginPassword(user));
            }
            Some(_) => {
                self.send(out, auth_failed());
                self.failed(out);
            }
            None => self.auth_decode_error(out),
        }
    }

    fn check(
        &mut self,
        out: &mut Actions,
        mechanism: AuthMechanism,
        user: String,
        password: String,
    ) {
        let _ = out.push(Action::CheckAuth(AuthRequest {
            mechanism,
            user: user.clone(),
            password,
        }));
        self.state = State::AuthVerdict(user);
    }
}

/// Commands allowed before STARTTLS where TLS is required (Postfix's
/// SMTPD_CMD_FLAG_PRE_TLS; unknown commands get their own error first).
fn pre_tls(verb: Verb) -> bool {
    matches!(
        verb,
        Verb::Helo | Verb::Ehlo | Verb::StartTls | Verb::Noop | Verb::Quit | Verb::Unknown
    )
}

/// The verb as Postfix names it in its log lines.
fn verb_word(v: Verb) -> &'static str {
    match v {
        Verb::Helo => "HELO",
        Verb::Ehlo => "EHLO",
        Verb::StartTls => "STARTTLS",
        Verb::Auth => "AUTH",
        Verb::Mail => "MAIL",
        Verb::Rcpt => "RCPT",
        Verb::Data => "DATA",
        Verb::Rset => "RSET",
        Verb::Noop => "NOOP",
        Verb::Vrfy => "VRFY",
        Verb::Quit => "QUIT",
        Verb::Unknown => "UNKNOWN",
    }
}

/// Postfix's `escape()` of at most the first 100 bytes, as in its
/// pipelining line: printable ASCII as is (backslash doubled), the C
/// escapes `\a \b \f \n \r \t \v`, anything else as `\` and the
/// decimal value (three digits when a digit follows).
pub fn escape(data: &[u8]) -> String {
    let data = data.get(..100).unwrap_or(data);
    let mut out = String::with_capacity(data.len() + 8);
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x0b => out.push_str("\\v"),
            _ if data.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let _ = write!(out, "\\{b:03}");
            }
            _ => {
                let _ = write!(out, "\\{b}");
            }
        }
    }
    out
}

fn auth_failed() -> Reply {
    Reply::new("535 5.7.8 Error: authentication failed: authentication failure")
}

/// A SASL response: base64, or `=` for an empty one (RFC 4954 §4).
fn decode_response(resp: &[u8]) -> Option<Vec<u8>> {
    if resp == b"=" {
        Some(Vec::new())
    } else {
        base64::decode_strict(resp)
    }
}

fn decode_text(resp: &[u8]) -> Option<String> {
    decode_response(resp).and_then(|v| String::from_utf8(v).ok())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod storage_tests;
