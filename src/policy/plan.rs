//! The hop planner: everything decided between "deliver to this next hop"
//! and "connect to this address with these TLS requirements".
//!
//! Sans-I/O, in the shape of quinn-proto's connection or smoltcp's DNS
//! socket: no sockets, no clock, no `log`. The driver calls [`Planner::poll`]
//! for the next [`Step`], performs the lookup or connection it names, and
//! feeds the result back with [`Planner::answer`] or
//! [`Planner::connection_done`]. The planner owns the order of MX hosts
//! and addresses, null MX and NXDOMAIN, the DANE composition of RFC 7672
//! (per-family DNSSEC status, the secure-CNAME rule, TLSA base domains
//! with their fallback, `dane`/`dane-only` outcomes), the level to
//! requirement mapping, the `may` plaintext retry, MX fallback, and when
//! a destination counts as dead.
//!
//! Order of the policy sources: the policy table (or the default level)
//! chose [`EffectivePolicy::level`] before the planner is built; DANE then
//! decides per host at the DANE levels. Extension points, for what comes
//! next: MTA-STS adds a `Query` kind for the policy and an input carrying
//! it, a [`PolicyType::Sts`] descriptor with the policy lines and `mx`
//! patterns, and its `testing` mode as a target that verifies without
//! enforcing. A per-message `TLS-Required: No` lowers the level before the
//! planner is built ([`EffectivePolicy::relax_for_tls_required_no`]; the
//! queue manager gives such messages sessions of their own): the planner
//! then asks for no MTA-STS policy and, at `may`, for no TLSA records; it
//! is an input of [`Planner::new`], not a driver branch.
//!
//! Every lookup is asked for all MX hosts before the first connection, as
//! the driver did before the planner existed: the skip warnings of DANE
//! and the final deferral reason keep their order.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;

use crate::dns::mx::{implicit_keeps_the_asked_name, next_hops, NextHops};
use crate::dns::{Answer, DnsError, HostAddresses, Mx, RData};
use crate::mtasts::{Mode, Policy as StsPolicy};
use crate::smtp::client::TlsRequirement;
use crate::tls::dane::Tlsa;
use crate::tls::verify::{FailureKind, FingerprintDigest};
use crate::tls::{MatchName, VerifyMode};

use super::dane::{
    self, AddressFacts, AddressSecurity, DaneDecision, DaneLevel, HostFacts, TlsaLookup,
};
use super::decide::{CertName, EffectivePolicy, PolicySource};
use super::level::Level;
use super::nexthop::NextHop;

/// Outbound settings the planner reads, built once per configuration.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    /// `smtp_tcp_port`: the port of MX delivery.
    pub smtp_port: u16,
    /// `smtp_dns_support_level`, as written (for the configuration warning).
    pub dns_support_level: String,
    /// AD bits count as DNSSEC validation (`smtp_dns_support_level =
    /// dnssec` and every resolver trusted; see [`dane::ad_trust`]).
    pub trust_ad: bool,
    /// `inet_protocols` allows IPv4.
    pub ipv4: bool,
    /// `inet_protocols` allows IPv6.
    pub ipv6: bool,
    /// `inet_protocols`, as written (for the "no enabled address" text).
    pub inet_protocols: String,
    /// `smtp_tls_fingerprint_digest`.
    pub fingerprint_digest: FingerprintDigest,
    /// `mta_sts_enable`: ask for the recipient domain's MTA-STS policy.
    pub mta_sts: bool,
}

impl PlanSettings {
    /// DNSSEC lookups are on (`smtp_dns_support_level = dnssec`).
    pub fn dnssec(&self) -> bool {
        self.dns_support_level == "dnssec"
    }
}

/// RFC 8460's policy types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    /// DANE with TLSA records found.
    Tlsa,
    /// An MTA-STS policy (built in or from a policy plug-in).
    Sts,
    /// Neither.
    NoPolicyFound,
}

impl PolicyType {
    /// The RFC 8460 name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::Tlsa => "tlsa",
            PolicyType::Sts => "sts",
            PolicyType::NoPolicyFound => "no-policy-found",
        }
    }
}

/// What a TLS report says about the policy behind a connection (RFC 8460
/// §4.3 `policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDescriptor {
    /// `policy-type`.
    pub kind: PolicyType,
    /// `policy-domain`: the next-hop domain.
    pub domain: String,
    /// `policy-string`: the TLSA records in presentation form (or, for
    /// MTA-STS, the policy's lines).
    pub strings: Vec<String>,
    /// `mx-host`: the MTA-STS `mx` patterns.
    pub mx_patterns: Vec<String>,
}

/// One connection to make, with the TLS requirements that apply to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's host name (MX host, or the bracketed host).
    pub host: String,
    /// SNI to send instead of the host name (DANE: the TLSA base domain).
    pub sni: Option<String>,
    /// Address to connect to.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Whether STARTTLS is skipped, tried or required.
    pub tls: TlsRequirement,
    /// How the server certificate is judged.
    pub verify: VerifyMode,
    /// The level this connection runs at (DANE may have lowered it).
    pub level: Level,
    /// The policy behind it, for TLS reports.
    pub policy: PolicyDescriptor,
    /// A failed verification fails the connection; `false` for an
    /// MTA-STS `testing` policy (verify, report, do not enforce).
    pub enforce: bool,
}

impl Target {
    /// `host[addr]:port`, as log lines name a relay.
    pub fn relay(&self) -> String {
        format!("{}[{}]:{}", self.host, self.addr, self.port)
    }
}

/// Why a host, or the whole next hop, could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    /// The `status=` text.
    pub text: String,
    /// Enhanced status code.
    pub dsn: String,
    /// Bounce instead of deferring.
    pub permanent: bool,
    /// The server was reached (a reply came): no "dead destination".
    pub reached: bool,
    /// The TLS handshake itself failed (at `may`, a plaintext retry follows).
    pub tls: bool,
}

impl HostFailure {
    /// A permanent failure before any server was reached (bounce).
    pub fn hard(text: impl Into<String>, dsn: &str) -> HostFailure {
        HostFailure {
            permanent: true,
            ..HostFailure::soft(text, dsn)
        }
    }

