//! Queue API, group commit costs, hold/ for corrupt files, mailq output,
//! the wake-up socket and sendmail's header handling, on a real directory.

use std::io::Read;
use std::path::PathBuf;
use tern::queue::mailq::write_listing;
use tern::queue::wake::{notify, Listener, Wake};
use tern::queue::{clock, NewMessage, Outcome, QueueDir, Recipient, Spool, SpoolError, Status};
use tern::sendmail::{run, Invoker, SendmailParams};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tern-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn msg<'a>(rcpts: &'a [Recipient], arrival: u64) -> NewMessage<'a> {
    NewMessage {
        sender: "root@nas.example",
        recipients: rcpts,
        arrival,
        client: "local",
        flags: Default::default(),
        size_limit: 100_000,
        deferred: false,
    }
}

#[test]
fn group_commit_shares_one_syncfs() {
    let dir = tmpdir("group");
    let spool = Spool::open(&dir).unwrap();
    let r = [Recipient::new("a@example.org")];
    let mut batch: Vec<_> = (0..8)
        .map(|i| {
            let mut inc = spool.create(&msg(&r, i)).unwrap();
            inc.write(b"Subject: x\r\n\r\nhello\r\n").unwrap();
            inc
        })
        .collect();
    let before = spool.io_stats();
    spool.commit_batch(&mut batch).unwrap();
    let s = spool.io_stats();
    assert!(batch.iter().all(|i| i.is_committed()));
    assert_eq!(s.fs_syncs - before.fs_syncs, 1, "one sync for the batch");
    assert_eq!(s.file_syncs, before.file_syncs);
    // A single commit: one syncfs, nothing else.
    let mut one = spool.create(&msg(&r, 9)).unwrap();
    one.write(b"x\r\n").unwrap();
    let b = spool.io_stats();
    one.commit().unwrap();
    let a = spool.io_stats();
    assert_eq!(
        (a.fs_syncs - b.fs_syncs, a.file_syncs - b.file_syncs),
        (1, 0)
    );
    let per_msg = (a.bytes_written - b.bytes_written) as usize;
    assert!(per_msg < 200, "{per_msg} bytes for a 3-byte message");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lifecycle_record_defer_remove() {
    let dir = tmpdir("life");
    let spool = Spool::open(&dir).unwrap();
    let r = [
        Recipient::new("a@example.org"),
        Recipient {
            address: "b@example.org".into(),
            orcpt: Some("rfc822;B@example.org".into()),
        },
    ];
    let mut inc = spool.create(&msg(&r, 1000)).unwrap();
    inc.write(b"Subject: t\r\n\r\nbody\r\n").unwrap();
    let id = inc.commit().unwrap();
    let e = &spool.scan().unwrap().entries[0];
    assert_eq!(
        (e.dir, e.next_attempt, e.envelope.size),
        (QueueDir::Active, Some(1000), 20)
    );

    spool
        .record(
            &id,
            &[
                (
                    0,
                    Outcome::Delivered {
                        text: "250 ok".into(),
                    },
                ),
                (
                    1,
                    Outcome::Deferred {
                        until: 5000,
                        text: "451 4.7.1 greylisted".into(),
                    },
                ),
            ],
            2000,
        )
        .unwrap();
    spool.move_to(&id, QueueDir::Deferred).unwrap();
    let e = &spool.scan().unwrap().entries[0];
    assert_eq!(e.dir, QueueDir::Deferred);
    assert_eq!(e.next_attempt, Some(5000));
    assert_eq!(e.rcpts[1].attempts, 1);
    assert_eq!(
        e.envelope.recipients[1].orcpt.as_deref(),
        Some("rfc822;B@example.org")
    );

    // An interrupted move (log left behind) is repaired by scan.
    spool.move_to(&id, QueueDir::Active).unwrap();
    std::fs::rename(
        dir.join(format!("active/{id}.state")),
        dir.join(format!("deferred/{id}.state")),
    )
    .unwrap();
    let e = &spool.scan().unwrap().entries[0];
    assert_eq!(e.rcpts[0].status, Status::Delivered);
    assert!(dir.join(format!("active/{id}.state")).exists());

    let mut m = spool.open_message(&id).unwrap();
    let mut body = String::new();
    m.read_to_string(&mut body).unwrap();
    assert_eq!(body, "Subject: t\r\n\r\nbody\r\n");
    assert!(matches!(
        spool.record(&id, &[(7, Outcome::Bounced { text: "x".into() })], 1),
        Err(SpoolError::BadRecipient {
            index: 7,
            count: 2,
            ..
        })
    ));
    spool
        .record(
            &id,
            &[(
                1,
                Outcome::Bounced {
                    text: "550 5.1.1 no".into(),
                },
            )],
            3000,
        )
        .unwrap();
    assert!(spool.scan().unwrap().entries[0].is_done());
    spool.remove(&id).unwrap();
    assert!(spool.scan().unwrap().entries.is_empty());
    assert_eq!(std::fs::read_dir(dir.join("active")).unwrap().count(), 0);

    // Size limit.
    let mut big = spool.create(&msg(&r, 1)).unwrap();
    let chunk = [b'x'; 60_000];
    big.write(&chunk).unwrap();
    assert!(matches!(
        big.write(&chunk),
        Err(SpoolError::TooBig { limit: 100_000 })
    ));
    drop(big);
    assert_eq!(std::fs::read_dir(dir.join("incoming")).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_files_go_to_hold_with_a_clear_error() {
    let dir = tmpdir("hold");
    let spool = Spool::open(&dir).unwrap();
    let r = [Recipient::new("a@example.org")];
    let mut inc = spool.create(&msg(&r, 1)).unwrap();
    inc.write(b"hello\r\n").unwrap();
    let good = inc.commit().unwrap();
    let mut inc = spool.create(&msg(&r, 1)).unwrap();
    inc.write(b"hello\r\n").unwrap();
    let trunc = inc.commit().unwrap();
    let p = dir.join("active").join(&trunc);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    std::fs::write(
        dir.join("active/0000000000AA"),
        b"tern-queue-file 1\nid 0000000000AA\nbogus x\nend\n",
    )
    .unwrap();
    std::fs::write(dir.join("deferred/notes.txt"), b"admin left this").unwrap();

    let listed = spool.list().unwrap();
    assert_eq!(listed.unreadable.len(), 3);
    assert!(listed.held.is_empty());
    let report = spool.scan().unwrap();
    assert_eq!(report.entries.len(), 1);
    assert_eq!(report.entries[0].id(), good);
    let mut msgs: Vec<String> = report.held.iter().map(|h| h.error.to_string()).collect();
    msgs.sort();
    assert!(
        msgs[0].contains(
            "active/0000000000AA: corrupt queue file: envelope line 3: unknown record \"bogus\""
        ),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains(&format!("active/{trunc}: corrupt queue file: file has"))),
        "{msgs:?}"
    );
    assert!(msgs
        .iter()
        .any(|m| m.contains("notes.txt: corrupt queue file: file name is not a queue ID")));
    for h in &report.held {
        assert!(dir.join("hold").join(&h.name).exists());
    }
    // Nothing deleted, nothing moved twice.
    assert!(spool.scan().unwrap().held.is_empty());
    assert_eq!(std::fs::read_dir(dir.join("hold")).unwrap().count(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mailq_listing_matches_postfix_layout() {
    let dir = tmpdir("mailq");
    let spool = Spool::open(&dir).unwrap();
    let mut out = Vec::new();
    write_listing(&spool.list().unwrap().entries, &mut out, &clock::utc).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "Mail queue is empty\n");

    let r1 = [Recipient::new("admin@example.org")];
    let mut a = spool.create(&msg(&r1, 1_700_766_169)).unwrap();
    a.write(&[b'x'; 1234]).unwrap();
    let a = a.commit().unwrap();
    let r2 = [
        Recipient::new("ops@example.org"),
        Recipient::new("done@example.org"),
        Recipient::new("dev@example.org"),
    ];
    let mut m = msg(&r2, 1_700_766_180);
    m.sender = "";
    let mut b = spool.create(&m).unwrap();
    b.write(&[b'y'; 2345]).unwrap();
    let b = b.commit().unwrap();
    let err = "connect to mx.example.org[192.0.2.7]:25: Connection timed out";
    spool
        .record(
            &b,
            &[
                (
                    0,
                    Outcome::Deferred {
                        until: 9,
                        text: err.into(),
                    },
                ),
                (1, Outcome::Delivered { text: "ok".into() }),
                (
                    2,
                    Outcome::Deferred {
                        until: 9,
                        text: err.into(),
                    },
                ),
            ],
            5,
        )
        .unwrap();
    spool.move_to(&b, QueueDir::Deferred).unwrap();
    let entries = spool.list().unwrap().entries;
    let total: u64 = entries.iter().map(|e| e.file_size).sum();
    let mut out = Vec::new();
    write_listing(&entries, &mut out, &clock::utc).unwrap();
    let expect = format!(
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n\
         {a}*     1234 Thu Nov 23 19:02:49  root@nas.example\n\
         {:41}admin@example.org\n\
         \n\
         {b}      2345 Thu Nov 23 19:03:00  MAILER-DAEMON\n\
         ({err})\n\
         {:41}ops@example.org\n\
         {:41}dev@example.org\n\
         \n\
         -- {} Kbytes in 2 Requests.\n",
        "",
        "",
        "",
        total / 1024
    );
    assert_eq!(String::from_utf8(out).unwrap(), expect);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wake_socket_both_sides() {
    let dir = tmpdir("wake");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(!notify(&dir, Wake::NewMail).unwrap(), "nobody listens yet");
    let l = Listener::bind(&dir).unwrap();
    assert!(notify(&dir, Wake::NewMail).unwrap());
    assert!(notify(&dir, Wake::Flush).unwrap());
    let got = smol::block_on(l.recv()).unwrap();
    assert_eq!(got, Wake::NewMail);
    assert_eq!(l.drain(), Some(Wake::Flush));
    assert_eq!(l.drain(), None);
    drop(l);
    assert!(!notify(&dir, Wake::Flush).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

fn sendmail(dir: &std::path::Path, args: &[&str], input: &[u8]) -> (i32, String) {
    let params = SendmailParams::new(dir.to_path_buf(), "nas.example", "example.com");
    let who = Invoker {
        uid: 1000,
        login: "backup".into(),
        full_name: Some("Backup Job".into()),
    };
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut err = Vec::new();
    let code = run(
        &args,
        &params,
        &who,
        1_700_766_169,
        &mut &input[..],
        &mut Vec::new(),
        &mut err,
    );
    (code, String::from_utf8(err).unwrap())
}

#[test]
fn sendmail_t_extracts_and_adds_headers() {
    let dir = tmpdir("sm");
    let input = b"To: \"Doe, J\" <j@example.org>, ops\nCc: c@example.net (copy)\nBcc: hidden@example.org\nSubject: disk\n  report\n\nline1\n.\nnot read\n";
    let (code, err) = sendmail(&dir, &["-t", "-oem", "-odi", "extra@example.org"], input);
    assert_eq!((code, err.as_str()), (0, ""));
    let spool = Spool::open(&dir).unwrap();
    let e = &spool.scan().unwrap().entries[0];
    let rc: Vec<&str> = e
        .envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(
        rc,
        [
            "extra@example.org",
            "j@example.org",
            "ops@example.com",
            "c@example.net",
            "hidden@example.org"
        ]
    );
    assert_eq!(e.envelope.sender, "backup@example.com");
    let mut m = spool.open_message(e.id()).unwrap();
    let mut text = String::new();
    m.read_to_string(&mut text).unwrap();
    let id = e.id();
    let expect = format!(
        "Received: by nas.example (tern, from userid 1000)\r\n\tid {id}; Thu, 23 Nov 2023 19:02:49 +0000 (UTC)\r\n\
         To: \"Doe, J\" <j@example.org>, ops\r\nCc: c@example.net (copy)\r\nSubject: disk\r\n  report\r\n\
         From: Backup Job <backup@example.com>\r\nDate: Thu, 23 Nov 2023 19:02:49 +0000 (UTC)\r\n\
         Message-Id: <20231123190249.{id}@nas.example>\r\n\r\nline1\r\n"
    );
    assert_eq!(text, expect);

    // -i: the lone dot is data; -f and -F; existing headers kept.
    let (code, _) = sendmail(
        &dir,
        &[
            "-i",
            "-f",
            "<bounce@example.com>",
            "-F",
            "Cron Daemon",
            "a@b.example",
        ],
        b"From: x@y\nDate: today\nMessage-ID: <m@x>\n\n.\nend",
    );
    assert_eq!(code, 0);
    let entries = spool.scan().unwrap().entries;
    let e = entries
        .iter()
        .find(|e| e.envelope.sender == "bounce@example.com")
        .unwrap();
    let mut text = String::new();
    spool
        .open_message(e.id())
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(
        text.ends_with("From: x@y\r\nDate: today\r\nMessage-ID: <m@x>\r\n\r\n.\r\nend\r\n"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sendmail_errors_and_exit_codes() {
    let dir = tmpdir("smerr");
    let cases: &[(&[&str], &[u8], i32, &str)] = &[
        (
            &[],
            b"Subject: x\n\nbody\n",
            64,
            "Recipient addresses must be specified",
        ),
        (
            &["-t"],
            b"Subject: x\n\nbody\n",
            65,
            "No recipient addresses found in message header",
        ),
        (&["-k", "a@b"], b"", 64, "invalid option -- 'k'"),
        (&["-bs"], b"", 64, "unsupported: -bs"),
        (&["-t"], b"To: <a@b\n\nx\n", 65, "bad address in To header"),
        (&["<a@b"], b"x\n", 67, "bad recipient address"),
        (
            &["-bp", "a@b"],
            b"",
            64,
            "display queue mode requires no recipient",
        ),
        (
            &["-q"],
            b"",
            69,
            "Cannot flush mail queue - mail system is down",
        ),
    ];
    for (args, input, code, text) in cases {
        let (c, err) = sendmail(&dir, args, input);
        assert_eq!(c, *code, "{args:?}: {err}");
        assert!(
            err.starts_with("sendmail: fatal: ") && err.contains(text),
            "{args:?}: {err}"
        );
    }
    let mut big_header = b"To: a@b\nX-Long: ".to_vec();
    big_header.extend(std::iter::repeat_n(b'x', 200_000));
    let (c, err) = sendmail(&dir, &["-t"], &big_header);
    assert_eq!(c, 65);
    assert!(err.contains("header_size_limit"), "{err}");
    let mut big = b"\n".to_vec();
    big.extend(std::iter::repeat_n(b'y', 11_000_000));
    let (c, err) = sendmail(&dir, &["a@b"], &big);
    assert_eq!(c, 65, "{err}");
    assert!(err.contains("message file too big"));
    let spool = Spool::open(&dir).unwrap();
    assert!(spool.scan().unwrap().entries.is_empty());
    assert_eq!(std::fs::read_dir(dir.join("incoming")).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The queue file on disk, byte for byte: a small envelope against the
/// documented format, and a 1000-recipient envelope (about 520 KB, far more
/// than the 8 KiB write buffer) against `envelope::encode`. `Spool::create`
/// streams the head from the borrowed recipients; the bytes are what they
/// were when it encoded into a `Vec` first, and the syncs are none before
/// the commit, then one `syncfs`.
#[test]
fn queue_file_bytes_and_a_large_envelope_streamed_through_the_buffer() {
    use tern::queue::envelope::{self, Envelope};
    let dir = tmpdir("bytes");
    let spool = Spool::open(&dir).unwrap();
    let r = [
        Recipient::new("a@example.org"),
        Recipient {
            address: "b@example.org".into(),
            orcpt: Some("rfc822;B@example.org".into()),
        },
    ];
    let mut inc = spool.create(&msg(&r, 1000)).unwrap();
    inc.write(b"Subject: t\r\n\r\nbody\r\n").unwrap();
    let id = inc.commit().unwrap();
    let file = std::fs::read(dir.join("active").join(&id)).unwrap();
    // zlib's CRC-32 of the message, then of `-` (no tls-required-no flag).
    let check = envelope::crc32(envelope::crc32(0, b"Subject: t\r\n\r\nbody\r\n"), b"-");
    let want = format!(
        "tern-queue-file 1\nid {id}\narrival 1000\nsize 00000000000000000020\n\
         check {check:08x}\nclient local\nsender root@nas.example\nrcpt a@example.org\n\
         rcpt b@example.org\trfc822;B@example.org\nend\nSubject: t\r\n\r\nbody\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&file), want);

    // 1000 recipients at the SMTP path limit (254 bytes), each with an ORCPT.
    let rcpts: Vec<Recipient> = (0..1000)
        .map(|i| {
            let local = format!("{i:04}{}", "l".repeat(64 - 4));
            let domain = format!("{}.example", "d".repeat(254 - 65 - 8));
            let address = format!("{local}@{domain}");
            assert_eq!(address.len(), 254);
            Recipient {
                orcpt: Some(format!("rfc822;{}", address.to_uppercase())),
                address,
            }
        })
        .collect();
    let before = spool.io_stats();
    let mut inc = spool.create(&msg(&rcpts, 2000)).unwrap();
    let after_create = spool.io_stats();
    assert_eq!(
        (after_create.file_syncs, after_create.fs_syncs),
        (before.file_syncs, before.fs_syncs),
        "create syncs nothing"
    );
    assert!(
        after_create.bytes_written - before.bytes_written > 500_000,
        "a head this large reaches the file in write-buffer chunks"
    );
    let body = b"Subject: many\r\n\r\nx\r\n";
    inc.write(body).unwrap();
    let id = inc.commit().unwrap();
    let done = spool.io_stats();
    assert_eq!(
        (
            done.file_syncs - before.file_syncs,
            done.fs_syncs - before.fs_syncs
        ),
        (0, 1)
    );
    let file = std::fs::read(dir.join("active").join(&id)).unwrap();
    // Every byte once, plus the commit's one patch write (size, check).
    let patch = envelope::SIZE_WIDTH + "\ncheck ".len() + envelope::CHECK_WIDTH;
    assert_eq!(
        done.bytes_written - before.bytes_written,
        (file.len() + patch) as u64
    );
    let (mut head, _) = envelope::encode(&Envelope {
        id: id.clone(),
        arrival: 2000,
        size: body.len() as u64,
        check: Some(envelope::finish_check(
            envelope::crc32(0, body),
            &Default::default(),
        )),
        flags: Default::default(),
        client: "local".into(),
        sender: "root@nas.example".into(),
        recipients: rcpts.clone(),
    })
    .unwrap();
    assert!(head.len() > 500_000, "{}", head.len());
    head.extend_from_slice(body);
    assert!(file == head, "queue file differs from encode() + body");
    let e = spool.scan_one(&id).unwrap().unwrap();
    assert_eq!(e.envelope.recipients, rcpts);

    // An unusable value: refused before a byte is written, no file left.
    let bad = [Recipient::new("a@b\nrcpt evil@x")];
    assert!(matches!(
        spool.create(&msg(&bad, 1)),
        Err(SpoolError::Invalid(_))
    ));
    assert_eq!(std::fs::read_dir(dir.join("incoming")).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a power cut before the commit's sync can leave under a final name
/// (the rename kept, a write lost): a body write lost (zeros, length kept),
/// the one patch write lost (`check --------`), or a truncated file. The
/// daemon's first scan moves each to hold/ with its reason and never lists
/// it for delivery; `open_message` refuses it too; whole files are kept.
#[test]
fn torn_files_from_a_cut_before_the_sync_are_never_delivered() {
    let dir = tmpdir("torn");
    let spool = Spool::open(&dir).unwrap();
    let r = [Recipient::new("a@example.org")];
    let body = b"Subject: torn\r\n\r\n".repeat(1000);
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut inc = spool.create(&msg(&r, 100 + i)).unwrap();
        inc.write(&body).unwrap();
        ids.push(inc.commit().unwrap());
    }
    let path = |id: &str| dir.join("active").join(id);
    // 1: a lost body write: a block of zeros, the length unchanged.
    let mut f = std::fs::read(path(&ids[1])).unwrap();
    let n = f.len();
    f[n - 9000..n - 1000].fill(0);
    std::fs::write(path(&ids[1]), &f).unwrap();
    // 2: the patch write lost: size and check as they were written first.
    let f = std::fs::read(path(&ids[2])).unwrap();
    let text = String::from_utf8_lossy(&f[..200]).into_owned();
    let at = text.find("\nsize ").unwrap() + 6;
    let mut g = f.clone();
    g[at..at + 20].copy_from_slice(b"00000000000000000000");
    let c = text.find("\ncheck ").unwrap() + 7;
    g[c..c + 8].copy_from_slice(b"--------");
    std::fs::write(path(&ids[2]), &g).unwrap();
    // 3: the last writes lost: the file is shorter than its size says.
    let f = std::fs::read(path(&ids[3])).unwrap();
    std::fs::write(path(&ids[3]), &f[..f.len() - 100]).unwrap();

    for id in &ids[1..] {
        assert!(spool.open_message(id).is_err(), "{id} must not be readable");
    }
    let daemon = Spool::open(&dir).unwrap();
    let report = daemon.scan().unwrap();
    let deliverable: Vec<&str> = report
        .entries
        .iter()
        .filter(|e| e.dir != QueueDir::Hold)
        .map(|e| e.id())
        .collect();
    assert_eq!(deliverable, vec![ids[0].as_str()]);
    let mut reasons: Vec<String> = report.held.iter().map(|h| h.error.to_string()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("do not match the envelope's check")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("never committed")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("truncated or appended to")),
        "{reasons:?}"
    );
    for id in &ids[1..] {
        assert!(dir.join("hold").join(id).exists(), "{id} kept in hold/");
    }
    let mut whole = Vec::new();
    daemon
        .open_message(&ids[0])
        .unwrap()
        .read_to_end(&mut whole)
        .unwrap();
    assert_eq!(whole, body);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bookkeeping is lazily durable: a removal or a state record costs no
/// sync; the next commit's one `syncfs` covers it, or `sync_if_due` once it
/// has waited the delay.
#[test]
fn removals_and_records_wait_for_the_next_sync() {
    let dir = tmpdir("lazy");
    let spool = Spool::open(&dir).unwrap();
    let r = [Recipient::new("a@example.org")];
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut inc = spool.create(&msg(&r, 200 + i)).unwrap();
        inc.write(b"x\r\n").unwrap();
        ids.push(inc.commit().unwrap());
    }
    assert!(!spool.has_unsynced());
    let before = spool.io_stats();
    spool.remove(&ids[0]).unwrap();
    spool
        .record(
            &ids[1],
            &[(
                0,
                Outcome::Deferred {
                    until: 999,
                    text: "4.0.0 later".into(),
                },
            )],
            300,
        )
        .unwrap();
    let s = spool.io_stats();
    assert_eq!(
        (s.fs_syncs, s.file_syncs),
        (before.fs_syncs, before.file_syncs)
    );
    assert!(spool.has_unsynced());
    assert!(!spool
        .sync_if_due(std::time::Duration::from_secs(3600))
        .unwrap());
    // A commit syncs everything before it, the bookkeeping included.
    let mut inc = spool.create(&msg(&r, 210)).unwrap();
    inc.write(b"y\r\n").unwrap();
    inc.commit().unwrap();
    assert!(!spool.has_unsynced());
    assert_eq!(spool.io_stats().fs_syncs, before.fs_syncs + 1);
    // Alone, it waits for the delay, then costs one syncfs.
    spool.remove(&ids[2]).unwrap();
    assert!(spool.sync_if_due(std::time::Duration::ZERO).unwrap());
    assert!(!spool.sync_pending().unwrap(), "nothing left to sync");
    assert_eq!(spool.io_stats().fs_syncs, before.fs_syncs + 2);
    let _ = std::fs::remove_dir_all(&dir);
}
