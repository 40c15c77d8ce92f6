//! Retry timing and concurrency bookkeeping for the queue manager. Sans-I/O:
//! times are Unix seconds passed in by the driver.

use std::collections::HashMap;
use std::time::Duration;

/// When to try again after `attempts` failed attempts (1 = the first
/// failure): `minimal_backoff_time` doubled per attempt, capped at
/// `maximal_backoff_time`, spread by up to 1/8 with a per-message value so
/// that a queue that filled while the WAN was down does not retry all at
/// the same second.
pub fn backoff(attempts: u32, min: Duration, max: Duration, spread_seed: u64) -> Duration {
    let min = min.as_secs().max(1);
    let max = max.as_secs().max(min);
    let exp = attempts.saturating_sub(1).min(32);
    let base = min.saturating_mul(1u64 << exp).min(max);
    let jitter = if base >= 8 {
        spread_seed % (base / 8)
    } else {
        0
    };
    Duration::from_secs(base.saturating_sub(jitter).max(min))
}

/// Whether a message that arrived at `arrival` has outlived
/// `maximal_queue_lifetime` at `now` (a lifetime of zero means: one try only).
pub fn expired(arrival: u64, now: u64, lifetime: Duration) -> bool {
    now.saturating_sub(arrival) >= lifetime.as_secs()
}

/// A stable small number from a queue id, for `backoff`'s spread.
pub fn seed(queue_id: &str) -> u64 {
    // FNV-1a: stable across runs and platforms, which a HashMap's hasher is not.
    queue_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Counts sessions per destination and in total, and remembers
/// destinations that just failed so that the rest of a queue run defers
/// their mail without hammering a dead host (Postfix's "delivery
/// temporarily suspended").
#[derive(Debug, Default)]
pub struct Slots {
    per_dest: HashMap<String, u32>,
    total: u32,
    dead: HashMap<String, (u64, String)>,
}

impl Slots {
    /// Tries to take a slot for `dest`; fails when the destination or the
    /// total limit is reached.
    pub fn acquire(&mut self, dest: &str, per_dest_limit: u32, total_limit: u32) -> bool {
        let n = self.per_dest.get(dest).copied().unwrap_or(0);
        if n >= per_dest_limit.max(1) || self.total >= total_limit.max(1) {
            return false;
        }
        self.per_dest.insert(dest.to_string(), n + 1);
        self.total += 1;
        true
    }

    /// Returns a slot taken with `acquire`.
    pub fn release(&mut self, dest: &str) {
        if let Some(n) = self.per_dest.get_mut(dest) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_dest.remove(dest);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// Sessions open in total.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Marks `dest` as unreachable until `until`, with the reason to log.
    pub fn mark_dead(&mut self, dest: &str, until: u64, reason: &str) {
        self.dead
            .insert(dest.to_string(), (until, reason.to_string()));
    }

    /// Whether `dest` is marked dead at `now`; the reason if so.
    pub fn dead_reason(&mut self, dest: &str, now: u64) -> Option<&str> {
        if self.dead.get(dest).is_some_and(|(until, _)| *until <= now) {
            self.dead.remove(dest);
        }
        self.dead.get(dest).map(|(_, why)| why.as_str())
    }

    /// Forgets every dead mark (`tern flush`, or the WAN came back).
    pub fn revive_all(&mut self) {
        self.dead.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let (min, max) = (Duration::from_secs(300), Duration::from_secs(4000));
        let got: Vec<u64> = (1..=6).map(|a| backoff(a, min, max, 0).as_secs()).collect();
        assert_eq!(got, vec![300, 600, 1200, 2400, 4000, 4000]);
        // Spread stays within 1/8 below the base and never under the minimum.
        for s in 0..100 {
            let d = backoff(2, min, max, seed(&format!("Q{s}"))).as_secs();
            assert!((525..=600).contains(&d), "{d}");
        }
        assert_eq!(backoff(1000, min, max, 0).as_secs(), 4000);
    }

    #[test]
    fn lifetime() {
        let five_days = Duration::from_secs(5 * 86400);
        assert!(!expired(1000, 1000 + 5 * 86400 - 1, five_days));
        assert!(expired(1000, 1000 + 5 * 86400, five_days));
        assert!(expired(1000, 1000, Duration::ZERO));
    }

    #[test]
    fn slots_limit_per_destination_and_total() {
        let mut s = Slots::default();
        assert!(s.acquire("a", 2, 3));
        assert!(s.acquire("a", 2, 3));
        assert!(!s.acquire("a", 2, 3));
        assert!(s.acquire("b", 2, 3));
        assert!(!s.acquire("c", 2, 3));
        s.release("a");
        assert!(s.acquire("c", 2, 3));
        assert_eq!(s.total(), 3);
        s.release("nobody");
        assert_eq!(s.total(), 3);
    }

    #[test]
    fn dead_destinations_expire() {
        let mut s = Slots::default();
        s.mark_dead("mx", 100, "connect to mx[192.0.2.1]:25: Connection refused");
        assert!(s.dead_reason("mx", 50).unwrap().contains("refused"));
        assert!(s.dead_reason("mx", 100).is_none());
        s.mark_dead("mx", 100, "x");
        s.revive_all();
        assert!(s.dead_reason("mx", 0).is_none());
    }
}
