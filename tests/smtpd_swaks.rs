//! tern's SMTP server against Debian's swaks and posttls-finger: STARTTLS
//! on the port-25 listener, implicit TLS on the submissions listener, AUTH
//! PLAIN and LOGIN on the submission listener with a password file made by
//! `tern passwd`; each message must land in the spool. posttls-finger must
//! see TLS 1.3 with X25519, and tern must log and stamp (Received) it as
//! Postfix does.
mod common;
mod smtpd_support;

use common::certs::{KeyKind, TestCa};
use common::tools::{Finger, Swaks};
use smtpd_support::{body_of, Tern};

#[test]
fn swaks_starttls_implicit_tls_and_auth_land_in_spool() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .submission()
        .submissions()
        .user("alice", "correct horse")
        .user("bob", "battery staple")
        .start();

    // `tern passwd` wrote salted hashes, never the passwords.
    let pw = std::fs::read_to_string(tern.dir().join("passwd")).unwrap();
    assert_eq!(pw.lines().count(), 2, "{pw}");
    assert!(pw.starts_with("alice:$pbkdf2-sha256$i="), "{pw}");
    assert!(pw.contains("\nbob:$pbkdf2-sha256$i="), "{pw}");
    assert!(!pw.contains("horse") && !pw.contains("staple"), "{pw}");

    // 1. Port 25, STARTTLS required by swaks, verified against the test CA.
    let r = Swaks::new(tern.smtp_port)
        .to("one@remote.test")
        .tls()
        .tls_verify(&ca.cert, "tern.example.test")
        .header("Subject", "over starttls")
        .run_ok();
    assert!(
        r.transcript.contains("<-  250-STARTTLS"),
        "{}",
        r.transcript
    );
    assert!(
        r.transcript.contains("<~  250 2.0.0 Ok: queued as "),
        "{}",
        r.transcript
    );
    let id1 = r.queue_id().unwrap();

    // 2. Implicit TLS (RFC 8314) with AUTH PLAIN.
    let r = Swaks::new(tern.submissions_port.unwrap())
        .to("two@remote.test")
        .tls_on_connect()
        .tls_verify(&ca.cert, "tern.example.test")
        .auth("PLAIN", "alice", "correct horse")
        .header("Subject", "over implicit tls")
        .run_ok();
    assert!(
        r.transcript
            .contains("<~  235 2.7.0 Authentication successful"),
        "{}",
        r.transcript
    );
    let id2 = r.queue_id().unwrap();

    // 3. Submission: STARTTLS then AUTH LOGIN.
    let r = Swaks::new(tern.submission_port.unwrap())
        .to("three@remote.test")
        .tls()
        .auth("LOGIN", "bob", "battery staple")
        .header("Subject", "over submission")
        .run_ok();
    let id3 = r.queue_id().unwrap();

    // Refusals on the submission listener: a wrong password, and no AUTH.
    let bad = Swaks::new(tern.submission_port.unwrap())
        .to("four@remote.test")
        .tls()
        .auth("PLAIN", "alice", "wrong")
        .run();
    assert_eq!(bad.status, Some(28), "AUTH must fail:\n{}", bad.transcript);
    assert!(bad.transcript.contains("535 5.7.8"), "{}", bad.transcript);
    let noauth = Swaks::new(tern.submission_port.unwrap())
        .to("five@remote.test")
        .tls()
        .run();
    assert!(!noauth.ok(), "relay without AUTH:\n{}", noauth.transcript);
    assert_eq!(noauth.queue_id(), None);

    // Each accepted message is a queue file with its envelope and subject.
    for (id, rcpt, subject) in [
        (&id1, "one@remote.test", "over starttls"),
        (&id2, "two@remote.test", "over implicit tls"),
        (&id3, "three@remote.test", "over submission"),
    ] {
        let q = tern.queue_file(id);
        assert!(q.contains(&format!("\nid {id}\n")), "{q}");
        assert!(q.contains("\nsender from@example.test\n"), "{q}");
        assert!(q.contains(&format!("\nrcpt {rcpt}\n")), "{q}");
        assert!(body_of(&q).contains(&format!("Subject: {subject}")), "{q}");
    }
    assert_eq!(tern.queued().len(), 3, "{:?}", tern.queued());
    let mailq = tern.mailq();
    assert!(mailq.success(), "{}", mailq.combined());
    for id in [&id1, &id2, &id3] {
        assert!(mailq.stdout.contains(id.as_str()), "{}", mailq.stdout);
    }
    assert!(mailq.stdout.contains("in 3 Requests."), "{}", mailq.stdout);

    // Postfix-shaped log lines, with the real SASL mechanism.
    tern.wait_for_log(&[&format!("{id1}: client=localhost[127.0.0.1]")]);
    tern.wait_for_log(&[&format!(
        "{id2}: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice"
    )]);
    tern.wait_for_log(&[&format!(
        "{id3}: client=localhost[127.0.0.1], sasl_method=LOGIN, sasl_username=bob"
    )]);
    tern.wait_for_log(&[
        "warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: authentication failure",
        "sasl_username=alice",
    ]);
    tern.wait_for_log(&[
        "disconnect from localhost[127.0.0.1] ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8",
    ]);
}

