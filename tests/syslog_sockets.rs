//! The logger against real sockets and files, without installing it
//! globally: each test builds its own `Logger` and calls `log::Log::log`.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use log::{Level, Log, Record};
use tern::syslog::time::DateTime;
use tern::syslog::{Destination, Facility, InitError, Logger, Settings, MAX_LINE};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tern-syslog-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn emit(logger: &Logger, level: Level, target: &str, msg: &str) {
    logger.log(
        &Record::builder()
            .level(level)
            .target(target)
            .args(format_args!("{msg}"))
            .build(),
    );
}

fn settings(dest: Destination) -> Settings {
    Settings {
        destination: dest,
        hostname: Some("nas.example".into()),
        level: log::LevelFilter::Debug,
        ..Settings::default()
    }
}

fn recv_unix(s: &UnixDatagram) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 65536];
    let n = s.recv(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn recv_udp(s: &UdpSocket) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 65536];
    let n = s.recv(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Stamps a record logged between `before` and now may carry.
fn stamps(before: SystemTime, f: impl Fn(DateTime) -> String) -> Vec<String> {
    let mut v = Vec::new();
    let mut t = before;
    let end = SystemTime::now() + Duration::from_secs(1);
    while t <= end {
        v.push(f(DateTime::local(t)));
        t += Duration::from_millis(500);
    }
    v
}

/// Splits `<PRI>Mmm dd hh:mm:ss tag[pid]: msg`.
fn parse_3164(line: &str) -> (u8, String, String, u32, String) {
    let rest = line.strip_prefix('<').unwrap();
    let (pri, rest) = rest.split_once('>').unwrap();
    let (stamp, rest) = rest.split_at(15);
    let rest = rest.strip_prefix(' ').unwrap();
    let (tag, msg) = rest.split_once(": ").unwrap();
    let (name, pid) = tag.split_once('[').unwrap();
    let pid = pid.strip_suffix(']').unwrap().parse().unwrap();
    (
        pri.parse().unwrap(),
        stamp.to_string(),
        name.to_string(),
        pid,
        msg.to_string(),
    )
}

#[test]
fn unix_socket_gets_rfc3164_lines() {
    let dir = tmpdir("unix");
    let path = dir.join("log");
    let rx = UnixDatagram::bind(&path).unwrap();
    let mut s = settings(Destination::Unix(path));
    s.facility = Facility::Local3;
    let logger = Logger::new(s).unwrap();

    let cases = [
        (Level::Error, "smtpd", "smtpd", 19 * 8 + 3),
        (Level::Warn, "qmgr", "qmgr", 19 * 8 + 4),
        (Level::Info, "cleanup", "cleanup", 19 * 8 + 6),
        (Level::Debug, "tern::queue::spool", "master", 19 * 8 + 7),
        (Level::Trace, "smtp", "", 0), // below the Debug level: not sent
        (Level::Info, "tern", "master", 19 * 8 + 6),
    ];
    for (level, target, program, pri) in cases {
        let before = SystemTime::now();
        let msg = format!("hello from {target} at {level}");
        emit(&logger, level, target, &msg);
        if program.is_empty() {
            continue;
        }
        let line = recv_unix(&rx);
        let (p, stamp, name, pid, text) = parse_3164(&line);
        assert_eq!(p, pri, "{line}");
        assert!(
            stamps(before, |d| d.rfc3164().to_string()).contains(&stamp),
            "{line}"
        );
        assert_eq!(name, format!("tern/{program}"));
        assert_eq!(pid, std::process::id());
        assert_eq!(text, msg);
    }
    rx.set_nonblocking(true).unwrap();
    assert!(
        rx.recv(&mut [0u8; 16]).is_err(),
        "the trace record was filtered"
    );
    let st = logger.stats();
    assert_eq!((st.sent, st.failed, st.fallback), (5, 0, 0));
}

#[test]
fn injection_is_escaped_and_lines_are_capped() {
    let dir = tmpdir("inject");
    let path = dir.join("log");
    let rx = UnixDatagram::bind(&path).unwrap();
    let logger = Logger::new(settings(Destination::Unix(path))).unwrap();
    emit(
        &logger,
        Level::Info,
        "smtpd",
        "helo=<x>\nNov 23 19:00:00 tern/smtpd[1]: forged\r\x00",
    );
    let line = recv_unix(&rx);
    assert!(
        line.ends_with(": helo=<x>#012Nov 23 19:00:00 tern/smtpd[1]: forged#015#000"),
        "{line}"
    );
    let big = "x".repeat(10_000);
    emit(&logger, Level::Info, "smtpd", &big);
    let line = recv_unix(&rx);
    assert_eq!(line.len(), MAX_LINE);
}

#[test]
fn reconnects_after_syslogd_restart() {
    let dir = tmpdir("restart");
    let path = dir.join("log");
    let rx = UnixDatagram::bind(&path).unwrap();
    // A file takes what syslog cannot, so nothing goes to the test's stderr.
    let mut s = settings(Destination::Unix(path.clone()));
    s.maillog_file = Some(dir.join("maillog"));
    let logger = Logger::new(s).unwrap();
    emit(&logger, Level::Info, "smtpd", "first");
    assert!(recv_unix(&rx).ends_with(": first"));

    // The syslogd goes away and comes back with a new socket at the same path.
    drop(rx);
    std::fs::remove_file(&path).unwrap();
    emit(&logger, Level::Info, "smtpd", "while down");
    let rx = UnixDatagram::bind(&path).unwrap();
    emit(&logger, Level::Info, "smtpd", "after restart");
    assert!(recv_unix(&rx).ends_with(": after restart"));
    let note = recv_unix(&rx);
    assert!(note.contains("tern/master["), "{note}");
    assert!(note.contains("works again; 1 records failed"), "{note}");
    let st = logger.stats();
    assert_eq!((st.failed, st.fallback), (1, 0));
    let file = std::fs::read_to_string(dir.join("maillog")).unwrap();
    assert_eq!(file.lines().count(), 3, "{file}");
    assert!(file.contains("tern/smtpd[") && file.contains(": while down\n"));

    // Replaced while connected: the old connection is refused, so a fresh
    // connect finds the new socket without losing the record.
    drop(rx);
    std::fs::remove_file(&path).unwrap();
    let rx = UnixDatagram::bind(&path).unwrap();
    emit(&logger, Level::Info, "smtpd", "after second restart");
    assert!(recv_unix(&rx).ends_with(": after second restart"));
    assert_eq!(logger.stats().failed, 1);
}

#[test]
fn full_receiver_never_blocks() {
    let dir = tmpdir("full");
    let path = dir.join("log");
    let rx = UnixDatagram::bind(&path).unwrap(); // never read
    let mut s = settings(Destination::Unix(path));
    s.maillog_file = Some(dir.join("maillog"));
    let logger = Logger::new(s).unwrap();
    let start = Instant::now();
    for i in 0..5_000 {
        emit(
            &logger,
            Level::Info,
            "smtpd",
            &format!("line {i} {}", "y".repeat(200)),
        );
    }
    let took = start.elapsed();
    let st = logger.stats();
    assert!(
        st.failed > 0,
        "the receive queue should have filled: {st:?}"
    );
    // Every record was tried once; "works again" notes add to `sent`.
    assert!(st.sent + st.failed >= 5_000, "{st:?}");
    let file = std::fs::read_to_string(dir.join("maillog")).unwrap();
    assert_eq!(file.lines().count(), 5_000);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    eprintln!("5000 records with a full receiver: {took:?}, {st:?}");
    drop(rx);
}

/// Runs `fallback_child` in a fresh process and returns our stderr lines.
fn child_stderr(foreground: bool) -> Vec<String> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fallback_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "TERN_SYSLOG_FALLBACK_CHILD",
            tmpdir(&format!("fallback-{foreground}")),
        )
        .env(
            "TERN_SYSLOG_CHILD_STDERR",
            if foreground { "1" } else { "" },
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    err.lines()
        .filter(|l| l.contains(" nas.example tern/"))
        .map(str::to_string)
        .collect()
}

