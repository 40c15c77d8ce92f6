//! Calendar time and the three text forms tern writes: RFC 3164 syslog
//! stamps, RFC 3339 (RFC 5424 syslog, JSON reports) and RFC 5322 (`Date:`
//! and `Received:` headers), without chrono.
//!
//! [`DateTime::from_unix`] is pure arithmetic; only [`local_offset`] (and the
//! constructors built on it) asks the C library for the zone, through
//! `localtime_r`, so the zone rules are the system's own (`TZ`,
//! `/etc/localtime`). The formatters are `Display` wrappers so callers can
//! write into fixed buffers (`heapless::String`, a `fmt::Write` line buffer)
//! without allocating.

use core::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Earliest instant represented: 0000-01-01T00:00:00Z. Clamping keeps every
/// output at a fixed width (four-digit year) whatever the clock says.
const MIN_UNIX: i64 = -62_167_219_200;
/// Latest instant represented: 9999-12-31T23:59:59Z.
const MAX_UNIX: i64 = 253_402_300_799;
/// Offsets beyond ±23:59 are not representable in RFC 3339 or RFC 5322.
const MAX_OFFSET: i32 = 23 * 3600 + 59 * 60;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// A broken-down civil time in some UTC offset, with microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// Year, 0..=9999.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31.
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59 (no leap seconds: Unix time has none).
    pub second: u8,
    /// Microseconds, 0..=999_999.
    pub micros: u32,
    /// Day of week, 0 = Sunday .. 6 = Saturday.
    pub weekday: u8,
    /// Offset of this civil time east of UTC, in seconds.
    pub offset_secs: i32,
}

impl DateTime {
    /// Civil time for `unix_secs` (+`micros`) seen at `offset_secs` east of
    /// UTC. Pure; out-of-range inputs are clamped to years 0000..=9999 and
    /// offsets to ±23:59 so the text forms keep their fixed widths.
    pub fn from_unix(unix_secs: i64, micros: u32, offset_secs: i32) -> DateTime {
        let offset = offset_secs.clamp(-MAX_OFFSET, MAX_OFFSET);
        let local = unix_secs
            .clamp(MIN_UNIX, MAX_UNIX)
            .saturating_add(i64::from(offset))
            .clamp(MIN_UNIX, MAX_UNIX);
        let days = local.div_euclid(86_400);
        let secs_of_day = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday (4).
        let weekday = (days + 4).rem_euclid(7);
        DateTime {
            year: year.clamp(0, 9999) as u16,
            month: month as u8,
            day: day as u8,
            hour: (secs_of_day / 3600) as u8,
            minute: (secs_of_day / 60 % 60) as u8,
            second: (secs_of_day % 60) as u8,
            micros: micros.min(999_999),
            weekday: weekday as u8,
            offset_secs: offset,
        }
    }

    /// `t` in UTC.
    pub fn utc(t: SystemTime) -> DateTime {
        let (secs, micros) = unix_parts(t);
        DateTime::from_unix(secs, micros, 0)
    }

    /// `t` in the system's local zone (offset from [`local_offset`]).
    pub fn local(t: SystemTime) -> DateTime {
        let (secs, micros) = unix_parts(t);
        DateTime::from_unix(secs, micros, local_offset(secs))
    }

    /// The current time in the local zone.
    pub fn now_local() -> DateTime {
        DateTime::local(SystemTime::now())
    }

    /// RFC 3164 stamp `Mmm dd hh:mm:ss` (day space-padded, as glibc's
    /// syslog(3) and rsyslog write it). No year, no zone: the form has none.
    pub fn rfc3164(&self) -> Rfc3164 {
        Rfc3164(*self)
    }

    /// RFC 3339 stamp `YYYY-MM-DDThh:mm:ss.uuuuuu+hh:mm` (`Z` for UTC), the
    /// RFC 5424 TIMESTAMP form.
    pub fn rfc3339(&self) -> Rfc3339 {
        Rfc3339(*self)
    }

    /// RFC 5322 date-time `Mon, 23 Nov 2026 19:02:49 +0000` for `Date:` and
    /// `Received:` headers.
    pub fn rfc5322(&self) -> Rfc5322 {
        Rfc5322(*self)
    }

