//! Binding the listeners (before privileges are dropped) and dropping root.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::FromRawFd;

/// Which service a listener provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Port 25: MTA-to-MTA, STARTTLS offered, AUTH optional.
    Smtp,
    /// Port 587: STARTTLS submission, AUTH required.
    Submission,
    /// Port 465: implicit TLS submission (RFC 8314), AUTH required.
    Submissions,
}

impl Service {
    /// Name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
        }
    }
}

/// Binds a TCP listener. IPv6 sockets are `IPV6_V6ONLY`, so `0.0.0.0:25`
/// and `[::]:25` can both be bound as separate listeners (Linux would
/// otherwise let the v6 socket claim the v4 port too).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the fd is owned by the TcpListener below or
    // closed on every error path.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a valid socket we own; from here the listener closes it.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let set = |level, name| {
        // SAFETY: valid fd, pointer to a c_int of the right size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    set(libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
    if addr.is_ipv6() {
        set(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)?;
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes for this family.
    if unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: valid bound socket.
    if unsafe { libc::listen(fd, 128) } < 0 {
        return Err(io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Whether a failed bind of `addr` means the host has no usable IPv6 for
/// it: the kernel has no IPv6 (`EAFNOSUPPORT`, e.g. `ipv6.disable=1`) or
/// the address is not configured (`EADDRNOTAVAIL`, e.g. `disable_ipv6`
/// sysctl, or an address of another host). Never true for IPv4.
pub fn no_ipv6_here(addr: SocketAddr, e: &io::Error) -> bool {
    addr.is_ipv6()
        && matches!(
            e.raw_os_error(),
            Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
        )
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// The uid and gid of a user, from the password database.
pub fn user_ids(name: &str) -> Result<(libc::uid_t, libc::gid_t), String> {
    let cname = std::ffi::CString::new(name).map_err(|_| format!("bad user name \"{name}\""))?;
    // SAFETY: getpwnam returns NULL or a pointer to static storage that we
    // read immediately, on the only thread that calls it.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return Err(format!(
            "mail_owner \"{name}\" does not exist; {}",
            crate::config::mail_owner_missing_hint(name)
        ));
    }
    // SAFETY: pw is non-null and points at a valid passwd struct.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// When running as root: hands `dirs` to `mail_owner`, then drops to that
/// user for good (supplementary groups cleared). A no-op for other users.
pub fn drop_privileges(mail_owner: &str, dirs: &[&std::path::Path]) -> Result<bool, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(false);
    }
    let (uid, gid) = user_ids(mail_owner)?;
    if uid == 0 {
        return Err(format!(
            "mail_owner \"{mail_owner}\" is root; use an unprivileged user"
        ));
    }
    for d in dirs {
        chown_tree(d, uid, gid)
            .map_err(|e| format!("cannot hand {} to {mail_owner}: {e}", d.display()))?;
    }
    // SAFETY: plain credential syscalls; order matters (groups, gid, uid).
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
        {
            return Err(format!(
                "cannot drop privileges to {mail_owner}: {}",
                io::Error::last_os_error()
            ));
        }
        if libc::setuid(0) == 0 {
            return Err("privileges were not dropped (setuid(0) still works)".into());
        }
    }
    Ok(true)
}

fn chown_tree(dir: &std::path::Path, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() && e.file_name() == "pid" {
            // The pid file stays root's, as Postfix's: `tern stop` run by
            // root signals the pid in it, which mail_owner must not choose.
            continue;
        }
        if ft.is_dir() && e.file_name() == "maildrop" {
            // Its files belong to the local users who submitted them: the
            // owner is who sent the message (queue/pickup.rs).
            std::os::unix::fs::chown(e.path(), Some(uid), Some(gid))?;
        } else if ft.is_dir() {
            chown_tree(&e.path(), uid, gid)?;
        } else if !ft.is_symlink() {
            std::os::unix::fs::chown(e.path(), Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_v6_on_the_same_port() {
        let a = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = a.local_addr().unwrap().port();
        assert!(bind(SocketAddr::new("127.0.0.1".parse().unwrap(), port)).is_err());
        let v6 = SocketAddr::new("::1".parse().unwrap(), port);
        match bind(v6) {
            Ok(b) => assert_eq!(b.local_addr().unwrap().port(), port),
            // A host without IPv6 (the case inet_protocols = all skips).
            Err(e) if no_ipv6_here(v6, &e) => eprintln!("no IPv6 here: {e}"),
            Err(e) => panic!("[::1]:{port} next to 127.0.0.1:{port}: {e}"),
        }
    }

    #[test]
    fn only_missing_ipv6_counts_as_no_ipv6() {
        // A documentation address (RFC 3849) is on no interface here: the
        // bind fails locally, nothing is sent.
        // (Unless the host allows non-local binds: then only the errors
        // below are checked.)
        let v6: SocketAddr = "[2001:db8::1]:2525".parse().unwrap();
        if let Err(e) = bind(v6) {
            assert!(no_ipv6_here(v6, &e), "{e}");
        }
        let v4: SocketAddr = "192.0.2.1:2525".parse().unwrap();
        for errno in [libc::EAFNOSUPPORT, libc::EADDRNOTAVAIL] {
            let e = io::Error::from_raw_os_error(errno);
            assert!(no_ipv6_here(v6, &e), "{e}");
            assert!(!no_ipv6_here(v4, &e), "IPv4 failures stay fatal: {e}");
        }
        let busy = io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert!(!no_ipv6_here(v6, &busy), "a port in use stays fatal");
    }

    #[test]
    fn unknown_user_is_a_clear_error() {
        let e = user_ids("no-such-user-tern-test").unwrap_err();
        assert!(e.contains("does not exist"));
    }
}
