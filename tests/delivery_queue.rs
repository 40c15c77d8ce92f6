//! Queue behaviour of outbound delivery against a real Postfix (issue 4):
//! the receiving server goes away and comes back (every message delivered
//! exactly once), permanent failures bounce with a DSN (never a bounce of
//! a bounce), and pflogsumm counts tern's log lines.

mod common;
mod delivery_harness;

use common::ports::free_port;
use common::postfix::{Postfix, PostfixBuilder};
use common::sink::SmtpSink;
use common::tempdir::{write_config, TempDir};
use common::tools::pflogsumm;
use delivery_harness::{field, Tern};

use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn subjects(pf: &Postfix) -> Vec<String> {
    pf.messages()
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        })
        .collect()
}

/// Postfix that knows only `alice` and `bob` in example.test: anything
/// else gets `550 5.1.1 ... User unknown in virtual mailbox table`.
fn with_users(b: PostfixBuilder, dir: &TempDir) -> PostfixBuilder {
    let users = dir.join("users");
    write_config(
        &users,
        "alice@example.test inbox/\nbob@example.test inbox/\n",
    );
    b.main_cf(
        "virtual_mailbox_maps",
        &format!("texthash:{}", users.display()),
    )
}

#[test]
fn wan_down_then_back_delivers_every_message_once() {
    let port = free_port();
    let mut first = Postfix::builder().smtp_port(port).start();
    let tern = Tern::builder().relay_to(port).start();
    let before: Vec<String> = (0..2)
        .map(|i| {
            tern.submit(
                "alice@example.net",
                "bob@example.test",
                &format!("before-{i}"),
            )
        })
        .collect();
    for id in &before {
        tern.wait_log(&[id, "status=sent"], 1, T);
    }
    first.wait_for_message(2, T);

    // The WAN goes down: nothing listens on the relay's port any more.
    first.stop();
    let during: Vec<String> = (0..5)
        .map(|i| {
            tern.submit(
                "alice@example.net",
                "bob@example.test",
                &format!("during-{i}"),
            )
        })
        .collect();
    for id in &during {
        let d = tern.wait_log(&[id, "status=deferred"], 1, T);
        let text = d[0].split("status=deferred (").nth(1).unwrap_or("");
        assert!(
            text.ends_with(&format!(
                "connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused)"
            )),
            "{}",
            d[0]
        );
    }
    let q = tern.mailq();
    for id in &during {
        assert!(q.contains(id.as_str()), "{id} not in mailq:\n{q}");
    }
    assert!(q.contains("Connection refused"), "{q}");
    assert!(q.contains("-- ") && q.contains(" in 5 Requests."), "{q}");

    // It comes back (a new server on the same address); flush.
    let second = Postfix::builder().smtp_port(port).start();
    tern.flush();
    second.wait_for_message(5, T);
    tern.wait_queue_empty(T);
    // Two more queue runs (queue_run_delay = 1s) must not send anything again.
    std::thread::sleep(Duration::from_millis(2500));
    let mut got = subjects(&second);
    got.sort();
    let want: Vec<String> = (0..5).map(|i| format!("during-{i}")).collect();
    assert_eq!(got, want, "each message exactly once");
    for id in before.iter().chain(&during) {
        assert_eq!(tern.log_lines(&[id, "status=sent"]).len(), 1, "{id}");
    }
}

/// The subjects of the complete messages a sink holds (a dump ends with
/// the `END <subject>` line every test message carries; a dump cut off by
/// the kill does not count as an arrival).
fn complete_subjects(sink: &SmtpSink) -> Vec<String> {
    sink.messages()
        .iter()
        .filter_map(|m| {
            let text = String::from_utf8_lossy(m);
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))?
                .trim()
                .to_string();
            text.contains(&format!("END {subject}")).then_some(subject)
        })
        .collect()
}

