//! The policy fetch (RFC 8461 §3.3): `GET
//! https://mta-sts.<domain>/.well-known/mta-sts.txt` on the daemon's one
//! thread. The host is resolved with tern's own resolver (the
//! `inet_protocols` families), the certificate is verified against the
//! `smtp_tls_CAfile` store for `mta-sts.<domain>` (SNI set), and the bytes
//! move through a [`Stream`] on a slot of the daemon's [`BufferPool`]:
//! TLS records in the slot, the response in one buffer of
//! [`http::MAX_RESPONSE`] bytes that lives only during the fetch. HTTP
//! parsing is [`super::http`]'s (sans-I/O).
//!
//! Redirects are not followed (§3.3); anything but `200` is a failure, and
//! so is a body that is not `text/plain` (§3.2) or over 64 KiB.

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use smol::Async;

use super::http::{self, HttpError};
use super::policy::Policy;
use crate::dns::Resolver;
use crate::tls::server_config::{build_client_config_with, ClientLimits};
use crate::tls::{BufferPool, MatchName, Stream, TernVerifier, TlsOutcome, TlsParams, VerifyMode};

/// The path every policy lives at (RFC 8461 §3.3).
pub const WELL_KNOWN: &str = "/.well-known/mta-sts.txt";

/// The RFC 8460 result types of a policy that could not be had are the
/// verifier's: `StsPolicyFetchError` (unreachable, HTTP status, size,
/// timeouts, no free slot), `StsPolicyInvalid` (no valid policy: syntax,
/// media type), `StsWebpkiInvalid` (the policy host's certificate).
pub use crate::tls::FailureKind;

/// Why no policy could be had: the result type and a reason for the log
/// (and TLSRPT's `failure-reason-code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsFailure {
    /// The RFC 8460 result type.
    pub kind: FailureKind,
    /// What happened, in words.
    pub reason: String,
}

impl StsFailure {
    fn fetch(reason: impl Into<String>) -> StsFailure {
        StsFailure {
            kind: FailureKind::StsPolicyFetchError,
            reason: reason.into(),
        }
    }

    fn invalid(reason: impl Into<String>) -> StsFailure {
        StsFailure {
            kind: FailureKind::StsPolicyInvalid,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for StsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.kind.as_str())
    }
}

impl std::error::Error for StsFailure {}

/// How fetches are made; from main.cf (`mta_sts_connect_timeout`,
/// `mta_sts_read_timeout`, `inet_protocols`).
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Per address tried.
    pub connect_timeout: Duration,
    /// For everything after the TCP connection: TLS handshake, request and
    /// the whole response (a server dripping bytes cannot hold a fetch
    /// longer than this).
    pub read_timeout: Duration,
    /// Ask and use A records.
    pub ipv4: bool,
    /// Ask and use AAAA records.
    pub ipv6: bool,
    /// The HTTPS port: 443 (RFC 8461 §3.3); tests on loopback may change it.
    pub port: u16,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            ipv4: true,
            ipv6: true,
            port: 443,
        }
    }
}

/// What a fetch needs from the daemon: resolver, buffer pool, trust store
/// and TLS parameters. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct Fetcher {
    /// Timeouts, families, port.
    pub settings: FetchSettings,
    resolver: Rc<Resolver>,
    pool: Rc<BufferPool>,
    roots: Arc<RootCertStore>,
    tls: TlsParams,
}

async fn timeout<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(fut.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

/// An I/O error without Rust's " (os error N)" suffix, as Postfix words it.
fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}

impl Fetcher {
    /// A fetcher on the daemon's resolver and pool; `roots` is the
    /// `smtp_tls_CAfile` store (the system bundle by default).
    pub fn new(
        settings: FetchSettings,
        resolver: Rc<Resolver>,
        pool: Rc<BufferPool>,
        roots: Arc<RootCertStore>,
        tls: TlsParams,
    ) -> Fetcher {
        Fetcher {
            settings,
            resolver,
            pool,
            roots,
            tls,
        }
    }

    /// Fetches and parses `domain`'s policy. A `mode: none` policy is a
    /// success (the caller removes what it cached).
    pub async fn fetch(&self, domain: &str) -> Result<Policy, StsFailure> {
        let host = format!("mta-sts.{domain}");
        let (stream, where_) = self.connect(&host, self.settings.port).await?;
        let run = async {
            let stream = self.handshake(stream, &host).await?;
            self.exchange(stream, &host).await
        };
        match timeout(self.settings.read_timeout, run).await {
            Some(Ok(body)) => body.map_err(|f| StsFailure {
                kind: f.kind,
                reason: format!("{where_}: {}", f.reason),
            }),
            Some(Err(f)) => Err(StsFailure {
                kind: f.kind,
                reason: format!("{where_}: {}", f.reason),
            }),
            None => Err(StsFailure::fetch(format!(
                "{where_}: timed out after {}s",
                self.settings.read_timeout.as_secs()
            ))),
        }
    }

