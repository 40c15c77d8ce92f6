//! One inbound SMTP connection: runs an `smtp::server::Session` over a
//! `tls::Stream`, with fixed buffers, timeouts and the spool.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::Async;

use crate::cleanup;
use crate::queue::{Flags, NewMessage};
use crate::smtp::command::Path;
use crate::smtp::data::DataEnd;
use crate::smtp::line::LineSplitter;
use crate::smtp::server::{
    Action, Actions, AuthMechanism, EndReason, Event, RcptClass, ServerParams, Session,
};
use crate::tls::{InboundSlot, Stream};

use super::listen::Service;
use super::Shared;

/// Bytes for one command line plus its CRLF; `line_length_limit` may not
/// exceed this (a check-config error otherwise). The buffer is the
/// session's share of the start-up pool ([`crate::tls::pool::LINE_LEN`]),
/// not part of the session's future.
pub const LINE_BUF: usize = crate::tls::pool::LINE_LEN;
/// DATA is decoded through this buffer into the spool writer (which has
/// its own 8 KiB buffer); the decoder simply loops. Also from the pool
/// ([`crate::tls::pool::DATA_LEN`]).
pub const DATA_BUF: usize = crate::tls::pool::DATA_LEN;

/// Why a session ended early, for Postfix's `lost connection after X` /
/// `timeout after X` lines (the session knows X, and its own reasons: the
/// timeout reply and the error limit).
enum Ended {
    Normal,
    Lost,
    Timeout,
    /// The line buffer filled up without a complete line (tern's own
    /// `line too long after X` wording; Postfix has no such line).
    TooLong,
    /// Closed by tern before the greeting (already logged).
    Refused,
}

