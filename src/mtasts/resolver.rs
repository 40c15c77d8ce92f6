//! [`StsResolver`]: a domain's MTA-STS policy for delivery, by RFC 8461 §5.
//!
//! Every lookup asks the TXT record (`_mta-sts.<domain>`; the DNS cache
//! makes that cheap). A policy is fetched when the record's ID differs
//! from the cached one, when the cached policy is expired or near expiry,
//! or when nothing is cached. When the TXT lookup fails or shows no valid
//! record, an unexpired cached policy is still used; when a fetch fails,
//! so is an unexpired cached policy (and the failure is logged and
//! reported). Only with no usable policy at all does a failure reach the
//! caller ([`StsLookup::Failed`]): deliver as without a policy, report it.
//!
//! Log lines (target `smtp`, so they read `tern/smtp[pid]: mta-sts: ...`),
//! documented in docs/mta-sts.md.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;

use super::cache::{self, Cache, Entry, Stored};
use super::fetch::{FetchSettings, Fetcher, StsFailure};
use super::policy::Policy;
use super::record::{discover, printable, Discovery, PolicyId};
use crate::config::Config;
use crate::dns::Resolver;

/// Where a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cache (memory, loaded from flash at start).
    Cache,
    /// Fetched for this lookup.
    Fetched,
}

impl Source {
    /// A word for logs and `tern probe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Fetched => "fetched",
        }
    }
}

/// The answer for one recipient domain.
#[derive(Debug, Clone)]
pub enum StsLookup {
    /// No policy: no record, `mode: none`, MTA-STS off, or a lookup that
    /// failed with nothing cached.
    None,
    /// A policy to apply (mode `enforce` or `testing`).
    Policy {
        /// The policy.
        policy: Rc<Policy>,
        /// Cache or fetch.
        source: Source,
        /// A refetch was due and failed; the cached policy is used
        /// (report it for TLSRPT).
        refresh_error: Option<StsFailure>,
    },
    /// Discovery says a policy exists, but none could be fetched and none
    /// is cached: deliver as without a policy and report the failure.
    Failed(StsFailure),
}

/// The MTA-STS settings of a configuration.
#[derive(Debug, Clone)]
pub struct StsSettings {
    /// `mta_sts_enable`.
    pub enabled: bool,
    /// `mta_sts_cache_size`.
    pub cache_size: usize,
    /// Timeouts, families and port of fetches.
    pub fetch: FetchSettings,
}

impl StsSettings {
    /// From a validated configuration.
    pub fn from_config(cfg: &Config) -> StsSettings {
        let p = cfg.protocols();
        StsSettings {
            enabled: cfg.bool("mta_sts_enable"),
            cache_size: usize::try_from(cfg.int("mta_sts_cache_size"))
                .unwrap_or(100)
                .max(1),
            fetch: FetchSettings {
                connect_timeout: cfg.time("mta_sts_connect_timeout"),
                read_timeout: cfg.time("mta_sts_read_timeout"),
                ipv4: p.ipv4,
                ipv6: p.ipv6,
                port: 443,
            },
        }
    }
}

/// The flash directory of the cache for a configuration.
pub fn cache_dir(cfg: &Config) -> PathBuf {
    cfg.queue_directory().join(cache::DIR)
}

/// The current time in Unix seconds (the resolver's callers pass `now`).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Policies for delivery: discovery, fetch and cache. Built once per
/// configuration (in the delivery `Context`); the cache is shared with the
/// previous configuration's resolver across a reload ([`Self::adopt_cache`]).
pub struct StsResolver {
    enabled: bool,
    fetcher: Fetcher,
    resolver: Rc<Resolver>,
    cache: Rc<RefCell<Cache>>,
    /// Domains being fetched now: a second delivery to the same domain
    /// uses the cached policy meanwhile instead of fetching it again.
    in_flight: RefCell<HashSet<String>>,
}

/// A domain as the cache and the policy host name want it: lowercase, no
/// trailing dot, LDH labels. `None` for anything else (an address
/// literal, a bare name).
fn normalize(domain: &str) -> Option<String> {
    let d = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    (d.contains('.') && cache::valid_domain(&d)).then_some(d)
}

fn mx_list(p: &Policy) -> String {
    p.mx_patterns().collect::<Vec<_>>().join(",")
}

impl StsResolver {
    /// The HTTPS client behind policy fetches (TLSRPT posts its reports
    /// through it too).
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// A resolver over `fetcher`, with `cache`.
    pub fn new(enabled: bool, fetcher: Fetcher, resolver: Rc<Resolver>, cache: Cache) -> Self {
        StsResolver {
            enabled,
            fetcher,
            resolver,
            cache: Rc::new(RefCell::new(cache)),
            in_flight: RefCell::new(HashSet::new()),
        }
    }

    /// Whether `mta_sts_enable` is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The cache (for `tern probe` and tests).
    pub fn cache(&self) -> &Rc<RefCell<Cache>> {
        &self.cache
    }

    /// Takes over `old`'s cache (a reload): policies fetched under the old
    /// configuration stay, resized to this configuration's limit.
    pub fn adopt_cache(&mut self, old: &StsResolver, now: u64) {
        let capacity = self.cache.borrow().capacity();
        self.cache = old.cache.clone();
        self.cache.borrow_mut().set_capacity(capacity, now);
    }

