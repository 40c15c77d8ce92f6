//! tern itself as a test peer for the delivery tests: a private instance
//! (`tern run -f -c FILE`) with its own spool, maillog and listener, plus
//! the front ends (`mailq`, `flush`, `probe`) run against it.
//!
//! Used with `mod common; mod delivery_harness;` from `tests/delivery_*.rs`.

#![allow(dead_code)]

use crate::common::ports::{free_port, wait_listening};
use crate::common::process::{run, Daemon, RunOutput};
use crate::common::tempdir::{read_lossy, write, TempDir};
use crate::common::tools::Swaks;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The tern binary cargo built for these tests.
pub const TERN: &str = env!("CARGO_BIN_EXE_tern");

/// Builder for [`Tern`]: `key = value` lines on top of test defaults.
#[derive(Debug)]
pub struct TernBuilder {
    dir: TempDir,
    settings: Vec<(String, String)>,
}

/// A running tern daemon; stopped and removed on drop.
#[derive(Debug)]
pub struct Tern {
    daemon: Option<Daemon>,
    conf: PathBuf,
    port: u16,
    dir: TempDir,
}

impl TernBuilder {
    /// Sets (or overrides) a configuration key.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.settings.retain(|(k, _)| k != key);
        self.settings.push((key.into(), value.into()));
        self
    }

    /// Writes a table file into the instance directory and returns its
    /// `texthash:PATH` spec.
    pub fn table(&self, name: &str, contents: &str) -> String {
        let p = self.dir.join(name);
        write(&p, contents);
        format!("texthash:{}", p.display())
    }

    /// `relayhost = [127.0.0.1]:port`.
    pub fn relay_to(self, port: u16) -> Self {
        self.set("relayhost", &format!("[127.0.0.1]:{port}"))
    }

    /// Writes the config and runs `tern check-config -c FILE` on it
    /// instead of starting the daemon.
    pub fn check_config(self) -> RunOutput {
        let conf = self.write_conf(free_port());
        let mut cmd = Command::new(TERN);
        cmd.arg("check-config").arg("-c").arg(&conf);
        run(cmd, None, Duration::from_secs(30))
    }

    /// Writes the config, starts the daemon, waits for its listener.
    pub fn start(self) -> Tern {
        let port = free_port();
        let conf = self.write_conf(port);
        let mut cmd = Command::new(TERN);
        cmd.args(["run", "-f", "-c"]).arg(&conf);
        let daemon = Daemon::spawn("tern", cmd, &self.dir.join("tern.out"));
        let mut t = Tern {
            daemon: Some(daemon),
            conf,
            port,
            dir: self.dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !wait_listening(port, Duration::from_millis(50)) {
            let exited = t.daemon.as_mut().and_then(|d| d.exited());
            if exited.is_some() || Instant::now() >= deadline {
                panic!("tern did not start ({exited:?}):\n{}", t.diagnostics());
            }
        }
        t
    }

    /// Writes `tern.conf` (test defaults, then the settings) with the
    /// listener on `port`; returns its path.
    fn write_conf(&self, port: u16) -> PathBuf {
        let spool = self.dir.subdir("spool");
        let mut text = String::new();
        let defaults = [
            ("myhostname", "tern.example.net".to_string()),
            ("mydomain", "example.net".to_string()),
            ("mydestination", String::new()),
            ("smtp_listen", format!("127.0.0.1:{port}")),
            ("mynetworks", "127.0.0.0/8".to_string()),
            ("queue_directory", spool.display().to_string()),
            (
                "maillog_file",
                self.dir.join("maillog").display().to_string(),
            ),
            ("syslog_socket", String::new()),
            ("mail_owner", "nobody".to_string()),
            // No DNS is needed for [ip] next hops; keep the resolver local.
            ("dns_resolvers", "127.0.0.1:9".to_string()),
            ("queue_run_delay", "1s".to_string()),
            ("minimal_backoff_time", "1s".to_string()),
            ("maximal_backoff_time", "2s".to_string()),
            ("smtp_connect_timeout", "5s".to_string()),
            ("smtp_helo_timeout", "10s".to_string()),
            ("max_connections", "32".to_string()),
        ];
        for (k, v) in defaults {
            if !self.settings.iter().any(|(key, _)| key == k) {
                text.push_str(&format!("{k} = {v}\n"));
            }
        }
        for (k, v) in &self.settings {
            text.push_str(&format!("{k} = {v}\n"));
        }
        let conf = self.dir.join("tern.conf");
        write(&conf, &text);
        conf
    }
}

impl Tern {
    /// A builder with the test defaults (see [`TernBuilder::start`]).
    pub fn builder() -> TernBuilder {
        TernBuilder {
            dir: TempDir::new("tern"),
            settings: Vec::new(),
        }
    }

    /// The inbound SMTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The config file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The maillog path.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("maillog")
    }

    /// The maillog text so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    /// Lines of the maillog containing every needle.
    pub fn log_lines(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    /// Waits until at least `n` maillog lines contain every needle; returns
    /// them, or panics with the diagnostics after `timeout`.
    pub fn wait_log(&self, needles: &[&str], n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.log_lines(needles);
            if lines.len() >= n {
                return lines;
            }
            if Instant::now() >= deadline {
                panic!(
                    "tern: {} of {n} log lines with {needles:?} after {timeout:?}\n{}",
                    lines.len(),
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Submits one message over SMTP (swaks) and returns its queue ID.
    pub fn submit(&self, from: &str, to: &str, subject: &str) -> String {
        let r = Swaks::new(self.port)
            .from(from)
            .to(to)
            .header("Subject", subject)
            .run();
        assert!(
            r.ok(),
            "swaks into tern failed:\n{}\n{}",
            r.transcript,
            self.diagnostics()
        );
        r.queue_id()
            .unwrap_or_else(|| panic!("no queue id in:\n{}", r.transcript))
    }

    /// Runs `tern SUB -c CONF ARGS...`.
    pub fn command(&self, sub: &str, args: &[&str]) -> RunOutput {
        let mut cmd = Command::new(TERN);
        cmd.arg(sub).arg("-c").arg(&self.conf).args(args);
        run(cmd, None, Duration::from_secs(30))
    }

    /// `tern mailq` output.
    pub fn mailq(&self) -> String {
        let out = self.command("mailq", &[]);
        assert!(out.success(), "tern mailq: {}", out.combined());
        out.stdout
    }

    /// `tern flush`.
    pub fn flush(&self) {
        let out = self.command("flush", &[]);
        assert!(out.success(), "tern flush: {}", out.combined());
    }

    /// Waits until `tern mailq` reports an empty queue.
    pub fn wait_queue_empty(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let q = self.mailq();
            if q.contains("Mail queue is empty") {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "queue not empty after {timeout:?}:\n{q}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Daemon output and maillog, for failure messages.
    pub fn diagnostics(&self) -> String {
        let out = self.daemon.as_ref().map(|d| d.output()).unwrap_or_default();
        format!(
            "--- tern {} output\n{out}--- tern maillog\n{}",
            self.dir.path().display(),
            self.log()
        )
    }

    /// Stops the daemon. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }
}

impl Drop for Tern {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        self.stop();
    }
}

/// The value of `key=` in a log line (up to the next `, ` or end).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    Some(rest.split(", ").next().unwrap_or(rest))
}
