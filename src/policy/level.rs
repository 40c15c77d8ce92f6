//! Postfix's TLS security levels (`smtp_tls_security_level` and the first
//! word of a policy table entry).

use std::fmt;
use std::str::FromStr;

/// A TLS security level, named as in Postfix.
///
/// `Ord` follows Postfix's internal order (none < may < encrypt <
/// fingerprint < dane < dane-only < verify < secure). Only the levels up to
/// encrypt form a strict "more secure than" chain; use the predicates
/// below rather than comparisons for decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// `none`: no TLS.
    None = 0,
    /// `may`: opportunistic TLS, certificates not checked.
    May = 1,
    /// `encrypt`: mandatory TLS, certificates not checked.
    Encrypt = 2,
    /// `fingerprint`: mandatory TLS, certificate or public-key fingerprint match.
    Fingerprint = 3,
    /// `dane`: opportunistic DANE TLS.
    Dane = 4,
    /// `dane-only`: mandatory DANE TLS.
    DaneOnly = 5,
    /// `verify`: mandatory TLS, CA-verified certificate matching the (MX) host name.
    Verify = 6,
    /// `secure`: mandatory TLS, CA-verified certificate matching the next-hop domain.
    Secure = 7,
}

/// A word that is not one of the eight level names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLevel(pub String);

impl fmt::Display for UnknownLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid security level \"{}\"", self.0)
    }
}

impl std::error::Error for UnknownLevel {}

impl Level {
    /// All levels, in the order Postfix's documentation lists them.
    pub const ALL: [Level; 8] = [
        Level::None,
        Level::May,
        Level::Encrypt,
        Level::Dane,
        Level::DaneOnly,
        Level::Fingerprint,
        Level::Verify,
        Level::Secure,
    ];

    /// The Postfix name (`dane-only`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::May => "may",
            Level::Encrypt => "encrypt",
            Level::Fingerprint => "fingerprint",
            Level::Dane => "dane",
            Level::DaneOnly => "dane-only",
            Level::Verify => "verify",
            Level::Secure => "secure",
        }
    }

    /// Parses a level name, ignoring ASCII case as Postfix's name_code() does.
    pub fn parse(s: &str) -> Result<Level, UnknownLevel> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLevel(s.to_string()))
    }

    /// Back from the `repr(u8)` value.
    pub fn from_u8(v: u8) -> Option<Level> {
        Level::ALL.into_iter().find(|l| *l as u8 == v)
    }

    /// TLS is at least tried (every level but `none`).
    pub fn attempts_tls(self) -> bool {
        self != Level::None
    }

    /// Delivery must not happen in the clear: "at least encrypt"
    /// (`encrypt`, `fingerprint`, `dane-only`, `verify`, `secure`).
    /// `dane` is not included: without usable TLSA records it is `may`.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            Level::Encrypt | Level::Fingerprint | Level::DaneOnly | Level::Verify | Level::Secure
        )
    }

    /// Alias of [`Level::requires_tls`], in the words of the Postfix docs.
    pub fn at_least_encrypt(self) -> bool {
        self.requires_tls()
    }

    /// Opportunistic levels: a failed or missing TLS falls back to plaintext
    /// (`may`, and `dane` when the destination has no TLSA records).
    pub fn is_opportunistic(self) -> bool {
        matches!(self, Level::May | Level::Dane)
    }

    /// The server certificate is always authenticated at this level.
    pub fn authenticates(self) -> bool {
        matches!(
            self,
            Level::Fingerprint | Level::DaneOnly | Level::Verify | Level::Secure
        )
    }

    /// DANE levels, which need TLSA lookups.
    pub fn is_dane(self) -> bool {
        matches!(self, Level::Dane | Level::DaneOnly)
    }

    /// Levels that check a name list (`match=` strategies and patterns).
    pub fn uses_name_match(self) -> bool {
        matches!(self, Level::Verify | Level::Secure)
    }

    /// Whether `smtp_tls_mandatory_protocols` (rather than
    /// `smtp_tls_protocols`) applies: every level from `encrypt` up. For
    /// `dane` this holds once usable TLSA records were found.
    pub fn uses_mandatory_settings(self) -> bool {
        self > Level::May
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Level, UnknownLevel> {
        Level::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Ok(l));
            assert_eq!(l.to_string().parse::<Level>(), Ok(l));
            assert_eq!(Level::from_u8(l as u8), Some(l));
        }
        assert_eq!(Level::parse("DANE-Only"), Ok(Level::DaneOnly));
        assert_eq!(Level::parse("Secure"), Ok(Level::Secure));
        assert_eq!(
            Level::parse("must").unwrap_err().to_string(),
            "invalid security level \"must\""
        );
        assert!(Level::parse("").is_err());
        assert!(Level::parse("dane_only").is_err());
        assert_eq!(Level::from_u8(8), None);
    }

    #[test]
    fn predicates() {
        let req: Vec<_> = Level::ALL
            .into_iter()
            .filter(|l| l.requires_tls())
            .collect();
        assert_eq!(
            req,
            vec![
                Level::Encrypt,
                Level::DaneOnly,
                Level::Fingerprint,
                Level::Verify,
                Level::Secure
            ]
        );
        assert!(!Level::Dane.requires_tls());
        assert!(Level::Dane.is_opportunistic() && Level::May.is_opportunistic());
        assert!(!Level::None.attempts_tls() && Level::May.attempts_tls());
        assert!(Level::Fingerprint.authenticates() && !Level::Encrypt.authenticates());
        assert!(Level::Secure > Level::Verify && Level::Encrypt > Level::May);
        assert!(!Level::May.uses_mandatory_settings() && Level::Encrypt.uses_mandatory_settings());
        assert!(Level::Verify.uses_name_match() && !Level::Fingerprint.uses_name_match());
    }
}
