//! One SMTP connection to a planned [`Target`]: TCP connect, TLS (implicit
//! or STARTTLS) with the target's verifier, AUTH, then every pending
//! message over the same connection. Runs `smtp::client::Session` over
//! `tls::Stream`; every TLS attempt becomes a [`TlsAttempt`].

use std::collections::VecDeque;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::ServerName;
use smol::Async;

use crate::policy::plan::{HostFailure, Target};
use crate::policy::{EffectivePolicy, Level};
use crate::queue::Spool;
use crate::smtp::client::{
    ClientAction, ClientError, ClientParams, Message, Session, Status, TlsRequirement,
};
use crate::smtp::dotstuff::DotStuffer;
use crate::smtp::line::{BareNewline, LineSplitter};
use crate::tls::verify::TernVerifier;
use crate::tls::{FailureKind, Stream, TlsOutcome};

use super::client::Delivery;
use super::report::TlsAttempt;
use super::results::{DeliveryResults, MessageJob, RcptResult, ResultKind};

const REPLY_BUF: usize = 4096;
const BODY_BUF: usize = 8192;

/// Most certificates of a chain [`ChainRecorder`] keeps.
const MAX_CHAIN: usize = 8;

/// Wraps the level's verifier to keep a copy of the chain the server
/// presented, so that `tern probe` can show it whatever the verdict.
#[derive(Debug)]
struct ChainRecorder {
    inner: Arc<TernVerifier>,
    chain: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl rustls::client::danger::ServerCertVerifier for ChainRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if let Ok(mut c) = self.chain.lock() {
            c.clear();
            c.extend(
                std::iter::once(end_entity)
                    .chain(intermediates)
                    .take(MAX_CHAIN)
                    .map(|d| d.as_ref().to_vec()),
            );
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The TLS side of one connection, made before the first byte is read.
struct TlsSetup {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    verifier: Arc<TernVerifier>,
    recorder: Arc<ChainRecorder>,
}

/// What the session loop does after an action.
enum Flow {
    Continue,
    Closed,
}

/// One connection and everything it carries.
pub(super) struct Conn<'a> {
    d: &'a Delivery,
    spool: Option<&'a Spool>,
    jobs: &'a [MessageJob],
    t: &'a Target,
    relay: String,
    hostaddr: String,
    started: Instant,
    handoff: SystemTime,
    stream: Stream,
    tls: TlsSetup,
    wrapper: bool,
    sess: Session,
    buf: [u8; REPLY_BUF],
    splitter: LineSplitter,
    next_job: usize,
    current: Option<usize>,
    conn_secs: f64,
    xfer_start: SystemTime,
    /// Messages sent over this connection so far (Postfix's conn_use).
    uses: u32,
    /// The final dot is out and its reply not in: if the connection dies
    /// now, the server may have the message (SMTP cannot tell).
    eod_sent: bool,
    last_reply: String,
    /// The name in the server's greeting (RFC 8460 `receiving-mx-helo`).
    helo: Option<String>,
    /// Some byte came from the server after the connection (or the
    /// implicit-TLS handshake): until then `smtp_greeting_timeout` applies.
    heard: bool,
    sending_ip: Option<IpAddr>,
}

const MAYBE_TWICE: &str = " -- message may be sent more than once";

impl<'a> Conn<'a> {
    /// Connects to `t` and runs the session; `Ok` when it completed.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run(
        d: &'a Delivery,
        spool: Option<&'a Spool>,
        jobs: &'a [MessageJob],
        results: &mut DeliveryResults,
        t: &'a Target,
        policy: &EffectivePolicy<'_>,
        (started, handoff): (Instant, SystemTime),
    ) -> Result<(), HostFailure> {
        if let Some(f) = d.broken_credentials(&t.host) {
            // Before connecting: nothing goes out without the AUTH the
            // skipped password line was meant to give.
            return Err(f);
        }
        let hostaddr = format!("{}[{}]", t.host, t.addr);
        let stream = connect(d, t, &hostaddr).await?;
        results.connected = Some(format!("{hostaddr}:{}", t.port));
        let tls = tls_setup(d, t, policy)?;
        let sending_ip = stream.tcp().get_ref().local_addr().ok().map(|a| a.ip());
        // Per route (Postfix: per transport), and always on port 465.
        let wrapper = d.implicit_tls || t.port == 465;
        let sess = Session::new(ClientParams {
            helo_name: d.ctx.settings.helo_name.clone(),
            tls: t.tls,
            implicit_tls: wrapper,
            credentials: d.session_credentials(&t.host),
            allow_plaintext_auth: false,
        });
        let mut c = Conn {
            d,
            spool,
            jobs,
            t,
            relay: t.relay(),
            hostaddr,
            started,
            handoff,
            stream,
            tls,
            wrapper,
            sess,
            buf: [0u8; REPLY_BUF],
            splitter: LineSplitter::new(REPLY_BUF - 2, BareNewline::Normalize),
            next_job: 0,
            current: None,
            conn_secs: 0.0,
            xfer_start: SystemTime::now(),
            uses: 0,
            eod_sent: false,
            last_reply: String::new(),
            helo: None,
            heard: false,
            sending_ip,
        };
        if wrapper {
            c.handshake(results, true).await?;
        }
        c.converse(results).await
    }

