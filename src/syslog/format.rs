//! Log line formats, without I/O: RFC 3164 for local sockets, RFC 5424 for
//! UDP collectors, and Postfix's `maillog_file` form for files and stderr.
//!
//! Everything is written into a fixed [`LineBuf`] of [`MAX_LINE`] bytes: a
//! record never allocates and a long message is cut (at a character
//! boundary), never grown. Control characters in the message (CR, LF, TAB,
//! ESC, C1 controls) are written as rsyslog writes them, `#` plus three
//! octal digits per byte (`\n` becomes `#012`), so a peer-supplied string
//! cannot forge a second log line or drive a terminal.

use core::fmt::{self, Write as _};
use core::str::FromStr;

use super::time::DateTime;

/// Longest line tern emits, header included (2 KiB: what RFC 5424 receivers
/// SHOULD accept and well under every syslogd's datagram limit).
pub const MAX_LINE: usize = 2048;

/// Longest program name taken from a `log` target (`smtpd`, `cleanup`...).
pub const MAX_PROGRAM: usize = 32;

/// Syslog facility, with Postfix's `syslog_facility` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Facility {
    /// `user` (1).
    User,
    /// `mail` (2), Postfix's default.
    #[default]
    Mail,
    /// `daemon` (3).
    Daemon,
    /// `local0` (16).
    Local0,
    /// `local1` (17).
    Local1,
    /// `local2` (18).
    Local2,
    /// `local3` (19).
    Local3,
    /// `local4` (20).
    Local4,
    /// `local5` (21).
    Local5,
    /// `local6` (22).
    Local6,
    /// `local7` (23).
    Local7,
}

const FACILITIES: [(Facility, &str, u8); 11] = [
    (Facility::User, "user", 1),
    (Facility::Mail, "mail", 2),
    (Facility::Daemon, "daemon", 3),
    (Facility::Local0, "local0", 16),
    (Facility::Local1, "local1", 17),
    (Facility::Local2, "local2", 18),
    (Facility::Local3, "local3", 19),
    (Facility::Local4, "local4", 20),
    (Facility::Local5, "local5", 21),
    (Facility::Local6, "local6", 22),
    (Facility::Local7, "local7", 23),
];

impl Facility {
    /// The facility named `name` (case-insensitive, as Postfix accepts it).
    pub fn from_name(name: &str) -> Option<Facility> {
        FACILITIES
            .iter()
            .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
            .map(|(f, _, _)| *f)
    }

    /// The Postfix/syslog name (`mail`, `local3`...).
    pub fn name(self) -> &'static str {
        FACILITIES
            .iter()
            .find(|(f, _, _)| *f == self)
            .map_or("mail", |(_, n, _)| n)
    }

    /// The numeric facility code of RFC 5424 table 1.
    pub fn code(self) -> u8 {
        FACILITIES
            .iter()
            .find(|(f, _, _)| *f == self)
            .map_or(2, |(_, _, c)| *c)
    }
}

/// A facility name that is not one of `mail daemon user local0..local7`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFacility(pub String);

impl fmt::Display for UnknownFacility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown syslog facility \"{}\" (expected mail, daemon, user or local0..local7)",
            self.0
        )
    }
}

impl std::error::Error for UnknownFacility {}

impl FromStr for Facility {
    type Err = UnknownFacility;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Facility::from_name(s).ok_or_else(|| UnknownFacility(s.to_string()))
    }
}

/// Syslog severity; `log` levels map onto four of the eight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// `err` (3), from `log::Level::Error`.
    Err = 3,
    /// `warning` (4), from `log::Level::Warn`.
    Warning = 4,
    /// `info` (6), from `log::Level::Info`.
    Info = 6,
    /// `debug` (7), from `log::Level::Debug` and `Trace`.
    Debug = 7,
}

impl From<log::Level> for Severity {
    fn from(l: log::Level) -> Self {
        match l {
            log::Level::Error => Severity::Err,
            log::Level::Warn => Severity::Warning,
            log::Level::Info => Severity::Info,
            log::Level::Debug | log::Level::Trace => Severity::Debug,
        }
    }
}

/// The RFC 5424 PRI value: facility * 8 + severity.
pub fn pri(facility: Facility, severity: Severity) -> u8 {
    facility.code() * 8 + severity as u8
}