/// The WAN dies while deliveries are in flight: a slow receiver (smtp-sink
/// waits 1 s before answering DATA) is killed mid-queue with sessions open,
/// comes back on the same address, and every message arrives, each queue
/// ID with exactly one `status=sent`. A message may arrive twice only when
/// the kill fell between the final dot and its reply, the window SMTP
/// cannot close (RFC 1047); tern then says so in the deferral, as Postfix
/// does ("-- message may be sent more than once"), and only such messages
/// are allowed a second copy.
#[test]
fn wan_killed_mid_session_loses_nothing() {
    const N: usize = 40;
    let port = free_port();
    let mut first = SmtpSink::start_on(port, &["-w", "1"]);
    let tern = Tern::builder()
        .relay_to(port)
        .set("smtp_tls_security_level", "none")
        .start();
    let ids: Vec<String> = (0..N)
        .map(|i| {
            let subject = format!("wan-{i}");
            let r = common::tools::Swaks::new(tern.port())
                .from("alice@example.net")
                .to("bob@example.test")
                .data(&format!(
                    "Subject: {subject}\r\n\r\nbody of {subject}\r\nEND {subject}\r\n"
                ))
                .run_ok();
            r.queue_id()
                .unwrap_or_else(|| panic!("no queue id:\n{}", r.transcript))
        })
        .collect();
    // A few got through; the rest are queued or in open sessions.
    first.wait_for_count(6, T);
    first.stop();
    let cut = tern.wait_log(&["status=deferred", "lost connection with"], 1, T);
    assert!(
        ids.iter().any(|id| cut[0].contains(id.as_str())),
        "{}",
        cut[0]
    );
    let got_first = complete_subjects(&first);
    assert!(
        got_first.len() < N,
        "the kill came too late to test anything"
    );

    let second = SmtpSink::start_on(port, &[]);
    tern.wait_queue_empty(Duration::from_secs(90));
    // Two more queue runs must not send anything again.
    std::thread::sleep(Duration::from_millis(2500));

    let mut all = got_first.clone();
    all.extend(complete_subjects(&second));
    let log = tern.log();
    eprintln!(
        "before the kill: {} messages; deferrals for a cut session: {}; after: {}",
        got_first.len(),
        log.lines()
            .filter(|l| l.contains("status=deferred") && l.contains("lost connection"))
            .count(),
        all.len() - got_first.len()
    );
    for (i, id) in ids.iter().enumerate() {
        let subject = format!("wan-{i}");
        let copies = all.iter().filter(|s| **s == subject).count();
        assert!(copies >= 1, "{subject} ({id}) never arrived\n{log}");
        if copies > 1 {
            assert!(
                log.lines().any(|l| l.contains(id.as_str())
                    && l.contains("status=deferred")
                    && l.contains("message may be sent more than once")),
                "{subject} ({id}) arrived {copies} times without the end-of-data race\n{log}"
            );
            assert_eq!(copies, 2, "{subject}");
        }
        let sent = tern.log_lines(&[id, "status=sent"]);
        assert_eq!(sent.len(), 1, "{id}: {sent:?}");
    }
}

