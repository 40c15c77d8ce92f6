use super::*;
use crate::smtp::data::DataEnd;
use crate::smtp::line::LineSplitter;

/// Local domain `example.net` with user `u`; everything else is remote.
fn tables(p: &Path<'_>) -> RcptClass {
    match p.domain() {
        Some(d) if d.eq_ignore_ascii_case("example.net") => {
            if p.local_part() == "u" {
                RcptClass::Local
            } else {
                RcptClass::LocalUnknown
            }
        }
        None => RcptClass::Local,
        _ => RcptClass::Remote,
    }
}

fn params() -> ServerParams {
    ServerParams {
        hostname: "mx.example.net".into(),
        ..ServerParams::default()
    }
}

/// Renders actions as text: replies as sent, other actions in brackets.
fn render(a: &Actions) -> String {
    let mut s = String::new();
    for x in a {
        match x {
            Action::Send(r) => s.push_str(&String::from_utf8_lossy(r.as_bytes())),
            Action::Pause(n) => s.push_str(&format!("[pause {n}]")),
            Action::StartTls => s.push_str("[starttls]"),
            Action::CheckAuth(r) => s.push_str(&format!("[auth {} {}]", r.user, r.password)),
            Action::BeginData => s.push_str("[data]"),
            Action::Close => s.push_str("[close]"),
        }
    }
    s
}

fn say(s: &mut Session, line: &str) -> String {
    render(&s.line(line.as_bytes(), &mut tables))
}

fn ev(s: &mut Session, e: Event<'_>) -> String {
    render(&s.event(e))
}

