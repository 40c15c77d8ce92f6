//! The project's own SMTP load generator, for what smtp-source cannot do:
//! STARTTLS. Blocking sockets, one thread per session (a client tool on
//! loopback; the MTAs under test are what must be frugal).
//!
//! Like `smtp-source -s S -m N -l 1024` (without `-d`), each message is a
//! session of its own: connect, greeting, EHLO, [STARTTLS, TLS handshake,
//! EHLO,] MAIL, RCPT, DATA with 1024 bytes of payload after five header
//! lines, QUIT. S threads take messages from a shared counter until N were
//! sent. [`handshakes`] measures the TLS handshake alone: connect, EHLO,
//! STARTTLS, handshake, QUIT. Every socket has read and write timeouts,
//! and every loop ends after its count or its deadline.
//!
//! TLS: rustls with aws-lc-rs (already tern's dependencies), TLS 1.3 or
//! 1.2 as the server picks, session resumption off so that every handshake
//! is a full one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Payload bytes per message (smtp-source's `-l`), headers not counted.
pub const PAYLOAD: usize = 1024;

/// Socket timeouts: a stuck server fails the run instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What to send, and where.
#[derive(Clone, Debug)]
pub struct Load {
    /// Server port on 127.0.0.1.
    pub port: u16,
    /// Parallel sessions (threads).
    pub sessions: usize,
    /// Messages (or handshakes) in all.
    pub count: usize,
    /// STARTTLS before MAIL: the CA file to trust and the server name to
    /// check. `None`: plaintext.
    pub tls: Option<(PathBuf, String)>,
    /// Envelope sender and recipient.
    pub from: String,
    pub to: String,
    /// The whole run is abandoned (an error) after this long.
    pub limit: Duration,
}

/// Outcome of a run.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Messages accepted with 250 (or handshakes completed).
    pub done: usize,
    /// From the first connect until the last session ended.
    pub elapsed: Duration,
}

impl Report {
    /// Completed items per second.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A session's byte stream, before or after STARTTLS.
trait Stream: Read + Write {
    /// Ends the session's TLS layer, if any, with a close_notify alert,
    /// as a well-behaved client (Postfix's smtp among them) does after
    /// QUIT.
    fn close_notify(&mut self) {}
}
impl Stream for TcpStream {}
impl Stream for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        // Best effort: the session is over either way.
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.sock).is_err() {
                break;
            }
        }
    }
}

fn tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("reading CA file {}: {e}", ca.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("CA file {}: {e}", ca.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("CA file {}: {e}", ca.display()))?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS versions: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // Every handshake a full one, as from a new peer.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// Reads one SMTP reply (all its lines); returns its code and text.
fn reply<R: BufRead>(r: &mut R) -> Result<(u16, String), String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .map_err(|e| format!("reading reply: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed after {all:?}"));
        }
        all.push_str(&line);
        let b = line.as_bytes();
        if b.len() < 4 || b[3] != b'-' {
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("malformed reply {line:?}"))?;
            return Ok((code, all));
        }
    }
}

/// Sends `cmd` and expects a reply with code `want`.
fn chat<S: BufRead + Write>(s: &mut S, cmd: &[u8], want: u16) -> Result<String, String> {
    s.write_all(cmd).map_err(|e| format!("sending: {e}"))?;
    s.flush().map_err(|e| format!("sending: {e}"))?;
    let (code, text) = reply(s)?;
    if code != want {
        return Err(format!(
            "{:?} answered {text:?}",
            String::from_utf8_lossy(cmd).trim_end()
        ));
    }
    Ok(text)
}

/// An open session: a buffered reader that can also write, over the
/// plaintext or TLS stream.
pub struct Conn {
    inner: BufReader<Box<dyn Stream + Send>>,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}
impl BufRead for Conn {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.inner.consume(n)
    }
}
impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.get_mut().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.get_mut().flush()
    }
}

