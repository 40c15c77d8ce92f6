//! Issue 12's Bar, end to end from real deliveries to reports: ONE tern
//! daemon (`smtp_tlsrpt_enable = yes`, built-in reports on, events also
//! sent to sys4's collector) on the DNS lab, with three recipient domains
//! that each publish `_smtp._tls TXT "v=TLSRPTv1; rua=mailto:..., https://..."`:
//!
//! - `dane.test`: signed zone, TLSA 3 1 1 for its MX, tern at level `dane`
//!   → success, policy `tlsa`;
//! - `example.test`: MTA-STS `enforce` (policy served by nginx over HTTPS),
//!   MX certificate from the test CA → success, policy `sts`;
//! - `plain.test`: the policy table says `encrypt`, its MX (the same
//!   Postfix, on another loopback address) offers no STARTTLS →
//!   `starttls-not-supported`, policy `no-policy-found`.
//!
//! The test checks tern's `TLSRPT: status=...` lines byte for byte, that
//! the collector's sqlite tables hold the same per-domain counts and
//! result codes as `tern tlsrpt show`, then `tern tlsrpt send --now`: one
//! report per domain by mail (Postfix Maildir, the gzip attachment) and
//! one by HTTPS POST (a rustls receiver on loopback), both JSON documents
//! checked field by field against RFC 8460 §4.4.

mod common;
mod dane_common;
mod mtasts_common;
mod tlsrpt_common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::certs::{KeyKind, TestCa};
use common::dnssec::{DnsWorld, Signing, Zone};
use common::ports::free_port;
use common::tempdir::{write, TempDir};
use mtasts_common::{
    listening_at, loopback_ip, policy, receiver, zone_records, PolicyHost, Tern, DOMAIN, MX_HOST,
    WAIT,
};
use tlsrpt_common::{
    collector_counts, gunzip, https_receiver, json_fields, show_counts, Collector,
};

