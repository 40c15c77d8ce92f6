//! Which servers to ask, how long to wait: from a list (`dns_resolvers`)
//! or from `/etc/resolv.conf`.
//!
//! The list is tern's own configuration, so it is parsed strictly, with
//! precise errors. `resolv.conf` belongs to the system and is read the way
//! glibc reads it: unknown lines and options are ignored, at most
//! [`MAX_SERVERS`] name servers, 127.0.0.1 when none is given.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Most servers used (glibc's MAXNS).
pub const MAX_SERVERS: usize = 3;
/// Default per-try timeout (glibc: 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of rounds over the server list (glibc: 2).
pub const DEFAULT_ATTEMPTS: u8 = 2;
/// Upper bounds, as glibc clamps them.
const MAX_TIMEOUT_SECS: u64 = 30;
const MAX_ATTEMPTS: u8 = 5;

/// Resolver settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Servers in order of preference (1..=[`MAX_SERVERS`]).
    pub servers: Vec<SocketAddr>,
    /// Time to wait for one reply from one server.
    pub timeout: Duration,
    /// Rounds over the server list (at least 1).
    pub attempts: u8,
    /// Cache entries (0 disables the cache).
    pub cache_capacity: usize,
}

/// A bad resolver list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfError {
    /// The list is empty.
    Empty,
    /// More than [`MAX_SERVERS`] servers.
    TooMany(usize),
    /// Entry number (1-based) is not `ip`, `ip:port`, `[ipv6]` or
    /// `[ipv6]:port`.
    BadAddress {
        /// 1-based position in the list.
        index: usize,
        /// The entry as written.
        entry: String,
    },
    /// Could not read resolv.conf.
    Io(std::io::ErrorKind),
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfError::Empty => f.write_str("no resolver address given"),
            ConfError::TooMany(n) => write!(f, "{n} resolvers given, at most {MAX_SERVERS}"),
            ConfError::BadAddress { index, entry } => write!(
                f,
                "resolver #{index} \"{entry}\": expected ip, ip:port, [ipv6] or [ipv6]:port"
            ),
            ConfError::Io(k) => write!(f, "cannot read resolv.conf: {k}"),
        }
    }
}

impl std::error::Error for ConfError {}

/// Parses one server: `ip` (port 53), `ip:port`, `[ipv6]`, `[ipv6]:port`.
pub fn parse_server(entry: &str) -> Option<SocketAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    if let Some(inner) = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| SocketAddr::new(IpAddr::V6(ip), 53));
    }
    match entry.parse::<SocketAddr>() {
        Ok(sa) if sa.port() != 0 => Some(sa),
        _ => None,
    }
}

impl ResolverConfig {
    /// Settings for explicit servers with glibc's default timing.
    pub fn with_servers(servers: Vec<SocketAddr>) -> Self {
        ResolverConfig {
            servers,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            cache_capacity: super::cache::DEFAULT_CAPACITY,
        }
    }

    /// Parses a `dns_resolvers` value: entries separated by spaces or
    /// commas.
    pub fn from_list(list: &str) -> Result<Self, ConfError> {
        let mut servers = Vec::new();
        for (i, entry) in list
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let sa = parse_server(entry).ok_or_else(|| ConfError::BadAddress {
                index: i + 1,
                entry: entry.to_string(),
            })?;
            if servers.len() == MAX_SERVERS {
                return Err(ConfError::TooMany(i + 1));
            }
            servers.push(sa);
        }
        if servers.is_empty() {
            return Err(ConfError::Empty);
        }
        Ok(Self::with_servers(servers))
    }

    /// Reads resolv.conf text: `nameserver` lines and `options timeout:N
    /// attempts:N`. Like glibc, bad lines are skipped.
    pub fn from_resolv_conf(text: &str) -> Self {
        let mut cfg = Self::with_servers(Vec::new());
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // glibc reads only the address; a scope id (fe80::1%eth0)
                    // is not supported here and the line is skipped.
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                        if cfg.servers.len() < MAX_SERVERS {
                            cfg.servers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                Some("options") => {
                    for opt in words {
                        if let Some(n) = opt.strip_prefix("timeout:") {
                            if let Ok(n) = n.parse::<u64>() {
                                cfg.timeout = Duration::from_secs(n.clamp(1, MAX_TIMEOUT_SECS));
                            }
                        } else if let Some(n) = opt.strip_prefix("attempts:") {
                            if let Ok(n) = n.parse::<u8>() {
                                cfg.attempts = n.clamp(1, MAX_ATTEMPTS);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if cfg.servers.is_empty() {
            cfg.servers
                .push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        cfg
    }

    /// Reads `/etc/resolv.conf` (or another path).
    pub fn from_resolv_conf_file(path: &std::path::Path) -> Result<Self, ConfError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfError::Io(e.kind()))?;
        Ok(Self::from_resolv_conf(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_forms() {
        let c = ResolverConfig::from_list("127.0.0.1, 127.0.0.2:5353 [::1]:53").unwrap();
        assert_eq!(
            c.servers,
            vec![
                "127.0.0.1:53".parse().unwrap(),
                "127.0.0.2:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        let c = ResolverConfig::from_list("::1").unwrap();
        assert_eq!(c.servers, vec!["[::1]:53".parse().unwrap()]);
        let c = ResolverConfig::from_list("[2001:db8::1]").unwrap();
        assert_eq!(c.servers, vec!["[2001:db8::1]:53".parse().unwrap()]);
    }

    #[test]
    fn list_errors() {
        assert_eq!(ResolverConfig::from_list(" , "), Err(ConfError::Empty));
        assert_eq!(
            ResolverConfig::from_list("127.0.0.1 dns.example"),
            Err(ConfError::BadAddress {
                index: 2,
                entry: "dns.example".into()
            })
        );
        assert!(matches!(
            ResolverConfig::from_list("127.0.0.1:0"),
            Err(ConfError::BadAddress { index: 1, .. })
        ));
        assert!(matches!(
            ResolverConfig::from_list("127.0.0.1:99999"),
            Err(ConfError::BadAddress { .. })
        ));
        assert_eq!(
            ResolverConfig::from_list("1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4"),
            Err(ConfError::TooMany(4))
        );
    }

    #[test]
    fn resolv_conf() {
        let c = ResolverConfig::from_resolv_conf(
            "# comment\nsearch lan\nnameserver 192.0.2.1 # isp\nnameserver fe80::1%eth0\n\
             nameserver junk\nnameserver ::1\noptions ndots:1 timeout:2 attempts:9 trust-ad\n\
             nameserver 192.0.2.2\nnameserver 192.0.2.3\n",
        );
        assert_eq!(
            c.servers,
            vec![
                "192.0.2.1:53".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "192.0.2.2:53".parse().unwrap()
            ]
        );
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.attempts, MAX_ATTEMPTS);
        let d = ResolverConfig::from_resolv_conf("options timeout:0\n");
        assert_eq!(d.servers, vec!["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(d.timeout, Duration::from_secs(1));
        assert_eq!(d.attempts, DEFAULT_ATTEMPTS);
    }
}
