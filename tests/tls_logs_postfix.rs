//! tern's TLS log lines against the lines Debian's Postfix 3.7 writes for
//! the same handshake (issue 13, item 4).
//!
//! Server side: the same `openssl s_client` command, with the protocol
//! version, cipher suite, key-exchange group and signature algorithm
//! pinned on the client (rustls and OpenSSL prefer different ones), talks
//! to a Postfix smtpd and to tern's smtpd holding the same certificate;
//! every `... TLS connection established from ...` line each writes must be
//! the same once the program name, pid, client host name and ports are
//! normalised. The client sends SNI each time: Postfix adds ` to NAME`
//! only when `tls_server_sni_maps` chose the certificate, so neither line
//! may carry it.
//!
//! Client side: a Postfix smtp client (relayhost) and tern's delivery both
//! send a message to one Postfix smtpd; their `... TLS connection
//! established to ...` lines must be the same.
mod common;
mod delivery_harness;
mod smtpd_support;

use std::process::Command;
use std::time::Duration;

use common::certs::{KeyKind, Leaf, TestCa};
use common::postfix::Postfix;
use common::process::run;
use common::tools::Swaks;

const T: Duration = Duration::from_secs(30);

/// One pinned client handshake.
struct Pinned {
    what: &'static str,
    key: KeyKind,
    args: &'static [&'static str],
    client_cert: bool,
}

const CASES: &[Pinned] = &[
    Pinned {
        what: "TLS 1.3, RSA-PSS, X25519, AES-128",
        key: KeyKind::Rsa2048,
        args: &[
            "-tls1_3",
            "-ciphersuites",
            "TLS_AES_128_GCM_SHA256",
            "-groups",
            "X25519",
            "-sigalgs",
            "rsa_pss_rsae_sha256",
        ],
        client_cert: false,
    },
    Pinned {
        what: "TLS 1.3, ECDSA P-256, P-256 group, AES-256",
        key: KeyKind::EcdsaP256,
        args: &[
            "-tls1_3",
            "-ciphersuites",
            "TLS_AES_256_GCM_SHA384",
            "-groups",
            "P-256",
            "-sigalgs",
            "ecdsa_secp256r1_sha256",
        ],
        client_cert: false,
    },
    Pinned {
        what: "TLS 1.3, ECDSA, X25519, ChaCha20, client certificate",
        key: KeyKind::EcdsaP256,
        args: &[
            "-tls1_3",
            "-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256",
            "-groups",
            "X25519",
            "-sigalgs",
            "ecdsa_secp256r1_sha256",
        ],
        client_cert: true,
    },
    Pinned {
        what: "TLS 1.2, ECDHE-RSA, P-384, RSA PKCS#1 SHA-384",
        key: KeyKind::Rsa2048,
        args: &[
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "-groups",
            "P-384",
            "-sigalgs",
            "RSA+SHA384",
        ],
        client_cert: false,
    },
    Pinned {
        what: "TLS 1.2, ECDHE-ECDSA, X25519, ChaCha20",
        key: KeyKind::EcdsaP256,
        args: &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            // OpenSSL's TLS 1.2 server wants the certificate's curve among
            // the client's groups (RFC 4492); rustls does not check it.
            "-groups",
            "X25519:P-256",
            "-sigalgs",
            "ECDSA+SHA256",
        ],
        client_cert: false,
    },
    Pinned {
        what: "TLS 1.2, ECDHE-RSA, X25519, client certificate",
        key: KeyKind::Rsa2048,
        args: &[
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES128-GCM-SHA256",
            // The client certificate is ECDSA P-256 (see above).
            "-groups",
            "X25519:P-256",
        ],
        client_cert: true,
    },
];

/// `openssl s_client -starttls smtp` with SNI and the pinned parameters;
/// sends QUIT once connected.
fn s_client(port: u16, case: &Pinned, client: &Leaf) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-brief", "-starttls", "smtp", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "mx.example.test"])
        .args(case.args);
    if case.client_cert {
        cmd.arg("-cert").arg(&client.cert);
        cmd.arg("-key").arg(&client.key);
    }
    run(cmd, Some(b"QUIT\r\n"), T).combined()
}