/// The program part of the tag (`tern/<program>[pid]`) for a `log` target.
///
/// tern code names its sub-program as the target (`target: "smtpd"`); a
/// target that is a Rust module path (`tern::queue`, `rustls::conn`), the
/// crate name `tern`, or anything not a short `[A-Za-z0-9._-]` word maps to
/// `default` (normally `master`), so a tag is always one pflogsumm parses.
pub fn program_for_target<'a>(target: &'a str, default: &'a str) -> &'a str {
    let plain = !target.is_empty()
        && target.len() <= MAX_PROGRAM
        && target != "tern"
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if plain {
        target
    } else {
        default
    }
}

/// A fixed-capacity line: writes past the limit are cut at a character
/// boundary and everything after the cut is dropped.
pub struct LineBuf {
    buf: [u8; MAX_LINE],
    len: usize,
    limit: usize,
    truncated: bool,
}

impl Default for LineBuf {
    fn default() -> Self {
        LineBuf::new()
    }
}

impl LineBuf {
    /// An empty line of [`MAX_LINE`] bytes.
    pub fn new() -> LineBuf {
        LineBuf {
            buf: [0; MAX_LINE],
            len: 0,
            limit: MAX_LINE,
            truncated: false,
        }
    }

    /// Empties the line (capacity back to [`MAX_LINE`]).
    pub fn clear(&mut self) {
        self.len = 0;
        self.limit = MAX_LINE;
        self.truncated = false;
    }

    /// The bytes written so far (always valid UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// The line as text.
    pub fn as_str(&self) -> &str {
        // Only whole `str` prefixes cut at char boundaries are ever copied in.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// Whether something was cut off.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Appends `s` whole or not at all (escape sequences must not be split).
    fn push_atomic(&mut self, s: &str) -> bool {
        if self.truncated || self.limit - self.len < s.len() {
            self.truncated = true;
            return false;
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        true
    }
}

impl fmt::Write for LineBuf {
    /// Never fails: a cut line is still a line worth sending.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Ok(());
        }
        let room = self.limit - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        if n < s.len() {
            self.truncated = true;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// A `fmt::Write` adapter escaping control characters into a [`LineBuf`].
pub struct Escaper<'a>(pub &'a mut LineBuf);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while !rest.is_empty() && !self.0.truncated {
            let cut = rest
                .char_indices()
                .find(|(_, c)| c.is_control())
                .map_or(rest.len(), |(i, _)| i);
            let (clean, tail) = rest.split_at(cut);
            self.0.write_str(clean)?;
            let mut chars = tail.chars();
            let Some(c) = chars.next() else { break };
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                let esc = [b'#', b'0' + (b >> 6), b'0' + ((b >> 3) & 7), b'0' + (b & 7)];
                // ASCII digits and '#': always valid UTF-8.
                let esc = core::str::from_utf8(&esc).unwrap_or("#077");
                if !self.0.push_atomic(esc) {
                    return Ok(());
                }
            }
            rest = chars.as_str();
        }
        Ok(())
    }
}

/// Writes `s` keeping only characters safe in a syslog tag or hostname
/// (printable ASCII other than space, `:`, `[` and `]`); others become `_`.
fn write_token(out: &mut LineBuf, s: &str, max: usize) {
    for c in s.chars().take(max) {
        let ok = c.is_ascii_graphic() && !matches!(c, ':' | '[' | ']');
        let mut b = [0u8; 4];
        let _ = out.write_str(if ok { c.encode_utf8(&mut b) } else { "_" });
    }
}

/// What goes in front of a message.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    /// `syslog_name`, first half of the tag (`tern`).
    pub ident: &'a str,
    /// Sub-program, second half of the tag (`smtpd`); see [`program_for_target`].
    pub program: &'a str,
    /// Process id.
    pub pid: u32,
    /// Facility for PRI.
    pub facility: Facility,
    /// Severity for PRI.
    pub severity: Severity,
    /// Time of the record (local time for RFC 3164 and maillog forms; its
    /// offset is written in the RFC 5424 form).
    pub time: DateTime,
    /// Host name for the RFC 5424 and maillog forms (`myhostname`).
    pub hostname: &'a str,
}

fn write_tag(out: &mut LineBuf, h: &Header<'_>) {
    write_token(out, h.ident, MAX_PROGRAM);
    let _ = out.write_str("/");
    write_token(out, h.program, MAX_PROGRAM);
    let _ = write!(out, "[{}]: ", h.pid);
}

