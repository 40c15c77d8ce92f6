//! tern's TLS server settings against real clients: the ChaCha20 board
//! preference wins over an OpenSSL client's AES-first order
//! (`tls_cipher_preference = chacha20`), `smtpd_tls_protocols` and
//! `smtpd_tls_mandatory_protocols` restrict the versions (and a TLS 1.2
//! handshake is logged in Postfix's words, compared with posttls-finger's
//! own view of it); `smtpd_tls_ask_ccert` asks for a client certificate,
//! logs and stamps it as Postfix does, and still checks its signature; a
//! failed implicit-TLS handshake still ends in the disconnect line; a whole
//! session (plain and STARTTLS) over `[::1]`; submission listeners without
//! a certificate are configuration errors.
mod common;
mod smtpd_support;

use std::process::Command;

use common::certs::{KeyKind, TestCa};
use common::process::{run, RunOutput};
use common::tempdir::{write, TempDir};
use common::tools::{Finger, Swaks};
use smtpd_support::{body_of, Client, Tern, TERN, WAIT};

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
    // tern's line carries exactly the protocol and cipher OpenSSL saw on
    // the other end, and, as Debian's Postfix 3.7 smtpd, nothing after
    // them for TLS 1.2 (tests/tls_logs_postfix.rs compares whole lines).
    let cipher = theirs
        .split(" key-exchange ")
        .next()
        .unwrap_or(&theirs)
        .to_string();
    let line = tern.wait_for_log(&[&format!(
        "]: Anonymous TLS connection established from localhost[127.0.0.1]: {cipher}"
    )]);
    assert!(line.ends_with(&cipher), "{line}");
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
    drop(tern);

    // With smtpd_tls_security_level = encrypt, STARTTLS on port 25 uses
    // the mandatory protocols too (as Postfix does).
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .set("smtpd_tls_security_level", "encrypt")
        .set("smtpd_tls_mandatory_protocols", ">=TLSv1.3")
        .start();
    let out = s_client(tern.smtp_port, true, &["-tls1_2"]);
    assert!(
        !out.combined().contains("Protocol version:"),
        "TLS 1.2 must be refused at the encrypt level:\n{}",
        out.combined()
    );
    let out = s_client(tern.smtp_port, true, &[]);
    assert!(
        out.combined().contains("Protocol version: TLSv1.3"),
        "{}",
        out.combined()
    );
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

/// The Received header (with its folded lines) at the top of a message.
fn received_of(tern: &Tern, id: &str) -> String {
    let q = tern.queue_file(id);
    body_of(&q)
        .split_inclusive('\n')
        .take_while(|l| l.starts_with("Received:") || l.starts_with([' ', '\t']))
        .collect()
}

#[test]
fn ask_ccert_logs_and_stamps_the_client_certificate() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let client = ca.client_cert(KeyKind::EcdsaP256, "client.example.test");
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .set("smtpd_tls_ask_ccert", "yes")
        .start();

    // A client with a certificate: "Untrusted" (presented, never checked
    // against a CA), its signature in the summary, its names in the header.
    let r = Swaks::new(tern.smtp_port)
        .to("rcpt@remote.test")
        .tls()
        .tls_client_cert(&client.chain, &client.key)
        .run_ok();
    let line = tern.wait_for_log(&[
        "]: Untrusted TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_",
    ]);
    assert!(
        line.ends_with(" client-signature ECDSA (prime256v1) client-digest SHA256"),
        "{line}"
    );
    let received = received_of(&tern, &r.queue_id().unwrap());
    assert!(
        received.contains(
            "\r\n\t client-signature ECDSA (prime256v1) client-digest SHA256)\r\n\t(Client CN \"client.example.test\", Issuer \"tern test CA\" (not verified))\r\n"
        ),
        "{received}"
    );

    // A client without one: asked, none presented.
    let r = Swaks::new(tern.smtp_port)
        .to("rcpt@remote.test")
        .tls()
        .run_ok();
    let received = received_of(&tern, &r.queue_id().unwrap());
    assert!(
        received.contains(")\r\n\t(Client did not present a certificate)\r\n"),
        "{received}"
    );
    assert!(!received.contains("client-signature"), "{received}");
    tern.wait_for_log(&[
        "]: Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_",
    ]);

    // Over TLS 1.2 too (the TLS 1.2 CertificateVerify path).
    let r = Swaks::new(tern.smtp_port)
        .to("rcpt@remote.test")
        .tls()
        .arg("--tls-protocol")
        .arg("tlsv1_2")
        .tls_client_cert(&client.chain, &client.key)
        .run_ok();
    let line = tern.wait_for_log(&[
        "]: Untrusted TLS connection established from localhost[127.0.0.1]: TLSv1.2 with cipher ECDHE-RSA-",
    ]);
    // Debian's Postfix 3.7 ends a TLS 1.2 server line after the cipher
    // (OpenSSL keeps no peer key share there; tests/tls_logs_postfix.rs).
    assert!(line.ends_with(" bits)"), "{line}");
    let received = received_of(&tern, &r.queue_id().unwrap());
    assert!(
        received.contains(
            "(Client CN \"client.example.test\", Issuer \"tern test CA\" (not verified))"
        ),
        "{received}"
    );
}

