//! The envelope at the head of every queue file: a short block of text
//! lines, then the raw message. Sans-I/O: this module only encodes and
//! parses bytes.
//!
//! ```text
//! tern-queue-file 1
//! id 5A3B1000C2F7
//! arrival 1700000000
//! size 00000000000000001234
//! flags bounce
//! client host.example[192.0.2.1]
//! sender user@example.com
//! rcpt a@example.org<TAB>rfc822;a@example.org
//! rcpt b@example.org
//! end
//! <message bytes, CRLF line ends>
//! ```
//!
//! `size` is fixed-width so the writer can patch it in place once the body
//! is complete (the file is still unpublished then). Every value is checked
//! on the way in (no control characters) so the line format cannot be
//! confused by an address or a client name.

use std::fmt;

/// First line of every queue file; the number is the format version.
pub const MAGIC: &[u8] = b"tern-queue-file 1\n";
/// Width of the zero-padded `size` field, so it can be rewritten in place.
pub const SIZE_WIDTH: usize = 20;
/// Largest envelope block accepted by the parser (bytes up to and including `end\n`).
pub const MAX_ENVELOPE: usize = 1024 * 1024;
/// Most recipients one queue file may carry.
pub const MAX_RECIPIENTS: usize = 10_000;
/// Longest address (sender, recipient or ORCPT) accepted.
pub const MAX_ADDRESS: usize = 998;

/// Per-message flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// The message is a bounce (DSN) itself: never bounce it again.
    pub bounce: bool,
}

/// One envelope recipient as accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address to deliver to (no angle brackets).
    pub address: String,
    /// The DSN original recipient (`ORCPT`, e.g. `rfc822;user@example.org`), if given.
    pub orcpt: Option<String>,
}

impl Recipient {
    /// A recipient without ORCPT.
    pub fn new(address: &str) -> Recipient {
        Recipient {
            address: address.to_string(),
            orcpt: None,
        }
    }
}

/// Envelope of a queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Queue ID (uppercase hex, 12 characters or more).
    pub id: String,
    /// Arrival time, seconds since the Unix epoch.
    pub arrival: u64,
    /// Size of the message (headers + body) after the envelope, in bytes.
    pub size: u64,
    /// Per-message flags.
    pub flags: Flags,
    /// Client description for logs (`host[ip]`, or `local` for sendmail).
    pub client: String,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// Envelope recipients, in the order they were accepted.
    pub recipients: Vec<Recipient>,
}

/// What went wrong parsing an envelope; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError {
    /// Line of the envelope block where the problem is (0 when not line-specific).
    pub line: usize,
    /// The problem.
    pub kind: EnvelopeErrorKind,
}

