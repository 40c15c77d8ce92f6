//! Reliability suite, crashes (issue 16 item 6): `tern run` is SIGKILLed
//! at random points, at least 20 times a run, and started again on the
//! same spool, while parallel SMTP clients submit and while it relays to a
//! counting sink. Every message that got `250` must reach the sink, at
//! most twice (a kill between the final dot and its reply is the window
//! SMTP cannot close), never missing.
//!
//!     cargo test --test reliability_kill
//!
//! Knobs: `TERN_RELIABILITY_KILLS` (default 20), `TERN_RELIABILITY_CLIENTS`
//! (8), `TERN_RELIABILITY_SEED`; results go to `$TERN_RELIABILITY_OUT`.
mod common;
mod reliability_support;

use reliability_support::{
    knob, report, submit, tally, unexplained, Budget, CountingSink, Instance, Rng, SinkOptions, J,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The table's note on messages sent three times or more (each copy
/// after the first explained by a kill in its end-of-data window).
fn triple_note(over: &[String]) -> String {
    if over.is_empty() {
        String::from("no message more than twice")
    } else {
        format!(
            "{} in the end-of-data window at two successive kills: {}",
            over.len(),
            over.join(", ")
        )
    }
}

/// The counting sink's delay before each RCPT reply in the outbound test.
const RCPT_DELAY_MS: u64 = 250;

/// Waits until every acknowledged marker reached the sink, or `timeout`.
fn drain(acked: &[String], sink: &CountingSink, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let counts = sink.counts();
        if acked.iter().all(|m| counts.contains_key(m)) {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Parallel clients submit without pause while tern is killed and
/// restarted; tern relays to the sink meanwhile, so kills fall in
/// receiving, committing, queue scans and delivery alike.
#[test]
fn sigkill_under_load_loses_no_acknowledged_message() {
    let kills = knob("TERN_RELIABILITY_KILLS", 20) as usize;
    let clients = knob("TERN_RELIABILITY_CLIENTS", 8) as usize;
    // 2 s per kill cycle at most, plus start-up and the final drain.
    let budget = Budget::new(
        "sigkill under load",
        Duration::from_secs(90 + 2 * kills as u64),
    );
    let mut rng = Rng::new("sigkill under load");
    let sink = CountingSink::start(SinkOptions::default());
    let mut tern = Instance::start("rel-kill-in", sink.port, &[]);
    let port = tern.port;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let ids = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, acked, attempts) = (stop.clone(), acked.clone(), attempts.clone());
            let ids = ids.clone();
            thread::spawn(move || {
                let mut n = 0;
                // Bounded in count as well as by the stop flag.
                while !stop.load(Ordering::Relaxed) && n < 100_000 {
                    let marker = format!("kill-in-{c}-{n}");
                    n += 1;
                    attempts.fetch_add(1, Ordering::Relaxed);
                    match submit("127.0.0.1", port, &marker, Duration::from_secs(10)) {
                        Ok(r) => {
                            let id = r.trim_end().rsplit(' ').next().unwrap_or("").to_string();
                            ids.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((marker.clone(), id));
                            acked.lock().unwrap_or_else(|e| e.into_inner()).push(marker)
                        }
                        // tern is down or was killed mid-session.
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        })
        .collect();

    let mut kill_times = Vec::new();
    for _ in 0..kills {
        thread::sleep(Duration::from_millis(rng.range(150, 900)));
        kill_times.push(Instant::now());
        tern.kill();
        tern.restart();
    }
    // Some more load after the last restart, then the clients stop.
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("client thread");
    }
    let acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        acked.len() >= kills,
        "too little load to test anything: {} acknowledged",
        acked.len()
    );
    drain(&acked, &sink, budget.left().min(Duration::from_secs(60)));
    let (delivered, lost, dup, over) = tally(&acked, &sink);
    let bad = unexplained(&over, &sink, &kill_times);
    let attempts = attempts.load(Ordering::Relaxed);
    report(vec![
        ("secs", J::from(budget.elapsed().as_secs())),
        ("suite", "sigkill".into()),
        ("test", "server side: SIGKILL while receiving and relaying".into()),
        (
            "load",
            format!(
                "{clients} parallel SMTP clients, {attempts} submissions, relayed to a counting sink"
            )
            .into(),
        ),
        (
            "faults",
            format!("{kills} x SIGKILL of tern run at random points (150-900 ms apart), restarted each time").into(),
        ),
        ("accepted", J::from(acked.len())),
        ("delivered", J::from(delivered)),
        ("lost", J::from(lost.len())),
        ("duplicated", J::from(dup)),
        ("result", triple_note(&over).into()),
    ]);
    assert!(
        lost.is_empty(),
        "lost {} acknowledged messages: {:?}\n{}",
        lost.len(),
        &lost[..lost.len().min(20)],
        tern.diagnostics()
    );
    if let Some(worst) = bad.first() {
        let m = worst.split(' ').next().unwrap_or("");
        let ids = ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let id = ids
            .iter()
            .find(|(k, _)| k == m)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let log = tern.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&id) || l.contains("daemon started"))
            .collect();
        panic!(
            "delivered more than twice, not explained by a kill in each copy's end-of-data window ({} markers): {bad:?}\n{m} is {id}:\n{}",
            bad.len(),
            lines.join("\n")
        );
    }
    budget.check();
}

