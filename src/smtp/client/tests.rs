use super::*;

fn params(tls: TlsRequirement) -> ClientParams {
    ClientParams {
        helo_name: "nas.example.org".into(),
        tls,
        implicit_tls: false,
        credentials: None,
        allow_plaintext_auth: false,
    }
}

/// Renders actions: sent bytes verbatim, others in brackets.
fn render(a: &[ClientAction]) -> String {
    let mut s = String::new();
    for x in a {
        match x {
            ClientAction::Send(b) => s.push_str(&String::from_utf8_lossy(b)),
            ClientAction::StartTls => s.push_str("[starttls]"),
            ClientAction::Ready => s.push_str("[ready]"),
            ClientAction::SendBody => s.push_str("[body]"),
            ClientAction::Delivered(r) => {
                s.push_str("[delivered");
                for x in r {
                    s.push_str(&format!(" {:?}:{}", x.status, x.dsn()));
                }
                s.push(']');
            }
            ClientAction::Failed(e) => {
                s.push_str(&format!("[failed {}]", e.describe("mx[192.0.2.1]")))
            }
            ClientAction::Close => s.push_str("[close]"),
        }
    }
    s
}

/// Feeds a server reply given as text with CRLF line ends.
fn server(c: &mut Session, text: &str) -> String {
    let mut all = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        all.extend(c.reply_line(line.as_bytes()));
    }
    render(&all)
}

const EHLO_FULL: &str = "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
const EHLO_NO_TLS: &str = "250-mx.example.com\r\n250-SIZE\r\n250 8BITMIME\r\n";

fn msg(rcpts: &[&str]) -> Message {
    Message {
        sender: "root@nas.example.org".into(),
        recipients: rcpts.iter().map(|s| s.to_string()).collect(),
        size: Some(1234),
        eight_bit: true,
        smtputf8: false,
    }
}

