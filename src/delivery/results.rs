//! What a delivery reports back: per-recipient results with Postfix's
//! delay fields, the jobs a session carries, and the summary of a session.
//! Shared by SMTP delivery (`client`), local delivery (`local/`) and the
//! queue manager, so none of them imports another's driver.

use std::time::{Duration, SystemTime};

use crate::queue::QueueEntry;

use super::report::TlsAttempt;

/// What happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    /// Accepted by the next hop.
    Sent,
    /// Try again later.
    Deferred,
    /// Permanent failure.
    Bounced,
}

/// One recipient's result, with what the log line needs.
#[derive(Debug, Clone)]
pub struct RcptResult {
    /// Outcome.
    pub kind: ResultKind,
    /// `host[addr]:port`, `local` or `none`.
    pub relay: String,
    /// Enhanced status code.
    pub dsn: String,
    /// The text in parentheses of `status=...`.
    pub text: String,
    /// The remote MTA's name when it answered (for the DSN).
    pub remote_mta: Option<String>,
    /// When the delivery of this message started: the session start for
    /// the first message of a connection, the start of its transaction for
    /// a later one (Postfix's agent hand-off). `None` when no delivery was
    /// attempted (routing decisions, expiry).
    pub handoff: Option<SystemTime>,
    /// Seconds for DNS, connect, greeting, TLS and AUTH (`c`); 0 for a
    /// message on a reused connection.
    pub conn: f64,
    /// Seconds transmitting (`d`; local delivery fills only this one).
    pub xfer: f64,
    /// When this recipient's result came in (Postfix's `deliver_done`).
    pub done: Option<SystemTime>,
    /// Which use of the connection this was (1 = first); Postfix logs
    /// `conn_use=N` from 2 on.
    pub conn_use: u32,
}

impl RcptResult {
    /// A result without timing (routing decisions, local errors).
    pub fn new(kind: ResultKind, relay: &str, dsn: &str, text: &str) -> RcptResult {
        RcptResult {
            kind,
            relay: relay.to_string(),
            dsn: dsn.to_string(),
            text: text.to_string(),
            remote_mta: None,
            handoff: None,
            conn: 0.0,
            xfer: 0.0,
            done: None,
            conn_use: 1,
        }
    }

    /// Postfix's `delay=` and `delays=a/b/c/d` (log_adhoc): `arrival` is
    /// when the message entered the queue, `picked` when the queue manager
    /// took it for this attempt, `now` the time of the log line. a = queue
    /// wait before the queue manager, b = queue manager latency (until the
    /// hand-off to the delivery), c = connection set-up, d = transmission.
    pub fn timing(&self, arrival: SystemTime, picked: SystemTime, now: SystemTime) -> Timing {
        let secs = |later: SystemTime, earlier: SystemTime| {
            later
                .duration_since(earlier)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        };
        let done = self.done.unwrap_or(now);
        let (b, c, d) = match self.handoff {
            Some(h) => {
                let c = self.conn.max(0.0);
                (secs(h, picked), c, (secs(done, h) - c).max(0.0))
            }
            // No delivery agent: the queue manager decided by itself.
            None => (secs(done, picked), 0.0, 0.0),
        };
        Timing {
            delay: secs(done, arrival),
            a: secs(picked, arrival),
            b,
            c,
            d,
        }
    }
}

/// The delay fields of a delivery log line, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// `delay=`: arrival to result.
    pub delay: f64,
    /// Before the queue manager.
    pub a: f64,
    /// In the queue manager.
    pub b: f64,
    /// Connection set-up.
    pub c: f64,
    /// Transmission.
    pub d: f64,
}

impl Timing {
    /// `delay=X, delays=a/b/c/d` as Postfix writes it.
    pub fn fields(&self) -> String {
        format!(
            "delay={}, delays={}/{}/{}/{}",
            format_delay(self.delay),
            format_delay(self.a),
            format_delay(self.b),
            format_delay(self.c),
            format_delay(self.d)
        )
    }
}

