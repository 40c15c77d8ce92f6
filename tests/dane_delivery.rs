//! DANE (RFC 7672) end to end: tern delivers MX-style through a real DNSSEC
//! chain (nsd serving a zone signed with ldns-signzone, unbound validating
//! it on loopback) to a real Postfix receiver whose key is published in
//! TLSA records. One test per case of the DANE level table.
mod common;
mod dane_common;

use common::certs::{KeyKind, TestCa};
use common::dnssec::{DnsWorld, Signing, Zone};
use common::postfix::{Postfix, PostfixBuilder};
use dane_common::*;

const RCPT: &str = "alice@example.test";

/// A Postfix receiving mail for example.test as `mx.example.test`.
fn receiver() -> PostfixBuilder {
    Postfix::builder()
        .hostname(MX_HOST)
        .local_domains(&[DOMAIN])
}

fn colon_free(s: &str) -> String {
    s.replace(':', "").to_ascii_lowercase()
}

/// Asserts the delivery went out and arrived at Postfix.
fn assert_delivered(tern: &Tern, pf: &Postfix, port: u16) -> String {
    let status = tern.wait_status(RCPT);
    assert!(
        status.contains("status=sent")
            && status.contains(&format!("relay={MX_HOST}[127.0.0.1]:{port}")),
        "expected sent via {MX_HOST}: {status}\n{}",
        tern.diagnostics()
    );
    pf.wait_for_message(1, WAIT);
    eprintln!("{status}");
    for l in tern.tls_lines() {
        eprintln!("{l}");
    }
    status
}

/// Asserts the delivery was deferred (never sent), that Postfix got no
/// message, and returns the status line.
fn assert_deferred(tern: &Tern, pf: &Postfix) -> String {
    let status = tern.wait_status(RCPT);
    assert!(
        status.contains("status=deferred ("),
        "expected deferred: {status}\n{}",
        tern.diagnostics()
    );
    assert!(
        !tern.log().contains("status=sent"),
        "{}",
        tern.diagnostics()
    );
    assert!(pf.messages().is_empty(), "Postfix got a message");
    eprintln!("{status}");
    status
}

#[test]
fn dane_ee_spki_sha256_match_is_verified() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("3 1 1 {}", leaf.pkey_sha256_hex())],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "3 1 1");
    assert_delivered(&tern, &pf, port);
    let tls = tern.tls_lines();
    assert!(
        tls.iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}: TLSv1.3"
        ))),
        "{tls:?}\n{}",
        tern.diagnostics()
    );
    // Postfix's match line at smtp_tls_loglevel 2 (tls_dane.c).
    assert!(
        tern.log().contains(&format!(
            "{MX_HOST}[127.0.0.1]:{port}: depth=0 matched end entity public-key sha256 digest={}",
            leaf.pkey_sha256.to_ascii_uppercase()
        )),
        "{}",
        tern.diagnostics()
    );
    // Postfix saw the TLS session from tern.
    assert!(pf
        .wait_for_log("Anonymous TLS connection established from", WAIT)
        .is_some());
}

#[test]
fn dane_ta_cert_sha256_match_with_name_check_is_verified() {
    let ca = TestCa::new();
    // The chain Postfix presents includes the CA (RFC 7671 §5.2.2).
    let leaf = ca.server_cert(KeyKind::Rsa2048, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("2 0 1 {}", colon_free(&ca.cert_sha256))],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "2 0 1");
    assert_delivered(&tern, &pf, port);
    let tls = tern.tls_lines();
    assert!(
        tls.iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{tls:?}\n{}",
        tern.diagnostics()
    );
    // The CA sits at depth 1 of the chain Postfix sent.
    assert!(
        tern.log().contains(&format!(
            "{MX_HOST}[127.0.0.1]:{port}: depth=1 matched trust anchor certificate sha256 digest {}",
            ca.cert_sha256.to_ascii_uppercase()
        )),
        "{}",
        tern.diagnostics()
    );
}

#[test]
fn dane_ta_match_with_wrong_certificate_name_defers() {
    let ca = TestCa::new();
    // Issued by the published anchor, but for another host: RFC 7672 §3.2.2
    // requires the name check for DANE-TA.
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["other.example.net"]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("2 0 1 {}", colon_free(&ca.cert_sha256))],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "2 0 1 wrong name");
    let status = assert_deferred(&tern, &pf);
    assert!(
        status.contains("Server certificate not verified")
            && status.contains("does not match the TLSA base domain"),
        "{status}"
    );
    assert!(tern.tls_lines().is_empty(), "{:?}", tern.tls_lines());
}