/// Runs one connection to its end. Never panics on client input; every
/// failure ends in a log line.
pub async fn run(
    shared: Rc<Shared>,
    service: Service,
    tcp: Async<TcpStream>,
    peer: SocketAddr,
    slot: InboundSlot,
    ticket: super::guard::Ticket,
) {
    // Counted while open: the committer waits a little for the other open
    // sessions before a slow sync (see GroupCommit::run).
    let _open = shared.committer.session();
    let InboundSlot { tls: slot, command } = slot;
    // The command buffers live in the pool; the future holds two pointers.
    let mut command = command;
    let bufs = command.buffers();
    let line_buf: &mut [u8; LINE_BUF] = bufs.line;
    let data_buf: &mut [u8; DATA_BUF] = bufs.data;
    let addr = peer.ip();
    let host = client_name(addr);
    let addr_s = addr.to_string();
    let client = format!("{host}[{addr_s}]");
    log::info!(target: "smtpd", "connect from {client}");
    let guard = ticket.guard().clone();
    let mut params = shared.server_params(service, addr);
    if guard.stressed(&shared) {
        // Postfix 3.9: smtpd_hard_error_limit = ${stress?{1}:{20}} and
        // smtpd_junk_command_limit = ${stress?{1}:{100}}, for sessions
        // that start under stress.
        params.hard_error_limit = params.hard_error_limit.min(shared.stress_hard_error_limit);
        params.junk_command_limit = params.junk_command_limit.min(1);
    }
    let mut sess = Session::new(params);
    // Postfix: a client that talks before the greeting is logged as
    // `improper command pipelining after CONNECT`. Only peeked (the bytes
    // stay for the splitter); implicit TLS starts with the client's hello.
    if service != Service::Submissions {
        let mut early = [0u8; 100];
        if let Ok(n) = tcp.get_ref().peek(&mut early) {
            let pending = early.get(..n).unwrap_or(&[]);
            if let Some(l) = sess.improper_pipelining_at_connect(pending, &client) {
                log::info!(target: "smtpd", "{l}");
            }
        }
    }
    let mut stream = Stream::new(tcp, slot);
    let deadline = Instant::now() + shared.total_time_limit;
    // Body bytes received in the current DATA, for `after DATA (N bytes)`.
    let data_bytes = Cell::new(0u64);
    // The mechanism of the successful AUTH, for `sasl_method=`.
    let sasl = Cell::new(None);

    // Every path below ends in the disconnect line, as in Postfix, also
    // when the implicit-TLS handshake fails or times out.
    let mut ended = Ended::Normal;
    if service == Service::Submissions {
        ended = match shared.tls_mandatory.clone() {
            // Refused at start-up (Shared::from_config); kept for safety.
            None => {
                log::warn!(target: "smtpd", "warning: submissions listener without a certificate; closing {host}[{addr_s}]");
                Ended::Refused
            }
            Some(tls) => {
                // The handshake is one record for stress mode's deadline.
                let (idle, until) = guard.read_limits(&shared, Instant::now(), deadline);
                match with_timeout(idle, until, stream.start_tls_server(tls)).await {
                    Some(Ok(())) => {
                        log_tls(&shared, &stream, &host, addr);
                        Ended::Normal
                    }
                    Some(Err(e)) => {
                        log::info!(
                            target: "smtpd",
                            "SSL_accept error from {host}[{addr_s}]: {}",
                            crate::tls::words::describe_accept_io(&e)
                        );
                        Ended::Lost
                    }
                    None => Ended::Timeout,
                }
            }
        };
    }

    let mut splitter = LineSplitter::new(shared.line_limit, shared.bare_newline);
    if matches!(ended, Ended::Normal) {
        let greeting = sess.greeting();
        if let Err(e) = perform(
            &shared,
            &mut stream,
            &mut sess,
            &mut splitter,
            line_buf,
            data_buf,
            greeting,
            &host,
            addr,
            deadline,
            &sasl,
            &data_bytes,
            &ticket,
        )
        .await
        {
            ended = e;
        }
    }

    // When the client began the command line now awaited: in stress mode
    // the whole line must arrive within smtpd_stress_timeout
    // (smtpd_per_record_deadline), so a client dripping a byte at a time
    // cannot hold its slot.
    let mut record_start = Instant::now();
    while matches!(ended, Ended::Normal) && !sess.is_closed() {
        // Take every complete line already buffered (PIPELINING).
        let mut progressed = false;
        while sess.wants_line() && !sess.is_closed() {
            // After a line error the session decides (reply or close); the
            // rest of the buffer waits for the next read.
            let mut stop = false;
            let acts = match splitter.next_line(line_buf) {
                None => break,
                Some(Err(e)) => {
                    stop = true;
                    sess.line_error(e)
                }
                Some(Ok(line)) => {
                    if sess.checks_pipelining(line) {
                        // Postfix looks at its buffer and then the kernel's;
                        // over TLS the kernel holds records, not commands.
                        let mut peeked = [0u8; 100];
                        let buffered = splitter.buffered(line_buf);
                        let pending = if !buffered.is_empty() {
                            buffered
                        } else if !stream.is_tls() {
                            let n = stream.tcp().get_ref().peek(&mut peeked).unwrap_or(0);
                            peeked.get(..n).unwrap_or(&[])
                        } else {
                            &[]
                        };
                        if let Some(l) = sess.improper_pipelining(line, pending, &client) {
                            log::info!(target: "smtpd", "{l}");
                        }
                    }
                    let acts = sess.line(
                        line,
                        &mut super::Checks {
                            shared: &shared,
                            ticket: &ticket,
                            client: &client,
                        },
                    );
                    if let Some(l) = sess.take_reject_log(&client) {
                        log::info!(target: "smtpd", "{l}");
                    }
                    acts
                }
            };
            progressed = true;
            if let Err(e) = perform(
                &shared,
                &mut stream,
                &mut sess,
                &mut splitter,
                line_buf,
                data_buf,
                acts,
                &host,
                addr,
                deadline,
                &sasl,
                &data_bytes,
                &ticket,
            )
            .await
            {
                ended = e;
                break;
            }
            if stop {
                break;
            }
        }
        if !matches!(ended, Ended::Normal) || sess.is_closed() {
            break;
        }
        if progressed {
            record_start = Instant::now();
            if splitter.buffered(line_buf).contains(&b'\n') {
                continue;
            }
        }
        // Need more input.
        let spare = splitter.spare(line_buf);
        if spare.is_empty() {
            ended = Ended::TooLong;
            break;
        }
        let (idle, until) = guard.read_limits(&shared, record_start, deadline);
        match with_timeout(idle, until, stream.read(spare)).await {
            Some(Ok(0)) | Some(Err(_)) => ended = Ended::Lost,
            Some(Ok(n)) => splitter.filled(LINE_BUF, n),
            None => {
                let acts = sess.event(Event::Timeout);
                let _ = perform(
                    &shared,
                    &mut stream,
                    &mut sess,
                    &mut splitter,
                    line_buf,
                    data_buf,
                    acts,
                    &host,
                    addr,
                    deadline,
                    &sasl,
                    &data_bytes,
                    &ticket,
                )
                .await;
                ended = Ended::Timeout;
            }
        }
    }
    // The session's own reason (its 421 for a timeout or too many errors)
    // wins over what the driver saw afterwards (the client hanging up).
    let reason = sess.end_reason().or(match ended {
        Ended::Normal | Ended::Refused => None,
        Ended::Lost => Some(EndReason::LostConnection),
        Ended::Timeout => Some(EndReason::Timeout),
        Ended::TooLong => {
            let w = sess.where_now();
            log::info!(target: "smtpd", "line too long after {w} from {client}");
            None
        }
    });
    if let Some(line) = reason.and_then(|r| sess.end_line(r, data_bytes.get(), &client)) {
        log::info!(target: "smtpd", "{line}");
    }
    let _ = with_timeout(
        Duration::from_secs(5),
        deadline + Duration::from_secs(5),
        stream.shutdown(),
    )
    .await;
    log::info!(target: "smtpd", "{}", sess.disconnect_line(&host, &addr_s));
    // The slot goes back now, so the end of stress mode is seen (and
    // logged) when the last sessions leave, not at the next client.
    drop(stream);
    drop(command);
    let _ = guard.stressed(&shared);
}

