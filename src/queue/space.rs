//! `queue_minfree`: is there room on the spool's file system for mail?
//!
//! The rule is Postfix's (smtpd at `MAIL FROM`): refuse while the free
//! space is below `queue_minfree` plus the declared message size, or below
//! 1.5 times the largest message that may arrive (`message_size_limit`, or
//! the `SIZE=` the client declared). The decision is [`check`], a pure
//! function of the numbers; [`free_bytes`] asks the kernel (`statvfs`).

use std::io;
use std::path::Path;

/// Why there is not enough room, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// Bytes free for unprivileged users on the spool's file system.
    pub free: u64,
    /// Bytes that must be free to take the message.
    pub needed: u64,
}

/// Postfix's `smtpd_space_multf`: free space must be this many times the
/// largest message that may arrive.
pub const SPACE_MULTIPLIER: &str = "1.5";

impl std::fmt::Display for Shortfall {
    /// Postfix's smtpd warning, word for word (`smtpd_check_queue()`:
    /// `"not enough free space in mail queue: %lu bytes < %g*message size
    /// limit"`), so log watchers written for Postfix match it. Like
    /// Postfix, it names the 1.5 x rule even when `queue_minfree` is the
    /// rule that failed; [`Shortfall::needed`] has the real figure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not enough free space in mail queue: {} bytes < {SPACE_MULTIPLIER}*message size limit",
            self.free
        )
    }
}

impl Shortfall {
    /// The text for `tern sendmail` and the pickup, which (unlike smtpd)
    /// check `queue_minfree` alone: Postfix's first words, then the rule
    /// that really failed.
    pub fn minfree_text(&self) -> String {
        format!(
            "not enough free space in mail queue: {} bytes < queue_minfree {} bytes",
            self.free, self.needed
        )
    }
}

/// The start-up warning when the spool's file system already fails the
/// rule for a message of unknown size: then every `MAIL FROM` gets a 452,
/// which otherwise shows only as mail that never arrives. `None` when
/// there is room. Pure, so the wording is tested; the caller measures.
pub fn startup_warning(
    dir: &Path,
    free: u64,
    queue_minfree: u64,
    message_size_limit: u64,
) -> Option<String> {
    let short = check(free, queue_minfree, message_size_limit, 0).err()?;
    Some(format!(
        "warning: queue_directory {}: only {} bytes free, below the {} bytes needed \
         (the larger of queue_minfree = {} and {SPACE_MULTIPLIER} x message_size_limit = {}): \
         every message will be refused with 452 4.3.1 Insufficient system storage \
         until space is freed or these limits are lowered",
        dir.display(),
        short.free,
        short.needed,
        queue_minfree,
        message_size_limit
    ))
}

/// The bytes that must be free to take a message: `queue_minfree` plus its
/// declared `size`, and at least 1.5 times the largest message that may
/// come (`message_size_limit`, 0 = no limit, or `size` if larger).
pub fn needed(queue_minfree: u64, message_size_limit: u64, size: u64) -> u64 {
    let largest = message_size_limit.max(size);
    queue_minfree
        .saturating_add(size)
        .max(largest.saturating_add(largest / 2))
}

/// Decides whether a message of `size` bytes (0 if unknown) may be taken
/// with `free` bytes free.
pub fn check(
    free: u64,
    queue_minfree: u64,
    message_size_limit: u64,
    size: u64,
) -> Result<(), Shortfall> {
    let needed = needed(queue_minfree, message_size_limit, size);
    if free < needed {
        Err(Shortfall { free, needed })
    } else {
        Ok(())
    }
}

/// Bytes free for unprivileged users on the file system holding `dir`
/// (`statvfs`: `f_bavail * f_frsize`).
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: all-zero is a valid statvfs; statvfs fills it or fails.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a NUL-terminated path, st a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // the field widths differ per target
    let (avail, frsize) = (u64::from(st.f_bavail), u64::from(st.f_frsize));
    Ok(avail.saturating_mul(frsize))
}

