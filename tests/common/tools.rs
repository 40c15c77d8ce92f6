//! One-shot client tools, each bounded by a timeout: swaks, posttls-finger,
//! pflogsumm, and socat for raw SMTP dialogues.

use super::process::{run, RunOutput};
use super::tempdir::{write_config, BASE};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- swaks

/// Builder for one swaks run against 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Swaks {
    server: String,
    port: u16,
    from: String,
    to: String,
    args: Vec<String>,
    timeout: Duration,
}

/// What swaks printed and how it exited.
#[derive(Debug, Clone)]
pub struct SwaksResult {
    /// swaks' exit code (0 = the whole transaction succeeded; e.g. 24: no
    /// recipient accepted, 25: DATA failed, 28: AUTH failed, 29: TLS
    /// failed); `None` if killed.
    pub status: Option<i32>,
    /// The full transcript (stdout then stderr): `->` client lines, `<-`
    /// server lines, `<~`/`~>` inside TLS, `***`/`<**` errors.
    pub transcript: String,
    /// Killed because the timeout passed.
    pub timed_out: bool,
    /// Wall time.
    pub elapsed: Duration,
}

impl SwaksResult {
    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }

    /// The queue id from the last `250 ... queued as ID` reply, if any.
    pub fn queue_id(&self) -> Option<String> {
        self.transcript
            .lines()
            .rev()
            .find_map(|l| l.split("queued as ").nth(1))
            .map(|id| id.trim().to_string())
    }

    /// Server reply lines (`<-`, `<~`, `<**`, `<~*` prefixes removed).
    pub fn replies(&self) -> Vec<String> {
        self.transcript
            .lines()
            .filter_map(|l| {
                let (p, rest) = l.split_once(' ')?;
                matches!(p, "<-" | "<~" | "<**" | "<~*").then(|| rest.trim_start().to_string())
            })
            .collect()
    }
}

