//! SMTP replies: building them (server side) and parsing them (client side).
//!
//! A built [`Reply`] lives in a fixed buffer of [`REPLY_MAX`] bytes; text
//! that would not fit is cut (never the CRLF), so an echoed address can never
//! grow a reply. The [`ReplyParser`] takes reply lines (without CRLF) one by
//! one and yields a [`ParsedReply`] when the last line (`code SP`) arrives;
//! it bounds the number of lines and the stored text.

use core::fmt::{self, Write as _};

/// Largest reply tern builds, in bytes, CRLFs included: RFC 5321's reply
/// line limit (§4.5.3.1.5); tern's longest reply (EHLO) is far shorter.
pub const REPLY_MAX: usize = 512;

/// A reply ready to send: one or more lines, each ending in CRLF.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    buf: heapless::Vec<u8, REPLY_MAX>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({:?})", String::from_utf8_lossy(&self.buf))
    }
}

/// `fmt::Write` into the reply buffer that keeps 2 bytes for the CRLF and
/// silently cuts what does not fit.
struct Sink<'a>(&'a mut heapless::Vec<u8, REPLY_MAX>);

impl fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            // CR and LF inside text would forge extra reply lines.
            let b = if b == b'\r' || b == b'\n' { b' ' } else { b };
            if self.0.len() + 2 >= REPLY_MAX {
                return Ok(());
            }
            let _ = self.0.push(b);
        }
        Ok(())
    }
}

impl Reply {
    /// A single-line reply from `"code [x.y.z] text"`; CRLF is added.
    pub fn new(line: &str) -> Reply {
        Reply::fmt(format_args!("{line}"))
    }

    /// A single-line reply from format arguments; CRLF is added.
    pub fn fmt(args: fmt::Arguments<'_>) -> Reply {
        let mut buf = heapless::Vec::new();
        let _ = Sink(&mut buf).write_fmt(args);
        let _ = buf.extend_from_slice(b"\r\n");
        Reply { buf }
    }

    /// A multi-line reply: `code-line` for all but the last, `code line`
    /// for the last. `lines` must not be empty (an empty list gives
    /// `code` alone).
    pub fn multi(code: u16, lines: &[&str]) -> Reply {
        let mut buf = heapless::Vec::new();
        let n = lines.len();
        if n == 0 {
            let _ = write!(Sink(&mut buf), "{code}");
        }
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == n { ' ' } else { '-' };
            // Leave room for this line's CRLF plus a final line.
            if buf.len() + 2 >= REPLY_MAX {
                break;
            }
            let _ = write!(Sink(&mut buf), "{code}{sep}{l}");
            let _ = buf.extend_from_slice(b"\r\n");
        }
        if n == 0 {
            let _ = buf.extend_from_slice(b"\r\n");
        }
        Reply { buf }
    }

    /// The bytes to write.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The three-digit code (0 if the reply was built malformed).
    pub fn code(&self) -> u16 {
        parse_code(&self.buf).unwrap_or(0)
    }

    /// The reply without its final CRLF, for logs (`text()` of a
    /// multi-line reply keeps inner CRLFs).
    pub fn text(&self) -> &str {
        let b = self.buf.strip_suffix(b"\r\n").unwrap_or(&self.buf);
        core::str::from_utf8(b).unwrap_or("")
    }

    /// True for 4xx and 5xx replies.
    pub fn is_error(&self) -> bool {
        self.code() >= 400
    }
}

fn parse_code(b: &[u8]) -> Option<u16> {
    let d = b.get(..3)?;
    if !(b'2'..=b'5').contains(&d[0]) || !d[1].is_ascii_digit() || !d[2].is_ascii_digit() {
        return None;
    }
    Some(u16::from(d[0] - b'0') * 100 + u16::from(d[1] - b'0') * 10 + u16::from(d[2] - b'0'))
}

/// An RFC 3463 enhanced status code `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    /// 2, 4 or 5.
    pub class: u8,
    /// 0..=999
    pub subject: u16,
    /// 0..=999
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl EnhancedCode {
    /// Parses `x.y.z` at the start of `text` followed by a space or the
    /// end; returns the code and the rest after the space.
    pub fn parse_prefix(text: &str) -> Option<(EnhancedCode, &str)> {
        let end = text.find(' ').unwrap_or(text.len());
        let mut parts = text[..end].split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let num = |s: &str, max: usize| -> Option<u16> {
            if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let class = num(class, 1)?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        let code = EnhancedCode {
            class: class as u8,
            subject: num(subject, 3)?,
            detail: num(detail, 3)?,
        };
        Some((code, text.get(end + 1..).unwrap_or("")))
    }
}

/// Limits of the reply parser.
pub const REPLY_MAX_LINES: usize = 64;
/// Most text bytes kept from one reply (lines joined by `\n`).
pub const REPLY_MAX_TEXT: usize = 4096;

/// A complete reply received from a server.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedReply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code of the first line, if its class matches
    /// the code's first digit.
    pub enhanced: Option<EnhancedCode>,
    text: heapless::String<REPLY_MAX_TEXT>,
    lines: usize,
}

