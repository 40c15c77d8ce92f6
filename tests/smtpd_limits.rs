//! Every limit of tern's SMTP server, against the running daemon: line
//! length, recipients, message size, idle and total time, error count, junk
//! commands, bare LF (reject and normalize), the connection pool; and the TLS
//! configuration checks (no certificate: no STARTTLS; FFDHE: a config
//! error).
mod common;
mod smtpd_support;

use std::process::Command;
use std::time::{Duration, Instant};

use common::process::run;
use common::tempdir::{write, TempDir};
use smtpd_support::{body_of, Client, Tern, TERN, WAIT};

fn hello(port: u16) -> Client {
    let mut c = Client::connect(port);
    let g = c.reply();
    assert!(g.starts_with("220 tern.example.test ESMTP"), "{g}");
    let r = c.cmd("EHLO client.test");
    assert!(r.starts_with("250-tern.example.test"), "{r}");
    c
}

#[test]
fn line_length_limit() {
    let tern = Tern::builder().set("line_length_limit", "1000").start();
    let mut c = hello(tern.smtp_port);
    // Over the configured limit but within the fixed buffer, and far over
    // the buffer: both get 500 5.5.2 and the session stays usable.
    for len in [1500, 100_000] {
        let r = c.cmd(&format!("NOOP {}", "x".repeat(len)));
        assert_eq!(r, "500 5.5.2 Error: line too long\r\n", "len {len}");
        let r = c.cmd("NOOP");
        assert!(r.starts_with("250 2.0.0 Ok"), "after {len}: {r}");
    }
    // A long address is refused too (no transaction is left behind).
    let r = c.cmd(&format!("MAIL FROM:<{}@example.test>", "a".repeat(2000)));
    assert!(r.starts_with("500 5.5.2"), "{r}");
    let r = c.cmd("RCPT TO:<x@remote.test>");
    assert!(r.starts_with("503 5.5.1"), "{r}");
    assert!(c.cmd("QUIT").starts_with("221 "));
    assert!(tern.queued().is_empty());
}

#[test]
fn recipient_limit() {
    let tern = Tern::builder().set("smtpd_recipient_limit", "3").start();
    let mut c = hello(tern.smtp_port);
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
    for i in 1..=3 {
        let r = c.cmd(&format!("RCPT TO:<r{i}@remote.test>"));
        assert!(r.starts_with("250 2.1.5 Ok"), "{i}: {r}");
    }
    let r = c.cmd("RCPT TO:<r4@remote.test>");
    assert_eq!(r, "452 4.5.3 Error: too many recipients\r\n");
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(b"Subject: three\r\n\r\nbody\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let id = r.trim_end().rsplit(' ').next().unwrap().to_string();
    let q = tern.queue_file(&id);
    assert_eq!(q.matches("\nrcpt ").count(), 3, "{q}");
    assert!(!q.contains("r4@remote.test"), "{q}");
}

/// Postfix's `smtpd_recipient_overshoot_limit` (1000): a client with a
/// longer list than `smtpd_recipient_limit` gets `452` for the excess,
/// never `421`, and its message goes to the accepted 1,000. Before this,
/// the 20th `452` hit `smtpd_hard_error_limit` and dropped them all.
#[test]
fn recipient_overshoot_lets_the_client_finish() {
    let tern = Tern::builder().start();
    let mut c = hello(tern.smtp_port);
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
    // Pipelined (allowed after EHLO) in groups, replies read per group.
    let total = 1_200;
    let mut replies = Vec::with_capacity(total);
    for group in 0..(total / 100) {
        let mut batch = String::new();
        for i in 0..100 {
            batch.push_str(&format!("RCPT TO:<r{}@remote.test>\r\n", group * 100 + i));
        }
        c.send(batch.as_bytes());
        for _ in 0..100 {
            replies.push(c.reply());
        }
    }
    for (i, r) in replies.iter().enumerate() {
        if i < 1000 {
            assert!(r.starts_with("250 2.1.5 Ok"), "{i}: {r}");
        } else {
            assert_eq!(r, "452 4.5.3 Error: too many recipients\r\n", "{i}");
        }
    }
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(b"Subject: many\r\n\r\nbody\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    assert!(c.cmd("QUIT").starts_with("221 "));
    let id = r
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let q = tern.queue_file(&id);
    assert_eq!(q.matches("\nrcpt ").count(), 1000);
    assert!(q.contains("r999@remote.test") && !q.contains("r1000@remote.test"));
}

#[test]
fn message_size_limit() {
    let tern = Tern::builder().set("message_size_limit", "10000").start();
    let mut c = Client::connect(tern.smtp_port);
    c.reply();
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.contains("250-SIZE 10000\r\n"), "{ehlo}");
    // Declared too big at MAIL.
    let r = c.cmd("MAIL FROM:<a@example.test> SIZE=20000");
    assert_eq!(r, "552 5.3.4 Message size exceeds fixed limit\r\n");
    // Undeclared, then too big in DATA: read to the end, then refused.
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<big@remote.test>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    let line = format!("{}\r\n", "y".repeat(76));
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..300 {
        body.extend_from_slice(line.as_bytes());
    }
    body.extend_from_slice(b".\r\n");
    c.send(&body);
    let r = c.reply();
    assert_eq!(r, "552 5.3.4 Error: message file too big\r\n");
    // The session is in step and a small message still goes through.
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<small@remote.test>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(b"Subject: small\r\n\r\nok\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as "));
    let q = tern.queued();
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0].1.contains("\nrcpt small@remote.test\n"));
    // No half-written file of the big one is left behind.
    let incoming: Vec<_> = std::fs::read_dir(tern.spool().join("incoming"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(incoming.is_empty(), "{incoming:?}");
}

#[test]
fn idle_timeout() {
    let tern = Tern::builder().set("smtpd_timeout", "2s").start();
    let mut c = hello(tern.smtp_port);
    c.read_timeout(Duration::from_secs(15));
    let t0 = Instant::now();
    let r = c.reply();
    let waited = t0.elapsed();
    assert_eq!(r, "421 4.4.2 tern.example.test Error: timeout exceeded\r\n");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(12),
        "{waited:?}"
    );
    assert!(c.closed(), "connection stays open after the timeout");
    tern.wait_for_log(&["timeout after EHLO from localhost[127.0.0.1]"]);
}

