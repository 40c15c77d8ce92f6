//! Per-destination delivery concurrency: Postfix's qmgr window
//! (qmgr_queue.c, SCHEDULER_README "concurrency scheduling"), sans-I/O.
//!
//! Each destination (next hop) has a window: how many sessions may be open
//! to it at once. It starts at `initial_destination_concurrency`, grows by
//! the positive feedback of every delivery that reached the destination
//! (while the window is within `initial_destination_concurrency` of the
//! sessions actually open, so an idle destination's window does not run
//! away), shrinks by the negative feedback of every session that failed at
//! the destination level (no server took the mail: connection refused,
//! `421` greeting, lost connection), and never passes
//! `default_destination_concurrency_limit`. Failed sessions also add
//! `1/window` to the failed-cohort count: when it reaches
//! `default_destination_concurrency_failed_cohort_limit` (one whole
//! window's worth of failures without a success in between) the
//! destination is dead: its mail is deferred without connecting ("delivery
//! temporarily suspended") until `minimal_backoff_time` has passed or a
//! session still open delivers something. A destination with no session
//! open is forgotten, as Postfix frees an empty in-core queue: its next
//! mail starts again at the initial window.
//!
//! Times are Unix seconds passed in by the driver.

use std::collections::HashMap;

/// How a feedback value scales with the window (`1/concurrency` and
/// `1/sqrt_concurrency` in Postfix's syntax, or a constant).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    Constant,
    PerWindow,
    PerSqrtWindow,
}

/// A `*_concurrency_{positive,negative}_feedback` value: how much one
/// event moves the window, in whole sessions per event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feedback {
    base: f64,
    scale: Scale,
}

impl Feedback {
    /// One session per event (Postfix 3.7's default for both directions).
    pub const ONE: Feedback = Feedback {
        base: 1.0,
        scale: Scale::Constant,
    };

    /// Parses Postfix's syntax: a number (`1`, `0.5`), a fraction (`1/8`)
    /// or a number over `concurrency` / `sqrt_concurrency`; the value must
    /// lie in 0..=1, as Postfix requires.
    pub fn parse(s: &str) -> Result<Feedback, String> {
        let bad = || {
            format!(
                "\"{s}\": expected a number from 0 to 1, N/M, N/concurrency or N/sqrt_concurrency"
            )
        };
        let s = s.trim();
        let (num, denom) = match s.split_once('/') {
            Some((n, d)) => (n.trim(), Some(d.trim())),
            None => (s, None),
        };
        let num = decimal(num).ok_or_else(bad)?;
        let (base, scale) = match denom {
            None => (num, Scale::Constant),
            Some("concurrency") => (num, Scale::PerWindow),
            Some("sqrt_concurrency") => (num, Scale::PerSqrtWindow),
            Some(d) => {
                let d = decimal(d).ok_or_else(bad)?;
                if d < 1.0 / f64::from(i32::MAX) {
                    return Err(bad());
                }
                (num / d, Scale::Constant)
            }
        };
        if !(0.0..=1.0).contains(&base) {
            return Err(bad());
        }
        Ok(Feedback { base, scale })
    }

    /// The feedback at `window` (Postfix's QMGR_FEEDBACK_VAL).
    fn value(&self, window: u32) -> f64 {
        let w = f64::from(window.max(1));
        match self.scale {
            Scale::Constant => self.base,
            Scale::PerWindow => self.base / w,
            Scale::PerSqrtWindow => self.base / w.sqrt(),
        }
    }
}

/// A plain decimal number (`1`, `0.125`, `.5`), up to nine digits on
/// each side of the point. Integer arithmetic: Rust's float parser would
/// add kilobytes to a binary that counts them (Postfix's `%lf` also takes
/// exponents, which no feedback value needs).
fn decimal(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !digits(int) || !digits(frac) {
        return None;
    }
    let whole = int.parse::<u32>().unwrap_or(0);
    let part = frac.parse::<u32>().unwrap_or(0);
    let scale = 10u32.pow(u32::try_from(frac.len()).unwrap_or(0));
    Some(f64::from(whole) + f64::from(part) / f64::from(scale))
}

