//! Delivery into system users' home Maildirs after the daemon has dropped
//! root, the way Postfix's local(8) does it: as the recipient.
//!
//! Before dropping privileges the daemon forks this small helper, which
//! stays root and is connected to it by a `SOCK_SEQPACKET` socketpair. For
//! each delivery the daemon sends a [`wire::Request`] (user, mailbox below
//! the user's home, header lines to prepend) with the open queue file
//! attached (SCM_RIGHTS), so the helper never opens the private spool by
//! name. The helper looks the user up again, forks, and the child drops to
//! the user's uid and gid (supplementary groups: the primary group only,
//! as Postfix does) before it runs [`maildir::deliver`]; the result travels
//! back as a [`wire::Reply`]. The helper exits when the daemon's end of the
//! socket closes.
//!
//! As in Postfix, the mailbox of `root` (any uid 0 account) is written as
//! root: Postfix uses `default_privs` only for files and commands.
//!
//! The daemon forks it only when its start-up configuration can route
//! mail to local delivery ([`crate::delivery::route::Router::can_route_local`]);
//! otherwise it calls [`skip`], and home-Maildir deliveries that a later
//! reload makes possible defer with [`NOT_STARTED_REASON`].

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use smol::lock::Mutex as AsyncMutex;
use smol::Async;

use super::wire::{self, Outcome, Reply, Request};
use super::{maildir, users};

/// How long the daemon waits for one delivery's reply. The wait is async
/// (other sessions and deliveries go on meanwhile), so it only bounds how
/// long one message stays in delivery: writing a message of
/// `message_size_limit` to a slow USB disk takes seconds, and a helper
/// that has not answered in two minutes is stuck (a hung mount, a stopped
/// process). Postfix has no matching parameter: its local(8) runs under
/// the 5-hour `daemon_timeout` watchdog.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The daemon's end of the socket, registered with the reactor.
struct Client {
    sock: Async<OwnedFd>,
    seq: u32,
}

/// The daemon's end of the socket from [`spawn`] until the first delivery
/// registers it with the reactor (lazily: `spawn` runs before the
/// executor, in the daemon's start-up).
static SPAWNED: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Set once the helper runs (the daemon started as root).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Set when the helper is found gone (it crashed or was killed). It cannot
/// be started again: the daemon no longer runs as root. Logged once; every
/// later home-Maildir delivery is deferred with [`GONE_REASON`].
static GONE: AtomicBool = AtomicBool::new(false);

/// Set when the daemon, started as root, did not fork the helper because
/// its configuration at start-up routed no mail to local delivery (a
/// send-only router: one process). A reload cannot start it later (root
/// is gone): home-Maildir deliveries are deferred with
/// [`NOT_STARTED_REASON`] until a restart.
static NOT_STARTED: AtomicBool = AtomicBool::new(false);

/// Why a home-Maildir delivery is deferred when the helper was not started.
pub const NOT_STARTED_REASON: &str = "the local delivery helper was not started because the configuration at start-up routed no mail to local delivery (mydestination, transport_maps): restart tern to deliver to home Maildirs";

/// Why a home-Maildir delivery is deferred once the helper is gone.
pub const GONE_REASON: &str = "the local delivery helper has exited and cannot be restarted without root: restart tern to deliver to home Maildirs";

/// One request at a time: replies carry no routing beyond `seq`, and the
/// helper serves requests in order anyway. An async lock, so a delivery
/// waiting for its turn does not block the executor.
static CLIENT: AsyncMutex<Option<Client>> = AsyncMutex::new(None);

fn last_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Is the helper running (the daemon started as root)?
pub fn running() -> bool {
    RUNNING.load(Ordering::Relaxed)
}

/// Records that the daemon, started as root, left the helper out (no
/// local delivery at start-up); call instead of [`spawn`].
pub fn skip() {
    NOT_STARTED.store(true, Ordering::Relaxed);
}

/// Was the helper left out at start-up ([`skip`])?
pub fn skipped() -> bool {
    NOT_STARTED.load(Ordering::Relaxed)
}

/// Are home Maildirs the helper's, not the daemon's, to write? True when
/// it runs, has died, or was left out: in the last two cases deliveries
/// defer (the daemon, no longer root, must not write them as itself).
pub fn owns_home_delivery() -> bool {
    running() || skipped()
}

