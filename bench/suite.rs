//! The benchmark suite (issue 15 items 2, 5, 6): tern beside Debian's
//! Postfix in one run, written to docs/benchmarks.md plus a CSV that
//! bench/plot.py turns into docs/benchmarks.png. Run it with
//! `bench/suite.sh` (one command: dependencies, the slow-flash shim, the
//! release build, this program, the instruction counts, the plot);
//! `BENCH_QUICK=1` for a short run. Not part of the tests.
//!
//! Every point is a paired run: tern then Postfix, or Postfix then tern,
//! alternating, on instances started side by side with the same settings,
//! each relaying to its own smtp-sink. See docs/benchmarks.md ("Method")
//! for what each figure means; the code below is that method.
//!
//! Environment (set by bench/suite.sh): `BENCH_QUICK`, `BENCH_REPS`,
//! `BENCH_SHIM` (the built slowsync.so), `BENCH_OUT` (directory for the
//! CSV and the pieces other programs fill in), `BENCH_DOC` (the markdown
//! to write), `BENCH_INSN` (file with the instruction counts, read if
//! present), `BENCH_SIZES` (file with binary sizes, read if present),
//! `BENCH_T0` (the run's start, epoch seconds), `BENCH_ONLY` (a comma
//! list of the parts to run: throughput, handshakes, memory, strace),
//! `TERN_BIN` (another tern build).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/loadgen.rs"]
#[allow(dead_code)]
mod loadgen;
#[path = "support/mta.rs"]
#[allow(dead_code)]
mod mta;
#[path = "support/procs.rs"]
#[allow(dead_code)]
mod procs;

use common::certs::{KeyKind, TestCa};
use common::postfix::Postfix;
use common::process::{run, Daemon};
use common::source::SmtpSource;
use common::tempdir::{own, write, TempDir};
use mta::{BenchTern, Setup, Sink};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Bound of one load run (sending plus delivery).
const LIMIT: Duration = Duration::from_secs(300);
/// Destination concurrency of both MTAs (Postfix's default).
const CONCURRENCY: usize = 20;
/// Server name in the certificate both MTAs present.
const CERT_NAME: &str = "mta.example.test";
const FROM: &str = "bench@example.org";
const TO: &str = "sink@example.net";
const SESSIONS: [usize; 3] = [1, 20, 50];
const LATENCIES: [f64; 3] = [0.0, 2.0, 10.0];
const MEM_SESSIONS: [usize; 2] = [50, 100];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Mta {
    Tern,
    Postfix,
}

impl Mta {
    fn name(self) -> &'static str {
        match self {
            Mta::Tern => "tern",
            Mta::Postfix => "Postfix",
        }
    }
}

/// A running instance of either MTA, with its sink.
struct Instance {
    mta: Mta,
    tern: Option<BenchTern>,
    postfix: Option<Postfix>,
    sink: Sink,
}

impl Instance {
    fn start(mta: Mta, bin: &Path, setup: &Setup, sink: Sink) -> Instance {
        let s = Setup {
            sink_port: sink.port,
            ..setup.clone()
        };
        let (tern, postfix) = match mta {
            Mta::Tern => (Some(BenchTern::start(bin, &s)), None),
            Mta::Postfix => (None, Some(mta::start_postfix(&s))),
        };
        Instance {
            mta,
            tern,
            postfix,
            sink,
        }
    }
    fn port(&self) -> u16 {
        match (&self.tern, &self.postfix) {
            (Some(t), _) => t.port,
            (_, Some(p)) => p.smtp_port(),
            _ => 0,
        }
    }
    /// Process group of all the MTA's processes.
    fn pgid(&self) -> u32 {
        match (&self.tern, &self.postfix) {
            (Some(t), _) => t.pid(),
            (_, Some(p)) => p.master_pid(),
            _ => 0,
        }
    }
    /// Messages still queued: tern's spool, Postfix's queues.
    fn queued(&self) -> usize {
        match (&self.tern, &self.postfix) {
            (Some(t), _) => mta::queue_files(&t.spool(), &[]),
            (_, Some(p)) => {
                let spool = p.config_dir().with_file_name("spool");
                ["incoming", "active", "deferred", "hold", "maildrop"]
                    .iter()
                    .map(|d| mta::queue_files(&spool.join(d), &[]))
                    .sum()
            }
            _ => 0,
        }
    }
    fn stop(&mut self) {
        if let Some(t) = &mut self.tern {
            t.stop();
        }
        if let Some(p) = &mut self.postfix {
            p.stop();
        }
    }
}

/// Settings of one run of the suite.
struct Cfg {
    quick: bool,
    reps: usize,
    bin: PathBuf,
    shim: Option<PathBuf>,
    out: PathBuf,
    ca: PathBuf,
    setup: Setup,
    work: TempDir,
}

/// Samples per figure: key → (tern values, Postfix values), in pair order.
type Samples = BTreeMap<String, (Vec<f64>, Vec<f64>)>;

