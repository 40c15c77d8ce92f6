//! Free loopback ports, and waiting for a peer to listen on one.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that was free a moment ago: bound to port 0 and
/// released. Never hands out the same port twice in one test process (tests
/// run in parallel threads), so only other processes can race for it.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        if set.insert(port) {
            return port;
        }
    }
    panic!("no fresh free port after 100 tries")
}

/// True if some socket listens on TCP `port` at 127.0.0.1 or the wildcard
/// address. Reads `/proc/net/tcp` so that probing makes no connection (a
/// probe would show up in the peer's log and in pflogsumm's counts).
pub fn is_listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let want = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let local = f.nth(1).unwrap_or("");
        let state = f.nth(1).unwrap_or("");
        state == "0A" && want.iter().any(|w| w == local)
    })
}

/// Polls [`is_listening`] until true or `timeout`; returns whether it listens.
pub fn wait_listening(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if is_listening(port) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
