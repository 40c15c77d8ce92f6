//! Set-up mistakes fail clearly (issue 13, item 6), against a real Postfix:
//! a relay on an implicit-TLS port without `smtp_tls_wrappermode` (the
//! server waits for a ClientHello and never greets) is deferred within
//! `smtp_greeting_timeout` (30 s by default) with a hint naming the
//! setting; `smtp_tls_wrappermode` towards a STARTTLS port (a cleartext
//! greeting where the ServerHello belonged) likewise; a self-signed
//! certificate as `openssl req -x509` makes it (CA:TRUE) works as a
//! `tafile=` trust anchor and as a `fingerprint` target, and where it is
//! not trusted the log says why in words.
mod common;
mod delivery_harness;

use common::certs::{plain_self_signed, KeyKind};
use common::postfix::Postfix;
use delivery_harness::{field, Tern};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

#[test]
fn implicit_tls_port_without_wrappermode_fails_within_the_greeting_timeout() {
    let leaf = plain_self_signed(KeyKind::EcdsaP256, "mx.example.test");
    let pf = Postfix::builder()
        .tls(&leaf.chain, &leaf.key)
        .smtps()
        .start();
    let port = pf.smtps_port().expect("smtps listener");
    let tern = Tern::builder()
        .relay_to(port)
        // Postfix's 300 s, so that only the new default (30 s) can end it.
        .set("smtp_helo_timeout", "300s")
        .start();
    let t0 = Instant::now();
    let id = tern.submit("alice@example.net", "bob@example.test", "no-wrappermode");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, Duration::from_secs(60));
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(40), "took {took:?}: {}", d[0]);
    assert!(took >= Duration::from_secs(25), "took {took:?}: {}", d[0]);
    assert_eq!(field(&d[0], "dsn"), Some("4.4.2"), "{}", d[0]);
    assert!(
        d[0].contains(&format!(
            "status=deferred (conversation with 127.0.0.1[127.0.0.1] timed out while receiving the initial server greeting (no byte within 30s, smtp_greeting_timeout): if port {port} expects TLS at once"
        )),
        "{}",
        d[0]
    );
    assert!(d[0].contains("set smtp_tls_wrappermode = yes"), "{}", d[0]);
    assert!(pf.messages().is_empty());
    drop(tern);

    // With the setting, the same relay works.
    let tern = Tern::builder()
        .relay_to(port)
        .set("smtp_tls_wrappermode", "yes")
        .set("smtp_tls_security_level", "encrypt")
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "wrappermode");
    tern.wait_log(&[&id, "status=sent"], 1, T);
    pf.wait_for_message(1, T);
}

#[test]
fn wrappermode_to_a_starttls_port_names_the_setting() {
    let leaf = plain_self_signed(KeyKind::EcdsaP256, "mx.example.test");
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let tern = Tern::builder()
        .relay_to(port)
        .set("smtp_tls_wrappermode", "yes")
        .set("smtp_tls_security_level", "encrypt")
        .start();
    let t0 = Instant::now();
    let id = tern.submit("alice@example.net", "bob@example.test", "cleartext");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(field(&d[0], "dsn"), Some("4.7.5"), "{}", d[0]);
    // Postfix's text first (log summaries group by it), then the reason
    // and the setting to change.
    assert!(
        d[0].contains(
            "status=deferred (Cannot start TLS: handshake failure (the server sent a cleartext SMTP greeting \"220 postfix.example.test ESMTP"
        ),
        "{}",
        d[0]
    );
    assert!(
        d[0].contains(&format!(
            "where a TLS handshake was expected from 127.0.0.1[127.0.0.1]:{port}: this port speaks STARTTLS, not implicit TLS: set smtp_tls_wrappermode = no"
        )),
        "{}",
        d[0]
    );
    assert!(pf.messages().is_empty());
}

#[test]
fn ca_true_self_signed_certificate_as_tafile_and_fingerprint() {
    let leaf = plain_self_signed(KeyKind::EcdsaP256, "mx.example.test");
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let entries = [
        (
            "tafile",
            format!(
                "[127.0.0.1]:{port} secure match=mx.example.test tafile={}\n",
                leaf.cert.display()
            ),
        ),
        (
            "fingerprint",
            format!(
                "[127.0.0.1]:{port} fingerprint match={}\n",
                leaf.cert_sha256
            ),
        ),
    ];
    for (n, (what, entry)) in entries.iter().enumerate() {
        let b = Tern::builder();
        let policy = b.table("tls_policy", entry);
        let tern = b
            .relay_to(port)
            .set("smtp_tls_policy_maps", &policy)
            .start();
        let id = tern.submit("alice@example.net", "bob@example.test", what);
        tern.wait_log(&[&id, "status=sent"], 1, T);
        assert_eq!(
            tern.log_lines(&[&format!(
                "Verified TLS connection established to 127.0.0.1[127.0.0.1]:{port}: TLSv1.3"
            )])
            .len(),
            1,
            "{what}: {}",
            tern.log()
        );
        pf.wait_for_message(n + 1, T);
    }

    // As the CAfile it is trusted too ...
    let b = Tern::builder();
    let policy = b.table(
        "tls_policy",
        &format!("[127.0.0.1]:{port} verify match=mx.example.test\n"),
    );
    let tern = b
        .relay_to(port)
        .set("smtp_tls_policy_maps", &policy)
        .set("smtp_tls_CAfile", &leaf.cert.display().to_string())
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "cafile");
    tern.wait_log(&[&id, "status=sent"], 1, T);
    drop(tern);

    // ... and where it is not an anchor, the log says why in words.
    let other = plain_self_signed(KeyKind::EcdsaP256, "other.example.test");
    let b = Tern::builder();
    let policy = b.table(
        "tls_policy",
        &format!(
            "[127.0.0.1]:{port} secure match=mx.example.test tafile={}\n",
            other.cert.display()
        ),
    );
    let tern = b
        .relay_to(port)
        .set("smtp_tls_policy_maps", &policy)
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "not-anchor");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    assert!(
        d[0].ends_with("status=deferred (Server certificate not trusted)"),
        "{}",
        d[0]
    );
    let why = tern.log_lines(&[&format!(
        "server certificate verification failed for 127.0.0.1[127.0.0.1]:{port}: "
    )]);
    assert_eq!(why.len(), 1, "{}", tern.log());
    assert!(
        why[0].contains("the server certificate is a CA certificate (CA:TRUE)"),
        "{}",
        why[0]
    );
    assert!(why[0].ends_with("(certificate-not-trusted)"), "{}", why[0]);
    assert!(!tern.log().contains("CaUsedAsEndEntity"), "{}", tern.log());
}
