//! RFC 8689 §5: the `TLS-Required: No` header field, found in the message
//! header at queue entry so that the queue manager can deliver the
//! message at TLS level `may` (the envelope's `tls-required-no` flag).
//!
//! The field's syntax is `"TLS-Required:" [FWS] "No" CRLF`; as in every
//! structured RFC 5322 field, comments and folding white space may stand
//! around the word, and the field name and the word are case-insensitive.
//! Only the message header counts (a body line that looks like the field
//! is text). RFC 8689 allows the field once: a header with two of them is
//! malformed, and a malformed request to lower security is not honoured.
//!
//! Sans-I/O and bounded: [`is_no`] judges one value, [`Scanner`] watches a
//! message as it streams (smtpd) and holds at most [`MAX_VALUE`] bytes of
//! the field's value; [`in_header_block`] judges a header block read whole
//! (`sendmail`, the pickup).

use super::headers::Header;

/// The field name, as RFC 8689 spells it.
pub const FIELD: &str = "TLS-Required";

/// The longest value held: anything longer is no plain `No` (it would
/// take hundreds of bytes of comments), and is not honoured.
pub const MAX_VALUE: usize = 998;

/// Whether a field value (after the colon, line ends of folded lines
/// included) is the word `No` with only white space and comments
/// (nested, with quoted-pairs) around it.
pub fn is_no(value: &[u8]) -> bool {
    let mut word: Vec<u8> = Vec::with_capacity(2);
    let mut depth = 0usize;
    let mut escaped = false;
    for &b in value {
        if depth > 0 {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'(' {
                depth += 1;
            } else if b == b')' {
                depth -= 1;
            }
            continue;
        }
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                // White space may surround the word, not split it.
                if !word.is_empty() && word.len() < 3 {
                    word.push(b' ');
                }
            }
            b'(' => {
                depth = 1;
                if !word.is_empty() && word.len() < 3 {
                    word.push(b' ');
                }
            }
            _ => {
                if word.len() >= 3 {
                    return false;
                }
                word.push(b);
            }
        }
    }
    let word = word.strip_suffix(b" ").unwrap_or(&word);
    depth == 0 && !escaped && word.eq_ignore_ascii_case(b"no")
}

/// Whether a header block read whole asks for `TLS-Required: No`: exactly
/// one such field, with the value `No`.
pub fn in_header_block(block: &[u8], fields: &[Header]) -> bool {
    let mut found = fields.iter().filter(|h| h.is(block, FIELD));
    match (found.next(), found.next()) {
        // The scanner's bound, so both paths judge a message alike.
        (Some(h), None) => block
            .get(h.value.clone())
            .is_some_and(|v| v.len() < MAX_VALUE && is_no(v)),
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a header line.
    LineStart,
    /// In a field name (bytes so far in `name`).
    Name,
    /// In a field's value or its continuation lines.
    Value,
    /// Past the header block: nothing more to look at.
    Body,
}

/// Watches a message stream for the header field, with the header block
/// rules of [`super::fixer::HeaderFixer`]: the block ends at an empty line
/// or at a line that is neither a field nor a continuation.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    /// The field name being read, up to the length of [`FIELD`] + 1.
    name: Vec<u8>,
    /// The current field is `TLS-Required`: its value goes to `value`.
    in_field: bool,
    /// How many `TLS-Required` fields the header had.
    count: u32,
    /// The value of the first one (bounded by [`MAX_VALUE`]).
    value: Vec<u8>,
    /// The value was longer than [`MAX_VALUE`].
    too_long: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    /// A scanner at the start of a message.
    pub fn new() -> Scanner {
        Scanner {
            state: State::LineStart,
            name: Vec::new(),
            in_field: false,
            count: 0,
            value: Vec::new(),
            too_long: false,
        }
    }

    /// Feeds message bytes (any chunking, CRLF or LF line ends).
    pub fn feed(&mut self, data: &[u8]) {
        for &b in data {
            match self.state {
                State::Body => return,
                State::LineStart => match b {
                    b' ' | b'\t' if !self.name.is_empty() => {
                        // A continuation of the previous field.
                        self.state = State::Value;
                        self.value_byte(b);
                    }
                    // A continuation with no field before it, or an empty
                    // line: the header block is over.
                    b' ' | b'\t' | b'\r' | b'\n' => self.state = State::Body,
                    _ => {
                        self.in_field = false;
                        self.name.clear();
                        self.name_byte(b);
                    }
                },
                State::Name => self.name_byte(b),
                State::Value => {
                    if b == b'\n' {
                        self.state = State::LineStart;
                    }
                    self.value_byte(b);
                }
            }
        }
    }

    fn name_byte(&mut self, b: u8) {
        self.state = State::Name;
        if b == b':' {
            self.in_field = self.name.eq_ignore_ascii_case(FIELD.as_bytes());
            if self.in_field {
                self.count += 1;
            }
            // Marks "a field was seen" for the continuation rule.
            self.name.clear();
            self.name.push(b':');
            self.state = State::Value;
        } else if (33..=126).contains(&b) {
            // Only the first bytes matter: a longer name is another field.
            if self.name.len() <= FIELD.len() {
                self.name.push(b);
            }
        } else {
            // Not a field name (headers::field_name_len): the body
            // starts on this line.
            self.state = State::Body;
        }
    }

    fn value_byte(&mut self, b: u8) {
        if !self.in_field || self.count != 1 {
            return;
        }
        if self.value.len() < MAX_VALUE {
            self.value.push(b);
        } else {
            self.too_long = true;
        }
    }

    /// The verdict once the message (or its header block) is in: exactly
    /// one `TLS-Required` field, and its value is `No`.
    pub fn tls_required_no(&self) -> bool {
        self.count == 1 && !self.too_long && is_no(&self.value)
    }
}