/// Connects, reads the greeting, says EHLO and, with `tls`, does STARTTLS
/// and the handshake (and EHLO again unless `ehlo_after` is false).
fn open(
    port: u16,
    tls: Option<(&Arc<rustls::ClientConfig>, &str)>,
    ehlo_after: bool,
) -> Result<Conn, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| tcp.set_nodelay(true))
        .map_err(|e| format!("socket options: {e}"))?;
    let mut plain = BufReader::new(tcp);
    let (code, text) = reply(&mut plain)?;
    if code != 220 {
        return Err(format!("greeting {text:?}"));
    }
    let ehlo = |s: &mut BufReader<TcpStream>| -> Result<String, String> {
        s.get_mut()
            .write_all(b"EHLO load.example.org\r\n")
            .map_err(|e| format!("sending: {e}"))?;
        let (code, text) = reply(s)?;
        if code != 250 {
            return Err(format!("EHLO answered {text:?}"));
        }
        Ok(text)
    };
    let caps = ehlo(&mut plain)?;
    let Some((cfg, name)) = tls else {
        return Ok(Conn {
            inner: BufReader::new(Box::new(plain.into_inner())),
        });
    };
    if !caps.contains("STARTTLS") {
        return Err(format!("no STARTTLS offered: {caps:?}"));
    }
    plain
        .get_mut()
        .write_all(b"STARTTLS\r\n")
        .map_err(|e| format!("sending: {e}"))?;
    let (code, text) = reply(&mut plain)?;
    if code != 220 {
        return Err(format!("STARTTLS answered {text:?}"));
    }
    if !plain.buffer().is_empty() {
        return Err("server sent bytes after 220 to STARTTLS".into());
    }
    let mut tcp = plain.into_inner();
    let sn = ServerName::try_from(name.to_string()).map_err(|e| format!("name {name}: {e}"))?;
    let mut conn = rustls::ClientConnection::new(Arc::clone(cfg), sn)
        .map_err(|e| format!("TLS client: {e}"))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    note_negotiated(port, &conn);
    let mut c = Conn {
        inner: BufReader::new(Box::new(rustls::StreamOwned::new(conn, tcp))),
    };
    if ehlo_after {
        chat(&mut c, b"EHLO load.example.org\r\n", 250)?;
    }
    Ok(c)
}

/// Per server port seen, what its first handshake negotiated.
static NEGOTIATED: std::sync::Mutex<Vec<(u16, String)>> = std::sync::Mutex::new(Vec::new());

fn note_negotiated(port: u16, conn: &rustls::ClientConnection) {
    let Ok(mut v) = NEGOTIATED.lock() else {
        return;
    };
    if v.iter().any(|(p, _)| *p == port) {
        return;
    }
    let version = conn
        .protocol_version()
        .map_or("?".into(), |p| format!("{p:?}"));
    let group = conn
        .negotiated_key_exchange_group()
        .map_or("?".into(), |g| format!("{:?}", g.name()));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or("?".into(), |c| format!("{:?}", c.suite()));
    v.push((port, format!("{version} {suite} {group}")));
}

/// What the first handshake with the server on `port` negotiated:
/// "TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519".
pub fn negotiated_on(port: u16) -> Option<String> {
    let v = NEGOTIATED.lock().ok()?;
    v.iter().find(|(p, _)| *p == port).map(|(_, s)| s.clone())
}

/// One message in one session.
fn one_message(
    load: &Load,
    cfg: Option<&Arc<rustls::ClientConfig>>,
    body: &[u8],
) -> Result<(), String> {
    let name = load.tls.as_ref().map(|(_, n)| n.as_str()).unwrap_or("");
    let mut c = open(load.port, cfg.map(|c| (c, name)), true)?;
    chat(
        &mut c,
        format!("MAIL FROM:<{}>\r\n", load.from).as_bytes(),
        250,
    )?;
    chat(&mut c, format!("RCPT TO:<{}>\r\n", load.to).as_bytes(), 250)?;
    chat(&mut c, b"DATA\r\n", 354)?;
    // Content and the final dot in one write, as smtp-source sends them:
    // two small writes would make a TLS record of 3 bytes of their own.
    chat(&mut c, body, 250)?;
    // The message is accepted; a lost QUIT reply does not change that.
    let _ = chat(&mut c, b"QUIT\r\n", 221);
    c.inner.get_mut().close_notify();
    Ok(())
}