#[test]
fn wrong_digest_defers() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let other = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    // Digests of another key and another certificate: usable, no match.
    let dns = world(
        Signing::Signed,
        port,
        &[
            &format!("3 1 1 {}", other.pkey_sha256_hex()),
            &format!("3 0 1 {}", other.cert_sha256_hex()),
        ],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "wrong digest");
    let status = assert_deferred(&tern, &pf);
    assert!(
        status.contains(&format!(
            "Server certificate not verified: {MX_HOST}[127.0.0.1]"
        )) && status.contains("no TLSA record matched")
            && status.contains("dsn=4.7.5"),
        "{status}"
    );
    // The handshake was aborted by tern, not completed and then judged.
    assert!(tern.tls_lines().is_empty(), "{:?}", tern.tls_lines());
    // Postfix logs the aborted handshake after tern has logged its
    // deferral: wait for it rather than race it.
    let aborted = |log: &str| log.contains("SSL_accept error") || log.contains("lost connection");
    let deadline = std::time::Instant::now() + WAIT;
    while !aborted(&pf.log()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(aborted(&pf.log()), "{}", pf.log());
}

#[test]
fn unsigned_zone_falls_back_to_may() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    // Even a matching TLSA record is ignored without DNSSEC (RFC 7672 §2.2).
    let dns = world(
        Signing::Unsigned,
        port,
        &[&format!("3 1 1 {}", leaf.pkey_sha256_hex())],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "unsigned");
    assert_delivered(&tern, &pf, port);
    let tls = tern.tls_lines();
    assert!(
        tls.iter().any(|l| l.contains(&format!(
            "Untrusted TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{tls:?}\n{}",
        tern.diagnostics()
    );
    assert!(
        !tern.log().contains(" matched end entity "),
        "{}",
        tern.log()
    );
}

#[test]
fn unsigned_zone_without_starttls_still_delivers_in_plaintext() {
    // `may` really is opportunistic: no STARTTLS, delivered anyway.
    let pf = receiver().start();
    let port = pf.smtp_port();
    let dns = world(Signing::Unsigned, port, &[]);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "unsigned, no TLS");
    assert_delivered(&tern, &pf, port);
    assert!(tern.tls_lines().is_empty());
}

#[test]
fn only_unusable_tlsa_means_encrypt() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    // PKIX-TA(0) and PKIX-EE(1), even matching, are unusable for SMTP
    // (RFC 7672 §3.1.3): TLS is still mandatory, authentication is not.
    let dns = world(
        Signing::Signed,
        port,
        &[
            &format!("0 0 1 {}", colon_free(&ca.cert_sha256)),
            &format!("1 1 1 {}", leaf.pkey_sha256_hex()),
        ],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "unusable");
    assert_delivered(&tern, &pf, port);
    let tls = tern.tls_lines();
    // The test CA is not in smtp_tls_CAfile: Untrusted, never Verified.
    assert!(
        tls.iter().any(|l| l.contains(&format!(
            "Untrusted TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{tls:?}\n{}",
        tern.diagnostics()
    );
    assert!(!tern.log().contains("Verified TLS"));
}

#[test]
fn only_unusable_tlsa_and_no_starttls_defers() {
    // The other half of `encrypt`: without STARTTLS the mail waits.
    let pf = receiver().start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("1 1 1 {}", "ab".repeat(32))],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "unusable, no TLS");
    let status = assert_deferred(&tern, &pf);
    assert!(status.contains("TLS"), "{status}");
}

#[test]
fn bogus_signatures_defer_and_never_downgrade() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    // Every answer of the zone is bogus: unbound says SERVFAIL for the MX.
    let dns = world(
        Signing::ExpiredSignatures,
        port,
        &[&format!("3 1 1 {}", leaf.pkey_sha256_hex())],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "bogus zone");
    let status = assert_deferred(&tern, &pf);
    assert!(
        status.contains(&format!("name={DOMAIN} type=MX")),
        "{status}"
    );
    // Not even a connection was made.
    assert!(
        !pf.log().contains("connect from"),
        "Postfix was contacted:\n{}",
        pf.log()
    );
}

#[test]
fn bogus_tlsa_answer_defers_and_never_downgrades() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    // MX and A are secure; the TLSA RRset lives in a child zone whose
    // DS in the (signed) parent and whose trust anchor match none of its
    // keys, so only the TLSA lookup is bogus (SERVFAIL). The delegation
    // must be real: without NS in the parent, unbound proves the TLSA name
    // away from the parent's cached NSEC chain (aggressive NSEC).
    let child = format!("_tcp.{MX_HOST}");
    let parent = format!(
        "{}_tcp.mx IN NS ns.{DOMAIN}.\n_tcp.mx IN DS 4711 13 2 {}\n",
        mx_records(port, &[]),
        "5a".repeat(32)
    );
    let dns = DnsWorld::start(&[
        Zone::new(DOMAIN, Signing::Signed, &parent),
        Zone::new(
            &child,
            Signing::WrongAnchor,
            &format!("_{port} IN TLSA 3 1 1 {}\n", leaf.pkey_sha256_hex()),
        ),
    ]);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "bogus TLSA");
    let status = assert_deferred(&tern, &pf);
    assert!(
        status.contains(&format!(
            "dsn=4.7.5, status=deferred (TLSA lookup error for {MX_HOST}:{port})"
        )),
        "{status}"
    );
    // The DNS detail Postfix does not give is on the warning line.
    let warning = tern.wait_line(&[&format!(
        "warning: TLS policy lookup for {DOMAIN}/{MX_HOST}: TLSA lookup error for _{port}._tcp.{MX_HOST}: "
    )]);
    assert!(warning.contains("SERVFAIL"), "{warning}");
    assert!(
        !pf.log().contains("connect from"),
        "Postfix was contacted:\n{}",
        pf.log()
    );
}

