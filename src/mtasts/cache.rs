//! The policy cache: at most `mta_sts_cache_size` policies in memory, each
//! also in one small file under `$queue_directory/mta-sts/` so that a
//! restart (a router's reboot) keeps them (RFC 8461 §5).
//!
//! Flash is written only when it must be:
//!
//! * a new domain, a new policy ID or a different policy (mode, patterns,
//!   `max_age`) writes the file;
//! * a refetch that only confirms the policy writes it only when the
//!   expiry the file implies (its fetch time + `max_age`) would fall
//!   short of the real one by more than half of `max_age`. So the file
//!   always promises at least half of what memory knows, and a policy
//!   refreshed shortly before expiry (the usual case) costs one small
//!   write per `max_age`, while refetches in between cost none;
//! * `mode: none` and eviction delete the file, `tern sts purge` too.
//!
//! Files are written atomically (temporary file, fsync, rename, fsync of
//! the directory). A file that does not parse is logged and ignored; an
//! expired one is deleted at load.
//!
//! When the cache is full, a new domain's policy displaces, in this order:
//! an expired policy, then a `testing` (or `none`) one, then the least
//! recently used; an unexpired `enforce` policy displaced that way is
//! logged as a warning with its domain, never dropped silently.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::policy::{Mode, Policy};
use super::record::{printable, PolicyId};

/// The directory under `queue_directory`.
pub const DIR: &str = "mta-sts";

/// The largest cache file read (a policy has at most 32 patterns).
const MAX_FILE: u64 = 16 * 1024;

/// One cached policy.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The ID the discovery record had when this policy was fetched.
    pub id: PolicyId,
    /// The policy.
    pub policy: Rc<Policy>,
    /// When it was last fetched (or confirmed by a fetch), Unix seconds.
    pub fetched: u64,
    /// `fetched + max_age`: not to be used from this instant on.
    pub expires: u64,
    /// When delivery last asked for it.
    pub last_used: u64,
    /// Asked for since the last fetch: the proactive refresh renews only
    /// policies in use.
    pub used_since_fetch: bool,
    /// The fetch time the flash file holds; `None`: no file.
    pub stored_fetched: Option<u64>,
}

impl Entry {
    /// Usable at `now` (RFC 8461 §5: an expired policy is not used).
    pub fn is_valid(&self, now: u64) -> bool {
        now < self.expires
    }

    /// Seconds of validity left.
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires.saturating_sub(now)
    }

    /// Whether to refetch before it expires: in the last quarter of its
    /// life, at most the last day (RFC 8461 §5 leaves the margin open).
    pub fn near_expiry(&self, now: u64) -> bool {
        self.remaining(now) <= refresh_margin(self.policy.max_age)
    }
}

/// How long before expiry a policy is refreshed: a quarter of `max_age`,
/// at most one day.
pub fn refresh_margin(max_age: u32) -> u64 {
    (u64::from(max_age) / 4).min(86_400)
}

/// What [`Cache::store`] did, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// First policy for the domain.
    New,
    /// The ID or the policy changed (the previous ID).
    Changed(PolicyId),
    /// Same ID and policy; expiry extended.
    Unchanged,
    /// `mode: none`: what was cached is gone (`true` if anything was).
    Removed(bool),
}

/// The rule of the module docs: write the file for this fetch?
pub fn needs_write(old: Option<&Entry>, id: &PolicyId, policy: &Policy, now: u64) -> bool {
    let Some(old) = old else { return true };
    let Some(stored) = old.stored_fetched else {
        return true;
    };
    if old.id != *id || *old.policy != *policy {
        return true;
    }
    let age = u64::from(policy.max_age);
    let on_flash = stored.saturating_add(age);
    let real = now.saturating_add(age);
    real.saturating_sub(on_flash) > age / 2
}

