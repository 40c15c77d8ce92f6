//! Addresses in configuration values: networks (`mynetworks`) and listener
//! addresses. Next hops are `policy::NextHop`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IP network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `127.0.0.0/8`, `[::1]/128`, `::1/128`, or a bare address.
    pub fn parse(s: &str) -> Result<Network, String> {
        let (a, p) = match s.rsplit_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let a = a.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("\"{s}\" is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("\"{s}\": prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }

    /// Whether `ip` is inside this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Parses one listener entry: `ip:port`, `[v6]:port`, or a bare `port` /
/// `:port`, which binds every address in `inet_interfaces` (`all`,
/// `loopback-only` or addresses).
pub fn parse_listen(s: &str, interfaces: &[&str]) -> Result<Vec<SocketAddr>, String> {
    let bad = || format!("\"{s}\" is not a listener address (ip:port, [ipv6]:port or port)");
    let bare = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = bare.parse::<u16>() {
        if port == 0 {
            return Err(bad());
        }
        let mut out = Vec::new();
        for i in interfaces {
            match *i {
                "all" => {
                    out.push(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port));
                    out.push(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port));
                }
                "loopback-only" | "localhost" => {
                    out.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
                    out.push(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port));
                }
                a => {
                    let ip: IpAddr = a
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse()
                        .map_err(|_| format!("inet_interfaces entry \"{a}\" is not an address"))?;
                    out.push(SocketAddr::new(ip, port));
                }
            }
        }
        return Ok(out);
    }
    s.parse::<SocketAddr>()
        .ok()
        .filter(|a| a.port() != 0)
        .map(|a| vec![a])
        .ok_or_else(bad)
}

/// The IP versions `inet_protocols` enables (Postfix's values: `all`,
/// `ipv4`, `ipv6`, or `ipv4, ipv6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    /// IPv4 listeners and delivery.
    pub ipv4: bool,
    /// IPv6 listeners and delivery.
    pub ipv6: bool,
    /// The value was `all`: IPv6 is used where the host has it, and an IPv6
    /// listener the host cannot bind (no IPv6 in the kernel, no such
    /// address) is skipped with a warning instead of stopping start-up.
    pub all: bool,
}

impl Protocols {
    /// Parses an `inet_protocols` value (a list of `all`, `ipv4`, `ipv6`).
    pub fn parse(v: &str) -> Result<Protocols, String> {
        let mut p = Protocols {
            ipv4: false,
            ipv6: false,
            all: false,
        };
        for w in crate::config::split_list(v) {
            match w.to_ascii_lowercase().as_str() {
                "all" => {
                    p.ipv4 = true;
                    p.ipv6 = true;
                    p.all = true;
                }
                "ipv4" => p.ipv4 = true,
                "ipv6" => p.ipv6 = true,
                _ => {
                    return Err(format!(
                        "\"{w}\" is not a protocol: use all, ipv4, ipv6 or \"ipv4, ipv6\""
                    ))
                }
            }
        }
        if !p.ipv4 && !p.ipv6 {
            return Err("no protocol given: use all, ipv4, ipv6 or \"ipv4, ipv6\"".into());
        }
        Ok(p)
    }

    /// Whether addresses of `ip`'s family are enabled.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(_) => self.ipv6,
        }
    }

    /// `IPv4` or `IPv6`, for messages.
    pub fn family(ip: IpAddr) -> &'static str {
        if ip.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        }
    }
}

/// Checks one `inet_interfaces` entry: `all`, `loopback-only`, `localhost`
/// or an IP address (host names are not looked up).
pub fn check_interface(s: &str) -> Result<Option<IpAddr>, String> {
    match s {
        "all" | "loopback-only" | "localhost" => Ok(None),
        a => a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|_| {
                format!("\"{a}\" is not all, loopback-only or an IP address (host names are not supported)")
            }),
    }
}

/// Whether a listener entry is a bare port (`25`, `:25`) that takes its
/// addresses from `inet_interfaces`, rather than an explicit `ip:port`.
pub fn is_bare_port(s: &str) -> bool {
    s.strip_prefix(':').unwrap_or(s).parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_protocols_values() {
        let all = Protocols::parse("all").unwrap();
        assert!(all.ipv4 && all.ipv6 && all.all);
        let v4 = Protocols::parse("ipv4").unwrap();
        assert!(v4.ipv4 && !v4.ipv6 && !v4.all);
        assert!(v4.allows("192.0.2.1".parse().unwrap()));
        assert!(!v4.allows("::1".parse().unwrap()));
        let v6 = Protocols::parse("ipv6").unwrap();
        assert!(!v6.ipv4 && v6.ipv6 && !v6.all);
        assert!(!v6.allows("127.0.0.1".parse().unwrap()));
        let both = Protocols::parse("ipv4, ipv6").unwrap();
        assert!(
            both.ipv4 && both.ipv6 && !both.all,
            "an explicit list is not all"
        );
        assert!(Protocols::parse("ipv5").unwrap_err().contains("\"ipv5\""));
        assert!(Protocols::parse("").is_err());
    }

    #[test]
    fn interfaces_and_bare_ports() {
        assert_eq!(check_interface("loopback-only"), Ok(None));
        assert_eq!(check_interface("[::1]"), Ok(Some("::1".parse().unwrap())));
        assert!(check_interface("eth0").unwrap_err().contains("host names"));
        assert!(is_bare_port("25") && is_bare_port(":587"));
        assert!(!is_bare_port("127.0.0.1:25") && !is_bare_port("[::1]:25"));
    }

    #[test]
    fn bare_port_follows_inet_interfaces() {
        let lo = parse_listen("25", &["loopback-only"]).unwrap();
        assert_eq!(
            lo,
            vec![
                "127.0.0.1:25".parse::<SocketAddr>().unwrap(),
                "[::1]:25".parse().unwrap()
            ]
        );
        let list = parse_listen("25", &["192.0.2.7", "[2001:db8::7]"]).unwrap();
        assert_eq!(
            list,
            vec![
                "192.0.2.7:25".parse::<SocketAddr>().unwrap(),
                "[2001:db8::7]:25".parse().unwrap()
            ]
        );
        // An explicit address wins over inet_interfaces.
        assert_eq!(
            parse_listen("192.0.2.1:2525", &["loopback-only"]).unwrap(),
            vec!["192.0.2.1:2525".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn networks() {
        let n = Network::parse("192.168.1.0/24").unwrap();
        assert!(n.contains("192.168.1.77".parse().unwrap()));
        assert!(!n.contains("192.168.2.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.168.1.5".parse().unwrap()));
        let v6 = Network::parse("[fd00::]/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("host.example").is_err());
    }
}