    /// Drops a domain (`None`: all) from memory; the caller (`tern sts
    /// purge`) has removed the files. The next lookup fetches again.
    pub fn purge(&self, domain: Option<&str>) {
        let n = self.cache.borrow_mut().forget(domain);
        match domain {
            Some(d) => {
                log::info!(target: "smtp", "mta-sts: {d}: purged from the policy cache ({n} cached)")
            }
            None => log::info!(target: "smtp", "mta-sts: policy cache purged ({n} policies)"),
        }
    }

    /// The policy to apply to mail for `domain` at `now` (Unix seconds).
    pub async fn policy_for(&self, domain: &str, now: u64) -> StsLookup {
        if !self.enabled {
            return StsLookup::None;
        }
        let Some(domain) = normalize(domain) else {
            return StsLookup::None;
        };
        self.lookup(&domain, now, true).await
    }

    /// Refreshes, shortly before they expire, the policies used since
    /// their last fetch (RFC 8461 §5: "proactively"); returns how many
    /// were looked at. The daemon calls it periodically.
    pub async fn refresh_due(&self, now: u64) -> usize {
        if !self.enabled {
            return 0;
        }
        let due = self.cache.borrow().due_for_refresh(now);
        for d in &due {
            log::debug!(target: "smtp", "mta-sts: {d}: refreshing the policy before it expires");
            let _ = self.lookup(d, now, false).await;
        }
        due.len()
    }

    async fn lookup(&self, domain: &str, now: u64, used: bool) -> StsLookup {
        let cached = {
            let mut c = self.cache.borrow_mut();
            if used {
                c.use_valid(domain, now)
            } else {
                c.get(domain).filter(|e| e.is_valid(now)).cloned()
            }
        };
        let name = format!("_mta-sts.{domain}");
        let discovery = match self.resolver.lookup_txt(&name).await {
            Ok(a) => {
                let joined: Vec<Vec<u8>> = a.records.iter().map(|t| t.joined()).collect();
                Ok(discover(joined.iter().map(Vec::as_slice)))
            }
            Err(e) => Err(e),
        };
        let id = match discovery {
            Ok(Discovery::Policy(id)) => id,
            // No valid record, or DNS trouble: a valid cached policy still
            // applies (§5: only a fetched `none` policy withdraws one).
            other => {
                match &other {
                    Ok(Discovery::Invalid(e)) => {
                        log::info!(target: "smtp", "mta-sts: {domain}: {e}; treated as no record")
                    }
                    Err(e) => {
                        log::debug!(target: "smtp", "mta-sts: {domain}: TXT lookup for {name}: {e}")
                    }
                    _ => {}
                }
                return match cached {
                    Some(e) => cached_lookup(e, None),
                    None => StsLookup::None,
                };
            }
        };
        if let Some(e) = &cached {
            if e.id == id && !e.near_expiry(now) {
                return cached_lookup(e.clone(), None);
            }
            // Another delivery is fetching this domain: use what we have.
            if self.in_flight.borrow().contains(domain) {
                return cached_lookup(e.clone(), None);
            }
        }
        self.in_flight.borrow_mut().insert(domain.to_string());
        let fetched = self.fetcher.fetch(domain).await;
        self.in_flight.borrow_mut().remove(domain);
        match fetched {
            Ok(policy) => self.stored(domain, id, policy, now, used),
            Err(f) => match cached {
                Some(e) => {
                    log::warn!(target: "smtp", "warning: mta-sts: {domain}: policy fetch failed: {f}; using the cached policy id={} mode={} (valid for {}s more)", e.id, e.policy.mode.as_str(), e.remaining(now));
                    cached_lookup(e, Some(f))
                }
                None => {
                    log::warn!(target: "smtp", "warning: mta-sts: {domain}: policy fetch failed: {f}; no cached policy: delivering without MTA-STS");
                    StsLookup::Failed(f)
                }
            },
        }
    }

    fn stored(
        &self,
        domain: &str,
        id: PolicyId,
        policy: Policy,
        now: u64,
        used: bool,
    ) -> StsLookup {
        let summary = format!(
            "id={id} mode={} max_age={} mx={}",
            policy.mode.as_str(),
            policy.max_age,
            printable(&mx_list(&policy))
        );
        let max_age = policy.max_age;
        // Kept for this delivery even when the cache cannot hold it (a
        // `max_age: 0` policy expires as it is stored).
        let fetched = Rc::new(policy.clone());
        let outcome = self.cache.borrow_mut().store(domain, id, policy, now);
        match &outcome {
            Stored::New => {
                log::info!(target: "smtp", "mta-sts: {domain}: fetched policy {summary}")
            }
            Stored::Changed(old) => {
                log::info!(target: "smtp", "mta-sts: {domain}: policy changed (was id={old}): fetched policy {summary}")
            }
            Stored::Unchanged => {
                log::info!(target: "smtp", "mta-sts: {domain}: policy id={id} unchanged, valid for {max_age}s")
            }
            Stored::Removed(had) => {
                let what = if *had {
                    "cached policy removed"
                } else {
                    "nothing cached"
                };
                log::info!(target: "smtp", "mta-sts: {domain}: policy id={id} mode=none: the domain withdrew its policy; {what}");
                return StsLookup::None;
            }
        }
        let cached = {
            let mut c = self.cache.borrow_mut();
            if used {
                c.use_valid(domain, now)
            } else {
                c.get(domain).cloned()
            }
        };
        StsLookup::Policy {
            policy: cached.map_or(fetched, |e| e.policy),
            source: Source::Fetched,
            refresh_error: None,
        }
    }
}

fn cached_lookup(e: Entry, refresh_error: Option<StsFailure>) -> StsLookup {
    StsLookup::Policy {
        policy: e.policy,
        source: Source::Cache,
        refresh_error,
    }
}
