//! Service and queue control front ends: `tern stop`, `tern reload`,
//! `tern status` (the daemon is found through its locked pid file,
//! [`crate::pidfile`]) and `tern queue` (Postfix's postsuper,
//! [`crate::queue::control`]). Exit codes follow the LSB init-script
//! conventions where one applies (docs/operation.md).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::args::{self, Spec};
use crate::pidfile::{self, State};
use crate::queue::control::{self, Done, Op};

/// LSB: the program is not running (`status`).
pub const EXIT_NOT_RUNNING: u8 = 3;
/// LSB: the user has insufficient privilege.
pub const EXIT_NO_PERMISSION: u8 = 4;
/// LSB: the program is not running (actions other than `status`).
pub const EXIT_NOT_RUNNING_ACTION: u8 = 7;

/// Default bound for `tern stop` to wait for the daemon to exit: its drain
/// takes at most 10 s, plus slack for a loaded machine.
const STOP_WAIT: Duration = Duration::from_secs(30);

const STOP_USAGE: &str = "usage: tern stop [-c FILE] [-t SECONDS]
  sends SIGTERM to the daemon and waits (default 30 s) until it has exited";
const RELOAD_USAGE: &str = "usage: tern reload [-c FILE]
  sends SIGHUP: the daemon re-reads its configuration and tables";
const STATUS_USAGE: &str = "usage: tern status [-c FILE]
  running or not (exit 0 / 3), pid, uptime, listeners, queue, outbound TLS
  results of the last 24 h, memory";
/// `tern queue --help`.
pub const QUEUE_USAGE: &str = "usage: tern queue [-c FILE] delete|hold|release|requeue ID...|ALL|-
  delete   remove messages from the queue (postsuper -d)
  hold     put messages on hold: never delivered until released (postsuper -h)
  release  release held messages (postsuper -H)
  requeue  retry messages now, held ones included (postsuper -r)
  ALL: every message the operation applies to; -: read IDs from stdin";