/// The transport's concurrency settings (`smtp_*`, defaulting to the
/// `default_destination_concurrency_*` and `initial_destination_concurrency`
/// values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The window of a destination tern has no state for; never above
    /// `limit` (Postfix lowers it to the limit too).
    pub initial: u32,
    /// The ceiling of every window (0: none, as in Postfix).
    pub limit: u32,
    /// Added per delivery that reached the destination.
    pub positive: Feedback,
    /// Taken per session that failed at the destination level.
    pub negative: Feedback,
    /// Failed cohorts after which the destination is dead (0: never).
    pub cohort_limit: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            initial: 5,
            limit: 20,
            positive: Feedback::ONE,
            negative: Feedback::ONE,
            cohort_limit: 1,
        }
    }
}

impl Limits {
    fn initial(&self) -> u32 {
        let i = self.initial.max(1);
        if self.limit > 0 {
            i.min(self.limit)
        } else {
            i
        }
    }
}

/// One destination's state (Postfix's QMGR_QUEUE, the parts that count).
#[derive(Debug, Clone, PartialEq)]
struct Window {
    window: u32,
    success: f64,
    failure: f64,
    fail_cohorts: f64,
    /// Sessions open.
    busy: u32,
    /// Dead until this time, and why.
    dead: Option<(u64, String)>,
}

/// What a positive or negative feedback did, for the debug log line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// The window before.
    pub before: u32,
    /// The window after.
    pub after: u32,
    /// The destination was declared dead just now.
    pub died: bool,
    /// The destination came back from dead (a delivery got through).
    pub revived: bool,
}

/// The windows of every destination with a session open or a dead mark,
/// and the total of open sessions.
#[derive(Debug, Default)]
pub struct Windows {
    dests: HashMap<String, Window>,
    total: u32,
}

impl Windows {
    fn entry(&mut self, dest: &str, limits: &Limits) -> &mut Window {
        self.dests
            .entry(dest.to_string())
            .or_insert_with(|| Window {
                window: limits.initial(),
                success: 0.0,
                failure: 0.0,
                fail_cohorts: 0.0,
                busy: 0,
                dead: None,
            })
    }

    /// The window of `dest` now (the initial one when tern has no state).
    pub fn window(&self, dest: &str, limits: &Limits) -> u32 {
        self.dests.get(dest).map_or(limits.initial(), |w| w.window)
    }

    /// Sessions open to `dest`.
    pub fn busy(&self, dest: &str) -> u32 {
        self.dests.get(dest).map_or(0, |w| w.busy)
    }

    /// Sessions open in total.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// How many more sessions `dest` may have now: its window less those
    /// open, within what `total_limit` leaves; 0 when it is dead.
    pub fn room(&mut self, dest: &str, limits: &Limits, total_limit: u32, now: u64) -> u32 {
        if self.dead_reason(dest, now).is_some() {
            return 0;
        }
        let free_total = total_limit.max(1).saturating_sub(self.total);
        let w = self.window(dest, limits);
        w.saturating_sub(self.busy(dest)).min(free_total)
    }

    /// Takes a session slot for `dest`; false when its window or the
    /// total is full, or it is dead.
    pub fn acquire(&mut self, dest: &str, limits: &Limits, total_limit: u32, now: u64) -> bool {
        if self.room(dest, limits, total_limit, now) == 0 {
            return false;
        }
        self.entry(dest, limits).busy += 1;
        self.total += 1;
        true
    }

    /// Returns a slot taken with [`Windows::acquire`]. A destination left
    /// with no session and no dead mark is forgotten.
    pub fn release(&mut self, dest: &str) {
        let Some(w) = self.dests.get_mut(dest) else {
            return;
        };
        if w.busy == 0 {
            return;
        }
        w.busy -= 1;
        self.total = self.total.saturating_sub(1);
        if w.busy == 0 && w.dead.is_none() {
            self.dests.remove(dest);
        }
    }

