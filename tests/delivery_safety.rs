//! No set-up mistake loses mail (issue 13, item 5), against a real
//! Postfix: a relay that wants a login tern has no password for defers
//! (and `check-config` says why beforehand); `smtp_sasl_auth_soft_bounce`
//! as Postfix; a bounce that cannot be delivered goes to the postmaster as
//! Postfix's double bounce, and one that cannot be delivered either is
//! held and listed by `mailq`, up to `undeliverable_bounce_hold_limit`.

mod common;
mod delivery_harness;

use common::certs::{KeyKind, TestCa};
use common::postfix::{Postfix, PostfixBuilder};
use common::tempdir::{write_config, TempDir};
use delivery_harness::{field, Tern, TernBuilder};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// A Postfix whose plain port answers every MAIL FROM with `530 5.7.0
/// Authentication required`, as a provider's submission port does for a
/// client that did not log in.
fn relay_requiring_login(dir: &TempDir) -> Postfix {
    let cidr = dir.join("require_auth.cidr");
    write_config(&cidr, "0.0.0.0/0 530 5.7.0 Authentication required\n");
    Postfix::builder()
        .main_cf("smtpd_delay_reject", "no")
        .main_cf(
            "smtpd_sender_restrictions",
            &format!("check_client_access cidr:{}", cidr.display()),
        )
        .start()
}

/// tern relaying to `port` with SASL on and a password entry whose key
/// does not match the relayhost (no brackets: `127.0.0.1:PORT`).
fn mismatched_key(port: u16) -> TernBuilder {
    let b = Tern::builder();
    let passwd = b.table("sasl_passwd", &format!("127.0.0.1:{port} alice:pw\n"));
    b.relay_to(port)
        .set("smtp_sasl_auth_enable", "yes")
        .set("smtp_sasl_password_maps", &passwd)
}

#[test]
fn sasl_key_mismatch_defers_the_530_and_check_config_warns() {
    let dir = TempDir::new("auth-cidr");
    let pf = relay_requiring_login(&dir);
    let port = pf.smtp_port();

    let out = mismatched_key(port).check_config();
    assert!(out.success(), "{}", out.combined());
    let hop = format!("[127.0.0.1]:{port}");
    assert!(
        out.stderr.contains(&format!(
            "warning: smtp_sasl_auth_enable = yes but smtp_sasl_password_maps has no entry for relayhost = {hop}"
        )),
        "{}",
        out.combined()
    );

    let tern = mismatched_key(port).start();
    let id = tern.submit("alice@example.net", "bob@example.test", "no-login");
    let d = tern.wait_log(&[&id, "status=deferred"], 1, T);
    assert_eq!(field(&d[0], "dsn"), Some("4.7.0"), "{}", d[0]);
    assert!(
        d[0].contains(&format!(
            "status=deferred (host 127.0.0.1[127.0.0.1] said: 530 5.7.0 <localhost[127.0.0.1]>: \
             Client host rejected: Authentication required \
             (in reply to MAIL FROM command); tern sent no SASL credentials: \
             smtp_sasl_password_maps has no entry for 127.0.0.1 or {hop})"
        )),
        "{}",
        d[0]
    );
    // Kept: visible in mailq with the reason, never bounced.
    let q = tern.mailq();
    assert!(
        q.contains(&id) && q.contains("530 5.7.0 <localhost[127.0.0.1]>"),
        "{q}"
    );
    assert!(q.contains("smtp_sasl_password_maps"), "{q}");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        tern.log_lines(&["status=bounced"]).is_empty(),
        "{}",
        tern.log()
    );
    assert!(
        tern.log_lines(&["non-delivery notification"]).is_empty(),
        "{}",
        tern.log()
    );
    assert!(tern.mailq().contains(&id));
    assert!(pf.messages().is_empty());

    // SASL off altogether: the hint names the switch.
    let off = Tern::builder().relay_to(port).start();
    let id2 = off.submit("alice@example.net", "bob@example.test", "sasl-off");
    let d2 = off.wait_log(&[&id2, "status=deferred"], 1, T);
    assert!(
        d2[0].contains(&format!(
            "tern sent no SASL credentials: set smtp_sasl_auth_enable = yes and add {hop} to smtp_sasl_password_maps)"
        )),
        "{}",
        d2[0]
    );
    // check-config has nothing to say when SASL is off.
    let quiet = Tern::builder().relay_to(port).check_config();
    assert!(!quiet.stderr.contains("warning"), "{}", quiet.combined());
}