fn spec<'a>(name: &'a str, usage: &'a str, valued: &'a [&'a str], max: usize) -> Spec<'a> {
    Spec {
        name,
        usage,
        flags: &[],
        valued,
        max_operands: max,
    }
}

/// The running daemon's pid, or the exit code and message for "not running".
fn running_pid(queue_dir: &Path, not_running: u8) -> Result<u32, ExitCode> {
    match pidfile::state(queue_dir) {
        Ok(State::Running(pid)) => Ok(pid),
        Ok(State::Stopped) => {
            eprintln!("tern: the mail system is not running");
            Err(ExitCode::from(not_running))
        }
        Err(e) => {
            eprintln!("tern: fatal: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) -> Result<(), ExitCode> {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        eprintln!("tern: fatal: bad pid {pid}");
        return Err(ExitCode::from(1));
    };
    // SAFETY: kill has no memory-safety preconditions; the pid comes from
    // the locked pid file, so it is the daemon's.
    if unsafe { libc::kill(p, sig) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    eprintln!("tern: fatal: cannot signal the daemon (pid {pid}): {e}");
    Err(ExitCode::from(if e.raw_os_error() == Some(libc::EPERM) {
        EXIT_NO_PERMISSION
    } else {
        1
    }))
}

/// `tern stop [-t SECONDS]`.
pub fn stop(argv: &[String]) -> ExitCode {
    if let Err(c) = args::check(&spec("tern stop", STOP_USAGE, &["-c", "-t"], 0), argv) {
        return c;
    }
    let mut wait = STOP_WAIT;
    if let Some(i) = argv.iter().position(|a| a == "-t") {
        match argv.get(i + 1).and_then(|s| s.parse::<u64>().ok()) {
            Some(s) => wait = Duration::from_secs(s),
            None => {
                eprintln!("tern stop: -t needs a number of seconds\n{STOP_USAGE}");
                return ExitCode::from(args::EX_USAGE);
            }
        }
    }
    let cfg = match crate::cli::front_end_config_pub(argv) {
        Ok((c, _)) => c,
        Err(code) => return code,
    };
    let dir = cfg.queue_directory();
    // LSB: stopping a stopped service is a success.
    let pid = match running_pid(&dir, 0) {
        Ok(p) => p,
        Err(c) => return c,
    };
    if let Err(c) = signal(pid, libc::SIGTERM) {
        return c;
    }
    eprintln!(
        "tern: stopping the mail system (pid {pid}); waiting up to {} s",
        wait.as_secs()
    );
    let until = Instant::now() + wait;
    loop {
        match pidfile::state(&dir) {
            Ok(State::Stopped) => {
                eprintln!("tern: stopped");
                return ExitCode::SUCCESS;
            }
            Ok(State::Running(_)) | Err(_) => {}
        }
        if Instant::now() >= until {
            eprintln!(
                "tern: fatal: the daemon (pid {pid}) is still running {} s after SIGTERM",
                wait.as_secs()
            );
            return ExitCode::from(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tern reload`.
pub fn reload(argv: &[String]) -> ExitCode {
    if let Err(c) = args::check(&spec("tern reload", RELOAD_USAGE, &["-c"], 0), argv) {
        return c;
    }
    let cfg = match crate::cli::front_end_config_pub(argv) {
        Ok((c, _)) => c,
        Err(code) => return code,
    };
    let pid = match running_pid(&cfg.queue_directory(), EXIT_NOT_RUNNING_ACTION) {
        Ok(p) => p,
        Err(c) => return c,
    };
    match signal(pid, libc::SIGHUP) {
        Ok(()) => {
            eprintln!("tern: refreshing the mail system (pid {pid})");
            ExitCode::SUCCESS
        }
        Err(c) => c,
    }
}

/// `tern status`: exit 0 running, 3 not running.
pub fn status(argv: &[String]) -> ExitCode {
    if let Err(c) = args::check(&spec("tern status", STATUS_USAGE, &["-c"], 0), argv) {
        return c;
    }
    let cfg = match crate::cli::front_end_config_pub(argv) {
        Ok((c, _)) => c,
        Err(code) => return code,
    };
    let dir = cfg.queue_directory();
    let pid = match pidfile::state(&dir) {
        Ok(State::Running(pid)) => pid,
        Ok(State::Stopped) => {
            println!("tern: the mail system is not running");
            return ExitCode::from(EXIT_NOT_RUNNING);
        }
        Err(e) => {
            eprintln!("tern: fatal: {e}");
            return ExitCode::from(1);
        }
    };
    match crate::status::query(&dir) {
        Ok(Some(text)) => {
            print!("{text}");
        }
        Ok(None) => {
            println!("tern: the mail system is running: pid {pid}");
            eprintln!("tern: the daemon does not answer on its status socket (starting?)");
        }
        Err(e) => {
            println!("tern: the mail system is running: pid {pid}");
            eprintln!("tern: no details: {e} (root or the spool's owner may ask)");
        }
    }
    ExitCode::SUCCESS
}

/// `tern queue OP ID...|ALL|-`.
pub fn queue(argv: &[String]) -> ExitCode {
    if let Err(c) = args::check(&spec("tern queue", QUEUE_USAGE, &["-c"], usize::MAX), argv) {
        return c;
    }
    let (cfg, rest) = match crate::cli::front_end_config_pub(argv) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(op) = rest.first().and_then(|w| Op::parse(w)) else {
        eprintln!("tern queue: missing or unknown operation\n{QUEUE_USAGE}");
        return ExitCode::from(args::EX_USAGE);
    };
    let mut ids: Vec<String> = rest[1..].to_vec();
    if ids.is_empty() {
        eprintln!("tern queue: no queue ID given (ID, ALL or -)\n{QUEUE_USAGE}");
        return ExitCode::from(args::EX_USAGE);
    }
    let dir = cfg.queue_directory();
    if !control::may_change(&dir) {
        eprintln!(
            "tern queue: fatal: only root or the owner of {} may change the queue",
            dir.display()
        );
        return ExitCode::from(EXIT_NO_PERMISSION);
    }
    crate::cli::init_logging(&cfg, false, "postsuper");
    let spool = match crate::queue::Spool::open(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tern queue: fatal: {e}");
            return ExitCode::from(75);
        }
    };
    if ids.iter().any(|i| i == "-") {
        use std::io::BufRead;
        ids.retain(|i| i != "-");
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => ids.extend(l.split_whitespace().map(str::to_string)),
                Err(e) => {
                    eprintln!("tern queue: fatal: reading queue IDs: {e}");
                    return ExitCode::from(74);
                }
            }
        }
    }
    if ids.iter().any(|i| i == "ALL") {
        ids = match control::all_ids(&spool, op) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("tern queue: fatal: {e}");
                return ExitCode::from(75);
            }
        };
    }
    let now = crate::queue::clock::now();
    let mut changed = 0;
    let mut failed = false;
    for id in &ids {
        if !crate::queue::envelope::is_queue_id(id) {
            eprintln!("tern queue: warning: invalid mail queue id: {id}");
            log::warn!(target: "postsuper", "warning: invalid mail queue id: {id}");
            continue;
        }
        match control::apply(&spool, op, id, now) {
            Ok(Done::Changed) => {
                changed += 1;
                log::info!(target: "postsuper", "{id}: {}", op.done_text());
            }
            Ok(Done::Skipped) => {}
            Err(e) => {
                failed = true;
                eprintln!("tern queue: warning: {id}: {e}");
                log::warn!(target: "postsuper", "warning: {id}: {e}");
            }
        }
    }
    // Removals and state records are lazily durable in the spool; what
    // this command reports done is made durable first, with one sync for
    // all the messages it touched.
    if let Err(e) = spool.sync_pending() {
        failed = true;
        eprintln!("tern queue: warning: {e}");
    }
    if changed > 0 {
        let line = op.summary(changed);
        eprintln!("tern queue: {line}");
        log::info!(target: "postsuper", "{line}");
        if matches!(op, Op::Release | Op::Requeue) {
            // Best effort: without a daemon the message waits for its start.
            let _ = crate::queue::wake::notify(&dir, crate::queue::wake::Wake::NewMail);
        }
    }
    if failed {
        ExitCode::from(75)
    } else {
        ExitCode::SUCCESS
    }
}