impl fmt::Debug for ParsedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParsedReply({} {:?})", self.code, self.text.as_str())
    }
}

impl ParsedReply {
    /// A one-line reply made up locally rather than received (for
    /// decisions tern takes itself); `text` may start with an enhanced
    /// code. Text beyond [`REPLY_MAX_TEXT`] is cut; line breaks become
    /// spaces.
    pub fn local(code: u16, text: &str) -> ParsedReply {
        let mut t = heapless::String::new();
        for c in text.chars() {
            if t.push(if c == '\n' || c == '\r' { ' ' } else { c })
                .is_err()
            {
                break;
            }
        }
        let enhanced = EnhancedCode::parse_prefix(&t)
            .map(|(e, _)| e)
            .filter(|e| u16::from(e.class) == code / 100);
        ParsedReply {
            code,
            enhanced,
            text: t,
            lines: 1,
        }
    }

    /// Text of each line after `code[-| ]` (enhanced codes kept).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n').take(self.lines)
    }
    /// Number of lines.
    pub fn line_count(&self) -> usize {
        self.lines
    }
    /// 2xx
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// 3xx
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }
    /// 4xx
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// 5xx
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
    /// The reply on one line as Postfix logs it: `code text text ...`
    /// (lines joined by a space), e.g. for `status=sent (250 2.0.0 Ok)`.
    pub fn one_line(&self) -> String {
        let mut s = String::with_capacity(self.text.len() + 4);
        let _ = write!(s, "{}", self.code);
        for l in self.lines() {
            s.push(' ');
            s.push_str(l);
        }
        s
    }
    /// The enhanced code as Postfix's `dsn=` shows it: the server's, else
    /// derived from the reply class (`2.0.0`, `4.0.0`, `5.0.0`).
    pub fn dsn(&self) -> EnhancedCode {
        self.enhanced.unwrap_or(EnhancedCode {
            class: (self.code / 100) as u8,
            subject: 0,
            detail: 0,
        })
    }
}

/// Why a reply could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// Line does not start with a 3-digit code 2xx..5xx (line number, 1-based).
    BadCode(usize),
    /// Character after the code is neither space nor hyphen (line number).
    BadSeparator(usize),
    /// A continuation line carries a different code (line number).
    CodeMismatch(usize),
    /// More than [`REPLY_MAX_LINES`] lines.
    TooManyLines,
    /// Line is not UTF-8 (line number).
    BadUtf8(usize),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::BadCode(n) => write!(f, "reply line {n}: malformed reply code"),
            ReplyError::BadSeparator(n) => write!(f, "reply line {n}: bad separator after code"),
            ReplyError::CodeMismatch(n) => {
                write!(f, "reply line {n}: code differs from first line")
            }
            ReplyError::TooManyLines => write!(f, "reply has more than {REPLY_MAX_LINES} lines"),
            ReplyError::BadUtf8(n) => write!(f, "reply line {n}: invalid UTF-8"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Assembles multi-line replies line by line.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: u16,
    lines: usize,
    text: heapless::String<REPLY_MAX_TEXT>,
}

impl ReplyParser {
    /// A parser waiting for the first line of a reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line without CRLF. Returns `Ok(Some(reply))` after the last
    /// line; the parser is then ready for the next reply. On error the
    /// partial reply is dropped (the connection should be closed).
    pub fn feed_line(&mut self, line: &[u8]) -> Result<Option<ParsedReply>, ReplyError> {
        let r = self.feed_inner(line);
        if r.is_err() {
            *self = Self::default();
        }
        r
    }