#[test]
fn dane_only_without_tlsa_defers() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    // Signed zone, secure denial of the TLSA name.
    let dns = world(Signing::Signed, port, &[]);
    let tern = Tern::start(dns.resolver, port, "smtp_tls_security_level = dane-only");
    tern.send(RCPT, "dane-only, no TLSA");
    let status = assert_deferred(&tern, &pf);
    assert!(
        status.contains("dsn=4.7.5, status=deferred (no TLSA records found)"),
        "{status}"
    );
    let warning = tern.wait_line(&[&format!(
        "warning: TLS policy lookup for {DOMAIN}/{MX_HOST}: "
    )]);
    assert!(
        warning.ends_with(&format!("no TLSA records found for _{port}._tcp.{MX_HOST}")),
        "{warning}"
    );
}

#[test]
fn policy_table_pins_dane_only_per_domain() {
    // The default level is `may`; the table entry for example.test makes
    // it `dane-only`, which defers without TLSA.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(Signing::Signed, port, &[]);
    let table = common::tempdir::TempDir::new("dane-policy");
    let path = table.join("tls_policy");
    common::tempdir::write(&path, format!("{DOMAIN} dane-only\n"));
    let tern = Tern::start(
        dns.resolver,
        port,
        &format!(
            "smtp_tls_security_level = may\nsmtp_tls_policy_maps = texthash:{}",
            path.display()
        ),
    );
    tern.send(RCPT, "policy dane-only");
    let status = assert_deferred(&tern, &pf);
    assert!(status.contains("no TLSA records found"), "{status}");
}

#[test]
fn cname_mx_host_uses_the_expanded_tlsa_base_domain() {
    // RFC 7672 §2.2.3: the MX host `mx` is a secure CNAME for `real`; the
    // TLSA lookup goes to `_PORT._tcp.real` first, and `real` is then the
    // TLSA base domain and a DANE-TA reference identifier (§3.2.2).
    let ca = TestCa::new();
    let real = "real.example.test";
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[real]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[Zone::new(
        DOMAIN,
        Signing::Signed,
        &format!(
            "@ IN MX 10 mx\nmx IN CNAME real\nreal IN A 127.0.0.1\n\
             _{port}._tcp.real IN TLSA 2 0 1 {}\n",
            colon_free(&ca.cert_sha256)
        ),
    )]);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "CNAME");
    assert_delivered(&tern, &pf, port);
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
    // The reference name the leaf matched, as the probe reports it (the
    // match line at loglevel 2 names the depth and digest only).
    let (ok, text) = probe(&tern, &["-l", "dane", DOMAIN]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("(DANE-TA at depth 1, name {real})")),
        "{text}"
    );
}

#[test]
fn dane_ta_spki_sha256_match_is_verified() {
    // `2 1 1`: the anchor named by its public key's digest.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("2 1 1 {}", colon_free(&ca.pkey_sha256))],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "2 1 1");
    assert_delivered(&tern, &pf, port);
    assert!(
        tern.tls_lines()
            .iter()
            .any(|l| l.contains("Verified TLS connection established to")),
        "{}",
        tern.diagnostics()
    );
}

#[test]
fn failing_mx_host_falls_through_to_the_next_secure_one() {
    // Two MX hosts on the same receiver: mx1 (preferred) publishes a digest
    // that does not match, mx2 the right one. mx1 fails DANE, mx2 gets the
    // mail, authenticated.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[Zone::new(
        DOMAIN,
        Signing::Signed,
        &format!(
            "@ IN MX 10 mx1\n@ IN MX 20 mx2\nmx1 IN A 127.0.0.1\nmx2 IN A 127.0.0.1\n\
             _{port}._tcp.mx1 IN TLSA 3 1 1 {}\n_{port}._tcp.mx2 IN TLSA 3 1 1 {}\n",
            "00".repeat(32),
            leaf.pkey_sha256_hex()
        ),
    )]);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "two MX");
    let status = tern.wait_status(RCPT);
    assert!(
        status.contains(&format!("relay=mx2.example.test[127.0.0.1]:{port}"))
            && status.contains("status=sent"),
        "{status}\n{}",
        tern.diagnostics()
    );
    pf.wait_for_message(1, WAIT);
    let log = tern.log();
    assert!(
        log.contains("mx1.example.test[127.0.0.1]: no TLSA record matched"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "Verified TLS connection established to mx2.example.test[127.0.0.1]:{port}"
        )),
        "{log}"
    );
}

