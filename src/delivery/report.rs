//! Every outbound TLS attempt, with what RFC 8460 needs to report it, and
//! the sink the queue manager hands each one to (TLSRPT's counters, or
//! Postfix's report-generator interface, plug in here).

use std::net::IpAddr;

use crate::policy::plan::PolicyDescriptor;
use crate::policy::Level;
use crate::tls::TlsOutcome;

/// One TLS handshake attempt (or a server without STARTTLS where TLS was
/// required), for logs and TLS reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsAttempt {
    /// The policy behind the connection: type, domain, strings, mx patterns.
    pub policy: PolicyDescriptor,
    /// The level in force on this connection.
    pub level: Level,
    /// The receiving MX host name.
    pub host: String,
    /// The receiving MX address.
    pub addr: IpAddr,
    /// Port connected to.
    pub port: u16,
    /// The name the server gave in its greeting (`receiving-mx-helo`), when
    /// one came.
    pub helo: Option<String>,
    /// Our address on the connection (`sending-mta-ip`).
    pub sending_ip: Option<IpAddr>,
    /// The connection had carried a message before (no new handshake).
    pub reused: bool,
    /// Success (with trust) or the RFC 8460 result type and reason.
    pub outcome: TlsOutcome,
    /// The policy domain's TLSRPT record (RFC 8460 §3), when it publishes
    /// exactly one valid record; attempts without one are not reported.
    pub tlsrpt: Option<std::rc::Rc<crate::tlsrpt::TlsRptRecord>>,
}

impl TlsAttempt {
    /// The RFC 8460 policy domain.
    pub fn policy_domain(&self) -> &str {
        &self.policy.domain
    }
}

/// Where the queue manager puts every TLS attempt of every delivery.
pub trait TlsReportSink {
    /// One attempt; called on the daemon's thread, so it must not block.
    fn record(&self, attempt: &TlsAttempt);
}

/// The sink when TLS reporting is off: attempts are dropped.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReports;

impl TlsReportSink for NoReports {
    fn record(&self, _: &TlsAttempt) {}
}
