//! Reliability suite, floods (issue 16 item 6): one hostile loopback
//! address (127.0.0.2, outside `smtpd_client_event_limit_exceptions`,
//! which is narrowed to 127.0.0.1 here) floods tern while five legitimate
//! clients (127.0.0.3 to .7) each submit a message. For each flood:
//! tern's peak RSS (`VmHWM`) must stay under the ceiling and all five
//! legitimate sessions must get `250`.
//!
//! The ceiling: tern's idle peak RSS right after start, plus the fixed
//! buffers it reserves and logs ("fixed buffers N KiB reserved":
//! `max_connections` x the per-connection budget), plus 4 MiB for TLS
//! handshake state and allocator slack. Nothing a client sends may grow
//! memory beyond what the slots account for.
//!
//!     cargo test --test reliability_flood
//!
//! Knobs: `TERN_RELIABILITY_HANDSHAKES` (2000), `TERN_RELIABILITY_RCPTS`
//! (10000); results go to `$TERN_RELIABILITY_OUT`.
mod common;
mod reliability_support;
mod smtpd_support;

use reliability_support::{
    connect_from, knob, report, submit, Budget, CountingSink, Instance, SinkOptions, Smtp, J,
};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Floods run one at a time: they measure memory and service under load,
/// which parallel floods on a 2-core machine would blur.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Slack over the reserved buffers, KiB.
const SLACK_KB: u64 = 4096;

/// A flood against a fresh tern: `attack` runs in its own thread from
/// 127.0.0.2 until `stop` is set (and returns a description of what it
/// did); meanwhile five legitimate clients submit one message each.
fn flood<F>(test: &str, settings: &[(&str, &str)], budget_secs: u64, attack: F)
where
    F: FnOnce(u16, Arc<AtomicBool>) -> String + Send + 'static,
{
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let budget = Budget::new(test, Duration::from_secs(budget_secs));
    let sink = CountingSink::start(SinkOptions::default());
    let mut all = vec![("smtpd_client_event_limit_exceptions", "127.0.0.1/32")];
    all.extend_from_slice(settings);
    let tern = Instance::start(
        &format!("rel-flood-{}", test.replace(' ', "-")),
        sink.port,
        &all,
    );
    // Idle peak, once start-up is over.
    thread::sleep(Duration::from_millis(300));
    let idle_kb = tern.peak_rss_kb();
    let reserved_kb = tern.reserved_kb();
    assert!(
        reserved_kb > 0,
        "no reserved-buffer line\n{}",
        tern.diagnostics()
    );
    let ceiling_kb = idle_kb + reserved_kb + SLACK_KB;

    let port = tern.port;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let attacker = thread::spawn(move || attack(port, s2));
    // Let the flood build up before the legitimate clients come.
    thread::sleep(Duration::from_millis(1500));
    let mut served = 0;
    let mut failures = Vec::new();
    for n in 3..8 {
        let src = format!("127.0.0.{n}");
        let marker = format!("legit-{}-{n}", test.replace(' ', "-"));
        match submit(&src, port, &marker, Duration::from_secs(20)) {
            Ok(_) => served += 1,
            Err(e) => failures.push(format!("{src}: {e}")),
        }
    }
    // The five were served while the flood went on, not after it.
    let during = !attacker.is_finished();
    // Every flood lasts a few seconds at least, whatever the clients took.
    while budget.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let did = attacker.join().expect("attacker thread");
    let peak_kb = tern.peak_rss_kb();
    report(vec![
        ("secs", J::from(budget.elapsed().as_secs())),
        ("suite", "flood".into()),
        ("test", test.into()),
        ("load", did.clone().into()),
        (
            "faults",
            "one hostile address (127.0.0.2), outside the event-limit exceptions".into(),
        ),
        ("peak_rss_kb", J::from(peak_kb)),
        ("ceiling_kb", J::from(ceiling_kb)),
        ("idle_rss_kb", J::from(idle_kb)),
        ("legit_served", format!("{served}/5").into()),
        ("during_flood", if during { "yes" } else { "no" }.into()),
    ]);
    assert!(
        during,
        "{test}: the flood was over before the legitimate clients were: {did}"
    );
    assert_eq!(
        served,
        5,
        "{test}: legitimate clients refused: {failures:?}\n{}",
        tern.diagnostics()
    );
    assert!(
        peak_kb <= ceiling_kb,
        "{test}: peak RSS {peak_kb} KiB over the ceiling {ceiling_kb} KiB (idle {idle_kb} + reserved {reserved_kb} + {SLACK_KB})"
    );
    assert!(peak_kb > 0, "no VmHWM for tern");
    budget.check();
}

