//! End to end: tern's lines through a real rsyslogd (imuxsock on a private
//! socket, imudp for RFC 5424) into files, and pflogsumm counting them.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use log::{Level, Log, Record};
use tern::syslog::{Destination, Logger, Settings};

struct Rsyslogd(Child);

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_rsyslogd(dir: &Path, udp_port: u16) -> Rsyslogd {
    let d = dir.display();
    let conf = format!(
        r#"global(workDirectory="{d}")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
template(name="rfc3339" type="string"
         string="%TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME%[%PROCID%]: %msg%\n")
ruleset(name="udp") {{
  action(type="omfile" file="{d}/udp.log" template="rfc3339")
}}
input(type="imuxsock" Socket="{d}/log" IgnoreTimestamp="off")
input(type="imudp" address="127.0.0.1" port="{udp_port}" ruleset="udp")
mail.* action(type="omfile" file="{d}/mail.log" template="RSYSLOG_TraditionalFileFormat")
"#
    );
    let conf_path = dir.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd (Debian package rsyslog)");
    let r = Rsyslogd(child);
    wait_for(|| dir.join("log").exists(), "rsyslogd socket");
    r
}

fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn emit(logger: &Logger, target: &str, msg: &str) {
    logger.log(
        &Record::builder()
            .level(Level::Info)
            .target(target)
            .args(format_args!("{msg}"))
            .build(),
    );
}

/// One message's life, as Postfix logs it.
fn log_one_message(logger: &Logger) {
    let qid = "3B7F81C0A2";
    emit(logger, "smtpd", "connect from client.example[127.0.0.1]");
    emit(
        logger,
        "smtpd",
        &format!("{qid}: client=client.example[127.0.0.1]"),
    );
    emit(
        logger,
        "cleanup",
        &format!("{qid}: message-id=<1@client.example>"),
    );
    emit(
        logger,
        "qmgr",
        &format!("{qid}: from=<a@b.example>, size=100, nrcpt=1 (queue active)"),
    );
    emit(
        logger,
        "smtpd",
        "disconnect from client.example[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
    );
    emit(
        logger,
        "smtp",
        &format!(
            "{qid}: to=<x@y.example>, relay=mx.y.example[127.0.0.1]:25, delay=0.1, \
             delays=0.01/0/0.05/0.04, dsn=2.0.0, status=sent (250 2.0.0 Ok)"
        ),
    );
    emit(logger, "qmgr", &format!("{qid}: removed"));
}

/// pflogsumm's "received" and "delivered" grand totals for `file`.
fn pflogsumm_counts(file: &Path) -> (u32, u32, String) {
    let out = Command::new("pflogsumm")
        .arg("--syslog-name=tern")
        .arg(file)
        .output()
        .expect("pflogsumm");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |label: &str| {
        text.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                let n = w.next()?.parse().ok()?;
                (w.next()? == label && w.next().is_none()).then_some(n)
            })
            .unwrap_or_else(|| panic!("no '{label}' line in:\n{text}"))
    };
    (count("received"), count("delivered"), text)
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

