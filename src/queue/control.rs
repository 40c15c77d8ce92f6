//! Queue control, as Postfix's `postsuper`: `tern queue delete|hold|
//! release|requeue ID...|ALL`. Each operation works on the spool files
//! directly, so it works with the daemon running or not; every step is one
//! of the spool's crash-safe moves (docs/spool.md, docs/operation.md):
//!
//! - **delete**: unlink the message, then its state log (a log left by a
//!   crash is removed by the next scan); the command syncs once for all
//!   the messages it deleted before it reports them;
//! - **hold**: rename message and log into `hold/`, `syncfs` before
//!   saying so (a crash before leaves it where it was);
//! - **release**: rename both back into `deferred/` (Postfix's `-H`; the
//!   state log keeps each recipient's retry time), `syncfs`, wake the daemon;
//! - **requeue**: from any directory into `active/`, every deferred
//!   recipient made due now (one state record each), wake the daemon.
//!
//! A running daemon never delivers a held or deleted message afterwards:
//! it does not deliver from `hold/`, and a delivery session looks at the
//! file once more just before it sends each message ([`Spool::location`]).
//! A message already being transmitted when it is held or deleted may
//! still arrive, as with Postfix.

use std::path::Path;

use super::spool::{QueueDir, Spool, SpoolError};
use super::{Outcome, Status};

/// The four operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `postsuper -d`.
    Delete,
    /// `postsuper -h`.
    Hold,
    /// `postsuper -H`.
    Release,
    /// `postsuper -r`.
    Requeue,
}

impl Op {
    /// From the sub-command word.
    pub fn parse(word: &str) -> Option<Op> {
        match word {
            "delete" => Some(Op::Delete),
            "hold" => Some(Op::Hold),
            "release" => Some(Op::Release),
            "requeue" => Some(Op::Requeue),
            _ => None,
        }
    }

    /// Postfix's per-message log text (`ID: removed`).
    pub fn done_text(self) -> &'static str {
        match self {
            Op::Delete => "removed",
            Op::Hold => "placed on hold",
            Op::Release => "released from hold",
            Op::Requeue => "requeued",
        }
    }

    /// Postfix's summary line, `Deleted: 3 messages`.
    pub fn summary(self, n: usize) -> String {
        let what = match self {
            Op::Delete => "Deleted",
            Op::Hold => "Placed on hold",
            Op::Release => "Released from hold",
            Op::Requeue => "Requeued",
        };
        format!("{what}: {n} message{}", if n == 1 { "" } else { "s" })
    }

    /// The directories the operation applies to (Postfix's defaults:
    /// hold only from the queue, release only from hold).
    fn sources(self) -> &'static [QueueDir] {
        match self {
            Op::Delete | Op::Requeue => &[QueueDir::Active, QueueDir::Deferred, QueueDir::Hold],
            Op::Hold => &[QueueDir::Active, QueueDir::Deferred],
            Op::Release => &[QueueDir::Hold],
        }
    }
}

/// The result of one operation on one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    /// Done (and logged).
    Changed,
    /// Not in a directory the operation applies to (already held, not
    /// held, or gone): nothing to do, as postsuper counts it.
    Skipped,
}

/// A file the daemon might be renaming at the same moment (active/ to
/// deferred/): look again, a few times.
const RETRIES: usize = 5;

/// Applies `op` to message `id`. `now` is the time of state records.
pub fn apply(spool: &Spool, op: Op, id: &str, now: u64) -> Result<Done, SpoolError> {
    for _ in 0..RETRIES {
        let Some(dir) = spool.location(id) else {
            return Ok(Done::Skipped);
        };
        if !op.sources().contains(&dir) {
            return Ok(Done::Skipped);
        }
        let r = match op {
            Op::Delete => spool.remove(id),
            Op::Hold => spool.hold(id),
            Op::Release => spool.release(id),
            Op::Requeue => requeue(spool, id, now),
        };
        match r {
            Ok(()) => return Ok(Done::Changed),
            // Moved or removed by the daemon between the look and the
            // rename: look again.
            Err(SpoolError::NotFound { .. }) => continue,
            Err(SpoolError::Io { ref source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Done::Skipped)
}

fn requeue(spool: &Spool, id: &str, now: u64) -> Result<(), SpoolError> {
    spool.release_to(id, QueueDir::Active)?;
    let Some(entry) = spool.scan_one(id)? else {
        return Ok(());
    };
    let due: Vec<(usize, Outcome)> = entry
        .rcpts
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r.status {
            Status::Deferred { until } if until > now => Some((
                i,
                Outcome::Deferred {
                    until: now,
                    text: r.last_text.clone(),
                },
            )),
            _ => None,
        })
        .collect();
    if !due.is_empty() {
        spool.record(id, &due, now)?;
        give_state_to_owner(spool, id);
    }
    Ok(())
}

/// Root's `record` may have created the state log: it must belong to the
/// spool's owner, or the daemon (running as `mail_owner`) cannot append.
fn give_state_to_owner(spool: &Spool, id: &str) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Ok(owner) = std::fs::metadata(spool.root().join("active")) else {
        return;
    };
    for d in [QueueDir::Active, QueueDir::Deferred, QueueDir::Hold] {
        let p = spool.root().join(d.name()).join(format!("{id}.state"));
        if p.exists() {
            let _ = std::os::unix::fs::chown(&p, Some(owner.uid()), Some(owner.gid()));
        }
    }
}

/// The IDs `ALL` stands for: every message in the operation's directories.
pub fn all_ids(spool: &Spool, op: Op) -> Result<Vec<String>, SpoolError> {
    let mut ids = Vec::new();
    for d in op.sources() {
        let dir = spool.root().join(d.name());
        let rd = std::fs::read_dir(&dir).map_err(|source| SpoolError::Io {
            op: "readdir",
            path: dir.clone(),
            source,
        })?;
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if super::envelope::is_queue_id(&n) {
                ids.push(n);
            }
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// May this process change the queue? Root or the owner of the spool.
pub fn may_change(queue_directory: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || std::fs::metadata(queue_directory.join("active")).is_ok_and(|m| m.uid() == euid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_words() {
        assert_eq!(Op::Delete.summary(1), "Deleted: 1 message");
        assert_eq!(Op::Hold.summary(2), "Placed on hold: 2 messages");
        assert_eq!(Op::Release.summary(0), "Released from hold: 0 messages");
        assert_eq!(Op::Requeue.done_text(), "requeued");
    }
}
