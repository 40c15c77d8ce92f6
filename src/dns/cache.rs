//! Bounded TTL cache of answers, without a clock: the caller passes `now`.
//!
//! Fixed number of entries; an insert into a full cache first drops expired
//! entries, then the one inserted longest ago. Answers whose records are
//! large (big TXT sets) are not cached at all, so the cache's memory is
//! bounded by `capacity * MAX_ENTRY_BYTES`. Negative answers (NODATA,
//! NXDOMAIN) are kept for their RFC 2308 negative TTL, capped by
//! [`MAX_NEGATIVE_TTL`]; errors (SERVFAIL, timeouts) are never cached.

use super::{Answer, RData, RecordType, Status};
use std::time::{Duration, Instant};

/// Default number of entries.
pub const DEFAULT_CAPACITY: usize = 256;
/// Longest time a positive answer is kept, whatever its TTL.
pub const MAX_POSITIVE_TTL: u32 = 86_400;
/// Longest time a NODATA/NXDOMAIN answer is kept (RFC 2308 §5 suggests
/// one to three hours; a mail queue retries sooner than that).
pub const MAX_NEGATIVE_TTL: u32 = 900;
/// Answers larger than this (approximate bytes of record data) are not
/// cached.
pub const MAX_ENTRY_BYTES: usize = 4096;

struct Entry {
    name: String,
    qtype: RecordType,
    answer: Answer<RData>,
    inserted: Instant,
    expires: Instant,
}

/// The cache. Not thread-safe by design: it lives on the one executor
/// thread.
pub struct Cache {
    entries: Vec<Entry>,
    capacity: usize,
}

fn weight(answer: &Answer<RData>) -> usize {
    answer.name.len()
        + answer
            .records
            .iter()
            .map(|r| match r {
                RData::A(_) => 4,
                RData::Aaaa(_) => 16,
                RData::Mx(m) => 2 + m.exchange.len(),
                RData::Txt(t) => t.strings.iter().map(|s| s.len() + 1).sum(),
                RData::Cname(c) => c.len(),
                RData::Tlsa(t) => 3 + t.data.len(),
            })
            .sum::<usize>()
}

impl Cache {
    /// A cache holding at most `capacity` answers (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        Cache {
            entries: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// Number of entries, expired ones included until they are evicted.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached answer for (`name`, `qtype`) if still valid at `now`, its
    /// `ttl` reduced by the time spent in the cache.
    pub fn get(&self, name: &str, qtype: RecordType, now: Instant) -> Option<Answer<RData>> {
        let e = self
            .entries
            .iter()
            .find(|e| e.qtype == qtype && e.name == name && e.expires > now)?;
        let mut answer = e.answer.clone();
        let left = e.expires.saturating_duration_since(now).as_secs();
        answer.ttl = u32::try_from(left).unwrap_or(u32::MAX);
        Some(answer)
    }

    /// Stores `answer` for (`name`, `qtype`) as seen at `now`. Answers with
    /// a zero TTL or too large to be worth caching are ignored.
    pub fn insert(&mut self, name: &str, qtype: RecordType, answer: &Answer<RData>, now: Instant) {
        let cap = if answer.status == Status::Found {
            MAX_POSITIVE_TTL
        } else {
            MAX_NEGATIVE_TTL
        };
        let ttl = answer.ttl.min(cap);
        if ttl == 0 || self.capacity == 0 || weight(answer) > MAX_ENTRY_BYTES {
            return;
        }
        let expires = now + Duration::from_secs(u64::from(ttl));
        self.entries
            .retain(|e| !(e.qtype == qtype && e.name == name) && e.expires > now);
        if self.entries.len() >= self.capacity {
            if let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.inserted)
                .map(|(i, _)| i)
            {
                self.entries.swap_remove(oldest);
            }
        }
        self.entries.push(Entry {
            name: name.to_string(),
            qtype,
            answer: answer.clone(),
            inserted: now,
            expires,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn found(name: &str, ttl: u32) -> Answer<RData> {
        Answer {
            status: Status::Found,
            records: vec![RData::A(Ipv4Addr::new(192, 0, 2, 1))],
            authenticated: true,
            name: name.to_string(),
            ttl,
        }
    }

    #[test]
    fn expires_after_ttl() {
        let t0 = Instant::now();
        let mut c = Cache::new(4);
        c.insert("a.test", RecordType::A, &found("a.test", 10), t0);
        let hit = c
            .get("a.test", RecordType::A, t0 + Duration::from_secs(4))
            .unwrap();
        assert_eq!(hit.ttl, 6);
        assert!(hit.authenticated);
        assert!(c.get("a.test", RecordType::Aaaa, t0).is_none());
        assert!(c
            .get("a.test", RecordType::A, t0 + Duration::from_secs(10))
            .is_none());
    }

    #[test]
    fn capacity_evicts_expired_then_oldest() {
        let t0 = Instant::now();
        let mut c = Cache::new(2);
        c.insert("a.test", RecordType::A, &found("a.test", 5), t0);
        c.insert(
            "b.test",
            RecordType::A,
            &found("b.test", 100),
            t0 + Duration::from_secs(1),
        );
        // a.test expired at t0+5: it goes, b.test stays.
        let t = t0 + Duration::from_secs(6);
        c.insert("c.test", RecordType::A, &found("c.test", 100), t);
        assert!(c.get("b.test", RecordType::A, t).is_some());
        assert!(c.get("c.test", RecordType::A, t).is_some());
        assert_eq!(c.len(), 2);
        // Nothing expired: the oldest (b.test) goes.
        c.insert("d.test", RecordType::A, &found("d.test", 100), t);
        assert!(c.get("b.test", RecordType::A, t).is_none());
        assert!(c.get("c.test", RecordType::A, t).is_some());
        assert!(c.get("d.test", RecordType::A, t).is_some());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn negative_ttl_is_capped_and_zero_not_cached() {
        let t0 = Instant::now();
        let mut c = Cache::new(4);
        let nx = Answer {
            status: Status::NxDomain,
            records: vec![],
            authenticated: true,
            name: "nx.test".into(),
            ttl: 86_400,
        };
        c.insert("nx.test", RecordType::Mx, &nx, t0);
        let hit = c.get("nx.test", RecordType::Mx, t0).unwrap();
        assert_eq!(hit.ttl, MAX_NEGATIVE_TTL);
        assert!(hit.is_nxdomain());
        assert!(c
            .get(
                "nx.test",
                RecordType::Mx,
                t0 + Duration::from_secs(u64::from(MAX_NEGATIVE_TTL))
            )
            .is_none());
        c.insert("z.test", RecordType::A, &found("z.test", 0), t0);
        assert!(c.get("z.test", RecordType::A, t0).is_none());
    }

    #[test]
    fn large_answers_are_not_cached() {
        let t0 = Instant::now();
        let mut c = Cache::new(4);
        let big = Answer {
            status: Status::Found,
            records: vec![RData::Txt(super::super::Txt {
                strings: vec![vec![b'x'; 255]; 20],
            })],
            authenticated: false,
            name: "big.test".into(),
            ttl: 60,
        };
        c.insert("big.test", RecordType::Txt, &big, t0);
        assert!(c.is_empty());
    }
}
