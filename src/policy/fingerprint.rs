//! Certificate and public-key fingerprints as written in `match=` and
//! `smtp_tls_fingerprint_cert_match`.
//!
//! One parser for every place that reads them: the policy table at load,
//! the decision, the delivery tables' digest-length check and the fuzz
//! target. The length is kept, not fixed: Postfix accepts any digest
//! (md5 .. sha512), and `smtp_tls_fingerprint_digest` decides which of
//! them can ever match.

use std::fmt;

/// A certificate or public-key fingerprint (an md5 .. sha512 digest).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    bytes: [u8; 64],
    len: u8,
}

impl Fingerprint {
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Upper-case hex, colon-separated, as Postfix logs a fingerprint.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// A `match=` value at the fingerprint level that is not a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FingerprintError {
    /// Not hexadecimal (with optional colons).
    NotHex(String),
    /// Not the length of a known digest.
    Length {
        /// The text.
        text: String,
        /// Bytes found.
        bytes: usize,
    },
}

impl fmt::Display for FingerprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FingerprintError::NotHex(t) => write!(
                f,
                "invalid fingerprint \"{t}\": expected hexadecimal digits, optionally colon-separated"
            ),
            FingerprintError::Length { text, bytes } => write!(
                f,
                "invalid fingerprint \"{text}\": {bytes} bytes, expected a 16, 20, 28, 32, 48 or 64-byte digest"
            ),
        }
    }
}

impl std::error::Error for FingerprintError {}

/// Parses `AA:BB:...` or `AABB...` (colons optional since Postfix 3.6).
pub fn parse_fingerprint(text: &str) -> Result<Fingerprint, FingerprintError> {
    let not_hex = || FingerprintError::NotHex(text.to_string());
    let mut fp = Fingerprint {
        bytes: [0; 64],
        len: 0,
    };
    let mut high: Option<u8> = None;
    let mut n = 0usize;
    for c in text.chars() {
        if c == ':' {
            if high.is_some() {
                return Err(not_hex());
            }
            continue;
        }
        let d = c.to_digit(16).ok_or_else(not_hex)? as u8;
        match high.take() {
            None => high = Some(d),
            Some(h) => {
                if n < 64 {
                    fp.bytes[n] = h << 4 | d;
                }
                n += 1;
            }
        }
    }
    if high.is_some() {
        return Err(not_hex());
    }
    if !matches!(n, 16 | 20 | 28 | 32 | 48 | 64) {
        return Err(FingerprintError::Length {
            text: text.to_string(),
            bytes: n,
        });
    }
    fp.len = n as u8;
    Ok(fp)
}

// The same text as Display: a fingerprint in a test failure reads as in the log.
impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips() {
        let s = "9A:12:00:FF:9A:12:00:FF:9A:12:00:FF:9A:12:00:FF:9A:12:00:FF:9A:12:00:FF:9A:12:00:FF:9A:12:00:ff";
        let fp = parse_fingerprint(s).unwrap();
        assert_eq!(fp.as_bytes()[0], 0x9a);
        assert_eq!(fp.as_bytes()[31], 0xff);
        assert_eq!(fp.to_string(), s.to_ascii_uppercase());
        assert_eq!(parse_fingerprint(&fp.to_string()), Ok(fp));
        assert_eq!(parse_fingerprint(&s.replace(':', "")), Ok(fp));
        for bad in [
            "",
            "9A",
            "9A:1",
            &format!("{s}:00"),
            &s.replace('9', "g"),
            "9:A1",
        ] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
    }
}
