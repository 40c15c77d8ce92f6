#[allow(unused_imports)]
use super::*;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::dns::Status;
use crate::policy::dane::NO_TLSA;
use crate::policy::decide::{PolicyDefaults, PolicyInputs};

const DOMAIN: &str = "example.test";
const MX: &str = "mx.example.test";
const MX1: &str = "mx1.example.test";
const MX2: &str = "mx2.example.test";
const V4: &str = "192.0.2.1";
const V4B: &str = "192.0.2.2";
const V6: &str = "2001:db8::1";

// ---------------------------------------------------------------------
// The fake DNS world.

fn answer<T>(name: &str, records: Vec<T>, ad: bool) -> Answer<T> {
    Answer {
        status: if records.is_empty() {
            Status::NoData
        } else {
            Status::Found
        },
        records,
        authenticated: ad,
        name: name.to_string(),
        ttl: 300,
    }
}

fn nxdomain<T>(name: &str, ad: bool) -> Answer<T> {
    Answer {
        status: Status::NxDomain,
        records: Vec::new(),
        authenticated: ad,
        name: name.to_string(),
        ttl: 300,
    }
}

/// A TLSA record with `fill` as every byte of its association data.
fn tlsa(usage: u8, selector: u8, matching_type: u8, fill: u8) -> Tlsa {
    let len = match matching_type {
        1 => 32,
        2 => 64,
        _ => 16,
    };
    Tlsa {
        usage,
        selector,
        matching_type,
        data: vec![fill; len],
    }
}

/// A usable DANE-EE record (`3 1 1 ABAB...`).
fn ee() -> Tlsa {
    tlsa(3, 1, 1, 0xab)
}

fn ee_text() -> String {
    format!("3 1 1 {}", "AB".repeat(32))
}

/// Canned answers by name; a query nobody wrote an answer for panics for
/// MX, CNAME and TLSA (every test names the lookups it expects) and is an
/// unvalidated NODATA for A and AAAA.
#[derive(Default)]
struct World {
    mx: HashMap<String, Result<Answer<Mx>, DnsError>>,
    a: HashMap<String, Result<Answer<Ipv4Addr>, DnsError>>,
    aaaa: HashMap<String, Result<Answer<Ipv6Addr>, DnsError>>,
    cname: HashMap<String, Result<Answer<RData>, DnsError>>,
    /// By owner name, `_25._tcp.host`.
    tlsa: HashMap<String, Result<Answer<Tlsa>, DnsError>>,
    /// MTA-STS answers by recipient domain.
    sts: HashMap<String, StsInput>,
}

impl World {
    fn new() -> World {
        World::default()
    }

    fn mx(mut self, domain: &str, hosts: &[(u16, &str)], ad: bool) -> World {
        let records = hosts
            .iter()
            .map(|(p, h)| Mx {
                preference: *p,
                exchange: h.to_string(),
            })
            .collect();
        self.mx
            .insert(domain.into(), Ok(answer(domain, records, ad)));
        self
    }

    fn mx_answer(mut self, domain: &str, r: Result<Answer<Mx>, DnsError>) -> World {
        self.mx.insert(domain.into(), r);
        self
    }

    /// A records of `host`, found at `name` (the CNAME-expanded name).
    fn a_at(mut self, host: &str, name: &str, ips: &[&str], ad: bool) -> World {
        let ips = ips.iter().map(|s| s.parse().unwrap()).collect();
        self.a.insert(host.into(), Ok(answer(name, ips, ad)));
        self
    }

    fn a(self, host: &str, ips: &[&str], ad: bool) -> World {
        self.a_at(host, host, ips, ad)
    }

    fn a_answer(mut self, host: &str, r: Result<Answer<Ipv4Addr>, DnsError>) -> World {
        self.a.insert(host.into(), r);
        self
    }

    fn aaaa_at(mut self, host: &str, name: &str, ips: &[&str], ad: bool) -> World {
        let ips = ips.iter().map(|s| s.parse().unwrap()).collect();
        self.aaaa.insert(host.into(), Ok(answer(name, ips, ad)));
        self
    }

    fn aaaa(self, host: &str, ips: &[&str], ad: bool) -> World {
        self.aaaa_at(host, host, ips, ad)
    }

    fn aaaa_err(mut self, host: &str, e: DnsError) -> World {
        self.aaaa.insert(host.into(), Err(e));
        self
    }

    fn cname(mut self, host: &str, target: &str, ad: bool) -> World {
        self.cname.insert(
            host.into(),
            Ok(answer(host, vec![RData::Cname(target.into())], ad)),
        );
        self
    }

    fn cname_answer(mut self, host: &str, r: Result<Answer<RData>, DnsError>) -> World {
        self.cname.insert(host.into(), r);
        self
    }

    /// TLSA records at `_25._tcp.<base>`.
    fn tlsa(self, base: &str, records: &[Tlsa], ad: bool) -> World {
        self.tlsa_at(25, base, records, ad)
    }

    /// TLSA records at `_<port>._tcp.<base>`.
    fn tlsa_at(mut self, port: u16, base: &str, records: &[Tlsa], ad: bool) -> World {
        let owner = format!("_{port}._tcp.{base}");
        self.tlsa
            .insert(owner.clone(), Ok(answer(&owner, records.to_vec(), ad)));
        self
    }

    fn tlsa_err(mut self, base: &str, e: DnsError) -> World {
        self.tlsa.insert(format!("_25._tcp.{base}"), Err(e));
        self
    }

    /// The usual signed world: `example.test` MX 10 `mx.example.test`,
    /// which has one validated IPv4 address and a validated NODATA for
    /// AAAA.
    fn signed() -> World {
        World::new()
            .mx(DOMAIN, &[(10, MX)], true)
            .a(MX, &[V4], true)
            .aaaa(MX, &[], true)
    }

    fn resolve(&self, q: Query<'_>) -> DnsInput {
        fn get<T: Clone>(
            m: &HashMap<String, Result<Answer<T>, DnsError>>,
            key: &str,
            what: &str,
        ) -> Result<Answer<T>, DnsError> {
            match m.get(key) {
                Some(r) => r.clone(),
                None => panic!("unexpected {what} query for {key}"),
            }
        }
        match q {
            Query::Mx(d) => DnsInput::Mx(get(&self.mx, d, "MX")),
            Query::Addresses { host, ipv4, ipv6 } => DnsInput::Addresses(HostAddresses {
                v4: ipv4.then(|| {
                    self.a
                        .get(host)
                        .cloned()
                        .unwrap_or_else(|| Ok(answer(host, Vec::new(), false)))
                }),
                v6: ipv6.then(|| {
                    self.aaaa
                        .get(host)
                        .cloned()
                        .unwrap_or_else(|| Ok(answer(host, Vec::new(), false)))
                }),
            }),
            Query::Cname(h) => DnsInput::Cname(get(&self.cname, h, "CNAME")),
            Query::Tlsa { port, base } => {
                DnsInput::Tlsa(get(&self.tlsa, &format!("_{port}._tcp.{base}"), "TLSA"))
            }
            Query::Sts(d) => DnsInput::Sts(self.sts.get(d).cloned().unwrap_or(StsInput::None)),
        }
    }
}

// ---------------------------------------------------------------------
// The driver.

/// How the server certificate is judged, comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verify {
    Opportunistic,
    Fingerprints,
    /// `verify`/`secure`: chain and names.
    Pkix,
    /// TLSA records in presentation form, reference names.
    Dane(Vec<String>, Vec<String>),
    /// MTA-STS: host, enforce, a failure decided in advance.
    Sts(String, bool, bool),
}

/// One `Step::Connect`, as the test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Conn {
    host: String,
    addr: IpAddr,
    port: u16,
    tls: TlsRequirement,
    verify: Verify,
    level: Level,
    sni: Option<String>,
    policy: PolicyDescriptor,
}

impl Conn {
    fn of(t: &Target) -> Conn {
        Conn {
            host: t.host.clone(),
            addr: t.addr,
            port: t.port,
            tls: t.tls,
            verify: match &t.verify {
                VerifyMode::Opportunistic => Verify::Opportunistic,
                VerifyMode::Fingerprints { .. } => Verify::Fingerprints,
                VerifyMode::Verify(_) => Verify::Pkix,
                VerifyMode::Dane { records, names } => Verify::Dane(
                    records.iter().map(|r| r.to_string()).collect(),
                    names.clone(),
                ),
                VerifyMode::Sts {
                    host,
                    enforce,
                    forced,
                } => Verify::Sts(host.clone(), *enforce, forced.is_some()),
            },
            level: t.level,
            sni: t.sni.clone(),
            policy: t.policy.clone(),
        }
    }
}

/// The connections a DANE-authenticated target to `host` at `addr` has,
/// TLSA base domain `host`.
fn dane_conn(host: &str, addr: &str, level: Level, records: &[Tlsa]) -> Conn {
    Conn {
        host: host.into(),
        addr: addr.parse().unwrap(),
        port: 25,
        tls: TlsRequirement::Required,
        verify: Verify::Dane(
            records
                .iter()
                .filter(|r| r.usable())
                .map(|r| r.to_string())
                .collect(),
            vec![host.into(), DOMAIN.into()],
        ),
        level,
        sni: Some(host.into()),
        policy: descriptor(PolicyType::Tlsa, records),
    }
}

/// An opportunistic (`may`) target.
fn may_conn(host: &str, addr: &str) -> Conn {
    Conn {
        host: host.into(),
        addr: addr.parse().unwrap(),
        port: 25,
        tls: TlsRequirement::Opportunistic,
        verify: Verify::Opportunistic,
        level: Level::May,
        sni: None,
        policy: descriptor(PolicyType::NoPolicyFound, &[]),
    }
}

