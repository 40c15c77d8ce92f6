//! Retry timing for the queue manager (its concurrency is
//! `concurrency`'s). Sans-I/O: times are Unix seconds passed in by the
//! driver.

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
}
