//! RFC 8689 `TLS-Required: No` against real Postfix servers without
//! STARTTLS (issue 12 item 6): a message with the header goes out in
//! plaintext where the policy says `encrypt`, one without it in the same
//! queue is deferred, a bounce of a lowered message returns the header,
//! and a route with SMTP AUTH credentials keeps its level.

mod common;
mod delivery_harness;

use common::postfix::{Postfix, PostfixBuilder};
use common::tempdir::{write_config, TempDir};
use common::tools::Swaks;
use delivery_harness::{field, Tern};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Postfix that knows only `alice` and `bob` in example.test: anything
/// else gets `550 5.1.1 ... User unknown in virtual mailbox table`.
fn with_users(b: PostfixBuilder, dir: &TempDir) -> PostfixBuilder {
    let users = dir.join("users");
    write_config(
        &users,
        "alice@example.test inbox/\nbob@example.test inbox/\n",
    );
    b.main_cf(
        "virtual_mailbox_maps",
        &format!("texthash:{}", users.display()),
    )
}

/// Submits a message with `TLS-Required: No` into tern; its queue ID.
fn submit_lowered(tern: &Tern, from: &str, to: &str, subject: &str) -> String {
    let r = Swaks::new(tern.port())
        .from(from)
        .to(to)
        .header("Subject", subject)
        .header("TLS-Required", "No")
        .run();
    assert!(r.ok(), "{}\n{}", r.transcript, tern.diagnostics());
    r.queue_id()
        .unwrap_or_else(|| panic!("no queue id in:\n{}", r.transcript))
}

#[test]
fn tls_required_no_goes_out_in_plaintext_where_the_policy_says_encrypt() {
    let dir = TempDir::new("users");
    // Neither server offers STARTTLS.
    let dest = with_users(Postfix::builder(), &dir).start();
    let senders = Postfix::builder().local_domains(&["example.net"]).start();
    let (pd, ps) = (dest.smtp_port(), senders.smtp_port());
    let b = Tern::builder();
    // example.test -> [dest], `encrypt` by the policy table; the bounce
    // to example.net goes to the relayhost at the default `may`.
    let policy = b.table("tls_policy", &format!("[127.0.0.1]:{pd} encrypt\n"));
    let transport = b.table(
        "transport",
        &format!("example.test smtp:[127.0.0.1]:{pd}\n"),
    );
    let tern = b
        .relay_to(ps)
        .set("smtp_tls_security_level", "may")
        .set("smtp_tls_policy_maps", &policy)
        .set("transport_maps", &transport)
        .start();

    let enforced = tern.submit("alice@example.net", "bob@example.test", "enforced");
    let lowered = submit_lowered(&tern, "alice@example.net", "bob@example.test", "report");
    tern.wait_log(&[&enforced, "status=deferred"], 1, T);
    let sent = tern.wait_log(&[&lowered, "status=sent"], 1, T);
    assert_eq!(
        field(&sent[0], "relay"),
        Some(format!("127.0.0.1[127.0.0.1]:{pd}").as_str())
    );
    let relaxed = tern.log_lines(&[
        &lowered,
        &format!("TLS-Required: No: TLS policy relaxed to may for [127.0.0.1]:{pd} (was encrypt;"),
    ]);
    assert_eq!(relaxed.len(), 1, "{}", tern.log());
    assert!(tern.log_lines(&["TLS connection established"]).is_empty());
    let msgs = dest.wait_for_message(1, T);
    let m = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert!(
        m.contains("Subject: report") && m.contains("TLS-Required: No"),
        "{m}"
    );

    // The same queue run again: the enforced message is deferred again,
    // never sent in clear, and its session never carried the other one.
    tern.flush();
    tern.wait_log(&[&enforced, "status=deferred"], 2, T);
    let d = tern.log_lines(&[&enforced, "status=deferred"]);
    assert!(
        d[0].ends_with("(TLS is required, but was not offered by host 127.0.0.1[127.0.0.1])"),
        "{}",
        d[0]
    );
    assert!(tern.mailq().contains(&enforced));
    assert_eq!(dest.messages().len(), 1);

    // A lowered message that bounces: the DSN returns its header,
    // `TLS-Required: No` among it.
    let ghost = submit_lowered(&tern, "alice@example.net", "ghost@example.test", "to-ghost");
    tern.wait_log(&[&ghost, "status=bounced"], 1, T);
    let n = tern.wait_log(&[&ghost, "sender non-delivery notification: "], 1, T);
    let dsn_id = n[0].rsplit(' ').next().unwrap().to_string();
    tern.wait_log(&[&dsn_id, "to=<alice@example.net>", "status=sent"], 1, T);
    let msgs = senders.wait_for_message(1, T);
    let dsn = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert!(dsn.contains("Subject: to-ghost"), "{dsn}");
    assert!(dsn.contains("\nTLS-Required: No"), "{dsn}");
}

#[test]
fn a_route_with_auth_credentials_keeps_its_level() {
    // A smarthost that takes AUTH without TLS: tern must not log in at a
    // lowered level (a man in the middle would get the password).
    let pf = Postfix::builder()
        .submission_user("alice", "s3cret-pw")
        .start();
    let port = pf.submission_port().unwrap();
    let b = Tern::builder();
    let hop = format!("[127.0.0.1]:{port}");
    let passwd = b.table("sasl_passwd", &format!("{hop} alice:s3cret-pw\n"));
    let tern = b
        .relay_to(port)
        .set("smtp_tls_security_level", "encrypt")
        .set("smtp_sasl_auth_enable", "yes")
        .set("smtp_sasl_password_maps", &passwd)
        .start();
    let id = submit_lowered(&tern, "alice@example.net", "bob@example.test", "report");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    assert!(
        d[0].ends_with("(TLS is required, but was not offered by host 127.0.0.1[127.0.0.1])"),
        "{}",
        d[0]
    );
    let kept = tern.log_lines(&[
        &id,
        &format!("TLS-Required: No not honoured for {hop}: SMTP AUTH credentials are sent on this route; TLS security level encrypt kept"),
    ]);
    assert_eq!(kept.len(), 1, "{}", tern.log());
    assert!(tern.log_lines(&["TLS policy relaxed"]).is_empty());
    assert!(pf.messages().is_empty());
    assert!(!pf.log().contains("sasl_method="), "{}", pf.log());
}
