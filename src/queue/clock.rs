//! Calendar time for `mailq` and message headers: local time through the C
//! library (it knows the zone rules), and UTC for deterministic tests.

/// A broken-down time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 2023.
    pub year: i32,
    /// Month 1-12.
    pub month: u32,
    /// Day of month 1-31.
    pub day: u32,
    /// Hour 0-23.
    pub hour: u32,
    /// Minute 0-59.
    pub min: u32,
    /// Second 0-60.
    pub sec: u32,
    /// Day of week, 0 = Sunday.
    pub wday: u32,
    /// Offset from UTC in seconds (east positive).
    pub offset: i32,
    /// Zone abbreviation (`UTC`, `CET`), at most 15 bytes.
    pub zone: heapless::String<16>,
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Civil {
    /// Three-letter weekday name.
    pub fn weekday_name(&self) -> &'static str {
        DAYS.get(self.wday as usize).copied().unwrap_or("???")
    }
    /// Three-letter month name.
    pub fn month_name(&self) -> &'static str {
        MONTHS
            .get(self.month.wrapping_sub(1) as usize)
            .copied()
            .unwrap_or("???")
    }
    /// `asctime` without the year: `Mon Nov 23 19:02:49` (day space-padded).
    pub fn mailq_format(&self) -> String {
        format!(
            "{} {} {:2} {:02}:{:02}:{:02}",
            self.weekday_name(),
            self.month_name(),
            self.day,
            self.hour,
            self.min,
            self.sec
        )
    }
    /// RFC 5322 date as Postfix writes it: `Thu,  3 Nov 2023 19:02:49 +0100 (CET)`.
    pub fn rfc5322(&self) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let off = self.offset.unsigned_abs() / 60;
        let mut s = format!(
            "{}, {:2} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
            self.weekday_name(),
            self.day,
            self.month_name(),
            self.year,
            self.hour,
            self.min,
            self.sec,
            sign,
            off / 60,
            off % 60
        );
        if !self.zone.is_empty() {
            s.push_str(&format!(" ({})", self.zone));
        }
        s
    }
}

/// UTC calendar time for `t` seconds since the epoch (the calendar
/// arithmetic is `syslog::time`'s).
pub fn utc(t: u64) -> Civil {
    let d = crate::syslog::time::DateTime::from_unix(i64::try_from(t).unwrap_or(i64::MAX), 0, 0);
    let mut zone = heapless::String::new();
    let _ = zone.push_str("UTC");
    Civil {
        year: i32::from(d.year),
        month: u32::from(d.month),
        day: u32::from(d.day),
        hour: u32::from(d.hour),
        min: u32::from(d.minute),
        sec: u32::from(d.second),
        wday: u32::from(d.weekday),
        offset: 0,
        zone,
    }
}

/// Local calendar time for `t` (the C library's `localtime_r`, honouring `TZ`).
pub fn local(t: u64) -> Civil {
    let tt = t as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed `tm` we own; all-zero is a valid `tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&tt, &mut tm) };
    if r.is_null() {
        return utc(t);
    }
    let mut zone = heapless::String::new();
    if !tm.tm_zone.is_null() {
        // SAFETY: tm_zone points at a NUL-terminated static string owned by libc.
        let z = unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) };
        for c in z.to_string_lossy().chars().take(15) {
            if zone.push(c).is_err() {
                break;
            }
        }
    }
    Civil {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        min: tm.tm_min as u32,
        sec: tm.tm_sec as u32,
        wday: tm.tm_wday as u32,
        offset: tm.tm_gmtoff as i32,
        zone,
    }
}

/// Seconds since the epoch now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        let c = utc(1_700_766_169); // 2023-11-23 19:02:49 UTC, a Thursday
        assert_eq!(c.mailq_format(), "Thu Nov 23 19:02:49");
        assert_eq!(c.rfc5322(), "Thu, 23 Nov 2023 19:02:49 +0000 (UTC)");
        assert_eq!(utc(0).rfc5322(), "Thu,  1 Jan 1970 00:00:00 +0000 (UTC)");
        assert_eq!(utc(951_782_400).mailq_format(), "Tue Feb 29 00:00:00");
    }
}
