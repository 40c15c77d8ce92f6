//! Reliability suite, a hostile next hop (issue 16 item 6): tern relays to
//! a server in this test that misbehaves on purpose: a 1 MiB reply line,
//! an endless multi-line EHLO reply, STARTTLS response injection (lines
//! after `220 Ready to start TLS` in the same segment), and STARTTLS
//! stripped (not in the EHLO reply, or `502` to the command) under every
//! level that requires TLS (`encrypt`, `fingerprint`, `verify`, `secure`,
//! `dane-only`). The server records whether it ever saw `MAIL FROM` in
//! cleartext: it never may where TLS is required; the message stays queued
//! with a deferral that says why.
//!
//! `tests/delivery_tls.rs` pins the injection's exact command sequence;
//! this suite adds the other hostile servers and the levels above
//! `encrypt`, and reports all of them.
//!
//!     cargo test --test reliability_hostile
mod common;
mod reliability_support;

use reliability_support::{report, submit, Budget, Instance, J};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// The EHLO reply carries one 1 MiB line.
    Oversized,
    /// The EHLO reply never ends (`250-` lines until the client leaves).
    Endless,
    /// `220 Ready to start TLS` plus forged lines in the same segment.
    Injection,
    /// No STARTTLS in the EHLO reply.
    NotOffered,
    /// STARTTLS offered, the command answered with 502.
    Refused502,
}

/// What the hostile server saw, over all connections.
#[derive(Default, Debug)]
struct Seen {
    connections: usize,
    cleartext_mail: bool,
    tls_mail: bool,
    messages: usize,
    bytes_sent: usize,
}