impl Swaks {
    /// `swaks --server 127.0.0.1 --port PORT --from from@example.test --to
    /// to@example.test --timeout 10` (swaks would prompt without `--to`).
    pub fn new(port: u16) -> Swaks {
        Swaks {
            server: "127.0.0.1".into(),
            port,
            from: "from@example.test".into(),
            to: "to@example.test".into(),
            args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Server address (default 127.0.0.1).
    pub fn server(mut self, host: &str) -> Self {
        self.server = host.into();
        self
    }

    /// Envelope sender (`--from`).
    pub fn from(mut self, addr: &str) -> Self {
        self.from = addr.into();
        self
    }

    /// Envelope recipient(s) (`--to`, comma-separated for several).
    pub fn to(mut self, addr: &str) -> Self {
        self.to = addr.into();
        self
    }

    /// EHLO name (`--ehlo`).
    pub fn ehlo(self, name: &str) -> Self {
        self.arg("--ehlo").arg(name)
    }

    /// STARTTLS, required (`--tls`).
    pub fn tls(self) -> Self {
        self.arg("--tls")
    }

    /// Implicit TLS (`--tls-on-connect`).
    pub fn tls_on_connect(self) -> Self {
        self.arg("--tls-on-connect")
    }

    /// Verify the server certificate against `ca` for `sni`
    /// (`--tls-verify --tls-ca-path CA --tls-sni NAME`).
    pub fn tls_verify(self, ca: &Path, sni: &str) -> Self {
        self.arg("--tls-verify")
            .arg("--tls-ca-path")
            .arg(&ca.display().to_string())
            .arg("--tls-sni")
            .arg(sni)
    }

    /// Client certificate (`--tls-cert`, `--tls-key`).
    pub fn tls_client_cert(self, cert: &Path, key: &Path) -> Self {
        self.arg("--tls-cert")
            .arg(&cert.display().to_string())
            .arg("--tls-key")
            .arg(&key.display().to_string())
    }

    /// SMTP AUTH (`--auth MECH --auth-user U --auth-password P`).
    pub fn auth(self, mech: &str, user: &str, password: &str) -> Self {
        self.arg("--auth")
            .arg(mech)
            .arg("--auth-user")
            .arg(user)
            .arg("--auth-password")
            .arg(password)
    }

    /// Message data (`--data`; swaks expands `%NEWLINE%`-style tokens and
    /// fixes line endings unless [`Self::no_data_fixup`]).
    pub fn data(self, data: &str) -> Self {
        self.arg("--data").arg(data)
    }

    /// Send DATA exactly as given (`--no-data-fixup`), for bare-LF tests.
    pub fn no_data_fixup(self) -> Self {
        self.arg("--no-data-fixup")
    }

    /// Adds a header (`--header "Name: value"`).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.arg("--header").arg(&format!("{name}: {value}"))
    }

    /// PIPELINING (`--pipeline`).
    pub fn pipeline(self) -> Self {
        self.arg("--pipeline")
    }

    /// Any other swaks argument.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    /// Overall time limit (default 30 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Runs swaks.
    pub fn run(&self) -> SwaksResult {
        let mut cmd = Command::new("swaks");
        cmd.args(["--server", &self.server, "--port", &self.port.to_string()])
            .args(["--from", &self.from, "--to", &self.to, "--timeout", "10"])
            .args(&self.args);
        let out = run(cmd, None, self.timeout);
        SwaksResult {
            status: out.status,
            transcript: out.combined(),
            timed_out: out.timed_out,
            elapsed: out.elapsed,
        }
    }

    /// Runs swaks and panics with the transcript unless it exits 0.
    pub fn run_ok(&self) -> SwaksResult {
        let r = self.run();
        assert!(
            r.ok(),
            "swaks failed (status {:?}):\n{}",
            r.status,
            r.transcript
        );
        r
    }
}

// ------------------------------------------------------- posttls-finger

/// Builder for one posttls-finger probe of `[127.0.0.1]:PORT`.
#[derive(Debug, Clone)]
pub struct Finger {
    dest: String,
    args: Vec<String>,
    names: Vec<String>,
    timeout: Duration,
}

impl Finger {
    /// Probe `[127.0.0.1]:port` with SMTP chat logging off (`-c`).
    pub fn new(port: u16) -> Finger {
        Finger {
            dest: format!("[127.0.0.1]:{port}"),
            args: vec!["-c".into()],
            names: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Security level (`-l`: none, may, encrypt, fingerprint, verify, secure, dane).
    pub fn level(self, level: &str) -> Self {
        self.arg("-l").arg(level)
    }

    /// Trust anchors (`-F CAfile`).
    pub fn ca_file(self, ca: &Path) -> Self {
        self.arg("-F").arg(&ca.display().to_string())
    }

    /// Names the certificate must match (positional, after the destination).
    pub fn matching(mut self, name: &str) -> Self {
        self.names.push(name.into());
        self
    }

    /// Implicit TLS (`-w`).
    pub fn wrappermode(self) -> Self {
        self.arg("-w")
    }

    /// Any other option (placed before the destination).
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    /// Runs it and returns stdout+stderr. posttls-finger exits 0 even when
    /// verification fails: look for `Verified TLS connection established`,
    /// `Trusted TLS connection established`, `Untrusted TLS connection
    /// established`, `Anonymous TLS ...`.
    pub fn run(&self) -> String {
        let mut cmd = Command::new("posttls-finger");
        cmd.env("MAIL_CONFIG", finger_config_dir())
            .args(&self.args)
            .arg(&self.dest)
            .args(&self.names);
        let out = run(cmd, None, self.timeout);
        let mut text = out.combined();
        if out.timed_out {
            text.push_str("\n[testbed: posttls-finger timed out]\n");
        }
        text
    }
}

/// posttls-finger reads main.cf, and Debian's "No configuration" install
/// has none: a minimal one in `/tmp/tern-testbed/finger-conf`, shared by
/// all runs (written once per process, atomically, same content always).
fn finger_config_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(BASE).join("finger-conf");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let tmp = dir.join(format!("main.cf.{}", std::process::id()));
        write_config(&tmp, "compatibility_level = 3.6\n");
        let main_cf = dir.join("main.cf");
        std::fs::rename(&tmp, &main_cf)
            .unwrap_or_else(|e| panic!("rename to {}: {e}", main_cf.display()));
        dir
    })
}

// ----------------------------------------------------------- pflogsumm

/// pflogsumm's "Grand Totals" (and `--smtpd-stats` connections).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PflogTotals {
    /// Messages received.
    pub received: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages forwarded.
    pub forwarded: u64,
    /// Messages deferred.
    pub deferred: u64,
    /// Messages bounced.
    pub bounced: u64,
    /// Messages rejected.
    pub rejected: u64,
    /// Reject warnings.
    pub reject_warnings: u64,
    /// Messages held.
    pub held: u64,
    /// Messages discarded.
    pub discarded: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes delivered.
    pub bytes_delivered: u64,
    /// Distinct senders.
    pub senders: u64,
    /// Distinct recipients.
    pub recipients: u64,
    /// smtpd connections.
    pub connections: u64,
}

