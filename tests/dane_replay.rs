//! The certificate-replay attack on DANE: a server that presents the
//! genuine certificate (whose `3 1 1` TLSA record is published in a signed
//! zone) but cannot sign the handshake with its key. A client that only
//! matched TLSA and waved the handshake signature through would deliver to
//! it. tern must defer; the same server with the genuine key (the control)
//! must get the mail. TLS 1.3 (CertificateVerify) and TLS 1.2
//! (ServerKeyExchange) are both covered.
//!
//! The server is a few lines of rustls: rustls's server does not check that
//! a `CertifiedKey`'s key belongs to its certificate, which is exactly what
//! an attacker holding only the public certificate would do.
mod common;
mod dane_common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::certs::{KeyKind, Leaf, TestCa};
use common::dnssec::Signing;
use dane_common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection, StreamOwned, SupportedProtocolVersion};

const RCPT: &str = "bob@example.test";

/// What the test server saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// TLS handshake finished (from the server's point of view).
    TlsUp,
    /// TLS handshake failed, with rustls's error.
    TlsFailed(String),
    /// A whole message was received after TLS.
    Message(String),
}

/// The SNI names clients sent, one entry per ClientHello (None: no SNI).
type SniLog = Arc<Mutex<Vec<Option<String>>>>;

/// Always the same certificate chain and signing key; records the SNI.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>, SniLog);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.1
            .lock()
            .unwrap()
            .push(hello.server_name().map(str::to_string));
        Some(self.0.clone())
    }
}

/// A STARTTLS SMTP server on loopback serving `chain` with `key` (which
/// may not belong to it).
struct ReplayServer {
    port: u16,
    events: Arc<Mutex<Vec<Event>>>,
    sni: SniLog,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn server_config(
    chain: &Leaf,
    key: &std::path::Path,
    versions: &[&'static SupportedProtocolVersion],
) -> (Arc<ServerConfig>, SniLog) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&chain.chain)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::from_pem_file(key).unwrap())
        .unwrap();
    // No `keys_match()` check: that is the attack.
    let ck = Arc::new(CertifiedKey::new(certs, key));
    let sni = SniLog::default();
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(ck, sni.clone())));
    (Arc::new(cfg), sni)
}

/// Reads one CRLF-terminated line (at most 1000 bytes), byte by byte so
/// nothing beyond it is consumed before STARTTLS.
fn read_line(r: &mut impl Read) -> Option<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 1000 {
        match r.read(&mut b) {
            Ok(1) => {
                line.push(b[0]);
                if line.ends_with(b"\r\n") {
                    line.truncate(line.len() - 2);
                    return Some(String::from_utf8_lossy(&line).into_owned());
                }
            }
            _ => return None,
        }
    }
    None
}

