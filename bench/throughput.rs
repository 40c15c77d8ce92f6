//! Relay throughput, tern beside Postfix on the same machine in one run:
//! `smtp-source -> MTA -> smtp-sink`, both programs from Postfix's package.
//! One point of the suite (bench/suite.sh runs the whole matrix), kept for
//! quick paired before/after runs.
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
#[path = "support/mta.rs"]
#[allow(dead_code)]
mod mta;
#[path = "support/procs.rs"]
#[allow(dead_code)]
mod procs;

use common::source::SmtpSource;
use mta::{BenchTern, Setup, Sink};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(300);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
    let setup = Setup {
        sink_port: tern_sink.port,
        cert: None,
        concurrency,
        max_sessions: sessions,
        env: Vec::new(),
    };
    let bin = tern_bin();
    let mut tern = BenchTern::start(&bin, &setup);
    let mut pf = mta::start_postfix(&Setup {
        sink_port: pf_sink.port,
        ..setup.clone()
    });

    println!(
        "throughput: {n} messages, {sessions} smtp-source sessions, relay to smtp-sink, no TLS"
    );
    println!("tern binary: {}", bin.display());
    // CPU is less sensitive than wall-clock throughput to other work on a
    // shared machine, so paired before/after runs compare on it too.
    let cpu0 = procs::cpu_secs(tern.pid());
    let t = drive("tern", tern.port, &tern_sink, n, sessions);
    let cpu = procs::cpu_secs(tern.pid()) - cpu0;
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
