//! Issue 2, the runtime: the start-up log line (version, config file,
//! memory ceiling), SIGHUP with a bad and a good new file, SIGTERM draining
//! an open session and exiting 0.

mod common;
mod ground_support;

use common::tools::{Socat, Swaks};
use ground_support::{Tern, WAIT};
use std::time::{Duration, Instant};

#[test]
fn startup_logs_version_config_and_memory_ceiling() {
    let mut t = Tern::new("max_connections = 7\n");
    t.start();
    let log = t.log();
    let line = log
        .lines()
        .find(|l| l.contains("daemon started"))
        .unwrap_or_else(|| panic!("no start-up line:\n{log}"));
    let pid = t.pid();
    assert!(
        line.contains(&format!(
            " tern/master[{pid}]: daemon started -- version {},",
            env!("CARGO_PKG_VERSION")
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!("configuration {},", t.conf.display())),
        "{line}"
    );
    assert!(line.contains("max_connections 7,"), "{line}");
    // "fixed buffers N KiB reserved (M B per connection ...)": N follows
    // from max_connections.
    let kib: u64 = line
        .split("fixed buffers ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ceiling in {line}"));
    assert!(kib > 0 && line.contains(" KiB reserved ("), "{line}");
    // "(M B per connection: TLS records T + command line L + DATA D; ...":
    // M is the sum of the pool's parts, each part is the pool's own
    // constant, and the ceiling is max_connections x M.
    let per_conn = per_connection_parts(line);
    use tern::tls::pool;
    assert_eq!(
        per_conn,
        [
            pool::SLOT_BYTES + pool::LINE_LEN + pool::DATA_LEN,
            pool::SLOT_BYTES,
            pool::LINE_LEN,
            pool::DATA_LEN
        ],
        "{line}"
    );
    assert_eq!(
        per_conn[0],
        per_conn[1] + per_conn[2] + per_conn[3],
        "{line}"
    );
    assert_eq!(kib as usize, 7 * per_conn[0] / 1024, "{line}");
    assert_eq!(
        tern::tls::BufferPool::new(7).budget_bytes(),
        7 * per_conn[0],
        "the pool reserves what the line says"
    );
    assert!(
        line.contains(&format!(
            "plus a {} B spool writer per message",
            tern::queue::spool::WRITE_BUF
        )),
        "{line}"
    );

    // Twice the connections, twice the ceiling (within rounding).
    let st = t.stop_with(libc::SIGTERM);
    assert_eq!(st.code(), Some(0), "{st}");
    t.write_config("max_connections = 14\n");
    t.start();
    let log = t.log();
    let second = log
        .lines()
        .filter(|l| l.contains("daemon started"))
        .nth(1)
        .unwrap_or_else(|| panic!("{log}"));
    let kib2: u64 = second
        .split("fixed buffers ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (2 * kib).abs_diff(kib2) <= 1,
        "{kib} KiB for 7, {kib2} KiB for 14"
    );
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}

/// The numbers of "(M B per connection: TLS records T + command line L +
/// DATA D;" in the start-up line, as `[M, T, L, D]`.
fn per_connection_parts(line: &str) -> [usize; 4] {
    let num = |after: &str, upto: &str| -> usize {
        line.split(after)
            .nth(1)
            .and_then(|s| s.split(upto).next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no number after {after:?} in {line}"))
    };
    [
        num("KiB reserved (", " B per connection"),
        num("per connection: TLS records ", "+"),
        num("+ command line ", "+"),
        num("+ DATA ", ";"),
    ]
}

/// The SIZE the EHLO reply advertises.
fn ehlo_size(port: u16) -> String {
    let r = Swaks::new(port).arg("--quit-after").arg("EHLO").run();
    assert!(r.ok(), "{}", r.transcript);
    r.replies()
        .iter()
        .find_map(|l| l.get(4..).and_then(|s| s.strip_prefix("SIZE")))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no SIZE in EHLO reply:\n{}", r.transcript))
}

#[test]
fn sighup_keeps_old_config_on_error_and_applies_a_good_one() {
    let mut t = Tern::new("message_size_limit = 200000\n");
    t.start();
    assert_eq!(ehlo_size(t.port), "200000");
    let pid = t.pid();

    // A bad file: logged, the old one kept, mail still accepted.
    t.write_config("message_size_limit = 2000\nmessage_size_limt = 3\n");
    t.signal(libc::SIGHUP);
    let log = t.wait_log("reload failed, keeping the old configuration", 1, WAIT);
    assert!(
        log.contains("message_size_limt"),
        "the error names the mistake:\n{log}"
    );
    assert!(t.running(), "still running after a bad reload");
    let big = format!("Subject: big\n\n{}\n", "x".repeat(5000));
    let r = Swaks::new(t.port).data(&big).run();
    assert!(r.ok(), "old limit still applies:\n{}", r.transcript);
    assert_eq!(ehlo_size(t.port), "200000");

    // A good file takes effect without a restart.
    t.write_config("message_size_limit = 2000\n");
    t.signal(libc::SIGHUP);
    t.wait_log("reload -- configuration", 1, WAIT);
    assert_eq!(ehlo_size(t.port), "2000");
    let r = Swaks::new(t.port).data(&big).run();
    assert!(
        !r.ok(),
        "the new limit rejects 5000 bytes:\n{}",
        r.transcript
    );
    assert!(
        r.replies().iter().any(|l| l.starts_with("552")),
        "552 for a message over the limit:\n{}",
        r.transcript
    );
    assert!(Swaks::new(t.port).run().ok(), "small mail still accepted");
    assert_eq!(t.pid(), pid);
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}

/// The deferral lines for `relay_port` so far.
fn deferrals_to(log: &str, relay_port: u16) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("status=deferred") && l.contains(&format!("[127.0.0.1]:{relay_port}"))
        })
        .count()
}

