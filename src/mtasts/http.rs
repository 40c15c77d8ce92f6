//! The HTTP/1.1 response of a policy fetch (RFC 8461 §3.3), sans-I/O: the
//! driver ([`super::fetch`]) reads into one bounded buffer and asks
//! [`parse_head`] and [`body_end`] about the bytes read so far; when the
//! body is complete, [`decode_body`] removes chunked framing in place.
//! Header syntax and chunk-size lines are parsed by `httparse`; this module
//! only adds the framing rules (Content-Length, chunked, close-delimited)
//! and the limits.
//!
//! Nothing here allocates per byte of input: the head is parsed into a
//! fixed array of header slots and the body is decoded where it lies.

use std::fmt;

/// Largest policy body (RFC 8461 §3.3: senders may limit it to 64 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Largest response head (status line and headers). Policy hosts send a
/// few hundred bytes; 8 KiB is what common servers accept for requests.
pub const MAX_HEAD: usize = 8 * 1024;

/// Chunked framing allowed on top of [`MAX_BODY`]: size lines, extensions,
/// CRLFs and trailers. A server that frames 64 KiB in 1-byte chunks needs
/// more and is refused as too large.
pub const MAX_FRAMING: usize = 8 * 1024;

/// The read buffer of one fetch: head, body and chunk framing.
pub const MAX_RESPONSE: usize = MAX_HEAD + MAX_BODY + MAX_FRAMING;

/// Header slots offered to httparse; more headers than this is an error.
const MAX_HEADERS: usize = 48;

/// The longest `Content-Type` value kept (for the log).
const MAX_CONTENT_TYPE: usize = 128;

