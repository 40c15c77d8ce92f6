//! Issue 15, item 1: syncs per accepted message over its whole life
//! (accept, delivery, removal), counted as strace counts them on the real
//! daemon: `smtp-source -> tern -> smtp-sink`, 100 messages of 1 KiB, no
//! TLS. Targets: at most 1.0 sync per message at 1 session (the physical
//! floor: one durable write per acknowledged message) and at most 0.3 at
//! 20 sessions (group commit). The lazily durable removals add one sync
//! per idle period, after `queue_sync_delay`: counted separately below.
//! Needs strace (ptrace of a child: root or ptrace_scope 0).

mod common;

use common::ports::{free_port, wait_listening};
use common::process::Daemon;
use common::sink::SmtpSink;
use common::source::SmtpSource;
use common::tempdir::{read_lossy, write, TempDir};
use std::process::Command;
use std::time::{Duration, Instant};

const MESSAGES: usize = 100;
const LIMIT: Duration = Duration::from_secs(120);

/// The sync calls strace saw, by name.
#[derive(Debug, Default)]
struct Syncs {
    syncfs: usize,
    fsync: usize,
    fdatasync: usize,
}

impl Syncs {
    fn total(&self) -> usize {
        self.syncfs + self.fsync + self.fdatasync
    }
}

fn count_syncs(trace: &str) -> Syncs {
    let mut s = Syncs::default();
    for line in trace.lines() {
        // `strace -f` lines: `PID syscall(args) = result` (or unfinished).
        let call = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .split('(')
            .next()
            .unwrap_or("");
        if line.contains("resumed>") {
            continue;
        }
        match call {
            "syncfs" => s.syncfs += 1,
            "fsync" => s.fsync += 1,
            "fdatasync" => s.fdatasync += 1,
            _ => {}
        }
    }
    s
}

struct Run {
    during: Syncs,
    after_idle: Syncs,
}

fn run(sessions: usize) -> Run {
    let dir = TempDir::new("synccount");
    let sink = SmtpSink::start();
    let port = free_port();
    let conf = dir.join("tern.conf");
    write(
        &conf,
        format!(
            "myhostname = tern.localhost.test\nmydomain = localhost.test\n\
             inet_interfaces = loopback-only\nsmtp_listen = 127.0.0.1:{port}\n\
             queue_directory = {}\nrelayhost = [127.0.0.1]:{}\nmax_connections = 64\n\
             maillog_file = {}\nsyslog_socket =\nmail_owner =\nmynetworks = 127.0.0.0/8\n\
             queue_sync_delay = 2s\n",
            dir.join("spool").display(),
            sink.port(),
            dir.join("maillog").display()
        ),
    );
    let trace = dir.join("strace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=fsync,fdatasync,syncfs", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_tern"))
        .args(["run", "-f", "-c"])
        .arg(&conf);
    let mut daemon = Daemon::spawn("tern", cmd, &dir.join("stderr"));
    assert!(
        wait_listening(port, Duration::from_secs(20)),
        "tern did not start: {}",
        read_lossy(&dir.join("stderr"))
    );
    let r = SmtpSource::new(port)
        .messages(MESSAGES)
        .sessions(sessions)
        .size(1024)
        .from("a@localhost.test")
        .to("b@example.org")
        .run(LIMIT);
    assert!(r.success(), "smtp-source: {}", r.output.combined());
    assert_eq!(
        sink.wait_for_count(MESSAGES, LIMIT),
        MESSAGES,
        "delivered to the sink"
    );
    // Every message removed from the spool: the whole life is in the trace.
    let deadline = Instant::now() + LIMIT;
    while read_lossy(&dir.join("maillog"))
        .matches(": removed")
        .count()
        < MESSAGES
    {
        assert!(Instant::now() < deadline, "not all messages removed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let during = count_syncs(&read_lossy(&trace));
    // Idle: the removals since the last commit become durable within
    // queue_sync_delay (2 s here, checked every 0.5 s), with one syncfs.
    std::thread::sleep(Duration::from_secs(4));
    let after_idle = count_syncs(&read_lossy(&trace));
    daemon.stop();
    Run { during, after_idle }
}

#[test]
fn one_sync_per_message_alone_and_a_fraction_under_load() {
    let one = run(1);
    eprintln!(
        "1 session: {:?} while {MESSAGES} messages were accepted, delivered and removed; {:?} after idle",
        one.during, one.after_idle
    );
    assert_eq!(
        (one.during.fsync, one.during.fdatasync),
        (0, 0),
        "{:?}",
        one.during
    );
    assert!(
        one.during.total() <= MESSAGES,
        "{} syncs for {MESSAGES} messages at 1 session",
        one.during.total()
    );
    assert_eq!(
        one.after_idle.total(),
        one.during.total() + 1,
        "one lazy sync for the last removals, none more"
    );

    let twenty = run(20);
    let per_msg = twenty.during.total() as f64 / MESSAGES as f64;
    eprintln!(
        "20 sessions: {:?} ({per_msg:.2} per message); {:?} after idle",
        twenty.during, twenty.after_idle
    );
    assert!(
        per_msg <= 0.3,
        "{per_msg:.2} syncs per message at 20 sessions"
    );
    assert!(twenty.after_idle.total() <= twenty.during.total() + 1);
}
