//! The `dane` and `dane-only` levels (RFC 7672 §2, Postfix semantics):
//! what one MX host's DNSSEC facts mean for the connection. Sans-I/O: the
//! delivery driver does the lookups and passes the results in.

use std::net::{IpAddr, SocketAddr};

use crate::dns::{DnsError, HostAddresses};

use crate::tls::dane::Tlsa;

/// Which of the two DANE levels is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaneLevel {
    /// Opportunistic DANE: authenticate when usable TLSA exists, else
    /// `encrypt` or `may` as the DNSSEC facts allow.
    Dane,
    /// Mandatory DANE: anything short of a DANE match defers.
    DaneOnly,
}

/// The outcome of the TLSA lookup at `_25._tcp.<host>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsaLookup {
    /// Records, and whether the answer was DNSSEC-validated (AD bit from a
    /// trusted resolver).
    Records {
        /// The TLSA records found.
        records: Vec<Tlsa>,
        /// AD bit set.
        secure: bool,
    },
    /// NXDOMAIN or NODATA, and whether that denial was validated.
    NoRecords {
        /// AD bit set on the denial.
        secure: bool,
    },
    /// SERVFAIL (bogus, from a validating resolver), timeout, or another
    /// failure: never a reason to downgrade.
    Failed(String),
}

/// DNSSEC facts about one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The MX RRset that named this host was validated (or the host came
    /// from configuration, e.g. `[host]` in a transport or relayhost).
    pub mx_secure: bool,
    /// The host's A/AAAA answers were validated.
    pub address_secure: bool,
    /// The TLSA lookup, if it was made (it is skipped when the facts above
    /// already rule DANE out).
    pub tlsa: Option<TlsaLookup>,
}

/// What to do for this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneDecision {
    /// Authenticated TLS required, verified against these usable records.
    Authenticate(Vec<Tlsa>),
    /// TLSA present but none usable: mandatory TLS, unauthenticated.
    Encrypt,
    /// No secure TLSA: opportunistic TLS.
    May,
    /// Defer delivery to this host.
    Defer(Deferral),
}

/// Why a host is deferred: Postfix's reason text for `status=deferred`
/// (`smtp_tls_policy.c`, `dane_init`), and tern's DNS detail, which goes
/// on its own log line (the skipped-host warning) so that the status
/// line stays as Postfix writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    /// Postfix's text, e.g. `TLSA lookup error for mx.example.com:25`.
    pub reason: String,
    /// The owner name and DNS error behind it.
    pub detail: String,
}

