//! The client side of an SMTP session (outbound delivery), as a state
//! machine without I/O.
//!
//! The driver connects, then feeds every reply line (without CRLF) to
//! [`Session::reply_line`] and performs the returned [`ClientAction`]s in
//! order. Like the server session, every call returns a fixed-capacity
//! [`ClientActions`], and a command line is sent from inline bytes
//! ([`CommandBytes`]): a session allocates per message and per recipient
//! result, not per command. Flow: greeting → EHLO (HELO after a 5xx to EHLO) → STARTTLS when
//! offered and the [`TlsRequirement`] allows, then EHLO again → AUTH
//! PLAIN/LOGIN when credentials are given and the server offers it →
//! [`ClientAction::Ready`]. Then [`Session::send_message`] runs MAIL / RCPT
//! / DATA (pipelined when the server offers PIPELINING), the driver streams
//! the body through [`DotStuffer`](super::dotstuff::DotStuffer) on
//! [`ClientAction::SendBody`], and [`ClientAction::Delivered`] gives one
//! result per recipient. Another message can follow on the same
//! connection; [`Session::quit`] ends it.
//!
//! On [`ClientAction::StartTls`] the driver must drop every byte it has
//! read but not fed, run the handshake, and call
//! [`Session::tls_established`] (or [`Session::tls_failed`]): a reply
//! injected in plaintext before the handshake must never be taken as if it
//! came over TLS. With [`TlsRequirement::Required`] the session never
//! continues without TLS.

use super::reply::{EnhancedCode, ParsedReply, ReplyError, ReplyParser};
use crate::base64;
use core::fmt;
use core::fmt::Write as _;
use core::ops::Deref;

/// What the TLS policy demands for this connection (decided by `policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRequirement {
    /// Never STARTTLS (`smtp_tls_security_level = none`).
    None,
    /// STARTTLS when offered, plaintext otherwise (`may`).
    Opportunistic,
    /// STARTTLS or fail (`encrypt` and above).
    Required,
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct ClientParams {
    /// Name sent with EHLO/HELO (`smtp_helo_name`, default `myhostname`).
    pub helo_name: String,
    /// TLS requirement for this connection.
    pub tls: TlsRequirement,
    /// TLS is already up (implicit TLS, `smtp_tls_wrappermode`).
    pub implicit_tls: bool,
    /// SASL credentials (user, password) for this next hop.
    pub credentials: Option<(String, String)>,
    /// Send credentials without TLS (never by default).
    pub allow_plaintext_auth: bool,
}

/// The transaction to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Reverse path without brackets; empty for `<>`.
    pub sender: String,
    /// Forward paths without brackets.
    pub recipients: Vec<String>,
    /// Body size for `SIZE=` (sent when the server offers SIZE).
    pub size: Option<u64>,
    /// Body has 8-bit data: `BODY=8BITMIME` when offered.
    pub eight_bit: bool,
    /// Needs SMTPUTF8; fails permanently when not offered.
    pub smtputf8: bool,
}

/// Which command a reply answered, for Postfix's `(in reply to ... command)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `MAIL FROM`
    MailFrom,
    /// `RCPT TO`
    RcptTo,
    /// `DATA`
    Data,
    /// end of DATA
    EndOfData,
}

impl Stage {
    /// Postfix's wording: `MAIL FROM`, `RCPT TO`, `DATA`, `end of DATA`.
    pub fn command(self) -> &'static str {
        match self {
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of DATA",
        }
    }
}

/// Delivery status of one recipient, as in Postfix's `status=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accepted by the server (`status=sent`).
    Sent,
    /// Temporary failure (`status=deferred`).
    Deferred,
    /// Permanent failure (`status=bounced`).
    Bounced,
}

/// The result for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptResult {
    /// What happened.
    pub status: Status,
    /// The reply that decided it (or a synthesised one, see `stage`).
    pub reply: ParsedReply,
    /// The command the reply answered.
    pub stage: Stage,
}

impl RcptResult {
    /// The `dsn=` value (e.g. `5.1.1`).
    pub fn dsn(&self) -> String {
        self.reply.dsn().to_string()
    }

