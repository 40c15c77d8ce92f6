//! MTA-STS discovery record (RFC 8461 §3.1): the TXT record at
//! `_mta-sts.<domain>`, `v=STSv1; id=...;`. Sans-I/O: takes the TXT
//! strings the resolver returned.

use std::fmt;

/// The longest policy ID (RFC 8461 §3.1: 1*32 ALPHA / DIGIT).
pub const MAX_ID: usize = 32;

/// A policy ID: changes whenever the policy does.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyId {
    bytes: [u8; MAX_ID],
    len: u8,
}

impl PolicyId {
    /// Parses an ID (1 to 32 ASCII letters and digits).
    pub fn parse(text: &str) -> Option<PolicyId> {
        let b = text.as_bytes();
        if b.is_empty() || b.len() > MAX_ID || !b.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let mut id = PolicyId {
            bytes: [0; MAX_ID],
            len: b.len() as u8,
        };
        id.bytes[..b.len()].copy_from_slice(b);
        Some(id)
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics were stored.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyId({})", self.as_str())
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the TXT answer says about a domain's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// One valid record: a policy with this ID exists.
    Policy(PolicyId),
    /// No record begins with `v=STSv1;`: the domain has no policy.
    NoRecord,
    /// Several `v=STSv1` records, or one that is malformed: RFC 8461 §3.1
    /// says to act as if there were no policy; the reason is for the log.
    Invalid(RecordError),
}

/// Why a discovery record does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// More than one record begins with `v=STSv1;` (their count).
    Several(usize),
    /// The record has no `id=` field.
    NoId,
    /// A field is not `name=value` with the RFC's characters (the field).
    BadField(String),
    /// The `id=` value is not 1 to 32 letters and digits.
    BadId(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Several(n) => {
                write!(f, "{n} MTA-STS TXT records (exactly one is allowed)")
            }
            RecordError::NoId => f.write_str("MTA-STS TXT record without id="),
            RecordError::BadField(x) => write!(
                f,
                "malformed field \"{}\" in MTA-STS TXT record",
                printable(x)
            ),
            RecordError::BadId(x) => write!(
                f,
                "invalid id \"{}\" in MTA-STS TXT record (1 to 32 letters and digits)",
                printable(x)
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// Control characters replaced and the length bounded, for log lines
/// (the queue's own helper for free text from peers).
pub(crate) fn printable(s: &str) -> String {
    crate::queue::envelope::sanitize_text(s, 100)
}

/// Whether a TXT record (its strings joined) is an STS record at all: it
/// begins with `v=STSv1;` (RFC 8461 §3.1; other records at the name are
/// discarded).
fn is_sts(text: &[u8]) -> bool {
    text.starts_with(b"v=STSv1;")
}

/// Decides discovery from the TXT records at `_mta-sts.<domain>`, each
/// given as its strings joined.
pub fn discover<'r>(records: impl IntoIterator<Item = &'r [u8]>) -> Discovery {
    let mut found: Option<&[u8]> = None;
    let mut count = 0usize;
    for r in records {
        if is_sts(r) {
            count += 1;
            found.get_or_insert(r);
        }
    }
    match (count, found) {
        (0, _) | (_, None) => Discovery::NoRecord,
        (1, Some(r)) => match parse(r) {
            Ok(id) => Discovery::Policy(id),
            Err(e) => Discovery::Invalid(e),
        },
        (n, _) => Discovery::Invalid(RecordError::Several(n)),
    }
}

/// Parses one record that begins with `v=STSv1;`:
/// `sts-version 1*(*WSP ";" *WSP sts-field) [";"]`.
pub fn parse(record: &[u8]) -> Result<PolicyId, RecordError> {
    let text = String::from_utf8_lossy(record);
    let mut id = None;
    let mut fields = text.split(';');
    // The version; is_sts checked it.
    fields.next();
    for f in fields {
        let f = f.trim_matches([' ', '\t']);
        if f.is_empty() {
            // A trailing ";" (or an empty field, which the grammar's *WSP
            // does not allow between two ";" but senders write).
            continue;
        }
        let Some((name, value)) = f.split_once('=') else {
            return Err(RecordError::BadField(f.to_string()));
        };
        let name_ok = name.len() <= 32
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        let value_ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b';' && b != b'=');
        if !name_ok || !value_ok {
            return Err(RecordError::BadField(f.to_string()));
        }
        if name == "id" && id.is_none() {
            id = Some(PolicyId::parse(value).ok_or_else(|| RecordError::BadId(value.into()))?);
        }
    }
    id.ok_or(RecordError::NoId)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(r: &str) -> Discovery {
        discover([r.as_bytes()])
    }

    #[test]
    fn valid_records() {
        let id = |s| Discovery::Policy(PolicyId::parse(s).unwrap());
        assert_eq!(one("v=STSv1; id=20160831085700Z;"), id("20160831085700Z"));
        assert_eq!(one("v=STSv1;id=abc"), id("abc"));
        assert_eq!(one("v=STSv1; id=abc; ext=1"), id("abc"));
        assert_eq!(one("v=STSv1;\tid=abc ;"), id("abc"));
        // The first id wins.
        assert_eq!(one("v=STSv1; id=a1; id=b2"), id("a1"));
    }

    #[test]
    fn other_records_are_discarded() {
        let recs: [&[u8]; 3] = [b"v=spf1 -all", b"v=STSv1; id=x1;", b"hello"];
        assert_eq!(
            discover(recs),
            Discovery::Policy(PolicyId::parse("x1").unwrap())
        );
        assert_eq!(discover([b"v=spf1 -all".as_slice()]), Discovery::NoRecord);
        assert_eq!(discover(std::iter::empty()), Discovery::NoRecord);
        // Not `v=STSv1;` at the start: not an STS record (RFC 8461 §3.1).
        assert_eq!(one("v=STSv1 id=abc"), Discovery::NoRecord);
        assert_eq!(one(" v=STSv1; id=abc"), Discovery::NoRecord);
        assert_eq!(one("v=stsv1; id=abc"), Discovery::NoRecord);
    }

    #[test]
    fn errors_mean_no_policy() {
        let recs: [&[u8]; 2] = [b"v=STSv1; id=a;", b"v=STSv1; id=b;"];
        assert_eq!(discover(recs), Discovery::Invalid(RecordError::Several(2)));
        assert_eq!(one("v=STSv1;"), Discovery::Invalid(RecordError::NoId));
        assert_eq!(one("v=STSv1; ext=1"), Discovery::Invalid(RecordError::NoId));
        assert_eq!(
            one("v=STSv1; id=abc-def"),
            Discovery::Invalid(RecordError::BadId("abc-def".into()))
        );
        assert_eq!(
            one("v=STSv1; id=123456789012345678901234567890123"),
            Discovery::Invalid(RecordError::BadId(
                "123456789012345678901234567890123".into()
            ))
        );
        assert_eq!(
            one("v=STSv1; id"),
            Discovery::Invalid(RecordError::BadField("id".into()))
        );
        assert_eq!(
            one("v=STSv1; id=a b"),
            Discovery::Invalid(RecordError::BadField("id=a b".into()))
        );
        assert_eq!(
            one("v=STSv1; _x=1; id=a"),
            Discovery::Invalid(RecordError::BadField("_x=1".into()))
        );
        assert!(RecordError::Several(2).to_string().contains("exactly one"));
        assert_eq!(
            RecordError::BadField("a\nb".into()).to_string(),
            "malformed field \"a?b\" in MTA-STS TXT record"
        );
    }

    #[test]
    fn ids() {
        assert!(PolicyId::parse("").is_none());
        assert!(PolicyId::parse("Ab9").is_some());
        assert!(PolicyId::parse("é").is_none());
        assert_eq!(PolicyId::parse("Ab9").unwrap().to_string(), "Ab9");
    }
}
