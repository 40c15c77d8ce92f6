//! Mail from SMTP clients (smtpd): the envelope the session accepted is
//! rewritten ([`Envelope::rewrite`]), and the DATA bytes, as smtpd decodes
//! them, go into the queue file behind a `Received:` header, through the
//! header fixer for the clients that `local_header_rewrite_clients` names
//! ([`Message`]). smtpd keeps the I/O: reading the client, creating and
//! committing the queue file.

use super::fixer::HeaderFixer;
use super::tls_required::Scanner;
use super::Rewrites;
use crate::local::{Rewriter, Side};
use crate::queue::{clock, Recipient};
use crate::smtp::received::{received_header, ReceivedInfo};

/// What cleanup takes from smtpd's settings.
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    /// `myhostname` (the `Received:` header's `by`, `Message-Id:`).
    pub hostname: &'a str,
    /// `mail_name` (the `Received:` header's `by HOST (NAME)`).
    pub mail_name: &'a str,
    /// Address rewriting at queue entry.
    pub rewrite: &'a Rewriter,
}

/// The SMTP client, as the `Received:` header names it.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The HELO/EHLO name, if the client gave one.
    pub helo: Option<&'a str>,
    /// The client's host name (`localhost`, `unknown`).
    pub name: &'a str,
    /// The client's IP address.
    pub addr: &'a str,
    /// The TLS comment, when the session is encrypted and
    /// `smtpd_tls_received_header` asks for it.
    pub tls: Option<&'a str>,
    /// `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPSA`...
    pub protocol: &'a str,
    /// `local_header_rewrite_clients` names this client: its headers are
    /// rewritten and completed.
    pub rewrite_headers: bool,
}

/// The envelope of an SMTP transaction, rewritten at queue entry.
#[derive(Debug)]
pub struct Envelope {
    /// The sender (empty for `<>`).
    pub sender: String,
    /// The recipients, a rewritten one with its address as given as ORCPT.
    pub recipients: Vec<Recipient>,
    /// What was rewritten, for [`Message::start`] to log.
    pub rewrites: Rewrites,
    /// The recipient as the client gave it, if there is just one: Postfix
    /// names it (`for <...>`) in the `Received:` header only then.
    pub single_recipient: Option<String>,
}

impl Envelope {
    /// Rewrites the envelope the session accepted. The session already
    /// checked every address and kept the recipient limit, so nothing is
    /// refused here.
    pub fn rewrite(rw: &Rewriter, sender: &str, recipients: &[String]) -> Envelope {
        let mut rewrites = Rewrites::default();
        let new_sender = rw.rewrite(sender, Side::Sender);
        rewrites.note("sender", sender, &new_sender);
        let mut rcpts: Vec<Recipient> = Vec::with_capacity(recipients.len());
        for r in recipients {
            let q = rw.rewrite(r, Side::Recipient);
            let mut rc = Recipient::new(&q);
            if rewrites.note("recipient", r, &q) {
                rc.orcpt = Some(format!("rfc822;{r}"));
            }
            rcpts.push(rc);
        }
        Envelope {
            sender: new_sender,
            recipients: rcpts,
            rewrites,
            single_recipient: match recipients {
                [one] => Some(one.clone()),
                _ => None,
            },
        }
    }
}

/// One SMTP message on its way into queue file `id`.
#[derive(Debug)]
pub struct Message<'a> {
    rewrite: &'a Rewriter,
    id: String,
    fixer: Option<HeaderFixer>,
    /// Watches the client's header block for `TLS-Required: No`.
    tls_required: Scanner,
}

