//! `ciphers=` and `exclude=` of the TLS policy table, and their main.cf
//! counterparts `smtp_tls_(mandatory_)ciphers` and
//! `smtp_tls_(mandatory_)exclude_ciphers`, reduced to what tern (rustls
//! with aws-lc-rs) can honour.
//!
//! - Every cipher suite rustls offers (AES-GCM and ChaCha20-Poly1305 with
//!   ECDHE) belongs to OpenSSL's `HIGH` class, so the grades `high`,
//!   `medium`, `low` and `export` (each of which includes `HIGH` in
//!   Postfix) are satisfied as they are. `null` (only ciphers without
//!   encryption) cannot be, and is refused.
//! - `exclude=` names OpenSSL ciphers or aliases. As in Postfix, whose
//!   exclusions go through OpenSSL's cipher *list* (TLS 1.2 and older), they
//!   apply to the TLS 1.2 suites only; TLS 1.3 suite names are refused.
//!   Names of suites or aliases rustls has are applied; aliases that only
//!   cover ciphers rustls never offers (`aNULL`, `RC4`, `3DES`, ...) are
//!   accepted and exclude nothing; anything else is an error, so that a
//!   typo does not silently leave a cipher enabled.

use std::fmt;

use rustls::CipherSuite;

/// One TLS 1.2 suite of the provider, with the OpenSSL names that cover it.
struct Tls12Suite {
    suite: CipherSuite,
    /// OpenSSL's name of the suite.
    openssl: &'static str,
    /// OpenSSL aliases that include it.
    aliases: &'static [&'static str],
}

const COMMON: &[&str] = &[
    "ALL", "DEFAULT", "HIGH", "AEAD", "TLSv1.2", "kECDHE", "kEECDH", "ECDHE", "EECDH", "ECDH",
];

const TLS12: [Tls12Suite; 6] = [
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        aliases: &["aECDSA", "ECDSA", "AES", "AES256", "AESGCM"],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        aliases: &["aECDSA", "ECDSA", "AES", "AES128", "AESGCM"],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        aliases: &["aECDSA", "ECDSA", "CHACHA20"],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        aliases: &["aRSA", "AES", "AES256", "AESGCM"],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        aliases: &["aRSA", "AES", "AES128", "AESGCM"],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        aliases: &["aRSA", "CHACHA20"],
    },
];

/// OpenSSL names that cover only ciphers rustls never offers (so excluding
/// them changes nothing). `RSA` is OpenSSL's alias for RSA *key exchange*
/// (`kRSA`), not for ECDHE-RSA; `SHA256`/`SHA384` name MACs of CBC suites,
/// not the AEAD suites.
const NOTHING_HERE: &[&str] = &[
    "aNULL",
    "eNULL",
    "NULL",
    "COMPLEMENTOFALL",
    "COMPLEMENTOFDEFAULT",
    "EXPORT",
    "EXP",
    "EXPORT40",
    "EXPORT56",
    "LOW",
    "MEDIUM",
    "MD5",
    "SHA1",
    "SHA",
    "SHA256",
    "SHA384",
    "RC4",
    "RC2",
    "DES",
    "3DES",
    "IDEA",
    "SEED",
    "CAMELLIA",
    "CAMELLIA128",
    "CAMELLIA256",
    "ARIA",
    "ARIA128",
    "ARIA256",
    "PSK",
    "kPSK",
    "aPSK",
    "ECDHEPSK",
    "DHEPSK",
    "RSAPSK",
    "SRP",
    "kSRP",
    "aSRP",
    "DSS",
    "aDSS",
    "DH",
    "kDH",
    "kDHE",
    "kEDH",
    "EDH",
    "DHE",
    "ADH",
    "AECDH",
    "kRSA",
    "RSA",
    "GOST",
    "CCM",
    "AESCCM",
    "AESCCM8",
    "SSLv3",
    "TLSv1",
    "TLSv1.0",
    "kECDHr",
    "kECDHe",
    "aDH",
    "aECDH",
    "kGOST",
    "aGOST",
    "CBC",
];

/// TLS 1.3 suite names: OpenSSL's cipher list (and so Postfix's `exclude=`)
/// does not reach them.
const TLS13_NAMES: &[&str] = &[
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
];

/// Why a `ciphers=` or `exclude=` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherError {
    /// `ciphers=null`: rustls has no cipher without encryption.
    NullGrade,
    /// Not an OpenSSL cipher name or alias tern knows.
    Unknown(String),
    /// A TLS 1.3 suite name in `exclude=`.
    Tls13(String),
}

impl fmt::Display for CipherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CipherError::NullGrade => f.write_str(
                "cipher grade \"null\" is not supported: tern (rustls) has no ciphers without encryption",
            ),
            CipherError::Unknown(n) => write!(
                f,
                "unknown or unsupported cipher name \"{n}\" (OpenSSL names and aliases, case-sensitive, e.g. aRSA, CHACHA20, ECDHE-RSA-AES128-GCM-SHA256)"
            ),
            CipherError::Tls13(n) => write!(
                f,
                "\"{n}\" is a TLS 1.3 cipher suite; exclusions apply only to TLS 1.2 suites (as in Postfix)"
            ),
        }
    }
}

impl std::error::Error for CipherError {}

/// Postfix's cipher grades (case ignored, as Postfix's name_code()).
pub const GRADES: [&str; 5] = ["high", "medium", "low", "export", "null"];