#[test]
fn opportunistic_starttls_pipelined_delivery_and_reuse() {
    let mut c = Session::new(params(TlsRequirement::Opportunistic));
    assert_eq!(
        server(&mut c, "220 mx.example.com ESMTP\r\n"),
        "EHLO nas.example.org\r\n"
    );
    assert_eq!(server(&mut c, EHLO_FULL), "STARTTLS\r\n");
    assert_eq!(
        server(&mut c, "220 2.0.0 Ready to start TLS\r\n"),
        "[starttls]"
    );
    assert_eq!(render(&c.tls_established()), "EHLO nas.example.org\r\n");
    assert!(c.tls_active());
    let ehlo_tls = EHLO_FULL.replace("250-STARTTLS\r\n", "");
    assert_eq!(server(&mut c, &ehlo_tls), "[ready]");
    assert_eq!(
        render(&c.send_message(msg(&["a@example.com", "b@example.com", "c@example.com"]))),
        "MAIL FROM:<root@nas.example.org> SIZE=1234 BODY=8BITMIME\r\n\
         RCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n"
    );
    assert_eq!(
        server(
            &mut c,
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@example.com>: Recipient address rejected: User unknown\r\n450 4.2.0 <c@example.com>: try later\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
        ),
        "[body]"
    );
    let mut all = c.reply_line(b"250 2.0.0 Ok: queued as 4XyZ");
    let ClientAction::Delivered(res) = all.remove(0) else {
        panic!()
    };
    assert_eq!(render(&all), "[ready]");
    assert_eq!(res.len(), 3);
    assert_eq!(res[0].status, Status::Sent);
    assert_eq!(res[0].dsn(), "2.0.0");
    assert_eq!(
        res[0].describe("mx.example.com[192.0.2.1]"),
        "250 2.0.0 Ok: queued as 4XyZ"
    );
    assert_eq!(res[1].status, Status::Bounced);
    assert_eq!(res[1].dsn(), "5.1.1");
    assert_eq!(
        res[1].describe("mx.example.com[192.0.2.1]"),
        "host mx.example.com[192.0.2.1] said: 550 5.1.1 <b@example.com>: Recipient address rejected: User unknown (in reply to RCPT TO command)"
    );
    assert_eq!(res[2].status, Status::Deferred);
    assert_eq!(res[2].dsn(), "4.2.0");
    // Reuse, then QUIT.
    assert!(render(&c.send_message(msg(&["a@example.com"]))).starts_with("MAIL FROM:"));
    assert_eq!(
        server(&mut c, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
        "[body]"
    );
    assert_eq!(
        server(&mut c, "250 2.0.0 Ok\r\n"),
        "[delivered Sent:2.0.0][ready]"
    );
    assert_eq!(render(&c.quit()), "QUIT\r\n");
    assert_eq!(server(&mut c, "221 2.0.0 Bye\r\n"), "[close]");
}

#[test]
fn required_tls_not_offered_never_falls_back() {
    let mut c = Session::new(params(TlsRequirement::Required));
    server(&mut c, "220 mx ESMTP\r\n");
    assert_eq!(
        server(&mut c, EHLO_NO_TLS),
        "[failed TLS is required, but was not offered by host mx[192.0.2.1]][close]"
    );
    assert!(c.is_closed());
    // EHLO refused: HELO cannot do STARTTLS either.
    let mut c = Session::new(params(TlsRequirement::Required));
    server(&mut c, "220 mx ESMTP\r\n");
    assert_eq!(
        server(&mut c, "502 5.5.2 Error: command not recognized\r\n"),
        "[failed TLS is required, but was not offered by host mx[192.0.2.1]][close]"
    );
    // STARTTLS refused.
    let mut c = Session::new(params(TlsRequirement::Required));
    server(&mut c, "220 mx ESMTP\r\n");
    server(&mut c, EHLO_FULL);
    assert_eq!(
        server(&mut c, "454 4.7.0 TLS not available due to local problem\r\n"),
        "[failed TLS is required, but host mx[192.0.2.1] refused to start TLS: 454 4.7.0 TLS not available due to local problem][close]"
    );
    // Handshake failure.
    let mut c = Session::new(params(TlsRequirement::Required));
    server(&mut c, "220 mx ESMTP\r\n");
    server(&mut c, EHLO_FULL);
    assert_eq!(server(&mut c, "220 go ahead\r\n"), "[starttls]");
    assert!(render(&c.tls_failed()).starts_with("[failed Cannot start TLS"));
}

#[test]
fn opportunistic_plaintext_when_refused_or_absent() {
    let mut c = Session::new(params(TlsRequirement::Opportunistic));
    server(&mut c, "220 mx ESMTP\r\n");
    server(&mut c, EHLO_FULL);
    assert_eq!(server(&mut c, "454 4.7.0 TLS not available\r\n"), "[ready]");
    assert!(!c.tls_active());
    let mut c = Session::new(params(TlsRequirement::None));
    server(&mut c, "220 mx ESMTP\r\n");
    assert_eq!(server(&mut c, EHLO_FULL), "[ready]");
}

#[test]
fn reply_during_handshake_is_refused() {
    let mut c = Session::new(params(TlsRequirement::Opportunistic));
    server(&mut c, "220 mx ESMTP\r\n");
    server(&mut c, EHLO_FULL);
    server(&mut c, "220 Ready\r\n");
    // An attacker injected a reply after the 220, in plaintext.
    assert!(server(&mut c, "250 injected\r\n").starts_with("[failed unexpected reply"));
}

#[test]
fn helo_fallback_without_pipelining() {
    let mut c = Session::new(params(TlsRequirement::Opportunistic));
    server(&mut c, "220 old.example ESMTP\r\n");
    assert_eq!(
        server(&mut c, "500 Command unrecognized\r\n"),
        "HELO nas.example.org\r\n"
    );
    assert_eq!(server(&mut c, "250 old.example\r\n"), "[ready]");
    assert_eq!(
        render(&c.send_message(msg(&["a@x.example", "b@x.example"]))),
        "MAIL FROM:<root@nas.example.org>\r\n"
    );
    assert_eq!(server(&mut c, "250 ok\r\n"), "RCPT TO:<a@x.example>\r\n");
    assert_eq!(server(&mut c, "550 no\r\n"), "RCPT TO:<b@x.example>\r\n");
    assert_eq!(server(&mut c, "250 ok\r\n"), "DATA\r\n");
    assert_eq!(server(&mut c, "354 go\r\n"), "[body]");
    assert_eq!(
        server(&mut c, "250 queued\r\n"),
        "[delivered Bounced:5.0.0 Sent:2.0.0][ready]"
    );
}

#[test]
fn mail_refused_and_all_rcpts_refused_then_rset() {
    let mut c = Session::new(params(TlsRequirement::None));
    server(&mut c, "220 mx\r\n");
    server(&mut c, EHLO_NO_TLS);
    c.send_message(msg(&["a@x.example"]));
    assert_eq!(
        server(&mut c, "452 4.3.1 Insufficient system storage\r\n"),
        "[delivered Deferred:4.3.1]RSET\r\n"
    );
    assert_eq!(server(&mut c, "250 2.0.0 Ok\r\n"), "[ready]");
    // Pipelined, every recipient refused, DATA refused.
    let mut c = Session::new(params(TlsRequirement::None));
    server(&mut c, "220 mx\r\n");
    server(&mut c, EHLO_FULL);
    c.send_message(msg(&["a@x.example", "b@x.example"]));
    assert_eq!(
        server(
            &mut c,
            "250 2.1.0 Ok\r\n554 5.7.1 <a@x.example>: Relay access denied\r\n554 5.7.1 <b@x.example>: Relay access denied\r\n554 5.5.1 Error: no valid recipients\r\n"
        ),
        "[delivered Bounced:5.7.1 Bounced:5.7.1]RSET\r\n"
    );
    // Pipelined with a failed MAIL: the MAIL reply decides for all.
    let mut c = Session::new(params(TlsRequirement::None));
    server(&mut c, "220 mx\r\n");
    server(&mut c, EHLO_FULL);
    c.send_message(msg(&["a@x.example"]));
    let out = server(
        &mut c,
        "553 5.1.8 Sender address rejected\r\n503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need RCPT command\r\n",
    );
    assert_eq!(out, "[delivered Bounced:5.1.8]RSET\r\n");
}

#[test]
fn auth_plain_and_login_only_over_tls() {
    let creds = Some(("relay@example.org".to_string(), "s3cret".to_string()));
    let mut c = Session::new(ClientParams {
        implicit_tls: true,
        credentials: creds.clone(),
        ..params(TlsRequirement::Required)
    });
    server(&mut c, "220 smtp.provider ESMTP\r\n");
    assert_eq!(
        server(&mut c, EHLO_FULL),
        format!(
            "AUTH PLAIN {}\r\n",
            base64::encode(b"\0relay@example.org\0s3cret")
        )
    );
    assert_eq!(
        server(&mut c, "235 2.7.0 Authentication successful\r\n"),
        "[ready]"
    );
    assert!(c.authenticated());
    // LOGIN only.
    let mut c = Session::new(ClientParams {
        implicit_tls: true,
        credentials: creds.clone(),
        ..params(TlsRequirement::Required)
    });
    server(&mut c, "220 x\r\n");
    assert_eq!(
        server(&mut c, "250-x\r\n250 AUTH LOGIN\r\n"),
        "AUTH LOGIN\r\n"
    );
    assert_eq!(
        server(&mut c, "334 VXNlcm5hbWU6\r\n"),
        "cmVsYXlAZXhhbXBsZS5vcmc=\r\n"
    );
    assert_eq!(server(&mut c, "334 UGFzc3dvcmQ6\r\n"), "czNjcmV0\r\n");
    assert_eq!(
        server(&mut c, "535 5.7.8 Error: authentication failed\r\n"),
        "[failed SASL authentication failed; server mx[192.0.2.1] said: 535 5.7.8 Error: authentication failed][close]"
    );
    // Plaintext: the password is never sent.
    let mut c = Session::new(ClientParams {
        credentials: creds,
        ..params(TlsRequirement::None)
    });
    server(&mut c, "220 x\r\n");
    assert!(server(&mut c, EHLO_FULL).starts_with("[failed SASL authentication not offered"));
}

#[test]
fn smtputf8_required_but_missing_bounces() {
    let mut c = Session::new(params(TlsRequirement::None));
    server(&mut c, "220 mx\r\n");
    server(&mut c, EHLO_NO_TLS);
    let mut m = msg(&["j\u{f6}rg@x.example"]);
    m.smtputf8 = true;
    assert_eq!(
        render(&c.send_message(m)),
        "[delivered Bounced:5.6.7][ready]"
    );
}

#[test]
fn greeting_and_malformed_replies() {
    let mut c = Session::new(params(TlsRequirement::None));
    assert_eq!(
        server(&mut c, "554 5.7.1 go away\r\n"),
        "[failed host mx[192.0.2.1] refused to talk to me: 554 5.7.1 go away][close]"
    );
    let mut c = Session::new(params(TlsRequirement::None));
    assert!(server(&mut c, "hello\r\n").starts_with("[failed malformed reply"));
    let mut c = Session::new(params(TlsRequirement::None));
    server(&mut c, "220 mx\r\n");
    assert!(server(&mut c, "250-a\r\n251 b\r\n").contains("code differs"));
}

#[test]
fn commands_inline_up_to_the_line_limit_then_on_the_heap() {
    let short = CommandBytes::line(&[b"QUIT"]);
    assert!(matches!(short.0, Repr::Inline(_)));
    assert_eq!(&*short, b"QUIT\r\n");
    let fits = CommandBytes::line(&[&[b'x'; COMMAND_MAX - 2]]);
    assert!(matches!(fits.0, Repr::Inline(_)));
    let long = CommandBytes::line(&[&[b'x'; COMMAND_MAX - 1]]);
    assert!(matches!(long.0, Repr::Heap(_)));
    assert_eq!(long.len(), COMMAND_MAX + 1);
    // Where the bytes live does not make two commands differ.
    let heap = CommandBytes(Repr::Heap(b"QUIT\r\n".to_vec()));
    assert_eq!(short, heap);
}

#[test]
fn long_auth_plain_and_big_pipelined_groups_are_sent_whole() {
    let user = "u".repeat(300);
    let pass = "p".repeat(9000);
    let mut c = Session::new(ClientParams {
        credentials: Some((user.clone(), pass.clone())),
        implicit_tls: true,
        ..params(TlsRequirement::Required)
    });
    server(&mut c, "220 mx.example.com ESMTP\r\n");
    let sent = server(&mut c, EHLO_FULL);
    let token = crate::base64::encode(format!("\0{user}\0{pass}").as_bytes());
    assert_eq!(sent, format!("AUTH PLAIN {token}\r\n"));
    assert_eq!(
        server(&mut c, "235 2.7.0 Authentication successful\r\n"),
        "[ready]"
    );
    let rcpts: Vec<String> = (0..100).map(|i| format!("user{i}@example.com")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let actions = c.send_message(msg(&rcpts));
    assert_eq!(actions.len(), 1);
    let text = render(&actions);
    assert!(text.starts_with("MAIL FROM:<root@nas.example.org> SIZE=1234 BODY=8BITMIME\r\nRCPT TO:<user0@example.com>\r\n"));
    assert!(text.ends_with("RCPT TO:<user99@example.com>\r\nDATA\r\n"));
    assert_eq!(text.matches("RCPT TO:").count(), 100);
}

#[test]
fn authentication_required_replies() {
    use crate::smtp::reply::ParsedReply;
    let r = |code, text| ParsedReply::local(code, text);
    assert!(auth_required(&r(530, "5.7.0 Authentication required")));
    assert!(auth_required(&r(530, "Authentication required")));
    assert!(auth_required(&r(
        550,
        "5.7.0 SMTP AUTH is required for message submission"
    )));
    // TLS first, not a login; and ordinary rejections.
    assert!(!auth_required(&r(
        530,
        "5.7.0 Must issue a STARTTLS command first"
    )));
    assert!(!auth_required(&r(554, "5.7.1 <x@y>: Relay access denied")));
    assert!(!auth_required(&r(550, "5.7.0 message rejected")));
    assert!(!auth_required(&r(
        450,
        "4.7.0 authentication service unavailable"
    )));
}
