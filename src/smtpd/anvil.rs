//! Per-client connection and rate limits, as Postfix's anvil(8) server
//! keeps them, in a table of fixed size. Sans-I/O: the caller passes the
//! clock (`now`, a monotonic time since any origin) and turns verdicts into
//! replies and log lines.
//!
//! Counted per client address (all of tern's SMTP listeners together;
//! Postfix keys by service and address, but one process serves every port
//! here and one slot pool backs them all):
//!
//! - concurrent connections (`smtpd_client_connection_count_limit`),
//! - connections per `anvil_rate_time_unit` (`..._connection_rate_limit`),
//! - `MAIL FROM` requests per time unit (`..._message_rate_limit`),
//! - `AUTH` commands per time unit (`..._auth_rate_limit`),
//! - failed `AUTH` attempts per time unit (`..._auth_failure_limit`, a
//!   tern setting: Postfix has no such counter and leaves AUTH guessing to
//!   the error limits of one session, which a client sidesteps by opening
//!   a new one).
//!
//! Also here, as sans-I/O decisions: the growing wait before a failed AUTH
//! is answered ([`failure_delay`]) and the daemon-wide budget of password
//! checks per second ([`CheckBudget`]).
//!
//! A rate is counted as anvil counts it: a window opens at the first event
//! and the count starts again from zero once the window is older than the
//! time unit. A limit of 0 means no limit, as in Postfix.
//!
//! # Fixed size
//!
//! The table holds `N` entries, chosen at start (see [`table_size`]); it
//! never grows with the number of client addresses. A new address takes a
//! free entry, else the entry of an address with no open connection that
//! was used least recently. Only when every entry has an open connection
//! (impossible with `N` larger than the slot count, since a refused
//! connection is not held) is the least recently used entry taken anyway.
//! What eviction costs: an attacker with more addresses than `N` can make
//! the table forget the rate history of an idle address; the concurrency
//! count of addresses with open sessions is never forgotten while free
//! entries exist.

use std::net::IpAddr;
use std::time::Duration;

/// The limits in force (re-read from the configuration at each reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `smtpd_client_connection_count_limit` (0: none).
    pub connection_count: u32,
    /// `smtpd_client_connection_rate_limit` (0: none).
    pub connection_rate: u32,
    /// `smtpd_client_message_rate_limit` (0: none).
    pub message_rate: u32,
    /// `smtpd_client_auth_rate_limit` (0: none).
    pub auth_rate: u32,
    /// `smtpd_client_auth_failure_limit` (0: none).
    pub auth_failure: u32,
    /// `smtpd_auth_failure_delay_ms`: the wait added per failure counted.
    pub auth_failure_delay: Duration,
    /// `smtpd_auth_check_rate_limit`: password checks per second, all
    /// clients together (0: none).
    pub auth_checks_per_second: u32,
    /// `anvil_rate_time_unit`.
    pub time_unit: Duration,
}

/// The verdict on a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// Allowed; the caller must call [`Anvil::disconnect`] when it ends.
    Allowed,
    /// Over `smtpd_client_connection_count_limit`: this many connections
    /// would be open (Postfix logs the count including the refused one).
    TooManyConnections(u32),
    /// Over `smtpd_client_connection_rate_limit`: this many connections
    /// in the current time unit, the refused one included.
    RateExceeded(u32),
}

/// One rate window: when it opened and how many events it counted.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: Duration,
    count: u32,
}

impl Window {
    /// Counts one event at `now` and returns the count in the window.
    fn bump(&mut self, now: Duration, unit: Duration) -> u32 {
        self.expire(now, unit);
        self.count = self.count.saturating_add(1);
        self.count
    }

    /// The count in the window at `now` (0 once the window has expired).
    fn current(&self, now: Duration, unit: Duration) -> u32 {
        let mut w = *self;
        w.expire(now, unit);
        w.count
    }

