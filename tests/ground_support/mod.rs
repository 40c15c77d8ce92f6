//! The real `tern` binary in a temporary directory, for the ground-floor
//! tests (`tests/ground_*.rs`): a config file, the daemon started and
//! killed like an administrator would, and the front ends (`sendmail`,
//! `mailq`, `flush`, `check-config`) run as separate processes.

#![allow(dead_code)]

use crate::common::ports::{free_port, wait_listening};
use crate::common::process::{run, Daemon, RunOutput};
use crate::common::tempdir::{read_lossy, write, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// The binary under test.
pub const TERN: &str = env!("CARGO_BIN_EXE_tern");

/// Bound for one front-end command (sendmail, mailq, ...).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound for a daemon to start, deliver, log or exit on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// A tern set-up: temp dir with `tern.conf`, `spool/`, `maillog`, and at
/// most one running daemon.
pub struct Tern {
    /// The temp dir (removed on drop).
    pub dir: TempDir,
    /// `DIR/tern.conf`.
    pub conf: PathBuf,
    /// The SMTP listener port (127.0.0.1).
    pub port: u16,
    daemon: Option<Daemon>,
    starts: usize,
}

impl Tern {
    /// Writes `tern.conf`: loopback listener on a free port, spool and
    /// maillog in the temp dir, no syslog socket, `mail_owner = nobody`,
    /// then the `extra` lines (later lines win, as in main.cf).
    pub fn new(extra: &str) -> Tern {
        let dir = TempDir::new("ground");
        let port = free_port();
        let conf = dir.join("tern.conf");
        let t = Tern {
            conf,
            port,
            daemon: None,
            starts: 0,
            dir,
        };
        t.write_config(extra);
        t
    }

    /// Rewrites `tern.conf` with the base settings plus `extra`.
    pub fn write_config(&self, extra: &str) {
        let base = format!(
            "myhostname = tern.test\n\
             queue_directory = {spool}\n\
             smtp_listen = 127.0.0.1:{port}\n\
             maillog_file = {log}\n\
             syslog_socket =\n\
             mail_owner = nobody\n\
             {extra}\n",
            spool = self.spool().display(),
            port = self.port,
            log = self.maillog().display(),
        );
        write(&self.conf, base);
    }

    /// The queue directory.
    pub fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// The `maillog_file`.
    pub fn maillog(&self) -> PathBuf {
        self.dir.join("maillog")
    }

    /// The maillog so far.
    pub fn log(&self) -> String {
        read_lossy(&self.maillog())
    }

    /// Waits until the maillog holds at least `n` lines containing
    /// `needle`; returns the log, or panics with it after `timeout`.
    pub fn wait_log(&self, needle: &str, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.lines().filter(|l| l.contains(needle)).count() >= n {
                return log;
            }
            if Instant::now() >= deadline {
                panic!(
                    "maillog: fewer than {n} lines with {needle:?} after {timeout:?}\n{log}\n--- daemon output\n{}",
                    self.daemon_output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A command running the binary as `tern ARGS...`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(TERN);
        c.args(args).current_dir(self.dir.path());
        c
    }

    /// Runs `tern ARGS -c tern.conf` with `stdin`, bounded.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> RunOutput {
        let mut c = self.cmd(args);
        c.arg("-c").arg(&self.conf);
        run(c, stdin, CMD_TIMEOUT)
    }

    /// Runs the binary through a symlink named `name` (argv[0] dispatch)
    /// with `-C tern.conf` first, as scripts call `sendmail`.
    pub fn run_as(&self, name: &str, args: &[&str], stdin: Option<&[u8]>) -> RunOutput {
        let link = self.dir.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(TERN, &link)
                .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
        }
        let mut c = Command::new(&link);
        c.arg("-C")
            .arg(&self.conf)
            .args(args)
            .current_dir(self.dir.path());
        run(c, stdin, CMD_TIMEOUT)
    }

    /// `tern sendmail ARGS` with `message` on stdin; panics unless it exits 0.
    pub fn sendmail(&self, args: &[&str], message: &[u8]) -> RunOutput {
        let mut full = vec!["sendmail"];
        full.extend_from_slice(args);
        let out = self.run(&full, Some(message));
        assert!(out.success(), "tern sendmail {args:?} failed: {out:?}");
        out
    }

    /// `tern mailq` output; panics unless it exits 0.
    pub fn mailq(&self) -> String {
        let out = self.run(&["mailq"], None);
        assert!(out.success(), "tern mailq failed: {out:?}");
        out.stdout
    }

    /// Queue IDs of the message files in active/, deferred/ and hold/.
    pub fn queued_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for d in ["active", "deferred", "hold"] {
            if let Ok(rd) = std::fs::read_dir(self.spool().join(d)) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if !n.contains('.') {
                        ids.push(n);
                    }
                }
            }
        }
        ids.sort();
        // The directories are read one after the other: a message the
        // daemon renames from active/ to deferred/ in between is seen in
        // both (IDs are unique, so a repeat is always that).
        ids.dedup();
        ids
    }

    /// Starts `tern run -f -c tern.conf` and waits until it listens and has
    /// logged its `listening on` line (so the queue manager is running too).
    pub fn start(&mut self) {
        assert!(self.daemon.is_none(), "daemon already running");
        let out = self.dir.join(&format!("daemon.{}.out", self.starts));
        self.starts += 1;
        let before = self
            .log()
            .lines()
            .filter(|l| l.contains("listening on"))
            .count();
        let mut c = Command::new(TERN);
        c.args(["run", "-f", "-c"])
            .arg(&self.conf)
            .current_dir(self.dir.path());
        let mut d = Daemon::spawn("tern", c, &out);
        let deadline = Instant::now() + WAIT;
        while !wait_listening(self.port, Duration::from_millis(50)) {
            if let Some(st) = d.exited() {
                panic!("tern run exited ({st}) before listening:\n{}", d.output());
            }
            if Instant::now() >= deadline {
                panic!(
                    "tern run did not listen on {} within {WAIT:?}:\n{}",
                    self.port,
                    d.output()
                );
            }
        }
        self.daemon = Some(d);
        self.wait_log("listening on", before + 1, WAIT);
    }

    /// The running daemon's pid.
    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").pid()
    }

    /// Is the daemon still running?
    pub fn running(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(d) => d.exited().is_none(),
            None => false,
        }
    }

    /// What the daemon wrote on stdout/stderr (foreground log copy).
    pub fn daemon_output(&self) -> String {
        self.daemon.as_ref().map(|d| d.output()).unwrap_or_default()
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).unwrap();
        // SAFETY: plain syscall on our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
    }

    /// Sends `sig` and waits (bounded) for the daemon to exit; returns how.
    pub fn stop_with(&mut self, sig: libc::c_int) -> ExitStatus {
        self.signal(sig);
        let mut d = self.daemon.take().expect("daemon running");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = d.exited() {
                return st;
            }
            if Instant::now() >= deadline {
                panic!(
                    "tern did not exit within {WAIT:?} of signal {sig}:\n{}",
                    d.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (bounded) for the daemon to exit by itself or by a signal
    /// someone else sent (`tern stop`); returns how it exited.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut d = self.daemon.take().expect("daemon running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = d.exited() {
                return st;
            }
            if Instant::now() >= deadline {
                panic!("tern did not exit within {timeout:?}:\n{}", d.output());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -9` of the daemon (no chance to clean up).
    pub fn kill9(&mut self) {
        let st = self.stop_with(libc::SIGKILL);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL), "{st}");
    }
}

/// A test message as a script would pipe it to `sendmail -t`: LF line
/// ends, no Date or Message-ID.
pub fn message(to: &str, subject: &str) -> Vec<u8> {
    format!("From: cron@tern.test\nTo: {to}\nSubject: {subject}\n\nsent by {subject}\n")
        .into_bytes()
}

/// Parses `mailq` output into (queue ID, size, rest of the first line,
/// the error line if any, recipients) per entry.
pub fn mailq_entries(out: &str) -> Vec<MailqEntry> {
    let mut entries: Vec<MailqEntry> = Vec::new();
    for line in out.lines() {
        if line.starts_with('-') || line.trim().is_empty() || line == "Mail queue is empty" {
            continue;
        }
        if line.starts_with(' ') {
            if let Some(e) = entries.last_mut() {
                e.recipients.push(line.trim().to_string());
            }
        } else if line.starts_with('(') {
            if let Some(e) = entries.last_mut() {
                e.error = Some(line.to_string());
            }
        } else {
            let mut f = line.split_whitespace();
            let id = f.next().unwrap_or("").to_string();
            let size = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            entries.push(MailqEntry {
                id,
                size,
                first_line: line.to_string(),
                error: None,
                recipients: Vec::new(),
            });
        }
    }
    entries
}

/// One message in `mailq` output.
#[derive(Debug, Clone)]
pub struct MailqEntry {
    /// Queue ID with Postfix's status mark (`*` active, `!` held).
    pub id: String,
    /// Size in bytes.
    pub size: u64,
    /// The whole first line (ID, size, arrival time, sender).
    pub first_line: String,
    /// `(reason)` of the last failed attempt.
    pub error: Option<String>,
    /// Recipient lines.
    pub recipients: Vec<String>,
}

/// True if `path` exists.
pub fn exists(path: &Path) -> bool {
    path.exists()
}