/// A message that outlives `maximal_queue_lifetime` is returned with a
/// DSN: qmgr logs `status=expired, returned to sender` as Postfix does, the
/// DSN (multipart/report, Action: failed, the last reason) reaches the
/// sender's server, and the message leaves the queue.
#[test]
fn expired_message_is_returned_with_a_dsn() {
    let pf = Postfix::builder().local_domains(&["example.net"]).start();
    let dead = free_port();
    let b = Tern::builder();
    let transport = b.table(
        "transport",
        &format!("example.test smtp:[127.0.0.1]:{dead}\n"),
    );
    let tern = b
        .relay_to(pf.smtp_port())
        .set("transport_maps", &transport)
        .set("maximal_queue_lifetime", "3s")
        .start();
    let id = tern.submit("alice@example.net", "bob@example.test", "too-late");
    tern.wait_log(&[&id, "status=deferred", "Connection refused"], 1, T);
    let exp = tern.wait_log(&[&id, "status=expired, returned to sender"], 1, T);
    assert!(
        exp[0].contains(&format!("{id}: from=<alice@example.net>, status=expired")),
        "{}",
        exp[0]
    );
    // No per-recipient bounce line: the deferrals were logged as they came.
    assert!(
        tern.log_lines(&[&id, "status=bounced"]).is_empty(),
        "{}",
        tern.log()
    );
    let n = tern.wait_log(&[&id, "sender non-delivery notification: "], 1, T);
    let dsn_id = n[0].rsplit(' ').next().unwrap_or("").to_string();
    tern.wait_log(&[&dsn_id, "to=<alice@example.net>", "status=sent"], 1, T);
    let msgs = pf.wait_for_message(1, T);
    let dsn = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert!(
        dsn.contains("Content-Type: multipart/report; report-type=delivery-status;"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Final-Recipient: rfc822; bob@example.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("Status: 4.4.7"), "{dsn}");
    assert!(
        dsn.contains("Connection refused"),
        "the last reason:\n{dsn}"
    );
    assert!(dsn.contains("Subject: too-late"), "{dsn}");
    tern.wait_queue_empty(T);
}

/// Queues three messages for a next hop that is down, brings it up and
/// flushes: with one session per destination they go out over one
/// connection (Postfix's smtpd logs `mail=3` for it, tern `conn_use=2`
/// and `conn_use=3` as Postfix's smtp does), unless the policy entry says
/// `connection_reuse=no`, which takes one connection per message.
fn three_after_flush(reuse: Option<&str>) -> (Postfix, Tern, Vec<String>) {
    let port = free_port();
    let mut b = Tern::builder()
        .relay_to(port)
        .set("default_destination_concurrency_limit", "1")
        .set("minimal_backoff_time", "300s")
        .set("maximal_backoff_time", "600s");
    if let Some(r) = reuse {
        let t = b.table(
            "tls_policy",
            &format!("[127.0.0.1]:{port} may connection_reuse={r}\n"),
        );
        b = b.set("smtp_tls_policy_maps", &t);
    }
    let tern = b.start();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            tern.submit(
                "alice@example.net",
                "bob@example.test",
                &format!("reuse-{i}"),
            )
        })
        .collect();
    for id in &ids {
        tern.wait_log(&[id, "status=deferred"], 1, T);
    }
    let pf = Postfix::builder().smtp_port(port).start();
    tern.flush();
    for id in &ids {
        tern.wait_log(&[id, "status=sent"], 1, T);
    }
    pf.wait_for_message(3, T);
    (pf, tern, ids)
}

#[test]
fn one_connection_for_several_messages() {
    let (pf, tern, ids) = three_after_flush(None);
    assert!(
        pf.wait_for_log_count(
            "disconnect from localhost[127.0.0.1] ehlo=1 mail=3 rcpt=3 data=3 quit=1",
            1,
            T
        ),
        "{}",
        pf.log()
    );
    assert_eq!(
        pf.log()
            .matches("connect from localhost[127.0.0.1]")
            .count()
            - pf.log().matches("disconnect from").count(),
        1,
        "one connection:\n{}",
        pf.log()
    );
    let sent = tern.log_lines(&["status=sent"]);
    let mut uses: Vec<String> = sent
        .iter()
        .map(|l| field(l, "conn_use").unwrap_or("1").to_string())
        .collect();
    uses.sort();
    assert_eq!(uses, vec!["1", "2", "3"], "{sent:#?}");
    assert!(ids
        .iter()
        .all(|id| sent.iter().any(|l| l.contains(id.as_str()))));
}

#[test]
fn connection_reuse_no_takes_a_connection_per_message() {
    let (pf, tern, _) = three_after_flush(Some("no"));
    assert!(
        pf.wait_for_log_count(
            "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1",
            3,
            T
        ),
        "{}",
        pf.log()
    );
    assert!(!pf.log().contains("mail=2"), "{}", pf.log());
    assert!(tern.log_lines(&["conn_use="]).is_empty(), "{}", tern.log());
}

#[test]
fn backoff_alone_recovers_without_flush() {
    let port = free_port();
    let tern = Tern::builder().relay_to(port).start();
    // The receiving server is not up yet.
    let ids: Vec<String> = (0..3)
        .map(|i| {
            tern.submit(
                "alice@example.net",
                "bob@example.test",
                &format!("late-{i}"),
            )
        })
        .collect();
    for id in &ids {
        tern.wait_log(&[id, "status=deferred"], 1, T);
    }
    let t0 = Instant::now();
    let pf = Postfix::builder().smtp_port(port).start();
    pf.wait_for_message(3, T);
    tern.wait_queue_empty(T);
    // minimal_backoff_time = 1s, maximal_backoff_time = 2s, queue_run_delay = 1s.
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let mut got = subjects(&pf);
    got.sort();
    assert_eq!(got, vec!["late-0", "late-1", "late-2"]);
}