fn push(s: &mut Samples, key: &str, mta: Mta, v: f64) {
    let e = s.entry(key.to_string()).or_default();
    match mta {
        Mta::Tern => e.0.push(v),
        Mta::Postfix => e.1.push(v),
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Messages per point: enough for a few seconds per run, bounded.
fn messages(cfg: &Cfg, lat: f64, sessions: usize) -> usize {
    let n = match (lat as u32, sessions) {
        (0, 1) => 300,
        (0, 20) => 1000,
        (0, _) => 1500,
        (2, 1) => 150,
        (2, 20) => 600,
        (2, _) => 1000,
        (_, 1) => 60,
        (_, 20) => 300,
        (_, _) => 500,
    };
    if cfg.quick {
        (n / 5).max(sessions * 2)
    } else {
        n
    }
}

/// Lines in the shim's call log (one per sync call).
fn shim_calls(log: &Path) -> usize {
    std::fs::read(log)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// One load run against `inst`: accept rate, end-to-end rate and CPU
/// seconds per message of all the MTA's processes.
fn load(inst: &Instance, cfg: &Cfg, n: usize, sessions: usize, tls: bool) -> (f64, f64, f64) {
    let before = inst.sink.count();
    let cpu0 = procs::cpu_secs(inst.pgid());
    let t0 = Instant::now();
    if tls {
        let l = loadgen::Load {
            port: inst.port(),
            sessions,
            count: n,
            tls: Some((cfg.ca.clone(), CERT_NAME.into())),
            from: FROM.into(),
            to: TO.into(),
            limit: LIMIT,
        };
        if let Err(e) = loadgen::send(&l) {
            panic!("{}: TLS load: {e}", inst.mta.name());
        }
    } else {
        let r = SmtpSource::new(inst.port())
            .messages(n)
            .sessions(sessions)
            .size(loadgen::PAYLOAD)
            .from(FROM)
            .to(TO)
            .run(LIMIT);
        assert!(
            r.success(),
            "{}: smtp-source failed: {}",
            inst.mta.name(),
            r.output.combined()
        );
    }
    let accepted = t0.elapsed();
    assert!(
        inst.sink.wait(before + n, t0 + LIMIT),
        "{}: smtp-sink has {} of {n} after {LIMIT:?}",
        inst.mta.name(),
        inst.sink.count() - before
    );
    let total = t0.elapsed();
    // Removal follows delivery: wait (bounded) for an empty queue so the
    // next run starts from the same state and its CPU is its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    while inst.queued() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu = procs::cpu_secs(inst.pgid()) - cpu0;
    (
        n as f64 / accepted.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        cpu / n as f64,
    )
}

/// Pair order for the `i`-th pair: alternate who goes first.
fn order(i: usize) -> [Mta; 2] {
    if i % 2 == 0 {
        [Mta::Tern, Mta::Postfix]
    } else {
        [Mta::Postfix, Mta::Tern]
    }
}

/// Throughput at every latency, session count and TLS setting; CPU per
/// message; the shim's sync count per message.
fn throughput(cfg: &Cfg, s: &mut Samples) {
    let mut pair = 0;
    for lat in LATENCIES {
        let log = cfg.work.join(&format!("syncs-{lat}"));
        let mut setup = cfg.setup.clone();
        if lat > 0.0 {
            let Some(shim) = &cfg.shim else {
                println!("no BENCH_SHIM: skipping {lat} ms of sync latency");
                continue;
            };
            write(&log, "");
            own(&log, 0, 0, 0o666);
            setup.env = vec![
                ("LD_PRELOAD".into(), shim.display().to_string()),
                ("SLOWSYNC_MS".into(), format!("{lat}")),
                ("SLOWSYNC_LOG".into(), log.display().to_string()),
            ];
        }
        let mut inst: Vec<Instance> = [Mta::Tern, Mta::Postfix]
            .into_iter()
            .map(|m| Instance::start(m, &cfg.bin, &setup, Sink::start()))
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let mut shim_msgs = [0usize; 2];
        let mut shim_calls_by = [0usize; 2];
        for rep in 0..cfg.reps {
            for sessions in SESSIONS {
                for tls in [false, true] {
                    let n = messages(cfg, lat, sessions);
                    for m in order(pair) {
                        let i = m as usize;
                        let c0 = shim_calls(&log);
                        let (acc, thr, cpu) = load(&inst[i], cfg, n, sessions, tls);
                        shim_calls_by[i] += shim_calls(&log) - c0;
                        shim_msgs[i] += n;
                        let k = format!("lat={lat} s={sessions} tls={tls}");
                        push(s, &format!("accept {k}"), m, acc);
                        push(s, &format!("through {k}"), m, thr);
                        push(s, &format!("cpu {k}"), m, cpu * 1e6);
                        println!(
                            "rep {rep} {k} {:8}: {n} msgs, in {acc:7.1}/s, through {thr:7.1}/s, \
                             cpu {:.0} us/msg",
                            m.name(),
                            cpu * 1e6
                        );
                    }
                    pair += 1;
                }
            }
        }
        if lat > 0.0 {
            for m in [Mta::Tern, Mta::Postfix] {
                let i = m as usize;
                let per = shim_calls_by[i] as f64 / shim_msgs[i].max(1) as f64;
                push(s, &format!("shim lat={lat}"), m, per);
                println!(
                    "shim at {lat} ms: {} made {per:.2} delayed syncs per message",
                    m.name()
                );
            }
        }
        for i in &mut inst {
            i.stop();
        }
    }
}

/// TLS handshakes per second (connect, EHLO, STARTTLS, handshake, QUIT).
fn handshakes(cfg: &Cfg, s: &mut Samples) -> Vec<String> {
    let mut inst: Vec<Instance> = [Mta::Tern, Mta::Postfix]
        .into_iter()
        .map(|m| Instance::start(m, &cfg.bin, &cfg.setup, Sink::start()))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let n = if cfg.quick { 60 } else { 300 };
    let mut pair = 0;
    for rep in 0..cfg.reps {
        for sessions in [1, 20] {
            for m in order(pair) {
                let i = m as usize;
                let cpu0 = procs::cpu_secs(inst[i].pgid());
                let l = loadgen::Load {
                    port: inst[i].port(),
                    sessions,
                    count: n,
                    tls: Some((cfg.ca.clone(), CERT_NAME.into())),
                    from: FROM.into(),
                    to: TO.into(),
                    limit: LIMIT,
                };
                let r = loadgen::handshakes(&l)
                    .unwrap_or_else(|e| panic!("{}: handshakes: {e}", m.name()));
                // Let the servers finish the sessions' ends before reading CPU.
                std::thread::sleep(Duration::from_millis(300));
                let cpu = procs::cpu_secs(inst[i].pgid()) - cpu0;
                push(s, &format!("hs s={sessions}"), m, r.rate());
                push(s, &format!("hscpu s={sessions}"), m, cpu / n as f64 * 1e6);
                println!(
                    "rep {rep} handshakes s={sessions} {:8}: {:.1}/s, cpu {:.0} us each",
                    m.name(),
                    r.rate(),
                    cpu / n as f64 * 1e6
                );
            }
            pair += 1;
        }
    }
    let groups = inst
        .iter()
        .map(|i| {
            let g = loadgen::negotiated_on(i.port()).unwrap_or_else(|| "?".into());
            format!("{} {g}", i.mta.name())
        })
        .collect();
    for i in &mut inst {
        i.stop();
    }
    groups
}

/// RSS and PSS summed over each MTA's processes: idle, then holding 50
/// and 100 idle TLS sessions.
fn memory(cfg: &Cfg, s: &mut Samples) {
    for rep in 0..cfg.reps {
        for m in order(rep) {
            let mut inst = Instance::start(m, &cfg.bin, &cfg.setup, Sink::start());
            // Let start-up finish (first queue scan, allocator trims).
            std::thread::sleep(Duration::from_secs(1));
            let mem = procs::Memory::of_group(inst.pgid());
            push(s, "rss s=0", m, mem.rss() as f64);
            push(s, "pss s=0", m, mem.pss() as f64);
            push(s, "procs s=0", m, mem.procs.len() as f64);
            println!(
                "rep {rep} {} idle: {} kB RSS, {} kB PSS ({})",
                m.name(),
                mem.rss(),
                mem.pss(),
                mem.detail()
            );
            let mut held = Vec::new();
            for target in MEM_SESSIONS {
                let more = loadgen::hold(
                    inst.port(),
                    target - held.len(),
                    &cfg.ca,
                    CERT_NAME,
                    Duration::from_secs(120),
                )
                .unwrap_or_else(|e| panic!("{}: opening sessions: {e}", m.name()));
                held.extend(more);
                std::thread::sleep(Duration::from_millis(500));
                let mem = procs::Memory::of_group(inst.pgid());
                push(s, &format!("rss s={target}"), m, mem.rss() as f64);
                push(s, &format!("pss s={target}"), m, mem.pss() as f64);
                push(s, &format!("procs s={target}"), m, mem.procs.len() as f64);
                println!(
                    "rep {rep} {} at {target} sessions: {} kB RSS, {} kB PSS, {} processes",
                    m.name(),
                    mem.rss(),
                    mem.pss(),
                    mem.procs.len()
                );
            }
            drop(held);
            inst.stop();
        }
    }
}

/// What strace saw over a run, per message.
#[derive(Default, Debug, Clone)]
struct Trace {
    syncs: BTreeMap<String, usize>,
    queue_bytes: u64,
    other_bytes: u64,
    creates: usize,
    renames: usize,
    unlinks: usize,
    processes: usize,
}

/// Parses `strace -ff -y` files `prefix.PID`: sync calls by name; bytes
/// returned by write-family calls on regular files (by the path strace
/// prints for the descriptor), split into files below `queue` and others
/// (logs); file creations (open with O_CREAT), renames and unlinks below
/// `queue`.
fn parse_trace(dir: &Path, queue: &Path) -> Trace {
    let q = queue.display().to_string();
    let mut t = Trace::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return t;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with("trace.") {
            continue;
        }
        t.processes += 1;
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            let Some((call, rest)) = line.split_once('(') else {
                continue;
            };
            // "= 7</path>" for a new descriptor, "= 1024", "= -1 ENOENT ...".
            // strace pads short calls: `unlink("active/X")      = 0`.
            let ret: i64 = line
                .rsplit_once(" = ")
                .filter(|(call, _)| call.trim_end().ends_with(')'))
                .map(|(_, r)| {
                    let end = r
                        .char_indices()
                        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
                        .map_or(r.len(), |(i, _)| i);
                    &r[..end]
                })
                .and_then(|r| r.parse().ok())
                .unwrap_or(-1);
            if ret < 0 {
                continue;
            }
            // The first argument's path, as -y prints it: `5</path>`.
            let path = rest
                .split_once('<')
                .and_then(|(_, p)| p.split_once('>'))
                .map(|(p, _)| p)
                .unwrap_or("");
            match call {
                "fsync" | "fdatasync" | "syncfs" | "sync" | "sync_file_range" | "msync" => {
                    *t.syncs.entry(call.to_string()).or_default() += 1
                }
                "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => {
                    if path.starts_with(&q) {
                        t.queue_bytes += ret as u64;
                    } else if path.starts_with('/') {
                        t.other_bytes += ret as u64;
                    }
                }
                "open" | "openat" | "creat" if rest.contains("O_CREAT") && in_queue(rest, &q) => {
                    t.creates += 1
                }
                "rename" | "renameat" | "renameat2" if in_queue(rest, &q) => t.renames += 1,
                "unlink" | "unlinkat" if in_queue(rest, &q) => t.unlinks += 1,
                _ => {}
            }
        }
    }
    t
}

