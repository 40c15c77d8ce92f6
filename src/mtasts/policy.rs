//! MTA-STS policies (RFC 8461 §3.2) and MX matching (§4.1). Sans-I/O: the
//! fetcher hands the body over; the planner asks [`Policy::matches`].

use std::fmt;

/// `max_age` is capped at one year (RFC 8461 §3.2: 31557600 seconds).
pub const MAX_AGE_CAP: u32 = 31_557_600;

/// Most `mx` patterns a policy may have. The RFC sets no limit; a bound
/// keeps a cached policy's memory fixed (real policies list a handful).
pub const MAX_MX: usize = 32;

/// The longest `mx` pattern (a domain name: 253 octets, plus `*.`).
pub const MAX_PATTERN: usize = 255;

/// `mode:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Deliver only to matching MX hosts with valid certificates.
    Enforce,
    /// Deliver as without a policy; report failures (TLSRPT).
    Testing,
    /// The domain withdrew its policy.
    None,
}

impl Mode {
    /// The policy's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        match s {
            "enforce" => Some(Mode::Enforce),
            "testing" => Some(Mode::Testing),
            "none" => Some(Mode::None),
            _ => None,
        }
    }
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `mode:`.
    pub mode: Mode,
    /// `max_age:` in seconds, capped at [`MAX_AGE_CAP`].
    pub max_age: u32,
    /// `mx:` patterns, lowercase, without a trailing dot; `*.` for the
    /// one-label wildcard.
    mx: Vec<String>,
}

/// Why a policy body is refused (RFC 8460's `sts-policy-invalid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// Not UTF-8 (the policy is text/plain, RFC 8461 §3.2 says ASCII).
    NotText,
    /// A line without `:` (the line number).
    BadLine(usize),
    /// `version` is missing or not `STSv1`.
    Version,
    /// `mode` is missing or unknown (the value).
    Mode(String),
    /// `max_age` is missing or not 1 to 10 digits (the value).
    MaxAge(String),
    /// An `mx` value is not a domain or `*.` + domain (the value).
    Mx(String),
    /// No `mx` in an `enforce` or `testing` policy.
    NoMx,
    /// More than [`MAX_MX`] patterns.
    TooManyMx(usize),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::record::printable;
        match self {
            PolicyError::NotText => f.write_str("policy is not text"),
            PolicyError::BadLine(n) => write!(f, "line {n} is not \"key: value\""),
            PolicyError::Version => f.write_str("version is missing or not STSv1"),
            PolicyError::Mode(m) => write!(f, "invalid mode \"{}\"", printable(m)),
            PolicyError::MaxAge(m) => write!(f, "invalid max_age \"{}\"", printable(m)),
            PolicyError::Mx(m) => write!(f, "invalid mx pattern \"{}\"", printable(m)),
            PolicyError::NoMx => f.write_str("no mx pattern"),
            PolicyError::TooManyMx(n) => {
                write!(f, "{n} mx patterns (tern accepts at most {MAX_MX})")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// A domain name as an `mx` pattern allows it: LDH labels of 1 to 63
/// octets, at least two labels, at most 253 octets.
fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn pattern(value: &str) -> Result<String, PolicyError> {
    let v = value
        .strip_suffix('.')
        .unwrap_or(value)
        .to_ascii_lowercase();
    let domain = v.strip_prefix("*.").unwrap_or(&v);
    if v.len() > MAX_PATTERN || !valid_domain(domain) {
        return Err(PolicyError::Mx(value.to_string()));
    }
    Ok(v)
}

impl Policy {
    /// Parses a policy body: `key: value` lines separated by LF or CRLF;
    /// the first of a repeated key counts, except `mx`; unknown keys are
    /// ignored (RFC 8461 §3.2).
    pub fn parse(body: &[u8]) -> Result<Policy, PolicyError> {
        let text = std::str::from_utf8(body).map_err(|_| PolicyError::NotText)?;
        let (mut version, mut mode, mut max_age) = (None, None, None);
        let mut mx = Vec::new();
        for (n, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(PolicyError::BadLine(n + 1));
            };
            let value = value.trim_matches([' ', '\t']);
            match key {
                "version" => {
                    version.get_or_insert(value);
                }
                "mode" => {
                    mode.get_or_insert(value);
                }
                "max_age" => {
                    max_age.get_or_insert(value);
                }
                "mx" => {
                    if mx.len() == MAX_MX {
                        return Err(PolicyError::TooManyMx(MAX_MX + 1));
                    }
                    mx.push(pattern(value)?);
                }
                _ => {}
            }
        }
        if version != Some("STSv1") {
            return Err(PolicyError::Version);
        }
        let mode = mode.unwrap_or_default();
        let mode = Mode::parse(mode).ok_or_else(|| PolicyError::Mode(mode.into()))?;
        let age = max_age.unwrap_or_default();
        if age.is_empty() || age.len() > 10 || !age.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PolicyError::MaxAge(age.into()));
        }
        let max_age = age
            .parse::<u64>()
            .map_err(|_| PolicyError::MaxAge(age.into()))?
            .min(u64::from(MAX_AGE_CAP)) as u32;
        if mx.is_empty() && mode != Mode::None {
            return Err(PolicyError::NoMx);
        }
        Ok(Policy { mode, max_age, mx })
    }

    /// A policy from its parts (a plug-in's answer, a cache file); the
    /// patterns are checked as in a fetched policy.
    pub fn from_parts(mode: Mode, max_age: u32, mx: &[&str]) -> Result<Policy, PolicyError> {
        if mx.len() > MAX_MX {
            return Err(PolicyError::TooManyMx(mx.len()));
        }
        let mx = mx.iter().map(|p| pattern(p)).collect::<Result<_, _>>()?;
        Ok(Policy {
            mode,
            max_age: max_age.min(MAX_AGE_CAP),
            mx,
        })
    }

    /// The `mx` patterns.
    pub fn mx_patterns(&self) -> impl Iterator<Item = &str> {
        self.mx.iter().map(String::as_str)
    }

    /// Whether an MX host name matches a pattern (RFC 8461 §4.1): equal,
    /// ignoring case and a trailing dot, or `*.rest` where the host is one
    /// label followed by `.rest`.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.mx.iter().any(|p| pattern_matches(p, host))
    }

    /// The policy in canonical form, one line per field (TLSRPT's
    /// `policy-string`; also the cache file's body).
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        [
            "version: STSv1".to_string(),
            format!("mode: {}", self.mode.as_str()),
        ]
        .into_iter()
        .chain(self.mx.iter().map(|p| format!("mx: {p}")))
        .chain(std::iter::once(format!("max_age: {}", self.max_age)))
    }
}

