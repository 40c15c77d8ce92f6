//! Issue 2, the README's first command: `tern run -f --dev` (what `cargo
//! run --release -- run -f --dev` runs) in a fresh directory listens on
//! 127.0.0.1:2525, takes a message into `./run/spool`, logs to
//! `./run/maillog` and stops cleanly on SIGTERM. The dev config's port is
//! fixed, so one test runs it in a network namespace of its own
//! (`unshare -rn`), where 2525 is free whatever else runs on this machine.
//! The other runs it on the host; if something else holds the port there,
//! that one says so and checks nothing.

mod common;

use common::ports::{is_listening, wait_listening};
use common::process::Daemon;
use common::tempdir::{read_lossy, TempDir};
use common::tools::Swaks;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DEV_PORT: u16 = 2525;
const WAIT: Duration = Duration::from_secs(30);

/// The checks on what a run left in `dir`: start-up lines on stderr, the
/// queue line in run/maillog, the message in run/spool (or delivered).
fn check_run_dir(dir: &Path, id: &str) {
    let start = read_lossy(&dir.join("stderr"));
    // -f: the log goes to stderr too.
    assert!(start.contains("daemon started -- version"), "{start}");
    assert!(start.contains("configuration <built-in dev>"), "{start}");
    let log = read_lossy(&dir.join("run/maillog"));
    assert!(
        log.contains(&format!("{id}: from=<")),
        "no queue line for {id} in run/maillog:\n{log}"
    );
    let spool = dir.join("run/spool");
    let in_spool = ["active", "deferred"]
        .iter()
        .any(|q| spool.join(q).join(id).exists());
    // Without a network the MX lookup only defers; with one, .test does
    // not exist and the message bounces: either way it went through ./run.
    assert!(
        in_spool || log.contains(&format!("{id}: removed")),
        "{id} neither in {} nor delivered:\n{log}",
        spool.display()
    );
}

#[test]
fn run_dev_in_its_own_network_namespace() {
    let probe = Command::new("unshare").args(["-rn", "true"]).status();
    if !matches!(probe, Ok(st) if st.success()) {
        eprintln!("SKIP run_dev_in_its_own_network_namespace: no user/network namespaces here ({probe:?})");
        return;
    }
    let dir = TempDir::new("ground-dev-ns");
    // Start, mail once it listens, wait for the queue line, SIGTERM. The
    // loops are bounded (150 x 0.2 s).
    let script = r#"
        set -u
        ip link set lo up || exit 90
        "$TERN" run -f --dev > stderr 2>&1 &
        pid=$!
        i=0
        until swaks --server 127.0.0.1:2525 --to someone@example.test --timeout 10 > swaks.out 2>&1; do
            kill -0 "$pid" 2>/dev/null || exit 92
            i=$((i + 1)); if [ "$i" -ge 150 ]; then kill -TERM "$pid"; exit 93; fi
            sleep 0.2
        done
        id=$(sed -n 's/.*queued as \([0-9A-Z]*\).*/\1/p' swaks.out)
        echo "id $id"
        i=0
        until grep -q "$id: from=<" run/maillog 2>/dev/null; do
            i=$((i + 1)); if [ "$i" -ge 150 ]; then kill -TERM "$pid"; exit 94; fi
            sleep 0.2
        done
        kill -TERM "$pid"
        wait "$pid"
        echo "tern exit $?"
    "#;
    let mut c = Command::new("unshare");
    c.args(["-rn", "sh", "-c", script])
        .env("TERN", env!("CARGO_BIN_EXE_tern"))
        .current_dir(dir.path());
    let out = common::process::run(c, None, Duration::from_secs(90));
    let all = format!(
        "{out:?}\n--- stderr\n{}\n--- swaks\n{}",
        read_lossy(&dir.join("stderr")),
        read_lossy(&dir.join("swaks.out"))
    );
    assert_eq!(out.status, Some(0), "{all}");
    let id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("id "))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| panic!("no queue ID: {all}"))
        .to_string();
    check_run_dir(dir.path(), &id);
    assert!(
        out.stdout.contains("tern exit 0"),
        "clean SIGTERM exit: {all}"
    );
}

#[test]
fn run_dev_in_a_fresh_directory() {
    if is_listening(DEV_PORT) {
        eprintln!(
            "SKIP run_dev_in_a_fresh_directory: 127.0.0.1:{DEV_PORT} is in use by another program"
        );
        return;
    }
    let dir = TempDir::new("ground-dev");
    let mut c = Command::new(env!("CARGO_BIN_EXE_tern"));
    c.args(["run", "-f", "--dev"]).current_dir(dir.path());
    let mut d = Daemon::spawn("tern --dev", c, &dir.join("stderr"));
    let deadline = Instant::now() + WAIT;
    while !wait_listening(DEV_PORT, Duration::from_millis(50)) {
        if let Some(st) = d.exited() {
            let out = d.output();
            if out.contains("Address already in use") {
                eprintln!(
                    "SKIP run_dev_in_a_fresh_directory: port {DEV_PORT} taken meanwhile:\n{out}"
                );
                return;
            }
            panic!("tern run -f --dev exited ({st}):\n{out}");
        }
        assert!(
            Instant::now() < deadline,
            "not listening on {DEV_PORT}:\n{}",
            d.output()
        );
    }
    // Relaying from loopback (mynetworks) is allowed; the message waits in
    // ./run/spool for the recipient's MX.
    let r = Swaks::new(DEV_PORT).to("someone@example.test").run_ok();
    let id = r.queue_id().expect("queued as ID");
    let maillog = dir.join("run/maillog");
    let deadline = Instant::now() + WAIT;
    while !read_lossy(&maillog).contains(&format!("{id}: from=<")) {
        assert!(
            Instant::now() < deadline,
            "no queue line for {id} in run/maillog:\n{}",
            read_lossy(&maillog)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    check_run_dir(dir.path(), &id);

    let pid = libc::pid_t::try_from(d.pid()).unwrap();
    // SAFETY: plain syscall on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + WAIT;
    let st = loop {
        if let Some(st) = d.exited() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM:\n{}",
            d.output()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!((st.code(), st.signal()), (Some(0), None), "{}", d.output());
}