impl<'a> Message<'a> {
    /// Starts queue file `id`: logs the envelope's `rewrites`, then writes
    /// the `Received:` header into `out`. `sender` is the rewritten sender
    /// (the `From:` of a message without one), `arrival` the queue file's
    /// arrival time.
    #[allow(clippy::too_many_arguments)]
    pub fn start<W: embedded_io::Write>(
        host: Host<'a>,
        client: &Client<'_>,
        sender: &str,
        single_recipient: Option<&str>,
        rewrites: Rewrites,
        id: &str,
        arrival: u64,
        out: &mut W,
    ) -> Result<Message<'a>, W::Error> {
        rewrites.log(id);
        let date = clock::local(arrival);
        let header = received_header(&ReceivedInfo {
            helo: client.helo,
            client_name: client.name,
            client_addr: client.addr,
            tls: client.tls,
            hostname: host.hostname,
            mail_name: host.mail_name,
            protocol: client.protocol,
            queue_id: id,
            single_recipient,
            date: &date.rfc5322(),
        });
        out.write_all(header.as_bytes())?;
        let fixer = client.rewrite_headers.then(|| {
            // Postfix's cleanup: the null sender's From: is the daemon.
            let from = if sender.is_empty() {
                "MAILER-DAEMON"
            } else {
                sender
            };
            HeaderFixer::new(super::added(
                format!("From: {from}\r\n"),
                &date,
                id,
                host.hostname,
            ))
        });
        Ok(Message {
            rewrite: host.rewrite,
            id: id.to_string(),
            fixer,
            tls_required: Scanner::new(),
        })
    }

    /// Writes message bytes (CRLF lines, dot-unstuffed) into `out`; each
    /// header rewrite is logged as it is made.
    pub fn write<W: embedded_io::Write>(
        &mut self,
        data: &[u8],
        out: &mut W,
    ) -> Result<(), W::Error> {
        // The client's bytes, before any rewriting: the field is no
        // address header, so the fixer passes it as it came.
        self.tls_required.feed(data);
        let (rw, id) = (self.rewrite, self.id.as_str());
        match self.fixer.as_mut() {
            Some(f) => f.feed(
                data,
                &mut |name, value| edit(rw, id, name, value),
                &mut |b| out.write_all(b),
            ),
            None => out.write_all(data),
        }
    }

    /// The end of a complete message: a header block that never ended
    /// gets what is missing now.
    pub fn finish<W: embedded_io::Write>(&mut self, out: &mut W) -> Result<(), W::Error> {
        let (rw, id) = (self.rewrite, self.id.as_str());
        match self.fixer.as_mut() {
            Some(f) => f.finish(&mut |name, value| edit(rw, id, name, value), &mut |b| {
                out.write_all(b)
            }),
            None => Ok(()),
        }
    }

    /// The message header had `TLS-Required: No` (RFC 8689 §5): smtpd
    /// sets the queue file's flag before it commits
    /// ([`crate::queue::Incoming::set_tls_required_no`]).
    pub fn tls_required_no(&self) -> bool {
        self.tls_required.tls_required_no()
    }

    /// Logs Postfix's cleanup line for a message over
    /// `message_size_limit` from `client` (`host[addr]`).
    pub fn reject_too_big(&self, client: &str) {
        log::info!(target: "cleanup", "{}: reject: message size exceeds limit from {client}", self.id);
    }
}