    /// A delivery over a session to `dest` got answers from a server
    /// (Postfix's qmgr_queue_unthrottle): the window grows toward the
    /// limit, and a dead destination comes back.
    pub fn positive(&mut self, dest: &str, limits: &Limits) -> Change {
        let initial = limits.initial();
        let w = self.entry(dest, limits);
        let before = w.window;
        // Don't restart the negative hysteresis with every success: only
        // a window increase does (below).
        w.fail_cohorts = 0.0;
        if w.dead.take().is_some() {
            // Back from the dead: the best concurrency is anyone's guess.
            w.window = if w.busy > 0 { w.busy } else { initial };
            w.success = 0.0;
            w.failure = 0.0;
            return Change {
                before,
                after: w.window,
                died: false,
                revived: true,
            };
        }
        let below_limit = limits.limit == 0 || w.window < limits.limit;
        // Keep the window within `initial` of the sessions actually open,
        // or negative feedback could not catch up with it.
        if below_limit && w.window < w.busy + initial {
            let fb = limits.positive.value(w.window);
            w.success += fb;
            // Overshoot (feedback > 1, rounding): Postfix adds half a step.
            while w.success + fb / 2.0 >= 1.0 {
                w.window += 1;
                w.success -= 1.0;
                w.failure = 0.0;
            }
            if limits.limit > 0 && w.window > limits.limit {
                w.window = limits.limit;
            }
        }
        Change {
            before,
            after: w.window,
            died: false,
            revived: false,
        }
    }

    /// A session to `dest` failed at the destination level (Postfix's
    /// qmgr_queue_throttle): the window shrinks, and a whole failed cohort
    /// makes the destination dead until `until`, with `reason` for the
    /// mail it defers meanwhile. Nothing changes for a destination that is
    /// dead already.
    pub fn negative(&mut self, dest: &str, limits: &Limits, until: u64, reason: &str) -> Change {
        let w = self.entry(dest, limits);
        let before = w.window;
        if w.dead.is_some() {
            return Change {
                before,
                after: before,
                died: false,
                revived: false,
            };
        }
        w.fail_cohorts += 1.0 / f64::from(w.window.max(1));
        let died = limits.cohort_limit > 0 && w.fail_cohorts >= f64::from(limits.cohort_limit);
        let fb = limits.negative.value(w.window);
        w.failure -= fb;
        // Even at 1 the negative cycle goes on, so that it can cancel
        // positive feedback.
        while w.failure - fb / 2.0 < 0.0 {
            w.window = w.window.saturating_sub(1);
            w.success = 0.0;
            w.failure += 1.0;
        }
        w.window = w.window.max(1);
        if died {
            w.dead = Some((until, reason.to_string()));
        }
        Change {
            before,
            after: w.window,
            died,
            revived: false,
        }
    }

    /// Whether `dest` is dead at `now`, and why. A mark that has run out
    /// lets the destination try again, at the sessions still open or the
    /// initial window (Postfix's unthrottle timer).
    pub fn dead_reason(&mut self, dest: &str, now: u64) -> Option<&str> {
        let w = self.dests.get_mut(dest)?;
        if w.dead.as_ref().is_some_and(|(until, _)| *until <= now) {
            w.dead = None;
            w.fail_cohorts = 0.0;
            w.success = 0.0;
            w.failure = 0.0;
            if w.busy > 0 {
                w.window = w.busy;
            } else {
                self.dests.remove(dest);
                return None;
            }
        }
        self.dests
            .get(dest)
            .and_then(|w| w.dead.as_ref())
            .map(|(_, why)| why.as_str())
    }

    /// Forgets every dead mark (`tern flush`).
    pub fn revive_all(&mut self) {
        self.dests.retain(|_, w| {
            w.dead = None;
            w.fail_cohorts = 0.0;
            w.busy > 0
        });
    }

    /// Postfix's `destination_concurrency_feedback_debug` line for `dest`.
    pub fn debug_line(&self, func: &str, dest: &str, limits: &Limits) -> String {
        let (window, success, failure, cohorts) = self
            .dests
            .get(dest)
            .map_or((limits.initial(), 0.0, 0.0, 0.0), |w| {
                (w.window, w.success, w.failure, w.fail_cohorts)
            });
        format!(
            "{func}: queue {dest}: limit {} window {window} success {} failure {} fail_cohorts {}",
            limits.limit,
            fmt_g(success),
            fmt_g(failure),
            fmt_g(cohorts)
        )
    }
}

