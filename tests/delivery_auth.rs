//! Smarthost delivery with SMTP AUTH against a real Postfix (issue 4):
//! submission with STARTTLS (587 style) and implicit TLS (465 style,
//! `smtp_tls_wrappermode = yes`), credentials from a `texthash:`
//! `smtp_sasl_password_maps`; a wrong password defers the mail.

mod common;
mod delivery_harness;

use common::certs::{KeyKind, TestCa};
use common::postfix::Postfix;
use delivery_harness::{field, Tern};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn smarthost(ca: &TestCa) -> Postfix {
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["smtp.example.test"]);
    Postfix::builder()
        .tls(&leaf.chain, &leaf.key)
        .submission_user("alice", "s3cret-pw")
        .submission_requires_tls()
        .smtps()
        .start()
}

fn tern_for(port: u16, ca: &TestCa, password: &str, wrapper: bool) -> Tern {
    let b = Tern::builder();
    let hop = format!("[127.0.0.1]:{port}");
    let passwd = b.table("sasl_passwd", &format!("{hop} alice:{password}\n"));
    let policy = b.table(
        "tls_policy",
        &format!("{hop} secure match=smtp.example.test\n"),
    );
    let mut b = b
        .relay_to(port)
        .set("smtp_sasl_auth_enable", "yes")
        .set("smtp_sasl_password_maps", &passwd)
        .set("smtp_tls_policy_maps", &policy)
        .set("smtp_tls_CAfile", &ca.cert.display().to_string());
    if wrapper {
        b = b.set("smtp_tls_wrappermode", "yes");
    }
    b.start()
}

fn check_sent(pf: &Postfix, tern: &Tern, port: u16, subject: &str, n: usize) {
    let id = tern.submit("alice@example.net", "bob@example.test", subject);
    let sent = tern.wait_log(&[&id, "status=sent"], 1, T);
    let relay = format!("127.0.0.1[127.0.0.1]:{port}");
    assert_eq!(field(&sent[0], "relay"), Some(relay.as_str()));
    let tls = tern.log_lines(&[&format!(
        "Verified TLS connection established to {relay}: TLSv1.3"
    )]);
    assert_eq!(tls.len(), 1, "{}", tern.log());
    let msgs = pf.wait_for_message(n, T);
    assert!(msgs
        .iter()
        .any(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {subject}"))));
    // Postfix accepted it because of the login, not because of mynetworks.
    let line = pf
        .wait_for_log("sasl_method=", T)
        .unwrap_or_else(|| panic!("no SASL login in Postfix's log:\n{}", pf.log()));
    assert!(line.contains("sasl_username=alice"), "{line}");
    tern.wait_queue_empty(T);
}

#[test]
fn submission_587_starttls_auth() {
    let ca = TestCa::new();
    let pf = smarthost(&ca);
    let port = pf.submission_port().unwrap();
    let tern = tern_for(port, &ca, "s3cret-pw", false);
    check_sent(&pf, &tern, port, "via-587", 1);
}

#[test]
fn submissions_465_implicit_tls_auth() {
    let ca = TestCa::new();
    let pf = smarthost(&ca);
    let port = pf.smtps_port().unwrap();
    let tern = tern_for(port, &ca, "s3cret-pw", true);
    check_sent(&pf, &tern, port, "via-465", 1);
}

#[test]
fn wrong_password_is_deferred_with_the_servers_reply() {
    let ca = TestCa::new();
    let pf = smarthost(&ca);
    let port = pf.submission_port().unwrap();
    let tern = tern_for(port, &ca, "wrong-pw", false);
    let id = tern.submit("alice@example.net", "bob@example.test", "bad-auth");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    // Postfix (smtp_sasl_auth_soft_bounce = yes) defers a 535 the same way.
    assert!(
        d[0].contains("SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8"),
        "{}",
        d[0]
    );
    assert_eq!(field(&d[0], "dsn"), Some("4.7.8"), "{}", d[0]);
    let q = tern.mailq();
    assert!(q.contains(&id) && q.contains("535 5.7.8"), "{q}");
    assert!(
        tern.log_lines(&["status=bounced"]).is_empty(),
        "{}",
        tern.log()
    );
    assert!(pf.messages().is_empty());
    assert!(pf.wait_for_log("authentication failed", T).is_some());
}

/// A smarthost that offers only AUTH LOGIN (Postfix's
/// `smtpd_sasl_mechanism_filter = login`): tern logs in with LOGIN.
#[test]
fn auth_login_when_plain_is_not_offered() {
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["smtp.example.test"]);
    let pf = Postfix::builder()
        .tls(&leaf.chain, &leaf.key)
        .submission_user("alice", "s3cret-pw")
        .submission_requires_tls()
        .main_cf("smtpd_sasl_mechanism_filter", "login")
        .start();
    let port = pf.submission_port().unwrap();
    let tern = tern_for(port, &ca, "s3cret-pw", false);
    check_sent(&pf, &tern, port, "via-login", 1);
    let line = pf
        .wait_for_log("sasl_method=", T)
        .unwrap_or_else(|| panic!("{}", pf.log()));
    assert!(line.contains("sasl_method=LOGIN"), "{line}");
}

/// Issue 13: a malformed `smtp_sasl_password_maps` line is skipped with a
/// `file:line` warning (`check-config` prints it and exits 0), and mail to
/// the next hop it was meant for is deferred before any connection: never
/// sent without AUTH, never refused by the relay and bounced.
#[test]
fn a_malformed_password_line_defers_before_connecting() {
    let ca = TestCa::new();
    let pf = smarthost(&ca);
    let port = pf.submission_port().unwrap();
    let hop = format!("[127.0.0.1]:{port}");
    let setup = || {
        let b = Tern::builder();
        // The relay's line lacks the colon; another host's line is fine.
        let passwd = b.table(
            "sasl_passwd",
            &format!("[other.example]:587 bob:pw\n{hop} alice s3cret-pw\n"),
        );
        let path = passwd.trim_start_matches("texthash:").to_string();
        let b = b
            .relay_to(port)
            .set("smtp_sasl_auth_enable", "yes")
            .set("smtp_sasl_password_maps", &passwd)
            .set("smtp_tls_CAfile", &ca.cert.display().to_string());
        (b, path)
    };
    let (b, path) = setup();
    let out = b.check_config();
    assert_eq!(out.status, Some(0), "{}", out.combined());
    let warning = format!(
        "{path}:2: expected username:password -- ignoring this line; mail for \"{hop}\" is deferred until it is fixed"
    );
    let text = out.combined();
    assert!(text.contains(&warning), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");

    let (b, path) = setup();
    let tern = b.start();
    let id = tern.submit("alice@example.net", "bob@example.test", "sasl-broken");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T).remove(0);
    assert_eq!(field(&d, "dsn"), Some("4.3.0"), "{d}");
    assert!(
        d.contains(&format!(
            "smtp_sasl_password_maps entry for {hop} at {path}:2 is malformed; fix the table"
        )),
        "{d}"
    );
    assert!(tern.mailq().contains(&id), "{}", tern.mailq());
    assert!(!tern.log().contains("s3cret-pw"), "{}", tern.log());
    assert!(pf.messages().is_empty());
    assert!(!pf.log().contains("connect from"), "{}", pf.log());
}