    /// A temporary failure before any server was reached.
    pub fn soft(text: impl Into<String>, dsn: &str) -> HostFailure {
        HostFailure {
            text: text.into(),
            dsn: dsn.into(),
            permanent: false,
            reached: false,
            tls: false,
        }
    }
}

/// A DNS question the planner needs answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query<'p> {
    /// MX records of the domain.
    Mx(&'p str),
    /// A and/or AAAA of a host, each family on its own.
    Addresses {
        /// Host name.
        host: &'p str,
        /// Ask for A.
        ipv4: bool,
        /// Ask for AAAA.
        ipv6: bool,
    },
    /// Whether the host name is a (validated) CNAME.
    Cname(&'p str),
    /// TLSA at `_<port>._tcp.<base>`.
    Tlsa {
        /// Port.
        port: u16,
        /// TLSA base domain.
        base: &'p str,
    },
    /// The MTA-STS policy of a recipient domain (discovery, cache, fetch).
    Sts(&'p str),
}

/// What the driver found out about a domain's MTA-STS policy.
#[derive(Debug, Clone)]
pub enum StsInput {
    /// No policy (no record and nothing cached, or `mode: none`).
    None,
    /// The policy to apply.
    Policy(Rc<StsPolicy>),
    /// Discovery says there is a policy, but none could be had and none
    /// is cached: delivery goes on as without one; the failure is for the
    /// log and TLS reports.
    Unavailable {
        /// `sts-policy-fetch-error`, `sts-policy-invalid` or
        /// `sts-webpki-invalid`.
        kind: FailureKind,
        /// Why.
        reason: String,
    },
}

/// The answer to a [`Query`].
#[derive(Debug)]
pub enum DnsInput {
    /// For [`Query::Mx`].
    Mx(Result<Answer<Mx>, DnsError>),
    /// For [`Query::Addresses`].
    Addresses(HostAddresses),
    /// For [`Query::Cname`].
    Cname(Result<Answer<RData>, DnsError>),
    /// For [`Query::Tlsa`].
    Tlsa(Result<Answer<Tlsa>, DnsError>),
    /// For [`Query::Sts`].
    Sts(StsInput),
}

/// A host the DANE rules rule out; Postfix logs it as `warning: TLS policy
/// lookup for DEST/HOST: WHY` even when a later host takes the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The destination as the warning names it (the next-hop domain, or
    /// the literal as written).
    pub dest: String,
    /// The skipped host.
    pub host: String,
    /// tern's detail (the DNS facts behind it).
    pub why: String,
}

/// Something the planner decided that an operator or `tern probe` may want
/// to see. The driver logs those that Postfix logs; the others are made
/// only when the planner was asked for details (a probe), so deliveries
/// pay nothing for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanEvent {
    /// A DANE level with DNSSEC lookups off (logged as a warning).
    DnssecDisabled {
        /// The next hop.
        dest: String,
        /// The configured level.
        level: Level,
        /// `smtp_dns_support_level`.
        support: String,
    },
    /// One address family of a host failed; the other is used (logged).
    FamilyFailed {
        /// Host.
        host: String,
        /// `A` or `AAAA`.
        ty: &'static str,
        /// The error.
        error: DnsError,
    },
    /// DNSSEC facts of a host (detail).
    DaneFacts {
        /// Host.
        host: String,
        /// MX answer validated.
        mx_secure: bool,
        /// Address security.
        security: AddressSecurity,
        /// Some addresses came from an unvalidated family.
        mixed: bool,
    },
    /// One TLSA lookup (detail).
    Tlsa {
        /// Port.
        port: u16,
        /// Base domain.
        base: String,
        /// What came back.
        lookup: TlsaLookup,
    },
    /// No TLSA lookup was made for this base domain (detail).
    TlsaNotLookedUp {
        /// Port.
        port: u16,
        /// Base domain.
        base: String,
    },
    /// The DANE decision for a host (detail).
    DaneDecided {
        /// Host.
        host: String,
        /// The decision.
        decision: DaneDecision,
    },
    /// Only the validated family of a host is used (logged).
    FamilyLeftOut {
        /// Host.
        host: String,
    },
    /// A `may` handshake failed; the same server is tried without TLS
    /// (logged).
    PlaintextRetry {
        /// Why the handshake failed.
        text: String,
        /// `host[addr]:port`.
        relay: String,
    },
    /// A connection failed and the next host is tried (logged with the
    /// queue ID).
    ConnectFailed {
        /// The failure text.
        text: String,
    },
    /// The domain has an MTA-STS policy in force (detail).
    StsPolicy {
        /// Recipient domain.
        domain: String,
        /// `enforce` or `testing`.
        mode: Mode,
        /// The `mx` patterns.
        patterns: Vec<String>,
    },
    /// The domain announces a policy that could not be had (logged).
    StsUnavailable {
        /// Recipient domain.
        domain: String,
        /// The RFC 8460 result type.
        kind: FailureKind,
        /// Why.
        reason: String,
    },
    /// A `testing` policy does not list this MX host; delivery goes on
    /// (logged).
    StsTestingMismatch {
        /// Recipient domain.
        domain: String,
        /// MX host.
        host: String,
    },
}

impl PlanEvent {
    /// Whether this event is only made for a probe.
    pub fn is_detail(&self) -> bool {
        matches!(
            self,
            PlanEvent::DaneFacts { .. }
                | PlanEvent::Tlsa { .. }
                | PlanEvent::TlsaNotLookedUp { .. }
                | PlanEvent::DaneDecided { .. }
                | PlanEvent::StsPolicy { .. }
        )
    }

    /// The text of the log line of this event (without the queue ID), for
    /// those that are logged.
    pub fn log_text(&self) -> Option<String> {
        Some(match self {
            PlanEvent::DnssecDisabled { dest, level, .. } => format!(
                "warning: {dest}: {} configured with dnssec lookups disabled",
                level.as_str()
            ),
            PlanEvent::FamilyFailed { host, ty, error } => format!(
                "Name service error for name={host} type={ty}: {error}; using the host's other addresses"
            ),
            PlanEvent::FamilyLeftOut { host } => family_left_out(host),
            PlanEvent::PlaintextRetry { text, relay } => {
                format!("{text}; level may: trying {relay} again without TLS")
            }
            PlanEvent::ConnectFailed { text } => text.clone(),
            PlanEvent::StsUnavailable {
                domain,
                kind,
                reason,
            } => format!(
                "warning: MTA-STS policy for {domain} unavailable ({}): {reason}; delivering without it",
                kind.as_str()
            ),
            PlanEvent::StsTestingMismatch { domain, host } => format!(
                "MTA-STS policy for {domain} (mode testing) does not list MX host {host}; delivering anyway"
            ),
            _ => return None,
        })
    }
}