#[test]
fn ask_ccert_checks_the_client_signature() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let client = ca.client_cert(KeyKind::EcdsaP256, "client.example.test");
    let other = ca.client_cert(KeyKind::EcdsaP256, "other.example.test");
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .set("smtpd_tls_ask_ccert", "yes")
        .start();
    // The client shows client.example.test's certificate but signs with
    // another key: an unverified certificate is fine, a forged signature
    // is not.
    let mut c = Client::connect(tern.smtp_port);
    c.reply();
    c.cmd("EHLO client.test");
    assert!(c.cmd("STARTTLS").starts_with("220 "));
    let handshake = c.start_tls_with_cert(&ca.cert, "tern.example.test", &client.chain, &other.key);
    if handshake.is_ok() {
        // TLS 1.3: the client's flight is sent; the server's verdict comes
        // as an alert instead of a reply.
        c.send(b"EHLO client.test\r\n");
        assert_eq!(c.try_reply(), None);
    }
    tern.wait_for_log(&[
        // In words, not as rustls's `invalid peer certificate: BadSignature`.
        "SSL_accept error from localhost[127.0.0.1]: a signature (in the certificate chain or the handshake) does not verify",
    ]);
    tern.wait_for_log(&["disconnect from localhost[127.0.0.1] ehlo=1 starttls=0/1"]);
    assert_eq!(
        tern.log_count("TLS connection established"),
        0,
        "{}",
        tern.log()
    );

    // The same client with the right key is accepted.
    let mut c = Client::connect(tern.smtp_port);
    c.reply();
    c.cmd("EHLO client.test");
    assert!(c.cmd("STARTTLS").starts_with("220 "));
    c.start_tls_with_cert(&ca.cert, "tern.example.test", &client.chain, &client.key)
        .expect("handshake");
    assert!(c.cmd("EHLO client.test").starts_with("250-"));
    assert!(c.cmd("QUIT").starts_with("221 "));
    tern.wait_for_log(&["Untrusted TLS connection established from localhost[127.0.0.1]: "]);
}

#[test]
fn without_ask_ccert_no_certificate_is_requested() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let client = ca.client_cert(KeyKind::EcdsaP256, "client.example.test");
    let tern = Tern::builder().cert(&leaf.chain, &leaf.key).start();
    // swaks has a certificate ready, but is never asked for it.
    let r = Swaks::new(tern.smtp_port)
        .to("rcpt@remote.test")
        .tls()
        .tls_client_cert(&client.chain, &client.key)
        .run_ok();
    let received = received_of(&tern, &r.queue_id().unwrap());
    assert!(
        received.contains(")\r\n\t(No client certificate requested)\r\n"),
        "{received}"
    );
    tern.wait_for_log(&["]: Anonymous TLS connection established from localhost[127.0.0.1]: "]);
    assert_eq!(tern.log_count("client-signature"), 0, "{}", tern.log());
}

#[test]
fn failed_implicit_tls_handshake_still_logs_disconnect() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .submissions()
        .set("smtpd_timeout", "2s")
        .start();
    let port = tern.submissions_port.unwrap();

    // Plaintext SMTP to the implicit-TLS port: the handshake fails.
    let mut c = Client::connect(port);
    c.send(b"EHLO client.test\r\n");
    assert!(c.closed());
    tern.wait_for_log(&["SSL_accept error from localhost[127.0.0.1]: "]);
    tern.wait_for_log(&["lost connection after CONNECT from localhost[127.0.0.1]"]);
    tern.wait_for_log(&["disconnect from localhost[127.0.0.1] commands=0/0"]);

    // A client that never starts the handshake: timeout, then disconnect.
    let mut c = Client::connect(port);
    c.read_timeout(WAIT);
    assert!(c.closed());
    tern.wait_for_log(&["timeout after CONNECT from localhost[127.0.0.1]"]);
    let deadline = std::time::Instant::now() + WAIT;
    while tern.log_count("disconnect from localhost[127.0.0.1] commands=0/0") < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", tern.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        tern.log_count("connect from localhost[127.0.0.1]"),
        4,
        "{}",
        tern.log()
    );

    // Garbage after STARTTLS on port 25: the failed handshake is logged,
    // the session ends with its disconnect line, and the daemon (one
    // thread for everything) is still there for the next client.
    let mut c = Client::connect(tern.smtp_port);
    c.reply();
    c.cmd("EHLO client.test");
    assert!(c.cmd("STARTTLS").starts_with("220 "));
    c.send(b"this is not a ClientHello\r\n");
    assert!(c.closed());
    tern.wait_for_log(&["disconnect from localhost[127.0.0.1] ehlo=1 starttls=0/1 commands=1/2"]);
    let mut c = Client::connect(tern.smtp_port);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("QUIT").starts_with("221 "));
}

