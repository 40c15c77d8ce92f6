//! Standard base64 (RFC 4648 §4), for SMTP AUTH and password hashes. Small
//! enough that a crate would cost more than it saves.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why base64 text could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A byte outside the alphabet, at this offset.
    InvalidByte(usize),
    /// Length or padding is impossible for base64.
    InvalidLength,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::InvalidByte(i) => write!(f, "invalid base64 character at offset {i}"),
            DecodeError::InvalidLength => write!(f, "invalid base64 length or padding"),
        }
    }
}

/// Encodes with `=` padding.
pub fn encode(data: &[u8]) -> String {
    let mut s = encode_unpadded(data);
    while s.len() % 4 != 0 {
        s.push('=');
    }
    s
}

/// Encodes without padding (PHC strings).
pub fn encode_unpadded(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes padded or unpadded base64; whitespace is not allowed.
pub fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let bytes = text.as_bytes();
    let trimmed = match bytes.iter().position(|b| *b == b'=') {
        Some(p) => {
            if bytes[p..].iter().any(|b| *b != b'=') || bytes.len() % 4 != 0 || bytes.len() - p > 2
            {
                return Err(DecodeError::InvalidLength);
            }
            &bytes[..p]
        }
        None => bytes,
    };
    if trimmed.len() % 4 == 1 {
        return Err(DecodeError::InvalidLength);
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for (ci, chunk) in trimmed.chunks(4).enumerate() {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = value(*c).ok_or(DecodeError::InvalidByte(ci * 4 + i))?;
            n |= v << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        for i in 0..produced {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Ok(out)
}

/// Decodes padded base64 strictly, as SASL (RFC 4954) wants it; `None` on
/// any malformed input (wrong length,
/// bad characters, misplaced padding, non-zero trailing bits).
pub fn decode_strict(input: &[u8]) -> Option<Vec<u8>> {
    if input.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let quads = input.len() / 4;
    for (qi, q) in input.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && qi + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc).unwrap(), plain.as_bytes());
            assert_eq!(decode(enc.trim_end_matches('=')).unwrap(), plain.as_bytes());
        }
        assert_eq!(decode("AGFsaWNlAHNlY3JldA==").unwrap(), b"\0alice\0secret");
    }

    #[test]
    fn errors() {
        assert_eq!(decode("Zm9v!A"), Err(DecodeError::InvalidByte(4)));
        assert_eq!(decode("Z"), Err(DecodeError::InvalidLength));
        assert_eq!(decode("Zg=a"), Err(DecodeError::InvalidLength));
        assert_eq!(decode("Zg==="), Err(DecodeError::InvalidLength));
        assert_eq!(decode("Zm 9vAA"), Err(DecodeError::InvalidByte(2)));
    }
    #[test]
    fn malformed() {
        for bad in ["Zg=", "Zg", "Z===", "Zg==Zg==", "Zh==", "Zm9*", "Zm=v"] {
            assert_eq!(decode_strict(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn strict_accepts_padded_vectors() {
        assert_eq!(decode_strict(b"Zm9vYg==").unwrap(), b"foob");
        assert_eq!(decode_strict(b"AHVzZXIAcGFzcw==").unwrap(), b"\0user\0pass");
    }
}
