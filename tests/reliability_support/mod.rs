//! Shared parts of the reliability suite (`tests/reliability_*.rs`, issue
//! 16 item 6): the JSON lines each part appends to `$TERN_RELIABILITY_OUT`
//! (rendered into docs/reliability.md by `scripts/reliability.sh`), the
//! knobs that make a run longer, a tern daemon that can be SIGKILLed and
//! restarted on the same spool and port, a raw SMTP submitter, and a
//! counting sink that records the marker of every message it receives.
//!
//! Every wait here is bounded; every test checks its own time budget.
#![allow(dead_code)]

use crate::common::ports::{free_port, wait_listening};
use crate::common::process::Daemon;
use crate::common::tempdir::{read_lossy, write, TempDir};

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The tern binary under test.
pub const TERN: &str = env!("CARGO_BIN_EXE_tern");

// ------------------------------------------------------------ reporting

/// One value of a JSON line: text or a number.
pub enum J {
    /// A string (escaped on output).
    S(String),
    /// An unsigned number.
    N(u64),
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::S(s.to_string())
    }
}
impl From<String> for J {
    fn from(s: String) -> J {
        J::S(s)
    }
}
impl From<u64> for J {
    fn from(n: u64) -> J {
        J::N(n)
    }
}
impl From<usize> for J {
    fn from(n: usize) -> J {
        J::N(n as u64)
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Appends one JSON object (fields in the given order) as a line to
/// `$TERN_RELIABILITY_OUT`, if set, and prints it either way. One
/// `write` per line on an `O_APPEND` file: parallel tests do not interleave.
pub fn report(mut fields: Vec<(&str, J)>) {
    // The run time goes last, after the fields the table is made of.
    fields.sort_by_key(|(k, _)| *k == "secs");
    let body: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                J::S(s) => json_string(&s),
                J::N(n) => n.to_string(),
            };
            format!("{}:{v}", json_string(k))
        })
        .collect();
    let line = format!("{{{}}}\n", body.join(","));
    eprint!("reliability: {line}");
    if let Ok(path) = std::env::var("TERN_RELIABILITY_OUT") {
        if path.is_empty() {
            return;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("TERN_RELIABILITY_OUT {path}: {e}"));
        f.write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("TERN_RELIABILITY_OUT {path}: {e}"));
    }
}

/// A numeric knob from the environment (`scripts/reliability.sh` raises
/// them for the long run), or `default` (the CI size).
pub fn knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// A wall-clock budget a test must finish within (checked, not hoped).
pub struct Budget {
    start: Instant,
    limit: Duration,
    what: String,
}

impl Budget {
    /// Starts the clock.
    pub fn new(what: &str, limit: Duration) -> Budget {
        Budget {
            start: Instant::now(),
            limit,
            what: what.to_string(),
        }
    }

    /// Time left (zero when spent).
    pub fn left(&self) -> Duration {
        self.limit.saturating_sub(self.start.elapsed())
    }

    /// True while time is left.
    pub fn ok(&self) -> bool {
        self.start.elapsed() < self.limit
    }

    /// Panics if the budget is spent.
    pub fn check(&self) {
        let t = self.start.elapsed();
        assert!(
            t < self.limit,
            "{}: took {t:?}, over its budget of {:?}",
            self.what,
            self.limit
        );
    }

    /// Elapsed so far.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A small deterministic generator (xorshift64*): the seed is printed so
/// a failing run can be repeated with `TERN_RELIABILITY_SEED`.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `TERN_RELIABILITY_SEED` or the clock.
    pub fn new(what: &str) -> Rng {
        let seed = knob("TERN_RELIABILITY_SEED", 0);
        let seed = if seed != 0 {
            seed
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        };
        eprintln!("{what}: TERN_RELIABILITY_SEED={seed}");
        Rng(seed)
    }

