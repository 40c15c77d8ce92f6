//! `smtp-sink` (Postfix's test SMTP server, no TLS) on a free port, dumping
//! each message to a file.

use super::ports::{free_port, wait_listening};
use super::process::Daemon;
use super::tempdir::{own, read_lossy, user_ids, TempDir};
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A running smtp-sink; killed and removed on drop.
#[derive(Debug)]
pub struct SmtpSink {
    daemon: Option<Daemon>,
    dir: TempDir,
    port: u16,
}

impl SmtpSink {
    /// Starts `smtp-sink -c -u nobody -d DIR/%Y%m%d%H%M%S. 127.0.0.1:PORT 256`
    /// (`-u nobody` only when the tests run as root).
    pub fn start() -> SmtpSink {
        SmtpSink::start_with(&[])
    }

    /// Same with extra smtp-sink options before the address (e.g.
    /// `["-R", ...]`, `["-e"]` — see smtp-sink(1)).
    pub fn start_with(extra: &[&str]) -> SmtpSink {
        SmtpSink::start_on(free_port(), extra)
    }

    /// [`SmtpSink::start_with`] on a given port (a server coming back on
    /// the address it had).
    pub fn start_on(port: u16, extra: &[&str]) -> SmtpSink {
        let dir = TempDir::new("sink");
        let dump = dir.subdir("dump");
        // As root smtp-sink must drop to a user (-u), who owns the dumps;
        // run by anyone else it stays that user (-u would fail initgroups).
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            let (uid, gid) = user_ids("nobody");
            own(&dump, uid, gid, 0o700);
        }
        let mut cmd = Command::new("smtp-sink");
        cmd.arg("-c");
        if root {
            cmd.args(["-u", "nobody"]);
        }
        cmd.arg("-d")
            .arg(format!("{}/%Y%m%d%H%M%S.", dump.display()))
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .current_dir(dir.path());
        // stdout must go to a file: a held pipe hangs callers.
        let daemon = Daemon::spawn("smtp-sink", cmd, &dir.join("stdout"));
        let mut sink = SmtpSink {
            daemon: Some(daemon),
            dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !wait_listening(port, Duration::from_millis(50)) {
            let exited = sink.daemon.as_mut().and_then(|d| d.exited());
            if exited.is_some() || Instant::now() >= deadline {
                panic!("smtp-sink did not start ({exited:?}):\n{}", sink.output());
            }
        }
        sink
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// smtp-sink's stdout/stderr (the `-c` counters, errors).
    pub fn output(&self) -> String {
        read_lossy(&self.dir.join("stdout"))
    }

    /// Messages completed so far: the last `mesg=N` of the `-c` counter,
    /// which smtp-sink bumps at the end of DATA.
    pub fn count(&self) -> usize {
        let out = self.output();
        out.rsplit("mesg=")
            .next()
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until `count() >= n`; returns the count, or panics with the
    /// sink's output after `timeout`.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.count();
            if c >= n {
                return c;
            }
            if Instant::now() >= deadline {
                panic!(
                    "smtp-sink: {c} of {n} messages after {timeout:?}\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The dumped messages, oldest first. Each starts with smtp-sink's
    /// `X-Client-Addr:`, `X-Helo-Args:`, `X-Mail-Args:`, `X-Rcpt-Args:` and
    /// `Received:` lines, then the message as sent.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut paths: Vec<PathBuf> = fs::read_dir(self.dir.join("dump"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let key = |p: &PathBuf| {
            let t = fs::metadata(p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p.clone())
        };
        paths.sort_by_key(key);
        paths.into_iter().filter_map(|p| fs::read(p).ok()).collect()
    }

    /// Kills smtp-sink (process group). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- smtp-sink output\n{}", self.output());
        }
        self.stop();
    }
}
