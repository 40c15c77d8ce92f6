//! Postfix's socketmap protocol (socketmap_table(5)), sans-I/O: netstrings
//! (<http://cr.yp.to/proto/netstrings.txt>), the request and the reply.
//!
//! The client sends one netstring `NAME KEY` and reads one netstring reply:
//! `OK data`, `NOTFOUND `, `TEMP reason`, `TIMEOUT reason` or `PERM
//! reason`. Replies may arrive in pieces, so [`NetstringReader`] collects
//! them in a buffer of fixed size, allocated once, and refuses a reply that
//! would not fit before reading it: Postfix's limit is 100,000 bytes, but
//! a TLS policy answer is a few hundred bytes (a long MTA-STS policy with
//! its `policy_string` lines a few KB), so tern keeps [`MAX_REPLY`].

use std::fmt;

/// The longest reply payload tern accepts (Postfix accepts 100,000 bytes;
/// a policy answer is far shorter, and a router has no memory to spare).
pub const MAX_REPLY: usize = 16 * 1024;

/// The longest request payload (`NAME KEY`): a key is a next hop (a
/// domain of at most 255 bytes, brackets and a port) and the name a word.
pub const MAX_REQUEST: usize = 512;

/// Why bytes are not a netstring (or not one tern accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetstringError {
    /// The length prefix is not decimal digits followed by `:`.
    BadLength,
    /// The announced length is more than the limit.
    TooLong {
        /// The announced length (saturated).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not followed by `,`.
    MissingComma,
}

impl fmt::Display for NetstringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetstringError::BadLength => f.write_str("malformed netstring length"),
            NetstringError::TooLong { len, max } => {
                write!(
                    f,
                    "netstring of {len} bytes is longer than the limit of {max}"
                )
            }
            NetstringError::MissingComma => f.write_str("netstring does not end in ','"),
        }
    }
}

impl std::error::Error for NetstringError {}

/// A complete netstring found at the start of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Netstring<'a> {
    /// The payload.
    pub payload: &'a [u8],
    /// Bytes of input it took, prefix and `,` included.
    pub consumed: usize,
}

/// Decodes one netstring from the start of `input`: `Ok(None)` while more
/// bytes are needed. The length is checked against `max` as soon as its
/// digits are complete (or are too many), before the payload arrives.
pub fn decode(input: &[u8], max: usize) -> Result<Option<Netstring<'_>>, NetstringError> {
    let mut len: usize = 0;
    let mut digits = 0usize;
    for (i, &b) in input.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                len = len.saturating_mul(10).saturating_add(usize::from(b - b'0'));
                digits += 1;
                if len > max {
                    return Err(NetstringError::TooLong { len, max });
                }
            }
            b':' if digits > 0 => {
                let start = i + 1;
                let end = start + len; // len <= max: no overflow
                return match input.get(end) {
                    None => Ok(None),
                    Some(b',') => Ok(Some(Netstring {
                        payload: &input[start..end],
                        consumed: end + 1,
                    })),
                    Some(_) => Err(NetstringError::MissingComma),
                };
            }
            _ => return Err(NetstringError::BadLength),
        }
    }
    Ok(None)
}

/// Writes `payload` as a netstring into `out`; returns the bytes written,
/// or `None` when `out` is too small.
pub fn encode(payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut digits = [0u8; 20];
    let mut n = payload.len();
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let prefix = &digits[d..];
    let total = prefix.len() + 1 + payload.len() + 1;
    let out = out.get_mut(..total)?;
    out[..prefix.len()].copy_from_slice(prefix);
    out[prefix.len()] = b':';
    out[prefix.len() + 1..total - 1].copy_from_slice(payload);
    out[total - 1] = b',';
    Some(total)
}

/// Builds the request `NAME KEY` as a netstring in `out`; `None` when it
/// does not fit (a key no next hop can have) or a part is unusable (empty
/// or with whitespace in the name, control characters in the key).
pub fn request(name: &str, key: &str, out: &mut [u8; MAX_REQUEST + 8]) -> Option<usize> {
    if name.is_empty()
        || key.is_empty()
        || name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        || key.bytes().any(|b| b.is_ascii_control())
        || name.len() + 1 + key.len() > MAX_REQUEST
    {
        return None;
    }
    let mut payload = [0u8; MAX_REQUEST];
    let n = name.len();
    payload[..n].copy_from_slice(name.as_bytes());
    payload[n] = b' ';
    payload[n + 1..n + 1 + key.len()].copy_from_slice(key.as_bytes());
    encode(&payload[..n + 1 + key.len()], out)
}