#[test]
fn rejected_recipient_bounces_with_a_dsn_and_bounces_never_bounce() {
    let dir = TempDir::new("users");
    let pf = with_users(Postfix::builder(), &dir).start();
    let port = pf.smtp_port();
    let tern = Tern::builder().relay_to(port).start();

    // 1. alice -> ghost: 550, bounced; the DSN goes back to alice.
    let id = tern.submit("alice@example.test", "ghost@example.test", "to-ghost");
    let b = tern.wait_log(&[&id, "status=bounced"], 1, T);
    assert_eq!(field(&b[0], "dsn"), Some("5.1.1"), "{}", b[0]);
    assert!(
        b[0].contains(
            "status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <ghost@example.test>: \
             Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command))"
        ),
        "{}",
        b[0]
    );
    let n = tern.wait_log(&[&id, "sender non-delivery notification: "], 1, T);
    let dsn_id = n[0].rsplit(' ').next().unwrap().to_string();
    tern.wait_log(&[&dsn_id, "to=<alice@example.test>", "status=sent"], 1, T);
    tern.wait_log(&[&dsn_id, "from=<>, size="], 1, T);
    let msgs = pf.wait_for_message(1, T);
    let dsn = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert!(dsn.contains("Return-Path: <>"), "{dsn}");
    assert!(
        dsn.contains("Content-Type: multipart/report; report-type=delivery-status;"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Content-Type: message/delivery-status"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Final-Recipient: rfc822; ghost@example.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");
    assert!(dsn.contains("Remote-MTA: dns; 127.0.0.1"), "{dsn}");
    assert!(
        dsn.contains("Diagnostic-Code: smtp; 550 5.1.1 <ghost@example.test>"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Subject: to-ghost"),
        "the original is returned:\n{dsn}"
    );

    // 2. ghost -> ghost: bounced; its DSN to ghost bounces too, and that
    //    bounce (null sender) is not bounced again.
    let id2 = tern.submit("ghost@example.test", "ghost@example.test", "from-ghost");
    tern.wait_log(&[&id2, "status=bounced"], 1, T);
    let n2 = tern.wait_log(&[&id2, "sender non-delivery notification: "], 1, T);
    let dsn2 = n2[0].rsplit(' ').next().unwrap().to_string();
    tern.wait_log(&[&dsn2, "to=<ghost@example.test>", "status=bounced"], 1, T);
    tern.wait_log(&[&dsn2, "not bouncing"], 1, T);
    // 3. A null-sender message that fails is not bounced either.
    let r = common::tools::Swaks::new(tern.port())
        .from("<>")
        .to("ghost@example.test")
        .run_ok();
    let id3 = r.queue_id().unwrap();
    tern.wait_log(&[&id3, "from=<>", "(queue active)"], 1, T);
    tern.wait_log(&[&id3, "status=bounced"], 1, T);
    tern.wait_log(&[&id3, "not bouncing"], 1, T);
    tern.wait_queue_empty(T);
    assert_eq!(
        tern.log_lines(&["sender non-delivery notification"]).len(),
        2
    );
    assert_eq!(pf.messages().len(), 1, "only alice's DSN was delivered");
}

#[test]
fn pflogsumm_counts_sent_deferred_bounced() {
    let dir = TempDir::new("users");
    let pf = with_users(Postfix::builder(), &dir).start();
    let dead = free_port();
    let b = Tern::builder();
    let transport = b.table(
        "transport",
        &format!("dead.example.test smtp:[127.0.0.1]:{dead}\n"),
    );
    let mut tern = b
        .relay_to(pf.smtp_port())
        .set("transport_maps", &transport)
        .start();
    for i in 0..3 {
        tern.submit("alice@example.test", "bob@example.test", &format!("ok-{i}"));
    }
    let bounced = tern.submit("alice@example.test", "ghost@example.test", "bounce");
    let deferred: Vec<String> = (0..2)
        .map(|i| {
            tern.submit(
                "alice@example.test",
                "x@dead.example.test",
                &format!("d-{i}"),
            )
        })
        .collect();
    // 3 + alice's DSN.
    tern.wait_log(&["status=sent"], 4, T);
    tern.wait_log(&[&bounced, "status=bounced"], 1, T);
    for id in &deferred {
        tern.wait_log(&[id, "status=deferred"], 1, T);
    }
    tern.stop();
    let log = tern.log();
    let deferrals = log
        .lines()
        .filter(|l| l.contains("status=deferred"))
        .count();
    let (totals, report) = pflogsumm(&tern.log_path(), "tern");
    assert_eq!(totals.received, 6, "{report}");
    assert_eq!(totals.delivered, 4, "{report}");
    assert_eq!(totals.deferred, 2, "{report}");
    assert_eq!(totals.bounced, 1, "{report}");
    // printf "(%d%s deferrals)" with a blank unit suffix.
    assert!(
        report.contains(&format!("({deferrals}  deferrals)")),
        "{deferrals} deferrals:\n{report}"
    );
    assert!(report.contains("bob@example.test"), "{report}");
    // Per-reason detail parses the Postfix-shaped texts.
    assert!(report.contains("Connection refused"), "{report}");
    assert!(
        report.contains("User unknown in virtual mailbox table"),
        "{report}"
    );
}

/// Counts the SMTP sessions open at once, over all its listeners together
/// and per listener. Each session holds its end-of-data reply until two
/// sessions have been open together (or 10 s passed), then `settle` more,
/// so a client allowed two connections reliably shows two, and one that
/// would open more has the time to.
struct CountingServer {
    max: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    delivered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Per listener, in the order of the ports: (most open at once, delivered).
    per_port: Vec<(
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    )>,
}

impl CountingServer {
    fn start_on(port: u16) -> CountingServer {
        Self::start_many(&[port], Duration::ZERO)
    }

    fn start_many(ports: &[u16], settle: Duration) -> CountingServer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use std::sync::Arc;
        let (cur, max, delivered) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let mut per_port = Vec::new();
        for &port in ports {
            let l = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
            let (pcur, pmax, pdel) = (
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicUsize::new(0)),
            );
            per_port.push((pmax.clone(), pdel.clone()));
            let (cur, m, d) = (cur.clone(), max.clone(), delivered.clone());
            std::thread::spawn(move || {
                for tcp in l.incoming().flatten() {
                    let (cur, max, delivered) = (cur.clone(), m.clone(), d.clone());
                    let (pcur, pmax, pdel) = (pcur.clone(), pmax.clone(), pdel.clone());
                    std::thread::spawn(move || {
                        let now = cur.fetch_add(1, SeqCst) + 1;
                        max.fetch_max(now, SeqCst);
                        let pnow = pcur.fetch_add(1, SeqCst) + 1;
                        pmax.fetch_max(pnow, SeqCst);
                        let mut w = tcp;
                        let Ok(r) = w.try_clone() else { return };
                        let mut r = BufReader::new(r);
                        let _ = w.write_all(b"220 count.example.test ESMTP\r\n");
                        let mut line = String::new();
                        let mut in_data = false;
                        while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                            let l = line.trim_end().to_string();
                            line.clear();
                            let reply: &[u8] = if in_data {
                                if l != "." {
                                    continue;
                                }
                                in_data = false;
                                let until = Instant::now() + Duration::from_secs(10);
                                while max.load(SeqCst) < 2 && Instant::now() < until {
                                    std::thread::sleep(Duration::from_millis(10));
                                }
                                std::thread::sleep(settle);
                                delivered.fetch_add(1, SeqCst);
                                pdel.fetch_add(1, SeqCst);
                                b"250 2.0.0 Ok: queued\r\n"
                            } else {
                                match l
                                    .split(' ')
                                    .next()
                                    .unwrap_or("")
                                    .to_ascii_uppercase()
                                    .as_str()
                                {
                                    "EHLO" => b"250-count.example.test\r\n250 PIPELINING\r\n",
                                    "DATA" => {
                                        in_data = true;
                                        b"354 go ahead\r\n"
                                    }
                                    "QUIT" => {
                                        let _ = w.write_all(b"221 Bye\r\n");
                                        break;
                                    }
                                    _ => b"250 Ok\r\n",
                                }
                            };
                            if w.write_all(reply).is_err() {
                                break;
                            }
                        }
                        pcur.fetch_sub(1, SeqCst);
                        cur.fetch_sub(1, SeqCst);
                    });
                }
            });
        }
        CountingServer {
            max,
            delivered,
            per_port,
        }
    }
}

