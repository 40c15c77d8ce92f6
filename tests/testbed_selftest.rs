//! Self-test of the test bed in tests/common: each peer against the
//! others, without tern. Needs the programs from scripts/install-test-deps.sh
//! and root (Postfix instances, smtp-sink -u nobody).

mod common;

use common::certs::{self_signed, KeyKind, TestCa};
use common::postfix::Postfix;
use common::sink::SmtpSink;
use common::source::SmtpSource;
use common::tools::{parse_pflogsumm, pflogsumm, socat_exchange, Finger, Socat, Swaks};
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

#[test]
fn swaks_to_postfix_message_readable() {
    let pf = Postfix::builder().start();
    eprintln!("postfix startup: {:?}", pf.startup_time());
    let r = Swaks::new(pf.smtp_port())
        .to("bob@example.test")
        .header("Subject", "testbed token 7f3a")
        .run_ok();
    assert!(r.queue_id().is_some(), "{}", r.transcript);
    let msgs = pf.wait_for_message(1, T);
    assert_eq!(msgs.len(), 1);
    let m = text(&msgs[0]);
    assert!(m.contains("Subject: testbed token 7f3a"), "{m}");
    assert!(m.contains("Delivered-To: bob@example.test"), "{m}");
    assert!(
        pf.log().contains("status=sent (delivered to maildir)"),
        "{}",
        pf.log()
    );
}

#[test]
fn postfix_startup_time() {
    let mut times = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut pf = Postfix::builder().start();
        let up = t0.elapsed();
        let t1 = Instant::now();
        pf.stop();
        times.push((up, t1.elapsed()));
    }
    eprintln!("postfix start/stop times: {times:?}");
    for (up, _) in &times {
        assert!(*up < Duration::from_secs(5), "slow start: {times:?}");
    }
}

#[test]
fn stop_kills_every_postfix_process() {
    let mut pf = Postfix::builder().start();
    let dir = pf.config_dir().display().to_string();
    Swaks::new(pf.smtp_port()).to("a@example.test").run_ok();
    pf.wait_for_message(1, T);
    let count = || {
        // master and children carry no config path in argv; match by the
        // process group instead: every process whose environment holds it.
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("environ"))
                    .map(|env| text(&env).contains(&dir))
                    .unwrap_or(false)
            })
            .count()
    };
    assert!(count() >= 1, "no process with MAIL_CONFIG={dir}");
    pf.stop();
    assert_eq!(count(), 0, "processes left after stop");
    assert!(!common::ports::is_listening(pf.smtp_port()));
}

#[test]
fn starttls_with_test_ca_verifies() {
    let ca = TestCa::new();
    for kind in [KeyKind::Rsa2048, KeyKind::EcdsaP256] {
        let leaf = ca.server_cert(kind, &["mx.example.test"]);
        let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
        let r = Swaks::new(pf.smtp_port())
            .to("bob@example.test")
            .tls()
            .tls_verify(&ca.cert, "mx.example.test")
            .run_ok();
        assert!(r.transcript.contains("<~  250"), "{}", r.transcript);
        pf.wait_for_message(1, T);
        assert!(
            pf.log()
                .contains("TLS connection established from localhost[127.0.0.1]"),
            "{}",
            pf.log()
        );
        let out = Finger::new(pf.smtp_port())
            .level("secure")
            .ca_file(&ca.cert)
            .matching("mx.example.test")
            .run();
        assert!(
            out.contains("Verified TLS connection established"),
            "{kind:?}: {out}"
        );
        // The same certificate, wrong name: trusted chain but no match.
        let out = Finger::new(pf.smtp_port())
            .level("secure")
            .ca_file(&ca.cert)
            .matching("other.example.test")
            .run();
        assert!(!out.contains("Verified TLS"), "{out}");
        assert!(out.contains("hostname mismatch"), "{out}");
        // Postfix-style fingerprints match what Postfix computes.
        for fp in [&leaf.cert_sha256, &leaf.pkey_sha256] {
            let out = Finger::new(pf.smtp_port())
                .level("fingerprint")
                .matching(fp)
                .run();
            assert!(
                out.contains("Verified TLS connection established"),
                "{fp}: {out}"
            );
        }
        let wrong = leaf.cert_sha256.replace(&leaf.cert_sha256[..2], "00");
        let out = Finger::new(pf.smtp_port())
            .level("fingerprint")
            .matching(&wrong)
            .run();
        assert!(
            out.contains("Untrusted TLS connection established"),
            "{out}"
        );
    }
}