#[test]
fn full_transaction_and_disconnect_line() {
    let mut s = Session::new(params());
    assert_eq!(render(&s.greeting()), "220 mx.example.net ESMTP tern\r\n");
    assert_eq!(
        say(&mut s, "EHLO client.example"),
        "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
    );
    assert_eq!(
        say(&mut s, "MAIL FROM:<a@client.example> SIZE=100"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(say(&mut s, "RCPT TO:<u@example.net>"), "250 2.1.5 Ok\r\n");
    assert_eq!(
        say(&mut s, "DATA"),
        "354 End data with <CR><LF>.<CR><LF>\r\n[data]"
    );
    assert!(!s.wants_line());
    let env = s.envelope().unwrap();
    assert_eq!(env.sender, "a@client.example");
    assert_eq!(env.recipients, ["u@example.net"]);
    assert_eq!(env.declared_size, Some(100));
    assert_eq!(s.protocol(), "ESMTP");
    assert_eq!(
        ev(&mut s, Event::Committed("4XyZ")),
        "250 2.0.0 Ok: queued as 4XyZ\r\n"
    );
    assert!(s.envelope().is_none());
    assert_eq!(say(&mut s, "QUIT"), "221 2.0.0 Bye\r\n[close]");
    assert!(s.is_closed());
    assert_eq!(
        s.disconnect_line("client.example", "192.0.2.1"),
        "disconnect from client.example[192.0.2.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
    );
}

#[test]
fn counts_failed_commands_ok_total() {
    let mut s = Session::new(params());
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@c.example>");
    assert_eq!(
        say(&mut s, "RCPT TO:<x@elsewhere.example>"),
        "554 5.7.1 <x@elsewhere.example>: Relay access denied\r\n"
    );
    assert_eq!(
        say(&mut s, "DATA"),
        "554 5.5.1 Error: no valid recipients\r\n"
    );
    say(&mut s, "BOGUS");
    assert_eq!(say(&mut s, ""), "500 5.5.2 Error: bad syntax\r\n");
    say(&mut s, "RSET");
    say(&mut s, "QUIT");
    assert_eq!(
        s.command_counts(),
        " ehlo=1 mail=1 rcpt=0/1 data=0/1 rset=1 quit=1 unknown=0/1 commands=4/7"
    );
    assert_eq!(s.error_count(), 4);
}

#[test]
fn helo_and_protocol() {
    let mut s = Session::new(params());
    assert_eq!(say(&mut s, "HELO c"), "250 mx.example.net\r\n");
    assert_eq!(s.protocol(), "SMTP");
    assert_eq!(s.helo_name(), Some("c"));
}

#[test]
fn sequence_errors() {
    let mut s = Session::new(params());
    assert_eq!(
        say(&mut s, "MAIL FROM:<a@b.example>"),
        "503 5.5.1 Error: send HELO/EHLO first\r\n"
    );
    say(&mut s, "EHLO c");
    assert_eq!(
        say(&mut s, "RCPT TO:<u@example.net>"),
        "503 5.5.1 Error: need MAIL command\r\n"
    );
    assert_eq!(
        say(&mut s, "DATA"),
        "503 5.5.1 Error: need RCPT command\r\n"
    );
    say(&mut s, "MAIL FROM:<>");
    assert_eq!(
        say(&mut s, "MAIL FROM:<>"),
        "503 5.5.1 Error: nested MAIL command\r\n"
    );
    assert_eq!(
        say(&mut s, "VRFY u"),
        "502 5.5.1 VRFY command is disabled\r\n"
    );
    assert_eq!(
        say(&mut s, "HELP"),
        "500 5.5.2 Error: command not recognized\r\n"
    );
    assert_eq!(
        say(&mut s, "STARTTLS"),
        "502 5.5.1 Error: command not implemented\r\n"
    );
    assert_eq!(
        say(&mut s, "AUTH PLAIN"),
        "503 5.5.1 Error: authentication not enabled\r\n"
    );
    assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
    // EHLO resets the transaction.
    say(&mut s, "EHLO c");
    assert!(s.envelope().is_none());
}

#[test]
fn local_unknown_and_mynetworks_relay() {
    let mut s = Session::new(ServerParams {
        client_in_mynetworks: true,
        ..params()
    });
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<>");
    assert_eq!(
        say(&mut s, "RCPT TO:<nobody@example.net>"),
        "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in local recipient table\r\n"
    );
    assert_eq!(
        say(&mut s, "RCPT TO:<x@elsewhere.example>"),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(say(&mut s, "RCPT TO:<postmaster>"), "250 2.1.5 Ok\r\n");
    assert_eq!(
        s.envelope().unwrap().recipients,
        ["x@elsewhere.example", "postmaster"]
    );
}

#[test]
fn utf8_needs_smtputf8() {
    let mut s = Session::new(params());
    say(&mut s, "EHLO c");
    assert_eq!(
        say(&mut s, "MAIL FROM:<j\u{f6}rg@c.example>"),
        "553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n"
    );
    say(&mut s, "MAIL FROM:<a@c.example>");
    assert_eq!(
        say(&mut s, "RCPT TO:<j\u{f6}rg@example.net>"),
        "553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n"
    );
    say(&mut s, "RSET");
    say(&mut s, "MAIL FROM:<j\u{f6}rg@c.example> SMTPUTF8");
    assert_eq!(say(&mut s, "RCPT TO:<u@example.net>"), "250 2.1.5 Ok\r\n");
    assert_eq!(s.protocol(), "UTF8SMTP");
}

#[test]
fn recipient_limit() {
    let mut s = Session::new(ServerParams {
        recipient_limit: 2,
        ..params()
    });
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<>");
    assert_eq!(say(&mut s, "RCPT TO:<u@example.net>"), "250 2.1.5 Ok\r\n");
    assert_eq!(say(&mut s, "RCPT TO:<u@example.net>"), "250 2.1.5 Ok\r\n");
    assert_eq!(
        say(&mut s, "RCPT TO:<u@example.net>"),
        "452 4.5.3 Error: too many recipients\r\n"
    );
    assert_eq!(s.envelope().unwrap().recipients.len(), 2);
}

#[test]
fn recipient_overshoot_is_not_an_error_until_its_limit() {
    let mut s = Session::new(ServerParams {
        recipient_limit: 2,
        recipient_overshoot_limit: 3,
        hard_error_limit: 2,
        ..params()
    });
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<>");
    for _ in 0..2 {
        assert_eq!(say(&mut s, "RCPT TO:<u@example.net>"), "250 2.1.5 Ok\r\n");
    }
    // Three overshooting RCPTs: 452, and no error counted (hard limit 2).
    for _ in 0..3 {
        assert_eq!(
            say(&mut s, "RCPT TO:<u@example.net>"),
            "452 4.5.3 Error: too many recipients\r\n"
        );
        assert_eq!(s.error_count(), 0);
    }
    // Past the overshoot limit each one is an error.
    assert_eq!(
        say(&mut s, "RCPT TO:<u@example.net>"),
        "452 4.5.3 Error: too many recipients\r\n"
    );
    assert_eq!(s.error_count(), 1);
    // DATA still goes to the accepted recipients.
    assert!(say(&mut s, "DATA").starts_with("354 "));
    assert_eq!(s.envelope().unwrap().recipients.len(), 2);
    // A new transaction starts a new overshoot count.
    let mut s = Session::new(ServerParams {
        recipient_limit: 1,
        recipient_overshoot_limit: 1,
        ..params()
    });
    say(&mut s, "EHLO c");
    for _ in 0..2 {
        say(&mut s, "MAIL FROM:<>");
        say(&mut s, "RCPT TO:<u@example.net>");
        say(&mut s, "RCPT TO:<u@example.net>");
        say(&mut s, "RSET");
    }
    assert_eq!(s.error_count(), 0);
}

#[test]
fn forbidden_pipelining_ends_the_session_with_554() {
    const SYNC: &str = "554 5.5.0 Error: SMTP protocol synchronization\r\n[close]";
    // After HELO (no PIPELINING): the pipelined command is not run.
    let mut s = Session::new(params());
    assert!(s
        .improper_pipelining(b"HELO c", b"MAIL FROM:<a@c>\r\n", CLIENT)
        .is_some());
    assert_eq!(say(&mut s, "HELO c"), SYNC);
    assert!(s.is_closed());
    assert_eq!(s.helo_name(), None);
    // Talking before the greeting: the first command gets the 554.
    let mut s = Session::new(params());
    assert!(s
        .improper_pipelining_at_connect(b"EHLO c\r\n", CLIENT)
        .is_some());
    assert!(render(&s.greeting()).starts_with("220 "));
    assert_eq!(say(&mut s, "EHLO c"), SYNC);
    // DATA followed by the body before 354.
    let mut s = Session::new(params());
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@c>");
    say(&mut s, "RCPT TO:<u@example.net>");
    assert!(s
        .improper_pipelining(b"DATA", b"Subject: x\r\n", CLIENT)
        .is_some());
    assert_eq!(say(&mut s, "DATA"), SYNC);
    // Allowed pipelining after EHLO is untouched.
    let mut s = Session::new(params());
    say(&mut s, "EHLO c");
    assert_eq!(
        s.improper_pipelining(b"MAIL FROM:<a@c>", b"RCPT TO:<u@example.net>\r\n", CLIENT),
        None
    );
    assert_eq!(say(&mut s, "MAIL FROM:<a@c>"), "250 2.1.0 Ok\r\n");
    // smtpd_forbid_unauth_pipelining = no: logged only, as before.
    let mut s = Session::new(ServerParams {
        forbid_unauth_pipelining: false,
        ..params()
    });
    assert!(s
        .improper_pipelining(b"HELO c", b"NOOP\r\n", CLIENT)
        .is_some());
    assert!(say(&mut s, "HELO c").starts_with("250 "));
}

#[test]
fn size_limits() {
    let mut s = Session::new(ServerParams {
        message_size_limit: 1000,
        ..params()
    });
    let ehlo = say(&mut s, "EHLO c");
    assert!(ehlo.contains("250-SIZE 1000\r\n"));
    assert_eq!(
        say(&mut s, "MAIL FROM:<> SIZE=1001"),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    assert_eq!(say(&mut s, "MAIL FROM:<> SIZE=1000"), "250 2.1.0 Ok\r\n");
    say(&mut s, "RCPT TO:<u@example.net>");
    say(&mut s, "DATA");
    // Drive the real reader to the limit.
    let mut r = s.data_reader();
    let mut body = vec![b'x'; 2000];
    body.extend_from_slice(b"\r\n.\r\n");
    let mut out = [0u8; 4096];
    let f = r.feed(&body, &mut out);
    assert_eq!(f.end, Some(DataEnd::TooBig { size: 2002 }));
    assert_eq!(f.written, 1000);
    assert_eq!(
        ev(&mut s, Event::DataTooBig),
        "552 5.3.4 Error: message file too big\r\n"
    );
    assert!(s.wants_line());
    assert!(s.envelope().is_none());
    // No limit: SIZE without a number.
    let mut s = Session::new(ServerParams {
        message_size_limit: 0,
        ..params()
    });
    assert!(say(&mut s, "EHLO c").contains("250-SIZE\r\n"));
}

#[test]
fn commit_failure() {
    let mut s = Session::new(params());
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<>");
    say(&mut s, "RCPT TO:<u@example.net>");
    say(&mut s, "DATA");
    assert_eq!(
        ev(&mut s, Event::CommitFailed),
        "451 4.3.0 Error: queue file write error\r\n"
    );
    assert!(s.command_counts().contains(" data=0/1"));
}

#[test]
fn bare_lf_in_data_reject_mode() {
    let mut s = Session::new(ServerParams {
        bare_newline: BareNewline::Reject,
        ..params()
    });
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<>");
    say(&mut s, "RCPT TO:<u@example.net>");
    say(&mut s, "DATA");
    let mut r = s.data_reader();
    let mut out = [0u8; 64];
    assert_eq!(
        r.feed(b"a\nb\r\n.\r\n", &mut out).end,
        Some(DataEnd::BareLf { at: 1 })
    );
    assert_eq!(
        ev(&mut s, Event::DataBareLf),
        "550 5.5.2 mx.example.net Error: bare <LF> received\r\n"
    );
    assert!(s.wants_line());
    assert!(s.command_counts().contains(" data=0/1"));
    // In a command line it disconnects; the code is configurable.
    let mut s = Session::new(ServerParams {
        bare_newline_reject_code: 521,
        ..params()
    });
    assert_eq!(
        render(&s.line_error(LineError::BareLf)),
        "521 5.5.2 mx.example.net Error: bare <LF> received\r\n[close]"
    );
}

#[test]
fn line_too_long() {
    let mut s = Session::new(params());
    let mut buf = [0u8; 2050];
    let mut split = LineSplitter::new(2048, BareNewline::Normalize);
    let mut input = vec![b'N'; 3000];
    input.extend_from_slice(b"\r\nNOOP\r\n");
    let mut pos = 0;
    let mut replies = String::new();
    while pos < input.len() {
        let len = buf.len();
        let spare = split.spare(&mut buf);
        let n = spare.len().min(input.len() - pos);
        spare[..n].copy_from_slice(&input[pos..pos + n]);
        split.filled(len, n);
        pos += n;
        while let Some(l) = split.next_line(&buf) {
            let a = match l {
                Ok(l) => s.line(l, &mut tables),
                Err(e) => s.line_error(e),
            };
            replies.push_str(&render(&a));
        }
    }
    assert_eq!(
        replies,
        "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n"
    );
}

#[test]
fn error_limits_soft_pause_hard_close() {
    let mut s = Session::new(params());
    say(&mut s, "EHLO c");
    for i in 1..=20 {
        let r = say(&mut s, "BOGUS");
        let pause = if i > 10 { "[pause 1]" } else { "" };
        if i < 20 {
            assert_eq!(
                r,
                format!("{pause}500 5.5.2 Error: command not recognized\r\n"),
                "error {i}"
            );
        } else {
            assert_eq!(
                r,
                "[pause 1]500 5.5.2 Error: command not recognized\r\n\
                 [pause 1]421 4.7.0 mx.example.net Error: too many errors\r\n[close]"
            );
        }
    }
    assert!(s.is_closed());
    assert_eq!(say(&mut s, "NOOP"), "");
    // Successful replies are slowed down too once past the soft limit.
    let mut s = Session::new(ServerParams {
        soft_error_limit: 1,
        ..params()
    });
    say(&mut s, "BOGUS");
    assert_eq!(say(&mut s, "NOOP"), "[pause 1]250 2.0.0 Ok\r\n");
}

#[test]
fn no_commands_is_zero_of_zero() {
    // Postfix: "disconnect from host[addr] commands=0/0" (a port scanner,
    // or a failed implicit-TLS handshake).
    let s = Session::new(params());
    assert_eq!(
        s.disconnect_line("localhost", "127.0.0.1"),
        "disconnect from localhost[127.0.0.1] commands=0/0"
    );
}

#[test]
fn junk_commands_count_as_errors_past_the_limit() {
    let p = ServerParams {
        junk_command_limit: 5,
        soft_error_limit: 100,
        hard_error_limit: 3,
        ..params()
    };
    let mut s = Session::new(p.clone());
    // EHLO is junk number 1 (as in Postfix); junk 1..=6 are free
    // (`junk_cmds++ > limit`), 7, 8 and 9 are errors 1, 2 and 3.
    assert!(say(&mut s, "EHLO c").starts_with("250-"));
    for i in 2u32..=8 {
        assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n", "junk {i}");
        assert_eq!(s.error_count(), i.saturating_sub(6), "junk {i}");
    }
    assert_eq!(
        say(&mut s, "RSET"),
        "250 2.0.0 Ok\r\n421 4.7.0 mx.example.net Error: too many errors\r\n[close]"
    );
    assert!(s.is_closed());
    assert_eq!(s.command_counts(), " ehlo=1 rset=1 noop=7 commands=9");

    // VRFY and HELP are junk on top of being errors; HELO too.
    let mut s = Session::new(ServerParams {
        hard_error_limit: 20,
        ..p.clone()
    });
    for _ in 0..3 {
        say(&mut s, "HELO c");
    }
    for _ in 0..3 {
        say(&mut s, "HELP");
    }
    assert_eq!(s.error_count(), 3);
    assert_eq!(
        say(&mut s, "VRFY u"),
        "502 5.5.1 VRFY command is disabled\r\n"
    );
    // junk 7: one error for VRFY, one for being junk past the limit.
    assert_eq!(s.error_count(), 5);

    // Mail commands are not junk, and a queued message forgives both
    // counters (Postfix resets error_count and junk_cmds after a message).
    let mut s = Session::new(p);
    say(&mut s, "EHLO c");
    for _ in 0..7 {
        say(&mut s, "NOOP");
    }
    assert_eq!(s.error_count(), 2);
    for _ in 0..5 {
        assert_eq!(say(&mut s, "MAIL FROM:<a@b>"), "250 2.1.0 Ok\r\n");
        assert_eq!(say(&mut s, "RCPT TO:<u@example.net>"), "250 2.1.5 Ok\r\n");
        assert!(say(&mut s, "DATA").starts_with("354 "));
        assert!(ev(&mut s, Event::Committed("Q1")).starts_with("250 2.0.0 Ok"));
        assert_eq!(s.error_count(), 0);
    }
    for _ in 0..6 {
        assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
    }
    assert_eq!(s.error_count(), 0);
    assert!(!s.is_closed());
}

fn tls_params() -> ServerParams {
    ServerParams {
        tls_available: true,
        auth_available: true,
        ..params()
    }
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let mut s = Session::new(tls_params());
    let ehlo = say(&mut s, "EHLO c");
    assert!(ehlo.contains("250-STARTTLS\r\n"));
    assert!(!ehlo.contains("AUTH"), "no AUTH before TLS: {ehlo}");
    // The client pipelines a command after STARTTLS (the attack).
    let mut buf = [0u8; 256];
    let mut split = LineSplitter::new(2048, BareNewline::Normalize);
    let input = b"STARTTLS\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<u@example.net>\r\n";
    let len = buf.len();
    split.spare(&mut buf)[..input.len()].copy_from_slice(input);
    split.filled(len, input.len());
    let mut executed = Vec::new();
    while let Some(Ok(l)) = split.next_line(&buf) {
        let a = s.line(l, &mut tables);
        executed.push(render(&a));
        if a.contains(&Action::StartTls) {
            // What the API demands of the driver.
            split.discard();
        }
    }
    assert_eq!(executed, ["220 2.0.0 Ready to start TLS\r\n[starttls]"]);
    assert_eq!(ev(&mut s, Event::TlsEstablished), "");
    assert!(s.tls_active());
    assert!(s.envelope().is_none());
    // EHLO needed again, and now STARTTLS is gone and AUTH offered.
    assert_eq!(
        say(&mut s, "MAIL FROM:<a@b.example>"),
        "503 5.5.1 Error: send HELO/EHLO first\r\n"
    );
    let ehlo = say(&mut s, "EHLO c");
    assert!(!ehlo.contains("STARTTLS"));
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"));
    assert_eq!(
        say(&mut s, "STARTTLS"),
        "554 5.5.1 Error: TLS already active\r\n"
    );
    assert_eq!(s.protocol(), "ESMTPS");
    assert!(s
        .command_counts()
        .starts_with(" ehlo=2 starttls=1/2 mail=0/1"));
}

#[test]
fn lines_while_waiting_for_tls_are_never_executed() {
    let mut s = Session::new(tls_params());
    say(&mut s, "EHLO c");
    say(&mut s, "STARTTLS");
    assert!(!s.wants_line());
    // A driver that forgot to discard: the session refuses to run it.
    assert_eq!(say(&mut s, "MAIL FROM:<evil@x.example>"), "[close]");
    assert!(s.is_closed());
    assert!(s.envelope().is_none());
}

#[test]
fn tls_required_before_mail() {
    let mut s = Session::new(ServerParams {
        tls_required: true,
        ..tls_params()
    });
    say(&mut s, "EHLO c");
    assert_eq!(
        say(&mut s, "MAIL FROM:<a@b.example>"),
        "530 5.7.0 Must issue a STARTTLS command first\r\n"
    );
    assert_eq!(
        say(&mut s, "MAIL FROM:garbage garbage"),
        "530 5.7.0 Must issue a STARTTLS command first\r\n"
    );
    assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
}

#[test]
fn auth_refused_before_tls() {
    let mut s = Session::new(tls_params());
    say(&mut s, "EHLO c");
    assert_eq!(
        say(&mut s, "AUTH PLAIN AHUAcA=="),
        "504 5.5.4 Encryption required for requested authentication mechanism\r\n"
    );
    assert_eq!(s.auth_user(), None);
    // Allowed explicitly.
    let mut s = Session::new(ServerParams {
        allow_plaintext_auth: true,
        ..tls_params()
    });
    assert!(say(&mut s, "EHLO c").contains("250-AUTH PLAIN LOGIN\r\n"));
    assert_eq!(say(&mut s, "AUTH PLAIN AHUAcA=="), "[auth u p]");
    assert_eq!(s.protocol(), "ESMTP");
    assert_eq!(
        ev(&mut s, Event::AuthVerdict(true)),
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(s.protocol(), "ESMTPA");
}

/// The driver's password-check budget spent: `454 4.7.0`, counted as an
/// error, and the session goes on (a later AUTH may succeed).
#[test]
fn auth_temporary_failure_when_checks_are_rationed() {
    let mut s = tls_session(tls_params());
    assert_eq!(say(&mut s, "AUTH PLAIN AGFsaWNlAHB3"), "[auth alice pw]");
    assert_eq!(
        ev(&mut s, Event::AuthTempFail),
        "454 4.7.0 Temporary authentication failure\r\n"
    );
    assert_eq!(s.auth_user(), None);
    assert!(s.wants_line());
    assert_eq!(say(&mut s, "AUTH PLAIN AGFsaWNlAHB3"), "[auth alice pw]");
    assert_eq!(
        ev(&mut s, Event::AuthVerdict(true)),
        "235 2.7.0 Authentication successful\r\n"
    );
    // An event out of its state is ignored, not a panic.
    let _ = ev(&mut s, Event::AuthTempFail);
}

fn tls_session(p: ServerParams) -> Session {
    let mut s = Session::new(ServerParams {
        implicit_tls: true,
        ..p
    });
    say(&mut s, "EHLO c");
    s
}

#[test]
fn auth_plain_and_login() {
    let mut s = tls_session(tls_params());
    // PLAIN with continuation; authzid = authcid is fine.
    assert_eq!(say(&mut s, "AUTH PLAIN"), "334 \r\n");
    let resp = base64::encode(b"alice\0alice\0secret");
    assert_eq!(say(&mut s, &resp), "[auth alice secret]");
    assert!(!s.wants_line());
    assert_eq!(
        ev(&mut s, Event::AuthVerdict(false)),
        "535 5.7.8 Error: authentication failed: authentication failure\r\n"
    );
    // LOGIN.
    assert_eq!(say(&mut s, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        say(&mut s, &base64::encode(b"alice")),
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(say(&mut s, &base64::encode(b"pw")), "[auth alice pw]");
    assert_eq!(
        ev(&mut s, Event::AuthVerdict(true)),
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(s.auth_user(), Some("alice"));
    assert_eq!(
        say(&mut s, "AUTH PLAIN"),
        "503 5.5.1 Error: already authenticated\r\n"
    );
    assert_eq!(s.protocol(), "ESMTPSA");
    // Authenticated clients may relay.
    say(&mut s, "MAIL FROM:<alice@example.net>");
    assert_eq!(
        say(&mut s, "RCPT TO:<x@elsewhere.example>"),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(
        say(&mut s, "AUTH LOGIN"),
        "503 5.5.1 Error: MAIL transaction in progress\r\n"
    );
    assert!(s
        .command_counts()
        .starts_with(" ehlo=1 auth=1/4 mail=1 rcpt=1"));
}

#[test]
fn auth_errors() {
    let mut s = tls_session(tls_params());
    assert_eq!(
        say(&mut s, "AUTH CRAM-MD5"),
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism\r\n"
    );
    assert_eq!(say(&mut s, "AUTH PLAIN"), "334 \r\n");
    assert_eq!(say(&mut s, "*"), "501 5.7.0 Authentication aborted\r\n");
    assert_eq!(
        say(&mut s, "AUTH PLAIN !!!!"),
        "501 5.5.2 Cannot decode response\r\n"
    );
    // Acting for another user is refused without asking the driver.
    let r = format!("AUTH PLAIN {}", base64::encode(b"bob\0alice\0pw"));
    assert_eq!(
        say(&mut s, &r),
        "535 5.7.8 Error: authentication failed: authentication failure\r\n"
    );
    let r = format!("AUTH PLAIN {}", base64::encode(b"alice\0pw"));
    assert_eq!(
        say(&mut s, &r),
        "535 5.7.8 Error: authentication failed: authentication failure\r\n"
    );
    assert_eq!(
        say(&mut s, "AUTH LOGIN ="),
        "535 5.7.8 Error: authentication failed: authentication failure\r\n"
    );
    assert_eq!(s.error_count(), 6);
}

#[test]
fn submission_requires_auth() {
    let mut s = tls_session(ServerParams {
        auth_required: true,
        ..tls_params()
    });
    assert_eq!(
        say(&mut s, "MAIL FROM:<a@b.example>"),
        "530 5.7.0 Authentication required\r\n"
    );
}

#[test]
fn relay_denied_for_outside_client() {
    let mut s = tls_session(tls_params());
    say(&mut s, "MAIL FROM:<spammer@x.example>");
    assert_eq!(
        say(&mut s, "RCPT TO:<victim@gmail.example>"),
        "554 5.7.1 <victim@gmail.example>: Relay access denied\r\n"
    );
    assert_eq!(say(&mut s, "RCPT TO:<u@example.net>"), "250 2.1.5 Ok\r\n");
    assert_eq!(s.envelope().unwrap().recipients, ["u@example.net"]);
}

#[test]
fn timeout_and_unexpected_events() {
    let mut s = Session::new(params());
    assert_eq!(
        ev(&mut s, Event::Timeout),
        "421 4.4.2 mx.example.net Error: timeout exceeded\r\n[close]"
    );
    let mut s = Session::new(params());
    assert_eq!(ev(&mut s, Event::Committed("X")), "[close]");
}

const CLIENT: &str = "localhost[127.0.0.1]";

#[test]
fn where_follows_commands_body_and_end_of_message() {
    let mut s = Session::new(params());
    let _ = s.greeting();
    assert_eq!(s.where_now(), "CONNECT");
    assert_eq!(
        s.end_line(EndReason::LostConnection, 0, CLIENT).as_deref(),
        Some("lost connection after CONNECT from localhost[127.0.0.1]")
    );
    say(&mut s, "EHLO c");
    assert_eq!(s.where_now(), "EHLO");
    say(&mut s, "MAIL FROM:<a@c>");
    say(&mut s, "RCPT TO:<u@example.net>");
    assert_eq!(s.where_now(), "RCPT");
    say(&mut s, "DATA");
    assert_eq!(s.where_now(), AFTER_DATA);
    // Postfix 2.5 compatibility: "after DATA (N bytes)" in the body.
    assert_eq!(
        s.end_line(EndReason::LostConnection, 14, CLIENT).as_deref(),
        Some("lost connection after DATA (14 bytes) from localhost[127.0.0.1]")
    );
    assert_eq!(
        s.end_line(EndReason::Timeout, 0, CLIENT).as_deref(),
        Some("timeout after DATA (0 bytes) from localhost[127.0.0.1]")
    );
    ev(&mut s, Event::Committed("4XyZ"));
    assert_eq!(s.where_now(), AFTER_EOM);
    // A client that goes away after its message without QUIT: no line.
    assert_eq!(s.end_line(EndReason::LostConnection, 14, CLIENT), None);
    assert_eq!(
        s.end_line(EndReason::Timeout, 14, CLIENT).as_deref(),
        Some("timeout after END-OF-MESSAGE from localhost[127.0.0.1]")
    );
    say(&mut s, "BOGUS");
    assert_eq!(s.where_now(), "UNKNOWN");
    // An empty line keeps the last name (Postfix answers it before its
    // command lookup).
    say(&mut s, "");
    assert_eq!(s.where_now(), "UNKNOWN");
    say(&mut s, "NOOP");
    assert_eq!(s.where_now(), "NOOP");
    assert_eq!(s.end_reason(), None);
}

#[test]
fn every_end_of_data_event_is_end_of_message() {
    for e in [Event::CommitFailed, Event::DataTooBig, Event::DataBareLf] {
        let mut s = Session::new(params());
        say(&mut s, "EHLO c");
        say(&mut s, "MAIL FROM:<a@c>");
        say(&mut s, "RCPT TO:<u@example.net>");
        say(&mut s, "DATA");
        ev(&mut s, e);
        assert_eq!(s.where_now(), AFTER_EOM, "{e:?}");
    }
}

#[test]
fn hard_error_limit_and_timeout_are_end_reasons() {
    let mut s = Session::new(ServerParams {
        hard_error_limit: 2,
        ..params()
    });
    say(&mut s, "EHLO c");
    say(&mut s, "BOGUS");
    assert_eq!(s.end_reason(), None);
    assert!(say(&mut s, "MAIL FROM:<bad").ends_with("too many errors\r\n[close]"));
    assert_eq!(s.end_reason(), Some(EndReason::TooManyErrors));
    assert_eq!(
        s.end_line(EndReason::TooManyErrors, 0, CLIENT).as_deref(),
        Some("too many errors after MAIL from localhost[127.0.0.1]")
    );

    // A timeout in the body is answered like one between commands.
    let mut s = Session::new(params());
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@c>");
    say(&mut s, "RCPT TO:<u@example.net>");
    say(&mut s, "DATA");
    assert_eq!(
        ev(&mut s, Event::Timeout),
        "421 4.4.2 mx.example.net Error: timeout exceeded\r\n[close]"
    );
    assert_eq!(s.end_reason(), Some(EndReason::Timeout));
    assert_eq!(s.where_now(), AFTER_DATA);
}

#[test]
fn improper_pipelining_follows_postfix_rules() {
    // Before EHLO (no PIPELINING) any command with input behind it.
    let mut s = Session::new(params());
    assert_eq!(
        s.improper_pipelining(b"HELO c", b"MAIL FROM:<a@c>\r\n", CLIENT)
            .as_deref(),
        Some("improper command pipelining after HELO from localhost[127.0.0.1]: MAIL FROM:<a@c>\\r\\n")
    );
    // Once per session.
    assert_eq!(s.improper_pipelining(b"NOOP", b"NOOP\r\n", CLIENT), None);
    assert!(!s.checks_pipelining(b"NOOP"));

    // After EHLO: MAIL, RCPT, RSET, STARTTLS may be followed by more;
    // HELO, EHLO, DATA, NOOP and VRFY end a group.
    let mut s = Session::new(params());
    say(&mut s, "EHLO c");
    for ok in [
        "MAIL FROM:<a@c>",
        "RCPT TO:<u@example.net>",
        "RSET",
        "STARTTLS",
        "QUIT",
    ] {
        assert_eq!(
            s.improper_pipelining(ok.as_bytes(), b"X\r\n", CLIENT),
            None,
            "{ok}"
        );
    }
    // Unknown commands are not checked.
    assert_eq!(s.improper_pipelining(b"BOGUS", b"X\r\n", CLIENT), None);
    // The driver asks the kernel only where the check applies.
    assert!(!s.checks_pipelining(b"RCPT TO:<u@example.net>"));
    assert!(!s.checks_pipelining(b"BOGUS"));
    assert!(s.checks_pipelining(b"NOOP"));
    // Nothing pending: nothing to log.
    assert_eq!(s.improper_pipelining(b"DATA", b"", CLIENT), None);
    assert_eq!(
        s.improper_pipelining(b"data", b"Subject: x\r\n", CLIENT)
            .as_deref(),
        Some("improper command pipelining after DATA from localhost[127.0.0.1]: Subject: x\\r\\n")
    );

    // Commands refused before STARTTLS (encrypt) are not checked.
    let mut s = Session::new(ServerParams {
        tls_required: true,
        tls_available: true,
        ..params()
    });
    say(&mut s, "EHLO c");
    assert_eq!(
        s.improper_pipelining(b"MAIL FROM:<a@c>", b"X", CLIENT),
        None
    );
    assert!(s.improper_pipelining(b"NOOP", b"X", CLIENT).is_some());

    // Before the greeting.
    let mut s = Session::new(params());
    assert_eq!(
        s.improper_pipelining_at_connect(b"EHLO i.test\r\n", CLIENT)
            .as_deref(),
        Some("improper command pipelining after CONNECT from localhost[127.0.0.1]: EHLO i.test\\r\\n")
    );
    assert_eq!(
        s.improper_pipelining(b"EHLO i.test", b"QUIT\r\n", CLIENT),
        None
    );
}

#[test]
fn escape_is_postfix_escape() {
    assert_eq!(escape(b"a b\\c"), "a b\\\\c");
    assert_eq!(escape(b"\x07\x08\x0c\n\r\t\x0b"), "\\a\\b\\f\\n\\r\\t\\v");
    assert_eq!(escape(b"\x001\x00x\xff"), "\\0001\\0x\\255");
    // At most 100 bytes.
    assert_eq!(escape(&[b'z'; 300]).len(), 100);
    assert_eq!(escape(b""), "");
}

#[test]
fn mail_size_reject_is_logged_like_postfix() {
    let mut s = Session::new(ServerParams {
        message_size_limit: 1000,
        ..params()
    });
    say(&mut s, "EHLO z.test");
    assert_eq!(
        say(&mut s, "MAIL FROM:<big@example.test> SIZE=99999"),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    // As Postfix 3.7.11 logs it (from= is the refused sender).
    assert_eq!(
        s.take_reject_log(CLIENT).as_deref(),
        Some("NOQUEUE: reject: MAIL from localhost[127.0.0.1]: 552 5.3.4 Message size exceeds fixed limit; from=<big@example.test> proto=ESMTP helo=<z.test>")
    );
    assert_eq!(s.take_reject_log(CLIENT), None, "taken once");
    // Protocol errors are not logged.
    say(&mut s, "RCPT TO:<u@example.net>");
    say(&mut s, "DATA");
    assert_eq!(s.take_reject_log(CLIENT), None);
}

#[test]
fn rcpt_rejects_are_logged_with_the_recipient_protocol_errors_not() {
    let mut s = Session::new(ServerParams {
        recipient_limit: 1,
        ..params()
    });
    say(&mut s, "RCPT TO:<u@example.net>");
    assert_eq!(s.take_reject_log(CLIENT), None, "503 need MAIL");
    say(&mut s, "EHLO outsider.test");
    say(&mut s, "MAIL FROM:<spammer@example.test>");
    assert!(say(&mut s, "RCPT TO:<victim@remote.test>").starts_with("554 "));
    assert_eq!(
        s.take_reject_log(CLIENT).as_deref(),
        Some("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 554 5.7.1 <victim@remote.test>: Relay access denied; from=<spammer@example.test> to=<victim@remote.test> proto=ESMTP helo=<outsider.test>")
    );
    assert!(say(&mut s, "RCPT TO:<nobody@example.net>").starts_with("550 "));
    assert_eq!(
        s.take_reject_log(CLIENT).as_deref(),
        Some("NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in local recipient table; from=<spammer@example.test> to=<nobody@example.net> proto=ESMTP helo=<outsider.test>")
    );
    assert!(say(&mut s, "RCPT TO:<u@example.net>").starts_with("250 "));
    assert_eq!(s.take_reject_log(CLIENT), None);
    assert!(say(&mut s, "RCPT TO:<u@example.net>").starts_with("452 4.5.3"));
    assert_eq!(
        s.take_reject_log(CLIENT),
        None,
        "Postfix does not log 452 4.5.3"
    );
}