    fn lost(&self, stage: &str) -> HostFailure {
        HostFailure {
            text: format!("lost connection with {} while {stage}", self.hostaddr),
            dsn: "4.4.2".into(),
            permanent: false,
            reached: true,
            tls: false,
        }
    }

    /// Nothing at all came within `smtp_greeting_timeout`: Postfix's
    /// timeout text, and what such silence usually means. A server on an
    /// implicit-TLS port waits for the client's TLS ClientHello and never
    /// greets a client that waits for its greeting.
    fn silent_server(&self, limit: Duration) -> HostFailure {
        HostFailure {
            text: format!(
                "conversation with {} timed out while receiving the initial server greeting \
                 (no byte within {}s, smtp_greeting_timeout): if port {} expects TLS at once \
                 (implicit TLS, as port 465 does), set smtp_tls_wrappermode = yes for it",
                self.hostaddr,
                limit.as_secs(),
                self.t.port
            ),
            dsn: "4.4.2".into(),
            permanent: false,
            reached: true,
            tls: false,
        }
    }

    /// Performs the session's actions and feeds it the server's replies
    /// until it closes.
    async fn converse(&mut self, results: &mut DeliveryResults) -> Result<(), HostFailure> {
        let helo_t = self.d.ctx.settings.helo_timeout;
        let data_t = self.d.ctx.settings.data_done_timeout;
        // In the order the core asked for them; new ones queue behind.
        let mut actions: VecDeque<ClientAction> = VecDeque::new();
        loop {
            while let Some(act) = actions.pop_front() {
                if let Flow::Closed = self.perform(act, &mut actions, results).await? {
                    return Ok(());
                }
            }
            if self.sess.is_closed() {
                return Ok(());
            }
            // Feed buffered reply lines, or read more.
            match self.splitter.next_line(&self.buf) {
                Some(Ok(line)) => {
                    if self.conn_secs == 0.0 {
                        // The latest reply before the session is ready (for
                        // the log line of a refused STARTTLS).
                        self.last_reply.clear();
                        self.last_reply.push_str(&String::from_utf8_lossy(line));
                    }
                    if self.helo.is_none() {
                        self.helo = greeting_name(line);
                    }
                    actions.extend(self.sess.reply_line(line));
                    continue;
                }
                Some(Err(_)) => {
                    return Err(HostFailure {
                        text: format!("malformed reply from {}", self.hostaddr),
                        dsn: "4.4.2".into(),
                        permanent: false,
                        reached: true,
                        tls: false,
                    })
                }
                None => {}
            }
            let limit = if self.current.is_some() {
                data_t
            } else if !self.heard {
                self.d.ctx.settings.greeting_timeout
            } else {
                helo_t
            };
            let spare = self.splitter.spare(&mut self.buf);
            match timeout(limit, self.stream.read(spare)).await {
                Some(Ok(0)) | Some(Err(_)) if self.eod_sent => {
                    let mut f = self.lost("sending end of data");
                    f.text.push_str(MAYBE_TWICE);
                    return Err(f);
                }
                Some(Ok(0)) | Some(Err(_)) => {
                    return Err(self.lost(if self.current.is_some() {
                        "sending message"
                    } else {
                        "receiving the initial server greeting"
                    }))
                }
                Some(Ok(n)) => {
                    self.heard = true;
                    self.splitter.filled(REPLY_BUF, n)
                }
                None if !self.heard && !self.wrapper => return Err(self.silent_server(limit)),
                None => {
                    return Err(HostFailure {
                        text: if self.eod_sent {
                            format!(
                                "conversation with {} timed out while sending end of data{MAYBE_TWICE}",
                                self.hostaddr
                            )
                        } else {
                            format!("conversation with {} timed out", self.hostaddr)
                        },
                        dsn: "4.4.2".into(),
                        permanent: false,
                        reached: true,
                        tls: false,
                    })
                }
            }
        }
    }

