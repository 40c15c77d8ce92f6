//! One delivery session to a next hop: resolve hosts, decide the TLS
//! policy, connect, run `smtp::client::Session` over `tls::Stream` for one
//! or more messages (connection reuse), and report each recipient's
//! result. Every TLS attempt yields a [`TlsAttempt`] for TLSRPT.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::ServerName;
use smol::Async;

use crate::dns::mx::{self, NextHops};
use crate::dns::DnsError;
use crate::dns::RecordType;
use crate::policy::ciphers::ExcludedSuites;
use crate::policy::dane::{
    self as dane_policy, AddressSecurity, DaneDecision, DaneLevel, HostFacts, TlsaLookup,
};
use crate::policy::decide::{CertName, PolicyDefaults, TlsVersions};
use crate::policy::{self, EffectivePolicy, Level, OwnedNextHop, PolicyInputs};
use crate::queue::{QueueEntry, Spool, Status as QStatus};
use crate::smtp::client::{
    ClientAction, ClientError, ClientParams, Message, Session, Status, TlsRequirement,
};
use crate::smtp::dotstuff::DotStuffer;
use crate::smtp::line::{BareNewline, LineSplitter};
use crate::tls::verify::TernVerifier;
use crate::tls::{MatchName, Stream, TlsOutcome, VerifyMode};

use super::qmgr::Context;

/// What happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    /// Accepted by the next hop.
    Sent,
    /// Try again later.
    Deferred,
    /// Permanent failure.
    Bounced,
}

/// One recipient's result, with what the log line needs.
#[derive(Debug, Clone)]
pub struct RcptResult {
    /// Outcome.
    pub kind: ResultKind,
    /// `host[addr]:port`, `local` or `none`.
    pub relay: String,
    /// Enhanced status code.
    pub dsn: String,
    /// The text in parentheses of `status=...`.
    pub text: String,
    /// The remote MTA's name when it answered (for the DSN).
    pub remote_mta: Option<String>,
    /// When the delivery of this message started: the session start for
    /// the first message of a connection, the start of its transaction for
    /// a later one (Postfix's agent hand-off). `None` when no delivery was
    /// attempted (routing decisions, expiry).
    pub handoff: Option<SystemTime>,
    /// Seconds for DNS, connect, greeting, TLS and AUTH (`c`); 0 for a
    /// message on a reused connection.
    pub conn: f64,
    /// Seconds transmitting (`d`; local delivery fills only this one).
    pub xfer: f64,
    /// When this recipient's result came in (Postfix's `deliver_done`).
    pub done: Option<SystemTime>,
    /// Which use of the connection this was (1 = first); Postfix logs
    /// `conn_use=N` from 2 on.
    pub conn_use: u32,
}

impl RcptResult {
    /// A result without timing (routing decisions, local errors).
    pub fn new(kind: ResultKind, relay: &str, dsn: &str, text: &str) -> RcptResult {
        RcptResult {
            kind,
            relay: relay.to_string(),
            dsn: dsn.to_string(),
            text: text.to_string(),
            remote_mta: None,
            handoff: None,
            conn: 0.0,
            xfer: 0.0,
            done: None,
            conn_use: 1,
        }
    }

    /// Postfix's `delay=` and `delays=a/b/c/d` (log_adhoc): `arrival` is
    /// when the message entered the queue, `picked` when the queue manager
    /// took it for this attempt, `now` the time of the log line. a = queue
    /// wait before the queue manager, b = queue manager latency (until the
    /// hand-off to the delivery), c = connection set-up, d = transmission.
    pub fn timing(&self, arrival: SystemTime, picked: SystemTime, now: SystemTime) -> Timing {
        let secs = |later: SystemTime, earlier: SystemTime| {
            later
                .duration_since(earlier)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        };
        let done = self.done.unwrap_or(now);
        let (b, c, d) = match self.handoff {
            Some(h) => {
                let c = self.conn.max(0.0);
                (secs(h, picked), c, (secs(done, h) - c).max(0.0))
            }
            // No delivery agent: the queue manager decided by itself.
            None => (secs(done, picked), 0.0, 0.0),
        };
        Timing {
            delay: secs(done, arrival),
            a: secs(picked, arrival),
            b,
            c,
            d,
        }
    }
}

/// The delay fields of a delivery log line, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// `delay=`: arrival to result.
    pub delay: f64,
    /// Before the queue manager.
    pub a: f64,
    /// In the queue manager.
    pub b: f64,
    /// Connection set-up.
    pub c: f64,
    /// Transmission.
    pub d: f64,
}

impl Timing {
    /// `delay=X, delays=a/b/c/d` as Postfix writes it.
    pub fn fields(&self) -> String {
        format!(
            "delay={}, delays={}/{}/{}/{}",
            format_delay(self.delay),
            format_delay(self.a),
            format_delay(self.b),
            format_delay(self.c),
            format_delay(self.d)
        )
    }
}

/// A time in seconds as Postfix's format_tv() prints delays (two
/// significant digits, at most two decimals, `delay_logging_resolution_limit
/// = 2`): below 1 s to 0.01 s (`0.37`, `0.01`, `0`), 1 to 9.95 s to 0.1 s
/// (`1.2`), from 10 s whole seconds; rounded half up; trailing zeros and a
/// bare point dropped.
pub fn format_delay(secs: f64) -> String {
    const MILLION: u64 = 1_000_000;
    if !secs.is_finite() || secs <= 0.0 {
        return "0".into();
    }
    let total = (secs * MILLION as f64) as u64;
    let (mut sec, mut usec) = (total / MILLION, total % MILLION);
    // Resolution in microseconds: 0.01 s, 0.1 s from 1 s, 1 s from 10 s.
    let res = match sec {
        0 => 10_000,
        1..=9 => 100_000,
        _ => MILLION,
    };
    usec += res / 2;
    if usec >= MILLION {
        sec += 1;
        usec -= MILLION;
    }
    let mut out = sec.to_string();
    if usec >= res {
        out.push('.');
        let mut rem = usec;
        let mut unit = MILLION / 10;
        while rem >= res && unit > 0 {
            out.push(char::from(b'0' + (rem / unit) as u8));
            rem %= unit;
            unit /= 10;
        }
    }
    out
}

/// The arrival time of a queued message with sub-second precision: the
/// envelope keeps whole seconds, and the queue ID starts with the
/// microseconds of the clock when the file was created (5 hex digits, see
/// `Spool::create`), taken right after the arrival second.
pub fn arrival_time(id: &str, arrival: u64) -> SystemTime {
    let micros = id
        .get(..5)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .filter(|m| *m < 1_000_000)
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(arrival) + Duration::from_micros(micros)
}

/// One message to deliver in a session, with its recipients for this hop.
#[derive(Debug, Clone)]
pub struct MessageJob {
    /// Queue ID.
    pub id: String,
    /// Envelope sender.
    pub sender: String,
    /// Arrival time (whole seconds, from the envelope).
    pub arrival: u64,
    /// When the queue manager took the message for this attempt.
    pub picked: SystemTime,
    /// Message size.
    pub size: u64,
    /// The message is a bounce (never bounce it again).
    pub is_bounce: bool,
    /// Recipients of this job: (index in the envelope, address).
    pub rcpts: Vec<(usize, String)>,
    /// Every envelope recipient (index -> address), for log lines.
    pub all_rcpts: Vec<String>,
    /// Attempts so far per envelope recipient.
    pub attempts: Vec<u32>,
}