/// Forks the helper; call as root, before dropping privileges. Returns its
/// process ID.
pub fn spawn() -> io::Result<u32> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two fds into the array we own.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(last_err("socketpair"));
    }
    // SAFETY: both fds were just created and are owned by nothing else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child runs only `serve`, which never returns to the
    // caller's code and ends with _exit.
    match unsafe { libc::fork() } {
        -1 => Err(last_err("fork")),
        0 => {
            drop(ours);
            serve(theirs)
        }
        pid => {
            drop(theirs);
            let mut g = SPAWNED.lock().unwrap_or_else(|e| e.into_inner());
            *g = Some(ours);
            RUNNING.store(true, Ordering::Relaxed);
            Ok(pid as u32)
        }
    }
}

/// Daemon side: delivers through the helper, waiting at most
/// [`REPLY_TIMEOUT`]. `None` when no helper runs because the daemon was
/// not started as root (the caller writes the Maildir itself); a deferral
/// when it was left out at start-up.
pub async fn deliver(
    user: &str,
    mailbox: &str,
    host: &str,
    prepend: &[u8],
    file: &File,
    offset: u64,
    len: u64,
) -> Option<Outcome> {
    if skipped() {
        return Some(Outcome::Temporary(NOT_STARTED_REASON.into()));
    }
    if !running() {
        return None;
    }
    if GONE.load(Ordering::Relaxed) {
        return Some(Outcome::Temporary(GONE_REASON.into()));
    }
    let mut g = CLIENT.lock().await;
    if g.is_none() {
        let fd = SPAWNED.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(fd) = fd else {
            return Some(Outcome::Temporary(
                "the local delivery helper's socket is gone".into(),
            ));
        };
        match Async::new(fd) {
            Ok(sock) => *g = Some(Client { sock, seq: 0 }),
            Err(e) => {
                return Some(Outcome::Temporary(format!(
                    "local delivery helper socket: {e}"
                )))
            }
        }
    }
    let c = g.as_mut()?;
    c.seq = c.seq.wrapping_add(1);
    let req = Request {
        seq: c.seq,
        user: user.to_string(),
        mailbox: mailbox.to_string(),
        host: host.to_string(),
        prepend: prepend.to_vec(),
        offset,
        len,
    };
    let bytes = match req.encode() {
        Ok(b) => b,
        Err(e) => {
            return Some(Outcome::Temporary(format!(
                "local delivery request for {user}: {e}"
            )))
        }
    };
    let (outcome, gone) = exchange(&c.sock, c.seq, &bytes, file.as_raw_fd(), REPLY_TIMEOUT).await;
    if gone {
        // Deliveries waiting for the lock see the flag on their next try.
        if !GONE.swap(true, Ordering::Relaxed) {
            log::warn!(target: "local", "warning: {GONE_REASON} ({})", outcome_text(&outcome));
        }
        return Some(Outcome::Temporary(GONE_REASON.into()));
    }
    Some(outcome)
}

fn outcome_text(o: &Outcome) -> &str {
    match o {
        Outcome::Temporary(t) => t,
        _ => "",
    }
}

/// Sends one request with `fd` attached and waits for the reply with the
/// same `seq`, at most `limit`; every failure is a temporary outcome. A
/// reply to an earlier request that timed out is skipped. The flag is true
/// when the helper is gone (its end of the socket is closed): no later
/// request can succeed.
async fn exchange(
    sock: &Async<OwnedFd>,
    seq: u32,
    request: &[u8],
    fd: RawFd,
    limit: Duration,
) -> (Outcome, bool) {
    let temp = |t: String| (Outcome::Temporary(t), false);
    let gone = |t: String| (Outcome::Temporary(t), true);
    let work = async {
        if let Err(e) = sock
            .write_with(|s| send_with_fd(s.as_raw_fd(), request, fd))
            .await
        {
            let closed = matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            );
            let t = format!("cannot reach the local delivery helper: {e}");
            return if closed { gone(t) } else { temp(t) };
        }
        let mut buf = vec![0u8; wire::MAX_MESSAGE];
        loop {
            match sock
                .read_with(|s| recv_with_fd(s.as_raw_fd(), &mut buf))
                .await
            {
                Ok((0, _, _)) => return gone("the local delivery helper has exited".into()),
                Ok((n, _, _)) => match Reply::decode(&buf[..n]) {
                    Ok(r) if r.seq != seq => continue,
                    Ok(r) => return (r.outcome, false),
                    Err(e) => {
                        return temp(format!("bad reply from the local delivery helper: {e}"))
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return gone(format!("local delivery helper: {e}"))
                }
                Err(e) => return temp(format!("local delivery helper: {e}")),
            }
        }
    };
    smol::future::or(work, async {
        smol::Timer::after(limit).await;
        temp(format!(
            "no reply from the local delivery helper within {}s",
            limit.as_secs()
        ))
    })
    .await
}