/// Whether `grade` is one of [`GRADES`].
pub fn is_grade(grade: &str) -> bool {
    GRADES.iter().any(|g| g.eq_ignore_ascii_case(grade))
}

/// Checks a `ciphers=` / `smtp_tls_(mandatory_)ciphers` grade (already
/// known to be one of Postfix's five, [`is_grade`]). Every suite rustls
/// offers is OpenSSL `HIGH` (AEAD, forward secret), so `export`, `low`,
/// `medium` and `high` leave the same suites; only `null` cannot be met.
pub fn check_grade(grade: &str) -> Result<(), CipherError> {
    if grade.eq_ignore_ascii_case("null") {
        Err(CipherError::NullGrade)
    } else {
        Ok(())
    }
}

/// The TLS 1.2 suites an `exclude=` value removes (a bit per suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExcludedSuites(u8);

/// The suites one OpenSSL name or alias covers.
fn name_bits(tok: &str) -> Result<u8, CipherError> {
    if TLS13_NAMES.contains(&tok) {
        return Err(CipherError::Tls13(tok.to_string()));
    }
    let mut bits = 0u8;
    let mut known = NOTHING_HERE.contains(&tok);
    for (i, s) in TLS12.iter().enumerate() {
        if s.openssl == tok || s.aliases.contains(&tok) || COMMON.contains(&tok) {
            bits |= 1 << i;
            known = true;
        }
    }
    if known {
        Ok(bits)
    } else {
        Err(CipherError::Unknown(tok.to_string()))
    }
}

impl ExcludedSuites {
    /// Nothing excluded (the default of the main.cf lists).
    pub const NONE: ExcludedSuites = ExcludedSuites(0);

    /// Parses a list separated by colons, commas or whitespace. An element
    /// `A+B` names the suites that match every part (Postfix's
    /// `smtp_tls_exclude_ciphers = kEDH+aRSA`).
    pub fn parse(value: &str) -> Result<ExcludedSuites, CipherError> {
        let mut bits = 0u8;
        for tok in value
            .split(|c: char| c == ':' || c == ',' || c.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
        {
            let mut all = u8::MAX;
            for part in tok.split('+') {
                if part.is_empty() {
                    return Err(CipherError::Unknown(tok.to_string()));
                }
                all &= name_bits(part)?;
            }
            bits |= all;
        }
        Ok(ExcludedSuites(bits))
    }

    /// The suites either set excludes.
    pub fn union(self, other: ExcludedSuites) -> ExcludedSuites {
        ExcludedSuites(self.0 | other.0)
    }

    /// Nothing excluded.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a suite is excluded (TLS 1.3 suites never are).
    pub fn excludes(self, suite: CipherSuite) -> bool {
        TLS12
            .iter()
            .enumerate()
            .any(|(i, s)| s.suite == suite && self.0 & (1 << i) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_names() {
        let e = ExcludedSuites::parse("aRSA").unwrap();
        assert!(e.excludes(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(e.excludes(CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256));
        assert!(!e.excludes(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256));
        assert!(!e.excludes(CipherSuite::TLS13_AES_128_GCM_SHA256));
        let e = ExcludedSuites::parse("CHACHA20:ECDHE-RSA-AES256-GCM-SHA384").unwrap();
        assert!(e.excludes(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
        assert!(e.excludes(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384));
        assert!(!e.excludes(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        // Aliases of ciphers rustls never offers exclude nothing.
        assert!(ExcludedSuites::parse("aNULL:MD5, RC4 3DES:RSA")
            .unwrap()
            .is_empty());
        assert!(ExcludedSuites::parse("").unwrap().is_empty());
        // A+B: only suites matching both parts.
        let e = ExcludedSuites::parse("aRSA+AES256, DES+MD5").unwrap();
        assert!(e.excludes(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384));
        assert!(!e.excludes(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(!e.excludes(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384));
        let u = ExcludedSuites::parse("aRSA")
            .unwrap()
            .union(ExcludedSuites::parse("CHACHA20").unwrap());
        assert!(u.excludes(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
        assert!(u.excludes(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(ExcludedSuites::NONE.union(ExcludedSuites::NONE).is_empty());
        let all = ExcludedSuites::parse("TLSv1.2").unwrap();
        assert!(TLS12.iter().all(|s| all.excludes(s.suite)));
    }

    #[test]
    fn errors() {
        assert_eq!(
            ExcludedSuites::parse("aNULL:arsa"),
            Err(CipherError::Unknown("arsa".into()))
        );
        assert_eq!(
            ExcludedSuites::parse("TLS_AES_128_GCM_SHA256"),
            Err(CipherError::Tls13("TLS_AES_128_GCM_SHA256".into()))
        );
        assert!(ExcludedSuites::parse("!aNULL").is_err());
        assert_eq!(
            ExcludedSuites::parse("aRSA+"),
            Err(CipherError::Unknown("aRSA+".into()))
        );
        assert_eq!(
            ExcludedSuites::parse("aRSA+bogus"),
            Err(CipherError::Unknown("bogus".into()))
        );
        assert!(!is_grade("strong") && is_grade("HIGH") && is_grade("export"));
        assert_eq!(check_grade("NULL"), Err(CipherError::NullGrade));
        assert_eq!(check_grade("high"), Ok(()));
        assert!(CipherError::NullGrade.to_string().contains("not supported"));
    }
}
