//! `tern probe` against a real Postfix (issue 4): the TLS details it
//! prints agree with Postfix's own posttls-finger on the same server, and
//! the verification status follows the level like delivery does.

mod common;
mod delivery_harness;

use common::certs::{KeyKind, TestCa};
use common::postfix::Postfix;
use common::tempdir::{write, TempDir};
use common::tools::Finger;
use delivery_harness::TERN;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn probe(conf: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(TERN);
    cmd.arg("probe").arg("-c").arg(conf).args(args);
    let out = common::process::run(cmd, None, Duration::from_secs(30));
    assert!(!out.timed_out, "tern probe timed out: {}", out.combined());
    (out.status, out.combined())
}

/// The posttls-finger line that starts with `needle`, without the prefix.
fn finger_line(text: &str, needle: &str) -> String {
    text.lines()
        .filter_map(|l| l.strip_prefix("posttls-finger: "))
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in posttls-finger output:\n{text}"))
        .to_string()
}

#[test]
fn probe_prints_chain_fingerprints_and_status_like_posttls_finger() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let port = pf.smtp_port();
    let dir = TempDir::new("probe");
    let conf = dir.join("tern.conf");
    write(
        &conf,
        format!(
            "smtp_tls_CAfile = {}\ndns_resolvers = 127.0.0.1:9\nsyslog_socket =\n",
            ca.cert.display()
        ),
    );
    let dest = format!("[127.0.0.1]:{port}");
    let hp = format!("127.0.0.1[127.0.0.1]:{port}");

    // may: Trusted (the CA file vouches for it, no name check), chain shown.
    let (st, out) = probe(&conf, &["-l", "may", &dest]);
    assert_eq!(st, Some(0), "{out}");
    let finger = Finger::new(port).level("may").run();
    let summary = finger_line(&finger, "subject_CN=");
    assert!(
        out.contains(&format!("tern probe: {summary}\n")),
        "tern:\n{out}\nposttls-finger:\n{finger}"
    );
    assert!(summary.contains(&leaf.cert_sha256) && summary.contains(&leaf.pkey_sha256));
    assert!(out.contains(&format!(
        "tern probe: {hp}: depth=0 subject=/CN=mx.example.test issuer=/O=tern testbed/CN=tern test CA\n"
    )), "{out}");
    assert!(out.contains(&format!(
        "tern probe: {hp}: depth=1 subject=/O=tern testbed/CN=tern test CA issuer=/O=tern testbed/CN=tern test CA\n"
    )), "{out}");
    assert!(
        out.contains(&format!("tern probe: Trusted TLS connection established to {hp}: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519")),
        "{out}"
    );
    // Postfix's smtpd saw a TLS session and no mail transaction.
    assert!(pf
        .wait_for_log("TLS connection established from", Duration::from_secs(10))
        .is_some());

    // secure with the right name: Verified, like posttls-finger.
    let (st, out) = probe(&conf, &["-l", "secure", "-m", "mx.example.test", &dest]);
    assert_eq!(st, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "tern probe: Verified TLS connection established to {hp}: TLSv1.3"
        )),
        "{out}"
    );
    let finger = Finger::new(port)
        .level("secure")
        .ca_file(&ca.cert)
        .matching("mx.example.test")
        .run();
    finger_line(&finger, "Verified TLS connection established");

    // secure with a wrong name: fails, still shows what the server presented.
    let (st, out) = probe(&conf, &["-l", "secure", "-m", "other.example.test", &dest]);
    assert_eq!(st, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "tern probe: server certificate verification failed for {hp}: "
        )),
        "{out}"
    );
    assert!(out.contains("subject_CN=mx.example.test"), "{out}");
    assert!(!out.contains("TLS connection established"), "{out}");

    // fingerprint: the public-key fingerprint matches.
    let (st, out) = probe(
        &conf,
        &["-l", "fingerprint", "-m", &leaf.pkey_sha256, &dest],
    );
    assert_eq!(st, Some(0), "{out}");
    assert!(
        out.contains("tern probe: Verified TLS connection established"),
        "{out}"
    );

    // Without -l the policy table decides, as for delivery.
    let policy = dir.join("tls_policy");
    write(
        &policy,
        format!("{dest} fingerprint match={}\n", "AB:".repeat(31) + "AB"),
    );
    let conf2 = dir.join("tern2.conf");
    write(
        &conf2,
        format!(
            "smtp_tls_policy_maps = texthash:{}\ndns_resolvers = 127.0.0.1:9\nsyslog_socket =\n",
            policy.display()
        ),
    );
    let (st, out) = probe(&conf2, &[&dest]);
    assert_eq!(st, Some(1), "{out}");
    assert!(out.contains("fingerprint mismatch"), "{out}");
    assert!(pf.messages().is_empty(), "a probe sends no mail");
}