/// One SMTP session: greeting, EHLO (STARTTLS offered), STARTTLS, then
/// the rest of the transaction over TLS.
fn session(tcp: TcpStream, cfg: Arc<ServerConfig>, events: &Mutex<Vec<Event>>) {
    let mut tcp = tcp;
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = tcp.write_all(b"220 mx.example.test ESMTP replay-test\r\n");
    loop {
        let Some(line) = read_line(&mut tcp) else {
            return;
        };
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                let _ = tcp.write_all(b"250-mx.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
            }
            "STAR" => {
                let _ = tcp.write_all(b"220 2.0.0 Ready to start TLS\r\n");
                break;
            }
            "QUIT" => {
                let _ = tcp.write_all(b"221 2.0.0 Bye\r\n");
                return;
            }
            _ => {
                let _ = tcp.write_all(b"530 5.7.0 Must issue a STARTTLS command first\r\n");
            }
        }
    }
    let mut conn = ServerConnection::new(cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while conn.is_handshaking() {
        if Instant::now() > deadline {
            events
                .lock()
                .unwrap()
                .push(Event::TlsFailed("timeout".into()));
            return;
        }
        if let Err(e) = conn.complete_io(&mut tcp) {
            events.lock().unwrap().push(Event::TlsFailed(e.to_string()));
            return;
        }
    }
    events.lock().unwrap().push(Event::TlsUp);
    let mut tls = StreamOwned::new(conn, tcp);
    let mut in_data = false;
    let mut body = String::new();
    while let Some(line) = read_line(&mut tls) {
        if in_data {
            if line == "." {
                in_data = false;
                events
                    .lock()
                    .unwrap()
                    .push(Event::Message(std::mem::take(&mut body)));
                let _ = tls.write_all(b"250 2.0.0 Ok: queued as REPLAY1\r\n");
            } else {
                body.push_str(&line);
                body.push('\n');
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-mx.example.test\r\n250 PIPELINING\r\n",
            "DATA" => {
                in_data = true;
                b"354 End data with <CR><LF>.<CR><LF>\r\n"
            }
            "QUIT" => {
                let _ = tls.write_all(b"221 2.0.0 Bye\r\n");
                tls.conn.send_close_notify();
                let _ = tls.flush();
                return;
            }
            _ => b"250 2.0.0 Ok\r\n",
        };
        if tls.write_all(reply).is_err() {
            return;
        }
    }
}

impl ReplayServer {
    fn start((cfg, sni): (Arc<ServerConfig>, SniLog)) -> ReplayServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ev, st) = (events.clone(), stop.clone());
        // Bounded: stops on `stop`, or after 120 s whatever happens.
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(120);
            while !st.load(Ordering::Relaxed) && Instant::now() < end {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let _ = tcp.set_nonblocking(false);
                        session(tcp, cfg.clone(), &ev);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ReplayServer {
            port,
            events,
            sni,
            stop,
            thread: Some(thread),
        }
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until the server logged at least one event matching `f`.
    fn wait_event(&self, f: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + WAIT;
        loop {
            let ev = self.events();
            if ev.iter().any(&f) {
                return ev;
            }
            assert!(Instant::now() < deadline, "server events: {ev:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Publishes `3 1 1` of the genuine key, runs the server with `key`, and
/// has tern (level `dane`) deliver one message to it.
fn attempt(
    versions: &[&'static SupportedProtocolVersion],
    genuine_key: bool,
) -> (ReplayServer, Tern, String, common::dnssec::DnsWorld) {
    attempt_in(versions, genuine_key, |port, tlsa| {
        world(Signing::Signed, port, &[tlsa])
    })
}

/// [`attempt`] in the DNS world `dns(port, tlsa)` builds around the
/// genuine key's `3 1 1 ...` record.
fn attempt_in(
    versions: &[&'static SupportedProtocolVersion],
    genuine_key: bool,
    dns: impl FnOnce(u16, &str) -> common::dnssec::DnsWorld,
) -> (ReplayServer, Tern, String, common::dnssec::DnsWorld) {
    let ca = TestCa::new();
    let genuine = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    // Same algorithm and curve, so the server picks the same signature
    // scheme the certificate announces; only the key differs.
    let attacker = ca.server_cert(KeyKind::EcdsaP256, &["attacker.example.net"]);
    let key = if genuine_key {
        &genuine.key
    } else {
        &attacker.key
    };
    let server = ReplayServer::start(server_config(&genuine, key, versions));
    let dns = dns(server.port, &format!("3 1 1 {}", genuine.pkey_sha256_hex()));
    let tern = Tern::start(dns.resolver, server.port, "");
    tern.send(RCPT, "replay");
    let status = tern.wait_status(RCPT);
    eprintln!("{status}");
    (server, tern, status, dns)
}

fn assert_replay_refused(versions: &[&'static SupportedProtocolVersion]) {
    let (server, tern, status, _dns) = attempt(versions, false);
    assert!(
        status.contains("status=deferred (") && status.contains("dsn=4.7.5"),
        "{status}\n{}",
        tern.diagnostics()
    );
    assert!(
        status.contains("Cannot start TLS: handshake failure with mx.example.test[127.0.0.1]"),
        "{status}"
    );
    // The server got as far as the handshake and saw tern abort it.
    let ev = server.wait_event(|e| matches!(e, Event::TlsFailed(_)));
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::TlsUp | Event::Message(_))),
        "{ev:?}"
    );
    assert!(
        tern.tls_lines().is_empty(),
        "no TLS session may be logged: {:?}",
        tern.tls_lines()
    );
    assert!(!tern.log().contains("matched end entity"), "{}", tern.log());
}

fn assert_genuine_delivers(versions: &[&'static SupportedProtocolVersion], proto: &str) {
    let (server, tern, status, _dns) = attempt(versions, true);
    assert!(
        status.contains("status=sent (250 2.0.0 Ok: queued as REPLAY1)"),
        "{status}\n{}",
        tern.diagnostics()
    );
    let ev = server.wait_event(|e| matches!(e, Event::Message(_)));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Message(m) if m.contains("Subject: replay"))),
        "{ev:?}"
    );
    let tls = tern.tls_lines();
    assert!(
        tls.iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{}: {proto}",
            server.port
        ))),
        "{tls:?}\n{}",
        tern.diagnostics()
    );
    // The match line the replay case must never log (smtp_tls_loglevel 2).
    assert!(
        tern.log().contains(&format!(
            "{MX_HOST}[127.0.0.1]:{}: depth=0 matched end entity public-key sha256 digest=",
            server.port
        )),
        "{}",
        tern.diagnostics()
    );
    // RFC 7672 §8.1: the SNI is the TLSA base domain, here the MX host.
    assert_eq!(
        *server.sni.lock().unwrap(),
        vec![Some(MX_HOST.to_string())],
        "SNI sent"
    );
}

