//! Next-hop destinations in Postfix's syntax: `host`, `host:port`,
//! `[host]`, `[host]:port` (relayhost, transport map, policy table keys).
//!
//! Square brackets turn MX lookups off. The verbatim text is kept: Postfix
//! looks the next hop up in `smtp_tls_policy_maps` and
//! `smtp_sasl_password_maps` exactly as written.

use std::fmt;
use std::net::IpAddr;

/// A borrowed, parsed next-hop destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextHop<'a> {
    text: &'a str,
    host: &'a str,
    port: Option<u16>,
    mx: bool,
}

/// Why a next-hop destination was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHopError {
    /// Nothing there.
    Empty,
    /// `[host` without `]`.
    UnclosedBracket,
    /// Something other than `:port` after `]`.
    JunkAfterBracket,
    /// `[]` or `:25` with no host.
    EmptyHost,
    /// Port not a number in 1..=65535 nor a known service name.
    BadPort(String),
    /// Several colons without brackets (write IPv6 addresses as `[2001:db8::1]`).
    BareIpv6,
    /// A character that cannot be in a host name.
    BadHostChar(char),
}

impl fmt::Display for NextHopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHopError::Empty => f.write_str("empty next-hop destination"),
            NextHopError::UnclosedBracket => f.write_str("missing ']' in next-hop destination"),
            NextHopError::JunkAfterBracket => {
                f.write_str("expected \":port\" after ']' in next-hop destination")
            }
            NextHopError::EmptyHost => f.write_str("empty host in next-hop destination"),
            NextHopError::BadPort(p) => write!(
                f,
                "bad port \"{p}\": expected 1-65535 or smtp, submission, submissions, smtps, lmtp"
            ),
            NextHopError::BareIpv6 => f.write_str(
                "IPv6 address without brackets: write [2001:db8::1] or [2001:db8::1]:port",
            ),
            NextHopError::BadHostChar(c) => write!(f, "invalid character {c:?} in host name"),
        }
    }
}

impl std::error::Error for NextHopError {}

/// Port numbers of the service names a next hop may use instead of a number.
/// No `/etc/services` lookup: the core stays free of files.
pub fn service_port(name: &str) -> Option<u16> {
    Some(match name {
        "smtp" => 25,
        "submission" => 587,
        "submissions" | "smtps" | "urd" => 465,
        "lmtp" => 24,
        _ => return None,
    })
}

fn parse_port(p: &str) -> Result<u16, NextHopError> {
    if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(NextHopError::BadPort(p.to_string())),
        }
    } else {
        service_port(p).ok_or_else(|| NextHopError::BadPort(p.to_string()))
    }
}

fn check_host(h: &str, bracketed: bool) -> Result<(), NextHopError> {
    if h.is_empty() {
        return Err(NextHopError::EmptyHost);
    }
    for c in h.chars() {
        let ok = c.is_alphanumeric()
            || matches!(c, '-' | '.' | '_')
            || (bracketed && c == ':')
            || !c.is_ascii() && !c.is_whitespace() && !c.is_control();
        if !ok {
            return Err(NextHopError::BadHostChar(c));
        }
    }
    Ok(())
}

impl<'a> NextHop<'a> {
    /// Parses `host`, `host:port`, `[host]` or `[host]:port`.
    pub fn parse(text: &'a str) -> Result<NextHop<'a>, NextHopError> {
        if text.is_empty() {
            return Err(NextHopError::Empty);
        }
        if let Some(inner) = text.strip_prefix('[') {
            let close = inner.find(']').ok_or(NextHopError::UnclosedBracket)?;
            let host = &inner[..close];
            let rest = &inner[close + 1..];
            let port = if rest.is_empty() {
                None
            } else {
                let p = rest
                    .strip_prefix(':')
                    .ok_or(NextHopError::JunkAfterBracket)?;
                Some(parse_port(p)?)
            };
            check_host(host, true)?;
            return Ok(NextHop {
                text,
                host,
                port,
                mx: false,
            });
        }
        let (host, port) = match text.split_once(':') {
            None => (text, None),
            Some((h, p)) => {
                if p.contains(':') {
                    return Err(NextHopError::BareIpv6);
                }
                (h, Some(parse_port(p)?))
            }
        };
        check_host(host, false)?;
        Ok(NextHop {
            text,
            host,
            port,
            mx: true,
        })
    }

    /// The destination exactly as written (the policy and password table key).
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The host or domain without brackets and port; for certificate
    /// name checks this is the "nexthop" of Postfix's match strategies.
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// The explicit port, if one was written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port to connect to: the explicit one, else `default` (`smtp_tcp_port`).
    pub fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }

    /// True when MX records are looked up (no brackets).
    pub fn uses_mx(&self) -> bool {
        self.mx
    }