/// `check-config` run as root warns when `mail_owner` cannot read the
/// password map (the daemon re-reads it on SIGHUP after dropping root),
/// and is quiet once the file is `root:<group> 0640`.
#[test]
fn check_config_warns_when_mail_owner_cannot_read_the_password_map() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (chown)");
        return;
    }
    // Outside the builders' directories: it must outlive two check-config runs.
    let dir = TempDir::new("sasl-perm");
    let file = dir.join("sasl_passwd");
    write_config(&file, "[127.0.0.1]:2525 alice:pw\n");
    let spec = format!("texthash:{}", file.display());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with = |b: TernBuilder| {
        b.set("relayhost", "[127.0.0.1]:2525")
            .set("smtp_sasl_auth_enable", "yes")
            .set("smtp_sasl_password_maps", &spec)
            .set("mail_owner", "nobody")
    };
    let out = with(Tern::builder()).check_config();
    assert!(out.success(), "{}", out.combined());
    let group = nobody_group();
    assert!(
        out.stderr.contains(&format!(
            "warning: smtp_sasl_password_maps: {} is not readable by mail_owner = nobody (owner 0:0, mode 0600)",
            file.display()
        )) && out.stderr.contains(&format!(
            "chown root:{group} {f}; chmod 640 {f}",
            f = file.display()
        )),
        "{}",
        out.combined()
    );
    // The advice, followed.
    let gid = nobody_gid();
    std::os::unix::fs::chown(&file, Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = with(Tern::builder()).check_config();
    assert!(out.success(), "{}", out.combined());
    assert!(!out.stderr.contains("not readable"), "{}", out.combined());
}