fn descriptor(kind: PolicyType, records: &[Tlsa]) -> PolicyDescriptor {
    PolicyDescriptor {
        kind,
        domain: DOMAIN.into(),
        strings: records.iter().map(|r| r.to_string()).collect(),
        mx_patterns: Vec::new(),
    }
}

fn settings() -> PlanSettings {
    PlanSettings {
        smtp_port: 25,
        dns_support_level: "dnssec".into(),
        trust_ad: true,
        ipv4: true,
        ipv6: true,
        inet_protocols: "all".into(),
        fingerprint_digest: FingerprintDigest::Sha256,
        mta_sts: false,
    }
}

/// `smtp_dns_support_level = enabled`: no AD bit is believed (the
/// configuration's `ad_trust` is `Disabled`).
fn settings_without_dnssec() -> PlanSettings {
    PlanSettings {
        dns_support_level: "enabled".into(),
        trust_ad: false,
        ..settings()
    }
}

fn unreached(text: &str) -> HostFailure {
    HostFailure::soft(text, "4.4.1")
}

fn reached(text: &str) -> HostFailure {
    HostFailure {
        reached: true,
        ..HostFailure::soft(text, "4.4.2")
    }
}

fn handshake_failed() -> HostFailure {
    HostFailure {
        reached: true,
        tls: true,
        ..HostFailure::soft("TLS handshake failed", "4.7.5")
    }
}

/// One run of the planner to `Done`.
struct Case<'w> {
    world: &'w World,
    nexthop: &'static str,
    level: Level,
    settings: PlanSettings,
    details: bool,
    /// Per address, the results of its connections in order; an address
    /// with none left completes (`Ok`), or fails unreached with
    /// `fail_all`.
    script: HashMap<IpAddr, Vec<Result<(), HostFailure>>>,
    fail_all: bool,
    /// `work_left` after each failed connection, in order (then `true`).
    work_left: Vec<bool>,
    implicit_tls: bool,
    /// The policy is lowered for `TLS-Required: No` before the planner.
    tls_required_no: bool,
}

fn case(world: &World, level: Level) -> Case<'_> {
    Case {
        world,
        nexthop: DOMAIN,
        level,
        settings: settings(),
        details: false,
        script: HashMap::new(),
        fail_all: false,
        work_left: Vec::new(),
        implicit_tls: false,
        tls_required_no: false,
    }
}

/// Everything the planner said, in order.
#[derive(Debug)]
struct Run {
    lookups: Vec<String>,
    connects: Vec<Conn>,
    skips: Vec<Skip>,
    events: Vec<PlanEvent>,
    /// Every step, one line each (lookup, connect, skip, event).
    trace: Vec<String>,
    outcome: PlanOutcome,
}

impl Run {
    /// The `Display` lines of the events.
    fn shown(&self) -> Vec<String> {
        self.events.iter().map(|e| e.to_string()).collect()
    }

    fn relays(&self) -> Vec<String> {
        self.connects
            .iter()
            .map(|c| format!("{}[{}]:{}", c.host, c.addr, c.port))
            .collect()
    }
}

impl Case<'_> {
    fn nexthop(mut self, n: &'static str) -> Self {
        self.nexthop = n;
        self
    }

    fn settings(mut self, s: PlanSettings) -> Self {
        self.settings = s;
        self
    }

    fn details(mut self) -> Self {
        self.details = true;
        self
    }

    fn on(mut self, addr: &str, results: Vec<Result<(), HostFailure>>) -> Self {
        self.script.insert(addr.parse().unwrap(), results);
        self
    }

    fn all_fail(mut self) -> Self {
        self.fail_all = true;
        self
    }

    fn work_left(mut self, w: Vec<bool>) -> Self {
        self.work_left = w;
        self
    }

    fn implicit_tls(mut self) -> Self {
        self.implicit_tls = true;
        self
    }

    fn tls_required_no(mut self) -> Self {
        self.tls_required_no = true;
        self
    }

    fn run(mut self) -> Run {
        let nh = NextHop::parse(self.nexthop).unwrap();
        let defaults = PolicyDefaults {
            level: self.level,
            ..PolicyDefaults::POSTFIX
        };
        let policy = crate::policy::decide(&PolicyInputs {
            nexthop: nh,
            tables: &[],
            defaults: &defaults,
        })
        .unwrap();
        assert_eq!(policy.level, self.level);
        let mut policy = policy;
        if self.tls_required_no {
            assert_eq!(policy.relax_for_tls_required_no(), self.level);
        }
        let mut p = Planner::new(
            nh,
            policy,
            &self.settings,
            self.implicit_tls,
            self.details,
            1,
        );
        let mut run = Run {
            lookups: Vec::new(),
            connects: Vec::new(),
            skips: Vec::new(),
            events: Vec::new(),
            trace: Vec::new(),
            outcome: PlanOutcome::Completed,
        };
        let mut work_left = self.work_left.into_iter();
        for _ in 0..1000 {
            match p.poll() {
                Step::Lookup(q) => {
                    let text = match q {
                        Query::Mx(d) => format!("MX {d}"),
                        Query::Addresses { host, ipv4, ipv6 } => format!(
                            "{} {host}",
                            match (ipv4, ipv6) {
                                (true, true) => "A+AAAA",
                                (true, false) => "A",
                                (false, true) => "AAAA",
                                (false, false) => "none",
                            }
                        ),
                        Query::Cname(h) => format!("CNAME {h}"),
                        Query::Tlsa { port, base } => format!("TLSA _{port}._tcp.{base}"),
                        Query::Sts(d) => format!("STS {d}"),
                    };
                    let input = self.world.resolve(q);
                    run.trace.push(format!("lookup {text}"));
                    run.lookups.push(text);
                    p.answer(input);
                }
                Step::Connect(t) => {
                    let c = Conn::of(t);
                    assert_eq!(t.relay(), format!("{}[{}]:{}", c.host, c.addr, c.port));
                    run.trace.push(format!("connect {}", t.relay()));
                    let r = match self.script.get_mut(&c.addr) {
                        Some(list) if !list.is_empty() => list.remove(0),
                        _ if self.fail_all => Err(unreached(&format!(
                            "connect to {}[{}]:{}: Connection refused",
                            c.host, c.addr, c.port
                        ))),
                        _ => Ok(()),
                    };
                    run.connects.push(c);
                    let left = r.is_ok() || work_left.next().unwrap_or(true);
                    p.connection_done(r, left);
                }
                Step::Skip(s) => {
                    run.trace.push(format!("skip {}: {}", s.host, s.why));
                    run.skips.push(s);
                }
                Step::Event(e) => {
                    run.trace.push(format!("event {e}"));
                    run.events.push(e);
                }
                Step::Done(o) => {
                    run.outcome = o;
                    // Done stays done.
                    assert!(matches!(p.poll(), Step::Done(_)));
                    return run;
                }
            }
        }
        panic!("the planner did not finish: {:?}", run.trace);
    }
}

fn failed(text: &str, dsn: &str, dead: bool) -> PlanOutcome {
    PlanOutcome::Failed {
        failure: HostFailure::soft(text, dsn),
        relay: None,
        dead,
    }
}

fn skip(host: &str, why: &str) -> Skip {
    skip_at(DOMAIN, host, why)
}

fn skip_at(dest: &str, host: &str, why: &str) -> Skip {
    Skip {
        dest: dest.into(),
        host: host.into(),
        why: why.into(),
    }
}

// ---------------------------------------------------------------------
// 1. Secure TLSA.

#[test]
fn secure_usable_tlsa_authenticates() {
    let w = World::signed().tlsa(MX, &[ee()], true);
    for level in [Level::Dane, Level::DaneOnly] {
        let r = case(&w, level).run();
        assert_eq!(
            r.lookups,
            [
                "MX example.test",
                "A+AAAA mx.example.test",
                "TLSA _25._tcp.mx.example.test"
            ]
        );
        assert_eq!(r.connects, [dane_conn(MX, V4, level, &[ee()])]);
        let c = &r.connects[0];
        assert_eq!(
            c.verify,
            Verify::Dane(vec![ee_text()], vec![MX.into(), DOMAIN.into()])
        );
        assert_eq!(c.sni.as_deref(), Some(MX));
        assert_eq!(c.policy.kind, PolicyType::Tlsa);
        assert_eq!(c.policy.strings, [ee_text()]);
        assert!(r.skips.is_empty() && r.events.is_empty(), "{:?}", r.trace);
        assert_eq!(r.outcome, PlanOutcome::Completed);
    }
}

#[test]
fn unusable_records_are_listed_in_the_policy_but_not_verified_against() {
    let pkix = tlsa(0, 0, 1, 0);
    let w = World::signed().tlsa(MX, &[ee(), pkix.clone()], true);
    let r = case(&w, Level::Dane).run();
    assert_eq!(
        r.connects,
        [dane_conn(MX, V4, Level::Dane, &[ee(), pkix.clone()])]
    );
    assert_eq!(
        r.connects[0].policy.strings,
        [ee_text(), format!("0 0 1 {}", "00".repeat(32))]
    );
    assert_eq!(
        r.connects[0].verify,
        Verify::Dane(vec![ee_text()], vec![MX.into(), DOMAIN.into()])
    );
}

#[test]
fn only_unusable_tlsa_means_encrypt_or_defer() {
    let pkix = tlsa(1, 1, 1, 7);
    let w = World::signed().tlsa(MX, std::slice::from_ref(&pkix), true);
    let r = case(&w, Level::Dane).run();
    assert_eq!(
        r.connects,
        [Conn {
            tls: TlsRequirement::Required,
            verify: Verify::Opportunistic,
            level: Level::Encrypt,
            sni: None,
            policy: descriptor(PolicyType::Tlsa, &[pkix]),
            ..may_conn(MX, V4)
        }]
    );
    let r = case(&w, Level::DaneOnly).run();
    assert!(r.connects.is_empty());
    assert_eq!(
        r.skips,
        [skip(
            MX,
            "all TLSA records for _25._tcp.mx.example.test are unusable"
        )]
    );
    assert_eq!(r.outcome, failed("TLSA records unusable", "4.7.5", true));
}

