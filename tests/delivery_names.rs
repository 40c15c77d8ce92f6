//! Certificate name checks at `secure`/`verify` as Debian's Postfix 3.7
//! makes them (issue 13, item 3), against a real Postfix receiver holding
//! certificates from a test CA: the CN when the certificate has no DNS
//! subjectAltName, a `match=*.mail.example.test` pattern (the seed's
//! Hostpoint entry) against a wildcard certificate, and how far a wildcard
//! reaches. Where Postfix's own smtp client is the reference, the test
//! asks it too (a Postfix relaying to the same receiver).
mod common;
mod delivery_harness;

use common::certs::{KeyKind, Leaf, TestCa};
use common::postfix::Postfix;
use common::tools::Swaks;
use delivery_harness::Tern;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// tern relays one message to `pf` at `level match=PATTERN` with `ca` as
/// CAfile (and `extra` settings); returns the `status=` line.
fn tern_delivers(
    pf: &Postfix,
    ca: &Path,
    level: &str,
    pattern: &str,
    extra: &[(&str, &str)],
) -> String {
    let port = pf.smtp_port();
    let b = Tern::builder();
    let policy = b.table(
        "tls_policy",
        &format!("[127.0.0.1]:{port} {level} match={pattern}\n"),
    );
    let mut b = b
        .relay_to(port)
        .set("smtp_tls_policy_maps", &policy)
        .set("smtp_tls_CAfile", &ca.display().to_string());
    for (k, v) in extra {
        b = b.set(k, v);
    }
    let tern = b.start();
    let id = tern.submit("alice@example.net", "bob@example.test", pattern);
    let line = tern.wait_log(&[&id, "status="], 1, T).remove(0);
    if line.contains("status=sent") {
        assert_eq!(
            tern.log_lines(&["Verified TLS connection established to 127.0.0.1[127.0.0.1]:"])
                .len(),
            1,
            "{}",
            tern.log()
        );
    }
    line
}

/// Postfix's smtp client relays one message to `server` at `secure` with
/// `match` (smtp_tls_secure_cert_match) and `ca`; returns whether it was
/// delivered ("Verified TLS connection established") or refused ("Server
/// certificate not verified").
fn postfix_delivers(server: &Postfix, ca: &Path, matching: &str, extra: &[(&str, &str)]) -> bool {
    let mut b = Postfix::builder()
        .hostname("client.example.test")
        .local_domains(&["client.example.test"])
        .relayhost(server.smtp_port())
        .relay_tls("secure", Some(ca))
        .relay_cert_match(matching);
    for (k, v) in extra {
        b = b.main_cf(k, v);
    }
    let client = b.start();
    Swaks::new(client.smtp_port())
        .from("alice@client.example.test")
        .to("bob@example.test")
        .run_ok();
    let verdict = [
        "Verified TLS connection established to",
        "Server certificate not verified",
    ];
    let deadline = std::time::Instant::now() + T;
    loop {
        let log = client.log();
        if log.contains(verdict[0]) {
            return true;
        }
        if log.contains(verdict[1]) {
            return false;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no verdict from Postfix:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn receiver(leaf: &Leaf) -> Postfix {
    Postfix::builder().tls(&leaf.chain, &leaf.key).start()
}

#[test]
fn common_name_is_used_only_without_dns_names() {
    let ca = TestCa::new();
    // No subjectAltName at all: the CN is the name.
    let cn_only = ca.server_cert_cn(KeyKind::EcdsaP256, "mx.example.test", &[]);
    let pf = receiver(&cn_only);
    let line = tern_delivers(&pf, &ca.cert, "secure", "mx.example.test", &[]);
    assert!(line.contains("status=sent"), "{line}");
    drop(pf);

    // A DNS subjectAltName hides the CN, for Postfix and for tern.
    let both = ca.server_cert_cn(
        KeyKind::EcdsaP256,
        "mx.example.test",
        &["other.example.test"],
    );
    let pf = receiver(&both);
    assert!(!postfix_delivers(&pf, &ca.cert, "mx.example.test", &[]));
    let line = tern_delivers(&pf, &ca.cert, "verify", "mx.example.test", &[]);
    assert!(
        line.ends_with("status=deferred (Server certificate not verified)"),
        "{line}"
    );
    let line = tern_delivers(&pf, &ca.cert, "verify", "other.example.test", &[]);
    assert!(line.contains("status=sent"), "{line}");
}

#[test]
fn hostpoint_wildcard_pattern_and_wildcard_reach() {
    let ca = TestCa::new();
    let wild = ca.server_cert(KeyKind::EcdsaP256, &["*.mail.example.test"]);
    let pf = receiver(&wild);
    // The seed's Hostpoint entry: `secure match=*.mail.hostpoint.ch` names
    // the certificate's wildcard itself, which Postfix (OpenSSL) accepts.
    assert!(postfix_delivers(&pf, &ca.cert, "*.mail.example.test", &[]));
    let line = tern_delivers(&pf, &ca.cert, "secure", "*.mail.example.test", &[]);
    assert!(line.contains("status=sent"), "{line}");
    // One label below the wildcard, and a `.suffix` pattern.
    let line = tern_delivers(&pf, &ca.cert, "secure", "mx1.mail.example.test", &[]);
    assert!(line.contains("status=sent"), "{line}");
    let line = tern_delivers(&pf, &ca.cert, "secure", ".example.test", &[]);
    assert!(line.contains("status=sent"), "{line}");
    // The wildcard does not cover the parent.
    let line = tern_delivers(&pf, &ca.cert, "secure", "mail.example.test", &[]);
    assert!(line.contains("status=deferred"), "{line}");
}

#[test]
fn a_wildcard_covers_one_label_as_in_postfix_3_7() {
    // Postfix documents `tls_wildcard_matches_multiple_labels = yes`, but
    // Debian's Postfix 3.7 has OpenSSL check names, and its smtp client
    // refuses a two-label match whatever the parameter says. tern accepts
    // the parameter and does the same.
    let ca = TestCa::new();
    let wild = ca.server_cert(KeyKind::EcdsaP256, &["*.mail.example.test"]);
    let pf = receiver(&wild);
    for value in ["yes", "no"] {
        let setting = [("tls_wildcard_matches_multiple_labels", value)];
        assert!(!postfix_delivers(
            &pf,
            &ca.cert,
            "a.b.mail.example.test",
            &setting
        ));
        let line = tern_delivers(&pf, &ca.cert, "secure", "a.b.mail.example.test", &setting);
        assert!(
            line.ends_with("status=deferred (Server certificate not verified)"),
            "{value}: {line}"
        );
    }
    assert!(postfix_delivers(&pf, &ca.cert, "a.mail.example.test", &[]));
}