#[test]
fn self_signed_is_untrusted() {
    let ca = TestCa::new();
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let out = Finger::new(pf.smtp_port())
        .level("secure")
        .ca_file(&ca.cert)
        .matching("mx.example.test")
        .run();
    assert!(
        out.contains("Untrusted TLS connection established"),
        "{out}"
    );
    // Trusted when its own certificate is the trust anchor.
    let out = Finger::new(pf.smtp_port())
        .level("secure")
        .ca_file(&leaf.cert)
        .matching("mx.example.test")
        .run();
    assert!(out.contains("Verified TLS connection established"), "{out}");
    // swaks refuses it against the test CA.
    let r = Swaks::new(pf.smtp_port())
        .tls()
        .tls_verify(&ca.cert, "mx.example.test")
        .run();
    assert!(!r.ok(), "{}", r.transcript);
}

#[test]
fn certificates_are_well_formed() {
    let ca = TestCa::new();
    let rsa = ca.server_cert(KeyKind::Rsa2048, &["mx.example.test", "127.0.0.1"]);
    let client = ca.client_cert(KeyKind::EcdsaP256, "device-1");
    let ss = self_signed(KeyKind::Rsa2048, &["self.example.test"]);
    let openssl = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.args(args);
        common::process::run(c, None, T)
    };
    let p = |x: &std::path::Path| x.display().to_string();
    for leaf in [&rsa, &client] {
        let v = openssl(&["verify", "-CAfile", &p(&ca.cert), &p(&leaf.cert)]);
        assert!(v.success(), "{}", v.combined());
    }
    let v = openssl(&["verify", "-CAfile", &p(&ca.cert), &p(&ss.cert)]);
    assert!(!v.success(), "self-signed verified against the CA");
    // Fingerprint through a different openssl path than the one certs uses.
    let fp = openssl(&[
        "x509",
        "-in",
        &p(&rsa.cert),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert_eq!(
        fp.stdout.trim().rsplit('=').next().unwrap(),
        rsa.cert_sha256
    );
    assert_eq!(rsa.pkey_sha256_hex().len(), 64);
    let t = openssl(&["x509", "-in", &p(&ss.cert), "-noout", "-text"]).stdout;
    assert!(t.contains("CA:FALSE") && t.contains("critical"), "{t}");
    assert!(t.contains("TLS Web Server Authentication"), "{t}");
    let t = openssl(&["x509", "-in", &p(&rsa.cert), "-noout", "-text"]).stdout;
    assert!(
        t.contains("DNS:mx.example.test") && t.contains("IP Address:127.0.0.1"),
        "{t}"
    );
    assert!(t.contains("rsaEncryption"), "{t}");
    let t = openssl(&["x509", "-in", &p(&client.cert), "-noout", "-text"]).stdout;
    assert!(
        t.contains("TLS Web Client Authentication") && t.contains("prime256v1"),
        "{t}"
    );
}

#[test]
fn sasl_submission_accepts_plain_rejects_wrong_password() {
    let pf = Postfix::builder()
        .submission_user("alice", "s3cret pass")
        .start();
    let port = pf.submission_port().unwrap();
    let ok = Swaks::new(port)
        .to("bob@example.test")
        .auth("PLAIN", "alice", "s3cret pass")
        .run();
    assert!(ok.ok(), "{}", ok.transcript);
    assert!(
        ok.replies().iter().any(|r| r.starts_with("235 2.7.0")),
        "{}",
        ok.transcript
    );
    let bad = Swaks::new(port)
        .to("bob@example.test")
        .auth("PLAIN", "alice", "wrong")
        .run();
    assert_eq!(bad.status, Some(28), "{}", bad.transcript);
    assert!(
        bad.replies().iter().any(|r| r.starts_with("535 5.7.8")),
        "{}",
        bad.transcript
    );
    let none = Swaks::new(port).to("bob@example.test").run();
    assert!(!none.ok(), "{}", none.transcript);
    assert!(
        none.replies().iter().any(|r| r.starts_with("554 5.7.1")),
        "{}",
        none.transcript
    );
    // LOGIN and user@realm work too; port 25 still takes mail without AUTH.
    Swaks::new(port)
        .auth("LOGIN", "alice@example.test", "s3cret pass")
        .run_ok();
    Swaks::new(pf.smtp_port()).run_ok();
    assert_eq!(pf.wait_for_message(3, T).len(), 3);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pf.messages().len(), 3);
    assert!(
        pf.log().contains("SASL PLAIN authentication failed"),
        "{}",
        pf.log()
    );
}

