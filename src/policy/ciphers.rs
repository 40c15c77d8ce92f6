//! `ciphers=` and `exclude=` of the TLS policy table, reduced to what tern
//! (rustls with aws-lc-rs) can honour.
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
                "exclude: unknown or unsupported cipher name \"{n}\" (OpenSSL names and aliases, case-sensitive, e.g. aRSA, CHACHA20, ECDHE-RSA-AES128-GCM-SHA256)"
            ),
            CipherError::Tls13(n) => write!(
                f,
                "exclude: \"{n}\" is a TLS 1.3 cipher suite; exclusions apply only to TLS 1.2 suites (as in Postfix)"
            ),
        }
    }
}

impl std::error::Error for CipherError {}

/// Checks a `ciphers=` grade (already known to be one of Postfix's five).
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

impl ExcludedSuites {
    /// Parses a list separated by colons, commas or whitespace.
    pub fn parse(value: &str) -> Result<ExcludedSuites, CipherError> {
        let mut bits = 0u8;
        for tok in value
            .split(|c: char| c == ':' || c == ',' || c.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
        {
            if TLS13_NAMES.contains(&tok) {
                return Err(CipherError::Tls13(tok.to_string()));
            }
            let mut known = NOTHING_HERE.contains(&tok);
            for (i, s) in TLS12.iter().enumerate() {
                if s.openssl == tok || s.aliases.contains(&tok) || COMMON.contains(&tok) {
                    bits |= 1 << i;
                    known = true;
                }
            }
            if !known {
                return Err(CipherError::Unknown(tok.to_string()));
            }
        }
        Ok(ExcludedSuites(bits))
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
        assert_eq!(check_grade("NULL"), Err(CipherError::NullGrade));
        assert_eq!(check_grade("high"), Ok(()));
        assert!(CipherError::NullGrade.to_string().contains("not supported"));
    }
}
