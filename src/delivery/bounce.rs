//! Delivery status notifications (RFC 3464, multipart/report), worded like
//! Postfix's bounce(8) so that people and scripts recognise them. Sans-I/O:
//! the caller passes the facts and at most `bounce_size_limit` bytes of the
//! original message, and gets the complete notification back.

use std::fmt::Write as _;

/// One recipient's final (or delayed) status for the report.
#[derive(Debug, Clone)]
pub struct RecipientStatus<'a> {
    /// The recipient as delivered to (after rewriting).
    pub final_rcpt: &'a str,
    /// The recipient as the sender gave it, if different.
    pub original_rcpt: Option<&'a str>,
    /// `failed` or `delayed`.
    pub action: Action,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: &'a str,
    /// The remote MTA that answered, if any.
    pub remote_mta: Option<&'a str>,
    /// The SMTP reply text, or tern's own reason.
    pub diagnostic: &'a str,
    /// Whether `diagnostic` is an SMTP reply (else an X-Postfix-style text).
    pub diagnostic_is_smtp: bool,
}

/// The DSN action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Permanent failure or queue lifetime exceeded.
    Failed,
    /// Still trying (delay warning).
    Delayed,
}

/// What the notification is about.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// This host's name (Reporting-MTA, From).
    pub myhostname: &'a str,
    /// Queue id of the original message.
    pub queue_id: &'a str,
    /// Envelope sender of the original (the notification goes there).
    pub sender: &'a str,
    /// RFC 5322 date of the original's arrival.
    pub arrival_date: &'a str,
    /// RFC 5322 date for the notification's Date header.
    pub date: &'a str,
    /// A unique token for the Message-ID and MIME boundary.
    pub unique: &'a str,
    /// The recipients being reported.
    pub recipients: &'a [RecipientStatus<'a>],
    /// True when `original` holds only the header section (message too big).
    pub headers_only: bool,
}

/// Renders the complete notification, CRLF line ends, `original` appended
/// (it must already be cut to `bounce_size_limit` by the caller; it is
/// normalised to CRLF here).
pub fn render(r: &Report<'_>, original: &[u8]) -> Vec<u8> {
    render_as(r, None, original)
}

/// Renders Postfix's double bounce: the report about a bounce that could
/// not be delivered, to the postmaster address `to` (Postfix's
/// `2bounce_notice_recipient`). As Postfix's bounce(8) writes it: the
/// `Postmaster Copy: Undelivered Mail` subject, the reasons and the
/// delivery-status part without the sender-facing boiler-plate text, and
/// the bounce's headers only (`original` should be just those; set
/// `headers_only`).
pub fn render_postmaster_copy(r: &Report<'_>, to: &str, original: &[u8]) -> Vec<u8> {
    render_as(r, Some(to), original)
}