/// The part of a log line from the trust word on
/// (`Anonymous TLS connection established from HOST[ADDR]: ...`), with
/// the client host name and the port after `]:` replaced: what may differ
/// between two programs on two ports.
fn normalise(line: &str, marker: &str) -> Option<String> {
    let at = line.find(marker)?;
    let start = line[..at].rfind(' ').map_or(0, |i| i + 1);
    let rest = &line[start..];
    // `... from HOST[ADDR]...` / `... to HOST[ADDR]:PORT: ...`
    let word_end = rest.find(marker)? + marker.len();
    let (head, tail) = rest.split_at(word_end);
    let bracket = tail.find('[')?;
    let tail = &tail[bracket..];
    let close = tail.find(']')?;
    let (addr, after) = tail.split_at(close + 1);
    let after = match after.strip_prefix(':') {
        Some(a) if a.starts_with(|c: char| c.is_ascii_digit()) => {
            let digits = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            format!(":PORT{}", &a[digits..])
        }
        _ => after.to_string(),
    };
    Some(format!("{head}HOST{addr}{after}"))
}

fn lines_with(log: &str, marker: &str) -> Vec<String> {
    log.lines().filter_map(|l| normalise(l, marker)).collect()
}

#[test]
fn server_lines_match_postfix_for_pinned_handshakes() {
    let ca = TestCa::new();
    let client = ca.client_cert(KeyKind::EcdsaP256, "client.example.test");
    const FROM: &str = " TLS connection established from ";
    for case in CASES {
        let leaf = ca.server_cert(case.key, &["mx.example.test"]);
        let mut pf = Postfix::builder().tls(&leaf.chain, &leaf.key);
        let mut tb = smtpd_support::Tern::builder().cert(&leaf.chain, &leaf.key);
        if case.client_cert {
            pf = pf.main_cf("smtpd_tls_ask_ccert", "yes");
            tb = tb.set("smtpd_tls_ask_ccert", "yes");
        }
        let pf = pf.start();
        let tern = tb.start();

        let out = s_client(pf.smtp_port(), case, &client);
        assert!(out.contains("Protocol version"), "{}: {out}", case.what);
        let out = s_client(tern.smtp_port, case, &client);
        assert!(out.contains("Protocol version"), "{}: {out}", case.what);

        assert!(
            pf.wait_for_log(FROM, T).is_some(),
            "{}: {}",
            case.what,
            pf.log()
        );
        tern.wait_for_log(&[FROM]);
        let theirs = lines_with(&pf.log(), FROM);
        let ours = lines_with(&tern.log(), FROM);
        assert_eq!(theirs.len(), 1, "{}: {theirs:?}", case.what);
        assert_eq!(ours, theirs, "{}", case.what);
        assert!(!ours[0].contains(" to mx.example.test"), "{}", ours[0]);
    }
}

#[test]
fn client_line_matches_postfix_smtp_for_the_same_server() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.example.test"]);
    let server = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    // Postfix as the client: mail for example.test (the server's domain)
    // goes to the relayhost at `may`.
    let pf_client = Postfix::builder()
        .hostname("client.example.test")
        .local_domains(&["client.example.test"])
        .relayhost(server.smtp_port())
        .relay_tls("may", None)
        .start();
    Swaks::new(pf_client.smtp_port())
        .from("alice@client.example.test")
        .to("bob@example.test")
        .run_ok();
    let tern = delivery_harness::Tern::builder()
        .relay_to(server.smtp_port())
        .set("smtp_tls_security_level", "may")
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "client-line");
    tern.wait_log(&[&id, "status=sent"], 1, T);
    server.wait_for_message(2, T);

    const TO: &str = " TLS connection established to ";
    assert!(
        pf_client.wait_for_log(TO, T).is_some(),
        "{}",
        pf_client.log()
    );
    let theirs = lines_with(&pf_client.log(), TO);
    let ours = lines_with(&tern.log(), TO);
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(ours, theirs);
}