/// `default_destination_concurrency_limit` bounds the sessions to one next
/// hop: six messages queued together go out over at most (and, here,
/// exactly) two connections at a time.
#[test]
fn destination_concurrency_limit_is_kept() {
    use std::sync::atomic::Ordering::SeqCst;
    // Queue six messages while the next hop is down, so that one queue
    // run (the flush) finds them all.
    let port = free_port();
    let tern = Tern::builder()
        .relay_to(port)
        .set("default_destination_concurrency_limit", "2")
        .set("minimal_backoff_time", "300s")
        .set("maximal_backoff_time", "600s")
        .set("smtp_tls_security_level", "none")
        .start();
    let ids: Vec<String> = (0..6)
        .map(|i| tern.submit("alice@example.net", "bob@example.test", &format!("c-{i}")))
        .collect();
    for id in &ids {
        tern.wait_log(&[id, "status=deferred"], 1, T);
    }
    let server = CountingServer::start_on(port);
    tern.flush();
    for id in &ids {
        tern.wait_log(&[id, "status=sent"], 1, T);
    }
    assert_eq!(server.delivered.load(SeqCst), 6);
    assert_eq!(server.max.load(SeqCst), 2, "sessions open at once");
}

/// The total cap on outbound sessions: at most half of `max_connections`
/// (the rest stays for inbound mail), over all destinations together. Two
/// next hops that each may have two sessions (`default_destination_
/// concurrency_limit = 2`) share the two that `max_connections = 4`
/// leaves: never more than two sessions are open at once, and both next
/// hops get their mail.
#[test]
fn total_outbound_sessions_are_capped_across_destinations() {
    use std::sync::atomic::Ordering::SeqCst;
    let (port_a, port_b) = (free_port(), free_port());
    let b = Tern::builder();
    let transport = b.table(
        "transport",
        &format!(
            "a.example.test smtp:[127.0.0.1]:{port_a}\nb.example.test smtp:[127.0.0.1]:{port_b}\n"
        ),
    );
    let tern = b
        .set("transport_maps", &transport)
        .set("max_connections", "4")
        .set("default_destination_concurrency_limit", "2")
        .set("minimal_backoff_time", "300s")
        .set("maximal_backoff_time", "600s")
        .set("smtp_tls_security_level", "none")
        .start();
    // Queued while both next hops are down, so one queue run finds all six.
    let ids: Vec<String> = (0..6)
        .map(|i| {
            let domain = if i % 2 == 0 { "a" } else { "b" };
            tern.submit(
                "alice@example.net",
                &format!("bob@{domain}.example.test"),
                &format!("cap-{i}"),
            )
        })
        .collect();
    for id in &ids {
        tern.wait_log(&[id, "status=deferred"], 1, T);
    }
    let server = CountingServer::start_many(&[port_a, port_b], Duration::from_millis(300));
    tern.flush();
    for id in &ids {
        tern.wait_log(&[id, "status=sent"], 1, T);
    }
    assert_eq!(server.delivered.load(SeqCst), 6);
    for (i, (max, delivered)) in server.per_port.iter().enumerate() {
        assert_eq!(delivered.load(SeqCst), 3, "next hop {i}");
        assert!(max.load(SeqCst) <= 2, "next hop {i}: per-destination limit");
    }
    assert_eq!(
        server.max.load(SeqCst),
        2,
        "sessions open at once, all next hops"
    );
}