#[test]
fn probe_without_starttls_and_dead_port() {
    let pf = Postfix::builder().start();
    let dir = TempDir::new("probe");
    let conf = dir.join("tern.conf");
    write(&conf, "dns_resolvers = 127.0.0.1:9\nsyslog_socket =\n");
    let dest = format!("[127.0.0.1]:{}", pf.smtp_port());
    let (st, out) = probe(&conf, &["-l", "encrypt", &dest]);
    assert_eq!(st, Some(1), "{out}");
    assert!(
        out.contains(
            "tern probe: TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
        ),
        "{out}"
    );
    let (st, out) = probe(&conf, &["-l", "may", &dest]);
    assert_eq!(st, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "tern probe: 127.0.0.1[127.0.0.1]:{}: session completed without TLS",
            pf.smtp_port()
        )),
        "{out}"
    );
    let dead = common::ports::free_port();
    let (st, out) = probe(&conf, &[&format!("[127.0.0.1]:{dead}")]);
    assert_eq!(st, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "connect to 127.0.0.1[127.0.0.1]:{dead}: Connection refused"
        )),
        "{out}"
    );
    let (st, out) = probe(&conf, &["-x"]);
    assert_eq!(st, Some(64), "{out}");
}

/// `tern probe` connects only to the IP versions `inet_protocols`
/// enables, as delivery does: it neither asks for nor tries the other
/// family's addresses. Postfix listens on 127.0.0.1 only.
#[test]
fn probe_honours_inet_protocols() {
    use common::dnssec::{DnsWorld, Signing, Zone};
    let pf = Postfix::builder().start();
    let port = pf.smtp_port();
    let dns = DnsWorld::start(&[Zone::new(
        "example.test",
        Signing::Unsigned,
        "mx IN A 127.0.0.1\nmx IN AAAA ::1\nv6only IN AAAA ::1\n",
    )]);
    let dir = TempDir::new("probe-inet");
    let conf_for = |protocols: &str| {
        let conf = dir.join(&format!("tern-{protocols}.conf"));
        write(
            &conf,
            format!(
                "dns_resolvers = {}\nsyslog_socket =\ninet_protocols = {protocols}\n",
                dns.resolver
            ),
        );
        conf
    };
    let v4 = conf_for("ipv4");
    let v6 = conf_for("ipv6");
    let name = format!("[mx.example.test]:{port}");
    let v4_addr = format!("mx.example.test[127.0.0.1]:{port}");
    let v6_addr = format!("mx.example.test[::1]:{port}");

    // ipv4: the IPv4 address, and a session.
    let (st, out) = probe(&conf_for("ipv4"), &["-l", "may", &name]);
    assert_eq!(st, Some(0), "{out}");
    assert!(
        out.contains(&format!("{v4_addr}: session completed without TLS")),
        "{out}"
    );
    assert!(!out.contains("[::1]"), "{out}");

    // ipv6: only ::1 is tried (nothing listens there, or no IPv6 at all),
    // never the IPv4 address that would answer.
    let (st, out) = probe(&v6, &["-l", "may", &name]);
    assert_eq!(st, Some(1), "{out}");
    assert!(out.contains(&format!("connect to {v6_addr}: ")), "{out}");
    assert!(!out.contains("127.0.0.1"), "{out}");

    // A name with only an IPv6 address under ipv4: not found, no connection.
    let (st, out) = probe(
        &v4,
        &["-l", "may", &format!("[v6only.example.test]:{port}")],
    );
    assert_eq!(st, Some(1), "{out}");
    assert!(
        out.contains("Name service error for name=v6only.example.test type=A: Host not found"),
        "{out}"
    );
    assert!(!out.contains("connect to"), "{out}");

    // An IP literal of a disabled version is refused before connecting.
    let (st, out) = probe(&v6, &["-l", "may", &format!("[127.0.0.1]:{port}")]);
    assert_eq!(st, Some(1), "{out}");
    assert!(
        out.contains("no address of the IP versions enabled by inet_protocols = ipv6"),
        "{out}"
    );
    assert!(!out.contains("connect to"), "{out}");
}

/// `tern probe` speaks implicit TLS where delivery would: `smtps:DEST`
/// (as an `smtps:` transport entry) and `[host]:port` with
/// `smtp_tls_wrappermode = yes`, here against Postfix's
/// `smtpd_tls_wrappermode = yes` listener on a port other than 465.
#[test]
fn probe_uses_implicit_tls_per_route() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder()
        .tls(&leaf.chain, &leaf.key)
        .smtps()
        .start();
    let port = pf.smtps_port().expect("smtps listener");
    assert_ne!(port, 465);
    let dir = TempDir::new("probe-smtps");
    let base = "dns_resolvers = 127.0.0.1:9\nsyslog_socket =\nsmtp_helo_timeout = 5s\n";
    let plain = dir.join("plain.conf");
    write(&plain, base);
    let wrapper = dir.join("wrapper.conf");
    write(&wrapper, format!("{base}smtp_tls_wrappermode = yes\n"));
    let dest = format!("[127.0.0.1]:{port}");
    let established = format!("TLS connection established to 127.0.0.1[127.0.0.1]:{port}: TLSv1.3");

    let (st, out) = probe(&plain, &["-l", "encrypt", &format!("smtps:{dest}")]);
    assert_eq!(st, Some(0), "{out}");
    assert!(out.contains(&established), "{out}");

    let (st, out) = probe(&wrapper, &["-l", "encrypt", &dest]);
    assert_eq!(st, Some(0), "{out}");
    assert!(out.contains(&established), "{out}");

    // The same destination without either: STARTTLS-style, so no greeting
    // arrives from a server waiting for a ClientHello.
    let (st, out) = probe(&plain, &["-l", "encrypt", &dest]);
    assert_eq!(st, Some(1), "{out}");
    assert!(!out.contains(&established), "{out}");
}