/// Whether a traced call's arguments name a file in the queue: a path or
/// descriptor path below `q`, or a path relative to the working directory
/// (Postfix's daemons work in the queue directory and name queue files
/// relative to it, e.g. `rename("incoming/X", "active/X")`).
fn in_queue(args: &str, q: &str) -> bool {
    if args.contains(q) {
        return true;
    }
    // The first quoted argument; strace -y shows directory descriptors as
    // `N</path>`, and `AT_FDCWD` without one.
    let first = args.split('"').nth(1).unwrap_or("/");
    let dirfd_abs = args
        .split_once('"')
        .is_some_and(|(before, _)| before.contains('<'));
    !first.starts_with('/') && !dirfd_abs
}

/// Median and 90th percentile, in ms, of `n` 1 KiB write + fdatasync
/// pairs on a file where the spools live: what a sync costs on this
/// machine, now.
fn sync_latency(n: usize) -> (f64, f64) {
    use std::io::Write;
    let dir = TempDir::new("bench-sync");
    let path = dir.join("probe");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return (0.0, 0.0);
    };
    let mut v: Vec<f64> = (0..n.max(1))
        .map(|_| {
            let t = Instant::now();
            let _ = f.write_all(&[b'x'; 1024]);
            let _ = f.sync_data();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

/// strace over a separate 100-message run at 1 and at 20 sessions, from
/// the first accept to the removal of the last message.
fn strace_runs(cfg: &Cfg, s: &mut Samples, traces: &mut Vec<(Mta, usize, Trace)>) {
    let n = 100;
    for sessions in [1, 20] {
        for m in [Mta::Tern, Mta::Postfix] {
            let inst = Instance::start(m, &cfg.bin, &cfg.setup, Sink::start());
            std::thread::sleep(Duration::from_secs(1));
            let dir = TempDir::new("bench-strace");
            let mut cmd = Command::new("strace");
            cmd.args(["-f", "-ff", "-qq", "-y", "-s", "0", "-e"])
                .arg(
                    "trace=fsync,fdatasync,syncfs,sync,sync_file_range,msync,write,pwrite64,\
                     writev,pwritev,pwritev2,open,openat,creat,rename,renameat,renameat2,\
                     unlink,unlinkat",
                )
                .arg("-o")
                .arg(dir.join("trace"));
            for p in procs::group_pids(inst.pgid(), false) {
                cmd.arg("-p").arg(p.to_string());
            }
            let mut st = Daemon::spawn("strace", cmd, &dir.join("strace.out"));
            // strace attaches before it writes the per-process files.
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::fs::read_dir(dir.path())
                .map(|r| {
                    r.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with("trace."))
                        .count()
                })
                .unwrap_or(0)
                < procs::group_pids(inst.pgid(), false).len()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(500));
            let (_, thr, _) = load(&inst, cfg, n, sessions, false);
            // Lazy work after the queue empties (Postfix's qmgr, tern's
            // batch) still belongs to these messages.
            std::thread::sleep(Duration::from_secs(2));
            st.stop();
            let queue = match m {
                Mta::Tern => inst.tern.as_ref().map(|t| t.spool()).unwrap_or_default(),
                Mta::Postfix => inst
                    .postfix
                    .as_ref()
                    .map(|p| p.config_dir().with_file_name("spool"))
                    .unwrap_or_default(),
            };
            let t = parse_trace(dir.path(), &queue);
            let syncs: usize = t.syncs.values().sum();
            println!(
                "strace {} s={sessions}: {n} msgs ({thr:.0}/s traced), {:.2} syncs/msg {:?}, \
                 {:.0} queue bytes/msg, {:.0} other file bytes/msg, {} processes",
                m.name(),
                syncs as f64 / n as f64,
                t.syncs,
                t.queue_bytes as f64 / n as f64,
                t.other_bytes as f64 / n as f64,
                t.processes
            );
            push(
                s,
                &format!("syncs s={sessions}"),
                m,
                syncs as f64 / n as f64,
            );
            traces.push((m, sessions, t));
            let mut inst = inst;
            inst.stop();
        }
    }
}

