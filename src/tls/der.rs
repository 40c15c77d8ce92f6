//! The few X.509 fields tern needs outside webpki: the SubjectPublicKeyInfo
//! (DANE selector 1, public-key fingerprints), the issuer name (a DANE-TA
//! trust anchor known only by its key), the validity period (a trust anchor
//! presented as the server's own certificate) and the subjectAltName DNS
//! names and subject CNs (name checks as OpenSSL makes them for Postfix).
//! A bounded DER walker; no panics on garbage (fuzzed by
//! `fuzz/fuzz_targets/x509_fields.rs`).

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
    /// The Validity SEQUENCE, whole TLV (see [`validity`]).
    pub validity: &'a [u8],
    /// The contents of the `[3]` extensions wrapper (the SEQUENCE of
    /// Extension), when the certificate has one.
    pub extensions: Option<&'a [u8]>,
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
    // issuerUniqueID [1] and subjectUniqueID [2] may come before [3].
    let mut rest = spki.rest;
    let mut extensions = None;
    while !rest.is_empty() {
        let t = read_tlv(rest)?;
        if t.tag == EXTENSIONS_TAG {
            extensions = Some(t.contents);
        }
        rest = t.rest;
    }
    Ok(CertFields {
        issuer: issuer.whole,
        subject: subject.whole,
        spki: spki.whole,
        validity: validity.whole,
        extensions,
    })
}

const EXTENSIONS_TAG: u8 = 0xa3;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
/// OID 2.5.29.17, subjectAltName.
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// GeneralName `[2] IMPLICIT IA5String`, dNSName.
const DNS_NAME_TAG: u8 = 0x82;

/// The dNSName entries of the subjectAltName extension, as raw bytes (not
/// validated: OpenSSL counts a malformed one as present too, which turns
/// the CN fallback off). `Ok(None)` when the certificate has no
/// subjectAltName extension, `Ok(Some(empty))` when it has one without
/// DNS names (only IP addresses, say).
pub fn subject_alt_dns_names(cert: &[u8]) -> Result<Option<Vec<&[u8]>>, DerError> {
    let Some(mut exts) = cert_fields(cert)?.extensions else {
        return Ok(None);
    };
    let list = expect(exts, SEQUENCE)?;
    exts = list.contents;
    while !exts.is_empty() {
        let ext = expect(exts, SEQUENCE)?;
        exts = ext.rest;
        let oid = expect(ext.contents, OID)?;
        let mut value = read_tlv(oid.rest)?;
        if value.tag == BOOLEAN {
            value = read_tlv(value.rest)?;
        }
        if value.tag != OCTET_STRING {
            return Err(DerError::UnexpectedTag(value.tag));
        }
        if oid.contents != OID_SUBJECT_ALT_NAME {
            continue;
        }
        let mut names = expect(value.contents, SEQUENCE)?.contents;
        let mut out = Vec::new();
        while !names.is_empty() {
            let gn = read_tlv(names)?;
            names = gn.rest;
            if gn.tag == DNS_NAME_TAG {
                out.push(gn.contents);
            }
        }
        return Ok(Some(out));
    }
    Ok(None)
}

/// notBefore and notAfter of a Validity TLV ([`CertFields::validity`]), in
/// seconds since the Unix epoch.
pub fn validity(tlv: &[u8]) -> Result<(u64, u64), DerError> {
    let v = expect(tlv, SEQUENCE)?;
    let not_before = read_tlv(v.contents)?;
    let not_after = read_tlv(not_before.rest)?;
    Ok((
        der_time(not_before.tag, not_before.contents)?,
        der_time(not_after.tag, not_after.contents)?,
    ))
}

/// UTCTime (`YYMMDDHHMMSSZ`, 1950-2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) as RFC 5280 §4.1.2.5 requires them, as Unix seconds.
fn der_time(tag: u8, v: &[u8]) -> Result<u64, DerError> {
    let (year, rest) = match (tag, v.len()) {
        (0x17, 13) => {
            let yy = digits(&v[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &v[2..])
        }
        (0x18, 15) => (digits(&v[..4])?, &v[4..]),
        (0x17 | 0x18, _) => return Err(DerError::Malformed),
        (other, _) => return Err(DerError::UnexpectedTag(other)),
    };
    if rest.last() != Some(&b'Z') {
        return Err(DerError::Malformed);
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let (h, m, s) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return Err(DerError::Malformed);
    }
    // Days from civil (Howard Hinnant's algorithm). GeneralizedTime may
    // say year 0000 (found by fuzz/x509_fields): a date before 1970 is
    // refused below, and year 0 in January or February must not underflow.
    let y = if month <= 2 {
        year.checked_sub(1).ok_or(DerError::Malformed)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe)
        .checked_sub(719_468)
        .ok_or(DerError::Malformed)?;
    Ok(days * 86_400 + h * 3600 + m * 60 + s)
}

fn digits(v: &[u8]) -> Result<u64, DerError> {
    v.iter().try_fold(0u64, |acc, b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + u64::from(b - b'0'))
        } else {
            Err(DerError::Malformed)
        }
    })
}

