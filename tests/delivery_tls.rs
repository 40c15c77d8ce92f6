//! Outbound TLS security levels against a real Postfix on loopback
//! (issue 4): tern relays to `[127.0.0.1]:PORT` and the level comes from
//! `smtp_tls_security_level` or a `texthash:` policy table keyed by that
//! next hop. Postfix is the receiving server; its Maildir and tern's
//! maillog tell what happened.

mod common;
mod delivery_harness;

use common::certs::{self_signed, KeyKind, TestCa};
use common::postfix::Postfix;
use delivery_harness::{field, Tern};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Asserts the message landed in Postfix's Maildir with the subject.
fn assert_delivered(pf: &Postfix, n: usize, subject: &str) {
    let msgs = pf.wait_for_message(n, T);
    let found = msgs
        .iter()
        .any(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {subject}")));
    assert!(
        found,
        "no message with Subject: {subject} in Postfix's Maildir"
    );
}

/// A number as Postfix's format_tv() prints delays: under 1 s at most two
/// decimals, under 10 s at most one, from 10 s none; no trailing zero.
fn postfix_number(s: &str) -> f64 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let v: f64 = s.parse().unwrap_or_else(|_| panic!("not a number: {s}"));
    assert!(
        !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()),
        "{s}"
    );
    let max_frac = match v {
        v if v < 1.0 => 2,
        v if v < 10.0 => 1,
        _ => 0,
    };
    assert!(frac.len() <= max_frac && !frac.ends_with('0'), "{s}");
    v
}

/// `delay=` and the four `delays=` parts are in Postfix's format, the parts
/// add up to the delay (within rounding).
fn assert_postfix_delays(line: &str) {
    let delay = postfix_number(field(line, "delay").unwrap_or_else(|| panic!("{line}")));
    let parts: Vec<f64> = field(line, "delays")
        .unwrap_or_else(|| panic!("{line}"))
        .split('/')
        .map(postfix_number)
        .collect();
    assert_eq!(parts.len(), 4, "{line}");
    let sum: f64 = parts.iter().sum();
    assert!((sum - delay).abs() <= 0.1 + delay * 0.1, "{line}");
}

#[test]
fn may_with_self_signed_cert_is_untrusted_and_delivered() {
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let tern = Tern::builder()
        .relay_to(pf.smtp_port())
        .set("smtp_tls_security_level", "may")
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "may-untrusted");
    let sent = tern.wait_log(&[&id, "status=sent"], 1, T);
    assert_delivered(&pf, 1, "may-untrusted");
    let tls = tern.log_lines(&[&format!(
        "Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{}: TLSv1.3 with cipher",
        pf.smtp_port()
    )]);
    assert_eq!(tls.len(), 1, "{}", tern.log());
    let relay = format!("127.0.0.1[127.0.0.1]:{}", pf.smtp_port());
    assert_eq!(field(&sent[0], "relay"), Some(relay.as_str()));
    assert_eq!(field(&sent[0], "to"), Some("<bob@example.test>"));
    assert_eq!(field(&sent[0], "dsn"), Some("2.0.0"));
    assert!(
        sent[0].contains("status=sent (250 2.0.0 Ok: queued as "),
        "{}",
        sent[0]
    );
    assert_postfix_delays(&sent[0]);
    // Postfix saw TLS on its side too.
    assert!(
        pf.wait_for_log("Anonymous TLS connection established from", T)
            .or_else(|| pf.wait_for_log("TLS connection established from", T))
            .is_some(),
        "{}",
        pf.log()
    );
    tern.wait_queue_empty(T);
}

#[test]
fn verify_and_secure_with_test_ca_are_verified() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    for (n, level) in ["verify", "secure"].into_iter().enumerate() {
        let b = Tern::builder();
        let policy = b.table(
            "tls_policy",
            &format!("# level per next hop\n[127.0.0.1]:{port} {level} match=mx.example.test\n"),
        );
        let tern = b
            .relay_to(port)
            .set("smtp_tls_security_level", "none")
            .set("smtp_tls_policy_maps", &policy)
            .set("smtp_tls_CAfile", &ca.cert.display().to_string())
            .start();
        let id = tern.submit("alice@example.net", "bob@example.test", level);
        tern.wait_log(&[&id, "status=sent"], 1, T);
        let v = tern.log_lines(&[&format!(
            "Verified TLS connection established to 127.0.0.1[127.0.0.1]:{port}: TLSv1.3"
        )]);
        assert_eq!(v.len(), 1, "{}", tern.log());
        assert_delivered(&pf, n + 1, level);
    }
}

