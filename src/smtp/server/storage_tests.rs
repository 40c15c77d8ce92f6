//! `queue_minfree` in the session core: the driver's `storage_ok` answer
//! turns MAIL FROM (and DATA, before `354`) into `452 4.3.1`.

use super::*;

/// Every recipient is remote; the spool has room while `room` is true, and
/// every size asked about is recorded.
struct Spool {
    room: bool,
    asked: Vec<u64>,
}

impl Recipients for Spool {
    fn classify(&mut self, _rcpt: &Path<'_>) -> RcptClass {
        RcptClass::Remote
    }

    fn storage_ok(&mut self, size: u64) -> bool {
        self.asked.push(size);
        self.room
    }
}

fn replies(a: &Actions) -> String {
    a.iter()
        .filter_map(|x| match x {
            Action::Send(r) => Some(String::from_utf8_lossy(r.as_bytes()).into_owned()),
            _ => None,
        })
        .collect()
}

fn session() -> Session {
    let mut s = Session::new(ServerParams {
        hostname: "mx.example.net".into(),
        client_in_mynetworks: true,
        ..ServerParams::default()
    });
    let _ = s.greeting();
    s
}

#[test]
fn mail_from_is_refused_while_the_spool_is_short_of_space() {
    let mut s = session();
    let mut spool = Spool {
        room: false,
        asked: Vec::new(),
    };
    let say = |s: &mut Session, spool: &mut Spool, l: &str| replies(&s.line(l.as_bytes(), spool));
    assert!(say(&mut s, &mut spool, "EHLO c.example").starts_with("250-"));
    assert_eq!(
        say(&mut s, &mut spool, "MAIL FROM:<a@c.example> SIZE=1234"),
        "452 4.3.1 Insufficient system storage\r\n"
    );
    assert_eq!(spool.asked, [1234], "the declared SIZE is passed on");
    assert!(s.envelope().is_none(), "no transaction started");
    assert!(say(&mut s, &mut spool, "RCPT TO:<b@r.example>").starts_with("503 "));
    // Room again: the same command is accepted.
    spool.room = true;
    assert_eq!(
        say(&mut s, &mut spool, "MAIL FROM:<a@c.example>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(spool.asked, [1234, 0], "no SIZE: 0");
}

#[test]
fn data_is_refused_before_354_when_space_ran_out_meanwhile() {
    let mut s = session();
    let mut spool = Spool {
        room: true,
        asked: Vec::new(),
    };
    let say = |s: &mut Session, spool: &mut Spool, l: &str| replies(&s.line(l.as_bytes(), spool));
    say(&mut s, &mut spool, "EHLO c.example");
    assert_eq!(
        say(&mut s, &mut spool, "MAIL FROM:<a@c.example> SIZE=99"),
        "250 2.1.0 Ok\r\n"
    );
    assert!(say(&mut s, &mut spool, "RCPT TO:<b@r.example>").starts_with("250 "));
    spool.room = false;
    let acts = s.line(b"DATA", &mut spool);
    assert_eq!(replies(&acts), "452 4.3.1 Insufficient system storage\r\n");
    assert!(
        !acts.iter().any(|a| matches!(a, Action::BeginData)),
        "no body is read"
    );
    assert_eq!(spool.asked, [99, 99]);
    // The transaction stays; with room DATA proceeds.
    spool.room = true;
    let acts = s.line(b"DATA", &mut spool);
    assert!(replies(&acts).starts_with("354 "), "{}", replies(&acts));
}

#[test]
fn storage_rejects_are_logged_like_postfix() {
    let client = "localhost[127.0.0.1]";
    let mut s = Session::new(ServerParams {
        hostname: "mx.example.net".into(),
        client_in_mynetworks: true,
        ..ServerParams::default()
    });
    let mut spool = Spool {
        room: false,
        asked: Vec::new(),
    };
    // No HELO name: Postfix leaves helo= out; HELO is proto=SMTP.
    let mut s2 = Session::new(ServerParams {
        helo_required: false,
        ..ServerParams::default()
    });
    let _ = s2.line(b"MAIL FROM:<>", &mut spool);
    assert_eq!(
        s2.take_reject_log(client).as_deref(),
        Some("NOQUEUE: reject: MAIL from localhost[127.0.0.1]: 452 4.3.1 Insufficient system storage; from=<> proto=SMTP")
    );
    let _ = s.line(b"EHLO c.example", &mut spool);
    let _ = s.line(b"MAIL FROM:<a@c.example>", &mut spool);
    assert_eq!(
        s.take_reject_log(client).as_deref(),
        Some("NOQUEUE: reject: MAIL from localhost[127.0.0.1]: 452 4.3.1 Insufficient system storage; from=<a@c.example> proto=ESMTP helo=<c.example>")
    );
    spool.room = true;
    let _ = s.line(b"MAIL FROM:<a@c.example>", &mut spool);
    let _ = s.line(b"RCPT TO:<b@r.example>", &mut spool);
    assert_eq!(s.take_reject_log(client), None);
    spool.room = false;
    assert_eq!(
        replies(&s.line(b"DATA", &mut spool)),
        "452 4.3.1 Insufficient system storage\r\n"
    );
    assert_eq!(
        s.take_reject_log(client).as_deref(),
        Some("NOQUEUE: reject: DATA from localhost[127.0.0.1]: 452 4.3.1 Insufficient system storage; from=<a@c.example> proto=ESMTP helo=<c.example>")
    );
}
