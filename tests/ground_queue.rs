//! Issue 2, end to end with the real binary: `sendmail -t` queues a message
//! that survives `kill -9` and restarts, `mailq` shows it with its last
//! error, and it is delivered exactly once to a smarthost (smtp-sink) once
//! one is reachable; with and without a running daemon; through a
//! `sendmail` symlink with `-bp` and `-q`.

mod common;
mod ground_support;

use common::ports::free_port;
use common::sink::SmtpSink;
use ground_support::{mailq_entries, message, Tern, WAIT};
use std::time::{Duration, Instant};

fn relay(port: u16) -> String {
    format!("relayhost = [127.0.0.1]:{port}\n")
}

/// No retry on its own for an hour: only a flush (or a wake-up) delivers.
const SLOW_RETRY: &str =
    "minimal_backoff_time = 1h\nmaximal_backoff_time = 2h\nqueue_run_delay = 1h\n";

#[test]
fn sendmail_message_survives_kill9_and_restart_then_is_delivered_once() {
    let t0 = Instant::now();
    let dead = free_port(); // nothing listens here
    let mut t = Tern::new(&format!("{}{SLOW_RETRY}", relay(dead)));

    // 1. Queued with no daemon running.
    let out = t.sendmail(&["-t", "-i"], &message("ops@example.test", "kill9-test"));
    assert!(
        out.stdout.is_empty(),
        "sendmail prints nothing on success: {out:?}"
    );
    let ids = t.queued_ids();
    assert_eq!(ids.len(), 1, "one message file in the spool: {ids:?}");
    let id = ids[0].clone();
    let q = mailq_entries(&t.mailq());
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].id.trim_end_matches(['*', '!']), id);
    assert!(q[0].size > 100, "size: {q:?}");
    assert!(q[0].first_line.contains("@tern.test"), "sender: {q:?}");
    assert_eq!(q[0].recipients, ["ops@example.test"]);
    assert!(q[0].error.is_none(), "no attempt yet: {q:?}");

    // 2. The daemon tries, fails (nothing on the relay port), records why.
    t.start();
    t.wait_log(&format!("{id}: to=<ops@example.test>"), 1, WAIT);
    let log = t.wait_log("status=deferred", 1, WAIT);
    assert!(log.contains("dsn=4."), "{log}");
    let q = mailq_entries(&t.mailq());
    assert_eq!(q.len(), 1, "{q:?}");
    let err = q[0].error.clone().unwrap_or_default();
    assert!(
        err.contains(&format!("127.0.0.1[127.0.0.1]:{dead}")) && err.contains("refused"),
        "mailq shows the last error: {q:?}"
    );

    // 3. kill -9 mid-run: nothing is cleaned up, nothing is lost.
    t.kill9();
    let q = mailq_entries(&t.mailq());
    assert_eq!(q.len(), 1, "after kill -9: {q:?}");
    assert_eq!(q[0].id.trim_end_matches(['*', '!']), id);
    assert_eq!(q[0].error.as_deref(), Some(err.as_str()), "error kept");

    // 4. Restart with a reachable smarthost. The message is deferred for an
    // hour; `sendmail -q` through a symlink (argv[0]) retries it now.
    let sink = SmtpSink::start();
    t.write_config(&format!("{}{SLOW_RETRY}", relay(sink.port())));
    t.start();
    let bp = t.run_as("sendmail", &["-bp"], None);
    assert!(bp.success(), "{bp:?}");
    assert!(
        bp.stdout.contains(&id),
        "sendmail -bp lists it: {}",
        bp.stdout
    );
    assert_eq!(sink.count(), 0, "not retried before its time");
    let q_out = t.run_as("sendmail", &["-q"], None);
    assert!(q_out.success(), "sendmail -q: {q_out:?}");
    sink.wait_for_count(1, WAIT);
    let log = t.wait_log(&format!("{id}: removed"), 1, WAIT);
    assert!(
        log.contains(&format!(
            "{id}: to=<ops@example.test>, relay=127.0.0.1[127.0.0.1]:{}",
            sink.port()
        )),
        "{log}"
    );
    let bp = t.run_as("sendmail", &["-bp"], None);
    assert!(bp.stdout.contains("Mail queue is empty"), "{}", bp.stdout);
    let mq = t.run_as("mailq", &[], None);
    assert!(
        mq.stdout.contains("Mail queue is empty"),
        "mailq symlink: {mq:?}"
    );
    assert!(t.queued_ids().is_empty(), "{:?}", t.queued_ids());

    // 5. Exactly once: another kill -9, restart and flush deliver nothing.
    t.kill9();
    t.start();
    let fl = t.run(&["flush"], None);
    assert!(fl.success(), "tern flush: {fl:?}");
    t.wait_log("flush requested", 2, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.count(), 1, "delivered exactly once:\n{}", t.log());
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    let m = String::from_utf8_lossy(&msgs[0]);
    assert!(m.contains("Subject: kill9-test"), "{m}");
    assert!(
        m.contains("\nDate: ") && m.contains("\nMessage-Id: <"),
        "added headers: {m}"
    );
    assert_eq!(
        m.matches(&format!("id {id};")).count(),
        1,
        "one Received by tern: {m}"
    );
    let st = t.stop_with(libc::SIGTERM);
    assert_eq!(st.code(), Some(0), "{st}");
    eprintln!("kill9/restart/deliver-once: {:?}", t0.elapsed());
}

