//! Memory of the SMTP server under 100 idle TLS sessions (issue 3's
//! target: tern under 8 MiB RSS with 100 sessions), compared with Postfix.
//!
//! `cargo bench --bench rss` (add `-- N` for N sessions instead of 100).
//! Cargo builds tern with the bench profile (= release) and hands this
//! program its path (`CARGO_BIN_EXE_tern`; `TERN_BIN` runs another
//! build instead, for paired before/after runs). Needs root (tern drops to
//! `nobody`; Postfix runs as itself) and Debian's postfix, openssl.
//!
//! For each server: start it on loopback with an RSA-2048 certificate,
//! measure, open N sessions (connect, EHLO, STARTTLS, TLS 1.3 handshake,
//! EHLO over TLS) and keep them idle, measure again. tern is one process:
//! VmRSS and Pss of it. Postfix is master plus one smtpd per session and
//! its helpers: the sum of Pss (`/proc/PID/smaps_rollup`) over its process
//! group, which counts shared pages once. Every wait is bounded.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/loadgen.rs"]
#[allow(dead_code)]
mod loadgen;
#[path = "support/procs.rs"]
#[allow(dead_code)]
mod procs;
#[path = "../tests/smtpd_support/mod.rs"]
mod smtpd_support;

use std::time::{Duration, Instant};

use common::certs::{KeyKind, TestCa};
use common::postfix::Postfix;
use smtpd_support::Tern;

fn status_kib(pid: u32, field: &str) -> u64 {
    procs::field_kib(pid, "status", field)
}

fn pss_kib(pid: u32) -> u64 {
    procs::field_kib(pid, "smaps_rollup", "Pss:")
}

/// Live processes of process group `pgid`.
fn group_pids(pgid: u32) -> Vec<u32> {
    procs::group_pids(pgid, false)
}

fn mib(kib: u64) -> String {
    format!("{:.2} MiB", kib as f64 / 1024.0)
}

/// Opens `n` sessions and leaves each idle inside TLS after EHLO.
fn open_sessions(port: u16, n: usize, ca: &std::path::Path) -> Vec<loadgen::Conn> {
    loadgen::hold(port, n, ca, "tern.example.test", Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("opening {n} sessions: {e}"))
}

/// Lets the server settle (allocator, lazily touched pages), bounded.
fn settle() {
    std::thread::sleep(Duration::from_millis(500));
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number sets the session count.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);

    // ---- tern
    let tern = Tern::builder()
        .cert(&leaf.chain, &leaf.key)
        .set("max_connections", &(n + 8).to_string())
        .start();
    settle();
    let pid = tern.pid();
    let idle_rss = status_kib(pid, "VmRSS:");
    let idle_pss = pss_kib(pid);
    let t0 = Instant::now();
    let sessions = open_sessions(tern.smtp_port, n, &ca.cert);
    let open_time = t0.elapsed();
    settle();
    let busy_rss = status_kib(pid, "VmRSS:");
    let busy_pss = pss_kib(pid);
    let hwm = status_kib(pid, "VmHWM:");
    let established = tern.log_count("Anonymous TLS connection established");
    drop(sessions);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tern.log_count("disconnect from") < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    settle();
    let after_rss = status_kib(pid, "VmRSS:");
    println!(
        "tern ({n} sessions, TLS handshakes logged: {established}, opened in {open_time:.2?})"
    );
    println!(
        "  idle:                RSS {}  PSS {}",
        mib(idle_rss),
        mib(idle_pss)
    );
    println!(
        "  {n} TLS sessions:    RSS {}  PSS {}  (peak RSS {})",
        mib(busy_rss),
        mib(busy_pss),
        mib(hwm)
    );
    println!(
        "  per session:         {:.1} KiB",
        busy_rss.saturating_sub(idle_rss) as f64 / n as f64
    );
    println!("  after they closed:   RSS {}", mib(after_rss));
    let target = 8 * 1024;
    println!(
        "  target < 8 MiB at 100 sessions: {}",
        if busy_rss < target { "met" } else { "NOT met" }
    );
    drop(tern);

    // ---- Postfix
    let pf = Postfix::builder()
        .tls(&leaf.chain, &leaf.key)
        .main_cf("default_process_limit", &(n + 20).to_string())
        .start();
    settle();
    let pgid = pf.master_pid();
    let pf_idle: u64 = group_pids(pgid).iter().map(|&p| pss_kib(p)).sum();
    let pf_idle_procs = group_pids(pgid).len();
    let t0 = Instant::now();
    let sessions = open_sessions(pf.smtp_port(), n, &ca.cert);
    let pf_open = t0.elapsed();
    settle();
    let procs = group_pids(pgid);
    let pf_busy: u64 = procs.iter().map(|&p| pss_kib(p)).sum();
    let pf_rss: u64 = procs.iter().map(|&p| status_kib(p, "VmRSS:")).sum();
    drop(sessions);
    println!("Postfix ({n} sessions, opened in {pf_open:.2?})");
    println!(
        "  idle:                PSS {} ({pf_idle_procs} processes)",
        mib(pf_idle)
    );
    println!(
        "  {n} TLS sessions:    PSS {} ({} processes; RSS summed {})",
        mib(pf_busy),
        procs.len(),
        mib(pf_rss)
    );
    println!(
        "ratio at {n} sessions: Postfix PSS / tern PSS = {:.1}, Postfix PSS / tern RSS = {:.1}",
        pf_busy as f64 / busy_pss.max(1) as f64,
        pf_busy as f64 / busy_rss.max(1) as f64
    );
}