/// OID 2.5.4.3, commonName.
pub const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// OID 2.5.4.10, organizationName.
pub const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// Longest attribute value returned (bytes); X.520 bounds a CN at 64
/// characters, so this only stops a hostile certificate.
const MAX_ATTRIBUTE: usize = 256;

/// The first attribute of type `oid` in a DER Name (whole TLV, as in
/// [`CertFields::issuer`]), as text; `Ok(None)` when the Name has none.
///
/// Like Postfix's `tls_text_name()`, a value that is not valid text for
/// its string type, or that holds control characters (a NUL or a newline
/// could forge log lines or header fields), is refused with
/// [`DerError::Malformed`] rather than printed.
pub fn name_attribute(name: &[u8], oid: &[u8]) -> Result<Option<String>, DerError> {
    let mut rdns = expect(name, SEQUENCE)?.contents;
    while !rdns.is_empty() {
        let set = expect(rdns, SET)?;
        rdns = set.rest;
        let mut atvs = set.contents;
        while !atvs.is_empty() {
            let atv = expect(atvs, SEQUENCE)?;
            atvs = atv.rest;
            let found = expect(atv.contents, OID)?;
            if found.contents == oid {
                let value = read_tlv(found.rest)?;
                return directory_string(value.tag, value.contents).map(Some);
            }
        }
    }
    Ok(None)
}

/// Every attribute of type `oid` in a DER Name, in order, as text; values
/// [`name_attribute`] would refuse are left out. OpenSSL checks every CN
/// of the subject when a certificate has no DNS subjectAltName.
pub fn name_attributes(name: &[u8], oid: &[u8]) -> Result<Vec<String>, DerError> {
    let mut out = Vec::new();
    let mut rdns = expect(name, SEQUENCE)?.contents;
    while !rdns.is_empty() {
        let set = expect(rdns, SET)?;
        rdns = set.rest;
        let mut atvs = set.contents;
        while !atvs.is_empty() {
            let atv = expect(atvs, SEQUENCE)?;
            atvs = atv.rest;
            let found = expect(atv.contents, OID)?;
            if found.contents == oid {
                let value = read_tlv(found.rest)?;
                if let Ok(text) = directory_string(value.tag, value.contents) {
                    out.push(text);
                }
            }
        }
    }
    Ok(out)
}