/// Opens `n` connections from `src`, keeping those tern accepts; returns
/// (accepted, refused).
fn hold(src: &str, port: u16, n: usize, held: &mut Vec<std::net::TcpStream>) -> (usize, usize) {
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..n {
        let Ok(mut s) = connect_from(src, port) else {
            refused += 1;
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut g = [0u8; 512];
        match s.read(&mut g) {
            Ok(k) if g[..k].starts_with(b"220") => {
                ok += 1;
                held.push(s);
            }
            _ => refused += 1,
        }
    }
    (ok, refused)
}

#[test]
fn connections_beyond_the_limit() {
    flood("connections beyond the limit", &[], 60, |port, stop| {
        // Ten times max_connections (32), all held open.
        let mut held = Vec::new();
        let (ok, refused) = hold("127.0.0.2", port, 320, &mut held);
        while !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
        }
        format!("320 connections held open from one address ({ok} got 220, {refused} refused)")
    });
}

#[test]
fn slowloris() {
    flood("slowloris", &[], 60, |port, stop| {
        // 64 connections, each dripping one byte of a never-ending command
        // line every 500 ms.
        let mut held = Vec::new();
        let (ok, _) = hold("127.0.0.2", port, 64, &mut held);
        let mut bytes = 0;
        while !stop.load(Ordering::Relaxed) {
            for s in held.iter_mut() {
                if s.write_all(b"N").is_ok() {
                    bytes += 1;
                }
            }
            thread::sleep(Duration::from_millis(500));
        }
        format!("64 connections dripping a byte every 500 ms ({ok} got 220, {bytes} bytes dripped)")
    });
}