/// "median (min–max)" with `prec` decimals.
fn fmt3(v: &[f64], prec: usize) -> String {
    let mut v = v.to_vec();
    let (lo, med, hi) = procs::spread(&mut v);
    if v.len() <= 1 {
        format!("{med:.prec$}")
    } else {
        format!("{med:.prec$} ({lo:.prec$}–{hi:.prec$})")
    }
}

/// Median of the per-pair ratios tern/Postfix.
fn ratio(t: &[f64], p: &[f64]) -> String {
    let mut r: Vec<f64> = t
        .iter()
        .zip(p)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect();
    if r.is_empty() {
        return "–".into();
    }
    fmt3(&r.clone(), 2)
        .split(' ')
        .next()
        .map(str::to_string)
        .unwrap_or_default()
        + &{
            let (lo, _, hi) = procs::spread(&mut r);
            if r.len() > 1 {
                format!(" ({lo:.2}–{hi:.2})")
            } else {
                String::new()
            }
        }
}

fn cell(s: &Samples, key: &str, prec: usize) -> (String, String, String) {
    match s.get(key) {
        Some((t, p)) => (fmt3(t, prec), fmt3(p, prec), ratio(t, p)),
        None => ("–".into(), "–".into(), "–".into()),
    }
}

fn sh(cmd: &str) -> String {
    let mut c = Command::new("sh");
    c.args(["-c", cmd]);
    run(c, None, Duration::from_secs(20))
        .stdout
        .trim()
        .to_string()
}