/// Collects one netstring that may arrive in pieces, in a buffer of fixed
/// size. The driver reads into [`NetstringReader::spare`], reports the byte
/// count with [`NetstringReader::filled`], and asks [`NetstringReader::poll`].
pub struct NetstringReader {
    buf: Box<[u8]>,
    len: usize,
    max: usize,
}

impl NetstringReader {
    /// A reader for payloads of at most `max` bytes (its buffer holds the
    /// prefix and the `,` too).
    pub fn new(max: usize) -> NetstringReader {
        // "LEN:" has at most as many digits as `max`, plus ':' and ','.
        let prefix = max.to_string().len() + 2;
        NetstringReader {
            buf: vec![0u8; max + prefix].into_boxed_slice(),
            len: 0,
            max,
        }
    }

    /// Where the next bytes go. Empty only after a complete netstring or
    /// an error (a well-formed one within the limit always fits).
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.len..]
    }

    /// Records that `n` bytes were read into [`NetstringReader::spare`].
    pub fn filled(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    /// The netstring, once complete; `Ok(None)` while more bytes are
    /// needed. Bytes after it are an error of the caller's protocol (a
    /// socketmap server sends one reply per request), not checked here.
    pub fn poll(&self) -> Result<Option<Netstring<'_>>, NetstringError> {
        decode(&self.buf[..self.len], self.max)
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.len
    }
}

