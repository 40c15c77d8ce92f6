//! The messages between the daemon and the local delivery helper
//! ([`super::helper`]): a request to write one message into a system
//! user's Maildir, and the reply. Sans-I/O: values in, bytes out, and
//! back; the queue file itself travels as a file descriptor next to the
//! request bytes (SCM_RIGHTS), never by name.
//!
//! Format (big-endian integers): a kind byte, a `u32` sequence number,
//! then the fields, each string or byte field as a `u32` length and the
//! bytes. Request `Q`: user, mailbox (relative to the user's home), host
//! (for Maildir file names), prepended header bytes, `u64` offset and
//! `u64` length of the message in the file. Replies: `O` delivered
//! (path), `T` temporary failure (text), `P` permanent failure (text).

use std::fmt;

/// Largest encoded message either way (one SOCK_SEQPACKET datagram).
pub const MAX_MESSAGE: usize = 32 * 1024;
/// Longest user name.
pub const MAX_USER: usize = 256;
/// Longest mailbox path, host name and reply text.
pub const MAX_TEXT: usize = 4096;
/// Most prepended header bytes.
pub const MAX_PREPEND: usize = 16 * 1024;

/// "Write this message into `~user/mailbox` as `user`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Matches the reply to the request.
    pub seq: u32,
    /// Login name of the recipient (looked up again by the helper).
    pub user: String,
    /// Maildir below the user's home (`home_mailbox`), ending in `/`.
    pub mailbox: String,
    /// `myhostname`, for the Maildir file name.
    pub host: String,
    /// Header lines put on top (`Return-Path:`, `Delivered-To:`, ...), LF ends.
    pub prepend: Vec<u8>,
    /// Where the message starts in the passed file.
    pub offset: u64,
    /// How many bytes of the file are the message.
    pub len: u64,
}

/// How a delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written; the path of the file in `new/`.
    Delivered(String),
    /// Failed; worth a retry (`4.x.x`).
    Temporary(String),
    /// Failed for good (`5.x.x`).
    Permanent(String),
}

/// The helper's answer to the request with the same `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request's sequence number.
    pub seq: u32,
    /// What happened.
    pub outcome: Outcome,
}

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// No bytes at all.
    Empty,
    /// Longer than [`MAX_MESSAGE`].
    TooLarge(usize),
    /// The kind byte is not one this side reads.
    UnknownKind(u8),
    /// The message ends inside this field.
    Truncated(&'static str),
    /// This field is longer than its limit.
    FieldTooLong(&'static str, usize),
    /// This text field is not UTF-8.
    NotUtf8(&'static str),
    /// This text field contains a NUL byte or is empty where it must not be.
    BadText(&'static str),
    /// Bytes after the last field.
    Trailing(usize),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Empty => write!(f, "empty message"),
            WireError::TooLarge(n) => write!(f, "message of {n} bytes exceeds {MAX_MESSAGE}"),
            WireError::UnknownKind(k) => write!(f, "unknown message kind 0x{k:02x}"),
            WireError::Truncated(what) => write!(f, "message ends inside {what}"),
            WireError::FieldTooLong(what, n) => write!(f, "{what} of {n} bytes is too long"),
            WireError::NotUtf8(what) => write!(f, "{what} is not UTF-8"),
            WireError::BadText(what) => write!(f, "{what} is empty or contains NUL"),
            WireError::Trailing(n) => write!(f, "{n} bytes after the last field"),
        }
    }
}

impl std::error::Error for WireError {}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Callers keep every field below its limit (far below u32::MAX).
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Request {
    /// The request's bytes, or which field is over its limit.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        for (what, len, max) in [
            ("user", self.user.len(), MAX_USER),
            ("mailbox", self.mailbox.len(), MAX_TEXT),
            ("host", self.host.len(), MAX_TEXT),
            ("prepend", self.prepend.len(), MAX_PREPEND),
        ] {
            if len > max {
                return Err(WireError::FieldTooLong(what, len));
            }
        }
        let mut out = Vec::with_capacity(64 + self.prepend.len());
        out.push(b'Q');
        out.extend_from_slice(&self.seq.to_be_bytes());
        put_bytes(&mut out, self.user.as_bytes());
        put_bytes(&mut out, self.mailbox.as_bytes());
        put_bytes(&mut out, self.host.as_bytes());
        put_bytes(&mut out, &self.prepend);
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        Ok(out)
    }

    /// Parses a request.
    pub fn decode(b: &[u8]) -> Result<Request, WireError> {
        let mut r = Reader::new(b)?;
        match r.kind {
            b'Q' => {}
            k => return Err(WireError::UnknownKind(k)),
        }
        let req = Request {
            seq: r.seq,
            user: r.text("user", MAX_USER)?,
            mailbox: r.text("mailbox", MAX_TEXT)?,
            host: r.text("host", MAX_TEXT)?,
            prepend: r.bytes("prepend", MAX_PREPEND)?.to_vec(),
            offset: r.u64("offset")?,
            len: r.u64("length")?,
        };
        r.end()?;
        Ok(req)
    }
}