/// One pattern against one host (both without trailing dots).
pub fn pattern_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail.eq_ignore_ascii_case(rest)),
        None => host.eq_ignore_ascii_case(pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC: &str = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n";

    #[test]
    fn the_rfc_example() {
        let p = Policy::parse(RFC.as_bytes()).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert_eq!(
            p.mx_patterns().collect::<Vec<_>>(),
            ["mail.example.com", "*.example.net", "backupmx.example.com"]
        );
        assert_eq!(
            p.lines().collect::<Vec<_>>(),
            [
                "version: STSv1",
                "mode: enforce",
                "mx: mail.example.com",
                "mx: *.example.net",
                "mx: backupmx.example.com",
                "max_age: 604800"
            ]
        );
        // CRLF, extra spaces, unknown keys, a repeated key (first wins).
        let p = Policy::parse(
            b"version: STSv1\r\nmode:testing\r\nmode: enforce\r\nfoo: bar\r\nmx:   MX1.Example.COM.\r\nmax_age: 99999999999\r\n\r\n",
        );
        assert!(p.is_err(), "11 digits");
        let p = Policy::parse(
            b"version: STSv1\r\nmode:testing\r\nmode: enforce\r\nfoo: bar\r\nmx:   MX1.Example.COM.\r\nmax_age: 9999999999\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Testing);
        assert_eq!(p.max_age, MAX_AGE_CAP);
        assert_eq!(p.mx_patterns().collect::<Vec<_>>(), ["mx1.example.com"]);
    }

    #[test]
    fn matching() {
        let p = Policy::parse(RFC.as_bytes()).unwrap();
        assert!(p.matches("mail.example.com"));
        assert!(p.matches("MAIL.example.COM."));
        assert!(p.matches("mx1.example.net"));
        // The wildcard covers exactly one label.
        assert!(!p.matches("example.net"));
        assert!(!p.matches("a.b.example.net"));
        assert!(!p.matches(".example.net"));
        assert!(!p.matches("mail.example.org"));
        assert!(!p.matches("xmail.example.com"));
    }

    #[test]
    fn errors() {
        let e = |s: &str| Policy::parse(s.as_bytes()).unwrap_err();
        assert_eq!(
            e("mode: enforce\nmx: a.b\nmax_age: 1\n"),
            PolicyError::Version
        );
        assert_eq!(
            e("version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n"),
            PolicyError::Version
        );
        assert_eq!(
            e("version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n"),
            PolicyError::Mode("strict".into())
        );
        assert_eq!(
            e("version: STSv1\nmx: a.b\nmax_age: 1\n"),
            PolicyError::Mode(String::new())
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n"),
            PolicyError::MaxAge("-1".into())
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmx: a.b\n"),
            PolicyError::MaxAge(String::new())
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmax_age: 1\n"),
            PolicyError::NoMx
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmx: *.*.a.b\nmax_age: 1\n"),
            PolicyError::Mx("*.*.a.b".into())
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmx: localhost\nmax_age: 1\n"),
            PolicyError::Mx("localhost".into())
        );
        assert_eq!(
            e("version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n"),
            PolicyError::Mx("a..b".into())
        );
        assert_eq!(e("version STSv1\n"), PolicyError::BadLine(1));
        assert_eq!(Policy::parse(b"\xff\xfe"), Err(PolicyError::NotText));
        let many: String = (0..=MAX_MX)
            .map(|i| format!("mx: m{i}.example\n"))
            .collect();
        assert_eq!(
            e(&format!(
                "version: STSv1\nmode: enforce\n{many}max_age: 1\n"
            )),
            PolicyError::TooManyMx(MAX_MX + 1)
        );
        assert_eq!(
            PolicyError::Mx("a\u{1b}b".into()).to_string(),
            "invalid mx pattern \"a?b\""
        );
    }

    #[test]
    fn mode_none_needs_no_mx() {
        let p = Policy::parse(b"version: STSv1\nmode: none\nmax_age: 86400\n").unwrap();
        assert_eq!(p.mode, Mode::None);
        assert_eq!(p.mx_patterns().count(), 0);
        assert!(!p.matches("mx.example.com"));
    }

    #[test]
    fn parts() {
        let p = Policy::from_parts(Mode::Enforce, u32::MAX, &["MX.Example.test."]).unwrap();
        assert_eq!(p.max_age, MAX_AGE_CAP);
        assert!(p.matches("mx.example.test"));
        assert!(Policy::from_parts(Mode::Enforce, 1, &["bad pattern"]).is_err());
    }
}