/// A domain that can name a cache file: lowercase LDH labels, dots
/// between them, at most 253 bytes. Nothing else reaches the file system.
pub fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A cache file's contents: the domain, the discovery ID, the fetch time,
/// then the policy in its canonical lines.
pub fn encode(domain: &str, e: &Entry) -> String {
    let mut s = format!(
        "# tern MTA-STS policy cache, written by the daemon; `tern sts purge` removes it\ndomain: {domain}\nid: {}\nfetched: {}\n",
        e.id, e.fetched
    );
    for l in e.policy.lines() {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// A parsed cache file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFile {
    /// `domain:`.
    pub domain: String,
    /// `id:`.
    pub id: PolicyId,
    /// `fetched:`.
    pub fetched: u64,
    /// The policy lines.
    pub policy: Policy,
}

impl CacheFile {
    /// When the policy expires.
    pub fn expires(&self) -> u64 {
        self.fetched.saturating_add(u64::from(self.policy.max_age))
    }
}

/// Parses a cache file (see [`encode`]).
pub fn decode(text: &[u8]) -> Result<CacheFile, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not text".to_string())?;
    let (mut domain, mut id, mut fetched) = (None, None, None);
    let mut body = String::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some(("domain", v)) => domain = Some(v.trim().to_string()),
            Some(("id", v)) => id = Some(v.trim().to_string()),
            Some(("fetched", v)) => fetched = Some(v.trim().to_string()),
            _ => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    let domain = domain.ok_or("no domain")?;
    if !valid_domain(&domain) {
        return Err(format!("invalid domain \"{}\"", printable(&domain)));
    }
    let id = id.ok_or("no id")?;
    let id = PolicyId::parse(&id).ok_or_else(|| format!("invalid id \"{}\"", printable(&id)))?;
    let fetched = fetched
        .ok_or("no fetch time")?
        .parse::<u64>()
        .map_err(|_| "invalid fetch time".to_string())?;
    let policy = Policy::parse(body.as_bytes()).map_err(|e| e.to_string())?;
    Ok(CacheFile {
        domain,
        id,
        fetched,
        policy,
    })
}

/// Reads one cache file.
pub fn read_file(path: &Path) -> Result<CacheFile, String> {
    use std::io::Read;
    let f = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    decode(&text)
}

/// Every cache file in `dir`, parsed or with its error, sorted by domain
/// (for `tern sts list`). A missing directory is an empty cache.
pub fn read_dir(dir: &Path) -> io::Result<Vec<(PathBuf, Result<CacheFile, String>)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        // Temporary files of an interrupted write.
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        let parsed = read_file(&path).and_then(|f| {
            if f.domain == name {
                Ok(f)
            } else {
                Err(format!("file is named {name} but holds {}", f.domain))
            }
        });
        out.push((path, parsed));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes `data` to `dir/name` atomically and durably.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}