impl Reply {
    /// The reply's bytes; texts longer than [`MAX_TEXT`] are cut.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, text) = match &self.outcome {
            Outcome::Delivered(p) => (b'O', p),
            Outcome::Temporary(t) => (b'T', t),
            Outcome::Permanent(t) => (b'P', t),
        };
        let text = cut(text, MAX_TEXT);
        let mut out = Vec::with_capacity(9 + text.len());
        out.push(kind);
        out.extend_from_slice(&self.seq.to_be_bytes());
        put_bytes(&mut out, text.as_bytes());
        out
    }

    /// Parses a reply.
    pub fn decode(b: &[u8]) -> Result<Reply, WireError> {
        let mut r = Reader::new(b)?;
        let make: fn(String) -> Outcome = match r.kind {
            b'O' => Outcome::Delivered,
            b'T' => Outcome::Temporary,
            b'P' => Outcome::Permanent,
            k => return Err(WireError::UnknownKind(k)),
        };
        let text = String::from_utf8(r.bytes("text", MAX_TEXT)?.to_vec())
            .map_err(|_| WireError::NotUtf8("text"))?;
        let outcome = make(text);
        r.end()?;
        Ok(Reply {
            seq: r.seq,
            outcome,
        })
    }
}

struct Reader<'a> {
    rest: &'a [u8],
    kind: u8,
    seq: u32,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Result<Reader<'a>, WireError> {
        if b.len() > MAX_MESSAGE {
            return Err(WireError::TooLarge(b.len()));
        }
        let (&kind, rest) = b.split_first().ok_or(WireError::Empty)?;
        let mut r = Reader { rest, kind, seq: 0 };
        r.seq = u32::from_be_bytes(r.array("sequence number")?);
        Ok(r)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        if self.rest.len() < N {
            return Err(WireError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(N);
        self.rest = tail;
        let mut a = [0u8; N];
        a.copy_from_slice(head);
        Ok(a)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let n = u32::from_be_bytes(self.array(what)?) as usize;
        if n > max {
            return Err(WireError::FieldTooLong(what, n));
        }
        if self.rest.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn text(&mut self, what: &'static str, max: usize) -> Result<String, WireError> {
        let b = self.bytes(what, max)?;
        if b.is_empty() || b.contains(&0) {
            return Err(WireError::BadText(what));
        }
        String::from_utf8(b.to_vec()).map_err(|_| WireError::NotUtf8(what))
    }

    fn end(&self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::Trailing(self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            seq: 7,
            user: "alice".into(),
            mailbox: "Maildir/".into(),
            host: "box.test".into(),
            prepend: b"Return-Path: <a@b>\nDelivered-To: alice@box.test\n".to_vec(),
            offset: 1234,
            len: 1 << 33,
        }
    }

    #[test]
    fn round_trips() {
        let r = req();
        let b = r.encode().unwrap();
        assert_eq!(b[0], b'Q');
        assert_eq!(Request::decode(&b).unwrap(), r);
        for outcome in [
            Outcome::Delivered("/home/a/Maildir/new/1.M2P3Q4.h".into()),
            Outcome::Temporary("create directory /x: Permission denied".into()),
            Outcome::Permanent(String::new()),
        ] {
            let rep = Reply { seq: 9, outcome };
            assert_eq!(Reply::decode(&rep.encode()).unwrap(), rep);
        }
    }

    /// The fuzz target's property over every one-byte change of good
    /// messages: no panic, and what decodes encodes back to the same bytes.
    #[test]
    fn mutations_decode_or_fail_cleanly() {
        let good = [
            req().encode().unwrap(),
            Reply {
                seq: 3,
                outcome: Outcome::Temporary("x".into()),
            }
            .encode(),
        ];
        for g in &good {
            for i in 0..g.len() {
                for v in [0u8, 1, 0x7f, 0x80, 0xff, b'O', b'Q'] {
                    let mut m = g.clone();
                    m[i] = v;
                    if let Ok(r) = Request::decode(&m) {
                        assert_eq!(r.encode().unwrap(), m);
                    }
                    if let Ok(r) = Reply::decode(&m) {
                        assert_eq!(r.encode(), m);
                    }
                }
            }
        }
    }

    #[test]
    fn long_reply_text_is_cut_at_a_character() {
        let rep = Reply {
            seq: 1,
            outcome: Outcome::Temporary("é".repeat(MAX_TEXT)),
        };
        let back = Reply::decode(&rep.encode()).unwrap();
        let Outcome::Temporary(t) = back.outcome else {
            panic!("kind changed")
        };
        assert!(t.len() <= MAX_TEXT && t.len() >= MAX_TEXT - 1);
        assert!(t.chars().all(|c| c == 'é'));
    }

    #[test]
    fn errors() {
        let good = req().encode().unwrap();
        assert_eq!(Request::decode(&[]), Err(WireError::Empty));
        assert_eq!(
            Request::decode(b"Q\0\0"),
            Err(WireError::Truncated("sequence number"))
        );
        let mut k = good.clone();
        k[0] = b'O';
        assert_eq!(Request::decode(&k), Err(WireError::UnknownKind(b'O')));
        assert_eq!(Reply::decode(&good), Err(WireError::UnknownKind(b'Q')));
        // Every proper prefix is truncated somewhere, never accepted.
        for n in 1..good.len() {
            assert!(
                matches!(Request::decode(&good[..n]), Err(WireError::Truncated(_))),
                "prefix {n}: {:?}",
                Request::decode(&good[..n])
            );
        }
        let mut t = good.clone();
        t.push(0);
        assert_eq!(Request::decode(&t), Err(WireError::Trailing(1)));
        assert_eq!(
            Request::decode(&vec![b'Q'; MAX_MESSAGE + 1]),
            Err(WireError::TooLarge(MAX_MESSAGE + 1))
        );
        // A length field beyond the limit is refused before reading it.
        let mut big = vec![b'Q', 0, 0, 0, 1];
        big.extend_from_slice(&(MAX_USER as u32 + 1).to_be_bytes());
        assert_eq!(
            Request::decode(&big),
            Err(WireError::FieldTooLong("user", MAX_USER + 1))
        );
        let mut bad = req();
        bad.user = "a\0b".into();
        assert_eq!(
            Request::decode(&bad.encode().unwrap()),
            Err(WireError::BadText("user"))
        );
        bad.user = String::new();
        assert_eq!(
            Request::decode(&bad.encode().unwrap()),
            Err(WireError::BadText("user"))
        );
        let mut u = req().encode().unwrap();
        u[9] = 0xff; // first byte of the user name
        assert_eq!(Request::decode(&u), Err(WireError::NotUtf8("user")));
        let mut long = req();
        long.prepend = vec![b'x'; MAX_PREPEND + 1];
        assert_eq!(
            long.encode(),
            Err(WireError::FieldTooLong("prepend", MAX_PREPEND + 1))
        );
        assert_eq!(
            Reply::decode(b"X\0\0\0\x01\0\0\0\0"),
            Err(WireError::UnknownKind(b'X'))
        );
        assert_eq!(
            Reply::decode(b"T\0\0\0\x01\0\0\0\x02\xff\xfe"),
            Err(WireError::NotUtf8("text"))
        );
        assert!(WireError::Truncated("user").to_string().contains("user"));
    }
}
