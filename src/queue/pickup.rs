//! The daemon's pickup (Postfix's pickup(8)): turns each complete file in
//! `maildrop/` into a normal queue file, then removes it.
//!
//! - Complete files only: names starting with `.` are still being written
//!   (removed once older than a day: their writer died).
//! - The sender is the file's owner (`fstat` on the opened file), resolved
//!   to a login name; it becomes the default envelope sender, and the log
//!   says `ID: uid=N from=<...>`. Symlinks, non-regular files and hard
//!   links (a link to a file the user does not own) are refused.
//! - The message is queued by [`crate::cleanup::local::enqueue`], the code
//!   root's `sendmail` runs, so headers are completed and addresses
//!   rewritten the same way. Only after that commit is the maildrop file
//!   unlinked: a crash in between queues it twice, never loses it.
//! - A file that can never be queued (bad envelope, too big, bad address,
//!   unknown owner) is moved to `corrupt/` with a warning, never deleted
//!   nor replacing an earlier one (a taken name gets `.1`, `.2`...);
//!   a temporary failure (spool full, I/O error) leaves it for the next run.
//!
//! Memory: one [`MAX_ENVELOPE`] buffer for the envelope; the message is
//! streamed through cleanup's fixed buffers.

use super::maildrop::{self, MAX_ENVELOPE};
use crate::cleanup::{self, ErrorKind, Invoker, Settings, Submission};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Most files handled by one [`run_once`]; the rest wait for the next run,
/// so a flood of maildrop files cannot hold the thread for long.
pub const MAX_PER_RUN: usize = 100;

/// What one run did.
#[derive(Debug, Default)]
pub struct PickupRun {
    /// Queue IDs of the messages queued.
    pub queued: Vec<String>,
    /// Files moved to `corrupt/`.
    pub corrupt: usize,
    /// Files left for later (temporary failure).
    pub deferred: usize,
    /// More files were waiting than [`MAX_PER_RUN`]: run again soon.
    pub more: bool,
}

enum Picked {
    Queued(String),
    Retry(String),
    Corrupt(Option<u32>, String),
    Gone,
}

/// Picks up to [`MAX_PER_RUN`] maildrop files under `params.queue_directory`.
pub fn run_once(params: &Settings) -> PickupRun {
    let qd = &params.queue_directory;
    let dir = maildrop::dir(qd);
    let mut run = PickupRun::default();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) => {
            log::warn!(target: "pickup", "warning: {}: {e}", dir.display());
            return run;
        }
    };
    let mut seen = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            // tern's sendmail never makes such a name: keep it aside.
            corrupt_move(
                qd,
                &e.file_name().to_string_lossy(),
                &e.path(),
                None,
                "file name is not UTF-8",
            );
            run.corrupt += 1;
            continue;
        };
        if name.starts_with('.') {
            remove_stale(&e.path());
            continue;
        }
        if seen == MAX_PER_RUN {
            run.more = true;
            break;
        }
        seen += 1;
        let path = e.path();
        match pick(params, &path) {
            Picked::Queued(id) => {
                if let Err(err) = std::fs::remove_file(&path) {
                    // It would be queued again on every run: set it aside.
                    log::error!(target: "pickup", "{id}: cannot remove maildrop/{name} after queuing it: {err}");
                    corrupt_move(qd, name, &path, None, "queued, but could not be removed");
                }
                run.queued.push(id);
            }
            Picked::Retry(why) => {
                log::warn!(target: "pickup", "warning: maildrop/{name}: {why}; will try again");
                run.deferred += 1;
            }
            Picked::Corrupt(uid, why) => {
                corrupt_move(qd, name, &path, uid, &why);
                run.corrupt += 1;
            }
            Picked::Gone => {}
        }
    }
    run
}

/// Most `NAME.N` suffixes tried in `corrupt/` before giving up: users
/// choose maildrop names, so the same name may come back many times.
const MAX_CORRUPT_SUFFIX: u32 = 1000;

/// The first name in `corrupt/` not taken yet: `NAME`, then `NAME.1`,
/// `NAME.2`... `None` when all [`MAX_CORRUPT_SUFFIX`] are taken. A file
/// kept for the administrator must never replace an earlier one (rename
/// overwrites silently).
fn corrupt_name(name: &str, taken: impl Fn(&str) -> bool) -> Option<String> {
    if !taken(name) {
        return Some(name.to_string());
    }
    (1..=MAX_CORRUPT_SUFFIX)
        .map(|n| format!("{name}.{n}"))
        .find(|c| !taken(c))
}

