//! Next-hop hosts for a mail domain (RFC 5321 §5.1, RFC 7505).
//!
//! Only host names are returned: the delivery driver resolves each host's
//! addresses (`Resolver::lookup_addresses`) when it is about to try it, so a
//! reachable first MX costs no further lookups.

use super::{Answer, DnsError, Mx, Resolver, Status};

/// One MX host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// Host name, lowercase, no trailing dot.
    pub name: String,
    /// MX preference (0 for an implicit MX).
    pub preference: u16,
}

/// Where mail for a domain goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHops {
    /// MX hosts in the order to try them: by preference, shuffled among
    /// equal preferences, each host once (at its lowest preference).
    Mx(Vec<MxHost>),
    /// The domain has no MX records: the domain itself is the host
    /// (implicit MX, preference 0).
    Implicit(MxHost),
    /// RFC 7505 null MX (a single MX whose exchange is the root): the
    /// domain accepts no mail; bounce with `556 5.1.10`.
    NullMx,
    /// The domain does not exist (NXDOMAIN); bounce.
    NxDomain,
}

/// The result of [`resolve_next_hop_hosts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHopHosts {
    /// The hosts, or why there are none.
    pub hops: NextHops,
    /// The MX answer (records, NODATA or NXDOMAIN) had the AD bit: DANE may
    /// use the MX host names as TLSA base domains (RFC 7672 §2.2.1).
    pub authenticated: bool,
    /// The domain after following CNAMEs in the MX answer.
    pub domain: String,
}

/// Turns an MX answer for `domain` into next hops. `random(n)` returns a
/// number below `n` (for shuffling equal preferences); pass `|_| 0` for a
/// stable order.
pub fn next_hops(answer: &Answer<Mx>, mut random: impl FnMut(usize) -> usize) -> NextHops {
    match answer.status {
        Status::NxDomain => return NextHops::NxDomain,
        Status::NoData => {
            return NextHops::Implicit(MxHost {
                name: answer.name.clone(),
                preference: 0,
            })
        }
        Status::Found => {}
    }
    if answer.records.len() == 1 && answer.records.iter().all(|m| m.exchange == ".") {
        return NextHops::NullMx;
    }
    let mut hosts: Vec<MxHost> = Vec::with_capacity(answer.records.len());
    // A "." among other MX records is a misconfiguration (RFC 7505 §3); it
    // names no host to connect to, so it is skipped.
    for mx in answer.records.iter().filter(|m| m.exchange != ".") {
        match hosts.iter_mut().find(|h| h.name == mx.exchange) {
            Some(h) => h.preference = h.preference.min(mx.preference),
            None => hosts.push(MxHost {
                name: mx.exchange.clone(),
                preference: mx.preference,
            }),
        }
    }
    if hosts.is_empty() {
        return NextHops::NullMx;
    }
    hosts.sort_by_key(|h| h.preference);
    let mut start = 0;
    while start < hosts.len() {
        let pref = hosts[start].preference;
        let end = hosts[start..]
            .iter()
            .position(|h| h.preference != pref)
            .map_or(hosts.len(), |n| start + n);
        // Fisher-Yates within the group of equal preference.
        for i in (start + 1..end).rev() {
            let j = start + random(i - start + 1).min(i - start);
            hosts.swap(i, j);
        }
        start = end;
    }
    NextHops::Mx(hosts)
}

/// An implicit MX is the domain as asked, not its CNAME-expanded name: the
/// address lookup follows the CNAME again, and DANE then has both names as
/// TLSA base domain candidates (RFC 7672 §2.2.3: expanded first, then the
/// original), as Postfix does.
pub fn implicit_keeps_the_asked_name(hops: NextHops, asked: &str) -> NextHops {
    match hops {
        NextHops::Implicit(h) => NextHops::Implicit(MxHost {
            name: asked.trim_end_matches('.').to_ascii_lowercase(),
            preference: h.preference,
        }),
        other => other,
    }
}

