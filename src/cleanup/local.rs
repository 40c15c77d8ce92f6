//! Local submissions: `sendmail` run by a user who may write the spool,
//! and the daemon's pickup for a maildrop file (the same code, for the
//! file's owner).
//!
//! The header block is read whole first, bounded by `header_size_limit`:
//! `-t` takes recipients from it, and they must be in the envelope before
//! the queue file exists. Then the queue file gets the `Received:` header,
//! the header block (address headers rewritten, `Bcc:` dropped, missing
//! `From:`, `Date:` and `Message-Id:` added) and the body, streamed
//! through a fixed buffer with local line ends made CRLF. The log lines
//! (`pickup: ID: uid=`, the rewrites, `qmgr: ID: from=`) come once the
//! message is committed.

use super::headers::{self, Header};
use super::{Error, ErrorKind, Invoker, LineEnds, Rewrites, Settings};
use crate::local::Side;
use crate::queue::envelope::{self, Recipient};
use crate::queue::{clock, NewMessage, Spool};
use std::io::{BufRead, BufReader, Read};

/// A message from a local user as `sendmail`'s command line or a maildrop
/// file's envelope describe it.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// The envelope sender as given (`-f`; `<>` or empty for the null
    /// sender); `None`: the user's login name.
    pub sender: Option<String>,
    /// The full name for an added `From:` (`-F`); `None`: the password
    /// file's.
    pub full_name: Option<String>,
    /// Recipient address lists as given (command-line arguments).
    pub recipients: Vec<String>,
    /// Recipients also from `To:`, `Cc:` and `Bcc:` (or their `Resent-`
    /// forms, if any) (`-t`).
    pub extract: bool,
    /// A line with a lone `.` ends the message (no `-i`).
    pub dot_ends: bool,
}

/// Most header fields in one local message.
const MAX_HEADER_FIELDS: usize = 1000;

/// Local input is read through this much buffer.
const READ_BUF: usize = 8192;

/// Queues the message `who` submits (`sub`, the message from `input`) at
/// `now` into the spool under `settings.queue_directory`, and returns its
/// queue ID. Nothing is logged for a message that is not queued.
pub fn enqueue(
    settings: &Settings,
    sub: &Submission,
    who: &Invoker,
    now: u64,
    input: &mut dyn Read,
) -> Result<String, Error> {
    let mut input = BufReader::with_capacity(READ_BUF, input);
    let mut msg = Message::read(settings, sub, who, &mut input)?;
    let spool = Spool::open(&settings.queue_directory)
        .map_err(|e| Error::new(ErrorKind::Temporary, format!("cannot open queue: {e}")))?;
    let mut inc = spool.create(&NewMessage {
        sender: &msg.sender,
        recipients: &msg.recipients,
        arrival: now,
        client: "local",
        flags: crate::queue::Flags {
            tls_required_no: msg.tls_required_no,
            ..Default::default()
        },
        size_limit: settings.message_size_limit,
        deferred: false,
    })?;
    let id = inc.id().to_string();
    let nrcpt = msg.recipients.len();
    // The envelope is in the queue file now.
    msg.recipients = Vec::new();
    msg.write(settings, sub, who, &id, now, &mut input, &mut inc)?;
    let size = inc.size();
    inc.commit()?;
    log::info!(target: "pickup", "{id}: uid={} from=<{}>", who.uid, super::one_line(&msg.submitted));
    msg.rewrites.log(&id);
    super::log_queued(&id, &msg.sender, size, nrcpt);
    Ok(id)
}

/// A local message once its header block is read: the envelope,
/// rewritten and checked, and the header block, waiting for a queue file.
struct Message {
    /// The sender as submitted, before any rewriting: what Postfix's
    /// pickup logs (`from=<root>`); qmgr's line shows the rewritten one.
    submitted: String,
    sender: String,
    recipients: Vec<Recipient>,
    /// Envelope rewrites, then header rewrites as they are written.
    rewrites: Rewrites,
    block: Vec<u8>,
    fields: Vec<Header>,
    /// A first line that was no header field: the body starts there.
    first_body: Vec<u8>,
    /// A lone `.` ended the input inside the header block.
    ended_by_dot: bool,
    /// The header block has `TLS-Required: No` (RFC 8689 §5).
    tls_required_no: bool,
}