// ---------------------------------------------------------------------
// 2. Insecure TLSA.

#[test]
fn insecure_tlsa_is_may_at_dane_and_defers_at_dane_only() {
    let w = World::signed().tlsa(MX, &[ee()], false);
    let r = case(&w, Level::Dane).run();
    assert_eq!(r.connects, [may_conn(MX, V4)]);
    assert!(r.skips.is_empty());
    assert_eq!(r.outcome, PlanOutcome::Completed);

    let r = case(&w, Level::DaneOnly).run();
    assert!(r.connects.is_empty());
    assert_eq!(
        r.skips,
        [skip(
            MX,
            "TLSA records for _25._tcp.mx.example.test are not DNSSEC-validated"
        )]
    );
    assert_eq!(r.outcome, failed(NO_TLSA, "4.7.5", true));
    assert_eq!(
        r.outcome,
        failed("no TLSA records found", "4.7.5", true),
        "Postfix's text"
    );
}

#[test]
fn an_untrusted_resolver_makes_every_answer_insecure() {
    let w = World::signed().tlsa(MX, &[ee()], true);
    let s = PlanSettings {
        trust_ad: false,
        ..settings()
    };
    let r = case(&w, Level::Dane).settings(s.clone()).run();
    // Neither the MX nor the address records count as secure: no TLSA
    // lookup at all.
    assert_eq!(r.lookups, ["MX example.test", "A+AAAA mx.example.test"]);
    assert_eq!(r.connects, [may_conn(MX, V4)]);
    let r = case(&w, Level::DaneOnly).settings(s).run();
    assert_eq!(
        r.skips,
        [skip(
            MX,
            "MX records for mx.example.test are not DNSSEC-validated: no DANE"
        )]
    );
    assert_eq!(r.outcome, failed("non DNSSEC destination", "4.7.5", true));
}

// ---------------------------------------------------------------------
// 3. and 5. TLSA base domains through a CNAME into a signed zone.

/// `mx.example.test` is a validated CNAME for `real.example.test`.
fn cname_world() -> World {
    World::new()
        .mx(DOMAIN, &[(10, MX)], true)
        .a_at(MX, "real.example.test", &[V4], true)
        .aaaa_at(MX, "real.example.test", &[], true)
}

#[test]
fn cname_mx_host_uses_the_expanded_tlsa_base_domain() {
    let ta = tlsa(2, 0, 1, 0xca);
    let w = cname_world().tlsa("real.example.test", std::slice::from_ref(&ta), true);
    let r = case(&w, Level::Dane).run();
    // A secure answer at the expanded name decides: no second lookup.
    assert_eq!(
        r.lookups,
        [
            "MX example.test",
            "A+AAAA mx.example.test",
            "TLSA _25._tcp.real.example.test"
        ]
    );
    assert_eq!(
        r.connects,
        [Conn {
            verify: Verify::Dane(
                vec![ta.to_string()],
                vec!["real.example.test".into(), MX.into(), DOMAIN.into()]
            ),
            sni: Some("real.example.test".into()),
            ..dane_conn(MX, V4, Level::Dane, &[ta])
        }]
    );
}

#[test]
fn insecure_tlsa_at_the_cname_target_falls_back_to_the_original_name() {
    let other = tlsa(3, 1, 1, 0x0e);
    let w = cname_world()
        .tlsa("real.example.test", std::slice::from_ref(&other), false)
        .tlsa(MX, &[ee()], true);
    let r = case(&w, Level::DaneOnly).details().run();
    assert_eq!(
        r.lookups,
        [
            "MX example.test",
            "A+AAAA mx.example.test",
            "TLSA _25._tcp.real.example.test",
            "TLSA _25._tcp.mx.example.test"
        ]
    );
    // The original name decided: it is the base domain, the SNI, the
    // only DANE-TA name besides the next hop; the insecure record is
    // ignored, also in the policy.
    assert_eq!(r.connects, [dane_conn(MX, V4, Level::DaneOnly, &[ee()])]);
    let shown = r.shown();
    assert!(
        shown.contains(&format!(
            "TLSA _25._tcp.real.example.test: 3 1 1 {} (insecure)",
            "0E".repeat(32)
        )),
        "{shown:?}"
    );
    assert!(
        shown.contains(&format!("TLSA _25._tcp.{MX}: {} (secure)", ee_text())),
        "{shown:?}"
    );
}

#[test]
fn no_tlsa_at_the_cname_target_falls_back_to_the_original_name() {
    for ad in [true, false] {
        let w = cname_world()
            .tlsa("real.example.test", &[], ad)
            .tlsa(MX, &[ee()], true);
        let r = case(&w, Level::Dane).run();
        assert_eq!(
            r.lookups[2..],
            [
                "TLSA _25._tcp.real.example.test",
                "TLSA _25._tcp.mx.example.test"
            ]
        );
        assert_eq!(r.connects, [dane_conn(MX, V4, Level::Dane, &[ee()])]);
    }
}

#[test]
fn no_tlsa_at_either_base_domain() {
    let w = cname_world()
        .tlsa("real.example.test", &[], true)
        .tlsa(MX, &[], true);
    let r = case(&w, Level::Dane).run();
    assert_eq!(r.lookups.len(), 4);
    assert_eq!(r.connects, [may_conn(MX, V4)]);
    let r = case(&w, Level::DaneOnly).run();
    // The reason names the last base domain looked up.
    assert_eq!(
        r.skips,
        [skip(
            MX,
            "no TLSA records found for _25._tcp.mx.example.test"
        )]
    );
    assert_eq!(r.outcome, failed(NO_TLSA, "4.7.5", true));
}

#[test]
fn a_tlsa_lookup_error_at_the_cname_target_is_not_skipped_over() {
    let w = cname_world()
        .tlsa_err("real.example.test", DnsError::ServFail)
        .tlsa(MX, &[ee()], true);
    for level in [Level::Dane, Level::DaneOnly] {
        let r = case(&w, level).run();
        assert_eq!(r.lookups.last().unwrap(), "TLSA _25._tcp.real.example.test");
        assert!(r.connects.is_empty());
        assert_eq!(
            r.skips,
            [skip(
                MX,
                "TLSA lookup error for _25._tcp.real.example.test: server failure (SERVFAIL)"
            )]
        );
        assert_eq!(
            r.outcome,
            failed("TLSA lookup error for real.example.test:25", "4.7.5", true)
        );
    }
}

#[test]
fn implicit_mx_through_a_cname_tries_the_original_domain_too() {
    let alias = "alias.example.test";
    let w = World::new()
        .mx_answer(alias, Ok(answer("real.example.test", Vec::new(), true)))
        .a_at(alias, "real.example.test", &[V4], true)
        .tlsa("real.example.test", &[], true)
        .tlsa(alias, &[ee()], true);
    let r = case(&w, Level::Dane).nexthop("alias.example.test").run();
    assert_eq!(
        r.lookups,
        [
            "MX alias.example.test",
            "A+AAAA alias.example.test",
            "TLSA _25._tcp.real.example.test",
            "TLSA _25._tcp.alias.example.test"
        ]
    );
    let c = &r.connects[0];
    assert_eq!((c.host.as_str(), c.sni.as_deref()), (alias, Some(alias)));
    assert_eq!(
        c.verify,
        Verify::Dane(vec![ee_text()], vec![alias.into(), alias.into()])
    );
    assert_eq!(c.policy.domain, alias);
}

// ---------------------------------------------------------------------
// 4. A secure CNAME into an unsigned zone.

/// `mx.example.test` (signed) is a CNAME for `mx.other.test` (unsigned).
fn alias_world() -> World {
    World::new()
        .mx(DOMAIN, &[(10, MX)], true)
        .a_at(MX, "mx.other.test", &[V4], false)
        .aaaa_at(MX, "mx.other.test", &[], false)
}

#[test]
fn secure_cname_into_an_unsigned_zone_keeps_the_original_tlsa_base_domain() {
    let w = alias_world()
        .cname(MX, "mx.other.test", true)
        .tlsa(MX, &[ee()], true);
    for level in [Level::Dane, Level::DaneOnly] {
        let r = case(&w, level).details().run();
        assert_eq!(
            r.lookups,
            [
                "MX example.test",
                "A+AAAA mx.example.test",
                "CNAME mx.example.test",
                "TLSA _25._tcp.mx.example.test"
            ]
        );
        assert_eq!(r.connects, [dane_conn(MX, V4, level, &[ee()])]);
        assert_eq!(
            r.events[0],
            PlanEvent::DaneFacts {
                host: MX.into(),
                mx_secure: true,
                security: AddressSecurity::SecureAlias,
                // Every address is from the unvalidated target.
                mixed: true,
            }
        );
        assert_eq!(
            r.shown()[0],
            "DANE mx.example.test: MX records secure, address records insecure (secure CNAME to an unsigned zone)"
        );
    }
}

#[test]
fn a_failing_cname_query_defers_and_never_downgrades() {
    let w = alias_world()
        .cname_answer(MX, Err(DnsError::ServFail))
        .tlsa(MX, &[ee()], true);
    for level in [Level::Dane, Level::DaneOnly] {
        let r = case(&w, level).run();
        assert_eq!(r.lookups.last().unwrap(), "CNAME mx.example.test");
        assert!(r.connects.is_empty(), "{:?}", r.trace);
        let why = "DNSSEC status lookup error for name=mx.example.test type=CNAME: server failure (SERVFAIL)";
        assert_eq!(r.skips, [skip(MX, why)]);
        assert_eq!(r.outcome, failed(why, "4.7.5", true));
    }
}