    /// POSTs `body` as `content_type` to `https://host:port/path` (TLSRPT
    /// reports, RFC 8460 §5.4) over the same connection machinery as the
    /// policy fetch: resolver, pool slot, `smtp_tls_CAfile` trust, the
    /// timeouts. Returns the HTTP status; the response body is not read.
    pub async fn post(
        &self,
        host: &str,
        port: u16,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<u16, String> {
        let (stream, where_) = self.connect(host, port).await.map_err(|f| f.reason)?;
        let run = async {
            let mut stream = self.handshake(stream, host).await?;
            let port_text = match port {
                443 => String::new(),
                p => format!(":{p}"),
            };
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {host}{port_text}\r\nUser-Agent: tern/{} (TLSRPT)\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                env!("CARGO_PKG_VERSION"),
                body.len()
            );
            let send = |e: std::io::Error| {
                StsFailure::fetch(format!("sending the request: {}", os_text(&e)))
            };
            stream.write_all(head.as_bytes()).await.map_err(send)?;
            stream.write_all(body).await.map_err(send)?;
            // Only the status line and headers: a fixed, small buffer.
            let mut buf = vec![0u8; http::MAX_HEAD];
            let mut filled = 0usize;
            loop {
                let n = match stream.read(&mut buf[filled..]).await {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                    Err(e) => {
                        return Err(StsFailure::fetch(format!(
                            "reading the response: {}",
                            os_text(&e)
                        )))
                    }
                };
                filled += n;
                match http::parse_head(&buf[..filled]) {
                    Ok(Some(h)) => return Ok(h.status),
                    Ok(None) if n == 0 || filled == buf.len() => {
                        return Err(http_failure(HttpError::Truncated))
                    }
                    Ok(None) => {}
                    // A status line tern cannot frame (an odd encoding
                    // of an error page) still has its status.
                    Err(e) => return Err(http_failure(e)),
                }
            }
        };
        match timeout(self.settings.read_timeout, run).await {
            Some(Ok(status)) => Ok(status),
            Some(Err(f)) => Err(format!("{where_}: {}", f.reason)),
            None => Err(format!(
                "{where_}: timed out after {}s",
                self.settings.read_timeout.as_secs()
            )),
        }
    }

    /// Resolves `host`, takes a pool slot and connects to the first
    /// address that answers; returns the stream and `host[ip]:port` for
    /// messages.
    async fn connect(&self, host: &str, port: u16) -> Result<(Stream, String), StsFailure> {
        let addrs = self.addresses(host).await?;
        // Take the slot before connecting: without one there is nothing to
        // read into, and a fetch must never wait for delivery sessions.
        let Some(slot) = self.pool.acquire() else {
            return Err(StsFailure::fetch(
                "no free connection slot (max_connections); trying later",
            ));
        };
        let mut errors = Vec::new();
        for ip in addrs {
            let addr = SocketAddr::new(ip, port);
            match timeout(
                self.settings.connect_timeout,
                Async::<TcpStream>::connect(addr),
            )
            .await
            {
                Some(Ok(tcp)) => {
                    let where_ = format!("{host}[{}]:{}", addr.ip(), addr.port());
                    return Ok((Stream::new(tcp, slot), where_));
                }
                Some(Err(e)) => errors.push(format!(
                    "connect to {host}[{ip}]:{}: {}",
                    addr.port(),
                    os_text(&e)
                )),
                None => errors.push(format!(
                    "connect to {host}[{ip}]:{}: Connection timed out",
                    addr.port()
                )),
            }
        }
        Err(StsFailure::fetch(errors.join("; ")))
    }

    /// The addresses of the policy host, IPv4 first, in the enabled
    /// families. A family that fails is skipped if the other has some.
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, StsFailure> {
        let s = &self.settings;
        let found = self.resolver.lookup_addresses(host, s.ipv4, s.ipv6).await;
        let mut out: Vec<IpAddr> = Vec::new();
        let mut errors = Vec::new();
        match found.v4 {
            Some(Ok(a)) => out.extend(a.records.iter().map(|x| IpAddr::V4(*x))),
            Some(Err(e)) => errors.push(format!("A: {e}")),
            None => {}
        }
        match found.v6 {
            Some(Ok(a)) => out.extend(a.records.iter().map(|x| IpAddr::V6(*x))),
            Some(Err(e)) => errors.push(format!("AAAA: {e}")),
            None => {}
        }
        if out.is_empty() {
            let why = if errors.is_empty() {
                "no address records".to_string()
            } else {
                errors.join(", ")
            };
            return Err(StsFailure::fetch(format!("{host}: {why}")));
        }
        Ok(out)
    }