struct Hostile {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    /// The certificate's files, removed when the server goes.
    _leaf: common::certs::Leaf,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn start(mode: Mode) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let leaf = common::certs::self_signed(common::certs::KeyKind::EcdsaP256, &["hostile.test"]);
    let params = tern::tls::TlsParams::from_postfix("", "", false).expect("TLS params");
    let pair = tern::tls::CertKeyPaths {
        cert: leaf.chain.clone(),
        key: leaf.key.clone(),
    };
    let cfg = tern::tls::build_server_config(&params, &[pair]).expect("server config");
    let (s, st) = (seen.clone(), stop.clone());
    thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((tcp, _)) => {
                    let (s, st, cfg) = (s.clone(), st.clone(), cfg.clone());
                    thread::spawn(move || {
                        let _ = serve(mode, tcp, &s, &st, cfg);
                    });
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Hostile {
        port,
        seen,
        stop,
        _leaf: leaf,
    }
}

fn serve(
    mode: Mode,
    tcp: TcpStream,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
    cfg: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    let lock = || seen.lock().unwrap_or_else(|e| e.into_inner());
    lock().connections += 1;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut wr = tcp.try_clone()?;
    let mut rd = BufReader::new(tcp.try_clone()?);
    wr.write_all(b"220 hostile.test ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if rd.by_ref().take(4096).read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line
            .split([' ', '\r', '\n'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match (verb.as_str(), mode) {
            ("EHLO", Mode::Oversized) => {
                let mut r = b"250-hostile.test\r\n250-".to_vec();
                r.resize(r.len() + (1 << 20), b'X');
                r.extend_from_slice(b"\r\n250 STARTTLS\r\n");
                let _ = wr.write_all(&r);
                lock().bytes_sent += r.len();
            }
            ("EHLO", Mode::Endless) => {
                wr.write_all(b"250-hostile.test\r\n")?;
                let block = "250-ENDLESS-EXTENSION-LINE-OF-A-HOSTILE-SERVER\r\n".repeat(1000);
                let mut sent = 0;
                // Until the client gives up, or 256 MiB.
                while sent < (256 << 20) && !stop.load(Ordering::Relaxed) {
                    if wr.write_all(block.as_bytes()).is_err() {
                        break;
                    }
                    sent += block.len();
                }
                lock().bytes_sent += sent;
                return Ok(());
            }
            ("EHLO", Mode::NotOffered) => wr.write_all(b"250-hostile.test\r\n250 8BITMIME\r\n")?,
            ("EHLO", _) => wr.write_all(b"250-hostile.test\r\n250 STARTTLS\r\n")?,
            ("STARTTLS", Mode::Refused502) => {
                wr.write_all(b"502 5.5.1 Error: command not implemented\r\n")?
            }
            ("STARTTLS", Mode::Injection) => {
                // The injection: replies nobody asked for, in plaintext.
                wr.write_all(
                    b"220 2.0.0 Ready to start TLS\r\n250-injected\r\n250 AUTH PLAIN\r\n",
                )?;
                return serve_tls(tcp, seen, cfg);
            }
            ("STARTTLS", _) => {
                wr.write_all(b"220 2.0.0 Ready to start TLS\r\n")?;
                return serve_tls(tcp, seen, cfg);
            }
            ("MAIL", _) => {
                lock().cleartext_mail = true;
                wr.write_all(b"250 2.1.0 Ok\r\n")?
            }
            ("DATA", _) => {
                wr.write_all(b"354 go ahead\r\n")?;
                loop {
                    line.clear();
                    if rd.by_ref().take(1 << 20).read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                lock().messages += 1;
                wr.write_all(b"250 2.0.0 Ok: queued in cleartext\r\n")?
            }
            ("QUIT", _) => {
                wr.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            _ => wr.write_all(b"250 2.0.0 Ok\r\n")?,
        }
    }
}

/// The session after the handshake: records MAIL FROM and whole messages.
fn serve_tls(
    tcp: TcpStream,
    seen: &Mutex<Seen>,
    cfg: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    let lock = || seen.lock().unwrap_or_else(|e| e.into_inner());
    let conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let mut in_data = false;
    loop {
        buf.clear();
        let mut byte = [0u8; 1];
        loop {
            if tls.read(&mut byte)? == 0 {
                return Ok(());
            }
            buf.push(byte[0]);
            if buf.ends_with(b"\r\n") || buf.len() > 4096 {
                break;
            }
        }
        if in_data {
            if buf == b".\r\n" {
                in_data = false;
                lock().messages += 1;
                tls.write_all(b"250 2.0.0 Ok: queued over TLS\r\n")?;
            }
            continue;
        }
        let l = String::from_utf8_lossy(&buf).to_ascii_uppercase();
        let reply: &[u8] = if l.starts_with("EHLO") {
            b"250-hostile.test\r\n250 8BITMIME\r\n"
        } else if l.starts_with("MAIL") {
            lock().tls_mail = true;
            b"250 2.1.0 Ok\r\n"
        } else if l.starts_with("DATA") {
            in_data = true;
            b"354 go ahead\r\n"
        } else if l.starts_with("QUIT") {
            let _ = tls.write_all(b"221 2.0.0 Bye\r\n");
            return Ok(());
        } else {
            b"250 2.0.0 Ok\r\n"
        };
        tls.write_all(reply)?;
    }
}

/// The text in the last parentheses of a log line (the reason).
fn reason(line: &str) -> String {
    line.rsplit_once(" (")
        .map(|(_, r)| r.trim_end_matches(')').to_string())
        .unwrap_or_default()
}

/// One message through tern to a hostile server at `level`; returns the
/// final log line for it (sent or deferred) and what the server saw.
fn run_case(mode: Mode, level: &str, extra: &[(&str, &str)]) -> (String, Seen, u64) {
    let hostile = start(mode);
    let mut settings = vec![("smtp_tls_security_level", level)];
    settings.extend_from_slice(extra);
    let tern = Instance::start(&format!("rel-hostile-{level}"), hostile.port, &settings);
    let r = submit(
        "127.0.0.1",
        tern.port,
        &format!("hostile-{mode:?}-{level}"),
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("submission: {e}\n{}", tern.diagnostics()));
    let id = r.trim_end().rsplit(' ').next().unwrap_or("").to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let line = loop {
        let log = tern.log();
        if let Some(l) = log.lines().find(|l| {
            l.contains(&id)
                && (l.contains("status=deferred")
                    || l.contains("status=sent")
                    || l.contains("status=bounced"))
        }) {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{mode:?}/{level}: no outcome for {id}\n{}",
            tern.diagnostics()
        );
        thread::sleep(Duration::from_millis(50));
    };
    // A second attempt must not change the verdict (and tern must live).
    thread::sleep(Duration::from_millis(300));
    assert!(
        tern.pid() != 0 && reliability_support::rss_kb(tern.pid()) > 0,
        "tern died\n{}",
        tern.diagnostics()
    );
    let peak = tern.peak_rss_kb();
    let seen = std::mem::take(&mut *hostile.seen.lock().unwrap_or_else(|e| e.into_inner()));
    (line, seen, peak)
}

fn row(test: &str, fault: &str, line: &str, seen: &Seen, peak: u64) {
    let delivered = usize::from(line.contains("status=sent"));
    let deferred = line.contains("status=deferred");
    report(vec![
        ("suite", "hostile-hop".into()),
        ("test", test.into()),
        ("load", "1 message relayed".into()),
        ("faults", fault.into()),
        ("accepted", J::from(1usize)),
        ("delivered", J::from(delivered)),
        // Deferred is kept in the queue, not lost.
        ("lost", J::from(usize::from(!deferred && delivered == 0))),
        ("duplicated", J::from(seen.messages.saturating_sub(1))),
        (
            "result",
            format!(
                "{}; cleartext MAIL FROM seen: {}; tern peak RSS {peak} KiB",
                if deferred {
                    format!("deferred ({})", reason(line))
                } else {
                    format!("sent ({})", reason(line))
                },
                if seen.cleartext_mail { "yes" } else { "no" }
            )
            .into(),
        ),
    ]);
}

#[test]
fn oversized_and_endless_replies_are_deferred() {
    let budget = Budget::new("oversized and endless replies", Duration::from_secs(120));
    for (mode, what) in [
        (Mode::Oversized, "a 1 MiB line in the EHLO reply"),
        (
            Mode::Endless,
            "an EHLO reply that never ends (250- lines, up to 256 MiB)",
        ),
    ] {
        let (line, seen, peak) = run_case(mode, "may", &[]);
        let name = match mode {
            Mode::Oversized => "oversized reply line",
            _ => "endless multi-line reply",
        };
        row(name, what, &line, &seen, peak);
        assert!(line.contains("status=deferred"), "{mode:?}: {line}");
        assert!(!reason(&line).is_empty(), "{line}");
        assert_eq!(seen.messages, 0, "{mode:?}: {seen:?}");
        assert!(seen.bytes_sent > 0, "{mode:?}: {seen:?}");
        // A hostile reply costs no more than the fixed buffers.
        assert!(peak < 64 * 1024, "{mode:?}: peak RSS {peak} KiB");
    }
    budget.check();
}

#[test]
fn starttls_response_injection_is_discarded() {
    let budget = Budget::new("STARTTLS injection", Duration::from_secs(60));
    let (line, seen, peak) = run_case(Mode::Injection, "encrypt", &[]);
    row(
        "STARTTLS response injection (encrypt)",
        "250 lines after 220 Ready to start TLS, in the same segment",
        &line,
        &seen,
        peak,
    );
    assert!(line.contains("status=sent"), "{line}");
    assert!(line.contains("queued over TLS"), "{line}");
    assert!(!seen.cleartext_mail && seen.tls_mail, "{seen:?}");
    assert_eq!(seen.messages, 1, "{seen:?}");
    budget.check();
}

/// Every level that requires TLS, against a server that does not offer it
/// and one that refuses the command.
#[test]
fn starttls_stripped_never_sends_in_the_clear() {
    let budget = Budget::new("STARTTLS stripped", Duration::from_secs(240));
    let fp = "smtp_tls_fingerprint_cert_match";
    let zero = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    let levels: [(&str, &[(&str, &str)]); 5] = [
        ("encrypt", &[]),
        ("fingerprint", &[]),
        ("verify", &[]),
        ("secure", &[]),
        ("dane-only", &[]),
    ];
    for mode in [Mode::NotOffered, Mode::Refused502] {
        for (level, extra) in levels {
            let mut extra = extra.to_vec();
            if level == "fingerprint" {
                extra.push((fp, zero));
            }
            let (line, seen, peak) = run_case(mode, level, &extra);
            let what = match mode {
                Mode::NotOffered => "STARTTLS not in the EHLO reply",
                _ => "STARTTLS answered 502",
            };
            row(
                &format!("STARTTLS stripped ({level})"),
                what,
                &line,
                &seen,
                peak,
            );
            assert!(line.contains("status=deferred"), "{mode:?}/{level}: {line}");
            assert!(
                !seen.cleartext_mail,
                "{mode:?}/{level}: MAIL FROM in cleartext: {seen:?}"
            );
            assert_eq!(seen.messages, 0, "{mode:?}/{level}: {seen:?}");
            let why = reason(&line);
            assert!(
                why.contains("TLS") || why.contains("DANE") || why.contains("TLSA"),
                "{mode:?}/{level}: unclear reason: {line}"
            );
        }
    }
    budget.check();
}
