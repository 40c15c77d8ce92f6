//! Per-recipient delivery state: an append-only log `ID.state` next to the
//! queue file. One line per outcome:
//!
//! ```text
//! 3f1c09aa T 0 1700000900 host mx.example[192.0.2.7] said: 451 4.7.1 try later
//! 0c55e2d1 D 1 1700000060 250 2.0.0 Ok
//! ```
//!
//! `CRC32 STATUS RCPT-INDEX TIME TEXT`; the CRC covers everything after the
//! first space. `T` (temporary failure) carries the next attempt time, `D`
//! (delivered) and `B` (bounced) the time of the outcome. A line without its
//! newline, or with a bad checksum (a torn or garbled write after a crash),
//! is ignored: the recipient keeps its previous state and is tried again.
//! Sans-I/O.

use crate::crc32::crc32;

/// Longest error text kept per record (the rest is cut).
pub const MAX_TEXT: usize = 400;
/// Largest state log the reader accepts; an honest log is far smaller.
pub const MAX_LOG: usize = 4 * 1024 * 1024;

/// Outcome of one delivery attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the next hop: final.
    Delivered {
        /// Reply or note, for the log and `mailq`.
        text: String,
    },
    /// Permanent failure: final (the queue manager sends the DSN).
    Bounced {
        /// The error, e.g. `host x said: 550 5.1.1 unknown user`.
        text: String,
    },
    /// Temporary failure: try again at `until`.
    Deferred {
        /// Next attempt, seconds since the epoch.
        until: u64,
        /// The error shown by `mailq`.
        text: String,
    },
}

/// Current state of one recipient, folded from its log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Never attempted yet.
    Pending,
    /// Delivered (final).
    Delivered,
    /// Bounced (final); the text says why.
    Bounced,
    /// Deferred until the given time.
    Deferred {
        /// Next attempt, seconds since the epoch.
        until: u64,
    },
}

impl Status {
    /// Delivered or bounced: nothing more to do for this recipient.
    pub fn is_final(&self) -> bool {
        matches!(self, Status::Delivered | Status::Bounced)
    }
}

/// State of one recipient as the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptState {
    /// Folded status.
    pub status: Status,
    /// Number of recorded attempts.
    pub attempts: u32,
    /// Text of the last outcome (empty if none).
    pub last_text: String,
    /// Time of the last record (next attempt for deferrals).
    pub last_time: u64,
}

impl Default for RcptState {
    fn default() -> Self {
        RcptState {
            status: Status::Pending,
            attempts: 0,
            last_text: String::new(),
            last_time: 0,
        }
    }
}

/// Result of reading a state log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// One state per envelope recipient, in envelope order.
    pub rcpts: Vec<RcptState>,
    /// Records ignored (torn, bad checksum, bad index): worth a log line.
    pub ignored: usize,
}

/// Appends one encoded record to `out`.
pub fn encode(out: &mut Vec<u8>, rcpt: usize, outcome: &Outcome, now: u64) {
    let (code, time, text) = match outcome {
        Outcome::Delivered { text } => ('D', now, text),
        Outcome::Bounced { text } => ('B', now, text),
        Outcome::Deferred { until, text } => ('T', *until, text),
    };
    let text = super::envelope::sanitize_text(text, MAX_TEXT);
    let body = format!("{code} {rcpt} {time} {text}");
    out.extend_from_slice(format!("{:08x} {body}\n", crc32(0, body.as_bytes())).as_bytes());
}

/// Folds a state log for a message with `n` recipients.
pub fn fold(log: &[u8], n: usize) -> Folded {
    let mut rcpts = vec![RcptState::default(); n];
    let mut ignored = 0;
    let mut rest = log;
    while !rest.is_empty() {
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            ignored += 1; // torn tail
            break;
        };
        let line = &rest[..nl];
        rest = &rest[nl + 1..];
        match parse_record(line) {
            Some((idx, code, time, text)) if idx < n => {
                // A final state is never undone by a later record (a
                // duplicate attempt after a crash must not "undeliver").
                let Some(r) = rcpts.get_mut(idx) else {
                    ignored += 1;
                    continue;
                };
                r.attempts = r.attempts.saturating_add(1);
                r.last_text = text.to_string();
                r.last_time = time;
                if !r.status.is_final() {
                    r.status = match code {
                        b'D' => Status::Delivered,
                        b'B' => Status::Bounced,
                        _ => Status::Deferred { until: time },
                    };
                }
            }
            _ => ignored += 1,
        }
    }
    Folded { rcpts, ignored }
}

fn parse_record(line: &[u8]) -> Option<(usize, u8, u64, &str)> {
    let line = std::str::from_utf8(line).ok()?;
    let (crc, body) = line.split_once(' ')?;
    if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32(0, body.as_bytes()) {
        return None;
    }
    let mut parts = body.splitn(4, ' ');
    let code = parts.next()?.as_bytes();
    let code = match code {
        [c @ (b'D' | b'B' | b'T')] => *c,
        _ => return None,
    };
    let idx: usize = parts.next()?.parse().ok()?;
    let time: u64 = parts.next()?.parse().ok()?;
    let text = parts.next().unwrap_or("");
    Some((idx, code, time, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_value() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn fold_and_torn_tail() {
        let mut log = Vec::new();
        encode(
            &mut log,
            0,
            &Outcome::Deferred {
                until: 100,
                text: "451 try\nlater".into(),
            },
            50,
        );
        encode(
            &mut log,
            1,
            &Outcome::Delivered {
                text: "250 ok".into(),
            },
            60,
        );
        encode(
            &mut log,
            0,
            &Outcome::Deferred {
                until: 200,
                text: "452 full".into(),
            },
            150,
        );
        let full = fold(&log, 2);
        assert_eq!(full.ignored, 0);
        assert_eq!(full.rcpts[0].status, Status::Deferred { until: 200 });
        assert_eq!(full.rcpts[0].attempts, 2);
        assert_eq!(full.rcpts[0].last_text, "452 full");
        assert_eq!(full.rcpts[1].status, Status::Delivered);
        // Every torn prefix folds to a state some complete prefix had.
        for cut in 0..log.len() {
            let f = fold(&log[..cut], 2);
            assert!(f.ignored <= 1);
            assert!(f.rcpts[0].attempts <= 2);
        }
        // A flipped byte voids only that record.
        let mut bad = log.clone();
        bad[12] ^= 1;
        let f = fold(&bad, 2);
        assert_eq!(f.ignored, 1);
        assert_eq!(f.rcpts[0].attempts, 1);
        // An index beyond the envelope is ignored.
        assert_eq!(fold(&log, 1).ignored, 1);
    }

    #[test]
    fn final_state_sticks() {
        let mut log = Vec::new();
        encode(&mut log, 0, &Outcome::Bounced { text: "550".into() }, 1);
        encode(
            &mut log,
            0,
            &Outcome::Deferred {
                until: 9,
                text: "451".into(),
            },
            2,
        );
        assert_eq!(fold(&log, 1).rcpts[0].status, Status::Bounced);
    }
}