#[test]
fn posttls_finger_sees_tls13_x25519_and_received_header_has_tls() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .set("smtpd_tls_received_header", "yes")
        .start();

    let out = Finger::new(tern.smtp_port).level("encrypt").run();
    let line = out
        .lines()
        .find(|l| l.contains("TLS connection established to 127.0.0.1[127.0.0.1]:"))
        .unwrap_or_else(|| panic!("posttls-finger saw no TLS:\n{out}"));
    assert!(line.contains(": TLSv1.3 with cipher TLS_"), "{line}");
    assert!(
        line.contains("key-exchange X25519 ") || line.contains("key-exchange X25519MLKEM768 "),
        "{line}"
    );
    // tern's own line, in its maillog, exactly as Postfix words it.
    let ours = tern.wait_for_log(&[
        "tern/smtpd[",
        "]: Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_",
    ]);
    assert!(ours.contains(" key-exchange X25519 "), "{ours}");
    assert!(
        ours.contains(" server-signature RSA-PSS (2048 bits) server-digest SHA"),
        "{ours}"
    );

    // With SNI, the "to NAME" element.
    let r = Swaks::new(tern.smtp_port)
        .to("rcpt@remote.test")
        .tls()
        .tls_verify(&ca.cert, "tern.example.test")
        .run_ok();
    tern.wait_for_log(&[
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher",
    ]);
    let id = r.queue_id().unwrap();
    let q = tern.queue_file(&id);
    let body = body_of(&q);
    let received: String = body
        .split_inclusive('\n')
        .take_while(|l| l.starts_with("Received:") || l.starts_with([' ', '\t']))
        .collect();
    assert!(received.starts_with("Received: from "), "{body}");
    assert!(
        received.contains("\t(using TLSv1.3 with cipher TLS_"),
        "{received}"
    );
    assert!(
        received.contains(
            " key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA"
        ),
        "{received}"
    );
    assert!(
        received.contains("\t(No client certificate requested)\r\n"),
        "{received}"
    );
    assert!(
        received.contains(&format!("by tern.example.test (tern) with ESMTPS id {id}")),
        "{received}"
    );
}

#[test]
fn received_header_without_tls_comment_when_disabled() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["tern.example.test"]);
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .set("smtpd_tls_received_header", "no")
        .start();
    let r = Swaks::new(tern.smtp_port)
        .to("rcpt@remote.test")
        .tls()
        .run_ok();
    let q = tern.queue_file(&r.queue_id().unwrap());
    assert!(body_of(&q).contains("with ESMTPS id"), "{q}");
    assert!(!q.contains("(using TLS"), "{q}");
    assert!(!q.contains("No client certificate requested"), "{q}");
    // The ECDSA certificate shows in the log line.
    tern.wait_for_log(&[
        "key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256",
    ]);
}

#[test]
fn tern_passwd_sets_and_replaces_hashes() {
    use common::process::run;
    use common::tempdir::{write, TempDir};
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    use tern::smtpd::passwd::PasswordFile;

    let dir = TempDir::new("tern-passwd");
    let conf = dir.join("tern.conf");
    write(&conf, "myhostname = tern.example.test\n");
    let file = dir.join("users");
    let passwd = |args: &[&str], stdin: &[u8]| {
        let mut cmd = Command::new(smtpd_support::TERN);
        cmd.arg("passwd").arg("-c").arg(&conf).args(args);
        run(cmd, Some(stdin), smtpd_support::WAIT)
    };
    // No file configured and none given.
    let out = passwd(&["alice"], b"pw\n");
    assert_eq!(out.status, Some(78), "{}", out.combined());
    assert!(out.stderr.contains("smtpd_sasl_password_file is not set"));
    // An empty password is refused.
    let f = file.display().to_string();
    let out = passwd(&["-f", &f, "alice"], b"\n");
    assert_eq!(out.status, Some(1), "{}", out.combined());
    assert!(!file.exists());
    // Set two users, then change one.
    for (user, pw) in [("alice", "first one"), ("bob", "b0b"), ("alice", "second")] {
        let out = passwd(&["-f", &f, user], format!("{pw}\r\n").as_bytes());
        assert!(out.success(), "{}", out.combined());
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let users = PasswordFile::parse(&text).unwrap();
    assert!(users.verify("alice", b"second"));
    assert!(!users.verify("alice", b"first one"));
    assert!(users.verify("bob", b"b0b"));
    // A bad user name is refused, the file untouched.
    let out = passwd(&["-f", &f, "a:b"], b"x\n");
    assert_eq!(out.status, Some(65), "{}", out.combined());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}