impl Deferral {
    /// A deferral whose Postfix reason and tern detail differ.
    pub fn new(reason: impl Into<String>, detail: impl Into<String>) -> Deferral {
        Deferral {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// Whether the TLSA lookup is needed at all for these facts.
pub fn needs_tlsa_lookup(mx_secure: bool, address_secure: bool) -> bool {
    mx_secure && address_secure
}

/// Decides the connection's requirements for one host on port 25 (RFC
/// 7672 §2.2); see [`decide_at`].
pub fn decide(level: DaneLevel, host: &str, facts: &HostFacts) -> DaneDecision {
    decide_at(level, host, 25, facts)
}

/// Decides the connection's requirements for one host reached on `port`,
/// whose TLSA records were looked up at `_<port>._tcp.<host>` (RFC 6698
/// §3: the owner name carries the port actually connected to, e.g. with
/// `smtp_tcp_port`); the reasons name that owner.
pub fn decide_at(level: DaneLevel, host: &str, port: u16, facts: &HostFacts) -> DaneDecision {
    let defer_or_may = |reason: &str, detail: String| match level {
        DaneLevel::Dane => DaneDecision::May,
        DaneLevel::DaneOnly => DaneDecision::Defer(Deferral::new(reason, detail)),
    };
    let owner = format!("_{port}._tcp.{host}");
    if !facts.mx_secure {
        return defer_or_may(
            NON_DNSSEC,
            format!("MX records for {host} are not DNSSEC-validated: no DANE"),
        );
    }
    if !facts.address_secure {
        return defer_or_may(
            NON_DNSSEC,
            format!("address records of {host} are not DNSSEC-validated: no DANE"),
        );
    }
    match &facts.tlsa {
        None => defer_or_may(NO_TLSA, format!("no TLSA lookup for {host}")),
        // Postfix names the host and port, not the owner name; the owner
        // and the DNS error go into the detail.
        Some(TlsaLookup::Failed(e)) => DaneDecision::Defer(Deferral::new(
            format!("TLSA lookup error for {host}:{port}"),
            format!("TLSA lookup error for {owner}: {e}"),
        )),
        Some(TlsaLookup::NoRecords { secure: true }) => {
            defer_or_may(NO_TLSA, format!("no TLSA records found for {owner}"))
        }
        // An unvalidated denial or answer is treated as no TLSA at all
        // (Postfix's tls_dane_resolve: "not found").
        Some(TlsaLookup::NoRecords { secure: false })
        | Some(TlsaLookup::Records { secure: false, .. }) => defer_or_may(
            NO_TLSA,
            format!("TLSA records for {owner} are not DNSSEC-validated"),
        ),
        Some(TlsaLookup::Records {
            records,
            secure: true,
        }) => {
            let usable: Vec<Tlsa> = records.iter().filter(|r| r.usable()).cloned().collect();
            if !usable.is_empty() {
                DaneDecision::Authenticate(usable)
            } else {
                match level {
                    DaneLevel::Dane => DaneDecision::Encrypt,
                    DaneLevel::DaneOnly => DaneDecision::Defer(Deferral::new(
                        "TLSA records unusable",
                        format!("all TLSA records for {owner} are unusable"),
                    )),
                }
            }
        }
    }
}

/// Postfix's reason when the MX or address records are not validated.
pub const NON_DNSSEC: &str = "non DNSSEC destination";
/// Postfix's reason when no (validated) TLSA records exist.
pub const NO_TLSA: &str = "no TLSA records found";

/// How far DNSSEC vouches for one host's address records (RFC 7672
/// §2.2.2): a host is in a signed zone when its A/AAAA records are
/// validated, or when they come from a CNAME chain whose first link is.
/// The address answer alone cannot tell the second case from an unsigned
/// host, so the driver asks for the CNAME itself (as the RFC's author
/// explains in maddy issue #292).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSecurity {
    /// The A/AAAA answers, and any CNAME chain leading to them, were
    /// validated.
    Secure,
    /// The host name is a validated CNAME whose target lies in an unsigned
    /// zone: the host is in a signed zone, but only its original name can
    /// be a TLSA base domain (the expanded one is insecure).
    SecureAlias,
    /// Not validated: DANE does not apply to this host.
    Insecure,
}

impl AddressSecurity {
    /// Whether the host counts as being in a signed zone (the
    /// `address_secure` of [`HostFacts`]).
    pub fn is_secure(self) -> bool {
        self != AddressSecurity::Insecure
    }
}

/// One host's addresses with the DNSSEC status of the family each came
/// from (RFC 7672 §2.2, Postfix: the validation status belongs to each
/// address RRset, not to the host). A validated family stays secure
/// whatever the other family says; a family whose lookup failed
/// contributes no address (and nothing secure), but does not stop the
/// other family from being used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressFacts {
    /// The addresses, IPv4 first, each with "its family's answer was
    /// validated (trusted AD bit)".
    pub addrs: Vec<(IpAddr, bool)>,
    /// The first family whose lookup failed: its record type and error.
    pub failed: Option<(&'static str, DnsError)>,
    /// The final name after CNAMEs (from the first family that answered;
    /// the asked name when none did).
    pub name: String,
    /// Every family asked answered NXDOMAIN.
    pub nxdomain: bool,
}

impl AddressFacts {
    /// Splits the lookups of `host`; `trust_ad`: AD bits count (see
    /// [`ad_trust`]).
    pub fn new(host: &str, looked: HostAddresses, trust_ad: bool) -> AddressFacts {
        let mut facts = AddressFacts {
            addrs: Vec::new(),
            failed: None,
            name: String::new(),
            nxdomain: true,
        };
        let note = |facts: &mut AddressFacts,
                    ty: &'static str,
                    r: Result<(Vec<IpAddr>, bool, String, bool), DnsError>| {
            match r {
                Ok((ips, authenticated, name, nx)) => {
                    let secure = authenticated && trust_ad;
                    facts.addrs.extend(ips.into_iter().map(|ip| (ip, secure)));
                    if facts.name.is_empty() {
                        facts.name = name;
                    }
                    facts.nxdomain &= nx;
                }
                Err(e) => {
                    facts.nxdomain = false;
                    if facts.failed.is_none() {
                        facts.failed = Some((ty, e));
                    }
                }
            }
        };
        let mut asked = false;
        if let Some(r) = looked.v4 {
            asked = true;
            note(
                &mut facts,
                "A",
                r.map(|a| {
                    let nx = a.is_nxdomain();
                    let ips = a.records.iter().map(|x| IpAddr::V4(*x)).collect();
                    (ips, a.authenticated, a.name, nx)
                }),
            );
        }
        if let Some(r) = looked.v6 {
            asked = true;
            note(
                &mut facts,
                "AAAA",
                r.map(|a| {
                    let nx = a.is_nxdomain();
                    let ips = a.records.iter().map(|x| IpAddr::V6(*x)).collect();
                    (ips, a.authenticated, a.name, nx)
                }),
            );
        }
        facts.nxdomain &= asked;
        if facts.name.is_empty() {
            facts.name = host.to_ascii_lowercase();
        }
        facts
    }

    /// Some address came from a validated answer.
    pub fn any_secure(&self) -> bool {
        self.addrs.iter().any(|(_, s)| *s)
    }

    /// Some address came from an answer that was not validated.
    pub fn any_insecure(&self) -> bool {
        self.addrs.iter().any(|(_, s)| !*s)
    }
}

/// Whether a host's addresses from an unvalidated family may be used when
/// another family of the same host was validated and gave `secure` (the
/// decision for the validated addresses). Only when DANE asks nothing
/// more of the secure addresses than of insecure ones: at `dane` with a
/// `may` decision (no secure TLSA). Otherwise connecting to the insecure
/// family would be a downgrade an attacker could choose (authenticated or
/// mandatory TLS, or a deferral after a TLSA lookup error, replaced by
/// opportunistic TLS), so those addresses are skipped.
pub fn insecure_family_usable(level: DaneLevel, secure: &DaneDecision) -> bool {
    level == DaneLevel::Dane && *secure == DaneDecision::May
}

/// The addresses of a host that a DANE decision `d` applies to, in order,
/// and whether some were left out. With [`AddressSecurity::Secure`], `d`
/// was made for the validated family; the other family's addresses join
/// only where [`insecure_family_usable`] says that is no downgrade.
/// `SecureAlias` and `Insecure` describe every address alike.
pub fn dane_addresses(
    level: DaneLevel,
    security: AddressSecurity,
    addrs: &AddressFacts,
    d: &DaneDecision,
) -> (Vec<IpAddr>, bool) {
    let split = security == AddressSecurity::Secure && addrs.any_insecure();
    let insecure_ok = insecure_family_usable(level, d);
    let ips = addrs
        .addrs
        .iter()
        .filter(|(_, secure)| !split || *secure || insecure_ok)
        .map(|(ip, _)| *ip)
        .collect();
    (ips, split && !insecure_ok)
}

/// The TLSA base domains to try for a host, in order (RFC 7672 §2.2.3):
/// for a host whose address records were validated through a CNAME chain,
/// the fully expanded name first, then the original name; for a secure
/// alias of an insecure target, only the original name; none when the
/// addresses are insecure.
pub fn base_domains<'a>(
    original: &'a str,
    expanded: Option<&'a str>,
    security: AddressSecurity,
) -> Vec<&'a str> {
    match (security, expanded) {
        (AddressSecurity::Insecure, _) => Vec::new(),
        (AddressSecurity::Secure, Some(e)) if !e.eq_ignore_ascii_case(original) => {
            vec![e, original]
        }
        _ => vec![original],
    }
}