/// A raw-byte SMTP sink for the relaying tests: speaks just enough SMTP
/// (no PIPELINING, no STARTTLS) and records, per message, the exact octets
/// tern sent after `354` up to the first `CRLF.CRLF` (the end a conforming
/// server sees), and every command line it did not expect: a body ended
/// early would turn the rest of the body into such commands.
mod raw_sink {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    pub struct Seen {
        pub messages: Vec<Vec<u8>>,
        pub unexpected: Vec<String>,
    }

    pub fn start() -> (u16, Arc<Mutex<Seen>>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for tcp in l.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(tcp, &s));
            }
        });
        (port, seen)
    }

    fn end_of_data(d: &[u8]) -> Option<usize> {
        if d.starts_with(b".\r\n") {
            return Some(3);
        }
        d.windows(5).position(|w| w == b"\r\n.\r\n").map(|p| p + 5)
    }

    fn serve(mut tcp: TcpStream, seen: &Mutex<Seen>) {
        let _ = tcp.write_all(b"220 raw.example.test ESMTP\r\n");
        let mut buf: Vec<u8> = Vec::new();
        let mut data: Option<Vec<u8>> = None;
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(d) = &mut data {
                d.append(&mut buf);
                if let Some(end) = end_of_data(d) {
                    buf = d.split_off(end);
                    seen.lock().unwrap().messages.push(std::mem::take(d));
                    data = None;
                    let _ = tcp.write_all(b"250 2.0.0 Ok: queued as RAW\r\n");
                    continue;
                }
            } else if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = buf.drain(..p + 2).collect();
                let l = String::from_utf8_lossy(&line[..p]).to_string();
                let verb = l.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" => b"250-raw.example.test\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n",
                    "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 Ok\r\n",
                    "DATA" => {
                        data = Some(Vec::new());
                        b"354 End data with <CR><LF>.<CR><LF>\r\n"
                    }
                    "QUIT" => {
                        let _ = tcp.write_all(b"221 2.0.0 Bye\r\n");
                        return;
                    }
                    _ => {
                        seen.lock().unwrap().unexpected.push(l);
                        b"500 5.5.2 Error: command not recognized\r\n"
                    }
                };
                let _ = tcp.write_all(reply);
                continue;
            }
            match tcp.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Sends one message into tern over plain SMTP (EHLO, no pipelining) and
