//! `mailq` / `sendmail -bp`: the queue listing in Postfix's format, byte for
//! byte, so scripts that parse `mailq` keep working.
//!
//! ```text
//! -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
//! 5A3B1000C2F7*    1234 Thu Nov 23 19:02:49  root@nas.example
//!                                          admin@example.org
//!
//! 5A3B2000C2F9     2345 Thu Nov 23 19:03:00  root@nas.example
//! (connect to mx.example.org[192.0.2.7]:25: Connection timed out)
//!                                          ops@example.org
//!
//! -- 3 Kbytes in 2 Requests.
//! ```
//!
//! `*` marks active/, `!` hold/, a blank deferred/. Only recipients still
//! to be delivered are shown, grouped under their last error; a held
//! message (an undeliverable double bounce) is shown with every recipient
//! not delivered, bounced ones included: the reason is why it is there.

use super::clock::Civil;
use super::spool::{QueueDir, QueueEntry, Spool, SpoolError};
use super::state::Status;
use std::io::{self, Write};
use std::path::Path;

/// The header line of a non-empty listing.
pub const HEADER: &str = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------";

/// Writes the listing of `entries` (sorted by arrival, then ID) with
/// `to_civil` converting arrival times (local time for users, UTC in tests).
pub fn write_listing(
    entries: &[QueueEntry],
    out: &mut dyn Write,
    to_civil: &dyn Fn(u64) -> Civil,
) -> io::Result<()> {
    let mut shown: Vec<&QueueEntry> = entries
        .iter()
        .filter(|e| !e.is_done() || e.dir == QueueDir::Hold)
        .collect();
    if shown.is_empty() {
        return writeln!(out, "Mail queue is empty");
    }
    shown.sort_by(|a, b| {
        (a.envelope.arrival, &a.envelope.id).cmp(&(b.envelope.arrival, &b.envelope.id))
    });
    writeln!(out, "{HEADER}")?;
    let mut total: u64 = 0;
    for e in &shown {
        total += e.file_size;
        let mark = match e.dir {
            QueueDir::Active => '*',
            QueueDir::Deferred => ' ',
            QueueDir::Hold => '!',
        };
        let sender = if e.envelope.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &e.envelope.sender
        };
        writeln!(
            out,
            "{:<10}{mark} {:>8} {:<20} {sender}",
            e.envelope.id,
            e.envelope.size,
            to_civil(e.envelope.arrival).mailq_format()
        )?;
        // Group still-pending recipients by last error, in envelope order.
        let held = e.dir == QueueDir::Hold;
        let pending: Vec<usize> = (0..e.rcpts.len())
            .filter(|&i| match e.rcpts[i].status {
                Status::Delivered => false,
                Status::Bounced => held,
                _ => true,
            })
            .collect();
        let mut done = vec![false; pending.len()];
        for (k, &i) in pending.iter().enumerate() {
            if done[k] {
                continue;
            }
            let reason = &e.rcpts[i].last_text;
            if !reason.is_empty() {
                writeln!(out, "({reason})")?;
            }
            for (k2, &j) in pending.iter().enumerate().skip(k) {
                if !done[k2] && &e.rcpts[j].last_text == reason {
                    done[k2] = true;
                    if let Some(r) = e.envelope.recipients.get(j) {
                        writeln!(out, "{:41}{}", "", r.address)?;
                    }
                }
            }
        }
        writeln!(out)?;
    }
    let n = shown.len();
    writeln!(
        out,
        "-- {} Kbytes in {} Request{}.",
        total / 1024,
        n,
        if n == 1 { "" } else { "s" }
    )
}

/// `mailq`: lists the queue under `queue_directory` on `out` in local time,
/// read-only (safe while the daemon runs). Unreadable files are reported on
/// `err` with their name and reason.
pub fn mailq(
    queue_directory: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), SpoolError> {
    let spool = Spool::open(queue_directory)?;
    let report = spool.list()?;
    for u in &report.unreadable {
        let _ = writeln!(err, "mailq: warning: {u}");
    }
    write_listing(&report.entries, out, &super::clock::local).map_err(|source| SpoolError::Io {
        op: "write",
        path: "<stdout>".into(),
        source,
    })
}