#[test]
fn smtps_listener_and_raw_socat_dialogue() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder()
        .hostname("mx.example.test")
        .tls(&leaf.chain, &leaf.key)
        .smtps()
        .start();
    let smtps = pf.smtps_port().unwrap();
    Swaks::new(smtps)
        .tls_on_connect()
        .tls_verify(&ca.cert, "mx.example.test")
        .run_ok();
    let out = Finger::new(smtps)
        .wrappermode()
        .level("secure")
        .ca_file(&ca.cert)
        .matching("mx.example.test")
        .run();
    assert!(out.contains("Verified TLS connection established"), "{out}");
    // Raw dialogue inside implicit TLS.
    let mut s = Socat::tls(smtps, Some(&ca.cert), "mx.example.test");
    assert!(s.read_reply(T).starts_with("220 mx.example.test ESMTP"));
    s.send_line("EHLO raw.example.test");
    let ehlo = s.read_reply(T);
    assert!(
        ehlo.starts_with("250-mx.example.test\r\n") && ehlo.ends_with("\r\n"),
        "{ehlo}"
    );
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    s.send_line("QUIT");
    assert!(s.read_reply(T).starts_with("221 2.0.0"));
    assert!(s.read_to_end(T).is_empty());
    // Raw plain dialogue, pipelined in one write.
    let mut s = Socat::tcp(pf.smtp_port());
    s.read_reply(T);
    s.send(b"EHLO a\r\nNOOP\r\n");
    assert!(s.read_reply(T).contains("STARTTLS"));
    assert_eq!(s.read_reply(T), "250 2.0.0 Ok\r\n");
    // One-shot exchange: everything until the server closes.
    let out = socat_exchange(pf.smtp_port(), b"HELO x\r\nQUIT\r\n", T);
    assert!(
        out.stdout.starts_with("220 ") && out.stdout.ends_with("221 2.0.0 Bye\r\n"),
        "{out:?}"
    );
}

#[test]
fn postfix_relays_through_tls_and_auth() {
    // The path Postfix will take into tern, with a second Postfix in
    // tern's place: relayhost, secure TLS with the test CA, SMTP AUTH.
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["relay.example.test"]);
    let inner = Postfix::builder()
        .local_domains(&["remote.test"])
        .tls(&leaf.chain, &leaf.key)
        .submission_user("relayuser", "pw")
        .submission_requires_tls()
        .start();
    let outer = Postfix::builder()
        .relayhost(inner.submission_port().unwrap())
        .relay_tls("secure", Some(&ca.cert))
        .relay_cert_match("relay.example.test")
        .relay_auth("relayuser", "pw")
        .start();
    Swaks::new(outer.smtp_port())
        .to("carol@remote.test")
        .header("Subject", "relayed")
        .run_ok();
    let msgs = inner.wait_for_message(1, T);
    assert!(text(&msgs[0]).contains("Subject: relayed"));
    let line = outer.wait_for_log("status=sent", T).unwrap();
    assert!(
        line.contains(&format!(
            "relay=127.0.0.1[127.0.0.1]:{}",
            inner.submission_port().unwrap()
        )),
        "{line}"
    );
    assert!(
        outer
            .log()
            .contains("Verified TLS connection established to 127.0.0.1"),
        "{}",
        outer.log()
    );
    assert!(
        inner
            .log()
            .contains("sasl_method=PLAIN, sasl_username=relayuser"),
        "{}",
        inner.log()
    );
    assert_eq!(outer.queue_len(), 0);
}

