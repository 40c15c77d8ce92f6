//! The real binary for power-cut recordings: a spool and `tern.conf` in
//! a temp dir, the daemon started under strace and cut with SIGKILL, a
//! plain SMTP client that can end DATA in step with others, and the
//! messages (each with a unique marker) with the exact bytes tern must
//! store. Needs `mod common;` in the including test.

use super::{strace, Recording, Report, Submitted};
use crate::common::ports::{free_port, wait_listening};
use crate::common::process::Daemon;
use crate::common::sink::SmtpSink;
use crate::common::tempdir::{read_lossy, write, TempDir};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tern::queue::Spool;

/// The binary under test.
pub const TERN: &str = env!("CARGO_BIN_EXE_tern");
/// Bound for every wait (start, log line, exit, SMTP reply).
pub const WAIT: Duration = Duration::from_secs(30);

/// A temp dir with `tern.conf` and a spool.
pub struct Bed {
    /// The temp dir (removed on drop).
    pub dir: TempDir,
    /// `DIR/tern.conf`.
    pub conf: PathBuf,
    /// The SMTP listener (127.0.0.1).
    pub port: u16,
}

impl Bed {
    /// Writes `tern.conf` (loopback listener on a free port, spool and
    /// maillog in the temp dir, no syslog, `mail_owner = nobody`, then
    /// `extra`) and creates the spool, as on a device that has run.
    pub fn new(extra: &str) -> Bed {
        let dir = TempDir::new("powercut");
        let port = free_port();
        let conf = dir.join("tern.conf");
        let spool = dir.join("spool");
        write(
            &conf,
            format!(
                "myhostname = tern.test\nqueue_directory = {}\nsmtp_listen = 127.0.0.1:{port}\n\
                 maillog_file = {}\nsyslog_socket =\nmail_owner = nobody\n{extra}\n",
                spool.display(),
                dir.join("maillog").display()
            ),
        );
        // The spool exists before recording, as on a device that has run.
        Spool::open(&spool).unwrap_or_else(|e| panic!("Spool::open: {e}"));
        Bed { dir, conf, port }
    }

    /// The queue directory.
    pub fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// Where strace writes.
    pub fn trace(&self) -> PathBuf {
        self.dir.join("trace")
    }

