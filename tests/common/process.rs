//! Child processes: long-running peers killed with their whole process
//! group on drop, and one-shot commands run with a timeout.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Makes the child a session and process-group leader (pid == pgid), so
/// that killing `-pid` reaches everything it forks. `setsid()` rather than
/// `process_group(0)`: Postfix's master insists on leading its session.
fn new_session(cmd: &mut Command) {
    // cargo points LD_LIBRARY_PATH into target/ (aws-lc-sys among others);
    // peers must load their own libraries.
    cmd.env_remove("LD_LIBRARY_PATH");
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn signal_group(pgid: u32, sig: libc::c_int) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    // SAFETY: plain syscall; a negative pid addresses the process group.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

/// True while a live (non-zombie) process is in group `pgid`. Zombies do
/// not count: orphans that already exited wait for init to reap them,
/// which here takes a second or more.
fn group_alive(pgid: u32) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return signal_group(pgid, 0);
    };
    let want = pgid.to_string();
    rd.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ..."; comm may contain spaces.
        let Some((_, after)) = stat.rsplit_once(") ") else {
            return false;
        };
        let mut f = after.split(' ');
        let state = f.next().unwrap_or("");
        let pgrp = f.nth(1).unwrap_or("");
        pgrp == want && state != "Z" && state != "X"
    })
}

/// Waits until no live process of group `pgid` is left, or `timeout` passes.
fn wait_group_gone(pgid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while group_alive(pgid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

/// A long-running peer in its own session; stdout and stderr go to a file.
/// Dropping it stops it (see [`Daemon::stop`]).
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    output: PathBuf,
    stopped: bool,
}

impl Daemon {
    /// Spawns `cmd` (stdin from /dev/null, stdout+stderr appended to
    /// `output`). `name` appears in error messages.
    pub fn spawn(name: &str, mut cmd: Command, output: &Path) -> Daemon {
        let out = File::options()
            .create(true)
            .append(true)
            .open(output)
            .unwrap_or_else(|e| panic!("{name}: open {}: {e}", output.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("{name}: dup: {e}"));
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        new_session(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("{name}: cannot start {cmd:?}: {e} (run scripts/install-test-deps.sh)")
        });
        Daemon {
            name: name.to_string(),
            child,
            output: output.to_path_buf(),
            stopped: false,
        }
    }

    /// Process id of the leader (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Exit status if the leader has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What the process wrote to stdout/stderr so far.
    pub fn output(&self) -> String {
        super::tempdir::read_lossy(&self.output)
    }

    /// Terminates the whole process group: SIGTERM, up to 3 s for the
    /// leader to exit and 200 ms more for the rest, then SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = self.child.id();
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.exited().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        // Children forked just as the signal arrived can linger for a
        // second (Postfix daemons notice master's death on their next
        // timer); their state is of no use once the leader is gone.
        let left = deadline.saturating_duration_since(Instant::now());
        if !wait_group_gone(pgid, Duration::from_millis(200).min(left)) {
            signal_group(pgid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_group_gone(pgid, Duration::from_secs(1));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Result of [`run`].
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Exit code; `None` if killed by a signal (including on timeout).
    pub status: Option<i32>,
    /// Standard output, lossy UTF-8.
    pub stdout: String,
    /// Standard error, lossy UTF-8.
    pub stderr: String,
    /// True if the command was killed because it exceeded the timeout.
    pub timed_out: bool,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl RunOutput {
    /// Exit code 0 and no timeout.
    pub fn success(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }

    /// stdout followed by stderr.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` to completion in its own process group, feeding `stdin`,
/// capturing output; kills the group after `timeout` (then `timed_out`).
/// Panics only if the program cannot be started.
pub fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> RunOutput {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    new_session(&mut cmd);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e} (run scripts/install-test-deps.sh)"));
    let pgid = child.id();
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = start + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            timed_out = true;
            signal_group(pgid, libc::SIGKILL);
            break child.wait().ok();
        }
        thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    // Anything the command left behind would hold our pipes open.
    signal_group(pgid, libc::SIGKILL);
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    RunOutput {
        status: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
        elapsed,
    }
}

/// Like [`run`] but panics (showing the output) unless the command succeeds.
pub fn run_ok(cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> RunOutput {
    let what = format!("{cmd:?}");
    let out = run(cmd, stdin, timeout);
    if !out.success() {
        panic!(
            "{what} failed (status {:?}, timed out: {}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status, out.timed_out, out.stdout, out.stderr
        );
    }
    out
}
