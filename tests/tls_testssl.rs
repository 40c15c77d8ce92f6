//! tern's TLS server as Debian's testssl.sh 3.0.8 sees it, on the SMTP
//! listener (`--starttls smtp`) and on the implicit-TLS submissions
//! listener: only TLS 1.2 and 1.3 offered, only AEAD cipher suites, forward
//! secrecy for every offered suite, and no finding at severity MEDIUM or
//! above from the checks run — except the ones about the test certificate
//! itself, listed in [`CERT_FINDINGS`].
//!
//! Checks run (bounded to well under a minute each on 2 cores):
//! `-p` protocols, `-s` standard cipher lists, `-e` each cipher, `-f`
//! forward secrecy, `-S` server defaults (certificate, session resumption,
//! extensions), `-U` vulnerabilities ([`VULNERABILITY_CHECKS`]).
mod common;
mod smtpd_support;

use std::process::Command;
use std::time::Duration;

use common::certs::{KeyKind, TestCa};
use common::process::run;
use common::tempdir::TempDir;
use smtpd_support::Tern;

/// `timeout`'s bound on one testssl.sh run (~20-30 s when idle).
const TESTSSL_SECS: u32 = 120;

/// Findings from `-U` that must be in every report: the scan really ran
/// them. (ticketbleed and BREACH are HTTP-only; testssl.sh skips them on
/// SMTP.)
const VULNERABILITY_CHECKS: &[&str] = &[
    "heartbleed",
    "CCS",
    "ROBOT",
    "secure_renego",
    "secure_client_renego",
    "CRIME_TLS",
    "POODLE_SSL",
    "fallback_SCSV",
    "SWEET32",
    "FREAK",
    "DROWN",
    "LOGJAM",
    "BEAST",
    "LUCKY13",
    "RC4",
];

/// Findings at MEDIUM or above that are about the test certificate, not
/// about tern, and are therefore excluded one by one:
const CERT_FINDINGS: &[&str] = &[
    // The test CA's leaves have neither a CRL distribution point nor an
    // OCSP URI (a throwaway CA publishes neither).
    "cert_revocation",
];

/// One row of testssl.sh's CSV: `id, fqdn/ip, port, severity, finding,
/// cve, cwe`.
#[derive(Debug)]
struct Row {
    id: String,
    severity: String,
    finding: String,
}

/// Parses testssl.sh's CSV: every field double-quoted, `""` inside a field
/// for a quote.
fn parse_csv(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let mut fields = Vec::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            assert_eq!(c, '"', "unquoted CSV field in {line:?}");
            let mut f = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        f.push('"');
                    }
                    Some('"') => break,
                    Some(c) => f.push(c),
                    None => panic!("unterminated CSV field in {line:?}"),
                }
            }
            fields.push(f);
            match chars.next() {
                Some(',') | None => {}
                Some(c) => panic!("{c:?} after a CSV field in {line:?}"),
            }
        }
        assert_eq!(fields.len(), 7, "CSV row {line:?}");
        rows.push(Row {
            id: fields[0].clone(),
            severity: fields[3].clone(),
            finding: fields[4].clone(),
        });
    }
    rows
}

/// Runs testssl.sh against 127.0.0.1:`port` (STARTTLS SMTP if `starttls`)
/// and returns its CSV rows.
fn testssl(port: u16, starttls: bool, ca: &TestCa) -> Vec<Row> {
    let dir = TempDir::new("tern-testssl");
    let csv = dir.join("report.csv");
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", &TESTSSL_SECS.to_string(), "testssl"])
        .args(["--quiet", "--warnings", "off", "--color", "0"])
        .args(["-p", "-s", "-e", "-f", "-S", "-U"])
        // The test CA is a trust anchor, as for the other clients.
        .arg("--add-ca")
        .arg(&ca.cert)
        .arg("--csvfile")
        .arg(&csv);
    if starttls {
        cmd.args(["--starttls", "smtp"]);
    }
    cmd.arg(format!("127.0.0.1:{port}"));
    let out = run(cmd, None, Duration::from_secs(u64::from(TESTSSL_SECS) + 10));
    assert!(
        !out.timed_out && out.status != Some(124) && out.status != Some(137),
        "testssl.sh did not finish in {TESTSSL_SECS} s:\n{}",
        out.combined()
    );
    let text = std::fs::read_to_string(&csv)
        .unwrap_or_else(|e| panic!("no testssl.sh CSV ({e}):\n{}", out.combined()));
    eprintln!(
        "testssl.sh on port {port} (starttls {starttls}): {:.1} s",
        out.elapsed.as_secs_f64()
    );
    parse_csv(&text)
}

