//! Wake-up calls to a running daemon: a unix datagram socket
//! `$queue_directory/public/qmgr`. `sendmail` sends "new mail", `tern flush`
//! sends "flush"; the daemon then scans the queue. Losing a wake-up is
//! harmless (the daemon also scans periodically), so both sides are
//! best-effort and never block.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Path of the wake-up socket under the queue directory.
pub fn socket_path(queue_directory: &Path) -> PathBuf {
    queue_directory.join("public").join("qmgr")
}

/// What the daemon is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A new message is in `active/`: scan it soon (Postfix's `I` trigger).
    NewMail,
    /// Retry every deferred message now (`tern flush`, `sendmail -q`; Postfix's `F`).
    Flush,
}

impl Wake {
    fn byte(self) -> u8 {
        match self {
            Wake::NewMail => b'I',
            Wake::Flush => b'F',
        }
    }
    /// Decodes a datagram; unknown requests give `None` (ignored).
    pub fn from_datagram(d: &[u8]) -> Option<Wake> {
        match d {
            [b'I'] => Some(Wake::NewMail),
            [b'F'] => Some(Wake::Flush),
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
    match sock.send_to(&[wake.byte()], &path) {
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
    /// wake the daemon (it carries one byte and no data).
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
        let mut buf = [0u8; 16];
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
    pub fn drain(&self) -> Option<Wake> {
        let mut buf = [0u8; 16];
        let mut best = None;
        for _ in 0..1024 {
            match self.sock.get_ref().recv(&mut buf) {
                Ok(n) => match buf.get(..n).and_then(Wake::from_datagram) {
                    Some(Wake::Flush) => best = Some(Wake::Flush),
                    Some(Wake::NewMail) => {
                        best.get_or_insert(Wake::NewMail);
                    }
                    None => {}
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
