//! Issue 2, parameters that must do what tern.conf says: `mail_name` names
//! the program in the greeting (`smtpd_banner = $myhostname ESMTP
//! $mail_name`) and in both `Received:` layouts, as Postfix's
//! `var_mail_name`; `mta_sts_enable` and `smtp_tlsrpt_enable`, once
//! reserved (a `warning:` when set), are implemented and load quietly.

mod common;
mod ground_support;

use common::tools::{Socat, Swaks};
use ground_support::{message, Tern, WAIT};
use std::time::{Duration, Instant};

/// The queue file of `id`, wherever the queue manager has moved it
/// (active/ or deferred/); bounded wait.
fn queue_file(t: &Tern, id: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        for d in ["active", "deferred", "hold"] {
            if let Ok(b) = std::fs::read(t.spool().join(d).join(id)) {
                return String::from_utf8_lossy(&b).into_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "queue file {id} not found; queued: {:?}",
            t.queued_ids()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mail_name_is_in_the_banner_and_both_received_headers() {
    // Port 1 refuses: the messages are deferred and stay in the queue.
    let mut t = Tern::new("mail_name = HomeMail\nrelayhost = [127.0.0.1]:1\n");
    t.start();
    let mut s = Socat::tcp(t.port);
    let greet = s.read_reply(WAIT);
    assert_eq!(greet.trim_end(), "220 tern.test ESMTP HomeMail", "{greet}");
    s.send_line("QUIT");

    let r = Swaks::new(t.port).to("u@example.test").run();
    assert!(r.ok(), "{}", r.transcript);
    let id = r.queue_id().expect("queued as");
    let q = queue_file(&t, &id);
    assert!(
        q.contains(&format!(
            "\r\n\tby tern.test (HomeMail) with ESMTP id {id}\r\n"
        )),
        "{q}"
    );
    assert!(!q.contains("(tern)"), "{q}");

    // Root's sendmail writes the queue file itself.
    let before = t.queued_ids();
    t.sendmail(&["-t"], &message("u@example.test", "local"));
    let ids = t.queued_ids();
    let new: Vec<&String> = ids.iter().filter(|i| !before.contains(i)).collect();
    assert_eq!(new.len(), 1, "{ids:?}");
    let q = queue_file(&t, new[0]);
    assert!(
        q.contains(&format!(
            "Received: by tern.test (HomeMail, from userid 0)\r\n\tid {}; ",
            new[0]
        )),
        "{q}"
    );
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}

#[test]
fn implemented_parameters_load_without_a_warning() {
    // mta_sts_enable and smtp_tlsrpt_enable were reserved (a warning when
    // set to yes); both are implemented now, so neither warns.
    let mut t = Tern::new("mta_sts_enable = yes\nsmtp_tlsrpt_enable = yes\n");
    let out = t.run(&["check-config"], None);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(out.stdout.contains(": ok"), "{out:?}");
    assert!(
        !out.stderr.contains("mta_sts_enable"),
        "MTA-STS is implemented: {out:?}"
    );
    // TLSRPT is implemented too (issue 12): no reserved-parameter warning.
    assert!(!out.stderr.contains("has no effect"), "{out:?}");
    t.start();
    let log = t.wait_log("daemon started", 1, WAIT);
    assert!(!log.contains("has no effect"), "{log}");
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));

    // Not asking for the features, or left at the defaults: no warning.
    for extra in ["mta_sts_enable = no\nsmtp_tlsrpt_enable = no\n", ""] {
        t.write_config(extra);
        let out = t.run(&["check-config"], None);
        assert_eq!(out.status, Some(0), "{out:?}");
        assert!(!out.stderr.contains("warning:"), "{extra:?}: {out:?}");
    }
}