    /// One action of the SMTP client core; new actions go to `out`.
    async fn perform(
        &mut self,
        act: ClientAction,
        out: &mut VecDeque<ClientAction>,
        results: &mut DeliveryResults,
    ) -> Result<Flow, HostFailure> {
        let helo_t = self.d.ctx.settings.helo_timeout;
        match act {
            ClientAction::Send(bytes) => {
                if timeout(helo_t, self.stream.write_all(&bytes))
                    .await
                    .and_then(Result::ok)
                    .is_none()
                {
                    return Err(self.lost("sending a command"));
                }
            }
            ClientAction::StartTls => {
                // STARTTLS response injection: nothing read before the
                // handshake may be taken as a TLS-protected reply.
                self.splitter.discard();
                match self.handshake(results, false).await {
                    Ok(()) => out.extend(self.sess.tls_established()),
                    Err(f) => {
                        let _ = self.sess.tls_failed();
                        return Err(f);
                    }
                }
            }
            ClientAction::Ready => self.next_message(out),
            ClientAction::SendBody => {
                let (Some(j), Some(spool)) = (self.current, self.spool) else {
                    return Err(self.lost("sending message body"));
                };
                let data_t = self.d.ctx.settings.data_done_timeout;
                let limit = self.d.ctx.settings.line_length_limit;
                if let Err(e) =
                    send_body(spool, &self.jobs[j].id, &mut self.stream, data_t, limit).await
                {
                    return Err(HostFailure {
                        text: e,
                        dsn: "4.4.2".into(),
                        permanent: false,
                        reached: true,
                        tls: false,
                    });
                }
                self.eod_sent = true;
            }
            ClientAction::Delivered(list) => self.delivered(&list, results),
            ClientAction::Failed(e) => return Err(self.failed(&e, results)),
            ClientAction::Close => {
                let _ = timeout(Duration::from_secs(5), self.stream.shutdown()).await;
                return Ok(Flow::Closed);
            }
        }
        Ok(Flow::Continue)
    }

    /// The session is ready for a message: send the next one, or QUIT.
    fn next_message(&mut self, out: &mut VecDeque<ClientAction>) {
        if self.current.is_none() && self.conn_secs == 0.0 {
            self.conn_secs = self.started.elapsed().as_secs_f64();
            if self.t.tls == TlsRequirement::Opportunistic
                && self.sess.extensions().starttls
                && !self.sess.tls_active()
                && !self.wrapper
            {
                // Offered, then refused (454): `may` goes on in plaintext,
                // as Postfix does; say so.
                let line = format!(
                    "host {} refused to start TLS: {}; level may: continuing without TLS",
                    self.hostaddr, self.last_reply
                );
                log::info!(target: "smtp", "{line}");
                self.d.note(line);
            }
        }
        // Next message with pending recipients.
        let jobs = self.jobs;
        // A message put on hold or deleted (`tern queue`) since the queue
        // run picked it is not sent: it gets no result, so nothing is
        // recorded for it and it stays where the administrator put it.
        let spool = self.spool;
        let queued = |id: &str| {
            spool.map_or(true, |s| {
                matches!(
                    s.location(id),
                    Some(crate::queue::QueueDir::Active | crate::queue::QueueDir::Deferred)
                )
            })
        };
        let Some(j) = (self.next_job..jobs.len())
            .find(|j| !jobs[*j].rcpts.is_empty() && queued(&jobs[*j].id))
        else {
            out.extend(self.sess.quit());
            return;
        };
        self.next_job = j + 1;
        self.current = Some(j);
        self.xfer_start = SystemTime::now();
        self.uses += 1;
        if self.uses > 1 {
            self.log_reused();
        }
        let job = &jobs[j];
        let smtputf8 = !job.sender.is_ascii() || job.rcpts.iter().any(|(_, r)| !r.is_ascii());
        out.extend(self.sess.send_message(Message {
            sender: job.sender.clone(),
            recipients: job.rcpts.iter().map(|(_, r)| r.clone()).collect(),
            size: Some(job.size),
            eight_bit: false,
            smtputf8,
        }));
    }