    /// The parenthesised text of Postfix's `status=` line: for `sent`
    /// `250 2.0.0 Ok: queued as X`, otherwise
    /// `host H said: 550 5.1.1 ... (in reply to RCPT TO command)`.
    /// `host` is `name[addr]`.
    pub fn describe(&self, host: &str) -> String {
        match self.status {
            Status::Sent => self.reply.one_line(),
            _ => format!(
                "host {host} said: {} (in reply to {} command)",
                self.reply.one_line(),
                self.stage.command()
            ),
        }
    }
}

/// True for a server's "authenticate first" answer to MAIL FROM or RCPT
/// TO: `530` (RFC 4954's `530 5.7.0 Authentication required`), or a 5xx
/// with the enhanced code 5.7.0 whose text speaks of authentication. A
/// `530 ... Must issue a STARTTLS command first` is not one (the server
/// wants TLS, not a login). The driver decides what it means: sent to a
/// client that offered no credentials, it is that client's configuration
/// that is wrong, not the recipient.
pub fn auth_required(r: &ParsedReply) -> bool {
    let first = r.lines().next().unwrap_or("").to_ascii_lowercase();
    if first.contains("starttls") {
        return false;
    }
    let five_seven_zero = matches!(
        r.enhanced,
        Some(EnhancedCode {
            class: 5,
            subject: 7,
            detail: 0
        })
    );
    r.code == 530 || (r.is_permanent() && five_seven_zero && first.contains("auth"))
}

/// Why the session as a whole failed (all pending recipients share it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The greeting was not 2xx.
    Greeting(ParsedReply),
    /// Both EHLO and HELO (or EHLO with 4xx) were refused.
    Helo(ParsedReply),
    /// TLS was required but the server did not offer STARTTLS.
    TlsNotOffered,
    /// TLS was required and the server refused STARTTLS.
    StartTlsRefused(ParsedReply),
    /// The TLS handshake failed (the driver has the details).
    TlsHandshake,
    /// Credentials were given but no usable mechanism was offered.
    AuthNotOffered,
    /// The server rejected the credentials.
    Auth(ParsedReply),
    /// The message needs SMTPUTF8 and the server lacks it.
    Smtputf8NotOffered,
    /// A reply was malformed.
    Protocol(ReplyError),
    /// A reply arrived when none was expected, or the server answered
    /// the QUIT/RSET/STARTTLS dance unexpectedly.
    Unexpected,
}

impl ClientError {
    /// True when recipients should bounce rather than be deferred.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Auth(r) | ClientError::Helo(r) => r.is_permanent(),
            ClientError::Smtputf8NotOffered => true,
            _ => false,
        }
    }

    /// Postfix's wording for the `status=` text; `host` is `name[addr]`.
    pub fn describe(&self, host: &str) -> String {
        match self {
            ClientError::Greeting(r) => {
                format!("host {host} refused to talk to me: {}", r.one_line())
            }
            ClientError::Helo(r) => format!(
                "host {host} said: {} (in reply to EHLO command)",
                r.one_line()
            ),
            ClientError::TlsNotOffered => {
                format!("TLS is required, but was not offered by host {host}")
            }
            ClientError::StartTlsRefused(r) => format!(
                "TLS is required, but host {host} refused to start TLS: {}",
                r.one_line()
            ),
            ClientError::TlsHandshake => format!("Cannot start TLS: handshake failure with {host}"),
            ClientError::AuthNotOffered => {
                format!("SASL authentication not offered by host {host}")
            }
            ClientError::Auth(r) => format!(
                "SASL authentication failed; server {host} said: {}",
                r.one_line()
            ),
            ClientError::Smtputf8NotOffered => {
                format!("SMTPUTF8 is required, but was not offered by host {host}")
            }
            ClientError::Protocol(e) => format!("malformed reply from {host}: {e}"),
            ClientError::Unexpected => format!("unexpected reply from {host}"),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("server"))
    }
}

impl std::error::Error for ClientError {}