/// `home_mailbox` as the helper accepts it: relative, no `..`, a Maildir.
fn mailbox_ok(m: &str) -> bool {
    m.ends_with('/')
        && Path::new(m)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn serve(sock: OwnedFd) -> ! {
    // SAFETY: plain signal and fd calls in the freshly forked child. The
    // helper ignores the signals meant for the daemon (a service manager
    // sends SIGTERM to the whole group; deliveries during the daemon's
    // drain must still work): it ends when the daemon's socket closes.
    // It keeps only its socket and stdio.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let max = match libc::sysconf(libc::_SC_OPEN_MAX) {
            n if n > 0 => n.min(65536) as RawFd,
            _ => 1024,
        };
        for fd in 3..max {
            if fd != sock.as_raw_fd() {
                libc::close(fd);
            }
        }
    }
    let mut buf = vec![0u8; wire::MAX_MESSAGE];
    let code = loop {
        let (n, file, truncated) = match recv_with_fd(sock.as_raw_fd(), &mut buf) {
            Ok((0, _, _)) => break 0,
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break 1,
        };
        let data = &buf[..n];
        let seq = data
            .get(1..5)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map_or(0, u32::from_be_bytes);
        let outcome = match (Request::decode(data), file) {
            _ if truncated => Outcome::Temporary("local delivery request too large".into()),
            (Err(e), _) => Outcome::Temporary(format!("bad local delivery request: {e}")),
            (Ok(_), None) => Outcome::Temporary("local delivery request without a file".into()),
            (Ok(req), Some(fd)) => deliver_as_user(&req, &File::from(fd)),
        };
        let reply = Reply { seq, outcome }.encode();
        if send_with_fd(sock.as_raw_fd(), &reply, -1).is_err() {
            break 1;
        }
    };
    // SAFETY: ends the helper without running the daemon's destructors.
    unsafe { libc::_exit(code) }
}

/// In the helper (root): fork, become the user, write the Maildir file.
fn deliver_as_user(req: &Request, file: &File) -> Outcome {
    let user = match users::lookup(&req.user) {
        Ok(Some(u)) => u,
        Ok(None) => return Outcome::Permanent(format!("unknown user: \"{}\"", req.user)),
        Err(e) => return Outcome::Temporary(format!("cannot read the password database: {e}")),
    };
    if !mailbox_ok(&req.mailbox) {
        return Outcome::Temporary(format!(
            "home_mailbox {} is not a relative Maildir path",
            req.mailbox
        ));
    }
    let dir = user.home.join(&req.mailbox);
    let mut p = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Outcome::Temporary(last_err("pipe").to_string());
    }
    // SAFETY: both fds were just created.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    // SAFETY: the child only switches credentials, writes the file and
    // reports, then _exits.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Outcome::Temporary(last_err("fork").to_string());
    }
    if pid == 0 {
        drop(rd);
        let outcome = match become_user(user.uid, user.gid) {
            Err(e) => Outcome::Temporary(format!(
                "cannot switch to user {} (uid {}): {e}",
                user.name, user.uid
            )),
            Ok(()) => {
                let mut body = At {
                    file,
                    pos: req.offset,
                    end: req.offset.saturating_add(req.len),
                };
                match maildir::deliver(&dir, &req.prepend, &mut body, None, &req.host) {
                    Ok(path) => Outcome::Delivered(path.display().to_string()),
                    Err(e) => Outcome::Temporary(e.to_string()),
                }
            }
        };
        let bytes = Reply { seq: 0, outcome }.encode();
        let mut w = File::from(wr);
        let code = match io::Write::write_all(&mut w, &bytes) {
            Ok(()) => 0,
            Err(_) => 1,
        };
        // SAFETY: ends the delivery child.
        unsafe { libc::_exit(code) }
    }
    drop(wr);
    let mut got = Vec::new();
    let read = File::from(rd)
        .take(wire::MAX_MESSAGE as u64)
        .read_to_end(&mut got);
    let mut status: libc::c_int = 0;
    // SAFETY: waits for the child we forked.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    match (read, Reply::decode(&got)) {
        (Ok(_), Ok(r)) => r.outcome,
        _ => Outcome::Temporary(format!(
            "delivery process for {} ended without a result (wait status {status})",
            user.name
        )),
    }
}