/// A time in seconds as Postfix's format_tv() prints delays (two
/// significant digits, at most two decimals, `delay_logging_resolution_limit
/// = 2`): below 1 s to 0.01 s (`0.37`, `0.01`, `0`), 1 to 9.95 s to 0.1 s
/// (`1.2`), from 10 s whole seconds; rounded half up; trailing zeros and a
/// bare point dropped.
pub fn format_delay(secs: f64) -> String {
    const MILLION: u64 = 1_000_000;
    if !secs.is_finite() || secs <= 0.0 {
        return "0".into();
    }
    let total = (secs * MILLION as f64) as u64;
    let (mut sec, mut usec) = (total / MILLION, total % MILLION);
    // Resolution in microseconds: 0.01 s, 0.1 s from 1 s, 1 s from 10 s.
    let res = match sec {
        0 => 10_000,
        1..=9 => 100_000,
        _ => MILLION,
    };
    usec += res / 2;
    if usec >= MILLION {
        sec += 1;
        usec -= MILLION;
    }
    let mut out = sec.to_string();
    if usec >= res {
        out.push('.');
        let mut rem = usec;
        let mut unit = MILLION / 10;
        while rem >= res && unit > 0 {
            out.push(char::from(b'0' + (rem / unit) as u8));
            rem %= unit;
            unit /= 10;
        }
    }
    out
}

/// The arrival time of a queued message with sub-second precision: the
/// envelope keeps whole seconds, and the queue ID starts with the
/// microseconds of the clock when the file was created (5 hex digits, see
/// `Spool::create`), taken right after the arrival second.
pub fn arrival_time(id: &str, arrival: u64) -> SystemTime {
    let micros = id
        .get(..5)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .filter(|m| *m < 1_000_000)
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(arrival) + Duration::from_micros(micros)
}

/// One message to deliver in a session, with its recipients for this hop.
#[derive(Debug, Clone)]
pub struct MessageJob {
    /// Queue ID.
    pub id: String,
    /// Envelope sender.
    pub sender: String,
    /// Arrival time (whole seconds, from the envelope).
    pub arrival: u64,
    /// When the queue manager took the message for this attempt.
    pub picked: SystemTime,
    /// Message size.
    pub size: u64,
    /// The message is a bounce (never bounce it again).
    pub is_bounce: bool,
    /// The envelope's flags (double bounce, original queue ID).
    pub flags: crate::queue::Flags,
    /// Recipients of this job: (index in the envelope, address).
    pub rcpts: Vec<(usize, String)>,
    /// Every envelope recipient (index -> address), for log lines.
    pub all_rcpts: Vec<String>,
    /// Attempts so far per envelope recipient.
    pub attempts: Vec<u32>,
}

impl MessageJob {
    /// A job for `rcpts` of a queue entry.
    pub fn from_entry(e: &QueueEntry, rcpts: Vec<(usize, String)>) -> MessageJob {
        MessageJob {
            id: e.id().to_string(),
            sender: e.envelope.sender.clone(),
            arrival: e.envelope.arrival,
            picked: SystemTime::now(),
            size: e.envelope.size,
            is_bounce: e.envelope.flags.bounce,
            flags: e.envelope.flags.clone(),
            rcpts,
            all_rcpts: e
                .envelope
                .recipients
                .iter()
                .map(|r| r.address.clone())
                .collect(),
            attempts: e.rcpts.iter().map(|r| r.attempts).collect(),
        }
    }
}