fn render_as(r: &Report<'_>, postmaster: Option<&str>, original: &[u8]) -> Vec<u8> {
    let boundary = format!("{}.{}/{}", r.queue_id, r.unique, r.myhostname);
    let failed = r.recipients.iter().any(|x| x.action == Action::Failed);
    let subject = match (postmaster, failed) {
        (Some(_), _) => "Postmaster Copy: Undelivered Mail",
        (None, true) => "Undelivered Mail Returned to Sender",
        (None, false) => "Delayed Mail (still being retried)",
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "From: MAILER-DAEMON@{h} (Mail Delivery System)\r\n\
         Subject: {subject}\r\n\
         To: {to}\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         Message-Id: <{u}@{h}>\r\n\
         Date: {date}\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         This is the mail system at host {h}.\r\n\
         \r\n",
        h = r.myhostname,
        to = match postmaster {
            Some(p) => p,
            None if r.sender.is_empty() => "<>",
            None => r.sender,
        },
        u = r.unique,
        date = r.date,
    );
    if postmaster.is_some() {
        // Postfix sends no boiler-plate to the postmaster; one sentence
        // says what this is, for an owner who has never seen one.
        s.push_str(
            "A non-delivery notification (bounce) could not be delivered to\r\n\
             its recipient. The reason and the notification's headers follow.\r\n",
        );
    } else if failed {
        s.push_str(
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below.\r\n\
             \r\n\
             For further assistance, please send mail to postmaster.\r\n\
             \r\n\
             If you do so, please include this problem report. You can\r\n\
             delete your own text from the attached returned message.\r\n",
        );
    } else {
        s.push_str(
            "####################################################################\r\n\
             # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n\
             ####################################################################\r\n\
             \r\n\
             Your message could not be delivered for some time.\r\n\
             It will be retried until it is too old.\r\n",
        );
    }
    s.push_str("\r\n                   The mail system\r\n\r\n");
    for x in r.recipients {
        let _ = write!(s, "<{}>: {}\r\n", x.final_rcpt, fold(x.diagnostic));
    }
    let _ = write!(
        s,
        "\r\n--{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {h}\r\n\
         X-Postfix-Queue-ID: {q}\r\n\
         X-Postfix-Sender: rfc822; {sender}\r\n\
         Arrival-Date: {arr}\r\n",
        h = r.myhostname,
        q = r.queue_id,
        sender = r.sender,
        arr = r.arrival_date,
    );
    for x in r.recipients {
        let _ = write!(s, "\r\nFinal-Recipient: rfc822; {}\r\n", x.final_rcpt);
        if let Some(o) = x.original_rcpt {
            let _ = write!(s, "Original-Recipient: rfc822;{o}\r\n");
        }
        let _ = write!(
            s,
            "Action: {}\r\nStatus: {}\r\n",
            match x.action {
                Action::Failed => "failed",
                Action::Delayed => "delayed",
            },
            x.status
        );
        if let Some(m) = x.remote_mta {
            let _ = write!(s, "Remote-MTA: dns; {m}\r\n");
        }
        let _ = write!(
            s,
            "Diagnostic-Code: {}; {}\r\n",
            if x.diagnostic_is_smtp {
                "smtp"
            } else {
                "X-Postfix"
            },
            fold(if x.diagnostic_is_smtp {
                smtp_reply_part(x.diagnostic)
            } else {
                x.diagnostic
            })
        );
    }
    let _ = write!(
        s,
        "\r\n--{boundary}\r\n\
         Content-Description: {}\r\n\
         Content-Type: {}\r\n\
         \r\n",
        if r.headers_only {
            "Undelivered Message Headers"
        } else {
            "Undelivered Message"
        },
        if r.headers_only {
            "text/rfc822-headers"
        } else {
            "message/rfc822"
        },
    );
    let mut out = s.into_bytes();
    push_crlf_normalised(&mut out, original);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The server's reply inside a delivery text `host H[A] said: REPLY (in
/// reply to X command)`: Postfix's Diagnostic-Code carries the reply alone,
/// the human-readable part of the bounce the whole text.
fn smtp_reply_part(text: &str) -> &str {
    let reply = match text.find(" said: ") {
        Some(i) if text.starts_with("host ") => &text[i + " said: ".len()..],
        _ => text,
    };
    match reply.rfind(" (in reply to ") {
        Some(i) if reply.ends_with(" command)") => &reply[..i],
        _ => reply,
    }
}

/// Keeps a diagnostic on one logical line: control characters from a
/// remote reply must not inject headers into the report.
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn push_crlf_normalised(out: &mut Vec<u8>, data: &[u8]) {
    // Bare CR and bare LF both become CRLF: the report must be clean SMTP.
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report<'a>(rcpts: &'a [RecipientStatus<'a>]) -> Report<'a> {
        Report {
            myhostname: "box.example",
            queue_id: "4F2A51C0F5",
            sender: "alice@example.org",
            arrival_date: "Mon, 23 Nov 2026 19:02:49 +0000",
            date: "Mon, 28 Nov 2026 19:02:50 +0000",
            unique: "1796000000",
            recipients: rcpts,
            headers_only: false,
        }
    }

    #[test]
    fn failed_report_has_the_three_parts() {
        let rcpts = [RecipientStatus {
            final_rcpt: "bob@example.net",
            original_rcpt: Some("bob@example.net"),
            action: Action::Failed,
            status: "5.1.1",
            remote_mta: Some("mx.example.net"),
            diagnostic: "host mx.example.net[192.0.2.1] said: 550 5.1.1 <bob@example.net>: User unknown (in reply to RCPT TO command)",
            diagnostic_is_smtp: true,
        }];
        let out = render(&report(&rcpts), b"Subject: hi\n\nbody\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("From: MAILER-DAEMON@box.example (Mail Delivery System)\r\nSubject: Undelivered Mail Returned to Sender\r\nTo: alice@example.org\r\n"));
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"4F2A51C0F5.1796000000/box.example\"\r\n"));
        assert!(text.contains("\r\nReporting-MTA: dns; box.example\r\n"));
        assert!(text.contains("\r\nFinal-Recipient: rfc822; bob@example.net\r\nOriginal-Recipient: rfc822;bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.net\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: User unknown\r\n"));
        // The human-readable part keeps the whole delivery text.
        assert!(text.contains("<bob@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1 <bob@example.net>: User unknown (in reply to RCPT TO command)\r\n"));
        assert!(text.contains("Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nbody\r\n\r\n--4F2A51C0F5.1796000000/box.example--\r\n"));
        // No bare LF anywhere.
        assert!(!text.replace("\r\n", "").contains('\n'));
        assert_eq!(
            text.matches("--4F2A51C0F5.1796000000/box.example\r\n")
                .count(),
            3
        );
    }

    #[test]
    fn delay_warning_and_header_injection() {
        let rcpts = [RecipientStatus {
            final_rcpt: "bob@example.net",
            original_rcpt: None,
            action: Action::Delayed,
            status: "4.4.1",
            remote_mta: None,
            diagnostic: "connect to mx[192.0.2.1]:25: Connection refused\r\nX-Evil: 1",
            diagnostic_is_smtp: false,
        }];
        let mut r = report(&rcpts);
        r.headers_only = true;
        let text = String::from_utf8(render(&r, b"Subject: hi\r\n")).unwrap();
        assert!(text.contains("Subject: Delayed Mail (still being retried)"));
        assert!(text.contains("Action: delayed\r\nStatus: 4.4.1\r\nDiagnostic-Code: X-Postfix; connect to mx[192.0.2.1]:25: Connection refused  X-Evil: 1\r\n"));
        assert!(!text.contains("\r\nX-Evil"));
        assert!(text.contains("Content-Type: text/rfc822-headers"));
    }

    #[test]
    fn postmaster_copy_of_a_bounce() {
        let rcpts = [RecipientStatus {
            final_rcpt: "alice@example.org",
            original_rcpt: None,
            action: Action::Failed,
            status: "5.7.0",
            remote_mta: Some("relay.example"),
            diagnostic: "host relay.example[192.0.2.2] said: 530 5.7.0 Authentication required (in reply to MAIL FROM command)",
            diagnostic_is_smtp: true,
        }];
        let mut r = report(&rcpts);
        r.sender = "";
        r.headers_only = true;
        let text = String::from_utf8(render_postmaster_copy(
            &r,
            "postmaster@box.example",
            b"From: MAILER-DAEMON@box.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\n",
        ))
        .unwrap();
        assert!(text.starts_with("From: MAILER-DAEMON@box.example (Mail Delivery System)\r\nSubject: Postmaster Copy: Undelivered Mail\r\nTo: postmaster@box.example\r\n"), "{text}");
        assert!(!text.contains("I'm sorry"), "{text}");
        assert!(text.contains("<alice@example.org>: host relay.example[192.0.2.2] said: 530 5.7.0"));
        assert!(text.contains("X-Postfix-Sender: rfc822; \r\n"));
        assert!(text.contains(
            "Content-Type: text/rfc822-headers\r\n\r\nFrom: MAILER-DAEMON@box.example\r\n"
        ));
    }

    #[test]
    fn crlf_normalisation() {
        let mut out = Vec::new();
        push_crlf_normalised(&mut out, b"a\nb\r\nc\rd\r");
        assert_eq!(out, b"a\r\nb\r\nc\r\nd\r\n");
    }
}
