//! Where lines go: a syslog socket (unix datagram or UDP), a file, stderr.
//!
//! Every write is one non-blocking system call. A full receiver (EAGAIN,
//! ENOBUFS) drops the line rather than stall the only thread; a dead
//! receiver (logd restarted, socket file gone, ICMP refused) drops the
//! socket so the next line reconnects.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The syslog socket, connected lazily.
pub(super) enum Remote {
    /// No syslog socket configured.
    Off,
    /// RFC 3164 to a local unix datagram socket (`/dev/log`).
    Unix {
        path: PathBuf,
        sock: Option<UnixDatagram>,
    },
    /// RFC 5424 to a UDP collector.
    Udp {
        addr: SocketAddr,
        sock: Option<UdpSocket>,
        /// RFC 3164 with a hostname instead of RFC 5424.
        rfc3164: bool,
    },
}

/// Errors that mean "the receiver is busy", not "the receiver is gone".
fn is_congestion(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EMSGSIZE))
}

impl Remote {
    /// Sends one datagram; reconnects once if the old connection is dead.
    pub(super) fn send(&mut self, line: &[u8]) -> io::Result<()> {
        let mut last = io::Error::from(io::ErrorKind::NotConnected);
        for _ in 0..2 {
            let r = match self {
                Remote::Off => return Ok(()),
                Remote::Unix { path, sock } => {
                    if sock.is_none() {
                        *sock = Some(connect_unix(path)?);
                    }
                    sock.as_ref().map(|s| s.send(line))
                }
                Remote::Udp { addr, sock, .. } => {
                    if sock.is_none() {
                        *sock = Some(connect_udp(*addr)?);
                    }
                    sock.as_ref().map(|s| s.send(line))
                }
            };
            match r {
                Some(Ok(_)) => return Ok(()),
                Some(Err(e)) if is_congestion(&e) => return Err(e),
                Some(Err(e)) => {
                    last = e;
                    self.disconnect();
                }
                None => {}
            }
        }
        Err(last)
    }

    /// Forgets the socket; the next send reconnects.
    pub(super) fn disconnect(&mut self) {
        match self {
            Remote::Off => {}
            Remote::Unix { sock, .. } => *sock = None,
            Remote::Udp { sock, .. } => *sock = None,
        }
    }

    /// `unix:/dev/log` or `udp:192.0.2.1:514`, for messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Remote::Off => "nowhere".to_string(),
            Remote::Unix { path, .. } => format!("unix:{}", path.display()),
            Remote::Udp { addr, .. } => format!("udp:{addr}"),
        }
    }
}

fn connect_unix(path: &Path) -> io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.set_nonblocking(true)?;
    s.connect(path)?;
    Ok(s)
}

fn connect_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(local)?;
    s.set_nonblocking(true)?;
    s.connect(addr)?;
    Ok(s)
}

/// Opens `maillog_file` for appending (created 0640).
pub(super) fn open_log_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Writes `buf` to `fd` in one call without ever blocking: sockets (e.g. a
/// journald stdout stream) get `MSG_DONTWAIT`; pipes and terminals are
/// polled first (a pipe reporting POLLOUT has a free page, enough for one
/// line of at most 2 KiB, which the kernel writes atomically).
pub(super) fn write_nonblocking(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is only written to.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    let n = if n >= 0 {
        n
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOTSOCK) {
            return Err(e);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        if ready == 0 || pfd.revents & libc::POLLOUT == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // SAFETY: as for send above.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        n
    };
    if n as usize == buf.len() {
        Ok(())
    } else {
        Err(io::ErrorKind::WriteZero.into())
    }
}

/// The raw descriptor of stderr.
pub(super) fn stderr_fd() -> RawFd {
    io::stderr().as_raw_fd()
}