/// How the body's end is known (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: N`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the server closes (after close_notify).
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` value as sent (at most 128 bytes, lossy UTF-8),
    /// `None` when absent.
    pub content_type: Option<String>,
    /// Where the body ends.
    pub framing: Framing,
    /// Bytes of the head, including the blank line: the body starts here.
    pub len: usize,
}

impl Head {
    /// Whether the media type is `text/plain` (RFC 8461 §3.2), parameters
    /// such as `charset=utf-8` allowed, case-insensitive.
    pub fn is_text_plain(&self) -> bool {
        self.content_type.as_deref().is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
        })
    }
}

/// Why a response cannot be used (all are RFC 8460 `sts-policy-fetch-error`
/// for the caller, except what it judges itself: status and type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The head is not HTTP/1.x (httparse's reason).
    Malformed(&'static str),
    /// The head is longer than [`MAX_HEAD`].
    HeadTooLarge,
    /// More than 48 headers.
    TooManyHeaders,
    /// `Content-Length` is not a number, or appears twice with two values.
    BadLength,
    /// A `Transfer-Encoding` other than `chunked` (`gzip`, ...), or one
    /// together with `Content-Length` (a request-smuggling shape).
    UnsupportedEncoding,
    /// A `Content-Encoding` other than `identity`: tern asks for none.
    ContentEncoding,
    /// The body is (or announces) more than [`MAX_BODY`] bytes.
    BodyTooLarge,
    /// Chunked framing is malformed.
    BadChunk,
    /// The connection ended before the body did.
    Truncated,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(why) => write!(f, "malformed HTTP response ({why})"),
            HttpError::HeadTooLarge => write!(f, "HTTP response head over {MAX_HEAD} bytes"),
            HttpError::TooManyHeaders => {
                write!(f, "HTTP response with more than {MAX_HEADERS} headers")
            }
            HttpError::BadLength => f.write_str("invalid Content-Length"),
            HttpError::UnsupportedEncoding => f.write_str("unsupported Transfer-Encoding"),
            HttpError::ContentEncoding => f.write_str("unsupported Content-Encoding"),
            HttpError::BodyTooLarge => write!(f, "policy larger than {MAX_BODY} bytes"),
            HttpError::BadChunk => f.write_str("malformed chunked encoding"),
            HttpError::Truncated => f.write_str("connection closed before the end of the body"),
        }
    }
}

impl std::error::Error for HttpError {}

fn httparse_error(e: httparse::Error) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
        httparse::Error::HeaderName => HttpError::Malformed("header name"),
        httparse::Error::HeaderValue => HttpError::Malformed("header value"),
        httparse::Error::NewLine => HttpError::Malformed("line ending"),
        httparse::Error::Status => HttpError::Malformed("status"),
        httparse::Error::Token => HttpError::Malformed("token"),
        httparse::Error::Version => HttpError::Malformed("version"),
    }
}

fn parse_length(v: &[u8]) -> Result<usize, HttpError> {
    let s = std::str::from_utf8(v)
        .map_err(|_| HttpError::BadLength)?
        .trim();
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::BadLength);
    }
    s.parse().map_err(|_| HttpError::BadLength)
}

/// Parses the head from the bytes read so far: `Ok(None)` while it is
/// incomplete. A `Content-Length` over [`MAX_BODY`] is refused here,
/// before any of the body is read.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf).map_err(httparse_error)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if buf.len() >= MAX_HEAD => return Err(HttpError::HeadTooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    if len > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let status = resp.code.ok_or(HttpError::Malformed("status"))?;
    let mut content_type = None;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-type") {
            if content_type.is_none() {
                let v = h.value.get(..MAX_CONTENT_TYPE).unwrap_or(h.value);
                content_type = Some(String::from_utf8_lossy(v).trim().to_string());
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value)?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::BadLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only `chunked`, alone: tern sends no TE, so a coding the
            // server applies anyway is one we cannot undo.
            for coding in h.value.split(|b| *b == b',') {
                if coding.trim_ascii().eq_ignore_ascii_case(b"chunked") && !chunked {
                    chunked = true;
                } else if !coding.trim_ascii().is_empty() {
                    return Err(HttpError::UnsupportedEncoding);
                }
            }
        } else if name.eq_ignore_ascii_case("content-encoding") {
            let v = h.value.trim_ascii();
            if !v.is_empty() && !v.eq_ignore_ascii_case(b"identity") {
                return Err(HttpError::ContentEncoding);
            }
        }
    }
    let framing = match (transfer_encoding, chunked, length) {
        (true, _, Some(_)) => return Err(HttpError::UnsupportedEncoding),
        (true, true, None) => Framing::Chunked,
        (true, false, None) => return Err(HttpError::UnsupportedEncoding),
        (false, _, Some(n)) if n > MAX_BODY => return Err(HttpError::BodyTooLarge),
        (false, _, Some(n)) => Framing::Length(n),
        (false, _, None) => Framing::Close,
    };
    Ok(Some(Head {
        status,
        content_type,
        framing,
        len,
    }))
}

/// Scans a chunked body (the bytes after the head) without changing it:
/// `Ok(Some(n))` when the last chunk and the trailers end at `n`,
/// `Ok(None)` while more is needed. The decoded size is checked against
/// [`MAX_BODY`] as the scan goes.
fn chunked_end(body: &[u8]) -> Result<Option<usize>, HttpError> {
    let mut pos = 0usize;
    let mut total = 0usize;
    loop {
        let rest = body.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        // httparse takes an empty size line as 0; the grammar needs a digit.
        if !rest[0].is_ascii_hexdigit() {
            return Err(HttpError::BadChunk);
        }
        let (used, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(x)) => x,
            Ok(httparse::Status::Partial) if rest.len() > MAX_FRAMING => {
                return Err(HttpError::BadChunk)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(HttpError::BadChunk),
        };
        pos += used;
        if size == 0 {
            // Trailer fields, then the blank line.
            let rest = body.get(pos..).unwrap_or_default();
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            return match httparse::parse_headers(rest, &mut slots) {
                Ok(httparse::Status::Complete((n, _))) => Ok(Some(pos + n)),
                Ok(httparse::Status::Partial) if rest.len() > MAX_FRAMING => {
                    Err(HttpError::BadChunk)
                }
                Ok(httparse::Status::Partial) => Ok(None),
                Err(_) => Err(HttpError::BadChunk),
            };
        }
        let size = usize::try_from(size).map_err(|_| HttpError::BodyTooLarge)?;
        total = total.checked_add(size).ok_or(HttpError::BodyTooLarge)?;
        if total > MAX_BODY {
            return Err(HttpError::BodyTooLarge);
        }
        let data_end = pos + size;
        match body.get(data_end..) {
            None => return Ok(None),
            Some([]) => return Ok(None),
            Some([b'\r']) => return Ok(None),
            Some([b'\r', b'\n', ..]) => pos = data_end + 2,
            Some(_) => return Err(HttpError::BadChunk),
        }
    }
}

/// Where the body ends in `body` (the bytes after the head read so far):
/// `Ok(Some(n))` when complete (the first `n` bytes), `Ok(None)` while
/// more is needed. `eof`: the server has closed (after close_notify), which
/// ends a close-delimited body and truncates any other.
pub fn body_end(head: &Head, body: &[u8], eof: bool) -> Result<Option<usize>, HttpError> {
    let end = match head.framing {
        Framing::Length(n) => (body.len() >= n).then_some(n),
        Framing::Chunked => chunked_end(body)?,
        Framing::Close => {
            if body.len() > MAX_BODY {
                return Err(HttpError::BodyTooLarge);
            }
            eof.then_some(body.len())
        }
    };
    match end {
        Some(n) => Ok(Some(n)),
        None if eof => Err(HttpError::Truncated),
        None => Ok(None),
    }
}

/// Removes the chunked framing of a complete body in place (the first `n`
/// bytes [`body_end`] reported) and returns the decoded length; other
/// framings are returned as they are.
pub fn decode_body(head: &Head, body: &mut [u8]) -> Result<usize, HttpError> {
    if head.framing != Framing::Chunked {
        return Ok(body.len());
    }
    let (mut read, mut write) = (0usize, 0usize);
    loop {
        let rest = body.get(read..).unwrap_or_default();
        let (used, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(x)) => x,
            _ => return Err(HttpError::BadChunk),
        };
        read += used;
        if size == 0 {
            return Ok(write);
        }
        let size = usize::try_from(size).map_err(|_| HttpError::BadChunk)?;
        let end = read.checked_add(size).ok_or(HttpError::BadChunk)?;
        if end > body.len() {
            return Err(HttpError::BadChunk);
        }
        // Decoded data never overtakes the framing it replaces.
        body.copy_within(read..end, write);
        write += size;
        read = end + 2;
    }
}

/// A whole response from its bytes (`eof`: the server closed): the head
/// and the decoded body's length at `head.len`. `Ok(None)` while
/// incomplete. The fuzz target's entry point; the driver uses the steps.
pub fn parse_response(buf: &mut [u8], eof: bool) -> Result<Option<(Head, usize)>, HttpError> {
    let Some(head) = parse_head(buf)? else {
        return if eof {
            Err(HttpError::Truncated)
        } else {
            Ok(None)
        };
    };
    let body = buf.get_mut(head.len..).unwrap_or_default();
    let Some(end) = body_end(&head, body, eof)? else {
        return Ok(None);
    };
    let n = decode_body(&head, body.get_mut(..end).unwrap_or_default())?;
    Ok(Some((head, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(raw: &[u8], eof: bool) -> Result<Option<(Head, Vec<u8>)>, HttpError> {
        let mut buf = raw.to_vec();
        Ok(
            parse_response(&mut buf, eof)?
                .map(|(h, n)| (h.clone(), buf[h.len..h.len + n].to_vec())),
        )
    }

    const POLICY: &str =
        "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n";

    #[test]
    fn content_length() {
        let raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{POLICY}",
            POLICY.len()
        );
        let (h, body) = full(raw.as_bytes(), false).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert!(h.is_text_plain());
        assert_eq!(h.framing, Framing::Length(POLICY.len()));
        assert_eq!(body, POLICY.as_bytes());
        // Every prefix is incomplete, never an error.
        for i in 0..raw.len() {
            assert_eq!(full(&raw.as_bytes()[..i], false), Ok(None), "{i}");
        }
        // A close before the end truncates.
        assert_eq!(
            full(&raw.as_bytes()[..raw.len() - 1], true),
            Err(HttpError::Truncated)
        );
        // Bytes after the body (none should come with Connection: close)
        // are not part of it.
        let more = format!("{raw}junk");
        assert_eq!(
            full(more.as_bytes(), false).unwrap().unwrap().1,
            POLICY.as_bytes()
        );
    }

    #[test]
    fn chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
            10\r\nversion: STSv1\r\n\r\n5;ext=1\r\nmode:\r\na\r\n enforce\r\n\r\n0\r\nX-Trailer: y\r\n\r\n";
        let (h, body) = full(raw, false).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert_eq!(body, b"version: STSv1\r\nmode: enforce\r\n");
        for i in 0..raw.len() {
            assert_eq!(full(&raw[..i], false), Ok(None), "{i}");
        }
        assert_eq!(full(&raw[..raw.len() - 2], true), Err(HttpError::Truncated));
        // Upper-case hex and no trailers.
        let raw =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(full(raw, false).unwrap().unwrap().1, b"0123456789");
    }

    #[test]
    fn chunked_errors() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for bad in [
            "zz\r\n",
            "\r\n",
            "3\r\nabcX\r\n",
            "3\r\nabc\n0\r\n\r\n",
            "-1\r\n",
            "ffffffffffffffffff\r\n",
        ] {
            let raw = format!("{head}{bad}");
            assert!(full(raw.as_bytes(), false).is_err(), "{bad:?}");
        }
        // Decoded size over 64 KiB, in two chunks each under it.
        let raw = format!("{head}8000\r\n{}\r\n8001\r\n", "a".repeat(0x8000));
        assert_eq!(full(raw.as_bytes(), false), Err(HttpError::BodyTooLarge));
        // Exactly 64 KiB is fine.
        let raw = format!(
            "{head}8000\r\n{a}\r\n8000\r\n{a}\r\n0\r\n\r\n",
            a = "a".repeat(0x8000)
        );
        assert_eq!(
            full(raw.as_bytes(), false).unwrap().unwrap().1.len(),
            MAX_BODY
        );
    }

    #[test]
    fn close_delimited() {
        let raw = format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{POLICY}");
        assert_eq!(full(raw.as_bytes(), false), Ok(None));
        let (h, body) = full(raw.as_bytes(), true).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Close);
        assert_eq!(body, POLICY.as_bytes());
        let big = format!("HTTP/1.1 200 OK\r\n\r\n{}", "a".repeat(MAX_BODY + 1));
        assert_eq!(full(big.as_bytes(), false), Err(HttpError::BodyTooLarge));
    }

    #[test]
    fn limits_and_conflicts() {
        let raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(full(raw.as_bytes(), false), Err(HttpError::BodyTooLarge));
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(full(raw.as_bytes(), false), Err(HttpError::BadLength));
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(full(raw.as_bytes(), false).unwrap().unwrap().1, b"abc");
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc";
        assert_eq!(full(raw.as_bytes(), false), Err(HttpError::BadLength));
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            full(raw.as_bytes(), false),
            Err(HttpError::UnsupportedEncoding)
        );
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(
            full(raw.as_bytes(), false),
            Err(HttpError::UnsupportedEncoding)
        );
        let raw = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(full(raw.as_bytes(), false), Err(HttpError::ContentEncoding));
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(full(long.as_bytes(), false), Err(HttpError::HeadTooLarge));
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X: y\r\n".repeat(49));
        assert_eq!(full(many.as_bytes(), false), Err(HttpError::TooManyHeaders));
        assert!(full(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert_eq!(
            full(b"HTTP/1.1 200 OK\r\n", true),
            Err(HttpError::Truncated)
        );
    }

    #[test]
    fn status_and_type_are_reported() {
        let raw = "HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere/\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n";
        let (h, _) = full(raw.as_bytes(), false).unwrap().unwrap();
        assert_eq!(h.status, 301);
        assert!(!h.is_text_plain());
        for (ct, ok) in [
            ("text/plain", true),
            ("TEXT/Plain ; charset=US-ASCII", true),
            ("text/plainx", false),
            ("text/html", false),
            ("application/octet-stream", false),
        ] {
            let h = Head {
                status: 200,
                content_type: Some(ct.into()),
                framing: Framing::Close,
                len: 0,
            };
            assert_eq!(h.is_text_plain(), ok, "{ct}");
        }
        let h = Head {
            status: 200,
            content_type: None,
            framing: Framing::Close,
            len: 0,
        };
        assert!(!h.is_text_plain());
    }
}
