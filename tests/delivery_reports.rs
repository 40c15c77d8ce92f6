//! The queue manager hands every TLS attempt, with its policy descriptor,
//! to the report sink (issue 10). The real [`QueueManager`] runs in this
//! process on a `LocalExecutor`, with a spool in a temporary directory and
//! a recording [`TlsReportSink`] put in its [`Context`]; a real Postfix on
//! loopback receives. Postfix's own log counts the handshakes tern made,
//! so the number of recorded attempts is checked against the peer, not
//! against a guess.

mod common;

use common::certs::{self_signed, KeyKind};
use common::postfix::Postfix;
use common::tempdir::{write, TempDir};
use smol::LocalExecutor;
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tern::config::Config;
use tern::delivery::context::context;
use tern::delivery::report::{TlsAttempt, TlsReportSink};
use tern::delivery::QueueManager;
use tern::policy::plan::{PolicyDescriptor, PolicyType};
use tern::policy::Level;
use tern::queue::{clock, NewMessage, QueueDir, Recipient, Spool, Status};
use tern::tls::{BufferPool, FailureKind, TlsOutcome, Trust};

/// Every wait is bounded by this.
const T: Duration = Duration::from_secs(30);

/// The greeting name of the receiving Postfix (its `myhostname`).
const MX_NAME: &str = "mx-reports.example.test";

/// The sink under test: keeps every attempt, in order.
#[derive(Default)]
struct Recorder {
    attempts: RefCell<Vec<TlsAttempt>>,
}

impl TlsReportSink for Recorder {
    fn record(&self, attempt: &TlsAttempt) {
        self.attempts.borrow_mut().push(attempt.clone());
    }
}

impl Recorder {
    fn len(&self) -> usize {
        self.attempts.borrow().len()
    }

    fn all(&self) -> Vec<TlsAttempt> {
        self.attempts.borrow().clone()
    }
}

/// tern's queue manager in this process: spool, executor, recording sink.
struct InProcess {
    ex: Rc<LocalExecutor<'static>>,
    spool: Rc<Spool>,
    sink: Rc<Recorder>,
    _dir: TempDir,
}

impl InProcess {
    /// Writes a configuration relaying to `[127.0.0.1]:port` with `extra`
    /// settings on top, and a texthash table per `tables` entry (its spec
    /// replaces `{name}` in the values), then builds the queue manager with
    /// the recorder as its report sink. Nothing runs until [`Self::drive`].
    fn new(port: u16, extra: &[(&str, &str)], tables: &[(&str, &str)]) -> InProcess {
        let dir = TempDir::new("reports");
        let queue_dir = dir.subdir("spool");
        let mut specs: Vec<(String, String)> = Vec::new();
        for (name, contents) in tables {
            let p = dir.join(name);
            write(&p, contents);
            specs.push((format!("{{{name}}}"), format!("texthash:{}", p.display())));
        }
        let mut text = format!(
            "myhostname = tern.example.net\n\
             mydomain = example.net\n\
             mydestination =\n\
             queue_directory = {}\n\
             syslog_socket =\n\
             mail_owner =\n\
             dns_resolvers = 127.0.0.1:9\n\
             relayhost = [127.0.0.1]:{port}\n\
             queue_run_delay = 1s\n\
             smtp_connect_timeout = 5s\n\
             smtp_helo_timeout = 10s\n\
             max_connections = 8\n\
             minimal_backoff_time = 300s\n\
             maximal_backoff_time = 600s\n",
            queue_dir.display()
        );
        for (k, v) in extra {
            let mut v = v.to_string();
            for (placeholder, spec) in &specs {
                v = v.replace(placeholder, spec);
            }
            text.push_str(&format!("{k} = {v}\n"));
        }
        let cfg = Rc::new(
            Config::parse_str(&text, "delivery_reports")
                .unwrap_or_else(|e| panic!("config: {e:?}\n{text}")),
        );
        let spool = Rc::new(Spool::open(&queue_dir).expect("open spool"));
        let pool = Rc::new(BufferPool::new(8));
        let qm = QueueManager::new(cfg.clone(), spool.clone(), pool.clone()).expect("qmgr");
        // The daemon's path for a new configuration, with the recorder in
        // place of the context's default sink.
        let sink = Rc::new(Recorder::default());
        let mut ctx = context(cfg, pool).expect("context");
        ctx.reports = sink.clone();
        qm.install(ctx);
        let ex = Rc::new(LocalExecutor::new());
        qm.spawn(&ex, &queue_dir).expect("spawn qmgr");
        InProcess {
            ex,
            spool,
            sink,
            _dir: dir,
        }
    }

