//! Issue 14 items 2-5, as an administrator uses them: the locked pid file
//! and the refusal of a second daemon; `tern stop`, `reload`, `status`;
//! `tern queue delete|hold|release|requeue` with the daemon running and
//! not (a held or deleted message is never delivered afterwards); `--help`
//! and unknown options for every command; logging that cannot vanish
//! (detached start without a syslog socket, `syslog_name = postfix`, RFC
//! 3164 over UDP, no repeated warnings on reload).

mod common;
mod ground_support;

use common::ports::{free_port, wait_listening};
use common::process::run;
use common::sink::SmtpSink;
use ground_support::{Tern, CMD_TIMEOUT, TERN, WAIT};
use std::process::Command;
use std::time::{Duration, Instant};

/// A daemon started with `tern run` (detached): stopped with `tern stop`
/// when the test ends, whatever happened.
struct Detached<'a> {
    t: &'a Tern,
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        let _ = self.t.run(&["stop", "-t", "20"], None);
    }
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// The queue IDs that appeared in `after` but not in `before`.
fn new_id(before: &[String], after: &[String]) -> String {
    let fresh: Vec<&String> = after.iter().filter(|i| !before.contains(i)).collect();
    assert_eq!(
        fresh.len(),
        1,
        "expected one new queue ID: {before:?} -> {after:?}"
    );
    fresh[0].clone()
}

/// Queues a message to `rcpt` with `tern sendmail`; returns its ID.
fn queue(t: &Tern, rcpt: &str, subject: &str) -> String {
    let before = t.queued_ids();
    let msg = format!("Subject: {subject}\n\nbody of {subject}\n");
    t.sendmail(&[rcpt], msg.as_bytes());
    new_id(&before, &t.queued_ids())
}

fn in_dir(t: &Tern, dir: &str, id: &str) -> bool {
    t.spool().join(dir).join(id).exists()
}

#[test]
fn pid_file_locks_out_a_second_daemon_and_stop_waits_for_exit() {
    let mut t = Tern::new("");
    // Not running yet: status 3, stop is a no-op success (LSB), reload 7.
    let st = t.run(&["status"], None);
    assert_eq!(st.status, Some(3), "{st:?}");
    assert!(st.stdout.contains("not running"), "{st:?}");
    assert_eq!(t.run(&["stop"], None).status, Some(0));
    assert_eq!(t.run(&["reload"], None).status, Some(7));

    t.start();
    let pid = t.pid();
    let text = std::fs::read_to_string(t.spool().join("pid/master.pid")).unwrap();
    // Postfix's format: right-aligned in 4 * sizeof(unsigned long), newline.
    let width = 4 * std::mem::size_of::<libc::c_ulong>();
    assert_eq!(text, format!("{pid:>width$}\n"));

    // A second daemon, foreground or detached, refuses with a clear message.
    for args in [&["run", "-f"][..], &["run"][..]] {
        let out = t.run(args, None);
        assert_eq!(out.status, Some(1), "{args:?}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("the mail system is already running (pid {pid})")),
            "{out:?}"
        );
    }
    assert!(t.running(), "the first daemon must keep running");

    let out = t.run(&["stop"], None);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("stopping the mail system (pid {pid})")),
        "{out:?}"
    );
    assert!(out.stderr.contains("tern: stopped"), "{out:?}");
    // `stop` returned only once the daemon was gone: it exits at once.
    let st = t.wait_exit(Duration::from_secs(5));
    assert_eq!(st.code(), Some(0), "{st}");
    assert!(t.log().contains("terminating on signal"));
    assert_eq!(t.run(&["status"], None).status, Some(3));
    // The lock went with the daemon: a new one starts.
    t.start();
    assert_ne!(t.pid(), pid);
    assert_eq!(t.run(&["status"], None).status, Some(0));
}