    /// The server's answers to one message are in.
    fn delivered(
        &mut self,
        list: &[crate::smtp::client::RcptResult],
        results: &mut DeliveryResults,
    ) {
        self.eod_sent = false;
        let Some(j) = self.current.take() else {
            return;
        };
        let done = SystemTime::now();
        let xfer = done
            .duration_since(self.xfer_start)
            .map_or(0.0, |d| d.as_secs_f64());
        for ((idx, _), r) in self.jobs[j].rcpts.iter().zip(list) {
            let kind = match r.status {
                Status::Sent => ResultKind::Sent,
                Status::Deferred => ResultKind::Deferred,
                Status::Bounced => ResultKind::Bounced,
            };
            let mut rr = if kind == ResultKind::Bounced
                && !self.sess.authenticated()
                && crate::smtp::client::auth_required(&r.reply)
            {
                // "530 5.7.0 Authentication required" to a client that
                // sent no credentials: this box's configuration is wrong,
                // not the recipient. Defer (the mail stays queued until
                // the owner fixes it) and say which setting to fix.
                let text = format!("{}; {}", r.describe(&self.hostaddr), self.no_auth_hint());
                RcptResult::new(
                    ResultKind::Deferred,
                    &self.relay,
                    &soft_dsn(&r.dsn()),
                    &text,
                )
            } else {
                RcptResult::new(kind, &self.relay, &r.dsn(), &r.describe(&self.hostaddr))
            };
            rr.remote_mta = Some(self.t.host.clone());
            // A reused connection: this message's delivery began with its
            // own transaction, set-up was free.
            if self.uses > 1 {
                rr.handoff = Some(self.xfer_start);
                rr.conn = 0.0;
            } else {
                rr.handoff = Some(self.handoff);
                rr.conn = self.conn_secs;
            }
            rr.xfer = xfer;
            rr.done = Some(done);
            rr.conn_use = self.uses;
            results.per_message[j].push((*idx, rr));
        }
        if let Some(f) = &self.d.on_delivered {
            f();
        }
        let got = &results.per_message[j];
        if let Some(f) = &self.d.on_sent {
            if got.len() == self.jobs[j].rcpts.len()
                && got.iter().all(|(_, r)| r.kind == ResultKind::Sent)
            {
                f(&self.jobs[j], got);
            }
        }
    }

    /// Why tern offered this server no credentials, naming the settings
    /// that would make it log in (the lookup keys as delivery tries them).
    fn no_auth_hint(&self) -> String {
        if self.d.credentials(&self.t.host).is_some() {
            // Withheld: the session was lowered for TLS-Required: No.
            return "tern sent no SASL credentials: the message has TLS-Required: No and its TLS security level was lowered (credentials are sent only at the route's own level)".to_string();
        }
        if !self.d.ctx.settings.sasl_auth_enable {
            return format!(
                "tern sent no SASL credentials: set smtp_sasl_auth_enable = yes and add {} to smtp_sasl_password_maps",
                self.d.dest
            );
        }
        if self.d.dest == self.t.host {
            format!(
                "tern sent no SASL credentials: smtp_sasl_password_maps has no entry for {}",
                self.t.host
            )
        } else {
            format!(
                "tern sent no SASL credentials: smtp_sasl_password_maps has no entry for {} or {}",
                self.t.host, self.d.dest
            )
        }
    }

    /// The session failed: what it means for the recipients.
    fn failed(&self, e: &ClientError, results: &mut DeliveryResults) -> HostFailure {
        // A rejected login is the sender's configuration (or the server's
        // passwd file) going wrong, not the recipient: defer, like
        // Postfix's default `smtp_sasl_auth_soft_bounce = yes` (5.x.x ->
        // 4.x.x).
        // With `smtp_sasl_auth_soft_bounce = no` a 5xx bounces, as in
        // Postfix.
        let soft_auth =
            matches!(e, ClientError::Auth(_)) && self.d.ctx.settings.sasl_auth_soft_bounce;
        let permanent = e.is_permanent() && !soft_auth;
        let dsn = match e {
            ClientError::TlsNotOffered
            | ClientError::StartTlsRefused(_)
            | ClientError::TlsHandshake => "4.7.5".to_string(),
            ClientError::Auth(r) if soft_auth => soft_dsn(&r.dsn().to_string()),
            ClientError::Auth(r) => r.dsn().to_string(),
            ClientError::Helo(r) | ClientError::Greeting(r) => r.dsn().to_string(),
            _ if permanent => "5.5.0".into(),
            _ => "4.4.2".into(),
        };
        // TLS was required and the server did not offer STARTTLS, or
        // refused it: RFC 8460's starttls-not-supported (Postfix 3.10's
        // smtp_proto.c reports both).
        let not_supported = match e {
            ClientError::TlsNotOffered => Some("STARTTLS not offered".to_string()),
            ClientError::StartTlsRefused(r) => Some(format!("STARTTLS refused: {}", r.one_line())),
            _ => None,
        };
        if let Some(reason) = not_supported {
            results.tls_attempts.push(self.attempt(
                TlsOutcome::Failure {
                    kind: FailureKind::StarttlsNotSupported,
                    reason,
                },
                None,
            ));
        }
        HostFailure {
            text: e.describe(&self.hostaddr),
            dsn,
            permanent,
            reached: true,
            tls: false,
        }
    }