fn check_fallback_lines(ours: &[String]) {
    assert_eq!(ours.len(), 4, "{ours:#?}");
    assert!(ours[0].contains("tern/master[") && ours[0].contains("warning: cannot log to unix:"));
    assert!(ours[0].contains("No such file or directory"), "{}", ours[0]);
    for (i, l) in ours[1..].iter().enumerate() {
        let pid = l.split('[').nth(1).unwrap().split(']').next().unwrap();
        assert!(
            l.ends_with(&format!("tern/pickup[{pid}]: record {i}")),
            "{l}"
        );
    }
}

#[test]
fn missing_socket_falls_back_to_stderr_once_announced() {
    check_fallback_lines(&child_stderr(false));
}

#[test]
fn foreground_stderr_is_told_once_that_syslog_fails() {
    check_fallback_lines(&child_stderr(true));
}

#[test]
fn fallback_child() {
    let Some(dir) = std::env::var_os("TERN_SYSLOG_FALLBACK_CHILD") else {
        return; // only meaningful when run by the tests above
    };
    let foreground = std::env::var_os("TERN_SYSLOG_CHILD_STDERR").is_some_and(|v| v == "1");
    let path = PathBuf::from(dir).join("no-such-socket");
    let mut s = settings(Destination::Unix(path));
    s.stderr = foreground;
    let logger = Logger::new(s).unwrap();
    for i in 0..3 {
        emit(&logger, Level::Info, "pickup", &format!("record {i}"));
    }
    let st = logger.stats();
    let fallback = if foreground { 0 } else { 3 };
    assert_eq!((st.sent, st.failed, st.fallback), (0, 3, fallback));
}