#[test]
fn verify_with_wrong_name_or_unknown_ca_is_deferred() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let other_ca = TestCa::new();
    let b = Tern::builder();
    let port = pf.smtp_port();
    let policy = b.table(
        "tls_policy",
        &format!("[127.0.0.1]:{port} secure match=other.example.test\n"),
    );
    let tern = b
        .relay_to(port)
        .set("smtp_tls_policy_maps", &policy)
        .set("smtp_tls_CAfile", &ca.cert.display().to_string())
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "wrong-name");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    assert_eq!(field(&d[0], "dsn"), Some("4.7.5"), "{}", d[0]);
    // Postfix's text exactly; the detail is on tern's separate line.
    assert!(
        d[0].ends_with("status=deferred (Server certificate not verified)"),
        "{}",
        d[0]
    );
    assert_eq!(
        tern.log_lines(&[
            &format!("server certificate verification failed for 127.0.0.1[127.0.0.1]:{port}: "),
            "(certificate-host-mismatch)"
        ])
        .len(),
        1
    );
    assert!(tern.log_lines(&["TLS connection established"]).is_empty());
    let q = tern.mailq();
    assert!(q.contains(&id) && q.contains("bob@example.test"), "{q}");
    assert!(pf.messages().is_empty());
    drop(tern);

    // Unknown CA: same destination, the CA file is another CA's.
    let b = Tern::builder();
    let policy = b.table(
        "tls_policy",
        &format!("[127.0.0.1]:{port} verify match=mx.example.test\n"),
    );
    let tern = b
        .relay_to(port)
        .set("smtp_tls_policy_maps", &policy)
        .set("smtp_tls_CAfile", &other_ca.cert.display().to_string())
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "unknown-ca");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    assert!(
        d[0].ends_with("status=deferred (Server certificate not trusted)"),
        "{}",
        d[0]
    );
    assert!(pf.messages().is_empty());
}

#[test]
fn fingerprint_level_right_and_wrong() {
    let leaf = self_signed(KeyKind::Rsa2048, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    // Wrong fingerprint: the CA-less self-signed cert does not match.
    let wrong = "00:".repeat(31) + "00";
    let b = Tern::builder();
    let policy = b.table(
        "tls_policy",
        &format!("[127.0.0.1]:{port} fingerprint match={wrong}\n"),
    );
    let tern = b
        .relay_to(port)
        .set("smtp_tls_policy_maps", &policy)
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "fp-wrong");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    assert_eq!(field(&d[0], "dsn"), Some("4.7.5"), "{}", d[0]);
    let q = tern.mailq();
    assert!(q.contains(&id), "{q}");
    assert!(pf.messages().is_empty());
    drop(tern);

    // Right fingerprints: the certificate's, then the public key's (with a
    // wrong one first in the match list).
    for (n, (label, fp)) in [("cert", &leaf.cert_sha256), ("pkey", &leaf.pkey_sha256)]
        .into_iter()
        .enumerate()
    {
        let b = Tern::builder();
        let policy = b.table(
            "tls_policy",
            &format!("[127.0.0.1]:{port} fingerprint match={wrong}|{fp}\n"),
        );
        let tern = b
            .relay_to(port)
            .set("smtp_tls_policy_maps", &policy)
            .start();
        let subject = format!("fp-{label}");
        let id = tern.submit("alice@example.net", "bob@example.test", &subject);
        tern.wait_log(&[&id, "status=sent"], 1, T);
        let v = tern.log_lines(&[&format!(
            "Verified TLS connection established to 127.0.0.1[127.0.0.1]:{port}"
        )]);
        assert_eq!(v.len(), 1, "{}", tern.log());
        assert_delivered(&pf, n + 1, &subject);
    }
}

