//! Durability and concurrency of the spool with real processes: the test
//! binary re-runs itself as the child (`TERN_SPOOL_CHILD` names the role),
//! the parent kills it with SIGKILL and checks that every acknowledged
//! message survived, intact.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tern::queue::{NewMessage, Outcome, Recipient, Spool, Status};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tern-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic message content for message number `i`.
fn body(i: usize) -> Vec<u8> {
    let mut b = format!("Subject: message {i}\r\n\r\n").into_bytes();
    let lines = (i * 37) % 400;
    for l in 0..lines {
        b.extend_from_slice(
            format!("line {l} of message {i} ..........................\r\n").as_bytes(),
        );
    }
    b
}

fn write_one(spool: &Spool, i: usize, tag: &str) -> tern::queue::Incoming {
    let rcpts = [
        Recipient::new(&format!("r{i}@example.org")),
        Recipient::new(&format!("s{i}@example.net")),
    ];
    let mut inc = spool
        .create(&NewMessage {
            sender: &format!("{tag}@example.com"),
            recipients: &rcpts,
            arrival: 1_700_000_000 + i as u64,
            client: "localhost[127.0.0.1]",
            flags: Default::default(),
            size_limit: 0,
            deferred: false,
        })
        .unwrap();
    for chunk in body(i).chunks(1000) {
        inc.write(chunk).unwrap();
    }
    inc
}

fn spawn_child(role: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env("TERN_SPOOL_CHILD", role)
        .env("TERN_SPOOL_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn ack(line: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    // A leading newline: libtest has printed "test child_entry ... " without one.
    writeln!(o, "\n{line}").unwrap();
    o.flush().unwrap();
}

fn kill_self() -> ! {
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!()
}

/// The child side; a no-op when run as a normal test.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var("TERN_SPOOL_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("TERN_SPOOL_DIR").unwrap());
    let spool = Spool::open(&dir).unwrap();
    let pid = std::process::id();
    match role.as_str() {
        "writer" => {
            // Alternate single commits and group commits of 3, forever (the parent kills us).
            let mut i = 0;
            while i < 100_000 {
                if i % 2 == 0 {
                    let inc = write_one(&spool, i, "w");
                    let id = inc.commit().unwrap();
                    ack(&format!("ACK {id} {i}"));
                    i += 1;
                } else {
                    let mut batch = [
                        write_one(&spool, i, "w"),
                        write_one(&spool, i + 1, "w"),
                        write_one(&spool, i + 2, "w"),
                    ];
                    spool.commit_batch(&mut batch).unwrap();
                    for (k, inc) in batch.iter().enumerate() {
                        assert!(inc.is_committed());
                        ack(&format!("ACK {} {}", inc.id(), i + k));
                    }
                    i += 3;
                }
            }
        }
        "mid_body" => {
            let mut inc = write_one(&spool, 5, "m");
            inc.write(b"partial").unwrap();
            ack(&format!("ID {}", inc.id()));
            kill_self();
        }
        "after_commit" => {
            let id = write_one(&spool, 6, "c").commit().unwrap();
            ack(&format!("ACK {id} 6"));
            kill_self();
        }
        "mid_record" => {
            let id = write_one(&spool, 7, "r").commit().unwrap();
            spool
                .record(
                    &id,
                    &[(
                        0,
                        Outcome::Delivered {
                            text: "250 ok".into(),
                        },
                    )],
                    1,
                )
                .unwrap();
            ack(&format!("ACK {id} 7"));
            // Rcpt 1 is "in flight" when the process dies.
            kill_self();
        }
        r if r.starts_with("ids:") => {
            let n: usize = r[4..].parse().unwrap();
            for i in 0..n {
                let id = write_one(&spool, i, &format!("p{pid}")).commit().unwrap();
                ack(&format!("ACK {id} {i}"));
            }
        }
        _ => panic!("unknown role {role}"),
    }
}