/// `tern probe -l dane`: prints the TLSA records, whether they were
/// DNSSEC-secure, the DANE decision and which record matched.
#[test]
fn probe_shows_tlsa_records_and_the_match() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let good = format!("3 1 1 {}", leaf.pkey_sha256_hex());
    let dns = world(
        Signing::Signed,
        port,
        &[
            &good,
            "0 0 1 0000000000000000000000000000000000000000000000000000000000000000",
        ],
    );
    let tern = Tern::start(dns.resolver, port, "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["probe", "-l", "dane", "-c"])
        .arg(&tern.conf)
        .arg("example.test")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "DANE {MX_HOST}: MX records secure, address records secure"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "TLSA _{port}._tcp.{MX_HOST}: {} (secure)",
            good.to_uppercase()
        )),
        "{text}"
    );
    assert!(text.contains("(secure, unusable for SMTP)"), "{text}");
    assert!(
        text.contains(&format!(
            "DANE {MX_HOST}: authenticate against 1 usable record(s)"
        )),
        "{text}"
    );
    assert!(
        text.contains("DANE matched 3 1 1 ") && text.contains("(DANE-EE, leaf certificate)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        )),
        "{text}"
    );
}

/// Lowercase hex of a file's bytes (TLSA `x x 0` association data).
fn file_hex(path: &std::path::Path) -> String {
    std::fs::read(path)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `tern probe` with `args` against tern's config; (success, output).
fn probe(tern: &Tern, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("probe")
        .args(args)
        .arg("-c")
        .arg(&tern.conf)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn dane_only_to_an_ip_literal_defers() {
    // `[127.0.0.1]:port` has no TLSA base domain: `dane-only` must defer,
    // never fall back to unauthenticated `encrypt` (the server offers TLS,
    // so that fallback would deliver).
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("3 1 1 {}", leaf.pkey_sha256_hex())],
    );
    let tern = Tern::start(
        dns.resolver,
        port,
        &format!("relayhost = [127.0.0.1]:{port}\nsmtp_tls_security_level = dane-only"),
    );
    tern.send(RCPT, "dane-only IP literal");
    let status = assert_deferred(&tern, &pf);
    assert!(
        status.contains("dsn=4.7.5, status=deferred (no TLSA records found)"),
        "{status}"
    );
    let warning = tern.wait_line(&[&format!(
        "warning: TLS policy lookup for [127.0.0.1]:{port}/127.0.0.1: "
    )]);
    assert!(
        warning.ends_with(&format!(
            "no TLSA records found for [127.0.0.1]:{port}: an IP-literal destination has no TLSA base domain"
        )),
        "{warning}"
    );
    assert!(
        !pf.log().contains("connect from"),
        "Postfix was contacted:\n{}",
        pf.log()
    );
    // The probe says the same and fails.
    let dest = format!("[127.0.0.1]:{port}");
    let (ok, text) = probe(&tern, &["-l", "dane-only", &dest]);
    assert!(!ok, "probe succeeded:\n{text}");
    assert!(
        text.contains("no TLSA records found for [127.0.0.1]"),
        "{text}"
    );
    assert!(!text.contains("TLS connection established"), "{text}");
}

#[test]
fn insecure_tlsa_at_the_cname_target_falls_back_to_the_original_name() {
    // RFC 7672 §2.2.3: `mx` is a secure CNAME for `real` (A secure), but
    // `_tcp.real` is an unsigned child zone, so the TLSA RRset at the
    // expanded name is "insecure": the original name `_PORT._tcp.mx` is
    // tried next, and its secure, matching record authenticates. The
    // insecure record (another key) must be ignored.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let other = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[
        Zone::new(
            DOMAIN,
            Signing::Signed,
            &format!(
                "@ IN MX 10 mx\nmx IN CNAME real\nreal IN A 127.0.0.1\n\
                 _tcp.real IN NS ns.{DOMAIN}.\n\
                 _{port}._tcp.mx IN TLSA 3 1 1 {}\n",
                leaf.pkey_sha256_hex()
            ),
        ),
        Zone::new(
            "_tcp.real.example.test",
            Signing::Unsigned,
            &format!("_{port} IN TLSA 3 1 1 {}\n", other.pkey_sha256_hex()),
        ),
    ]);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "insecure TLSA at the CNAME target");
    assert_delivered(&tern, &pf, port);
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
    // The probe shows both lookups: the expanded name's insecure record,
    // then the original name's, which decided.
    let (ok, text) = probe(&tern, &["-l", "dane", DOMAIN]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "TLSA _{port}._tcp.real.{DOMAIN}: 3 1 1 {} (insecure)",
            other.pkey_sha256_hex().to_uppercase()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "TLSA _{port}._tcp.{MX_HOST}: 3 1 1 {} (secure)",
            leaf.pkey_sha256_hex().to_uppercase()
        )),
        "{text}"
    );
}