/// Carries out the session's actions in order. Errors end the session.
#[allow(clippy::too_many_arguments)]
async fn perform(
    shared: &Rc<Shared>,
    stream: &mut Stream,
    sess: &mut Session,
    splitter: &mut LineSplitter,
    line_buf: &mut [u8; LINE_BUF],
    data_buf: &mut [u8; DATA_BUF],
    actions: Actions,
    host: &str,
    addr: IpAddr,
    deadline: Instant,
    sasl: &Cell<Option<AuthMechanism>>,
    data_bytes: &Cell<u64>,
    ticket: &super::guard::Ticket,
) -> Result<(), Ended> {
    let mut queue: Vec<Action> = actions.into_iter().collect();
    let mut i = 0;
    while i < queue.len() {
        let act = queue[i].clone();
        i += 1;
        let follow: Option<Actions> = match act {
            Action::Send(reply) => {
                match with_timeout(shared.timeout, deadline, stream.write_all(reply.as_bytes()))
                    .await
                {
                    Some(Ok(())) => None,
                    Some(Err(_)) => return Err(Ended::Lost),
                    None => return Err(Ended::Timeout),
                }
            }
            Action::Pause(secs) => {
                smol::Timer::after(Duration::from_secs(u64::from(secs))).await;
                None
            }
            Action::Close => return Ok(()),
            Action::StartTls => {
                // CVE-2011-0411: nothing the client pipelined after STARTTLS
                // may be read as if it had come over TLS.
                splitter.discard();
                // Postfix: the mandatory protocols where TLS is enforced.
                let tls = if shared.params.tls_required {
                    shared.tls_mandatory.clone()
                } else {
                    shared.tls.clone()
                };
                let Some(tls) = tls else {
                    return Err(Ended::Lost);
                };
                match with_timeout(shared.timeout, deadline, stream.start_tls_server(tls)).await {
                    Some(Ok(())) => {
                        log_tls(shared, stream, host, addr);
                        Some(sess.event(Event::TlsEstablished))
                    }
                    Some(Err(e)) => {
                        log::info!(
                            target: "smtpd",
                            "SSL_accept error from {host}[{addr}]: {}",
                            crate::tls::words::describe_accept_io(&e)
                        );
                        let _ = sess.event(Event::TlsFailed);
                        return Err(Ended::Lost);
                    }
                    None => return Err(Ended::Timeout),
                }
            }
            Action::CheckAuth(req) if !ticket.take_check(shared) => {
                log::warn!(target: "smtpd", "warning: {host}[{addr}]: SASL {} authentication deferred: password checks per second (smtpd_auth_check_rate_limit = {}) used up, sasl_username={}", mech_name(req.mechanism), shared.limits.auth_checks_per_second, req.user);
                Some(sess.event(Event::AuthTempFail))
            }
            Action::CheckAuth(req) => {
                let ok = shared
                    .passwords
                    .as_ref()
                    .is_some_and(|p| p.verify(&req.user, req.password.as_bytes()));
                if ok {
                    sasl.set(Some(req.mechanism));
                } else {
                    // Postfix: "warning: host[addr]: SASL LOGIN authentication failed: ..."
                    log::warn!(target: "smtpd", "warning: {host}[{addr}]: SASL {} authentication failed: authentication failure, sasl_username={}", mech_name(req.mechanism), req.user);
                    // A timer, not a sleep: only this session waits.
                    let wait = ticket.auth_failed(shared);
                    if !wait.is_zero() {
                        smol::Timer::after(wait).await;
                    }
                }
                Some(sess.event(Event::AuthVerdict(ok)))
            }
            Action::BeginData => Some(
                receive_data(
                    shared, stream, sess, splitter, line_buf, data_buf, host, addr, deadline, sasl,
                    data_bytes, ticket,
                )
                .await?,
            ),
        };
        if let Some(more) = follow {
            queue.extend(more);
        }
    }
    Ok(())
}