#[test]
fn policy_table_selects_level_per_next_hop() {
    // A: STARTTLS with a self-signed cert; B: no STARTTLS at all.
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let domains = ["example.test", "plain.example.test", "notls.example.test"];
    let a = Postfix::builder()
        .local_domains(&domains)
        .tls(&leaf.chain, &leaf.key)
        .start();
    let b_pf = Postfix::builder().local_domains(&domains).start();
    let (pa, pb) = (a.smtp_port(), b_pf.smtp_port());
    let b = Tern::builder();
    // relayhost [A] -> default level `may`; plain.example.test -> [A] on
    // its other route, forced `none` by the table although A offers
    // STARTTLS; notls.example.test -> [B], `encrypt` by the table.
    let policy = b.table(
        "tls_policy",
        &format!("[127.0.0.1]:{pb} encrypt\n[127.0.0.1]:{pa}   none\n"),
    );
    let transport = b.table(
        "transport",
        &format!(
            "plain.example.test smtp:[127.0.0.1]:{pa}\nnotls.example.test smtp:[127.0.0.1]:{pb}\n"
        ),
    );
    let tern = b
        .set("smtp_tls_security_level", "may")
        .set("smtp_tls_policy_maps", &policy)
        .set("transport_maps", &transport)
        .start();
    let id = tern.submit("alice@example.net", "bob@notls.example.test", "encrypt");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    let expect =
        "status=deferred (TLS is required, but was not offered by host 127.0.0.1[127.0.0.1])";
    assert!(d[0].ends_with(expect), "{}\nwant suffix: {expect}", d[0]);
    assert_eq!(
        field(&d[0], "relay"),
        Some(format!("127.0.0.1[127.0.0.1]:{pb}").as_str())
    );
    let q = tern.mailq();
    assert!(
        q.contains("(TLS is required, but was not offered by host 127.0.0.1[127.0.0.1])"),
        "{q}"
    );

    let id2 = tern.submit("alice@example.net", "carol@plain.example.test", "none");
    tern.wait_log(&[&id2, "status=sent"], 1, T);
    assert_delivered(&a, 1, "none");
    assert!(
        tern.log_lines(&["TLS connection established"]).is_empty(),
        "{}",
        tern.log()
    );
    assert!(
        !a.log().contains("TLS connection established"),
        "{}",
        a.log()
    );

    // The `encrypt` message is still queued and never went out in clear.
    assert!(tern.mailq().contains(&id));
    assert!(b_pf.messages().is_empty());
}

/// `may` falls back to plaintext when the handshake fails (here: the
/// server offers STARTTLS but only TLS 1.1 and older, which tern never
/// speaks), and says so in the log; `encrypt` to the same server defers.
#[test]
fn may_retries_in_plaintext_after_a_failed_handshake() {
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder()
        .tls(&leaf.chain, &leaf.key)
        .main_cf("smtpd_tls_protocols", "!SSLv2, !SSLv3, !TLSv1.2, !TLSv1.3")
        .main_cf(
            "smtpd_tls_mandatory_protocols",
            "!SSLv2, !SSLv3, !TLSv1.2, !TLSv1.3",
        )
        .start();
    let tern = Tern::builder()
        .relay_to(pf.smtp_port())
        .set("smtp_tls_security_level", "may")
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "may-fallback");
    tern.wait_log(&[&id, "status=sent"], 1, T);
    assert_delivered(&pf, 1, "may-fallback");
    assert_eq!(
        tern.log_lines(&["level may: trying", "again without TLS"])
            .len(),
        1,
        "{}",
        tern.log()
    );
    assert!(
        tern.log_lines(&["TLS connection established to"])
            .is_empty(),
        "{}",
        tern.log()
    );

    let strict = Tern::builder()
        .relay_to(pf.smtp_port())
        .set("smtp_tls_security_level", "encrypt")
        .start();
    let id = strict.submit(
        "alice@example.net",
        "bob@example.test",
        "encrypt-no-fallback",
    );
    let deferred = strict.wait_log(&[&id, "status=deferred"], 1, T);
    assert!(deferred[0].contains("dsn=4.7.5"), "{}", deferred[0]);
    assert!(
        strict.log_lines(&["without TLS"]).is_empty(),
        "{}",
        strict.log()
    );
}