/// returns tern's reply to the end of data, then the reply to QUIT.
fn submit_raw(port: u16, body: &[u8]) -> (String, String) {
    use std::io::{BufRead, BufReader, Write};
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(T)).expect("timeout");
    let mut w = tcp.try_clone().expect("clone");
    let mut r = BufReader::new(tcp);
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    };
    assert!(reply().starts_with("220 "));
    for cmd in [
        "EHLO client.test",
        "MAIL FROM:<alice@example.net>",
        "RCPT TO:<bob@example.test>",
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).expect("write");
        let r = reply();
        assert!(r.starts_with("250"), "{cmd}: {r}");
    }
    w.write_all(b"DATA\r\n").expect("write");
    let r = reply();
    assert!(r.starts_with("354 "), "{r}");
    w.write_all(body).expect("write");
    w.write_all(b"\r\n.\r\n").expect("write");
    let end = reply();
    w.write_all(b"QUIT\r\n").expect("write");
    let quit = reply();
    (end, quit)
}

/// Issue 16: a 1 MiB line is relayed broken into lines of at most 998
/// octets (`smtp_line_length_limit`, Postfix's `CRLF SPACE`), and taking
/// the inserted `CRLF SPACE` out gives back the line exactly.
#[test]
fn a_one_mebibyte_line_is_relayed_folded() {
    let (sink_port, seen) = raw_sink::start();
    let tern = Tern::builder().relay_to(sink_port).start();
    // Printable text with spaces and dots, so folds land everywhere.
    let mut seed = 0x9e37_79b9_u32;
    let line: Vec<u8> = (0..1 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            b" .abcdefghijklmnopqrstuvwxyz0123456789"[(seed % 38) as usize]
        })
        .collect();
    let mut body = b"Subject: long line\r\n\r\nfirst\r\n".to_vec();
    body.extend_from_slice(&line);
    body.extend_from_slice(b"\r\nlast");
    let (end, quit) = submit_raw(tern.port(), &body);
    assert!(end.starts_with("250 2.0.0 Ok: queued as "), "{end}");
    assert!(quit.starts_with("221 "), "{quit}");
    let id = end
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    tern.wait_log(&[&id, "status=sent"], 1, T);
    let seen = seen.lock().unwrap();
    assert!(seen.unexpected.is_empty(), "{:?}", seen.unexpected);
    assert_eq!(seen.messages.len(), 1);
    let wire = &seen.messages[0];
    for l in wire.split_inclusive(|&b| b == b'\n') {
        assert!(l.len() <= 998 + 2, "a line of {} octets", l.len());
        assert!(l.ends_with(b"\r\n"));
    }
    // Undo the dot-stuffing of the one line, then the folds.
    let mut unstuffed = Vec::new();
    for l in wire.split_inclusive(|&b| b == b'\n') {
        unstuffed.extend_from_slice(l.strip_prefix(b".").unwrap_or(l));
    }
    let mut unfolded = Vec::with_capacity(unstuffed.len());
    let mut i = 0;
    while i < unstuffed.len() {
        if unstuffed[i..].starts_with(b"\r\n ") {
            i += 3;
        } else {
            unfolded.push(unstuffed[i]);
            i += 1;
        }
    }
    let mut want = b"\r\nfirst\r\n".to_vec();
    want.extend_from_slice(&line);
    want.extend_from_slice(b"\r\nlast\r\n");
    assert!(
        unfolded.windows(want.len()).any(|w| w == want),
        "the line did not come back whole"
    );
    assert!(unfolded.ends_with(b"\r\nlast\r\n\r\n"));
}

