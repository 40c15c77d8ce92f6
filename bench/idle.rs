//! Idle memory of every tern process (issue 15 item 4: ≤ 2.5 MiB summed
//! on a send-only configuration with a STARTTLS certificate, on the static
//! x86_64-musl build).
//!
//! One command:
//!
//! ```text
//! cargo build --release --target x86_64-unknown-linux-musl
//! TERN_BIN=target/x86_64-unknown-linux-musl/release/tern cargo bench --bench idle
//! ```
//!
//! Without `TERN_BIN` it measures the build cargo hands it (glibc, whose
//! shared libc pages add ~1.4 MiB that a router does not pay). `TERN_RUNNER`
//! runs the binary under an emulator, e.g. the aarch64 board build:
//! `TERN_BIN=target/cross/openwrt-aarch64/tern TERN_RUNNER="qemu-aarch64 -cpu
//! cortex-a53" cargo bench --bench idle`; the figures then include qemu
//! itself, and a second line measures qemu running the same binary as a
//! `tern sendmail` blocked on its input, a floor for what qemu adds. A
//! bare number after `--` sets the rounds (default 3). Needs root: tern
//! drops to `nobody`, and only a daemon started as root may fork the
//! local delivery helper, which is what the send-only figure must leave
//! out.
//!
//! Two configurations, each started afresh per round, left idle for a
//! second, then measured: VmRSS, RssAnon and Pss summed over the daemon's
//! process group (the daemon and any helper it forked, read from /proc):
//!
//! - send-only: `mydestination =` empty, a relayhost, STARTTLS with an
//!   RSA-2048 certificate (the test harness's defaults plus the key);
//! - local: the same with `mydestination = $myhostname`, where the root
//!   helper must run (home Maildir delivery).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/procs.rs"]
#[allow(dead_code)]
mod procs;
#[path = "../tests/smtpd_support/mod.rs"]
mod smtpd_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::certs::{KeyKind, TestCa};
use smtpd_support::Tern;

/// Target of issue 15, in KiB.
const TARGET_KIB: u64 = 2560;

/// A field of /proc/PID/status or smaps_rollup, in kB (0 if absent).
fn field_kib(pid: u32, file: &str, field: &str) -> u64 {
    procs::field_kib(pid, file, field)
}

/// One measurement of the daemon's process group.
struct Sample(procs::Memory);

impl Sample {
    fn of_group(pgid: u32) -> Sample {
        Sample(procs::Memory::of_group(pgid))
    }
    fn rss(&self) -> u64 {
        self.0.rss()
    }
    fn anon(&self) -> u64 {
        self.0.anon()
    }
    fn pss(&self) -> u64 {
        self.0.pss()
    }
    fn detail(&self) -> String {
        self.0.detail()
    }
}

/// min / median / max of `v` (sorted in place).
fn spread(v: &mut [u64]) -> String {
    v.sort_unstable();
    match v {
        [] => "-".into(),
        _ => format!("{} / {} / {} kB", v[0], v[v.len() / 2], v[v.len() - 1]),
    }
}

/// Starts tern `rounds` times with `extra` settings and prints the sums.
fn measure(label: &str, rounds: usize, leaf: &common::certs::Leaf, extra: &[(&str, &str)]) -> u64 {
    let (mut rss, mut anon, mut pss) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = String::new();
    let mut nprocs = 0;
    for _ in 0..rounds {
        let mut b = Tern::builder().cert(&leaf.chain, &leaf.key);
        for (k, v) in extra {
            b = b.set(k, v);
        }
        let tern = b.start();
        // Let start-up finish (the queue manager's first scan, the
        // allocator's trims) before reading.
        std::thread::sleep(Duration::from_secs(1));
        let s = Sample::of_group(tern.pid());
        rss.push(s.rss());
        anon.push(s.anon());
        pss.push(s.pss());
        nprocs = s.0.procs.len();
        last = s.detail();
        drop(tern);
    }
    println!("{label}: {nprocs} process(es)  (last round: {last})");
    println!("  VmRSS summed   min/median/max {}", spread(&mut rss));
    println!("  RssAnon summed min/median/max {}", spread(&mut anon));
    println!("  Pss summed     min/median/max {}", spread(&mut pss));
    rss[rss.len() / 2]
}

/// Under `TERN_RUNNER`: the emulator running the same binary as a
/// `tern sendmail` that waits for its input, measured after a second.
fn runner_floor(runner: &str, bin: &str) {
    let mut words = runner.split_whitespace();
    let Some(prog) = words.next() else {
        return;
    };
    let mut cmd = Command::new(prog);
    cmd.args(words)
        .arg(bin)
        .args(["sendmail", "nobody@example.test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        println!("runner floor: cannot start {runner}");
        return;
    };
    std::thread::sleep(Duration::from_secs(1));
    let pid = child.id();
    let rss = field_kib(pid, "status", "VmRSS:");
    let anon = field_kib(pid, "status", "RssAnon:");
    // Closing stdin without a message ends it; kill in case it does not.
    let _ = child.kill();
    let _ = child.wait();
    println!("runner floor ({runner} ... tern sendmail, blocked on stdin): VmRSS {rss} kB, RssAnon {anon} kB");
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3)
        .max(1);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "bench idle: run as root (the helper is only forked by a daemon started as root)"
        );
        std::process::exit(2);
    }
    let bin = std::env::var("TERN_BIN").unwrap_or_else(|_| smtpd_support::TERN.to_string());
    let runner = std::env::var("TERN_RUNNER").unwrap_or_default();
    println!(
        "binary {bin}{}, {rounds} rounds",
        if runner.is_empty() {
            String::new()
        } else {
            format!(" under `{runner}`")
        }
    );
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &["tern.example.test"]);
    let send_only = measure(
        "send-only (mydestination empty, relayhost, STARTTLS)",
        rounds,
        &leaf,
        &[],
    );
    measure(
        "local (mydestination = $myhostname, STARTTLS)",
        rounds,
        &leaf,
        &[("mydestination", "$myhostname")],
    );
    if !runner.is_empty() {
        runner_floor(&runner, &bin);
    }
    println!(
        "target: send-only VmRSS summed ≤ {TARGET_KIB} kB: {}",
        if send_only <= TARGET_KIB {
            "met"
        } else {
            "NOT met"
        }
    );
}