#[test]
fn an_unvalidated_cname_leaves_the_host_insecure() {
    let w = alias_world().cname(MX, "mx.other.test", false);
    let r = case(&w, Level::Dane).run();
    assert_eq!(r.lookups.last().unwrap(), "CNAME mx.example.test");
    assert_eq!(r.connects, [may_conn(MX, V4)]);
    let r = case(&w, Level::DaneOnly).run();
    assert_eq!(
        r.skips,
        [skip(
            MX,
            "address records of mx.example.test are not DNSSEC-validated: no DANE"
        )]
    );
    assert_eq!(r.outcome, failed("non DNSSEC destination", "4.7.5", true));
}

#[test]
fn no_cname_query_under_an_insecure_mx() {
    let w = World::new()
        .mx(DOMAIN, &[(10, MX)], false)
        .a_at(MX, "mx.other.test", &[V4], false);
    let r = case(&w, Level::Dane).run();
    assert_eq!(r.lookups, ["MX example.test", "A+AAAA mx.example.test"]);
    assert_eq!(r.connects, [may_conn(MX, V4)]);
}

// ---------------------------------------------------------------------
// 6. A mixed-security MX set.

const MX1_OTHER: &str = "mx1.other.test";

/// Signed `example.test`, MX 10 `mx1.other.test` (unsigned zone), MX 20
/// `mx2.example.test` with a usable TLSA record.
fn mixed_world() -> World {
    World::new()
        .mx(DOMAIN, &[(20, MX2), (10, MX1_OTHER)], true)
        .a(MX1_OTHER, &[V4], false)
        .a(MX2, &[V4B], true)
        .tlsa(MX2, &[ee()], true)
}

#[test]
fn mixed_mx_dane_uses_may_for_the_insecure_host() {
    let w = mixed_world();
    let r = case(&w, Level::Dane).run();
    // Every host's facts are in before the first connection.
    assert_eq!(
        r.lookups,
        [
            "MX example.test",
            "A+AAAA mx1.other.test",
            "A+AAAA mx2.example.test",
            "TLSA _25._tcp.mx2.example.test"
        ]
    );
    assert_eq!(r.connects, [may_conn(MX1_OTHER, V4)]);
    assert!(r.skips.is_empty());
    assert_eq!(r.outcome, PlanOutcome::Completed);

    // When mx1 cannot be reached, mx2 is tried, authenticated.
    let r = case(&w, Level::Dane)
        .on(V4, vec![Err(unreached("connect to mx1: refused"))])
        .run();
    assert_eq!(
        r.connects,
        [
            may_conn(MX1_OTHER, V4),
            dane_conn(MX2, V4B, Level::Dane, &[ee()])
        ]
    );
    assert_eq!(
        r.events,
        [PlanEvent::ConnectFailed {
            text: "connect to mx1: refused".into()
        }]
    );
    assert_eq!(r.outcome, PlanOutcome::Completed);
}

#[test]
fn mixed_mx_dane_only_skips_the_insecure_host() {
    let w = mixed_world();
    let r = case(&w, Level::DaneOnly).details().run();
    assert_eq!(r.connects, [dane_conn(MX2, V4B, Level::DaneOnly, &[ee()])]);
    assert_eq!(
        r.skips,
        [skip(
            MX1_OTHER,
            "address records of mx1.other.test are not DNSSEC-validated: no DANE"
        )]
    );
    assert!(r.skips[0].why.contains("not DNSSEC-validated"));
    // The skip comes before the connection to mx2.
    let skip_at = r.trace.iter().position(|l| l.starts_with("skip ")).unwrap();
    let conn_at = r
        .trace
        .iter()
        .position(|l| l.starts_with("connect "))
        .unwrap();
    assert!(skip_at < conn_at, "{:?}", r.trace);
    assert!(
        r.shown().contains(
            &"DANE mx1.other.test: defer: non DNSSEC destination (address records of mx1.other.test are not DNSSEC-validated: no DANE)"
                .to_string()
        ),
        "{:?}",
        r.shown()
    );
    assert_eq!(r.outcome, PlanOutcome::Completed);
}

// ---------------------------------------------------------------------
// 7. Per-family DNSSEC status.

#[test]
fn bogus_aaaa_leaves_the_validated_a_records_usable() {
    let w = World::new()
        .mx(DOMAIN, &[(10, MX)], true)
        .a(MX, &[V4], true)
        .aaaa_err(MX, DnsError::ServFail)
        .tlsa(MX, &[ee()], true);
    for level in [Level::Dane, Level::DaneOnly] {
        let r = case(&w, level).all_fail().run();
        assert_eq!(
            r.events[0],
            PlanEvent::FamilyFailed {
                host: MX.into(),
                ty: "AAAA",
                error: DnsError::ServFail
            }
        );
        assert_eq!(
            r.events[0].log_text().unwrap(),
            "Name service error for name=mx.example.test type=AAAA: server failure (SERVFAIL); using the host's other addresses"
        );
        // Only the IPv4 address, authenticated.
        assert_eq!(r.connects, [dane_conn(MX, V4, level, &[ee()])]);
        assert!(!r.trace.iter().any(|l| l.contains(V6)));
    }
}

/// A validated A record, an unvalidated AAAA record.
fn half_signed() -> World {
    World::new()
        .mx(DOMAIN, &[(10, MX)], true)
        .a(MX, &[V4], true)
        .aaaa(MX, &[V6], false)
}

#[test]
fn an_unvalidated_family_is_left_out_where_dane_applies() {
    let w = half_signed().tlsa(MX, &[ee()], true);
    for level in [Level::Dane, Level::DaneOnly] {
        let r = case(&w, level).all_fail().run();
        assert_eq!(r.connects, [dane_conn(MX, V4, level, &[ee()])]);
        assert_eq!(r.events[0], PlanEvent::FamilyLeftOut { host: MX.into() });
        assert_eq!(
            r.events[0].log_text().unwrap(),
            "address records of mx.example.test of one IP version are not DNSSEC-validated: only its validated addresses are used"
        );
    }
    // `encrypt` from unusable records: not downgraded either.
    let w = half_signed().tlsa(MX, &[tlsa(0, 0, 1, 1)], true);
    let r = case(&w, Level::Dane).all_fail().run();
    assert_eq!(r.relays(), ["mx.example.test[192.0.2.1]:25"]);
    assert_eq!(r.connects[0].level, Level::Encrypt);
    assert_eq!(r.events[0], PlanEvent::FamilyLeftOut { host: MX.into() });
}

#[test]
fn an_unvalidated_family_is_used_at_may() {
    let w = half_signed().tlsa(MX, &[], true);
    let r = case(&w, Level::Dane).all_fail().details().run();
    assert_eq!(r.connects, [may_conn(MX, V4), may_conn(MX, V6)]);
    assert!(!r
        .events
        .iter()
        .any(|e| matches!(e, PlanEvent::FamilyLeftOut { .. })));
    assert_eq!(
        r.shown()[..3],
        [
            "DANE mx.example.test: MX records secure, address records secure for one IP version only",
            "TLSA _25._tcp.mx.example.test: no records (secure)",
            "DANE mx.example.test: no secure TLSA: may",
        ]
    );
    // At dane-only nothing is left to use.
    let r = case(&w, Level::DaneOnly).all_fail().run();
    assert!(r.connects.is_empty());
    assert_eq!(r.outcome, failed(NO_TLSA, "4.7.5", true));
}

#[test]
fn inet_protocols_limits_the_families_asked() {
    let w = half_signed().tlsa(MX, &[], true);
    let s = PlanSettings {
        ipv6: false,
        inet_protocols: "ipv4".into(),
        ..settings()
    };
    let r = case(&w, Level::May).settings(s.clone()).all_fail().run();
    assert_eq!(r.lookups, ["MX example.test", "A mx.example.test"]);
    assert_eq!(r.relays(), ["mx.example.test[192.0.2.1]:25"]);
    // An IPv6 literal is refused outright.
    let r = case(&w, Level::May)
        .nexthop("[2001:db8::1]")
        .settings(s)
        .run();
    assert!(r.lookups.is_empty() && r.connects.is_empty());
    assert_eq!(
        r.outcome,
        failed(
            "2001:db8::1: no address of the IP versions enabled by inet_protocols = ipv4",
            "4.4.4",
            true
        )
    );
}

// ---------------------------------------------------------------------
// 8. dane-only without TLSA.

#[test]
fn dane_only_without_tlsa_defers() {
    let w = World::signed().tlsa(MX, &[], true);
    let r = case(&w, Level::DaneOnly).run();
    assert!(r.connects.is_empty());
    assert_eq!(
        r.skips,
        [skip(
            MX,
            "no TLSA records found for _25._tcp.mx.example.test"
        )]
    );
    assert_eq!(
        r.outcome,
        PlanOutcome::Failed {
            failure: HostFailure {
                text: "no TLSA records found".into(),
                dsn: "4.7.5".into(),
                permanent: false,
                reached: false,
                tls: false,
            },
            relay: None,
            dead: true,
        }
    );
    // At `dane` that is `may`.
    let r = case(&w, Level::Dane).run();
    assert_eq!(r.connects, [may_conn(MX, V4)]);
}

// ---------------------------------------------------------------------
// 9. MX answers, configuration faults, IP literals, connections.

#[test]
fn null_mx_bounces() {
    let w = World::new().mx(DOMAIN, &[(0, ".")], true);
    let r = case(&w, Level::Dane).run();
    assert_eq!(r.lookups, ["MX example.test"]);
    assert_eq!(
        r.outcome,
        PlanOutcome::Failed {
            failure: HostFailure {
                text: "Domain example.test does not accept mail (nullMX)".into(),
                dsn: "5.1.10".into(),
                permanent: true,
                reached: false,
                tls: false,
            },
            relay: None,
            dead: false,
        }
    );
}

