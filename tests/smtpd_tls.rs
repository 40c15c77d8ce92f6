//! tern's TLS server settings against real clients: the ChaCha20 board
//! preference wins over an OpenSSL client's AES-first order
//! (`tls_cipher_preference = chacha20`), `smtpd_tls_protocols` and
//! `smtpd_tls_mandatory_protocols` restrict the versions (and a TLS 1.2
//! handshake is logged in Postfix's words, compared with posttls-finger's
//! own view of it).
mod common;
mod smtpd_support;

use std::process::Command;

use common::certs::{KeyKind, TestCa};
use common::process::{run, RunOutput};
use common::tempdir::{write, TempDir};
use common::tools::Finger;
use smtpd_support::{Tern, TERN, WAIT};

/// `openssl s_client -brief -starttls smtp` (or implicit TLS without
/// `starttls`) with `extra` options; sends QUIT once connected.
fn s_client(port: u16, starttls: bool, extra: &[&str]) -> RunOutput {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-brief", "-connect"])
        .arg(format!("127.0.0.1:{port}"));
    if starttls {
        cmd.args(["-starttls", "smtp"]);
    }
    cmd.args(extra);
    run(cmd, Some(b"QUIT\r\n"), WAIT)
}

/// The value after `Ciphersuite: ` in s_client's brief output.
fn suite_of(out: &RunOutput) -> String {
    out.combined()
        .lines()
        .find_map(|l| l.strip_prefix("Ciphersuite: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no TLS session:\n{}", out.combined()))
}

#[test]
fn chacha_board_preference_beats_the_client_order() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    // OpenSSL's default client order puts AES-256-GCM first: a default
    // tern follows it...
    let tern = Tern::builder().cert(&leaf.chain, &leaf.key).start();
    let out = s_client(tern.smtp_port, true, &[]);
    assert_eq!(suite_of(&out), "TLS_AES_256_GCM_SHA384");
    tern.wait_for_log(&[
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    ]);
    drop(tern);

    // ...and a board profile that prefers ChaCha20 gets it, for TLS 1.3
    // and for TLS 1.2.
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .set("tls_cipher_preference", "chacha20")
        .start();
    let out = s_client(tern.smtp_port, true, &[]);
    assert_eq!(suite_of(&out), "TLS_CHACHA20_POLY1305_SHA256");
    tern.wait_for_log(&[
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_CHACHA20_POLY1305_SHA256 (256/256 bits) key-exchange X25519",
    ]);
    let out = s_client(tern.smtp_port, true, &["-tls1_2"]);
    assert_eq!(suite_of(&out), "ECDHE-RSA-CHACHA20-POLY1305");
    tern.wait_for_log(&[
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.2 with cipher ECDHE-RSA-CHACHA20-POLY1305 (256/256 bits)",
    ]);
}

#[test]
fn tls12_handshake_is_logged_as_postfix_does() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let tern = Tern::builder().cert(&leaf.chain, &leaf.key).start();
    let out = Finger::new(tern.smtp_port)
        .level("may")
        .arg("-p")
        .arg("!TLSv1.3")
        .run();
    let prefix = format!(
        "Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{}: ",
        tern.smtp_port
    );
    let theirs = out
        .lines()
        .find_map(|l| l.split_once(&prefix).map(|(_, d)| d.to_string()))
        .unwrap_or_else(|| panic!("posttls-finger saw no TLS:\n{out}"));
    assert!(
        theirs.starts_with("TLSv1.2 with cipher ECDHE-RSA-"),
        "{theirs}"
    );
    // tern's line carries exactly what OpenSSL saw on the other end.
    tern.wait_for_log(&[&format!(
        "]: Anonymous TLS connection established from localhost[127.0.0.1]: {theirs}"
    )]);
    // openssl s_client agrees on the version.
    let out = s_client(tern.smtp_port, true, &["-tls1_2"]);
    assert!(
        out.combined().contains("Protocol version: TLSv1.2"),
        "{}",
        out.combined()
    );
}

#[test]
fn protocols_settings_restrict_the_server() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    // STARTTLS on port 25 follows smtpd_tls_protocols; port 465 follows
    // smtpd_tls_mandatory_protocols.
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .submissions()
        .set("smtpd_tls_protocols", ">=TLSv1.3")
        .set("smtpd_tls_mandatory_protocols", "!TLSv1.3")
        .start();
    let port465 = tern.submissions_port.unwrap();

    let out = s_client(tern.smtp_port, true, &["-tls1_2"]);
    assert!(
        !out.combined().contains("Protocol version:"),
        "TLS 1.2 must be refused on 25:\n{}",
        out.combined()
    );
    let out = s_client(tern.smtp_port, true, &[]);
    assert!(
        out.combined().contains("Protocol version: TLSv1.3"),
        "{}",
        out.combined()
    );

    let out = s_client(port465, false, &["-tls1_3"]);
    assert!(
        !out.combined().contains("Protocol version:"),
        "TLS 1.3 must be refused on 465:\n{}",
        out.combined()
    );
    let out = s_client(port465, false, &[]);
    assert!(
        out.combined().contains("Protocol version: TLSv1.2"),
        "{}",
        out.combined()
    );
    tern.wait_for_log(&[
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.2 with cipher",
    ]);
    tern.wait_for_log(&[
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher",
    ]);
}

#[test]
fn unusable_protocols_are_config_errors_with_lines() {
    let dir = TempDir::new("tern-protocols");
    let conf = dir.join("tern.conf");
    write(
        &conf,
        "myhostname = tern.example.test\nsmtp_listen = 127.0.0.1:2\n\
         smtpd_tls_protocols = !TLSv1.2 !TLSv1.3\n\
         smtpd_tls_mandatory_protocols = >=TLSv1.4\n",
    );
    let mut cmd = Command::new(TERN);
    cmd.args(["check-config", "-c"]).arg(&conf);
    let out = run(cmd, None, WAIT);
    assert_eq!(out.status, Some(1), "{}", out.combined());
    for (line, key) in [
        (3, "smtpd_tls_protocols"),
        (4, "smtpd_tls_mandatory_protocols"),
    ] {
        let want = format!("{}:{line}: {key} = ", conf.display());
        assert!(out.stderr.contains(&want), "{want}\n{}", out.combined());
    }
    // The daemon does not start with them either.
    let mut cmd = Command::new(TERN);
    cmd.args(["run", "-f", "-c"]).arg(&conf);
    let out = run(cmd, None, WAIT);
    assert_eq!(out.status, Some(1), "{}", out.combined());
    assert!(
        out.stderr.contains("smtpd_tls_protocols"),
        "{}",
        out.combined()
    );
}