/// Issue 16, SMTP smuggling: each ending sent inbound neither ends the
/// message early at tern (one `250` for the whole message, then `221` to
/// QUIT) nor appears as an end of data in what tern relays: the sink sees
/// each message end only at tern's final `CRLF.CRLF`, and none of the
/// smuggled commands.
#[test]
fn smuggling_endings_never_end_a_message_inbound_or_outbound() {
    let endings: [&[u8]; 10] = [
        b"\n.\n",
        b"\r.\r",
        b"\r.\n",
        b"\n.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\r\n\0.\r\n",
        b"\r\n.\0\r\n",
    ];
    let (sink_port, seen) = raw_sink::start();
    let tern = Tern::builder().relay_to(sink_port).start();
    for (i, e) in endings.iter().enumerate() {
        let mut body = format!("Subject: smuggle-{i}\r\n\r\nbefore-{i}").into_bytes();
        body.extend_from_slice(e);
        body.extend_from_slice(
            format!(
                "MAIL FROM:<evil@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled-{i}\r\n\r\nsmuggled\r\n"
            )
            .as_bytes(),
        );
        let (end, quit) = submit_raw(tern.port(), &body);
        assert!(end.starts_with("250 2.0.0 Ok: queued as "), "{i}: {end}");
        assert!(quit.starts_with("221 "), "{i}: {quit}");
        let id = end
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        tern.wait_log(&[&id, "status=sent"], 1, T);
    }
    let seen = seen.lock().unwrap();
    assert!(seen.unexpected.is_empty(), "{:?}", seen.unexpected);
    assert_eq!(seen.messages.len(), endings.len());
    for (i, m) in seen.messages.iter().enumerate() {
        let text = String::from_utf8_lossy(m);
        // The whole message, smuggled part included, inside one DATA.
        assert!(text.contains("before-"), "{i}: {text}");
        assert!(text.contains("\r\nsmuggled\r\n\r\n.\r\n"), "{i}: {text}");
        assert!(m.ends_with(b"\r\nsmuggled\r\n\r\n.\r\n"), "{i}: {text}");
        // Only CRLF line ends on the wire: no bare CR or LF is left for a
        // lenient next hop to read as a line end.
        for (j, &b) in m.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(m.get(j.wrapping_sub(1)), Some(&b'\r'), "{i}: {text:?}");
            }
            if b == b'\r' {
                assert_eq!(m.get(j + 1), Some(&b'\n'), "{i}: {text:?}");
            }
        }
    }
}
