//! Issue 2: local users who are neither root nor mail_owner submit mail
//! through `maildrop/` and list the queue through the daemon (`showq`).
//! The daemon runs as root and drops to `nobody`; the submitting user is a
//! fresh account made with useradd (removed afterwards); its commands run
//! under `setpriv` with its uid, gid and no supplementary groups.

mod common;
mod ground_support;

use common::ports::free_port;
use common::process::{run, RunOutput};
use common::sink::SmtpSink;
use ground_support::{mailq_entries, message, Tern, CMD_TIMEOUT, TERN, WAIT};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A login account for the test, deleted on drop.
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

impl User {
    /// `tag` keeps the names of tests running at once apart.
    fn create(tag: &str) -> User {
        let name = format!("tdrop{tag}{}", std::process::id());
        // One left by a crashed run with the same pid.
        let _ = Command::new("userdel").arg("-f").arg(&name).output();
        let out = Command::new("useradd")
            .args(["-M", "-U", "-s", "/usr/sbin/nologin", "-d", "/nonexistent"])
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd: {out:?}");
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        assert!(uid != 0 && gid != 0);
        User { name, uid, gid }
    }

    /// `tern ARGS -c tern.conf` run as this user.
    fn run(&self, t: &Tern, args: &[&str], stdin: Option<&[u8]>) -> RunOutput {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg(TERN)
            .args(args)
            .arg("-c")
            .arg(&t.conf)
            .current_dir("/");
        run(c, stdin, CMD_TIMEOUT)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg("-f").arg(&self.name).output();
    }
}

fn relay(port: u16) -> String {
    format!("relayhost = [127.0.0.1]:{port}\n")
}

