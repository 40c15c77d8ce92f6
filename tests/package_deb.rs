//! Issue 14's .deb Bar: `scripts/build-deb.sh` builds the package from the
//! test binary, dpkg installs it in a private mount namespace whose /etc,
//! /usr and /var are overlays (tests/package_support/deb-in-namespace.sh:
//! Postfix is removed there, never on the host), `systemd-analyze verify`
//! accepts the unit, the unit's ExecStartPre and ExecStart command lines
//! run as root with the packaged configuration (ports moved to free
//! loopback ports, relayhost an smtp-sink), the daemon drops to the `tern`
//! account the postinst created, and `echo test | sendmail root` through
//! the packaged link reaches the sink through the packaged aliases file.
//! The daemon runs inside the unit's sandbox as far as it can be had
//! without systemd: ProtectSystem=strict with its ReadWritePaths,
//! PrivateTmp, NoNewPrivileges and CapabilityBoundingSet.

mod common;

use common::ports::{free_port, wait_listening};
use common::process::{run, Daemon, RunOutput};
use common::sink::SmtpSink;
use common::tempdir::{read_lossy, write, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the .deb from this test's binary into `out`; its path.
fn build_deb(out: &Path) -> PathBuf {
    let mut cmd = Command::new("sh");
    cmd.arg(repo().join("scripts/build-deb.sh"))
        .arg(out)
        .env("TERN_BIN", env!("CARGO_BIN_EXE_tern"));
    let r = run(cmd, None, T);
    assert!(r.success(), "build-deb.sh: {}", r.combined());
    let deb = PathBuf::from(r.stdout.lines().last().unwrap_or("").trim());
    assert!(
        deb.is_file(),
        "no .deb at {}: {}",
        deb.display(),
        r.combined()
    );
    deb
}

/// The value of `key=` in the unit's [Service] section, with systemd's
/// `-@+!:` prefixes dropped (none is used; a new one must not slip by).
fn unit_command(unit: &str, key: &str) -> String {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit:\n{unit}"));
    assert!(
        line.starts_with('/'),
        "{key}={line}: the test runs plain absolute command lines only"
    );
    line.to_string()
}

fn field(deb: &Path, name: &str) -> String {
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("-f").arg(deb).arg(name);
    run(cmd, None, T).stdout.trim().to_string()
}

/// Runs `sh -c script` in the daemon's mount namespace.
fn in_namespace(pid: u32, script: &str, stdin: Option<&[u8]>) -> RunOutput {
    let mut cmd = Command::new("nsenter");
    cmd.arg("-t")
        .arg(pid.to_string())
        .args(["-m", "--", "sh", "-c", script]);
    run(cmd, stdin, Duration::from_secs(30))
}

/// The real uid of `pid` (the `Uid:` line of /proc/PID/status).
fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn deb_installs_starts_and_sendmail_reaches_the_sink() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (mount namespace, dpkg, the unit runs as root)");
        return;
    }
    let dir = TempDir::new("deb");
    let deb = build_deb(&dir.subdir("out"));

    // What the package declares, read from the .deb itself.
    for (f, want) in [
        ("Provides", "mail-transport-agent"),
        ("Conflicts", "mail-transport-agent"),
        ("Replaces", "mail-transport-agent"),
    ] {
        assert_eq!(field(&deb, f), want, "{f}");
    }
    assert!(field(&deb, "Depends").contains("adduser"));
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("-c").arg(&deb);
    let listing = run(cmd, None, T).stdout;
    for path in [
        "./usr/sbin/tern",
        "./usr/sbin/sendmail -> tern",
        "./usr/bin/mailq -> ../sbin/tern",
        "./usr/bin/newaliases -> ../sbin/tern",
        "./lib/systemd/system/tern.service",
        "./etc/tern/tern.conf",
        "./usr/share/man/man8/tern.8.gz",
        "./usr/share/man/man5/tern.conf.5.gz",
    ] {
        assert!(listing.contains(path), "{path} not in the .deb:\n{listing}");
    }

    let unit = read_lossy(&repo().join("packaging/debian/tern.service"));
    for setting in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/spool/tern",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(setting), "{setting} not in the unit");
    }
    let pre = unit_command(&unit, "ExecStartPre");
    let start = unit_command(&unit, "ExecStart");
    assert_eq!(start, "/usr/sbin/tern run -f");

    let sink = SmtpSink::start();
    let port = free_port();
    let overrides = dir.join("overrides");
    write(
        &overrides,
        format!(
            "\n# package_deb test: free ports, the sink as relay, a file log\n\
             smtp_listen = {port}\n\
             relayhost = [127.0.0.1]:{}\n\
             smtp_tls_security_level = none\n\
             syslog_socket =\n\
             maillog_file = /var/log/tern-test/tern.log\n",
            sink.port()
        ),
    );
    let aliases = dir.join("aliases");
    write(&aliases, "root: admin@sink.example\n");
    let scratch = dir.subdir("scratch");
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh"])
        .arg(repo().join("tests/package_support/deb-in-namespace.sh"))
        .arg(&scratch)
        .arg(&deb)
        .arg(&overrides)
        .arg(&aliases)
        .arg(&pre)
        .arg(&start);
    let mut tern = Daemon::spawn("deb-in-namespace", cmd, &dir.join("output"));
    let pid = tern.pid();
    let t0 = Instant::now();
    while !wait_listening(port, Duration::from_millis(200)) {
        assert!(
            tern.exited().is_none() && t0.elapsed() < T,
            "the packaged tern did not listen on {port}:\n{}",
            tern.output()
        );
    }
    let output = tern.output();
    assert!(output.contains("Setting up tern"), "{output}");
    assert!(output.contains("systemd-analyze verify: ok"), "{output}");

    // The postinst's account, in the namespace's /etc/passwd (its overlay).
    let passwd = read_lossy(&scratch.join("etc.up/passwd"));
    let tern_uid: u32 = passwd
        .lines()
        .find_map(|l| l.strip_prefix("tern:x:"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("postinst made no tern account:\n{passwd}"));
    // ExecStart runs as root; tern binds and then runs as mail_owner.
    let t0 = Instant::now();
    while uid_of(pid) != Some(tern_uid) && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(uid_of(pid), Some(tern_uid), "{}", tern.output());
    // Under the unit's NoNewPrivileges and CapabilityBoundingSet (setpriv):
    // CHOWN 0, DAC_OVERRIDE 1, DAC_READ_SEARCH 2, FOWNER 3, SETGID 6,
    // SETUID 7, NET_BIND_SERVICE 10.
    let status = read_lossy(Path::new(&format!("/proc/{pid}/status")));
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("CapBnd:\t00000000000004cf"), "{status}");
    assert!(
        tern.output().contains("sandbox: setpriv --no-new-privs"),
        "{}",
        tern.output()
    );

    // The packaged links, as cron and smartd call them.
    let r = in_namespace(pid, "echo test | /usr/sbin/sendmail root", None);
    assert!(r.success(), "sendmail: {}", r.combined());
    assert_eq!(sink.wait_for_count(1, T), 1, "{}", tern.output());
    let msg = String::from_utf8_lossy(&sink.messages()[0]).to_string();
    assert!(msg.contains("\ntest"), "{msg}");
    assert!(msg.contains("To: root"), "{msg}");

    let log = read_lossy(&scratch.join("var.up/log/tern-test/tern.log"));
    assert!(log.contains("to=<admin@sink.example>"), "{log}");
    assert!(log.contains("status=sent"), "{log}");
    // The unit's ExecReload, as systemd runs it: the daemon re-reads its
    // configuration as mail_owner inside the sandbox, and keeps working.
    let reload = unit_command(&unit, "ExecReload").replace("$MAINPID", &pid.to_string());
    let r = in_namespace(pid, &reload, None);
    assert!(r.success(), "{reload}: {}", r.combined());
    let r = in_namespace(pid, "echo again | /usr/sbin/sendmail root", None);
    assert!(r.success(), "sendmail: {}", r.combined());
    assert_eq!(sink.wait_for_count(2, T), 2, "{}", tern.output());
    let log = read_lossy(&scratch.join("var.up/log/tern-test/tern.log"));
    assert!(!log.contains("reload failed"), "{log}");
    assert!(!log.contains("warning: reload"), "{log}");
    let r = in_namespace(pid, "/usr/bin/mailq", None);
    assert!(r.stdout.contains("Mail queue is empty"), "{}", r.combined());
    // The man pages are where man looks for them.
    let r = in_namespace(pid, "man -w tern.conf && man -w 8 tern", None);
    assert!(r.success(), "{}", r.combined());
    tern.stop();
}
