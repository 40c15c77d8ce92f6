//! Helpers for the smtpd integration tests: tern itself as a daemon
//! (`tern run -f -c FILE` from the built binary, config in a temp dir), and
//! raw SMTP clients (plain TCP, and TLS via rustls) that can send bytes no
//! well-behaved client would.
#![allow(dead_code)]

use crate::common::ports::{free_port, wait_listening};
use crate::common::process::{run, Daemon, RunOutput};
use crate::common::tempdir::{read_lossy, write, TempDir};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tern binary under test.
pub const TERN: &str = env!("CARGO_BIN_EXE_tern");

/// Generous bound for anything a loaded 2-core machine should do quickly.
pub const WAIT: Duration = Duration::from_secs(20);

/// Builder for a tern daemon.
#[derive(Debug, Clone, Default)]
pub struct TernBuilder {
    settings: Vec<(String, String)>,
    submission: bool,
    submissions: bool,
    cert: Option<(PathBuf, PathBuf)>,
    users: Vec<(String, String)>,
    also_v6: bool,
}

impl TernBuilder {
    /// Any tern.conf setting (later ones win).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// `smtpd_tls_cert_file` / `smtpd_tls_key_file`.
    pub fn cert(mut self, chain: &Path, key: &Path) -> Self {
        self.cert = Some((chain.into(), key.into()));
        self
    }

    /// A STARTTLS submission listener (AUTH required).
    pub fn submission(mut self) -> Self {
        self.submission = true;
        self
    }

    /// An implicit-TLS submission listener.
    pub fn submissions(mut self) -> Self {
        self.submissions = true;
        self
    }

    /// The port-25 listener also on `[::1]`, same port as on 127.0.0.1.
    pub fn also_ipv6(mut self) -> Self {
        self.also_v6 = true;
        self
    }

    /// An AUTH user, set with `tern passwd` before the start.
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }

    /// Writes the config, runs `tern passwd` for each user, starts the
    /// daemon and waits until every listener listens.
    pub fn start(self) -> Tern {
        let dir = TempDir::new("tern-smtpd");
        let spool = dir.subdir("spool");
        let conf = dir.join("tern.conf");
        let smtp_port = free_port();
        let submission_port = self.submission.then(free_port);
        let submissions_port = self.submissions.then(free_port);
        // Mail for remote domains goes to a port nobody listens on: it stays
        // in the spool (deferred), where the tests look for it.
        let dead_port = free_port();
        let mut main: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| main.push((k.into(), v.into()));
        set("myhostname", "tern.example.test");
        set("mydomain", "example.test");
        set("mydestination", "");
        if self.also_v6 {
            set(
                "smtp_listen",
                &format!("127.0.0.1:{smtp_port} [::1]:{smtp_port}"),
            );
        } else {
            set("smtp_listen", &format!("127.0.0.1:{smtp_port}"));
        }
        if let Some(p) = submission_port {
            set("submission_listen", &format!("127.0.0.1:{p}"));
        }
        if let Some(p) = submissions_port {
            set("submissions_listen", &format!("127.0.0.1:{p}"));
        }
        set("queue_directory", &spool.display().to_string());
        set("maillog_file", &dir.join("maillog").display().to_string());
        set("syslog_socket", "");
        set("mail_owner", "nobody");
        set("relayhost", &format!("[127.0.0.1]:{dead_port}"));
        set("dns_resolvers", &format!("127.0.0.1:{dead_port}"));
        set("minimal_backoff_time", "3600s");
        set("maximal_backoff_time", "3600s");
        if let Some((c, k)) = &self.cert {
            set("smtpd_tls_cert_file", &c.display().to_string());
            set("smtpd_tls_key_file", &k.display().to_string());
        }
        if !self.users.is_empty() {
            set(
                "smtpd_sasl_password_file",
                &dir.join("passwd").display().to_string(),
            );
        }
        for (k, v) in &self.settings {
            set(k, v);
        }
        let text: String = main.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        write(&conf, text);
        for (user, pw) in &self.users {
            let mut cmd = Command::new(TERN);
            cmd.args(["passwd", "-c"]).arg(&conf).arg(user);
            let out = run(cmd, Some(format!("{pw}\n").as_bytes()), WAIT);
            assert!(out.success(), "tern passwd {user}: {}", out.combined());
        }
        // `TERN_BIN` runs another build (a benchmark's paired "before" run).
        let bin = std::env::var("TERN_BIN").unwrap_or_else(|_| TERN.to_string());
        // `TERN_RUNNER` (e.g. `qemu-aarch64 -cpu cortex-a53`) runs it under
        // an emulator, as cargo's target runner would: a cross build's idle
        // memory (bench/idle.rs).
        let runner = std::env::var("TERN_RUNNER").unwrap_or_default();
        let mut words = runner.split_whitespace();
        let mut cmd = match words.next() {
            Some(prog) => {
                let mut c = Command::new(prog);
                c.args(words).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["run", "-f", "-c"]).arg(&conf);
        let daemon = Daemon::spawn("tern", cmd, &dir.join("tern.out"));
        let mut t = Tern {
            daemon,
            dir,
            conf,
            smtp_port,
            submission_port,
            submissions_port,
        };
        let deadline = Instant::now() + WAIT;
        for port in [Some(smtp_port), submission_port, submissions_port]
            .into_iter()
            .flatten()
        {
            while !wait_listening(port, Duration::from_millis(50)) {
                if t.daemon.exited().is_some() || Instant::now() >= deadline {
                    panic!("tern did not start on port {port}\n{}", t.diagnostics());
                }
            }
        }
        t
    }
}

