//! Issue 2, the README's first command: `tern run -f --dev` (what `cargo
//! run --release -- run -f --dev` runs) in a fresh directory listens on
//! 127.0.0.1:2525, takes a message into `./run/spool`, logs to
//! `./run/maillog` and stops cleanly on SIGTERM. The dev config's port is
//! fixed; if something else on this machine holds it, the test says so and
//! passes without checking (it cannot move the port without changing what
//! it tests).

mod common;

use common::ports::{is_listening, wait_listening};
use common::process::Daemon;
use common::tempdir::{read_lossy, TempDir};
use common::tools::Swaks;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

const DEV_PORT: u16 = 2525;
const WAIT: Duration = Duration::from_secs(30);

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
    let start = read_lossy(&dir.join("stderr"));
    // -f: the log goes to stderr too.
    assert!(start.contains("daemon started -- version"), "{start}");
    assert!(start.contains("configuration <built-in dev>"), "{start}");

    // Relaying from loopback (mynetworks) is allowed; the message waits in
    // ./run/spool for the recipient's MX.
    let r = Swaks::new(DEV_PORT).to("someone@example.test").run_ok();
    let id = r.queue_id().expect("queued as ID");
    let maillog = dir.join("run/maillog");
    let deadline = Instant::now() + WAIT;
    loop {
        let log = read_lossy(&maillog);
        if log.contains(&format!("{id}: from=<")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no queue line for {id} in run/maillog:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let spool = dir.join("run/spool");
    let in_spool = ["active", "deferred"]
        .iter()
        .any(|q| spool.join(q).join(&id).exists());
    let log = read_lossy(&maillog);
    // Without a network the MX lookup only defers; with one, .test does
    // not exist and the message bounces: either way it went through ./run.
    assert!(
        in_spool || log.contains(&format!("{id}: removed")),
        "{id} neither in {} nor delivered:\n{log}",
        spool.display()
    );

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
