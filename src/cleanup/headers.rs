//! Header block and address-list parsing for cleanup: the header block
//! of a local submission (`sendmail`, the pickup) and the addresses `-t`
//! takes from it. Sans-I/O and bounded by the caller's limits.

use std::ops::Range;

/// One header field in a header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name (without the colon).
    pub name: Range<usize>,
    /// The value after the colon up to the end of the last continuation
    /// line (line ends excluded at the very end).
    pub value: Range<usize>,
    /// The whole field including continuation lines and its final line end.
    pub raw: Range<usize>,
}

impl Header {
    /// True if the field is named `name` (ASCII case-insensitive).
    pub fn is(&self, block: &[u8], name: &str) -> bool {
        block
            .get(self.name.clone())
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Why a header block does not parse; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// A continuation line with no field before it.
    OrphanContinuation {
        /// Line number.
        line: usize,
    },
    /// A line that is neither `name:` nor a continuation.
    NotAField {
        /// Line number.
        line: usize,
    },
    /// More fields than the caller allows.
    TooManyFields {
        /// The limit.
        max: usize,
    },
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::OrphanContinuation { line } => {
                write!(f, "header line {line}: continuation without a header field")
            }
            HeaderError::NotAField { line } => {
                write!(f, "header line {line}: not a header field")
            }
            HeaderError::TooManyFields { max } => write!(f, "more than {max} header fields"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Length of the field name if `line` starts a header field (`name:`,
/// name of printable ASCII without colon or space).
pub fn field_name_len(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    (!name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))).then_some(colon)
}

/// True for a continuation line (starts with space or tab).
pub fn is_continuation(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

/// Parses a header block (lines ending in LF or CRLF, no blank line).
pub fn parse(block: &[u8], max_fields: usize) -> Result<Vec<Header>, HeaderError> {
    let mut out: Vec<Header> = Vec::new();
    let mut pos = 0;
    let mut lineno = 0;
    while pos < block.len() {
        lineno += 1;
        let rest = &block[pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |n| n + 1);
        let line = &rest[..end];
        let mut content_end = end;
        while content_end > 0 && matches!(line[content_end - 1], b'\n' | b'\r') {
            content_end -= 1;
        }
        if is_continuation(line) {
            let Some(h) = out.last_mut() else {
                return Err(HeaderError::OrphanContinuation { line: lineno });
            };
            h.value.end = pos + content_end;
            h.raw.end = pos + end;
        } else if let Some(n) = field_name_len(line) {
            if out.len() >= max_fields {
                return Err(HeaderError::TooManyFields { max: max_fields });
            }
            out.push(Header {
                name: pos..pos + n,
                value: pos + n + 1..pos + content_end.max(n + 1),
                raw: pos..pos + end,
            });
        } else {
            return Err(HeaderError::NotAField { line: lineno });
        }
        pos += end;
    }
    Ok(out)
}

/// Why an address list does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// An unclosed quote, comment or angle bracket, or a stray `>`.
    Unbalanced,
    /// One address longer than the envelope allows.
    TooLong,
    /// More addresses than the limit.
    TooMany {
        /// The limit.
        max: usize,
    },
    /// Not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for AddressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressError::Unbalanced => write!(f, "unbalanced quote, comment or <>"),
            AddressError::TooLong => write!(f, "address too long"),
            AddressError::TooMany { max } => write!(f, "more than {max} addresses"),
            AddressError::NotUtf8 => write!(f, "address is not UTF-8"),
        }
    }
}

impl std::error::Error for AddressError {}

fn target<'a>(
    in_angle: bool,
    angle: &'a mut Option<Vec<u8>>,
    plain: &'a mut Vec<u8>,
) -> &'a mut Vec<u8> {
    if in_angle {
        angle.get_or_insert_with(Vec::new)
    } else {
        plain
    }
}