/// Parses `NNNN[k|m]  label` lines of pflogsumm's report into totals.
pub fn parse_pflogsumm(report: &str) -> PflogTotals {
    let mut t = PflogTotals::default();
    let start = report.find("Grand Totals").unwrap_or_else(|| {
        panic!("pflogsumm report without Grand Totals:\n{report}");
    });
    for line in report[start..].lines() {
        let line = line.trim();
        let Some(split) = line.find(|c: char| !c.is_ascii_digit()) else {
            continue;
        };
        if split == 0 {
            continue;
        }
        let Ok(mut n) = line[..split].parse::<u64>() else {
            continue;
        };
        let rest = &line[split..];
        let rest = match rest.chars().next() {
            Some('k') => {
                n *= 1024;
                &rest[1..]
            }
            Some('m') => {
                n *= 1024 * 1024;
                &rest[1..]
            }
            _ => rest,
        };
        let label = rest.trim();
        let slot = match label.split('(').next().unwrap_or("").trim() {
            "received" => &mut t.received,
            "delivered" => &mut t.delivered,
            "forwarded" => &mut t.forwarded,
            "deferred" => &mut t.deferred,
            "bounced" => &mut t.bounced,
            "rejected" => &mut t.rejected,
            "reject warnings" => &mut t.reject_warnings,
            "held" => &mut t.held,
            "discarded" => &mut t.discarded,
            "bytes received" => &mut t.bytes_received,
            "bytes delivered" => &mut t.bytes_delivered,
            "senders" => &mut t.senders,
            "recipients" => &mut t.recipients,
            "connections" => &mut t.connections,
            _ => continue,
        };
        // The first occurrence is the Grand Totals one.
        if *slot == 0 {
            *slot = n;
        }
    }
    t
}

/// Runs `pflogsumm --syslog-name=NAME --smtpd-stats LOG` and returns the
/// parsed totals with the raw report. Panics if pflogsumm fails.
pub fn pflogsumm(log: &Path, syslog_name: &str) -> (PflogTotals, String) {
    let mut cmd = Command::new("pflogsumm");
    cmd.arg(format!("--syslog-name={syslog_name}"))
        .arg("--smtpd-stats")
        .arg(log);
    let out = run(cmd, None, DEFAULT_TIMEOUT);
    assert!(out.success(), "pflogsumm failed: {}", out.combined());
    (parse_pflogsumm(&out.stdout), out.stdout)
}

// --------------------------------------------------------------- socat

/// Runs `socat -t 2 - TCP:127.0.0.1:PORT`: sends `bytes`, half-closes, and
/// returns everything the server sent until it closed (or `timeout`).
pub fn socat_exchange(port: u16, bytes: &[u8], timeout: Duration) -> RunOutput {
    let mut cmd = Command::new("socat");
    cmd.args(["-t", "2", "-"])
        .arg(format!("TCP:127.0.0.1:{port}"));
    run(cmd, Some(bytes), timeout)
}

type Shared = Arc<(Mutex<(Vec<u8>, bool)>, Condvar)>;

/// An interactive raw dialogue through socat (TCP, or TLS via socat's
/// OPENSSL address): write bytes, read replies with timeouts. Killed on drop.
#[derive(Debug)]
pub struct Socat {
    child: Child,
    stdin: Option<ChildStdin>,
    buf: Shared,
    pos: usize,
    errors: Arc<Mutex<Vec<u8>>>,
}

impl Socat {
    /// Plain TCP to 127.0.0.1:port.
    pub fn tcp(port: u16) -> Socat {
        Socat::spawn(&format!("TCP:127.0.0.1:{port}"))
    }

    /// Implicit TLS to 127.0.0.1:port; verifies against `ca` (and `sni`
    /// as the expected name) if given, else does not verify.
    pub fn tls(port: u16, ca: Option<&Path>, sni: &str) -> Socat {
        let addr = match ca {
            Some(ca) => format!(
                "OPENSSL:127.0.0.1:{port},cafile={},commonname={sni},snihost={sni}",
                ca.display()
            ),
            None => format!("OPENSSL:127.0.0.1:{port},verify=0,snihost={sni}"),
        };
        Socat::spawn(&addr)
    }

