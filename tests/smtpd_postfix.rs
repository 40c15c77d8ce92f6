//! A real Postfix (Debian's package, private instance on loopback) relays
//! into tern over TLS: `relayhost = [127.0.0.1]:TERN`, with
//! `smtp_tls_security_level = verify` (against the test CA) or `encrypt`.
//! The message must land in tern's spool, and both logs must show TLS.
mod common;
mod smtpd_support;

use std::time::Duration;

use common::certs::{KeyKind, TestCa};
use common::postfix::Postfix;
use common::tools::Swaks;
use smtpd_support::{body_of, Tern};

/// Sends one message into Postfix, waits for Postfix to relay it to tern;
/// returns tern's queue ID (from Postfix's `status=sent` line).
fn relay_one(pf: &Postfix, tern: &Tern, rcpt: &str, subject: &str) -> String {
    Swaks::new(pf.smtp_port())
        .from("sender@example.test")
        .to(rcpt)
        .header("Subject", subject)
        .run_ok();
    let sent = pf
        .wait_for_log(
            &format!("to=<{rcpt}>, relay=127.0.0.1[127.0.0.1]:{}", tern.smtp_port),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|| panic!("Postfix did not relay\n{}", pf.diagnostics()));
    assert!(
        sent.contains("status=sent (250 2.0.0 Ok: queued as "),
        "{sent}\n{}",
        tern.diagnostics()
    );
    sent.trim_end()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn postfix_relays_into_tern_at_verify_level() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let tern = Tern::builder().cert(&leaf.chain, &leaf.key).start();
    let pf = Postfix::builder()
        .relayhost(tern.smtp_port)
        .relay_tls("verify", Some(&ca.cert))
        .relay_cert_match("tern.example.test")
        .start();

    let id = relay_one(&pf, &tern, "far@remote.test", "via postfix");
    let tls = pf
        .wait_for_log(
            "Verified TLS connection established to 127.0.0.1[127.0.0.1]:",
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(tls.contains(": TLSv1.3 with cipher TLS_"), "{tls}");
    assert!(tls.contains("key-exchange X25519"), "{tls}");

    let q = tern.queue_file(&id);
    assert!(q.contains("\nsender sender@example.test\n"), "{q}");
    assert!(q.contains("\nrcpt far@remote.test\n"), "{q}");
    assert!(q.contains("\nclient localhost[127.0.0.1]\n"), "{q}");
    let body = body_of(&q);
    // tern's Received on top (TLS comment), Postfix's below it.
    assert!(
        body.starts_with("Received: from postfix.example.test (localhost [127.0.0.1])\r\n\t(using TLSv1.3 with cipher TLS_"),
        "{body}"
    );
    assert!(
        body.contains("by postfix.example.test (Postfix) with ESMTP"),
        "{body}"
    );
    assert!(body.contains("Subject: via postfix"), "{body}");

    tern.wait_for_log(&[
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_",
        "key-exchange X25519",
    ]);
    tern.wait_for_log(&[&format!("{id}: client=localhost[127.0.0.1]")]);
    tern.wait_for_log(&[&format!("{id}: from=<sender@example.test>, size=")]);
    tern.wait_for_log(&[
        "disconnect from localhost[127.0.0.1] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7",
    ]);
}

#[test]
fn postfix_relays_into_tern_at_encrypt_level_with_dual_certificates() {
    let ca = TestCa::new();
    let rsa = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let ec = ca.server_cert(KeyKind::EcdsaP256, &["tern.example.test"]);
    let tern = Tern::builder()
        .cert(&rsa.chain, &rsa.key)
        .set("smtpd_tls_eccert_file", &ec.chain.display().to_string())
        .set("smtpd_tls_eckey_file", &ec.key.display().to_string())
        .start();
    let pf = Postfix::builder()
        .relayhost(tern.smtp_port)
        .relay_tls("encrypt", None)
        .start();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            relay_one(
                &pf,
                &tern,
                &format!("r{i}@remote.test"),
                &format!("enc {i}"),
            )
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let q = tern.queue_file(id);
        assert!(q.contains(&format!("\nrcpt r{i}@remote.test\n")), "{q}");
        assert!(body_of(&q).contains(&format!("Subject: enc {i}")), "{q}");
    }
    // OpenSSL offers ECDSA first, so tern must present the ECDSA chain.
    let l = pf
        .wait_for_log(
            "TLS connection established to 127.0.0.1[127.0.0.1]:",
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(l.contains("TLSv1.3"), "{l}");
    // Debian's OpenSSL 3.0 names the curve prime256v1, and so does tern.
    assert!(l.contains("server-signature ECDSA (prime256v1)"), "{l}");
    tern.wait_for_log(&[
        "Anonymous TLS connection established",
        "server-signature ECDSA (prime256v1)",
    ]);
}