/// A running tern daemon; stopped on drop.
#[derive(Debug)]
pub struct Tern {
    daemon: Daemon,
    dir: TempDir,
    /// The config file.
    pub conf: PathBuf,
    /// `smtp_listen` port.
    pub smtp_port: u16,
    /// `submission_listen` port.
    pub submission_port: Option<u16>,
    /// `submissions_listen` port.
    pub submissions_port: Option<u16>,
}

impl Tern {
    /// A builder with the test defaults (no TLS, port 25 listener only).
    pub fn builder() -> TernBuilder {
        TernBuilder::default()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The temp directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The spool directory.
    pub fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// The maillog text so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("maillog"))
    }

    /// Waits for a maillog line containing every one of `needles`.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self
                .log()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return l.to_string();
            }
            if Instant::now() >= deadline {
                panic!("no log line with {needles:?}\n{}", self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Number of maillog lines containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Queue files (not `.state` files) anywhere in the spool: (id, text).
    pub fn queued(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for sub in ["incoming", "active", "deferred", "hold"] {
            let Ok(rd) = std::fs::read_dir(self.spool().join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains('.') || !e.path().is_file() {
                    continue;
                }
                let text = read_lossy(&e.path());
                if text.starts_with("tern-queue-file") {
                    out.push((name, text));
                }
            }
        }
        out.sort();
        out
    }

    /// The queue file of `id` (found in whichever queue it is in now).
    pub fn queue_file(&self, id: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            // The queue manager renames files between directories; retry.
            if let Some((_, t)) = self.queued().into_iter().find(|(n, _)| n == id) {
                return t;
            }
            if Instant::now() >= deadline {
                panic!("{id} not in the spool\n{}", self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tern mailq -c CONF`.
    pub fn mailq(&self) -> RunOutput {
        let mut cmd = Command::new(TERN);
        cmd.args(["mailq", "-c"]).arg(&self.conf);
        run(cmd, None, WAIT)
    }

    /// VmRSS of the daemon in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// The daemon's output and maillog, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- tern output\n{}--- maillog\n{}",
            self.daemon.output(),
            self.log()
        )
    }

    /// Stops the daemon (SIGTERM to its group).
    pub fn stop(&mut self) {
        self.daemon.stop();
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

/// VmRSS of a process in KiB (0 if unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    let s = read_lossy(Path::new(&format!("/proc/{pid}/status")));
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

// ------------------------------------------------------------ raw clients

/// A client connection, plain or TLS, reading SMTP replies with a timeout.
pub struct Client {
    tcp: TcpStream,
    tls: Option<rustls::ClientConnection>,
    buf: Vec<u8>,
}

impl Client {
    /// Plain TCP to 127.0.0.1:port (5 s read timeout per read).
    pub fn connect(port: u16) -> Client {
        Client::connect_to("127.0.0.1", port)
    }

    /// Plain TCP to 127.0.0.1:port from the loopback address `src`
    /// (e.g. `127.0.0.2`: another client address for per-client limits).
    pub fn connect_from(src: &str, port: u16) -> Client {
        let tcp = tcp_from(src, port);
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.set_write_timeout(Some(WAIT)).unwrap();
        Client {
            tcp,
            tls: None,
            buf: Vec::new(),
        }
    }

    /// Plain TCP to `ip`:port (5 s read timeout per read).
    pub fn connect_to(ip: &str, port: u16) -> Client {
        let ip: std::net::IpAddr = ip.parse().expect("IP address");
        let tcp = TcpStream::connect((ip, port)).expect("connect to tern");
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.set_write_timeout(Some(WAIT)).unwrap();
        Client {
            tcp,
            tls: None,
            buf: Vec::new(),
        }
    }

    /// Sets the per-read timeout.
    pub fn read_timeout(&mut self, t: Duration) {
        self.tcp.set_read_timeout(Some(t)).unwrap();
    }

    /// Writes bytes exactly as given (one write: one TCP segment here).
    pub fn send(&mut self, bytes: &[u8]) {
        match &mut self.tls {
            None => self.tcp.write_all(bytes).expect("write"),
            Some(c) => {
                rustls::Stream::new(c, &mut self.tcp)
                    .write_all(bytes)
                    .expect("tls write");
            }
        }
    }

    /// Bytes already received but not yet consumed.
    pub fn unread(&self) -> &[u8] {
        &self.buf
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = match &mut self.tls {
            None => self.tcp.read(&mut chunk)?,
            Some(c) => rustls::Stream::new(c, &mut self.tcp).read(&mut chunk)?,
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one complete (possibly multi-line) reply; `None` if the
    /// server closed or the read timed out first.
    pub fn try_reply(&mut self) -> Option<String> {
        loop {
            let mut off = 0;
            while let Some(nl) = self.buf[off..].iter().position(|&c| c == b'\n') {
                let line = &self.buf[off..off + nl + 1];
                off += nl + 1;
                if line.len() < 5 || line[3] != b'-' {
                    let r = String::from_utf8_lossy(&self.buf[..off]).into_owned();
                    self.buf.drain(..off);
                    return Some(r);
                }
            }
            match self.fill() {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads one reply; panics if none came.
    pub fn reply(&mut self) -> String {
        match self.try_reply() {
            Some(r) => r,
            None => panic!(
                "no complete reply; unread: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Sends `line` + CRLF and returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// True once the server closed the connection (reads EOF within the
    /// read timeout); any pending bytes are kept in `unread`.
    pub fn closed(&mut self) -> bool {
        loop {
            match self.fill() {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// TLS handshake over the connection (after `220` to STARTTLS, or at
    /// once for implicit TLS), trusting `ca` for `name`. Panics if bytes
    /// were already buffered: a well-behaved client must not have any.
    pub fn start_tls(&mut self, ca: &Path, name: &str) {
        assert!(
            self.buf.is_empty(),
            "plaintext bytes pending before TLS: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca).unwrap();
        let mut rd = &pem[..];
        for c in rustls_pemfile_certs(&mut rd) {
            roots.add(c).unwrap();
        }
        let cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let sn = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(cfg), sn).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut self.tcp).expect("TLS handshake");
        }
        self.tls = Some(conn);
    }

    /// Like [`Client::start_tls`], but presenting the certificate chain in
    /// `chain` signed with the key in `key` when the server asks for one.
    /// Nothing checks that the key belongs to the certificate: a test can
    /// sign with someone else's key. Returns the handshake error, if any.
    pub fn start_tls_with_cert(
        &mut self,
        ca: &Path,
        name: &str,
        chain: &Path,
        key: &Path,
    ) -> Result<(), std::io::Error> {
        use rustls::pki_types::pem::PemObject;
        assert!(self.buf.is_empty(), "plaintext bytes pending before TLS");
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca).unwrap();
        for c in rustls_pemfile_certs(&mut &pem[..]) {
            roots.add(c).unwrap();
        }
        let pem = std::fs::read(chain).unwrap();
        let certs = rustls_pemfile_certs(&mut &pem[..]);
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).expect("PEM key");
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).expect("key type");
        let resolver = FixedClientCert(Arc::new(rustls::sign::CertifiedKey::new(certs, signer)));
        let cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(resolver));
        let sn = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(cfg), sn).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut self.tcp)?;
        }
        self.tls = Some(conn);
        Ok(())
    }

    /// The negotiated key exchange group, once TLS is up.
    pub fn tls_group(&self) -> Option<String> {
        self.tls
            .as_ref()
            .and_then(|c| c.negotiated_key_exchange_group())
            .map(|g| format!("{:?}", g.name()))
    }
}

/// Always offers the same certificate and key (no consistency check).
#[derive(Debug)]
struct FixedClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Certificates from PEM text (no extra crate: base64 between the markers).
fn rustls_pemfile_certs(rd: &mut &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(rd)
        .map(|c| c.expect("PEM certificate"))
        .collect()
}

/// Reads the body lines of a queue file (after the `end` envelope line).
pub fn body_of(queue_file: &str) -> &str {
    queue_file
        .split_once("\nend\n")
        .map(|(_, b)| b)
        .unwrap_or("")
}

/// A TCP connection to 127.0.0.1:`port` bound to the IPv4 address `src`
/// (std cannot bind before connecting).
pub fn tcp_from(src: &str, port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    let src: std::net::Ipv4Addr = src.parse().expect("IPv4 address");
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
    // goes to the TcpStream (which closes it) before any early return.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let tcp = TcpStream::from_raw_fd(fd);
        let a = sin(src, 0);
        let rc = libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len);
        assert!(rc == 0, "bind {src}: {}", std::io::Error::last_os_error());
        let b = sin(std::net::Ipv4Addr::LOCALHOST, port);
        let rc = libc::connect(fd, (&b as *const libc::sockaddr_in).cast(), len);
        assert!(
            rc == 0,
            "connect from {src}: {}",
            std::io::Error::last_os_error()
        );
        tcp
    }
}