#[test]
fn secure_cname_into_an_unsigned_zone_keeps_the_original_tlsa_base_domain() {
    // RFC 7672 §2.2.2: `mx.example.test` (signed) is a CNAME for
    // `mx.other.test` (unsigned zone). The address records are insecure,
    // but the CNAME, the first link, is signed: the host is in a signed
    // zone and its TLSA records at the original name apply.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[
        Zone::new(
            DOMAIN,
            Signing::Signed,
            &format!(
                "@ IN MX 10 mx\nmx IN CNAME mx.other.test.\n\
                 _{port}._tcp.mx IN TLSA 3 1 1 {}\n",
                leaf.pkey_sha256_hex()
            ),
        ),
        Zone::new("other.test", Signing::Unsigned, "mx IN A 127.0.0.1\n"),
    ]);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "secure CNAME, unsigned target");
    assert_delivered(&tern, &pf, port);
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
    let (ok, text) = probe(&tern, &["-l", "dane", DOMAIN]);
    assert!(ok, "{text}");
    assert!(
        text.contains("address records insecure (secure CNAME to an unsigned zone)"),
        "{text}"
    );
}

#[test]
fn dane_ta_key_only_anchor_outside_the_chain_is_verified() {
    // `2 1 0` publishes the issuing CA's whole public key; the server sends
    // only its leaf. The anchor is that key (RFC 7671 §5.2.2), the chain
    // is verified up to it, the name checked.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.cert, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!(
            "2 1 0 {}",
            file_hex(&ca.dir().join("ca.spki.der"))
        )],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "2 1 0 off-chain");
    assert_delivered(&tern, &pf, port);
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{}",
        tern.diagnostics()
    );
    // The anchor is outside the one-certificate chain: depth 1, just
    // above the leaf; full key data is shown as its SHA-256 digest.
    assert!(
        tern.log().contains(&format!(
            "{MX_HOST}[127.0.0.1]:{port}: depth=1 matched trust anchor public-key sha256 digest={}",
            ca.pkey_sha256.to_ascii_uppercase()
        )),
        "{}",
        tern.diagnostics()
    );
}

#[test]
fn dane_ta_key_only_anchor_of_another_ca_defers() {
    // The control: the same leaf-only server, `2 1 0` of a key that did not
    // issue the leaf.
    let ca = TestCa::new();
    let stranger = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.cert, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!(
            "2 1 0 {}",
            file_hex(&stranger.dir().join("ca.spki.der"))
        )],
    );
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "2 1 0 wrong key");
    let status = assert_deferred(&tern, &pf);
    assert!(
        status.contains("Server certificate not verified") && status.contains("dsn=4.7.5"),
        "{status}"
    );
    assert!(tern.tls_lines().is_empty(), "{:?}", tern.tls_lines());
}

/// A signed `example.test` whose preferred MX `mx1.other.test` lives in an
/// unsigned zone and whose second MX `mx2` publishes the receiver's key.
fn mixed_world(port: u16, leaf: &common::certs::Leaf) -> DnsWorld {
    DnsWorld::start(&[
        Zone::new(
            DOMAIN,
            Signing::Signed,
            &format!(
                "@ IN MX 10 mx1.other.test.\n@ IN MX 20 mx2\nmx2 IN A 127.0.0.1\n\
                 _{port}._tcp.mx2 IN TLSA 3 1 1 {}\n",
                leaf.pkey_sha256_hex()
            ),
        ),
        Zone::new("other.test", Signing::Unsigned, "mx1 IN A 127.0.0.1\n"),
    ])
}

#[test]
fn mixed_mx_dane_uses_may_for_the_insecure_host() {
    // RFC 7672 §2.2, Postfix: DANE is decided per MX host. At `dane`, the
    // preferred host in an unsigned zone gets opportunistic TLS (`may`)
    // and the mail; its neighbour's TLSA records do not apply to it.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = mixed_world(port, &leaf);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "mixed MX, dane");
    let status = tern.wait_status(RCPT);
    assert!(
        status.contains(&format!("relay=mx1.other.test[127.0.0.1]:{port}"))
            && status.contains("status=sent"),
        "{status}\n{}",
        tern.diagnostics()
    );
    pf.wait_for_message(1, WAIT);
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Untrusted TLS connection established to mx1.other.test[127.0.0.1]:{port}"
        ))),
        "{:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
}