#[test]
fn reload_rereads_the_configuration_without_repeating_warnings() {
    let mut t = Tern::new("biff = no\n");
    t.start();
    let biff = "warning: biff = no: has no effect on tern";
    let tls = "STARTTLS is not offered";
    let log = t.log();
    assert_eq!(count(&log, biff), 1, "{log}");
    assert_eq!(count(&log, tls), 1, "{log}");

    let out = t.run(&["reload"], None);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("refreshing the mail system (pid {})", t.pid())),
        "{out:?}"
    );
    t.wait_log("reload -- configuration", 1, WAIT);
    let out = t.run(&["reload"], None);
    assert_eq!(out.status, Some(0), "{out:?}");
    let log = t.wait_log("reload -- configuration", 2, WAIT);
    // The same settings twice more: their warnings were said once.
    assert_eq!(count(&log, biff), 1, "{log}");
    assert_eq!(count(&log, tls), 1, "{log}");

    // A new warning is logged by the reload that brings it, once.
    t.write_config("biff = no\nallow_percent_hack = no\n");
    assert_eq!(t.run(&["reload"], None).status, Some(0));
    let log = t.wait_log("reload -- configuration", 3, WAIT);
    assert_eq!(count(&log, "warning: allow_percent_hack = no"), 1, "{log}");
    assert_eq!(count(&log, biff), 1, "{log}");
    // A failed reload is said every time (the file no longer parses, so
    // `tern reload` cannot find the daemon: SIGHUP as an init system sends).
    std::fs::write(&t.conf, "bogus line without equals\n").unwrap();
    let out = t.run(&["reload"], None);
    assert_eq!(out.status, Some(1), "{out:?}");
    t.signal(libc::SIGHUP);
    let first = count(&t.wait_log("reload failed", 1, WAIT), "reload failed");
    t.signal(libc::SIGHUP);
    t.wait_log("reload failed", 2 * first, WAIT);
    assert!(t.running());
}

#[test]
fn status_shows_pid_listeners_queue_reasons_tls_and_memory() {
    let sink_port = free_port();
    let mut t = Tern::new(&format!(
        "relayhost = [127.0.0.1]:{sink_port}\nminimal_backoff_time = 3000s\nmaximal_backoff_time = 4000s\n"
    ));
    t.start();
    let id = queue(&t, "far@example.org", "deferred");
    t.wait_log(&format!("{id}: to=<far@example.org>"), 1, WAIT);
    let out = t.run(&["status"], None);
    assert_eq!(out.status, Some(0), "{out:?}");
    let s = &out.stdout;
    assert!(
        s.contains(&format!("the mail system is running: pid {}, up ", t.pid())),
        "{s}"
    );
    assert!(
        s.contains(&format!("listener: 127.0.0.1:{} (smtp)", t.port)),
        "{s}"
    );
    assert!(
        s.contains("queue: 1 messages (0 active, 1 deferred, 0 on hold)"),
        "{s}"
    );
    assert!(s.contains("deferred recipients: 1"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.trim_start().starts_with("1  connect to 127.0.0.1")
                && l.contains("Connection refused")),
        "{s}"
    );
    assert!(
        s.contains(
            "outbound TLS, last 24 h: Verified 0, Trusted 0, Untrusted 0, failed 0, plaintext 0"
        ),
        "{s}"
    );
    let reserved = tern::tls::BufferPool::new(32).budget_bytes() / 1024;
    assert!(
        s.contains(&format!("memory: {reserved} KiB of fixed buffers reserved, 0 KiB in use (0 of 32 connections); resident ")),
        "{s}"
    );

    // Delivered in plaintext to a sink: counted in the last 24 h.
    let sink = SmtpSink::start_on(sink_port, &[]);
    assert_eq!(t.run(&["flush"], None).status, Some(0));
    sink.wait_for_count(1, WAIT);
    t.wait_log(&format!("{id}: removed"), 1, WAIT);
    let s = t.run(&["status"], None).stdout;
    assert!(s.contains("queue: 0 messages"), "{s}");
    assert!(s.contains("deferred recipients: 0"), "{s}");
    assert!(s.contains("Untrusted 0, failed 0, plaintext 1"), "{s}");
}

