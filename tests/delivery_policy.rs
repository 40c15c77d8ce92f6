//! Policy-table attributes and main.cf settings that shape the outbound
//! TLS connection, end to end against a real Postfix on loopback (issue 4):
//! `protocols=` and `smtp_tls_(mandatory_)protocols`, `exclude=`,
//! `tafile=`, `smtp_tls_fingerprint_digest`, and the load-time errors of
//! `tern check-config` for what tern cannot honour.

mod common;
mod delivery_harness;

use common::certs::{self_signed, KeyKind, TestCa};
use common::postfix::Postfix;
use delivery_harness::{field, Tern};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn delivered(pf: &Postfix, n: usize, subject: &str) {
    let msgs = pf.wait_for_message(n, T);
    assert!(
        msgs.iter()
            .any(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {subject}"))),
        "no message with Subject: {subject} in Postfix's Maildir"
    );
}

fn has_subject(pf: &Postfix, subject: &str) -> bool {
    pf.messages()
        .iter()
        .any(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {subject}")))
}

/// A Postfix that speaks TLS 1.2 only (ECDSA P-256 certificate); the
/// certificate files live as long as the returned leaf.
fn tls12_only_postfix() -> (Postfix, common::certs::Leaf) {
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let no13 = "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.3";
    let pf = Postfix::builder()
        .tls(&leaf.chain, &leaf.key)
        .main_cf("smtpd_tls_protocols", no13)
        .main_cf("smtpd_tls_mandatory_protocols", no13)
        .start();
    (pf, leaf)
}

/// Delivers one message through a fresh tern with `settings` and a policy
/// table `table` (may be empty); returns (queue ID, status line, maillog).
fn attempt(
    port: u16,
    settings: &[(&str, &str)],
    table: &str,
    subject: &str,
    status: &str,
) -> (String, String, String) {
    let mut b = Tern::builder().relay_to(port);
    if !table.is_empty() {
        let t = b.table("tls_policy", table);
        b = b.set("smtp_tls_policy_maps", &t);
    }
    for (k, v) in settings {
        b = b.set(k, v);
    }
    let tern = b.start();
    let id = tern.submit("alice@example.net", "bob@example.test", subject);
    let line = tern.wait_log(&[&id, status], 1, T).remove(0);
    (id, line, tern.log())
}

#[test]
fn protocols_restrict_the_versions_offered() {
    let (pf, _leaf) = tls12_only_postfix();
    let port = pf.smtp_port();

    // No restriction: a plain `encrypt` delivery, over TLS 1.2.
    let (_, _, log) = attempt(
        port,
        &[],
        &format!("[127.0.0.1]:{port} encrypt\n"),
        "enc-12",
        "status=sent",
    );
    assert!(
        log.contains(&format!(
            "Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{port}: TLSv1.2 with cipher ECDHE-ECDSA-"
        )),
        "{log}"
    );
    delivered(&pf, 1, "enc-12");

    // protocols=>=TLSv1.3 in the table: no common version, deferred.
    let (_, line, log) = attempt(
        port,
        &[],
        &format!("[127.0.0.1]:{port} encrypt protocols=>=TLSv1.3\n"),
        "enc-13-table",
        "status=deferred",
    );
    assert_eq!(field(&line, "dsn"), Some("4.7.5"), "{line}");
    // Postfix's reason, word for word; tern's detail on its own line.
    assert!(
        line.contains("status=deferred (Cannot start TLS: handshake failure)"),
        "{line}"
    );
    assert!(
        log.contains(&format!(
            "SSL_connect error to 127.0.0.1[127.0.0.1]:{port}: "
        )),
        "{log}"
    );
    assert!(!log.contains("TLS connection established"), "{log}");

    // The same with the exclusion form in smtp_tls_mandatory_protocols at encrypt.
    let (_, line, _) = attempt(
        port,
        &[
            ("smtp_tls_security_level", "encrypt"),
            (
                "smtp_tls_mandatory_protocols",
                "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2",
            ),
        ],
        "",
        "enc-13-main",
        "status=deferred",
    );
    assert_eq!(field(&line, "dsn"), Some("4.7.5"), "{line}");

    // smtp_tls_mandatory_protocols does not apply at `may`, and
    // smtp_tls_protocols does: TLS 1.3 only there makes the handshake fail,
    // and `may` then retries in plaintext.
    let (_, _, log) = attempt(
        port,
        &[
            ("smtp_tls_security_level", "may"),
            ("smtp_tls_mandatory_protocols", ">=TLSv1.3"),
        ],
        "",
        "may-12",
        "status=sent",
    );
    assert!(log.contains("TLSv1.2 with cipher"), "{log}");
    let (_, _, log) = attempt(
        port,
        &[
            ("smtp_tls_security_level", "may"),
            ("smtp_tls_protocols", ">=TLSv1.3"),
        ],
        "",
        "may-13",
        "status=sent",
    );
    assert!(log.contains("again without TLS"), "{log}");
    assert!(!log.contains("TLS connection established"), "{log}");
    delivered(&pf, 3, "may-13");
    assert!(!has_subject(&pf, "enc-13-table") && !has_subject(&pf, "enc-13-main"));
}

#[test]
fn exclude_removes_tls12_suites() {
    let (pf, _leaf) = tls12_only_postfix();
    let port = pf.smtp_port();
    // The server's key is ECDSA: without the ECDSA suites nothing is left.
    let (_, line, _) = attempt(
        port,
        &[],
        &format!("[127.0.0.1]:{port} encrypt exclude=aECDSA\n"),
        "no-ecdsa",
        "status=deferred",
    );
    assert_eq!(field(&line, "dsn"), Some("4.7.5"), "{line}");
    // Excluding the RSA and ChaCha20 suites leaves ECDHE-ECDSA-AES.
    let (_, _, log) = attempt(
        port,
        &[],
        &format!("[127.0.0.1]:{port} encrypt exclude=aRSA:CHACHA20,ciphers=high\n"),
        "no-rsa",
        "status=sent",
    );
    assert!(log.contains("TLSv1.2 with cipher ECDHE-ECDSA-AES"), "{log}");
    delivered(&pf, 1, "no-rsa");
    assert!(!has_subject(&pf, "no-ecdsa"));
}

#[test]
fn main_cf_cipher_exclusions_follow_the_level() {
    let (pf, _leaf) = tls12_only_postfix();
    let port = pf.smtp_port();
    let no_ecdsa = ("smtp_tls_mandatory_exclude_ciphers", "aECDSA");
    // Mandatory exclusions apply at encrypt: the ECDSA server has no suite left.
    let (_, line, _) = attempt(
        port,
        &[("smtp_tls_security_level", "encrypt"), no_ecdsa],
        "",
        "mand-excl-enc",
        "status=deferred",
    );
    assert_eq!(field(&line, "dsn"), Some("4.7.5"), "{line}");
    // ... and not at may, where TLS 1.2 with ECDSA goes ahead.
    let (_, _, log) = attempt(
        port,
        &[("smtp_tls_security_level", "may"), no_ecdsa],
        "",
        "mand-excl-may",
        "status=sent",
    );
    assert!(log.contains("TLSv1.2 with cipher ECDHE-ECDSA-"), "{log}");
    // smtp_tls_exclude_ciphers applies at may too: the handshake fails and
    // may retries in plaintext.
    let (_, _, log) = attempt(
        port,
        &[
            ("smtp_tls_security_level", "may"),
            ("smtp_tls_exclude_ciphers", "aECDSA"),
        ],
        "",
        "excl-may",
        "status=sent",
    );
    assert!(log.contains("again without TLS"), "{log}");
    assert!(!log.contains("TLS connection established"), "{log}");
    // A table entry's exclude= replaces both main.cf lists (Postfix's
    // set_cipher_grade), and the grades are accepted as they are.
    let (_, _, log) = attempt(
        port,
        &[
            no_ecdsa,
            ("smtp_tls_exclude_ciphers", "aECDSA+AES256"),
            ("smtp_tls_mandatory_ciphers", "high"),
            ("smtp_tls_ciphers", "low"),
        ],
        &format!("[127.0.0.1]:{port} encrypt exclude=aRSA\n"),
        "table-excl",
        "status=sent",
    );
    assert!(
        log.contains("TLSv1.2 with cipher ECDHE-ECDSA-AES256"),
        "{log}"
    );
    delivered(&pf, 3, "table-excl");
    assert!(!has_subject(&pf, "mand-excl-enc"));
}

#[test]
fn check_config_checks_the_main_cf_cipher_settings() {
    let out = Tern::builder()
        .relay_to(2525)
        .set("smtp_tls_ciphers", "null")
        .set("smtp_tls_mandatory_ciphers", "strong")
        .set("smtp_tls_exclude_ciphers", "aNULL, MD5 rc4")
        .set(
            "smtp_tls_mandatory_exclude_ciphers",
            "TLS_AES_128_GCM_SHA256",
        )
        .check_config();
    let text = out.combined();
    assert_eq!(out.status, Some(1), "{text}");
    for want in [
        "smtp_tls_ciphers: cipher grade \"null\" is not supported",
        "smtp_tls_mandatory_ciphers: invalid cipher grade \"strong\": expected high, medium, low, export or null",
        "smtp_tls_exclude_ciphers: unknown or unsupported cipher name \"rc4\"",
        "smtp_tls_mandatory_exclude_ciphers: \"TLS_AES_128_GCM_SHA256\" is a TLS 1.3 cipher suite",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The seed guide's settings, as a migrated main.cf has them, load.
    let out = Tern::builder()
        .relay_to(2525)
        .set("smtp_tls_ciphers", "medium")
        .set("smtp_tls_mandatory_ciphers", "HIGH")
        .set(
            "smtp_tls_exclude_ciphers",
            "aNULL, MD5, DES, RC4, kEDH+aRSA",
        )
        .set("smtp_tls_mandatory_exclude_ciphers", "")
        .check_config();
    assert_eq!(out.status, Some(0), "{}", out.combined());
}

#[test]
fn tafile_replaces_the_ca_file() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let ca_file = ca.cert.display().to_string();
    let other_file = other.cert.display().to_string();

    // The global CAfile would verify, but the entry trusts only `other`.
    let (id, line, log) = attempt(
        port,
        &[("smtp_tls_CAfile", &ca_file)],
        &format!("[127.0.0.1]:{port} verify match=mx.example.test tafile={other_file}\n"),
        "wrong-anchor",
        "status=deferred",
    );
    assert_eq!(field(&line, "dsn"), Some("4.7.5"), "{line}");
    assert!(
        line.contains("status=deferred (Server certificate not trusted)"),
        "{line}"
    );
    assert!(
        log.contains(&format!(
            "server certificate verification failed for 127.0.0.1[127.0.0.1]:{port}: "
        )) && log.contains("(certificate-not-trusted)"),
        "{log}"
    );
    assert!(!log.contains("TLS connection established"), "{log}");
    assert!(line.contains(&id));

    // The global CAfile would not verify; the entry's anchor does.
    let (_, _, log) = attempt(
        port,
        &[("smtp_tls_CAfile", &other_file)],
        &format!(
            "[127.0.0.1]:{port} secure match=mx.example.test tafile={other_file} tafile={ca_file}\n"
        ),
        "right-anchor",
        "status=sent",
    );
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to 127.0.0.1[127.0.0.1]:{port}"
        )),
        "{log}"
    );
    delivered(&pf, 1, "right-anchor");
    assert!(!has_subject(&pf, "wrong-anchor"));
}