impl MessageJob {
    /// A job for `rcpts` of a queue entry.
    pub fn from_entry(e: &QueueEntry, rcpts: Vec<(usize, String)>) -> MessageJob {
        MessageJob {
            id: e.id().to_string(),
            sender: e.envelope.sender.clone(),
            arrival: e.envelope.arrival,
            picked: SystemTime::now(),
            size: e.envelope.size,
            is_bounce: e.envelope.flags.bounce,
            rcpts,
            all_rcpts: e
                .envelope
                .recipients
                .iter()
                .map(|r| r.address.clone())
                .collect(),
            attempts: e.rcpts.iter().map(|r| r.attempts).collect(),
        }
    }
}

/// One TLS handshake attempt, for logs now and TLSRPT counters later.
#[derive(Debug, Clone)]
pub struct TlsAttempt {
    /// The policy domain (next-hop domain).
    pub policy_domain: String,
    /// The level in force.
    pub level: Level,
    /// MX host name.
    pub host: String,
    /// Address connected to.
    pub addr: IpAddr,
    /// Port connected to.
    pub port: u16,
    /// Success (with trust) or the RFC 8460 failure type.
    pub outcome: TlsOutcome,
}

/// What a session reports back to the queue manager.
pub struct DeliveryResults {
    /// Postfix's `... TLS connection established to ...` line of every
    /// completed handshake (logged too at `smtp_tls_loglevel` 1 and up).
    pub tls_established: Vec<String>,
    /// The certificates the server presented (leaf first, DER), recorded
    /// only by [`Delivery::probe`], also when verification failed.
    pub peer_chain: Vec<Vec<u8>>,
    /// Why the last host tried failed, when no session completed.
    pub last_failure: Option<String>,
    /// `host[addr]:port` of the last TCP connection made.
    pub connected: Option<String>,
    /// Per job, in order: results for its recipients.
    pub per_message: Vec<Vec<(usize, RcptResult)>>,
    /// Set when no host of the destination could be reached: the rest of
    /// this queue run defers its mail without connecting.
    pub dead_destination: Option<String>,
    /// Every TLS attempt made.
    pub tls_attempts: Vec<TlsAttempt>,
    /// For `tern probe`: DANE facts (TLSA records, DNSSEC status, match)
    /// and fallbacks, in the order they happened.
    pub notes: Vec<String>,
}

/// A delivery session to one next hop.
pub struct Delivery {
    ctx: Rc<Context>,
    dest: String,
    /// `tern probe`: connect, EHLO, TLS, QUIT; record the peer's chain.
    probing: bool,
    /// Implicit TLS on every connection (RFC 8314): the route said so
    /// (`smtps:` transport, `smtp_tls_wrappermode`); port 465 implies it.
    implicit_tls: bool,
    /// What a probe reports besides the handshake (DANE facts, fallbacks).
    notes: std::cell::RefCell<Vec<String>>,
}

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

/// One host to try, with the TLS requirements that apply to it.
struct Target {
    host: String,
    /// SNI to send instead of the host name (DANE: the TLSA base domain).
    sni: Option<String>,
    addr: IpAddr,
    port: u16,
    tls: TlsRequirement,
    verify: VerifyMode,
    level: Level,
}

/// The failure of one connection attempt.
struct HostFailure {
    text: String,
    dsn: String,
    permanent: bool,
    /// The server was reached (a reply came): no "dead destination".
    reached: bool,
    /// The TLS handshake itself failed (at `may`, a plaintext retry follows).
    tls: bool,
}

const REPLY_BUF: usize = 4096;
const BODY_BUF: usize = 8192;

impl Delivery {
    /// A session for next hop `dest` (a domain or `[host]:port`).
    pub fn new(ctx: Rc<Context>, dest: String) -> Delivery {
        Delivery {
            ctx,
            dest,
            probing: false,
            implicit_tls: false,
            notes: Default::default(),
        }
    }

    /// A probe of next hop `dest` (`tern probe`): the same resolution,
    /// policy, TLS configuration and verifier as a delivery, but no mail.
    pub fn probe(ctx: Rc<Context>, dest: String) -> Delivery {
        Delivery {
            ctx,
            dest,
            probing: true,
            implicit_tls: false,
            notes: Default::default(),
        }
    }

    /// Sets implicit TLS for every connection of this delivery (from the
    /// route: `smtps:` transport or `smtp_tls_wrappermode`). A next hop
    /// without a port is then reached on 465.
    pub fn implicit_tls(mut self, on: bool) -> Delivery {
        self.implicit_tls = on;
        self
    }

    /// Runs a probe made with [`Delivery::probe`]: tries the hosts in
    /// delivery order until one completes EHLO (and TLS, when offered or
    /// required), then says QUIT. `tls_established`, `peer_chain` and
    /// `tls_attempts` tell what happened; `dead_destination` why no host
    /// would talk.
    pub async fn run_probe(&self) -> DeliveryResults {
        self.run_jobs(None, &[]).await
    }