    /// The report record of a TLS attempt on this connection; `code` is
    /// the failure in Postfix 3.10's TLSRPT words
    /// ([`crate::tls::verify::reason`]). The TLSRPT record is attached by
    /// the driver once the run is over.
    fn attempt(&self, outcome: TlsOutcome, code: Option<&'static str>) -> TlsAttempt {
        TlsAttempt {
            policy: self.t.policy.clone(),
            level: self.t.level,
            host: self.t.host.clone(),
            addr: self.t.addr,
            port: self.t.port,
            helo: self.helo.clone(),
            sending_ip: self.sending_ip,
            reused: self.uses > 0,
            outcome,
            failure_code: code,
            tlsrpt: None,
        }
    }

    /// Postfix's `Verified TLS connection reused to host[addr]:25: ...` (or
    /// `Trusted`, `Untrusted`) for a message after the first on a TLS
    /// connection: smtp_session.c logs it whatever `smtp_tls_loglevel`
    /// says. The connection's one handshake was reported already (one
    /// TLSRPT event per new connection), so nothing goes to the reports.
    fn log_reused(&self) {
        if !self.sess.tls_active() {
            return;
        }
        if let Some(s) = self.stream.tls_summary() {
            let t = self.t;
            let trust = self.tls.verifier.trust();
            log::info!(target: "smtp", "{}", s.client_log_reused(trust, &t.host, t.addr, t.port));
        }
    }

    /// A completed handshake: Postfix's `... TLS connection established
    /// to ...` line, and how DANE matched.
    fn established(&mut self, trust: crate::tls::Trust, results: &mut DeliveryResults) {
        let t = self.t;
        let hostaddr = &self.hostaddr;
        let loglevel = self.d.ctx.settings.tls_loglevel;
        if let Some(s) = self.stream.tls_summary() {
            let line = s.client_log(trust, &t.host, t.addr, t.port).to_string();
            if loglevel > 0 {
                log::info!(target: "smtp", "{line}");
            }
            results.tls_established.push(line);
        }
        let Some(m) = self.tls.verifier.dane_match() else {
            return;
        };
        // Postfix logs match details only at smtp_tls_loglevel 2.
        if loglevel >= 2 {
            log::info!(target: "smtp", "{}", m.postfix_log_line(&format!("{hostaddr}:{}", t.port)));
        }
        self.d.note(match &m {
            crate::tls::dane::DaneMatch::EndEntity { record } => {
                format!("{hostaddr}: DANE matched {record} (DANE-EE, leaf certificate)")
            }
            crate::tls::dane::DaneMatch::TrustAnchor {
                record,
                depth,
                name,
                ..
            } => format!(
                "{hostaddr}: DANE matched {record} (DANE-TA at depth {}, name {name})",
                depth.map_or("outside the chain".to_string(), |d| d.to_string())
            ),
        });
    }