/// SHA-512 of the DER certificate, as `openssl x509 -fingerprint` prints it.
fn sha512_fingerprint(cert_pem: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha512", "-in"])
        .arg(cert_pem)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let fp = text
        .trim()
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    assert_eq!(fp.len(), 64 * 3 - 1, "openssl output: {text}");
    fp
}

#[test]
fn sha512_fingerprints_with_the_digest_setting() {
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let fp = sha512_fingerprint(&leaf.cert);
    let wrong = "00:".repeat(63) + "00";
    let table = format!("[127.0.0.1]:{port} fingerprint match={wrong}|{fp}\n");
    let (_, _, log) = attempt(
        port,
        &[("smtp_tls_fingerprint_digest", "sha512")],
        &table,
        "fp-512",
        "status=sent",
    );
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to 127.0.0.1[127.0.0.1]:{port}"
        )),
        "{log}"
    );
    delivered(&pf, 1, "fp-512");

    // Only the wrong SHA-512 fingerprint: deferred.
    let (_, line, _) = attempt(
        port,
        &[("smtp_tls_fingerprint_digest", "sha512")],
        &format!("[127.0.0.1]:{port} fingerprint match={wrong}\n"),
        "fp-512-wrong",
        "status=deferred",
    );
    assert_eq!(field(&line, "dsn"), Some("4.7.5"), "{line}");
    // At fingerprint, Postfix sets trust and match together: "not trusted".
    assert!(
        line.contains("status=deferred (Server certificate not trusted)"),
        "{line}"
    );

    // The SHA-512 fingerprint with the default digest (sha256) is refused
    // at load time, with the table's file and line.
    let b = Tern::builder().relay_to(port);
    let t = b.table("tls_policy", &format!("# fingerprints\n{table}"));
    let out = b.set("smtp_tls_policy_maps", &t).check_config();
    assert_eq!(out.status, Some(1), "{}", out.combined());
    let path = t.trim_start_matches("texthash:");
    assert!(
        out.combined().contains(&format!(
            "{path}:2: fingerprint \"{wrong}\" has 64 bytes, but smtp_tls_fingerprint_digest = sha256 gives 32"
        )),
        "{}",
        out.combined()
    );
    assert!(!has_subject(&pf, "fp-512-wrong"));

    // The same check for main.cf's list, where the fingerprint level uses it.
    let out = Tern::builder()
        .relay_to(port)
        .set("smtp_tls_security_level", "fingerprint")
        .set("smtp_tls_fingerprint_cert_match", &leaf.cert_sha256)
        .set("smtp_tls_fingerprint_digest", "sha512")
        .check_config();
    assert_eq!(out.status, Some(1), "{}", out.combined());
    assert!(
        out.combined().contains(&format!(
            "smtp_tls_fingerprint_cert_match: fingerprint \"{}\" has 32 bytes, but smtp_tls_fingerprint_digest = sha512 gives 64",
            leaf.cert_sha256
        )),
        "{}",
        out.combined()
    );
}