/// Writes `total` bytes of `b'x'` without a line end, in 64 KiB writes,
/// until done, refused, or `stop`.
fn spew(s: &mut std::net::TcpStream, total: usize, stop: &AtomicBool) -> usize {
    let chunk = vec![b'x'; 65536];
    let mut sent = 0;
    while sent < total && !stop.load(Ordering::Relaxed) {
        match s.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    sent
}

#[test]
fn huge_lines() {
    flood("huge lines", &[], 90, |port, stop| {
        // Eight sessions (the per-client share of 32 slots), each sending
        // an 8 MiB line: half as a command, half inside DATA; repeated.
        let sent = Arc::new(AtomicUsize::new(0));
        let sessions = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (stop, sent, sessions) = (stop.clone(), sent.clone(), sessions.clone());
                thread::spawn(move || {
                    for _ in 0..100 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(mut c) = Smtp::open("127.0.0.2", port, Duration::from_secs(10))
                        else {
                            thread::sleep(Duration::from_millis(100));
                            continue;
                        };
                        sessions.fetch_add(1, Ordering::Relaxed);
                        if c.cmd("EHLO huge.test", "250").is_err() {
                            continue;
                        }
                        if w % 2 == 1 {
                            let ok = c.cmd("MAIL FROM:<a@huge.test>", "250").is_ok()
                                && c.cmd("RCPT TO:<b@remote.test>", "250").is_ok()
                                && c.cmd("DATA", "354").is_ok();
                            if !ok {
                                continue;
                            }
                        }
                        let mut tcp = match connect_dup(&c) {
                            Some(t) => t,
                            None => continue,
                        };
                        sent.fetch_add(spew(&mut tcp, 8 << 20, &stop), Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        format!(
            "8 parallel sessions sending 8 MiB lines (as a command and inside DATA): {} sessions, {} MiB sent",
            sessions.load(Ordering::Relaxed),
            sent.load(Ordering::Relaxed) >> 20
        )
    });
}

/// The client's socket for raw writes.
fn connect_dup(c: &Smtp) -> Option<std::net::TcpStream> {
    c.stream().try_clone().ok()
}

#[test]
fn endless_headers() {
    flood("endless headers", &[], 90, |port, stop| {
        // Four sessions in DATA: two send new header lines, two fold one
        // header forever; each goes on until tern answers or 16 MiB, message after message.
        let sent = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (stop, sent) = (stop.clone(), sent.clone());
                thread::spawn(move || {
                    let (mut too_big, mut other) = (0, 0);
                    // Message after message until the legitimate clients
                    // are done (the one cut short by the end is not counted).
                    for _ in 0..50 {
                        let r = endless_message(port, w, &stop, &sent);
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if r.starts_with("552 5.3.4") {
                            too_big += 1;
                        } else {
                            other += 1;
                        }
                    }
                    (too_big, other)
                })
            })
            .collect();
        let (mut too_big, mut other) = (0, 0);
        for w in workers {
            let (b, o) = w.join().unwrap_or_default();
            too_big += b;
            other += o;
        }
        assert_eq!(
            other, 0,
            "a message with an endless header was not refused as too big"
        );
        format!(
            "4 sessions at a time in DATA, each a message whose header never ends (new lines, or one folded header), up to 16 MiB (message_size_limit is 10 MB): {} MiB sent; {too_big} x 552 5.3.4 message file too big",
            sent.load(Ordering::Relaxed) >> 20
        )
    });
}

/// One message whose header never ends (new lines when `w` is even, one
/// folded header when odd), up to 16 MiB; returns tern's reply to it.
fn endless_message(port: u16, w: usize, stop: &AtomicBool, sent: &AtomicUsize) -> String {
    let Ok(mut c) = Smtp::open("127.0.0.2", port, Duration::from_secs(10)) else {
        return String::from("refused");
    };
    let ok = c.cmd("EHLO headers.test", "250").is_ok()
        && c.cmd("MAIL FROM:<a@headers.test>", "250").is_ok()
        && c.cmd("RCPT TO:<b@remote.test>", "250").is_ok()
        && c.cmd("DATA", "354").is_ok();
    if !ok {
        return String::from("refused");
    }
    let Some(mut tcp) = connect_dup(&c) else {
        return String::from("no socket");
    };
    let mut block = String::new();
    for i in 0..1000 {
        if w % 2 == 0 {
            block.push_str(&format!("X-Endless-{i}: {}\r\n", "h".repeat(60)));
        } else {
            block.push_str(&format!("\t{}\r\n", "f".repeat(70)));
        }
    }
    if w % 2 == 1 {
        let _ = tcp.write_all(b"Subject: folded forever\r\n");
    }
    let mut n = 0;
    while n < (16 << 20) && !stop.load(Ordering::Relaxed) {
        match tcp.write_all(block.as_bytes()) {
            Ok(()) => n += block.len(),
            Err(_) => break,
        }
    }
    sent.fetch_add(n, Ordering::Relaxed);
    // End the message: tern's verdict on it.
    let _ = tcp.write_all(b"\r\nbody\r\n.\r\n");
    c.reply().unwrap_or_else(|e| e)
}

#[test]
fn ten_thousand_rcpts() {
    let rcpts = knob("TERN_RELIABILITY_RCPTS", 10_000) as usize;
    flood("10,000 RCPTs", &[], 120, move |port, stop| {
        // Session after session until the legitimate clients are done.
        let first = rcpt_session(port, rcpts);
        let mut rounds = 1;
        while !stop.load(Ordering::Relaxed) && rounds < 50 {
            rcpt_session(port, rcpts);
            rounds += 1;
        }
        format!("{rounds} sessions of {rcpts} RCPT TO pipelined by 100; the first: {first}")
    });
}

/// One session: MAIL, `rcpts` RCPT TO in pipelined groups of 100, DATA.
fn rcpt_session(port: u16, rcpts: usize) -> String {
    let mut c = match Smtp::open("127.0.0.2", port, Duration::from_secs(20)) {
        Ok(c) => c,
        Err(e) => return format!("refused: {e}"),
    };
    let mut ok = 0;
    let mut temp = 0;
    let mut other = 0;
    let _ = c.cmd("EHLO rcpts.test", "250");
    let _ = c.cmd("MAIL FROM:<a@rcpts.test>", "250");
    'groups: for g in 0..rcpts.div_ceil(100) {
        let batch: String = (g * 100..((g + 1) * 100).min(rcpts))
            .map(|i| format!("RCPT TO:<r{i}@remote.test>\r\n"))
            .collect();
        if c.send(batch.as_bytes()).is_err() {
            break;
        }
        for _ in 0..batch.lines().count() {
            match c.reply() {
                Ok(r) if r.starts_with("250") => ok += 1,
                Ok(r) if r.starts_with("452") => temp += 1,
                Ok(_) => other += 1,
                Err(_) => break 'groups,
            }
        }
    }
    let data = c.cmd("DATA", "354").is_ok()
        && c.send(reliability_support::message("rcpts").as_bytes())
            .is_ok();
    let end = if data {
        c.reply().unwrap_or_else(|e| e)
    } else {
        String::from("no DATA (session closed)")
    };
    format!(
        "{ok} x 250, {temp} x 452, {other} other replies; end of data: {}",
        end.trim_end()
    )
}

#[test]
fn tls_handshakes() {
    let n = knob("TERN_RELIABILITY_HANDSHAKES", 2000) as usize;
    let ca = common::certs::TestCa::new();
    let leaf = ca.server_cert(common::certs::KeyKind::EcdsaP256, &["tern.example.test"]);
    let chain = leaf.chain.display().to_string();
    let key = leaf.key.display().to_string();
    let ca_cert = ca.cert.clone();
    // No per-client rate or count limit here: every handshake is made, so
    // the flood measures TLS state, not the anvil's refusals.
    let settings = [
        ("smtpd_tls_cert_file", chain.as_str()),
        ("smtpd_tls_key_file", key.as_str()),
        ("smtpd_client_connection_rate_limit", "0"),
        ("smtpd_client_connection_count_limit", "0"),
    ];
    flood("2,000 TLS handshakes", &settings, 240, move |port, stop| {
        let done = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let start = std::time::Instant::now();
        // Four parallel attackers.
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (done, failed, ca) = (done.clone(), failed.clone(), ca_cert.clone());
                let stop = stop.clone();
                thread::spawn(move || {
                    // At least n handshakes in all, and on until the
                    // legitimate clients are done (bounded at 10 n).
                    let mut mine = 0;
                    while (mine < n.div_ceil(4) || !stop.load(Ordering::Relaxed))
                        && mine < 10 * n.div_ceil(4)
                    {
                        mine += 1;
                        let r = std::panic::catch_unwind(|| {
                            let mut c = smtpd_support::Client::connect_from("127.0.0.2", port);
                            assert!(c.reply().starts_with("220"));
                            assert!(c.cmd("EHLO tls.test").starts_with("250"));
                            assert!(c.cmd("STARTTLS").starts_with("220"));
                            c.start_tls(&ca, "tern.example.test");
                        });
                        if r.is_ok() {
                            done.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
        let done = done.load(Ordering::Relaxed);
        assert!(
            done * 10 >= n * 9,
            "only {done} of {n} handshakes completed"
        );
        format!(
            "STARTTLS handshakes (ECDSA P-256) from 4 parallel clients, at least {n}: {done} completed, {} failed, {:.0} s",
            failed.load(Ordering::Relaxed),
            start.elapsed().as_secs_f64()
        )
    });
}