#[test]
fn sighup_with_a_missing_certificate_keeps_all_of_the_old_configuration() {
    let leaf = common::certs::self_signed(common::certs::KeyKind::EcdsaP256, &["tern.test"]);
    let tls = format!(
        "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n",
        leaf.chain.display(),
        leaf.key.display()
    );
    // Nothing listens on either relay port: delivery attempts only defer,
    // and the deferral line names the relayhost in force.
    let old_relay = common::ports::free_port();
    let new_relay = common::ports::free_port();
    let mut t = Tern::new(&format!(
        "{tls}message_size_limit = 200000\nrelayhost = [127.0.0.1]:{old_relay}\n"
    ));
    t.start();
    // A TLS handshake only, no mail.
    let starttls = |port: u16| Swaks::new(port).tls().arg("--quit-after").arg("TLS").run();
    let r = starttls(t.port);
    assert!(r.ok(), "STARTTLS at start:\n{}", r.transcript);

    // New file: the certificate is missing; the smtpd size limit and the
    // delivery relayhost change too. None of it may be applied.
    let missing = t.dir.join("missing-cert.pem");
    t.write_config(&format!(
        "smtpd_tls_cert_file = {m}\nsmtpd_tls_key_file = {m}\nmessage_size_limit = 2000\nrelayhost = [127.0.0.1]:{new_relay}\n",
        m = missing.display()
    ));
    t.signal(libc::SIGHUP);
    let log = t.wait_log(
        "warning: reload failed, keeping the old configuration",
        1,
        WAIT,
    );
    assert!(
        log.lines()
            .any(|l| l.contains("reload failed") && l.contains(&missing.display().to_string())),
        "the error names the file:\n{log}"
    );
    assert!(!log.contains("reload -- configuration"), "{log}");
    assert!(t.running());
    let r = starttls(t.port);
    assert!(
        r.ok(),
        "the old certificate still serves STARTTLS:\n{}",
        r.transcript
    );
    assert_eq!(ehlo_size(t.port), "200000", "old smtpd settings");
    // Delivery still uses the old relayhost.
    let r = Swaks::new(t.port).run();
    assert!(r.ok(), "{}", r.transcript);
    let log = t.wait_log("status=deferred", 1, WAIT);
    assert_eq!(deferrals_to(&log, old_relay), 1, "old relayhost:\n{log}");
    assert_eq!(
        deferrals_to(&log, new_relay),
        0,
        "new relayhost half-applied:\n{log}"
    );

    let good = format!(
        "{tls}message_size_limit = 2000\nrelayhost = [127.0.0.1]:{new_relay}\nmax_connections = 9\n"
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Started as root, the daemon runs as nobody now: the 0600 root key
        // cannot be re-read, so this reload fails too, and says why.
        t.write_config(&good);
        t.signal(libc::SIGHUP);
        let log = t.wait_log("reload: the daemon runs as nobody since start-up", 1, WAIT);
        assert!(
            log.lines()
                .filter(|l| l.contains("reload failed, keeping the old configuration"))
                .any(|l| l.contains("Permission denied")),
            "{log}"
        );
        assert!(!log.contains("reload -- configuration"), "{log}");
        assert_eq!(ehlo_size(t.port), "200000", "old smtpd settings");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&leaf.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    // A good file takes effect as a whole; a restart-only change is named.
    t.write_config(&good);
    t.signal(libc::SIGHUP);
    let log = t.wait_log("reload -- configuration", 1, WAIT);
    assert!(
        log.contains(
            "warning: reload: max_connections changed; the running values stay until a restart"
        ),
        "{log}"
    );
    assert_eq!(ehlo_size(t.port), "2000");
    let r = starttls(t.port);
    assert!(r.ok(), "STARTTLS after the good reload:\n{}", r.transcript);
    let flush = t.run(&["flush"], None);
    assert!(flush.success(), "{flush:?}");
    let deadline = Instant::now() + WAIT;
    while deferrals_to(&t.log(), new_relay) == 0 {
        assert!(
            Instant::now() < deadline,
            "no attempt via the new relayhost:\n{}",
            t.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}

#[test]
fn sigterm_drains_an_open_session_then_exits_zero() {
    // Nothing listens on the relay port: delivery, if tried, only defers.
    let dead = common::ports::free_port();
    let mut t = Tern::new(&format!("relayhost = [127.0.0.1]:{dead}\n"));
    t.start();
    let mut s = Socat::tcp(t.port);
    let greet = s.read_reply(WAIT);
    assert!(greet.starts_with("220 "), "{greet}");
    for (cmd, want) in [
        ("EHLO client.test", "250"),
        ("MAIL FROM:<a@tern.test>", "250"),
        ("RCPT TO:<b@example.test>", "250"),
        ("DATA", "354"),
    ] {
        s.send_line(cmd);
        let r = s.read_reply(WAIT);
        assert!(r.starts_with(want), "{cmd}: {r}");
    }
    s.send(b"Subject: drain\r\n\r\nhalf of the body\r\n");

    // SIGTERM mid-DATA: the session may finish.
    let signalled = Instant::now();
    t.signal(libc::SIGTERM);
    t.wait_log("terminating on signal", 1, WAIT);
    assert!(t.running(), "waits for the open session");
    // No new mail is taken while draining.
    let late = Swaks::new(t.port).timeout(WAIT).run();
    assert!(
        !late.ok(),
        "a new session during the drain:\n{}",
        late.transcript
    );
    s.send(b"second half\r\n.\r\n");
    let r = s.read_reply(WAIT);
    assert!(r.starts_with("250 ") && r.contains("queued as"), "{r}");
    s.send_line("QUIT");
    let st = t.stop_with(0); // already signalled; just wait
    assert_eq!(st.code(), Some(0), "{st}");
    let log = t.log();
    assert!(log.contains("stopped"), "{log}");
    assert_eq!(t.queued_ids().len(), 1, "the message is in the spool");
    eprintln!(
        "SIGTERM to exit with one open session: {:?}",
        signalled.elapsed()
    );
}

#[test]
fn sigterm_when_idle_exits_promptly() {
    let mut t = Tern::new("");
    t.start();
    let at = Instant::now();
    let st = t.stop_with(libc::SIGTERM);
    let took = at.elapsed();
    assert_eq!(st.code(), Some(0), "{st}");
    assert!(took < Duration::from_secs(5), "idle SIGTERM took {took:?}");
    assert!(t.log().contains("stopped"));
    eprintln!("idle SIGTERM to exit: {took:?}");
}

/// SIGKILLs a detached daemon on drop unless it was seen to stop.
struct Detached {
    pid: libc::pid_t,
    stopped: bool,
}

impl Drop for Detached {
    fn drop(&mut self) {
        if !self.stopped {
            // SAFETY: plain syscall; the pid is the daemon this test started.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn without_f_it_detaches_once_listening_and_reports_start_up_errors() {
    let t = Tern::new("");
    let out = t.run(&["run"], None);
    assert!(!out.timed_out, "the front process returns: {out:?}");
    assert_eq!(out.status, Some(0), "{out:?}");
    let log = t.log();
    let pid: libc::pid_t = log
        .lines()
        .find(|l| l.contains("daemon started"))
        .and_then(|l| l.split("tern/master[").nth(1))
        .and_then(|s| s.split(']').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no start-up line with a pid:\n{log}"));
    let mut d = Detached {
        pid,
        stopped: false,
    };
    // Listening before the command returned, in a session of its own.
    assert!(common::ports::is_listening(t.port), "{log}");
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::getsid(pid) }, pid, "setsid in the child");
    assert!(Swaks::new(t.port).run().ok(), "serves mail");
    // SAFETY: plain syscall on the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    t.wait_log("stopped", 1, WAIT);
    d.stopped = true;

    // A start-up failure reaches the terminal and the exit status.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    t.write_config(&format!("smtp_listen = 127.0.0.1:{port}\n"));
    let out = t.run(&["run"], None);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "tern: fatal: smtp_listen: cannot listen on 127.0.0.1:{port}"
        )),
        "{out:?}"
    );
}