    /// Queues a message to `rcpt` with `subject`; returns its queue ID.
    fn submit(&self, rcpt: &str, subject: &str) -> String {
        let rcpts = [Recipient::new(rcpt)];
        let mut inc = self
            .spool
            .create(&NewMessage {
                sender: "alice@example.net",
                recipients: &rcpts,
                arrival: clock::now(),
                client: "local",
                flags: Default::default(),
                size_limit: 0,
                deferred: false,
            })
            .expect("create");
        let body =
            format!("From: alice@example.net\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nhello\r\n");
        inc.write(body.as_bytes()).expect("write");
        inc.commit().expect("commit")
    }

    /// Runs the executor until `done` holds (checked every 20 ms) or
    /// `timeout`; returns whether it held.
    fn drive(&self, timeout: Duration, done: impl Fn(&InProcess) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        smol::block_on(self.ex.run(async {
            loop {
                if done(self) {
                    return true;
                }
                if Instant::now() >= deadline {
                    return false;
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        }))
    }

    /// Runs the executor for `d`, whatever happens.
    fn idle(&self, d: Duration) {
        smol::block_on(self.ex.run(smol::Timer::after(d)));
    }

    /// Messages left in the spool, as (ID, directory, first recipient's
    /// status and last text).
    fn queue(&self) -> Vec<(String, QueueDir, Status, String)> {
        let report = self.spool.scan().expect("scan");
        report
            .entries
            .into_iter()
            .map(|e| {
                let r = e.rcpts[0].clone();
                (e.id().to_string(), e.dir, r.status, r.last_text)
            })
            .collect()
    }

    fn spool_dir(&self) -> PathBuf {
        self.spool.root().to_path_buf()
    }
}

/// The sum of `key=N` over Postfix's `disconnect from` lines (smtpd's
/// per-session command counts).
fn disconnect_sum(pf: &Postfix, key: &str) -> usize {
    pf.log()
        .lines()
        .filter(|l| l.contains(": disconnect from "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(|n| n.parse::<usize>().unwrap_or(0))
        .sum()
}

/// The attempt tern should record for a connection to `port` at `level`
/// with the relayhost `[127.0.0.1]:port` and no DANE or MTA-STS policy.
fn expected(port: u16, level: Level, outcome: TlsOutcome) -> TlsAttempt {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    TlsAttempt {
        policy: PolicyDescriptor {
            kind: PolicyType::NoPolicyFound,
            // The next hop without brackets and port.
            domain: "127.0.0.1".into(),
            strings: Vec::new(),
            mx_patterns: Vec::new(),
        },
        level,
        host: "127.0.0.1".into(),
        addr: lo,
        port,
        helo: Some(MX_NAME.into()),
        sending_ip: Some(lo),
        reused: false,
        outcome,
        tlsrpt: None,
    }
}

/// Two messages at `may` to a Postfix with a self-signed certificate, at
/// `default_destination_concurrency_limit = concurrency`: both are
/// delivered, and the sink holds one successful attempt per handshake
/// Postfix saw, which must be `sessions`.
fn may_delivers_and_records_each_handshake(concurrency: u32, sessions: usize) {
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder()
        .hostname(MX_NAME)
        .tls(&leaf.chain, &leaf.key)
        .start();
    let port = pf.smtp_port();
    let limit = concurrency.to_string();
    let tern = InProcess::new(
        port,
        &[
            ("smtp_tls_security_level", "may"),
            ("default_destination_concurrency_limit", &limit),
        ],
        &[],
    );
    tern.submit("bob@example.test", "reports-1");
    tern.submit("carol@example.test", "reports-2");
    let emptied = tern.drive(T, |t| t.queue().is_empty());
    assert!(
        emptied,
        "spool {} not empty after {T:?}: {:?}\nattempts: {:#?}",
        tern.spool_dir().display(),
        tern.queue(),
        tern.sink.all()
    );
    pf.wait_for_message(2, T);

    // Postfix's view: every session logs `disconnect from ... starttls=N
    // mail=N`; once both messages are accounted for, every session that
    // carried one has logged.
    let deadline = Instant::now() + T;
    while disconnect_sum(&pf, "mail") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(disconnect_sum(&pf, "mail"), 2, "{}", pf.log());
    let starttls = disconnect_sum(&pf, "starttls");
    let established = pf
        .log()
        .lines()
        .filter(|l| l.contains("TLS connection established from"))
        .count();
    assert_eq!(starttls, established, "{}", pf.log());
    assert_eq!(
        established,
        sessions,
        "Postfix saw {established} handshakes, expected {sessions} sessions\n{}",
        pf.log()
    );

    let want = expected(port, Level::May, TlsOutcome::Success(Trust::Untrusted));
    let got = tern.sink.all();
    assert_eq!(
        got.len(),
        established,
        "one recorded attempt per handshake: {got:#?}"
    );
    for a in &got {
        assert_eq!(a, &want);
        assert_eq!(a.policy_domain(), "127.0.0.1");
    }
}

#[test]
fn may_one_session_records_one_attempt_for_two_messages() {
    // One session at a time: both messages go over one connection.
    may_delivers_and_records_each_handshake(1, 1);
}

#[test]
fn may_two_sessions_record_two_attempts() {
    // Two messages split over two parallel sessions: two handshakes.
    may_delivers_and_records_each_handshake(2, 2);
}

#[test]
fn encrypt_without_starttls_records_starttls_not_supported() {
    let pf = Postfix::builder().hostname(MX_NAME).start();
    let port = pf.smtp_port();
    let tern = InProcess::new(port, &[("smtp_tls_security_level", "encrypt")], &[]);
    let id = tern.submit("bob@example.test", "reports-encrypt");
    let deferred = tern.drive(T, |t| {
        t.sink.len() >= 1
            && matches!(
                t.queue().as_slice(),
                [(_, QueueDir::Deferred, Status::Deferred { .. }, _)]
            )
    });
    assert!(
        deferred,
        "no deferral after {T:?}: {:?}\nattempts: {:#?}",
        tern.queue(),
        tern.sink.all()
    );
    // Nothing more comes (the retry is minutes away).
    tern.idle(Duration::from_millis(1500));
    let q = tern.queue();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].0, id);
    assert_eq!(
        q[0].3,
        "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    );
    assert_eq!(
        tern.sink.all(),
        vec![expected(
            port,
            Level::Encrypt,
            TlsOutcome::Failure {
                kind: FailureKind::StarttlsNotSupported,
                reason: "STARTTLS not offered".into(),
            },
        )]
    );
    assert!(pf.messages().is_empty());
    assert!(!pf.log().contains("TLS connection established"));
}

#[test]
fn fingerprint_mismatch_records_certificate_not_trusted() {
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder()
        .hostname(MX_NAME)
        .tls(&leaf.chain, &leaf.key)
        .start();
    let port = pf.smtp_port();
    let wrong = "00:".repeat(31) + "00";
    let table = format!("[127.0.0.1]:{port} fingerprint match={wrong}\n");
    let tern = InProcess::new(
        port,
        &[
            ("smtp_tls_security_level", "may"),
            ("smtp_tls_policy_maps", "{tls_policy}"),
        ],
        &[("tls_policy", &table)],
    );
    let id = tern.submit("bob@example.test", "reports-fingerprint");
    let deferred = tern.drive(T, |t| {
        t.sink.len() >= 1
            && matches!(
                t.queue().as_slice(),
                [(_, QueueDir::Deferred, Status::Deferred { .. }, _)]
            )
    });
    assert!(
        deferred,
        "no deferral after {T:?}: {:?}\nattempts: {:#?}",
        tern.queue(),
        tern.sink.all()
    );
    tern.idle(Duration::from_millis(1500));
    let q = tern.queue();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].0, id);
    assert_eq!(
        tern.sink.all(),
        vec![expected(
            port,
            Level::Fingerprint,
            TlsOutcome::Failure {
                kind: FailureKind::CertificateNotTrusted,
                reason: format!("fingerprint mismatch: certificate {}", leaf.cert_sha256),
            },
        )]
    );
    assert!(pf.messages().is_empty());
}