    /// The TLS handshake (`implicit`, or after STARTTLS), judged by the
    /// target's verifier and recorded as a [`TlsAttempt`].
    async fn handshake(
        &mut self,
        results: &mut DeliveryResults,
        implicit: bool,
    ) -> Result<(), HostFailure> {
        let limit = self.d.ctx.settings.helo_timeout;
        let r = timeout(
            limit,
            self.stream
                .start_tls_client(self.tls.config.clone(), self.tls.server_name.clone()),
        )
        .await;
        // A cleartext SMTP reply where the ServerHello belonged: the port
        // speaks plain SMTP (STARTTLS), not implicit TLS.
        let cleartext = match &r {
            Some(Err(_)) if implicit => {
                crate::tls::words::cleartext_reply(self.stream.handshake_prefix())
            }
            _ => None,
        };
        let err: Option<String> = match (&r, &cleartext) {
            (Some(Ok(())), _) => None,
            (Some(Err(_)), Some(reply)) => Some(format!(
                "the server sent a cleartext SMTP greeting \"{reply}\" where a TLS handshake \
                 was expected"
            )),
            (Some(Err(e)), None) => Some(crate::tls::words::describe_io(e)),
            (None, _) => Some("handshake timed out".into()),
        };
        let verifier = &self.tls.verifier;
        let outcome = verifier.outcome(err.as_ref().map(|e| e as &dyn std::fmt::Display));
        if self.d.probing {
            if let Ok(c) = self.tls.recorder.chain.lock() {
                results.peer_chain = c.clone();
            }
        }
        // Postfix's words for TLSRPT: the verifier's, else a failed
        // handshake's (tls_client.c: "tls-handshake-failure").
        // A certificate the verifier refused also fails the handshake:
        // only a failure the verifier did not record is the handshake's.
        let verifier_failed = matches!(verifier.outcome(None), TlsOutcome::Failure { .. });
        let code = match &outcome {
            TlsOutcome::Success(_) => None,
            TlsOutcome::Failure { .. } if verifier_failed => verifier.failure_code(),
            TlsOutcome::Failure { .. } => err
                .is_some()
                .then_some(crate::tls::verify::reason::HANDSHAKE),
        };
        results
            .tls_attempts
            .push(self.attempt(outcome.clone(), code));
        let t = self.t;
        let hostaddr = &self.hostaddr;
        let failure = |text: String| HostFailure {
            text,
            dsn: "4.7.5".into(),
            permanent: false,
            reached: true,
            tls: true,
        };
        match (err, outcome) {
            (None, TlsOutcome::Success(trust)) => {
                self.established(trust, results);
                Ok(())
            }
            (None, TlsOutcome::Failure { kind, reason }) if !t.enforce => {
                // An MTA-STS `testing` policy: verified and reported, not
                // enforced (RFC 8461 §5).
                log::info!(
                    target: "smtp",
                    "{hostaddr}:{}: MTA-STS policy (mode testing) not satisfied: {reason} ({}); delivering anyway",
                    t.port,
                    kind.as_str()
                );
                let trust = self.tls.verifier.trust();
                self.established(trust, results);
                Ok(())
            }
            (_, TlsOutcome::Failure { kind, reason })
                if matches!(t.level, Level::Dane | Level::DaneOnly) =>
            {
                // DANE's texts are decided with the DANE step.
                Err(failure(match kind {
                    FailureKind::ValidationFailure => {
                        format!("Cannot start TLS: handshake failure with {hostaddr}: {reason}")
                    }
                    _ => format!(
                        "Server certificate not verified: {hostaddr}: {reason} ({})",
                        kind.as_str()
                    ),
                }))
            }
            (_, TlsOutcome::Failure { kind, reason }) if cleartext.is_some() => {
                log_tls_failure(kind, &format!("{hostaddr}:{}", t.port), &reason);
                // Postfix's text first, so that log summaries group it;
                // then what to change.
                let hint = if t.port == 465 {
                    "tern always uses implicit TLS on port 465; relay to the server's \
                     STARTTLS port (587 or 25) instead"
                } else {
                    "this port speaks STARTTLS, not implicit TLS: set smtp_tls_wrappermode = no \
                     (or use an smtp: transport) for it"
                };
                Err(failure(format!(
                    "{} ({reason} from {hostaddr}:{}: {hint})",
                    tls_failure_text(kind),
                    t.port
                )))
            }
            (_, TlsOutcome::Failure { kind, reason }) => {
                log_tls_failure(kind, &format!("{hostaddr}:{}", t.port), &reason);
                Err(failure(tls_failure_text(kind).into()))
            }
            (Some(e), TlsOutcome::Success(_)) => {
                let kind = FailureKind::ValidationFailure;
                log_tls_failure(kind, &format!("{hostaddr}:{}", t.port), &e);
                Err(failure(tls_failure_text(kind).into()))
            }
        }
    }
}

/// The name a server gives in its greeting (`220 mx.example.com ESMTP`).
fn greeting_name(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"220")?;
    let rest = rest
        .strip_prefix(b" ")
        .or_else(|| rest.strip_prefix(b"-"))?;
    let name = rest.split(|b| *b == b' ').next()?;
    (!name.is_empty() && name.is_ascii()).then(|| String::from_utf8_lossy(name).into_owned())
}