#[test]
fn queue_control_with_the_daemon_running() {
    let sink_port = free_port();
    let mut t = Tern::new(&format!(
        "relayhost = [127.0.0.1]:{sink_port}\nminimal_backoff_time = 3000s\nmaximal_backoff_time = 4000s\n"
    ));
    t.start();
    let a = queue(&t, "a@example.org", "held");
    let b = queue(&t, "b@example.org", "plain");
    let c = queue(&t, "c@example.org", "deleted");
    let d = queue(&t, "d@example.org", "requeued");
    for (id, r) in [(&a, "a"), (&b, "b"), (&c, "c"), (&d, "d")] {
        t.wait_log(&format!("{id}: to=<{r}@example.org>"), 1, WAIT);
    }

    let out = t.run(&["queue", "hold", &a], None);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(out.stderr.contains("Placed on hold: 1 message"), "{out:?}");
    t.wait_log("tern/postsuper[", 2, WAIT);
    let log = t.log();
    assert!(log.contains(&format!("]: {a}: placed on hold")), "{log}");
    assert!(in_dir(&t, "hold", &a) && !in_dir(&t, "deferred", &a));
    let mailq = t.mailq();
    assert!(mailq.contains(&format!("{a}!")), "{mailq}");
    // Holding it again changes nothing and says nothing.
    let out = t.run(&["queue", "hold", &a], None);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(!out.stderr.contains("Placed on hold"), "{out:?}");

    let out = t.run(&["queue", "delete", &c], None);
    assert!(out.stderr.contains("Deleted: 1 message"), "{out:?}");
    assert!(t.log().contains(&format!("]: {c}: removed")));
    assert!(!t.queued_ids().contains(&c));

    // Requeue: retried now, not after the 3000 s backoff.
    let out = t.run(&["queue", "requeue", &d], None);
    assert!(out.stderr.contains("Requeued: 1 message"), "{out:?}");
    assert!(t.log().contains(&format!("]: {d}: requeued")));
    t.wait_log(&format!("{d}: to=<d@example.org>"), 2, WAIT);

    // The relay comes up: a flush delivers b and d, never a or c.
    let sink = SmtpSink::start_on(sink_port, &[]);
    assert_eq!(t.run(&["flush"], None).status, Some(0));
    sink.wait_for_count(2, WAIT);
    t.wait_log(&format!("{b}: removed"), 1, WAIT);
    t.wait_log(&format!("{d}: removed"), 1, WAIT);
    // One more flush and queue run: the held message still stays.
    assert_eq!(t.run(&["flush"], None).status, Some(0));
    t.wait_log("flush requested", 2, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let log = t.log();
    assert_eq!(count(&log, &format!("{a}: to=")), 1, "{log}");
    assert_eq!(count(&log, &format!("{c}: to=")), 1, "{log}");
    assert!(in_dir(&t, "hold", &a));
    assert_eq!(sink.count(), 2);
    let bodies: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(bodies
        .iter()
        .all(|m| !m.contains("body of held") && !m.contains("body of deleted")));

    // Released: back to deferred/ with its retry time; a flush delivers it.
    let out = t.run(&["queue", "release", "ALL"], None);
    assert!(
        out.stderr.contains("Released from hold: 1 message"),
        "{out:?}"
    );
    assert!(t.log().contains(&format!("]: {a}: released from hold")));
    assert!(in_dir(&t, "deferred", &a));
    assert_eq!(t.run(&["flush"], None).status, Some(0));
    sink.wait_for_count(3, WAIT);
    t.wait_log(&format!("{a}: removed"), 1, WAIT);
    assert_eq!(t.mailq().trim(), "Mail queue is empty");
}

#[test]
fn queue_control_with_the_daemon_stopped() {
    let sink_port = free_port();
    let mut t = Tern::new(&format!("relayhost = [127.0.0.1]:{sink_port}\n"));
    // Never started: the queue is changed on the files alone.
    let held = queue(&t, "held@example.org", "held");
    let gone = queue(&t, "gone@example.org", "deleted");
    let again = queue(&t, "again@example.org", "requeued");
    let freed = queue(&t, "freed@example.org", "released");
    assert!(t
        .run(&["queue", "hold", &held, &again, &freed], None)
        .stderr
        .contains("Placed on hold: 3 messages"));
    // Released: back into deferred/, delivered when the daemon starts.
    let out = t.run(&["queue", "release", &freed], None);
    assert!(
        out.stderr.contains("Released from hold: 1 message"),
        "{out:?}"
    );
    assert!(in_dir(&t, "deferred", &freed) && !in_dir(&t, "hold", &freed));
    // IDs from stdin, as postsuper's "-".
    let out = t.run(
        &["queue", "delete", "-"],
        Some(format!("{gone}\n").as_bytes()),
    );
    assert!(out.stderr.contains("Deleted: 1 message"), "{out:?}");
    // Requeue takes a held message back into active/.
    let out = t.run(&["queue", "requeue", &again], None);
    assert!(out.stderr.contains("Requeued: 1 message"), "{out:?}");
    assert!(in_dir(&t, "active", &again) && in_dir(&t, "hold", &held));
    assert!(!t.queued_ids().contains(&gone));
    let bad = t.run(&["queue", "delete", "not-an-id"], None);
    assert!(
        bad.stderr.contains("invalid mail queue id: not-an-id"),
        "{bad:?}"
    );
    let log = t.log();
    for line in [
        "tern/postsuper[".to_string(),
        format!("]: {held}: placed on hold"),
        format!("]: {gone}: removed"),
        format!("]: {again}: requeued"),
        format!("]: {freed}: released from hold"),
        "]: Deleted: 1 message".to_string(),
    ] {
        assert!(log.contains(&line), "{line}\n{log}");
    }

    let sink = SmtpSink::start_on(sink_port, &[]);
    t.start();
    sink.wait_for_count(2, WAIT);
    t.wait_log(&format!("{again}: removed"), 1, WAIT);
    t.wait_log(&format!("{freed}: removed"), 1, WAIT);
    // A marker queued after start is delivered; the held one never is.
    let marker = queue(&t, "marker@example.org", "marker");
    t.wait_log(&format!("{marker}: removed"), 1, WAIT);
    assert_eq!(sink.count(), 3);
    assert!(in_dir(&t, "hold", &held));
    assert_eq!(count(&t.log(), &format!("{held}: to=")), 0);
    assert!(t.mailq().contains(&format!("{held}!")));
}

/// Every command with `--help`: usage on stdout, exit 0, nothing done;
/// with an unknown option: exit 64 and the usage on stderr.
#[test]
fn every_command_answers_help_and_rejects_unknown_options() {
    let t = Tern::new("");
    let commands: &[&[&str]] = &[
        &["run"],
        &["check-config"],
        &["config"],
        &["sendmail"],
        &["mailq"],
        &["flush"],
        &["probe"],
        &["passwd"],
        &["sts"],
        &["tlsrpt"],
        &["newaliases"],
        &["version"],
        &["stop"],
        &["reload"],
        &["status"],
        &["queue"],
    ];
    for cmd in commands {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push("--help");
        let out = t.run(&args, Some(b"Subject: must not be queued\n\nx\n"));
        assert_eq!(out.status, Some(0), "tern {args:?}: {out:?}");
        assert!(out.stdout.contains("usage:"), "tern {args:?}: {out:?}");
        let mut args: Vec<&str> = cmd.to_vec();
        args.push("--no-such-option");
        let out = t.run(&args, Some(b"Subject: must not be queued\n\nx\n"));
        assert_eq!(out.status, Some(64), "tern {args:?}: {out:?}");
        assert!(
            out.stderr.contains("--no-such-option") || out.stderr.contains("invalid option"),
            "tern {args:?}: {out:?}"
        );
    }
    // Through the links, as scripts call them.
    for name in ["sendmail", "mailq", "newaliases"] {
        let out = t.run_as(name, &["--help"], Some(b"x\n"));
        assert_eq!(out.status, Some(0), "{name} --help: {out:?}");
        assert!(out.stdout.contains("usage:"), "{name}: {out:?}");
    }
    // Nothing was done: no daemon, no message, no flush attempt.
    assert!(!wait_listening(t.port, Duration::from_millis(200)));
    assert!(t.queued_ids().is_empty(), "{:?}", t.queued_ids());
    // Operands where none are taken are errors too.
    assert_eq!(t.run(&["mailq", "extra"], None).status, Some(64));
    assert_eq!(t.run(&["queue", "explode", "ALL"], None).status, Some(64));
}

#[test]
fn detached_daemon_without_syslog_says_so_and_logs_to_maillog_file() {
    let t = Tern::new("");
    let missing = t.dir.join("no-such-syslog-socket");
    t.write_config(&format!("syslog_socket = {}\n", missing.display()));
    let out = t.run(&["run"], None);
    let _guard = Detached { t: &t };
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "warning: cannot reach the syslog socket {}",
            missing.display()
        )) && out.stderr.contains(&format!(
            "logging to maillog_file = {} only",
            t.maillog().display()
        )),
        "{out:?}"
    );
    t.wait_log("listening on", 1, WAIT);
    let st = t.run(&["status"], None);
    assert_eq!(st.status, Some(0), "{st:?}");

    // And with no maillog_file: the loss is named.
    let t2 = Tern::new("");
    let conf = std::fs::read_to_string(&t2.conf).unwrap();
    let conf: String = conf
        .lines()
        .filter(|l| !l.starts_with("maillog_file"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + &format!("syslog_socket = {}\n", missing.display());
    std::fs::write(&t2.conf, conf).unwrap();
    let out = t2.run(&["run"], None);
    let _guard2 = Detached { t: &t2 };
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(out.stderr.contains("maillog_file is not set"), "{out:?}");
}

#[test]
fn syslog_name_postfix_tags_every_line_postfix() {
    let sink = SmtpSink::start();
    let mut t = Tern::new(&format!(
        "syslog_name = postfix\nrelayhost = [127.0.0.1]:{}\n",
        sink.port()
    ));
    t.start();
    let id = queue(&t, "someone@example.org", "named");
    sink.wait_for_count(1, WAIT);
    let log = t.wait_log(&format!("{id}: removed"), 1, WAIT);
    for tag in [
        "postfix/master[",
        "postfix/pickup[",
        "postfix/qmgr[",
        "postfix/smtp[",
    ] {
        assert!(log.contains(tag), "{tag}\n{log}");
    }
    assert!(!log.contains(" tern/"), "{log}");
    assert!(
        log.contains(&format!(
            "postfix/smtp[{}]: {id}: to=<someone@example.org>",
            t.pid()
        )),
        "{log}"
    );
}

#[test]
fn remote_syslog_rfc3164_over_udp() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let addr = udp.local_addr().unwrap();
    let mut t = Tern::new(&format!(
        "syslog_server = {addr}\nsyslog_server_format = rfc3164\n"
    ));
    t.start();
    let mut lines = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !lines.iter().any(|l: &String| l.contains("listening on")) {
        if let Ok(n) = udp.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let line = lines
        .iter()
        .find(|l| l.contains("listening on"))
        .unwrap_or_else(|| panic!("no datagram with the listening line: {lines:?}"));
    // <PRI>Mmm dd hh:mm:ss HOST tern/master[PID]: text (mail.info = 22)
    let pid = t.pid();
    let rest = line
        .strip_prefix("<22>")
        .unwrap_or_else(|| panic!("{line}"));
    let b = rest.as_bytes();
    assert!(
        b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':' && b[15] == b' ',
        "{line}"
    );
    assert!(
        rest[16..].starts_with(&format!(
            "tern.test tern/master[{pid}]: listening on 127.0.0.1:"
        )),
        "{line}"
    );
    // The default stays RFC 5424.
    t.stop_with(libc::SIGTERM);
    t.write_config(&format!("syslog_server = {addr}\n"));
    t.start();
    let deadline = Instant::now() + WAIT;
    let mut got = None;
    while Instant::now() < deadline && got.is_none() {
        if let Ok(n) = udp.recv(&mut buf) {
            let l = String::from_utf8_lossy(&buf[..n]).into_owned();
            if l.contains("listening on") && l.contains(&format!(" {} ", t.pid())) {
                got = Some(l);
            }
        }
    }
    let l = got.expect("an RFC 5424 datagram");
    assert!(l.starts_with("<22>1 "), "{l}");
}

/// `tern queue` by a user who is neither root nor the spool's owner.
#[test]
fn queue_control_is_for_root_and_the_spool_owner() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a command as nobody");
        return;
    }
    let t = Tern::new("");
    let id = queue(&t, "x@example.org", "kept");
    // nobody may read the configuration, not the spool.
    use std::os::unix::fs::PermissionsExt;
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(t.dir.path(), open).unwrap();
    std::fs::set_permissions(&t.conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        TERN,
        "queue",
        "-c",
    ])
    .arg(&t.conf)
    .args(["delete", &id]);
    let out = run(c, None, CMD_TIMEOUT);
    assert_eq!(out.status, Some(4), "{out:?}");
    assert!(out.stderr.contains("only root or the owner of"), "{out:?}");
    assert!(t.queued_ids().contains(&id));
}

