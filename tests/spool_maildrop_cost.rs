//! Issue 2, flash cost of the maildrop path (docs/spool.md, "Flash cost
//! per accepted message"): what a message submitted by a user who is
//! neither root nor mail_owner costs the flash, counted the way the rest
//! of that table was measured, with `strace -f -y` on the real programs:
//! the user's `tern sendmail` (the maildrop file), then the daemon's
//! pickup (the queue file, and the unlink of the maildrop file). Needs
//! root (useradd, and strace attaching to the daemon), like tests/pickup.rs.

mod common;
mod ground_support;

use common::process::{run, Daemon};
use ground_support::{message, Tern, CMD_TIMEOUT, TERN, WAIT};
use std::process::Command;
use std::time::{Duration, Instant};

/// The syscalls that reach the flash or make something durable.
const TRACE: &str =
    "trace=fsync,fdatasync,syncfs,?rename,renameat,renameat2,?unlink,unlinkat,write,pwrite64,writev";

/// A login account for the test, deleted on drop.
struct User(String);

impl User {
    fn create() -> User {
        let name = format!("tcost{}", std::process::id());
        let _ = Command::new("userdel").arg("-f").arg(&name).output();
        let out = Command::new("useradd")
            .args(["-M", "-U", "-s", "/usr/sbin/nologin", "-d", "/nonexistent"])
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd: {out:?}");
        User(name)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg("-f").arg(&self.0).output();
    }
}

/// What one traced program asked of the file system.
#[derive(Debug, Default, PartialEq, Eq)]
struct Cost {
    /// `fsync` on files (full, metadata too).
    file_fsyncs: u32,
    /// `fdatasync` calls.
    fdatasyncs: u32,
    /// `fsync` on directories.
    dir_fsyncs: u32,
    /// `syncfs` calls (the whole file system).
    syncfs: u32,
    /// Renames.
    renames: u32,
    /// Unlinks that succeeded.
    unlinks: u32,
    /// Bytes written to files under the spool.
    bytes: u64,
}

/// `name(` right after the pid column of an strace -f line.
fn call(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().split_once(' ')?.1.trim_start();
    let (name, args) = rest.split_once('(')?;
    Some((name, args))
}

/// The return value at the end of a line (`= 93`).
fn ret(line: &str) -> Option<i64> {
    line.rsplit_once("= ")?.1.split(' ').next()?.parse().ok()
}

/// Adds up the lines of an `strace -f -y` log that touch `spool`, up to
/// and including the first line for which `last` is true (all if none).
fn cost(log: &str, spool: &str, last: impl Fn(&str) -> bool) -> Cost {
    let mut c = Cost::default();
    for line in log.lines() {
        let Some((name, args)) = call(line) else {
            continue;
        };
        // -y prints each fd as N</path>: the first argument names the file.
        let first = args.split([',', ')']).next().unwrap_or("");
        let in_spool = args.contains(spool);
        let ok = ret(line).is_some_and(|r| r >= 0);
        match name {
            "fsync" if in_spool && ok => {
                if std::path::Path::new(
                    first
                        .split_once('<')
                        .map_or("", |(_, p)| p.trim_end_matches('>')),
                )
                .is_dir()
                {
                    c.dir_fsyncs += 1;
                } else {
                    c.file_fsyncs += 1;
                }
            }
            "fdatasync" if in_spool && ok => c.fdatasyncs += 1,
            "syncfs" if in_spool && ok => c.syncfs += 1,
            n if n.starts_with("rename") && in_spool && ok => c.renames += 1,
            "unlink" | "unlinkat" if in_spool && ok => c.unlinks += 1,
            "write" | "pwrite64" | "writev" if first.contains(spool) => {
                c.bytes += ret(line).and_then(|r| u64::try_from(r).ok()).unwrap_or(0);
            }
            _ => {}
        }
        if last(line) {
            break;
        }
    }
    c
}

#[test]
fn maildrop_path_costs_one_fsync_and_a_syncfs_then_a_normal_commit() {
    let mut t = Tern::new("relayhost = [127.0.0.1]:1\n");
    t.start();
    let user = User::create();
    let spool = t.spool().display().to_string();

    // The daemon's side, traced from before the file arrives.
    let dtrace = t.dir.join("daemon.strace");
    let mut c = Command::new("strace");
    c.args(["-f", "-y", "-e", TRACE, "-o"])
        .arg(&dtrace)
        .arg("-p")
        .arg(t.pid().to_string());
    let mut tracer = Daemon::spawn("strace", c, &t.dir.join("strace.out"));
    let deadline = Instant::now() + WAIT;
    while !tracer.output().contains("attached") {
        assert!(tracer.exited().is_none(), "strace: {}", tracer.output());
        assert!(Instant::now() < deadline, "strace did not attach");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The user's side.
    let strace = t.dir.join("sendmail.strace");
    let msg = message("u@example.test", "maildrop cost");
    let mut c = Command::new("strace");
    c.args(["-f", "-y", "-e", TRACE, "-o"])
        .arg(&strace)
        .arg("setpriv")
        .arg(format!("--reuid={}", user.0))
        .arg(format!("--regid={}", user.0))
        .arg("--clear-groups")
        .arg(TERN)
        .args(["sendmail", "-t", "-c"])
        .arg(&t.conf)
        .current_dir("/");
    let out = run(c, Some(&msg), CMD_TIMEOUT);
    assert_eq!(out.status, Some(0), "{out:?}");
    let log = std::fs::read_to_string(&strace).unwrap_or_default();
    let sm = cost(&log, &spool, |_| false);
    assert!(
        log.contains("/maildrop/"),
        "the maildrop path was taken: {log}"
    );
    assert_eq!(
        (
            sm.file_fsyncs,
            sm.fdatasyncs,
            sm.dir_fsyncs,
            sm.syncfs,
            sm.renames,
            sm.unlinks
        ),
        (1, 0, 0, 1, 1, 0),
        "sendmail as a user: {sm:?}\n{log}"
    );
    // The maildrop file: a short envelope, then the message as given.
    let head = sm.bytes - msg.len() as u64;
    assert!((20..200).contains(&head), "{sm:?}");

    // The pickup queues it, then unlinks the maildrop file.
    t.wait_log("pickup", 1, WAIT);
    let deadline = Instant::now() + WAIT;
    let dlog = loop {
        let l = std::fs::read_to_string(&dtrace).unwrap_or_default();
        if l.lines()
            .any(|x| x.contains("unlink") && x.contains("/maildrop/") && x.contains("= 0"))
        {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no unlink of the maildrop file:\n{l}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    tracer.stop();
    let pk = cost(&dlog, &spool, |l| {
        l.contains("unlink") && l.contains("/maildrop/")
    });
    assert_eq!(
        (
            pk.file_fsyncs,
            pk.fdatasyncs,
            pk.dir_fsyncs,
            pk.syncfs,
            pk.renames,
            pk.unlinks
        ),
        (0, 0, 0, 1, 1, 1),
        "pickup: {pk:?}\n{dlog}"
    );
    assert!(pk.bytes > msg.len() as u64, "{pk:?}");
    eprintln!(
        "maildrop path, {} B message: sendmail {sm:?}; pickup {pk:?}",
        msg.len()
    );
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}