/// `<PRI>Mmm dd hh:mm:ss tern/smtpd[1234]: message` — what glibc's syslog(3)
/// sends to `/dev/log` (no hostname; the local syslogd adds it).
pub fn write_rfc3164(out: &mut LineBuf, h: &Header<'_>, msg: &str) {
    rfc3164(out, h, msg, false);
}

/// `<PRI>Mmm dd hh:mm:ss host tern/smtpd[1234]: message` — RFC 3164's
/// network form (section 4.1.2: HOSTNAME after the timestamp), for UDP
/// receivers that store the traditional format.
pub fn write_rfc3164_host(out: &mut LineBuf, h: &Header<'_>, msg: &str) {
    rfc3164(out, h, msg, true);
}

fn rfc3164(out: &mut LineBuf, h: &Header<'_>, msg: &str, with_host: bool) {
    out.clear();
    let _ = write!(
        out,
        "<{}>{} ",
        pri(h.facility, h.severity),
        h.time.rfc3164()
    );
    if with_host {
        write_host(out, h);
    }
    write_tag(out, h);
    let _ = Escaper(out).write_str(msg);
}

/// The HOSTNAME field and its space (`-` when there is none).
fn write_host(out: &mut LineBuf, h: &Header<'_>) {
    if h.hostname.is_empty() {
        let _ = out.write_str("-");
    } else {
        write_token(out, h.hostname, 255);
    }
    let _ = out.write_str(" ");
}

/// `<PRI>1 2026-11-23T19:02:49.123456+00:00 host tern/smtpd 1234 - - message`
/// — RFC 5424 for UDP collectors (no BOM; APP-NAME cut to 48 characters).
pub fn write_rfc5424(out: &mut LineBuf, h: &Header<'_>, msg: &str) {
    out.clear();
    let _ = write!(
        out,
        "<{}>1 {} ",
        pri(h.facility, h.severity),
        h.time.rfc3339()
    );
    write_host(out, h);
    let ident_len = h.ident.chars().count().min(MAX_PROGRAM);
    write_token(out, h.ident, MAX_PROGRAM);
    let _ = out.write_str("/");
    write_token(out, h.program, 48usize.saturating_sub(ident_len + 1));
    let _ = write!(out, " {} - - ", h.pid);
    let _ = Escaper(out).write_str(msg);
}