#[test]
fn mixed_mx_dane_only_skips_the_insecure_host() {
    // At `dane-only` the insecure host is skipped (deferred for it), and
    // the secure one gets the mail, authenticated.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = mixed_world(port, &leaf);
    let tern = Tern::start(dns.resolver, port, "smtp_tls_security_level = dane-only");
    tern.send(RCPT, "mixed MX, dane-only");
    let status = tern.wait_status(RCPT);
    assert!(
        status.contains(&format!("relay=mx2.example.test[127.0.0.1]:{port}"))
            && status.contains("status=sent"),
        "{status}\n{}",
        tern.diagnostics()
    );
    pf.wait_for_message(1, WAIT);
    let tls = tern.tls_lines();
    assert_eq!(tls.len(), 1, "only mx2 was connected to: {tls:?}");
    assert!(
        tls[0].contains(&format!(
            "Verified TLS connection established to mx2.example.test[127.0.0.1]:{port}"
        )),
        "{tls:?}"
    );
    // The skipped host is logged, as Postfix logs it, though mx2 took the
    // mail.
    let warning = tern.wait_line(&[&format!(
        "warning: TLS policy lookup for {DOMAIN}/mx1.other.test: "
    )]);
    assert!(
        warning.contains("address records of mx1.other.test are not DNSSEC-validated"),
        "{warning}"
    );
    let (_, text) = probe(&tern, &["-l", "dane-only", DOMAIN]);
    assert!(
        text.contains("DANE mx1.other.test: defer: non DNSSEC destination (address records of mx1.other.test are not DNSSEC-validated"),
        "{text}"
    );
}

#[test]
fn tlsa_lookup_failure_on_one_mx_host_falls_through_to_the_next() {
    // mx1's TLSA lookup is bogus (SERVFAIL): mx1 is deferred, never
    // downgraded; mx2's matching TLSA record gets the mail delivered,
    // authenticated.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[
        Zone::new(
            DOMAIN,
            Signing::Signed,
            &format!(
                "@ IN MX 10 mx1\n@ IN MX 20 mx2\nmx1 IN A 127.0.0.1\nmx2 IN A 127.0.0.1\n\
                 _tcp.mx1 IN NS ns.{DOMAIN}.\n_tcp.mx1 IN DS 4711 13 2 {}\n\
                 _{port}._tcp.mx2 IN TLSA 3 1 1 {}\n",
                "5a".repeat(32),
                leaf.pkey_sha256_hex()
            ),
        ),
        Zone::new(
            "_tcp.mx1.example.test",
            Signing::WrongAnchor,
            &format!("_{port} IN TLSA 3 1 1 {}\n", leaf.pkey_sha256_hex()),
        ),
    ]);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "mx1 TLSA bogus");
    let status = tern.wait_status(RCPT);
    assert!(
        status.contains(&format!("relay=mx2.example.test[127.0.0.1]:{port}"))
            && status.contains("status=sent"),
        "{status}\n{}",
        tern.diagnostics()
    );
    pf.wait_for_message(1, WAIT);
    let tls = tern.tls_lines();
    assert_eq!(tls.len(), 1, "mx1 must not be connected to: {tls:?}");
    assert!(
        tls[0].contains(&format!(
            "Verified TLS connection established to mx2.example.test[127.0.0.1]:{port}"
        )),
        "{tls:?}"
    );
    // Postfix: "warning: TLS policy lookup for DEST/HOST: TLSA lookup
    // error for HOST:PORT" for the skipped host, though mx2 delivered.
    let warning = tern.wait_line(&[&format!(
        "warning: TLS policy lookup for {DOMAIN}/mx1.example.test: TLSA lookup error for _{port}._tcp.mx1.example.test: "
    )]);
    assert!(warning.contains("SERVFAIL"), "{warning}");
    assert!(
        !tern
            .log()
            .contains(&format!("TLS policy lookup for {DOMAIN}/mx2.")),
        "{}",
        tern.diagnostics()
    );
    let (_, text) = probe(&tern, &["-l", "dane", DOMAIN]);
    assert!(
        text.contains(&format!(
            "DANE mx1.example.test: defer: TLSA lookup error for mx1.example.test:{port} (TLSA lookup error for _{port}._tcp.mx1.example.test: "
        )),
        "{text}"
    );
}

#[test]
fn trusting_a_named_remote_resolver_is_warned_about_at_start() {
    // Nothing listens at 192.0.2.53 (TEST-NET-1); start-up does not query.
    let remote: std::net::SocketAddr = "192.0.2.53:53".parse().unwrap();
    let tern = Tern::start(remote, 25, "dns_trusted_resolvers = 192.0.2.53");
    let l = tern.wait_line(&["warning: DNS resolver 192.0.2.53:53 is not on loopback;"]);
    assert!(
        l.contains("its AD bit is trusted for DANE (dns_trusted_resolvers)"),
        "{l}"
    );
}

