//! `tern status`: the daemon's in-memory figures, served on the unix
//! stream socket `$queue_directory/private/status` (directory mode 0700,
//! owned by `mail_owner`: root and the spool's owner may ask, as with
//! Postfix's `postfix status`). The client sends nothing; the daemon
//! writes a text report and closes. Also here: the fixed-size tally of
//! outbound TLS results over the last 24 hours that the report shows.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::delivery::report::{TlsAttempt, TlsReportSink};
use crate::tls::summary::Trust;
use crate::tls::TlsOutcome;

/// Path of the status socket under the queue directory.
pub fn socket_path(queue_directory: &Path) -> PathBuf {
    queue_directory.join("private").join("status")
}

/// How long either side waits for the other.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Outbound connection results, by how far the server was authenticated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsCounts {
    /// Chain and name verified, or a DANE / fingerprint match.
    pub verified: u64,
    /// Chain to a trusted CA, name not checked.
    pub trusted: u64,
    /// Encrypted, server not authenticated.
    pub untrusted: u64,
    /// Handshakes that failed (or TLS required and not offered).
    pub failed: u64,
    /// Sessions that carried mail without TLS.
    pub plaintext: u64,
}

impl TlsCounts {
    fn add(&mut self, o: &TlsCounts) {
        self.verified += o.verified;
        self.trusted += o.trusted;
        self.untrusted += o.untrusted;
        self.failed += o.failed;
        self.plaintext += o.plaintext;
    }
}

/// One bucket per hour: 24 of them cover the last day in a fixed 24 x 48
/// bytes, whatever the traffic.
const BUCKETS: usize = 24;

/// Outbound TLS results of the last 24 hours, in hourly buckets.
#[derive(Debug, Default)]
pub struct TlsTally {
    buckets: RefCell<[(u64, TlsCounts); BUCKETS]>,
}

impl TlsTally {
    fn bump(&self, now: u64, f: impl FnOnce(&mut TlsCounts)) {
        let hour = now / 3600;
        let mut b = self.buckets.borrow_mut();
        let slot = &mut b[(hour % BUCKETS as u64) as usize];
        if slot.0 != hour {
            *slot = (hour, TlsCounts::default());
        }
        f(&mut slot.1);
    }

    /// One TLS attempt at `now` (Unix seconds).
    pub fn record_at(&self, a: &TlsAttempt, now: u64) {
        self.bump(now, |c| match &a.outcome {
            TlsOutcome::Success(Trust::Verified) => c.verified += 1,
            TlsOutcome::Success(Trust::Trusted) => c.trusted += 1,
            TlsOutcome::Success(Trust::Untrusted) => c.untrusted += 1,
            TlsOutcome::Failure { .. } => c.failed += 1,
        });
    }

    /// A session that carried mail without TLS, at `now`.
    pub fn plaintext_at(&self, now: u64) {
        self.bump(now, |c| c.plaintext += 1);
    }

    /// The sums over the 24 hours up to `now`.
    pub fn last_day(&self, now: u64) -> TlsCounts {
        let hour = now / 3600;
        let mut sum = TlsCounts::default();
        for (h, c) in self.buckets.borrow().iter() {
            if *h + (BUCKETS as u64) > hour && *h <= hour {
                sum.add(c);
            }
        }
        sum
    }
}

impl TlsReportSink for TlsTally {
    fn record(&self, attempt: &TlsAttempt) {
        self.record_at(attempt, crate::mtasts::resolver::unix_now());
    }
}

/// The daemon's side: creates `private/` (mode 0700) and binds the
/// socket in it, replacing a stale one. Called as `mail_owner`.
pub fn bind(queue_directory: &Path) -> io::Result<smol::Async<UnixListener>> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(queue_directory);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    smol::Async::new(l)
}

/// Serves reports made by `report`, one client at a time.
pub async fn serve(listener: smol::Async<UnixListener>, report: Rc<dyn Fn() -> String>) {
    use smol::io::AsyncWriteExt;
    loop {
        let mut conn = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                log::warn!(target: "master", "warning: status socket: accept: {e}");
                smol::Timer::after(Duration::from_secs(1)).await;
                continue;
            }
        };
        let text = report();
        let sent = smol::future::or(
            async { conn.write_all(text.as_bytes()).await.map(|_| true) },
            async {
                smol::Timer::after(TIMEOUT).await;
                Ok(false)
            },
        )
        .await;
        if let Ok(false) = sent {
            log::warn!(target: "master", "warning: tern status client did not read its report within {TIMEOUT:?}");
        }
    }
}

