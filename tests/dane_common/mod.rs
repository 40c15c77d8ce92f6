//! Shared fixtures of the DANE integration tests (`tests/dane_*.rs`): a
//! tern daemon with a config file in a temp dir, the signed zone that
//! points a recipient domain at a loopback receiver, and a log watcher.
//!
//! Include it after `mod common;` with `mod dane_common;`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::dnssec::{DnsWorld, Signing, Zone};
use crate::common::ports::{free_port, wait_listening};
use crate::common::process::{run, Daemon, RunOutput};
use crate::common::tempdir::{read_lossy, write, TempDir};
use crate::common::tools::Swaks;

/// The recipient domain of every test; its MX is [`MX_HOST`].
pub const DOMAIN: &str = "example.test";
/// The MX host name; its A record is 127.0.0.1, its TLSA base domain is
/// itself (`_PORT._tcp.mx.example.test`).
pub const MX_HOST: &str = "mx.example.test";
/// Generous bound for anything tern does in one delivery attempt on a
/// loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// The zone-file lines of `example.test`: `MX 10 mx`, `mx A 127.0.0.1`, and
/// the given TLSA records (presentation form, e.g. `3 1 1 ab12...`) at
/// `_PORT._tcp.mx` — the port tern connects to (`smtp_tcp_port`), which
/// is the TLSA owner name RFC 6698 §3 and RFC 7672 §2.2 prescribe.
pub fn mx_records(port: u16, tlsa: &[&str]) -> String {
    let mut s = String::from("@ IN MX 10 mx\nmx IN A 127.0.0.1\n");
    for t in tlsa {
        s.push_str(&format!("_{port}._tcp.mx IN TLSA {t}\n"));
    }
    s
}

/// A DNS world with `example.test` published as `signing`, MX -> mx ->
/// 127.0.0.1, and the given TLSA records for `port`.
pub fn world(signing: Signing, port: u16, tlsa: &[&str]) -> DnsWorld {
    DnsWorld::start(&[Zone::new(DOMAIN, signing, &mx_records(port, tlsa))])
}

/// Starts `tern run -f -c conf` (output appended to `dir/tern.out`) and
/// waits until it listens on `smtp_port`.
fn spawn_daemon(dir: &TempDir, conf: &Path, smtp_port: u16) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tern"));
    cmd.args(["run", "-f", "-c"]).arg(conf);
    let mut daemon = Daemon::spawn("tern", cmd, &dir.join("tern.out"));
    let deadline = Instant::now() + WAIT;
    while !wait_listening(smtp_port, Duration::from_millis(50)) {
        if let Some(st) = daemon.exited() {
            panic!("tern exited ({st}):\n{}", daemon.output());
        }
        assert!(
            Instant::now() < deadline,
            "tern not listening on {smtp_port}:\n{}",
            daemon.output()
        );
    }
    daemon
}

/// A running `tern run -f` with its own spool, maillog and config.
pub struct Tern {
    /// Field order is drop order: the daemon before its directory.
    daemon: Daemon,
    dir: TempDir,
    /// The config file (`-c`).
    pub conf: PathBuf,
    /// tern's SMTP listener (127.0.0.1).
    pub smtp_port: u16,
}

impl Tern {
    /// Starts tern delivering MX-style to `smtp_tcp_port = mx_port`, with
    /// `dns_resolvers = resolver` and `extra` config lines appended (they
    /// override the defaults above them). Waits until the listener is up.
    pub fn start(resolver: SocketAddr, mx_port: u16, extra: &str) -> Tern {
        let dir = TempDir::new("tern-dane");
        let smtp_port = free_port();
        let conf = dir.join("tern.conf");
        let d = dir.path().display();
        write(
            &conf,
            format!(
                "myhostname = tern.client.test\n\
                 mydomain = client.test\n\
                 mydestination =\n\
                 relayhost =\n\
                 inet_protocols = ipv4\n\
                 smtp_listen = 127.0.0.1:{smtp_port}\n\
                 queue_directory = {d}/spool\n\
                 maillog_file = {d}/maillog\n\
                 syslog_socket =\n\
                 mail_owner = nobody\n\
                 dns_resolvers = {resolver}\n\
                 smtp_tcp_port = {mx_port}\n\
                 smtp_tls_security_level = dane\n\
                 smtp_tls_loglevel = 2\n\
                 minimal_backoff_time = 300s\n\
                 maximal_backoff_time = 600s\n\
                 syslog_level = debug\n\
                 {extra}\n"
            ),
        );
        let daemon = spawn_daemon(&dir, &conf, smtp_port);
        Tern {
            daemon,
            dir,
            conf,
            smtp_port,
        }
    }

    /// Stops the daemon and starts it again on the same config, spool and
    /// maillog (what survives a restart: the queue, on-disk caches).
    pub fn restart(&mut self) {
        self.daemon.stop();
        self.daemon = spawn_daemon(&self.dir, &self.conf, self.smtp_port);
    }

    /// Runs `tern ARGS -c CONF` (a command-line tool on this instance's
    /// config, e.g. `["flush"]`) and returns its output.
    pub fn command(&self, args: &[&str]) -> RunOutput {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tern"));
        cmd.args(args).arg("-c").arg(&self.conf);
        run(cmd, None, WAIT)
    }

    /// Submits one message to `rcpt` over SMTP to tern's listener (swaks;
    /// 127.0.0.1 is in `mynetworks`, so relaying is allowed).
    // Not `tern sendmail`: run as root (as the tests are) it leaves
    // root-owned spool files that the daemon, running as `mail_owner`,
    // cannot open.
    pub fn send(&self, rcpt: &str, subject: &str) {
        let r = Swaks::new(self.smtp_port)
            .from("sender@client.test")
            .to(rcpt)
            .header("Subject", subject)
            .run();
        assert!(
            r.ok() && r.transcript.contains("queued as"),
            "submission to tern failed:\n{}\n{}",
            r.transcript,
            self.diagnostics()
        );
    }

    /// `tern flush`: retry the deferred mail now.
    pub fn flush(&self) {
        let out = self.command(&["flush"]);
        assert!(out.success(), "tern flush failed: {}", out.combined());
    }

    /// The maillog so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("maillog"))
    }

    /// Waits for a maillog line containing every one of `needles`; panics
    /// with the log after [`WAIT`].
    pub fn wait_line(&self, needles: &[&str]) -> String {
        self.wait_nth_line(needles, 1)
    }

    /// Waits until `n` maillog lines contain every one of `needles`;
    /// returns the n-th. Panics with the log after [`WAIT`].
    pub fn wait_nth_line(&self, needles: &[&str], n: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if let Some(l) = log
                .lines()
                .filter(|l| needles.iter().all(|x| l.contains(x)))
                .nth(n - 1)
            {
                return l.to_string();
            }
            if Instant::now() >= deadline {
                panic!(
                    "no maillog line #{n} with {needles:?} after {WAIT:?}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first delivery result line for `rcpt` (`to=<rcpt>, ... status=`).
    pub fn wait_status(&self, rcpt: &str) -> String {
        self.wait_line(&[&format!("to=<{rcpt}>"), "status="])
    }

    /// Every maillog line of the TLS handshake log (`... TLS connection
    /// established to ...`).
    pub fn tls_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("TLS connection established to"))
            .map(str::to_string)
            .collect()
    }

    /// The maillog and tern's stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- tern maillog\n{}--- tern output\n{}",
            self.log(),
            self.daemon.output()
        )
    }
}

impl Drop for Tern {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        self.daemon.stop();
    }
}