    fn expire(&mut self, now: Duration, unit: Duration) {
        // A window older than the unit starts again, as anvil's
        // ANVIL_RATE_INTERVAL check does; `now` before `start` (a clock
        // passed in out of order) also restarts rather than panicking.
        if self.count == 0 || now < self.start || now.saturating_sub(self.start) >= unit {
            self.start = now;
            self.count = 0;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: Option<IpAddr>,
    /// Open connections.
    open: u32,
    connects: Window,
    mails: Window,
    auths: Window,
    auth_failures: Window,
    /// Last event, for choosing what to evict.
    used: Duration,
}

const EMPTY: Entry = Entry {
    addr: None,
    open: 0,
    connects: Window {
        start: Duration::ZERO,
        count: 0,
    },
    mails: Window {
        start: Duration::ZERO,
        count: 0,
    },
    auths: Window {
        start: Duration::ZERO,
        count: 0,
    },
    auth_failures: Window {
        start: Duration::ZERO,
        count: 0,
    },
    used: Duration::ZERO,
};

/// Most steps of [`failure_delay`]: with the default step of 1 s a
/// guesser waits up to 10 s per failure, while a slot held that long is
/// still reclaimed by `smtpd_timeout` and stress mode.
pub const MAX_DELAY_STEPS: u32 = 10;

/// The wait before a failed AUTH is answered, the `failures`-th from the
/// client address in the current time unit: `step` per failure, at most
/// [`MAX_DELAY_STEPS`] steps. Each guess costs the guesser more time than
/// the last, as Postfix's `smtpd_error_sleep_time` does within a session,
/// but across sessions. The driver waits on a timer, so other sessions run
/// meanwhile.
pub fn failure_delay(failures: u32, step: Duration) -> Duration {
    step.saturating_mul(failures.min(MAX_DELAY_STEPS))
}

/// The daemon-wide budget of password checks (PBKDF2, tens to hundreds
/// of milliseconds of the one thread on a router): at most `per_second`
/// checks start in each one-second slice; AUTH beyond that is answered
/// with a temporary failure rather than queued, so guessing clients can
/// take no more than that share of the thread however many connect.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckBudget {
    slice: Window,
}

impl CheckBudget {
    /// An unused budget.
    pub fn new() -> CheckBudget {
        CheckBudget::default()
    }

    /// Whether a check may start at `now`; counts it if so. `per_second`
    /// of 0 means no limit.
    pub fn try_take(&mut self, now: Duration, per_second: u32) -> bool {
        if per_second == 0 {
            return true;
        }
        let unit = Duration::from_secs(1);
        if self.slice.current(now, unit) >= per_second {
            return false;
        }
        self.slice.bump(now, unit);
        true
    }
}

/// The number of entries for a daemon with `max_connections` slots: four
/// per slot and at least 64, so every address with an open session has an
/// entry and idle ones keep their rate history for a while (about 70
/// bytes an entry: 9 KiB for 32 slots).
pub fn table_size(max_connections: usize) -> usize {
    max_connections.saturating_mul(4).max(64)
}

/// The per-client table.
#[derive(Debug)]
pub struct Anvil {
    entries: Box<[Entry]>,
}

impl Anvil {
    /// A table of `size` entries (at least one), allocated once.
    pub fn new(size: usize) -> Anvil {
        Anvil {
            entries: vec![EMPTY; size.max(1)].into_boxed_slice(),
        }
    }