/// The client: the daemon's report, or `Ok(None)` when nobody answers.
pub fn query(queue_directory: &Path) -> io::Result<Option<String>> {
    let path = socket_path(queue_directory);
    let s = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            return match e.raw_os_error() {
                Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => Ok(None),
                _ => Err(io::Error::new(
                    e.kind(),
                    format!("connect {}: {e}", path.display()),
                )),
            }
        }
    };
    s.set_read_timeout(Some(TIMEOUT))?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf)?;
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// `up 1d 02:03:04` style duration.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// The figures the report is made of (gathered by the daemon).
#[derive(Debug, Default)]
pub struct Figures {
    /// Daemon pid.
    pub pid: u32,
    /// Seconds since start.
    pub uptime: u64,
    /// Listener addresses with their service.
    pub listeners: Vec<String>,
    /// Messages per queue directory: active, deferred, hold.
    pub active: usize,
    /// Messages in deferred/.
    pub deferred: usize,
    /// Messages in hold/.
    pub hold: usize,
    /// Bytes of all queue files.
    pub queue_bytes: u64,
    /// Deferred recipients grouped by their last reason, most first.
    pub reasons: Vec<(usize, String)>,
    /// Outbound TLS results of the last 24 h.
    pub tls: TlsCounts,
    /// Fixed buffers reserved at start (bytes).
    pub reserved: usize,
    /// Of those, held by connections now (bytes).
    pub in_use: usize,
    /// Connections holding buffers now, and the ceiling.
    pub connections: (usize, usize),
    /// Resident set size of the process (bytes), when known.
    pub resident: Option<u64>,
}

/// Most reasons listed; the rest are summed on one line.
const MAX_REASONS: usize = 10;

/// Renders the report (sans-I/O).
pub fn render(f: &Figures, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "tern: the mail system is running: pid {}, up {}",
        f.pid,
        uptime(f.uptime)
    )?;
    writeln!(out, "version: {}", env!("CARGO_PKG_VERSION"))?;
    if f.listeners.is_empty() {
        writeln!(out, "listeners: none")?;
    }
    for l in &f.listeners {
        writeln!(out, "listener: {l}")?;
    }
    writeln!(
        out,
        "queue: {} messages ({} active, {} deferred, {} on hold), {} KiB",
        f.active + f.deferred + f.hold,
        f.active,
        f.deferred,
        f.hold,
        f.queue_bytes.div_ceil(1024)
    )?;
    let total: usize = f.reasons.iter().map(|(n, _)| n).sum();
    writeln!(out, "deferred recipients: {total}")?;
    for (n, why) in f.reasons.iter().take(MAX_REASONS) {
        writeln!(out, "  {n:>6}  {why}")?;
    }
    if f.reasons.len() > MAX_REASONS {
        let rest: usize = f.reasons.iter().skip(MAX_REASONS).map(|(n, _)| n).sum();
        writeln!(out, "  {rest:>6}  (other reasons)")?;
    }
    let t = &f.tls;
    writeln!(
        out,
        "outbound TLS, last 24 h: Verified {}, Trusted {}, Untrusted {}, failed {}, plaintext {}",
        t.verified, t.trusted, t.untrusted, t.failed, t.plaintext
    )?;
    write!(
        out,
        "memory: {} KiB of fixed buffers reserved, {} KiB in use ({} of {} connections)",
        f.reserved / 1024,
        f.in_use / 1024,
        f.connections.0,
        f.connections.1
    )?;
    match f.resident {
        Some(r) => writeln!(out, "; resident {} KiB", r / 1024),
        None => writeln!(out),
    }
}

/// Resident set size from /proc/self/statm, when there is one.
pub fn resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Deferred recipients of `entries` grouped by last reason, most first.
pub fn reasons(entries: &[crate::queue::QueueEntry]) -> Vec<(usize, String)> {
    let mut m: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for e in entries {
        if e.dir == crate::queue::QueueDir::Hold {
            continue;
        }
        for r in &e.rcpts {
            if let crate::queue::Status::Deferred { .. } = r.status {
                let why = if r.last_text.is_empty() {
                    "(no reason recorded)"
                } else {
                    r.last_text.as_str()
                };
                *m.entry(why).or_default() += 1;
            }
        }
    }
    let mut v: Vec<(usize, String)> = m.into_iter().map(|(k, n)| (n, k.to_string())).collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_forgets_after_a_day() {
        let t = TlsTally::default();
        let h = 1_000_000 * 3600;
        t.plaintext_at(h);
        t.plaintext_at(h + 3599);
        t.plaintext_at(h + 5 * 3600);
        assert_eq!(t.last_day(h + 5 * 3600).plaintext, 3);
        assert_eq!(t.last_day(h + 23 * 3600).plaintext, 3);
        // The first hour's bucket drops out after 24 h.
        assert_eq!(t.last_day(h + 24 * 3600).plaintext, 1);
        // A bucket reused a day later starts from zero.
        t.plaintext_at(h + 24 * 3600);
        assert_eq!(t.last_day(h + 24 * 3600).plaintext, 2);
        assert_eq!(t.last_day(h + 60 * 3600).plaintext, 0);
    }

    #[test]
    fn uptime_format() {
        assert_eq!(uptime(65), "00:01:05");
        assert_eq!(uptime(90061), "1d 01:01:01");
    }
}