    /// The address inside brackets, if it is an IP address (an `ipv6:`
    /// prefix, as Postfix accepts, is skipped).
    pub fn ip(&self) -> Option<IpAddr> {
        if self.mx {
            return None;
        }
        let h = self.host;
        let h = if h.len() > 5 && h[..5].eq_ignore_ascii_case("ipv6:") {
            &h[5..]
        } else {
            h
        };
        h.parse().ok()
    }

    /// An owned copy.
    pub fn to_owned_hop(&self) -> OwnedNextHop {
        let start = if self.mx { 0 } else { 1 };
        OwnedNextHop {
            text: self.text.into(),
            host_start: start as u16,
            host_len: self.host.len() as u16,
            port: self.port,
            mx: self.mx,
        }
    }
}

impl fmt::Display for NextHop<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

/// An owned next hop, for configuration values such as `relayhost` and for
/// grouping recipients; [`OwnedNextHop::borrow`] gives the [`NextHop`] view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnedNextHop {
    text: Box<str>,
    host_start: u16,
    host_len: u16,
    port: Option<u16>,
    mx: bool,
}

impl OwnedNextHop {
    /// Parses and keeps a copy of `text` (at most 65535 bytes).
    pub fn parse(text: &str) -> Result<OwnedNextHop, NextHopError> {
        if text.len() > u16::MAX as usize {
            return Err(NextHopError::BadHostChar('…'));
        }
        NextHop::parse(text).map(|h| h.to_owned_hop())
    }

    /// The borrowed view.
    pub fn borrow(&self) -> NextHop<'_> {
        let s = self.host_start as usize;
        let e = s + self.host_len as usize;
        NextHop {
            text: &self.text,
            host: self.text.get(s..e).unwrap_or(""),
            port: self.port,
            mx: self.mx,
        }
    }
}

impl fmt::Display for OwnedNextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let h = NextHop::parse("[mail.example.com]:587").unwrap();
        assert_eq!(
            (h.host(), h.port(), h.uses_mx()),
            ("mail.example.com", Some(587), false)
        );
        assert_eq!(h.as_str(), "[mail.example.com]:587");
        let h = NextHop::parse("example.com").unwrap();
        assert_eq!(
            (h.host(), h.port(), h.uses_mx()),
            ("example.com", None, true)
        );
        assert_eq!(h.port_or(25), 25);
        let h = NextHop::parse("relay.example:submission").unwrap();
        assert_eq!(
            (h.host(), h.port(), h.uses_mx()),
            ("relay.example", Some(587), true)
        );
        let h = NextHop::parse("[192.0.2.1]").unwrap();
        assert_eq!(h.ip(), Some("192.0.2.1".parse().unwrap()));
        let h = NextHop::parse("[ipv6:2001:db8::1]:25").unwrap();
        assert_eq!(h.ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(h.port(), Some(25));
        assert_eq!(
            NextHop::parse("[2001:db8::1]").unwrap().ip(),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(NextHop::parse("example.com").unwrap().ip(), None);
    }

    #[test]
    fn errors() {
        assert_eq!(NextHop::parse(""), Err(NextHopError::Empty));
        assert_eq!(NextHop::parse("[a"), Err(NextHopError::UnclosedBracket));
        assert_eq!(NextHop::parse("[a]x"), Err(NextHopError::JunkAfterBracket));
        assert_eq!(NextHop::parse("[]"), Err(NextHopError::EmptyHost));
        assert_eq!(NextHop::parse(":25"), Err(NextHopError::EmptyHost));
        assert_eq!(
            NextHop::parse("a:0"),
            Err(NextHopError::BadPort("0".into()))
        );
        assert_eq!(
            NextHop::parse("a:65536"),
            Err(NextHopError::BadPort("65536".into()))
        );
        assert_eq!(NextHop::parse("a:"), Err(NextHopError::BadPort("".into())));
        assert_eq!(
            NextHop::parse("a:http"),
            Err(NextHopError::BadPort("http".into()))
        );
        assert_eq!(NextHop::parse("2001:db8::1"), Err(NextHopError::BareIpv6));
        assert_eq!(NextHop::parse("a b"), Err(NextHopError::BadHostChar(' ')));
        assert_eq!(NextHop::parse("a,b"), Err(NextHopError::BadHostChar(',')));
    }

    #[test]
    fn owned_round_trip() {
        for s in [
            "[h.example]:2525",
            "h.example",
            "[10.0.0.1]",
            "x.example:smtp",
        ] {
            let o = OwnedNextHop::parse(s).unwrap();
            assert_eq!(o.borrow(), NextHop::parse(s).unwrap());
            assert_eq!(o.to_string(), s);
        }
    }
}
