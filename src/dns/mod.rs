//! DNS stub resolver: MX, A/AAAA, TXT and TLSA lookups with the AD bit.
//!
//! Layers, inside out:
//! - [`wire`]: sans-I/O. Builds queries (EDNS0, payload 1232, DO bit) and
//!   parses replies into owned, bounded values. Never panics on garbage.
//! - [`cache`]: sans-I/O bounded TTL cache (positive and RFC 2308 negative
//!   answers); the caller passes `now`.
//! - [`conf`]: server lists (`ip`, `ip:port`) and `/etc/resolv.conf`.
//! - [`Resolver`]: the async driver on the smol thread: UDP with retries
//!   across servers, TCP when the reply is truncated, per-try timeouts.
//! - [`mx`]: RFC 5321 §5.1 next-hop selection (MX, null MX, implicit MX).
//!
//! `authenticated` in an [`Answer`] is the AD bit exactly as the configured
//! resolver set it. It is only meaningful when that resolver validates and
//! the path to it is trusted (loopback); [`Resolver::servers_are_loopback`]
//! lets the policy layer decide.

pub mod cache;
pub mod conf;
pub mod mx;
mod resolver;
pub mod wire;

pub use conf::{ConfError, ResolverConfig};
pub use resolver::Resolver;
pub use wire::{RData, RecordType, WireError};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether the name had data of the asked type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// At least one record of the asked type at the final name.
    Found,
    /// The name exists but has no record of the asked type (NOERROR, empty).
    NoData,
    /// The (final) name does not exist (RCODE 3).
    NxDomain,
}

/// A successful lookup: records, or a proven absence, with its DNSSEC status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    /// Found, NODATA or NXDOMAIN; `records` is empty unless `Found`.
    pub status: Status,
    /// The records of the asked type at `name`.
    pub records: Vec<T>,
    /// The AD bit of the reply (for `lookup_ip`: both replies had it).
    /// A secure NODATA/NXDOMAIN has `authenticated == true` with no records.
    pub authenticated: bool,
    /// The final name after following CNAMEs in the answer (lowercase, no
    /// trailing dot); equal to the asked name when there was no CNAME.
    pub name: String,
    /// Seconds this answer stays valid (smallest TTL used; negative TTL for
    /// NODATA/NXDOMAIN, 0 when the reply carried no SOA).
    pub ttl: u32,
}

impl<T> Answer<T> {
    /// True for NXDOMAIN.
    pub fn is_nxdomain(&self) -> bool {
        self.status == Status::NxDomain
    }

    /// True for NODATA (name exists, no records of this type).
    pub fn is_nodata(&self) -> bool {
        self.status == Status::NoData
    }

    /// True when the reply carried a CNAME chain ending at another name.
    pub fn is_alias(&self, asked: &str) -> bool {
        !wire::names_equal(&self.name, asked)
    }
}

/// A lookup that produced no usable answer. Every variant means "try again
/// later" for mail delivery, except perhaps `InvalidName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// RCODE 2: the server failed (for a validating resolver: also bogus
    /// DNSSEC data).
    ServFail,
    /// RCODE 5: the server refused to answer.
    Refused,
    /// RCODE 1: the server said our query was malformed.
    FormErr,
    /// RCODE 4: the server does not implement the query.
    NotImp,
    /// Another RCODE (including extended ones via EDNS, e.g. 16 BADVERS).
    Rcode(u16),
    /// No server answered within the per-try timeouts.
    Timeout,
    /// Every server was unreachable (ICMP errors, TCP refused, no route).
    Unreachable(std::io::ErrorKind),
    /// A reply that matched our query could not be parsed.
    Malformed(WireError),
    /// The name to look up is not a valid DNS name for mail.
    InvalidName,
    /// No server is configured.
    NoServers,
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::ServFail => f.write_str("server failure (SERVFAIL)"),
            DnsError::Refused => f.write_str("query refused (REFUSED)"),
            DnsError::FormErr => f.write_str("format error (FORMERR)"),
            DnsError::NotImp => f.write_str("not implemented (NOTIMP)"),
            DnsError::Rcode(r) => write!(f, "response code {r}"),
            DnsError::Timeout => f.write_str("timeout"),
            DnsError::Unreachable(k) => write!(f, "server unreachable: {k}"),
            DnsError::Malformed(e) => write!(f, "malformed reply: {e}"),
            DnsError::InvalidName => f.write_str("invalid domain name"),
            DnsError::NoServers => f.write_str("no DNS server configured"),
        }
    }
}

