//! Issue 2, flash protection: `queue_minfree` is enforced by the daemon
//! (`452 4.3.1 Insufficient system storage` at MAIL FROM, Postfix's
//! answer, logged as Postfix's `NOQUEUE: reject: MAIL from ...` line) and
//! by `tern sendmail` (exit 75, nothing queued). A limit of
//! 10^15 bytes is more than any test machine has free. Also `sendmail -bi`
//! runs newaliases, as Postfix's does.

mod common;
mod ground_support;

use common::tools::{Socat, Swaks};
use ground_support::{message, Tern, WAIT};

const HUGE: &str = "queue_minfree = 1000000000000000\n";

#[test]
fn daemon_answers_452_at_mail_from_when_the_spool_is_short_of_space() {
    let mut t = Tern::new(HUGE);
    t.start();
    // Said once at start-up, before the first client finds out.
    let log = t.wait_log("every message will be refused with 452", 1, WAIT);
    assert!(
        log.contains(&format!(
            "warning: queue_directory {}: only ",
            t.spool().display()
        )) && log.contains(
            "below the 1000000000000000 bytes needed (the larger of queue_minfree = 1000000000000000 and 1.5 x message_size_limit = 10240000)"
        ),
        "{log}"
    );
    let mut s = Socat::tcp(t.port);
    let greet = s.read_reply(WAIT);
    assert!(greet.starts_with("220 "), "{greet}");
    s.send_line("EHLO client.test");
    assert!(s.read_reply(WAIT).starts_with("250"));
    s.send_line("MAIL FROM:<a@tern.test>");
    let r = s.read_reply(WAIT);
    assert_eq!(r.trim_end(), "452 4.3.1 Insufficient system storage", "{r}");
    // No transaction was started.
    s.send_line("RCPT TO:<b@example.test>");
    let r = s.read_reply(WAIT);
    assert!(r.starts_with("503 "), "{r}");
    s.send_line("QUIT");
    // Postfix's smtpd line, word for word (smtpd_check_queue()).
    let log = t.wait_log("warning: not enough free space in mail queue: ", 1, WAIT);
    let line = log
        .lines()
        .find(|l| l.contains("warning: not enough free space in mail queue: "))
        .unwrap_or_default();
    let tail = line
        .split_once("warning: not enough free space in mail queue: ")
        .map_or("", |(_, t)| t);
    let (free, rest) = tail.split_once(' ').unwrap_or_default();
    assert!(free.parse::<u64>().is_ok(), "{line}");
    assert_eq!(rest, "bytes < 1.5*message size limit", "{line}");
    // The reject is logged as Postfix logs it (smtpd_check.c log_whatsup),
    // for pflogsumm and fail2ban.
    let noqueue = "]: NOQUEUE: reject: MAIL from localhost[127.0.0.1]: 452 4.3.1 Insufficient system storage; from=<a@tern.test> proto=ESMTP helo=<client.test>";
    let log = t.wait_log(noqueue, 1, WAIT);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(noqueue)).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains(" tern/smtpd["), "{log}");
    assert!(lines[0].ends_with("helo=<client.test>"), "{log}");
    assert!(t.queued_ids().is_empty());

    // swaks sees a temporary failure, and nothing is queued.
    let r = Swaks::new(t.port).run();
    assert!(!r.ok(), "{}", r.transcript);
    assert!(
        r.replies()
            .iter()
            .any(|l| l.starts_with("452 4.3.1 Insufficient system storage")),
        "{}",
        r.transcript
    );
    assert!(t.queued_ids().is_empty());

    // Lowered by a reload: mail flows again.
    t.write_config("queue_minfree = 0\n");
    t.signal(libc::SIGHUP);
    t.wait_log("reload -- configuration", 1, WAIT);
    assert_eq!(
        t.log()
            .matches("every message will be refused with 452")
            .count(),
        1,
        "room again: no new warning after the reload"
    );
    let r = Swaks::new(t.port).run();
    assert!(r.ok(), "{}", r.transcript);
    assert_eq!(t.queued_ids().len(), 1);
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}

#[test]
fn sendmail_exits_75_and_queues_nothing_when_the_spool_is_short_of_space() {
    let t = Tern::new(HUGE);
    let out = t.run(
        &["sendmail", "-t"],
        Some(&message("root@example.test", "full")),
    );
    assert_eq!(out.status, Some(75), "EX_TEMPFAIL: {out:?}");
    assert!(
        out.stderr
            .contains("sendmail: fatal: not enough free space in mail queue: ")
            && out
                .stderr
                .contains(" bytes < queue_minfree 1000000000000000 bytes: message not queued"),
        "{out:?}"
    );
    assert!(t.queued_ids().is_empty(), "{:?}", t.queued_ids());
    let incoming = t.spool().join("incoming");
    let left = std::fs::read_dir(&incoming).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no partial file in {}", incoming.display());

    // With room, the same message is queued.
    t.write_config("queue_minfree = 4096\n");
    t.sendmail(&["-t"], &message("root@example.test", "room"));
    assert_eq!(t.queued_ids().len(), 1);
}

#[test]
fn sendmail_bi_runs_newaliases() {
    let t = Tern::new("");
    let aliases = t.dir.join("aliases");
    common::tempdir::write(&aliases, "postmaster: root\nroot: admin@example.test\n");
    t.write_config(&format!("alias_maps = texthash:{}\n", aliases.display()));
    let out = t.run_as("sendmail", &["-bi"], None);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("newaliases: ") && out.stderr.contains("2 aliases, ok"),
        "{out:?}"
    );

    common::tempdir::write(&aliases, "postmaster root\n");
    let out = t.run_as("sendmail", &["-bi"], None);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("newaliases: {}:1: ", aliases.display())),
        "{out:?}"
    );
}