/// A slot of the buffer pool and a TCP connection to the target.
async fn connect(d: &Delivery, t: &Target, hostaddr: &str) -> Result<Stream, HostFailure> {
    let Some(slot) = d.ctx.pool.acquire() else {
        return Err(HostFailure {
            text: "too many connections in use; trying later".into(),
            dsn: "4.3.2".into(),
            permanent: false,
            reached: true,
            tls: false,
        });
    };
    let io_fail = |e: &dyn std::fmt::Display| {
        HostFailure::soft(format!("connect to {hostaddr}:{}: {e}", t.port), "4.4.1")
    };
    let addr = SocketAddr::new(t.addr, t.port);
    let tcp = match timeout(
        d.ctx.settings.connect_timeout,
        Async::<TcpStream>::connect(addr),
    )
    .await
    {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(io_fail(&os_text(&e))),
        None => return Err(io_fail(&"Connection timed out")),
    };
    // No Nagle: the body and the end-of-data dot are separate writes, and
    // with Nagle the dot waited for the ACK of the body, which the server
    // delays (~40 ms on Linux): every message took 40 ms more on the wire,
    // capping 20 sessions at ~400 msg/s. Replies and commands are whole
    // writes already, so this adds no tiny packets.
    if let Err(e) = tcp.get_ref().set_nodelay(true) {
        log::debug!(target: "smtp", "{hostaddr}: TCP_NODELAY: {e}");
    }
    Ok(Stream::new(tcp, slot))
}

/// The rustls configuration, verifier and server name for the target.
fn tls_setup(
    d: &Delivery,
    t: &Target,
    policy: &EffectivePolicy<'_>,
) -> Result<TlsSetup, HostFailure> {
    let verifier = TernVerifier::new(
        t.verify.clone(),
        d.roots_for(policy, t.level),
        d.ctx.tls.provider.clone(),
    );
    let recorder = Arc::new(ChainRecorder {
        inner: verifier.clone(),
        chain: std::sync::Mutex::new(Vec::new()),
    });
    let cert_verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if d.probing {
        recorder.clone()
    } else {
        verifier.clone()
    };
    // protocols= / smtp_tls_(mandatory_)protocols, ciphers= /
    // smtp_tls_(mandatory_)ciphers and exclude= /
    // smtp_tls_(mandatory_)exclude_ciphers, for the level this connection
    // runs at (DANE may have lowered it).
    let versions = policy.protocols_at(t.level);
    let excluded = policy.excluded_suites_at(t.level);
    // Refused at load; checked again so that no path offers a grade tern
    // cannot meet.
    let grade = policy.cipher_grade_at(t.level);
    if let Err(e) = crate::policy::ciphers::check_grade(grade) {
        return Err(HostFailure::soft(
            format!("TLS client configuration: {e}"),
            "4.7.5",
        ));
    }
    let limits = crate::tls::server_config::ClientLimits {
        tls12: versions.tls12(),
        tls13: versions.tls13(),
        exclude: d
            .ctx
            .tls
            .provider
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .filter(|s| excluded.excludes(*s))
            .collect(),
    };
    let config =
        crate::tls::server_config::build_client_config_with(&d.ctx.tls, cert_verifier, &limits)
            .map_err(|e| {
                HostFailure::soft(
                    format!("TLS client configuration (protocols {versions}): {e}"),
                    "4.7.5",
                )
            })?;
    let sni_name = match &t.sni {
        Some(s) => s.clone(),
        None => policy.sni(&t.host).unwrap_or(&t.host).to_string(),
    };
    let server_name = match t.addr.to_string() == t.host {
        true => ServerName::IpAddress(t.addr.into()),
        false => ServerName::try_from(sni_name).unwrap_or(ServerName::IpAddress(t.addr.into())),
    };
    Ok(TlsSetup {
        config,
        server_name,
        verifier,
        recorder,
    })
}

/// Reads the queue file body and sends it dot-stuffed, CRLF only, lines
/// longer than `line_limit` (`smtp_line_length_limit`) broken with
/// `CRLF SPACE` as Postfix does.
async fn send_body(
    spool: &Spool,
    id: &str,
    stream: &mut Stream,
    limit: Duration,
    line_limit: usize,
) -> Result<(), String> {
    let mut reader = spool
        .open_message(id)
        .map_err(|e| format!("cannot read queue file {id}: {e}"))?;
    let mut stuffer = DotStuffer::with_line_limit(line_limit);
    let mut inbuf = [0u8; BODY_BUF];
    let mut outbuf = [0u8; BODY_BUF * 2 + 8];
    loop {
        let n = reader
            .read(&mut inbuf)
            .map_err(|e| format!("cannot read queue file {id}: {e}"))?;
        if n == 0 {
            break;
        }
        let mut off = 0;
        while off < n {
            let (used, written) = stuffer.feed(&inbuf[off..n], &mut outbuf);
            off += used;
            if timeout(limit, stream.write_all(&outbuf[..written]))
                .await
                .and_then(Result::ok)
                .is_none()
            {
                return Err("lost connection while sending message body".into());
            }
            if used == 0 && written == 0 {
                return Err("internal error: body encoder made no progress".into());
            }
        }
    }
    let end = stuffer.finish();
    if timeout(limit, stream.write_all(&end))
        .await
        .and_then(Result::ok)
        .is_none()
    {
        return Err("lost connection while sending end of data".into());
    }
    Ok(())
}