/// Extracts the addresses of an RFC 5322 address list (`To:` value):
/// display names, comments and group names are dropped, `<...>` wins
/// over the rest, whitespace outside quotes is removed. Appends to `out`.
pub fn addresses(value: &[u8], out: &mut Vec<String>, max: usize) -> Result<(), AddressError> {
    let mut plain: Vec<u8> = Vec::new();
    let mut angle: Option<Vec<u8>> = None;
    let mut in_angle = false;
    let mut in_quote = false;
    let mut depth = 0usize;
    let mut escaped = false;
    let mut finish =
        |plain: &mut Vec<u8>, angle: &mut Option<Vec<u8>>| -> Result<(), AddressError> {
            let raw = angle.take().unwrap_or_else(|| std::mem::take(plain));
            plain.clear();
            // Drop an obsolete source route (`@a,@b:user@c`).
            let raw = match raw.iter().rposition(|&b| b == b':') {
                Some(i) if raw.first() == Some(&b'@') => raw[i + 1..].to_vec(),
                _ => raw,
            };
            if raw.is_empty() {
                return Ok(());
            }
            if raw.len() > crate::queue::envelope::MAX_ADDRESS {
                return Err(AddressError::TooLong);
            }
            if out.len() >= max {
                return Err(AddressError::TooMany { max });
            }
            out.push(String::from_utf8(raw).map_err(|_| AddressError::NotUtf8)?);
            Ok(())
        };
    for &b in value {
        if escaped {
            escaped = false;
            if depth == 0 {
                target(in_angle, &mut angle, &mut plain).push(b);
            }
            continue;
        }
        if depth > 0 {
            match b {
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        if in_quote {
            target(in_angle, &mut angle, &mut plain).push(b);
            match b {
                b'\\' => escaped = true,
                b'"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                target(in_angle, &mut angle, &mut plain).push(b);
                in_quote = true;
            }
            b'(' => depth = 1,
            b'<' if !in_angle => {
                in_angle = true;
                angle = Some(Vec::new());
            }
            b'<' => return Err(AddressError::Unbalanced),
            b'>' if in_angle => in_angle = false,
            b'>' => return Err(AddressError::Unbalanced),
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b',' | b';' if !in_angle => finish(&mut plain, &mut angle)?,
            // Group name ("undisclosed-recipients:") is not an address.
            b':' if !in_angle && angle.is_none() && !plain.contains(&b'@') => plain.clear(),
            _ => target(in_angle, &mut angle, &mut plain).push(b),
        }
    }
    if in_quote || in_angle || depth > 0 || escaped {
        return Err(AddressError::Unbalanced);
    }
    finish(&mut plain, &mut angle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block() {
        let b = b"To: a@x,\n  b@y\r\nSubject: hi\n";
        let h = parse(b, 10).unwrap();
        assert_eq!(h.len(), 2);
        assert!(h[0].is(b, "TO"));
        assert_eq!(&b[h[0].value.clone()], b" a@x,\n  b@y");
        assert_eq!(&b[h[1].raw.clone()], b"Subject: hi\n");
        assert_eq!(
            parse(b" x\n", 10),
            Err(HeaderError::OrphanContinuation { line: 1 })
        );
        assert_eq!(
            parse(b"A: 1\nnot a header\n", 10),
            Err(HeaderError::NotAField { line: 2 })
        );
        assert_eq!(
            parse(b"A: 1\nB: 2\n", 1),
            Err(HeaderError::TooManyFields { max: 1 })
        );
    }

    #[test]
    fn address_lists() {
        let mut v = Vec::new();
        addresses(
            b"\"Doe, John\" <john@x.org>, plain@y.org (comment, here), undisclosed:;, grp: a@b, <@r1,@r2:c@d>; last",
            &mut v,
            10,
        )
        .unwrap();
        assert_eq!(v, ["john@x.org", "plain@y.org", "a@b", "c@d", "last"]);
        assert_eq!(
            addresses(b"<a@b", &mut v, 10),
            Err(AddressError::Unbalanced)
        );
        assert_eq!(addresses(b"\"x", &mut v, 10), Err(AddressError::Unbalanced));
        assert_eq!(addresses(b"(x", &mut v, 10), Err(AddressError::Unbalanced));
        let mut w = Vec::new();
        assert_eq!(
            addresses(b"a,b,c", &mut w, 2),
            Err(AddressError::TooMany { max: 2 })
        );
    }
}