impl std::error::Error for DnsError {}

/// An MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    /// Lower is preferred.
    pub preference: u16,
    /// Exchange host, lowercase without trailing dot; `"."` for the root
    /// (null MX, RFC 7505).
    pub exchange: String,
}

/// A TXT record: its character-strings in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txt {
    /// The character-strings (each at most 255 bytes).
    pub strings: Vec<Vec<u8>>,
}

impl Txt {
    /// The strings concatenated, as MTA-STS (RFC 8461 §3.1) and TLSRPT read
    /// a record.
    pub fn joined(&self) -> Vec<u8> {
        self.strings.concat()
    }
}

/// A TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// Certificate usage (0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE).
    pub usage: u8,
    /// Selector (0 full certificate, 1 SubjectPublicKeyInfo).
    pub selector: u8,
    /// Matching type (0 exact, 1 SHA-256, 2 SHA-512).
    pub matching_type: u8,
    /// Certificate association data.
    pub data: Vec<u8>,
}

/// Record types a typed lookup can return.
pub trait RecordData: Sized {
    /// The query type.
    const TYPE: RecordType;
    /// Picks this type out of parsed record data.
    fn from_rdata(rdata: &RData) -> Option<Self>;
}

impl RecordData for Ipv4Addr {
    const TYPE: RecordType = RecordType::A;
    fn from_rdata(rdata: &RData) -> Option<Self> {
        match rdata {
            RData::A(a) => Some(*a),
            _ => None,
        }
    }
}

impl RecordData for Ipv6Addr {
    const TYPE: RecordType = RecordType::Aaaa;
    fn from_rdata(rdata: &RData) -> Option<Self> {
        match rdata {
            RData::Aaaa(a) => Some(*a),
            _ => None,
        }
    }
}

impl RecordData for Mx {
    const TYPE: RecordType = RecordType::Mx;
    fn from_rdata(rdata: &RData) -> Option<Self> {
        match rdata {
            RData::Mx(m) => Some(m.clone()),
            _ => None,
        }
    }
}

impl RecordData for Txt {
    const TYPE: RecordType = RecordType::Txt;
    fn from_rdata(rdata: &RData) -> Option<Self> {
        match rdata {
            RData::Txt(t) => Some(t.clone()),
            _ => None,
        }
    }
}

impl RecordData for Tlsa {
    const TYPE: RecordType = RecordType::Tlsa;
    fn from_rdata(rdata: &RData) -> Option<Self> {
        match rdata {
            RData::Tlsa(t) => Some(t.clone()),
            _ => None,
        }
    }
}

impl Answer<RData> {
    /// Converts a type-erased answer into a typed one.
    pub fn typed<T: RecordData>(&self) -> Answer<T> {
        Answer {
            status: self.status,
            records: self.records.iter().filter_map(T::from_rdata).collect(),
            authenticated: self.authenticated,
            name: self.name.clone(),
            ttl: self.ttl,
        }
    }
}

/// The A and AAAA lookups for one host, each family on its own
/// ([`Resolver::lookup_addresses`]). `None`: that family was not asked
/// (disabled by `inet_protocols`). Kept apart so that one family's failure
/// or missing AD bit does not decide for the other (RFC 7672 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddresses {
    /// The A lookup, if made.
    pub v4: Option<Result<Answer<Ipv4Addr>, DnsError>>,
    /// The AAAA lookup, if made.
    pub v6: Option<Result<Answer<Ipv6Addr>, DnsError>>,
}

/// Merges an A and an AAAA answer for the same name (`lookup_ip`).
pub(crate) fn merge_ip(a: Answer<Ipv4Addr>, aaaa: Answer<Ipv6Addr>) -> Answer<IpAddr> {
    let mut records: Vec<IpAddr> = a.records.iter().map(|x| IpAddr::V4(*x)).collect();
    records.extend(aaaa.records.iter().map(|x| IpAddr::V6(*x)));
    let status = if !records.is_empty() {
        Status::Found
    } else if a.status == Status::NxDomain && aaaa.status == Status::NxDomain {
        Status::NxDomain
    } else {
        Status::NoData
    };
    Answer {
        status,
        records,
        authenticated: a.authenticated && aaaa.authenticated,
        name: a.name,
        ttl: a.ttl.min(aaaa.ttl),
    }
}