#[test]
fn check_config_reports_unusable_attributes_with_lines() {
    // Attribute values tern cannot honour: the table does not load.
    let b = Tern::builder().relay_to(2525);
    let t = b.table(
        "tls_policy",
        "b.example encrypt ciphers=null\n\
         c.example encrypt exclude=aNULL:eNULL:rc4\n\
         d.example dane tafile=/etc/ssl/certs/ca-certificates.crt\n\
         e.example may\n",
    );
    let path = t.trim_start_matches("texthash:").to_string();
    let out = b
        .set("smtp_tls_policy_maps", &t)
        .set("smtp_tls_protocols", ">=TLSv1.4")
        .check_config();
    let text = out.combined();
    assert_eq!(out.status, Some(1), "{text}");
    for want in [
        format!("{path}:1: cipher grade \"null\" is not supported"),
        format!("{path}:2: exclude: unknown or unsupported cipher name \"rc4\""),
        format!("{path}:3: attribute \"tafile\" is not supported at security level \"dane\""),
        "smtp_tls_protocols: unknown TLS protocol \">=TLSv1.4\"".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains(&format!("{path}:4")), "{text}");

    // A trust-anchor file that cannot be read, found when the table loads.
    let b = Tern::builder().relay_to(2525);
    let t = b.table(
        "tls_policy",
        "# anchors\na.example verify tafile=/nonexistent/anchors.pem\n",
    );
    let path = t.trim_start_matches("texthash:").to_string();
    let out = b.set("smtp_tls_policy_maps", &t).check_config();
    let text = out.combined();
    assert_eq!(out.status, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "{path}:2: tafile: /nonexistent/anchors.pem: cannot read PEM"
        )),
        "{text}"
    );
}