/// Whether the next candidate TLSA base domain is tried after this lookup
/// (RFC 7672 §2.2.3): when the name had no TLSA records or only insecure
/// ones. A secure answer decides; a failed lookup defers and is never
/// skipped over.
pub fn try_next_base_domain(lookup: &TlsaLookup) -> bool {
    matches!(
        lookup,
        TlsaLookup::NoRecords { .. } | TlsaLookup::Records { secure: false, .. }
    )
}

/// Whether DANE may believe the AD bit of the configured resolvers
/// (Postfix's `smtp_dns_support_level = dnssec`, restricted as maddy does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdTrust {
    /// `smtp_dns_support_level` is not `dnssec`: no AD bit is believed.
    Disabled,
    /// Every configured resolver is on loopback or named in
    /// `dns_trusted_resolvers`. `remote` lists those not on loopback (the
    /// daemon warns about them at start: the path to them must be safe).
    Trusted {
        /// Trusted resolvers that are not on loopback.
        remote: Vec<SocketAddr>,
    },
    /// These resolvers are neither on loopback nor named. Any answer may
    /// come from one of them, so no AD bit is believed at all.
    Untrusted {
        /// The resolvers that are not trusted.
        untrusted: Vec<SocketAddr>,
    },
}

impl AdTrust {
    /// True when AD bits count as DNSSEC validation.
    pub fn trusted(&self) -> bool {
        matches!(self, AdTrust::Trusted { .. })
    }
}