#[test]
fn nxdomain_mx_bounces() {
    let w = World::new().mx_answer(DOMAIN, Ok(nxdomain(DOMAIN, true)));
    let r = case(&w, Level::May).run();
    assert_eq!(
        r.outcome,
        PlanOutcome::Failed {
            failure: HostFailure {
                text: "Host or domain name not found. Name service error for name=example.test type=MX: Host not found".into(),
                dsn: "5.4.4".into(),
                permanent: true,
                reached: false,
                tls: false,
            },
            relay: None,
            dead: false,
        }
    );
}

#[test]
fn mx_servfail_defers_and_never_downgrades() {
    let w = World::new().mx_answer(DOMAIN, Err(DnsError::ServFail));
    for level in [Level::May, Level::Dane, Level::DaneOnly] {
        let r = case(&w, level).run();
        assert!(r.connects.is_empty());
        assert_eq!(
            r.outcome,
            failed(
                "Host or domain name not found. Name service error for name=example.test type=MX: server failure (SERVFAIL)",
                "4.4.3",
                true
            )
        );
    }
}

#[test]
fn host_without_addresses() {
    let w = World::new()
        .mx(DOMAIN, &[(10, MX)], true)
        .a_answer(MX, Ok(nxdomain(MX, true)))
        .aaaa(MX, &[], true);
    let r = case(&w, Level::Dane).run();
    assert_eq!(
        r.outcome,
        failed(
            "Host or domain name not found. Name service error for name=mx.example.test type=A: Host not found",
            "4.4.3",
            true
        )
    );
    // Both families failed: the first failure is the reason.
    let w = World::new()
        .mx(DOMAIN, &[(10, MX)], true)
        .a_answer(MX, Err(DnsError::Timeout))
        .aaaa_err(MX, DnsError::ServFail);
    let r = case(&w, Level::Dane).run();
    assert_eq!(
        r.outcome,
        failed(
            "Host or domain name not found. Name service error for name=mx.example.test type=A: timeout",
            "4.4.3",
            true
        )
    );
}

#[test]
fn dane_without_dnssec_is_warned_and_acts_as_may() {
    let w = World::signed().tlsa(MX, &[ee()], true);
    let r = case(&w, Level::Dane)
        .settings(settings_without_dnssec())
        .run();
    let warning = PlanEvent::DnssecDisabled {
        dest: DOMAIN.into(),
        level: Level::Dane,
        support: "enabled".into(),
    };
    assert_eq!(r.events, std::slice::from_ref(&warning));
    assert_eq!(
        warning.log_text().unwrap(),
        "warning: example.test: dane configured with dnssec lookups disabled"
    );
    assert_eq!(
        warning.to_string(),
        "example.test: dane configured with dnssec lookups disabled (smtp_dns_support_level = enabled)"
    );
    // No AD bit is believed: no TLSA lookup, `may`.
    assert_eq!(r.lookups, ["MX example.test", "A+AAAA mx.example.test"]);
    assert_eq!(r.connects, [may_conn(MX, V4)]);
}

#[test]
fn dane_only_without_dnssec_is_warned_and_defers() {
    let w = World::signed().tlsa(MX, &[ee()], true);
    let r = case(&w, Level::DaneOnly)
        .settings(settings_without_dnssec())
        .run();
    assert_eq!(
        r.events,
        [PlanEvent::DnssecDisabled {
            dest: DOMAIN.into(),
            level: Level::DaneOnly,
            support: "enabled".into(),
        }]
    );
    assert_eq!(
        r.events[0].log_text().unwrap(),
        "warning: example.test: dane-only configured with dnssec lookups disabled"
    );
    assert!(r.lookups.is_empty() && r.connects.is_empty());
    assert_eq!(
        r.outcome,
        failed("client TLS configuration problem", "4.7.5", true)
    );
}

#[test]
fn dane_only_to_an_ip_literal_defers() {
    let w = World::new();
    let r = case(&w, Level::DaneOnly).nexthop("[192.0.2.1]").run();
    assert!(r.lookups.is_empty() && r.connects.is_empty());
    // Postfix names a literal destination as written.
    assert_eq!(
        r.skips,
        [skip_at(
            "[192.0.2.1]",
            "192.0.2.1",
            "no TLSA records found for [192.0.2.1]:25: an IP-literal destination has no TLSA base domain"
        )]
    );
    assert_eq!(r.outcome, failed(NO_TLSA, "4.7.5", true));
    // The port written is the one named.
    let r = case(&w, Level::DaneOnly).nexthop("[192.0.2.1]:2525").run();
    assert!(r.skips[0]
        .why
        .starts_with("no TLSA records found for [192.0.2.1]:2525: "));
}

#[test]
fn dane_to_an_ip_literal_is_may() {
    let w = World::new();
    let r = case(&w, Level::Dane).nexthop("[192.0.2.1]:2525").run();
    assert!(r.lookups.is_empty() && r.skips.is_empty());
    assert_eq!(
        r.connects,
        [Conn {
            host: V4.into(),
            port: 2525,
            policy: PolicyDescriptor {
                domain: V4.into(),
                ..descriptor(PolicyType::NoPolicyFound, &[])
            },
            ..may_conn(V4, V4)
        }]
    );
}

#[test]
fn bracketed_host_counts_as_secure_mx() {
    let w = World::signed().tlsa(MX, &[ee()], true);
    let r = case(&w, Level::DaneOnly).nexthop("[mx.example.test]").run();
    assert_eq!(
        r.lookups,
        ["A+AAAA mx.example.test", "TLSA _25._tcp.mx.example.test"]
    );
    assert_eq!(
        r.connects,
        [Conn {
            verify: Verify::Dane(vec![ee_text()], vec![MX.into(), MX.into()]),
            policy: PolicyDescriptor {
                domain: MX.into(),
                ..descriptor(PolicyType::Tlsa, &[ee()])
            },
            ..dane_conn(MX, V4, Level::DaneOnly, &[ee()])
        }]
    );
    // A bracketed host that does not exist: 5.4.4, though deferred.
    let w = World::new().a_answer(MX, Ok(nxdomain(MX, true)));
    let r = case(&w, Level::May).nexthop("[mx.example.test]").run();
    assert_eq!(
        r.outcome,
        failed(
            "Host or domain name not found. Name service error for name=mx.example.test type=A: Host not found",
            "5.4.4",
            true
        )
    );
}

#[test]
fn may_handshake_failure_retries_in_plaintext() {
    let w = World::signed();
    let r = case(&w, Level::May)
        .on(V4, vec![Err(handshake_failed()), Ok(())])
        .run();
    let plain = Conn {
        tls: TlsRequirement::None,
        ..may_conn(MX, V4)
    };
    assert_eq!(r.connects, [may_conn(MX, V4), plain.clone()]);
    let retry = PlanEvent::PlaintextRetry {
        text: "TLS handshake failed".into(),
        relay: "mx.example.test[192.0.2.1]:25".into(),
    };
    assert_eq!(r.events, std::slice::from_ref(&retry));
    assert_eq!(
        retry.log_text().unwrap(),
        "TLS handshake failed; level may: trying mx.example.test[192.0.2.1]:25 again without TLS"
    );
    assert_eq!(
        retry.to_string(),
        "TLS handshake failed; level may: retrying without TLS"
    );
    assert_eq!(r.outcome, PlanOutcome::Completed);

    // The plaintext retry fails too: the next host is tried, without a
    // second retry or a ConnectFailed line for the retry.
    let w = World::new()
        .mx(DOMAIN, &[(10, MX1), (20, MX2)], false)
        .a(MX1, &[V4], false)
        .a(MX2, &[V4B], false);
    let r = case(&w, Level::May)
        .on(
            V4,
            vec![
                Err(handshake_failed()),
                Err(HostFailure {
                    permanent: true,
                    reached: true,
                    ..HostFailure::soft("550 go away", "5.7.1")
                }),
            ],
        )
        .run();
    assert_eq!(
        r.relays(),
        [
            "mx1.example.test[192.0.2.1]:25",
            "mx1.example.test[192.0.2.1]:25",
            "mx2.example.test[192.0.2.2]:25"
        ]
    );
    assert_eq!(
        r.connects.iter().map(|c| c.tls).collect::<Vec<_>>(),
        [
            TlsRequirement::Opportunistic,
            TlsRequirement::None,
            TlsRequirement::Opportunistic
        ]
    );
    assert_eq!(r.events.len(), 1, "{:?}", r.events);
    assert_eq!(r.outcome, PlanOutcome::Completed);
}

#[test]
fn dane_may_handshake_failure_retries_in_plaintext_but_dane_never_does() {
    // `dane` lowered to `may` (insecure TLSA): the retry applies.
    let w = World::signed().tlsa(MX, &[ee()], false);
    let r = case(&w, Level::Dane)
        .on(V4, vec![Err(handshake_failed()), Ok(())])
        .run();
    assert_eq!(r.connects.len(), 2);
    assert_eq!(r.connects[1].tls, TlsRequirement::None);
    // Authenticated DANE: a failed handshake is a failure.
    let w = World::signed().tlsa(MX, &[ee()], true);
    let r = case(&w, Level::Dane)
        .on(V4, vec![Err(handshake_failed())])
        .run();
    assert_eq!(r.connects, [dane_conn(MX, V4, Level::Dane, &[ee()])]);
    assert_eq!(
        r.outcome,
        PlanOutcome::Failed {
            failure: handshake_failed(),
            relay: Some("mx.example.test[192.0.2.1]:25".into()),
            dead: false,
        }
    );
}

