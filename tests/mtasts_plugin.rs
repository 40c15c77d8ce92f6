//! MTA-STS through Postfix's plug-in interface: postfix-mta-sts-resolver
//! (PyPI, installed into a venv by scripts/install-test-deps.sh) answers
//! tern's `smtp_tls_policy_maps = socketmap:inet:127.0.0.1:PORT:postfix`
//! queries, for the same lab as tests/mtasts_delivery.rs (nginx policy
//! host, nsd + unbound, Postfix MX). Its answers must drive delivery as the
//! built-in path does: enforce + matching MX -> Verified delivery; enforce
//! + MX outside the policy -> deferred.
//!
//! The resolver reads /etc/resolv.conf (c-ares, port 53 only): unbound
//! listens on a loopback address of its own at port 53, and the daemon
//! runs in a private mount namespace with a resolv.conf naming it.
//!
//! `resolver_*` checks the fixture alone; the others deliver through the
//! plug-in (`socketmap:` in `smtp_tls_policy_maps`).
mod common;
mod dane_common;
mod mtasts_common;

use mtasts_common::*;

/// A lab whose unbound also serves glibc/c-ares clients (port 53), and
/// the plug-in resolving through it.
fn lab_with_resolver(policy: &str) -> (Lab, StsResolver) {
    let ip = loopback_ip(53, true);
    let lab = Lab::start_with(policy, &[MX_HOST], Some((ip, 53).into()));
    let resolver = StsResolver::start(ip, &lab.ca.cert);
    (lab, resolver)
}

/// tern with built-in MTA-STS off, so that only the plug-in's answer can
/// make it verify.
fn tern_with_plugin(lab: &Lab, resolver: &StsResolver) -> Tern {
    lab.tern(&format!(
        "{STS_OFF}\nsmtp_tls_policy_maps = {}",
        resolver.policy_maps()
    ))
}

#[test]
fn resolver_answers_socketmap_queries() {
    let (lab, resolver) = lab_with_resolver(&policy("enforce", &[MX_HOST, "*.example.test"]));
    let answer = socketmap_query(resolver.addr, "postfix", DOMAIN);
    eprintln!("{answer}");
    // `match=` lists the patterns in no fixed order; `*.example.test`
    // becomes Postfix's `.example.test` (which matches deeper names too).
    let matches: std::collections::BTreeSet<&str> = answer
        .split_whitespace()
        .find_map(|w| w.strip_prefix("match="))
        .unwrap_or_else(|| panic!("no match= in {answer:?}"))
        .split(':')
        .collect();
    assert_eq!(
        matches,
        [".example.test", "mx.example.test"].into(),
        "{answer}"
    );
    for want in [
        "OK secure match=",
        " servername=hostname ",
        "policy_type=sts",
        "policy_domain=example.test",
        "mx_host_pattern=mx.example.test",
        "mx_host_pattern=*.example.test",
        "{ policy_string = version: STSv1 }",
        "{ policy_string = mode: enforce }",
        "{ policy_string = mx: *.example.test }",
    ] {
        assert!(
            answer.contains(want),
            "no {want:?} in {answer:?}\n{}",
            resolver.output()
        );
    }
    lab.sts.assert_fetches(1);
    // No policy: NOTFOUND (`unknown.test` has no zone; unbound refuses).
    let t = std::time::Instant::now();
    let none = socketmap_query(resolver.addr, "postfix", "unknown.test");
    assert!(none.starts_with("NOTFOUND"), "{none:?}");
    eprintln!("NOTFOUND after {:?}", t.elapsed());
}

#[test]
fn plugin_enforce_matching_mx_delivers_verified() {
    let (lab, resolver) = lab_with_resolver(&policy("enforce", &[MX_HOST]));
    let tern = tern_with_plugin(&lab, &resolver);
    assert_verified_delivery(&tern, &lab, 1);
    // Only the plug-in fetched (built-in MTA-STS is off).
    lab.sts.assert_fetches(1);
}

#[test]
fn plugin_enforce_mx_outside_patterns_defers() {
    let (lab, resolver) = lab_with_resolver(&policy("enforce", &[OTHER_MX]));
    let tern = tern_with_plugin(&lab, &resolver);
    // As Postfix applies `secure match=mx.elsewhere.test`: the MX's
    // certificate does not match, so nothing is sent. (Whether tern skips
    // the host up front, from `mx_host_pattern`, or fails it after the
    // handshake is its choice: no assertion on the connection.)
    let status = assert_deferred(&tern, &lab, 1);
    eprintln!("{status}");
    assert!(verified_lines(&tern, &lab).is_empty());
}
