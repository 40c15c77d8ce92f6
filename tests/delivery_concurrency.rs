//! Adaptive outbound concurrency (issue 15 item 3) against Postfix's
//! smtp-sink: a backlog to one destination opens more sessions than the
//! initial window, never more than the limit, and a destination that
//! answers `421` has its window cut and is suspended after a failed
//! cohort, its remaining mail deferred without connecting.

mod common;
mod delivery_harness;

use common::ports::free_port;
use common::sink::SmtpSink;
use common::source::SmtpSource;
use delivery_harness::Tern;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// TCP connections in ESTABLISHED state whose local port is `port` (the
/// server side of every session to a listener on it), from
/// /proc/net/tcp.
fn established_to(port: u16) -> usize {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && f[3] == "01"
        })
        .count()
}

/// smtp-sink's session counter (`-c`: `sess=N`, bumped per connection).
fn sessions(sink: &SmtpSink) -> usize {
    sink.output()
        .rsplit("sess=")
        .next()
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The `window N` of Postfix's feedback debug lines.
fn windows(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| l.split(" window ").nth(1)?.split(' ').next()?.parse().ok())
        .collect()
}

/// A sink that holds every end of DATA for a second: mail arrives faster
/// than five sessions move it, so the window opens with each delivery
/// toward the limit (8 here, under the 32 outbound sessions the pool
/// allows), and the sessions open at once, counted at the sink's port,
/// rise above the initial 5 and never pass 8.
#[test]
fn a_backlog_opens_the_window_up_to_the_limit() {
    let sink = SmtpSink::start_with(&["-w", "1"]);
    let tern = Tern::builder()
        .relay_to(sink.port())
        .set("smtp_tls_security_level", "none")
        .set("default_destination_concurrency_limit", "8")
        .set("destination_concurrency_feedback_debug", "yes")
        .set("max_connections", "64")
        .start();
    let n = 48;
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, most, port) = (stop.clone(), most.clone(), sink.port());
        std::thread::spawn(move || {
            let until = Instant::now() + T;
            while !stop.load(SeqCst) && Instant::now() < until {
                most.fetch_max(established_to(port), SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let r = SmtpSource::new(tern.port())
        .messages(n)
        .sessions(4)
        .from("alice@example.net")
        .to("bob@example.test")
        .run(T);
    assert!(r.success(), "smtp-source: {}", r.output.combined());
    // smtp-sink counts a message at its end of DATA, before the delayed
    // reply: tern's log lines say when every one is done.
    tern.wait_log(&["status=sent"], n, T);
    stop.store(true, SeqCst);
    let _ = sampler.join();
    let most = most.load(SeqCst);
    assert!(
        (6..=8).contains(&most),
        "sessions open at once: {most} (initial 5, limit 8)\n{}",
        tern.log()
    );
    let dest = format!("queue [127.0.0.1]:{}:", sink.port());
    let grew = windows(&tern.log_lines(&["qmgr_queue_unthrottle:", &dest, "limit 8"]));
    assert!(
        grew.iter().any(|&w| w > 5) && grew.iter().all(|&w| (1..=8).contains(&w)),
        "windows: {grew:?}"
    );
    assert_eq!(tern.log_lines(&["status=sent"]).len(), n);
    assert!(tern.log_lines(&["status=deferred"]).is_empty());
}

/// A next hop that greets every connection with `421`: the first cohort
/// of sessions fails, each failure cuts the window (5, then 3, 2, 1 with
/// Postfix's default feedback of 1), and after a whole window's worth of
/// failures the destination is dead: the rest of the mail is deferred
/// with "delivery temporarily suspended" and the sink sees no more
/// connections than the initial window.
#[test]
fn a_421_destination_is_throttled_then_suspended() {
    let port = free_port();
    let tern = Tern::builder()
        .relay_to(port)
        .set("smtp_tls_security_level", "none")
        .set("destination_concurrency_feedback_debug", "yes")
        .set("minimal_backoff_time", "300s")
        .set("maximal_backoff_time", "600s")
        .start();
    // Queued while nothing listens, so one queue run (the flush) finds all.
    let ids: Vec<String> = (0..12)
        .map(|i| tern.submit("alice@example.net", "bob@example.test", &format!("t-{i}")))
        .collect();
    for id in &ids {
        tern.wait_log(&[id, "status=deferred"], 1, T);
    }
    let dest = format!("queue [127.0.0.1]:{port}:");
    let before = tern.log_lines(&["qmgr_queue_throttle:", &dest]).len();
    let deferred_before = tern.log_lines(&["status=deferred"]).len();
    let sink = SmtpSink::start_on(port, &["-Q", "CONNECT"]);
    tern.flush();
    tern.wait_log(&["status=deferred"], deferred_before + ids.len(), T);
    let after = tern.log_lines(&["status=deferred"]);
    let after = &after[deferred_before..];
    let refused = after
        .iter()
        .filter(|l| l.contains("refused to talk to me: 421") && !l.contains("suspended"))
        .count();
    let suspended = after
        .iter()
        .filter(|l| l.contains("delivery temporarily suspended: host 127.0.0.1[127.0.0.1] refused to talk to me: 421"))
        .count();
    assert_eq!(refused + suspended, ids.len(), "{after:#?}");
    assert!((1..=5).contains(&refused), "{after:#?}");
    assert!(suspended >= ids.len() - 5, "{after:#?}");
    let seen = sessions(&sink);
    assert_eq!(seen, refused, "connections the sink saw: {}", sink.output());
    let cut = windows(&tern.log_lines(&["qmgr_queue_throttle:", &dest])[before..]);
    assert!(!cut.is_empty() && cut[0] < 5, "windows: {cut:?}");
    assert!(cut.windows(2).all(|w| w[1] <= w[0]), "windows: {cut:?}");
    assert_eq!(cut.last(), Some(&1), "windows: {cut:?}");
}