fn finding<'a>(rows: &'a [Row], id: &str) -> &'a str {
    rows.iter()
        .find(|r| r.id == id)
        .map(|r| r.finding.as_str())
        .unwrap_or_else(|| panic!("no {id:?} in testssl.sh's report: {rows:#?}"))
}

fn check(rows: &[Row]) {
    // Protocols: TLS 1.2 and 1.3 only.
    for p in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(finding(rows, p), "not offered", "{p}");
    }
    assert_eq!(finding(rows, "TLS1_2"), "offered");
    assert!(finding(rows, "TLS1_3").starts_with("offered"), "TLS1_3");

    // No weak cipher class at all (AVERAGE: CBC suites without 3DES).
    for list in ["NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"] {
        assert_eq!(
            finding(rows, &format!("cipherlist_{list}")),
            "not offered",
            "cipherlist_{list}"
        );
    }

    // Each offered suite (`-e`): `hexcode  name  kx bits  enc  bits  rfc-name`.
    let suites: Vec<Vec<&str>> = rows
        .iter()
        .filter(|r| r.id.starts_with("cipher_x"))
        .map(|r| r.finding.split_whitespace().collect())
        .collect();
    assert!(!suites.is_empty(), "no offered cipher suite listed");
    for s in &suites {
        assert!(s.len() >= 5, "cipher row {s:?}");
        // AEAD only.
        assert!(
            ["AESGCM", "ChaCha20", "AESCCM"].contains(&s[4]),
            "not an AEAD suite: {s:?}"
        );
        // Ephemeral key exchange (TLS 1.3 suites show the group's ECDH).
        assert!(s[2] == "ECDH" || s[2] == "DH", "no forward secrecy: {s:?}");
    }
    // ...and testssl.sh's own forward-secrecy list (`-f`) is all of them.
    assert_eq!(finding(rows, "PFS"), "offered");
    let mut fs: Vec<&str> = finding(rows, "PFS_ciphers").split_whitespace().collect();
    let mut offered: Vec<&str> = suites.iter().map(|s| s[1]).collect();
    fs.sort_unstable();
    offered.sort_unstable();
    assert_eq!(fs, offered, "suites without forward secrecy");

    // The excluded certificate findings are there (the list stays exact),
    // and the vulnerability checks ran...
    for id in CERT_FINDINGS {
        finding(rows, id);
    }
    for id in VULNERABILITY_CHECKS {
        finding(rows, id);
    }
    // ...and nothing is MEDIUM or worse, but for the test certificate's
    // own findings; nor did any check end in a warning or error (a scan
    // that could not run), but for testssl.sh's note that Debian's openssl
    // has no GOST engine (about the scanner, not about tern).
    let bad: Vec<&Row> = rows
        .iter()
        .filter(|r| match r.severity.as_str() {
            "MEDIUM" | "HIGH" | "CRITICAL" => !CERT_FINDINGS.contains(&r.id.as_str()),
            "WARN" | "FATAL" => r.id != "engine_problem",
            _ => false,
        })
        .collect();
    assert!(bad.is_empty(), "testssl.sh findings: {bad:#?}");
}

fn tern(ca: &TestCa) -> Tern {
    // RSA, so that ROBOT and the RSA key-transport checks have something to
    // look at; the IP address, so that the name testssl.sh connects to
    // matches the certificate.
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test", "127.0.0.1"]);
    Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .submissions()
        .start()
}

#[test]
fn testssl_starttls_smtp() {
    let ca = TestCa::new();
    let tern = tern(&ca);
    check(&testssl(tern.smtp_port, true, &ca));
}

#[test]
fn testssl_implicit_tls_submissions() {
    let ca = TestCa::new();
    let tern = tern(&ca);
    let port = tern.submissions_port.expect("submissions port");
    check(&testssl(port, false, &ca));
}