#[test]
fn udp_collector_gets_rfc5424() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = rx.local_addr().unwrap();
    let mut s = settings(Destination::Udp(addr.to_string()));
    s.facility = Facility::Daemon;
    s.syslog_name = "tern-out".into();
    let logger = Logger::new(s).unwrap();
    let before = SystemTime::now();
    emit(
        &logger,
        Level::Warn,
        "qmgr",
        "QID: from=<a@b>, size=1, nrcpt=1 (queue active)\n",
    );
    let line = recv_udp(&rx);
    let f: Vec<&str> = line.splitn(8, ' ').collect();
    assert_eq!(f[0], "<28>1");
    assert!(
        stamps(before, |d| d.rfc3339().to_string()[..19].to_string())
            .contains(&f[1][..19].to_string()),
        "{line}"
    );
    // Cross-check the RFC 3339 text with date(1).
    let out = Command::new("date")
        .args(["-d", f[1], "+%s"])
        .output()
        .unwrap();
    let secs: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now - secs <= 2, "{line}");
    assert_eq!(f[2], "nas.example");
    assert_eq!(f[3], "tern-out/qmgr");
    assert_eq!(f[4], std::process::id().to_string());
    assert_eq!((f[5], f[6]), ("-", "-"));
    assert_eq!(f[7], "QID: from=<a@b>, size=1, nrcpt=1 (queue active)#012");
}

#[test]
fn udp_collector_down_is_harmless() {
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let dir = tmpdir("udpdown");
    let mut s = settings(Destination::Udp(format!("127.0.0.1:{port}")));
    s.maillog_file = Some(dir.join("maillog"));
    let logger = Logger::new(s).unwrap();
    let start = Instant::now();
    for i in 0..50 {
        emit(&logger, Level::Info, "smtp", &format!("r{i}"));
        std::thread::sleep(Duration::from_millis(2)); // let ICMP come back
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    let st = logger.stats();
    assert!(
        st.sent >= 50,
        "each refused send is retried on a fresh socket: {st:?}"
    );
    let file = std::fs::read_to_string(dir.join("maillog")).unwrap();
    assert_eq!(file.lines().count(), 50);
}

#[test]
fn maillog_file_lines_and_reopen() {
    let dir = tmpdir("file");
    let path = dir.join("maillog");
    let mut s = settings(Destination::Off);
    s.maillog_file = Some(path.clone());
    let logger = Logger::new(s).unwrap();
    let before = SystemTime::now();
    emit(
        &logger,
        Level::Info,
        "bounce",
        "QID: sender non-delivery notification: QID2",
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let want_tail = format!(
        " nas.example tern/bounce[{}]: QID: sender non-delivery notification: QID2\n",
        std::process::id()
    );
    let stamp_ok = stamps(before, |d| {
        format!(
            "{} {:02} {:02}:{:02}:{:02}",
            d.month_name(),
            d.day,
            d.hour,
            d.minute,
            d.second
        )
    })
    .iter()
    .any(|st| text == format!("{st}{want_tail}"));
    assert!(stamp_ok, "{text:?}");

    // logrotate moves the file; reopen starts a new one.
    std::fs::rename(&path, dir.join("maillog.1")).unwrap();
    emit(&logger, Level::Info, "local", "to the old file");
    logger.reopen().unwrap();
    emit(&logger, Level::Info, "local", "to the new file");
    let old = std::fs::read_to_string(dir.join("maillog.1")).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert!(old.ends_with(": to the old file\n") && old.lines().count() == 2);
    assert!(new.ends_with(": to the new file\n") && new.lines().count() == 1);
    assert_eq!(logger.stats().fallback, 0);
}

#[test]
fn init_errors_are_precise() {
    let mut s = settings(Destination::Off);
    s.syslog_name = "bad name".into();
    match Logger::new(s) {
        Err(
            e @ InitError::BadName {
                setting: "syslog_name",
                ..
            },
        ) => {
            assert!(e.to_string().contains("\"bad name\""))
        }
        _ => panic!("expected BadName"),
    }
    let s = settings(Destination::Udp("127.0.0.1".into()));
    match Logger::new(s) {
        Err(e @ InitError::Server { .. }) => {
            assert!(e.to_string().starts_with("syslog_server = \"127.0.0.1\": "))
        }
        _ => panic!("expected Server"),
    }
    let mut s = settings(Destination::Off);
    s.maillog_file = Some("/nonexistent-dir/maillog".into());
    match Logger::new(s) {
        Err(e @ InitError::File { .. }) => {
            assert!(
                e.to_string()
                    .contains("/nonexistent-dir/maillog: No such file"),
                "{e}"
            )
        }
        _ => panic!("expected File"),
    }
    assert_eq!(
        Destination::from_config("/dev/log", ""),
        Destination::Unix("/dev/log".into())
    );
    assert_eq!(
        Destination::from_config("/dev/log", "[::1]:514"),
        Destination::Udp("[::1]:514".into())
    );
    assert_eq!(Destination::from_config("", ""), Destination::Off);
}