/// Longest command kept inline in [`CommandBytes`]: RFC 5321's limit for a
/// command line, CRLF included (§4.5.3.1.4). EHLO with a 255-byte name and
/// MAIL or RCPT with a 256-byte path and every parameter tern sends fit.
pub const COMMAND_MAX: usize = 512;

/// The bytes of one [`ClientAction::Send`]: dereferences to `[u8]`.
///
/// A command line is kept inline, so sending it allocates nothing. What
/// can be longer goes on the heap, allocated once at its exact size: a
/// pipelined MAIL/RCPT/DATA group (one write, so one packet where it fits,
/// with any number of recipients), an AUTH PLAIN line with long
/// credentials (RFC 4954 allows 12,288 octets), an address longer than
/// SMTP's limits that came from a local sender.
#[derive(Clone)]
pub struct CommandBytes(Repr);

// Inline is the point: the heap is only for what cannot fit.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Repr {
    Inline(heapless::Vec<u8, COMMAND_MAX>),
    Heap(Vec<u8>),
}

impl CommandBytes {
    /// Builds from the pieces `write` hands to its sink. `write` runs twice,
    /// to measure and then to copy, so that nothing grows while it is built.
    fn build(write: impl Fn(&mut dyn FnMut(&[u8]))) -> CommandBytes {
        let mut len = 0usize;
        write(&mut |piece| len += piece.len());
        if len <= COMMAND_MAX {
            let mut v = heapless::Vec::new();
            // Cannot fail: the same pieces measured `len` bytes.
            write(&mut |piece| {
                let _ = v.extend_from_slice(piece);
            });
            CommandBytes(Repr::Inline(v))
        } else {
            let mut v = Vec::with_capacity(len);
            write(&mut |piece| v.extend_from_slice(piece));
            CommandBytes(Repr::Heap(v))
        }
    }

    /// One command line: `parts` concatenated, then CRLF.
    fn line(parts: &[&[u8]]) -> CommandBytes {
        CommandBytes::build(|w| {
            for p in parts {
                w(p);
            }
            w(b"\r\n");
        })
    }
}

impl Deref for CommandBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(v) => v,
            Repr::Heap(v) => v,
        }
    }
}

impl AsRef<[u8]> for CommandBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

// Equal bytes are equal commands, wherever they are stored.
impl PartialEq for CommandBytes {
    fn eq(&self, other: &CommandBytes) -> bool {
        **self == **other
    }
}

impl Eq for CommandBytes {}

impl fmt::Debug for CommandBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CommandBytes")
            .field(&String::from_utf8_lossy(self))
            .finish()
    }
}

/// Something the driver must do.
// `Send` carries a command line inline on purpose: actions come back in a
// fixed list, and boxing would allocate for every command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAction {
    /// Write these bytes (one or more command lines) in one write.
    Send(CommandBytes),
    /// STARTTLS was accepted: **discard all buffered unread input**, run
    /// the handshake, then call [`Session::tls_established`] or
    /// [`Session::tls_failed`].
    StartTls,
    /// The session is idle: call [`Session::send_message`] or
    /// [`Session::quit`].
    Ready,
    /// Stream the body through a `DotStuffer` now, including its
    /// `finish()` terminator, then keep feeding reply lines.
    SendBody,
    /// Results for the message, one per recipient in order.
    Delivered(Vec<RcptResult>),
    /// The session failed; pending recipients share this error. `Close`
    /// follows.
    Failed(Box<ClientError>),
    /// Close the connection.
    Close,
}

/// Extensions the server announced in its EHLO reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions {
    /// PIPELINING
    pub pipelining: bool,
    /// STARTTLS
    pub starttls: bool,
    /// SIZE (with its limit, 0 if none given)
    pub size: Option<u64>,
    /// 8BITMIME
    pub eight_bit_mime: bool,
    /// SMTPUTF8
    pub smtputf8: bool,
    /// AUTH PLAIN
    pub auth_plain: bool,
    /// AUTH LOGIN
    pub auth_login: bool,
    /// ENHANCEDSTATUSCODES
    pub enhanced_status_codes: bool,
}