/// `secure` is immune to a forged MX record (the seed guide's "DNS forgery
/// resistant server certificate verification"): example.test's MX points
/// at mx.other.test, whose certificate (from a CA tern trusts) names only
/// mx.other.test. `secure` checks the default `nexthop, dot-nexthop` names
/// (example.test, *.example.test), taken from the next hop and never from
/// DNS, and defers; `verify` checks the MX host name (`hostname`) and
/// delivers, as Postfix does.
#[test]
fn secure_is_immune_to_a_forged_mx() {
    use common::dnssec::{DnsWorld, Signing, Zone};
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.other.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[
        Zone::new(
            "example.test",
            Signing::Unsigned,
            "@ IN MX 10 mx.other.test.\n",
        ),
        Zone::new("other.test", Signing::Unsigned, "mx IN A 127.0.0.1\n"),
    ]);
    let resolver = dns.resolver.to_string();
    let ca_file = ca.cert.display().to_string();
    let port_s = port.to_string();
    let start = |level: &str| {
        Tern::builder()
            .set("relayhost", "")
            .set("inet_protocols", "ipv4")
            .set("dns_resolvers", &resolver)
            .set("smtp_tcp_port", &port_s)
            .set("smtp_tls_CAfile", &ca_file)
            .set("smtp_tls_security_level", level)
            .start()
    };
    let relay = format!("relay=mx.other.test[127.0.0.1]:{port}");

    let tern = start("secure");
    let id = tern.submit("alice@example.net", "bob@example.test", "forged-mx");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    assert!(d[0].contains(&relay), "{}", d[0]);
    assert_eq!(field(&d[0], "dsn"), Some("4.7.5"), "{}", d[0]);
    assert!(
        d[0].contains("status=deferred (Server certificate not verified)"),
        "{}",
        d[0]
    );
    let why = tern.log_lines(&[&format!(
        "server certificate verification failed for mx.other.test[127.0.0.1]:{port}: "
    )]);
    assert!(
        why.iter()
            .any(|l| l.contains("(certificate-host-mismatch)")),
        "{why:?}"
    );
    assert!(tern.log_lines(&["TLS connection established"]).is_empty());
    assert!(tern.mailq().contains(&id));
    drop(tern);

    let tern = start("verify");
    let id = tern.submit("alice@example.net", "bob@example.test", "mx-verified");
    let s = tern.wait_log(&[&id, "status=sent"], 1, T);
    assert!(s[0].contains(&relay), "{}", s[0]);
    assert_eq!(
        tern.log_lines(&[&format!(
            "Verified TLS connection established to mx.other.test[127.0.0.1]:{port}: TLSv1.3"
        )])
        .len(),
        1,
        "{}",
        tern.log()
    );
    delivered(&pf, 1, "mx-verified");
    assert!(!has_subject(&pf, "forged-mx"));
}

