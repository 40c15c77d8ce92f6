//! The `Received:` header tern prepends, in Postfix's layout
//! (`smtpd/smtpd.c`), with RFC 3848 / RFC 6531 `with` keywords and an
//! RFC 5322 date in Postfix's `mail_date()` form
//! (`Mon, 23 Nov 2026 19:00:00 +0000 (UTC)`, day space-padded).

use core::fmt::Write as _;

/// What the header says about one message.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedInfo<'a> {
    /// HELO/EHLO name; `None` uses `client_name` like Postfix.
    pub helo: Option<&'a str>,
    /// Reverse DNS name of the client, or `unknown`.
    pub client_name: &'a str,
    /// Client address as text (`192.0.2.1` or `2001:db8::1`).
    pub client_addr: &'a str,
    /// TLS comment from the tls module, without parentheses handling:
    /// inserted as is after a folding `CRLF TAB`; each `\n` inside it
    /// becomes a new folded line (`CRLF TAB`), so
    /// `"(using TLSv1.3 ...)\n(No client certificate requested)"` gives
    /// Postfix's two comment lines.
    pub tls: Option<&'a str>,
    /// `myhostname`.
    pub hostname: &'a str,
    /// `mail_name`: the program name in `by HOST (NAME)`, as Postfix
    /// writes `var_mail_name` there.
    pub mail_name: &'a str,
    /// `with` protocol (`ESMTPS` etc., see `server::Session::protocol`).
    pub protocol: &'a str,
    /// Queue ID.
    pub queue_id: &'a str,
    /// The one recipient, if the message has exactly one (Postfix adds
    /// `for <rcpt>` only then).
    pub single_recipient: Option<&'a str>,
    /// RFC 5322 date text, e.g. from `queue::clock::local(t).rfc5322()`.
    pub date: &'a str,
}

/// Builds the header, folded, ending in CRLF.
pub fn received_header(i: &ReceivedInfo<'_>) -> String {
    let mut s = String::with_capacity(256);
    let helo = i.helo.unwrap_or(i.client_name);
    let addr = if i.client_addr.contains(':') {
        format!("IPv6:{}", i.client_addr)
    } else {
        i.client_addr.to_string()
    };
    let _ = write!(
        s,
        "Received: from {} ({} [{}])",
        clean(helo),
        clean(i.client_name),
        addr
    );
    if let Some(tls) = i.tls {
        for line in tls.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let _ = write!(s, "\r\n\t{}", clean(line));
        }
    }
    let _ = write!(
        s,
        "\r\n\tby {} ({}) with {} id {}",
        i.hostname,
        clean(i.mail_name),
        i.protocol,
        i.queue_id
    );
    match i.single_recipient {
        Some(r) => {
            let _ = write!(s, "\r\n\tfor <{}>; {}\r\n", clean(r), i.date);
        }
        None => {
            let _ = write!(s, "; {}\r\n", i.date);
        }
    }
    s
}

/// The header `tern sendmail` (and the pickup, for a maildrop file)
/// prepends, in the layout of Postfix's cleanup for local submissions:
/// `Received: by HOST (MAIL_NAME, from userid UID)` then `id ID; DATE`.
pub fn local_received_header(
    hostname: &str,
    mail_name: &str,
    uid: u32,
    queue_id: &str,
    date: &str,
) -> String {
    format!(
        "Received: by {hostname} ({}, from userid {uid})\r\n\tid {queue_id}; {date}\r\n",
        clean(mail_name)
    )
}

/// Control characters from the network must not break the header.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tls_single_rcpt() {
        let h = received_header(&ReceivedInfo {
            helo: Some("client.example"),
            client_name: "client.example",
            client_addr: "192.0.2.1",
            tls: Some(
                "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256)\n(No client certificate requested)",
            ),
            hostname: "mx.example.net",
            mail_name: "tern",
            protocol: "ESMTPS",
            queue_id: "4Xk2Lm0abc",
            single_recipient: Some("u@example.net"),
            date: "Mon, 23 Nov 2026 19:00:00 +0000 (UTC)",
        });
        assert_eq!(
            h,
            "Received: from client.example (client.example [192.0.2.1])\r\n\
             \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n\
             \t key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256)\r\n\
             \t(No client certificate requested)\r\n\
             \tby mx.example.net (tern) with ESMTPS id 4Xk2Lm0abc\r\n\
             \tfor <u@example.net>; Mon, 23 Nov 2026 19:00:00 +0000 (UTC)\r\n"
        );
    }

    #[test]
    fn header_plain_many_rcpts_ipv6() {
        let h = received_header(&ReceivedInfo {
            helo: None,
            client_name: "unknown",
            client_addr: "2001:db8::1",
            tls: None,
            hostname: "nas.home",
            mail_name: "tern",
            protocol: "SMTP",
            queue_id: "Q1",
            single_recipient: None,
            date: "Thu,  1 Jan 1970 00:00:00 +0000 (UTC)",
        });
        assert_eq!(
            h,
            "Received: from unknown (unknown [IPv6:2001:db8::1])\r\n\
             \tby nas.home (tern) with SMTP id Q1; Thu,  1 Jan 1970 00:00:00 +0000 (UTC)\r\n"
        );
    }

    #[test]
    fn mail_name_names_the_program() {
        let h = received_header(&ReceivedInfo {
            helo: Some("c.example"),
            client_name: "unknown",
            client_addr: "192.0.2.9",
            tls: None,
            hostname: "nas.home",
            mail_name: "HomeMail",
            protocol: "ESMTP",
            queue_id: "Q2",
            single_recipient: Some("u@nas.home"),
            date: "Thu,  1 Jan 1970 00:00:00 +0000 (UTC)",
        });
        assert!(
            h.contains("\r\n\tby nas.home (HomeMail) with ESMTP id Q2\r\n"),
            "{h}"
        );
        assert!(!h.contains("tern"), "{h}");
        // A control character in the configured name cannot fold the header.
        let h = received_header(&ReceivedInfo {
            mail_name: "a\r\nX-Evil: 1",
            ..ReceivedInfo {
                helo: None,
                client_name: "unknown",
                client_addr: "192.0.2.9",
                tls: None,
                hostname: "nas.home",
                mail_name: "",
                protocol: "SMTP",
                queue_id: "Q3",
                single_recipient: None,
                date: "D",
            }
        });
        assert_eq!(h.matches("\r\n").count(), 2, "{h:?}");
    }

    #[test]
    fn local_header_postfix_layout() {
        assert_eq!(
            local_received_header(
                "nas.home",
                "HomeMail",
                1000,
                "4Xk2Lm0abc",
                "Mon, 23 Nov 2026 19:00:00 +0000 (UTC)"
            ),
            "Received: by nas.home (HomeMail, from userid 1000)\r\n\
             \tid 4Xk2Lm0abc; Mon, 23 Nov 2026 19:00:00 +0000 (UTC)\r\n"
        );
    }
}
