//! The TLSRPT policy record (RFC 8460 §3): the TXT record at
//! `_smtp._tls.<domain>`, `v=TLSRPTv1; rua=mailto:...,https://...`.
//! Sans-I/O: takes the TXT strings the resolver returned.

use std::fmt;

/// Most `rua` URIs a record may list (RFC 8460 sets no limit; a bound keeps
/// memory fixed, and real records list one or two).
pub const MAX_RUA: usize = 8;

/// A domain's reporting policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRptRecord {
    /// The record as published (the `pr` of a collector datagram).
    pub text: String,
    /// The `rua` URIs, in order (`mailto:` and `https:`; others are kept
    /// and skipped when reports are sent).
    pub rua: Vec<String>,
}

/// Why a domain's records do not make a reporting policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// No record begins with `v=TLSRPTv1;`.
    NoRecord,
    /// More than one does (their count).
    Several(usize),
    /// The record has no `rua=`.
    NoRua,
    /// A field is malformed (the field).
    BadField(String),
    /// More than [`MAX_RUA`] URIs.
    TooManyRua(usize),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::NoRecord => f.write_str("no TLSRPT record"),
            RecordError::Several(n) => write!(f, "{n} TLSRPT records (exactly one is allowed)"),
            RecordError::NoRua => f.write_str("TLSRPT record without rua="),
            RecordError::BadField(x) => write!(
                f,
                "malformed field \"{}\" in TLSRPT record",
                crate::mtasts::record::printable(x)
            ),
            RecordError::TooManyRua(n) => {
                write!(
                    f,
                    "{n} rua URIs in TLSRPT record (tern takes at most {MAX_RUA})"
                )
            }
        }
    }
}

impl std::error::Error for RecordError {}

/// Decides a domain's reporting policy from its TXT records at
/// `_smtp._tls.<domain>`, each given as its strings joined (RFC 8460 §3:
/// records not beginning with `v=TLSRPTv1;` are discarded; exactly one
/// must remain).
pub fn discover<'r>(
    records: impl IntoIterator<Item = &'r [u8]>,
) -> Result<TlsRptRecord, RecordError> {
    let mut found = None;
    let mut count = 0usize;
    for r in records {
        if r.starts_with(b"v=TLSRPTv1;") {
            count += 1;
            found.get_or_insert(r);
        }
    }
    match (count, found) {
        (1, Some(r)) => parse(r),
        (0, _) | (_, None) => Err(RecordError::NoRecord),
        (n, _) => Err(RecordError::Several(n)),
    }
}

/// Parses one record that begins with `v=TLSRPTv1;`.
pub fn parse(record: &[u8]) -> Result<TlsRptRecord, RecordError> {
    let text = String::from_utf8_lossy(record).into_owned();
    let mut rua: Option<Vec<String>> = None;
    for field in text.split(';').skip(1) {
        let field = field.trim_matches([' ', '\t']);
        if field.is_empty() {
            continue;
        }
        let Some((name, value)) = field.split_once('=') else {
            return Err(RecordError::BadField(field.to_string()));
        };
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !name_ok || value.is_empty() {
            return Err(RecordError::BadField(field.to_string()));
        }
        if name == "rua" && rua.is_none() {
            let uris: Vec<String> = value
                .split(',')
                .map(|u| u.trim_matches([' ', '\t']).to_string())
                .collect();
            if uris.iter().any(|u| !valid_uri(u)) {
                return Err(RecordError::BadField(field.to_string()));
            }
            if uris.len() > MAX_RUA {
                return Err(RecordError::TooManyRua(uris.len()));
            }
            rua = Some(uris);
        }
    }
    let rua = rua.ok_or(RecordError::NoRua)?;
    Ok(TlsRptRecord { text, rua })
}

/// A URI as RFC 3986 allows it in a record: a scheme, `:`, then visible
/// characters other than `,`, `;` and `!` (RFC 8460's record grammar
/// reserves them).
fn valid_uri(u: &str) -> bool {
    let Some((scheme, rest)) = u.split_once(':') else {
        return false;
    };
    scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b',' | b';' | b'!'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(r: &str) -> Result<TlsRptRecord, RecordError> {
        discover([r.as_bytes()])
    }

    #[test]
    fn records() {
        let r = one("v=TLSRPTv1; rua=mailto:smtp-tls-report@example.com").unwrap();
        assert_eq!(r.rua, ["mailto:smtp-tls-report@example.com"]);
        let r = one("v=TLSRPTv1;rua=mailto:a@example.com, https://r.example.com/tlsrpt;").unwrap();
        assert_eq!(
            r.rua,
            ["mailto:a@example.com", "https://r.example.com/tlsrpt"]
        );
        assert_eq!(
            r.text,
            "v=TLSRPTv1;rua=mailto:a@example.com, https://r.example.com/tlsrpt;"
        );
        // Unknown extensions are fine; the first rua counts.
        let r = one("v=TLSRPTv1; ext=1; rua=mailto:a@x.test; rua=mailto:b@x.test").unwrap();
        assert_eq!(r.rua, ["mailto:a@x.test"]);
    }

    #[test]
    fn discovery() {
        let recs: [&[u8]; 2] = [b"v=spf1 -all", b"v=TLSRPTv1; rua=mailto:a@x.test"];
        assert!(discover(recs).is_ok());
        let recs: [&[u8]; 2] = [
            b"v=TLSRPTv1; rua=mailto:a@x.test",
            b"v=TLSRPTv1; rua=mailto:b@x.test",
        ];
        assert_eq!(discover(recs), Err(RecordError::Several(2)));
        assert_eq!(
            one("v=TLSRPTv2; rua=mailto:a@x.test"),
            Err(RecordError::NoRecord)
        );
        assert_eq!(
            one("v=TLSRPTv1 rua=mailto:a@x.test"),
            Err(RecordError::NoRecord)
        );
    }

    #[test]
    fn errors() {
        assert_eq!(one("v=TLSRPTv1;"), Err(RecordError::NoRua));
        assert_eq!(
            one("v=TLSRPTv1; rua"),
            Err(RecordError::BadField("rua".into()))
        );
        assert_eq!(
            one("v=TLSRPTv1; rua=nocolon"),
            Err(RecordError::BadField("rua=nocolon".into()))
        );
        assert_eq!(
            one("v=TLSRPTv1; rua=mailto:a b@x.test"),
            Err(RecordError::BadField("rua=mailto:a b@x.test".into()))
        );
        let many = (0..=MAX_RUA)
            .map(|i| format!("mailto:r{i}@x.test"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            one(&format!("v=TLSRPTv1; rua={many}")),
            Err(RecordError::TooManyRua(MAX_RUA + 1))
        );
        assert!(RecordError::Several(3).to_string().contains("exactly one"));
    }
}
