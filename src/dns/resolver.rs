//! The async driver: sockets, timers and the cache around [`super::wire`].
//!
//! Each try uses a fresh UDP socket on a kernel-chosen port, connected to
//! the server, so a spoofer must guess both the 16-bit ID and the port, and
//! the kernel drops datagrams from other sources. Datagrams that do not
//! match the query are ignored (a bounded number of them) until the per-try
//! timeout. A truncated reply is asked again over TCP to the same server.

use super::cache::Cache;
use super::conf::ResolverConfig;
use super::wire::{parse_reply, Query, Reply, WireError, MAX_QUERY_LEN};
use super::{
    merge_ip, Answer, DnsError, HostAddresses, Mx, RData, RecordData, RecordType, Tlsa, Txt,
};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpStream, UdpSocket};
use smol::Timer;
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Datagrams read per try before giving up on a flood of wrong ones.
const MAX_DATAGRAMS_PER_TRY: usize = 32;
/// Receive buffer: servers should keep to our 1232, some send up to 4096.
const UDP_BUF: usize = 4096;

/// The stub resolver. Lives on the executor thread (not `Send`); share it
/// with `Rc`.
pub struct Resolver {
    config: ResolverConfig,
    cache: RefCell<Cache>,
    rng: SystemRandom,
}

fn io_err(e: std::io::Error) -> DnsError {
    DnsError::Unreachable(e.kind())
}

/// Which error to report when every try failed: the most specific one.
fn rank(e: &DnsError) -> u8 {
    match e {
        DnsError::Timeout => 0,
        DnsError::Unreachable(_) => 1,
        DnsError::Malformed(_) => 2,
        _ => 3,
    }
}