/// The DANE domain (signed zone) and its MX.
const DANE: &str = "dane.test";
const DANE_MX: &str = "mx.dane.test";
/// The MTA-STS domain is the MTA-STS lab's [`DOMAIN`] (its policy host is
/// `mta-sts.example.test`), MX [`MX_HOST`].
const STS: &str = DOMAIN;
/// The domain whose MX offers no STARTTLS; the policy table says `encrypt`.
const PLAIN: &str = "plain.test";
const PLAIN_MX: &str = "mx.plain.test";
/// Where the reports go: `tlsrpt@reports.test` (MX: the same Postfix) and
/// `https://report.reports.test:PORT/tlsrpt` (the receiver below).
const REPORTS: &str = "reports.test";
const POST_HOST: &str = "report.reports.test";
const SENDER: &str = "tlsrpt-noreply@client.test";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 3339 UTC of a Unix time, whole seconds (`2016-04-01T00:00:00Z`).
fn rfc3339(unix: u64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = (unix / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let s = unix % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// JSON string literal of `s` (the test's values need no escaping).
fn q(s: &str) -> String {
    format!("\"{s}\"")
}

/// Checks one report (`json`) field by field against what RFC 8460 §4.4
/// requires and what the deliveries were; `policy` holds the expected
/// `policies[0]...` fields (paths relative to `policies[0].`).
/// `sent` bounds the send time (`report-id` and `end-datetime`).
fn check_report(
    json: &str,
    domain: &str,
    policy: &[(String, String)],
    sent: (u64, u64),
    how: &str,
) {
    let mut f = json_fields(json);
    let take = |f: &mut BTreeMap<String, String>, k: &str| -> String {
        f.remove(k)
            .unwrap_or_else(|| panic!("{how} report for {domain}: no {k} in {json}"))
    };
    assert_eq!(
        take(&mut f, "organization-name"),
        q("Tern Test Router"),
        "{how}"
    );
    assert_eq!(
        take(&mut f, "contact-info"),
        q("tlsrpt-admin@client.test"),
        "{how}"
    );
    // The period began at the UTC day start (no checkpoint at start) and
    // ended at `send --now`.
    assert_eq!(
        take(&mut f, "date-range.start-datetime"),
        q(&rfc3339(sent.0 - sent.0 % 86_400)),
        "{how} {domain}"
    );
    let end = take(&mut f, "date-range.end-datetime");
    let ok_ends: Vec<String> = (sent.0..=sent.1).map(|t| q(&rfc3339(t))).collect();
    assert!(ok_ends.contains(&end), "{how} {domain}: end {end}");
    // `YYYYMMDD.domain.SENT@submitter`.
    let id = take(&mut f, "report-id");
    let id = id.trim_matches('"');
    let day = rfc3339(sent.0).replace('-', "");
    let prefix = format!("{}.{domain}.", &day[..8]);
    let t: u64 = id
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix("@client.test"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{how} {domain}: report-id {id}"));
    assert!((sent.0..=sent.1).contains(&t), "{how} {domain}: {id}");
    // One policy, with exactly the fields expected.
    let mut want: BTreeMap<String, String> = policy
        .iter()
        .map(|(k, v)| (format!("policies[0].{k}"), v.clone()))
        .collect();
    want.insert("policies[0].policy.policy-domain".into(), q(domain));
    assert_eq!(f, want, "{how} report for {domain}:\n{json}");
}

#[test]
fn deliveries_to_dane_sts_and_plain_domains_become_reports() {
    let t0 = Instant::now();
    let ca = TestCa::new();
    // The receiving Postfix: DANE and MTA-STS MX on 127.0.0.1 (one
    // certificate for both names), and the no-STARTTLS MX of plain.test
    // on a loopback address of its own, same port (tern's smtp_tcp_port).
    let port = free_port();
    let plain_ip = loopback_ip(port, false);
    let leaf = ca.server_cert(KeyKind::EcdsaP256, &[MX_HOST, DANE_MX]);
    let pf = receiver()
        .local_domains(&[STS, DANE, PLAIN, REPORTS])
        .tls(&leaf.chain, &leaf.key)
        .smtp_port(port)
        .plain_listener_at(plain_ip)
        .start();
    assert!(listening_at(plain_ip, port), "no listener at {plain_ip}");
    let sts = PolicyHost::start(&ca, &policy("enforce", &[MX_HOST]));

    // The HTTPS report receiver, named in the lab's DNS.
    let post_leaf = ca.server_cert(KeyKind::EcdsaP256, &[POST_HOST]);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let post_port = listener.local_addr().unwrap().port();
    let posts = https_receiver(listener, &post_leaf.chain, &post_leaf.key);

    let rua = format!("mailto:tlsrpt@{REPORTS}, https://{POST_HOST}:{post_port}/tlsrpt");
    let tlsrpt = format!("_smtp._tls IN TXT \"v=TLSRPTv1; rua={rua}\"\n");
    let tlsa = format!("3 1 1 {}", leaf.pkey_sha256_hex());
    let dns = DnsWorld::start(&[
        Zone::new(
            STS,
            Signing::Unsigned,
            &format!("{}{tlsrpt}", zone_records(sts.ip, "1")),
        ),
        Zone::new(
            DANE,
            Signing::Signed,
            &format!("@ IN MX 10 mx\nmx IN A 127.0.0.1\n_{port}._tcp.mx IN TLSA {tlsa}\n{tlsrpt}"),
        ),
        Zone::new(
            PLAIN,
            Signing::Unsigned,
            &format!("@ IN MX 10 mx\nmx IN A {plain_ip}\n{tlsrpt}"),
        ),
        Zone::new(
            REPORTS,
            Signing::Unsigned,
            "@ IN MX 10 mx\nmx IN A 127.0.0.1\nreport IN A 127.0.0.1\n",
        ),
    ]);
    let collector = Collector::start();
    let tables = TempDir::new("tlsrpt-e2e");
    let policy_map = tables.join("tls_policy");
    write(&policy_map, format!("{PLAIN} encrypt\n"));
    let tern = Tern::start(
        dns.resolver,
        port,
        &format!(
            "smtp_tls_CAfile = {}\n\
             smtp_tls_security_level = dane\n\
             mta_sts_enable = yes\n\
             smtp_tls_policy_maps = texthash:{}\n\
             smtp_tlsrpt_enable = yes\n\
             smtp_tlsrpt_socket_name = {}\n\
             smtp_tlsrpt_builtin_reports = yes\n\
             smtp_tlsrpt_organization_name = Tern Test Router\n\
             smtp_tlsrpt_contact_info = tlsrpt-admin@client.test\n\
             smtp_tlsrpt_report_sender = {SENDER}\n",
            ca.cert.display(),
            policy_map.display(),
            collector.sock.display()
        ),
    );

    // The deliveries.
    let rcpt = |d: &str| format!("user@{d}");
    for d in [DANE, STS, PLAIN] {
        tern.send(&rcpt(d), &format!("to {d}"));
    }
    for (d, mx, ip, want) in [
        (DANE, DANE_MX, Ipv4Addr::LOCALHOST, "status=sent"),
        (STS, MX_HOST, Ipv4Addr::LOCALHOST, "status=sent"),
        (PLAIN, PLAIN_MX, plain_ip, "status=deferred"),
    ] {
        let status = tern.wait_status(&rcpt(d));
        assert!(
            status.contains(want) && status.contains(&format!("relay={mx}[{ip}]:{port}")),
            "{d}: {status}\n{}",
            tern.diagnostics()
        );
    }
    pf.wait_for_message(2, WAIT);
    // DANE and MTA-STS sessions were authenticated (Verified, not
    // Untrusted), so the policies were in force.
    for mx in [DANE_MX, MX_HOST] {
        tern.wait_line(&["Verified TLS connection established to", &format!("{mx}[")]);
    }
    sts.assert_fetches(1);

    // The seed's lines, byte for byte, one per new connection.
    tern.wait_nth_line(&["TLSRPT: status="], 3);
    let mut lines: Vec<String> = tern
        .log()
        .lines()
        .filter_map(|l| l.find("TLSRPT: status=").map(|at| l[at..].to_string()))
        .collect();
    lines.sort();
    let mut want = vec![
        format!("TLSRPT: status=success, domain={DANE}, receiving_mx={DANE_MX}[127.0.0.1]"),
        format!("TLSRPT: status=success, domain={STS}, receiving_mx={MX_HOST}[127.0.0.1]"),
        format!(
            "TLSRPT: status=failure, domain={PLAIN}, receiving_mx={PLAIN_MX}[{plain_ip}], \
             failure_type=starttls_not_supported"
        ),
    ];
    want.sort();
    assert_eq!(lines, want, "{}", tern.diagnostics());

    // tern's counters, and the collector's tables: the same counts and
    // result codes per domain.
    let show = tern.command(&["tlsrpt", "show"]);
    assert!(show.success(), "{}", show.combined());
    let ours = show_counts(&show.stdout);
    let mut expected = vec![
        format!("F|{PLAIN}|starttls-not-supported|1"),
        format!("R|{DANE}|tlsa|1|0"),
        format!("R|{PLAIN}|no-policy-found|0|1"),
        format!("R|{STS}|sts|1|0"),
    ];
    expected.sort();
    assert_eq!(ours, expected, "tern tlsrpt show:\n{}", show.stdout);
    assert!(
        show.stdout.contains(&format!(
            "starttls-not-supported x1: {PLAIN_MX}[{plain_ip}]"
        )),
        "{}",
        show.stdout
    );
    // The last datagram went out with its delivery run; give it a moment
    // before the collector commits and stops.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!tern.log().contains("Could not report"), "{}", tern.log());
    let (results, failures) = collector.rows();
    assert_eq!(
        collector_counts(&results, &failures),
        ours,
        "collector: {results:?} {failures:?}"
    );

    // The reports.
    let before = now();
    let send = tern.command(&["tlsrpt", "send", "--now"]);
    assert!(send.success(), "{}", send.combined());
    let after = now();
    let sent = (before, after);
    // The fields of `policies[0]` besides `policy.policy-domain`.
    let expect = |d: &str| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, x: String| v.push((k.to_string(), x));
        let (kind, strings, mx, ok, failed) = match d {
            DANE => ("tlsa", vec![tlsa.to_ascii_uppercase()], vec![], 1, 0),
            STS => (
                "sts",
                vec![
                    "version: STSv1".to_string(),
                    "mode: enforce".into(),
                    format!("mx: {MX_HOST}"),
                    "max_age: 86400".into(),
                ],
                vec![MX_HOST],
                1,
                0,
            ),
            _ => ("no-policy-found", vec![], vec![], 0, 1),
        };
        put("policy.policy-type", q(kind));
        for (i, s) in strings.iter().enumerate() {
            put(&format!("policy.policy-string[{i}]"), q(s));
        }
        for (i, m) in mx.iter().enumerate() {
            put(&format!("policy.mx-host[{i}]"), q(m));
        }
        put("summary.total-successful-session-count", ok.to_string());
        put("summary.total-failure-session-count", failed.to_string());
        if d == PLAIN {
            let fd = "failure-details[0]";
            put(&format!("{fd}.result-type"), q("starttls-not-supported"));
            put(&format!("{fd}.sending-mta-ip"), q("127.0.0.1"));
            put(&format!("{fd}.receiving-mx-hostname"), q(PLAIN_MX));
            // The name in the server's greeting (the Postfix is MX_HOST).
            put(&format!("{fd}.receiving-mx-helo"), q(MX_HOST));
            put(&format!("{fd}.receiving-ip"), q(&plain_ip.to_string()));
            put(&format!("{fd}.failed-session-count"), "1".into());
            // Postfix gives no reason here; tern's own words (optional
            // in RFC 8460 §4.4).
            put(
                &format!("{fd}.failure-reason-code"),
                q("STARTTLS not offered"),
            );
        }
        v
    };

    // HTTPS: one POST per domain.
    let mut posted = BTreeMap::new();
    for _ in 0..3 {
        let req = posts
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("missing POST\n{}", tern.diagnostics()));
        let h = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&req[..h]).to_string();
        assert!(head.starts_with("POST /tlsrpt HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains("Content-Type: application/tlsrpt+gzip"),
            "{head}"
        );
        let json = gunzip(&req[h + 4..]);
        let domain = json_fields(&json)
            .remove("policies[0].policy.policy-domain")
            .unwrap_or_default();
        assert!(
            posted
                .insert(domain.trim_matches('"').to_string(), json)
                .is_none(),
            "two POSTs for {domain}"
        );
    }
    for d in [DANE, STS, PLAIN] {
        let json = posted
            .get(d)
            .unwrap_or_else(|| panic!("no POST for {d}: {posted:?}"));
        check_report(json, d, &expect(d), sent, "HTTPS");
        tern.wait_line(&[
            "TLSRPT: report",
            &format!("domain={d} posted to"),
            "HTTP 200",
        ]);
    }

    // Mail: one message per domain in the Maildir of reports.test.
    let msgs = pf.wait_for_message(5, WAIT);
    let mut mailed = BTreeMap::new();
    for m in &msgs {
        let text = String::from_utf8_lossy(m).to_string();
        let Some(d) = text
            .lines()
            .find_map(|l| l.strip_prefix("TLS-Report-Domain: "))
        else {
            continue;
        };
        let d = d.trim().to_string();
        for needle in [
            "TLS-Report-Submitter: client.test".to_string(),
            "TLS-Required: No".into(),
            format!("To: tlsrpt@{REPORTS}"),
            format!("From: {SENDER}"),
            format!("Subject: Report Domain: {d}"),
            "multipart/report; report-type=\"tlsrpt\"".into(),
            "Content-Type: application/tlsrpt+gzip".into(),
            format!("filename=\"client.test!{d}!"),
        ] {
            assert!(text.contains(&needle), "{needle} missing in\n{text}");
        }
        let part = text
            .split("Content-Type: application/tlsrpt+gzip")
            .nth(1)
            .unwrap();
        let b64: String = part
            .split("\r\n\r\n")
            .nth(1)
            .or_else(|| part.split("\n\n").nth(1))
            .unwrap()
            .lines()
            .take_while(|l| !l.trim().is_empty() && !l.starts_with("--"))
            .collect();
        let json = gunzip(&tern::base64::decode(b64.trim()).unwrap());
        assert!(
            mailed.insert(d.clone(), json).is_none(),
            "two mails for {d}"
        );
    }
    let mut domains = vec![DANE, STS, PLAIN];
    domains.sort();
    assert_eq!(
        mailed.keys().map(String::as_str).collect::<Vec<_>>(),
        domains,
        "{}",
        tern.diagnostics()
    );
    for d in [DANE, STS, PLAIN] {
        check_report(&mailed[d], d, &expect(d), sent, "mail");
        // The same report by both ways.
        assert_eq!(mailed[d], posted[d], "{d}: mail and POST differ");
    }
    // The report mails' own sessions are not counted (RFC 8460 §3; no
    // record for reports.test anyway), and the period began anew.
    let show = tern.command(&["tlsrpt", "show"]);
    assert!(
        show.stdout.contains("no TLS sessions counted"),
        "{}",
        show.stdout
    );
    eprintln!("tlsrpt_e2e took {:?}", t0.elapsed());
}