    /// The TLS handshake on a connected stream, the certificate verified
    /// for `host` against the `smtp_tls_CAfile` store. A certificate
    /// failure is `sts-webpki-invalid`, anything else a fetch error.
    async fn handshake(&self, mut stream: Stream, host: &str) -> Result<Stream, StsFailure> {
        let verifier = TernVerifier::new(
            VerifyMode::Verify(vec![MatchName::Exact(host.to_ascii_lowercase())]),
            self.roots.clone(),
            self.tls.provider.clone(),
        );
        let config =
            build_client_config_with(&self.tls, verifier.clone(), &ClientLimits::default())
                .map_err(|e| StsFailure::fetch(format!("TLS configuration: {e}")))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| StsFailure::fetch(format!("invalid host name {host}")))?;
        if let Err(e) = stream.start_tls_client(config, name).await {
            // A failure the verifier recorded is the certificate's
            // (sts-webpki-invalid); anything else is the connection's.
            return Err(match verifier.outcome(None) {
                TlsOutcome::Failure { kind, reason } => StsFailure {
                    kind: FailureKind::StsWebpkiInvalid,
                    reason: format!(
                        "certificate verification failed ({}): {reason}",
                        kind.as_str()
                    ),
                },
                TlsOutcome::Success(_) => {
                    StsFailure::fetch(format!("TLS handshake failed: {}", os_text(&e)))
                }
            });
        }
        Ok(stream)
    }

    /// Request and response of the policy fetch on a TLS stream. The outer
    /// `Err` is the connection's failure; the inner result the response's.
    async fn exchange(
        &self,
        mut stream: Stream,
        host: &str,
    ) -> Result<Result<Policy, StsFailure>, StsFailure> {
        let port = match self.settings.port {
            443 => String::new(),
            p => format!(":{p}"),
        };
        let request = format!(
            "GET {WELL_KNOWN} HTTP/1.1\r\nHost: {host}{port}\r\nUser-Agent: tern/{} (MTA-STS)\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| StsFailure::fetch(format!("sending the request: {}", os_text(&e))))?;
        // One bounded buffer for the whole response, zeroed pages touched
        // only as far as the response goes.
        let mut buf = vec![0u8; http::MAX_RESPONSE];
        let mut filled = 0usize;
        let mut head = None;
        loop {
            let eof = if filled == buf.len() {
                // Full: the checks below end it either way (body or head
                // over its limit, or framing beyond MAX_FRAMING).
                false
            } else {
                match stream.read(&mut buf[filled..]).await {
                    Ok(0) => true,
                    Ok(n) => {
                        filled += n;
                        false
                    }
                    // A TCP close without close_notify: the end of a body
                    // that has its own length is already known; for any
                    // other it could be a truncation.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => true,
                    Err(e) => {
                        return Err(StsFailure::fetch(format!(
                            "reading the response: {}",
                            os_text(&e)
                        )))
                    }
                }
            };
            let data = &buf[..filled];
            if head.is_none() {
                match http::parse_head(data) {
                    Ok(Some(h)) => {
                        // Judge the status before reading a body we will
                        // not use (a redirect's page, an error page).
                        if h.status != 200 {
                            let what = if (300..400).contains(&h.status) {
                                " (redirects are not followed)"
                            } else {
                                ""
                            };
                            return Ok(Err(StsFailure::fetch(format!(
                                "HTTP status {}{what}",
                                h.status
                            ))));
                        }
                        if !h.is_text_plain() {
                            return Ok(Err(StsFailure::invalid(format!(
                                "Content-Type is {}, not text/plain",
                                h.content_type
                                    .as_deref()
                                    .map(super::record::printable)
                                    .unwrap_or_else(|| "missing".into())
                            ))));
                        }
                        head = Some(h);
                    }
                    Ok(None) if eof => return Err(http_failure(HttpError::Truncated)),
                    Ok(None) if filled == buf.len() => {
                        return Err(http_failure(HttpError::HeadTooLarge))
                    }
                    Ok(None) => continue,
                    Err(e) => return Err(http_failure(e)),
                }
            }
            let Some(h) = head.as_ref() else { continue };
            let body = &mut buf[h.len..filled];
            match http::body_end(h, body, eof) {
                Ok(Some(end)) => {
                    let body = &mut body[..end];
                    let n = http::decode_body(h, body).map_err(http_failure)?;
                    return Ok(Policy::parse(&body[..n])
                        .map_err(|e| StsFailure::invalid(format!("invalid policy: {e}"))));
                }
                Ok(None) if filled == buf.len() => {
                    return Err(http_failure(HttpError::BodyTooLarge))
                }
                Ok(None) => {}
                Err(e) => return Err(http_failure(e)),
            }
        }
    }
}

fn http_failure(e: HttpError) -> StsFailure {
    StsFailure::fetch(e.to_string())
}