/// A DirectoryString (RFC 5280 §4.1.2.4) or IA5String as text.
fn directory_string(tag: u8, v: &[u8]) -> Result<String, DerError> {
    if v.len() > MAX_ATTRIBUTE {
        return Err(DerError::Malformed);
    }
    let text = match tag {
        // UTF8String, PrintableString, IA5String
        0x0c | 0x13 | 0x16 => core::str::from_utf8(v)
            .map_err(|_| DerError::Malformed)?
            .to_string(),
        // TeletexString: in practice Latin-1.
        0x14 => v.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UTF-16BE.
        0x1e => {
            if v.len() % 2 != 0 {
                return Err(DerError::Malformed);
            }
            let units = v.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| DerError::Malformed)?
        }
        other => return Err(DerError::UnexpectedTag(other)),
    };
    if text.chars().any(char::is_control) {
        return Err(DerError::Malformed);
    }
    Ok(text)
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

    /// A Name of `attrs` (type OID contents, string tag, value), one RDN each.
    fn name(attrs: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
        let tlv = |tag: u8, body: &[u8]| {
            let mut v = vec![tag, u8::try_from(body.len()).unwrap()];
            v.extend_from_slice(body);
            v
        };
        let mut rdns = Vec::new();
        for (oid, tag, value) in attrs {
            let atv = [tlv(OID, oid), tlv(*tag, value)].concat();
            rdns.extend(tlv(SET, &tlv(SEQUENCE, &atv)));
        }
        tlv(SEQUENCE, &rdns)
    }

    #[test]
    fn name_attributes() {
        let n = name(&[
            (&[0x55, 0x04, 0x06], 0x13, b"DE"),
            (OID_ORGANIZATION, 0x0c, "Müller".as_bytes()),
            (OID_COMMON_NAME, 0x13, b"client.example"),
        ]);
        assert_eq!(
            name_attribute(&n, OID_COMMON_NAME),
            Ok(Some("client.example".into()))
        );
        assert_eq!(
            name_attribute(&n, OID_ORGANIZATION),
            Ok(Some("Müller".into()))
        );
        assert_eq!(name_attribute(&n, &[0x55, 0x04, 0x0b]), Ok(None));
        // BMPString and TeletexString.
        let n = name(&[(OID_COMMON_NAME, 0x1e, &[0, b'h', 0, b'i'])]);
        assert_eq!(name_attribute(&n, OID_COMMON_NAME), Ok(Some("hi".into())));
        let n = name(&[(OID_COMMON_NAME, 0x14, &[b'a', 0xe9])]);
        assert_eq!(name_attribute(&n, OID_COMMON_NAME), Ok(Some("aé".into())));
    }

    #[test]
    fn name_attribute_errors() {
        // Control characters could forge a log line or a header field.
        for bad in [&b"a\nb"[..], b"a\0b", b"\x1b[1m"] {
            let n = name(&[(OID_COMMON_NAME, 0x0c, bad)]);
            assert_eq!(
                name_attribute(&n, OID_COMMON_NAME),
                Err(DerError::Malformed),
                "{bad:?}"
            );
        }
        let n = name(&[(OID_COMMON_NAME, 0x0c, &[0xff, 0xfe])]);
        assert_eq!(
            name_attribute(&n, OID_COMMON_NAME),
            Err(DerError::Malformed)
        );
        let n = name(&[(OID_COMMON_NAME, 0x1e, &[0, b'h', 0])]);
        assert_eq!(
            name_attribute(&n, OID_COMMON_NAME),
            Err(DerError::Malformed)
        );
        let n = name(&[(OID_COMMON_NAME, 0x04, b"x")]);
        assert_eq!(
            name_attribute(&n, OID_COMMON_NAME),
            Err(DerError::UnexpectedTag(0x04))
        );
        let long = vec![b'a'; 300];
        let mut n = vec![
            0x30, 0x82, 0x01, 0x3d, 0x31, 0x82, 0x01, 0x39, 0x30, 0x82, 0x01, 0x35,
        ];
        n.extend_from_slice(&[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x82, 0x01, 0x2c]);
        n.extend_from_slice(&long);
        assert_eq!(read_tlv(&n).map(|t| t.rest.len()), Ok(0), "well-formed DER");
        assert_eq!(
            name_attribute(&n, OID_COMMON_NAME),
            Err(DerError::Malformed)
        );
        // Not a Name at all, truncated, a SEQUENCE where a SET belongs.
        assert_eq!(
            name_attribute(b"\x04\x00", OID_COMMON_NAME),
            Err(DerError::UnexpectedTag(4))
        );
        assert_eq!(
            name_attribute(b"\x30\x05\x31", OID_COMMON_NAME),
            Err(DerError::Malformed)
        );
        assert_eq!(
            name_attribute(b"\x30\x02\x30\x00", OID_COMMON_NAME),
            Err(DerError::UnexpectedTag(0x30))
        );
        assert_eq!(name_attribute(b"\x30\x00", OID_COMMON_NAME), Ok(None));
    }

    #[test]
    fn times() {
        assert_eq!(der_time(0x17, b"700101000000Z"), Ok(0));
        assert_eq!(der_time(0x17, b"491231235959Z"), Ok(2_524_607_999));
        assert_eq!(der_time(0x18, b"20380119031408Z"), Ok(2_147_483_648));
        assert_eq!(der_time(0x18, b"20000229120000Z"), Ok(951_825_600));
        assert_eq!(der_time(0x17, b"700101000000"), Err(DerError::Malformed));
        assert_eq!(der_time(0x17, b"701301000000Z"), Err(DerError::Malformed));
        assert_eq!(der_time(0x17, b"7001010000a0Z"), Err(DerError::Malformed));
        assert_eq!(der_time(0x04, b"x"), Err(DerError::UnexpectedTag(4)));
        assert!(validity(b"\x30\x00").is_err());
        // Found by fuzz/x509_fields (fuzz-ci, 2026-12-07): GeneralizedTime
        // year 0000 in January underflowed; every pre-1970 date is refused.
        assert_eq!(der_time(0x18, b"00000129045748Z"), Err(DerError::Malformed));
        assert_eq!(der_time(0x18, b"00000329045748Z"), Err(DerError::Malformed));
        assert_eq!(der_time(0x18, b"19691231235959Z"), Err(DerError::Malformed));
    }

    #[test]
    fn all_common_names() {
        let n = name(&[
            (OID_COMMON_NAME, 0x0c, b"one.example"),
            (OID_ORGANIZATION, 0x0c, b"org"),
            (OID_COMMON_NAME, 0x0c, b"bad\nname"),
            (OID_COMMON_NAME, 0x13, b"two.example"),
        ]);
        assert_eq!(
            super::name_attributes(&n, OID_COMMON_NAME),
            Ok(vec!["one.example".to_string(), "two.example".to_string()])
        );
        assert!(super::name_attributes(b"\x04\x00", OID_COMMON_NAME).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(subject_alt_dns_names(b"").is_err());
        assert!(subject_alt_dns_names(b"\x30\x03\x02\x01\x01").is_err());
        assert!(cert_fields(b"").is_err());
        assert!(cert_fields(b"\x30\x03\x02\x01\x01").is_err());
        assert_eq!(cert_fields(b"\x04\x00"), Err(DerError::UnexpectedTag(4)));
    }
}