/// The header fixer's edit: the new value of an address header, logged
/// as `sendmail`'s header rewrites are.
fn edit(rw: &Rewriter, id: &str, name: &str, value: &str) -> Option<String> {
    let (old, new) = super::rewrite_header(rw, name, value.as_bytes())?;
    super::log_rewrite(
        id,
        "header",
        &format!("{name}:{old}"),
        &format!("{name}:{new}"),
    );
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::super::fixer::message_id;
    use super::*;

    fn rw() -> Rewriter {
        Rewriter {
            myorigin: "box.test".into(),
            local_domains: Vec::new(),
            append_at_myorigin: true,
            sender_canonical: Vec::new(),
            recipient_canonical: Vec::new(),
            masquerade_domains: vec!["example.org".into()],
        }
    }

    const NOW: u64 = 1_700_766_169;

    /// smtpd's calls, into `out`: the `Received:` header, then the DATA
    /// bytes in small chunks, then the end.
    fn run<W: embedded_io::Write>(
        rewrite_headers: bool,
        sender: &str,
        data: &[u8],
        out: &mut W,
    ) -> Result<(), W::Error> {
        let rw = rw();
        let host = Host {
            hostname: "mx.box.test",
            mail_name: "tern",
            rewrite: &rw,
        };
        let client = Client {
            helo: Some("client.test"),
            name: "localhost",
            addr: "127.0.0.1",
            tls: None,
            protocol: "ESMTP",
            rewrite_headers,
        };
        let mut m = Message::start(
            host,
            &client,
            sender,
            Some("ops"),
            Rewrites::default(),
            "QID",
            NOW,
            out,
        )?;
        for c in data.chunks(5) {
            m.write(c, out)?;
        }
        m.finish(out)
    }

    fn text(rewrite_headers: bool, sender: &str, data: &[u8]) -> String {
        let mut out: Vec<u8> = Vec::new();
        let Ok(()) = run(rewrite_headers, sender, data, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn smtp_message_into_memory() {
        let date = clock::local(NOW);
        let d = date.rfc5322();
        let received = format!(
            "Received: from client.test (localhost [127.0.0.1])\r\n\
             \tby mx.box.test (tern) with ESMTP id QID\r\n\tfor <ops>; {d}\r\n"
        );
        let mid = message_id(&date, "QID", "mx.box.test");
        assert_eq!(
            text(
                true,
                "",
                b"To: ops\r\nCc: a@mail.example.org\r\n\r\nbody\r\n"
            ),
            format!(
                "{received}To: ops@box.test\r\nCc: a@example.org\r\nFrom: MAILER-DAEMON\r\n\
                 Date: {d}\r\nMessage-Id: {mid}\r\n\r\nbody\r\n"
            )
        );
        // A header block that never ends is completed at the end.
        assert_eq!(
            text(true, "s@box.test", b"Subject: s\r\n"),
            format!(
                "{received}Subject: s\r\nFrom: s@box.test\r\nDate: {d}\r\n\
                 Message-Id: {mid}\r\n\r\n"
            )
        );
        // A client local_header_rewrite_clients does not name: as sent.
        assert_eq!(
            text(false, "", b"To: ops\r\n\r\nbody\r\n"),
            format!("{received}To: ops\r\n\r\nbody\r\n")
        );
    }

    /// A sink that takes `room` bytes, then fails: a full file system.
    struct Full {
        buf: Vec<u8>,
        room: usize,
    }

    #[derive(Debug, PartialEq)]
    struct NoSpace;

    impl embedded_io::Error for NoSpace {
        fn kind(&self) -> embedded_io::ErrorKind {
            embedded_io::ErrorKind::OutOfMemory
        }
    }

    impl embedded_io::ErrorType for Full {
        type Error = NoSpace;
    }

    impl embedded_io::Write for Full {
        fn write(&mut self, buf: &[u8]) -> Result<usize, NoSpace> {
            let n = buf.len().min(self.room - self.buf.len());
            if n == 0 && !buf.is_empty() {
                return Err(NoSpace);
            }
            self.buf.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> Result<(), NoSpace> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_come_back_to_smtpd() {
        let data = b"To: ops\r\n\r\nbody\r\n";
        let full = text(true, "", data).len();
        for room in [0, 10, full - 1] {
            let mut out = Full {
                buf: Vec::new(),
                room,
            };
            assert_eq!(run(true, "", data, &mut out), Err(NoSpace), "{room}");
        }
        let mut out = Full {
            buf: Vec::new(),
            room: full,
        };
        assert_eq!(run(true, "", data, &mut out), Ok(()));
    }

    /// The header field is found whether or not the headers are
    /// rewritten, in the message header only, and kept in the file.
    #[test]
    fn tls_required_no_is_found_in_the_header_and_kept() {
        let rw = rw();
        let host = Host {
            hostname: "mx.box.test",
            mail_name: "tern",
            rewrite: &rw,
        };
        for rewrite_headers in [false, true] {
            let client = Client {
                helo: None,
                name: "localhost",
                addr: "127.0.0.1",
                tls: None,
                protocol: "ESMTP",
                rewrite_headers,
            };
            let cases: [(&[u8], bool); 4] = [
                (b"To: ops\r\nTLS-Required: No\r\n\r\nbody\r\n", true),
                (b"To: ops\r\ntls-required:\r\n  no (report)\r\n\r\n", true),
                (b"To: ops\r\n\r\nTLS-Required: No\r\n", false),
                (b"TLS-Required: Yes\r\n\r\n", false),
            ];
            for (data, want) in cases {
                let mut out: Vec<u8> = Vec::new();
                let Ok(mut m) = Message::start(
                    host,
                    &client,
                    "",
                    None,
                    Rewrites::default(),
                    "QID",
                    NOW,
                    &mut out,
                );
                for c in data.chunks(3) {
                    let Ok(()) = m.write(c, &mut out);
                }
                let Ok(()) = m.finish(&mut out);
                assert_eq!(m.tls_required_no(), want, "{rewrite_headers} {data:?}");
                // Kept as the client sent it.
                let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
                assert!(text.contains("tls-required:"), "{text}");
            }
        }
    }

    #[test]
    fn envelope_rewrite_keeps_what_the_client_gave() {
        let env = Envelope::rewrite(&rw(), "me@host.example.org", &["ops".into()]);
        assert_eq!(env.sender, "me@example.org");
        let r = &env.recipients[0];
        assert_eq!(
            (r.address.as_str(), r.orcpt.as_deref()),
            ("ops@box.test", Some("rfc822;ops"))
        );
        assert_eq!(env.single_recipient.as_deref(), Some("ops"));
        assert_eq!(env.rewrites.0.len(), 2);
        let env = Envelope::rewrite(&rw(), "", &["a@x.test".into(), "b@x.test".into()]);
        assert_eq!(env.sender, "");
        assert!(env.recipients.iter().all(|r| r.orcpt.is_none()));
        assert_eq!(env.single_recipient, None);
        assert_eq!(env.rewrites.0.len(), 0);
    }
}
