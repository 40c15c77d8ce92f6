//! The two MTAs and the sink as the benchmarks run them: tern (a release
//! build) and Debian's Postfix, each relaying everything to its own
//! `smtp-sink` on loopback, with equal outbound concurrency.

use crate::common::ports::{free_port, wait_listening};
use crate::common::postfix::Postfix;
use crate::common::process::{run, Daemon};
use crate::common::tempdir::{read_lossy, write, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// smtp-sink without dumping messages (`-c` counters only).
pub struct Sink {
    _daemon: Daemon,
    dir: TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Sink {
    /// Starts one on a free port; panics if it does not listen in 10 s.
    pub fn start() -> Sink {
        let dir = TempDir::new("bench-sink");
        let port = free_port();
        let mut cmd = Command::new("smtp-sink");
        cmd.args(["-c", "-u", "nobody"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .current_dir(dir.path());
        let daemon = Daemon::spawn("smtp-sink", cmd, &dir.join("stdout"));
        assert!(
            wait_listening(port, Duration::from_secs(10)),
            "smtp-sink did not start"
        );
        Sink {
            _daemon: daemon,
            dir,
            port,
        }
    }

    /// Messages received so far (the last `mesg=` counter it printed).
    pub fn count(&self) -> usize {
        read_lossy(&self.dir.join("stdout"))
            .rsplit("mesg=")
            .next()
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until it counted `n`; false at `deadline`.
    pub fn wait(&self, n: usize, deadline: Instant) -> bool {
        while self.count() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// How to run one MTA instance.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Where to relay everything (`relayhost = [127.0.0.1]:PORT`).
    pub sink_port: u16,
    /// Server certificate chain and key: STARTTLS offered inbound.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// `default_destination_concurrency_limit`, the same for both.
    pub concurrency: usize,
    /// Inbound sessions it must take at once (sizes tern's
    /// `max_connections` and Postfix's `default_process_limit`).
    pub max_sessions: usize,
    /// Environment for every process that may sync (the slow-flash shim).
    pub env: Vec<(String, String)>,
}

/// tern under test, configured like bench/throughput (send-only relay).
pub struct BenchTern {
    daemon: Daemon,
    dir: TempDir,
    /// Its SMTP port on 127.0.0.1.
    pub port: u16,
}

impl BenchTern {
    /// Writes the configuration and starts `BIN run -f`; panics with
    /// tern's output if it does not listen within 20 s.
    pub fn start(bin: &Path, s: &Setup) -> BenchTern {
        let dir = TempDir::new("bench-tern");
        let port = free_port();
        let conf = dir.join("tern.conf");
        let mut text = format!(
            "myhostname = tern.example.org\nmydestination =\nmynetworks = 127.0.0.0/8\n\
             smtp_listen = 127.0.0.1:{port}\nqueue_directory = {}\nmaillog_file = {}\n\
             syslog_socket =\nmail_owner = nobody\ndns_resolvers = 127.0.0.1:9\n\
             relayhost = [127.0.0.1]:{}\nsmtp_tls_security_level = none\n\
             default_destination_concurrency_limit = {}\nmax_connections = {}\n",
            dir.subdir("spool").display(),
            dir.join("maillog").display(),
            s.sink_port,
            s.concurrency,
            // Inbound sessions plus the outbound ones, plus a margin.
            s.max_sessions + s.concurrency + 8,
        );
        if let Some((chain, key)) = &s.cert {
            text += &format!(
                "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n",
                chain.display(),
                key.display()
            );
        }
        write(&conf, text);
        let mut cmd = Command::new(bin);
        cmd.args(["run", "-f", "-c"]).arg(&conf);
        for (k, v) in &s.env {
            cmd.env(k, v);
        }
        let mut daemon = Daemon::spawn("tern", cmd, &dir.join("tern.out"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !wait_listening(port, Duration::from_millis(50)) {
            assert!(
                daemon.exited().is_none() && Instant::now() < deadline,
                "tern did not start: {}",
                daemon.output()
            );
        }
        BenchTern { daemon, dir, port }
    }

    /// The daemon's pid, also its process group.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The queue directory.
    pub fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// Stops it (SIGTERM to the group, SIGKILL after a bound).
    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}

/// Debian's default `import_environment` (`postconf -d`), to extend.
fn default_import_environment() -> String {
    let mut cmd = Command::new("postconf");
    cmd.args(["-dh", "import_environment"]);
    let out = run(cmd, None, Duration::from_secs(20));
    let v = out.stdout.trim().to_string();
    if out.success() && !v.is_empty() {
        v
    } else {
        "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C POSTLOG_SERVICE \
         POSTLOG_HOSTNAME"
            .into()
    }
}

/// Starts a private Postfix (tests/common/postfix) set up like tern: relay
/// to the sink without TLS, the same destination concurrency, STARTTLS
/// inbound with the same certificate. `s.env` goes into
/// `import_environment`: master passes its daemons nothing else.
pub fn start_postfix(s: &Setup) -> Postfix {
    let mut b = Postfix::builder()
        .hostname("postfix.example.org")
        .relayhost(s.sink_port)
        .main_cf(
            "default_destination_concurrency_limit",
            &s.concurrency.to_string(),
        )
        .main_cf(
            "default_process_limit",
            &(s.max_sessions + s.concurrency + 20).to_string(),
        );
    if let Some((chain, key)) = &s.cert {
        b = b.tls(chain, key);
    }
    if !s.env.is_empty() {
        let mut v = default_import_environment();
        for (k, val) in &s.env {
            v += &format!(" {k}={val}");
        }
        b = b.main_cf("import_environment", &v);
    }
    b.start()
}

/// Regular files below `dir` (recursively), except the names in `skip`
/// at the top level: the messages still in a queue.
pub fn queue_files(dir: &Path, skip: &[&str]) -> usize {
    fn walk(d: &Path, top: bool, skip: &[&str]) -> usize {
        let Ok(rd) = std::fs::read_dir(d) else {
            return 0;
        };
        rd.flatten()
            .map(|e| {
                let name = e.file_name();
                if top && skip.iter().any(|s| name == *s) {
                    return 0;
                }
                match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path(), false, skip),
                    Ok(t) if t.is_file() => 1,
                    _ => 0,
                }
            })
            .sum()
    }
    walk(dir, true, skip)
}
