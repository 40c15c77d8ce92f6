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

#[cfg(test)]
mod tests {
    use super::*;

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