#[test]
fn an_unnamed_remote_resolver_is_not_trusted_and_says_so() {
    let remote: std::net::SocketAddr = "192.0.2.53:53".parse().unwrap();
    let tern = Tern::start(remote, 25, "dns_trusted_resolvers = 192.0.2.54");
    let l = tern.wait_line(&["warning: DNS resolver 192.0.2.53:53 is not on loopback"]);
    assert!(
        l.contains("not in dns_trusted_resolvers: its AD bit is not trusted"),
        "{l}"
    );
    // A bad entry is a configuration error, reported by check-config.
    let conf = tern.conf.with_file_name("bad.conf");
    std::fs::write(
        &conf,
        std::fs::read_to_string(&tern.conf).unwrap() + "dns_trusted_resolvers = router.lan\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["check-config", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("dns_trusted_resolvers: "), "{err}");
}

#[test]
fn implicit_mx_through_a_cname_tries_the_original_domain_too() {
    // `alias.example.test` has no MX and is a secure CNAME for `real`: the
    // implicit MX host is the domain as asked, so both the expanded name
    // (no TLSA) and the original name (TLSA) are TLSA base domains (RFC
    // 7672 §2.2.3).
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let alias = "alias.example.test";
    let rcpt = "carol@alias.example.test";
    let pf = receiver()
        .local_domains(&[DOMAIN, alias])
        .tls(&leaf.chain, &leaf.key)
        .start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[Zone::new(
        DOMAIN,
        Signing::Signed,
        &format!(
            "alias IN CNAME real\nreal IN A 127.0.0.1\n_{port}._tcp.alias IN TLSA 3 1 1 {}\n",
            leaf.pkey_sha256_hex()
        ),
    )]);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(rcpt, "implicit MX via CNAME");
    let status = tern.wait_status(rcpt);
    assert!(
        status.contains(&format!("relay={alias}[127.0.0.1]:{port}"))
            && status.contains("status=sent"),
        "{status}\n{}",
        tern.diagnostics()
    );
    pf.wait_for_message(1, WAIT);
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {alias}[127.0.0.1]:{port}"
        ))),
        "{:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
}

#[test]
fn bogus_aaaa_leaves_the_validated_a_records_usable() {
    // RFC 7672 §2.2: the AAAA answer of mx.example.test is bogus
    // (SERVFAIL), its A answer is validated. The host is not deferred
    // for the failed family: at dane-only the mail goes to its IPv4
    // address, authenticated by TLSA; nothing of the AAAA side is used.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[Zone::new(
        DOMAIN,
        Signing::BogusAaaa,
        &format!(
            "{}mx IN AAAA ::1
",
            mx_records(port, &[&format!("3 1 1 {}", leaf.pkey_sha256_hex())])
        ),
    )]);
    let tern = Tern::start(
        dns.resolver,
        port,
        "inet_protocols = all
smtp_tls_security_level = dane-only",
    );
    tern.send(RCPT, "bogus AAAA");
    assert_delivered(&tern, &pf, port);
    let tls = tern.tls_lines();
    assert!(
        tls.iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{tls:?}\n{}",
        tern.diagnostics()
    );
    let l = tern.wait_line(&[&format!(
        "Name service error for name={MX_HOST} type=AAAA: "
    )]);
    assert!(l.contains("SERVFAIL"), "{l}");
    assert!(!tern.log().contains("[::1]"), "{}", tern.diagnostics());
}

#[test]
fn cname_at_the_tlsa_owner_name_into_a_signed_zone_is_verified() {
    // The TLSA owner `_PORT._tcp.mx` is a CNAME into another signed zone,
    // where the records are: the validating resolver follows it, the
    // whole chain is secure, and the record authenticates (RFC 7671 §7).
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[
        Zone::new(
            DOMAIN,
            Signing::Signed,
            &format!(
                "@ IN MX 10 mx\nmx IN A 127.0.0.1\n\
                 _{port}._tcp.mx IN CNAME keys.tlsa.test.\n"
            ),
        ),
        Zone::new(
            "tlsa.test",
            Signing::Signed,
            &format!("keys IN TLSA 3 1 1 {}\n", leaf.pkey_sha256_hex()),
        ),
    ]);
    let tern = Tern::start(dns.resolver, port, "smtp_tls_security_level = dane-only");
    tern.send(RCPT, "TLSA owner CNAME");
    assert_delivered(&tern, &pf, port);
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
    assert!(
        tern.log().contains(&format!(
            "{MX_HOST}[127.0.0.1]:{port}: depth=0 matched end entity public-key sha256 digest={}",
            leaf.pkey_sha256.to_ascii_uppercase()
        )),
        "{}",
        tern.diagnostics()
    );
}

