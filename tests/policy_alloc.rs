//! "Looked up without allocation" (docs/policy.md): a counting global
//! allocator shows that, once a 10,000-entry `smtp_tls_policy_maps` table
//! is loaded, `PolicyTable::get`/`lookup`, `lookup_maps` and the policy
//! decision (`policy::decide`, then the per-connection accessors delivery
//! reads) heap-allocate nothing, for an exact hit, a miss and a
//! parent-domain (`.example`) hit.

mod alloc_common;

use std::hint::black_box;

use alloc_common::Counting;

use tern::policy::table::lookup_maps;
use tern::policy::{decide, Level, NextHop, PolicyDefaults, PolicyInputs, PolicyTable};

#[global_allocator]
static A: Counting = Counting;

/// Allocations (and reallocations) made on this thread while `f` runs.
fn allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let m = alloc_common::mark();
    let out = f();
    (m.allocations(), out)
}

/// 10,000 entries: exact domains, parent-domain keys and bracketed next
/// hops, with attributes at several levels.
fn table_text() -> String {
    let mut t = String::new();
    for i in 0..10_000 {
        match i % 4 {
            0 => t.push_str(&format!(
                "d{i}.example secure match=.d{i}.example:nexthop protocols=>=TLSv1.2\n"
            )),
            1 => t.push_str(&format!(".p{i}.example verify ciphers=high exclude=aRSA\n")),
            2 => t.push_str(&format!(
                "[mx{i}.example]:587 encrypt connection_reuse=no\n"
            )),
            _ => t.push_str(&format!("e{i}.example may servername=hostname\n")),
        }
    }
    t
}

#[test]
fn lookup_and_decision_do_not_allocate() {
    let text = table_text();
    let (table, report) = PolicyTable::parse(text.as_bytes(), "tls_policy").unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(table.len(), 10_000);
    let tables = vec![table];
    let defaults = PolicyDefaults::POSTFIX;

    // (next hop, exact key or None for a miss, expected level)
    let cases: [(&str, Option<&str>, Level); 4] = [
        ("d4000.example", Some("d4000.example"), Level::Secure),
        (
            "[mx4002.example]:587",
            Some("[mx4002.example]:587"),
            Level::Encrypt,
        ),
        (
            "mail.host.p4001.example",
            Some(".p4001.example"),
            Level::Verify,
        ),
        ("nowhere.invalid", None, Level::May),
    ];
    for (hop_text, key, level) in cases {
        let nexthop = NextHop::parse(hop_text).unwrap();
        let (n, hit) = allocations(|| black_box(&tables[0]).lookup(black_box(hop_text)));
        assert_eq!(n, 0, "PolicyTable::lookup({hop_text}) allocated");
        assert_eq!(hit.map(|e| e.key()), key);
        if let Some(k) = key {
            let (n, exact) = allocations(|| black_box(&tables[0]).get(black_box(k)));
            assert_eq!(n, 0, "PolicyTable::get({k}) allocated");
            assert_eq!(exact.map(|e| e.key()), Some(k));
        }
        let (n, hit) = allocations(|| lookup_maps(black_box(&tables), black_box(hop_text)));
        assert_eq!(n, 0, "lookup_maps({hop_text}) allocated");
        assert_eq!(hit.map(|e| e.key()), key);

        let inputs = PolicyInputs {
            nexthop,
            tables: &tables,
            defaults: &defaults,
        };
        let (n, policy) = allocations(|| decide(black_box(&inputs)));
        assert_eq!(n, 0, "decide({hop_text}) allocated");
        let policy = policy.unwrap();
        assert_eq!(policy.level, level);
        // What delivery reads from the decision for each connection.
        let (n, summary) = allocations(|| {
            let versions = policy.protocols_at(policy.level);
            let excluded = policy.excluded_suites_at(policy.level);
            let names = policy.cert_names("mx.example").count();
            let sni = policy.sni("mx.example").map(str::len);
            (versions, excluded, names, sni, policy.connection_reuse)
        });
        assert_eq!(n, 0, "policy accessors for {hop_text} allocated");
        black_box(summary);
    }
    // The counter is live: a heap allocation in the measured closure shows.
    let (n, _) = allocations(|| black_box(String::from("x")));
    assert!(n >= 1, "the counting allocator saw no allocation");
}