#[test]
fn without_daemon_mail_waits_and_goes_out_when_it_starts() {
    let t0 = Instant::now();
    let sink = SmtpSink::start();
    let mut t = Tern::new(&relay(sink.port()));
    t.sendmail(&["-t"], &message("a@example.test", "waiting-1"));
    // Through the symlink, recipients as arguments, -f and -F.
    let body = b"Subject: waiting-2\n\nno From header here\n";
    let out = t.run_as(
        "sendmail",
        &[
            "-oi",
            "-f",
            "backup@tern.test",
            "-F",
            "Backup Job",
            "b@example.test",
        ],
        Some(body),
    );
    assert!(out.success(), "{out:?}");
    let q = mailq_entries(&t.mailq());
    assert_eq!(q.len(), 2, "both wait in the queue: {q:?}");
    assert_eq!(sink.count(), 0);

    let started = Instant::now();
    t.start();
    sink.wait_for_count(2, WAIT);
    let took = started.elapsed();
    t.wait_log("removed", 2, WAIT);
    assert!(t.queued_ids().is_empty());
    let all: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let second = all
        .iter()
        .find(|m| m.contains("Subject: waiting-2"))
        .expect("second message delivered");
    assert!(
        second.contains("X-Mail-Args: <backup@tern.test>"),
        "{second}"
    );
    assert!(
        second.contains("From: Backup Job <backup@tern.test>"),
        "{second}"
    );
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
    eprintln!(
        "queued without daemon: delivered {took:?} after start; test {:?}",
        t0.elapsed()
    );
}

#[test]
fn with_daemon_running_sendmail_wakes_it() {
    let t0 = Instant::now();
    let sink = SmtpSink::start();
    // Queue scans once an hour: only the wake-up socket can explain a
    // prompt delivery.
    let mut t = Tern::new(&format!("{}queue_run_delay = 1h\n", relay(sink.port())));
    t.start();
    let sent = Instant::now();
    t.sendmail(&["-t"], &message("c@example.test", "prompt"));
    sink.wait_for_count(1, WAIT);
    let took = sent.elapsed();
    t.wait_log("removed", 1, WAIT);
    assert!(
        took < Duration::from_secs(15),
        "delivery took {took:?}: the wake-up did not work"
    );
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
    eprintln!(
        "sendmail -> smtp-sink with the daemon running: {took:?}; test {:?}",
        t0.elapsed()
    );
}

/// True while a TCP connection from 127.0.0.1 to 127.0.0.1:`port` is
/// established (read from /proc, so checking makes no connection).
fn connected_to(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let want = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[2] == want && f[3] == "01"
    })
}

#[test]
fn kill9_in_the_middle_of_a_delivery_loses_nothing() {
    let t0 = Instant::now();
    // smtp-sink waits 5 s before answering DATA: the kill lands mid-session,
    // before the message was transferred.
    let sink = SmtpSink::start_with(&["-w", "5"]);
    let mut t = Tern::new(&relay(sink.port()));
    t.start();
    t.sendmail(&["-t"], &message("d@example.test", "mid-delivery"));
    let deadline = Instant::now() + WAIT;
    while !connected_to(sink.port()) {
        assert!(
            Instant::now() < deadline,
            "tern never connected to the sink:\n{}",
            t.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    t.kill9();
    assert_eq!(sink.count(), 0, "killed before the end of DATA");
    assert_eq!(mailq_entries(&t.mailq()).len(), 1, "still queued");

    // The restarted daemon retries at once (the attempt left no record) and
    // the message arrives once.
    t.start();
    sink.wait_for_count(1, WAIT);
    t.wait_log("removed", 1, WAIT);
    assert!(t.queued_ids().is_empty(), "{:?}", t.queued_ids());
    assert_eq!(sink.count(), 1);
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
    eprintln!(
        "kill -9 mid-delivery, restart, delivered once: {:?}",
        t0.elapsed()
    );
}

#[test]
fn a_queue_file_the_daemon_cannot_open_does_not_stop_the_others() {
    let sink = SmtpSink::start();
    let mut t = Tern::new(&relay(sink.port()));
    t.start();
    // A file with a queue-ID name the daemon cannot open, like a root-owned
    // 0600 file an older sendmail run by root left. Mode 000: neither the
    // daemon as nobody (tests run as root) nor as the same non-root user
    // (tests run by a developer) can open it.
    let stray = t.spool().join("active").join("ABCDE1234567");
    std::fs::write(&stray, b"not for nobody").unwrap();
    std::fs::set_permissions(&stray, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    t.sendmail(&["-t"], &message("e@example.test", "next-to-a-stray"));
    sink.wait_for_count(1, WAIT);
    let log = t.wait_log("removed", 1, WAIT);
    assert!(
        log.contains("ABCDE1234567") && log.contains("skipping it"),
        "{log}"
    );
    assert!(stray.exists(), "never deleted");
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}