/// Two insecure MX hosts, one address each.
fn two_mx() -> World {
    World::new()
        .mx(DOMAIN, &[(10, MX1), (20, MX2)], false)
        .a(MX1, &[V4], false)
        .a(MX2, &[V4B], false)
}

#[test]
fn mx_fallback_after_an_unreached_host() {
    let w = two_mx();
    let r = case(&w, Level::May)
        .on(V4, vec![Err(unreached("connect to mx1: timed out"))])
        .run();
    assert_eq!(
        r.relays(),
        [
            "mx1.example.test[192.0.2.1]:25",
            "mx2.example.test[192.0.2.2]:25"
        ]
    );
    assert_eq!(
        r.events,
        [PlanEvent::ConnectFailed {
            text: "connect to mx1: timed out".into()
        }]
    );
    assert_eq!(r.outcome, PlanOutcome::Completed);
}

#[test]
fn every_host_unreached_means_a_dead_destination() {
    let w = two_mx();
    let r = case(&w, Level::May).all_fail().run();
    assert_eq!(r.connects.len(), 2);
    assert_eq!(
        r.outcome,
        PlanOutcome::Failed {
            failure: unreached("connect to mx2.example.test[192.0.2.2]:25: Connection refused"),
            relay: Some("mx2.example.test[192.0.2.2]:25".into()),
            dead: true,
        }
    );
}

