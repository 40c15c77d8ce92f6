//! The day's TLS report counters (RFC 8460 §4): per policy domain, per
//! policy (type, strings, mx patterns), success and failure session counts
//! and aggregated failure details. Memory is bounded by configuration:
//! at most `smtp_tlsrpt_max_domains` domains ([`Limits`]), a fixed number
//! of policies per domain and of failure details per policy; what does not
//! fit is still counted in the totals where it can be, and logged once.
//!
//! The counters are checkpointed to flash now and then as a small text
//! file ([`Period::to_text`] / [`Period::from_text`]; the driver in
//! [`super::daemon`] writes it atomically), so a reboot loses at most one
//! checkpoint interval. Sans-I/O: no files, clock or sockets here.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::rc::Rc;

use crate::delivery::report::{TlsAttempt, TlsReportSink};
use crate::policy::plan::PolicyType;
use crate::tls::{FailureKind, TlsOutcome};

/// Policies kept per domain: a domain has one policy at a time, but a
/// change during the day (new TLSA records, a new STS id) makes a second.
pub const MAX_POLICIES: usize = 8;
/// Distinct failure details kept per policy (host, IPs, result, reason);
/// further failures count in the policy's total only.
pub const MAX_DETAILS: usize = 32;
/// Policy strings kept per policy, and bytes per string: an MTA-STS
/// policy has a handful of lines, a TLSA RRset a few records.
pub const MAX_STRINGS: usize = 32;
/// Bytes kept of a policy string, host name, HELO name or reason.
pub const MAX_TEXT: usize = 512;

/// The configured bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `smtp_tlsrpt_max_domains`: most policy domains counted per day.
    pub max_domains: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_domains: 100 }
    }
}

/// One aggregated failure detail (RFC 8460 §4.4 `failure-details`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureDetail {
    /// `result-type`.
    pub result: FailureKind,
    /// `sending-mta-ip`.
    pub sending_ip: Option<IpAddr>,
    /// `receiving-mx-hostname`.
    pub mx_host: String,
    /// `receiving-ip`.
    pub mx_ip: Option<IpAddr>,
    /// `receiving-mx-helo`.
    pub helo: Option<String>,
    /// `failure-reason-code`.
    pub reason: String,
    /// `failed-session-count`.
    pub count: u64,
}

/// The counts of one policy of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyCounts {
    /// `policy-type`.
    pub kind: PolicyType,
    /// `policy-string`.
    pub strings: Vec<String>,
    /// `mx-host`.
    pub mx: Vec<String>,
    /// `total-successful-session-count`.
    pub success: u64,
    /// `total-failure-session-count`.
    pub failure: u64,
    /// Aggregated failures, at most [`MAX_DETAILS`].
    pub details: Vec<FailureDetail>,
}

/// Everything counted for one policy domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainCounts {
    /// The policy domain.
    pub domain: String,
    /// Where its reports go: the `rua` of its TLSRPT record as last seen.
    pub rua: Vec<String>,
    /// Its policies, at most [`MAX_POLICIES`].
    pub policies: Vec<PolicyCounts>,
}

/// The counters of one reporting period.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Period {
    /// Start of the period, Unix seconds (a UTC midnight, except after a
    /// `tern tlsrpt send --now`).
    pub start: u64,
    /// Domains in first-seen order, at most `max_domains`.
    pub domains: Vec<DomainCounts>,
}

/// What [`Period::record`] did with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Counted, with its details.
    Counted,
    /// Counted in the totals; the failure detail table was full.
    DetailsFull,
    /// Not counted: the domain table is full.
    DomainsFull,
    /// Not counted: the domain has [`MAX_POLICIES`] policies already.
    PoliciesFull,
    /// Not counted: a reused connection, or no TLSRPT record.
    Ignored,
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn clip_all(v: &[String]) -> Vec<String> {
    v.iter().take(MAX_STRINGS).map(|s| clip(s)).collect()
}