/// A socketmap reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `OK data`: the key was found.
    Ok(&'a str),
    /// `NOTFOUND `: no entry for the key.
    NotFound,
    /// `TEMP reason`: a temporary failure.
    Temp(&'a str),
    /// `TIMEOUT reason`: the server timed out.
    Timeout(&'a str),
    /// `PERM reason`: a permanent failure (of the server, not the mail).
    Perm(&'a str),
}

/// Why a reply payload is not a socketmap reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// Not UTF-8, or a NUL byte.
    NotText,
    /// The status word is none of OK, NOTFOUND, TEMP, TIMEOUT, PERM.
    UnknownStatus(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::NotText => f.write_str("reply is not text"),
            ReplyError::UnknownStatus(s) => write!(
                f,
                "unexpected reply status \"{s}\" (expected OK, NOTFOUND, TEMP, TIMEOUT or PERM)"
            ),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Parses a reply payload. The status word and the data are separated by
/// one space; Postfix writes `NOTFOUND ` with the space, and a bare
/// `NOTFOUND` is taken too.
pub fn parse_reply(payload: &[u8]) -> Result<Reply<'_>, ReplyError> {
    if payload.contains(&0) {
        return Err(ReplyError::NotText);
    }
    let text = std::str::from_utf8(payload).map_err(|_| ReplyError::NotText)?;
    let (status, data) = text.split_once(' ').unwrap_or((text, ""));
    Ok(match status {
        "OK" => Reply::Ok(data),
        "NOTFOUND" => Reply::NotFound,
        "TEMP" => Reply::Temp(data),
        "TIMEOUT" => Reply::Timeout(data),
        "PERM" => Reply::Perm(data),
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(ReplyError::UnknownStatus(shown));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_whole_and_in_pieces() {
        let wire = b"12:hello world!,";
        let n = decode(wire, 100).unwrap().unwrap();
        assert_eq!(n.payload, b"hello world!");
        assert_eq!(n.consumed, wire.len());
        for cut in 0..wire.len() {
            assert_eq!(decode(&wire[..cut], 100), Ok(None), "cut at {cut}");
        }
        assert_eq!(decode(b"0:,", 10).unwrap().unwrap().payload, b"");
        // Bytes after the netstring are left to the caller.
        assert_eq!(decode(b"1:a,2:bc,", 10).unwrap().unwrap().consumed, 4);
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode(b":", 10), Err(NetstringError::BadLength));
        assert_eq!(decode(b"1a:x,", 10), Err(NetstringError::BadLength));
        assert_eq!(decode(b" 1:x,", 10), Err(NetstringError::BadLength));
        assert_eq!(decode(b"-1:x,", 10), Err(NetstringError::BadLength));
        assert_eq!(decode(b"1:xy", 10), Err(NetstringError::MissingComma));
        assert_eq!(
            decode(b"11:", 10),
            Err(NetstringError::TooLong { len: 11, max: 10 })
        );
        // Refused as soon as the digits say so, before any payload.
        assert_eq!(
            decode(b"100001", 100_000),
            Err(NetstringError::TooLong {
                len: 100_001,
                max: 100_000
            })
        );
        // A huge length saturates instead of overflowing.
        assert!(matches!(
            decode(b"99999999999999999999999999", usize::MAX - 1),
            Err(NetstringError::TooLong { .. })
        ));
    }

    #[test]
    fn encode_and_request() {
        let mut out = [0u8; 32];
        let n = encode(b"abc", &mut out).unwrap();
        assert_eq!(&out[..n], b"3:abc,");
        assert_eq!(encode(&[b'x'; 40], &mut out), None);
        let n = encode(b"", &mut out).unwrap();
        assert_eq!(&out[..n], b"0:,");
        let mut req = [0u8; MAX_REQUEST + 8];
        let n = request("postfix", "example.test", &mut req).unwrap();
        assert_eq!(&req[..n], b"20:postfix example.test,");
        assert_eq!(request("a b", "k", &mut req), None);
        assert_eq!(request("", "k", &mut req), None);
        assert_eq!(request("n", "", &mut req), None);
        assert_eq!(request("n", "a\nb", &mut req), None);
        assert_eq!(request("n", &"x".repeat(MAX_REQUEST), &mut req), None);
        let long = "x".repeat(MAX_REQUEST - 2);
        let n = request("n", &long, &mut req).unwrap();
        assert_eq!(decode(&req[..n], MAX_REQUEST).unwrap().unwrap().consumed, n);
    }

    #[test]
    fn reader_collects_pieces_in_a_fixed_buffer() {
        let mut r = NetstringReader::new(64);
        let cap = r.spare().len();
        assert_eq!(cap, 64 + 4);
        for piece in [&b"1"[..], b"3:OK ", b"encrypt", b"xyz", b","] {
            assert_eq!(r.poll(), Ok(None));
            r.spare()[..piece.len()].copy_from_slice(piece);
            r.filled(piece.len());
        }
        assert_eq!(r.poll().unwrap().unwrap().payload, b"OK encryptxyz");
        assert_eq!(r.received(), 17);
        // The biggest allowed payload fits exactly.
        let mut r = NetstringReader::new(64);
        let wire = format!("64:{},", "a".repeat(64));
        r.spare()[..wire.len()].copy_from_slice(wire.as_bytes());
        r.filled(wire.len());
        assert_eq!(r.poll().unwrap().unwrap().payload.len(), 64);
        assert!(r.spare().is_empty());
        // A longer one is refused from its prefix.
        let mut r = NetstringReader::new(64);
        r.spare()[..3].copy_from_slice(b"65:");
        r.filled(3);
        assert!(matches!(r.poll(), Err(NetstringError::TooLong { .. })));
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b"OK encrypt"), Ok(Reply::Ok("encrypt")));
        assert_eq!(
            parse_reply(b"OK secure match=a:b"),
            Ok(Reply::Ok("secure match=a:b"))
        );
        assert_eq!(parse_reply(b"NOTFOUND "), Ok(Reply::NotFound));
        assert_eq!(parse_reply(b"NOTFOUND"), Ok(Reply::NotFound));
        assert_eq!(parse_reply(b"TEMP db down"), Ok(Reply::Temp("db down")));
        assert_eq!(parse_reply(b"TIMEOUT "), Ok(Reply::Timeout("")));
        assert_eq!(parse_reply(b"PERM bad"), Ok(Reply::Perm("bad")));
        assert_eq!(
            parse_reply(b"ok encrypt"),
            Err(ReplyError::UnknownStatus("ok".into()))
        );
        assert_eq!(parse_reply(b""), Err(ReplyError::UnknownStatus("".into())));
        assert_eq!(parse_reply(b"OK \xff"), Err(ReplyError::NotText));
        assert_eq!(parse_reply(b"OK a\0b"), Err(ReplyError::NotText));
    }
}