/// Streams the body into the spool and commits it (group commit); returns
/// the session's reaction to the outcome.
#[allow(clippy::too_many_arguments)]
async fn receive_data(
    shared: &Rc<Shared>,
    stream: &mut Stream,
    sess: &mut Session,
    splitter: &mut LineSplitter,
    line_buf: &mut [u8; LINE_BUF],
    data_buf: &mut [u8; DATA_BUF],
    host: &str,
    addr: IpAddr,
    deadline: Instant,
    sasl: &Cell<Option<AuthMechanism>>,
    data_bytes: &Cell<u64>,
    ticket: &super::guard::Ticket,
) -> Result<Actions, Ended> {
    let client = format!("{host}[{addr}]");
    // Rewriting at queue entry is cleanup's. The session's envelope is
    // only borrowed here: the spool's recipient list is the one copy made
    // (no clone of the whole envelope).
    let cleanup::smtp::Envelope {
        sender,
        recipients,
        rewrites,
        single_recipient,
    } = {
        let Some(env) = sess.envelope() else {
            return Ok(sess.event(Event::CommitFailed));
        };
        cleanup::smtp::Envelope::rewrite(&shared.rewrite, &env.sender, &env.recipients)
    };
    let now = crate::queue::clock::now();
    // With room for the `tls-required-no` flag: the header that may ask
    // for it arrives after the envelope is written.
    let mut incoming = shared
        .spool
        .create_with_flag_slot(&NewMessage {
            sender: &sender,
            recipients: &recipients,
            arrival: now,
            client: &client,
            flags: Flags::default(),
            size_limit: 0,
            deferred: false,
        })
        .map_err(|e| {
            log::error!(target: "smtpd", "cannot create queue file: {e}");
        })
        .ok();
    // The envelope is in the queue file now; keep only the count while the
    // body streams.
    let nrcpt = recipients.len();
    drop(recipients);
    // Headers too are rewritten and completed for the clients that
    // `local_header_rewrite_clients` names (Postfix's default: this host's
    // own addresses), as for `sendmail`.
    let rewrite_headers = shared.header_clients.matches(
        addr,
        |a| shared.interfaces.contains(&a),
        shared.mynetworks.iter().any(|n| n.contains(addr)),
        sess.auth_user().is_some(),
    );
    let mut message = None;
    if let Some(inc) = incoming.as_mut() {
        match sess.auth_user() {
            Some(u) => {
                let m = sasl.get().map_or("PLAIN", mech_name);
                log::info!(target: "smtpd", "{}: client={client}, sasl_method={m}, sasl_username={u}", inc.id())
            }
            None => log::info!(target: "smtpd", "{}: client={client}", inc.id()),
        }
        let tls_comment = stream.tls_summary().map(|s| {
            let c = s.received_comment().to_string();
            // Postfix folds the comment before "key-exchange" and
            // "client-signature".
            let c = c.replacen(" key-exchange", "\n key-exchange", 1).replacen(
                " client-signature",
                "\n client-signature",
                1,
            );
            format!("{c}\n{}", s.client_cert_comment(shared.ask_ccert))
        });
        let addr_s = addr.to_string();
        let id = inc.id().to_string();
        // Also logs the envelope rewrites: the rewrite list is not held
        // while the body streams.
        match cleanup::smtp::Message::start(
            cleanup::smtp::Host {
                hostname: &shared.hostname,
                mail_name: &shared.mail_name,
                rewrite: &shared.rewrite,
            },
            &cleanup::smtp::Client {
                helo: sess.helo_name(),
                name: host,
                addr: &addr_s,
                tls: if shared.received_tls {
                    tls_comment.as_deref()
                } else {
                    None
                },
                protocol: sess.protocol(),
                rewrite_headers,
            },
            &sender,
            single_recipient.as_deref(),
            rewrites,
            &id,
            now,
            inc,
        ) {
            Ok(m) => message = Some(m),
            Err(e) => log::error!(target: "smtpd", "{id}: cannot write queue file: {e}"),
        }
    }
    if message.is_none() {
        incoming = None;
    }
    let mut reader = sess.data_reader();
    let out = data_buf;
    // Postfix counts the body lines received (with their line ends); a
    // partial last line is not counted.
    let mut seen = 0u64;
    data_bytes.set(0);
    let guard = ticket.guard();
    let mut record_start = Instant::now();
    let outcome = loop {
        let input = splitter.buffered(line_buf);
        if !input.is_empty() {
            let feed = reader.feed(input, out);
            let taken = input.get(..feed.consumed).unwrap_or(input);
            if let Some(lf) = taken.iter().rposition(|&b| b == b'\n') {
                data_bytes.set(seen + lf as u64 + 1);
            }
            if taken.contains(&b'\n') {
                // A line of the body is a record for stress mode.
                record_start = Instant::now();
            }
            seen += taken.len() as u64;
            splitter.consume(feed.consumed);
            if let (Some(inc), Some(m)) = (incoming.as_mut(), message.as_mut()) {
                if !reader.too_big() {
                    if let Err(e) = m.write(&out[..feed.written], inc) {
                        log::error!(target: "smtpd", "{}: cannot write queue file: {e}", inc.id());
                        incoming = None;
                    }
                }
            }
            if let Some(end) = feed.end {
                break end;
            }
            continue;
        }
        let spare = splitter.spare(line_buf);
        let (idle, until) = guard.read_limits(shared, record_start, deadline);
        match with_timeout(idle, until, stream.read(spare)).await {
            Some(Ok(0)) | Some(Err(_)) => return Err(Ended::Lost),
            Some(Ok(n)) => splitter.filled(LINE_BUF, n),
            // Postfix answers 421 in the body too; the queue file is
            // dropped with `incoming`.
            None => return Ok(sess.event(Event::Timeout)),
        }
    };
    if let (DataEnd::Complete { .. }, Some(m), Some(inc)) =
        (&outcome, message.as_mut(), incoming.as_mut())
    {
        if let Err(e) = m.finish(inc) {
            log::error!(target: "smtpd", "{}: cannot write queue file: {e}", inc.id());
            incoming = None;
        } else if m.tls_required_no() {
            // RFC 8689 §5: the envelope's flag, in the slot reserved at
            // create (the header came after the envelope was written).
            inc.set_tls_required_no();
        }
    }
    match outcome {
        DataEnd::BareLf { .. } => Ok(sess.event(Event::DataBareLf)),
        DataEnd::TooBig { .. } => {
            if let (Some(_), Some(m)) = (&incoming, &message) {
                m.reject_too_big(&client);
            }
            drop(incoming);
            Ok(sess.event(Event::DataTooBig))
        }
        DataEnd::Complete { .. } => {
            let Some(inc) = incoming else {
                return Ok(sess.event(Event::CommitFailed));
            };
            let size = inc.size();
            match shared.committer.commit(inc).await {
                Ok(id) => {
                    cleanup::log_queued(&id, &sender, size, nrcpt);
                    shared.new_mail(&id);
                    Ok(sess.event(Event::Committed(&id)))
                }
                Err(e) => {
                    log::error!(target: "smtpd", "queue commit failed: {e}");
                    Ok(sess.event(Event::CommitFailed))
                }
            }
        }
    }
}