impl Message {
    /// Reads the header block from `input` and builds the envelope.
    fn read(
        settings: &Settings,
        sub: &Submission,
        who: &Invoker,
        input: &mut impl BufRead,
    ) -> Result<Message, Error> {
        let mut rewrites = Rewrites::default();
        let mut rewrite = |what: &'static str, a: &str, side: Side| -> String {
            let out = match &settings.rewrite {
                Some(rw) => rw.rewrite(a, side),
                None => qualify(a, &settings.myorigin),
            };
            rewrites.note(what, a, &out);
            out
        };
        let submitted = match &sub.sender {
            Some(s) => {
                let s = s.trim();
                s.strip_prefix('<')
                    .and_then(|x| x.strip_suffix('>'))
                    .unwrap_or(s)
                    .to_string()
            }
            None => who.login.clone(),
        };
        let sender = match &sub.sender {
            Some(_) => rewrite("sender", &submitted, Side::Sender),
            None => match &settings.rewrite {
                Some(_) => rewrite("sender", &who.login, Side::Sender),
                None => format!("{}@{}", who.login, settings.myorigin),
            },
        };
        envelope::check_address("sender", &sender, true).map_err(|e| {
            Error::new(
                ErrorKind::Usage,
                format!("bad sender address <{sender}>: {}", e.reason),
            )
        })?;

        // The header block, bounded.
        let mut block: Vec<u8> = Vec::new();
        let mut first_body: Vec<u8> = Vec::new();
        let mut ended_by_dot = false;
        let limit = settings.header_size_limit;
        let mut first = true;
        loop {
            let mut line = Vec::new();
            if !read_line(input, &mut line, limit.saturating_sub(block.len()))? {
                break;
            }
            if first && line.starts_with(b"From ") {
                first = false;
                continue; // mbox "From " line, as Postfix strips it
            }
            first = false;
            if sub.dot_ends && is_lone_dot(&line) {
                ended_by_dot = true;
                break;
            }
            if is_blank(&line) {
                break;
            }
            if headers::is_continuation(&line) && !block.is_empty()
                || headers::field_name_len(&line).is_some()
            {
                block.extend_from_slice(&line);
            } else {
                first_body = line; // no blank line: the body starts here
                break;
            }
        }
        let fields = headers::parse(&block, MAX_HEADER_FIELDS)
            .map_err(|e| Error::new(ErrorKind::Data, e.to_string()))?;