impl Extensions {
    /// Reads the keywords of an EHLO reply (lines after the first).
    pub fn parse(reply: &ParsedReply) -> Extensions {
        let mut e = Extensions::default();
        for line in reply.lines().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(kw) = words.next() else { continue };
            let k = |n: &str| kw.eq_ignore_ascii_case(n);
            if k("PIPELINING") {
                e.pipelining = true;
            } else if k("STARTTLS") {
                e.starttls = true;
            } else if k("SIZE") {
                e.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
            } else if k("8BITMIME") {
                e.eight_bit_mime = true;
            } else if k("SMTPUTF8") {
                e.smtputf8 = true;
            } else if k("ENHANCEDSTATUSCODES") {
                e.enhanced_status_codes = true;
            } else if k("AUTH") || kw.eq_ignore_ascii_case("AUTH=LOGIN") {
                for m in words {
                    if m.eq_ignore_ascii_case("PLAIN") {
                        e.auth_plain = true;
                    } else if m.eq_ignore_ascii_case("LOGIN") {
                        e.auth_login = true;
                    }
                }
                if kw.eq_ignore_ascii_case("AUTH=LOGIN") {
                    e.auth_login = true;
                }
            }
        }
        e
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass,
    AuthLoginDone,
    Ready,
    /// Waiting for the MAIL reply.
    Mail,
    /// Waiting for the reply to RCPT number `i`.
    Rcpt(usize),
    /// Waiting for the DATA (354) reply.
    Data,
    /// Body being sent; waiting for the end-of-data reply.
    EndOfData,
    /// After a failed transaction: waiting for the RSET reply.
    Rset,
    Quit,
    Closed,
}

/// One SMTP client session.
#[derive(Debug)]
pub struct Session {
    p: ClientParams,
    state: State,
    parser: ReplyParser,
    ext: Extensions,
    tls_active: bool,
    authenticated: bool,
    message: Option<Message>,
    /// Per recipient: `None` while pending / accepted-at-RCPT.
    results: Vec<Option<RcptResult>>,
    accepted: Vec<bool>,
    mail_failed: Option<ParsedReply>,
}

/// What one call returns: up to two actions, in order (the longest
/// sequences are a result then `Ready` or the RSET command, and `Failed`
/// then `Close`).
pub type ClientActions = heapless::Vec<ClientAction, 2>;

type Actions = ClientActions;

/// Appends to `out`. Every path pushes at most [`ClientActions`]'s capacity,
/// so a full list is a bug here: tests and fuzzing (debug builds) catch it.
fn push(out: &mut Actions, action: ClientAction) {
    let full = out.push(action).is_err();
    debug_assert!(!full, "more client actions than ClientActions holds");
}

impl Session {
    /// A session that waits for the server's greeting.
    pub fn new(params: ClientParams) -> Session {
        let tls_active = params.implicit_tls;
        Session {
            p: params,
            state: State::Greeting,
            parser: ReplyParser::new(),
            ext: Extensions::default(),
            tls_active,
            authenticated: false,
            message: None,
            results: Vec::new(),
            accepted: Vec::new(),
            mail_failed: None,
        }
    }

    /// The server's extensions from the last EHLO.
    pub fn extensions(&self) -> Extensions {
        self.ext
    }

    /// TLS is active.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// AUTH succeeded.
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn fail(&mut self, out: &mut Actions, e: ClientError) {
        push(out, ClientAction::Failed(Box::new(e)));
        push(out, ClientAction::Close);
        self.state = State::Closed;
    }

    /// Sends `parts` and CRLF as one command line.
    fn send_line(out: &mut Actions, parts: &[&[u8]]) {
        push(out, ClientAction::Send(CommandBytes::line(parts)));
    }

    fn ehlo(&mut self, out: &mut Actions) {
        Self::send_line(out, &[b"EHLO ", self.p.helo_name.as_bytes()]);
        self.state = State::Ehlo;
    }

    /// The TLS handshake after STARTTLS succeeded: EHLO again.
    pub fn tls_established(&mut self) -> ClientActions {
        let mut out = Actions::new();
        if self.state != State::TlsHandshake {
            self.fail(&mut out, ClientError::Unexpected);
            return out;
        }
        self.tls_active = true;
        self.parser = ReplyParser::new();
        self.ext = Extensions::default();
        self.ehlo(&mut out);
        out
    }

