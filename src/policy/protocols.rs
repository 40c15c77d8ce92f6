//! `protocols=` / `smtp_tls_protocols` values, reduced to the TLS versions
//! tern (rustls) can speak: TLS 1.2 and TLS 1.3.
//!
//! Both Postfix forms are read: the exclusion form (`!SSLv2, !SSLv3,
//! !TLSv1, !TLSv1.1`, or an inclusion list) and the bounds form of Postfix
//! 3.6 (`>=TLSv1.2`, `<=TLSv1.3`, or hexadecimal `>=0x0303`). As with
//! OpenSSL, the enabled versions form one contiguous range: disabling a
//! version above an enabled one disables everything above it too.

use std::fmt;

/// A set of TLS versions tern can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlsVersions(u8);

/// Why a protocols value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolsError {
    /// Not a protocol name, bound or hex version.
    Unknown(String),
    /// What remains allows neither TLS 1.2 nor TLS 1.3.
    NoUsableVersion(String),
}

impl fmt::Display for ProtocolsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolsError::Unknown(t) => write!(
                f,
                "unknown TLS protocol \"{t}\": expected SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, !name, >=name or <=name"
            ),
            ProtocolsError::NoUsableVersion(v) => write!(
                f,
                "protocols \"{v}\" leave neither TLSv1.2 nor TLSv1.3, the versions tern supports"
            ),
        }
    }
}

impl std::error::Error for ProtocolsError {}

/// Wire versions Postfix knows by name, lowest first.
const KNOWN: [(&str, u16); 6] = [
    ("SSLv2", 0x0002),
    ("SSLv3", 0x0300),
    ("TLSv1", 0x0301),
    ("TLSv1.1", 0x0302),
    ("TLSv1.2", 0x0303),
    ("TLSv1.3", 0x0304),
];

fn by_name(name: &str) -> Option<usize> {
    KNOWN.iter().position(|(n, _)| *n == name)
}

