//! Wake-up calls to a running daemon: a unix datagram socket
//! `$queue_directory/public/qmgr`. `sendmail` sends "new mail", `tern flush`
//! sends "flush"; the daemon then scans the queue. `tern sts purge` sends
//! "forget this MTA-STS policy" after deleting its cache file. Losing a
//! wake-up is harmless (the daemon also scans periodically; a purged
//! policy left in memory is at worst used until it is next refreshed), so
//! both sides are best-effort and never block.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Path of the wake-up socket under the queue directory.
pub fn socket_path(queue_directory: &Path) -> PathBuf {
    queue_directory.join("public").join("qmgr")
}

/// What the daemon is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A new message is in `active/`: scan it soon (Postfix's `I` trigger).
    NewMail,
    /// Retry every deferred message now (`tern flush`, `sendmail -q`; Postfix's `F`).
    Flush,
    /// Drop a cached MTA-STS policy from memory (`None`: all of them);
    /// `tern sts purge` has deleted the file(s). `P` + the domain.
    StsPurge(Option<String>),
    /// TLSRPT: `Tc` write the counters' checkpoint now (`tern tlsrpt
    /// show`), `Ts` send the reports now (`tern tlsrpt send --now`).
    TlsRpt(crate::tlsrpt::daemon::Request),
}

/// The longest datagram: `P` and a domain name.
const MAX_DATAGRAM: usize = 1 + 253;

impl Wake {
    fn encode(&self) -> Vec<u8> {
        match self {
            Wake::NewMail => b"I".to_vec(),
            Wake::Flush => b"F".to_vec(),
            Wake::StsPurge(d) => {
                let mut v = b"P".to_vec();
                v.extend_from_slice(d.as_deref().unwrap_or("").as_bytes());
                v
            }
            Wake::TlsRpt(crate::tlsrpt::daemon::Request::Checkpoint) => b"Tc".to_vec(),
            Wake::TlsRpt(crate::tlsrpt::daemon::Request::SendNow) => b"Ts".to_vec(),
        }
    }
    /// Decodes a datagram; unknown requests give `None` (ignored).
    pub fn from_datagram(d: &[u8]) -> Option<Wake> {
        match d {
            [b'I'] => Some(Wake::NewMail),
            [b'F'] => Some(Wake::Flush),
            [b'P'] => Some(Wake::StsPurge(None)),
            [b'T', b'c'] => Some(Wake::TlsRpt(crate::tlsrpt::daemon::Request::Checkpoint)),
            [b'T', b's'] => Some(Wake::TlsRpt(crate::tlsrpt::daemon::Request::SendNow)),
            [b'P', domain @ ..] => {
                // Only a name the cache could hold: anyone may write to
                // the socket, so nothing else is passed on.
                let d = std::str::from_utf8(domain).ok()?;
                crate::mtasts::cache::valid_domain(d).then(|| Wake::StsPurge(Some(d.to_string())))
            }
            _ => None,
        }
    }
}

/// Tells a running daemon to look at the queue. `Ok(false)` when no daemon
/// listens (no socket, or nobody bound to it): the message waits safely for
/// the daemon's next start or scan.
pub fn notify(queue_directory: &Path, wake: Wake) -> io::Result<bool> {
    let path = socket_path(queue_directory);
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    match sock.send_to(&wake.encode(), &path) {
        Ok(_) => Ok(true),
        Err(e) => match e.raw_os_error() {
            Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => Ok(false),
            // The daemon's socket buffer is full: it has wake-ups pending.
            Some(libc::EAGAIN) => Ok(true),
            _ => Err(e),
        },
    }
}

/// The daemon's side: bound to `public/qmgr`, read on the smol executor.
#[derive(Debug)]
pub struct Listener {
    sock: smol::Async<UnixDatagram>,
    path: PathBuf,
}

impl Listener {
    /// Binds the socket, replacing a stale one left by a previous run. The
    /// socket is made writable for everyone so any user's `sendmail` can
    /// wake the daemon (it carries one byte and no data; a purge carries a
    /// domain name, and what it does — refetch a policy — is harmless).
    pub fn bind(queue_directory: &Path) -> io::Result<Listener> {
        let path = socket_path(queue_directory);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let sock = UnixDatagram::bind(&path)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        Ok(Listener {
            sock: smol::Async::new(sock)?,
            path,
        })
    }

    /// Waits for the next valid wake-up request (invalid datagrams are skipped).
    pub async fn recv(&self) -> io::Result<Wake> {
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            let n = self.sock.recv(&mut buf).await?;
            if let Some(w) = buf.get(..n).and_then(Wake::from_datagram) {
                return Ok(w);
            }
            log::warn!(
                "ignoring malformed wake-up request on {}",
                self.path.display()
            );
        }
    }

    /// Drains queued requests without waiting; returns the strongest one
    /// (`Flush` over `NewMail`), so a burst of `sendmail`s costs one scan.
    /// Purge requests are not queue scans: they are skipped here.
    pub fn drain(&self) -> Option<Wake> {
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut best = None;
        for _ in 0..1024 {
            match self.sock.get_ref().recv(&mut buf) {
                Ok(n) => match buf.get(..n).and_then(Wake::from_datagram) {
                    Some(Wake::Flush) => best = Some(Wake::Flush),
                    Some(Wake::NewMail) => {
                        best.get_or_insert(Wake::NewMail);
                    }
                    Some(Wake::StsPurge(_)) | Some(Wake::TlsRpt(_)) | None => {}
                },
                Err(_) => break,
            }
        }
        best
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip() {
        for w in [
            Wake::NewMail,
            Wake::Flush,
            Wake::StsPurge(None),
            Wake::StsPurge(Some("example.com".into())),
        ] {
            assert_eq!(Wake::from_datagram(&w.encode()), Some(w));
        }
        assert_eq!(Wake::from_datagram(b"P../etc"), None);
        assert_eq!(Wake::from_datagram(b"PExample.com"), None);
        assert_eq!(Wake::from_datagram(b"X"), None);
        assert_eq!(Wake::from_datagram(b""), None);
    }
}