/// A message held while its delivery session is connecting is not sent:
/// the session looks at the queue file once more before `MAIL FROM`. The
/// relay is a scripted server that accepts, waits until the test has held
/// the message, then answers; it must see EHLO and QUIT, never MAIL.
#[test]
fn a_message_held_while_its_session_connects_is_not_sent() {
    use std::io::{BufRead, BufReader, Write};
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = relay.local_addr().unwrap().port();
    let mut t = Tern::new(&format!("relayhost = [127.0.0.1]:{port}\n"));
    t.start();
    let id = queue(&t, "late@example.org", "held in flight");
    relay.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    let (conn, _) = loop {
        match relay.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "tern never connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    // The session waits for the greeting: hold the message now.
    let out = t.run(&["queue", "hold", &id], None);
    assert!(out.stderr.contains("Placed on hold: 1 message"), "{out:?}");
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut w = conn.try_clone().unwrap();
    w.write_all(b"220 relay.test ESMTP\r\n").unwrap();
    let mut commands = Vec::new();
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { break };
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        commands.push(verb.clone());
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 relay.test\r\n",
            "QUIT" => b"221 bye\r\n",
            "DATA" => b"354 go\r\n",
            _ => b"250 ok\r\n",
        };
        let _ = w.write_all(reply);
        if verb == "QUIT" {
            break;
        }
    }
    assert_eq!(commands, ["EHLO", "QUIT"], "the relay saw {commands:?}");
    assert!(in_dir(&t, "hold", &id));
    // Nothing was recorded for it: no delivery line, still listed as held.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(&t.log(), &format!("{id}: to=")), 0, "{}", t.log());
    assert!(t.mailq().contains(&format!("{id}!")));
}