fn family_left_out(host: &str) -> String {
    format!(
        "address records of {host} of one IP version are not DNSSEC-validated: \
         only its validated addresses are used"
    )
}

fn secure_word(b: bool) -> &'static str {
    if b {
        "secure"
    } else {
        "insecure"
    }
}

/// The lines `tern probe` prints (one event may give several).
impl fmt::Display for PlanEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanEvent::DnssecDisabled {
                dest,
                level,
                support,
            } => write!(
                f,
                "{dest}: {} configured with dnssec lookups disabled (smtp_dns_support_level = {support})",
                level.as_str()
            ),
            PlanEvent::FamilyFailed { host, ty, error } => write!(
                f,
                "{host}: type={ty} lookup failed ({error}): its other addresses are used, never as secure"
            ),
            PlanEvent::DaneFacts {
                host,
                mx_secure,
                security,
                mixed,
            } => write!(
                f,
                "DANE {host}: MX records {}, address records {}",
                secure_word(*mx_secure),
                match security {
                    AddressSecurity::SecureAlias => "insecure (secure CNAME to an unsigned zone)",
                    AddressSecurity::Secure if *mixed => "secure for one IP version only",
                    s => secure_word(s.is_secure()),
                }
            ),
            PlanEvent::Tlsa { port, base, lookup } => match lookup {
                TlsaLookup::Records { records, secure } => {
                    for (i, r) in records.iter().enumerate() {
                        if i > 0 {
                            f.write_str("\n")?;
                        }
                        write!(
                            f,
                            "TLSA _{port}._tcp.{base}: {r} ({}{})",
                            secure_word(*secure),
                            if r.usable() { "" } else { ", unusable for SMTP" }
                        )?;
                    }
                    Ok(())
                }
                TlsaLookup::NoRecords { secure } => write!(
                    f,
                    "TLSA _{port}._tcp.{base}: no records ({})",
                    secure_word(*secure)
                ),
                TlsaLookup::Failed(e) => write!(f, "TLSA _{port}._tcp.{base}: lookup failed: {e}"),
            },
            PlanEvent::TlsaNotLookedUp { port, base } => {
                write!(f, "TLSA _{port}._tcp.{base}: not looked up")
            }
            PlanEvent::DaneDecided { host, decision } => match decision {
                DaneDecision::Authenticate(r) => write!(
                    f,
                    "DANE {host}: authenticate against {} usable record(s)",
                    r.len()
                ),
                DaneDecision::Encrypt => write!(f, "DANE {host}: no usable TLSA: encrypt"),
                DaneDecision::May => write!(f, "DANE {host}: no secure TLSA: may"),
                DaneDecision::Defer(why) => {
                    write!(f, "DANE {host}: defer: {} ({})", why.reason, why.detail)
                }
            },
            PlanEvent::FamilyLeftOut { host } => write!(f, "DANE {host}: {}", family_left_out(host)),
            PlanEvent::PlaintextRetry { text, .. } => {
                write!(f, "{text}; level may: retrying without TLS")
            }
            PlanEvent::ConnectFailed { text } => f.write_str(text),
            PlanEvent::StsPolicy {
                domain,
                mode,
                patterns,
            } => write!(
                f,
                "MTA-STS {domain}: mode {}, mx {}",
                mode.as_str(),
                patterns.join(" ")
            ),
            e @ (PlanEvent::StsUnavailable { .. } | PlanEvent::StsTestingMismatch { .. }) => {
                f.write_str(&e.log_text().unwrap_or_default())
            }
        }
    }
}

/// How the next hop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanOutcome {
    /// A session completed (its own results say what the server did).
    Completed,
    /// No session completed.
    Failed {
        /// The failure that goes to the recipients without a result.
        failure: HostFailure,
        /// `host[addr]:port` of the last server tried, `None` when no
        /// connection was made.
        relay: Option<String>,
        /// No server of the destination could be reached: the rest of the
        /// queue run defers its mail without connecting.
        dead: bool,
    },
}

/// What the driver does next.
#[derive(Debug)]
pub enum Step<'p> {
    /// Answer this question with [`Planner::answer`].
    Lookup(Query<'p>),
    /// Connect, then report with [`Planner::connection_done`].
    Connect(&'p Target),
    /// A host ruled out by DANE (log it, go on polling).
    Skip(Skip),
    /// An event (log or show it, go on polling).
    Event(PlanEvent),
    /// Nothing more to do.
    Done(PlanOutcome),
}

/// One MX (or configured) host while its facts are gathered.
#[derive(Debug)]
struct HostWork {
    name: String,
    mx_secure: bool,
    addrs: Option<AddressFacts>,
    security: AddressSecurity,
    /// TLSA base domains still to try, in order (RFC 7672 §2.2.3).
    bases: Vec<String>,
    /// The base domain of the last lookup (or the host).
    tlsa_base: String,
    tlsa: Option<TlsaLookup>,
    /// All TLSA records found at `tlsa_base` (for the policy descriptor).
    tlsa_found: Vec<Tlsa>,
}

#[derive(Debug)]
enum State {
    Start,
    AwaitSts,
    /// The policy lookups are done; resolve the next hop.
    Resolve,
    AwaitMx,
    /// Next host of `hosts` to gather facts for.
    NextHost,
    AwaitAddresses,
    AwaitCname,
    AwaitTlsa,
    /// Targets are known; connect to `targets[next]`.
    Connect,
    AwaitConnection,
    Done(PlanOutcome),
}

/// The planner of one next hop; see the module documentation.
#[derive(Debug)]
pub struct Planner<'a> {
    policy: EffectivePolicy<'a>,
    nexthop: NextHop<'a>,
    settings: &'a PlanSettings,
    port: u16,
    details: bool,
    shuffle: u32,
    state: State,
    events: VecDeque<Step<'static>>,
    hosts: VecDeque<(String, bool)>,
    host: Option<HostWork>,
    targets: Vec<Target>,
    next: usize,
    /// The failure to report when no target comes out of the lookups.
    last_err: Option<HostFailure>,
    /// The last connection failure and its relay.
    last_conn: Option<(HostFailure, String)>,
    any_reached: bool,
    /// The target being tried again without TLS (`may`).
    retrying: bool,
    /// The recipient domain's MTA-STS policy (`enforce` or `testing`).
    sts: Option<Rc<StsPolicy>>,
    /// Its TLSRPT descriptor, made once.
    sts_descriptor: Option<PolicyDescriptor>,
}