        // Recipients: arguments, plus To/Cc/Bcc with -t (Resent-* if present).
        let mut rcpts: Vec<String> = Vec::new();
        for a in &sub.recipients {
            headers::addresses(a.as_bytes(), &mut rcpts, settings.recipient_limit).map_err(
                |e| {
                    Error::new(
                        ErrorKind::Address,
                        format!("bad recipient address \"{a}\": {e}"),
                    )
                },
            )?;
        }
        if sub.extract {
            let resent = fields.iter().any(|h| {
                block
                    .get(h.name.clone())
                    .is_some_and(|n| n.len() > 7 && n[..7].eq_ignore_ascii_case(b"resent-"))
            });
            let names: &[&str] = if resent {
                &["resent-to", "resent-cc", "resent-bcc"]
            } else {
                &["to", "cc", "bcc"]
            };
            for h in fields
                .iter()
                .filter(|h| names.iter().any(|n| h.is(&block, n)))
            {
                let value = block.get(h.value.clone()).unwrap_or(&[]);
                headers::addresses(value, &mut rcpts, settings.recipient_limit).map_err(|e| {
                    Error::new(
                        ErrorKind::Data,
                        format!(
                            "bad address in {} header: {e}",
                            String::from_utf8_lossy(block.get(h.name.clone()).unwrap_or(&[]))
                        ),
                    )
                })?;
            }
        }
        if rcpts.is_empty() {
            return Err(if sub.extract {
                Error::new(
                    ErrorKind::Data,
                    "No recipient addresses found in message header",
                )
            } else {
                Error::new(
                    ErrorKind::Usage,
                    "Recipient addresses must be specified on the command line or via the -t option",
                )
            });
        }
        // Unlike an SMTP client's, these come from headers and arguments
        // nobody checked yet: each is checked, and duplicates are dropped.
        let mut recipients = Vec::with_capacity(rcpts.len());
        for r in &rcpts {
            let q = rewrite("recipient", r, Side::Recipient);
            envelope::check_address("recipient", &q, false).map_err(|e| {
                Error::new(
                    ErrorKind::Address,
                    format!("bad recipient address <{q}>: {}", e.reason),
                )
            })?;
            if !recipients.iter().any(|x: &Recipient| x.address == q) {
                let mut rc = Recipient::new(&q);
                // The address as given, for DSNs and local(8)'s orig_to=.
                if q != *r && envelope::check_address("orcpt", r, false).is_ok() {
                    rc.orcpt = Some(format!("rfc822;{r}"));
                }
                recipients.push(rc);
            }
        }
        let tls_required_no = super::tls_required::in_header_block(&block, &fields);
        Ok(Message {
            submitted,
            sender,
            recipients,
            rewrites,
            block,
            fields,
            tls_required_no,
            first_body,
            ended_by_dot,
        })
    }

    /// Writes the message of queue file `id` into `out`: `Received:`, the
    /// header block and the rest of `input`. Header rewrites are added to
    /// `self.rewrites`.
    #[allow(clippy::too_many_arguments)]
    fn write<W: embedded_io::Write>(
        &mut self,
        settings: &Settings,
        sub: &Submission,
        who: &Invoker,
        id: &str,
        now: u64,
        input: &mut impl BufRead,
        out: &mut W,
    ) -> Result<(), Error>
    where
        Error: From<W::Error>,
    {
        let date = clock::local(now);
        let mut w = Converter {
            out,
            conv: LineEnds::new(false),
            buf: [0u8; CONVERT_BUF],
        };
        w.raw(
            crate::smtp::received::local_received_header(
                &settings.myhostname,
                &settings.mail_name,
                who.uid,
                id,
                &date.rfc5322(),
            )
            .as_bytes(),
        )?;
        let block = &self.block;
        for h in &self.fields {
            if h.is(block, "bcc") || h.is(block, "resent-bcc") {
                continue;
            }
            let name = block.get(h.name.clone()).unwrap_or(&[]);
            let value = block.get(h.value.clone()).unwrap_or(&[]);
            let new_value = match (&settings.rewrite, std::str::from_utf8(name)) {
                (Some(rw), Ok(n)) => super::rewrite_header(rw, n, value).map(|v| (n, v)),
                _ => None,
            };
            match new_value {
                Some((n, (old, new))) => {
                    w.write(format!("{n}:{new}\r\n").as_bytes())?;
                    self.rewrites
                        .note("header", &format!("{n}:{old}"), &format!("{n}:{new}"));
                }
                None => {
                    w.write(block.get(h.raw.clone()).unwrap_or(&[]))?;
                }
            }
            w.finish()?;
        }
        let has = |name: &str| self.fields.iter().any(|h| h.is(block, name));
        let name = sub.full_name.as_deref().or(who.full_name.as_deref());
        let addr = if self.sender.is_empty() {
            format!("{}@{}", who.login, settings.myorigin)
        } else {
            self.sender.clone()
        };
        let from = match name {
            Some(n) if !n.trim().is_empty() => {
                format!("From: {} <{addr}>\r\n", quote_phrase(n.trim()))
            }
            _ => format!("From: {addr}\r\n"),
        };
        let added = super::added(from, &date, id, &settings.myhostname);
        if !has("from") {
            w.raw(added.from.as_bytes())?;
        }
        if !has("date") {
            w.raw(added.date.as_bytes())?;
        }
        if !has("message-id") {
            w.raw(added.message_id.as_bytes())?;
        }
        w.raw(b"\r\n")?;

        // The body, streamed.
        w.conv = LineEnds::new(sub.dot_ends);
        if !self.ended_by_dot && !w.write(&self.first_body)? {
            loop {
                let chunk = input.fill_buf().map_err(|e| {
                    Error::new(ErrorKind::Data, format!("error reading input: {e}"))
                })?;
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len();
                let end = w.write(chunk)?;
                input.consume(n);
                if end {
                    break;
                }
            }
        }
        w.finish()
    }
}