/// A server that offers STARTTLS and then refuses it (Postfix without a
/// readable certificate answers `454 4.7.0 TLS not available due to local
/// problem`): `may` carries on in plaintext, as Postfix does, and logs why;
/// `encrypt` defers.
#[test]
fn may_continues_in_plaintext_after_a_refused_starttls() {
    let pf = Postfix::builder()
        .tls(
            std::path::Path::new("/nonexistent/cert.pem"),
            std::path::Path::new("/nonexistent/key.pem"),
        )
        .start();
    let port = pf.smtp_port();
    let tern = Tern::builder()
        .relay_to(port)
        .set("smtp_tls_security_level", "may")
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "may-454");
    tern.wait_log(&[&id, "status=sent"], 1, T);
    assert_delivered(&pf, 1, "may-454");
    let why = tern.log_lines(&[
        "host 127.0.0.1[127.0.0.1] refused to start TLS: 454 4.7.0 TLS not available due to local problem; level may: continuing without TLS",
    ]);
    assert_eq!(why.len(), 1, "{}", tern.log());
    drop(tern);

    let strict = Tern::builder()
        .relay_to(port)
        .set("smtp_tls_security_level", "encrypt")
        .start();
    let id = strict.submit("alice@example.net", "bob@example.test", "enc-454");
    let d = strict.wait_log(&[&id, "status=deferred"], 1, T);
    assert!(
        d[0].ends_with("(TLS is required, but host 127.0.0.1[127.0.0.1] refused to start TLS: 454 4.7.0 TLS not available due to local problem)"),
        "{}",
        d[0]
    );
    assert!(strict.log_lines(&["continuing without TLS"]).is_empty());
}

/// A fake server that answers STARTTLS with `220` and, in the same
/// segment, a forged `250` (STARTTLS response injection, CVE-2011-0411
/// class), then does the TLS handshake and a normal session. Returns the
/// commands it saw after the handshake.
fn injecting_server(
    listener: std::net::TcpListener,
    leaf: &common::certs::Leaf,
) -> std::thread::JoinHandle<Result<Vec<String>, String>> {
    use std::io::{BufRead, BufReader, Write};
    let params = tern::tls::TlsParams::from_postfix("", "", false).map_err(|e| e.to_string());
    let pair = tern::tls::CertKeyPaths {
        cert: leaf.chain.clone(),
        key: leaf.key.clone(),
    };
    std::thread::spawn(move || {
        let params = params?;
        let cfg = tern::tls::build_server_config(&params, &[pair]).map_err(|e| e.to_string())?;
        let (mut tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(T)).map_err(|e| e.to_string())?;
        let mut r = BufReader::new(tcp.try_clone().map_err(|e| e.to_string())?);
        let mut line = String::new();
        let mut expect = |r: &mut BufReader<std::net::TcpStream>, want: &str| {
            line.clear();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            if line.to_ascii_uppercase().starts_with(want) {
                Ok(())
            } else {
                Err(format!("wanted {want}, got {line:?}"))
            }
        };
        tcp.write_all(b"220 fake.example.test ESMTP\r\n")
            .map_err(|e| e.to_string())?;
        expect(&mut r, "EHLO")?;
        tcp.write_all(b"250-fake.example.test\r\n250 STARTTLS\r\n")
            .map_err(|e| e.to_string())?;
        expect(&mut r, "STARTTLS")?;
        // The injection: a reply the client never asked for, in plaintext.
        tcp.write_all(b"220 2.0.0 Ready to start TLS\r\n250-injected\r\n250 AUTH PLAIN\r\n")
            .map_err(|e| e.to_string())?;
        let conn = rustls::ServerConnection::new(cfg).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        let mut in_data = false;
        loop {
            // Read one line over TLS.
            buf.clear();
            let mut byte = [0u8; 1];
            loop {
                match std::io::Read::read(&mut tls, &mut byte) {
                    Ok(0) => return Ok(seen),
                    Ok(_) => buf.push(byte[0]),
                    Err(e) => return Err(format!("{e} after {seen:?}")),
                }
                if buf.ends_with(b"\r\n") {
                    break;
                }
            }
            let l = String::from_utf8_lossy(&buf).trim_end().to_string();
            if in_data {
                if l == "." {
                    in_data = false;
                    tls.write_all(b"250 2.0.0 Ok: queued as FAKE1\r\n")
                        .map_err(|e| e.to_string())?;
                }
                continue;
            }
            let verb = l.split(' ').next().unwrap_or("").to_ascii_uppercase();
            seen.push(verb.clone());
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250-fake.example.test\r\n250 PIPELINING\r\n",
                "MAIL" | "RCPT" => b"250 2.1.0 Ok\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 End data with <CR><LF>.<CR><LF>\r\n"
                }
                "QUIT" => {
                    let _ = tls.write_all(b"221 2.0.0 Bye\r\n");
                    return Ok(seen);
                }
                _ => b"502 5.5.2 Error: command not recognized\r\n",
            };
            tls.write_all(reply).map_err(|e| e.to_string())?;
        }
    })
}