    /// Number of entries (fixed).
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Addresses currently in the table.
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.addr.is_some()).count()
    }

    /// Whether no address is in the table.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open connections of `addr`, as counted.
    pub fn open(&self, addr: IpAddr) -> u32 {
        self.find(addr).map_or(0, |i| self.entries[i].open)
    }

    fn find(&self, addr: IpAddr) -> Option<usize> {
        self.entries.iter().position(|e| e.addr == Some(addr))
    }

    /// The entry of `addr`, taking one (free, else evicted) if it has none.
    fn entry(&mut self, addr: IpAddr, now: Duration) -> &mut Entry {
        let i = match self.find(addr) {
            Some(i) => i,
            None => {
                let victim = self
                    .entries
                    .iter()
                    .position(|e| e.addr.is_none())
                    .or_else(|| {
                        // The least recently used address without an open
                        // connection; only if there is none, any.
                        let idle = self
                            .entries
                            .iter()
                            .enumerate()
                            .filter(|(_, e)| e.open == 0)
                            .min_by_key(|(_, e)| e.used)
                            .map(|(i, _)| i);
                        idle.or_else(|| {
                            self.entries
                                .iter()
                                .enumerate()
                                .min_by_key(|(_, e)| e.used)
                                .map(|(i, _)| i)
                        })
                    })
                    .unwrap_or(0);
                self.entries[victim] = Entry {
                    addr: Some(addr),
                    ..EMPTY
                };
                victim
            }
        };
        let e = &mut self.entries[i];
        e.used = now;
        e
    }

    /// A new connection from `addr` at `now`. The rate counts every
    /// attempt (refused ones too, as anvil does: a client that keeps
    /// hammering stays over the limit); a refused connection is not
    /// counted as open.
    pub fn connect(&mut self, addr: IpAddr, now: Duration, limits: &Limits) -> Connect {
        let e = self.entry(addr, now);
        let rate = e.connects.bump(now, limits.time_unit);
        let count = e.open.saturating_add(1);
        if limits.connection_count > 0 && count > limits.connection_count {
            return Connect::TooManyConnections(count);
        }
        if limits.connection_rate > 0 && rate > limits.connection_rate {
            return Connect::RateExceeded(rate);
        }
        e.open = count;
        Connect::Allowed
    }

    /// A connection that [`Anvil::connect`] allowed has ended.
    pub fn disconnect(&mut self, addr: IpAddr) {
        // An evicted entry (only possible when every entry was busy) has
        // nothing left to decrement.
        if let Some(i) = self.find(addr) {
            let e = &mut self.entries[i];
            e.open = e.open.saturating_sub(1);
        }
    }

    /// A `MAIL FROM` from `addr`: `Err(rate)` when over
    /// `smtpd_client_message_rate_limit`.
    pub fn mail(&mut self, addr: IpAddr, now: Duration, limits: &Limits) -> Result<(), u32> {
        let e = self.entry(addr, now);
        let rate = e.mails.bump(now, limits.time_unit);
        if limits.message_rate > 0 && rate > limits.message_rate {
            Err(rate)
        } else {
            Ok(())
        }
    }

    /// An `AUTH` command from `addr`: `Err(rate)` when over
    /// `smtpd_client_auth_rate_limit`.
    pub fn auth(&mut self, addr: IpAddr, now: Duration, limits: &Limits) -> Result<(), u32> {
        let e = self.entry(addr, now);
        let rate = e.auths.bump(now, limits.time_unit);
        if limits.auth_rate > 0 && rate > limits.auth_rate {
            Err(rate)
        } else {
            Ok(())
        }
    }
}

impl Anvil {
    /// Whether `addr` has used up `smtpd_client_auth_failure_limit` in the
    /// current time unit: `Err(failures)` refuses its AUTH at once. Not a
    /// failure itself (the window is not prolonged by refusals, so a
    /// client is let in again once the time unit has passed).
    pub fn auth_allowed(&self, addr: IpAddr, now: Duration, limits: &Limits) -> Result<(), u32> {
        if limits.auth_failure == 0 {
            return Ok(());
        }
        let n = self.find(addr).map_or(0, |i| {
            self.entries[i].auth_failures.current(now, limits.time_unit)
        });
        if n >= limits.auth_failure {
            Err(n)
        } else {
            Ok(())
        }
    }