    /// English month abbreviation, `Jan`..`Dec`.
    pub fn month_name(&self) -> &'static str {
        MONTHS
            .get(usize::from(self.month.wrapping_sub(1)))
            .copied()
            .unwrap_or("Jan")
    }

    /// English weekday abbreviation, `Sun`..`Sat`.
    pub fn weekday_name(&self) -> &'static str {
        WEEKDAYS
            .get(usize::from(self.weekday))
            .copied()
            .unwrap_or("Sun")
    }
}

/// Seconds and microseconds since the Unix epoch; negative for times before
/// it (a router with no RTC can boot in 1970 or earlier).
fn unix_parts(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_micros(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_micros() {
                0 => (secs.saturating_neg(), 0),
                us => (secs.saturating_neg().saturating_sub(1), 1_000_000 - us),
            }
        }
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to
/// (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The local zone's offset east of UTC, in seconds, at `unix_secs`, from the
/// C library's `localtime_r` (so DST and `TZ` are honoured). 0 if the C
/// library cannot convert the time.
pub fn local_offset(unix_secs: i64) -> i32 {
    // time_t is 32 bits on some 32-bit board targets.
    #[allow(irrefutable_let_patterns, clippy::unnecessary_fallible_conversions)]
    let Ok(t) = libc::time_t::try_from(unix_secs) else {
        return 0;
    };
    // SAFETY: `tm` is plain old data for which all-zero is a valid value;
    // localtime_r only writes into it and reads `t`.
    let mut tm: libc::tm = unsafe { core::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call;
    // localtime_r is the reentrant variant and keeps no reference.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return 0;
    }
    i32::try_from(tm.tm_gmtoff)
        .unwrap_or(0)
        .clamp(-MAX_OFFSET, MAX_OFFSET)
}

/// The current time as an RFC 5322 date in the local zone, e.g.
/// `Mon, 23 Nov 2026 19:02:49 +0000`: the one function the SMTP and queue
/// code call for `Date:` and `Received:` headers.
pub fn rfc5322_date(t: SystemTime) -> heapless::String<32> {
    let mut s = heapless::String::new();
    // Longest output is 31 bytes ("Wed, 30 Sep 9999 23:59:59 +2359").
    let _ = fmt::write(&mut s, format_args!("{}", DateTime::local(t).rfc5322()));
    s
}

/// `Display` of [`DateTime::rfc3164`].
#[derive(Clone, Copy, Debug)]
pub struct Rfc3164(DateTime);

impl fmt::Display for Rfc3164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        write!(
            f,
            "{} {:>2} {:02}:{:02}:{:02}",
            d.month_name(),
            d.day,
            d.hour,
            d.minute,
            d.second
        )
    }
}

/// `Display` of [`DateTime::rfc3339`].
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339(DateTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            d.year, d.month, d.day, d.hour, d.minute, d.second, d.micros
        )?;
        if d.offset_secs == 0 {
            return f.write_str("Z");
        }
        let sign = if d.offset_secs < 0 { '-' } else { '+' };
        let abs = d.offset_secs.unsigned_abs();
        write!(f, "{}{:02}:{:02}", sign, abs / 3600, abs / 60 % 60)
    }
}

/// `Display` of [`DateTime::rfc5322`].
#[derive(Clone, Copy, Debug)]
pub struct Rfc5322(DateTime);

