//! What `Spool::create` heap-allocates for a large envelope: 1000
//! recipients at the SMTP path limit (254 bytes), each with a 261-byte
//! ORCPT, the worst case `smtpd_recipient_limit = 1000` admits. The head is
//! encoded from the borrowed recipients straight into the fixed write
//! buffer, so the peak must not grow with the recipient list (docs/design.md,
//! "Per-session memory, worst case", gives the arithmetic).

mod alloc_common;

use alloc_common::Counting;

use tern::queue::spool::WRITE_BUF;
use tern::queue::{NewMessage, Recipient, Spool};

#[global_allocator]
static A: Counting = Counting;

fn recipients(n: usize) -> Vec<Recipient> {
    (0..n)
        .map(|i| {
            let address = format!("{i:04}{}@{}.example", "l".repeat(60), "d".repeat(181));
            assert_eq!(address.len(), 254);
            Recipient {
                orcpt: Some(format!("rfc822;{address}")),
                address,
            }
        })
        .collect()
}

/// Heap bytes above the level at entry: (peak during `f`, held after it).
fn measure<T>(f: impl FnOnce() -> T) -> (isize, isize, T) {
    let m = alloc_common::mark();
    let out = f();
    (m.peak(), m.held(), out)
}

#[test]
fn create_does_not_copy_the_recipient_list() {
    let dir = std::env::temp_dir().join(format!("tern-spool-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spool = Spool::open(&dir).unwrap();
    let mut peaks = Vec::new();
    for n in [1, 1000] {
        let rcpts = recipients(n);
        let listed: usize = rcpts
            .iter()
            .map(|r| r.address.len() + r.orcpt.as_ref().map_or(0, String::len))
            .sum();
        let msg = NewMessage {
            sender: "root@nas.example",
            recipients: &rcpts,
            arrival: 1_700_000_000,
            client: "localhost[127.0.0.1]",
            flags: Default::default(),
            size_limit: 0,
            deferred: false,
        };
        let (peak, held, inc) = measure(|| spool.create(&msg).unwrap());
        eprintln!(
            "{n} recipients ({listed} B of addresses): create peaks at {peak} B, holds {held} B"
        );
        // The write buffer and a few paths and names, whatever the list.
        assert!(held >= WRITE_BUF as isize, "{held}");
        assert!(
            peak < 2 * WRITE_BUF as isize,
            "{n} recipients: peak {peak} B"
        );
        peaks.push(peak);
        drop(inc);
    }
    // Not even a per-recipient allocation: 1000 recipients cost what one
    // does (give or take the temporary file name's length).
    assert!(peaks[0].abs_diff(peaks[1]) < 64, "{peaks:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