    /// A failed AUTH from `addr`: returns the failures counted in the
    /// current time unit, this one included (for [`failure_delay`]).
    pub fn auth_failed(&mut self, addr: IpAddr, now: Duration, limits: &Limits) -> u32 {
        let e = self.entry(addr, now);
        e.auth_failures.bump(now, limits.time_unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: Duration = Duration::from_secs(60);

    fn limits(count: u32, rate: u32) -> Limits {
        Limits {
            connection_count: count,
            connection_rate: rate,
            message_rate: 3,
            auth_rate: 2,
            auth_failure: 3,
            auth_failure_delay: Duration::from_secs(1),
            auth_checks_per_second: 2,
            time_unit: UNIT,
        }
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn concurrency_counts_open_connections_only() {
        let mut a = Anvil::new(8);
        let l = limits(2, 0);
        assert_eq!(a.connect(ip(1), s(0), &l), Connect::Allowed);
        assert_eq!(a.connect(ip(1), s(0), &l), Connect::Allowed);
        assert_eq!(a.connect(ip(1), s(0), &l), Connect::TooManyConnections(3));
        // Refusals are not held open.
        assert_eq!(a.open(ip(1)), 2);
        // Another address is not affected.
        assert_eq!(a.connect(ip(2), s(0), &l), Connect::Allowed);
        a.disconnect(ip(1));
        assert_eq!(a.connect(ip(1), s(1), &l), Connect::Allowed);
        assert_eq!(a.open(ip(1)), 2);
        // Extra disconnects (or of unknown addresses) do not underflow.
        for _ in 0..5 {
            a.disconnect(ip(1));
            a.disconnect(ip(99));
        }
        assert_eq!(a.open(ip(1)), 0);
    }

    #[test]
    fn connection_rate_over_the_time_unit() {
        let mut a = Anvil::new(8);
        let l = limits(0, 3);
        for t in 0..3 {
            assert_eq!(a.connect(ip(1), s(t), &l), Connect::Allowed);
            a.disconnect(ip(1));
        }
        assert_eq!(a.connect(ip(1), s(10), &l), Connect::RateExceeded(4));
        // Attempts over the limit keep counting.
        assert_eq!(a.connect(ip(1), s(59), &l), Connect::RateExceeded(5));
        // A new window once the unit has passed since the first event.
        assert_eq!(a.connect(ip(1), s(60), &l), Connect::Allowed);
        // A clock passed in out of order restarts the window, no panic.
        assert_eq!(a.connect(ip(1), s(1), &l), Connect::Allowed);
    }

    #[test]
    fn message_and_auth_rates() {
        let mut a = Anvil::new(4);
        let l = limits(0, 0);
        for t in 0..3 {
            assert_eq!(a.mail(ip(1), s(t), &l), Ok(()));
        }
        assert_eq!(a.mail(ip(1), s(30), &l), Err(4));
        assert_eq!(a.mail(ip(2), s(30), &l), Ok(()));
        assert_eq!(a.mail(ip(1), s(61), &l), Ok(()));
        assert_eq!(a.auth(ip(1), s(0), &l), Ok(()));
        assert_eq!(a.auth(ip(1), s(0), &l), Ok(()));
        assert_eq!(a.auth(ip(1), s(0), &l), Err(3));
        // Limits of 0 mean none.
        let none = Limits {
            message_rate: 0,
            auth_rate: 0,
            ..l
        };
        for _ in 0..1000 {
            assert_eq!(a.auth(ip(3), s(0), &none), Ok(()));
            assert_eq!(a.mail(ip(3), s(0), &none), Ok(()));
        }
    }

    #[test]
    fn fixed_size_under_many_addresses() {
        let mut a = Anvil::new(16);
        let l = limits(2, 5);
        for n in 0..10_000 {
            let _ = a.connect(ip(n), s(u64::from(n)), &l);
            a.disconnect(ip(n));
            assert!(a.len() <= 16);
        }
        assert_eq!(a.capacity(), 16);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn eviction_spares_open_connections_and_takes_the_oldest_idle() {
        let mut a = Anvil::new(4);
        let l = limits(2, 0);
        // ip(1) holds its limit; it was used first of all.
        assert_eq!(a.connect(ip(1), s(0), &l), Connect::Allowed);
        assert_eq!(a.connect(ip(1), s(0), &l), Connect::Allowed);
        for n in 2..=4 {
            assert_eq!(a.connect(ip(n), s(u64::from(n)), &l), Connect::Allowed);
            a.disconnect(ip(n));
        }
        // A flood of new addresses evicts idle entries, never ip(1).
        for n in 100..200 {
            let _ = a.connect(ip(n), s(u64::from(n)), &l);
            a.disconnect(ip(n));
        }
        assert_eq!(a.open(ip(1)), 2);
        assert_eq!(a.connect(ip(1), s(300), &l), Connect::TooManyConnections(3));
        // The least recently used idle entry went first: with ip(2..=4)
        // idle, ip(2) (oldest) is replaced by the next new address.
        let mut b = Anvil::new(3);
        for n in 2..=4 {
            let _ = b.mail(ip(n), s(u64::from(n)), &l);
        }
        let _ = b.mail(ip(3), s(10), &l);
        let _ = b.mail(ip(9), s(11), &l);
        assert!(b.find(ip(2)).is_none());
        assert!(b.find(ip(3)).is_some() && b.find(ip(4)).is_some());
    }

    #[test]
    fn every_entry_busy_still_answers() {
        let mut a = Anvil::new(2);
        let l = limits(5, 0);
        assert_eq!(a.connect(ip(1), s(0), &l), Connect::Allowed);
        assert_eq!(a.connect(ip(2), s(1), &l), Connect::Allowed);
        // No idle entry: the oldest is taken; its later disconnect is a
        // no-op rather than a wrong decrement.
        assert_eq!(a.connect(ip(3), s(2), &l), Connect::Allowed);
        assert_eq!(a.len(), 2);
        a.disconnect(ip(1));
        assert_eq!(a.open(ip(3)), 1);
    }

    #[test]
    fn auth_failures_across_sessions() {
        let mut a = Anvil::new(4);
        let l = limits(0, 0);
        // Counted per address whatever the session: three failures allowed.
        for n in 1..=3u32 {
            assert_eq!(a.auth_allowed(ip(1), s(u64::from(n)), &l), Ok(()));
            assert_eq!(a.auth_failed(ip(1), s(u64::from(n)), &l), n);
        }
        assert_eq!(a.auth_allowed(ip(1), s(10), &l), Err(3));
        // Refusals do not count, so the window ends as it began.
        assert_eq!(a.auth_allowed(ip(1), s(59), &l), Err(3));
        assert_eq!(a.auth_allowed(ip(2), s(10), &l), Ok(()));
        assert_eq!(a.auth_allowed(ip(1), s(61), &l), Ok(()));
        assert_eq!(a.auth_failed(ip(1), s(61), &l), 1);
        // 0: no limit.
        let none = Limits {
            auth_failure: 0,
            ..l
        };
        for _ in 0..100 {
            let _ = a.auth_failed(ip(3), s(0), &none);
        }
        assert_eq!(a.auth_allowed(ip(3), s(0), &none), Ok(()));
        assert_eq!(a.auth_allowed(ip(3), s(0), &l), Err(100));
    }

    #[test]
    fn failure_delay_grows_and_is_capped() {
        let step = Duration::from_millis(500);
        assert_eq!(failure_delay(0, step), Duration::ZERO);
        assert_eq!(failure_delay(1, step), step);
        assert_eq!(failure_delay(4, step), Duration::from_secs(2));
        assert_eq!(failure_delay(MAX_DELAY_STEPS, step), Duration::from_secs(5));
        assert_eq!(failure_delay(u32::MAX, step), Duration::from_secs(5));
        assert_eq!(failure_delay(7, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn check_budget_per_one_second_slice() {
        let mut b = CheckBudget::new();
        let ms = Duration::from_millis;
        assert!(b.try_take(ms(0), 2));
        assert!(b.try_take(ms(10), 2));
        // The third in the same slice is refused, however often asked.
        for t in [20, 500, 999] {
            assert!(!b.try_take(ms(t), 2));
        }
        // The slice began at 0: a new one from 1 s on.
        assert!(b.try_take(ms(1000), 2));
        assert!(b.try_take(ms(1500), 2));
        assert!(!b.try_take(ms(1999), 2));
        assert!(b.try_take(ms(2000), 2));
        // A clock passed in out of order restarts the slice, no panic.
        assert!(b.try_take(ms(5), 2));
        // 0: no limit.
        for _ in 0..1000 {
            assert!(b.try_take(ms(5), 0));
        }
    }
}