fn corrupt_move(qd: &Path, name: &str, path: &Path, uid: Option<u32>, why: &str) {
    let dir = maildrop::corrupt_dir(qd);
    let who = uid.map(|u| format!("uid={u}: ")).unwrap_or_default();
    // Checking first, then renaming, has no race: corrupt/ is 0700 and
    // only this (single-threaded) pickup puts files there.
    let Some(to_name) = corrupt_name(name, |n| std::fs::symlink_metadata(dir.join(n)).is_ok())
    else {
        log::error!(
            target: "pickup",
            "maildrop/{name}: {who}{why}; cannot move it: {} and {MAX_CORRUPT_SUFFIX} numbered names are taken in corrupt/",
            name
        );
        return;
    };
    let to = dir.join(&to_name);
    match std::fs::rename(path, &to) {
        Ok(()) => {
            log::warn!(target: "pickup", "warning: maildrop/{name}: {who}{why}; moved to corrupt/{to_name}")
        }
        Err(e) => log::error!(
            target: "pickup",
            "maildrop/{name}: {who}{why}; cannot move it to {}: {e}",
            to.display()
        ),
    }
}

/// A `.NAME` file whose writer died long ago (a day, like `incoming/`).
fn remove_stale(path: &Path) {
    let old = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > Duration::from_secs(86_400));
    if old && std::fs::remove_file(path).is_ok() {
        log::info!(target: "pickup", "removed stale maildrop file {}", path.display());
    }
}