/// Checks the spool at `dir`: `Ok` when there is room, or when the limits
/// make the answer irrelevant (`queue_minfree = 0` and no size). A spool
/// not created yet is measured at its nearest existing parent (the file
/// system it will be created on). A failing `statvfs` otherwise is an
/// error the caller reports.
pub fn check_dir(
    dir: &Path,
    queue_minfree: u64,
    message_size_limit: u64,
    size: u64,
) -> Result<Result<(), Shortfall>, io::Error> {
    if needed(queue_minfree, message_size_limit, size) == 0 {
        return Ok(Ok(()));
    }
    let mut at = dir;
    let free = loop {
        match free_bytes(at) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p,
                _ => return Err(e),
            },
            r => break r?,
        }
    };
    Ok(check(free, queue_minfree, message_size_limit, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_rule() {
        // Nothing configured, nothing declared: always room.
        assert_eq!(check(0, 0, 0, 0), Ok(()));
        // queue_minfree alone.
        assert_eq!(
            check(999, 1000, 0, 0),
            Err(Shortfall {
                free: 999,
                needed: 1000
            })
        );
        assert_eq!(check(1000, 1000, 0, 0), Ok(()));
        // 1.5 x message_size_limit, even with queue_minfree = 0 (Postfix's
        // default behaviour).
        assert_eq!(
            check(14_999, 0, 10_000, 0),
            Err(Shortfall {
                free: 14_999,
                needed: 15_000
            })
        );
        assert_eq!(check(15_000, 0, 10_000, 0), Ok(()));
        // A higher queue_minfree wins over 1.5 x the limit.
        assert_eq!(needed(20_480_000, 10_240_000, 0), 20_480_000);
        // The declared SIZE comes on top of queue_minfree.
        assert_eq!(needed(20_480_000, 10_240_000, 1_000), 20_481_000);
        // Without a limit, 1.5 x the declared size.
        assert_eq!(needed(0, 0, 1_000), 1_500);
        // No overflow with absurd values.
        assert_eq!(needed(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn board_profiles_are_consistent() {
        // boards/openwrt-armv7.conf: 4 MiB messages, 6 MiB queue_minfree.
        assert_eq!(needed(6_291_456, 4_194_304, 0), 6_291_456);
    }

    #[test]
    fn statvfs_of_a_real_directory() {
        let dir = std::env::temp_dir();
        let free = free_bytes(&dir).unwrap();
        assert!(free > 0, "{free}");
        assert_eq!(check_dir(&dir, 0, 0, 0).unwrap(), Ok(()));
        let low = check_dir(&dir, u64::MAX, 0, 0).unwrap().unwrap_err();
        assert_eq!(low.needed, u64::MAX);
        assert_eq!(
            low.to_string(),
            format!(
                "not enough free space in mail queue: {} bytes < 1.5*message size limit",
                low.free
            )
        );
        let missing = Path::new("/nonexistent/tern-test");
        let e = free_bytes(missing).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // A spool not created yet: measured on the file system above it.
        assert!(check_dir(missing, u64::MAX, 0, 0).unwrap().is_err());
        assert_eq!(check_dir(missing, 1, 0, 0).unwrap(), Ok(()));
    }

    #[test]
    fn log_texts() {
        let short = check(4_000_000, 0, 4_194_304, 0).unwrap_err();
        // Postfix's exact smtpd wording.
        assert_eq!(
            short.to_string(),
            "not enough free space in mail queue: 4000000 bytes < 1.5*message size limit"
        );
        assert_eq!(
            check(999, 1000, 0, 0).unwrap_err().minfree_text(),
            "not enough free space in mail queue: 999 bytes < queue_minfree 1000 bytes"
        );
    }

    #[test]
    fn startup_warning_names_the_rule_and_the_452() {
        let dir = Path::new("/overlay/spool/tern");
        // The armv7 profile: 4 MiB messages need 6 MiB free.
        assert_eq!(
            startup_warning(dir, 5_000_000, 0, 4_194_304).as_deref(),
            Some(
                "warning: queue_directory /overlay/spool/tern: only 5000000 bytes free, \
                 below the 6291456 bytes needed (the larger of queue_minfree = 0 and \
                 1.5 x message_size_limit = 4194304): every message will be refused \
                 with 452 4.3.1 Insufficient system storage until space is freed or \
                 these limits are lowered"
            )
        );
        assert_eq!(startup_warning(dir, 6_291_456, 0, 4_194_304), None);
        assert!(startup_warning(dir, 10, 11, 0).is_some());
        assert_eq!(startup_warning(dir, 0, 0, 0), None);
    }
}