    /// Next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi` (hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

// ------------------------------------------------------------ tern

/// `VmHWM` (peak resident set) of process `pid`, in KiB; 0 if unreadable.
pub fn peak_rss_kb(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
}

/// `VmRSS` of process `pid`, in KiB; 0 if unreadable.
pub fn rss_kb(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, key: &str) -> u64 {
    let s = read_lossy(Path::new(&format!("/proc/{pid}/status")));
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A tern daemon on a fixed port and spool, which can be SIGKILLed and
/// started again on both (what a crash and a supervisor's restart do).
pub struct Instance {
    dir: TempDir,
    conf: PathBuf,
    /// The `smtp_listen` port on 127.0.0.1.
    pub port: u16,
    /// Extra command words before the binary (`unshare -m ...`), if any.
    prefix: Vec<String>,
    daemon: Option<Daemon>,
    /// Starts so far.
    pub starts: usize,
}

impl Instance {
    /// Writes tern.conf (test defaults, then `settings`) for a daemon that
    /// relays everything to `[127.0.0.1]:relay_port`, and starts it.
    pub fn start(name: &str, relay_port: u16, settings: &[(&str, &str)]) -> Instance {
        Instance::start_with_prefix(name, relay_port, settings, &[], None)
    }

    /// [`Instance::start`] with the command run under `prefix` (e.g.
    /// `unshare -m sh -c '...; exec "$0" "$@"'`) and the spool at `spool`
    /// (default: DIR/spool).
    pub fn start_with_prefix(
        name: &str,
        relay_port: u16,
        settings: &[(&str, &str)],
        prefix: &[&str],
        spool: Option<&Path>,
    ) -> Instance {
        let dir = TempDir::new(name);
        let spool = spool
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("spool"));
        let port = free_port();
        let mut main: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| {
            main.retain(|(key, _)| key != k);
            main.push((k.into(), v.into()));
        };
        set("myhostname", "tern.example.test");
        set("mydomain", "example.test");
        set("mydestination", "");
        set("smtp_listen", &format!("127.0.0.1:{port}"));
        set("mynetworks", "127.0.0.0/8");
        set("queue_directory", &spool.display().to_string());
        set("maillog_file", &dir.join("maillog").display().to_string());
        set("syslog_socket", "");
        set("mail_owner", "nobody");
        set("relayhost", &format!("[127.0.0.1]:{relay_port}"));
        set("dns_resolvers", "127.0.0.1:9");
        set("smtp_tls_security_level", "none");
        set("queue_run_delay", "1s");
        set("minimal_backoff_time", "1s");
        set("maximal_backoff_time", "2s");
        set("smtp_connect_timeout", "5s");
        set("max_connections", "32");
        for (k, v) in settings {
            set(k, v);
        }
        let text: String = main.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let conf = dir.join("tern.conf");
        write(&conf, text);
        let mut inst = Instance {
            dir,
            conf,
            port,
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            daemon: None,
            starts: 0,
        };
        inst.restart();
        inst
    }

    /// Starts the daemon (after a kill) and waits until it listens.
    pub fn restart(&mut self) {
        assert!(self.daemon.is_none(), "restart of a running daemon");
        let mut cmd = match self.prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(TERN);
                c
            }
            None => Command::new(TERN),
        };
        cmd.args(["run", "-f", "-c"]).arg(&self.conf);
        let mut d = Daemon::spawn("tern", cmd, &self.dir.join("tern.out"));
        self.starts += 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !wait_listening(self.port, Duration::from_millis(20)) {
            if d.exited().is_some() || Instant::now() >= deadline {
                let out = d.output();
                self.daemon = Some(d);
                panic!(
                    "tern did not start (start {})\n{out}\n--- maillog\n{}",
                    self.starts,
                    self.log()
                );
            }
        }
        self.daemon = Some(d);
    }

    /// SIGKILL to the daemon's process group, reaped before returning.
    pub fn kill(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            if let Ok(pgid) = libc::pid_t::try_from(d.pid()) {
                // SAFETY: plain syscall; a negative pid is the group.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            d.stop();
        }
    }

    /// Orderly stop (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }

    /// The daemon's pid (it is its own process group leader).
    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().map(|d| d.pid()).unwrap_or(0)
    }

    /// Peak RSS of the running daemon, KiB.
    pub fn peak_rss_kb(&self) -> u64 {
        peak_rss_kb(self.pid())
    }

    /// The maillog so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("maillog"))
    }

    /// Lines of the maillog containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits up to `timeout` for a maillog line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log().lines().find(|l| l.contains(needle)) {
                return Some(l.to_string());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The reserved buffer ceiling the daemon logged at its last start
    /// ("fixed buffers N KiB reserved"), KiB.
    pub fn reserved_kb(&self) -> u64 {
        let log = self.log();
        log.lines()
            .rev()
            .find_map(|l| {
                let after = l.split("fixed buffers ").nth(1)?;
                after.split(" KiB").next()?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// The instance directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Output and maillog, for failure messages.
    pub fn diagnostics(&self) -> String {
        let out = read_lossy(&self.dir.join("tern.out"));
        let log = self.log();
        // The tail is what matters after thousands of lines.
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(80)..].join("\n")
        };
        format!(
            "--- tern output (tail)\n{}\n--- maillog (tail)\n{}",
            tail(&out),
            tail(&log)
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        self.stop();
    }
}

// ------------------------------------------------------------ clients

/// A TCP connection to 127.0.0.1:`port` from the loopback address `src`.
pub fn connect_from(src: &str, port: u16) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let src: std::net::Ipv4Addr = src.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{src}: {e}"))
    })?;
    let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a socket this function owns; the fd
    // belongs to the TcpStream (which closes it) from the start.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let tcp = TcpStream::from_raw_fd(fd);
        let a = sin(src, 0);
        if libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let b = sin(std::net::Ipv4Addr::LOCALHOST, port);
        if libc::connect(fd, (&b as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(tcp)
    }
}

