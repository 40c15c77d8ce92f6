//! Policy table load and lookup figures for docs/policy.md.
//!
//! `cargo bench --bench policy_lookup` (release profile). Generates 10,000
//! entries of the shapes seen in real tables, then reports load time, the
//! table's memory by its own accounting (arena + index), and nanoseconds
//! per lookup for hits, misses and parent-domain hits. All loops are
//! bounded by a count.

use std::hint::black_box;
use std::time::Instant;

use tern::policy::table::PolicyTable;

const ENTRIES: usize = 10_000;
const ROUNDS: usize = 20;

fn generate() -> String {
    let mut s = String::with_capacity(ENTRIES * 48);
    for i in 0..ENTRIES {
        let line = match i % 5 {
            0 => format!(
                "domain{i}.example secure match=mx.provider{}.example\n",
                i % 97
            ),
            1 => format!(".sub{i}.example verify match=hostname:.sub{i}.example\n"),
            2 => format!("[mx{i}.example]:587 encrypt protocols=>=TLSv1.2\n"),
            3 => format!("domain{i}.example dane-only\n"),
            _ => format!("domain{i}.example may\n"),
        };
        s.push_str(&line);
    }
    s
}

fn time_lookups(t: &PolicyTable, keys: &[String], expect_hit: bool) -> f64 {
    let start = Instant::now();
    let mut found = 0usize;
    for _ in 0..ROUNDS {
        for k in keys {
            if t.lookup(black_box(k)).is_some() {
                found += 1;
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (ROUNDS * keys.len()) as f64;
    let expected = if expect_hit { ROUNDS * keys.len() } else { 0 };
    assert_eq!(found, expected, "lookup results changed");
    ns
}

fn main() {
    let text = generate();
    let loads = 5;
    let mut best = f64::MAX;
    let mut table = None;
    for _ in 0..loads {
        let start = Instant::now();
        let t = match PolicyTable::parse(black_box(text.as_bytes()), "bench") {
            Ok((t, _)) => t,
            Err(r) => panic!("bench table does not load: {:?}", r.errors.first()),
        };
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
        table = Some(t);
    }
    let Some(t) = table else { return };
    assert_eq!(t.len(), ENTRIES);

    let hits: Vec<String> = (0..ENTRIES)
        .filter(|i| i % 5 != 1)
        .map(|i| match i % 5 {
            2 => format!("[mx{i}.example]:587"),
            _ => format!("domain{i}.example"),
        })
        .collect();
    let misses: Vec<String> = (0..hits.len())
        .map(|i| format!("nomatch{i}.example.org"))
        .collect();
    let parents: Vec<String> = (0..ENTRIES)
        .filter(|i| i % 5 == 1)
        .map(|i| format!("mx.a.sub{i}.example"))
        .collect();

    println!(
        "policy table: {ENTRIES} entries, source {} bytes",
        text.len()
    );
    println!("load (parse + sort + pack), best of {loads}: {best:.2} ms");
    println!(
        "memory: {} bytes total = arena {} + index {} x {} bytes",
        t.bytes(),
        t.arena_bytes(),
        t.len(),
        PolicyTable::slot_size()
    );
    println!(
        "lookup hit:           {:.0} ns",
        time_lookups(&t, &hits, true)
    );
    println!(
        "lookup miss:          {:.0} ns",
        time_lookups(&t, &misses, false)
    );
    println!(
        "lookup parent-domain: {:.0} ns",
        time_lookups(&t, &parents, true)
    );
}