#[test]
fn a_reached_host_means_the_destination_is_alive() {
    let w = two_mx();
    let r = case(&w, Level::May)
        .on(V4, vec![Err(reached("lost connection with mx1"))])
        .all_fail()
        .run();
    assert_eq!(r.connects.len(), 2);
    match r.outcome {
        PlanOutcome::Failed {
            failure,
            relay,
            dead,
        } => {
            assert_eq!(
                failure.text,
                "connect to mx2.example.test[192.0.2.2]:25: Connection refused"
            );
            assert_eq!(relay.as_deref(), Some("mx2.example.test[192.0.2.2]:25"));
            assert!(!dead);
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn no_work_left_stops_after_a_failure() {
    let w = two_mx();
    let f = reached("451 try again");
    let r = case(&w, Level::May)
        .on(V4, vec![Err(f.clone())])
        .work_left(vec![false])
        .run();
    assert_eq!(r.relays(), ["mx1.example.test[192.0.2.1]:25"]);
    assert_eq!(
        r.outcome,
        PlanOutcome::Failed {
            failure: f,
            relay: Some("mx1.example.test[192.0.2.1]:25".into()),
            dead: false,
        }
    );
}

#[test]
fn a_permanent_failure_stops() {
    let w = two_mx();
    let f = HostFailure {
        permanent: true,
        reached: true,
        ..HostFailure::soft("554 no thanks", "5.3.0")
    };
    let r = case(&w, Level::May).on(V4, vec![Err(f.clone())]).run();
    assert_eq!(r.connects.len(), 1);
    assert_eq!(
        r.outcome,
        PlanOutcome::Failed {
            failure: f,
            relay: Some("mx1.example.test[192.0.2.1]:25".into()),
            dead: false,
        }
    );
}

#[test]
fn tlsa_lookup_failure_on_one_mx_host_falls_through_to_the_next() {
    let w = World::new()
        .mx(DOMAIN, &[(10, MX1), (20, MX2)], true)
        .a(MX1, &[V4], true)
        .a(MX2, &[V4B], true)
        .tlsa_err(MX1, DnsError::ServFail)
        .tlsa(MX2, &[ee()], true);
    let r = case(&w, Level::Dane).details().run();
    assert_eq!(r.connects, [dane_conn(MX2, V4B, Level::Dane, &[ee()])]);
    assert_eq!(
        r.skips,
        [skip(
            MX1,
            "TLSA lookup error for _25._tcp.mx1.example.test: server failure (SERVFAIL)"
        )]
    );
    assert!(r.shown().contains(
        &"DANE mx1.example.test: defer: TLSA lookup error for mx1.example.test:25 (TLSA lookup error for _25._tcp.mx1.example.test: server failure (SERVFAIL))"
            .to_string()
    ));
    assert_eq!(r.outcome, PlanOutcome::Completed);

    // mx2 has no address: mx1's reason is the status.
    let w = World::new()
        .mx(DOMAIN, &[(10, MX1), (20, MX2)], true)
        .a(MX1, &[V4], true)
        .a(MX2, &[], true)
        .tlsa_err(MX1, DnsError::ServFail);
    let w2 = World::new()
        .mx(DOMAIN, &[(10, MX1)], true)
        .a(MX1, &[V4], true)
        .tlsa_err(MX1, DnsError::ServFail);
    let r = case(&w2, Level::Dane).run();
    assert_eq!(
        r.outcome,
        failed("TLSA lookup error for mx1.example.test:25", "4.7.5", true)
    );
    // The last host's reason wins.
    let r = case(&w, Level::Dane).run();
    assert_eq!(
        r.outcome,
        failed(
            "Host or domain name not found. Name service error for name=mx2.example.test type=A: Host not found",
            "4.4.3",
            true
        )
    );
}

// ---------------------------------------------------------------------
// 10. Detail events.

#[test]
fn no_detail_events_without_details() {
    let worlds = [
        World::signed().tlsa(MX, &[ee()], true),
        cname_world()
            .tlsa("real.example.test", &[], true)
            .tlsa(MX, &[ee()], true),
        alias_world()
            .cname(MX, "mx.other.test", true)
            .tlsa(MX, &[ee()], true),
        mixed_world(),
        half_signed().tlsa(MX, &[ee()], true),
    ];
    for w in &worlds {
        for level in [Level::Dane, Level::DaneOnly] {
            let quiet = case(w, level).all_fail().run();
            assert!(
                !quiet.events.iter().any(PlanEvent::is_detail),
                "{:?}",
                quiet.events
            );
            let loud = case(w, level).all_fail().details().run();
            assert!(loud.events.iter().any(PlanEvent::is_detail));
            // Details change nothing else.
            assert_eq!(quiet.lookups, loud.lookups);
            assert_eq!(quiet.connects, loud.connects);
            assert_eq!(quiet.skips, loud.skips);
            assert_eq!(quiet.outcome, loud.outcome);
            let logged: Vec<_> = loud.events.iter().filter(|e| !e.is_detail()).collect();
            assert_eq!(quiet.events.iter().collect::<Vec<_>>(), logged);
        }
    }
}

#[test]
fn probe_shows_tlsa_records_and_the_decision() {
    let bad = tlsa(0, 0, 1, 0);
    let w = World::signed().tlsa(MX, &[ee(), bad], true);
    let r = case(&w, Level::Dane).details().run();
    assert_eq!(
        r.shown(),
        [
            format!("DANE {MX}: MX records secure, address records secure"),
            format!(
                "TLSA _25._tcp.{MX}: {} (secure)\nTLSA _25._tcp.{MX}: 0 0 1 {} (secure, unusable for SMTP)",
                ee_text(),
                "00".repeat(32)
            ),
            format!("DANE {MX}: authenticate against 1 usable record(s)"),
        ]
    );
    assert!(r.events.iter().all(|e| e.log_text().is_none()));
}

#[test]
fn probe_texts_of_the_other_decisions() {
    // Insecure host: no TLSA lookup.
    let w = mixed_world();
    let r = case(&w, Level::Dane).details().run();
    assert_eq!(
        r.shown(),
        [
            "DANE mx1.other.test: MX records secure, address records insecure",
            "TLSA _25._tcp.mx1.other.test: not looked up",
            "DANE mx1.other.test: no secure TLSA: may",
            "DANE mx2.example.test: MX records secure, address records secure",
            format!("TLSA _25._tcp.mx2.example.test: {} (secure)", ee_text()).as_str(),
            "DANE mx2.example.test: authenticate against 1 usable record(s)",
        ]
    );
    // Unusable only: encrypt; failed lookup.
    let w = World::signed().tlsa(MX, &[tlsa(1, 0, 1, 2)], true);
    let r = case(&w, Level::Dane).details().run();
    assert_eq!(
        r.shown()[2],
        "DANE mx.example.test: no usable TLSA: encrypt"
    );
    let w = World::signed().tlsa_err(MX, DnsError::Timeout);
    let r = case(&w, Level::Dane).details().run();
    assert_eq!(
        r.shown()[1..],
        [
            "TLSA _25._tcp.mx.example.test: lookup failed: timeout",
            "DANE mx.example.test: defer: TLSA lookup error for mx.example.test:25 (TLSA lookup error for _25._tcp.mx.example.test: timeout)",
        ]
    );
    // Secure and insecure denials.
    let w = World::signed().tlsa(MX, &[], false);
    let r = case(&w, Level::Dane).details().run();
    assert_eq!(
        r.shown()[1],
        "TLSA _25._tcp.mx.example.test: no records (insecure)"
    );
}

#[test]
fn levels_without_dane_map_directly() {
    let w = World::signed().tlsa(MX, &[ee()], true);
    let r = case(&w, Level::None).run();
    assert_eq!(
        r.connects,
        [Conn {
            tls: TlsRequirement::None,
            level: Level::None,
            ..may_conn(MX, V4)
        }]
    );
    // No TLSA lookup below the DANE levels.
    assert_eq!(r.lookups, ["MX example.test", "A+AAAA mx.example.test"]);
    let r = case(&w, Level::Encrypt).run();
    assert_eq!(
        (
            r.connects[0].tls,
            &r.connects[0].verify,
            r.connects[0].level
        ),
        (
            TlsRequirement::Required,
            &Verify::Opportunistic,
            Level::Encrypt
        )
    );
    let r = case(&w, Level::Secure).run();
    assert_eq!(
        (
            r.connects[0].tls,
            &r.connects[0].verify,
            r.connects[0].level
        ),
        (TlsRequirement::Required, &Verify::Pkix, Level::Secure)
    );
    assert_eq!(
        r.connects[0].policy,
        descriptor(PolicyType::NoPolicyFound, &[])
    );
}

#[test]
fn the_port_connected_to_is_the_tlsa_port() {
    // smtp_tcp_port.
    let w = World::signed().tlsa_at(2525, MX, &[ee()], true);
    let s = PlanSettings {
        smtp_port: 2525,
        ..settings()
    };
    let r = case(&w, Level::DaneOnly).settings(s.clone()).run();
    assert_eq!(r.lookups[2], "TLSA _2525._tcp.mx.example.test");
    assert_eq!(
        r.connects,
        [Conn {
            port: 2525,
            ..dane_conn(MX, V4, Level::DaneOnly, &[ee()])
        }]
    );
    let w = World::signed().tlsa_at(2525, MX, &[], true);
    let r = case(&w, Level::DaneOnly).settings(s).run();
    assert_eq!(
        r.skips,
        [skip(
            MX,
            "no TLSA records found for _2525._tcp.mx.example.test"
        )]
    );
    // An implicit-TLS route without a port: 465, TLSA included.
    let w = World::signed().tlsa_at(465, MX, &[ee()], true);
    let r = case(&w, Level::Dane)
        .nexthop("[mx.example.test]")
        .implicit_tls()
        .run();
    assert_eq!(r.lookups[1], "TLSA _465._tcp.mx.example.test");
    assert_eq!(r.connects[0].port, 465);
    assert_eq!(r.connects[0].level, Level::Dane);
}

#[test]
fn a_wrong_answer_from_the_driver_never_connects() {
    let w = World::signed();
    let nh = NextHop::parse(DOMAIN).unwrap();
    let defaults = PolicyDefaults {
        level: Level::Dane,
        ..PolicyDefaults::POSTFIX
    };
    let policy = crate::policy::decide(&PolicyInputs {
        nexthop: nh,
        tables: &[],
        defaults: &defaults,
    })
    .unwrap();
    let s = settings();
    let mut p = Planner::new(nh, policy, &s, false, false, 1);
    assert!(matches!(p.poll(), Step::Lookup(Query::Mx(DOMAIN))));
    p.answer(w.resolve(Query::Mx(DOMAIN)));
    assert!(matches!(p.poll(), Step::Lookup(Query::Addresses { .. })));
    // A TLSA answer where the addresses were asked for.
    p.answer(DnsInput::Tlsa(Ok(answer("x", vec![ee()], true))));
    match p.poll() {
        Step::Done(PlanOutcome::Failed {
            failure,
            relay: None,
            dead: false,
        }) => {
            assert!(failure
                .text
                .starts_with("internal error: unexpected DNS input"));
            assert_eq!(failure.dsn, "4.3.0");
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------
// MTA-STS (RFC 8461 §4): after an explicit table entry and DANE.

fn sts_world(mode: Mode, patterns: &[&str]) -> World {
    let mut w = World::new()
        .mx(DOMAIN, &[(10, MX), (20, "mx2.other.test")], false)
        .a(MX, &[V4], false)
        .a("mx2.other.test", &["192.0.2.20"], false);
    let p = crate::mtasts::Policy::from_parts(mode, 86_400, patterns).unwrap();
    w.sts.insert(DOMAIN.into(), StsInput::Policy(Rc::new(p)));
    w
}

fn sts_settings() -> PlanSettings {
    PlanSettings {
        mta_sts: true,
        ..settings()
    }
}

fn sts_descriptor(mode: &str, patterns: &[&str]) -> PolicyDescriptor {
    let mut strings = vec!["version: STSv1".to_string(), format!("mode: {mode}")];
    strings.extend(patterns.iter().map(|p| format!("mx: {p}")));
    strings.push("max_age: 86400".into());
    PolicyDescriptor {
        kind: PolicyType::Sts,
        domain: DOMAIN.into(),
        strings,
        mx_patterns: patterns.iter().map(|p| p.to_string()).collect(),
    }
}

fn sts_conn(host: &str, addr: &str, enforce: bool, forced: bool, mode: &str) -> Conn {
    Conn {
        host: host.into(),
        addr: addr.parse().unwrap(),
        port: 25,
        tls: if enforce {
            TlsRequirement::Required
        } else {
            TlsRequirement::Opportunistic
        },
        verify: Verify::Sts(host.into(), enforce, forced),
        level: if enforce { Level::Verify } else { Level::May },
        sni: None,
        policy: sts_descriptor(mode, &["*.example.test"]),
    }
}

#[test]
fn sts_enforce_connects_only_to_listed_mx_hosts_with_verified_tls() {
    let w = sts_world(Mode::Enforce, &["*.example.test"]);
    let r = case(&w, Level::May)
        .settings(sts_settings())
        .all_fail()
        .run();
    // The policy first, then the MX hosts.
    assert_eq!(
        r.lookups,
        [
            "STS example.test",
            "MX example.test",
            "A+AAAA mx.example.test",
            "A+AAAA mx2.other.test"
        ]
    );
    assert_eq!(
        r.connects,
        [sts_conn(MX, V4, true, false, "enforce")],
        "mx2.other.test is never connected to"
    );
    assert_eq!(
        r.skips,
        [skip(
            "mx2.other.test",
            "MX host mx2.other.test is not listed in the MTA-STS policy of example.test (mode enforce)"
        )]
    );
}

#[test]
fn sts_enforce_without_a_listed_host_defers_and_connects_nowhere() {
    let w = sts_world(Mode::Enforce, &["mail.elsewhere.test"]);
    let r = case(&w, Level::May).settings(sts_settings()).run();
    assert!(r.connects.is_empty());
    assert_eq!(r.skips.len(), 2);
    match r.outcome {
        PlanOutcome::Failed {
            failure,
            relay,
            dead,
        } => {
            assert_eq!(
                failure.text,
                "MX host mx2.other.test is not listed in the MTA-STS policy of example.test (mode enforce)"
            );
            assert_eq!(failure.dsn, "4.7.5");
            assert!(!failure.permanent && relay.is_none() && dead);
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn sts_testing_delivers_as_the_default_level_and_records_the_verdict() {
    let w = sts_world(Mode::Testing, &["*.example.test"]);
    let r = case(&w, Level::May)
        .settings(sts_settings())
        .all_fail()
        .run();
    let mut mx2 = sts_conn("mx2.other.test", "192.0.2.20", false, true, "testing");
    mx2.policy = sts_descriptor("testing", &["*.example.test"]);
    assert_eq!(r.connects, [sts_conn(MX, V4, false, false, "testing"), mx2]);
    assert!(r.skips.is_empty());
    assert!(r.events.iter().any(|e| e.log_text().as_deref()
        == Some("MTA-STS policy for example.test (mode testing) does not list MX host mx2.other.test; delivering anyway")));
}

#[test]
fn dane_wins_over_sts_for_a_host_with_usable_tlsa() {
    let mut w = World::signed().tlsa(MX, &[ee()], true);
    let p = crate::mtasts::Policy::from_parts(Mode::Enforce, 86_400, &[MX]).unwrap();
    w.sts.insert(DOMAIN.into(), StsInput::Policy(Rc::new(p)));
    let r = case(&w, Level::Dane).settings(sts_settings()).run();
    assert_eq!(r.connects, [dane_conn(MX, V4, Level::Dane, &[ee()])]);
    // Without TLSA records, the enforce policy applies to the same host.
    let mut w = World::signed().tlsa(MX, &[], true);
    let p = crate::mtasts::Policy::from_parts(Mode::Enforce, 86_400, &[MX]).unwrap();
    w.sts.insert(DOMAIN.into(), StsInput::Policy(Rc::new(p)));
    let r = case(&w, Level::Dane).settings(sts_settings()).run();
    assert_eq!(r.connects.len(), 1);
    assert_eq!(r.connects[0].verify, Verify::Sts(MX.into(), true, false));
    assert_eq!(r.connects[0].policy.kind, PolicyType::Sts);
}

#[test]
fn sts_is_not_asked_for_bracketed_next_hops_or_at_dane_only() {
    let w = World::new().a(MX, &[V4], true);
    let r = case(&w, Level::May)
        .settings(sts_settings())
        .nexthop("[mx.example.test]")
        .run();
    assert!(
        !r.lookups.iter().any(|l| l.starts_with("STS")),
        "{:?}",
        r.lookups
    );
    let w = World::signed().tlsa(MX, &[ee()], true);
    let r = case(&w, Level::DaneOnly).settings(sts_settings()).run();
    assert!(
        !r.lookups.iter().any(|l| l.starts_with("STS")),
        "{:?}",
        r.lookups
    );
    // And not when MTA-STS is off.
    let w = sts_world(Mode::Enforce, &["nothing.test"]);
    let r = case(&w, Level::May).run();
    assert_eq!(r.connects.len(), 1, "the policy is not consulted");
}

#[test]
fn an_unavailable_policy_is_logged_and_delivery_goes_on_without_it() {
    let mut w = World::signed();
    w.sts.insert(
        DOMAIN.into(),
        StsInput::Unavailable {
            kind: FailureKind::StsPolicyFetchError,
            reason: "connection refused".into(),
        },
    );
    let r = case(&w, Level::May).settings(sts_settings()).run();
    assert_eq!(r.connects, [may_conn(MX, V4)]);
    assert!(r.events.iter().any(|e| e.log_text().as_deref()
        == Some("warning: MTA-STS policy for example.test unavailable (sts-policy-fetch-error): connection refused; delivering without it")));
    // `mode: none` is no policy at all.
    let mut w = World::signed();
    let p = crate::mtasts::Policy::from_parts(Mode::None, 86_400, &[]).unwrap();
    w.sts.insert(DOMAIN.into(), StsInput::Policy(Rc::new(p)));
    let r = case(&w, Level::May).settings(sts_settings()).run();
    assert_eq!(r.connects, [may_conn(MX, V4)]);
}

#[test]
fn sts_details_for_the_probe() {
    let w = sts_world(Mode::Enforce, &["*.example.test"]);
    let r = case(&w, Level::May)
        .settings(sts_settings())
        .details()
        .run();
    assert!(r
        .events
        .iter()
        .any(|e| e.to_string() == "MTA-STS example.test: mode enforce, mx *.example.test"));
    let r = case(&w, Level::May).settings(sts_settings()).run();
    assert!(!r.events.iter().any(|e| e.is_detail()));
}

/// A plan for `example.test` under a plug-in answer.
fn plugin_run(w: &World, answer: &str) -> Run {
    plugin_run_as(w, answer, false)
}

/// [`plugin_run`], with the policy lowered for `TLS-Required: No` if
/// `relaxed`.
fn plugin_run_as(w: &World, answer: &str, relaxed: bool) -> Run {
    let nh = NextHop::parse(DOMAIN).unwrap();
    let entry = crate::policy::table::OwnedPolicyEntry::parse(
        DOMAIN,
        "socketmap:inet:127.0.0.1:8461:postfix",
        answer,
    )
    .unwrap();
    let defaults = PolicyDefaults::POSTFIX;
    let mut policy = crate::policy::decide::decide_with(
        &PolicyInputs {
            nexthop: nh,
            tables: &[],
            defaults: &defaults,
        },
        Some(&entry),
    )
    .unwrap();
    if relaxed {
        policy.relax_for_tls_required_no();
    }
    let settings = sts_settings();
    let mut p = Planner::new(nh, policy, &settings, false, false, 1);
    let mut run = Run {
        lookups: Vec::new(),
        connects: Vec::new(),
        skips: Vec::new(),
        events: Vec::new(),
        trace: Vec::new(),
        outcome: PlanOutcome::Completed,
    };
    for _ in 0..100 {
        match p.poll() {
            Step::Lookup(q) => {
                run.lookups.push(format!("{q:?}"));
                let a = w.resolve(q);
                p.answer(a);
            }
            Step::Connect(t) => {
                run.connects.push(Conn::of(t));
                p.connection_done(Ok(()), true);
            }
            Step::Skip(s) => run.skips.push(s),
            Step::Event(e) => run.events.push(e),
            Step::Done(o) => {
                run.outcome = o;
                break;
            }
        }
    }
    run
}

#[test]
fn a_plugin_sts_answer_applies_as_postfix_and_describes_the_policy() {
    let w = World::new()
        .mx(DOMAIN, &[(10, MX)], false)
        .a(MX, &[V4], false);
    let r = plugin_run(
        &w,
        "secure match=mx.example.test servername=hostname policy_type=sts policy_domain=example.test mx_host_pattern=mx.example.test { policy_string = version: STSv1 } { policy_string = mode: enforce }",
    );
    // The plug-in replaces the built-in lookup: no STS query.
    assert!(
        !r.lookups.iter().any(|l| l.starts_with("Sts")),
        "{:?}",
        r.lookups
    );
    assert_eq!(r.connects.len(), 1);
    let c = &r.connects[0];
    assert_eq!(
        (c.level, c.tls, &c.verify),
        (Level::Secure, TlsRequirement::Required, &Verify::Pkix)
    );
    assert_eq!(
        c.policy,
        PolicyDescriptor {
            kind: PolicyType::Sts,
            domain: DOMAIN.into(),
            strings: vec!["version: STSv1".into(), "mode: enforce".into()],
            mx_patterns: vec![MX.into()],
        }
    );
    // policy_failure= fails the connection with that result type.
    let r = plugin_run(
        &w,
        "secure match=mx.example.test policy_type=sts policy_domain=example.test policy_failure=sts-webpki-invalid",
    );
    assert_eq!(r.connects[0].verify, Verify::Sts(MX.into(), true, true));
}

// ---------------------------------------------------------------------
// RFC 8689 `TLS-Required: No`: the driver lowers the policy before the
// planner is built.

#[test]
fn tls_required_no_delivers_at_may_without_sts_or_tlsa_lookups() {
    // An enforced MTA-STS policy that lists no MX host: no lookup, `may`.
    let w = sts_world(Mode::Enforce, &["mail.elsewhere.test"]);
    let r = case(&w, Level::Encrypt)
        .settings(sts_settings())
        .tls_required_no()
        .run();
    assert_eq!(
        r.lookups,
        [
            "MX example.test",
            "A+AAAA mx.example.test",
            "A+AAAA mx2.other.test"
        ]
    );
    assert_eq!(r.connects[0], may_conn(MX, V4));
    assert_eq!(r.outcome, PlanOutcome::Completed);
    // DANE and dane-only, with usable TLSA records: none are asked for.
    for level in [Level::Dane, Level::DaneOnly, Level::Secure, Level::Verify] {
        let w = World::signed().tlsa(MX, &[ee()], true);
        let r = case(&w, level)
            .settings(sts_settings())
            .tls_required_no()
            .run();
        assert!(
            !r.lookups
                .iter()
                .any(|l| l.starts_with("TLSA") || l.starts_with("STS")),
            "{level:?}: {:?}",
            r.lookups
        );
        assert_eq!(r.connects, [may_conn(MX, V4)], "{level:?}");
    }
    // A handshake that fails is retried in plaintext, as at `may`.
    let w = World::signed();
    let r = case(&w, Level::Encrypt)
        .tls_required_no()
        .on(V4, vec![Err(handshake_failed()), Ok(())])
        .run();
    assert_eq!(
        r.relays(),
        [
            "mx.example.test[192.0.2.1]:25",
            "mx.example.test[192.0.2.1]:25"
        ]
    );
    assert_eq!(r.outcome, PlanOutcome::Completed);
    // `none` stays `none`: the header never asks for more.
    let r = case(&w, Level::None).tls_required_no().run();
    assert_eq!(r.connects[0].tls, TlsRequirement::None);
}

#[test]
fn tls_required_no_drops_a_plugin_sts_answer_and_its_failure() {
    let w = World::new()
        .mx(DOMAIN, &[(10, MX)], false)
        .a(MX, &[V4], false);
    let r = plugin_run_as(
        &w,
        "secure match=mx.example.test policy_type=sts policy_domain=example.test policy_failure=sts-webpki-invalid",
        true,
    );
    assert_eq!(r.connects.len(), 1);
    let c = &r.connects[0];
    assert_eq!(
        (c.level, c.tls),
        (Level::May, TlsRequirement::Opportunistic)
    );
    assert_eq!(c.policy.kind, PolicyType::NoPolicyFound);
}

#[test]
fn a_plugin_sts_answer_comes_after_dane() {
    // smtp_tls_security_level = dane; the plug-in answers for the domain.
    let answer = "secure match=mx.example.test:mx2.example.test policy_type=sts policy_domain=example.test mx_host_pattern=*.example.test { policy_string = version: STSv1 } { policy_string = mode: enforce }";
    let w = World::new()
        .mx(DOMAIN, &[(10, MX), (20, "mx2.example.test")], true)
        .a(MX, &[V4], true)
        .aaaa(MX, &[], true)
        .a("mx2.example.test", &["192.0.2.20"], true)
        .aaaa("mx2.example.test", &[], true)
        .tlsa(MX, &[ee()], true)
        .tlsa("mx2.example.test", &[], true);
    let nh = NextHop::parse(DOMAIN).unwrap();
    let entry = crate::policy::table::OwnedPolicyEntry::parse(
        DOMAIN,
        "socketmap:inet:127.0.0.1:8461:postfix",
        answer,
    )
    .unwrap();
    let run_at = |level: Level| {
        let defaults = PolicyDefaults {
            level,
            ..PolicyDefaults::POSTFIX
        };
        let policy = crate::policy::decide::decide_with(
            &PolicyInputs {
                nexthop: nh,
                tables: &[],
                defaults: &defaults,
            },
            Some(&entry),
        )
        .unwrap();
        let settings = sts_settings();
        let mut p = Planner::new(nh, policy, &settings, false, false, 1);
        let mut connects = Vec::new();
        let mut skips = Vec::new();
        for _ in 0..100 {
            match p.poll() {
                Step::Lookup(q) => {
                    let a = w.resolve(q);
                    p.answer(a);
                }
                Step::Connect(t) => {
                    connects.push(Conn::of(t));
                    p.connection_done(Err(unreached("x")), true);
                }
                Step::Skip(s) => skips.push(s),
                Step::Event(_) => {}
                Step::Done(_) => break,
            }
        }
        (connects, skips)
    };
    // dane: mx has usable TLSA (DANE), mx2 has none (the plug-in's secure).
    let (c, _) = run_at(Level::Dane);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[0], dane_conn(MX, V4, Level::Dane, &[ee()]));
    assert_eq!(
        (
            c[1].host.as_str(),
            c[1].level,
            &c[1].verify,
            c[1].policy.kind
        ),
        (
            "mx2.example.test",
            Level::Secure,
            &Verify::Pkix,
            PolicyType::Sts
        )
    );
    // dane-only: mx2 defers, as DANE rules it out before MTA-STS.
    let (c, skips) = run_at(Level::DaneOnly);
    assert_eq!(c, [dane_conn(MX, V4, Level::DaneOnly, &[ee()])]);
    assert_eq!(skips.len(), 1, "{skips:?}");
    // may: the plug-in's answer alone, as Postfix applies it.
    let (c, _) = run_at(Level::May);
    assert!(
        c.iter()
            .all(|c| c.level == Level::Secure && c.verify == Verify::Pkix),
        "{c:?}"
    );
}