/// Writes the CSV the plot is drawn from: key, mta, median, min, max.
fn write_csv(s: &Samples, path: &Path) {
    let mut out = String::from("key,mta,median,min,max\n");
    for (k, (t, p)) in s {
        for (m, v) in [("tern", t), ("Postfix", p)] {
            if v.is_empty() {
                continue;
            }
            let (lo, med, hi) = procs::spread(&mut v.clone());
            let _ = writeln!(out, "{k},{m},{med},{lo},{hi}");
        }
    }
    write(path, out);
}

/// Median of the paired ratios tern/Postfix for `key`, if measured.
fn median_ratio(s: &Samples, key: &str) -> Option<f64> {
    let (t, p) = s.get(key)?;
    let mut r: Vec<f64> = t
        .iter()
        .zip(p)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect();
    if r.is_empty() {
        return None;
    }
    Some(procs::spread(&mut r).1)
}

/// The issue 15 bar, checked against this run's figures.
fn bar(w: &mut String, s: &Samples, traces: &[(Mta, usize, Trace)]) {
    let _ = writeln!(w, "## Against the bar of issue 15\n");
    let _ = writeln!(w, "| target | this run | met |\n|---|---|---|");
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "not measured",
    };
    for lat in LATENCIES {
        for sessions in [20, 50] {
            let r = median_ratio(s, &format!("through lat={lat} s={sessions} tls=false"));
            let _ = writeln!(
                w,
                "| ≥ 2× Postfix end to end, {sessions} sessions, {lat} ms per sync | {} | {} |",
                r.map_or("–".into(), |r| format!("{r:.2}×")),
                verdict(r.map(|r| r >= 2.0))
            );
        }
    }
    for lat in LATENCIES.iter().filter(|l| **l > 0.0) {
        let r = median_ratio(s, &format!("through lat={lat} s=1 tls=false"));
        let _ = writeln!(
            w,
            "| ≥ 1× Postfix end to end, 1 session, {lat} ms per sync | {} | {} |",
            r.map_or("–".into(), |r| format!("{r:.2}×")),
            verdict(r.map(|r| r >= 1.0))
        );
    }
    for (sessions, target) in [(1, 1.0), (20, 0.3)] {
        let v = traces
            .iter()
            .find(|(m, n, _)| *m == Mta::Tern && *n == sessions)
            .map(|(_, _, t)| t.syncs.values().sum::<usize>() as f64 / 100.0);
        let _ = writeln!(
            w,
            "| ≤ {target} sync per message, {sessions} session(s) (strace) | {} | {} |",
            v.map_or("–".into(), |v| format!("{v:.2}")),
            verdict(v.map(|v| v <= target))
        );
    }
    let idle = s.get("rss s=0").and_then(|(t, _)| {
        let mut t = t.clone();
        (!t.is_empty()).then(|| procs::spread(&mut t).1)
    });
    let _ = writeln!(
        w,
        "| idle RSS ≤ 2.5 MiB (target is for the static musl build; this is the glibc build, \
         whose shared libc pages add ~1.4 MiB: `cargo bench --bench idle` measures musl) | {} | {} |\n",
        idle.map_or("–".into(), |v| format!("{:.2} MiB", v / 1024.0)),
        verdict(idle.map(|v| v <= 2560.0))
    );
}

/// Facts about the machine during the run.
struct Machine {
    /// Median and p90 ms of write + fdatasync, before and after.
    sync_before: (f64, f64),
    sync_after: (f64, f64),
    /// /proc/loadavg before and after.
    load_before: String,
    load_after: String,
    /// TLS version, suite and key exchange group the load generator
    /// negotiated with each MTA.
    groups: Vec<String>,
}