fn become_user(uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: credential syscalls; order matters (groups, gid, uid).
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            return Err(last_err("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(last_err("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(last_err("setuid"));
        }
        if uid != 0 && libc::setuid(0) == 0 {
            return Err(io::Error::other("privileges were not dropped"));
        }
    }
    Ok(())
}

/// The message bytes of the passed queue file, read with `pread` (the file
/// offset is shared with the daemon's descriptor, so it is left alone).
struct At<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Room for one fd in a control message, 8-byte aligned.
#[repr(C, align(8))]
struct Cmsg([u8; 64]);

/// Sends one datagram, with `fd` attached unless it is negative.
fn send_with_fd(sock: RawFd, data: &[u8], fd: RawFd) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = Cmsg([0; 64]);
    // SAFETY: msghdr is plain data; every pointer in it refers to live
    // buffers of the lengths given, and the cmsg macros stay inside cbuf
    // (CMSG_SPACE of one int is far below 64 bytes).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if fd >= 0 {
            let space = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
            msg.msg_control = cbuf.0.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd);
        }
        loop {
            let n = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n as usize != data.len() {
                return Err(io::Error::other("short send"));
            }
            return Ok(());
        }
    }
}

/// Receives one datagram into `buf`: its length, the first fd passed with
/// it (others are closed), and whether data or fds were cut off.
fn recv_with_fd(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>, bool)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = Cmsg([0; 64]);
    // SAFETY: as in send_with_fd; the kernel writes at most
    // msg_controllen bytes of control data, and we read only headers
    // the CMSG macros hand out within that length.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = cbuf.0.len() as _;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut first = None;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<libc::c_int>() {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    let owned = OwnedFd::from_raw_fd(fd);
                    if first.is_none() {
                        first = Some(owned);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        let cut = msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0;
        Ok((n as usize, first, cut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_paths() {
        assert!(mailbox_ok("Maildir/"));
        assert!(mailbox_ok("mail/inbox/"));
        assert!(!mailbox_ok("Maildir"));
        assert!(!mailbox_ok("../x/"));
        assert!(!mailbox_ok("/etc/"));
    }

    fn pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: as in spawn.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: fresh fds.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn request(seq: u32) -> Vec<u8> {
        Request {
            seq,
            user: "alice".into(),
            mailbox: "Maildir/".into(),
            host: "box.test".into(),
            prepend: b"Delivered-To: alice@box.test\n".to_vec(),
            offset: 0,
            len: 0,
        }
        .encode()
        .unwrap()
    }

    /// The daemon's wait for the helper's answer lets every other task on
    /// its one thread run: here the "helper" is itself a task on the same
    /// executor that answers only after another task has made progress,
    /// so a wait that blocked the thread could never finish.
    #[test]
    fn waiting_for_the_helper_does_not_block_the_executor() {
        use std::cell::Cell;
        use std::rc::Rc;
        let (a, b) = pair();
        let file = File::open("/dev/null").unwrap();
        let ex = smol::LocalExecutor::new();
        let ticks = Rc::new(Cell::new(0u32));
        let out = smol::block_on(ex.run(async {
            let a = Async::new(a).unwrap();
            let b = Async::new(b).unwrap();
            let t = ticks.clone();
            let _ticker = ex.spawn(async move {
                loop {
                    t.set(t.get() + 1);
                    smol::future::yield_now().await;
                }
            });
            let t = ticks.clone();
            let helper = ex.spawn(async move {
                let mut buf = vec![0u8; wire::MAX_MESSAGE];
                let (n, fd, cut) = b
                    .read_with(|s| recv_with_fd(s.as_raw_fd(), &mut buf))
                    .await
                    .unwrap();
                assert!(fd.is_some() && !cut, "the queue file travels along");
                let req = Request::decode(&buf[..n]).unwrap();
                assert_eq!((req.seq, req.user.as_str()), (7, "alice"));
                while t.get() < 100 {
                    smol::future::yield_now().await;
                }
                // A late answer to an earlier request comes first.
                for (seq, path) in [(6, "/stale"), (7, "/h/Maildir/new/1.M2P3Q4.box.test")] {
                    let reply = Reply {
                        seq,
                        outcome: Outcome::Delivered(path.into()),
                    }
                    .encode();
                    b.write_with(|s| send_with_fd(s.as_raw_fd(), &reply, -1))
                        .await
                        .unwrap();
                }
                t.get()
            });
            let out = exchange(
                &a,
                7,
                &request(7),
                file.as_raw_fd(),
                Duration::from_secs(60),
            )
            .await;
            let ticks_at_reply = helper.await;
            (out, ticks_at_reply)
        }));
        assert_eq!(
            out.0,
            (
                Outcome::Delivered("/h/Maildir/new/1.M2P3Q4.box.test".into()),
                false
            )
        );
        assert!(out.1 >= 100 && ticks.get() >= out.1, "{out:?}");
    }

    #[test]
    fn helper_silent_or_gone_is_a_temporary_failure() {
        let file = File::open("/dev/null").unwrap();
        // Silent: the timer ends the wait.
        let (a, _b) = pair();
        let out = smol::block_on(async {
            let a = Async::new(a).unwrap();
            exchange(
                &a,
                1,
                &request(1),
                file.as_raw_fd(),
                Duration::from_millis(50),
            )
            .await
        });
        match out {
            (Outcome::Temporary(t), false) => assert!(t.contains("no reply"), "{t}"),
            o => panic!("{o:?}"),
        }
        // The helper reads the request and exits.
        let (a, b) = pair();
        let out = smol::block_on(async {
            let a = Async::new(a).unwrap();
            let req = request(1);
            let work = exchange(&a, 1, &req, file.as_raw_fd(), Duration::from_secs(60));
            let helper = async {
                let b = Async::new(b).unwrap();
                let mut buf = vec![0u8; wire::MAX_MESSAGE];
                let _ = b.read_with(|s| recv_with_fd(s.as_raw_fd(), &mut buf)).await;
                drop(b);
                std::future::pending::<(Outcome, bool)>().await
            };
            smol::future::or(work, helper).await
        });
        match out {
            (Outcome::Temporary(t), true) => assert!(t.contains("has exited"), "{t}"),
            o => panic!("{o:?}"),
        }
        // Gone before the request: it cannot be sent.
        let (a, b) = pair();
        drop(b);
        let out = smol::block_on(async {
            let a = Async::new(a).unwrap();
            exchange(
                &a,
                1,
                &request(1),
                file.as_raw_fd(),
                Duration::from_secs(60),
            )
            .await
        });
        match out {
            (Outcome::Temporary(t), true) => assert!(t.contains("cannot reach"), "{t}"),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn fd_passing_over_a_socketpair() {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: as in spawn.
        assert_eq!(
            unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                    0,
                    fds.as_mut_ptr(),
                )
            },
            0
        );
        // SAFETY: fresh fds.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let path = std::env::temp_dir().join(format!("tern-helper-fd-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let f = File::open(&path).unwrap();
        send_with_fd(a.as_raw_fd(), b"hello", f.as_raw_fd()).unwrap();
        let mut buf = [0u8; 16];
        let (n, fd, cut) = recv_with_fd(b.as_raw_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], cut), (&b"hello"[..], false));
        let got = File::from(fd.expect("an fd"));
        let mut s = String::new();
        At {
            file: &got,
            pos: 3,
            end: 7,
        }
        .read_to_string(&mut s)
        .unwrap();
        assert_eq!(s, "3456");
        // Too long for the buffer: reported as cut, not silently accepted.
        send_with_fd(a.as_raw_fd(), &[b'x'; 32], -1).unwrap();
        let (_, fd, cut) = recv_with_fd(b.as_raw_fd(), &mut buf).unwrap();
        assert!(cut && fd.is_none());
        drop(a);
        assert_eq!(recv_with_fd(b.as_raw_fd(), &mut buf).unwrap().0, 0);
        std::fs::remove_file(&path).unwrap();
    }
}