    /// The maillog so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("maillog"))
    }

    /// Waits until the maillog holds `n` lines with `needle`.
    pub fn wait_log(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if log.lines().filter(|l| l.contains(needle)).count() >= n {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {n} maillog lines with {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `strace ... tern run -f -c tern.conf`, listening.
    pub fn start_traced(&self) -> Daemon {
        let mut c = strace(&self.trace(), TERN);
        c.args(["run", "-f", "-c"])
            .arg(&self.conf)
            .current_dir(self.dir.path());
        let mut d = Daemon::spawn("strace tern run", c, &self.dir.join("daemon.out"));
        let deadline = Instant::now() + WAIT;
        while !wait_listening(self.port, Duration::from_millis(50)) {
            if let Some(st) = d.exited() {
                panic!("traced tern exited ({st}):\n{}", d.output());
            }
            assert!(
                Instant::now() < deadline,
                "traced tern not listening:\n{}",
                d.output()
            );
        }
        self.wait_log("listening on", 1);
        d
    }

    /// The power cut: SIGKILL to tern (strace's child), then strace ends.
    pub fn cut(&self, mut d: Daemon) {
        let sp = d.pid();
        let pid =
            child_of(sp).unwrap_or_else(|| panic!("no tern under strace {sp}:\n{}", d.output()));
        // SAFETY: plain syscall on our own grandchild.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + WAIT;
        while d.exited().is_none() {
            assert!(
                Instant::now() < deadline,
                "strace did not end:\n{}",
                d.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Message `n` of a scenario: wire form for SMTP (CRLF, final dot), input
/// for sendmail (LF), and what tern must store.
pub fn message(
    test: &str,
    n: usize,
    lines: usize,
    sender: &str,
    rcpt: &str,
) -> (Vec<u8>, Vec<u8>, Submitted) {
    let marker = format!("{test}-{n}-{}", std::process::id());
    let mut m = format!(
        "From: <{sender}>\nTo: <{rcpt}>\nSubject: power cut {n}\nDate: Mon, 7 Dec 2026 17:00:00 +0000\n\
         Message-ID: <{marker}@example.com>\nX-Powercut: {marker}\n\n"
    );
    for l in 0..lines {
        m.push_str(&format!(
            "line {l} of {marker}: the quick brown fox jumps over the lazy dog\n"
        ));
    }
    let crlf = m.replace('\n', "\r\n").into_bytes();
    let mut wire = crlf.clone();
    wire.extend_from_slice(b".\r\n");
    let sub = Submitted {
        marker,
        sender: sender.to_string(),
        rcpts: vec![rcpt.to_string()],
        message: crlf,
    };
    (wire, m.into_bytes(), sub)
}

/// One SMTP transaction; waits at `gate` (if any) before the final dot so
/// parallel clients end DATA together. Returns the reply to DATA.
pub fn smtp_send(port: u16, from: &str, rcpt: &str, wire: &[u8], gate: Option<&Barrier>) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect: {e}"));
    s.set_read_timeout(Some(WAIT))
        .unwrap_or_else(|e| panic!("timeout: {e}"));
    let mut r = BufReader::new(s.try_clone().unwrap_or_else(|e| panic!("clone: {e}")));
    let mut w = s;
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            let n = r
                .read_line(&mut l)
                .unwrap_or_else(|e| panic!("read: {e} after {all}"));
            assert!(n > 0, "connection closed after {all:?}");
            all.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    let cmd = |w: &mut TcpStream, c: &str| {
        w.write_all(c.as_bytes())
            .unwrap_or_else(|e| panic!("write {c}: {e}"));
    };
    assert!(reply().starts_with("220"));
    cmd(&mut w, "EHLO client.test\r\n");
    assert!(reply().starts_with("250"));
    cmd(&mut w, &format!("MAIL FROM:<{from}>\r\n"));
    assert!(reply().starts_with("250"));
    cmd(&mut w, &format!("RCPT TO:<{rcpt}>\r\n"));
    assert!(reply().starts_with("250"));
    cmd(&mut w, "DATA\r\n");
    assert!(reply().starts_with("354"));
    let (body, dot) = wire.split_at(wire.len() - 3);
    w.write_all(body)
        .unwrap_or_else(|e| panic!("write body: {e}"));
    if let Some(g) = gate {
        g.wait();
    }
    w.write_all(dot)
        .unwrap_or_else(|e| panic!("write dot: {e}"));
    let answer = reply();
    cmd(&mut w, "QUIT\r\n");
    let _ = reply();
    answer
}

/// Sends `msgs` from parallel clients that end DATA at the same moment.
pub fn send_parallel(port: u16, msgs: &[(Vec<u8>, Submitted)]) {
    let gate = Arc::new(Barrier::new(msgs.len()));
    let threads: Vec<_> = msgs
        .iter()
        .map(|(wire, s)| {
            let (wire, s, gate) = (wire.clone(), s.clone(), gate.clone());
            std::thread::spawn(move || smtp_send(port, &s.sender, &s.rcpts[0], &wire, Some(&gate)))
        })
        .collect();
    for t in threads {
        let answer = t
            .join()
            .unwrap_or_else(|_| panic!("client thread panicked"));
        assert!(answer.starts_with("250 2.0.0 Ok: queued as"), "{answer}");
    }
}

/// Prints the figures, appends the JSON line, and asserts: no LOSS, no
/// TORN, every acknowledged message accounted for, something replayed.
pub fn check(name: &str, load: &str, rec: &Recording, r: &Report) {
    let (ops, syncs, acks) = rec.counts();
    eprintln!(
        "{name} ({load}): {ops} ops, {syncs} barriers, {acks} acks; {} crash points, max {} volatile ops, \
         max {} subsets at one point, {} replays, {} distinct states, accepted {}, delivered {}, lost {}, torn {}, duplicated {}, {:?}",
        r.crash_points, r.max_volatile, r.max_subsets, r.replays, r.states, r.accepted, r.delivered, r.lost,
        r.torn, r.duplicated, r.elapsed
    );
    r.emit(name, load);
    assert!(
        r.replays > r.crash_points,
        "{name}: nothing was lost in any replay"
    );
    assert_eq!(r.lost, 0, "{name}: LOSS\n{}", r.failures.join("\n"));
    assert_eq!(r.torn, 0, "{name}: TORN\n{}", r.failures.join("\n"));
    assert_eq!(
        r.delivered, r.accepted,
        "{name}: not every acknowledged message accounted for"
    );
}

/// Markers of the messages smtp-sink received.
pub fn sink_markers(sink: &SmtpSink, subs: &[Submitted]) -> BTreeSet<String> {
    let got = sink.messages();
    subs.iter()
        .filter(|s| {
            got.iter()
                .any(|m| m.windows(s.marker.len()).any(|w| w == s.marker.as_bytes()))
        })
        .map(|s| s.marker.clone())
        .collect()
}

/// The first child of `parent`: from `/proc/PID/task/PID/children`, or
/// by the parent field of every `/proc/*/stat` on kernels without it.
fn child_of(parent: u32) -> Option<i32> {
    let listed = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .unwrap_or_default();
    if let Some(p) = listed
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
    {
        return Some(p);
    }
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // "pid (comm) state ppid ..."; comm may contain spaces.
        let ppid = stat.rsplit_once(") ")?.1.split(' ').nth(1)?;
        (ppid == parent.to_string()).then_some(pid)
    })
}