/// How many of a destination's `jobs` waiting messages one new session
/// takes: they are spread over every session the limit allows (the total
/// cap when that is lower, or when there is no limit), at least one each.
/// A session started below the limit thus leaves the rest uncovered, for
/// the sessions the window opens as deliveries succeed; a large backlog
/// still goes out many messages per connection.
pub fn share_size(jobs: usize, limit: u32, total: u32) -> usize {
    let ceiling = if limit == 0 { total } else { limit.min(total) };
    let ceiling = usize::try_from(ceiling.max(1)).unwrap_or(1);
    jobs.div_ceil(ceiling).max(1)
}

/// A number as C's `%g` prints it (six significant digits, no trailing
/// zeros), for log lines that match Postfix's. Integer digits: Rust's
/// float formatting would add tens of kilobytes to the binary.
fn fmt_g(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let mut m = v.abs();
    let mut exp = 0i32;
    while m >= 10.0 && exp < 400 {
        m /= 10.0;
        exp += 1;
    }
    while m < 1.0 && exp > -400 {
        m *= 10.0;
        exp -= 1;
    }
    // Six significant digits, 100000..=999999 after the carry.
    let mut digits = (m * 100_000.0).round() as u64;
    if digits >= 1_000_000 {
        digits /= 10;
        exp += 1;
    }
    let d = digits.to_string();
    let sign = if v < 0.0 { "-" } else { "" };
    let point = |int: &str, frac: &str| {
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            int.to_string()
        } else {
            format!("{int}.{frac}")
        }
    };
    if (-4..6).contains(&exp) {
        let body = if exp >= 0 {
            let at = usize::try_from(exp + 1).unwrap_or(1);
            point(&d[..at], &d[at..])
        } else {
            let zeros = "0".repeat(usize::try_from(-exp - 1).unwrap_or(0));
            point("0", &format!("{zeros}{d}"))
        };
        return format!("{sign}{body}");
    }
    let e_sign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{}e{e_sign}{:02}", point(&d[..1], &d[1..]), exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    /// Opens `n` sessions to `dest`.
    fn open(w: &mut Windows, dest: &str, l: &Limits, n: u32) {
        for _ in 0..n {
            assert!(w.acquire(dest, l, 1000, 0), "slot {}", w.busy(dest));
        }
    }

    #[test]
    fn feedback_syntax() {
        let w = |s: &str, win| Feedback::parse(s).unwrap().value(win);
        assert_eq!(w("1", 7), 1.0);
        assert_eq!(w("0.5", 7), 0.5);
        assert_eq!(w("1/8", 7), 0.125);
        assert_eq!(w("1/concurrency", 4), 0.25);
        assert_eq!(w(" 1 / concurrency ", 4), 0.25);
        assert_eq!(w("1/sqrt_concurrency", 16), 0.25);
        assert_eq!(w(".5", 1), 0.5);
        assert_eq!(w("3/4", 1), 0.75);
        for bad in [
            "",
            ".",
            "2",
            "-1",
            "1/0",
            "x",
            "1/windows",
            "nan",
            "1/8x",
            "1e0",
            "+1",
        ] {
            assert!(Feedback::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slow_start_from_the_initial_window_to_the_limit() {
        let l = limits();
        let mut w = Windows::default();
        assert_eq!(w.window("mx", &l), 5);
        open(&mut w, "mx", &l, 5);
        assert!(!w.acquire("mx", &l, 1000, 0), "window full at 5");
        // Default feedback 1: every delivery opens the window by one,
        // while it stays within `initial` of the sessions open.
        for want in 6..=10 {
            assert_eq!(w.positive("mx", &l).after, want);
        }
        // 5 open + 5 initial: no further growth until more are open.
        assert_eq!(w.positive("mx", &l).after, 10);
        open(&mut w, "mx", &l, 5);
        for _ in 0..100 {
            w.positive("mx", &l);
            if w.room("mx", &l, 1000, 0) > 0 {
                open(&mut w, "mx", &l, 1);
            }
        }
        assert_eq!(w.window("mx", &l), 20, "the ceiling");
        assert_eq!(w.busy("mx"), 20);
        assert!(!w.acquire("mx", &l, 1000, 0));
    }

    #[test]
    fn one_over_concurrency_grows_by_one_per_window_of_successes() {
        let l = Limits {
            positive: Feedback::parse("1/concurrency").unwrap(),
            negative: Feedback::parse("1/concurrency").unwrap(),
            ..limits()
        };
        let mut w = Windows::default();
        open(&mut w, "mx", &l, 5);
        // 1/5 per success: the fifth one (4.5 of 5 plus half a step)
        // makes it 6; then 1/6 each, six more make it 7.
        let seq: Vec<u32> = (0..11).map(|_| w.positive("mx", &l).after).collect();
        assert_eq!(seq, vec![5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 7]);
        // Negative: -1/7 per failure; the window drops at once (the cycle
        // starts at failure 0) and then after a window's worth more.
        let seq: Vec<u32> = (0..8)
            .map(|_| w.negative("mx", &l, 100, "down").after)
            .collect();
        assert_eq!(seq[0], 6);
        assert!(seq.iter().all(|&x| x >= 1));
    }

    #[test]
    fn negative_feedback_shrinks_and_a_failed_cohort_kills() {
        let l = limits();
        let mut w = Windows::default();
        open(&mut w, "mx", &l, 5);
        for _ in 0..5 {
            w.positive("mx", &l);
        }
        assert_eq!(w.window("mx", &l), 10);
        // Feedback 1: the negative cycle starts at zero, so the first
        // failure takes two and each later one one; cohorts add 1/window
        // (before the cut): 1/10 + 1/8 + 1/7 + ... reaches 1 at the
        // seventh failure.
        let mut died_at = None;
        for k in 1..=10 {
            let c = w.negative("mx", &l, 500, "connect to mx: Connection refused");
            if c.died {
                died_at = Some((k, c.after));
                break;
            }
            assert_eq!(c.after, 9 - k);
        }
        assert_eq!(died_at, Some((7, 2)));
        assert_eq!(
            w.dead_reason("mx", 100),
            Some("connect to mx: Connection refused")
        );
        assert_eq!(w.room("mx", &l, 1000, 100), 0, "dead: no new session");
        // Failures while dead change nothing.
        assert!(!w.negative("mx", &l, 900, "other").died);
        assert_eq!(w.window("mx", &l), 2);
        // A success between failures restarts the cohort count.
        let mut v = Windows::default();
        open(&mut v, "b", &l, 5);
        for _ in 0..20 {
            v.negative("b", &l, 500, "x");
            v.positive("b", &l);
        }
        assert!(v.dead_reason("b", 0).is_none());
    }

    #[test]
    fn the_initial_cohort_failing_kills_at_once_with_one_over_concurrency() {
        // Postfix's documented example: 1/concurrency negative feedback, the
        // whole initial cohort of five fails: dead after the fifth.
        let l = Limits {
            negative: Feedback::parse("1/concurrency").unwrap(),
            ..limits()
        };
        let mut w = Windows::default();
        open(&mut w, "mx", &l, 5);
        let died: Vec<bool> = (0..5)
            .map(|_| w.negative("mx", &l, 300, "421 busy").died)
            .collect();
        assert_eq!(died, vec![false, false, false, false, true]);
        // The mark runs out after minimal_backoff_time: back at the
        // sessions still open (here all five).
        assert!(w.dead_reason("mx", 299).is_some());
        assert!(w.dead_reason("mx", 300).is_none());
        assert_eq!(w.window("mx", &l), 5);
        // Limit 0 for cohorts: never dead.
        let l0 = Limits {
            cohort_limit: 0,
            ..limits()
        };
        let mut v = Windows::default();
        open(&mut v, "mx", &l0, 1);
        for _ in 0..50 {
            assert!(!v.negative("mx", &l0, 300, "x").died);
        }
        assert_eq!(v.window("mx", &l0), 1, "never below one");
    }

    #[test]
    fn a_delivery_revives_a_dead_destination() {
        let l = limits();
        let mut w = Windows::default();
        open(&mut w, "mx", &l, 3);
        for _ in 0..5 {
            w.negative("mx", &l, 1000, "down");
        }
        assert!(w.dead_reason("mx", 0).is_some());
        let c = w.positive("mx", &l);
        assert!(c.revived);
        assert_eq!(c.after, 3, "the sessions still open");
        assert!(w.dead_reason("mx", 0).is_none());
    }

    #[test]
    fn idle_destinations_are_forgotten_and_dead_ones_kept() {
        let l = limits();
        let mut w = Windows::default();
        open(&mut w, "mx", &l, 2);
        for _ in 0..3 {
            w.positive("mx", &l);
        }
        assert_eq!(w.window("mx", &l), 7, "2 open + 5");
        w.release("mx");
        w.release("mx");
        assert_eq!(w.total(), 0);
        assert_eq!(w.window("mx", &l), 5, "forgotten when idle");
        open(&mut w, "mx", &l, 1);
        for _ in 0..10 {
            w.negative("mx", &l, 60, "down");
        }
        w.release("mx");
        assert!(
            w.dead_reason("mx", 10).is_some(),
            "a dead mark outlives its sessions"
        );
        assert!(w.dead_reason("mx", 60).is_none());
        assert_eq!(w.window("mx", &l), 5);
        w.release("nobody");
        assert_eq!(w.total(), 0);
    }

    #[test]
    fn ceiling_total_and_initial_above_the_limit() {
        let l = Limits {
            limit: 2,
            ..limits()
        };
        let mut w = Windows::default();
        assert_eq!(w.window("mx", &l), 2, "initial lowered to the limit");
        open(&mut w, "mx", &l, 2);
        for _ in 0..10 {
            w.positive("mx", &l);
        }
        assert_eq!(w.window("mx", &l), 2);
        // The total cap across destinations.
        let l = limits();
        let mut w = Windows::default();
        assert!(w.acquire("a", &l, 3, 0));
        assert!(w.acquire("a", &l, 3, 0));
        assert!(w.acquire("b", &l, 3, 0));
        assert!(!w.acquire("c", &l, 3, 0));
        assert_eq!(w.room("c", &l, 3, 0), 0);
        w.release("a");
        assert_eq!(w.room("c", &l, 3, 0), 1);
    }

    #[test]
    fn a_relayhost_is_one_destination() {
        // Every recipient domain goes to `relayhost`: one window, whatever
        // the domains, and a dead relay suspends them all.
        let l = limits();
        let mut w = Windows::default();
        let relay = "[smtp.example.net]:587";
        open(&mut w, relay, &l, 5);
        assert!(!w.acquire(relay, &l, 1000, 0));
        for _ in 0..5 {
            w.negative(relay, &l, 100, "connect to smtp.example.net: timed out");
        }
        assert!(w.dead_reason(relay, 1).is_some());
        assert_eq!(w.room(relay, &l, 1000, 1), 0);
    }

    #[test]
    fn shares_spread_over_the_limit() {
        assert_eq!(share_size(0, 20, 16), 1);
        assert_eq!(share_size(3, 20, 16), 1);
        assert_eq!(share_size(16, 20, 16), 1);
        assert_eq!(share_size(17, 20, 16), 2, "the total cap is lower");
        assert_eq!(share_size(100, 4, 16), 25);
        assert_eq!(share_size(100, 0, 10), 10, "no limit: the total");
    }

    #[test]
    fn debug_line_as_postfix_prints_it() {
        let l = Limits {
            positive: Feedback::parse("1/concurrency").unwrap(),
            ..limits()
        };
        let mut w = Windows::default();
        open(&mut w, "example.com", &l, 5);
        w.positive("example.com", &l);
        w.positive("example.com", &l);
        w.negative("example.com", &l, 9, "x");
        assert_eq!(
            w.debug_line("qmgr_queue_throttle", "example.com", &l),
            "qmgr_queue_throttle: queue example.com: limit 20 window 3 success 0 failure 1 fail_cohorts 0.2"
        );
        assert_eq!(fmt_g(1.0 / 3.0), "0.333333");
        assert_eq!(fmt_g(0.4), "0.4");
        assert_eq!(fmt_g(12.0), "12");
        assert_eq!(fmt_g(-0.25), "-0.25");
        assert_eq!(fmt_g(1e-7), "1e-07");
        assert_eq!(fmt_g(0.05), "0.05");
        assert_eq!(fmt_g(0.0001), "0.0001");
        assert_eq!(fmt_g(123456.7), "123457");
        assert_eq!(fmt_g(1234567.0), "1.23457e+06");
        assert_eq!(fmt_g(0.9999999), "1");
        assert_eq!(fmt_g(1.05), "1.05");
    }
}
