//! MTA-STS (RFC 8461) end to end, built-in path: tern discovers
//! `_mta-sts.example.test` through the DNS lab (nsd + unbound, unsigned
//! zone), fetches the policy over HTTPS from a real nginx with a
//! certificate from a test CA, and delivers to a real Postfix MX — or
//! refuses to. One test per case of issue 11's Bar.
//!
//! The `lab_*` tests check the fixtures alone (no MTA-STS in tern); the
//! others run the built-in path (discovery, fetch, cache, `tern sts`).
mod common;
mod dane_common;
mod mtasts_common;

use mtasts_common::*;

/// Where tern keeps its policy cache on flash, below `queue_directory`.
const CACHE_DIR: &str = "mta-sts";

/// Runs `tern sts ARGS -c CONF`, asserts success, returns its stdout.
fn sts(tern: &Tern, args: &[&str]) -> String {
    let mut all = vec!["sts"];
    all.extend_from_slice(args);
    let out = tern.command(&all);
    assert!(out.success(), "tern {all:?}: {}", out.combined());
    out.stdout
}

// --- Fixtures alone (run today) ---------------------------------------

#[test]
fn lab_serves_policy_over_https_and_records_over_dns() {
    let mut lab = Lab::start(&policy("enforce", &[MX_HOST]));
    let got = lab.sts.curl(&lab.ca.cert);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        got.to_ascii_lowercase()
            .contains("content-type: text/plain\r\n"),
        "{got}"
    );
    assert!(got.ends_with(&policy("enforce", &[MX_HOST])), "{got}");
    assert!(!lab.sts.handshake_without_sni(&lab.ca.cert));
    assert_eq!(lab.dig("MX", DOMAIN), "10 mx.example.test.\n");
    assert_eq!(lab.dig("A", MX_HOST), "127.0.0.1\n");
    assert_eq!(lab.dig("A", STS_HOST), format!("{}\n", lab.sts.ip));
    let txt = format!("_mta-sts.{DOMAIN}");
    assert_eq!(lab.dig("TXT", &txt), "\"v=STSv1; id=1\"\n");
    // A new policy and id are served at once.
    lab.publish(&policy("testing", &[OTHER_MX]), "20261207");
    assert_eq!(lab.dig("TXT", &txt), "\"v=STSv1; id=20261207\"\n");
    assert!(lab
        .sts
        .curl(&lab.ca.cert)
        .ends_with(&policy("testing", &[OTHER_MX])));
    lab.sts.assert_fetches(2);
    // Stopped, the policy host refuses connections.
    lab.sts.stop();
    assert!(std::net::TcpStream::connect((lab.sts.ip, 443)).is_err());
}

#[test]
fn lab_mx_receives_from_tern_without_mta_sts() {
    let lab = Lab::start(&policy("enforce", &[OTHER_MX]));
    let tern = lab.tern(STS_OFF);
    assert_delivered(&tern, &lab, 1);
    assert_eq!(lab.mx_connections(), 1);
    // At `may` the session is not Verified (the cases below tell a policy
    // in force by that line).
    let tls = tern.tls_lines();
    eprintln!("{tls:?}");
    assert!(
        tls.len() == 1 && verified_lines(&tern, &lab).is_empty(),
        "{tls:?}"
    );
    // No fetch with MTA-STS off.
    lab.sts.assert_fetches(0);
}

// --- The Bar ----------------------------------------------------------

#[test]
fn enforce_matching_mx_delivers_verified() {
    let lab = Lab::start(&policy("enforce", &[MX_HOST]));
    let tern = lab.tern(STS_ON);
    assert_verified_delivery(&tern, &lab, 1);
    lab.sts.assert_fetches(1);
    // The operator sees the cached policy.
    let show = sts(&tern, &["show", DOMAIN]);
    assert!(show.contains("enforce") && show.contains(MX_HOST), "{show}");
}

#[test]
fn enforce_wildcard_pattern_delivers_verified() {
    // `*.example.test` matches `mx.example.test` (one label).
    let lab = Lab::start(&policy("enforce", &[OTHER_MX, "*.example.test"]));
    let tern = lab.tern(STS_ON);
    assert_verified_delivery(&tern, &lab, 1);
}

#[test]
fn enforce_mx_outside_patterns_defers_without_connecting() {
    let lab = Lab::start(&policy("enforce", &[OTHER_MX, "*.mx.example.test"]));
    let tern = lab.tern(STS_ON);
    assert_sts_deferred_unconnected(&tern, &lab, 1);
    assert_eq!(lab.mx_connections(), 0);
}

#[test]
fn testing_with_wrong_certificate_name_delivers_and_records_failure() {
    let lab = Lab::start_with(&policy("testing", &[MX_HOST]), &["wrong.example.net"], None);
    let tern = lab.tern(STS_ON);
    assert_delivered(&tern, &lab, 1);
    assert!(
        verified_lines(&tern, &lab).is_empty(),
        "{:?}",
        tern.tls_lines()
    );
    tern.wait_line(TESTING_FAILURE);
}

#[test]
fn cached_policy_enforced_while_server_down_and_after_restart() {
    // Verified TLS to the MX happens only under the policy: without one,
    // tern delivers at `may` (unverified).
    let mut lab = Lab::start(&policy("enforce", &[MX_HOST]));
    let mut tern = lab.tern(STS_ON);
    assert_verified_delivery(&tern, &lab, 1);
    lab.sts.stop();
    assert_verified_delivery(&tern, &lab, 2);
    let cache = tern.conf.parent().unwrap().join("spool").join(CACHE_DIR);
    assert!(
        std::fs::read_dir(&cache).is_ok_and(|mut d| d.next().is_some()),
        "no policy cached in {}",
        cache.display()
    );
    tern.restart();
    assert_verified_delivery(&tern, &lab, 3);
    lab.sts.assert_fetches(1);
}

#[test]
fn txt_id_change_refetches() {
    let mut lab = Lab::start(&policy("enforce", &[MX_HOST]));
    let tern = lab.tern(STS_ON);
    assert_verified_delivery(&tern, &lab, 1);
    lab.publish(&policy("enforce", &[OTHER_MX]), "2");
    // The TXT record's TTL is 1 s: let tern's resolver cache forget it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_sts_deferred_unconnected(&tern, &lab, 2);
    lab.sts.assert_fetches(2);
}

#[test]
fn purge_refetches_a_policy_changed_without_new_id() {
    let lab = Lab::start(&policy("enforce", &[MX_HOST]));
    let tern = lab.tern(STS_ON);
    assert_verified_delivery(&tern, &lab, 1);
    // The domain changes its policy but forgets the id: the cached one
    // stays in force (RFC 8461 §5.1)...
    lab.sts.set_policy(&policy("enforce", &[OTHER_MX]));
    assert_verified_delivery(&tern, &lab, 2);
    lab.sts.assert_fetches(1);
    // ...until the operator purges it.
    assert!(sts(&tern, &["list"]).contains(DOMAIN));
    sts(&tern, &["purge", DOMAIN]);
    assert!(!sts(&tern, &["list"]).contains(DOMAIN));
    assert_sts_deferred_unconnected(&tern, &lab, 3);
    lab.sts.assert_fetches(2);
}