/// The same verdict for a whole message (tests and tools).
pub fn in_message(message: &[u8]) -> bool {
    let mut s = Scanner::new();
    s.feed(message);
    s.tls_required_no()
}

#[cfg(test)]
mod tests {
    use super::super::headers;
    use super::*;

    #[test]
    fn values() {
        for v in [
            " No",
            "No",
            " no",
            " NO ",
            "\tnO\t",
            " No (reports must not wait for TLS)",
            " (why) No",
            " (nested (comment) \\) here) No ( x )",
            "\r\n No",
            " No\r\n (folded comment)",
        ] {
            assert!(is_no(v.as_bytes()), "{v:?}");
        }
        for v in [
            "",
            " ",
            " Yes",
            " N o",
            " Nope",
            " No No",
            " No, thanks",
            " \"No\"",
            " No (unclosed",
            " (comment) ",
            " No (esc \\",
            " N\r\n o",
        ] {
            assert!(!is_no(v.as_bytes()), "{v:?}");
        }
    }

    /// The streaming scanner and the whole-block judge agree, in any
    /// chunking.
    fn both(message: &str) -> bool {
        let m = message.as_bytes();
        let whole = in_message(m);
        for chunk in [1, 2, 3, 5, 64] {
            let mut s = Scanner::new();
            for c in m.chunks(chunk) {
                s.feed(c);
            }
            assert_eq!(s.tls_required_no(), whole, "chunk {chunk}: {message:?}");
        }
        // The header block as local submissions read it.
        let end = m
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|p| p + 1)
            .or_else(|| m.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 2))
            .unwrap_or(m.len());
        if let Ok(fields) = headers::parse(&m[..end], 100) {
            assert_eq!(in_header_block(&m[..end], &fields), whole, "{message:?}");
        }
        whole
    }

    #[test]
    fn messages() {
        assert!(both("Subject: x\r\nTLS-Required: No\r\n\r\nbody\r\n"));
        assert!(both("tls-required:no\r\n\r\n"));
        assert!(both("From: a@b\nTLS-REQUIRED:   nO  \nTo: c@d\n\nbody\n"));
        // Folded, with comments over several lines.
        assert!(both(
            "Subject: x\r\nTLS-Required:\r\n No (TLSRPT:\r\n\treports) \r\nTo: c\r\n\r\n"
        ));
        // Folded Subject before it: its continuation is no field.
        assert!(both(
            "Subject: a\r\n TLS-Required: Yes\r\nTLS-Required: No\r\n\r\n"
        ));
        // In the body only.
        assert!(!both("Subject: x\r\n\r\nTLS-Required: No\r\n"));
        // After a line that ends the header block.
        assert!(!both(
            "Subject: x\r\nnot a header\r\nTLS-Required: No\r\n\r\n"
        ));
        // Another value, another field, a longer name, twice.
        assert!(!both("TLS-Required: Yes\r\n\r\n"));
        assert!(!both("X-TLS-Required: No\r\n\r\n"));
        assert!(!both("TLS-Required-X: No\r\n\r\n"));
        assert!(!both("TLS-Required: No\r\nTLS-Required: No\r\n\r\n"));
        // A space before the colon makes no field (as field_name_len).
        assert!(!both("TLS-Required : No\r\n\r\n"));
        // A header block without an end.
        assert!(both("TLS-Required: No\r\n"));
        assert!(!both(""));
    }

    #[test]
    fn an_overlong_value_is_not_honoured() {
        let c = "x".repeat(MAX_VALUE);
        assert!(!both(&format!("TLS-Required: No ({c})\r\n\r\n")));
        let c = "x".repeat(MAX_VALUE - 20);
        assert!(both(&format!("TLS-Required: No ({c})\r\n\r\n")));
    }
}