/// EHLO, MAIL, RCPT and DATA up to the 354.
fn in_data(port: u16) -> Client {
    let mut c = hello(port);
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<r@remote.test>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c
}

#[test]
fn timeout_in_data_is_answered_and_logged_with_bytes() {
    let tern = Tern::builder().set("smtpd_timeout", "2s").start();
    let mut c = in_data(tern.smtp_port);
    c.read_timeout(Duration::from_secs(15));
    // Two complete lines (14 bytes) and a partial one, then silence.
    c.send(b"Subject: x\r\n\r\nabc");
    let r = c.reply();
    assert_eq!(r, "421 4.4.2 tern.example.test Error: timeout exceeded\r\n");
    assert!(c.closed(), "connection stays open after the timeout");
    // As Postfix 3.7.11 logs the same dialogue (the partial line is not
    // counted).
    tern.wait_for_log(&[
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=0/1 commands=3/4",
    ]);
    assert_eq!(
        tern.log_count("]: timeout after DATA (14 bytes) from localhost[127.0.0.1]"),
        1,
        "{}",
        tern.log()
    );
    assert!(tern.queued().is_empty(), "{:?}", tern.queued());

    // Idle after a queued message: "after END-OF-MESSAGE".
    let mut c = in_data(tern.smtp_port);
    c.read_timeout(Duration::from_secs(15));
    c.send(b"Subject: y\r\n\r\nbody\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as "));
    let r = c.reply();
    assert_eq!(r, "421 4.4.2 tern.example.test Error: timeout exceeded\r\n");
    tern.wait_for_log(&["timeout after END-OF-MESSAGE from localhost[127.0.0.1]"]);
}

#[test]
fn lost_connection_lines_as_postfix() {
    let tern = Tern::builder().start();
    // Mid-DATA: the byte count of the body lines received.
    let mut c = in_data(tern.smtp_port);
    c.send(b"Subject: x\r\n\r\nabc\r\n");
    drop(c);
    tern.wait_for_log(&["]: lost connection after DATA (19 bytes) from localhost[127.0.0.1]"]);
    tern.wait_for_log(&[
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=0/1 commands=3/4",
    ]);
    assert!(tern.queued().is_empty(), "{:?}", tern.queued());

    // After a command: its verb.
    let mut c = hello(tern.smtp_port);
    assert!(c.cmd("MAIL FROM:<b@example.test>").starts_with("250 "));
    drop(c);
    tern.wait_for_log(&["]: lost connection after MAIL from localhost[127.0.0.1]"]);

    // Right after "250 ... queued as" without QUIT: Postfix logs nothing.
    let mut c = in_data(tern.smtp_port);
    c.send(b"Subject: z\r\n\r\nbody\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as "));
    drop(c);
    tern.wait_for_log(&[
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 commands=4",
    ]);
    let log = tern.log();
    let lost: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("lost connection after"))
        .collect();
    assert_eq!(lost.len(), 2, "{lost:#?}");
    assert_eq!(tern.queued().len(), 1, "{:?}", tern.queued());
}

