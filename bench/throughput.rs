//! Relay throughput, tern beside Postfix on the same machine in one run:
//! `smtp-source -> MTA -> smtp-sink`, both programs from Postfix's package.
//! One point of the suite (bench/suite.sh runs the whole matrix), kept for
//! quick paired before/after runs.
//!
//! Each MTA accepts N messages from S parallel smtp-source sessions on
//! loopback, queues them (fsync) and relays them to `relayhost =
//! [127.0.0.1]:SINK` without TLS; the clock runs from smtp-source's start
//! until smtp-sink has counted the last message. Both use a destination
//! concurrency of 20 (Postfix's default; tern's board default is 4).
//!
//! Run: `cargo bench --bench throughput` (release build of tern);
//! `TERN_BENCH_MESSAGES` / `TERN_BENCH_SESSIONS` change N (2000) and S (20);
//! `TERN_BIN` points at another tern binary.

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
}

fn drive(name: &str, port: u16, sink: &Sink, n: usize, sessions: usize) -> Figures {
    let before = sink.count();
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
    Figures {
        accept: n as f64 / accepted.as_secs_f64(),
        end_to_end: n as f64 / total.as_secs_f64(),
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

    let tern_sink = Sink::start();
    let pf_sink = Sink::start();
    let setup = Setup {
        sink_port: tern_sink.port,
        cert: None,
        concurrency: 20,
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
        "tern CPU: {:.0} us per message (user + system)",
        cpu * 1e6 / n as f64
    );
    tern.stop();
    pf.stop();
}