/// A plain SMTP client that reads replies line by line with a timeout.
pub struct Smtp {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
}

impl Smtp {
    /// Connects from `src` and reads the greeting (which must be 220).
    pub fn open(src: &str, port: u16, timeout: Duration) -> Result<Smtp, String> {
        let tcp = connect_from(src, port).map_err(|e| format!("connect: {e}"))?;
        tcp.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let wr = tcp.try_clone().map_err(|e| e.to_string())?;
        let mut s = Smtp {
            rd: BufReader::new(tcp),
            wr,
        };
        let g = s.reply()?;
        if !g.starts_with("220") {
            return Err(format!("greeting: {g}"));
        }
        Ok(s)
    }

    /// Reads one (possibly multi-line) reply.
    pub fn reply(&mut self) -> Result<String, String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.rd.read_line(&mut line) {
                Ok(0) => return Err(format!("connection closed after {all:?}")),
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e} after {all:?}")),
            }
            let last = line.len() < 4 || line.as_bytes()[3] != b'-';
            all.push_str(&line);
            if last {
                return Ok(all);
            }
        }
    }

    /// The socket, for raw writes that bypass the reply reader.
    pub fn stream(&self) -> &TcpStream {
        &self.wr
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.wr.write_all(bytes).map_err(|e| format!("write: {e}"))
    }

    /// Sends a command line, returns the reply, which must start with
    /// `want`.
    pub fn cmd(&mut self, line: &str, want: &str) -> Result<String, String> {
        self.send(format!("{line}\r\n").as_bytes())?;
        let r = self.reply()?;
        if r.starts_with(want) {
            Ok(r)
        } else {
            Err(format!("{line}: {}", r.trim_end()))
        }
    }
}

/// The message every suite part sends: `marker` in the subject and on the
/// last body line, so that a sink can tell a whole message from a cut one.
pub fn message(marker: &str) -> String {
    format!(
        "From: <load@example.test>\r\nTo: <sink@remote.test>\r\nSubject: {marker}\r\n\r\n\
         reliability suite message {marker}\r\nEND {marker}\r\n.\r\n"
    )
}

/// One whole submission from `src`: EHLO, MAIL, RCPT, DATA, the message,
/// QUIT. `Ok(reply)` only when the end of data got a `250`; anything else
/// (a refusal, a connection cut by a kill) is `Err`.
pub fn submit(src: &str, port: u16, marker: &str, timeout: Duration) -> Result<String, String> {
    let mut s = Smtp::open(src, port, timeout)?;
    s.cmd("EHLO load.example.test", "250")?;
    s.cmd("MAIL FROM:<load@example.test>", "250")?;
    s.cmd("RCPT TO:<sink@remote.test>", "250")?;
    s.cmd("DATA", "354")?;
    s.send(message(marker).as_bytes())?;
    let r = s.reply()?;
    if !r.starts_with("250") {
        return Err(format!("end of data: {}", r.trim_end()));
    }
    // The message is acknowledged whatever happens to QUIT.
    let _ = s.cmd("QUIT", "221");
    Ok(r)
}

// ------------------------------------------------------------ the sink

/// How the counting sink behaves.
#[derive(Clone, Copy, Default)]
pub struct SinkOptions {
    /// Delay before answering each RCPT (slows delivery down without
    /// widening the window between the final dot and its reply).
    pub rcpt_delay: Duration,
    /// Delay before answering the final dot.
    pub dot_delay: Duration,
}