fn qualify(addr: &str, origin: &str) -> String {
    if addr.contains('@') || addr.is_empty() {
        addr.to_string()
    } else {
        format!("{addr}@{origin}")
    }
}

/// Reads one line (through LF) into `buf`, never beyond `max` bytes total;
/// false at the end of the input.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> Result<bool, Error> {
    let start = buf.len();
    loop {
        let avail = r
            .fill_buf()
            .map_err(|e| Error::new(ErrorKind::Data, format!("error reading input: {e}")))?;
        if avail.is_empty() {
            return Ok(buf.len() > start);
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(n) => (n + 1, true),
            None => (avail.len(), false),
        };
        if buf.len() + take > max {
            return Err(Error::new(
                ErrorKind::Data,
                format!("message header exceeds header_size_limit ({max} bytes)"),
            ));
        }
        buf.extend_from_slice(&avail[..take]);
        r.consume(take);
        if done {
            return Ok(true);
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

fn is_lone_dot(line: &[u8]) -> bool {
    line == b".\n" || line == b".\r\n"
}

/// Output buffer of the line-end conversion.
const CONVERT_BUF: usize = 4096;

/// Local input on its way into the queue file, line ends made CRLF
/// through a fixed buffer.
struct Converter<'w, W> {
    out: &'w mut W,
    conv: LineEnds,
    buf: [u8; CONVERT_BUF],
}

impl<W: embedded_io::Write> Converter<'_, W>
where
    Error: From<W::Error>,
{
    /// Converts and writes; returns true if a lone dot ended the input.
    fn write(&mut self, mut data: &[u8]) -> Result<bool, Error> {
        while !data.is_empty() {
            let (used, made, end) = self.conv.feed(data, &mut self.buf);
            self.out.write_all(&self.buf[..made])?;
            data = &data[used..];
            if end {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn raw(&mut self, data: &[u8]) -> Result<(), Error> {
        Ok(self.out.write_all(data)?)
    }

    fn finish(&mut self) -> Result<(), Error> {
        let mut tail = [0u8; 4];
        let n = self.conv.finish(&mut tail);
        self.raw(&tail[..n])
    }
}

fn quote_phrase(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    if clean
        .chars()
        .all(|c| c.is_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c))
    {
        clean
    } else {
        let mut s = String::from("\"");
        for c in clean.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::Rewriter;

    fn who() -> Invoker {
        Invoker {
            uid: 1000,
            login: "backup".into(),
            full_name: Some("Backup Job".into()),
        }
    }

    fn settings(rewrite: bool) -> Settings {
        let mut s = Settings::new("/nonexistent".into(), "box.test", "box.test");
        if rewrite {
            s.rewrite = Some(Rewriter {
                myorigin: "box.test".into(),
                local_domains: Vec::new(),
                append_at_myorigin: true,
                sender_canonical: Vec::new(),
                recipient_canonical: Vec::new(),
                masquerade_domains: vec!["example.org".into()],
            });
        }
        s
    }

    /// Runs cleanup for a local submission into memory: (envelope
    /// recipients with ORCPT, message bytes, rewrites noted).
    fn run(
        s: &Settings,
        sub: &Submission,
        mut input: &[u8],
    ) -> (Vec<(String, Option<String>)>, String, usize) {
        let mut msg = Message::read(s, sub, &who(), &mut input).unwrap();
        let rcpts = msg
            .recipients
            .iter()
            .map(|r| (r.address.clone(), r.orcpt.clone()))
            .collect();
        let mut out: Vec<u8> = Vec::new();
        msg.write(s, sub, &who(), "QID", 1_700_766_169, &mut input, &mut out)
            .unwrap();
        (rcpts, String::from_utf8(out).unwrap(), msg.rewrites.0.len())
    }

    #[test]
    fn local_message_into_memory() {
        let date = clock::local(1_700_766_169);
        let sub = Submission {
            extract: true,
            dot_ends: true,
            ..Default::default()
        };
        let input =
            b"From mbox line\nTo: ops, a@x.test\nBcc: ops\nSubject: hi\n\nbody\r\n.\nnot read\n";
        let (rcpts, text, rewrites) = run(&settings(false), &sub, input);
        assert_eq!(
            rcpts,
            [
                ("ops@box.test".into(), Some("rfc822;ops".into())),
                ("a@x.test".into(), None)
            ],
            "qualified, de-duplicated"
        );
        // Both `ops` (To: and Bcc:), as Postfix logs them; no header is
        // rewritten without a Rewriter.
        assert_eq!(rewrites, 2);
        let d = date.rfc5322();
        assert_eq!(
            text,
            format!(
                "Received: by box.test (tern, from userid 1000)\r\n\tid QID; {d}\r\n\
                 To: ops, a@x.test\r\nSubject: hi\r\n\
                 From: Backup Job <backup@box.test>\r\nDate: {d}\r\n\
                 Message-Id: {}\r\n\r\nbody\r\n",
                crate::cleanup::fixer::message_id(&date, "QID", "box.test")
            )
        );
    }

    #[test]
    fn local_headers_are_rewritten_and_kept_when_present() {
        let sub = Submission {
            sender: Some("<>".into()),
            recipients: vec!["u@mail.example.org".into()],
            ..Default::default()
        };
        let input =
            b"From: me\nReply-To: r@host.example.org\nDate: today\nMessage-ID: <m@x>\nno blank line\n.\n";
        let (rcpts, text, rewrites) = run(&settings(true), &sub, input);
        // Masquerading is for headers and the sender, not recipients.
        assert_eq!(rcpts, [("u@mail.example.org".into(), None)]);
        assert_eq!(rewrites, 2);
        assert!(
            text.ends_with(
                "From: me@box.test\r\nReply-To: r@example.org\r\nDate: today\r\n\
                 Message-ID: <m@x>\r\n\r\nno blank line\r\n.\r\n"
            ),
            "{text}"
        );
    }

    /// sendmail and the pickup: the header block decides, the body does
    /// not; the field stays in the message.
    #[test]
    fn local_tls_required_no_comes_from_the_header_block() {
        let sub = Submission {
            recipients: vec!["ops@x.test".into()],
            ..Default::default()
        };
        let s = settings(false);
        let read = |mut input: &[u8]| {
            Message::read(&s, &sub, &who(), &mut input)
                .unwrap()
                .tls_required_no
        };
        assert!(read(
            b"Subject: r
TLS-Required: No

body
"
        ));
        assert!(read(
            b"TLS-Required:
	NO (a report)
Subject: r

"
        ));
        assert!(!read(
            b"Subject: r

TLS-Required: No
"
        ));
        assert!(!read(
            b"TLS-Required: No
TLS-Required: No

"
        ));
        let (_, text, _) = run(
            &s,
            &sub,
            b"TLS-Required: No

body
",
        );
        assert!(text.contains("\r\nTLS-Required: No\r\n"), "{text}");
    }

    #[test]
    fn local_errors_have_their_kind() {
        let s = settings(false);
        let err = |sub: &Submission, mut input: &[u8]| {
            Message::read(&s, sub, &who(), &mut input)
                .err()
                .map(|e| e.kind)
        };
        let none = Submission::default();
        assert_eq!(err(&none, b"x\n"), Some(ErrorKind::Usage));
        let t = Submission {
            extract: true,
            ..Default::default()
        };
        assert_eq!(err(&t, b"Subject: x\n\n"), Some(ErrorKind::Data));
        assert_eq!(err(&t, b"To: <a@b\n\n"), Some(ErrorKind::Data));
        let bad = Submission {
            recipients: vec!["<a@b".into()],
            ..Default::default()
        };
        assert_eq!(err(&bad, b"x\n"), Some(ErrorKind::Address));
    }
}