/// The queue is full and the sink slow to answer RCPT: tern is killed
/// while it relays, again and again; every queued message arrives, and
/// only the one in its final-dot window may arrive twice.
#[test]
fn sigkill_during_outbound_delivery_loses_nothing() {
    let kills = knob("TERN_RELIABILITY_KILLS", 20) as usize;
    let per_batch = knob("TERN_RELIABILITY_BATCH", 40) as usize;
    let budget = Budget::new(
        "sigkill during delivery",
        Duration::from_secs(120 + 3 * kills as u64),
    );
    let mut rng = Rng::new("sigkill during delivery");
    // A slow RCPT: a batch takes seconds to relay, so kills land in
    // sessions; the final dot is answered at once.
    let sink = CountingSink::start(SinkOptions {
        rcpt_delay: Duration::from_millis(RCPT_DELAY_MS),
        dot_delay: Duration::ZERO,
    });
    let mut tern = Instance::start("rel-kill-out", sink.port, &[]);
    let mut acked = Vec::new();
    let mut in_flight_kills = 0;
    let mut kill_times = Vec::new();
    let mut n = 0;
    for k in 0..kills {
        // Refill the queue whenever the sink has (nearly) caught up.
        let (delivered, ..) = tally(&acked, &sink);
        if acked.len() - delivered < per_batch / 2 {
            for _ in 0..per_batch {
                let marker = format!("kill-out-{n}");
                n += 1;
                let r = submit("127.0.0.1", tern.port, &marker, Duration::from_secs(10))
                    .unwrap_or_else(|e| {
                        panic!(
                            "submission {marker} (kill {k}): {e}\n{}",
                            tern.diagnostics()
                        )
                    });
                assert!(r.starts_with("250 2.0.0"), "{r}");
                acked.push(marker);
            }
        }
        thread::sleep(Duration::from_millis(rng.range(200, 1200)));
        let (delivered, ..) = tally(&acked, &sink);
        if delivered < acked.len() {
            in_flight_kills += 1;
        }
        kill_times.push(Instant::now());
        tern.kill();
        tern.restart();
    }
    drain(&acked, &sink, budget.left().min(Duration::from_secs(90)));
    let (delivered, lost, dup, over) = tally(&acked, &sink);
    report(vec![
        ("secs", J::from(budget.elapsed().as_secs())),
        ("suite", "sigkill".into()),
        ("test", "outbound: SIGKILL while relaying to the sink".into()),
        (
            "load",
            format!("{} queued in batches of {per_batch}, sink answers RCPT after {RCPT_DELAY_MS} ms", acked.len()).into(),
        ),
        (
            "faults",
            format!("{kills} x SIGKILL of tern run ({in_flight_kills} with deliveries pending), restarted each time").into(),
        ),
        ("accepted", J::from(acked.len())),
        ("delivered", J::from(delivered)),
        ("lost", J::from(lost.len())),
        ("duplicated", J::from(dup)),
        ("result", triple_note(&over).into()),
    ]);
    assert!(
        lost.is_empty(),
        "lost {} queued messages: {:?}\n{}",
        lost.len(),
        &lost[..lost.len().min(20)],
        tern.diagnostics()
    );
    let bad = unexplained(&over, &sink, &kill_times);
    assert!(
        bad.is_empty(),
        "delivered more than twice, not explained by a kill in each copy's end-of-data window: {bad:?}"
    );
    assert!(
        in_flight_kills * 2 >= kills,
        "only {in_flight_kills} of {kills} kills fell while deliveries were pending"
    );
    budget.check();
}