fn log_tls(shared: &Shared, stream: &Stream, host: &str, addr: IpAddr) {
    if shared.tls_loglevel > 0 {
        if let Some(s) = stream.tls_summary() {
            log::info!(target: "smtpd", "{}", s.server_log(host, addr));
        }
    }
}

fn mech_name(m: AuthMechanism) -> &'static str {
    match m {
        AuthMechanism::Plain => "PLAIN",
        AuthMechanism::Login => "LOGIN",
    }
}

/// tern does no reverse DNS on the only thread: loopback is `localhost`,
/// everything else `unknown` (as Postfix logs clients without PTR records).
pub fn client_name(addr: IpAddr) -> String {
    if addr.is_loopback() {
        "localhost".into()
    } else {
        "unknown".into()
    }
}

/// Runs `fut` with the idle timeout, also bounded by the session deadline.
/// `None` on timeout.
pub async fn with_timeout<T>(
    idle: Duration,
    deadline: Instant,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    let limit = idle.min(left);
    smol::future::or(async { Some(fut.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

impl Shared {
    /// The settings of a new session on `service` from `addr`.
    pub fn server_params(&self, service: Service, addr: IpAddr) -> ServerParams {
        let mut p = self.params.clone();
        p.client_in_mynetworks = self.mynetworks.iter().any(|n| n.contains(addr));
        p.implicit_tls = service == Service::Submissions;
        p.auth_required = service != Service::Smtp;
        p
    }

    /// Local domains (mydestination): known users and aliases are
    /// `Local`, and so are addresses that `recipient_canonical_maps`
    /// rewrites (they are judged after rewriting, at delivery, as
    /// Postfix's check_rcpt_maps skips them); others `LocalUnknown`
    /// (550 5.1.1); else relaying.
    pub fn classify(&self, rcpt: &Path<'_>) -> RcptClass {
        let known = |d: &str| {
            let addr = format!("{}@{d}", rcpt.local_part());
            if self.local.knows(rcpt.local_part(), d) || self.rewrite.is_recipient_canonical(&addr)
            {
                RcptClass::Local
            } else {
                RcptClass::LocalUnknown
            }
        };
        match rcpt.domain() {
            Some(d) if self.is_local_domain(d) => known(d),
            None => known(self.hostname.as_str()),
            Some(_) => RcptClass::Remote,
        }
    }

    fn is_local_domain(&self, d: &str) -> bool {
        let d = d.trim_end_matches('.');
        self.mydestination.iter().any(|m| m.eq_ignore_ascii_case(d))
    }
}