impl fmt::Display for Rfc5322 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        let sign = if d.offset_secs < 0 { '-' } else { '+' };
        let abs = d.offset_secs.unsigned_abs();
        write!(
            f,
            "{}, {} {} {:04} {:02}:{:02}:{:02} {}{:02}{:02}",
            d.weekday_name(),
            d.day,
            d.month_name(),
            d.year,
            d.hour,
            d.minute,
            d.second,
            sign,
            abs / 3600,
            abs / 60 % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Ask GNU date(1) for the same instant: an independent implementation.
    fn gnu_date(secs: i64, tz: &str, fmt: &str) -> String {
        let mut cmd = Command::new("date");
        // An empty `tz` means "the process's own zone": inherit TZ or its absence.
        if !tz.is_empty() {
            cmd.env("TZ", tz);
        }
        let out = cmd
            .env("LC_ALL", "C")
            .arg("-d")
            .arg(format!("@{secs}"))
            .arg(format!("+{fmt}"))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    fn sample_instants() -> Vec<i64> {
        // Epoch, pre-epoch, leap days, century rules, and a spread driven by
        // a simple LCG so the set is wide without being hand-picked.
        let mut v = vec![
            0,
            -1,
            -86_400 * 365,
            951_782_400, // 2000-02-29
            4_107_542_399,
            1_795_460_569,
            253_402_300_799,
            -2_208_988_800, // 1900-01-01
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..24 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            v.push((x >> 30) as i64 % 8_000_000_000 - 2_000_000_000);
        }
        v
    }

    #[test]
    fn utc_forms_match_gnu_date() {
        for s in sample_instants() {
            let d = DateTime::from_unix(s, 0, 0);
            assert_eq!(
                d.rfc5322().to_string(),
                gnu_date(s, "UTC", "%a, %-d %b %Y %H:%M:%S %z"),
                "t={s}"
            );
            assert_eq!(
                d.rfc3164().to_string(),
                gnu_date(s, "UTC", "%b %e %H:%M:%S"),
                "t={s}"
            );
            assert_eq!(
                d.rfc3339().to_string(),
                gnu_date(s, "UTC", "%Y-%m-%dT%H:%M:%S.000000Z"),
                "t={s}"
            );
        }
    }

    #[test]
    fn fixed_offsets_match_gnu_date() {
        // Fixed-offset zones need no tz database; POSIX TZ signs are inverted.
        for (tz, off) in [("XST-05:30", 19_800), ("YST+09:45", -35_100)] {
            // Away from the year-9999 clamp, which date(1) does not have.
            for s in sample_instants()
                .into_iter()
                .filter(|s| *s > 0 && *s < MAX_UNIX - 86_400)
            {
                let d = DateTime::from_unix(s, 123_456, off);
                assert_eq!(
                    d.rfc5322().to_string(),
                    gnu_date(s, tz, "%a, %-d %b %Y %H:%M:%S %z")
                );
                assert_eq!(
                    d.rfc3339().to_string(),
                    gnu_date(s, tz, "%Y-%m-%dT%H:%M:%S.123456%:z")
                );
            }
        }
    }

    #[test]
    fn local_offset_agrees_with_date() {
        for s in [0, 1_795_460_569, 1_784_000_000] {
            let z = gnu_date(s, &std::env::var("TZ").unwrap_or_default(), "%z");
            let off = local_offset(s);
            let sign = if off < 0 { '-' } else { '+' };
            let a = off.unsigned_abs();
            assert_eq!(format!("{sign}{:02}{:02}", a / 3600, a / 60 % 60), z);
        }
    }

    #[test]
    fn clamps_keep_fixed_widths() {
        let hi = DateTime::from_unix(i64::MAX, 5_000_000, i32::MAX);
        assert_eq!(hi.year, 9999);
        assert_eq!(hi.micros, 999_999);
        assert_eq!(hi.offset_secs, MAX_OFFSET);
        assert_eq!(hi.rfc3339().to_string().len(), 32);
        let lo = DateTime::from_unix(i64::MIN, 0, i32::MIN);
        assert_eq!(lo.year, 0);
        assert_eq!(lo.rfc3339().to_string(), "0000-01-01T00:00:00.000000-23:59");
    }

    #[test]
    fn pre_epoch_subsecond_rounds_down() {
        let t = UNIX_EPOCH - std::time::Duration::from_micros(1_500_000);
        assert_eq!(unix_parts(t), (-2, 500_000));
        assert_eq!(
            DateTime::utc(t).rfc3339().to_string(),
            "1969-12-31T23:59:58.500000Z"
        );
    }

    #[test]
    fn rfc5322_date_is_now() {
        let now = SystemTime::now();
        let s = rfc5322_date(now);
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let tz = std::env::var("TZ").unwrap_or_default();
        assert_eq!(s.as_str(), gnu_date(secs, &tz, "%a, %-d %b %Y %H:%M:%S %z"));
    }
}