    /// The TLS handshake failed. The connection cannot be reused; with
    /// `Opportunistic` the driver may retry in plaintext on a new one.
    pub fn tls_failed(&mut self) -> ClientActions {
        let mut out = Actions::new();
        self.fail(&mut out, ClientError::TlsHandshake);
        out
    }

    /// Feeds one reply line (without CRLF).
    pub fn reply_line(&mut self, line: &[u8]) -> ClientActions {
        let mut out = Actions::new();
        if self.state == State::Closed {
            return out;
        }
        match self.parser.feed_line(line) {
            Err(e) => self.fail(&mut out, ClientError::Protocol(e)),
            Ok(None) => {}
            Ok(Some(r)) => self.on_reply(&mut out, r),
        }
        out
    }

    /// Starts a transaction; only valid after [`ClientAction::Ready`].
    pub fn send_message(&mut self, m: Message) -> ClientActions {
        let mut out = Actions::new();
        if self.state != State::Ready {
            self.fail(&mut out, ClientError::Unexpected);
            return out;
        }
        if m.smtputf8 && !self.ext.smtputf8 {
            // Postfix bounces such mail: it cannot be sent as is.
            let reply = synthetic(
                550,
                "5.6.7 SMTPUTF8 is required, but was not offered by the server",
            );
            let res = m
                .recipients
                .iter()
                .map(|_| RcptResult {
                    status: Status::Bounced,
                    reply: reply.clone(),
                    stage: Stage::MailFrom,
                })
                .collect();
            push(&mut out, ClientAction::Delivered(res));
            push(&mut out, ClientAction::Ready);
            return out;
        }
        // u64::MAX has 20 digits.
        let mut size = heapless::String::<20>::new();
        if let (Some(n), Some(_)) = (m.size, self.ext.size) {
            let _ = write!(size, "{n}");
        }
        let eight_bit = m.eight_bit && self.ext.eight_bit_mime;
        let pipelining = self.ext.pipelining;
        let mail = CommandBytes::build(|w| {
            w(b"MAIL FROM:<");
            w(m.sender.as_bytes());
            w(b">");
            if !size.is_empty() {
                w(b" SIZE=");
                w(size.as_bytes());
            }
            if eight_bit {
                w(b" BODY=8BITMIME");
            }
            if m.smtputf8 {
                w(b" SMTPUTF8");
            }
            w(b"\r\n");
            if pipelining {
                for r in &m.recipients {
                    w(b"RCPT TO:<");
                    w(r.as_bytes());
                    w(b">\r\n");
                }
                w(b"DATA\r\n");
            }
        });
        self.results = vec![None; m.recipients.len()];
        self.accepted = vec![false; m.recipients.len()];
        self.mail_failed = None;
        push(&mut out, ClientAction::Send(mail));
        self.message = Some(m);
        self.state = State::Mail;
        out
    }

    /// Ends the session politely.
    pub fn quit(&mut self) -> ClientActions {
        let mut out = Actions::new();
        Self::send_line(&mut out, &[b"QUIT"]);
        self.state = State::Quit;
        out
    }