fn report(
    cfg: &Cfg,
    s: &Samples,
    traces: &[(Mta, usize, Trace)],
    mach: &Machine,
    started: &str,
    took: Duration,
) -> String {
    let mut md = String::new();
    let w = &mut md;
    let commit = sh("git rev-parse --short HEAD 2>/dev/null; git status --porcelain 2>/dev/null | grep -q . && echo '(with uncommitted changes)'");
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let _ = writeln!(w, "# Benchmarks: tern beside Postfix\n");
    let _ =
        writeln!(
        w,
        "Generated by `bench/suite.sh`{} on {started} (took {:.0} min), commit {}, from one run: \
         every table below and `docs/benchmarks.png` come from the same run. \
         Machine: {} CPU(s) (`nproc`), {}, kernel {}, spool on {}. tern: {} ({} bytes). \
         Postfix: {} (Debian package). {} repetition(s) per point.\n",
        if cfg.quick { " in quick mode (`BENCH_QUICK=1`)" } else { "" },
        took.as_secs_f64() / 60.0,
        commit.replace('\n', " "),
        sh("nproc"),
        cpu.trim(),
        sh("uname -r"),
        sh(&format!("df -T {} | awk 'NR==2 {{print $2}}'", common::tempdir::BASE)),
        cfg.bin.display(),
        std::fs::metadata(&cfg.bin).map(|m| m.len()).unwrap_or(0),
        sh("postconf -dh mail_version"),
        cfg.reps,
    );
    let _ = writeln!(
        w,
        "A 1 KiB write + fdatasync on the spools' file system took {:.2} ms (median; p90 {:.2} ms) \
         before the run and {:.2} ms (p90 {:.2} ms) after it; load average {} before, {} after. \
         The added latencies below come on top of that.\n",
        mach.sync_before.0,
        mach.sync_before.1,
        mach.sync_after.0,
        mach.sync_after.1,
        mach.load_before,
        mach.load_after
    );
    if cfg.quick {
        let _ = writeln!(
            w,
            "**Quick mode**: one repetition and a fifth of the messages per point; figures are \
             indicative only. Rates from a shared machine are noisy (see the load average \
             above); instruction and sync counts are not.\n"
        );
    }
    bar(w, s, traces);
    let _ = writeln!(w, "## How to run\n");
    let _ = writeln!(
        w,
        "```\nbench/suite.sh            # full run, ~25 minutes\nBENCH_QUICK=1 bench/suite.sh   # quick run, a few minutes\n\
         BENCH_CROSS=1 bench/suite.sh   # also cross-build every board first (slow)\n```\n\n\
         As root (the MTAs drop privileges), on a machine with Debian's Postfix, smtp-source/smtp-sink, \
         strace, valgrind, qemu-user and python3-matplotlib (`scripts/install-test-deps.sh`, \
         `scripts/install-bench-deps.sh`; the suite runs the latter). It builds the slow-flash shim \
         (`bench/slowsync.c`) and the release binary, runs `cargo bench --bench suite`, counts \
         instructions (`bench/callgrind.sh`), then draws the plot (`bench/plot.py`). \
         `BENCH_REPS=N` sets the repetitions (default 3). Not part of the tests.\n"
    );
    let _ = writeln!(w, "## Throughput\n");
    let _ = writeln!(
        w,
        "Messages per second, median (min–max) over the repetitions; ratio = median of the \
         paired ratios tern/Postfix (min–max). *in*: accept rate, messages over the time the \
         client took to send them all; *through*: end to end, messages over the time until \
         smtp-sink counted the last one. Plain: smtp-source (`-l 1024`, one message per \
         session); STARTTLS: the project's load generator (`bench/tls_load.rs`, same message \
         shape, a full TLS handshake per message).\n"
    );
    for lat in LATENCIES {
        let _ = writeln!(w, "### {lat} ms added per sync\n");
        let _ = writeln!(w, "| sessions | inbound | tern in | Postfix in | ratio in | tern through | Postfix through | ratio through |");
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
        for sessions in SESSIONS {
            for tls in [false, true] {
                let k = format!("lat={lat} s={sessions} tls={tls}");
                let a = cell(s, &format!("accept {k}"), 0);
                let t = cell(s, &format!("through {k}"), 0);
                let _ = writeln!(
                    w,
                    "| {sessions} | {} | {} | {} | {} | {} | {} | {} |",
                    if tls { "STARTTLS" } else { "plain" },
                    a.0,
                    a.1,
                    a.2,
                    t.0,
                    t.1,
                    t.2
                );
            }
        }
        if lat > 0.0 {
            let c = cell(s, &format!("shim lat={lat}"), 2);
            let _ = writeln!(
                w,
                "\nThe shim delayed {} sync calls per message in tern's processes and {} in \
                 Postfix's (counted by the shim itself over all the runs at this latency).",
                c.0, c.1
            );
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## CPU per message\n");
    let _ = writeln!(
        w,
        "User plus system CPU time of all the MTA's processes per message, in µs, over the \
         accept, relay and removal of each run with no added latency: utime+stime+cutime+cstime \
         summed over the process group from /proc (Postfix's exited daemons are in master's \
         cutime/cstime).\n"
    );
    let _ = writeln!(
        w,
        "| sessions | inbound | tern | Postfix | ratio |\n|---|---|---|---|---|"
    );
    for sessions in SESSIONS {
        for tls in [false, true] {
            let c = cell(s, &format!("cpu lat=0 s={sessions} tls={tls}"), 0);
            let _ = writeln!(
                w,
                "| {sessions} | {} | {} | {} | {} |",
                if tls { "STARTTLS" } else { "plain" },
                c.0,
                c.1,
                c.2
            );
        }
    }
    let _ = writeln!(w, "\n## TLS handshakes\n");
    let _ = writeln!(
        w,
        "Full handshakes per second (connect, EHLO, STARTTLS, handshake, QUIT; no resumption; \
         RSA-2048 certificate; the client is rustls offering its default key exchange groups), \
         and CPU µs per handshake of all the MTA's processes. Negotiated: {}.\n",
        mach.groups.join("; ")
    );
    let _ = writeln!(w, "| sessions | tern /s | Postfix /s | ratio | tern CPU µs | Postfix CPU µs | ratio |\n|---|---|---|---|---|---|---|");
    for sessions in [1, 20] {
        let h = cell(s, &format!("hs s={sessions}"), 0);
        let c = cell(s, &format!("hscpu s={sessions}"), 0);
        let _ = writeln!(
            w,
            "| {sessions} | {} | {} | {} | {} | {} | {} |",
            h.0, h.1, h.2, c.0, c.1, c.2
        );
    }
    let _ = writeln!(w, "\n## Syncs and bytes written per message\n");
    let _ = writeln!(
        w,
        "A separate run of 100 plain messages per MTA and session count, no added latency, \
         under `strace -f -ff -y` attached to every process of the MTA (Postfix: master and its \
         daemons, and those it starts during the run; tern: the daemon and its helper), from before the first \
         connection until 2 s after the queue was empty, so accept, delivery and removal are all \
         in. Syncs: fsync, fdatasync, syncfs, sync, sync_file_range and msync calls. Bytes: \
         the return values of write, pwrite64, writev, pwritev(2) on descriptors that strace \
         shows as regular files: *queue* = files below the queue directory, *log* = all other \
         files (the maillog, Postfix's data directory). Sockets and pipes are not counted; \
         what the file system adds (journal, metadata blocks) is not seen by strace. Files \
         created (open with O_CREAT), renamed and unlinked below the queue directory are counted per message too \
         (Postfix names queue files relative to its queue directory; failed calls are not counted). \
         Tasks traced: processes and threads strace followed.\n"
    );
    let _ = writeln!(w, "| MTA | sessions | syncs/msg | by call | queue bytes/msg | log bytes/msg | creates/msg | renames/msg | unlinks/msg | tasks traced |\n|---|---|---|---|---|---|---|---|---|---|");
    for (m, sessions, t) in traces {
        let per = |x: usize| x as f64 / 100.0;
        let by: Vec<String> = t
            .syncs
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", per(*v)))
            .collect();
        let _ = writeln!(
            w,
            "| {} | {sessions} | {:.2} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            m.name(),
            per(t.syncs.values().sum()),
            by.join(", "),
            t.queue_bytes as f64 / 100.0,
            t.other_bytes as f64 / 100.0,
            per(t.creates),
            per(t.renames),
            per(t.unlinks),
            t.processes
        );
    }
    let _ = writeln!(w, "\n## Memory\n");
    let _ = writeln!(
        w,
        "VmRSS and Pss (`/proc/PID/smaps_rollup`) summed over every live process of the MTA, \
         in KiB, median (min–max): idle one second after start, then holding 50 and 100 idle \
         sessions (each after EHLO, STARTTLS, handshake, EHLO). Pss counts shared pages once \
         across the processes; RSS sums count them per process. Same configuration as the \
         throughput runs (glibc release build of tern).\n"
    );
    let _ = writeln!(w, "| sessions | tern RSS | Postfix RSS | ratio | tern PSS | Postfix PSS | ratio | processes tern / Postfix |\n|---|---|---|---|---|---|---|---|");
    for sessions in [0, 50, 100] {
        let r = cell(s, &format!("rss s={sessions}"), 0);
        let p = cell(s, &format!("pss s={sessions}"), 0);
        let n = cell(s, &format!("procs s={sessions}"), 0);
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            if sessions == 0 {
                "idle".to_string()
            } else {
                sessions.to_string()
            },
            r.0,
            r.1,
            r.2,
            p.0,
            p.1,
            p.2,
            n.0,
            n.1
        );
    }
    let _ = writeln!(w, "\n## Instructions (cost on ARM)\n");
    let insn = std::env::var("BENCH_INSN")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    if insn.trim().is_empty() {
        let _ = writeln!(
            w,
            "Not measured in this run (`bench/callgrind.sh` did not run or failed).\n"
        );
    } else {
        let _ = writeln!(w, "{}\n", insn.trim_end());
    }
    let _ = writeln!(w, "## Binary size\n");
    let sizes = std::env::var("BENCH_SIZES")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let _ = writeln!(w, "{}\n", sizes.trim_end());
    let _ = writeln!(w, "## Method\n");
    let _ = writeln!(
        w,
        "- Both MTAs run on loopback side by side, each relaying everything (`relayhost = \
         [127.0.0.1]:PORT`, no TLS outbound) to its own `smtp-sink -c` (Postfix's test server). \
         Outbound concurrency: `default_destination_concurrency_limit = {CONCURRENCY}` for both \
         (Postfix's default; Postfix reaches it by slow start from \
         `initial_destination_concurrency = 5`). tern: `max_connections = 128` (100 inbound \
         sessions + {CONCURRENCY} outbound + 8); Postfix: `default_process_limit = 140`; the \
         rest as the test harness sets Postfix up (tests/common/postfix.rs: Debian's defaults, \
         chroot off, short retry times). Both offer STARTTLS with the same \
         RSA-2048 certificate; mynetworks = 127.0.0.0/8.\n\
         - Pairs: each point runs tern and Postfix back to back, the order alternating from \
         point to point; all points are repeated {} time(s). Before the next run both \
         queues are empty.\n\
         - Slow flash: `bench/slowsync.c`, an LD_PRELOAD library, sleeps the given time after \
         every real fsync, fdatasync, syncfs, sync, sync_file_range and msync. tern gets it in \
         its environment; Postfix through `import_environment` (master passes its daemons only \
         those variables). The shim logs each call, and the tables above show the count per \
         message for both MTAs: proof that it was in effect in both.\n\
         - Messages per run: at 0 / 2 / 10 ms: 300 / 150 / 60 at 1 session, 1000 / 600 / 300 at \
         20, 1500 / 1000 / 500 at 50 (a fifth, at least 2 per session, in quick mode). Every \
         run is bounded (300 s), every wait too.\n",
        cfg.reps
    );
    md
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("suite: skipped (run bench/suite.sh)");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench suite: run as root (tern drops to nobody; Postfix's master needs root)");
        std::process::exit(2);
    }
    let t0 = Instant::now();
    let started = match std::env::var("BENCH_T0") {
        Ok(t) if !t.is_empty() => sh(&format!("date -u -d @{t} '+%Y-%m-%d %H:%M UTC'")),
        _ => sh("date -u '+%Y-%m-%d %H:%M UTC'"),
    };
    let load_before = sh("cut -d' ' -f1-3 /proc/loadavg");
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let reps = env_num("BENCH_REPS", if quick { 1 } else { 3 }).max(1);
    let out = PathBuf::from(std::env::var("BENCH_OUT").unwrap_or_else(|_| "target/bench".into()));
    let doc =
        PathBuf::from(std::env::var("BENCH_DOC").unwrap_or_else(|_| "docs/benchmarks.md".into()));
    let _ = std::fs::create_dir_all(&out);
    let bin = std::env::var_os("TERN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tern")));
    let shim = std::env::var_os("BENCH_SHIM")
        .map(PathBuf::from)
        .filter(|p| p.exists());
    let ca = TestCa::new();
    let leaf = ca.server_cert(KeyKind::Rsa2048, &[CERT_NAME]);
    let work = TempDir::new("bench-suite");
    // The shim's logs live here and every MTA user writes them.
    own(work.path(), 0, 0, 0o755);
    let cfg = Cfg {
        quick,
        reps,
        bin,
        shim,
        out,
        ca: ca.cert.clone(),
        setup: Setup {
            sink_port: 0,
            cert: Some((leaf.chain.clone(), leaf.key.clone())),
            concurrency: CONCURRENCY,
            max_sessions: 100,
            env: Vec::new(),
        },
        work,
    };
    println!(
        "suite: tern {} beside Postfix, {} repetition(s){}",
        cfg.bin.display(),
        cfg.reps,
        if quick { ", quick" } else { "" }
    );
    let mut s = Samples::new();
    let mut traces = Vec::new();
    let lat0 = sync_latency(50);
    println!(
        "sync latency now: median {:.2} ms, p90 {:.2} ms",
        lat0.0, lat0.1
    );
    // `BENCH_ONLY=strace,memory` runs some parts only (a partial report,
    // for working on the suite itself).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only.split(',').any(|p| p.trim() == name);
    if part("throughput") {
        throughput(&cfg, &mut s);
    }
    let groups = if part("handshakes") {
        handshakes(&cfg, &mut s)
    } else {
        Vec::new()
    };
    if part("memory") {
        memory(&cfg, &mut s);
    }
    if part("strace") {
        strace_runs(&cfg, &mut s, &mut traces);
    }
    let lat1 = sync_latency(50);
    println!(
        "sync latency now: median {:.2} ms, p90 {:.2} ms",
        lat1.0, lat1.1
    );
    write_csv(&s, &cfg.out.join("results.csv"));
    let machine = Machine {
        sync_before: lat0,
        sync_after: lat1,
        load_before,
        load_after: sh("cut -d' ' -f1-3 /proc/loadavg"),
        groups,
    };
    // bench/suite.sh passes its own start (epoch seconds): the run's time
    // includes the builds and instruction counts before this program.
    let took = std::env::var("BENCH_T0")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .and_then(|t| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?;
            now.checked_sub(Duration::from_secs(t))
        })
        .unwrap_or_else(|| t0.elapsed());
    let md = report(&cfg, &s, &traces, &machine, &started, took);
    write(&doc, md);
    println!(
        "suite: wrote {} and {}",
        doc.display(),
        cfg.out.join("results.csv").display()
    );
}