/// A self-signed server certificate as its own trust anchor (`tafile=`),
/// as Postfix allows: Verified at `verify`.
#[test]
fn tafile_with_a_self_signed_server_certificate() {
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let (_, _, log) = attempt(
        port,
        &[],
        &format!(
            "[127.0.0.1]:{port} verify match=mx.example.test tafile={}\n",
            leaf.cert.display()
        ),
        "self-anchor",
        "status=sent",
    );
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to 127.0.0.1[127.0.0.1]:{port}"
        )),
        "{log}"
    );
    delivered(&pf, 1, "self-anchor");
}

/// Issue 13: one malformed line in the policy table (a key without a
/// value, as in the seed guide's Hostpoint example) no longer refuses the
/// configuration. The line is skipped with a `file:line` warning (printed
/// by `check-config`, logged by the daemon); the other destinations are
/// delivered, and mail for the skipped line's key is deferred (4.7.5)
/// instead of going out at the default level.
#[test]
fn a_malformed_policy_line_defers_its_destination_and_delivers_the_others() {
    let (pf, _leaf) = tls12_only_postfix();
    let port = pf.smtp_port();
    let setup = || {
        let b = Tern::builder().relay_to(port);
        // bad.test goes to another next hop, whose policy line is broken;
        // it is never connected to.
        let transport = b.table("transport", &format!("bad.test smtp:[127.0.0.2]:{port}\n"));
        let policy = b.table(
            "tls_policy",
            &format!("# relay\n[127.0.0.1]:{port} encrypt\n[127.0.0.2]:{port}\n"),
        );
        let path = policy.trim_start_matches("texthash:").to_string();
        let b = b
            .set("transport_maps", &transport)
            .set("smtp_tls_policy_maps", &policy);
        (b, path)
    };
    let warning = |path: &str| {
        format!(
            "{path}:3: expected format: key whitespace value -- ignoring this line; mail for \"[127.0.0.2]:{port}\" is deferred until it is fixed"
        )
    };

    let (b, path) = setup();
    let out = b.check_config();
    assert_eq!(out.status, Some(0), "{}", out.combined());
    assert!(
        out.stderr.contains(&format!("warning: {}", warning(&path))),
        "{}",
        out.combined()
    );

    let (b, path) = setup();
    let tern = b.start();
    let good = tern.submit("alice@example.net", "bob@example.test", "policy-good");
    let bad = tern.submit("alice@example.net", "carol@bad.test", "policy-bad");
    tern.wait_log(&[&good, "status=sent"], 1, T);
    let line = tern.wait_log(&[&bad, "status=deferred"], 1, T).remove(0);
    assert!(line.contains("dsn=4.7.5"), "{line}");
    assert!(
        line.contains(&format!(
            "TLS policy lookup for [127.0.0.2]:{port}: malformed entry {path}:3 was skipped; fix the table"
        )),
        "{line}"
    );
    delivered(&pf, 1, "policy-good");
    assert!(!has_subject(&pf, "policy-bad"));
    assert!(tern.log().contains(&warning(&path)), "{}", tern.log());
    assert!(tern.mailq().contains(&bad), "{}", tern.mailq());
}