    fn defaults<'a>(&self, cfg: &'a crate::config::Config) -> PolicyDefaults<'a> {
        PolicyDefaults {
            level: Level::parse(cfg.get("smtp_tls_security_level")).unwrap_or(Level::May),
            protocols: TlsVersions::parse(cfg.get("smtp_tls_protocols"))
                .unwrap_or(TlsVersions::ALL),
            mandatory_protocols: TlsVersions::parse(cfg.get("smtp_tls_mandatory_protocols"))
                .unwrap_or(TlsVersions::ALL),
            // Validated by Tables::load (start, reload, check-config).
            ciphers: cfg.get("smtp_tls_ciphers"),
            mandatory_ciphers: cfg.get("smtp_tls_mandatory_ciphers"),
            exclude_ciphers: ExcludedSuites::parse(cfg.get("smtp_tls_exclude_ciphers"))
                .unwrap_or_default(),
            mandatory_exclude_ciphers: ExcludedSuites::parse(
                cfg.get("smtp_tls_mandatory_exclude_ciphers"),
            )
            .unwrap_or_default(),
            verify_cert_match: cfg.get("smtp_tls_verify_cert_match"),
            secure_cert_match: cfg.get("smtp_tls_secure_cert_match"),
            fingerprint_cert_match: cfg.get("smtp_tls_fingerprint_cert_match"),
        }
    }

    /// The trust anchors for a connection at `level`: at `verify` and
    /// `secure`, an entry's `tafile=` files replace `smtp_tls_CAfile`
    /// (Postfix's trust-anchor semantics); an entry whose store is missing
    /// (cannot happen after a successful load) gets an empty one, so it
    /// fails closed.
    fn roots_for(&self, policy: &EffectivePolicy<'_>, level: Level) -> Arc<rustls::RootCertStore> {
        let key = super::tables::tafile_key(policy.tafiles());
        if key.is_empty() || !level.uses_name_match() {
            return self.ctx.tables.roots.clone();
        }
        self.ctx
            .tables
            .tafile_roots
            .get(&key)
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::RootCertStore::empty()))
    }

    /// Logs an MX host that DANE rules out, in Postfix's words
    /// (smtp_connect.c: `warning: TLS policy lookup for DEST/HOST:
    /// REASON`), so the skip shows even when a later host takes the mail.
    fn skip_warning(&self, dest: &str, host: &str, why: &str) {
        log::warn!(target: "smtp", "warning: TLS policy lookup for {dest}/{host}: {why}");
        self.note(format!("skipped {host}: {why}"));
    }

    /// Records a line for `tern probe` (nothing is kept for deliveries).
    fn note(&self, line: String) {
        if self.probing {
            self.notes.borrow_mut().push(line);
        }
    }

    /// Records one TLSA lookup at `_<port>._tcp.<base>` for `tern probe`.
    fn note_tlsa(&self, port: u16, base: &str, l: &TlsaLookup) {
        if !self.probing {
            return;
        }
        let yes_no = |b: bool| if b { "secure" } else { "insecure" };
        match l {
            TlsaLookup::Records { records, secure } => {
                for r in records {
                    self.note(format!(
                        "TLSA _{port}._tcp.{base}: {r} ({}{})",
                        yes_no(*secure),
                        if r.usable() {
                            ""
                        } else {
                            ", unusable for SMTP"
                        }
                    ));
                }
            }
            TlsaLookup::NoRecords { secure } => self.note(format!(
                "TLSA _{port}._tcp.{base}: no records ({})",
                yes_no(*secure)
            )),
            TlsaLookup::Failed(e) => {
                self.note(format!("TLSA _{port}._tcp.{base}: lookup failed: {e}"))
            }
        }
    }

    /// Delivers the jobs; never fails as a whole: every recipient gets a
    /// result.
    pub async fn run(&self, spool: &Spool, jobs: &[MessageJob]) -> DeliveryResults {
        if jobs.len() < 2 || !self.reuse_disabled() {
            return self.run_jobs(Some(spool), jobs).await;
        }
        // `connection_reuse=no`: one connection per message.
        let mut all = DeliveryResults {
            tls_established: Vec::new(),
            peer_chain: Vec::new(),
            last_failure: None,
            connected: None,
            per_message: Vec::with_capacity(jobs.len()),
            dead_destination: None,
            tls_attempts: Vec::new(),
            notes: Vec::new(),
        };
        for job in jobs {
            if let Some(why) = &all.dead_destination {
                let text = format!("delivery temporarily suspended: {why}");
                all.per_message.push(
                    job.rcpts
                        .iter()
                        .map(|(i, _)| {
                            (
                                *i,
                                RcptResult::new(ResultKind::Deferred, "none", "4.4.1", &text),
                            )
                        })
                        .collect(),
                );
                continue;
            }
            let r = self.run_jobs(Some(spool), std::slice::from_ref(job)).await;
            all.tls_established.extend(r.tls_established);
            all.tls_attempts.extend(r.tls_attempts);
            all.notes.extend(r.notes);
            all.per_message.extend(r.per_message);
            all.last_failure = r.last_failure.or(all.last_failure);
            all.connected = r.connected.or(all.connected);
            all.dead_destination = r.dead_destination;
        }
        all
    }

    /// Whether the policy entry of this next hop says `connection_reuse=no`.
    fn reuse_disabled(&self) -> bool {
        let Ok(nexthop) = super::route::parse_nexthop(&self.dest) else {
            return false;
        };
        let defaults = self.defaults(&self.ctx.cfg);
        policy::decide(&PolicyInputs {
            nexthop: nexthop.borrow(),
            tables: &self.ctx.tables.policy,
            defaults: &defaults,
        })
        .is_ok_and(|p| p.connection_reuse == Some(false))
    }

    async fn run_jobs(&self, spool: Option<&Spool>, jobs: &[MessageJob]) -> DeliveryResults {
        let started = Instant::now();
        let handoff = SystemTime::now();
        let mut results = DeliveryResults {
            tls_established: Vec::new(),
            peer_chain: Vec::new(),
            last_failure: None,
            connected: None,
            per_message: jobs.iter().map(|_| Vec::new()).collect(),
            dead_destination: None,
            tls_attempts: Vec::new(),
            notes: Vec::new(),
        };
        let fail_all = |results: &mut DeliveryResults, f: &HostFailure, relay: &str| {
            let kind = if f.permanent {
                ResultKind::Bounced
            } else {
                ResultKind::Deferred
            };
            for (j, job) in jobs.iter().enumerate() {
                for (i, _) in &job.rcpts {
                    if !results.per_message[j].iter().any(|(k, _)| k == i) {
                        let mut r = RcptResult::new(kind, relay, &f.dsn, &f.text);
                        r.handoff = Some(handoff);
                        r.conn = started.elapsed().as_secs_f64();
                        r.done = Some(SystemTime::now());
                        results.per_message[j].push((*i, r));
                    }
                }
            }
        };
        let nexthop = match super::route::parse_nexthop(&self.dest) {
            Ok(n) => n,
            Err(e) => {
                results.last_failure = Some(e.clone());
                fail_all(
                    &mut results,
                    &HostFailure {
                        text: e,
                        dsn: "4.3.5".into(),
                        permanent: false,
                        reached: false,
                        tls: false,
                    },
                    "none",
                );
                return results;
            }
        };
        let cfg = self.ctx.cfg.clone();
        let defaults = self.defaults(&cfg);
        let policy = match policy::decide(&PolicyInputs {
            nexthop: nexthop.borrow(),
            tables: &self.ctx.tables.policy,
            defaults: &defaults,
        }) {
            Ok(p) => p,
            Err(e) => {
                results.last_failure = Some(e.to_string());
                fail_all(
                    &mut results,
                    &HostFailure {
                        text: e.to_string(),
                        dsn: "4.7.5".into(),
                        permanent: false,
                        reached: false,
                        tls: false,
                    },
                    "none",
                );
                return results;
            }
        };
        let targets = match self.targets(&nexthop, &policy).await {
            Ok(t) => t,
            Err(f) => {
                fail_all(&mut results, &f, "none");
                results.last_failure = Some(f.text.clone());
                if !f.permanent {
                    results.dead_destination = Some(f.text.clone());
                }
                // The probe shows why every host was skipped.
                results.notes = self.notes.take();
                return results;
            }
        };
        let mut last: Option<(HostFailure, String)> = None;
        let mut any_reached = false;
        for mut t in targets {
            let relay = format!("{}[{}]:{}", t.host, t.addr, t.port);
            let pending: Vec<usize> = (0..jobs.len())
                .filter(|j| results.per_message[*j].len() < jobs[*j].rcpts.len())
                .collect();
            if pending.is_empty() && !self.probing {
                break;
            }
            match self
                .session(
                    spool,
                    jobs,
                    &mut results,
                    &t,
                    &relay,
                    &policy,
                    (started, handoff),
                )
                .await
            {
                Ok(()) => {
                    last = None;
                    any_reached = true;
                    break;
                }
                Err(f) if f.tls && t.tls == TlsRequirement::Opportunistic => {
                    // `may`: a failed handshake is not a reason to keep the
                    // mail; Postfix retries the same server in plaintext.
                    log::info!(target: "smtp", "{}; level may: trying {relay} again without TLS", f.text);
                    self.note(format!("{}; level may: retrying without TLS", f.text));
                    t.tls = TlsRequirement::None;
                    match self
                        .session(
                            spool,
                            jobs,
                            &mut results,
                            &t,
                            &relay,
                            &policy,
                            (started, handoff),
                        )
                        .await
                    {
                        Ok(()) => {
                            last = None;
                            any_reached = true;
                            break;
                        }
                        Err(f) => {
                            any_reached |= f.reached;
                            last = Some((f, relay));
                        }
                    }
                }
                Err(f) => {
                    any_reached |= f.reached;
                    let permanent = f.permanent;
                    log::info!(target: "smtp", "{}: {}", jobs.first().map(|j| j.id.as_str()).unwrap_or("-"), f.text);
                    last = Some((f, relay));
                    if permanent {
                        break;
                    }
                }
            }
        }
        if let Some((f, relay)) = last {
            fail_all(&mut results, &f, &relay);
            results.last_failure = Some(f.text.clone());
            if !any_reached {
                results.dead_destination = Some(f.text);
            }
        }
        results.notes = self.notes.take();
        results
    }

    /// Resolves the next hop into hosts and addresses, with the TLS
    /// requirements of each (DANE decides per host).
    async fn targets(
        &self,
        nexthop: &OwnedNextHop,
        policy: &EffectivePolicy<'_>,
    ) -> Result<Vec<Target>, HostFailure> {
        let cfg = &self.ctx.cfg;
        let nh = nexthop.borrow();
        let port = if self.implicit_tls {
            // An implicit-TLS next hop without a port: submissions (RFC 8314).
            nh.port_or(465)
        } else {
            nh.port_or(u16::try_from(cfg.int("smtp_tcp_port")).unwrap_or(25))
        };
        let resolver = &self.ctx.resolver;
        let dane_level = matches!(policy.level, Level::Dane | Level::DaneOnly);
        if dane_level && cfg.get("smtp_dns_support_level") != "dnssec" {
            // Postfix (smtp_tls_policy.c, dane_init): a configuration
            // fault, warned about; `dane` acts as `may` (no AD bit is
            // believed below), `dane-only` defers.
            log::warn!(
                target: "smtp",
                "warning: {}: {} configured with dnssec lookups disabled",
                nh.as_str(),
                policy.level.as_str()
            );
            self.note(format!(
                "{}: {} configured with dnssec lookups disabled (smtp_dns_support_level = {})",
                nh.as_str(),
                policy.level.as_str(),
                cfg.get("smtp_dns_support_level")
            ));
            if policy.level == Level::DaneOnly {
                return Err(HostFailure {
                    text: "client TLS configuration problem".into(),
                    dsn: "4.7.5".into(),
                    permanent: false,
                    reached: false,
                    tls: false,
                });
            }
        }
        // AD bits count only from loopback or `dns_trusted_resolvers`.
        let trust_ad = self.ctx.trust_ad;
        let dns_fail = |name: &str, ty: &str, e: &DnsError| HostFailure {
            text: format!(
                "Host or domain name not found. Name service error for name={name} type={ty}: {e}"
            ),
            dsn: "4.4.3".into(),
            permanent: false,
            reached: false,
            tls: false,
        };
        let protocols = cfg.protocols();
        let no_enabled_address = |host: &str| HostFailure {
            text: format!(
                "{host}: no address of the IP versions enabled by inet_protocols = {}",
                cfg.get("inet_protocols")
            ),
            dsn: "4.4.4".into(),
            permanent: false,
            reached: false,
            tls: false,
        };
        // (host, MX answer secure)
        let hosts: Vec<(String, bool)> = if let Some(ip) = nh.ip() {
            if !protocols.allows(ip) {
                return Err(no_enabled_address(nh.host()));
            }
            // An IP literal has no TLSA base domain: `dane` is `may` there
            // (Postfix), `dane-only` defers (RFC 7672 §2.2: no DANE).
            if policy.level == Level::DaneOnly {
                // Postfix's reason (an address has no validated TLSA
                // RRset); tern's detail goes on the warning line.
                self.skip_warning(
                    nh.as_str(),
                    nh.host(),
                    &format!(
                        "no TLSA records found for [{ip}]:{port}: an IP-literal destination has no TLSA base domain"
                    ),
                );
                return Err(HostFailure {
                    text: dane_policy::NO_TLSA.into(),
                    dsn: "4.7.5".into(),
                    permanent: false,
                    reached: false,
                    tls: false,
                });
            }
            return Ok(vec![self.target(
                nh.host().to_string(),
                ip,
                port,
                policy,
                None,
            )?]);
        } else if nh.uses_mx() {
            let r = mx::resolve_next_hop_hosts(resolver, nh.host())
                .await
                .map_err(|e| dns_fail(nh.host(), "MX", &e))?;
            let secure = r.authenticated && trust_ad;
            match r.hops {
                NextHops::Mx(list) => list.into_iter().map(|h| (h.name, secure)).collect(),
                NextHops::Implicit(h) => vec![(h.name, secure)],
                NextHops::NullMx => {
                    return Err(HostFailure {
                        text: format!("Domain {} does not accept mail (nullMX)", nh.host()),
                        dsn: "5.1.10".into(),
                        permanent: true,
                        reached: false,
                        tls: false,
                    })
                }
                NextHops::NxDomain => {
                    return Err(HostFailure {
                        text: format!("Host or domain name not found. Name service error for name={} type=MX: Host not found", nh.host()),
                        dsn: "5.4.4".into(),
                        permanent: true,
                        reached: false,
                        tls: false,
                    })
                }
            }
        } else {
            // `[host]`: the name comes from configuration, as trusted as the file.
            vec![(nh.host().to_string(), true)]
        };
        let mut out = Vec::new();
        let mut last_err = None;
        for (host, mx_secure) in hosts {
            // Only the enabled IP versions are asked (inet_protocols), each
            // family on its own: one failing or unvalidated family neither
            // defers the host nor spoils the other (RFC 7672 §2.2).
            let looked = resolver
                .lookup_addresses(&host, protocols.ipv4, protocols.ipv6)
                .await;
            let addrs = dane_policy::AddressFacts::new(&host, looked, trust_ad);
            if addrs.addrs.is_empty() {
                last_err = Some(match &addrs.failed {
                    Some((ty, e)) => dns_fail(&host, ty, e),
                    None => HostFailure {
                        text: format!("Host or domain name not found. Name service error for name={host} type=A: Host not found"),
                        dsn: if nh.uses_mx() { "4.4.3".into() } else { "5.4.4".into() },
                        permanent: false,
                        reached: false,
                        tls: false,
                    },
                });
                continue;
            }
            if let Some((ty, e)) = &addrs.failed {
                log::info!(target: "smtp", "Name service error for name={host} type={ty}: {e}; using the host's other addresses");
                self.note(format!(
                    "{host}: type={ty} lookup failed ({e}): its other addresses are used, never as secure"
                ));
            }
            // The TLSA base domain: the MX host, or its secure CNAME target.
            let mut tlsa_base = host.clone();
            // (address, DANE decision for it)
            let mut usable: Vec<(IpAddr, Option<DaneDecision>)> = Vec::new();
            match policy.level {
                Level::Dane | Level::DaneOnly => {
                    let lvl = if policy.level == Level::Dane {
                        DaneLevel::Dane
                    } else {
                        DaneLevel::DaneOnly
                    };
                    let mut security = if addrs.any_secure() {
                        AddressSecurity::Secure
                    } else {
                        AddressSecurity::Insecure
                    };
                    if security == AddressSecurity::Insecure
                        && mx_secure
                        && trust_ad
                        && !crate::dns::wire::names_equal(&addrs.name, &host)
                    {
                        // RFC 7672 §2.2.2: a host whose CNAME (the first link)
                        // is signed is in a signed zone even when the target
                        // is not; its TLSA records are at the original name.
                        // The CNAME query is answered by the alias alone.
                        match resolver.query(&host, RecordType::Cname).await {
                            Ok(c) if c.authenticated && !c.records.is_empty() => {
                                security = AddressSecurity::SecureAlias;
                            }
                            Ok(_) => {}
                            Err(e) => {
                                // Never a downgrade: the lookup that would
                                // tell whether DANE applies failed.
                                let why = format!(
                                    "DNSSEC status lookup error for name={host} type=CNAME: {e}"
                                );
                                self.skip_warning(nh.host(), &host, &why);
                                last_err = Some(HostFailure {
                                    text: why,
                                    dsn: "4.7.5".into(),
                                    permanent: false,
                                    reached: false,
                                    tls: false,
                                });
                                continue;
                            }
                        }
                    }
                    let address_secure = security.is_secure();
                    let mut facts = HostFacts {
                        mx_secure,
                        address_secure,
                        tlsa: None,
                    };
                    let yes_no = |b: bool| if b { "secure" } else { "insecure" };
                    self.note(format!(
                        "DANE {host}: MX records {}, address records {}",
                        yes_no(mx_secure),
                        match security {
                            AddressSecurity::SecureAlias =>
                                "insecure (secure CNAME to an unsigned zone)",
                            AddressSecurity::Secure if addrs.any_insecure() =>
                                "secure for one IP version only",
                            s => yes_no(s.is_secure()),
                        }
                    ));
                    if dane_policy::needs_tlsa_lookup(mx_secure, address_secure) {
                        // RFC 7672 §2.2.3: a secure CNAME-expanded name first,
                        // then the original name when that has no TLSA or
                        // only insecure TLSA.
                        let bases: Vec<String> =
                            dane_policy::base_domains(&host, Some(&addrs.name), security)
                                .into_iter()
                                .map(str::to_string)
                                .collect();
                        for b in bases {
                            let name = format!("_{port}._tcp.{b}");
                            let l = match resolver.lookup_tlsa(&name).await {
                                Ok(a) if a.records.is_empty() => TlsaLookup::NoRecords {
                                    secure: a.authenticated && trust_ad,
                                },
                                Ok(a) => TlsaLookup::Records {
                                    secure: a.authenticated && trust_ad,
                                    records: a.records,
                                },
                                Err(e) => TlsaLookup::Failed(e.to_string()),
                            };
                            let next = dane_policy::try_next_base_domain(&l);
                            // Every lookup is shown, also those the CNAME
                            // fallback moves past.
                            self.note_tlsa(port, &b, &l);
                            facts.tlsa = Some(l);
                            tlsa_base = b;
                            if !next {
                                break;
                            }
                        }
                    }
                    if facts.tlsa.is_none() {
                        self.note(format!("TLSA _{port}._tcp.{tlsa_base}: not looked up"));
                    }
                    let d = dane_policy::decide_at(lvl, &tlsa_base, port, &facts);
                    self.note(format!(
                        "DANE {host}: {}",
                        match &d {
                            DaneDecision::Authenticate(r) =>
                                format!("authenticate against {} usable record(s)", r.len()),
                            DaneDecision::Encrypt => "no usable TLSA: encrypt".into(),
                            DaneDecision::May => "no secure TLSA: may".into(),
                            DaneDecision::Defer(why) =>
                                format!("defer: {} ({})", why.reason, why.detail),
                        }
                    ));
                    if let DaneDecision::Defer(why) = &d {
                        // Postfix logs the skipped host even when a later
                        // one gets the mail (smtp_connect.c); the warning
                        // carries tern's DNS detail, the status Postfix's
                        // reason.
                        self.skip_warning(nh.host(), &host, &why.detail);
                        last_err = Some(HostFailure {
                            text: why.reason.clone(),
                            dsn: "4.7.5".into(),
                            permanent: false,
                            reached: false,
                            tls: false,
                        });
                        continue;
                    }
                    let (ips, skipped) = dane_policy::dane_addresses(lvl, security, &addrs, &d);
                    usable.extend(ips.into_iter().map(|ip| (ip, Some(d.clone()))));
                    if skipped {
                        let why = format!(
                            "address records of {host} of one IP version are not DNSSEC-validated: \
                             only its validated addresses are used"
                        );
                        log::info!(target: "smtp", "{why}");
                        self.note(format!("DANE {host}: {why}"));
                    }
                }
                _ => usable.extend(addrs.addrs.iter().map(|(ip, _)| (*ip, None))),
            }
            for (ip, dane) in usable {
                let mut t = match self.target(host.clone(), ip, port, policy, dane) {
                    Ok(t) => t,
                    Err(f) => {
                        if matches!(policy.level, Level::Dane | Level::DaneOnly) {
                            self.skip_warning(nh.host(), &host, &f.text);
                        }
                        last_err = Some(f);
                        break;
                    }
                };
                if let VerifyMode::Dane { names, .. } = &mut t.verify {
                    // DANE-TA reference identifiers (RFC 7672 §3.2.2): the
                    // TLSA base domain first, then the MX host, next hop.
                    if !tlsa_base.eq_ignore_ascii_case(&host) {
                        names.insert(0, tlsa_base.clone());
                    }
                    // RFC 7672 §8.1: the SNI name is the TLSA base domain.
                    t.sni = Some(tlsa_base.clone());
                }
                out.push(t);
            }
        }
        if out.is_empty() {
            return Err(last_err.unwrap_or(HostFailure {
                text: format!("no usable host for {}", nh.host()),
                dsn: "4.4.4".into(),
                permanent: false,
                reached: false,
                tls: false,
            }));
        }
        Ok(out)
    }

    fn target(
        &self,
        host: String,
        addr: IpAddr,
        port: u16,
        policy: &EffectivePolicy<'_>,
        dane: Option<DaneDecision>,
    ) -> Result<Target, HostFailure> {
        let (tls, verify, level) = match (policy.level, dane) {
            (Level::None, _) => (TlsRequirement::None, VerifyMode::Opportunistic, Level::None),
            (Level::May, _) => (
                TlsRequirement::Opportunistic,
                VerifyMode::Opportunistic,
                Level::May,
            ),
            (Level::Encrypt, _) => (
                TlsRequirement::Required,
                VerifyMode::Opportunistic,
                Level::Encrypt,
            ),
            (Level::Fingerprint, _) => {
                // Lengths were checked against the digest at load time.
                let digest = self.ctx.tables.fingerprint_digest;
                let list = policy
                    .fingerprints()
                    .map(|f| f.as_bytes().to_vec())
                    .collect();
                (
                    TlsRequirement::Required,
                    VerifyMode::Fingerprints { digest, list },
                    Level::Fingerprint,
                )
            }
            (l @ (Level::Verify | Level::Secure), _) => {
                let names = policy
                    .cert_names(&host)
                    .map(|n| match n {
                        CertName::Exact(e) => MatchName::parse(e),
                        CertName::Subdomain(s) => MatchName::parse(&format!(".{s}")),
                    })
                    .collect();
                (TlsRequirement::Required, VerifyMode::Verify(names), l)
            }
            (l @ (Level::Dane | Level::DaneOnly), Some(DaneDecision::Authenticate(records))) => {
                let names = vec![host.clone(), policy.nexthop_domain().to_string()];
                (
                    TlsRequirement::Required,
                    VerifyMode::Dane { records, names },
                    l,
                )
            }
            (Level::Dane, Some(DaneDecision::Encrypt)) => (
                TlsRequirement::Required,
                VerifyMode::Opportunistic,
                Level::Encrypt,
            ),
            // `dane-only` without a decision to authenticate cannot become
            // a deliverable target, whatever path led here.
            (Level::DaneOnly, d) => {
                return Err(HostFailure {
                    text: match d {
                        Some(DaneDecision::Defer(why)) => why.reason,
                        _ => format!("no usable TLSA records for {host}[{addr}]:{port}"),
                    },
                    dsn: "4.7.5".into(),
                    permanent: false,
                    reached: false,
                    tls: false,
                })
            }
            (Level::Dane, _) => (
                TlsRequirement::Opportunistic,
                VerifyMode::Opportunistic,
                Level::May,
            ),
        };
        Ok(Target {
            host,
            sni: None,
            addr,
            port,
            tls,
            verify,
            level,
        })
    }

    /// One connection: greeting, TLS, AUTH, then every pending message.
    #[allow(clippy::too_many_arguments)]
    async fn session(
        &self,
        spool: Option<&Spool>,
        jobs: &[MessageJob],
        results: &mut DeliveryResults,
        t: &Target,
        relay: &str,
        policy: &EffectivePolicy<'_>,
        (started, handoff): (Instant, SystemTime),
    ) -> Result<(), HostFailure> {
        let cfg = &self.ctx.cfg;
        let hostaddr = format!("{}[{}]", t.host, t.addr);
        let io_fail = |what: &str, e: &dyn std::fmt::Display, reached: bool| HostFailure {
            text: format!("{what} {hostaddr}:{}: {e}", t.port),
            dsn: "4.4.1".into(),
            permanent: false,
            reached,
            tls: false,
        };
        let lost = |stage: &str| HostFailure {
            text: format!("lost connection with {hostaddr} while {stage}"),
            dsn: "4.4.2".into(),
            permanent: false,
            reached: true,
            tls: false,
        };
        let Some(slot) = self.ctx.pool.acquire() else {
            return Err(HostFailure {
                text: "too many connections in use; trying later".into(),
                dsn: "4.3.2".into(),
                permanent: false,
                reached: true,
                tls: false,
            });
        };
        let connect_timeout = cfg.time("smtp_connect_timeout");
        let addr = SocketAddr::new(t.addr, t.port);
        let tcp = match timeout(connect_timeout, Async::<TcpStream>::connect(addr)).await {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(io_fail("connect to", &os_text(&e), false)),
            None => return Err(io_fail("connect to", &"Connection timed out", false)),
        };
        // No Nagle: the body and the end-of-data dot are separate writes,
        // and with Nagle the dot waited for the ACK of the body, which the
        // server delays (~40 ms on Linux): every message took 40 ms more on
        // the wire, capping 20 sessions at ~400 msg/s. Replies and commands
        // are whole writes already, so this adds no tiny packets.
        if let Err(e) = tcp.get_ref().set_nodelay(true) {
            log::debug!(target: "smtp", "{hostaddr}: TCP_NODELAY: {e}");
        }
        results.connected = Some(format!("{hostaddr}:{}", t.port));
        let mut stream = Stream::new(tcp, slot);
        // Per route (Postfix: per transport), and always on port 465.
        let wrapper = self.implicit_tls || t.port == 465;
        let verifier = TernVerifier::new(
            t.verify.clone(),
            self.roots_for(policy, t.level),
            self.ctx.tls.provider.clone(),
        );
        let recorder = Arc::new(ChainRecorder {
            inner: verifier.clone(),
            chain: std::sync::Mutex::new(Vec::new()),
        });
        let cert_verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if self.probing {
            recorder.clone()
        } else {
            verifier.clone()
        };
        // protocols= / smtp_tls_(mandatory_)protocols, ciphers= /
        // smtp_tls_(mandatory_)ciphers and exclude= /
        // smtp_tls_(mandatory_)exclude_ciphers, for the level this
        // connection runs at (DANE may have lowered it).
        let versions = policy.protocols_at(t.level);
        let excluded = policy.excluded_suites_at(t.level);
        // Refused at load; checked again so that no path offers a grade
        // tern cannot meet.
        let grade = policy.cipher_grade_at(t.level);
        if let Err(e) = crate::policy::ciphers::check_grade(grade) {
            return Err(HostFailure {
                text: format!("TLS client configuration: {e}"),
                dsn: "4.7.5".into(),
                permanent: false,
                reached: false,
                tls: false,
            });
        }
        let limits = crate::tls::server_config::ClientLimits {
            tls12: versions.tls12(),
            tls13: versions.tls13(),
            exclude: self
                .ctx
                .tls
                .provider
                .cipher_suites
                .iter()
                .map(|s| s.suite())
                .filter(|s| excluded.excludes(*s))
                .collect(),
        };
        let client_cfg = crate::tls::server_config::build_client_config_with(
            &self.ctx.tls,
            cert_verifier,
            &limits,
        )
        .map_err(|e| HostFailure {
            text: format!("TLS client configuration (protocols {versions}): {e}"),
            dsn: "4.7.5".into(),
            permanent: false,
            reached: false,
            tls: false,
        })?;
        let sni_name = match &t.sni {
            Some(s) => s.clone(),
            None => policy.sni(&t.host).unwrap_or(&t.host).to_string(),
        };
        let server_name = match t.addr.to_string() == t.host {
            true => ServerName::IpAddress(t.addr.into()),
            false => ServerName::try_from(sni_name).unwrap_or(ServerName::IpAddress(t.addr.into())),
        };
        let helo_t = cfg.time("smtp_helo_timeout");
        let data_t = cfg.time("smtp_data_done_timeout");
        if wrapper {
            self.handshake(
                &mut stream,
                &client_cfg,
                &server_name,
                &verifier,
                &recorder,
                t,
                policy,
                results,
                &hostaddr,
                helo_t,
            )
            .await?;
        }
        let creds = self.credentials(&t.host);
        let mut sess = Session::new(ClientParams {
            helo_name: cfg.get("smtp_helo_name").to_string(),
            tls: t.tls,
            implicit_tls: wrapper,
            credentials: creds,
            allow_plaintext_auth: false,
        });
        let mut buf = [0u8; REPLY_BUF];
        let mut splitter = LineSplitter::new(REPLY_BUF - 2, BareNewline::Normalize);
        let mut next_job = 0usize;
        let mut current: Option<usize> = None;
        let mut conn_secs = 0.0f64;
        let mut xfer_start = SystemTime::now();
        // Messages sent over this connection so far (Postfix's conn_use).
        let mut uses = 0u32;
        // The final dot is out and its reply not in: if the connection
        // dies now, the server may have the message (SMTP cannot tell).
        let mut eod_sent = false;
        let mut last_reply = String::new();
        let maybe_twice = " -- message may be sent more than once";
        let mut actions: Vec<ClientAction> = Vec::new();
        loop {
            // Perform queued actions.
            while let Some(act) = (!actions.is_empty()).then(|| actions.remove(0)) {
                match act {
                    ClientAction::Send(bytes) => {
                        if timeout(helo_t, stream.write_all(&bytes))
                            .await
                            .and_then(Result::ok)
                            .is_none()
                        {
                            return Err(lost("sending a command"));
                        }
                    }
                    ClientAction::StartTls => {
                        // STARTTLS response injection: nothing read before
                        // the handshake may be taken as a TLS-protected reply.
                        splitter.discard();
                        match self
                            .handshake(
                                &mut stream,
                                &client_cfg,
                                &server_name,
                                &verifier,
                                &recorder,
                                t,
                                policy,
                                results,
                                &hostaddr,
                                helo_t,
                            )
                            .await
                        {
                            Ok(()) => actions.extend(sess.tls_established()),
                            Err(f) => {
                                let _ = sess.tls_failed();
                                return Err(f);
                            }
                        }
                    }
                    ClientAction::Ready => {
                        if current.is_none() && conn_secs == 0.0 {
                            conn_secs = started.elapsed().as_secs_f64();
                            if t.tls == TlsRequirement::Opportunistic
                                && sess.extensions().starttls
                                && !sess.tls_active()
                                && !wrapper
                            {
                                // Offered, then refused (454): `may` goes on
                                // in plaintext, as Postfix does; say so.
                                log::info!(target: "smtp", "host {hostaddr} refused to start TLS: {last_reply}; level may: continuing without TLS");
                                self.note(format!("host {hostaddr} refused to start TLS: {last_reply}; level may: continuing without TLS"));
                            }
                        }
                        // Next message with pending recipients.
                        let Some(j) = (next_job..jobs.len()).find(|j| !jobs[*j].rcpts.is_empty())
                        else {
                            actions.extend(sess.quit());
                            continue;
                        };
                        next_job = j + 1;
                        current = Some(j);
                        xfer_start = SystemTime::now();
                        uses += 1;
                        let job = &jobs[j];
                        let smtputf8 =
                            !job.sender.is_ascii() || job.rcpts.iter().any(|(_, r)| !r.is_ascii());
                        actions.extend(sess.send_message(Message {
                            sender: job.sender.clone(),
                            recipients: job.rcpts.iter().map(|(_, r)| r.clone()).collect(),
                            size: Some(job.size),
                            eight_bit: false,
                            smtputf8,
                        }));
                    }
                    ClientAction::SendBody => {
                        let (Some(j), Some(spool)) = (current, spool) else {
                            return Err(lost("sending message body"));
                        };
                        if let Err(e) = self
                            .send_body(spool, &jobs[j].id, &mut stream, data_t)
                            .await
                        {
                            return Err(HostFailure {
                                text: e,
                                dsn: "4.4.2".into(),
                                permanent: false,
                                reached: true,
                                tls: false,
                            });
                        }
                        eod_sent = true;
                    }
                    ClientAction::Delivered(list) => {
                        eod_sent = false;
                        let Some(j) = current.take() else { continue };
                        let done = SystemTime::now();
                        let xfer = done
                            .duration_since(xfer_start)
                            .map_or(0.0, |d| d.as_secs_f64());
                        for ((idx, _), r) in jobs[j].rcpts.iter().zip(list) {
                            let kind = match r.status {
                                Status::Sent => ResultKind::Sent,
                                Status::Deferred => ResultKind::Deferred,
                                Status::Bounced => ResultKind::Bounced,
                            };
                            let mut rr =
                                RcptResult::new(kind, relay, &r.dsn(), &r.describe(&hostaddr));
                            rr.remote_mta = Some(t.host.clone());
                            // A reused connection: this message's delivery
                            // began with its own transaction, set-up was free.
                            if uses > 1 {
                                rr.handoff = Some(xfer_start);
                                rr.conn = 0.0;
                            } else {
                                rr.handoff = Some(handoff);
                                rr.conn = conn_secs;
                            }
                            rr.xfer = xfer;
                            rr.done = Some(done);
                            rr.conn_use = uses;
                            results.per_message[j].push((*idx, rr));
                        }
                    }
                    ClientAction::Failed(e) => {
                        // A rejected login is the sender's configuration
                        // (or the server's passwd file) going wrong, not the
                        // recipient: defer, like Postfix's default
                        // `smtp_sasl_auth_soft_bounce = yes` (5.x.x -> 4.x.x).
                        let soft_auth = matches!(&*e, ClientError::Auth(_));
                        let permanent = e.is_permanent() && !soft_auth;
                        let dsn = match &*e {
                            ClientError::TlsNotOffered
                            | ClientError::StartTlsRefused(_)
                            | ClientError::TlsHandshake => "4.7.5".to_string(),
                            ClientError::Auth(r) => soft_dsn(&r.dsn().to_string()),
                            ClientError::Helo(r) | ClientError::Greeting(r) => r.dsn().to_string(),
                            _ => {
                                if permanent {
                                    "5.5.0".into()
                                } else {
                                    "4.4.2".into()
                                }
                            }
                        };
                        if matches!(&*e, ClientError::TlsNotOffered) {
                            results.tls_attempts.push(TlsAttempt {
                                policy_domain: policy.nexthop_domain().to_string(),
                                level: t.level,
                                host: t.host.clone(),
                                addr: t.addr,
                                port: t.port,
                                outcome: TlsOutcome::Failure {
                                    kind: crate::tls::FailureKind::StarttlsNotSupported,
                                    reason: "STARTTLS not offered".into(),
                                },
                            });
                        }
                        return Err(HostFailure {
                            text: e.describe(&hostaddr),
                            dsn,
                            permanent,
                            reached: true,
                            tls: false,
                        });
                    }
                    ClientAction::Close => {
                        let _ = timeout(Duration::from_secs(5), stream.shutdown()).await;
                        return Ok(());
                    }
                }
            }
            if sess.is_closed() {
                return Ok(());
            }
            // Feed buffered reply lines, or read more.
            match splitter.next_line(&buf) {
                Some(Ok(line)) => {
                    if conn_secs == 0.0 {
                        // The latest reply before the session is ready (for
                        // the log line of a refused STARTTLS).
                        last_reply.clear();
                        last_reply.push_str(&String::from_utf8_lossy(line));
                    }
                    actions.extend(sess.reply_line(line));
                    continue;
                }
                Some(Err(_)) => {
                    return Err(HostFailure {
                        text: format!("malformed reply from {hostaddr}"),
                        dsn: "4.4.2".into(),
                        permanent: false,
                        reached: true,
                        tls: false,
                    })
                }
                None => {}
            }
            let limit = if current.is_some() { data_t } else { helo_t };
            let spare = splitter.spare(&mut buf);
            match timeout(limit, stream.read(spare)).await {
                Some(Ok(0)) | Some(Err(_)) if eod_sent => {
                    let mut f = lost("sending end of data");
                    f.text.push_str(maybe_twice);
                    return Err(f);
                }
                Some(Ok(0)) | Some(Err(_)) => {
                    return Err(lost(if current.is_some() {
                        "sending message"
                    } else {
                        "receiving the initial server greeting"
                    }))
                }
                Some(Ok(n)) => splitter.filled(REPLY_BUF, n),
                None => {
                    return Err(HostFailure {
                        text: if eod_sent {
                            format!("conversation with {hostaddr} timed out while sending end of data{maybe_twice}")
                        } else {
                            format!("conversation with {hostaddr} timed out")
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

    #[allow(clippy::too_many_arguments)]
    async fn handshake(
        &self,
        stream: &mut Stream,
        client_cfg: &Arc<rustls::ClientConfig>,
        server_name: &ServerName<'static>,
        verifier: &Arc<TernVerifier>,
        recorder: &ChainRecorder,
        t: &Target,
        policy: &EffectivePolicy<'_>,
        results: &mut DeliveryResults,
        hostaddr: &str,
        limit: Duration,
    ) -> Result<(), HostFailure> {
        let r = timeout(
            limit,
            stream.start_tls_client(client_cfg.clone(), server_name.clone()),
        )
        .await;
        let err: Option<String> = match &r {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(e.to_string()),
            None => Some("handshake timed out".into()),
        };
        let outcome = verifier.outcome(err.as_ref().map(|e| e as &dyn std::fmt::Display));
        if self.probing {
            if let Ok(c) = recorder.chain.lock() {
                results.peer_chain = c.clone();
            }
        }
        results.tls_attempts.push(TlsAttempt {
            policy_domain: policy.nexthop_domain().to_string(),
            level: t.level,
            host: t.host.clone(),
            addr: t.addr,
            port: t.port,
            outcome: outcome.clone(),
        });
        match (err, outcome) {
            (None, TlsOutcome::Success(trust)) => {
                if let Some(s) = stream.tls_summary() {
                    let line = s.client_log(trust, &t.host, t.addr, t.port).to_string();
                    if self.ctx.cfg.int("smtp_tls_loglevel") > 0 {
                        log::info!(target: "smtp", "{line}");
                    }
                    results.tls_established.push(line);
                }
                if let Some(m) = verifier.dane_match() {
                    // Postfix logs match details only at smtp_tls_loglevel 2.
                    if self.ctx.cfg.int("smtp_tls_loglevel") >= 2 {
                        log::info!(target: "smtp", "{}", m.postfix_log_line(&format!("{hostaddr}:{}", t.port)));
                    }
                    self.note(match &m {
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
                Ok(())
            }
            (_, TlsOutcome::Failure { kind, reason })
                if matches!(t.level, Level::Dane | Level::DaneOnly) =>
            {
                // DANE's texts are decided with the DANE step.
                let text = match kind {
                    crate::tls::FailureKind::ValidationFailure => {
                        format!("Cannot start TLS: handshake failure with {hostaddr}: {reason}")
                    }
                    _ => format!(
                        "Server certificate not verified: {hostaddr}: {reason} ({})",
                        kind.as_str()
                    ),
                };
                Err(HostFailure {
                    text,
                    dsn: "4.7.5".into(),
                    permanent: false,
                    reached: true,
                    tls: true,
                })
            }
            (_, TlsOutcome::Failure { kind, reason }) => {
                let text = tls_failure_text(kind);
                log_tls_failure(kind, &format!("{hostaddr}:{}", t.port), &reason);
                Err(HostFailure {
                    text: text.into(),
                    dsn: "4.7.5".into(),
                    permanent: false,
                    reached: true,
                    tls: true,
                })
            }
            (Some(e), TlsOutcome::Success(_)) => {
                let kind = crate::tls::FailureKind::ValidationFailure;
                log_tls_failure(kind, &format!("{hostaddr}:{}", t.port), &e);
                Err(HostFailure {
                    text: tls_failure_text(kind).into(),
                    dsn: "4.7.5".into(),
                    permanent: false,
                    reached: true,
                    tls: true,
                })
            }
        }
    }

    /// Reads the queue file body and sends it dot-stuffed, CRLF only.
    async fn send_body(
        &self,
        spool: &Spool,
        id: &str,
        stream: &mut Stream,
        limit: Duration,
    ) -> Result<(), String> {
        let mut reader = spool
            .open_message(id)
            .map_err(|e| format!("cannot read queue file {id}: {e}"))?;
        let mut stuffer = DotStuffer::new();
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

    /// SMTP AUTH credentials for this server, from `smtp_sasl_password_maps`.
    fn credentials(&self, host: &str) -> Option<(String, String)> {
        if !self.ctx.cfg.bool("smtp_sasl_auth_enable") {
            return None;
        }
        let q = crate::policy::sasl::SaslQuery {
            sender: None,
            hostname: host,
            nexthop: &self.dest,
        };
        crate::policy::sasl::lookup_maps(&self.ctx.tables.sasl, &q)
            .map(|c| (c.username.to_string(), c.password.to_string()))
    }
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

/// Whether any recipient of `e` is still to be delivered.
pub fn has_pending(e: &QueueEntry) -> bool {
    e.rcpts
        .iter()
        .any(|r| matches!(r.status, QStatus::Pending | QStatus::Deferred { .. }))
}

/// The deferral reason for a failed TLS session outside DANE, exactly as
/// Postfix's smtp_start_tls() words it, so that log summaries (pflogsumm's
/// per-reason counts) group tern's lines as they group Postfix's: the
/// handshake failed; the chain did not lead to a trust anchor (or, at
/// `fingerprint`, no fingerprint matched: Postfix sets trust and match
/// together there); or no certificate name matched. The detail goes to the
/// separate line of [`log_tls_failure`].
pub fn tls_failure_text(kind: crate::tls::FailureKind) -> &'static str {
    use crate::tls::FailureKind as K;
    match kind {
        K::CertificateNotTrusted | K::CertificateExpired | K::TlsaInvalid => {
            "Server certificate not trusted"
        }
        K::CertificateHostMismatch => "Server certificate not verified",
        K::ValidationFailure | K::StarttlsNotSupported => "Cannot start TLS: handshake failure",
    }
}

/// Logs what went wrong in a failed TLS session, in the shape of the line
/// Postfix's TLS library writes before the deferral (`SSL_connect error to
/// host[addr]:port: ...` for a failed handshake, `server certificate
/// verification failed for host[addr]:port: ...` for a refused
/// certificate), with tern's reason and the RFC 8460 result type.
fn log_tls_failure(
    kind: crate::tls::FailureKind,
    namaddrport: &str,
    reason: &dyn std::fmt::Display,
) {
    use crate::tls::FailureKind as K;
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
        use crate::tls::FailureKind as K;
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
    fn postfix_number_format() {
        // As Postfix's format_tv(.., 2, 2) prints them.
        for (v, want) in [
            (0.0, "0"),
            (-1.0, "0"),
            (0.004, "0"),
            (0.005, "0.01"),
            (0.013, "0.01"),
            (0.37, "0.37"),
            (0.5, "0.5"),
            (0.10, "0.1"),
            (0.996, "1"),
            (1.0, "1"),
            (1.23, "1.2"),
            (1.26, "1.3"),
            (9.94, "9.9"),
            (9.96, "10"),
            (12.4, "12"),
            (12.5, "13"),
            (3600.2, "3600"),
        ] {
            assert_eq!(format_delay(v), want, "{v}");
        }
        assert_eq!(format_delay(f64::NAN), "0");
    }

    #[test]
    fn log_timing_from_timestamps() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = RcptResult::new(ResultKind::Sent, "mx[192.0.2.1]:25", "2.0.0", "250 ok");
        r.handoff = Some(at(90));
        r.conn = 0.21;
        r.done = Some(at(370));
        // Arrived at 0, picked at 80 ms, handed off at 90 ms, set up in
        // 210 ms, done at 370 ms; the log line is written later.
        let t = r.timing(t0, at(80), at(5_000));
        assert_eq!(t.fields(), "delay=0.37, delays=0.08/0.01/0.21/0.07");
        // No delivery (a routing decision): b runs to the log line.
        let r = RcptResult::new(ResultKind::Bounced, "none", "5.0.0", "no");
        assert_eq!(
            r.timing(t0, at(1_500), at(13_000)).fields(),
            "delay=13, delays=1.5/12/0/0"
        );
        // Clocks going back never give negative numbers.
        let mut r = RcptResult::new(ResultKind::Sent, "x", "2.0.0", "ok");
        r.handoff = Some(at(10));
        r.conn = 5.0;
        r.done = Some(at(20));
        assert_eq!(
            r.timing(at(100), at(50), at(20)).fields(),
            "delay=0, delays=0/0/5/0"
        );
    }

    #[test]
    fn arrival_from_queue_id() {
        let t = arrival_time("5A1C30992052", 1_700_000_000);
        let want = SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + Duration::from_micros(0x5A1C3);
        assert_eq!(t, want);
        // Not hex, or out of range: whole seconds.
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(arrival_time("ZZZZZ12", 5), whole);
        assert_eq!(arrival_time("FFFFF12", 5), whole);
        assert_eq!(arrival_time("ab", 5), whole);
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
}