#[test]
fn total_time_limit() {
    let tern = Tern::builder()
        .set("smtpd_timeout", "10s")
        .set("smtpd_total_time_limit", "3s")
        .start();
    let mut c = hello(tern.smtp_port);
    let t0 = Instant::now();
    // A client that is never idle long enough for smtpd_timeout.
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(300));
        c.send(b"NOOP\r\n");
        match c.try_reply() {
            Some(r) if r.starts_with("250 ") => continue,
            Some(r) => {
                last = r;
                break;
            }
            None => break,
        }
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(12), "never cut off: {took:?}");
    assert!(took >= Duration::from_secs(2), "cut off early: {took:?}");
    assert!(
        last.is_empty() || last.starts_with("421 4.4.2"),
        "unexpected: {last}"
    );
}

#[test]
fn too_many_errors() {
    let tern = Tern::builder()
        .set("smtpd_soft_error_limit", "10")
        .set("smtpd_hard_error_limit", "3")
        .start();
    let mut c = hello(tern.smtp_port);
    let mut replies = Vec::new();
    for _ in 0..10 {
        c.send(b"BOGUS\r\n");
        match c.try_reply() {
            Some(r) => {
                let done = r.starts_with("421 ");
                replies.push(r);
                if done {
                    break;
                }
            }
            None => break,
        }
    }
    let last = replies.last().cloned().unwrap_or_default();
    assert_eq!(
        last, "421 4.7.0 tern.example.test Error: too many errors\r\n",
        "{replies:?}"
    );
    assert!(replies.len() <= 4, "{replies:?}");
    assert!(
        replies[0].starts_with("500 5.5.2 Error: command not recognized"),
        "{replies:?}"
    );
    assert!(c.closed());
    tern.wait_for_log(&["disconnect from localhost[127.0.0.1] ehlo=1 unknown=0/"]);
    // Postfix 3.7: the reason line names the last command (an unknown one).
    assert_eq!(
        tern.log_count("]: too many errors after UNKNOWN from localhost[127.0.0.1]"),
        1,
        "{}",
        tern.log()
    );
    assert_eq!(tern.log_count("lost connection after"), 0, "{}", tern.log());
}

#[test]
fn junk_command_limit() {
    let tern = Tern::builder()
        .set("smtpd_junk_command_limit", "5")
        .set("smtpd_hard_error_limit", "3")
        // The NOOPs below are pipelined, which Postfix 3.9's default
        // refuses at the first one (NOOP ends a command group); this test
        // is about the junk limit.
        .set("smtpd_forbid_unauth_pipelining", "no")
        .start();
    let mut c = hello(tern.smtp_port);
    // Twenty NOOPs in one segment. EHLO was junk 1; junk 7, 8 and 9 are
    // errors 1..3, so the eighth NOOP is answered and then the client is
    // cut off: the other twelve are never executed.
    c.send("NOOP\r\n".repeat(20).as_bytes());
    let mut replies = Vec::new();
    while let Some(r) = c.try_reply() {
        replies.push(r);
    }
    assert_eq!(replies.len(), 9, "{replies:?}");
    assert!(
        replies[..8].iter().all(|r| r == "250 2.0.0 Ok\r\n"),
        "{replies:?}"
    );
    assert_eq!(
        replies[8], "421 4.7.0 tern.example.test Error: too many errors\r\n",
        "{replies:?}"
    );
    assert!(c.closed());
    tern.wait_for_log(&["disconnect from localhost[127.0.0.1] ehlo=1 noop=8 commands=9"]);
    assert_eq!(
        tern.log_count("]: too many errors after NOOP from localhost[127.0.0.1]"),
        1,
        "{}",
        tern.log()
    );
    // NOOP ends a PIPELINING group: Postfix logs the NOOPs sent behind the
    // first one, once per session, escaped.
    let l = tern.wait_for_log(&["improper command pipelining after NOOP from"]);
    assert!(
        l.contains(
            "]: improper command pipelining after NOOP from localhost[127.0.0.1]: NOOP\\r\\nNOOP\\r\\n"
        ),
        "{l}"
    );
    assert_eq!(
        tern.log_count("improper command pipelining"),
        1,
        "{}",
        tern.log()
    );

    // The default limit (100) lets a normal amount of NOOPs through.
    let tern = Tern::builder()
        .set("smtpd_forbid_unauth_pipelining", "no")
        .start();
    let mut c = hello(tern.smtp_port);
    c.send("NOOP\r\n".repeat(90).as_bytes());
    for i in 0..90 {
        assert_eq!(c.reply(), "250 2.0.0 Ok\r\n", "NOOP {i}");
    }
    assert!(c.cmd("QUIT").starts_with("221 "));
}