#[test]
fn rsyslog_and_pflogsumm_read_terns_lines() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("tern-syslog-rsyslog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_udp_port();
    let _rsyslogd = start_rsyslogd(&dir, port);

    // RFC 3164 to the unix socket, and maillog_file at the same time.
    let logger = Logger::new(Settings {
        destination: Destination::Unix(dir.join("log")),
        maillog_file: Some(dir.join("maillog")),
        ..Settings::default()
    })
    .unwrap();
    log_one_message(&logger);
    // imuxsock keeps our RFC 3164 stamp (IgnoreTimestamp="off"): had it
    // not parsed, the tag would be "Nov" and pflogsumm would count nothing.
    // A line that tries to forge a second record stays one record.
    emit(
        &logger,
        "smtpd",
        "warning: junk\nNov 23 00:00:00 h tern/smtp[1]: ZZZ: to=<f@f>, status=sent (x)",
    );
    wait_for(|| lines_in(&dir.join("mail.log")) >= 8, "mail.log");

    let mail_log = std::fs::read_to_string(dir.join("mail.log")).unwrap();
    let pid = std::process::id();
    assert!(
        mail_log.contains(&format!(
            " tern/smtpd[{pid}]: 3B7F81C0A2: client=client.example[127.0.0.1]\n"
        )),
        "{mail_log}"
    );
    assert_eq!(mail_log.lines().count(), 8, "{mail_log}");
    let (received, delivered, report) = pflogsumm_counts(&dir.join("mail.log"));
    assert_eq!((received, delivered), (1, 1), "{report}");

    // Postfix-format maillog_file: pflogsumm reads it directly too.
    let (received, delivered, report) = pflogsumm_counts(&dir.join("maillog"));
    assert_eq!((received, delivered), (1, 1), "{report}");

    // RFC 5424 over UDP: rsyslog parses APP-NAME and PROCID from our header.
    let udp = Logger::new(Settings {
        destination: Destination::Udp(format!("127.0.0.1:{port}")),
        hostname: Some("nas.example".into()),
        ..Settings::default()
    })
    .unwrap();
    log_one_message(&udp);
    wait_for(|| lines_in(&dir.join("udp.log")) >= 7, "udp.log");
    let udp_log = std::fs::read_to_string(dir.join("udp.log")).unwrap();
    assert!(
        udp_log.contains(&format!(
            " nas.example tern/qmgr[{pid}]: 3B7F81C0A2: removed\n"
        )),
        "{udp_log}"
    );
    let (received, delivered, report) = pflogsumm_counts(&dir.join("udp.log"));
    assert_eq!((received, delivered), (1, 1), "{report}");
    assert_eq!(logger.stats().failed + udp.stats().failed, 0);
    eprintln!("--- mail.log\n{mail_log}--- udp.log\n{udp_log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// rsyslogd with two UDP inputs written in its traditional file format
/// (the default of most distributions' rsyslog.conf).
fn start_rsyslogd_traditional(dir: &Path, port_3164: u16, port_5424: u16) -> Rsyslogd {
    let d = dir.display();
    let conf = format!(
        r#"global(workDirectory="{d}")
module(load="imudp")
ruleset(name="bsd") {{
  action(type="omfile" file="{d}/udp3164.log" template="RSYSLOG_TraditionalFileFormat")
}}
ruleset(name="ietf") {{
  action(type="omfile" file="{d}/udp5424.log" template="RSYSLOG_TraditionalFileFormat")
}}
input(type="imudp" address="127.0.0.1" port="{port_3164}" ruleset="bsd")
input(type="imudp" address="127.0.0.1" port="{port_5424}" ruleset="ietf")
"#
    );
    let conf_path = dir.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd (Debian package rsyslog)");
    let r = Rsyslogd(child);
    // imudp has no file to wait for: wait until a probe datagram lands.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    wait_for(
        || {
            let _ = probe.send_to(
                b"<22>Jan  1 00:00:00 probe probe[1]: up",
                ("127.0.0.1", port_3164),
            );
            std::thread::sleep(Duration::from_millis(50));
            lines_in(&dir.join("udp3164.log")) > 0
        },
        "rsyslogd on UDP",
    );
    r
}

/// `syslog_server_format = rfc3164`: over UDP into rsyslog's traditional
/// file format, the tag keeps its colon (`tern/qmgr[pid]: ...`) and
/// pflogsumm counts the message; the same lines sent as RFC 5424 lose it
/// there (`tern/qmgr[pid] ...`), which is why the choice exists.
#[test]
fn rfc3164_over_udp_survives_rsyslogs_traditional_format() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("tern-syslog-rsyslog-bsd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (p3164, p5424) = (free_udp_port(), free_udp_port());
    let _rsyslogd = start_rsyslogd_traditional(&dir, p3164, p5424);
    let probe_lines = lines_in(&dir.join("udp3164.log"));
    let settings = |dest: Destination| Settings {
        destination: dest,
        hostname: Some("nas.example".into()),
        ..Settings::default()
    };
    let bsd = Logger::new(settings(
        Destination::from_config("", &format!("127.0.0.1:{p3164}")).with_server_format("rfc3164"),
    ))
    .unwrap();
    let ietf = Logger::new(settings(
        Destination::from_config("", &format!("127.0.0.1:{p5424}")).with_server_format("rfc5424"),
    ))
    .unwrap();
    log_one_message(&bsd);
    log_one_message(&ietf);
    wait_for(
        || lines_in(&dir.join("udp3164.log")) >= probe_lines + 7,
        "udp3164.log",
    );
    wait_for(|| lines_in(&dir.join("udp5424.log")) >= 7, "udp5424.log");
    let pid = std::process::id();
    let bsd_log = std::fs::read_to_string(dir.join("udp3164.log")).unwrap();
    assert!(
        bsd_log.contains(&format!(
            " nas.example tern/qmgr[{pid}]: 3B7F81C0A2: removed\n"
        )),
        "{bsd_log}"
    );
    let (received, delivered, report) = pflogsumm_counts(&dir.join("udp3164.log"));
    assert_eq!((received, delivered), (1, 1), "{report}");
    let ietf_log = std::fs::read_to_string(dir.join("udp5424.log")).unwrap();
    assert!(
        !ietf_log.contains(&format!("tern/qmgr[{pid}]: ")),
        "rsyslog kept the colon of RFC 5424 input after all; update docs/operation.md:\n{ietf_log}"
    );
    eprintln!("--- rfc3164\n{bsd_log}--- rfc5424\n{ietf_log}");
    let _ = std::fs::remove_dir_all(&dir);
}