/// What a session reports back to the queue manager.
pub struct DeliveryResults {
    /// Postfix's `... TLS connection established to ...` line of every
    /// completed handshake (logged too at `smtp_tls_loglevel` 1 and up).
    pub tls_established: Vec<String>,
    /// The certificates the server presented (leaf first, DER), recorded
    /// only by a probe, also when verification failed.
    pub peer_chain: Vec<Vec<u8>>,
    /// Why the last host tried failed, when no session completed.
    pub last_failure: Option<String>,
    /// `host[addr]:port` of the last TCP connection made.
    pub connected: Option<String>,
    /// Per job, in order: results for its recipients.
    pub per_message: Vec<Vec<(usize, RcptResult)>>,
    /// Set when no host of the destination could be reached: the rest of
    /// this queue run defers its mail without connecting.
    pub dead_destination: Option<String>,
    /// Set when the run ended in a temporary failure of the destination
    /// as a whole (no server took the mail: refused, 421, lost, timed
    /// out): the queue manager's negative concurrency feedback.
    pub site_failure: Option<String>,
    /// Every TLS attempt made.
    pub tls_attempts: Vec<TlsAttempt>,
    /// For `tern probe`: the planner's events (DANE facts, TLSA records,
    /// fallbacks) as lines, in the order they happened.
    pub notes: Vec<String>,
}

impl DeliveryResults {
    /// Empty results for `jobs` jobs.
    pub fn new(jobs: usize) -> DeliveryResults {
        DeliveryResults {
            tls_established: Vec::new(),
            peer_chain: Vec::new(),
            last_failure: None,
            connected: None,
            per_message: (0..jobs).map(|_| Vec::new()).collect(),
            dead_destination: None,
            site_failure: None,
            tls_attempts: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Whether some recipient of `jobs` has no result yet.
    pub fn work_left(&self, jobs: &[MessageJob]) -> bool {
        jobs.iter()
            .zip(&self.per_message)
            .any(|(j, r)| r.len() < j.rcpts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_number_format() {
        // As Postfix's format_tv(.., 2, 2) prints them.
        for (v, want) in [
            (0.0, "0"),
            (-1.0, "0"),
            (0.004, "0"),
            (0.005, "0.01"),
            (0.013, "0.01"),
            (0.37, "0.37"),
            (0.5, "0.5"),
            (0.10, "0.1"),
            (0.996, "1"),
            (1.0, "1"),
            (1.23, "1.2"),
            (1.26, "1.3"),
            (9.94, "9.9"),
            (9.96, "10"),
            (12.4, "12"),
            (12.5, "13"),
            (3600.2, "3600"),
        ] {
            assert_eq!(format_delay(v), want, "{v}");
        }
        assert_eq!(format_delay(f64::NAN), "0");
    }

    #[test]
    fn log_timing_from_timestamps() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = RcptResult::new(ResultKind::Sent, "mx[192.0.2.1]:25", "2.0.0", "250 ok");
        r.handoff = Some(at(90));
        r.conn = 0.21;
        r.done = Some(at(370));
        // Arrived at 0, picked at 80 ms, handed off at 90 ms, set up in
        // 210 ms, done at 370 ms; the log line is written later.
        let t = r.timing(t0, at(80), at(5_000));
        assert_eq!(t.fields(), "delay=0.37, delays=0.08/0.01/0.21/0.07");
        // No delivery (a routing decision): b runs to the log line.
        let r = RcptResult::new(ResultKind::Bounced, "none", "5.0.0", "no");
        assert_eq!(
            r.timing(t0, at(1_500), at(13_000)).fields(),
            "delay=13, delays=1.5/12/0/0"
        );
        // Clocks going back never give negative numbers.
        let mut r = RcptResult::new(ResultKind::Sent, "x", "2.0.0", "ok");
        r.handoff = Some(at(10));
        r.conn = 5.0;
        r.done = Some(at(20));
        assert_eq!(
            r.timing(at(100), at(50), at(20)).fields(),
            "delay=0, delays=0/0/5/0"
        );
    }

    #[test]
    fn arrival_from_queue_id() {
        let t = arrival_time("5A1C30992052", 1_700_000_000);
        let want = SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_700_000_000)
            + Duration::from_micros(0x5A1C3);
        assert_eq!(t, want);
        // Not hex, or out of range: whole seconds.
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(arrival_time("ZZZZZ12", 5), whole);
        assert_eq!(arrival_time("FFFFF12", 5), whole);
        assert_eq!(arrival_time("ab", 5), whole);
    }
}
