//! The `dane` and `dane-only` levels (RFC 7672 §2, Postfix semantics):
//! what one MX host's DNSSEC facts mean for the connection. Sans-I/O: the
//! delivery driver does the lookups and passes the results in.

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
    /// Defer delivery to this host with this reason (for `status=deferred`).
    Defer(String),
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
    let defer_or_may = |why: String| match level {
        DaneLevel::Dane => DaneDecision::May,
        DaneLevel::DaneOnly => DaneDecision::Defer(why),
    };
    if !facts.mx_secure {
        return defer_or_may(format!(
            "MX records for {host} are not DNSSEC-validated: no DANE"
        ));
    }
    if !facts.address_secure {
        return defer_or_may(format!(
            "address records of {host} are not DNSSEC-validated: no DANE"
        ));
    }
    match &facts.tlsa {
        None => defer_or_may(format!("no TLSA lookup for {host}")),
        Some(TlsaLookup::Failed(e)) => {
            DaneDecision::Defer(format!("TLSA lookup error for _{port}._tcp.{host}: {e}"))
        }
        Some(TlsaLookup::NoRecords { secure: true }) => {
            defer_or_may(format!("no TLSA records found for _{port}._tcp.{host}"))
        }
        // An unvalidated denial or answer is treated as no TLSA at all.
        Some(TlsaLookup::NoRecords { secure: false })
        | Some(TlsaLookup::Records { secure: false, .. }) => defer_or_may(format!(
            "TLSA records for _{port}._tcp.{host} are not DNSSEC-validated"
        )),
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
                    DaneLevel::DaneOnly => DaneDecision::Defer(format!(
                        "all TLSA records for _{port}._tcp.{host} are unusable"
                    )),
                }
            }
        }
    }
}

/// The TLSA base domains to try for a host, in order (RFC 7672 §2.2.3):
/// when the host name is a DNSSEC-validated CNAME alias, the fully expanded
/// name first, then the original name.
pub fn base_domains<'a>(
    original: &'a str,
    expanded: Option<&'a str>,
    cname_secure: bool,
) -> Vec<&'a str> {
    match expanded {
        Some(e) if cname_secure && !e.eq_ignore_ascii_case(original) => vec![e, original],
        _ => vec![original],
    }
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
                    assert_eq!(why, "TLSA lookup error for _25._tcp.mx.example: SERVFAIL")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn reasons_name_the_port_looked_up() {
        let f = facts(Some(TlsaLookup::NoRecords { secure: true }));
        assert_eq!(
            decide_at(DaneLevel::DaneOnly, "mx.example", 2525, &f),
            DaneDecision::Defer("no TLSA records found for _2525._tcp.mx.example".into())
        );
        let f = facts(Some(TlsaLookup::Failed("SERVFAIL".into())));
        assert_eq!(
            decide_at(DaneLevel::Dane, "mx.example", 587, &f),
            DaneDecision::Defer("TLSA lookup error for _587._tcp.mx.example: SERVFAIL".into())
        );
    }

    #[test]
    fn lookups_and_base_domains() {
        assert!(needs_tlsa_lookup(true, true));
        assert!(!needs_tlsa_lookup(false, true));
        assert!(!needs_tlsa_lookup(true, false));
        assert_eq!(
            base_domains("mx.a", Some("mx.b"), true),
            vec!["mx.b", "mx.a"]
        );
        assert_eq!(base_domains("mx.a", Some("mx.b"), false), vec!["mx.a"]);
        assert_eq!(base_domains("mx.a", None, true), vec!["mx.a"]);
    }
}