/// True if the kernel has the IPv6 loopback address (`::1` on `lo`).
fn have_ipv6_loopback() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6")
        .map(|t| {
            t.lines()
                .any(|l| l.starts_with("00000000000000000000000000000001 "))
        })
        .unwrap_or(false)
}

#[test]
fn a_session_over_ipv6_loopback() {
    if !have_ipv6_loopback() {
        eprintln!("note: no IPv6 loopback (/proc/net/if_inet6 has no ::1): test skipped");
        return;
    }
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .also_ipv6()
        .start();
    // Raw SMTP over [::1]: ::1 is in the default mynetworks, so it relays.
    let mut c = Client::connect_to("::1", tern.smtp_port);
    assert!(c.reply().starts_with("220 tern.example.test ESMTP"));
    assert!(c.cmd("EHLO client.test").starts_with("250-"));
    assert!(c.cmd("MAIL FROM:<a@client.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<b@remote.test>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(b"Subject: over v6\r\n\r\nbody\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let id = r.trim_end().rsplit(' ').next().unwrap().to_string();
    assert!(c.cmd("QUIT").starts_with("221 "));
    tern.wait_for_log(&["]: connect from localhost[::1]"]);
    tern.wait_for_log(&[&format!("]: {id}: client=localhost[::1]")]);
    tern.wait_for_log(&[
        "]: disconnect from localhost[::1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
    ]);
    let received = received_of(&tern, &id);
    assert!(
        received.starts_with("Received: from client.test (localhost [IPv6:::1])\r\n"),
        "{received}"
    );

    // STARTTLS over IPv6 (Debian's swaks lacks IO::Socket::INET6, so the
    // test client does it with rustls).
    let mut c = Client::connect_to("::1", tern.smtp_port);
    c.reply();
    assert!(c.cmd("EHLO client.test").contains("250-STARTTLS\r\n"));
    assert!(c.cmd("STARTTLS").starts_with("220 "));
    c.start_tls(&ca.cert, "tern.example.test");
    assert!(c.cmd("EHLO client.test").starts_with("250-"));
    assert!(c.cmd("MAIL FROM:<a@client.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<b@remote.test>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(b"Subject: over v6 and TLS\r\n\r\nbody\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let id = r.trim_end().rsplit(' ').next().unwrap().to_string();
    assert!(c.cmd("QUIT").starts_with("221 "));
    tern.wait_for_log(&[
        "]: Anonymous TLS connection established from localhost[::1]: TLSv1.3 with cipher",
    ]);
    let received = received_of(&tern, &id);
    assert!(
        received
            .starts_with("Received: from client.test (localhost [IPv6:::1])\r\n\t(using TLSv1.3 "),
        "{received}"
    );
}

#[test]
fn submission_without_a_certificate_is_a_config_error() {
    let dir = TempDir::new("tern-sub-nocert");
    for (key, line) in [("submissions_listen", 3), ("submission_listen", 3)] {
        let conf = dir.join(&format!("{key}.conf"));
        write(
            &conf,
            format!(
                "myhostname = tern.example.test\nsmtp_listen = 127.0.0.1:2\n\
                 {key} = 127.0.0.1:3\nsmtpd_sasl_password_file = /dev/null\n"
            ),
        );
        let mut cmd = Command::new(TERN);
        cmd.args(["check-config", "-c"]).arg(&conf);
        let out = run(cmd, None, WAIT);
        assert_eq!(out.status, Some(1), "{}", out.combined());
        let want = format!(
            "{}:{line}: {key} needs a certificate: set smtpd_tls_cert_file",
            conf.display()
        );
        assert!(out.stderr.contains(&want), "{want}\n{}", out.combined());
        let mut cmd = Command::new(TERN);
        cmd.args(["run", "-f", "-c"]).arg(&conf);
        let out = run(cmd, None, WAIT);
        assert_eq!(out.status, Some(1), "{}", out.combined());
        assert!(out.stderr.contains(&want), "{want}\n{}", out.combined());
    }
}