/// Looks up the MX records of `domain` and returns the hosts to try.
/// Errors (SERVFAIL, timeout, ...) mean: defer delivery.
pub async fn resolve_next_hop_hosts(
    resolver: &Resolver,
    domain: &str,
) -> Result<NextHopHosts, DnsError> {
    let answer = resolver.lookup_mx(domain).await?;
    let hops = implicit_keeps_the_asked_name(
        next_hops(&answer, |n| (resolver.random_u32() as usize) % n.max(1)),
        domain,
    );
    Ok(NextHopHosts {
        hops,
        authenticated: answer.authenticated,
        domain: answer.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(recs: &[(u16, &str)]) -> Answer<Mx> {
        Answer {
            status: if recs.is_empty() {
                Status::NoData
            } else {
                Status::Found
            },
            records: recs
                .iter()
                .map(|(p, e)| Mx {
                    preference: *p,
                    exchange: e.to_string(),
                })
                .collect(),
            authenticated: false,
            name: "example.test".into(),
            ttl: 60,
        }
    }

    fn names(h: &NextHops) -> Vec<(u16, String)> {
        match h {
            NextHops::Mx(v) => v.iter().map(|h| (h.preference, h.name.clone())).collect(),
            other => panic!("not Mx: {other:?}"),
        }
    }

    #[test]
    fn sorted_and_deduplicated() {
        let a = answer(&[
            (20, "b.test"),
            (10, "a.test"),
            (30, "c.test"),
            (40, "a.test"),
        ]);
        assert_eq!(
            names(&next_hops(&a, |_| 0)),
            vec![
                (10, "a.test".into()),
                (20, "b.test".into()),
                (30, "c.test".into())
            ]
        );
    }

    #[test]
    fn equal_preferences_are_shuffled_within_their_group() {
        let a = answer(&[
            (10, "a.test"),
            (10, "b.test"),
            (10, "c.test"),
            (5, "first.test"),
        ]);
        let mut seen = std::collections::HashSet::new();
        let mut state = 0usize;
        for _ in 0..50 {
            let h = names(&next_hops(&a, |n| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) % n
            }));
            assert_eq!(h[0], (5, "first.test".into()));
            assert!(h[1..].iter().all(|(p, _)| *p == 10));
            seen.insert(h[1].1.clone());
        }
        assert_eq!(
            seen.len(),
            3,
            "every equal-preference host comes first sometimes"
        );
    }

    #[test]
    fn null_mx_implicit_and_nxdomain() {
        assert_eq!(next_hops(&answer(&[(0, ".")]), |_| 0), NextHops::NullMx);
        // A "." next to a real MX is ignored, not a null MX.
        assert_eq!(
            names(&next_hops(&answer(&[(0, "."), (10, "mx.test")]), |_| 0)),
            vec![(10, "mx.test".into())]
        );
        assert_eq!(
            next_hops(&answer(&[]), |_| 0),
            NextHops::Implicit(MxHost {
                name: "example.test".into(),
                preference: 0
            })
        );
        let mut nx = answer(&[]);
        nx.status = Status::NxDomain;
        assert_eq!(next_hops(&nx, |_| 0), NextHops::NxDomain);
    }

    #[test]
    fn implicit_mx_is_the_domain_as_asked() {
        // `Alias.Example.` had a CNAME to example.test and no MX there.
        let hops = next_hops(&answer(&[]), |_| 0);
        assert_eq!(
            implicit_keeps_the_asked_name(hops, "Alias.Example."),
            NextHops::Implicit(MxHost {
                name: "alias.example".into(),
                preference: 0
            })
        );
        let mx = next_hops(&answer(&[(10, "mx.test")]), |_| 0);
        assert_eq!(
            implicit_keeps_the_asked_name(mx.clone(), "alias.example"),
            mx
        );
        assert_eq!(
            implicit_keeps_the_asked_name(NextHops::NullMx, "a.example"),
            NextHops::NullMx
        );
    }
}
