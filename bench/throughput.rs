//! Relay throughput, tern beside Postfix on the same machine in one run:
//! `smtp-source -> MTA -> smtp-sink`, both programs from Postfix's package.
//!
//! Each MTA accepts N messages from S parallel smtp-source sessions on
//! loopback, queues them (fsync) and relays them to `relayhost =
//! [127.0.0.1]:SINK` without TLS; the clock runs from smtp-source's start
//! until smtp-sink has counted the last message. Both use a destination
//! concurrency limit of 20 (Postfix's default and tern's; both start a
//! destination at 5 sessions and open the window while mail waits).
//! tern's `max_connections` is 128 so that 50 inbound sessions and 20
//! outbound ones fit its buffer pool (at 64, the 50-session run was
//! refused with `421 4.3.2 Too many connections`).
//!
//! Run: `cargo bench --bench throughput` (release build of tern);
//! `TERN_BENCH_MESSAGES` / `TERN_BENCH_SESSIONS` change N (2000) and S (20);
//! `TERN_BENCH_CONCURRENCY` tern's `default_destination_concurrency_limit`
//! (20); `TERN_BIN` points at another tern binary.

#[path = "../tests/common/mod.rs"]
mod common;

use common::ports::{free_port, wait_listening};
use common::postfix::Postfix;
use common::process::Daemon;
use common::source::SmtpSource;
use common::tempdir::{read_lossy, write, TempDir};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(300);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// smtp-sink without dumping messages (`-c` counters only).
struct Sink {
    _daemon: Daemon,
    dir: TempDir,
    port: u16,
}

impl Sink {
    fn start() -> Sink {
        let dir = TempDir::new("bench-sink");
        let port = free_port();
        let mut cmd = Command::new("smtp-sink");
        cmd.args(["-c", "-u", "nobody"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .current_dir(dir.path());
        let daemon = Daemon::spawn("smtp-sink", cmd, &dir.join("stdout"));
        assert!(
            wait_listening(port, Duration::from_secs(10)),
            "smtp-sink did not start"
        );
        Sink {
            _daemon: daemon,
            dir,
            port,
        }
    }

    fn count(&self) -> usize {
        read_lossy(&self.dir.join("stdout"))
            .rsplit("mesg=")
            .next()
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn wait(&self, n: usize, deadline: Instant) -> bool {
        while self.count() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

struct Figures {
    accept: f64,
    end_to_end: f64,
    /// Most relay sessions seen open at the sink at once.
    outbound: usize,
}

/// TCP connections in ESTABLISHED state whose local port is `port` (the
/// sink's side of every relay session), from /proc/net/tcp.
fn established_to(port: u16) -> usize {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && f[3] == "01"
        })
        .count()
}

fn drive(name: &str, port: u16, sink: &Sink, n: usize, sessions: usize) -> Figures {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let before = sink.count();
    // Samples the relay sessions every 10 ms while the run lasts (bounded
    // by LIMIT like the run itself).
    let (stop, most) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let sampler = {
        let (stop, most, sink_port) = (stop.clone(), most.clone(), sink.port);
        std::thread::spawn(move || {
            let until = Instant::now() + LIMIT;
            while !stop.load(SeqCst) && Instant::now() < until {
                most.fetch_max(established_to(sink_port), SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let t0 = Instant::now();
    let r = SmtpSource::new(port)
        .messages(n)
        .sessions(sessions)
        .from("bench@example.org")
        .to("sink@example.net")
        .run(LIMIT);
    let accepted = t0.elapsed();
    assert!(
        r.success(),
        "{name}: smtp-source failed: {}",
        r.output.combined()
    );
    assert!(
        sink.wait(before + n, t0 + LIMIT),
        "{name}: smtp-sink has {} of {n} after {LIMIT:?}",
        sink.count() - before
    );
    let total = t0.elapsed();
    stop.store(true, SeqCst);
    let _ = sampler.join();
    Figures {
        accept: n as f64 / accepted.as_secs_f64(),
        end_to_end: n as f64 / total.as_secs_f64(),
        outbound: most.load(SeqCst),
    }
}

/// User plus system CPU seconds a process has used so far (from
/// /proc/PID/stat, in clock ticks of 1/100 s as Linux reports them).
/// Less sensitive than wall-clock throughput to other work on a shared
/// machine, so paired before/after runs compare on it too.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn tern_bin() -> PathBuf {
    std::env::var_os("TERN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tern")))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us too:
    // only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput: skipped (run with cargo bench)");
        return;
    }
    let n = env_usize("TERN_BENCH_MESSAGES", 2000);
    let sessions = env_usize("TERN_BENCH_SESSIONS", 20);
    let concurrency = env_usize("TERN_BENCH_CONCURRENCY", 20);

    let tern_sink = Sink::start();
    let pf_sink = Sink::start();

    let dir = TempDir::new("bench-tern");
    let port = free_port();
    let conf = dir.join("tern.conf");
    write(
        &conf,
        format!(
            "myhostname = tern.example.org\nmydestination =\nmynetworks = 127.0.0.0/8\n\
             smtp_listen = 127.0.0.1:{port}\nqueue_directory = {}\nmaillog_file = {}\n\
             syslog_socket =\nmail_owner = nobody\ndns_resolvers = 127.0.0.1:9\n\
             relayhost = [127.0.0.1]:{}\nsmtp_tls_security_level = none\n\
             default_destination_concurrency_limit = {concurrency}\n\
             max_connections = 128\n",
            dir.subdir("spool").display(),
            dir.join("maillog").display(),
            tern_sink.port
        ),
    );
    let bin = tern_bin();
    let mut cmd = Command::new(&bin);
    cmd.args(["run", "-f", "-c"]).arg(&conf);
    let mut tern = Daemon::spawn("tern", cmd, &dir.join("tern.out"));
    assert!(
        wait_listening(port, Duration::from_secs(20)),
        "tern did not start: {}",
        tern.output()
    );

    let mut pf = Postfix::builder()
        .hostname("postfix.example.org")
        .relayhost(pf_sink.port)
        .start();

    println!(
        "throughput: {n} messages, {sessions} smtp-source sessions, relay to smtp-sink, no TLS"
    );
    println!("tern binary: {}", bin.display());
    let cpu0 = cpu_secs(tern.pid());
    let t = drive("tern", port, &tern_sink, n, sessions);
    let cpu = cpu_secs(tern.pid()) - cpu0;
    let p = drive("postfix", pf.smtp_port(), &pf_sink, n, sessions);
    println!(
        "tern:    {:8.1} msg/s accepted, {:8.1} msg/s end to end",
        t.accept, t.end_to_end
    );
    println!(
        "postfix: {:8.1} msg/s accepted, {:8.1} msg/s end to end",
        p.accept, p.end_to_end
    );
    println!(
        "ratio tern/postfix: {:.2} accepted, {:.2} end to end",
        t.accept / p.accept,
        t.end_to_end / p.end_to_end
    );
    println!(
        "relay sessions open at once, at most: tern {}, postfix {}",
        t.outbound, p.outbound
    );
    println!(
        "tern CPU: {:.0} us per message (user + system)",
        cpu * 1e6 / n as f64
    );
    tern.stop();
    pf.stop();
}