#[test]
fn tls13_replayed_certificate_without_its_key_defers() {
    assert_replay_refused(&[&rustls::version::TLS13]);
}

#[test]
fn tls13_control_same_server_with_genuine_key_delivers() {
    assert_genuine_delivers(&[&rustls::version::TLS13], "TLSv1.3");
}

#[test]
fn tls12_replayed_certificate_without_its_key_defers() {
    assert_replay_refused(&[&rustls::version::TLS12]);
}

#[test]
fn tls12_control_same_server_with_genuine_key_delivers() {
    assert_genuine_delivers(&[&rustls::version::TLS12], "TLSv1.2");
}

#[test]
fn sni_is_the_cname_expanded_tlsa_base_domain() {
    // `mx` is a secure CNAME for `real`, whose TLSA record authenticates:
    // `real` is the TLSA base domain, so it is the SNI name (RFC 7672
    // §8.1), not the MX host name.
    let (server, tern, status, _dns) = attempt_in(
        &[&rustls::version::TLS13],
        true,
        |port, tlsa| {
            common::dnssec::DnsWorld::start(&[common::dnssec::Zone::new(
            DOMAIN,
            Signing::Signed,
            &format!(
                "@ IN MX 10 mx\nmx IN CNAME real\nreal IN A 127.0.0.1\n_{port}._tcp.real IN TLSA {tlsa}\n"
            ),
        )])
        },
    );
    assert!(
        status.contains("status=sent (250 2.0.0 Ok: queued as REPLAY1)"),
        "{status}\n{}",
        tern.diagnostics()
    );
    assert_eq!(
        *server.sni.lock().unwrap(),
        vec![Some("real.example.test".to_string())]
    );
}

#[test]
fn sni_is_the_original_name_for_a_secure_cname_into_an_unsigned_zone() {
    // `mx.example.test` (signed) is a CNAME for `mx.other.test` (unsigned):
    // the TLSA base domain, and so the SNI, is the original name.
    let (server, tern, status, _dns) =
        attempt_in(&[&rustls::version::TLS13], true, |port, tlsa| {
            common::dnssec::DnsWorld::start(&[
                common::dnssec::Zone::new(
                    DOMAIN,
                    Signing::Signed,
                    &format!(
                    "@ IN MX 10 mx\nmx IN CNAME mx.other.test.\n_{port}._tcp.mx IN TLSA {tlsa}\n"
                ),
                ),
                common::dnssec::Zone::new("other.test", Signing::Unsigned, "mx IN A 127.0.0.1\n"),
            ])
        });
    assert!(
        status.contains("status=sent (250 2.0.0 Ok: queued as REPLAY1)"),
        "{status}\n{}",
        tern.diagnostics()
    );
    assert!(
        tern.tls_lines()
            .iter()
            .any(|l| l.contains("Verified TLS connection established to")),
        "{}",
        tern.diagnostics()
    );
    assert_eq!(*server.sni.lock().unwrap(), vec![Some(MX_HOST.to_string())]);
}