fn nobody_gid() -> u32 {
    let out = std::process::Command::new("id")
        .args(["-g", "nobody"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn nobody_group() -> String {
    let out = std::process::Command::new("id")
        .args(["-gn", "nobody"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn smarthost(ca: &TestCa) -> Postfix {
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["smtp.example.test"]);
    Postfix::builder()
        .tls(&leaf.chain, &leaf.key)
        .submission_user("alice", "s3cret-pw")
        .submission_requires_tls()
        .start()
}

fn with_wrong_password(port: u16, ca: &TestCa, soft_bounce: &str) -> Tern {
    let b = Tern::builder();
    let hop = format!("[127.0.0.1]:{port}");
    let passwd = b.table("sasl_passwd", &format!("{hop} alice:wrong-pw\n"));
    let policy = b.table(
        "tls_policy",
        &format!("{hop} secure match=smtp.example.test\n"),
    );
    b.relay_to(port)
        .set("smtp_sasl_auth_enable", "yes")
        .set("smtp_sasl_password_maps", &passwd)
        .set("smtp_tls_policy_maps", &policy)
        .set("smtp_tls_CAfile", &ca.cert.display().to_string())
        .set("smtp_sasl_auth_soft_bounce", soft_bounce)
        .start()
}

/// `smtp_sasl_auth_soft_bounce = no`: a 535 to AUTH bounces with the
/// server's 5.7.8, as Postfix does. Everything goes through that relay,
/// so the bounce fails too, then the postmaster's double bounce: that
/// one is held, logged with the first message's queue ID, and listed by
/// `mailq` with `!`. (`yes`, the default, is
/// `delivery_auth::wrong_password_is_deferred_with_the_servers_reply`.)
#[test]
fn soft_bounce_no_bounces_a_rejected_login_and_nothing_is_lost() {
    let ca = TestCa::new();
    let pf = smarthost(&ca);
    let port = pf.submission_port().unwrap();
    let tern = with_wrong_password(port, &ca, "no");
    let id = tern.submit("alice@example.net", "bob@example.test", "bad-auth");
    let b = tern.wait_log(&[&id, "status=bounced"], 1, T);
    assert_eq!(field(&b[0], "dsn"), Some("5.7.8"), "{}", b[0]);
    assert!(
        b[0].contains("SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8"),
        "{}",
        b[0]
    );
    let n = tern.wait_log(&[&id, "sender non-delivery notification: "], 1, T);
    let bounce = n[0].rsplit(' ').next().unwrap().to_string();
    tern.wait_log(&[&bounce, "to=<alice@example.net>", "status=bounced"], 1, T);
    let n2 = tern.wait_log(&[&bounce, "postmaster non-delivery notification: "], 1, T);
    let double = n2[0].rsplit(' ').next().unwrap().to_string();
    tern.wait_log(
        &[
            &double,
            "from=<double-bounce@tern.example.net>",
            "(queue active)",
        ],
        1,
        T,
    );
    tern.wait_log(
        &[
            &double,
            "to=<postmaster@tern.example.net>",
            "status=bounced",
        ],
        1,
        T,
    );
    tern.wait_log(
        &[&format!(
            "warning: {double}: undeliverable postmaster notification held, original queue ID {id}"
        )],
        1,
        T,
    );
    let q = tern.mailq();
    assert!(q.contains(&format!("{double}!")), "{q}");
    assert!(q.contains("postmaster@tern.example.net"), "{q}");
    assert!(q.contains("535 5.7.8"), "{q}");
    assert!(q.contains("-- ") && q.contains(" in 1 Request."), "{q}");
    // Held is held: later queue runs neither retry nor remove it.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        tern.log_lines(&[&double, "to=<postmaster@tern.example.net>"])
            .len(),
        1,
        "{}",
        tern.log()
    );
    assert!(tern.log_lines(&[&double, "removed"]).is_empty());
    assert!(tern.mailq().contains(&format!("{double}!")));
    assert!(pf.messages().is_empty());
}

/// Postfix knowing `users` (full addresses) in example.test; anything
/// else is `550 5.1.1 ... User unknown in virtual mailbox table`.
fn with_users(b: PostfixBuilder, dir: &TempDir, users: &[&str]) -> PostfixBuilder {
    let file = dir.join("users");
    let text: String = users.iter().map(|u| format!("{u} inbox/\n")).collect();
    write_config(&file, &text);
    b.main_cf(
        "virtual_mailbox_maps",
        &format!("texthash:{}", file.display()),
    )
}

/// ghost -> ghost: the message bounces, its bounce to ghost bounces too,
/// and the postmaster gets Postfix's double bounce (from
/// `double-bounce@$myorigin`, `Postmaster Copy: Undelivered Mail`, the
/// reason and the bounce's headers).
#[test]
fn undeliverable_bounce_goes_to_the_postmaster() {
    let dir = TempDir::new("users");
    let pf = with_users(
        Postfix::builder(),
        &dir,
        &["alice@example.test", "postmaster@example.test"],
    )
    .start();
    let tern = Tern::builder()
        .relay_to(pf.smtp_port())
        .set("myorigin", "example.test")
        .start();
    let id = tern.submit("ghost@example.test", "ghost@example.test", "from-ghost");
    tern.wait_log(&[&id, "status=bounced"], 1, T);
    let n = tern.wait_log(&[&id, "sender non-delivery notification: "], 1, T);
    let bounce = n[0].rsplit(' ').next().unwrap().to_string();
    tern.wait_log(
        &[&bounce, "to=<ghost@example.test>", "status=bounced"],
        1,
        T,
    );
    let n2 = tern.wait_log(&[&bounce, "postmaster non-delivery notification: "], 1, T);
    let double = n2[0].rsplit(' ').next().unwrap().to_string();
    tern.wait_log(
        &[&double, "to=<postmaster@example.test>", "status=sent"],
        1,
        T,
    );
    let msgs = pf.wait_for_message(1, T);
    let m = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert!(
        m.contains("Return-Path: <double-bounce@example.test>"),
        "{m}"
    );
    assert!(
        m.contains("Subject: Postmaster Copy: Undelivered Mail"),
        "{m}"
    );
    assert!(m.contains("To: postmaster@example.test"), "{m}");
    assert!(m.contains(&format!("X-Postfix-Queue-ID: {bounce}")), "{m}");
    assert!(
        m.contains("Final-Recipient: rfc822; ghost@example.test"),
        "{m}"
    );
    assert!(m.contains("Status: 5.1.1"), "{m}");
    // The bounce's headers, not its body (which holds the original).
    assert!(m.contains("Content-Type: text/rfc822-headers"), "{m}");
    assert!(
        m.contains("Subject: Undelivered Mail Returned to Sender"),
        "{m}"
    );
    assert!(!m.contains("Subject: from-ghost"), "{m}");
    tern.wait_queue_empty(T);
}

/// Nobody takes the postmaster's mail either: each double bounce is held
/// and listed; with `undeliverable_bounce_hold_limit = 1` the second one
/// pushes the first out, with a log line naming both queue IDs.
#[test]
fn undeliverable_double_bounces_are_held_up_to_the_limit() {
    let dir = TempDir::new("users");
    let pf = with_users(Postfix::builder(), &dir, &["alice@example.test"]).start();
    let tern = Tern::builder()
        .relay_to(pf.smtp_port())
        .set("myorigin", "example.test")
        .set("undeliverable_bounce_hold_limit", "1")
        .start();
    let held = |n: usize, subject: &str| -> (String, String) {
        let id = tern.submit("ghost@example.test", "ghost@example.test", subject);
        let lines = tern.wait_log(&["undeliverable postmaster notification held"], n, T);
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("original queue ID {id}")))
            .unwrap_or_else(|| panic!("no held line for {id}:\n{}", tern.log()))
            .clone();
        let double = line
            .split("warning: ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .unwrap()
            .to_string();
        (id, double)
    };
    let (id1, d1) = held(1, "first");
    let l = tern.log_lines(&[&d1, "to=<postmaster@example.test>", "status=bounced"]);
    assert_eq!(l.len(), 1, "{}", tern.log());
    assert!(
        l[0].contains("550 5.1.1 <postmaster@example.test>"),
        "{}",
        l[0]
    );
    let q = tern.mailq();
    assert!(
        q.contains(&format!("{d1}!")) && q.contains("User unknown"),
        "{q}"
    );
    assert!(q.contains("double-bounce@example.test"), "{q}");
    assert!(q.contains("postmaster@example.test"), "{q}");

    let (_id2, d2) = held(2, "second");
    tern.wait_log(
        &[&format!(
            "warning: {d1}: undeliverable postmaster notification discarded, original queue ID {id1}: \
             undeliverable_bounce_hold_limit = 1 reached"
        )],
        1,
        T,
    );
    let q = tern.mailq();
    assert!(q.contains(&format!("{d2}!")), "{q}");
    assert!(!q.contains(&d1), "{q}");
    assert!(q.contains(" in 1 Request."), "{q}");
    assert!(pf.messages().is_empty());
}
