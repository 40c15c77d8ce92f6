//! Mail for the box itself, end to end with the real binary: `tern
//! sendmail` and SMTP in, aliases, Maildir delivery, forwarding through
//! the relayhost to smtp-sink, loop bounces, 550 5.1.1 at RCPT, and
//! `tern newaliases`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ports::{free_port, wait_listening};
use common::process::{run, Daemon, RunOutput};
use common::sink::SmtpSink;
use common::tempdir::{own, read_lossy, user_ids, write, TempDir};
use common::tools::Swaks;

const TERN: &str = env!("CARGO_BIN_EXE_tern");
const WAIT: Duration = Duration::from_secs(30);

/// A running tern with a relayhost (smtp-sink), aliases and mail-only users.
struct Box {
    dir: TempDir,
    port: u16,
    conf: PathBuf,
    daemon: Daemon,
}

impl Box {
    fn start(sink_port: u16, aliases: &str, vmailbox: &str, extra: &str) -> Box {
        let dir = TempDir::new("local");
        let port = free_port();
        let (uid, gid) = user_ids("nobody");
        let vmail = dir.subdir("vmail");
        own(&vmail, uid, gid, 0o700);
        write(&dir.join("aliases"), aliases);
        write(&dir.join("vmailbox"), vmailbox);
        let conf = dir.join("tern.conf");
        let d = dir.path().display();
        write(
            &conf,
            format!(
                "myhostname = box.test\n\
                 mydestination = $myhostname, localhost\n\
                 smtp_listen = 127.0.0.1:{port}\n\
                 queue_directory = {d}/spool\n\
                 relayhost = [127.0.0.1]:{sink_port}\n\
                 smtp_tls_security_level = none\n\
                 mta_sts_enable = no\n\
                 maillog_file = {d}/maillog\n\
                 syslog_socket =\n\
                 mail_owner = nobody\n\
                 queue_run_delay = 1s\n\
                 alias_maps = texthash:{d}/aliases\n\
                 virtual_mailbox_base = {d}/vmail\n\
                 virtual_mailbox_maps = texthash:{d}/vmailbox\n\
                 {extra}"
            ),
        );
        Box::launch(dir, port, conf)
    }

    /// The README's five-minute setup: a relayhost and an alias for root,
    /// and nothing about the host's names, so `myhostname`, `myorigin` and
    /// `mydestination` are the defaults tern derives. The other lines are
    /// the test's plumbing: the sink has no TLS or AUTH, the spool, log and
    /// port are the test's own, and `mail_owner = nobody` because creating
    /// the documented `tern` account would change the host for every other
    /// test running at the same time.
    fn start_documented(sink_port: u16, aliases: &str) -> Box {
        let dir = TempDir::new("local-doc");
        let port = free_port();
        write(&dir.join("aliases"), aliases);
        let conf = dir.join("tern.conf");
        let d = dir.path().display();
        write(
            &conf,
            format!(
                "relayhost = [127.0.0.1]:{sink_port}\n\
                 alias_maps = texthash:{d}/aliases\n\
                 # test plumbing\n\
                 smtp_tls_security_level = none\n\
                 smtp_listen = 127.0.0.1:{port}\n\
                 queue_directory = {d}/spool\n\
                 mta_sts_enable = no\n\
                 maillog_file = {d}/maillog\n\
                 syslog_socket =\n\
                 mail_owner = nobody\n\
                 queue_run_delay = 1s\n"
            ),
        );
        Box::launch(dir, port, conf)
    }

    fn launch(dir: TempDir, port: u16, conf: PathBuf) -> Box {
        let mut cmd = Command::new(TERN);
        cmd.args(["run", "-f", "-c"]).arg(&conf);
        let mut daemon = Daemon::spawn("tern", cmd, &dir.join("tern.out"));
        let deadline = Instant::now() + WAIT;
        while !wait_listening(port, Duration::from_millis(50)) {
            if daemon.exited().is_some() || Instant::now() > deadline {
                panic!("tern did not start:\n{}", daemon.output());
            }
        }
        Box {
            dir,
            port,
            conf,
            daemon,
        }
    }

    fn sendmail(&self, args: &[&str], stdin: &[u8]) -> RunOutput {
        let mut cmd = Command::new(TERN);
        cmd.arg("sendmail").arg("-C").arg(&self.conf).args(args);
        run(cmd, Some(stdin), WAIT)
    }

    fn maillog(&self) -> String {
        read_lossy(&self.dir.join("maillog"))
    }