    fn feed_inner(&mut self, line: &[u8]) -> Result<Option<ParsedReply>, ReplyError> {
        let n = self.lines + 1;
        if n > REPLY_MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        let code = parse_code(line).ok_or(ReplyError::BadCode(n))?;
        if self.lines > 0 && code != self.code {
            return Err(ReplyError::CodeMismatch(n));
        }
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(ReplyError::BadSeparator(n)),
        };
        let text = core::str::from_utf8(line.get(4..).unwrap_or(b""))
            .map_err(|_| ReplyError::BadUtf8(n))?;
        self.code = code;
        if self.lines > 0 {
            let _ = self.text.push('\n');
        }
        for c in text.chars() {
            // Keep room so that every line has its separator.
            if self.text.len() + c.len_utf8() + REPLY_MAX_LINES > REPLY_MAX_TEXT {
                break;
            }
            let _ = self.text.push(if c == '\n' || c == '\r' { ' ' } else { c });
        }
        self.lines = n;
        if !last {
            return Ok(None);
        }
        let first = self.text.split('\n').next().unwrap_or("");
        let enhanced = EnhancedCode::parse_prefix(first)
            .map(|(e, _)| e)
            .filter(|e| u16::from(e.class) == code / 100);
        let reply = ParsedReply {
            code,
            enhanced,
            text: core::mem::take(&mut self.text),
            lines: n,
        };
        *self = Self::default();
        Ok(Some(reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_single_and_multi() {
        assert_eq!(Reply::new("221 2.0.0 Bye").as_bytes(), b"221 2.0.0 Bye\r\n");
        assert_eq!(Reply::new("221 2.0.0 Bye").code(), 221);
        let r = Reply::multi(250, &["mx.example", "PIPELINING", "8BITMIME"]);
        assert_eq!(
            r.as_bytes(),
            b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        );
        let r = Reply::fmt(format_args!("250 2.0.0 Ok: queued as {}", "4XyZ"));
        assert_eq!(r.as_bytes(), b"250 2.0.0 Ok: queued as 4XyZ\r\n");
    }

    #[test]
    fn build_cuts_and_neutralises() {
        let long = "x".repeat(5000);
        let r = Reply::fmt(format_args!("550 5.1.1 <{long}>: nope"));
        assert_eq!(r.as_bytes().len(), REPLY_MAX);
        assert!(r.as_bytes().ends_with(b"xx\r\n"));
        let r = Reply::new("250 a\r\n250 b");
        assert_eq!(r.as_bytes(), b"250 a  250 b\r\n");
    }

    #[test]
    fn parse_multi() {
        let mut p = ReplyParser::new();
        assert_eq!(p.feed_line(b"250-mx.example Hello").unwrap(), None);
        assert_eq!(p.feed_line(b"250-SIZE 1000").unwrap(), None);
        let r = p.feed_line(b"250 STARTTLS").unwrap().unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.enhanced, None);
        assert_eq!(
            r.lines().collect::<Vec<_>>(),
            ["mx.example Hello", "SIZE 1000", "STARTTLS"]
        );
        assert_eq!(r.one_line(), "250 mx.example Hello SIZE 1000 STARTTLS");
        assert_eq!(r.dsn().to_string(), "2.0.0");
        let r = p.feed_line(b"550 5.1.1 <u@x>: unknown").unwrap().unwrap();
        assert_eq!(
            r.enhanced,
            Some(EnhancedCode {
                class: 5,
                subject: 1,
                detail: 1
            })
        );
        assert_eq!(r.dsn().to_string(), "5.1.1");
        assert!(r.is_permanent());
        let r = p.feed_line(b"354").unwrap().unwrap();
        assert_eq!(r.code, 354);
        assert_eq!(r.line_count(), 1);
        // Class must match the code.
        let r = p.feed_line(b"451 5.1.1 odd").unwrap().unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.dsn().to_string(), "4.0.0");
        let r = p.feed_line(b"250 2.0.0").unwrap().unwrap();
        assert_eq!(r.enhanced.unwrap().to_string(), "2.0.0");
    }

    #[test]
    fn parse_errors() {
        let mut p = ReplyParser::new();
        assert_eq!(p.feed_line(b"25"), Err(ReplyError::BadCode(1)));
        assert_eq!(p.feed_line(b"650 x"), Err(ReplyError::BadCode(1)));
        assert_eq!(p.feed_line(b"2x0 x"), Err(ReplyError::BadCode(1)));
        assert_eq!(p.feed_line(b"250x"), Err(ReplyError::BadSeparator(1)));
        p.feed_line(b"250-a").unwrap();
        assert_eq!(p.feed_line(b"251 b"), Err(ReplyError::CodeMismatch(2)));
        // Parser recovered.
        assert_eq!(p.feed_line(b"220 ok").unwrap().unwrap().code, 220);
        p.feed_line(b"250-a").unwrap();
        assert_eq!(p.feed_line(b"250 \xff"), Err(ReplyError::BadUtf8(2)));
        for _ in 0..REPLY_MAX_LINES {
            assert_eq!(p.feed_line(b"250-x").unwrap(), None);
        }
        assert_eq!(p.feed_line(b"250 x"), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn parse_bounded_text() {
        let mut p = ReplyParser::new();
        let long = vec![b'a'; 3000];
        let mut line = b"250-".to_vec();
        line.extend_from_slice(&long);
        p.feed_line(&line).unwrap();
        p.feed_line(&line).unwrap();
        let r = p.feed_line(b"250 end").unwrap().unwrap();
        assert_eq!(r.line_count(), 3);
        assert!(r.one_line().len() <= REPLY_MAX_TEXT + 4);
        assert_eq!(r.lines().count(), 3);
    }
}