    fn rcpt_count(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.recipients.len())
    }

    fn after_ehlo(&mut self, out: &mut Actions) {
        if !self.tls_active {
            match self.p.tls {
                TlsRequirement::Required if !self.ext.starttls => {
                    return self.fail(out, ClientError::TlsNotOffered)
                }
                TlsRequirement::Required | TlsRequirement::Opportunistic if self.ext.starttls => {
                    Self::send_line(out, &[b"STARTTLS"]);
                    self.state = State::StartTls;
                    return;
                }
                _ => {}
            }
        }
        self.maybe_auth(out);
    }

    fn maybe_auth(&mut self, out: &mut Actions) {
        let Some((user, pass)) = self.p.credentials.clone() else {
            self.state = State::Ready;
            push(out, ClientAction::Ready);
            return;
        };
        if !self.tls_active && !self.p.allow_plaintext_auth {
            // Never send a password in the clear.
            return self.fail(out, ClientError::AuthNotOffered);
        }
        if self.ext.auth_plain {
            let mut raw = Vec::with_capacity(user.len() + pass.len() + 2);
            for part in [&b"\0"[..], user.as_bytes(), b"\0", pass.as_bytes()] {
                raw.extend_from_slice(part);
            }
            let token = base64::encode(&raw);
            Self::send_line(out, &[b"AUTH PLAIN ", token.as_bytes()]);
            self.state = State::AuthPlain;
        } else if self.ext.auth_login {
            Self::send_line(out, &[b"AUTH LOGIN"]);
            self.state = State::AuthLoginUser;
        } else {
            self.fail(out, ClientError::AuthNotOffered);
        }
    }

    fn on_reply(&mut self, out: &mut Actions, r: ParsedReply) {
        match self.state.clone() {
            State::Greeting => {
                if r.is_positive() {
                    self.ehlo(out);
                } else {
                    self.fail(out, ClientError::Greeting(r));
                }
            }
            State::Ehlo => {
                if r.is_positive() {
                    self.ext = Extensions::parse(&r);
                    self.after_ehlo(out);
                } else if r.is_permanent() {
                    if self.p.tls == TlsRequirement::Required && !self.tls_active {
                        // HELO cannot do STARTTLS.
                        return self.fail(out, ClientError::TlsNotOffered);
                    }
                    Self::send_line(out, &[b"HELO ", self.p.helo_name.as_bytes()]);
                    self.state = State::Helo;
                } else {
                    self.fail(out, ClientError::Helo(r));
                }
            }
            State::Helo => {
                if r.is_positive() {
                    self.ext = Extensions::default();
                    self.maybe_auth(out);
                } else {
                    self.fail(out, ClientError::Helo(r));
                }
            }
            State::StartTls => {
                if r.code == 220 {
                    push(out, ClientAction::StartTls);
                    self.state = State::TlsHandshake;
                } else if self.p.tls == TlsRequirement::Required {
                    self.fail(out, ClientError::StartTlsRefused(r));
                } else {
                    // Opportunistic: carry on in plaintext, as Postfix does.
                    self.maybe_auth(out);
                }
            }
            // Nothing may arrive during the handshake.
            State::TlsHandshake => self.fail(out, ClientError::Unexpected),
            State::AuthPlain | State::AuthLoginDone => {
                if r.code == 235 {
                    self.authenticated = true;
                    self.state = State::Ready;
                    push(out, ClientAction::Ready);
                } else {
                    self.fail(out, ClientError::Auth(r));
                }
            }
            State::AuthLoginUser | State::AuthLoginPass => {
                if r.code != 334 {
                    return self.fail(out, ClientError::Auth(r));
                }
                let (user, pass) = self.p.credentials.clone().unwrap_or_default();
                if self.state == State::AuthLoginUser {
                    Self::send_line(out, &[base64::encode(user.as_bytes()).as_bytes()]);
                    self.state = State::AuthLoginPass;
                } else {
                    Self::send_line(out, &[base64::encode(pass.as_bytes()).as_bytes()]);
                    self.state = State::AuthLoginDone;
                }
            }
            State::Ready => self.fail(out, ClientError::Unexpected),
            State::Mail => {
                if !r.is_positive() {
                    self.mail_failed = Some(r);
                }
                self.state = State::Rcpt(0);
                if !self.ext.pipelining {
                    if self.mail_failed.is_some() {
                        return self.finish_failed(out);
                    }
                    self.next_rcpt(out, 0);
                }
                // Pipelined: replies to RCPT/DATA follow regardless.
                if self.ext.pipelining && self.rcpt_count() == 0 {
                    self.state = State::Data;
                }
            }
            State::Rcpt(i) => {
                if let Some(m) = &self.mail_failed {
                    // Pipelined after a failed MAIL: the RCPT reply is
                    // noise; the MAIL reply decides.
                    let m = m.clone();
                    self.set_result(i, m, Stage::MailFrom);
                } else if r.is_positive() {
                    if let Some(a) = self.accepted.get_mut(i) {
                        *a = true;
                    }
                } else {
                    self.set_result(i, r, Stage::RcptTo);
                }
                let next = i + 1;
                if next < self.rcpt_count() {
                    self.state = State::Rcpt(next);
                    if !self.ext.pipelining {
                        self.next_rcpt(out, next);
                    }
                } else {
                    self.state = State::Data;
                    if !self.ext.pipelining {
                        if self.accepted.iter().any(|&a| a) {
                            Self::send_line(out, &[b"DATA"]);
                        } else {
                            self.finish_failed(out);
                        }
                    }
                }
            }
            State::Data => {
                let any = self.accepted.iter().any(|&a| a) && self.mail_failed.is_none();
                if r.code == 354 && any {
                    push(out, ClientAction::SendBody);
                    self.state = State::EndOfData;
                } else if r.code == 354 {
                    // Pipelined DATA accepted with no recipients: end it
                    // empty; the server has nobody to deliver to.
                    push(out, ClientAction::Send(CommandBytes::line(&[b"."])));
                    self.state = State::EndOfData;
                    self.accepted.iter_mut().for_each(|a| *a = false);
                } else {
                    self.all_accepted_get(&r, Stage::Data);
                    self.finish_failed(out);
                }
            }
            State::EndOfData => {
                self.all_accepted_get(&r, Stage::EndOfData);
                let res = self.take_results();
                push(out, ClientAction::Delivered(res));
                self.state = State::Ready;
                push(out, ClientAction::Ready);
            }
            State::Rset => {
                if r.is_positive() {
                    self.state = State::Ready;
                    push(out, ClientAction::Ready);
                } else {
                    self.fail(out, ClientError::Unexpected);
                }
            }
            State::Quit => {
                push(out, ClientAction::Close);
                self.state = State::Closed;
            }
            State::Closed => {}
        }
    }

    fn next_rcpt(&mut self, out: &mut Actions, i: usize) {
        if let Some(r) = self.message.as_ref().and_then(|m| m.recipients.get(i)) {
            Self::send_line(out, &[b"RCPT TO:<", r.as_bytes(), b">"]);
        }
    }

    fn set_result(&mut self, i: usize, reply: ParsedReply, stage: Stage) {
        let status = if reply.is_positive() {
            Status::Sent
        } else if reply.is_permanent() {
            Status::Bounced
        } else {
            Status::Deferred
        };
        if let Some(slot) = self.results.get_mut(i) {
            *slot = Some(RcptResult {
                status,
                reply,
                stage,
            });
        }
    }

    /// Gives every recipient accepted at RCPT the outcome of `r`.
    fn all_accepted_get(&mut self, r: &ParsedReply, stage: Stage) {
        for i in 0..self.accepted.len() {
            if self.accepted.get(i) == Some(&true) {
                self.set_result(i, r.clone(), stage);
            }
        }
    }

    fn take_results(&mut self) -> Vec<RcptResult> {
        let fallback = synthetic(451, "4.3.0 no reply for this recipient");
        let res = core::mem::take(&mut self.results)
            .into_iter()
            .map(|r| {
                r.unwrap_or(RcptResult {
                    status: Status::Deferred,
                    reply: fallback.clone(),
                    stage: Stage::EndOfData,
                })
            })
            .collect();
        self.message = None;
        self.accepted.clear();
        res
    }

    /// The transaction ended without DATA: report, then RSET for reuse.
    fn finish_failed(&mut self, out: &mut Actions) {
        if let Some(m) = self.mail_failed.clone() {
            for i in 0..self.results.len() {
                self.set_result(i, m.clone(), Stage::MailFrom);
            }
        }
        let res = self.take_results();
        push(out, ClientAction::Delivered(res));
        Self::send_line(out, &[b"RSET"]);
        self.state = State::Rset;
    }
}

/// A reply tern makes up for a local decision (e.g. SMTPUTF8 missing).
fn synthetic(code: u16, text: &str) -> ParsedReply {
    ParsedReply::local(code, text)
}

#[cfg(test)]
mod tests;
