//! `mailq` for users who cannot read the queue files (Postfix's showq(8)
//! with `authorized_mailq_users` = anyone): the daemon, which can, answers
//! on the unix stream socket `$queue_directory/public/showq` (mode 0666)
//! with the listing `mailq` prints: IDs, sizes, times, addresses and the
//! last error — never message content. The client sends nothing; the
//! daemon writes the listing and closes.
//!
//! Why a socket and not a world-readable summary file: the listing is made
//! from the spool when asked, so it is never stale, and costs nothing on
//! flash (a summary file would be rewritten on every queue change).

use super::mailq::write_listing;
use super::Spool;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// Path of the listing socket under the queue directory.
pub fn socket_path(queue_directory: &Path) -> PathBuf {
    queue_directory.join("public").join("showq")
}

/// How long the daemon waits for a slow reader, and a client for the daemon.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The daemon's side: binds `public/showq` (replacing a stale socket),
/// mode 0666 so any local user's `mailq` can connect.
pub fn bind(queue_directory: &Path) -> io::Result<smol::Async<UnixListener>> {
    let path = socket_path(queue_directory);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(&path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    smol::Async::new(l)
}

/// How long one listing is reused for the next clients.
const REUSE: Duration = Duration::from_secs(1);

/// Serves listings, one client at a time (a client that does not read is
/// dropped after [`TIMEOUT`]; others wait in the listen backlog). The
/// listing is built in memory: its size follows the queue, not the client;
/// one listing serves every client within [`REUSE`] of it.
pub async fn serve(listener: smol::Async<UnixListener>, spool: Rc<Spool>) {
    use smol::io::AsyncWriteExt;
    let mut last: Option<(std::time::Instant, Vec<u8>)> = None;
    loop {
        let mut conn = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                log::warn!(target: "showq", "warning: accept: {e}");
                smol::Timer::after(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Reading the spool runs on the only thread: a user running mailq
        // in a loop gets at most one fresh listing per REUSE.
        let fresh = matches!(&last, Some((at, _)) if at.elapsed() < REUSE);
        if !fresh {
            let mut text = Vec::new();
            if let Err(e) = listing(&spool, &mut text) {
                log::warn!(target: "showq", "warning: queue listing: {e}");
                text.clear();
                let _ = writeln!(text, "mailq: fatal: queue listing failed; see the mail log");
            }
            last = Some((std::time::Instant::now(), text));
        }
        let text: &[u8] = last.as_ref().map_or(&[], |(_, t)| t);
        let sent = smol::future::or(async { conn.write_all(text).await.map(|_| true) }, async {
            smol::Timer::after(TIMEOUT).await;
            Ok(false)
        })
        .await;
        match sent {
            Ok(true) => {}
            Ok(false) => {
                log::warn!(target: "showq", "warning: mailq client did not read its listing within {TIMEOUT:?}")
            }
            Err(e) => log::info!(target: "showq", "mailq client went away: {e}"),
        }
    }
}

fn listing(spool: &Spool, out: &mut Vec<u8>) -> Result<(), super::SpoolError> {
    let report = spool.list()?;
    for u in &report.unreadable {
        log::warn!(target: "showq", "warning: {u}");
    }
    write_listing(&report.entries, out, &super::clock::local).map_err(|source| {
        super::SpoolError::Io {
            op: "write",
            path: "<listing>".into(),
            source,
        }
    })
}

/// The client: copies the daemon's listing to `out`. `Ok(false)` when no
/// daemon answers (no socket, or nobody listening).
pub fn query(queue_directory: &Path, out: &mut dyn Write) -> io::Result<bool> {
    let path = socket_path(queue_directory);
    let mut s = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            return match e.raw_os_error() {
                Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => Ok(false),
                _ => Err(io::Error::new(
                    e.kind(),
                    format!("connect {}: {e}", path.display()),
                )),
            }
        }
    };
    s.set_read_timeout(Some(TIMEOUT))?;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => out.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether this process reads the queue files itself: root, the spool's
/// owner, or anyone while there is no spool yet (the direct path creates
/// it if it may); otherwise `mailq` asks the daemon ([`query`]).
pub fn can_read_spool(queue_directory: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    match std::fs::metadata(queue_directory.join("active")) {
        Ok(m) => euid == 0 || m.uid() == euid,
        Err(_) => true,
    }
}

/// Why [`mailq_for_caller`] printed no listing.
#[derive(Debug)]
pub enum MailqError {
    /// Reading the spool failed (exit 75).
    Spool(super::SpoolError),
    /// The daemon is not running, so nobody can list for us (exit 69).
    Down,
    /// Talking to the daemon failed (exit 75).
    Io(io::Error),
}

impl std::fmt::Display for MailqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailqError::Spool(e) => write!(f, "{e}"),
            // Postfix's postqueue says the same.
            MailqError::Down => write!(f, "Queue report unavailable - mail system is down"),
            MailqError::Io(e) => write!(f, "queue report from the daemon: {e}"),
        }
    }
}

/// `mailq` for whoever runs it: reads the spool directly when allowed,
/// otherwise asks the daemon over `public/showq`.
pub fn mailq_for_caller(
    queue_directory: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), MailqError> {
    if can_read_spool(queue_directory) {
        return super::mailq::mailq(queue_directory, out, err).map_err(MailqError::Spool);
    }
    match query(queue_directory, out) {
        Ok(true) => Ok(()),
        Ok(false) => Err(MailqError::Down),
        Err(e) => Err(MailqError::Io(e)),
    }
}