/// Decides whose AD bit counts. `dnssec`: `smtp_dns_support_level =
/// dnssec`; `servers`: the resolvers queries go to; `named`: the
/// `dns_trusted_resolvers` entries (exact address and port, port 53 when
/// the entry has none). A resolver on loopback is always trusted.
pub fn ad_trust(dnssec: bool, servers: &[SocketAddr], named: &[SocketAddr]) -> AdTrust {
    if !dnssec {
        return AdTrust::Disabled;
    }
    let untrusted: Vec<SocketAddr> = servers
        .iter()
        .filter(|s| !s.ip().is_loopback() && !named.contains(s))
        .copied()
        .collect();
    if servers.is_empty() || !untrusted.is_empty() {
        return AdTrust::Untrusted { untrusted };
    }
    AdTrust::Trusted {
        remote: servers
            .iter()
            .filter(|s| !s.ip().is_loopback())
            .copied()
            .collect(),
    }
}

/// Parses `dns_trusted_resolvers` (same syntax as `dns_resolvers`: `ip`,
/// `ip:port`, `[ipv6]:port`, separated by spaces or commas); empty means
/// none.
pub fn parse_trusted_resolvers(list: &str) -> Result<Vec<SocketAddr>, String> {
    if list.trim().is_empty() {
        return Ok(Vec::new());
    }
    crate::dns::ResolverConfig::from_list(list)
        .map(|c| c.servers)
        .map_err(|e| format!("dns_trusted_resolvers: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlsa(usage: u8) -> Tlsa {
        Tlsa {
            usage,
            selector: 1,
            matching_type: 1,
            data: vec![7; 32],
        }
    }

    fn facts(tlsa: Option<TlsaLookup>) -> HostFacts {
        HostFacts {
            mx_secure: true,
            address_secure: true,
            tlsa,
        }
    }

    #[test]
    fn usable_records_authenticate() {
        let f = facts(Some(TlsaLookup::Records {
            records: vec![tlsa(0), tlsa(3)],
            secure: true,
        }));
        assert_eq!(
            decide(DaneLevel::Dane, "mx", &f),
            DaneDecision::Authenticate(vec![tlsa(3)])
        );
        assert_eq!(
            decide(DaneLevel::DaneOnly, "mx", &f),
            DaneDecision::Authenticate(vec![tlsa(3)])
        );
    }

    #[test]
    fn only_unusable_records_mean_encrypt_or_defer() {
        let f = facts(Some(TlsaLookup::Records {
            records: vec![tlsa(0), tlsa(1)],
            secure: true,
        }));
        assert_eq!(decide(DaneLevel::Dane, "mx", &f), DaneDecision::Encrypt);
        assert!(matches!(
            decide(DaneLevel::DaneOnly, "mx", &f),
            DaneDecision::Defer(_)
        ));
    }

    #[test]
    fn secure_denial_or_insecure_zone_means_may() {
        for f in [
            facts(Some(TlsaLookup::NoRecords { secure: true })),
            facts(Some(TlsaLookup::NoRecords { secure: false })),
            facts(Some(TlsaLookup::Records {
                records: vec![tlsa(3)],
                secure: false,
            })),
            HostFacts {
                mx_secure: false,
                address_secure: true,
                tlsa: None,
            },
            HostFacts {
                mx_secure: true,
                address_secure: false,
                tlsa: None,
            },
        ] {
            assert_eq!(
                decide(DaneLevel::Dane, "mx", &f),
                DaneDecision::May,
                "{f:?}"
            );
            assert!(
                matches!(
                    decide(DaneLevel::DaneOnly, "mx", &f),
                    DaneDecision::Defer(_)
                ),
                "{f:?}"
            );
        }
    }

    #[test]
    fn lookup_failure_never_downgrades() {
        let f = facts(Some(TlsaLookup::Failed("SERVFAIL".into())));
        for level in [DaneLevel::Dane, DaneLevel::DaneOnly] {
            match decide(level, "mx.example", &f) {
                DaneDecision::Defer(why) => {
                    assert_eq!(why.reason, "TLSA lookup error for mx.example:25");
                    assert_eq!(
                        why.detail,
                        "TLSA lookup error for _25._tcp.mx.example: SERVFAIL"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn dane_only_reasons_are_postfix_texts() {
        let reason = |f: &HostFacts| match decide(DaneLevel::DaneOnly, "mx.example", f) {
            DaneDecision::Defer(d) => (d.reason, d.detail),
            other => panic!("{other:?}"),
        };
        let insecure_mx = HostFacts {
            mx_secure: false,
            address_secure: true,
            tlsa: None,
        };
        assert_eq!(
            reason(&insecure_mx),
            (
                "non DNSSEC destination".into(),
                "MX records for mx.example are not DNSSEC-validated: no DANE".into()
            )
        );
        let insecure_addr = HostFacts {
            mx_secure: true,
            address_secure: false,
            tlsa: None,
        };
        assert_eq!(reason(&insecure_addr).0, "non DNSSEC destination");
        let unusable = facts(Some(TlsaLookup::Records {
            records: vec![tlsa(0), tlsa(1)],
            secure: true,
        }));
        assert_eq!(
            reason(&unusable),
            (
                "TLSA records unusable".into(),
                "all TLSA records for _25._tcp.mx.example are unusable".into()
            )
        );
        let insecure_tlsa = facts(Some(TlsaLookup::Records {
            records: vec![tlsa(3)],
            secure: false,
        }));
        assert_eq!(reason(&insecure_tlsa).0, "no TLSA records found");
    }

    #[test]
    fn reasons_name_the_port_looked_up() {
        let f = facts(Some(TlsaLookup::NoRecords { secure: true }));
        assert_eq!(
            decide_at(DaneLevel::DaneOnly, "mx.example", 2525, &f),
            DaneDecision::Defer(Deferral::new(
                NO_TLSA,
                "no TLSA records found for _2525._tcp.mx.example"
            ))
        );
        let f = facts(Some(TlsaLookup::Failed("SERVFAIL".into())));
        assert_eq!(
            decide_at(DaneLevel::Dane, "mx.example", 587, &f),
            DaneDecision::Defer(Deferral::new(
                "TLSA lookup error for mx.example:587",
                "TLSA lookup error for _587._tcp.mx.example: SERVFAIL"
            ))
        );
    }

    #[test]
    fn lookups_and_base_domains() {
        assert!(needs_tlsa_lookup(true, true));
        assert!(!needs_tlsa_lookup(false, true));
        assert!(!needs_tlsa_lookup(true, false));
        use AddressSecurity::*;
        assert_eq!(
            base_domains("mx.a", Some("mx.b"), Secure),
            vec!["mx.b", "mx.a"]
        );
        assert_eq!(base_domains("mx.a", Some("MX.A"), Secure), vec!["mx.a"]);
        assert_eq!(base_domains("mx.a", None, Secure), vec!["mx.a"]);
        // RFC 7672 §2.2.2: a secure CNAME to an insecure target leaves the
        // original (signed) name as the only TLSA base domain.
        assert_eq!(
            base_domains("mx.a", Some("mx.b"), SecureAlias),
            vec!["mx.a"]
        );
        assert!(base_domains("mx.a", Some("mx.b"), Insecure).is_empty());
        assert!(SecureAlias.is_secure() && Secure.is_secure() && !Insecure.is_secure());
    }

    #[test]
    fn insecure_or_missing_tlsa_moves_on_to_the_next_base_domain() {
        // RFC 7672 §2.2.3: "insecure" TLSA records at the expanded name are
        // as good as none: the original name is tried next.
        assert!(try_next_base_domain(&TlsaLookup::NoRecords {
            secure: true
        }));
        assert!(try_next_base_domain(&TlsaLookup::NoRecords {
            secure: false
        }));
        assert!(try_next_base_domain(&TlsaLookup::Records {
            records: vec![tlsa(3)],
            secure: false
        }));
        // A secure answer decides (even an unusable one); a failure defers.
        assert!(!try_next_base_domain(&TlsaLookup::Records {
            records: vec![tlsa(3)],
            secure: true
        }));
        assert!(!try_next_base_domain(&TlsaLookup::Records {
            records: vec![tlsa(0)],
            secure: true
        }));
        assert!(!try_next_base_domain(&TlsaLookup::Failed(
            "SERVFAIL".into()
        )));
    }

    use crate::dns::{Answer, Status};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn answer<T>(records: Vec<T>, authenticated: bool) -> Answer<T> {
        Answer {
            status: if records.is_empty() {
                Status::NoData
            } else {
                Status::Found
            },
            records,
            authenticated,
            name: "mx.example".into(),
            ttl: 60,
        }
    }

    fn v4() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
    }

    fn v6() -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
    }

    fn looked(
        a: Option<Result<Answer<Ipv4Addr>, DnsError>>,
        aaaa: Option<Result<Answer<Ipv6Addr>, DnsError>>,
    ) -> HostAddresses {
        HostAddresses { v4: a, v6: aaaa }
    }

    #[test]
    fn each_address_family_keeps_its_own_dnssec_status() {
        let a = || Some(Ok(answer(vec![Ipv4Addr::new(192, 0, 2, 1)], true)));
        let aaaa = |ad| {
            Some(Ok(answer(
                vec![Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)],
                ad,
            )))
        };
        // A validated, AAAA not: the IPv4 address stays secure.
        let f = AddressFacts::new("mx.example", looked(a(), aaaa(false)), true);
        assert_eq!(f.addrs, vec![(v4(), true), (v6(), false)]);
        assert!(f.any_secure() && f.any_insecure() && f.failed.is_none());
        // Both validated.
        let f = AddressFacts::new("mx.example", looked(a(), aaaa(true)), true);
        assert_eq!(f.addrs, vec![(v4(), true), (v6(), true)]);
        assert!(!f.any_insecure());
        // An untrusted resolver's AD bit validates nothing.
        let f = AddressFacts::new("mx.example", looked(a(), aaaa(true)), false);
        assert!(!f.any_secure());
        // A validated NODATA for AAAA leaves the A records secure.
        let f = AddressFacts::new(
            "mx.example",
            looked(a(), Some(Ok(answer(vec![], true)))),
            true,
        );
        assert_eq!(f.addrs, vec![(v4(), true)]);
        assert!(!f.nxdomain);
    }

    #[test]
    fn a_failed_family_neither_defers_nor_validates_the_host() {
        // SERVFAIL (bogus) on AAAA: the secure A records are still usable,
        // the failure is reported, and nothing of AAAA counts as secure.
        let f = AddressFacts::new(
            "mx.example",
            looked(
                Some(Ok(answer(vec![Ipv4Addr::new(192, 0, 2, 1)], true))),
                Some(Err(DnsError::ServFail)),
            ),
            true,
        );
        assert_eq!(f.addrs, vec![(v4(), true)]);
        assert_eq!(f.failed, Some(("AAAA", DnsError::ServFail)));
        // SERVFAIL on A, insecure AAAA: one insecure address, never secure.
        let f = AddressFacts::new(
            "mx.example",
            looked(
                Some(Err(DnsError::ServFail)),
                Some(Ok(answer(
                    vec![Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)],
                    false,
                ))),
            ),
            true,
        );
        assert_eq!(f.addrs, vec![(v6(), false)]);
        assert_eq!(f.failed, Some(("A", DnsError::ServFail)));
        // Both failed: no address; the first failure is kept.
        let f = AddressFacts::new(
            "mx.example",
            looked(Some(Err(DnsError::Timeout)), Some(Err(DnsError::ServFail))),
            true,
        );
        assert!(f.addrs.is_empty() && !f.nxdomain);
        assert_eq!(f.failed, Some(("A", DnsError::Timeout)));
        // A family not asked (inet_protocols) plays no part.
        let nx = Answer {
            status: Status::NxDomain,
            records: vec![],
            authenticated: true,
            name: "gone.example".into(),
            ttl: 0,
        };
        let f = AddressFacts::new("gone.example", looked(Some(Ok(nx)), None), true);
        assert!(f.addrs.is_empty() && f.nxdomain && f.failed.is_none());
        let f = AddressFacts::new("Gone.Example", looked(None, None), true);
        assert!(!f.nxdomain);
        assert_eq!(f.name, "gone.example");
    }

    #[test]
    fn addresses_a_dane_decision_applies_to() {
        use AddressSecurity::*;
        use DaneDecision::*;
        let mixed = AddressFacts {
            addrs: vec![(v4(), true), (v6(), false)],
            failed: None,
            name: "mx.example".into(),
            nxdomain: false,
        };
        let auth = Authenticate(vec![tlsa(3)]);
        // Authenticated (or mandatory) TLS for the validated A records:
        // the unvalidated AAAA address is left out, and that is reported.
        for d in [&auth, &Encrypt] {
            for l in [DaneLevel::Dane, DaneLevel::DaneOnly] {
                assert_eq!(
                    dane_addresses(l, Secure, &mixed, d),
                    (vec![v4()], true),
                    "{l:?} {d:?}"
                );
            }
        }
        // No secure TLSA at `dane`: both families get `may`.
        assert_eq!(
            dane_addresses(DaneLevel::Dane, Secure, &mixed, &May),
            (vec![v4(), v6()], false)
        );
        // Uniform security: every address, nothing skipped.
        let all_insecure = AddressFacts {
            addrs: vec![(v4(), false), (v6(), false)],
            ..mixed.clone()
        };
        assert_eq!(
            dane_addresses(DaneLevel::DaneOnly, SecureAlias, &all_insecure, &auth),
            (vec![v4(), v6()], false)
        );
        assert_eq!(
            dane_addresses(DaneLevel::Dane, Insecure, &all_insecure, &May),
            (vec![v4(), v6()], false)
        );
        let all_secure = AddressFacts {
            addrs: vec![(v4(), true), (v6(), true)],
            ..mixed
        };
        assert_eq!(
            dane_addresses(DaneLevel::DaneOnly, Secure, &all_secure, &auth),
            (vec![v4(), v6()], false)
        );
    }

    #[test]
    fn an_insecure_family_never_downgrades_the_secure_one() {
        use DaneDecision::*;
        let l = DaneLevel::Dane;
        assert!(insecure_family_usable(l, &May));
        assert!(!insecure_family_usable(l, &Encrypt));
        assert!(!insecure_family_usable(l, &Authenticate(vec![tlsa(3)])));
        assert!(!insecure_family_usable(
            l,
            &Defer(Deferral::new("TLSA lookup error", "x"))
        ));
        for d in [
            May,
            Encrypt,
            Authenticate(vec![tlsa(3)]),
            Defer(Deferral::new("x", "y")),
        ] {
            assert!(!insecure_family_usable(DaneLevel::DaneOnly, &d), "{d:?}");
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ad_bit_trusted_only_from_loopback_or_named_resolvers() {
        let lo = sa("127.0.0.1:53");
        let lo6 = sa("[::1]:5353");
        let lan = sa("192.168.1.1:53");
        let isp = sa("203.0.113.9:53");
        // Loopback: trusted without naming it.
        assert_eq!(
            ad_trust(true, &[lo, lo6], &[]),
            AdTrust::Trusted { remote: vec![] }
        );
        // A LAN resolver (e.g. from DHCP via resolv.conf) is not trusted
        // unless the operator names it.
        assert_eq!(
            ad_trust(true, &[lan], &[]),
            AdTrust::Untrusted {
                untrusted: vec![lan]
            }
        );
        assert_eq!(
            ad_trust(true, &[lan], &[lan]),
            AdTrust::Trusted { remote: vec![lan] }
        );
        // One untrusted server among trusted ones spoils them all: any
        // answer may come from it.
        assert_eq!(
            ad_trust(true, &[lo, lan, isp], &[lan]),
            AdTrust::Untrusted {
                untrusted: vec![isp]
            }
        );
        // The port is part of the name: 192.168.1.1:5353 is another server.
        assert!(!ad_trust(true, &[sa("192.168.1.1:5353")], &[lan]).trusted());
        // Off without dnssec; nothing to trust without servers.
        assert_eq!(ad_trust(false, &[lo], &[]), AdTrust::Disabled);
        assert!(!ad_trust(true, &[], &[lan]).trusted());
    }

    #[test]
    fn trusted_resolver_list_syntax() {
        assert_eq!(parse_trusted_resolvers("").unwrap(), vec![]);
        assert_eq!(parse_trusted_resolvers("  ").unwrap(), vec![]);
        assert_eq!(
            parse_trusted_resolvers("192.168.1.1, [fd00::1]:5353").unwrap(),
            vec![sa("192.168.1.1:53"), sa("[fd00::1]:5353")]
        );
        for bad in [
            "router.lan",
            "192.168.1.1:0",
            "1.2.3.4 1.2.3.5 1.2.3.6 1.2.3.7",
        ] {
            let e = parse_trusted_resolvers(bad).unwrap_err();
            assert!(e.starts_with("dns_trusted_resolvers: "), "{bad}: {e}");
        }
    }
}
