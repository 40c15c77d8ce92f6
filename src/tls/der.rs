//! The few X.509 fields tern needs outside webpki: the SubjectPublicKeyInfo
//! (DANE selector 1, public-key fingerprints) and the issuer name (a DANE-TA
//! trust anchor known only by its key). A bounded DER walker; no panics on
//! garbage (fuzzed by `fuzz/fuzz_targets/x509_fields.rs`).

/// Why a certificate could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerError {
    /// Truncated or malformed DER.
    Malformed,
    /// A structure other than the X.509 Certificate layout.
    UnexpectedTag(u8),
}

/// The parts of a certificate tern reads, as slices of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertFields<'a> {
    /// The issuer Name, whole TLV (SEQUENCE header included).
    pub issuer: &'a [u8],
    /// The subject Name, whole TLV.
    pub subject: &'a [u8],
    /// The SubjectPublicKeyInfo, whole TLV: what DANE selector 1 and
    /// Postfix's public-key fingerprints hash.
    pub spki: &'a [u8],
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION_TAG: u8 = 0xa0;

/// One DER element and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag byte.
    pub tag: u8,
    /// The whole element, header included.
    pub whole: &'a [u8],
    /// The contents only.
    pub contents: &'a [u8],
    /// The input after this element.
    pub rest: &'a [u8],
}

/// Reads one TLV at the start of `input`.
pub fn read_tlv(input: &[u8]) -> Result<Tlv<'_>, DerError> {
    let (&tag, rest) = input.split_first().ok_or(DerError::Malformed)?;
    let (&first, rest) = rest.split_first().ok_or(DerError::Malformed)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(DerError::Malformed);
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(DerError::Malformed);
    }
    let header = input.len() - rest.len();
    Ok(Tlv {
        tag,
        whole: &input[..header + len],
        contents: &rest[..len],
        rest: &rest[len..],
    })
}

fn expect(input: &[u8], want: u8) -> Result<Tlv<'_>, DerError> {
    let t = read_tlv(input)?;
    if t.tag != want {
        return Err(DerError::UnexpectedTag(t.tag));
    }
    Ok(t)
}

/// Extracts issuer, subject and SPKI from a DER certificate.
pub fn cert_fields(cert: &[u8]) -> Result<CertFields<'_>, DerError> {
    let cert_body = expect(cert, SEQUENCE)?.contents;
    let mut rest = expect(cert_body, SEQUENCE)?.contents;
    if rest.first() == Some(&VERSION_TAG) {
        rest = read_tlv(rest)?.rest;
    }
    let serial = expect(rest, INTEGER)?;
    let sig_alg = expect(serial.rest, SEQUENCE)?;
    let issuer = expect(sig_alg.rest, SEQUENCE)?;
    let validity = expect(issuer.rest, SEQUENCE)?;
    let subject = expect(validity.rest, SEQUENCE)?;
    let spki = expect(subject.rest, SEQUENCE)?;
    Ok(CertFields {
        issuer: issuer.whole,
        subject: subject.whole,
        spki: spki.whole,
    })
}

/// The contents of a TLV (strips the tag and length), as webpki's
/// `TrustAnchor` wants subject and SPKI.
pub fn contents(tlv: &[u8]) -> Result<&[u8], DerError> {
    Ok(read_tlv(tlv)?.contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_lengths() {
        assert_eq!(read_tlv(&[0x30, 0x00]).unwrap().whole, &[0x30, 0x00]);
        let long = [&[0x04u8, 0x81, 0x80][..], &[7u8; 128][..]].concat();
        assert_eq!(read_tlv(&long).unwrap().contents.len(), 128);
        assert_eq!(read_tlv(&[0x30]).err(), Some(DerError::Malformed));
        assert_eq!(read_tlv(&[0x30, 0x05, 1]).err(), Some(DerError::Malformed));
        assert_eq!(read_tlv(&[0x30, 0x80]).err(), Some(DerError::Malformed));
        assert_eq!(
            read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]),
            Err(DerError::Malformed)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(cert_fields(b"").is_err());
        assert!(cert_fields(b"\x30\x03\x02\x01\x01").is_err());
        assert_eq!(cert_fields(b"\x04\x00"), Err(DerError::UnexpectedTag(4)));
    }
}