fn pick(params: &Settings, path: &Path) -> Picked {
    // O_NOFOLLOW: a symlink is refused; O_NONBLOCK: a FIFO cannot block us.
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Picked::Gone,
        Err(e) => return Picked::Corrupt(None, format!("cannot open: {e}")),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Picked::Retry(format!("fstat: {e}")),
    };
    let uid = meta.uid();
    if !meta.file_type().is_file() {
        return Picked::Corrupt(Some(uid), "not a regular file".into());
    }
    if meta.nlink() != 1 {
        return Picked::Corrupt(Some(uid), format!("has {} links", meta.nlink()));
    }
    let Some(who) = Invoker::from_uid(uid) else {
        return Picked::Corrupt(Some(uid), format!("no login name for user ID {uid}"));
    };
    let mut head = [0u8; MAX_ENVELOPE];
    let got = match read_full(&mut file, &mut head) {
        Ok(n) => n,
        Err(e) => return Picked::Retry(format!("read: {e}")),
    };
    let (env, head_len) = match maildrop::parse(&head[..got]) {
        Ok(x) => x,
        Err(e) => return Picked::Corrupt(Some(uid), format!("malformed: {e}")),
    };
    let body_len = meta.len().saturating_sub(head_len as u64);
    let limit = params.message_size_limit;
    if limit > 0 && body_len > limit {
        return Picked::Corrupt(
            Some(uid),
            format!("message too big ({body_len} bytes, message_size_limit = {limit})"),
        );
    }
    // queue_minfree, as for root's sendmail: short of space, it waits here.
    match super::space::check_dir(&params.queue_directory, params.queue_minfree, 0, 0) {
        Ok(Ok(())) => {}
        Ok(Err(short)) => return Picked::Retry(short.minfree_text()),
        Err(e) => return Picked::Retry(format!("cannot check free space: {e}")),
    }
    if let Err(e) = file.seek(SeekFrom::Start(head_len as u64)) {
        return Picked::Retry(format!("seek: {e}"));
    }
    // Bounded by the size seen at fstat: a writer still appending cannot
    // make us read more.
    let mut body = file.take(body_len);
    let sub = Submission {
        sender: env.sender,
        full_name: env.full_name,
        recipients: env.recipients,
        extract: env.extract,
        // The submitting sendmail already stopped at a lone dot.
        dot_ends: false,
    };
    match cleanup::local::enqueue(params, &sub, &who, super::clock::now(), &mut body) {
        Ok(id) => Picked::Queued(id),
        Err(e) if e.kind == ErrorKind::Temporary => Picked::Retry(e.message),
        Err(e) => Picked::Corrupt(Some(uid), e.message),
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::maildrop::{encode, DropEnvelope};

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn spool() -> (Dir, Settings) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("tern-pickup-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        crate::queue::Spool::open(&d).unwrap();
        maildrop::prepare(&d).unwrap();
        let p = Settings::new(d.clone(), "box.test", "box.test");
        (Dir(d), p)
    }

    fn drop_file(p: &Settings, name: &str, env: &DropEnvelope, body: &[u8]) {
        let mut data = Vec::new();
        encode(env, &mut data).unwrap();
        data.extend_from_slice(body);
        std::fs::write(maildrop::dir(&p.queue_directory).join(name), data).unwrap();
    }

    fn env(rcpt: &str) -> DropEnvelope {
        DropEnvelope {
            recipients: vec![rcpt.into()],
            ..Default::default()
        }
    }

    #[test]
    fn queues_good_files_sets_bad_ones_aside_and_skips_unfinished_ones() {
        let (_d, p) = spool();
        let md = maildrop::dir(&p.queue_directory);
        drop_file(&p, "good", &env("a@x.test"), b"Subject: s\r\n\r\nhi\r\n");
        drop_file(&p, "badrcpt", &env("<a@x"), b"Subject: s\r\n\r\nhi\r\n");
        std::fs::write(md.join("garbage"), b"hello\n").unwrap();
        std::fs::write(md.join(".inprogress"), b"tern-maildrop 1\n").unwrap();
        let run = run_once(&p);
        assert_eq!(run.queued.len(), 1, "{run:?}");
        assert_eq!(run.corrupt, 2, "{run:?}");
        assert!(!run.more);
        let left: Vec<String> = std::fs::read_dir(&md)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, [".inprogress"], "only the unfinished file stays");
        let corrupt = maildrop::corrupt_dir(&p.queue_directory);
        assert_eq!(std::fs::read(corrupt.join("garbage")).unwrap(), b"hello\n");
        assert!(corrupt.join("badrcpt").exists());
        let spool = crate::queue::Spool::open(&p.queue_directory).unwrap();
        let list = spool.list().unwrap();
        assert_eq!(list.entries.len(), 1);
        let e = &list.entries[0].envelope;
        assert_eq!(e.id, run.queued[0]);
        assert_eq!(e.recipients[0].address, "a@x.test");
        assert!(
            e.sender.ends_with("@box.test"),
            "owner's login: {}",
            e.sender
        );
    }

    #[test]
    fn too_big_goes_aside_and_a_full_spool_leaves_the_file() {
        let (_d, mut p) = spool();
        let md = maildrop::dir(&p.queue_directory);
        p.message_size_limit = 10;
        drop_file(
            &p,
            "big",
            &env("a@x.test"),
            b"Subject: s\r\n\r\n0123456789\r\n",
        );
        let run = run_once(&p);
        assert_eq!((run.queued.len(), run.corrupt), (0, 1), "{run:?}");
        p.message_size_limit = 0;
        p.queue_minfree = u64::MAX / 4;
        drop_file(&p, "wait", &env("a@x.test"), b"Subject: s\r\n\r\nhi\r\n");
        let run = run_once(&p);
        assert_eq!((run.queued.len(), run.corrupt, run.deferred), (0, 0, 1));
        assert!(md.join("wait").exists(), "kept for the next run");
        p.queue_minfree = 0;
        let run = run_once(&p);
        assert_eq!(run.queued.len(), 1, "{run:?}");
        assert!(!md.join("wait").exists());
    }

    #[test]
    fn corrupt_files_with_the_same_name_are_all_kept() {
        let (_d, p) = spool();
        let md = maildrop::dir(&p.queue_directory);
        let corrupt = maildrop::corrupt_dir(&p.queue_directory);
        for round in 0..3u8 {
            std::fs::write(md.join("same"), [b'0' + round]).unwrap();
            let run = run_once(&p);
            assert_eq!(run.corrupt, 1, "{run:?}");
        }
        assert_eq!(std::fs::read(corrupt.join("same")).unwrap(), b"0");
        assert_eq!(std::fs::read(corrupt.join("same.1")).unwrap(), b"1");
        assert_eq!(std::fs::read(corrupt.join("same.2")).unwrap(), b"2");
        assert!(!md.join("same").exists());
    }

    #[test]
    fn corrupt_name_is_bounded() {
        assert_eq!(corrupt_name("n", |_| false).as_deref(), Some("n"));
        assert_eq!(
            corrupt_name("n", |c| c == "n" || c == "n.1").as_deref(),
            Some("n.2")
        );
        assert_eq!(corrupt_name("n", |_| true), None);
    }
}