impl Resolver {
    /// A resolver with these settings and an empty cache.
    pub fn new(config: ResolverConfig) -> Self {
        let cache = RefCell::new(Cache::new(config.cache_capacity));
        Resolver {
            config,
            cache,
            rng: SystemRandom::new(),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    /// True when every configured server is on loopback, the one case in
    /// which the AD bit can be trusted without TSIG or TLS to the resolver.
    pub fn servers_are_loopback(&self) -> bool {
        !self.config.servers.is_empty() && self.config.servers.iter().all(|s| s.ip().is_loopback())
    }

    /// Drops every cached answer.
    pub fn clear_cache(&self) {
        *self.cache.borrow_mut() = Cache::new(self.config.cache_capacity);
    }

    /// A uniformly random number from the system RNG (message IDs, MX
    /// shuffling).
    pub fn random_u32(&self) -> u32 {
        let mut b = [0u8; 4];
        if self.rng.fill(&mut b).is_err() {
            // The OS RNG failing leaves TLS dead too; still never repeat a
            // fixed ID: mix in the clock.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            return t;
        }
        u32::from_be_bytes(b)
    }

    /// Looks up `name`/`qtype`, from the cache or the servers.
    pub async fn query(&self, name: &str, qtype: RecordType) -> Result<Answer<RData>, DnsError> {
        let name = super::wire::normalize_name(name).map_err(|_| DnsError::InvalidName)?;
        if let Some(hit) = self.cache.borrow().get(&name, qtype, Instant::now()) {
            return Ok(hit);
        }
        if self.config.servers.is_empty() {
            return Err(DnsError::NoServers);
        }
        let mut last = DnsError::Timeout;
        for _ in 0..self.config.attempts.max(1) {
            for &server in &self.config.servers {
                let query = Query {
                    id: self.random_u32() as u16,
                    name: name.clone(),
                    qtype,
                };
                let result = self
                    .exchange(server, &query)
                    .await
                    .and_then(|reply| reply.answer(&query));
                match result {
                    Ok(answer) => {
                        self.cache
                            .borrow_mut()
                            .insert(&name, qtype, &answer, Instant::now());
                        return Ok(answer);
                    }
                    Err(DnsError::Malformed(WireError::CnameChain)) => {
                        return Err(DnsError::Malformed(WireError::CnameChain))
                    }
                    Err(e) => {
                        log::debug!("dns: {name} {} via {server}: {e}", qtype.name());
                        if rank(&e) >= rank(&last) {
                            last = e;
                        }
                    }
                }
            }
        }
        Err(last)
    }

    /// Typed lookup of any supported type.
    pub async fn lookup<T: RecordData>(&self, name: &str) -> Result<Answer<T>, DnsError> {
        Ok(self.query(name, T::TYPE).await?.typed())
    }

    /// MX records (unsorted; see [`super::mx`] for next-hop selection).
    pub async fn lookup_mx(&self, name: &str) -> Result<Answer<Mx>, DnsError> {
        self.lookup(name).await
    }

    /// TXT records.
    pub async fn lookup_txt(&self, name: &str) -> Result<Answer<Txt>, DnsError> {
        self.lookup(name).await
    }

    /// TLSA records, e.g. for `_25._tcp.mx.example.com`.
    pub async fn lookup_tlsa(&self, name: &str) -> Result<Answer<Tlsa>, DnsError> {
        self.lookup(name).await
    }

    /// A records.
    pub async fn lookup_a(&self, name: &str) -> Result<Answer<Ipv4Addr>, DnsError> {
        self.lookup(name).await
    }

    /// AAAA records.
    pub async fn lookup_aaaa(&self, name: &str) -> Result<Answer<Ipv6Addr>, DnsError> {
        self.lookup(name).await
    }

    /// A and AAAA, asked in parallel; IPv4 addresses first. Fails if either
    /// lookup fails; `authenticated` only if both replies had AD; `NxDomain`
    /// only if both said so. Delivery uses [`Self::lookup_addresses`]
    /// instead, which keeps the families apart.
    pub async fn lookup_ip(&self, name: &str) -> Result<Answer<IpAddr>, DnsError> {
        let (a, aaaa) = smol::future::zip(self.lookup_a(name), self.lookup_aaaa(name)).await;
        Ok(merge_ip(a?, aaaa?))
    }

    /// A and AAAA for `name`, each asked only when its family is enabled
    /// (`inet_protocols`), in parallel, and reported on its own: unlike
    /// [`Self::lookup_ip`], a failed or unvalidated family leaves the other
    /// intact (see `policy::dane::AddressFacts`).
    pub async fn lookup_addresses(&self, name: &str, ipv4: bool, ipv6: bool) -> HostAddresses {
        let a = async {
            if ipv4 {
                Some(self.lookup_a(name).await)
            } else {
                None
            }
        };
        let aaaa = async {
            if ipv6 {
                Some(self.lookup_aaaa(name).await)
            } else {
                None
            }
        };
        let (v4, v6) = smol::future::zip(a, aaaa).await;
        HostAddresses { v4, v6 }
    }

    async fn exchange(&self, server: SocketAddr, query: &Query) -> Result<Reply, DnsError> {
        let mut buf = [0u8; MAX_QUERY_LEN + 2];
        let len = query
            .encode(&mut buf[2..])
            .map_err(|_| DnsError::InvalidName)?;
        buf[..2].copy_from_slice(&(len as u16).to_be_bytes());
        let reply = self.udp(server, &buf[2..2 + len], query).await?;
        if !reply.truncated {
            return Ok(reply);
        }
        log::debug!("dns: {} truncated over UDP, retrying over TCP", query.name);
        let reply = self.tcp(server, &buf[..2 + len], query).await?;
        if reply.truncated {
            return Err(DnsError::Malformed(WireError::TruncatedReply));
        }
        Ok(reply)
    }

    async fn udp(&self, server: SocketAddr, msg: &[u8], query: &Query) -> Result<Reply, DnsError> {
        let timeout = self.config.timeout;
        let work = async {
            let local: SocketAddr = match server.ip() {
                IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let sock = UdpSocket::bind(local).await.map_err(io_err)?;
            sock.connect(server).await.map_err(io_err)?;
            sock.send(msg).await.map_err(io_err)?;
            let mut buf = [0u8; UDP_BUF];
            for _ in 0..MAX_DATAGRAMS_PER_TRY {
                let n = sock.recv(&mut buf).await.map_err(io_err)?;
                match parse_reply(buf.get(..n).unwrap_or(&[]), query) {
                    Ok(reply) => return Ok(reply),
                    Err(e) if e.is_mismatch() => {
                        log::debug!("dns: ignoring datagram from {server}: {e}");
                    }
                    Err(e) => return Err(DnsError::Malformed(e)),
                }
            }
            Err(DnsError::Timeout)
        };
        with_timeout(timeout, work).await
    }

    async fn tcp(
        &self,
        server: SocketAddr,
        framed: &[u8],
        query: &Query,
    ) -> Result<Reply, DnsError> {
        let work = async {
            let mut stream = TcpStream::connect(server).await.map_err(io_err)?;
            stream.write_all(framed).await.map_err(io_err)?;
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await.map_err(io_err)?;
            // At most 64 KiB, the protocol's own bound.
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut reply).await.map_err(io_err)?;
            parse_reply(&reply, query).map_err(DnsError::Malformed)
        };
        with_timeout(self.config.timeout, work).await
    }
}

async fn with_timeout<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, DnsError>>,
) -> Result<T, DnsError> {
    smol::future::or(work, async {
        Timer::after(timeout).await;
        Err(DnsError::Timeout)
    })
    .await
}