/// Deletes `dir/name`; `Ok(false)` when there was none.
pub fn remove_file(dir: &Path, name: &str) -> io::Result<bool> {
    if !valid_domain(name) {
        return Ok(false);
    }
    match fs::remove_file(dir.join(name)) {
        Ok(()) => {
            // A purged policy must not come back after a power cut.
            fs::File::open(dir)?.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why an entry left the cache to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Expired,
    NotEnforce,
    LeastRecentlyUsed,
}

/// The cache (single-threaded; the resolver keeps it in an
/// `Rc<RefCell<..>>` so that it survives a reload).
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<String, Entry>,
    capacity: usize,
    dir: Option<PathBuf>,
    writes: u64,
}

impl Cache {
    /// An empty cache of at most `capacity` (at least 1) policies; files
    /// go to `dir` (`None`: memory only).
    pub fn new(capacity: usize, dir: Option<PathBuf>) -> Cache {
        Cache {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            dir,
            writes: 0,
        }
    }

    /// A cache filled from the files in `dir`: unreadable ones are logged
    /// and ignored, expired ones deleted, and beyond `capacity` the
    /// eviction order applies.
    pub fn load(capacity: usize, dir: PathBuf, now: u64) -> Cache {
        let mut cache = Cache::new(capacity, Some(dir.clone()));
        let files = match read_dir(&dir) {
            Ok(f) => f,
            Err(e) => {
                log::warn!(target: "smtp", "warning: mta-sts: {}: {e}; starting with an empty policy cache", dir.display());
                return cache;
            }
        };
        for (path, parsed) in files {
            match parsed {
                Ok(f) if now >= f.expires() => {
                    log::info!(target: "smtp", "mta-sts: {}: cached policy id={} expired; removed", f.domain, f.id);
                    cache.delete_file(&f.domain);
                }
                Ok(f) => {
                    let e = Entry {
                        id: f.id,
                        expires: f.expires(),
                        policy: Rc::new(f.policy),
                        fetched: f.fetched,
                        last_used: f.fetched,
                        used_since_fetch: false,
                        stored_fetched: Some(f.fetched),
                    };
                    cache.entries.insert(f.domain, e);
                }
                Err(e) => {
                    log::warn!(target: "smtp", "warning: mta-sts: {}: ignored: {e}", path.display());
                }
            }
        }
        cache.shrink(now, None);
        cache
    }

    /// The policy cached for `domain`, valid or not.
    pub fn get(&self, domain: &str) -> Option<&Entry> {
        self.entries.get(domain)
    }

    /// The valid policy for `domain`, marked as used at `now`.
    pub fn use_valid(&mut self, domain: &str, now: u64) -> Option<Entry> {
        let e = self.entries.get_mut(domain)?;
        if !e.is_valid(now) {
            return None;
        }
        e.last_used = now;
        e.used_since_fetch = true;
        Some(e.clone())
    }

    /// Number of cached policies.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most policies kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Files written so far (the write-only-on-change rule's counter).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// The cached domains and their entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(d, e)| (d.as_str(), e))
    }

    /// A new limit (reload); extra policies leave in eviction order.
    pub fn set_capacity(&mut self, capacity: usize, now: u64) {
        self.capacity = capacity.max(1);
        self.shrink(now, None);
    }

    /// Domains in use whose policy should be refreshed now: used since
    /// their last fetch, still valid, near expiry.
    pub fn due_for_refresh(&self, now: u64) -> Vec<String> {
        let mut due: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.used_since_fetch && e.is_valid(now) && e.near_expiry(now))
            .map(|(d, _)| d.clone())
            .collect();
        due.sort();
        due
    }

    /// Records a fetched policy for `domain` with discovery ID `id`
    /// (`mode: none` removes the domain's entry and file).
    pub fn store(&mut self, domain: &str, id: PolicyId, policy: Policy, now: u64) -> Stored {
        if policy.mode == Mode::None {
            let had = self.remove(domain);
            return Stored::Removed(had);
        }
        let old = self.entries.get(domain);
        let write = needs_write(old, &id, &policy, now);
        let outcome = match old {
            None => Stored::New,
            Some(o) if o.id != id || *o.policy != policy => Stored::Changed(o.id),
            Some(_) => Stored::Unchanged,
        };
        let last_used = old.map_or(now, |o| o.last_used);
        let stored_fetched = old.and_then(|o| o.stored_fetched);
        if old.is_none() {
            self.shrink(now, Some(domain));
        }
        let mut entry = Entry {
            id,
            expires: now.saturating_add(u64::from(policy.max_age)),
            policy: Rc::new(policy),
            fetched: now,
            last_used,
            used_since_fetch: false,
            stored_fetched,
        };
        if write && self.write_file(domain, &entry) {
            entry.stored_fetched = Some(now);
        }
        self.entries.insert(domain.to_string(), entry);
        outcome
    }

    /// Drops `domain` from memory and flash; `true` if it was cached.
    pub fn remove(&mut self, domain: &str) -> bool {
        let had = self.entries.remove(domain).is_some();
        self.delete_file(domain);
        had
    }

    /// Drops a domain (or, with `None`, every domain) from memory only:
    /// `tern sts purge` has deleted the files already.
    pub fn forget(&mut self, domain: Option<&str>) -> usize {
        match domain {
            Some(d) => usize::from(self.entries.remove(d).is_some()),
            None => {
                let n = self.entries.len();
                self.entries.clear();
                n
            }
        }
    }

    /// Evicts until there is room for `incoming` (or, with `None`, until
    /// the cache is within its capacity).
    fn shrink(&mut self, now: u64, incoming: Option<&str>) {
        let room = usize::from(incoming.is_some());
        while self.entries.len() + room > self.capacity {
            let Some((domain, why)) = self.victim(now) else {
                return;
            };
            let Some(e) = self.entries.remove(&domain) else {
                return;
            };
            self.delete_file(&domain);
            let for_whom = incoming
                .map(|d| format!(" to make room for {d}"))
                .unwrap_or_default();
            match why {
                Victim::LeastRecentlyUsed if e.policy.mode == Mode::Enforce => {
                    log::warn!(target: "smtp", "warning: mta-sts: {domain}: policy cache full (mta_sts_cache_size = {}): dropped the unexpired enforce policy id={} (valid for {}s more){for_whom}; it is fetched again when needed", self.capacity, e.id, e.remaining(now));
                }
                _ => {
                    let state = if why == Victim::Expired {
                        "expired"
                    } else {
                        e.policy.mode.as_str()
                    };
                    log::info!(target: "smtp", "mta-sts: {domain}: policy cache full (mta_sts_cache_size = {}): dropped the {state} policy id={}{for_whom}", self.capacity, e.id);
                }
            }
        }
    }

    fn victim(&self, now: u64) -> Option<(String, Victim)> {
        let pick = |f: &dyn Fn(&Entry) -> bool, key: &dyn Fn(&Entry) -> (u64, u64)| {
            self.entries
                .iter()
                .filter(|(_, e)| f(e))
                .min_by(|a, b| key(a.1).cmp(&key(b.1)).then_with(|| a.0.cmp(b.0)))
                .map(|(d, _)| d.clone())
        };
        if let Some(d) = pick(&|e| !e.is_valid(now), &|e| (e.expires, 0)) {
            return Some((d, Victim::Expired));
        }
        if let Some(d) = pick(&|e| e.policy.mode != Mode::Enforce, &|e| {
            (e.last_used, e.expires)
        }) {
            return Some((d, Victim::NotEnforce));
        }
        pick(&|_| true, &|e| (e.last_used, e.expires)).map(|d| (d, Victim::LeastRecentlyUsed))
    }

    fn write_file(&mut self, domain: &str, e: &Entry) -> bool {
        let Some(dir) = &self.dir else { return false };
        if !valid_domain(domain) {
            return false;
        }
        match write_atomic(dir, domain, encode(domain, e).as_bytes()) {
            Ok(()) => {
                self.writes += 1;
                true
            }
            Err(err) => {
                log::warn!(target: "smtp", "warning: mta-sts: {}: cannot write the policy cache file: {err}; the policy is kept in memory only", dir.join(domain).display());
                false
            }
        }
    }

    fn delete_file(&self, domain: &str) {
        let Some(dir) = &self.dir else { return };
        if let Err(err) = remove_file(dir, domain) {
            log::warn!(target: "smtp", "warning: mta-sts: {}: cannot remove the policy cache file: {err}", dir.join(domain).display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PolicyId {
        PolicyId::parse(s).unwrap()
    }

    fn pol(mode: Mode, max_age: u32, mx: &[&str]) -> Policy {
        Policy::from_parts(mode, max_age, mx).unwrap()
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "tern-sts-cache-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const DAY: u64 = 86_400;

    #[test]
    fn file_round_trip() {
        let p = pol(Mode::Enforce, 604_800, &["mx.example.com", "*.example.net"]);
        let e = Entry {
            id: id("20240101"),
            policy: Rc::new(p.clone()),
            fetched: 1_700_000_000,
            expires: 1_700_604_800,
            last_used: 0,
            used_since_fetch: false,
            stored_fetched: None,
        };
        let text = encode("example.com", &e);
        let f = decode(text.as_bytes()).unwrap();
        assert_eq!(f.domain, "example.com");
        assert_eq!(f.id, id("20240101"));
        assert_eq!(f.fetched, 1_700_000_000);
        assert_eq!(f.policy, p);
        assert_eq!(f.expires(), 1_700_604_800);
        assert!(decode(
            b"domain: ../etc\nid: a\nfetched: 1\nversion: STSv1\nmode: none\nmax_age: 1\n"
        )
        .is_err());
        assert!(decode(b"domain: a.b\nid: a\nfetched: x\n").is_err());
        assert!(decode(b"garbage").is_err());
        assert!(decode(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn write_only_on_change() {
        let t = TempDir::new("write");
        let mut c = Cache::new(10, Some(t.0.clone()));
        let p = pol(Mode::Enforce, 7 * DAY as u32, &["mx.example.com"]);
        let t0 = 1_000_000;
        assert_eq!(c.store("example.com", id("a"), p.clone(), t0), Stored::New);
        assert_eq!(c.writes(), 1);
        assert!(t.0.join("example.com").exists());
        // Refetched a day later, nothing changed: memory extends the
        // expiry, the file is left alone (it still promises 6 of 7 days).
        assert_eq!(
            c.store("example.com", id("a"), p.clone(), t0 + DAY),
            Stored::Unchanged
        );
        assert_eq!(c.writes(), 1);
        assert_eq!(c.get("example.com").unwrap().expires, t0 + 8 * DAY);
        // Three and a half days on, the file would fall short by exactly half:
        // still not written; past that it is.
        let half = t0 + 7 * DAY / 2;
        c.store("example.com", id("a"), p.clone(), half);
        assert_eq!(c.writes(), 1);
        c.store("example.com", id("a"), p.clone(), half + 1);
        assert_eq!(c.writes(), 2);
        assert_eq!(
            read_file(&t.0.join("example.com")).unwrap().fetched,
            half + 1
        );
        // A new ID with the same policy, and a changed policy, write.
        assert_eq!(
            c.store("example.com", id("b"), p.clone(), half + 2),
            Stored::Changed(id("a"))
        );
        assert_eq!(c.writes(), 3);
        let p2 = pol(Mode::Testing, 7 * DAY as u32, &["mx.example.com"]);
        assert_eq!(
            c.store("example.com", id("b"), p2, half + 3),
            Stored::Changed(id("b"))
        );
        assert_eq!(c.writes(), 4);
        assert_eq!(
            read_file(&t.0.join("example.com")).unwrap().policy.mode,
            Mode::Testing
        );
    }

    #[test]
    fn mode_none_removes() {
        let t = TempDir::new("none");
        let mut c = Cache::new(10, Some(t.0.clone()));
        let p = pol(Mode::Enforce, 1000, &["mx.example.com"]);
        c.store("example.com", id("a"), p, 10);
        assert!(t.0.join("example.com").exists());
        let none = Policy::parse(b"version: STSv1\nmode: none\nmax_age: 1000\n").unwrap();
        assert_eq!(
            c.store("example.com", id("b"), none.clone(), 20),
            Stored::Removed(true)
        );
        assert!(c.get("example.com").is_none());
        assert!(!t.0.join("example.com").exists());
        assert_eq!(
            c.store("example.com", id("b"), none, 30),
            Stored::Removed(false)
        );
        assert!(c.is_empty());
    }

    #[test]
    fn expiry_and_refresh_due() {
        let mut c = Cache::new(10, None);
        let p = pol(Mode::Enforce, 1000, &["mx.example.com"]);
        c.store("a.example", id("a"), p.clone(), 0);
        c.store("b.example", id("b"), p, 0);
        assert!(c.use_valid("a.example", 100).is_some());
        // Used, but not near expiry yet (margin is 250 s).
        assert!(c.due_for_refresh(700).is_empty());
        assert_eq!(c.due_for_refresh(750), ["a.example"]);
        // Expired: neither used nor refreshed proactively.
        assert!(c.use_valid("a.example", 1000).is_none());
        assert!(c.due_for_refresh(1000).is_empty());
        assert!(c.get("a.example").unwrap().near_expiry(999));
        assert_eq!(refresh_margin(31_557_600), 86_400);
    }

    #[test]
    fn eviction_order() {
        let t = TempDir::new("evict");
        let mut c = Cache::new(3, Some(t.0.clone()));
        let enf = |age| pol(Mode::Enforce, age, &["mx.example.com"]);
        let test = pol(Mode::Testing, 10_000, &["mx.example.com"]);
        c.store("old.example", id("a"), enf(100), 0); // expires at 100
        c.store("test.example", id("a"), test.clone(), 0);
        c.store("enf.example", id("a"), enf(10_000), 0);
        // Full: the expired one goes first, even though it was used last.
        c.use_valid("old.example", 50);
        c.store("new1.example", id("a"), enf(10_000), 200);
        assert!(c.get("old.example").is_none());
        assert!(!t.0.join("old.example").exists());
        // Then the testing policy, although the enforce one is older.
        c.use_valid("test.example", 300);
        c.store("new2.example", id("a"), enf(10_000), 400);
        assert!(c.get("test.example").is_none());
        // Then the least recently used enforce policy (logged).
        c.use_valid("new1.example", 500);
        c.use_valid("new2.example", 500);
        c.store("new3.example", id("a"), enf(10_000), 600);
        assert!(c.get("enf.example").is_none());
        assert!(!t.0.join("enf.example").exists());
        let mut left: Vec<&str> = c.iter().map(|(d, _)| d).collect();
        left.sort();
        assert_eq!(left, ["new1.example", "new2.example", "new3.example"]);
        // An update of a cached domain evicts nothing.
        c.store("new3.example", id("b"), enf(10_000), 700);
        assert_eq!(c.len(), 3);
        // Shrinking on reload.
        c.set_capacity(1, 800);
        assert_eq!(c.len(), 1);
        assert!(c.get("new3.example").is_some());
    }

    #[test]
    fn load_survives_restart_and_skips_bad_files() {
        let t = TempDir::new("load");
        {
            let mut c = Cache::new(10, Some(t.0.clone()));
            c.store(
                "keep.example",
                id("a"),
                pol(Mode::Enforce, 1000, &["mx.keep.example"]),
                0,
            );
            c.store(
                "gone.example",
                id("a"),
                pol(Mode::Enforce, 10, &["mx.gone.example"]),
                0,
            );
        }
        fs::write(t.0.join("bad.example"), "domain: bad.example\nid: x\n").unwrap();
        fs::write(t.0.join("other.example"), encode_for_test("keep2.example")).unwrap();
        fs::write(t.0.join(".keep.example.tmp"), "partial").unwrap();
        let c = Cache::load(10, t.0.clone(), 100);
        let mut left: Vec<&str> = c.iter().map(|(d, _)| d).collect();
        left.sort();
        assert_eq!(left, ["keep.example"]);
        let e = c.get("keep.example").unwrap();
        assert_eq!((e.fetched, e.expires, e.stored_fetched), (0, 1000, Some(0)));
        // The expired file was deleted; the broken ones stay for a human.
        assert!(!t.0.join("gone.example").exists());
        assert!(t.0.join("bad.example").exists());
        // Over capacity at load: eviction order applies.
        let c = Cache::load(1, t.0.clone(), 100);
        assert_eq!(c.len(), 1);
    }

    fn encode_for_test(domain: &str) -> String {
        let e = Entry {
            id: id("z"),
            policy: Rc::new(pol(Mode::Enforce, 1000, &["mx.example.com"])),
            fetched: 0,
            expires: 1000,
            last_used: 0,
            used_since_fetch: false,
            stored_fetched: None,
        };
        encode(domain, &e)
    }

    #[test]
    fn domains_for_file_names() {
        for ok in [
            "example.com",
            "a-b.example",
            "xn--bcher-kva.example",
            "localhost",
        ] {
            assert!(valid_domain(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a..b",
            ".a",
            "a/b",
            "A.example",
            "-a.example",
            "a b",
        ] {
            assert!(!valid_domain(bad), "{bad}");
        }
    }
}
