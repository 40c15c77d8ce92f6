//! Issue 2, logging through real sockets: the daemon's lines arrive at a
//! `syslog_socket` (a UnixDatagram bound here, as /dev/log would be) in
//! RFC 3164 form with `tern/smtpd[pid]:` tags, and at a `syslog_server`
//! (UDP) in RFC 5424 form.

mod common;
mod ground_support;

use common::tools::Swaks;
use ground_support::{Tern, WAIT};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Receives datagrams until one contains `needle` (returns it) or `WAIT`
/// passes (panics with everything received).
fn recv_until(
    recv: impl Fn(&mut [u8]) -> std::io::Result<usize>,
    needle: &str,
) -> (String, Vec<String>) {
    let deadline = Instant::now() + WAIT;
    let mut all = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        match recv(&mut buf) {
            Ok(n) => {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                all.push(line.clone());
                if line.contains(needle) {
                    return (line, all);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    panic!(
        "no datagram with {needle:?} within {WAIT:?}; got:\n{}",
        all.join("\n")
    );
}

/// Checks RFC 3164 as /dev/log readers expect it: `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`.
fn check_3164(line: &str, pri: u8, tag: &str, pid: u32) -> String {
    let rest = line
        .strip_prefix(&format!("<{pri}>"))
        .unwrap_or_else(|| panic!("PRI <{pri}> (mail.info): {line:?}"));
    let (stamp, rest) = rest.split_at(15);
    let b = stamp.as_bytes();
    assert!(MONTHS.contains(&&stamp[..3]), "month: {line:?}");
    assert!(
        b[3] == b' ' && (b[4] == b' ' || b[4].is_ascii_digit()) && b[5].is_ascii_digit(),
        "day: {line:?}"
    );
    assert!(
        b[6] == b' ' && b[9] == b':' && b[12] == b':',
        "time: {line:?}"
    );
    let msg = rest
        .strip_prefix(&format!(" {tag}[{pid}]: "))
        .unwrap_or_else(|| panic!("tag {tag}[{pid}]: {line:?}"));
    assert!(!msg.ends_with('\n') && !msg.contains('\0'), "{line:?}");
    msg.to_string()
}

#[test]
fn daemon_logs_rfc3164_to_a_unix_socket() {
    let mut t = Tern::new("");
    let sock_path = t.dir.join("log.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    // The daemon drops to nobody after start-up and must still write.
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Later lines win: replace the harness's empty syslog_socket.
    t.write_config(&format!("syslog_socket = {}\n", sock_path.display()));
    t.start();
    let pid = t.pid();

    let (start, _) = recv_until(|b| sock.recv(b), "daemon started");
    let msg = check_3164(&start, 22, "tern/master", pid);
    assert!(msg.starts_with("daemon started -- version "), "{msg}");

    let r = Swaks::new(t.port).run_ok();
    let (line, all) = recv_until(|b| sock.recv(b), "connect from");
    let msg = check_3164(&line, 22, "tern/smtpd", pid);
    assert_eq!(msg, "connect from localhost[127.0.0.1]");
    // The queue ID line of the message swaks sent, as pflogsumm reads it.
    let id = r.queue_id().expect("queued");
    let (line, _) = recv_until(|b| sock.recv(b), &format!("{id}: client="));
    check_3164(&line, 22, "tern/smtpd", pid);
    // Everything received has the same shape (lines of other programs
    // of the daemon: master, qmgr, smtp, cleanup...).
    for l in &all {
        let prog = l
            .split(" tern/")
            .nth(1)
            .and_then(|s| s.split('[').next())
            .unwrap_or_else(|| panic!("no tern/ tag: {l:?}"));
        let pri: u8 = l[1..l.find('>').unwrap()].parse().unwrap();
        check_3164(l, pri, &format!("tern/{prog}"), pid);
    }
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}

#[test]
fn daemon_logs_rfc5424_to_a_udp_collector() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = udp.local_addr().unwrap().port();
    let mut t = Tern::new(&format!("syslog_server = 127.0.0.1:{port}\n"));
    t.start();
    let pid = t.pid();
    Swaks::new(t.port).run_ok();
    let (line, _) = recv_until(|b| udp.recv(b), "connect from");
    // <22>1 2026-11-23T19:50:19.572082Z tern.test tern/smtpd PID - - connect from ...
    let rest = line
        .strip_prefix("<22>1 ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let f: Vec<&str> = rest.splitn(7, ' ').collect();
    assert_eq!(f.len(), 7, "{line:?}");
    assert!(
        f[0].len() >= 20 && f[0].as_bytes()[10] == b'T',
        "timestamp: {line:?}"
    );
    assert_eq!(f[1], "tern.test", "HOSTNAME is myhostname: {line:?}");
    assert_eq!(f[2], "tern/smtpd", "{line:?}");
    assert_eq!(f[3], pid.to_string(), "{line:?}");
    assert_eq!(
        (f[4], f[5]),
        ("-", "-"),
        "no MSGID, no structured data: {line:?}"
    );
    assert_eq!(f[6], "connect from localhost[127.0.0.1]", "{line:?}");
    assert_eq!(t.stop_with(libc::SIGTERM).code(), Some(0));
}