/// Issue 13: the same for `transport_maps`. A malformed line is skipped
/// with a `file:line` warning (printed by `check-config`, which exits 0,
/// and logged by the daemon); the other destinations are delivered, and
/// mail for the skipped line's key is deferred (4.3.0) instead of taking
/// the relayhost, where Postfix's missed lookup would send it.
#[test]
fn a_malformed_transport_line_defers_its_destination_and_delivers_the_others() {
    let pf = Postfix::builder()
        .local_domains(&["example.test", "good.test", "bad.test"])
        .start();
    let port = pf.smtp_port();
    let setup = || {
        let b = Tern::builder().relay_to(port);
        let transport = b.table(
            "transport",
            &format!(
                "# routes\ngood.test smtp:[127.0.0.1]:{port}\nbad.test uucp:[127.0.0.1]:{port}\n"
            ),
        );
        let path = transport.trim_start_matches("texthash:").to_string();
        (b.set("transport_maps", &transport), path)
    };
    let warning = |path: &str| {
        format!(
            "{path}:3: unknown transport \"uucp\": expected smtp, relay, smtps, error, retry, local or discard -- ignoring this line; mail for \"bad.test\" is deferred until it is fixed"
        )
    };

    let (b, path) = setup();
    let out = b.check_config();
    assert_eq!(out.status, Some(0), "{}", out.combined());
    assert!(
        out.stderr.contains(&format!("warning: {}", warning(&path))),
        "{}",
        out.combined()
    );

    let (b, path) = setup();
    let tern = b.start();
    let relayed = tern.submit(
        "alice@example.net",
        "bob@example.test",
        "transport-relayhost",
    );
    let routed = tern.submit("alice@example.net", "carol@good.test", "transport-good");
    let bad = tern.submit("alice@example.net", "dave@bad.test", "transport-bad");
    tern.wait_log(&[&relayed, "status=sent"], 1, T);
    tern.wait_log(&[&routed, "status=sent"], 1, T);
    let line = tern.wait_log(&[&bad, "status=deferred"], 1, T).remove(0);
    assert_eq!(field(&line, "dsn"), Some("4.3.0"), "{line}");
    assert!(
        line.contains(&format!(
            "transport_maps entry for bad.test at {path}:3 is malformed; fix the table"
        )),
        "{line}"
    );
    delivered(&pf, 2, "transport-good");
    delivered(&pf, 2, "transport-relayhost");
    assert!(!has_subject(&pf, "transport-bad"));
    assert!(tern.log().contains(&warning(&path)), "{}", tern.log());
    assert!(tern.mailq().contains(&bad), "{}", tern.mailq());
}

/// A table whose every line is malformed loads no usable entry: that is
/// a mistake, and `check-config` fails (the warnings say which lines).
#[test]
fn a_transport_map_with_no_usable_line_fails_check_config() {
    let b = Tern::builder().relay_to(2525);
    let transport = b.table("transport", "bad.test uucp:x\n  indented.test smtp:\n");
    let out = b.set("transport_maps", &transport).check_config();
    assert_ne!(out.status, Some(0), "{}", out.combined());
    let text = out.combined();
    assert!(
        text.contains("transport_maps: no usable entry although the file is not empty"),
        "{text}"
    );
    assert!(
        text.contains("transport:1: unknown transport \"uucp\""),
        "{text}"
    );
}