/// Complete (not `.`-prefixed) files in a directory.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_plain_user_submits_with_sendmail_t_and_the_relay_gets_it_from_that_user() {
    let sink = SmtpSink::start();
    let mut t = Tern::new(&format!(
        "{}message_size_limit = 100000\n",
        relay(sink.port())
    ));
    t.start();
    let md = t.spool().join("maildrop");
    let m = std::fs::metadata(&md).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o1733, "maildrop mode");
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let nobody: u32 = String::from_utf8_lossy(&nobody.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(m.uid(), nobody, "maildrop/ belongs to mail_owner");

    let u = User::create("a");
    // The user cannot write the spool itself.
    let direct = t.spool().join("incoming");
    assert_ne!(std::fs::metadata(&direct).unwrap().uid(), u.uid);

    let out = u.run(
        &t,
        &["sendmail", "-t", "-i"],
        Some(&message("ops@example.test", "from-a-user")),
    );
    assert!(out.success(), "sendmail as {}: {out:?}", u.name);
    // pickup logs the sender as submitted, like Postfix's (`from=<login>`);
    // qmgr's line has the qualified one, the size and the recipient count.
    t.wait_log(&format!("uid={} from=<{}>", u.uid, u.name), 1, WAIT);
    let queued = format!(": from=<{}@tern.test>, size=", u.name);
    let log = t.wait_log(&queued, 1, WAIT);
    let active = log
        .lines()
        .find(|l| l.contains(&queued))
        .unwrap_or_default();
    assert!(active.contains(" tern/qmgr["), "{active}");
    let size = active
        .split("size=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(size.is_some_and(|n| n > 0), "{active}");
    assert!(active.ends_with(", nrcpt=1 (queue active)"), "{active}");
    sink.wait_for_count(1, WAIT);
    let msgs = sink.messages();
    let text = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert!(
        text.contains(&format!("X-Mail-Args: <{}@tern.test>", u.name)),
        "envelope sender is the user: {text}"
    );
    assert!(
        text.contains(&format!("from userid {}", u.uid)),
        "Received names the uid: {text}"
    );
    assert!(
        text.contains("Message-Id: <") && text.contains("Date: "),
        "headers completed as for root's mail: {text}"
    );
    assert!(text.contains("sent by from-a-user"), "{text}");
    assert!(files(&md).is_empty(), "maildrop emptied: {:?}", files(&md));
    assert!(!log.contains("corrupt/"), "{log}");

    // -f is allowed (Postfix's default), and command-line recipients work.
    let out = u.run(
        &t,
        &["sendmail", "-f", "backup@example.test", "ops2@example.test"],
        Some(b"Subject: second\n\nbody two\n.\nnot sent\n"),
    );
    assert!(out.success(), "{out:?}");
    t.wait_log(
        &format!("uid={} from=<backup@example.test>", u.uid),
        1,
        WAIT,
    );
    sink.wait_for_count(2, WAIT);
    let msgs = sink.messages();
    let text = String::from_utf8_lossy(&msgs[1]).into_owned();
    assert!(
        text.contains("X-Mail-Args: <backup@example.test>"),
        "{text}"
    );
    assert!(text.contains("X-Rcpt-Args: <ops2@example.test>"), "{text}");
    assert!(text.contains("body two"), "{text}");
    assert!(!text.contains("not sent"), "a lone dot ends input: {text}");

    // Errors the user can be told about at once: nothing is written.
    let out = u.run(&t, &["sendmail"], Some(b"Subject: x\n\nx\n"));
    assert_eq!(out.status, Some(64), "{out:?}");
    let out = u.run(&t, &["sendmail", "<bad"], Some(b"Subject: x\n\nx\n"));
    assert_eq!(out.status, Some(67), "{out:?}");
    let out = u.run(
        &t,
        &["sendmail", "-f", "a\u{1}b@x", "ops@example.test"],
        Some(b"Subject: x\n\nx\n"),
    );
    assert_eq!(out.status, Some(64), "a control character in -f: {out:?}");
    let big = format!("Subject: big\n\n{}\n", "x".repeat(150_000));
    let out = u.run(&t, &["sendmail", "ops@example.test"], Some(big.as_bytes()));
    assert_eq!(out.status, Some(65), "over message_size_limit: {out:?}");
    assert!(out.stderr.contains("message_size_limit"), "{out:?}");
    let all: Vec<_> = std::fs::read_dir(&md).unwrap().flatten().collect();
    assert!(
        all.is_empty(),
        "no file left, not even a temporary one: {all:?}"
    );
}

#[test]
fn maildrop_waits_for_the_daemon_bad_files_go_aside_and_mailq_works_for_the_user() {
    let dead = free_port();
    let mut t = Tern::new(&format!(
        "{}minimal_backoff_time = 1h\nmaximal_backoff_time = 2h\nqueue_run_delay = 1h\n",
        relay(dead)
    ));
    // Once, to create maildrop/; then the daemon is down.
    t.start();
    t.stop_with(libc::SIGTERM);
    let md = t.spool().join("maildrop");
    let u = User::create("b");

    let out = u.run(
        &t,
        &["sendmail", "-t"],
        Some(&message("ops@example.test", "while-down")),
    );
    assert!(out.success(), "{out:?}");
    let waiting = files(&md);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let meta = std::fs::metadata(&waiting[0]).unwrap();
    assert_eq!(meta.uid(), u.uid, "owned by the submitter");
    assert!(t.queued_ids().is_empty(), "not queued yet");

    // No daemon: the user cannot list the queue.
    let q = u.run(&t, &["mailq"], None);
    assert_eq!(q.status, Some(69), "{q:?}");
    assert!(q.stderr.contains("mail system is down"), "{q:?}");

    // A file that is not a maildrop file, owned by the user too.
    let bogus = md.join("0123456789abcdef0123456789abcdef");
    std::fs::write(&bogus, b"rcpt victim@example.test\nend\nhello\n").unwrap();
    std::os::unix::fs::chown(&bogus, Some(u.uid), Some(u.gid)).unwrap();
    // A symlink, and a hard link to someone else's file: neither is read.
    std::os::unix::fs::symlink(&t.conf, md.join("link")).unwrap();
    let other = t.dir.join("other-file");
    std::fs::write(
        &other,
        b"tern-maildrop 1\nrcpt x@example.test\nend\nSubject: s\n\nsecret\n",
    )
    .unwrap();
    std::fs::hard_link(&other, md.join("hard")).unwrap();

    // The restart (which hands the spool to nobody again) keeps the
    // submitter's ownership: the pickup still knows who sent it.
    t.start();
    let log = t.wait_log(&format!("uid={} from=<{}>", u.uid, u.name), 1, WAIT);
    let log = if log.contains("moved to corrupt/") {
        log
    } else {
        t.wait_log("moved to corrupt/", 1, WAIT)
    };
    assert!(
        log.contains(&format!(
            "maildrop/0123456789abcdef0123456789abcdef: uid={}: malformed: not a maildrop file",
            u.uid
        )),
        "{log}"
    );
    let kept = t
        .spool()
        .join("corrupt")
        .join("0123456789abcdef0123456789abcdef");
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        b"rcpt victim@example.test\nend\nhello\n",
        "kept aside, unchanged"
    );
    let log = t.wait_log("moved to corrupt/", 3, WAIT);
    assert!(log.contains("maildrop/link: cannot open"), "{log}");
    assert!(log.contains("maildrop/hard: uid=0: has 2 links"), "{log}");
    assert!(!log.contains("secret"), "{log}");
    wait_until("maildrop emptied", || files(&md).is_empty());
    let ids = t.queued_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    t.wait_log("status=deferred", 1, WAIT);

    // The user cannot read the queue file, yet mailq lists it via the daemon.
    // (It may be moving from active/ to deferred/ right now: look again.)
    let mut qmeta = None;
    wait_until("queue file found", || {
        qmeta = ["deferred", "active"]
            .iter()
            .find_map(|d| std::fs::metadata(t.spool().join(d).join(&ids[0])).ok());
        qmeta.is_some()
    });
    let qmeta = qmeta.unwrap();
    assert_ne!(qmeta.uid(), u.uid);
    assert_eq!(qmeta.mode() & 0o077, 0, "private");
    let cat = u.run(&t, &["sendmail", "-bp"], None);
    assert!(cat.success(), "sendmail -bp as the user: {cat:?}");
    let q = u.run(&t, &["mailq"], None);
    assert!(q.success(), "{q:?}");
    let e = mailq_entries(&q.stdout);
    assert_eq!(e.len(), 1, "{}", q.stdout);
    assert_eq!(e[0].id.trim_end_matches(['*', '!']), ids[0]);
    assert!(
        e[0].first_line.contains(&format!("{}@tern.test", u.name)),
        "{e:?}"
    );
    assert_eq!(e[0].recipients, ["ops@example.test"]);
    assert!(
        e[0].error.as_deref().unwrap_or("").contains("refused"),
        "{e:?}"
    );
    assert!(
        !q.stdout.contains("while-down"),
        "no message content: {}",
        q.stdout
    );
    let c = mailq_entries(&cat.stdout);
    assert_eq!(c.len(), 1, "{}", cat.stdout);
    assert_eq!(c[0].id.trim_end_matches(['*', '!']), ids[0]);
}
