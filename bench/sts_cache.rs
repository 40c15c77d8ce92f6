//! Memory of the MTA-STS policy cache (issue 11: 1,000 cached policies),
//! for docs/mta-sts.md.
//!
//! `cargo bench --bench sts_cache`. Fills an in-memory cache (no flash
//! directory) of capacity 1,000 with 1,000 policies of a realistic shape
//! (`enforce`, three `mx` patterns of 20-30 bytes, one-week `max_age`) and
//! reports the heap the cache holds, counted by a global allocator, per
//! policy and in all. A second figure with the largest policy tern accepts
//! (32 patterns of 255 bytes) bounds the worst case. Bounded loops only.

#[path = "../tests/alloc_common/mod.rs"]
mod alloc_common;

use alloc_common::{mark, Counting};
use tern::mtasts::{cache::Cache, Mode, Policy, PolicyId};

#[global_allocator]
static A: Counting = Counting;

const POLICIES: usize = 1_000;

fn fill(patterns: impl Fn(usize) -> Vec<String>) -> (isize, usize) {
    let m = mark();
    let mut cache = Cache::new(POLICIES, None);
    for i in 0..POLICIES {
        let p = patterns(i);
        let refs: Vec<&str> = p.iter().map(String::as_str).collect();
        let policy = match Policy::from_parts(Mode::Enforce, 604_800, &refs) {
            Ok(p) => p,
            Err(e) => panic!("policy {i}: {e}"),
        };
        let id = PolicyId::parse(&format!("20261207T{i:06}")).unwrap_or_else(|| panic!("id {i}"));
        cache.store(&format!("domain{i:04}.example"), id, policy, 1_765_000_000);
    }
    let bytes = m.held();
    let n = cache.len();
    drop(cache);
    (bytes, n)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("sts_cache: skipped (run with cargo bench)");
        return;
    }
    let (bytes, n) = fill(|i| {
        vec![
            format!("mx1.domain{i:04}.example"),
            format!("mx2.domain{i:04}.example"),
            "*.mail.provider.example".to_string(),
        ]
    });
    println!(
        "sts_cache: {n} typical policies: {bytes} B held ({:.0} B per policy)",
        bytes as f64 / n as f64
    );
    let (bytes, n) = fill(|i| {
        (0..tern::mtasts::policy::MAX_MX)
            .map(|k| {
                let label = "a".repeat(60);
                format!("m{k}.d{i}.{label}.{label}.{label}.example")
            })
            .collect()
    });
    println!(
        "sts_cache: {n} largest policies ({} patterns): {bytes} B held ({:.0} B per policy)",
        tern::mtasts::policy::MAX_MX,
        bytes as f64 / n as f64
    );
}