/// The message: five header lines, a blank line, then [`PAYLOAD`] bytes
/// in lines of 78 characters, ending with CRLF, then the final `.` line.
fn message(load: &Load) -> Vec<u8> {
    let mut m = format!(
        "From: <{}>\r\nTo: <{}>\r\nSubject: load\r\nDate: Mon, 7 Dec 2026 00:00:00 +0000\r\n\
         Message-Id: <load@example.org>\r\n\r\n",
        load.from, load.to
    )
    .into_bytes();
    let mut left = PAYLOAD;
    while left > 0 {
        let n = left.min(80);
        let text = n.saturating_sub(2);
        m.extend(std::iter::repeat(b'x').take(text));
        m.extend_from_slice(&b"\r\n"[..n - text]);
        left -= n;
    }
    m.extend_from_slice(b".\r\n");
    m
}

/// Runs `work` for `load.count` items over `load.sessions` threads.
fn run_threads<F>(load: &Load, work: F) -> Result<Report, String>
where
    F: Fn() -> Result<(), String> + Send + Sync,
{
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let t0 = Instant::now();
    let deadline = t0 + load.limit;
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..load.sessions.max(1))
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    while next.fetch_add(1, Ordering::Relaxed) < load.count {
                        if Instant::now() >= deadline {
                            return Err(format!("not done after {:?}", load.limit));
                        }
                        work()?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("a session thread panicked".into()),
            })
            .collect()
    });
    let elapsed = t0.elapsed();
    match errors.first() {
        Some(e) => Err(format!(
            "{} of {} sessions failed, first: {e}",
            errors.len(),
            load.sessions
        )),
        None => Ok(Report {
            done: done.into_inner(),
            elapsed,
        }),
    }
}

/// Sends `load.count` messages over `load.sessions` parallel sessions.
pub fn send(load: &Load) -> Result<Report, String> {
    let cfg = match &load.tls {
        Some((ca, _)) => Some(tls_config(ca)?),
        None => None,
    };
    let body = message(load);
    run_threads(load, || one_message(load, cfg.as_ref(), &body))
}

/// Completes `load.count` TLS handshakes over `load.sessions` parallel
/// sessions: connect, EHLO, STARTTLS, handshake, QUIT (over TLS).
pub fn handshakes(load: &Load) -> Result<Report, String> {
    let Some((ca, name)) = &load.tls else {
        return Err("handshakes need a CA file and a server name".into());
    };
    let cfg = tls_config(ca)?;
    run_threads(load, || {
        let mut c = open(load.port, Some((&cfg, name)), false)?;
        let _ = chat(&mut c, b"QUIT\r\n", 221);
        c.inner.get_mut().close_notify();
        Ok(())
    })
}

/// Opens `n` sessions one after the other (connect, EHLO, STARTTLS,
/// handshake, EHLO) and returns them open and idle: what the memory
/// figures are measured under. The whole opening must end within `limit`.
pub fn hold(
    port: u16,
    n: usize,
    ca: &Path,
    name: &str,
    limit: Duration,
) -> Result<Vec<Conn>, String> {
    let cfg = tls_config(ca)?;
    let deadline = Instant::now() + limit;
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        if Instant::now() >= deadline {
            return Err(format!("{i} of {n} sessions open after {limit:?}"));
        }
        v.push(open(port, Some((&cfg, name)), true).map_err(|e| format!("session {i}: {e}"))?);
    }
    Ok(v)
}