impl Period {
    /// An empty period starting at `start`.
    pub fn new(start: u64) -> Period {
        Period {
            start,
            domains: Vec::new(),
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Counts one attempt to a domain whose reports go to `rua`.
    pub fn record(&mut self, a: &TlsAttempt, rua: &[String], limits: &Limits) -> Recorded {
        if a.reused {
            return Recorded::Ignored;
        }
        let domain = a.policy.domain.to_ascii_lowercase();
        let d = match self.domains.iter().position(|d| d.domain == domain) {
            Some(i) => &mut self.domains[i],
            None if self.domains.len() >= limits.max_domains => return Recorded::DomainsFull,
            None => {
                self.domains.push(DomainCounts {
                    domain: clip(&domain),
                    rua: Vec::new(),
                    policies: Vec::new(),
                });
                let last = self.domains.len() - 1;
                &mut self.domains[last]
            }
        };
        // The record may change during the day: the latest one is where
        // the report goes.
        if d.rua.as_slice() != rua {
            d.rua = clip_all(rua);
        }
        let strings = clip_all(&a.policy.strings);
        let mx = clip_all(&a.policy.mx_patterns);
        let p = match d
            .policies
            .iter()
            .position(|p| p.kind == a.policy.kind && p.strings == strings && p.mx == mx)
        {
            Some(i) => &mut d.policies[i],
            None if d.policies.len() >= MAX_POLICIES => return Recorded::PoliciesFull,
            None => {
                d.policies.push(PolicyCounts {
                    kind: a.policy.kind,
                    strings,
                    mx,
                    success: 0,
                    failure: 0,
                    details: Vec::new(),
                });
                let last = d.policies.len() - 1;
                &mut d.policies[last]
            }
        };
        // The result type and reason the log line and the collector's
        // datagram carry (Postfix 3.10's mapping), so that reports agree
        // with them; tern's own words where Postfix gives no reason.
        let (result, reason) = match (crate::tlsrpt::event::status(a), &a.outcome) {
            (crate::tlsrpt::event::Status::Success, _) => {
                p.success += 1;
                return Recorded::Counted;
            }
            (
                crate::tlsrpt::event::Status::Failure {
                    kind,
                    reason: Some(r),
                },
                _,
            ) => (kind, r),
            (
                crate::tlsrpt::event::Status::Failure { kind, reason: None },
                TlsOutcome::Failure { reason, .. },
            ) => (kind, reason.as_str()),
            (
                crate::tlsrpt::event::Status::Failure { kind, reason: None },
                TlsOutcome::Success(_),
            ) => (kind, ""),
        };
        p.failure += 1;
        let detail = FailureDetail {
            result,
            sending_ip: a.sending_ip,
            mx_host: clip(&a.host),
            mx_ip: Some(a.addr),
            helo: a.helo.as_deref().map(clip),
            reason: clip(reason),
            count: 1,
        };
        let same = |x: &FailureDetail| {
            x.result == detail.result
                && x.sending_ip == detail.sending_ip
                && x.mx_host == detail.mx_host
                && x.mx_ip == detail.mx_ip
                && x.helo == detail.helo
                && x.reason == detail.reason
        };
        let full = p.details.len() >= MAX_DETAILS;
        match p.details.iter_mut().find(|x| same(x)) {
            Some(x) => x.count += 1,
            None if full => return Recorded::DetailsFull,
            None => p.details.push(detail),
        }
        Recorded::Counted
    }

    /// The checkpoint file's text: a version line, the period's start, then
    /// one line per domain (`D`), policy (`P`) and failure detail (`F`),
    /// tab-separated, each field percent-escaped.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "tern-tlsrpt-counters 1\nstart\t{}", self.start);
        for d in &self.domains {
            out.push('D');
            field(&mut out, &d.domain);
            for r in &d.rua {
                field(&mut out, r);
            }
            out.push('\n');
            for p in &d.policies {
                let _ = write!(
                    out,
                    "P\t{}\t{}\t{}\t{}",
                    p.kind.as_str(),
                    p.success,
                    p.failure,
                    p.strings.len()
                );
                for s in p.strings.iter().chain(&p.mx) {
                    field(&mut out, s);
                }
                out.push('\n');
                for f in &p.details {
                    let _ = write!(out, "F\t{}\t{}", f.result.as_str(), f.count);
                    field(&mut out, &ip_text(f.sending_ip));
                    field(&mut out, &f.mx_host);
                    field(&mut out, &ip_text(f.mx_ip));
                    field(&mut out, f.helo.as_deref().unwrap_or(""));
                    field(&mut out, &f.reason);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Reads a checkpoint written by [`Period::to_text`], keeping the
    /// bounds of `limits` (a smaller `max_domains` than when it was written
    /// drops the domains over it). A malformed line ends the reading with
    /// an error naming it: a checkpoint is all or nothing.
    pub fn from_text(text: &str, limits: &Limits) -> Result<Period, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, "tern-tlsrpt-counters 1")) => {}
            _ => return Err("not a tern TLSRPT checkpoint (version line)".into()),
        }
        let start = match lines.next().map(|(_, l)| l.split_once('\t')) {
            Some(Some(("start", n))) => n.parse::<u64>().map_err(|_| "bad start line")?,
            _ => return Err("missing start line".into()),
        };
        let mut p = Period::new(start);
        for (no, line) in lines {
            let bad = || format!("line {}: malformed", no + 1);
            let mut f = line.split('\t');
            let tag = f.next().unwrap_or("");
            let mut fields = f.map(unescape);
            match tag {
                "D" => {
                    let domain = fields.next().ok_or_else(bad)?.ok_or_else(bad)?;
                    let rua = fields.collect::<Option<Vec<_>>>().ok_or_else(bad)?;
                    p.domains.push(DomainCounts {
                        domain: clip(&domain),
                        rua: clip_all(&rua),
                        policies: Vec::new(),
                    });
                }
                "P" => {
                    let v = fields.collect::<Option<Vec<String>>>().ok_or_else(bad)?;
                    let d = p.domains.last_mut().ok_or_else(bad)?;
                    let [kind, s, fl, n, rest @ ..] = v.as_slice() else {
                        return Err(bad());
                    };
                    let kind = match kind.as_str() {
                        "tlsa" => PolicyType::Tlsa,
                        "sts" => PolicyType::Sts,
                        "no-policy-found" => PolicyType::NoPolicyFound,
                        _ => return Err(bad()),
                    };
                    let n: usize = n.parse().map_err(|_| bad())?;
                    if n > rest.len() || d.policies.len() >= MAX_POLICIES {
                        return Err(bad());
                    }
                    d.policies.push(PolicyCounts {
                        kind,
                        success: s.parse().map_err(|_| bad())?,
                        failure: fl.parse().map_err(|_| bad())?,
                        strings: clip_all(&rest[..n]),
                        mx: clip_all(&rest[n..]),
                        details: Vec::new(),
                    });
                }
                "F" => {
                    let v = fields.collect::<Option<Vec<String>>>().ok_or_else(bad)?;
                    let pol = p
                        .domains
                        .last_mut()
                        .and_then(|d| d.policies.last_mut())
                        .ok_or_else(bad)?;
                    let [result, count, sip, host, mip, helo, reason] = v.as_slice() else {
                        return Err(bad());
                    };
                    if pol.details.len() >= MAX_DETAILS {
                        return Err(bad());
                    }
                    pol.details.push(FailureDetail {
                        result: FailureKind::parse(result).ok_or_else(bad)?,
                        count: count.parse().map_err(|_| bad())?,
                        sending_ip: parse_ip(sip).map_err(|_| bad())?,
                        mx_host: clip(host),
                        mx_ip: parse_ip(mip).map_err(|_| bad())?,
                        helo: (!helo.is_empty()).then(|| clip(helo)),
                        reason: clip(reason),
                    });
                }
                "" => {}
                _ => return Err(bad()),
            }
        }
        p.domains.truncate(limits.max_domains);
        Ok(p)
    }
}

fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map(|i| i.to_string()).unwrap_or_default()
}