fn read_acks(child: &mut Child, stop_after: Option<usize>) -> Vec<(String, usize)> {
    let out = child.stdout.take().unwrap();
    let mut acks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (id, i) = rest.split_once(' ').unwrap();
            acks.push((id.to_string(), i.parse().unwrap()));
            if stop_after.is_some_and(|n| acks.len() >= n) || Instant::now() > deadline {
                child.kill().unwrap(); // SIGKILL, mid-write of the next message
                break;
            }
        }
    }
    child.wait().unwrap();
    acks
}

fn check_present(spool: &Spool, acks: &[(String, usize)]) {
    for (id, i) in acks {
        let mut m = spool
            .open_message(id)
            .unwrap_or_else(|e| panic!("acked {id} lost: {e}"));
        assert_eq!(
            m.envelope.recipients[0].address,
            format!("r{i}@example.org")
        );
        let mut got = Vec::new();
        m.read_to_end(&mut got).unwrap();
        assert_eq!(got, body(*i), "body of {id}");
    }
}

#[test]
fn sigkill_while_writing_loses_no_acknowledged_message() {
    let dir = tmpdir("crash");
    let mut all = Vec::new();
    for round in 0..5 {
        let mut child = spawn_child("writer", &dir);
        let acks = read_acks(&mut child, Some(2 + round * 7));
        assert!(!acks.is_empty());
        all.extend(acks);
        let spool = Spool::open(&dir).unwrap(); // recovery: removes the dead writer's tmp file
        let report = spool.scan().unwrap();
        assert!(report.held.is_empty(), "{:?}", report.held);
        check_present(&spool, &all);
        assert_eq!(std::fs::read_dir(dir.join("incoming")).unwrap().count(), 0);
        // Everything in active/ is a complete, parseable message; unacked
        // ones may exist (killed between publish and ack) but none is torn.
        assert!(report.entries.len() >= all.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_at_api_points() {
    let dir = tmpdir("points");
    // Killed mid-body: nothing acknowledged, nothing published, tmp removed at open.
    let mut c = spawn_child("mid_body", &dir);
    let mut s = String::new();
    c.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    c.wait().unwrap();
    let id = s
        .lines()
        .find_map(|l| l.strip_prefix("ID "))
        .unwrap()
        .to_string();
    assert_eq!(std::fs::read_dir(dir.join("incoming")).unwrap().count(), 1);
    let spool = Spool::open(&dir).unwrap();
    assert_eq!(spool.removed_at_open(), 1);
    assert!(spool.open_message(&id).is_err());
    assert_eq!(spool.scan().unwrap().entries.len(), 0);

    // Killed right after commit: the message is there.
    let mut c = spawn_child("after_commit", &dir);
    let acks = read_acks(&mut c, None);
    check_present(&spool, &acks);

    // Killed with one recipient recorded, one in flight.
    let mut c = spawn_child("mid_record", &dir);
    let acks = read_acks(&mut c, None);
    let m = spool.open_message(&acks[0].0).unwrap();
    assert_eq!(m.rcpts[0].status, Status::Delivered);
    assert_eq!(m.rcpts[1].status, Status::Pending);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_writers_get_unique_ids() {
    let dir = tmpdir("ids");
    let _ = Spool::open(&dir).unwrap();
    let children: Vec<Child> = (0..4).map(|_| spawn_child("ids:40", &dir)).collect();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let spool = Spool::open(&dir).unwrap();
                (0..40)
                    .map(|i| (write_one(&spool, i, &format!("t{t}")).commit().unwrap(), i))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for mut c in children {
        let acks = read_acks(&mut c, None);
        assert_eq!(acks.len(), 40);
        all.extend(acks);
    }
    for t in threads {
        all.extend(t.join().unwrap());
    }
    let mut ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 240, "duplicate queue IDs");
    assert!(ids.iter().all(|id| id.len() >= 12
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())));
    let spool = Spool::open(&dir).unwrap();
    assert_eq!(spool.scan().unwrap().entries.len(), 240);
    check_present(&spool, &all);
    let _ = std::fs::remove_dir_all(&dir);
}