#[test]
fn cname_at_the_tlsa_owner_name_into_an_unsigned_zone_is_not_dane() {
    // The control: the same CNAME into an unsigned zone. The TLSA answer
    // is insecure, so `dane` falls back to `may` (Untrusted) and never
    // reports a DANE match.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[
        Zone::new(
            DOMAIN,
            Signing::Signed,
            &format!(
                "@ IN MX 10 mx\nmx IN A 127.0.0.1\n\
                 _{port}._tcp.mx IN CNAME keys.tlsa.test.\n"
            ),
        ),
        Zone::new(
            "tlsa.test",
            Signing::Unsigned,
            &format!("keys IN TLSA 3 1 1 {}\n", leaf.pkey_sha256_hex()),
        ),
    ]);
    let tern = Tern::start(dns.resolver, port, "");
    tern.send(RCPT, "TLSA owner CNAME, unsigned");
    assert_delivered(&tern, &pf, port);
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Untrusted TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
    assert!(!tern.log().contains("matched end entity"), "{}", tern.log());
}

#[test]
fn policy_table_pins_plain_dane_per_domain() {
    // The default level is `may`; the table entry for example.test makes
    // it `dane`, which authenticates with the published TLSA record.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("3 1 1 {}", leaf.pkey_sha256_hex())],
    );
    let table = common::tempdir::TempDir::new("dane-policy");
    let path = table.join("tls_policy");
    common::tempdir::write(&path, format!("{DOMAIN} dane\n"));
    let tern = Tern::start(
        dns.resolver,
        port,
        &format!(
            "smtp_tls_security_level = may\nsmtp_tls_policy_maps = texthash:{}",
            path.display()
        ),
    );
    tern.send(RCPT, "policy dane");
    assert_delivered(&tern, &pf, port);
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
    assert!(
        tern.log().contains(&format!(
            "{MX_HOST}[127.0.0.1]:{port}: depth=0 matched end entity public-key sha256 digest="
        )),
        "{}",
        tern.diagnostics()
    );
}

#[test]
fn dane_from_the_policy_table_without_dnssec_is_warned_and_acts_as_may() {
    // smtp_dns_support_level = enabled: no AD bit is believed. Postfix
    // warns "DEST: dane configured with dnssec lookups disabled" and
    // delivers at `may`, even though a matching TLSA record is published.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("3 1 1 {}", leaf.pkey_sha256_hex())],
    );
    let table = common::tempdir::TempDir::new("dane-policy");
    let path = table.join("tls_policy");
    common::tempdir::write(&path, format!("{DOMAIN} dane\n"));
    let tern = Tern::start(
        dns.resolver,
        port,
        &format!(
            "smtp_tls_security_level = may\nsmtp_dns_support_level = enabled\n\
             smtp_tls_policy_maps = texthash:{}",
            path.display()
        ),
    );
    tern.send(RCPT, "dane without dnssec");
    assert_delivered(&tern, &pf, port);
    let l = tern.wait_line(&[&format!(
        "warning: {DOMAIN}: dane configured with dnssec lookups disabled"
    )]);
    assert!(l.ends_with("dnssec lookups disabled"), "{l}");
    assert!(
        tern.tls_lines().iter().any(|l| l.contains(&format!(
            "Untrusted TLS connection established to {MX_HOST}[127.0.0.1]:{port}"
        ))),
        "{:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
}

#[test]
fn dane_only_without_dnssec_is_warned_and_defers() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = receiver().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("3 1 1 {}", leaf.pkey_sha256_hex())],
    );
    let tern = Tern::start(
        dns.resolver,
        port,
        "smtp_tls_security_level = dane-only\nsmtp_dns_support_level = enabled",
    );
    tern.send(RCPT, "dane-only without dnssec");
    let status = assert_deferred(&tern, &pf);
    assert!(
        status.contains("dsn=4.7.5, status=deferred (client TLS configuration problem)"),
        "{status}"
    );
    tern.wait_line(&[&format!(
        "warning: {DOMAIN}: dane-only configured with dnssec lookups disabled"
    )]);
    assert!(
        !pf.log().contains("connect from"),
        "Postfix was contacted:\n{}",
        pf.log()
    );
    // `disabled` (Postfix: no DNS lookups at all) is not supported: a
    // configuration error, not a silent `enabled`.
    let conf = tern.conf.with_file_name("disabled.conf");
    std::fs::write(
        &conf,
        std::fs::read_to_string(&tern.conf).unwrap() + "smtp_dns_support_level = disabled\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["check-config", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("smtp_dns_support_level"), "{err}");
}