fn parse_ip(s: &str) -> Result<Option<IpAddr>, ()> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| ())
}

/// Appends a tab and `s` with `%`, controls (tab, line ends) and DEL as
/// `%XX`: peer-supplied names and reasons cannot break a line.
fn field(out: &mut String, s: &str) {
    out.push('\t');
    for c in s.chars() {
        if c == '%' || c.is_control() {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The daemon's counters: a [`TlsReportSink`] that counts the attempts
/// of domains with a TLSRPT record into the current [`Period`].
#[derive(Debug)]
pub struct Counters {
    period: RefCell<Period>,
    limits: Cell<Limits>,
    /// Changed since the last checkpoint.
    dirty: Cell<bool>,
    /// The "table full" warnings were logged this period (once each).
    warned: Cell<(bool, bool, bool)>,
}

impl Counters {
    /// Counters for a period starting at `start` (or continuing a
    /// checkpoint's).
    pub fn new(period: Period, limits: Limits) -> Rc<Counters> {
        Rc::new(Counters {
            period: RefCell::new(period),
            limits: Cell::new(limits),
            dirty: Cell::new(false),
            warned: Cell::new((false, false, false)),
        })
    }

    /// New bounds after a reload (already counted domains stay).
    pub fn set_limits(&self, limits: Limits) {
        self.limits.set(limits);
    }

    /// A copy of the current period (for `tern tlsrpt show` and reports).
    pub fn snapshot(&self) -> Period {
        self.period.borrow().clone()
    }

    /// Ends the current period: returns it and starts an empty one at
    /// `start`.
    pub fn take(&self, start: u64) -> Period {
        self.dirty.set(true);
        self.warned.set((false, false, false));
        std::mem::replace(&mut *self.period.borrow_mut(), Period::new(start))
    }

    /// The checkpoint text if anything changed since the last call.
    pub fn checkpoint_due(&self) -> Option<String> {
        self.dirty
            .replace(false)
            .then(|| self.period.borrow().to_text())
    }

    /// The checkpoint text, changed or not.
    pub fn checkpoint_text(&self) -> String {
        self.dirty.set(false);
        self.period.borrow().to_text()
    }

    /// Marks the counters as not yet written (a checkpoint write failed).
    pub fn set_dirty(&self) {
        self.dirty.set(true);
    }
}

impl TlsReportSink for Counters {
    fn record(&self, a: &TlsAttempt) {
        let Some(rec) = a.tlsrpt.as_ref() else {
            return;
        };
        let limits = self.limits.get();
        let r = self.period.borrow_mut().record(a, &rec.rua, &limits);
        let (mut d, mut p, mut f) = self.warned.get();
        match r {
            Recorded::Counted => self.dirty.set(true),
            Recorded::Ignored => {}
            Recorded::DetailsFull => {
                self.dirty.set(true);
                if !f {
                    f = true;
                    log::warn!(target: "tlsrpt", "warning: TLSRPT: domain={}: more than {MAX_DETAILS} distinct failure details today; further ones are counted in the total only", a.policy.domain);
                }
            }
            Recorded::DomainsFull => {
                if !d {
                    d = true;
                    log::warn!(target: "tlsrpt", "warning: TLSRPT: counters full (smtp_tlsrpt_max_domains = {}): domain={} and any further new domain are not counted today", limits.max_domains, a.policy.domain);
                }
            }
            Recorded::PoliciesFull => {
                if !p {
                    p = true;
                    log::warn!(target: "tlsrpt", "warning: TLSRPT: domain={}: more than {MAX_POLICIES} policies today; sessions under further ones are not counted", a.policy.domain);
                }
            }
        }
        self.warned.set((d, p, f));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::plan::PolicyDescriptor;
    use crate::policy::Level;
    use crate::tls::Trust;
    use crate::tlsrpt::TlsRptRecord;

    /// A synthetic attempt for `domain` (with a record) and `outcome`.
    pub fn attempt(domain: &str, kind: PolicyType, outcome: TlsOutcome) -> TlsAttempt {
        TlsAttempt {
            policy: PolicyDescriptor {
                kind,
                domain: domain.into(),
                strings: if kind == PolicyType::Sts {
                    vec!["version: STSv1".into(), "mode: enforce".into()]
                } else {
                    vec![]
                },
                mx_patterns: if kind == PolicyType::Sts {
                    vec![format!("*.{domain}")]
                } else {
                    vec![]
                },
            },
            // A DANE-authenticated session for tlsa (at encrypt, a tlsa
            // success is Postfix's "all TLSA records unusable" failure).
            level: if kind == PolicyType::Tlsa {
                Level::Dane
            } else {
                Level::Encrypt
            },
            host: format!("mx.{domain}"),
            addr: "192.0.2.1".parse().unwrap(),
            port: 25,
            helo: Some(format!("mx.{domain}")),
            sending_ip: Some("198.51.100.7".parse().unwrap()),
            reused: false,
            outcome,
            failure_code: None,
            tlsrpt: Some(Rc::new(TlsRptRecord {
                text: format!("v=TLSRPTv1; rua=mailto:tlsrpt@{domain}"),
                rua: vec![format!("mailto:tlsrpt@{domain}")],
            })),
        }
    }

    pub fn failure(kind: FailureKind, reason: &str) -> TlsOutcome {
        TlsOutcome::Failure {
            kind,
            reason: reason.into(),
        }
    }

    #[test]
    fn counts_and_aggregates() {
        let c = Counters::new(Period::new(86_400), Limits::default());
        let ok = attempt(
            "a.test",
            PolicyType::Sts,
            TlsOutcome::Success(Trust::Verified),
        );
        c.record(&ok);
        c.record(&ok);
        let bad = attempt(
            "a.test",
            PolicyType::Sts,
            failure(FailureKind::CertificateExpired, "certificate has expired"),
        );
        c.record(&bad);
        c.record(&bad);
        let mut other_ip = bad.clone();
        other_ip.addr = "192.0.2.9".parse().unwrap();
        c.record(&other_ip);
        // No record: not counted; reused: not counted.
        let mut none = ok.clone();
        none.tlsrpt = None;
        c.record(&none);
        let mut reused = ok.clone();
        reused.reused = true;
        c.record(&reused);
        // Another policy type for the same domain is a second policy.
        let mut upper = attempt(
            "a.test",
            PolicyType::NoPolicyFound,
            failure(FailureKind::StarttlsNotSupported, ""),
        );
        upper.policy.domain = "A.TEST".into();
        c.record(&upper);
        let p = c.snapshot();
        assert_eq!(p.domains.len(), 1);
        let d = &p.domains[0];
        assert_eq!(d.domain, "a.test");
        assert_eq!(d.rua, ["mailto:tlsrpt@a.test"]);
        assert_eq!(d.policies.len(), 2);
        let sts = &d.policies[0];
        assert_eq!((sts.success, sts.failure), (2, 3));
        assert_eq!(sts.details.len(), 2);
        assert_eq!(sts.details[0].count, 2);
        assert_eq!(sts.details[0].result, FailureKind::CertificateExpired);
        assert_eq!(sts.details[1].mx_ip, Some("192.0.2.9".parse().unwrap()));
        assert_eq!(d.policies[1].kind, PolicyType::NoPolicyFound);
        assert_eq!((d.policies[1].success, d.policies[1].failure), (0, 1));
        assert!(c.checkpoint_due().is_some());
        assert!(c.checkpoint_due().is_none());
        let old = c.take(2 * 86_400);
        assert_eq!(old, p);
        assert!(c.snapshot().is_empty());
        assert_eq!(c.snapshot().start, 2 * 86_400);
    }

    #[test]
    fn bounded() {
        let limits = Limits { max_domains: 2 };
        let mut p = Period::new(0);
        let ok = TlsOutcome::Success(Trust::Verified);
        for d in ["a.test", "b.test"] {
            let a = attempt(d, PolicyType::NoPolicyFound, ok.clone());
            assert_eq!(p.record(&a, &[], &limits), Recorded::Counted);
        }
        let c = attempt("c.test", PolicyType::NoPolicyFound, ok.clone());
        assert_eq!(p.record(&c, &[], &limits), Recorded::DomainsFull);
        assert_eq!(p.domains.len(), 2);
        // Details per policy are bounded; the total still counts.
        for i in 0..(MAX_DETAILS + 5) {
            let a = attempt(
                "a.test",
                PolicyType::NoPolicyFound,
                failure(FailureKind::ValidationFailure, &format!("reason {i}")),
            );
            let r = p.record(&a, &[], &limits);
            assert_eq!(r == Recorded::DetailsFull, i >= MAX_DETAILS);
        }
        let pol = &p.domains[0].policies[0];
        assert_eq!(pol.details.len(), MAX_DETAILS);
        assert_eq!(pol.failure, (MAX_DETAILS + 5) as u64);
        // Policies per domain are bounded.
        for i in 0..MAX_POLICIES + 1 {
            let mut a = attempt("b.test", PolicyType::Tlsa, ok.clone());
            a.policy.strings = vec![format!("3 1 1 {i:02x}")];
            let r = p.record(&a, &[], &limits);
            // b.test already has its no-policy-found policy.
            assert_eq!(r == Recorded::PoliciesFull, i + 1 >= MAX_POLICIES);
        }
    }

    #[test]
    fn checkpoint_round_trip() {
        let limits = Limits::default();
        let mut p = Period::new(1_700_000_000 - 1_700_000_000 % 86_400);
        let mut a = attempt(
            "x.test",
            PolicyType::Sts,
            failure(
                FailureKind::ValidationFailure,
                "odd\treason\r\nwith %41 and \u{e9}",
            ),
        );
        a.helo = Some("evil\"\\helo".into());
        p.record(
            &a,
            &["mailto:r@x.test".into(), "https://r.x.test/".into()],
            &limits,
        );
        a.helo = None;
        a.sending_ip = None;
        p.record(&a, &["mailto:r@x.test".into()], &limits);
        let ok = attempt(
            "y.test",
            PolicyType::Tlsa,
            TlsOutcome::Success(Trust::Verified),
        );
        p.record(&ok, &[], &limits);
        let text = p.to_text();
        assert_eq!(text.lines().filter(|l| l.starts_with('F')).count(), 2);
        assert_eq!(Period::from_text(&text, &limits), Ok(p.clone()));
        // Fewer domains allowed now: the extra ones go.
        let small = Period::from_text(&text, &Limits { max_domains: 1 }).unwrap();
        assert_eq!(small.domains.len(), 1);
        // Damage is an error, not a panic.
        for bad in [
            "",
            "tern-tlsrpt-counters 1\n",
            "tern-tlsrpt-counters 1\nstart\tx\n",
            "tern-tlsrpt-counters 1\nstart\t0\nP\tsts\t1\t1\t0\n",
            "tern-tlsrpt-counters 1\nstart\t0\nD\ta\nP\tsts\t1\t1\t9\n",
            "tern-tlsrpt-counters 1\nstart\t0\nD\ta\nP\tsts\t1\t1\t0\nF\tnope\t1\t\t\t\t\t\n",
            "tern-tlsrpt-counters 1\nstart\t0\nD\t%G1\n",
            "tern-tlsrpt-counters 1\nstart\t0\nZ\n",
        ] {
            assert!(Period::from_text(bad, &limits).is_err(), "{bad:?}");
        }
    }
}