#[test]
fn bare_newline_reject_and_normalize() {
    let strict = Tern::builder()
        .set("smtpd_forbid_bare_newline", "reject")
        .start();
    let mut c = hello(strict.smtp_port);
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<r@remote.test>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(b"Subject: bare\r\n\r\nline one\nline two\r\n.\r\n");
    let r = c.reply();
    assert_eq!(
        r, "550 5.5.2 tern.example.test Error: bare <LF> received\r\n",
        "{r}"
    );
    assert!(c.cmd("QUIT").starts_with("221 "));
    assert!(strict.queued().is_empty(), "{:?}", strict.queued());

    // The default (normalize) accepts it, stored with CRLF line ends.
    let lax = Tern::builder().start();
    let mut c = hello(lax.smtp_port);
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
    assert!(c.cmd("RCPT TO:<r@remote.test>").starts_with("250 "));
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(b"Subject: bare\r\n\r\nline one\nline two\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let q = lax.queue_file(r.trim_end().rsplit(' ').next().unwrap());
    assert!(
        body_of(&q).contains("\r\nline one\r\nline two\r\n"),
        "{q:?}"
    );
}

#[test]
fn pool_exhaustion_refuses_politely() {
    let tern = Tern::builder().set("max_connections", "2").start();
    let a = hello(tern.smtp_port);
    let mut b = hello(tern.smtp_port);
    let mut c = Client::connect(tern.smtp_port);
    let r = c.reply();
    assert_eq!(r, "421 4.3.2 Too many connections\r\n");
    assert!(c.closed());
    tern.wait_for_log(&["warning: too many connections: refusing localhost[127.0.0.1]"]);
    // A freed slot is usable again.
    assert!(b.cmd("QUIT").starts_with("221 "));
    assert!(b.closed());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut d = Client::connect(tern.smtp_port);
        let r = d.reply();
        if r.starts_with("220 ") {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(a);
}

#[test]
fn no_certificate_no_starttls() {
    let tern = Tern::builder().start();
    tern.wait_for_log(&[
        "tern/smtpd[",
        "warning: no smtpd_tls_cert_file or smtpd_tls_eccert_file: STARTTLS is not offered",
    ]);
    let mut c = Client::connect(tern.smtp_port);
    c.reply();
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.starts_with("250-tern.example.test"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    let r = c.cmd("STARTTLS");
    assert!(r.starts_with("502 5.5.1"), "{r}");
}

#[test]
fn ffdhe_groups_are_a_config_error() {
    let dir = TempDir::new("tern-ffdhe");
    let conf = dir.join("tern.conf");
    write(
        &conf,
        "myhostname = tern.example.test\nsmtp_listen = 127.0.0.1:2\n\
         tls_ffdhe_auto_groups = ffdhe2048 ffdhe3072\n",
    );
    let mut cmd = Command::new(TERN);
    cmd.args(["check-config", "-c"]).arg(&conf);
    let out = run(cmd, None, WAIT);
    assert_eq!(out.status, Some(1), "{}", out.combined());
    let want = format!(
        "{}:3: tls_ffdhe_auto_groups: FFDHE key exchange is not available",
        conf.display()
    );
    assert!(out.stderr.contains(&want), "{}", out.combined());
    // The daemon refuses to start with it, too.
    let mut cmd = Command::new(TERN);
    cmd.args(["run", "-f", "-c"]).arg(&conf);
    let out = run(cmd, None, WAIT);
    assert_eq!(out.status, Some(1), "{}", out.combined());
    assert!(
        out.stderr.contains("tls_ffdhe_auto_groups"),
        "{}",
        out.combined()
    );
}

// Per-client limits (anvil). tern's default mynetworks covers all of
// 127.0.0.0/8, and so does the default smtpd_client_event_limit_exceptions
// ($mynetworks); these tests keep only 127.0.0.1 exempt and connect from
// 127.0.0.2 and up, which still may relay (mynetworks).

/// Greeting and EHLO from the loopback address `src`.
fn hello_from(src: &str, port: u16) -> Client {
    let mut c = Client::connect_from(src, port);
    let g = c.reply();
    assert!(g.starts_with("220 tern.example.test ESMTP"), "{src}: {g}");
    let r = c.cmd("EHLO client.test");
    assert!(r.starts_with("250-tern.example.test"), "{src}: {r}");
    c
}

fn limited() -> smtpd_support::TernBuilder {
    Tern::builder().set("smtpd_client_event_limit_exceptions", "127.0.0.1/32")
}

#[test]
fn connection_count_limit_default_is_a_quarter_of_the_slots() {
    // max_connections 8: two per client address when not set.
    let tern = limited().set("max_connections", "8").start();
    let a = hello_from("127.0.0.2", tern.smtp_port);
    let _b = hello_from("127.0.0.2", tern.smtp_port);
    let mut c = Client::connect_from("127.0.0.2", tern.smtp_port);
    assert_eq!(
        c.reply(),
        "421 4.7.0 tern.example.test Error: too many connections from 127.0.0.2\r\n"
    );
    assert!(c.closed());
    tern.wait_for_log(&[
        "warning: Connection concurrency limit exceeded: 3 from localhost[127.0.0.2] for service smtp",
    ]);
    // Other addresses, exempt or not, are served.
    let _x = hello_from("127.0.0.3", tern.smtp_port);
    let _y = hello(tern.smtp_port);
    // A session that ends gives its place back.
    drop(a);
    tern.wait_for_log(&["disconnect from localhost[127.0.0.2] ehlo=1 commands=1"]);
    let _d = hello_from("127.0.0.2", tern.smtp_port);
}

#[test]
fn explicit_connection_count_and_rate_limits_win() {
    let tern = limited()
        .set("max_connections", "8")
        .set("smtpd_client_connection_count_limit", "3")
        .set("smtpd_client_connection_rate_limit", "4")
        .start();
    let held: Vec<Client> = (0..3)
        .map(|_| hello_from("127.0.0.2", tern.smtp_port))
        .collect();
    let mut c = Client::connect_from("127.0.0.2", tern.smtp_port);
    assert!(c
        .reply()
        .starts_with("421 4.7.0 tern.example.test Error: too many connections from 127.0.0.2"));
    drop(held);
    // Five connections in this minute so far (the refused one counts, as
    // in anvil): the rate limit of 4 refuses now, with the same reply.
    let mut c = Client::connect_from("127.0.0.2", tern.smtp_port);
    assert_eq!(
        c.reply(),
        "421 4.7.0 tern.example.test Error: too many connections from 127.0.0.2\r\n"
    );
    tern.wait_for_log(&[
        "warning: Connection rate limit exceeded: 5 from localhost[127.0.0.2] for service smtp",
    ]);
    // The exempt address has no rate.
    for _ in 0..6 {
        let mut c = hello(tern.smtp_port);
        assert!(c.cmd("QUIT").starts_with("221"));
    }
}

#[test]
fn message_rate_limit() {
    let tern = limited()
        .set("smtpd_client_message_rate_limit", "2")
        .start();
    let mut c = hello_from("127.0.0.2", tern.smtp_port);
    for _ in 0..2 {
        assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
        assert!(c.cmd("RSET").starts_with("250 "));
    }
    // Counted across sessions too.
    let mut d = hello_from("127.0.0.2", tern.smtp_port);
    assert_eq!(
        d.cmd("MAIL FROM:<a@example.test>"),
        "450 4.7.1 Error: too much mail from 127.0.0.2\r\n"
    );
    tern.wait_for_log(&[
        "warning: Message delivery request rate limit exceeded: 3 from localhost[127.0.0.2] for service smtp",
    ]);
    let mut e = hello(tern.smtp_port);
    assert!(e.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
}

#[test]
fn auth_rate_limit() {
    let tern = limited()
        .user("alice", "correct horse")
        .set("smtpd_tls_auth_only", "no")
        .set("smtpd_client_auth_rate_limit", "1")
        .start();
    let mut c = hello_from("127.0.0.2", tern.smtp_port);
    // "\0alice\0wrong"
    let r = c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n");
    assert!(r.starts_with("535 "), "{r}");
    let r = c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n");
    assert_eq!(
        r,
        "450 4.7.1 Error: too many AUTH commands from 127.0.0.2\r\n"
    );
    tern.wait_for_log(&[
        "warning: AUTH command rate limit exceeded: 2 from localhost[127.0.0.2] for service smtp",
    ]);
}

/// Issue 16: 40 failed AUTH attempts from one address over ten sessions.
/// The first `smtpd_client_auth_failure_limit` (10) are checked and
/// answered after a growing wait; the other 30 are refused at the AUTH
/// command with 454, no password check made (the log has exactly ten
/// failures); another address still authenticates.
#[test]
fn auth_failures_counted_across_sessions() {
    let tern = limited()
        .user("alice", "correct horse")
        .set("smtpd_tls_auth_only", "no")
        .set("smtpd_client_auth_failure_limit", "10")
        .set("smtpd_auth_failure_delay_ms", "20")
        .set("smtpd_auth_check_rate_limit", "0")
        .start();
    let mut answered = Vec::new();
    for _session in 0..10 {
        let mut c = hello_from("127.0.0.2", tern.smtp_port);
        for _ in 0..4 {
            let t = Instant::now();
            // "\0alice\0wrong"
            let r = c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n");
            answered.push((r, t.elapsed()));
        }
        assert!(c.cmd("QUIT").starts_with("221 "));
    }
    for (i, (r, took)) in answered.iter().enumerate() {
        if i < 10 {
            assert!(r.starts_with("535 5.7.8 "), "{i}: {r}");
            // The wait grows: 20 ms times the failures so far.
            let floor = Duration::from_millis(20 * (i as u64 + 1));
            assert!(*took >= floor, "{i}: answered after {took:?}");
        } else {
            assert_eq!(
                r, "454 4.7.0 Error: too many failed AUTH attempts from 127.0.0.2\r\n",
                "{i}"
            );
        }
    }
    tern.wait_for_log(&[
        "warning: AUTH failure rate limit exceeded: 10 from localhost[127.0.0.2] for service smtp",
    ]);
    // Only the ten allowed attempts reached the password check.
    assert_eq!(
        tern.log_count("localhost[127.0.0.2]: SASL PLAIN authentication failed"),
        10
    );
    assert_eq!(tern.log_count("AUTH failure rate limit exceeded"), 30);
    // Another address is not affected.
    let mut d = hello_from("127.0.0.3", tern.smtp_port);
    let r = d.cmd("AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=");
    assert!(r.starts_with("235 2.7.0"), "{r}");
}

/// `smtpd_auth_check_rate_limit`: beyond the checks allowed in a second
/// AUTH is answered with Postfix's temporary failure, not queued; the next
/// second a check runs again.
#[test]
fn auth_check_budget_answers_454() {
    let tern = limited()
        .user("alice", "correct horse")
        .set("smtpd_tls_auth_only", "no")
        .set("smtpd_auth_failure_delay_ms", "0")
        .set("smtpd_auth_check_rate_limit", "1")
        .start();
    let mut c = hello_from("127.0.0.3", tern.smtp_port);
    let r = c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n");
    assert!(r.starts_with("535 "), "{r}");
    // The budget is for everyone, exempt clients too.
    let mut e = hello(tern.smtp_port);
    assert_eq!(
        e.cmd("AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U="),
        "454 4.7.0 Temporary authentication failure\r\n"
    );
    tern.wait_for_log(&[
        "warning: localhost[127.0.0.1]: SASL PLAIN authentication deferred: password checks per second (smtpd_auth_check_rate_limit = 1) used up, sasl_username=alice",
    ]);
    std::thread::sleep(Duration::from_millis(1100));
    let r = e.cmd("AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=");
    assert!(r.starts_with("235 2.7.0"), "{r}");
}

#[test]
fn implicit_tls_over_the_limit_closes_without_cleartext() {
    let ca = common::certs::TestCa::new();
    let leaf = ca.server_cert(common::certs::KeyKind::EcdsaP256, &["tern.example.test"]);
    let tern = limited()
        .cert(&leaf.chain, &leaf.key)
        .submissions()
        .set("smtpd_client_connection_count_limit", "1")
        .start();
    let port = tern.submissions_port.unwrap();
    // The first connection holds the one place (waiting for its hello).
    let _held = smtpd_support::tcp_from("127.0.0.2", port);
    tern.wait_for_log(&["connect from localhost[127.0.0.2]"]);
    let mut over = smtpd_support::tcp_from("127.0.0.2", port);
    over.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    use std::io::Read;
    let _ = over.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "cleartext on the implicit-TLS port: {got:?}"
    );
    tern.wait_for_log(&[
        "warning: Connection concurrency limit exceeded: 2 from localhost[127.0.0.2] for service submissions",
    ]);
}

/// The Bar of issue 16: one address outside the exceptions holds twice
/// max_connections dripping sessions (a byte every 2 s) while five other
/// addresses each submit a message: all five get 250.
#[test]
fn one_dripping_address_does_not_lock_others_out() {
    let tern = limited()
        .set("max_connections", "8")
        .set("smtpd_timeout", "30s")
        .start();
    let port = tern.smtp_port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let dripper = std::thread::spawn(move || {
        use std::io::Write;
        let mut socks: Vec<std::net::TcpStream> = (0..16)
            .map(|_| smtpd_support::tcp_from("127.0.0.2", port))
            .collect();
        let mut refused = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            for s in socks.iter_mut() {
                if s.write_all(b"N").is_err() {
                    refused += 1;
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        drop(socks);
        refused
    });
    // Let the dripper take what it can.
    tern.wait_for_log(&["Connection concurrency limit exceeded: 3 from localhost[127.0.0.2]"]);
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for n in 3..8 {
        let src = format!("127.0.0.{n}");
        let mut c = hello_from(&src, port);
        assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("250 "));
        assert!(c
            .cmd(&format!("RCPT TO:<r{n}@remote.test>"))
            .starts_with("250 "));
        assert!(c.cmd("DATA").starts_with("354 "));
        c.send(b"Subject: fair share\r\n\r\nbody\r\n.\r\n");
        let r = c.reply();
        assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{src}: {r}");
        ids.push(r);
        assert!(c.cmd("QUIT").starts_with("221"));
    }
    assert_eq!(ids.len(), 5);
    assert!(t0.elapsed() < WAIT, "{:?}", t0.elapsed());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = dripper.join();
    assert_eq!(tern.log_count("]: connect from localhost[127.0.0.2]"), 16);
    assert_eq!(
        tern.log_count("Connection concurrency limit exceeded"),
        14,
        "{}",
        tern.log()
    );
}

#[test]
fn stress_mode_reclaims_dripping_sessions() {
    // No per-client limit here: four sessions of one address fill more
    // than half of the slots and they drip a byte a second, which an idle
    // timeout never catches; in stress mode the whole line is due within
    // smtpd_stress_timeout.
    let tern = limited()
        .set("max_connections", "4")
        .set("smtpd_client_connection_count_limit", "0")
        .set("smtpd_stress_threshold", "50")
        .set("smtpd_stress_timeout", "3s")
        .start();
    let port = tern.smtp_port;
    let t0 = Instant::now();
    use std::io::{Read, Write};
    let mut drippers: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            let mut s = smtpd_support::tcp_from("127.0.0.2", port);
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut g = [0u8; 512];
            let n = s.read(&mut g).unwrap();
            assert!(g[..n].starts_with(b"220 "), "{:?}", &g[..n]);
            s
        })
        .collect();
    tern.wait_for_log(&["connection slots (max_connections) in use: stress mode on"]);
    let mut closed = 0;
    while closed < 3 && t0.elapsed() < WAIT {
        for s in drippers.iter_mut() {
            // Errors once tern has closed it are expected.
            let _ = s.write_all(b"N");
        }
        std::thread::sleep(Duration::from_millis(1000));
        closed = tern.log_count("timeout after CONNECT from localhost[127.0.0.2]");
    }
    assert_eq!(closed, 3, "{}", tern.log());
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    tern.wait_for_log(&["connection slots (max_connections) in use: stress mode off"]);
}
