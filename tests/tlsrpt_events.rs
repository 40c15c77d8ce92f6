//! TLSRPT events (issue 12 items 1-3) end to end on the DNS lab: the
//! recipient domain publishes `_smtp._tls` TXT, tern delivers to a real
//! Postfix receiver, and each new connection's status is logged as
//! Postfix 3.10 logs it (the seed's lines, byte for byte) and sent, as
//! libtlsrpt's datagram, to sys4's collector (`tlsrpt-collectd` from the
//! test venv, on a private socket), whose sqlite tables must hold the same
//! per-domain success and failure counts and result codes.
mod common;
mod dane_common;
mod tlsrpt_common;

use std::path::Path;
use std::time::Duration;

use common::certs::{self_signed, KeyKind, TestCa};
use common::dnssec::{DnsWorld, Signing, Zone};
use common::postfix::Postfix;
use dane_common::*;
use tlsrpt_common::Collector;

const RCPT: &str = "alice@example.test";
const RECORD: &str = "v=TLSRPTv1; rua=mailto:tlsrpt@example.test";

/// `example.test` with MX -> mx -> 127.0.0.1, the TLSRPT record, and
/// `tlsa` at `_PORT._tcp.mx`.
fn world(signing: Signing, port: u16, tlsa: &[&str]) -> DnsWorld {
    let records = format!("{}_smtp._tls IN TXT \"{RECORD}\"\n", mx_records(port, tlsa));
    DnsWorld::start(&[Zone::new(DOMAIN, signing, &records)])
}

fn config(sock: &Path, level: &str) -> String {
    format!(
        "smtp_tlsrpt_enable = yes\nsmtp_tlsrpt_socket_name = {}\nsmtp_tls_security_level = {level}\n",
        sock.display()
    )
}

/// The TLSRPT line tern logged (the maillog line ends with it).
fn tlsrpt_line(tern: &Tern) -> String {
    let line = tern.wait_line(&["TLSRPT: status="]);
    let at = line.find("TLSRPT: ").unwrap_or(0);
    line[at..].trim_end().to_string()
}

#[test]
fn dane_success_is_logged_and_collected_as_tlsa() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = Postfix::builder()
        .hostname(MX_HOST)
        .local_domains(&[DOMAIN])
        .tls(&leaf.chain, &leaf.key)
        .start();
    let port = pf.smtp_port();
    let dns = world(
        Signing::Signed,
        port,
        &[&format!("3 1 1 {}", leaf.pkey_sha256_hex())],
    );
    let collector = Collector::start();
    let tern = Tern::start(dns.resolver, port, &config(&collector.sock, "dane"));
    tern.send(RCPT, "tlsrpt dane");
    let status = tern.wait_status(RCPT);
    assert!(
        status.contains("status=sent"),
        "{status}\n{}",
        tern.diagnostics()
    );
    assert_eq!(
        tlsrpt_line(&tern),
        "TLSRPT: status=success, domain=example.test, receiving_mx=mx.example.test[127.0.0.1]"
    );
    // The status goes out once the delivery run is over; give the
    // datagram its moment before the collector commits and stops.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!tern.log().contains("Could not report"), "{}", tern.log());
    let (results, failures) = collector.rows();
    assert_eq!(results, ["example.test|1|1|0"]);
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn no_starttls_where_tls_is_required_is_starttls_not_supported() {
    let pf = Postfix::builder()
        .hostname(MX_HOST)
        .local_domains(&[DOMAIN])
        .start();
    let port = pf.smtp_port();
    let dns = world(Signing::Unsigned, port, &[]);
    let collector = Collector::start();
    let tern = Tern::start(dns.resolver, port, &config(&collector.sock, "encrypt"));
    tern.send(RCPT, "tlsrpt no starttls");
    let status = tern.wait_status(RCPT);
    assert!(status.contains("status=deferred"), "{status}");
    assert_eq!(
        tlsrpt_line(&tern),
        "TLSRPT: status=failure, domain=example.test, receiving_mx=mx.example.test[127.0.0.1], failure_type=starttls_not_supported"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (results, failures) = collector.rows();
    assert_eq!(results, ["example.test|9|1|1"]);
    assert_eq!(failures, ["example.test|201||1"]);
}

#[test]
fn self_signed_at_verify_is_a_validation_failure() {
    let leaf = self_signed(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = Postfix::builder()
        .hostname(MX_HOST)
        .local_domains(&[DOMAIN])
        .tls(&leaf.chain, &leaf.key)
        .start();
    let port = pf.smtp_port();
    let dns = world(Signing::Unsigned, port, &[]);
    let collector = Collector::start();
    // A trust store that does not hold the server's certificate.
    let other = TestCa::new();
    let extra = format!(
        "{}smtp_tls_CAfile = {}\n",
        config(&collector.sock, "verify"),
        other.cert.display()
    );
    let tern = Tern::start(dns.resolver, port, &extra);
    tern.send(RCPT, "tlsrpt self-signed");
    let status = tern.wait_status(RCPT);
    assert!(status.contains("status=deferred"), "{status}");
    assert_eq!(
        tlsrpt_line(&tern),
        "TLSRPT: status=failure, domain=example.test, receiving_mx=mx.example.test[127.0.0.1], failure_type=validation_failure, failure_reason=self-signed_certificate"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (results, failures) = collector.rows();
    assert_eq!(results, ["example.test|9|1|1"]);
    assert_eq!(failures, ["example.test|205|self-signed_certificate|1"]);
}

#[test]
fn no_record_no_event() {
    let leaf = self_signed(KeyKind::EcdsaP256, &[MX_HOST]);
    let pf = Postfix::builder()
        .hostname(MX_HOST)
        .local_domains(&[DOMAIN])
        .tls(&leaf.chain, &leaf.key)
        .start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[Zone::new(DOMAIN, Signing::Unsigned, &mx_records(port, &[]))]);
    let collector = Collector::start();
    let tern = Tern::start(dns.resolver, port, &config(&collector.sock, "may"));
    tern.send(RCPT, "tlsrpt none");
    let status = tern.wait_status(RCPT);
    assert!(status.contains("status=sent"), "{status}");
    assert!(!tern.log().contains("TLSRPT:"), "{}", tern.log());
    let (results, failures) = collector.rows();
    assert!(
        results.is_empty() && failures.is_empty(),
        "{results:?} {failures:?}"
    );
}
