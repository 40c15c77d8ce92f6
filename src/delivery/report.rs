//! Every outbound TLS attempt, with what RFC 8460 needs to report it, and
//! the sink the queue manager hands each one to (TLSRPT's counters, or
//! Postfix's report-generator interface, plug in here).

use std::net::IpAddr;
use std::rc::Rc;

use crate::policy::plan::PolicyDescriptor;
use crate::policy::Level;
use crate::tls::TlsOutcome;
use crate::tlsrpt::TlsRptRecord;

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
    /// A failure in Postfix 3.10's TLSRPT words (`failure_reason=`, the
    /// datagram's `f`, the report's `failure-reason-code`): one of
    /// [`crate::tls::verify::reason`], when Postfix would give one.
    pub failure_code: Option<&'static str>,
    /// The recipient domain's TLSRPT policy record, looked up once per
    /// delivery run when `smtp_tlsrpt_enable = yes` and the next hop is
    /// the recipient domain's MX; `None` otherwise, and when the domain
    /// publishes no valid record (then nothing is reported for it).
    pub tlsrpt: Option<Rc<TlsRptRecord>>,
}

impl TlsAttempt {
    /// The RFC 8460 policy domain.
    pub fn policy_domain(&self) -> &str {
        &self.policy.domain
    }
}

/// Fans one attempt out to several sinks, in order (the log line and
/// datagram of [`crate::tlsrpt::TlsRptSink`], the daily counters).
#[derive(Default, Clone)]
pub struct Sinks(pub Vec<Rc<dyn TlsReportSink>>);

impl TlsReportSink for Sinks {
    fn record(&self, attempt: &TlsAttempt) {
        for s in &self.0 {
            s.record(attempt);
        }
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