impl<'a> Planner<'a> {
    /// A planner for `nexthop` under `policy`. `implicit_tls`: the route
    /// asks for TLS from the first byte (a next hop without a port is then
    /// reached on 465). `details`: make the probe-only events. `shuffle`:
    /// a random seed for the order among MX hosts of equal preference.
    pub fn new(
        nexthop: NextHop<'a>,
        policy: EffectivePolicy<'a>,
        settings: &'a PlanSettings,
        implicit_tls: bool,
        details: bool,
        shuffle: u32,
    ) -> Planner<'a> {
        let port = if implicit_tls {
            // An implicit-TLS next hop without a port: submissions (RFC 8314).
            nexthop.port_or(465)
        } else {
            nexthop.port_or(settings.smtp_port)
        };
        Planner {
            policy,
            nexthop,
            settings,
            port,
            details,
            shuffle: shuffle | 1,
            state: State::Start,
            events: VecDeque::new(),
            hosts: VecDeque::new(),
            host: None,
            targets: Vec::new(),
            next: 0,
            last_err: None,
            last_conn: None,
            any_reached: false,
            retrying: false,
            sts: None,
            sts_descriptor: None,
        }
    }

    /// The policy the planner works under.
    pub fn policy(&self) -> &EffectivePolicy<'a> {
        &self.policy
    }

    /// AD bits count only with DNSSEC lookups on and trusted resolvers;
    /// checked here too, so that no caller's settings can make `dane`
    /// believe an AD bit with DNSSEC off.
    fn trust_ad(&self) -> bool {
        self.settings.trust_ad && self.settings.dnssec()
    }

    fn dane_level(&self) -> Option<DaneLevel> {
        match self.policy.level {
            Level::Dane => Some(DaneLevel::Dane),
            Level::DaneOnly => Some(DaneLevel::DaneOnly),
            _ => self.dane_before_plugin(),
        }
    }

    /// A policy plug-in's MTA-STS answer takes MTA-STS's place in the
    /// order: after DANE when `smtp_tls_security_level` is a DANE level (a
    /// host with usable TLSA records is DANE's; at `dane-only` the others
    /// defer, as the built-in path never asks MTA-STS there).
    fn dane_before_plugin(&self) -> Option<DaneLevel> {
        let sts = self
            .policy
            .sts()
            .is_some_and(|d| d.policy_type() == crate::policy::table::StsPolicyType::Sts);
        if !sts || !matches!(self.policy.source, PolicySource::Plugin { .. }) {
            return None;
        }
        match self.policy.default_level() {
            Level::Dane => Some(DaneLevel::Dane),
            Level::DaneOnly => Some(DaneLevel::DaneOnly),
            _ => None,
        }
    }

    fn event(&mut self, e: PlanEvent) {
        if self.details || !e.is_detail() {
            self.events.push_back(Step::Event(e));
        }
    }

    fn skip(&mut self, host: &str, why: String) {
        self.events.push_back(Step::Skip(Skip {
            dest: self.nexthop.host().to_string(),
            host: host.to_string(),
            why,
        }));
    }

    fn finish(&mut self, outcome: PlanOutcome) {
        self.state = State::Done(outcome);
    }

    /// Ends the lookups: connect to the targets, or fail with the last
    /// reason a host was left out.
    fn lookups_done(&mut self) {
        if !self.targets.is_empty() {
            self.state = State::Connect;
            return;
        }
        let failure = self.last_err.take().unwrap_or_else(|| {
            HostFailure::soft(
                format!("no usable host for {}", self.nexthop.host()),
                "4.4.4",
            )
        });
        let dead = !failure.permanent;
        self.finish(PlanOutcome::Failed {
            failure,
            relay: None,
            dead,
        });
    }

    /// The next thing to do. Call again after every [`Step::Skip`] and
    /// [`Step::Event`]; after [`Step::Lookup`] and [`Step::Connect`], feed
    /// the result first.
    pub fn poll(&mut self) -> Step<'_> {
        loop {
            if let Some(s) = self.events.pop_front() {
                return s;
            }
            match &self.state {
                State::Start => self.start(),
                State::NextHost => self.next_host(),
                State::Connect => {
                    if self.next >= self.targets.len() {
                        self.connections_exhausted();
                        continue;
                    }
                    self.state = State::AwaitConnection;
                    return Step::Connect(&self.targets[self.next]);
                }
                State::Done(o) => return Step::Done(o.clone()),
                State::Resolve => self.resolve(),
                State::AwaitMx => return Step::Lookup(Query::Mx(self.nexthop.host())),
                State::AwaitSts => return Step::Lookup(Query::Sts(self.nexthop.host())),
                State::AwaitAddresses | State::AwaitCname | State::AwaitTlsa => {
                    return Step::Lookup(self.pending_query())
                }
                State::AwaitConnection => {
                    return Step::Connect(&self.targets[self.next]);
                }
            }
        }
    }

    fn pending_query(&self) -> Query<'_> {
        let Some(h) = &self.host else {
            // Unreachable by construction: the await states always have a host.
            return Query::Mx(self.nexthop.host());
        };
        match self.state {
            State::AwaitCname => Query::Cname(&h.name),
            State::AwaitTlsa => Query::Tlsa {
                port: self.port,
                base: h.bases.first().map_or(h.name.as_str(), String::as_str),
            },
            _ => Query::Addresses {
                host: &h.name,
                ipv4: self.settings.ipv4,
                ipv6: self.settings.ipv6,
            },
        }
    }

    fn start(&mut self) {
        let nh = self.nexthop;
        let level = self.policy.level;
        if self.dane_level().is_some() && !self.settings.dnssec() {
            // Postfix (smtp_tls_policy.c, dane_init): a configuration
            // fault, warned about; `dane` acts as `may` (no AD bit is
            // believed below), `dane-only` defers.
            self.event(PlanEvent::DnssecDisabled {
                dest: nh.as_str().to_string(),
                level,
                support: self.settings.dns_support_level.clone(),
            });
            if level == Level::DaneOnly {
                self.finish(PlanOutcome::Failed {
                    failure: HostFailure::soft("client TLS configuration problem", "4.7.5"),
                    relay: None,
                    dead: true,
                });
                return;
            }
        }
        // RFC 8461 applies to MX delivery for a recipient domain, after an
        // explicit policy-table entry; `dane-only` leaves it nothing to do.
        // `TLS-Required: No` (RFC 8689 §4.2.1): MTA-STS is ignored.
        let sts = self.settings.mta_sts
            && nh.uses_mx()
            && self.policy.source == PolicySource::Default
            && level != Level::DaneOnly
            && !self.policy.relaxed();
        self.state = if sts { State::AwaitSts } else { State::Resolve };
    }

    /// The next hop's hosts: an IP literal, an MX lookup, or the host.
    fn resolve(&mut self) {
        let nh = self.nexthop;
        let level = self.policy.level;
        if let Some(ip) = nh.ip() {
            let allowed = match ip {
                IpAddr::V4(_) => self.settings.ipv4,
                IpAddr::V6(_) => self.settings.ipv6,
            };
            if !allowed {
                let f = self.no_enabled_address(nh.host());
                self.finish(PlanOutcome::Failed {
                    failure: f,
                    relay: None,
                    dead: true,
                });
                return;
            }
            // An IP literal has no TLSA base domain: `dane` is `may` there
            // (Postfix), `dane-only` defers (RFC 7672 §2.2: no DANE).
            if level == Level::DaneOnly {
                // Postfix's reason (an address has no validated TLSA
                // RRset); tern's detail goes on the warning line.
                self.skip(
                    nh.host(),
                    format!(
                        "no TLSA records found for [{ip}]:{}: an IP-literal destination has no TLSA base domain",
                        self.port
                    ),
                );
                if let Some(Step::Skip(s)) = self.events.back_mut() {
                    // Postfix names a literal destination as written.
                    s.dest = nh.as_str().to_string();
                }
                self.finish(PlanOutcome::Failed {
                    failure: HostFailure::soft(dane::NO_TLSA, "4.7.5"),
                    relay: None,
                    dead: true,
                });
                return;
            }
            match self.target(nh.host(), ip, None) {
                Ok(t) => {
                    self.targets.push(t);
                    self.state = State::Connect;
                }
                Err(f) => {
                    let dead = !f.permanent;
                    self.finish(PlanOutcome::Failed {
                        failure: f,
                        relay: None,
                        dead,
                    });
                }
            }
        } else if nh.uses_mx() {
            self.state = State::AwaitMx;
        } else {
            // `[host]`: the name comes from configuration, as trusted as the file.
            self.hosts.push_back((nh.host().to_string(), true));
            self.state = State::NextHost;
        }
    }

    fn no_enabled_address(&self, host: &str) -> HostFailure {
        HostFailure::soft(
            format!(
                "{host}: no address of the IP versions enabled by inet_protocols = {}",
                self.settings.inet_protocols
            ),
            "4.4.4",
        )
    }

    fn dns_fail(name: &str, ty: &str, e: &DnsError) -> HostFailure {
        HostFailure::soft(
            format!(
                "Host or domain name not found. Name service error for name={name} type={ty}: {e}"
            ),
            "4.4.3",
        )
    }

    /// Feeds the answer to the last [`Step::Lookup`].
    pub fn answer(&mut self, input: DnsInput) {
        match (&self.state, input) {
            (State::AwaitMx, DnsInput::Mx(r)) => self.answer_mx(r),
            (State::AwaitAddresses, DnsInput::Addresses(a)) => self.answer_addresses(a),
            (State::AwaitCname, DnsInput::Cname(r)) => self.answer_cname(r),
            (State::AwaitTlsa, DnsInput::Tlsa(r)) => self.answer_tlsa(r),
            (State::AwaitSts, DnsInput::Sts(r)) => self.answer_sts(r),
            // A driver bug: never a reason to connect with less protection.
            (_, other) => self.finish(PlanOutcome::Failed {
                failure: HostFailure::soft(
                    format!("internal error: unexpected DNS input {other:?}"),
                    "4.3.0",
                ),
                relay: None,
                dead: false,
            }),
        }
    }

    fn answer_sts(&mut self, input: StsInput) {
        let domain = self.nexthop.host();
        match input {
            StsInput::Policy(p) if p.mode != Mode::None => {
                let patterns: Vec<String> = p.mx_patterns().map(str::to_string).collect();
                if self.details {
                    self.event(PlanEvent::StsPolicy {
                        domain: domain.to_string(),
                        mode: p.mode,
                        patterns: patterns.clone(),
                    });
                }
                self.sts_descriptor = Some(PolicyDescriptor {
                    kind: PolicyType::Sts,
                    domain: domain.to_string(),
                    strings: p.lines().collect(),
                    mx_patterns: patterns,
                });
                self.sts = Some(p);
            }
            StsInput::Policy(_) | StsInput::None => {}
            StsInput::Unavailable { kind, reason } => self.event(PlanEvent::StsUnavailable {
                domain: domain.to_string(),
                kind,
                reason,
            }),
        }
        self.state = State::Resolve;
    }

    /// Applies the MTA-STS policy to a target (RFC 8461 §4): after DANE,
    /// which wins for a host with usable TLSA records. `enforce`: only
    /// listed MX hosts, authenticated TLS with the host's name; `testing`:
    /// as without a policy, the verdict recorded.
    fn sts_overlay(&mut self, t: &mut Target) -> Result<(), HostFailure> {
        let Some(p) = self.sts.clone() else {
            return Ok(());
        };
        if matches!(t.verify, VerifyMode::Dane { .. }) {
            return Ok(());
        }
        let domain = self.nexthop.host();
        let listed = p.matches(&t.host);
        match p.mode {
            Mode::Enforce if !listed => {
                let why = format!(
                    "MX host {} is not listed in the MTA-STS policy of {domain} (mode enforce)",
                    t.host
                );
                return Err(HostFailure::soft(why, "4.7.5"));
            }
            Mode::Enforce => {
                t.tls = TlsRequirement::Required;
                t.level = Level::Verify;
                t.verify = VerifyMode::Sts {
                    host: t.host.clone(),
                    enforce: true,
                    forced: None,
                };
                t.enforce = true;
            }
            Mode::Testing => {
                let forced = (!listed).then(|| {
                    (
                        FailureKind::ValidationFailure,
                        format!("MX host {} is not listed in the MTA-STS policy", t.host),
                    )
                });
                if !listed {
                    self.event(PlanEvent::StsTestingMismatch {
                        domain: domain.to_string(),
                        host: t.host.clone(),
                    });
                }
                t.verify = VerifyMode::Sts {
                    host: t.host.clone(),
                    enforce: false,
                    forced,
                };
                t.enforce = false;
            }
            Mode::None => return Ok(()),
        }
        if let Some(d) = &self.sts_descriptor {
            t.policy = d.clone();
        }
        Ok(())
    }

    fn random(&mut self, n: usize) -> usize {
        // xorshift32: only the order of equal-preference MX hosts depends on it.
        let mut x = self.shuffle;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.shuffle = x;
        (x as usize) % n.max(1)
    }

    fn answer_mx(&mut self, r: Result<Answer<Mx>, DnsError>) {
        let host = self.nexthop.host();
        let answer = match r {
            Ok(a) => a,
            Err(e) => {
                let f = Self::dns_fail(host, "MX", &e);
                self.finish(PlanOutcome::Failed {
                    failure: f,
                    relay: None,
                    dead: true,
                });
                return;
            }
        };
        let secure = answer.authenticated && self.trust_ad();
        let hops = implicit_keeps_the_asked_name(next_hops(&answer, |n| self.random(n)), host);
        match hops {
            NextHops::Mx(list) => self
                .hosts
                .extend(list.into_iter().map(|h| (h.name, secure))),
            NextHops::Implicit(h) => self.hosts.push_back((h.name, secure)),
            NextHops::NullMx => {
                return self.finish(PlanOutcome::Failed {
                    failure: HostFailure::hard(
                        format!("Domain {host} does not accept mail (nullMX)"),
                        "5.1.10",
                    ),
                    relay: None,
                    dead: false,
                })
            }
            NextHops::NxDomain => {
                return self.finish(PlanOutcome::Failed {
                    failure: HostFailure::hard(
                        format!("Host or domain name not found. Name service error for name={host} type=MX: Host not found"),
                        "5.4.4",
                    ),
                    relay: None,
                    dead: false,
                })
            }
        }
        self.state = State::NextHost;
    }

    fn next_host(&mut self) {
        let Some((name, mx_secure)) = self.hosts.pop_front() else {
            return self.lookups_done();
        };
        self.host = Some(HostWork {
            tlsa_base: name.clone(),
            name,
            mx_secure,
            addrs: None,
            security: AddressSecurity::Insecure,
            bases: Vec::new(),
            tlsa: None,
            tlsa_found: Vec::new(),
        });
        self.state = State::AwaitAddresses;
    }

    fn answer_addresses(&mut self, looked: HostAddresses) {
        let Some(mut h) = self.host.take() else {
            return self.lookups_done();
        };
        let trust_ad = self.trust_ad();
        // Only the enabled IP versions were asked (inet_protocols), each
        // family on its own: one failing or unvalidated family neither
        // defers the host nor spoils the other (RFC 7672 §2.2).
        let addrs = AddressFacts::new(&h.name, looked, trust_ad);
        if addrs.addrs.is_empty() {
            self.last_err = Some(match &addrs.failed {
                Some((ty, e)) => Self::dns_fail(&h.name, ty, e),
                None => HostFailure::soft(
                    format!("Host or domain name not found. Name service error for name={} type=A: Host not found", h.name),
                    if self.nexthop.uses_mx() { "4.4.3" } else { "5.4.4" },
                ),
            });
            self.state = State::NextHost;
            return;
        }
        if let Some((ty, e)) = &addrs.failed {
            self.event(PlanEvent::FamilyFailed {
                host: h.name.clone(),
                ty,
                error: e.clone(),
            });
        }
        if self.dane_level().is_none() {
            let ips: Vec<IpAddr> = addrs.addrs.iter().map(|(ip, _)| *ip).collect();
            h.addrs = Some(addrs);
            return self.add_targets(h, ips, None);
        }
        h.security = if addrs.any_secure() {
            AddressSecurity::Secure
        } else {
            AddressSecurity::Insecure
        };
        let alias = !crate::dns::wire::names_equal(&addrs.name, &h.name);
        h.addrs = Some(addrs);
        if h.security == AddressSecurity::Insecure && h.mx_secure && trust_ad && alias {
            // RFC 7672 §2.2.2: a host whose CNAME (the first link) is
            // signed is in a signed zone even when the target is not; its
            // TLSA records are at the original name. The CNAME query is
            // answered by the alias alone.
            self.host = Some(h);
            self.state = State::AwaitCname;
            return;
        }
        self.dane_facts(h);
    }

    fn answer_cname(&mut self, r: Result<Answer<RData>, DnsError>) {
        let Some(mut h) = self.host.take() else {
            return self.lookups_done();
        };
        match r {
            Ok(c) if c.authenticated && !c.records.is_empty() => {
                h.security = AddressSecurity::SecureAlias;
            }
            Ok(_) => {}
            Err(e) => {
                // Never a downgrade: the lookup that would tell whether
                // DANE applies failed.
                let why = format!(
                    "DNSSEC status lookup error for name={} type=CNAME: {e}",
                    h.name
                );
                self.skip(&h.name, why.clone());
                self.last_err = Some(HostFailure::soft(why, "4.7.5"));
                self.state = State::NextHost;
                return;
            }
        }
        self.dane_facts(h);
    }

    /// The host's DNSSEC facts are in: look up TLSA where they allow it.
    fn dane_facts(&mut self, mut h: HostWork) {
        if self.details {
            let mixed = h.addrs.as_ref().is_some_and(|a| a.any_insecure());
            self.event(PlanEvent::DaneFacts {
                host: h.name.clone(),
                mx_secure: h.mx_secure,
                security: h.security,
                mixed,
            });
        }
        if dane::needs_tlsa_lookup(h.mx_secure, h.security.is_secure()) {
            // RFC 7672 §2.2.3: a secure CNAME-expanded name first, then the
            // original name when that has no TLSA or only insecure TLSA.
            let expanded = h.addrs.as_ref().map(|a| a.name.as_str());
            h.bases = dane::base_domains(&h.name, expanded, h.security)
                .into_iter()
                .map(str::to_string)
                .collect();
        }
        if h.bases.is_empty() {
            return self.dane_decide(h);
        }
        self.host = Some(h);
        self.state = State::AwaitTlsa;
    }

    fn answer_tlsa(&mut self, r: Result<Answer<Tlsa>, DnsError>) {
        let Some(mut h) = self.host.take() else {
            return self.lookups_done();
        };
        let trust_ad = self.trust_ad();
        let base = if h.bases.is_empty() {
            h.name.clone()
        } else {
            h.bases.remove(0)
        };
        let mut found = Vec::new();
        let l = match r {
            Ok(a) if a.records.is_empty() => TlsaLookup::NoRecords {
                secure: a.authenticated && trust_ad,
            },
            Ok(a) => {
                found.clone_from(&a.records);
                TlsaLookup::Records {
                    secure: a.authenticated && trust_ad,
                    records: a.records,
                }
            }
            Err(e) => TlsaLookup::Failed(e.to_string()),
        };
        let next = dane::try_next_base_domain(&l);
        // Every lookup is shown, also those the CNAME fallback moves past.
        if self.details {
            self.event(PlanEvent::Tlsa {
                port: self.port,
                base: base.clone(),
                lookup: l.clone(),
            });
        }
        h.tlsa = Some(l);
        h.tlsa_found = found;
        h.tlsa_base = base;
        if next && !h.bases.is_empty() {
            self.host = Some(h);
            return;
        }
        self.dane_decide(h);
    }

    fn dane_decide(&mut self, h: HostWork) {
        let Some(lvl) = self.dane_level() else {
            return self.lookups_done();
        };
        if h.tlsa.is_none() && self.details {
            self.event(PlanEvent::TlsaNotLookedUp {
                port: self.port,
                base: h.tlsa_base.clone(),
            });
        }
        let facts = HostFacts {
            mx_secure: h.mx_secure,
            address_secure: h.security.is_secure(),
            tlsa: h.tlsa.clone(),
        };
        let d = dane::decide_at(lvl, &h.tlsa_base, self.port, &facts);
        if self.details {
            self.event(PlanEvent::DaneDecided {
                host: h.name.clone(),
                decision: d.clone(),
            });
        }
        if let DaneDecision::Defer(why) = &d {
            // Postfix logs the skipped host even when a later one gets the
            // mail (smtp_connect.c); the warning carries tern's DNS detail,
            // the status Postfix's reason.
            self.skip(&h.name, why.detail.clone());
            self.last_err = Some(HostFailure::soft(why.reason.clone(), "4.7.5"));
            self.state = State::NextHost;
            return;
        }
        let Some(addrs) = &h.addrs else {
            return self.lookups_done();
        };
        let (ips, left_out) = dane::dane_addresses(lvl, h.security, addrs, &d);
        if left_out {
            self.event(PlanEvent::FamilyLeftOut {
                host: h.name.clone(),
            });
        }
        self.add_targets(h, ips, Some(d));
    }

    fn add_targets(&mut self, h: HostWork, ips: Vec<IpAddr>, dane: Option<DaneDecision>) {
        for ip in ips {
            match self.target(&h.name, ip, dane.clone()) {
                Ok(mut t) => {
                    if let VerifyMode::Dane { names, .. } = &mut t.verify {
                        // DANE-TA reference identifiers (RFC 7672 §3.2.2):
                        // the TLSA base domain first, then the MX host,
                        // next hop.
                        if !h.tlsa_base.eq_ignore_ascii_case(&h.name) {
                            names.insert(0, h.tlsa_base.clone());
                        }
                        // RFC 7672 §8.1: the SNI name is the TLSA base domain.
                        t.sni = Some(h.tlsa_base.clone());
                    }
                    // A policy for TLSRPT only where DANE applied: validated
                    // TLSA records, usable or not.
                    let applied = matches!(
                        dane,
                        Some(DaneDecision::Authenticate(_) | DaneDecision::Encrypt)
                    );
                    // (A plug-in's MTA-STS answer described the others.)
                    if applied && !h.tlsa_found.is_empty() && t.policy.kind != PolicyType::Sts {
                        t.policy.kind = PolicyType::Tlsa;
                        t.policy.strings = h.tlsa_found.iter().map(|r| r.to_string()).collect();
                    }
                    if let Err(f) = self.sts_overlay(&mut t) {
                        // Not connected to at all (RFC 8461 §4.1).
                        self.skip(&h.name, f.text.clone());
                        self.last_err = Some(f);
                        break;
                    }
                    self.targets.push(t);
                }
                Err(f) => {
                    if self.dane_level().is_some() {
                        self.skip(&h.name, f.text.clone());
                    }
                    self.last_err = Some(f);
                    break;
                }
            }
        }
        self.state = State::NextHost;
    }

    /// The requirements of one connection: the level's mapping, with the
    /// DANE decision at the DANE levels.
    fn target(
        &self,
        host: &str,
        addr: IpAddr,
        dane: Option<DaneDecision>,
    ) -> Result<Target, HostFailure> {
        let policy = &self.policy;
        let level = match (self.dane_before_plugin(), &dane) {
            // DANE decided this host; the plug-in's answer is for the rest.
            (Some(DaneLevel::Dane), Some(DaneDecision::Authenticate(_))) => Level::Dane,
            (Some(DaneLevel::DaneOnly), _) => Level::DaneOnly,
            _ => policy.level,
        };
        let (tls, verify, level) = match (level, dane) {
            (Level::None, _) => (TlsRequirement::None, VerifyMode::Opportunistic, Level::None),
            (Level::May, _) => (
                TlsRequirement::Opportunistic,
                VerifyMode::Opportunistic,
                Level::May,
            ),
            (Level::Encrypt, _) => (
                TlsRequirement::Required,
                VerifyMode::Opportunistic,
                Level::Encrypt,
            ),
            (Level::Fingerprint, _) => {
                // Lengths were checked against the digest at load time.
                let list = policy
                    .fingerprints()
                    .map(|f| f.as_bytes().to_vec())
                    .collect();
                (
                    TlsRequirement::Required,
                    VerifyMode::Fingerprints {
                        digest: self.settings.fingerprint_digest,
                        list,
                    },
                    Level::Fingerprint,
                )
            }
            (l @ (Level::Verify | Level::Secure), _) => {
                let names = policy
                    .cert_names(host)
                    .map(|n| match n {
                        CertName::Exact(e) => MatchName::parse(e),
                        CertName::Subdomain(s) => MatchName::parse(&format!(".{s}")),
                    })
                    .collect();
                (TlsRequirement::Required, VerifyMode::Verify(names), l)
            }
            (l @ (Level::Dane | Level::DaneOnly), Some(DaneDecision::Authenticate(records))) => {
                let names = vec![host.to_string(), policy.nexthop_domain().to_string()];
                (
                    TlsRequirement::Required,
                    VerifyMode::Dane { records, names },
                    l,
                )
            }
            (Level::Dane, Some(DaneDecision::Encrypt)) => (
                TlsRequirement::Required,
                VerifyMode::Opportunistic,
                Level::Encrypt,
            ),
            // `dane-only` without a decision to authenticate cannot become
            // a deliverable target, whatever path led here.
            (Level::DaneOnly, d) => {
                return Err(HostFailure::soft(
                    match d {
                        Some(DaneDecision::Defer(why)) => why.reason,
                        _ => format!("no usable TLSA records for {host}[{addr}]:{}", self.port),
                    },
                    "4.7.5",
                ))
            }
            (Level::Dane, _) => (
                TlsRequirement::Opportunistic,
                VerifyMode::Opportunistic,
                Level::May,
            ),
        };
        Ok(Target {
            host: host.to_string(),
            sni: None,
            addr,
            port: self.port,
            tls,
            verify,
            level,
            policy: PolicyDescriptor {
                kind: PolicyType::NoPolicyFound,
                domain: policy.nexthop_domain().to_string(),
                strings: Vec::new(),
                mx_patterns: Vec::new(),
            },
            enforce: true,
        })
        .map(|t| self.plugin_sts(t))
    }

    /// A policy plug-in's MTA-STS answer (`policy_type=sts`, Postfix
    /// 3.10's attributes): its level and `match=` apply as for any table
    /// entry (as Postfix applies them); the descriptor is the policy's, and
    /// `policy_failure=` fails the connection with that result type.
    fn plugin_sts(&self, mut t: Target) -> Target {
        let Some(d) = self.policy.sts() else {
            return t;
        };
        if d.policy_type() != crate::policy::table::StsPolicyType::Sts
            || matches!(t.verify, VerifyMode::Dane { .. })
        {
            return t;
        }
        t.policy = PolicyDescriptor {
            kind: PolicyType::Sts,
            domain: d
                .domain()
                .unwrap_or(self.policy.nexthop_domain())
                .to_string(),
            strings: d.policy_strings().map(str::to_string).collect(),
            mx_patterns: d.mx_host_patterns().map(str::to_string).collect(),
        };
        if let Some(kind) = d.failure() {
            t.tls = TlsRequirement::Required;
            t.verify = VerifyMode::Sts {
                host: t.host.clone(),
                enforce: true,
                forced: Some((
                    kind,
                    format!("policy plug-in answered policy_failure={}", kind.as_str()),
                )),
            };
        }
        t
    }

    /// Reports the end of the last [`Step::Connect`]: `Ok` when the session
    /// completed, else why not. `work_left`: some recipient still has no
    /// result (a failed session may have delivered part of the mail).
    pub fn connection_done(&mut self, result: Result<(), HostFailure>, work_left: bool) {
        if !matches!(self.state, State::AwaitConnection) {
            return;
        }
        let Some(t) = self.targets.get(self.next) else {
            return self.connections_exhausted();
        };
        let relay = t.relay();
        match result {
            Ok(()) => {
                self.any_reached = true;
                self.last_conn = None;
                self.finish(PlanOutcome::Completed);
            }
            Err(f) if f.tls && t.tls == TlsRequirement::Opportunistic && !self.retrying => {
                // `may`: a failed handshake is not a reason to keep the
                // mail; Postfix retries the same server in plaintext.
                self.event(PlanEvent::PlaintextRetry {
                    text: f.text.clone(),
                    relay,
                });
                self.retrying = true;
                if let Some(t) = self.targets.get_mut(self.next) {
                    t.tls = TlsRequirement::None;
                }
                self.state = State::Connect;
            }
            Err(f) => {
                self.any_reached |= f.reached;
                // After a plaintext retry the next host is tried whatever
                // the failure, as before the planner existed.
                let permanent = f.permanent && !self.retrying;
                if !self.retrying {
                    self.event(PlanEvent::ConnectFailed {
                        text: f.text.clone(),
                    });
                }
                self.retrying = false;
                self.last_conn = Some((f, relay));
                self.next += 1;
                if permanent || !work_left {
                    self.connections_exhausted();
                } else {
                    self.state = State::Connect;
                }
            }
        }
    }

    fn connections_exhausted(&mut self) {
        match self.last_conn.take() {
            Some((failure, relay)) => {
                let dead = !self.any_reached;
                self.finish(PlanOutcome::Failed {
                    failure,
                    relay: Some(relay),
                    dead,
                });
            }
            None => self.finish(PlanOutcome::Completed),
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