    /// Waits until the maillog has a line containing every one of `parts`.
    fn wait_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.maillog();
            if let Some(l) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return l.to_string();
            }
            if Instant::now() > deadline {
                panic!(
                    "no log line with {parts:?}:\n{log}\n--- tern output\n{}",
                    self.daemon.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `n` maillog lines contain `part`.
    fn wait_lines(&self, part: &str, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.maillog().lines().filter(|l| l.contains(part)).count() < n {
            if Instant::now() > deadline {
                panic!("fewer than {n} lines with {part:?}:\n{}", self.maillog());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// No message in active/ or deferred/.
    fn queue_is_empty(&self) -> bool {
        ["active", "deferred"].iter().all(|d| {
            std::fs::read_dir(self.dir.join("spool").join(d))
                .map(|rd| rd.count() == 0)
                .unwrap_or(true)
        })
    }

    fn vmail(&self, rel: &str) -> PathBuf {
        self.dir.join("vmail").join(rel)
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `Mon, 23 Nov 2026 19:40:00 +0000 (UTC)`-shaped (RFC 5322 date-time,
/// optional zone comment).
fn looks_like_date(v: &str) -> bool {
    let f: Vec<&str> = v.split_whitespace().collect();
    (f.len() == 6 || f.len() == 7 && f[6].starts_with('(') && f[6].ends_with(')'))
        && f[0].ends_with(',')
        && f[1].parse::<u8>().is_ok_and(|d| (1..=31).contains(&d))
        && f[2].len() == 3
        && f[3].parse::<u16>().is_ok_and(|y| y >= 2024)
        && f[4].split(':').count() == 3
        && (f[5].starts_with('+') || f[5].starts_with('-'))
        && f[5].len() == 5
}

#[test]
fn cron_mail_to_root_reaches_the_owner_through_the_relayhost() {
    let sink = SmtpSink::start();
    let b = Box::start(
        sink.port(),
        "# the five-minute setup\nroot: owner@remote.test\n",
        "",
        "",
    );
    let started = Instant::now();
    let out = b.sendmail(&["root"], b"test\n");
    assert!(out.success(), "sendmail: {out:?}");
    sink.wait_for_count(1, WAIT);
    let elapsed = started.elapsed();
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    let m = String::from_utf8_lossy(&msgs[0]).into_owned();
    // The envelope recipient is the alias target; the sender was qualified.
    assert_eq!(
        header(&m, "X-Rcpt-Args"),
        Some("<owner@remote.test>"),
        "{m}"
    );
    assert!(
        header(&m, "X-Mail-Args").is_some_and(|v| v.starts_with("<root@box.test>")),
        "{m}"
    );
    // A message without any header got From:, Date: and Message-Id:.
    let from = header(&m, "From").expect("From:");
    assert!(
        from.ends_with("<root@box.test>") || from == "root@box.test",
        "{from}"
    );
    assert!(looks_like_date(header(&m, "Date").expect("Date:")), "{m}");
    let mid = header(&m, "Message-Id").expect("Message-Id:");
    assert!(mid.starts_with('<') && mid.ends_with("@box.test>"), "{mid}");
    assert_eq!(header(&m, "Delivered-To"), Some("root@box.test"));
    assert!(
        m.replace("\r\n", "\n").trim_end().ends_with("\n\ntest"),
        "{m:?}"
    );
    // Logged like Postfix's local(8), and the rewrite at queue entry.
    let line = b.wait_log(&["to=<root@box.test>", "orig_to=<root>", "relay=local"]);
    assert!(line.contains("status=sent (forwarded as "), "{line}");
    assert!(line.contains(" tern/local["), "{line}");
    b.wait_log(&["rewrote recipient <root> as <root@box.test>"]);
    b.wait_log(&[
        "to=<owner@remote.test>",
        "relay=127.0.0.1[127.0.0.1]",
        "status=sent",
    ]);
    eprintln!("sendmail -> alias -> relayhost: {elapsed:?}");
}

/// The host name tern derives when `myhostname` is not set (config.rs
/// ComputedDefaults): the kernel's host name, with `.localdomain` added
/// when it has no dot, as Postfix insists on a fully qualified name.
fn derived_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read /proc/sys/kernel/hostname")
        .trim()
        .to_string();
    if name.is_empty() {
        "localhost.localdomain".into()
    } else if name.contains('.') {
        name
    } else {
        format!("{name}.localdomain")
    }
}

/// How many header fields called `name` (any case) the message has.
fn header_count(msg: &str, name: &str) -> usize {
    msg.lines()
        .take_while(|l| !l.trim_end_matches('\r').is_empty())
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .count()
}

/// `size=N` of the qmgr line of `id`.
fn qmgr_size(log: &str, id: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains(" tern/qmgr[") && l.contains(&format!(": {id}: from=<")))
        .unwrap_or_else(|| panic!("no qmgr line for {id}:\n{log}"));
    line.split("size=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size= in {line}"))
}

/// The README's cron setup as documented, with the host's own names: `echo
/// test | sendmail root` reaches the owner with one From:, Date: and
/// Message-ID:, the log has Postfix's pickup, qmgr and local lines for the
/// message and its forwarded copy, and pflogsumm counts them.
#[test]
fn documented_cron_setup_uses_the_derived_hostname_and_logs_like_postfix() {
    let host = derived_hostname();
    let sink = SmtpSink::start();
    let b = Box::start_documented(sink.port(), "root: owner@remote.test\n");
    let shown = {
        let mut cmd = Command::new(TERN);
        cmd.args(["config", "-c"]).arg(&b.conf);
        run(cmd, None, WAIT)
    };
    for p in ["myhostname", "myorigin"] {
        assert!(
            shown.stdout.lines().any(|l| l == format!("{p} = {host}")),
            "{p} is not {host}:\n{}",
            shown.stdout
        );
    }
    let out = b.sendmail(&["root"], b"test\n");
    assert!(out.success(), "sendmail: {out:?}");
    sink.wait_for_count(1, WAIT);
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    let m = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert_eq!(
        header(&m, "X-Rcpt-Args"),
        Some("<owner@remote.test>"),
        "{m}"
    );
    let root = format!("root@{host}");
    assert!(
        header(&m, "X-Mail-Args").is_some_and(|v| v.starts_with(&format!("<{root}>"))),
        "{m}"
    );
    for h in ["From", "Date", "Message-ID"] {
        assert_eq!(header_count(&m, h), 1, "{h}: once:\n{m}");
    }
    let from = header(&m, "From").unwrap_or_default();
    assert!(
        from.ends_with(&format!("<{root}>")) || from == root,
        "{from}"
    );
    assert!(
        looks_like_date(header(&m, "Date").unwrap_or_default()),
        "{m}"
    );
    let mid = header(&m, "Message-ID").unwrap_or_default();
    assert!(
        mid.starts_with('<') && mid.ends_with(&format!("@{host}>")),
        "{mid}"
    );
    assert_eq!(header(&m, "Delivered-To"), Some(root.as_str()), "{m}");

    // The log, line by line as Postfix writes it for cron's mail.
    let sent = b.wait_log(&["to=<owner@remote.test>", "status=sent"]);
    let log = b.maillog();
    let id_of = |line: &str| -> String {
        line.split(": ")
            .nth(1)
            .unwrap_or_else(|| panic!("no queue ID in {line}"))
            .to_string()
    };
    let pickup = b.wait_log(&[" tern/pickup[", ": uid=0 from=<root>"]);
    assert!(pickup.ends_with(": uid=0 from=<root>"), "{pickup}");
    let first = id_of(&pickup);
    let local = b.wait_log(&[&format!(
        ": {first}: to=<{root}>, orig_to=<root>, relay=local"
    )]);
    assert!(local.contains(" tern/local["), "{local}");
    let fwd = local
        .split("status=sent (forwarded as ")
        .nth(1)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not forwarded: {local}"))
        .to_string();
    assert_eq!(id_of(&sent), fwd, "the copy is what left: {sent}");
    for (id, line) in [(&first, 0), (&fwd, 1)] {
        let want = format!(": {id}: from=<{root}>, size=");
        let l = log
            .lines()
            .find(|l| l.contains(&want))
            .unwrap_or_else(|| panic!("no qmgr line {line} for {id}:\n{log}"));
        assert!(l.contains(" tern/qmgr["), "{l}");
        assert!(l.ends_with(", nrcpt=1 (queue active)"), "{l}");
    }
    assert!(
        !log.contains("forwarded mail for"),
        "a line of tern's own:\n{log}"
    );
    let size1 = qmgr_size(&log, &first);
    let size2 = qmgr_size(&log, &fwd);
    // The copy is the original with one Delivered-To: line on top.
    assert_eq!(
        size2,
        size1 + format!("Delivered-To: {root}\r\n").len() as u64,
        "{log}"
    );

    // pflogsumm: one message received (from pickup), one delivered (the
    // forwarded copy, through the relayhost), one forwarded, with bytes.
    b.wait_lines(": removed", 2);
    let (t, report) = common::tools::pflogsumm(&b.dir.join("maillog"), "tern");
    assert_eq!(t.received, 1, "{report}");
    assert_eq!(t.delivered, 1, "{report}");
    assert_eq!(t.forwarded, 1, "{report}");
    assert_eq!(t.bytes_received, size1, "{report}");
    assert_eq!(t.bytes_delivered, size2, "{report}");
    assert_eq!(t.senders, 1, "{report}");
}

#[test]
fn alias_loop_is_bounced_not_looped() {
    let sink = SmtpSink::start();
    let b = Box::start(sink.port(), "a: b\nb: c@localhost\nc: a\n", "", "");
    let out = b.sendmail(&["-f", "sender@remote.test", "a"], b"Subject: loop\n\nx\n");
    assert!(out.success(), "sendmail: {out:?}");
    let line = b.wait_log(&["to=<a@box.test>", "relay=local", "status=bounced"]);
    assert!(line.contains("dsn=5.4.6"), "{line}");
    assert!(
        line.contains("mail forwarding loop for a@box.test"),
        "{line}"
    );
    // The bounce goes back to the sender; nothing else is sent.
    sink.wait_for_count(1, WAIT);
    // The original and the bounce both leave the queue; then nothing is
    // left that could loop.
    b.wait_lines(": removed", 2);
    assert!(b.queue_is_empty(), "queue not empty");
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1, "only the bounce");
    let m = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert_eq!(header(&m, "X-Rcpt-Args"), Some("<sender@remote.test>"));
    assert!(m.contains("mail forwarding loop for a@box.test"), "{m}");
    assert!(m.contains("Status: 5.4.6"), "{m}");
}

#[test]
fn delivered_to_loop_across_the_queue_is_bounced() {
    // The message already passed through root@box.test once (e.g. it came
    // back from a remote forward): bounce instead of forwarding again.
    let sink = SmtpSink::start();
    let b = Box::start(sink.port(), "root: owner@remote.test\n", "", "");
    let out = b.sendmail(
        &["-f", "sender@remote.test", "root"],
        b"Delivered-To: root@box.test\nSubject: again\n\nx\n",
    );
    assert!(out.success(), "sendmail: {out:?}");
    let line = b.wait_log(&["to=<root@box.test>", "status=bounced"]);
    assert!(
        line.contains("mail forwarding loop for root@box.test"),
        "{line}"
    );
    sink.wait_for_count(1, WAIT);
    let m = String::from_utf8_lossy(&sink.messages()[0]).into_owned();
    assert_eq!(header(&m, "X-Rcpt-Args"), Some("<sender@remote.test>"));
}

fn read_maildir(dir: &Path) -> String {
    // Python's mailbox module is an independent Maildir reader.
    let script = "import mailbox,sys\n\
                  md = mailbox.Maildir(sys.argv[1], factory=None, create=False)\n\
                  for k, m in sorted(md.items()):\n\
                  \x20   print('subdir=' + m.get_subdir())\n\
                  \x20   for h in ('Return-Path','Delivered-To','X-Original-To','From','Subject','Message-Id'):\n\
                  \x20       print(h + '=' + str(m[h]))\n\
                  \x20   print('body=' + repr(m.get_payload()))\n";
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", script]).arg(dir);
    let out = run(cmd, None, WAIT);
    assert!(out.success(), "python3 mailbox: {out:?}");
    out.stdout
}

#[test]
fn local_user_gets_a_maildir_file() {
    let sink = SmtpSink::start();
    let b = Box::start(
        sink.port(),
        "admin: alice\npostmaster: admin\n",
        "alice@box.test  alice/Maildir/\n",
        "",
    );
    // Over SMTP to the alias, and by sendmail to the user directly.
    let r = Swaks::new(b.port)
        .from("someone@remote.test")
        .to("postmaster@box.test")
        .header("Subject", "via smtp")
        .run_ok();
    assert!(r.queue_id().is_some(), "{}", r.transcript);
    let out = b.sendmail(&["alice"], b"Subject: via sendmail\n\nhello\n");
    assert!(out.success(), "sendmail: {out:?}");
    let l1 = b.wait_log(&["to=<alice@box.test>", "orig_to=<postmaster@box.test>"]);
    assert!(l1.contains("relay=local"), "{l1}");
    assert!(
        l1.contains("dsn=2.0.0, status=sent (delivered to maildir)"),
        "{l1}"
    );
    let l2 = b.wait_log(&[
        "to=<alice@box.test>",
        "orig_to=<alice>",
        "status=sent (delivered to maildir)",
    ]);
    assert!(l2.contains("tern/local["), "{l2}");
    let md = b.vmail("alice/Maildir");
    assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(md.join("new")).unwrap().count(), 2);
    let parsed = read_maildir(&md);
    assert_eq!(parsed.matches("subdir=new").count(), 2, "{parsed}");
    assert!(
        parsed.contains("Return-Path=<someone@remote.test>"),
        "{parsed}"
    );
    assert!(parsed.contains("Delivered-To=alice@box.test"), "{parsed}");
    assert!(
        parsed.contains("X-Original-To=postmaster@box.test"),
        "{parsed}"
    );
    assert!(parsed.contains("Subject=via smtp"), "{parsed}");
    assert!(parsed.contains("Subject=via sendmail"), "{parsed}");
    assert!(parsed.contains("body='hello\\n'"), "{parsed}");
    assert!(parsed.contains("Return-Path=<root@box.test>"), "{parsed}");
    // Maildir files use LF line ends.
    for e in std::fs::read_dir(md.join("new")).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        assert!(!data.contains(&b'\r'), "CR in Maildir file");
    }
    assert_eq!(sink.count(), 0, "nothing left the box");
}

/// A system account for one test, with its home below a test directory;
/// `userdel` on drop.
struct SystemUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl SystemUser {
    /// An ordinary user with its own group.
    fn create(parent: &Path) -> SystemUser {
        SystemUser::add(parent, "ternu", &["-U"])
    }

    /// A second uid-0 account (like BSD's `toor`): stands in for root
    /// without touching the real /root.
    fn create_uid0(parent: &Path) -> SystemUser {
        SystemUser::add(parent, "ternr", &["-o", "-u", "0", "-g", "0"])
    }

    fn add(parent: &Path, prefix: &str, opts: &[&str]) -> SystemUser {
        let name = format!("{prefix}{}", std::process::id());
        let home = parent.join(&name);
        // A user of the same name left by a crashed run with this pid.
        let _ = Command::new("userdel").arg("-f").arg(&name).output();
        let out = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin"])
            .args(opts)
            .arg("-d")
            .arg(&home)
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd: {out:?}");
        let (uid, gid) = user_ids(&name);
        std::fs::create_dir(&home).unwrap();
        // Only the user may enter: the daemon (nobody) cannot write here.
        own(&home, uid, gid, 0o700);
        SystemUser {
            name,
            uid,
            gid,
            home,
        }
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let mut cmd = Command::new("userdel");
        if self.uid == 0 {
            // uid 0 always has processes; -f removes the account anyway
            // (it has no group of its own that -f could take along).
            cmd.arg("-f");
        }
        let _ = cmd.arg(&self.name).output();
    }
}

#[test]
fn system_user_gets_mail_in_home_maildir_written_as_the_user() {
    use std::os::unix::fs::MetadataExt;
    let sink = SmtpSink::start();
    let homes = TempDir::new("homes");
    let u = SystemUser::create(homes.path());
    // mail_owner = nobody: the daemon drops root, the helper keeps it.
    let b = Box::start(sink.port(), "", "", "");
    b.wait_log(&["local delivery helper started"]);
    let pid = b.daemon.pid();
    assert_eq!(group_pids(pid).len(), 2, "daemon and helper");
    // First delivery: a Maildir the user cannot write (root's, 0755) is a
    // temporary failure, and the message stays queued.
    let md = u.home.join("Maildir");
    std::fs::create_dir(&md).unwrap();
    own(&md, 0, 0, 0o755);
    let r = Swaks::new(b.port)
        .from("someone@remote.test")
        .to(&format!("{}@box.test", u.name))
        .header("Subject", "to a system user")
        .run_ok();
    let qid = r.queue_id().expect("queued");
    let line = b.wait_log(&[
        &qid,
        &format!("to=<{}@box.test>", u.name),
        "status=deferred",
    ]);
    assert!(line.contains("dsn=4.2.0"), "{line}");
    assert!(line.contains("Permission denied"), "{line}");
    assert!(!b.queue_is_empty(), "the deferred message must stay queued");
    // The owner fixes the permissions; the retry delivers as the user.
    own(&md, u.uid, u.gid, 0o700);
    let mut cmd = Command::new(TERN);
    cmd.arg("flush").arg("-c").arg(&b.conf);
    assert!(run(cmd, None, WAIT).success());
    let line = b.wait_log(&[&qid, "status=sent (delivered to maildir)"]);
    assert!(line.contains("relay=local"), "{line}");
    // And by sendmail, to the bare name, into a Maildir the helper creates.
    std::fs::remove_dir_all(&md).unwrap();
    let out = b.sendmail(&[&u.name], b"Subject: by sendmail\n\nhello\n");
    assert!(out.success(), "sendmail: {out:?}");
    b.wait_log(&[
        &format!("to=<{}@box.test>", u.name),
        &format!("orig_to=<{}>", u.name),
        "status=sent (delivered to maildir)",
    ]);
    for sub in ["", "tmp", "new", "cur"] {
        let m = std::fs::metadata(md.join(sub)).unwrap();
        assert_eq!((m.uid(), m.gid()), (u.uid, u.gid), "Maildir/{sub}");
    }
    let files: Vec<PathBuf> = std::fs::read_dir(md.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let m = std::fs::metadata(&files[0]).unwrap();
    assert_eq!((m.uid(), m.gid()), (u.uid, u.gid), "file owner");
    assert_eq!(m.mode() & 0o777, 0o600);
    let parsed = read_maildir(&md);
    assert!(parsed.contains("subdir=new"), "{parsed}");
    assert!(
        parsed.contains(&format!("Delivered-To={}@box.test", u.name)),
        "{parsed}"
    );
    assert!(parsed.contains("Subject=by sendmail"), "{parsed}");
    assert!(parsed.contains("body='hello\\n'"), "{parsed}");
    b.wait_lines(": removed", 2);
    assert!(b.queue_is_empty(), "queue not empty");
    // A uid-0 account's Maildir is written as root, as Postfix's local(8)
    // writes root's mailbox (default_privs is for files and commands).
    let r0 = SystemUser::create_uid0(homes.path());
    let out = b.sendmail(&[&r0.name], b"Subject: for root\n\nx\n");
    assert!(out.success(), "sendmail: {out:?}");
    b.wait_log(&[
        &format!("to=<{}@box.test>", r0.name),
        "status=sent (delivered to maildir)",
    ]);
    let md0 = r0.home.join("Maildir");
    let m = std::fs::metadata(md0.join("new")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert!(read_maildir(&md0).contains("Subject=for root"));
}

/// Live processes in the process group of `pgid` (the daemon is a session
/// leader: it and any helper it forks), from /proc.
fn group_pids(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = read_lossy(&e.path().join("stat"));
        let Some((_, after)) = stat.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = after.split(' ').collect();
        if f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

/// A send-only router (`mydestination =` empty, a relayhost) started as
/// root runs one process: no root helper. A reload that makes mail local
/// warns that a restart is needed, and home-Maildir mail defers with that
/// reason instead of being written by the unprivileged daemon or lost; the
/// restart (with a local mydestination) starts the helper and delivers it.
#[test]
fn send_only_router_runs_one_process_and_home_mail_waits_for_a_restart() {
    let sink = SmtpSink::start();
    let homes = TempDir::new("homes-send-only");
    let u = SystemUser::add(homes.path(), "terns", &["-U"]);
    let dir = TempDir::new("local-send-only");
    let port = free_port();
    let conf = dir.join("tern.conf");
    let d = dir.path().display().to_string();
    let text = |mydestination: &str| {
        format!(
            "myhostname = box.test\n\
             mydestination = {mydestination}\n\
             smtp_listen = 127.0.0.1:{port}\n\
             queue_directory = {d}/spool\n\
             relayhost = [127.0.0.1]:{}\n\
             smtp_tls_security_level = none\n\
             mta_sts_enable = no\n\
             maillog_file = {d}/maillog\n\
             syslog_socket =\n\
             mail_owner = nobody\n\
             queue_run_delay = 1s\n\
             alias_maps =\n",
            sink.port()
        )
    };
    write(&conf, text(""));
    let mut b = Box::launch(dir, port, conf.clone());
    b.wait_log(&["local delivery helper not started"]);
    b.wait_log(&["running as nobody"]);
    let pid = b.daemon.pid();
    assert_eq!(group_pids(pid), [pid], "one process:\n{}", b.maillog());
    // Mail for a system user once a reload makes box.test local.
    write(&conf, text("$myhostname"));
    // SAFETY: kill has no memory preconditions; pid is our child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) }, 0);
    b.wait_log(&[
        "warning: reload: mail is now routed to local delivery",
        "restarted",
    ]);
    let out = b.sendmail(&[&format!("{}@box.test", u.name)], b"Subject: waits\n\nx\n");
    assert!(out.success(), "sendmail: {out:?}");
    let line = b.wait_log(&[&format!("to=<{}@box.test>", u.name), "status=deferred"]);
    assert!(line.contains("dsn=4.2.0"), "{line}");
    assert!(
        line.contains("the local delivery helper was not started"),
        "{line}"
    );
    assert!(!b.queue_is_empty(), "the message must stay queued");
    assert!(
        !u.home.join("Maildir").exists(),
        "written without the helper"
    );
    // A restart with the local configuration: two processes, delivered.
    b.daemon.stop();
    let mut b = Box::launch(b.dir, port, conf);
    b.wait_log(&["local delivery helper started"]);
    let pid = b.daemon.pid();
    assert_eq!(group_pids(pid).len(), 2, "daemon and helper");
    let mut cmd = Command::new(TERN);
    cmd.arg("flush").arg("-c").arg(&b.conf);
    assert!(run(cmd, None, WAIT).success());
    b.wait_log(&[
        &format!("to=<{}@box.test>", u.name),
        "status=sent (delivered to maildir)",
    ]);
    assert!(read_maildir(&u.home.join("Maildir")).contains("Subject=waits"));
    b.daemon.stop();
}

/// A stopped process (SIGSTOP), continued when dropped so that a failing
/// test does not leave the helper stopped for ever.
struct Stopped(libc::pid_t);

impl Stopped {
    fn stop(pid: libc::pid_t) -> Stopped {
        // SAFETY: kill has no memory effects.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGSTOP) },
            0,
            "SIGSTOP {pid}"
        );
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// Bytes waiting unread in the sockets of process `pid` (`ss`'s Recv-Q of
/// its unix seqpacket sockets): the helper's request queue.
fn unread_seqpacket_bytes(pid: libc::pid_t) -> u64 {
    let mut cmd = Command::new("ss");
    cmd.args(["-x", "-a", "-p"]);
    let out = run(cmd, None, WAIT);
    assert!(out.success(), "ss: {out:?}");
    let tag = format!("pid={pid},");
    out.stdout
        .lines()
        .filter(|l| l.starts_with("u_seq") && l.contains(&tag))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

/// The daemon waits for the root helper without blocking its one thread:
/// while the helper is stopped (as if its disk hung) with a request from
/// the daemon unread, an SMTP session gets its 250 and a Maildir the
/// daemon writes itself is delivered; the stuck delivery completes when
/// the helper runs again. (Before, the daemon sat in recvmsg for up to
/// 600 s and the session below timed out.)
#[test]
fn a_slow_helper_delivery_does_not_stall_sessions_or_other_deliveries() {
    let sink = SmtpSink::start();
    let homes = TempDir::new("homes");
    let u = SystemUser::create(homes.path());
    let b = Box::start(sink.port(), "", "alice@box.test  alice/Maildir/\n", "");
    let started = b.wait_log(&["local delivery helper started, pid "]);
    let pid: libc::pid_t = started
        .rsplit("pid ")
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no helper pid in {started:?}"));
    let stopped = Stopped::stop(pid);
    let r = Swaks::new(b.port)
        .from("someone@remote.test")
        .to(&format!("{}@box.test", u.name))
        .header("Subject", "for the stopped helper")
        .run_ok();
    let slow = r.queue_id().expect("queued");
    // The queue manager has handed the delivery to the helper: the
    // request sits unread in the helper's socket.
    let deadline = Instant::now() + WAIT;
    while unread_seqpacket_bytes(pid) == 0 {
        assert!(
            Instant::now() < deadline,
            "no request reached the helper:\n{}",
            b.maillog()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Meanwhile: a whole SMTP session, and a delivery the daemon makes.
    let r = Swaks::new(b.port)
        .from("someone@remote.test")
        .to("alice@box.test")
        .header("Subject", "while the helper is stopped")
        .run_ok();
    let fast = r.queue_id().expect("queued");
    let line = b.wait_log(&[&fast, "to=<alice@box.test>", "status=sent"]);
    assert!(line.contains("relay=local"), "{line}");
    assert_eq!(
        read_maildir(&b.vmail("alice/Maildir"))
            .matches("subdir=new")
            .count(),
        1
    );
    // The first delivery is still waiting, its request still unread.
    assert!(unread_seqpacket_bytes(pid) > 0);
    assert!(
        !b.maillog()
            .lines()
            .any(|l| l.contains(&slow) && l.contains("status=")),
        "{}",
        b.maillog()
    );
    drop(stopped);
    let line = b.wait_log(&[
        &slow,
        &format!("to=<{}@box.test>", u.name),
        "status=sent (delivered to maildir)",
    ]);
    // Postfix's delay fields: d (the delivery) includes the wait for
    // the helper, c (connection set-up) is 0 for local delivery.
    let delays = line
        .split("delays=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no delays= in {line}"));
    let parts: Vec<f64> = delays.split('/').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 4, "{line}");
    assert_eq!(parts[2], 0.0, "{line}");
    assert!(parts[3] > 0.0, "{line}");
    let parsed = read_maildir(&u.home.join("Maildir"));
    assert!(
        parsed.contains("Subject=for the stopped helper"),
        "{parsed}"
    );
    b.wait_lines(": removed", 2);
}

#[test]
fn alias_with_an_empty_include_file_is_deferred_not_dropped() {
    let sink = SmtpSink::start();
    let lists = TempDir::new("lists");
    let team = lists.join("team");
    write(&team, "# nobody yet\n");
    let b = Box::start(
        sink.port(),
        &format!("team: :include:{}\n", team.display()),
        "alice@box.test alice/Maildir/\n",
        "",
    );
    let out = b.sendmail(
        &["-f", "sender@remote.test", "team"],
        b"Subject: to the team\n\nhi\n",
    );
    assert!(out.success(), "sendmail: {out:?}");
    let line = b.wait_log(&["to=<team@box.test>", "relay=local", "status=deferred"]);
    assert!(line.contains("dsn=4.3.0"), "{line}");
    assert!(
        line.contains(&format!(
            "(no recipients in :include: file {})",
            team.display()
        )),
        "{line}"
    );
    assert!(!b.maillog().contains("delivered to nowhere"));
    assert!(!b.queue_is_empty(), "the message must stay queued");
    // The list gets a member: the retry delivers the kept message.
    write(&team, "alice\n");
    let mut cmd = Command::new(TERN);
    cmd.arg("flush").arg("-c").arg(&b.conf);
    assert!(run(cmd, None, WAIT).success());
    b.wait_log(&[
        "to=<alice@box.test>",
        "orig_to=<team>",
        "status=sent (delivered to maildir)",
    ]);
    let parsed = read_maildir(&b.vmail("alice/Maildir"));
    assert!(parsed.contains("Subject=to the team"), "{parsed}");
    assert_eq!(sink.count(), 0, "no bounce");
}

#[test]
fn unknown_local_user_is_refused_at_rcpt_and_bounced_from_sendmail() {
    let sink = SmtpSink::start();
    let b = Box::start(
        sink.port(),
        "root: owner@remote.test\n",
        "alice@box.test alice/\n",
        "",
    );
    let r = Swaks::new(b.port)
        .from("someone@remote.test")
        .to("nosuchuser@box.test")
        .run();
    assert!(!r.ok());
    assert!(
        r.replies().iter().any(|l| l.starts_with(
            "550 5.1.1 <nosuchuser@box.test>: Recipient address rejected: User unknown in local recipient table"
        )),
        "{}",
        r.transcript
    );
    for known in ["root@box.test", "alice@box.test", "Root@localhost"] {
        let r = Swaks::new(b.port)
            .from("someone@remote.test")
            .to(known)
            .arg("--quit-after")
            .arg("RCPT")
            .run();
        assert!(
            r.replies().iter().any(|l| l.starts_with("250 2.1.5")),
            "{known}: {}",
            r.transcript
        );
    }
    // sendmail cannot ask: the unknown user is bounced to the sender.
    let out = b.sendmail(&["-f", "sender@remote.test", "nosuchuser"], b"x\n");
    assert!(out.success(), "sendmail: {out:?}");
    let line = b.wait_log(&["to=<nosuchuser@box.test>", "status=bounced"]);
    assert!(line.contains("dsn=5.1.1"), "{line}");
    assert!(line.contains("(unknown user: \"nosuchuser\")"), "{line}");
    sink.wait_for_count(1, WAIT);
    let m = String::from_utf8_lossy(&sink.messages()[0]).into_owned();
    assert_eq!(header(&m, "X-Rcpt-Args"), Some("<sender@remote.test>"));
    assert!(m.contains("Status: 5.1.1"), "{m}");
}

#[test]
fn canonical_maps_and_masquerading_rewrite_once_at_queue_entry() {
    let sink = SmtpSink::start();
    let dir = TempDir::new("canon");
    write(&dir.join("sender_canonical"), "cron  backups@example.org\n");
    write(&dir.join("recipient_canonical"), "ops  team@remote.test\n");
    let extra = format!(
        "sender_canonical_maps = texthash:{0}/sender_canonical\n\
         recipient_canonical_maps = texthash:{0}/recipient_canonical\n\
         masquerade_domains = box.test\n",
        dir.path().display()
    );
    let b = Box::start(sink.port(), "", "", &extra);
    let out = b.sendmail(
        &["-f", "cron", "-t"],
        b"To: ops, Someone <someone@remote.test>\nCc: x@sub.box.test\nReply-To: Admin <admin@nas.box.test>\nSubject: nightly\n\nok\n",
    );
    assert!(out.success(), "sendmail: {out:?}");
    sink.wait_for_count(1, WAIT);
    b.wait_log(&["removed"]);
    let all: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let m = &all[0];
    assert!(
        header(m, "X-Mail-Args").is_some_and(|v| v.starts_with("<backups@example.org>")),
        "{m}"
    );
    assert!(
        header(m, "From").unwrap().contains("backups@example.org"),
        "{m}"
    );
    assert_eq!(
        header(m, "To"),
        Some("team@remote.test, Someone <someone@remote.test>"),
        "{m}"
    );
    // Masquerading: sender and recipient headers (Postfix's default
    // masquerade_classes: envelope_sender, header_sender, header_recipient).
    assert_eq!(header(m, "Reply-To"), Some("Admin <admin@box.test>"), "{m}");
    assert_eq!(header(m, "Cc"), Some("x@box.test"), "{m}");
    // Mail from the LAN over SMTP: the envelope is rewritten the same way.
    let r = Swaks::new(b.port)
        .from("camera@cam1.box.test")
        .to("someone@remote.test")
        .run_ok();
    let qid = r.queue_id().expect("queued");
    sink.wait_for_count(2, WAIT);
    let got: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(
        got.iter()
            .any(|m| header(m, "X-Mail-Args") == Some("<camera@box.test>")),
        "{got:?}"
    );
    b.wait_log(&[
        &qid,
        "rewrote sender <camera@cam1.box.test> as <camera@box.test>",
    ]);
    let log = b.maillog();
    assert!(
        log.contains("rewrote sender <cron> as <backups@example.org>"),
        "{log}"
    );
    assert!(
        log.contains("rewrote recipient <ops> as <team@remote.test>"),
        "{log}"
    );
    // Over SMTP, a local address that recipient_canonical_maps rewrites is
    // accepted at RCPT (judged after rewriting, as Postfix does), while
    // an unknown one is still refused.
    let r = Swaks::new(b.port)
        .from("camera@cam1.box.test")
        .to("ops@box.test")
        .run_ok();
    let qid = r.queue_id().expect("queued");
    sink.wait_for_count(3, WAIT);
    let got: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let m = got
        .iter()
        .find(|m| m.contains(&format!("id {qid}")))
        .unwrap_or_else(|| panic!("{qid} not at the sink: {got:?}"));
    assert_eq!(header(m, "X-Rcpt-Args"), Some("<team@remote.test>"), "{m}");
    // A client on this host's own address (loopback) gets the header
    // rewriting of local submissions: Postfix's default
    // local_header_rewrite_clients = permit_inet_interfaces.
    assert_eq!(
        header(m, "To"),
        Some("team@remote.test"),
        "headers rewritten for a local client: {m}"
    );
    assert_eq!(header(m, "From"), Some("camera@box.test"), "{m}");
    b.wait_log(&[
        &qid,
        "rewrote recipient <ops@box.test> as <team@remote.test>",
    ]);
    b.wait_log(&[
        &qid,
        "tern/cleanup[",
        "rewrote header <To: ops@box.test> as <To: team@remote.test>",
    ]);
    let r = Swaks::new(b.port)
        .from("camera@cam1.box.test")
        .to("nobody-here@box.test")
        .run();
    assert!(
        r.replies().iter().any(|l| l.starts_with("550 5.1.1")),
        "{}",
        r.transcript
    );
}

#[test]
fn newaliases_reports_every_error_with_its_line() {
    let dir = TempDir::new("newaliases");
    let d = dir.path().display();
    write(
        &dir.join("aliases"),
        "root: admin@example.org\nbroken line\nempty:\nlist: a, , b\nok: x,\n  y\n",
    );
    write(
        &dir.join("tern.conf"),
        format!("alias_maps = texthash:{d}/aliases\nqueue_directory = {d}/spool\nmaillog_file =\nsyslog_socket =\n"),
    );
    let mut cmd = Command::new(TERN);
    cmd.args(["newaliases", "-c"]).arg(dir.join("tern.conf"));
    let out = run(cmd, None, WAIT);
    assert_eq!(out.status, Some(1), "{out:?}");
    let f = format!("{d}/aliases");
    for want in [
        format!("{f}:2: expected format: name: value, value, ..."),
        format!("{f}:3: alias has no destination"),
        format!("{f}:4: empty destination between commas"),
    ] {
        assert!(out.stderr.contains(&want), "{want}\n{}", out.stderr);
    }
    assert_eq!(out.stderr.lines().count(), 3, "{}", out.stderr);
    write(
        &dir.join("aliases"),
        "root: admin@example.org\nok: x,\n  y\n",
    );
    let mut cmd = Command::new(TERN);
    cmd.args(["newaliases", "-c"]).arg(dir.join("tern.conf"));
    let out = run(cmd, None, WAIT);
    assert!(out.success(), "{out:?}");
    assert!(out.stderr.contains("2 aliases, ok"), "{}", out.stderr);
    // :include: files are checked too, with their own name and line; an
    // inline comment after an include name is an error of the alias line.
    write(&dir.join("team"), "# the team\na@example.org,\n  b c\n");
    write(
        &dir.join("aliases"),
        format!("team: :include:{d}/team\nteam2: :include:{d}/team   # who\n"),
    );
    let mut cmd = Command::new(TERN);
    cmd.args(["newaliases", "-c"]).arg(dir.join("tern.conf"));
    let out = run(cmd, None, WAIT);
    assert_eq!(out.status, Some(1), "{out:?}");
    for want in [
        format!("{f}:2: whitespace in :include: file name \"{d}/team   # who\""),
        format!("{d}/team:2: whitespace in destination \"b c\""),
    ] {
        assert!(out.stderr.contains(&want), "{want}\n{}", out.stderr);
    }
    assert_eq!(out.stderr.lines().count(), 2, "{}", out.stderr);
}

/// The first-run mistake of the five-minute setup: run as root (as here)
/// with a `mail_owner` account that does not exist, `check-config` names
/// the setting's line and says how to create the account, and `tern run`
/// refuses to start with the same advice.
#[test]
fn missing_mail_owner_account_is_reported_with_what_to_do() {
    let dir = TempDir::new("local-owner");
    let owner = format!("tnoacct{}", std::process::id());
    let conf = dir.join("tern.conf");
    let d = dir.path().display();
    write(
        &conf,
        format!(
            "relayhost = [127.0.0.1]:9\n\
             queue_directory = {d}/spool\n\
             smtp_listen = 127.0.0.1:{}\n\
             maillog_file = {d}/maillog\n\
             syslog_socket =\n\
             mail_owner = {owner}\n",
            free_port()
        ),
    );
    let mut cmd = Command::new(TERN);
    cmd.args(["check-config", "-c"]).arg(&conf);
    let out = run(cmd, None, WAIT);
    assert_eq!(out.status, Some(1), "{out:?}");
    let want = format!(
        "{}:6: mail_owner = {owner}: no such user; create the account (Debian: `useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin {owner}`",
        conf.display()
    );
    assert!(out.stderr.lines().any(|l| l.starts_with(&want)), "{out:?}");
    assert!(out.stderr.contains("OpenWrt: "), "{out:?}");

    let mut cmd = Command::new(TERN);
    cmd.args(["run", "-f", "-c"]).arg(&conf);
    let out = run(cmd, None, WAIT);
    assert!(!out.success(), "{out:?}");
    let all = out.combined();
    assert!(
        all.contains(&format!(
            "mail_owner \"{owner}\" does not exist; create the account (Debian: `useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin {owner}`"
        )),
        "{all}"
    );
    assert!(
        !read_lossy(&dir.join("maillog")).contains("local delivery helper started"),
        "nothing started"
    );
}

/// The root helper cannot be started again once the daemon has dropped
/// root: when it dies, one `warning:` says so and every home-Maildir
/// delivery is deferred with that reason (the mail stays queued).
#[test]
fn dead_helper_is_logged_once_and_home_deliveries_are_deferred() {
    let sink = SmtpSink::start();
    let homes = TempDir::new("homes-gone");
    let u = SystemUser::add(homes.path(), "ternh", &["-U"]);
    let b = Box::start(sink.port(), "", "", "");
    let started = b.wait_log(&["local delivery helper started, pid "]);
    let pid: i32 = started
        .rsplit("pid ")
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {started}"));
    // The helper is a child of the daemon this test started.
    // SAFETY: kill has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill {pid}");
    let deadline = Instant::now() + WAIT;
    loop {
        // Gone, or a zombie the daemon has not reaped: its socket is closed
        // either way.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.is_empty() || state.contains(") Z ") {
            break;
        }
        assert!(Instant::now() < deadline, "helper {pid} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reason = "the local delivery helper has exited and cannot be restarted without root: restart tern to deliver to home Maildirs";
    for n in 1..=2 {
        let out = b.sendmail(&[&u.name], format!("Subject: {n}\n\nhello\n").as_bytes());
        assert!(out.success(), "sendmail: {out:?}");
        b.wait_lines(
            &format!("status=deferred (maildir delivery failed: {reason})"),
            n,
        );
    }
    let log = b.maillog();
    let deferred: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("status=deferred"))
        .collect();
    assert_eq!(deferred.len(), 2, "{log}");
    for l in &deferred {
        assert!(l.contains(&format!("to=<{}@box.test>", u.name)), "{l}");
        assert!(l.contains("dsn=4."), "{l}");
    }
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("tern/local[") && l.contains(&format!("warning: {reason}")))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning:\n{log}");
    assert!(!b.queue_is_empty(), "the mail stays queued");
    assert!(!u.home.join("Maildir").exists(), "nothing was written");
}

/// `local_header_rewrite_clients`: a header-less message over SMTP gets
/// one From:, Date: and Message-Id: (and its To: qualified) exactly when
/// the client matches, as Postfix's cleanup does; otherwise it is stored
/// as sent.
#[test]
fn smtp_header_rewriting_follows_local_header_rewrite_clients() {
    let sink = SmtpSink::start();
    // (setting, extra lines, are the headers rewritten for 127.0.0.1?)
    let cases = [
        ("", "", true), // the default, permit_inet_interfaces
        ("local_header_rewrite_clients =\n", "", false),
        (
            "local_header_rewrite_clients = permit_mynetworks\n",
            "mynetworks = 192.0.2.0/24\n",
            false,
        ),
        (
            "local_header_rewrite_clients = permit_mynetworks\n",
            "mynetworks = 127.0.0.0/8\n",
            true,
        ),
        ("local_header_rewrite_clients = static:all\n", "", true),
    ];
    for (setting, extra, rewritten) in cases {
        let b = Box::start(
            sink.port(),
            "",
            "alice@box.test  alice/Maildir/\n",
            &format!("{setting}{extra}"),
        );
        let r = Swaks::new(b.port)
            .from("camera@box.test")
            .to("alice@box.test")
            .data("To: alice\r\nSubject: bare\r\n\r\nhello\r\n")
            .run_ok();
        let qid = r.queue_id().expect("queued");
        b.wait_log(&[&qid, "status=sent (delivered to maildir)"]);
        let new = b.vmail("alice/Maildir/new");
        let files: Vec<_> = std::fs::read_dir(&new).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "{setting}{extra}");
        let m = read_lossy(&files[0].path());
        let want = usize::from(rewritten);
        for h in ["From", "Date", "Message-Id"] {
            assert_eq!(
                header_count(&m, h),
                want,
                "{h} with {setting:?} {extra:?}:\n{m}"
            );
        }
        if rewritten {
            assert_eq!(header(&m, "From"), Some("camera@box.test"), "{m}");
            assert!(
                looks_like_date(header(&m, "Date").unwrap_or_default()),
                "{m}"
            );
            let mid = header(&m, "Message-Id").unwrap_or_default();
            assert!(mid.ends_with(&format!(".{qid}@box.test>")), "{mid}");
            assert_eq!(header(&m, "To"), Some("alice@box.test"), "{m}");
        } else {
            assert_eq!(header(&m, "To"), Some("alice"), "stored as sent: {m}");
        }
        assert_eq!(header(&m, "Subject"), Some("bare"), "{m}");
        // The body is untouched (swaks ends its data with an empty line).
        assert!(
            m.split_once("\n\n")
                .is_some_and(|(_, body)| body.starts_with("hello\n")),
            "{m:?}"
        );
    }
    let mut cmd = Command::new(TERN);
    let dir = TempDir::new("lhrc");
    let conf = dir.join("tern.conf");
    write(
        &conf,
        "# x\nlocal_header_rewrite_clients = permit_mynetworks, hash:/etc/x\n",
    );
    cmd.args(["check-config", "-c"]).arg(&conf);
    let out = run(cmd, None, WAIT);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{}:2: local_header_rewrite_clients: \"hash:/etc/x\" is not supported",
            conf.display()
        )),
        "{out:?}"
    );
}