/// Kinds of envelope parse errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeErrorKind {
    /// The file does not start with [`MAGIC`] (not a queue file, or another version).
    BadMagic,
    /// No `end` line within the bytes given (or within [`MAX_ENVELOPE`]).
    Incomplete,
    /// The envelope block exceeds [`MAX_ENVELOPE`].
    TooLarge,
    /// A line that is not `key value` with a known key.
    UnknownKey(String),
    /// A key that may appear once appears twice.
    Duplicate(&'static str),
    /// A required key is missing.
    Missing(&'static str),
    /// A value is malformed (what, and why).
    BadValue(&'static str, &'static str),
    /// More than [`MAX_RECIPIENTS`] recipients.
    TooManyRecipients,
    /// No recipients at all.
    NoRecipients,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "envelope line {}: ", self.line)?;
        } else {
            write!(f, "envelope: ")?;
        }
        match &self.kind {
            EnvelopeErrorKind::BadMagic => write!(f, "not a tern queue file (bad first line)"),
            EnvelopeErrorKind::Incomplete => write!(f, "truncated: no \"end\" line"),
            EnvelopeErrorKind::TooLarge => write!(f, "envelope larger than {MAX_ENVELOPE} bytes"),
            EnvelopeErrorKind::UnknownKey(k) => write!(f, "unknown record \"{k}\""),
            EnvelopeErrorKind::Duplicate(k) => write!(f, "duplicate \"{k}\" record"),
            EnvelopeErrorKind::Missing(k) => write!(f, "missing \"{k}\" record"),
            EnvelopeErrorKind::BadValue(k, why) => write!(f, "bad \"{k}\" value: {why}"),
            EnvelopeErrorKind::TooManyRecipients => {
                write!(f, "more than {MAX_RECIPIENTS} recipients")
            }
            EnvelopeErrorKind::NoRecipients => write!(f, "no recipients"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// Why a value cannot go into an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// Which field (`sender`, `recipient`, `orcpt`, `id`).
    pub field: &'static str,
    /// The reason.
    pub reason: &'static str,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ValueError {}

/// Checks an address for the envelope: bounded, no control characters, no
/// spaces outside a quoted local part (SMTP allows none elsewhere).
pub fn check_address(field: &'static str, a: &str, allow_empty: bool) -> Result<(), ValueError> {
    if a.is_empty() && !allow_empty {
        return Err(ValueError {
            field,
            reason: "empty",
        });
    }
    if a.len() > MAX_ADDRESS {
        return Err(ValueError {
            field,
            reason: "too long",
        });
    }
    if a.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(ValueError {
            field,
            reason: "control character",
        });
    }
    let mut in_quote = false;
    let mut escaped = false;
    for b in a.bytes() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b' ' if !in_quote => {
                return Err(ValueError {
                    field,
                    reason: "space outside quotes",
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Replaces control characters so free text (client names, errors) stays on one line.
pub fn sanitize_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// Encodes the envelope block; `size` is written as zeros-padded
/// [`SIZE_WIDTH`] digits. Returns the block and the byte offset of the size
/// digits (for patching in place).
pub fn encode(env: &Envelope) -> Result<(Vec<u8>, usize), ValueError> {
    check_id(&env.id)?;
    check_address("sender", &env.sender, true)?;
    if env.recipients.is_empty() {
        return Err(ValueError {
            field: "recipient",
            reason: "no recipients",
        });
    }
    if env.recipients.len() > MAX_RECIPIENTS {
        return Err(ValueError {
            field: "recipient",
            reason: "too many recipients",
        });
    }
    let mut out = Vec::with_capacity(128 + env.recipients.len() * 40);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(format!("id {}\narrival {}\nsize ", env.id, env.arrival).as_bytes());
    let size_at = out.len();
    out.extend_from_slice(format!("{:0width$}\n", env.size, width = SIZE_WIDTH).as_bytes());
    if env.flags.bounce {
        out.extend_from_slice(b"flags bounce\n");
    }
    out.extend_from_slice(b"client ");
    out.extend_from_slice(sanitize_text(&env.client, 512).as_bytes());
    out.extend_from_slice(b"\nsender ");
    out.extend_from_slice(env.sender.as_bytes());
    out.push(b'\n');
    for r in &env.recipients {
        check_address("recipient", &r.address, false)?;
        out.extend_from_slice(b"rcpt ");
        out.extend_from_slice(r.address.as_bytes());
        if let Some(o) = &r.orcpt {
            check_address("orcpt", o, false)?;
            out.push(b'\t');
            out.extend_from_slice(o.as_bytes());
        }
        out.push(b'\n');
    }
    out.extend_from_slice(b"end\n");
    Ok((out, size_at))
}

/// True for a syntactically valid queue ID: 12 to 24 uppercase hex digits.
pub fn is_queue_id(s: &str) -> bool {
    (12..=24).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

fn check_id(id: &str) -> Result<(), ValueError> {
    if is_queue_id(id) {
        Ok(())
    } else {
        Err(ValueError {
            field: "id",
            reason: "not 12-24 uppercase hex digits",
        })
    }
}

/// Parses the envelope block at the start of `buf`. Returns the envelope and
/// the length of the block (the message starts there). `Incomplete` means
/// more bytes are needed (up to [`MAX_ENVELOPE`]).
pub fn parse(buf: &[u8]) -> Result<(Envelope, usize), EnvelopeError> {
    let err = |line, kind| EnvelopeError { line, kind };
    if buf.len() < MAGIC.len() {
        if MAGIC.starts_with(buf) {
            return Err(err(1, EnvelopeErrorKind::Incomplete));
        }
        return Err(err(1, EnvelopeErrorKind::BadMagic));
    }
    if &buf[..MAGIC.len()] != MAGIC {
        return Err(err(1, EnvelopeErrorKind::BadMagic));
    }
    let mut pos = MAGIC.len();
    let mut lineno = 1;
    let mut id = None;
    let mut arrival = None;
    let mut size = None;
    let mut flags = None;
    let mut client = None;
    let mut sender = None;
    let mut recipients = Vec::new();
    loop {
        lineno += 1;
        let rest = buf.get(pos..).unwrap_or(&[]);
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if buf.len() >= MAX_ENVELOPE {
                return Err(err(lineno, EnvelopeErrorKind::TooLarge));
            }
            return Err(err(lineno, EnvelopeErrorKind::Incomplete));
        };
        let line = &rest[..nl];
        pos += nl + 1;
        if pos > MAX_ENVELOPE {
            return Err(err(lineno, EnvelopeErrorKind::TooLarge));
        }
        if line == b"end" {
            break;
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| err(lineno, EnvelopeErrorKind::BadValue("line", "not UTF-8")))?;
        let (key, value) = text.split_once(' ').unwrap_or((text, ""));
        let bad =
            |k: &'static str, why: &'static str| err(lineno, EnvelopeErrorKind::BadValue(k, why));
        match key {
            "id" => {
                if id.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("id")));
                }
                if !is_queue_id(value) {
                    return Err(bad("id", "not 12-24 uppercase hex digits"));
                }
                id = Some(value.to_string());
            }
            "arrival" => {
                if arrival.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("arrival")));
                }
                arrival = Some(parse_u64(value).ok_or_else(|| bad("arrival", "not a number"))?);
            }
            "size" => {
                if size.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("size")));
                }
                if value.len() != SIZE_WIDTH {
                    return Err(bad("size", "not 20 digits"));
                }
                size = Some(parse_u64(value).ok_or_else(|| bad("size", "not a number"))?);
            }
            "flags" => {
                if flags.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("flags")));
                }
                let mut f = Flags::default();
                for word in value.split(' ').filter(|w| !w.is_empty()) {
                    match word {
                        "bounce" => f.bounce = true,
                        _ => return Err(bad("flags", "unknown flag")),
                    }
                }
                flags = Some(f);
            }
            "client" => {
                if client.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("client")));
                }
                if value.chars().any(|c| c.is_control()) {
                    return Err(bad("client", "control character"));
                }
                client = Some(value.to_string());
            }
            "sender" => {
                if sender.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("sender")));
                }
                check_address("sender", value, true).map_err(|e| bad("sender", e.reason))?;
                sender = Some(value.to_string());
            }
            "rcpt" => {
                if recipients.len() >= MAX_RECIPIENTS {
                    return Err(err(lineno, EnvelopeErrorKind::TooManyRecipients));
                }
                let (addr, orcpt) = match value.split_once('\t') {
                    Some((a, o)) => (a, Some(o)),
                    None => (value, None),
                };
                check_address("rcpt", addr, false).map_err(|e| bad("rcpt", e.reason))?;
                if let Some(o) = orcpt {
                    check_address("orcpt", o, false).map_err(|e| bad("orcpt", e.reason))?;
                }
                recipients.push(Recipient {
                    address: addr.to_string(),
                    orcpt: orcpt.map(str::to_string),
                });
            }
            _ => {
                return Err(err(
                    lineno,
                    EnvelopeErrorKind::UnknownKey(sanitize_text(key, 40)),
                ))
            }
        }
    }
    let missing = |k| err(0, EnvelopeErrorKind::Missing(k));
    if recipients.is_empty() {
        return Err(err(0, EnvelopeErrorKind::NoRecipients));
    }
    Ok((
        Envelope {
            id: id.ok_or_else(|| missing("id"))?,
            arrival: arrival.ok_or_else(|| missing("arrival"))?,
            size: size.ok_or_else(|| missing("size"))?,
            flags: flags.unwrap_or_default(),
            client: client.ok_or_else(|| missing("client"))?,
            sender: sender.ok_or_else(|| missing("sender"))?,
            recipients,
        },
        pos,
    ))
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > SIZE_WIDTH || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            id: "0A1B2C3D4E5F".into(),
            arrival: 1_700_000_000,
            size: 1234,
            flags: Flags { bounce: true },
            client: "host.example[192.0.2.1]".into(),
            sender: "".into(),
            recipients: vec![
                Recipient {
                    address: "a@example.org".into(),
                    orcpt: Some("rfc822;A@example.org".into()),
                },
                Recipient::new("\"x y\"@example.org"),
            ],
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        let (bytes, size_at) = encode(&e).unwrap();
        assert_eq!(
            &bytes[size_at..size_at + SIZE_WIDTH],
            b"00000000000000001234"
        );
        let mut with_body = bytes.clone();
        with_body.extend_from_slice(b"Subject: x\r\n\r\nbody\r\n");
        let (p, len) = parse(&with_body).unwrap();
        assert_eq!(p, e);
        assert_eq!(len, bytes.len());
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let (bytes, _) = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            let e = parse(&bytes[..n]).unwrap_err();
            assert_eq!(e.kind, EnvelopeErrorKind::Incomplete, "prefix {n}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let (bytes, _) = encode(&sample()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let cases: &[(&str, &str, usize)] = &[
            ("arrival 1700000000", "arrival x", 3),
            ("id 0A1B2C3D4E5F", "id 0a1b", 2),
            ("flags bounce", "flags bounce weird", 5),
            ("sender \n", "sender a b\n", 7),
            ("rcpt a@example.org", "color a@example.org", 8),
        ];
        for (from, to, line) in cases {
            let bad = text.replacen(from, to, 1);
            let e = parse(bad.as_bytes()).unwrap_err();
            assert_eq!(e.line, *line, "{to}: {e}");
        }
        let e = parse(b"From x\n").unwrap_err();
        assert_eq!(e.kind, EnvelopeErrorKind::BadMagic);
        let no_id = text.replacen("id 0A1B2C3D4E5F\n", "", 1);
        assert_eq!(
            parse(no_id.as_bytes()).unwrap_err().kind,
            EnvelopeErrorKind::Missing("id")
        );
        let dup = text.replacen("client", "client x\nclient", 1);
        assert_eq!(
            parse(dup.as_bytes()).unwrap_err().kind,
            EnvelopeErrorKind::Duplicate("client")
        );
    }

    #[test]
    fn rejects_unsafe_values() {
        let mut e = sample();
        e.recipients[0].address = "a@b\nrcpt evil@x".into();
        assert!(encode(&e).is_err());
        let mut e = sample();
        e.sender = "a b@c".into();
        assert!(encode(&e).is_err());
        let mut e = sample();
        e.client = "evil\nrcpt x@y".into();
        let (bytes, _) = encode(&e).unwrap();
        assert_eq!(parse(&bytes).unwrap().0.recipients.len(), 2);
    }
}