/// `Nov 23 19:02:49 host tern/smtpd[1234]: message\n` — Postfix's
/// `maillog_file` line (its msg_logger writes `%b %d %H:%M:%S`, day
/// zero-padded), used for `maillog_file` and stderr. Ends in `\n`.
pub fn write_maillog(out: &mut LineBuf, h: &Header<'_>, msg: &str) {
    out.clear();
    out.limit = MAX_LINE - 1;
    let t = &h.time;
    let _ = write!(
        out,
        "{} {:02} {:02}:{:02}:{:02} ",
        t.month_name(),
        t.day,
        t.hour,
        t.minute,
        t.second
    );
    write_token(out, h.hostname, 255);
    let _ = out.write_str(" ");
    write_tag(out, h);
    let _ = Escaper(out).write_str(msg);
    out.limit = MAX_LINE;
    let was = out.truncated;
    out.truncated = false;
    let _ = out.write_str("\n");
    out.truncated = was;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(program: &'static str) -> Header<'static> {
        Header {
            ident: "tern",
            program,
            pid: 4242,
            facility: Facility::Mail,
            severity: Severity::Info,
            time: DateTime::from_unix(1_795_460_569, 250_000, 0),
            hostname: "nas.example",
        }
    }

    #[test]
    fn rfc3164_shape() {
        let mut b = LineBuf::new();
        write_rfc3164(&mut b, &header("smtpd"), "connect from x[127.0.0.1]");
        let t = DateTime::from_unix(1_795_460_569, 0, 0)
            .rfc3164()
            .to_string();
        assert_eq!(
            b.as_str(),
            format!("<22>{t} tern/smtpd[4242]: connect from x[127.0.0.1]")
        );
    }

    #[test]
    fn rfc5424_shape() {
        let mut b = LineBuf::new();
        let mut h = header("qmgr");
        h.severity = Severity::Err;
        h.facility = Facility::Local7;
        write_rfc5424(&mut b, &h, "m");
        let t = h.time.rfc3339().to_string();
        assert_eq!(
            b.as_str(),
            format!("<187>1 {t} nas.example tern/qmgr 4242 - - m")
        );
    }

    #[test]
    fn maillog_shape_zero_pads_day() {
        let mut b = LineBuf::new();
        let mut h = header("cleanup");
        h.time = DateTime::from_unix(1_794_000_000, 0, 0); // a single-digit day
        write_maillog(&mut b, &h, "x");
        let expect = format!(
            "{} {:02} {:02}:{:02}:{:02} nas.example tern/cleanup[4242]: x\n",
            h.time.month_name(),
            h.time.day,
            h.time.hour,
            h.time.minute,
            h.time.second
        );
        assert!(h.time.day < 10);
        assert_eq!(b.as_str(), expect);
    }

    #[test]
    fn newlines_and_controls_are_escaped() {
        let mut b = LineBuf::new();
        write_rfc3164(&mut b, &header("smtpd"), "a\r\nb\tc\x1b[31m\u{9b}d\u{7f}");
        let s = b.as_str();
        assert!(s.ends_with("a#015#012b#011c#033[31m#302#233d#177"), "{s}");
        assert!(!s.chars().any(char::is_control));
    }

    #[test]
    fn escaping_is_idempotent() {
        let mut a = LineBuf::new();
        let _ = Escaper(&mut a).write_str("x\ny\u{0}");
        let once = a.as_str().to_string();
        let mut b = LineBuf::new();
        let _ = Escaper(&mut b).write_str(&once);
        assert_eq!(b.as_str(), once);
    }

    #[test]
    fn long_lines_are_capped_at_char_boundary() {
        let msg = "é".repeat(3000);
        let mut b = LineBuf::new();
        write_rfc3164(&mut b, &header("smtpd"), &msg);
        assert!(b.is_truncated());
        assert!(b.as_bytes().len() <= MAX_LINE);
        assert!(b.as_bytes().len() >= MAX_LINE - 1);
        assert!(b.as_str().ends_with('é'));

        let nl = "\n".repeat(3000);
        write_maillog(&mut b, &header("smtpd"), &nl);
        let s = b.as_str();
        assert!(s.len() <= MAX_LINE && s.len() >= MAX_LINE - 4);
        assert!(s.ends_with("#012\n"), "escape sequences are never split");
        assert_eq!(s.matches('\n').count(), 1);
    }

    #[test]
    fn targets_map_to_programs() {
        for t in [
            "smtpd",
            "smtp",
            "qmgr",
            "cleanup",
            "pickup",
            "sendmail",
            "local",
            "bounce",
            "trivial-rewrite",
        ] {
            assert_eq!(program_for_target(t, "master"), t);
        }
        for t in [
            "tern",
            "tern::queue::spool",
            "rustls::conn",
            "",
            "a b",
            "x:y",
            &"z".repeat(33),
        ] {
            assert_eq!(program_for_target(t, "master"), "master", "{t:?}");
        }
    }

    #[test]
    fn tag_fields_are_sanitised() {
        let mut b = LineBuf::new();
        let mut h = header("smtpd");
        h.ident = "te rn:[x]\n";
        write_rfc3164(&mut b, &h, "");
        assert!(
            b.as_str().contains(" te_rn__x__/smtpd[4242]: "),
            "{}",
            b.as_str()
        );
    }

    #[test]
    fn facility_names() {
        for (f, n, c) in FACILITIES {
            assert_eq!(Facility::from_name(n), Some(f));
            assert_eq!(n.to_uppercase().parse::<Facility>(), Ok(f));
            assert_eq!(f.name(), n);
            assert_eq!(f.code(), c);
        }
        let e = "kern".parse::<Facility>().unwrap_err();
        assert!(e.to_string().contains("\"kern\""));
        assert_eq!(Facility::default(), Facility::Mail);
    }

    #[test]
    fn severities_and_pri() {
        assert_eq!(pri(Facility::Mail, log::Level::Error.into()), 19);
        assert_eq!(pri(Facility::Mail, log::Level::Warn.into()), 20);
        assert_eq!(pri(Facility::Daemon, log::Level::Info.into()), 30);
        assert_eq!(pri(Facility::User, log::Level::Trace.into()), 15);
        assert_eq!(pri(Facility::Local0, log::Level::Debug.into()), 135);
    }
}