    /// socat with any second address, e.g. `"UNIX-CONNECT:/path"`.
    pub fn spawn(addr: &str) -> Socat {
        let mut cmd = Command::new("socat");
        // -t: how long socat lingers after one side's EOF. Short, because
        // with TLS it lingers that long even after the server closed.
        cmd.args(["-t", "0.5", "-", addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("LD_LIBRARY_PATH")
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start socat: {e}"));
        let stdin = child.stdin.take();
        let errors = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut err) = child.stderr.take() {
            let e2 = Arc::clone(&errors);
            std::thread::spawn(move || {
                let mut all = Vec::new();
                let _ = err.read_to_end(&mut all);
                e2.lock().unwrap_or_else(|e| e.into_inner()).extend(all);
            });
        }
        let mut stdout = child.stdout.take().expect("piped stdout");
        let buf: Shared = Arc::new((Mutex::new((Vec::new(), false)), Condvar::new()));
        let b2 = Arc::clone(&buf);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                let n = stdout.read(&mut chunk).unwrap_or(0);
                let (lock, cv) = &*b2;
                let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    g.1 = true;
                    cv.notify_all();
                    return;
                }
                g.0.extend_from_slice(&chunk[..n]);
                cv.notify_all();
            }
        });
        Socat {
            child,
            stdin,
            buf,
            pos: 0,
            errors,
        }
    }

    /// Writes bytes as they are (no line-ending fix-up).
    pub fn send(&mut self, bytes: &[u8]) {
        let s = self.stdin.as_mut().expect("send after close_write");
        s.write_all(bytes).expect("write to socat");
        s.flush().expect("flush socat");
    }

    /// Writes `line` followed by CRLF.
    pub fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\r\n").as_bytes());
    }

    /// Half-closes: socat shuts down the sending side of the connection.
    /// socat exits 0.5 s later: server data arriving after that is lost.
    pub fn close_write(&mut self) {
        self.stdin = None;
    }

    /// Waits until `done(unread bytes)` returns `Some(len)`, consumes `len`
    /// bytes and returns them; `None` after `timeout` or at EOF.
    fn read_with(
        &mut self,
        timeout: Duration,
        done: impl Fn(&[u8]) -> Option<usize>,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.buf;
        let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let unread = &g.0[self.pos..];
            if let Some(len) = done(unread) {
                let out = unread[..len].to_vec();
                self.pos += len;
                return Some(out);
            }
            let now = Instant::now();
            if g.1 || now >= deadline {
                return None;
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Reads one complete SMTP reply (all lines up to the `NNN ` one) and
    /// returns it as text; panics with what arrived if none within `timeout`.
    pub fn read_reply(&mut self, timeout: Duration) -> String {
        let got = self.read_with(timeout, |b| {
            let mut off = 0;
            while let Some(nl) = b[off..].iter().position(|&c| c == b'\n') {
                let line = &b[off..off + nl + 1];
                off += nl + 1;
                if line.len() < 5 || line[3] != b'-' {
                    return Some(off);
                }
            }
            None
        });
        match got {
            Some(r) => String::from_utf8_lossy(&r).into_owned(),
            None => panic!(
                "socat: no complete SMTP reply within {timeout:?}; unread: {:?}",
                self.unread()
            ),
        }
    }

    /// Reads until `needle` has arrived; returns everything up to and
    /// including it, or `None` after `timeout`/EOF.
    pub fn read_until(&mut self, needle: &[u8], timeout: Duration) -> Option<Vec<u8>> {
        self.read_with(timeout, |b| {
            b.windows(needle.len().max(1))
                .position(|w| w == needle)
                .map(|i| i + needle.len())
        })
    }

    /// Reads until the peer closes (or `timeout`); returns the rest.
    pub fn read_to_end(&mut self, timeout: Duration) -> Vec<u8> {
        let _ = self.read_with(timeout, |_| None);
        let rest = self.unread();
        self.pos += rest.len();
        rest
    }

    /// True once the peer closed the connection and all was read.
    pub fn is_eof(&self) -> bool {
        let g = self.buf.0.lock().unwrap_or_else(|e| e.into_inner());
        g.1 && g.0.len() == self.pos
    }

    /// What socat printed on stderr (complete once it exited).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.errors.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Bytes received but not yet consumed.
    pub fn unread(&self) -> Vec<u8> {
        let g = self.buf.0.lock().unwrap_or_else(|e| e.into_inner());
        g.0[self.pos..].to_vec()
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain syscall on our own child's process group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}