/// `tern status` counts each outbound TLS result of the last 24 h: relayed
/// to a real Postfix with a test CA's certificate at `may` without the CA
/// (Untrusted), with it (Trusted), at `verify` with the name (Verified),
/// and at `secure` with a name the certificate lacks (failed).
#[test]
fn status_counts_verified_trusted_untrusted_and_failed_tls() {
    use common::certs::{KeyKind, TestCa};
    use common::postfix::Postfix;
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let relay = format!("relayhost = [127.0.0.1]:{}\n", pf.smtp_port());
    let mut t = Tern::new(&format!("{relay}smtp_tls_security_level = may\n"));
    t.start();
    let cafile = format!("smtp_tls_CAfile = {}\n", ca.cert.display());
    let policy = t.dir.join("tls_policy");
    let maps = format!("smtp_tls_policy_maps = texthash:{}\n", policy.display());
    // (subject, extra settings, policy table entry, expected outcome)
    let steps = [
        ("untrusted", String::new(), "", "status=sent"),
        ("trusted", cafile.clone(), "", "status=sent"),
        (
            "verified",
            format!("{cafile}{maps}"),
            "verify match=mx.example.test",
            "status=sent",
        ),
        (
            "failed",
            format!("{cafile}{maps}"),
            "secure match=other.test",
            "status=deferred",
        ),
    ];
    for (n, (what, extra, entry, outcome)) in steps.iter().enumerate() {
        std::fs::write(&policy, format!("[127.0.0.1]:{} {entry}\n", pf.smtp_port())).unwrap();
        t.write_config(&format!("{relay}smtp_tls_security_level = may\n{extra}"));
        if n > 0 {
            assert_eq!(t.run(&["reload"], None).status, Some(0));
            t.wait_log("reload -- configuration", n, WAIT);
        }
        let id = queue(&t, "bob@example.test", what);
        let log = t.wait_log(&format!("{id}: to=<bob@example.test>"), 1, WAIT);
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("{id}: to=")) && l.contains(outcome)),
            "{what}: {log}"
        );
    }
    let s = t.run(&["status"], None).stdout;
    assert!(
        s.contains(
            "outbound TLS, last 24 h: Verified 1, Trusted 1, Untrusted 1, failed 1, plaintext 0"
        ),
        "{s}\n{}",
        t.log()
    );
}