/// An I/O error as Postfix words it: the strerror text alone, without
/// Rust's ` (os error N)` suffix, so log readers see Postfix's reasons.
fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}

/// A `5.x.y` enhanced status turned into `4.x.y` (soft bounce).
fn soft_dsn(dsn: &str) -> String {
    match dsn.strip_prefix('5') {
        Some(rest) => format!("4{rest}"),
        None => dsn.to_string(),
    }
}

/// Runs `fut` with a time limit; None on timeout.
async fn timeout<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(fut.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

/// The deferral reason for a failed TLS session outside DANE, exactly as
/// Postfix's smtp_start_tls() words it, so that log summaries (pflogsumm's
/// per-reason counts) group tern's lines as they group Postfix's: the
/// handshake failed; the chain did not lead to a trust anchor (or, at
/// `fingerprint`, no fingerprint matched: Postfix sets trust and match
/// together there); or no certificate name matched. The detail goes to the
/// separate line of [`log_tls_failure`].
pub fn tls_failure_text(kind: FailureKind) -> &'static str {
    use FailureKind as K;
    match kind {
        K::CertificateNotTrusted
        | K::CertificateExpired
        | K::TlsaInvalid
        | K::DnssecInvalid
        | K::DaneRequired
        | K::StsWebpkiInvalid
        | K::StsPolicyInvalid
        | K::StsPolicyFetchError => "Server certificate not trusted",
        K::CertificateHostMismatch => "Server certificate not verified",
        K::ValidationFailure | K::StarttlsNotSupported => "Cannot start TLS: handshake failure",
    }
}

/// Logs what went wrong in a failed TLS session, in the shape of the line
/// Postfix's TLS library writes before the deferral (`SSL_connect error to
/// host[addr]:port: ...` for a failed handshake, `server certificate
/// verification failed for host[addr]:port: ...` for a refused
/// certificate), with tern's reason and the RFC 8460 result type.
fn log_tls_failure(kind: FailureKind, namaddrport: &str, reason: &dyn std::fmt::Display) {
    use FailureKind as K;
    match kind {
        K::ValidationFailure | K::StarttlsNotSupported => {
            log::info!(target: "smtp", "SSL_connect error to {namaddrport}: {reason}")
        }
        _ => log::info!(
            target: "smtp",
            "server certificate verification failed for {namaddrport}: {reason} ({})",
            kind.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failure_texts_are_postfixs() {
        use FailureKind as K;
        // smtp_proto.c, smtp_start_tls(): the three texts, nothing appended.
        assert_eq!(
            tls_failure_text(K::ValidationFailure),
            "Cannot start TLS: handshake failure"
        );
        assert_eq!(
            tls_failure_text(K::CertificateNotTrusted),
            "Server certificate not trusted"
        );
        assert_eq!(
            tls_failure_text(K::CertificateExpired),
            "Server certificate not trusted"
        );
        assert_eq!(
            tls_failure_text(K::CertificateHostMismatch),
            "Server certificate not verified"
        );
    }

    #[test]
    fn strerror_only() {
        let e = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(os_text(&e), "Connection refused");
        let e = std::io::Error::other("odd (os error 1)");
        assert_eq!(os_text(&e), "odd (os error 1)");
    }

    #[test]
    fn soft_bounce_dsn() {
        assert_eq!(soft_dsn("5.7.8"), "4.7.8");
        assert_eq!(soft_dsn("4.7.0"), "4.7.0");
    }

    #[test]
    fn greeting_names() {
        assert_eq!(
            greeting_name(b"220 mx.example.com ESMTP Postfix").as_deref(),
            Some("mx.example.com")
        );
        assert_eq!(
            greeting_name(b"220-mx.example.com hello").as_deref(),
            Some("mx.example.com")
        );
        assert_eq!(greeting_name(b"250 mx.example.com"), None);
        assert_eq!(greeting_name(b"220 "), None);
    }
}