/// An SMTP server in this test process that counts, per marker (the
/// `Subject:`), the whole messages it received (ending in `END marker`).
/// A message counts when its final dot has been read, before the `250` is
/// written: a sender killed in between will send it again, which is the
/// duplicate SMTP cannot rule out.
pub struct CountingSink {
    /// The port on 127.0.0.1.
    pub port: u16,
    got: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl CountingSink {
    /// Listens on a free port and serves every connection in a thread.
    pub fn start(opts: SinkOptions) -> CountingSink {
        CountingSink::start_on(0, opts)
    }

    /// [`CountingSink::start`] on a given port (0: any free one): a next
    /// hop that comes up where tern already sends.
    pub fn start_on(port: u16, opts: SinkOptions) -> CountingSink {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind sink");
        let port = listener.local_addr().expect("sink addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let got: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        let acceptor = thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let (g, st) = (g.clone(), st.clone());
                        thread::spawn(move || {
                            let _ = serve(tcp, &g, &st, opts);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CountingSink {
            port,
            got,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Copies received per marker.
    pub fn counts(&self) -> HashMap<String, usize> {
        let got = self.got.lock().unwrap_or_else(|e| e.into_inner());
        got.iter().map(|(k, v)| (k.clone(), v.len())).collect()
    }

    /// When each copy of `marker` was received (its final dot read).
    pub fn times(&self, marker: &str) -> Vec<Instant> {
        let got = self.got.lock().unwrap_or_else(|e| e.into_inner());
        got.get(marker).cloned().unwrap_or_default()
    }

    /// Total whole messages received.
    pub fn total(&self) -> usize {
        self.counts().values().sum()
    }
}

impl Drop for CountingSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn serve(
    tcp: TcpStream,
    got: &Mutex<HashMap<String, Vec<Instant>>>,
    stop: &AtomicBool,
    opts: SinkOptions,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut wr = tcp.try_clone()?;
    let mut rd = BufReader::new(tcp);
    wr.write_all(b"220 sink.test ESMTP\r\n")?;
    let mut line = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        line.clear();
        if rd.by_ref().take(4096).read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let verb: String = line
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .map(|c| c.to_ascii_uppercase() as char)
            .collect();
        match verb.as_str() {
            "EHLO" => wr.write_all(b"250-sink.test\r\n250 8BITMIME\r\n")?,
            "HELO" => wr.write_all(b"250 sink.test\r\n")?,
            "RCPT" => {
                thread::sleep(opts.rcpt_delay);
                wr.write_all(b"250 2.1.5 Ok\r\n")?
            }
            "DATA" => {
                wr.write_all(b"354 go ahead\r\n")?;
                let mut subject = None;
                let mut end = false;
                loop {
                    line.clear();
                    if rd.by_ref().take(1 << 20).read_until(b'\n', &mut line)? == 0 {
                        // Cut off mid-message: not a delivery.
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end();
                    if subject.is_none() {
                        if let Some(s) = text.strip_prefix("Subject: ") {
                            subject = Some(s.to_string());
                        }
                    }
                    if let (Some(s), Some(e)) = (&subject, text.strip_prefix("END ")) {
                        end |= e == s;
                    }
                }
                if let (Some(s), true) = (subject, end) {
                    got.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(s)
                        .or_default()
                        .push(Instant::now());
                }
                thread::sleep(opts.dot_delay);
                wr.write_all(b"250 2.0.0 Ok: queued\r\n")?
            }
            "QUIT" => {
                wr.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            _ => wr.write_all(b"250 2.0.0 Ok\r\n")?,
        }
    }
}

/// Compares what was acknowledged with what the sink got: (delivered,
/// lost, duplicated) over the acknowledged markers, and the markers
/// delivered more than twice (which must be none).
pub fn tally(acked: &[String], sink: &CountingSink) -> (usize, Vec<String>, usize, Vec<String>) {
    let counts = sink.counts();
    let mut delivered = 0;
    let mut lost = Vec::new();
    let mut dup = 0;
    let mut over = Vec::new();
    for m in acked {
        match counts.get(m).copied().unwrap_or(0) {
            0 => lost.push(m.clone()),
            1 => delivered += 1,
            2 => {
                delivered += 1;
                dup += 1;
            }
            n => {
                delivered += 1;
                dup += 1;
                over.push(format!("{m} x{n}"));
            }
        }
    }
    (delivered, lost, dup, over)
}

/// How long after the sink read a copy's final dot a kill still counts as
/// falling in that copy's end-of-data window (the reply on its way, the
/// outcome not yet recorded), on a loaded machine.
pub const WINDOW: Duration = Duration::from_secs(2);

/// Of the markers delivered more than twice (`over`, as from [`tally`]),
/// those whose copies are not each explained by a kill inside the
/// previous copy's end-of-data window: a message in flight at two
/// successive kills is sent three times, and SMTP allows it; any other
/// third copy is tern's fault.
pub fn unexplained(over: &[String], sink: &CountingSink, kills: &[Instant]) -> Vec<String> {
    over.iter()
        .filter(|o| {
            let m = o.split(' ').next().unwrap_or("");
            let t = sink.times(m);
            !t.windows(2).all(|w| {
                kills
                    .iter()
                    .any(|k| *k >= w[0] && *k < w[1] && k.duration_since(w[0]) <= WINDOW)
            })
        })
        .cloned()
        .collect()
}