fn version_value(s: &str) -> Option<u16> {
    if let Some(i) = by_name(s) {
        return Some(KNOWN[i].1);
    }
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if hex.is_empty() || hex.len() > 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

impl TlsVersions {
    const TLS12: u8 = 1;
    const TLS13: u8 = 2;

    /// TLS 1.2 and TLS 1.3 (an empty protocols value).
    pub const ALL: TlsVersions = TlsVersions(Self::TLS12 | Self::TLS13);

    /// TLS 1.2 allowed.
    pub fn tls12(self) -> bool {
        self.0 & Self::TLS12 != 0
    }

    /// TLS 1.3 allowed.
    pub fn tls13(self) -> bool {
        self.0 & Self::TLS13 != 0
    }

    /// Neither version allowed (never returned by [`TlsVersions::parse`]).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw bits (for compact storage).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// From raw bits; unknown bits are dropped.
    pub fn from_bits(b: u8) -> TlsVersions {
        TlsVersions(b & Self::ALL.0)
    }

    /// Parses a value separated by whitespace, commas or colons (main.cf
    /// takes all three; the policy table only colons, which is a subset).
    pub fn parse(value: &str) -> Result<TlsVersions, ProtocolsError> {
        // enabled[i] for KNOWN[i]; `include` turns the list into an allow-list.
        let mut include = [false; 6];
        let mut any_include = false;
        let mut exclude = [false; 6];
        let mut low: u16 = 0;
        let mut high: u16 = u16::MAX;
        for tok in value
            .split(|c: char| c == ',' || c == ':' || c.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
        {
            let unknown = || ProtocolsError::Unknown(tok.to_string());
            if let Some(v) = tok.strip_prefix(">=") {
                low = low.max(version_value(v).ok_or_else(unknown)?);
            } else if let Some(v) = tok.strip_prefix("<=") {
                high = high.min(version_value(v).ok_or_else(unknown)?);
            } else if let Some(n) = tok.strip_prefix('!') {
                exclude[by_name(n).ok_or_else(unknown)?] = true;
            } else {
                include[by_name(tok).ok_or_else(unknown)?] = true;
                any_include = true;
            }
        }
        let enabled = |i: usize| {
            let v = KNOWN[i].1;
            (!any_include || include[i]) && !exclude[i] && v >= low && v <= high
        };
        // Contiguous range from the lowest enabled version upwards.
        let mut bits = 0u8;
        if let Some(first) = (0..KNOWN.len()).find(|&i| enabled(i)) {
            for (i, (_, v)) in KNOWN.iter().enumerate().skip(first) {
                if !enabled(i) {
                    break;
                }
                match *v {
                    0x0303 => bits |= Self::TLS12,
                    0x0304 => bits |= Self::TLS13,
                    _ => {}
                }
            }
        }
        if bits == 0 {
            return Err(ProtocolsError::NoUsableVersion(value.to_string()));
        }
        Ok(TlsVersions(bits))
    }
}

impl fmt::Display for TlsVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.tls12(), self.tls13()) {
            (true, true) => f.write_str("TLSv1.2:TLSv1.3"),
            (true, false) => f.write_str("TLSv1.2"),
            (false, true) => f.write_str("TLSv1.3"),
            (false, false) => f.write_str("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<(bool, bool), ProtocolsError> {
        TlsVersions::parse(s).map(|v| (v.tls12(), v.tls13()))
    }

    #[test]
    fn forms() {
        assert_eq!(p(""), Ok((true, true)));
        assert_eq!(p(">=TLSv1"), Ok((true, true)));
        assert_eq!(p("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"), Ok((true, true)));
        assert_eq!(p("!SSLv2:!SSLv3:!TLSv1:!TLSv1.1"), Ok((true, true)));
        assert_eq!(p(">=TLSv1.2"), Ok((true, true)));
        assert_eq!(p(">=TLSv1.3"), Ok((false, true)));
        assert_eq!(p(">=TLSv1, <=TLSv1.2"), Ok((true, false)));
        assert_eq!(p(">=0x0303"), Ok((true, true)));
        assert_eq!(p(">=0304"), Ok((false, true)));
        assert_eq!(p("<=0305"), Ok((true, true)));
        assert_eq!(p("TLSv1.2"), Ok((true, false)));
        assert_eq!(p("TLSv1.2:TLSv1.3"), Ok((true, true)));
        assert_eq!(p("!TLSv1.3"), Ok((true, false)));
        // OpenSSL contiguity: disabling 1.1 with 1.0 enabled cuts off 1.2 and 1.3.
        assert_eq!(
            p("!SSLv2, !SSLv3, !TLSv1.1"),
            Err(ProtocolsError::NoUsableVersion(
                "!SSLv2, !SSLv3, !TLSv1.1".into()
            ))
        );
        assert_eq!(
            p("!SSLv2:!SSLv3:!TLSv1:!TLSv1.1:!TLSv1.2"),
            Ok((false, true))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(p("TLSv1.4"), Err(ProtocolsError::Unknown("TLSv1.4".into())));
        assert_eq!(p("!tlsv1"), Err(ProtocolsError::Unknown("!tlsv1".into())));
        assert_eq!(
            p(">=0x12345"),
            Err(ProtocolsError::Unknown(">=0x12345".into()))
        );
        assert_eq!(p(">="), Err(ProtocolsError::Unknown(">=".into())));
        assert!(matches!(
            p("TLSv1"),
            Err(ProtocolsError::NoUsableVersion(_))
        ));
        assert!(matches!(
            p(">=0305"),
            Err(ProtocolsError::NoUsableVersion(_))
        ));
        assert_eq!(TlsVersions::from_bits(0xff), TlsVersions::ALL);
        assert_eq!(TlsVersions::ALL.to_string(), "TLSv1.2:TLSv1.3");
    }
}