#[test]
fn smtp_source_to_smtp_sink_counts() {
    let sink = SmtpSink::start();
    let n = 200;
    let r = SmtpSource::new(sink.port())
        .messages(n)
        .sessions(5)
        .size(2000)
        .run(T);
    assert!(r.success(), "{:?}", r.output);
    assert_eq!(sink.wait_for_count(n, T), n);
    let msgs = sink.messages();
    assert_eq!(msgs.len(), n);
    let m = text(&msgs[0]);
    assert!(m.contains("X-Mail-Args: <from@example.test>"), "{m}");
    assert!(m.len() > 2000, "{}", m.len());
    eprintln!(
        "smtp-source -> smtp-sink: {n} msgs in {:?} ({:.0} msg/s)",
        r.output.elapsed,
        r.msgs_per_sec()
    );
}

#[test]
fn pflogsumm_counts_postfix_log() {
    let pf = Postfix::builder()
        .syslog_name("pf-sum")
        .main_cf("smtpd_relay_restrictions", "reject_unauth_destination")
        .start();
    for i in 0..3 {
        Swaks::new(pf.smtp_port())
            .to(&format!("user{i}@example.test"))
            .run_ok();
    }
    let r = Swaks::new(pf.smtp_port()).to("x@elsewhere.test").run();
    assert!(
        r.replies()
            .iter()
            .any(|l| l.contains("Relay access denied")),
        "{}",
        r.transcript
    );
    pf.wait_for_message(3, T);
    assert!(pf.wait_for_log_count("status=sent", 3, T));
    assert!(pf.wait_for_log_count("disconnect from", 4, T));
    let (totals, report) = pflogsumm(&pf.log_path(), pf.syslog_name());
    assert_eq!(totals.received, 3, "{report}");
    assert_eq!(totals.delivered, 3, "{report}");
    assert_eq!(totals.deferred, 0, "{report}");
    assert_eq!(totals.bounced, 0, "{report}");
    assert_eq!(totals.rejected, 1, "{report}");
    assert_eq!(totals.recipients, 3, "{report}");
    assert_eq!(totals.connections, 4, "{report}");
    // Wrong syslog name: pflogsumm counts nothing.
    let (none, _) = pflogsumm(&pf.log_path(), "postfix");
    assert_eq!(none.received, 0);
}

#[test]
fn pflogsumm_parser_units() {
    let t = parse_pflogsumm(
        "Grand Totals\n------------\nmessages\n\n   2000   received\n    12k  delivered\n      1   deferred  (3  deferrals)\n      0   rejected (0%)\n",
    );
    assert_eq!(
        (t.received, t.delivered, t.deferred, t.rejected),
        (2000, 12 * 1024, 1, 0)
    );
}

#[test]
#[should_panic(expected = "--- maillog")]
fn missing_message_panics_with_the_log() {
    let pf = Postfix::builder().start();
    pf.wait_for_message(1, Duration::from_millis(200));
}

#[test]
fn smtp_source_to_closed_port_fails_loudly() {
    let port = common::ports::free_port();
    let r = SmtpSource::new(port).run(T);
    assert!(!r.success(), "{:?}", r.output);
    assert!(
        r.output.stderr.contains("Connection refused"),
        "{:?}",
        r.output
    );
}