/// STARTTLS response injection against the client: whatever the server
/// sent after its `220` in plaintext is discarded, and tern sends EHLO
/// again over TLS before anything else (issue 4, client hygiene).
#[test]
fn injected_plaintext_after_starttls_is_discarded() {
    let leaf = self_signed(KeyKind::EcdsaP256, &["fake.example.test"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = injecting_server(listener, &leaf);
    let tern = Tern::builder()
        .relay_to(port)
        .set("smtp_tls_security_level", "encrypt")
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "injection");
    let sent = tern.wait_log(&[&id, "status=sent"], 1, T);
    assert!(
        sent[0].contains("(250 2.0.0 Ok: queued as FAKE1)"),
        "{}",
        sent[0]
    );
    let seen = server
        .join()
        .expect("server thread")
        .unwrap_or_else(|e| panic!("fake server: {e}\n{}", tern.log()));
    assert_eq!(
        seen,
        ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
        "{}",
        tern.log()
    );
    assert_eq!(
        tern.log_lines(&["Untrusted TLS connection established to 127.0.0.1[127.0.0.1]"])
            .len(),
        1,
        "{}",
        tern.log()
    );
}

/// Implicit TLS (RFC 8314) per transport, as Postfix applies
/// `smtp_tls_wrappermode`: to Postfix's `smtpd_tls_wrappermode = yes`
/// listener on a port that is not 465, so only the route can ask for it.
/// A client speaking plaintext there would wait for a greeting that never
/// comes (the server waits for a ClientHello).
#[test]
fn implicit_tls_per_transport_on_a_port_other_than_465() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder()
        .tls(&leaf.chain, &leaf.key)
        .smtps()
        .start();
    let port = pf.smtps_port().expect("smtps listener");
    assert_ne!(port, 465);
    let hop = format!("[127.0.0.1]:{port}");
    let cases: [(&str, &str, &str); 3] = [
        // A `smtps:` transport-map entry: implicit TLS without the setting.
        ("smtps-transport", "smtps", "no"),
        // `smtp:` entry with smtp_tls_wrappermode = yes.
        ("smtp-transport-wrappermode", "smtp", "yes"),
        // The relayhost with smtp_tls_wrappermode = yes.
        ("relayhost-wrappermode", "", "yes"),
    ];
    for (n, (subject, transport, wrappermode)) in cases.into_iter().enumerate() {
        let mut b = Tern::builder();
        if transport.is_empty() {
            b = b.relay_to(port);
        } else {
            let map = b.table("transport", &format!("example.test {transport}:{hop}\n"));
            b = b.set("transport_maps", &map);
        }
        let tern = b
            .set("smtp_tls_wrappermode", wrappermode)
            .set("smtp_tls_security_level", "encrypt")
            .start();
        let id = tern.submit("alice@example.net", "bob@example.test", subject);
        let sent = tern.wait_log(&[&id, "status=sent"], 1, T);
        assert_eq!(
            field(&sent[0], "relay"),
            Some(format!("127.0.0.1[127.0.0.1]:{port}").as_str()),
            "{subject}: {}",
            sent[0]
        );
        let tls = tern.log_lines(&[&format!(
            "TLS connection established to 127.0.0.1[127.0.0.1]:{port}: TLSv1.3"
        )]);
        assert_eq!(tls.len(), 1, "{subject}: {}", tern.log());
        // No STARTTLS: the TLS session started with the connection.
        assert!(
            tern.log_lines(&["tern/smtp[", "STARTTLS"]).is_empty(),
            "{subject}: {}",
            tern.log()
        );
        assert_delivered(&pf, n + 1, subject);
    }
    assert!(pf
        .wait_for_log("TLS connection established from", T)
        .is_some());
}
