//! Reliability suite, full flash (issue 16 item 6): the spool is a tiny
//! tmpfs mounted in a private mount namespace (`unshare -m`, as root), so
//! nothing on the host is touched. With mail queued for a next hop that is
//! down, the file system is filled to the last byte; then:
//!
//! - a new message is refused with `452 4.3.1 Insufficient system storage`;
//! - the next hop comes up and the queued mail drains, on the full disk;
//! - the filler is removed and, without a restart, mail is taken and
//!   delivered again.
//!
//! The test reaches the spool through `/proc/PID/root`, the daemon's view
//! of the file system.
//!
//!     cargo test --test reliability_flash
mod common;
mod reliability_support;

use common::ports::free_port;
use reliability_support::{report, submit, Budget, CountingSink, Instance, SinkOptions, J};
use std::io::Write;
use std::time::{Duration, Instant};

const QUEUED: usize = 20;

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("timed out waiting for {what}");
    false
}

#[test]
fn full_flash_refuses_with_452_drains_and_recovers_without_restart() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (mount in a private namespace)");
        return;
    }
    let budget = Budget::new("full flash", Duration::from_secs(90));
    let dir = common::tempdir::TempDir::new("rel-flash-mnt");
    let spool = dir.subdir("spool");
    let script = format!(
        "mount -t tmpfs -o size=4m,mode=0755 tern-flash '{}' && exec \"$0\" \"$@\"",
        spool.display()
    );
    let relay = free_port();
    let mut tern = Instance::start_with_prefix(
        "rel-flash",
        relay,
        &[
            // 1.5 x 100 kB must be free to take a message (Postfix's rule).
            ("message_size_limit", "100000"),
            ("queue_minfree", "0"),
        ],
        &["unshare", "-m", "sh", "-c", &script],
        Some(&spool),
    );
    let view = std::path::PathBuf::from(format!("/proc/{}/root{}", tern.pid(), spool.display()));
    assert!(
        view.join("active").is_dir() || view.join("incoming").is_dir(),
        "spool not in the namespace: {}",
        view.display()
    );

    // Mail for a next hop that is down.
    let mut acked = Vec::new();
    for i in 0..QUEUED {
        let m = format!("flash-queued-{i}");
        submit("127.0.0.1", tern.port, &m, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{m}: {e}\n{}", tern.diagnostics()));
        acked.push(m);
    }

    // Fill the tmpfs to the last byte.
    let filler = view.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let block = vec![0x5au8; 64 * 1024];
    let mut filled = 0usize;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    // The last partial block, byte by byte.
    while f.write(&[0x5a]).is_ok_and(|n| n == 1) {
        filled += 1;
    }
    drop(f);

    // Refused with Postfix's answer.
    let refused = submit(
        "127.0.0.1",
        tern.port,
        "flash-refused",
        Duration::from_secs(20),
    );
    let err = refused.expect_err("a message was taken on a full disk");
    assert!(
        err.contains("452 4.3.1 Insufficient system storage"),
        "{err}\n{}",
        tern.diagnostics()
    );
    assert!(tern
        .wait_log(
            "NOQUEUE: reject: MAIL from localhost[127.0.0.1]: 452 4.3.1",
            Duration::from_secs(5)
        )
        .is_some());

    // The next hop comes up: the queue drains on the full disk.
    let sink = CountingSink::start_on(relay, SinkOptions::default());
    let drained = wait_for("the queue to drain", Duration::from_secs(40), || {
        let c = sink.counts();
        acked.iter().all(|m| c.contains_key(m))
    });
    let drained_full = sink.total();
    assert!(
        drained,
        "{} of {QUEUED} delivered on the full disk\n{}",
        drained_full,
        tern.diagnostics()
    );

    // Space comes back: taken again without a restart.
    let starts = tern.starts;
    std::fs::remove_file(&filler).expect("remove filler");
    let m = "flash-after".to_string();
    let r = submit("127.0.0.1", tern.port, &m, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("after freeing space: {e}\n{}", tern.diagnostics()));
    assert!(r.starts_with("250 2.0.0"), "{r}");
    acked.push(m.clone());
    assert!(
        wait_for("the last message", Duration::from_secs(20), || sink
            .counts()
            .contains_key(&m)),
        "{}",
        tern.diagnostics()
    );
    assert_eq!(tern.starts, starts, "restarted");

    let (delivered, lost, dup, over) = reliability_support::tally(&acked, &sink);
    report(vec![
        ("secs", J::from(budget.elapsed().as_secs())),
        ("suite", "flash".into()),
        ("test", "full flash: 4 MiB tmpfs spool filled to the last byte".into()),
        (
            "load",
            format!("{QUEUED} queued for a next hop that is down, 1 refused, 1 after space is freed").into(),
        ),
        (
            "faults",
            format!("ENOSPC ({} KiB filler); next hop up while full; filler removed, no restart", filled / 1024).into(),
        ),
        ("accepted", J::from(acked.len())),
        ("delivered", J::from(delivered)),
        ("lost", J::from(lost.len())),
        ("duplicated", J::from(dup)),
        ("result", format!("452 4.3.1 while full; {drained_full}/{QUEUED} drained while full; taken again after freeing space").into()),
    ]);
    assert!(lost.is_empty(), "{lost:?}");
    assert!(over.is_empty(), "{over:?}");
    tern.stop();
    budget.check();
}
