//! The one test in this binary that installs the global logger (`log`
//! allows one per process), then logs through the `log` macros.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use tern::syslog::{self, Destination, InitError, Settings};

fn recv(s: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn init_installs_once_and_macros_reach_the_socket() {
    let dir = std::env::temp_dir().join(format!("tern-syslog-global-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rx = UnixDatagram::bind(dir.join("log")).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    let handle = syslog::init(Settings {
        destination: Destination::Unix(dir.join("log")),
        maillog_file: Some(dir.join("maillog")),
        ..Settings::default()
    })
    .unwrap();
    assert_eq!(log::max_level(), log::LevelFilter::Info);

    let pid = std::process::id();
    log::info!(target: "smtpd", "connect from a[127.0.0.1]");
    assert!(recv(&rx).ends_with(&format!(" tern/smtpd[{pid}]: connect from a[127.0.0.1]")));
    log::debug!(target: "smtpd", "not at info level");
    log::warn!("from a module path");
    let line = recv(&rx);
    assert!(line.starts_with("<20>"), "{line}");
    assert!(
        line.ends_with(&format!(" tern/master[{pid}]: from a module path")),
        "{line}"
    );

    handle.set_level(log::LevelFilter::Debug);
    log::debug!(target: "qmgr", "now visible");
    let line = recv(&rx);
    assert!(
        line.starts_with("<23>") && line.ends_with(": now visible"),
        "{line}"
    );

    match syslog::init(Settings::default()) {
        Err(InitError::AlreadyInstalled) => {}
        _ => panic!("a second init must fail"),
    }
    let st = handle.stats();
    assert_eq!((st.sent, st.failed, st.fallback), (3, 0, 0));
    let file = std::fs::read_to_string(dir.join("maillog")).unwrap();
    assert_eq!(file.lines().count(), 3, "{file}");
    let _ = std::fs::remove_dir_all(&dir);
}
