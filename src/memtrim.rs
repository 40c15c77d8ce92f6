//! Idle memory: once start-up is over, the daemon's read-only code and
//! constants that only start-up touched (configuration parsing, key and
//! certificate loading, the parameter table) leave its resident set.
//!
//! Start-up runs code the idle daemon never runs again, and every page it
//! touched stays mapped (with the kernel's fault-around, 64 KiB at a
//! time): about 2.4 MiB of the static build's 3 MiB idle RSS. Those pages
//! are clean copies of the executable file, so `madvise(MADV_DONTNEED)`
//! only unmaps them; what the daemon runs next faults back in from the
//! page cache (a minor fault, no I/O while the file is cached). Only
//! mappings of the executable that are not writable and hold no
//! anonymous (copied-on-write) page are touched: relocated RELRO data is
//! anonymous and must keep its contents.

/// One mapping of `/proc/self/smaps` that may be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Start address.
    pub start: usize,
    /// End address (exclusive).
    pub end: usize,
}

/// The mappings of `exe` in an smaps text that are safe to release: not
/// writable, private, and with `Anonymous: 0 kB`. Sans-I/O; lines it does
/// not understand are skipped, and a mapping whose `Anonymous` field is
/// missing is never released.
pub fn releasable(smaps: &str, exe: &str) -> heapless::Vec<Range, 16> {
    let mut out = heapless::Vec::new();
    let mut current: Option<Range> = None;
    for line in smaps.lines() {
        if let Some(r) = mapping_header(line) {
            current = match r {
                Some((range, perms, path)) if path == exe && !perms.contains('w') => Some(range),
                _ => None,
            };
            continue;
        }
        if let (Some(r), Some(v)) = (current, line.strip_prefix("Anonymous:")) {
            if v.trim() == "0 kB" {
                // More than 16 read-only mappings of one executable do
                // not occur; the rest would simply stay resident.
                let _ = out.push(r);
            }
            current = None;
        }
    }
    out
}

/// `start-end perms offset dev inode path` → `Some(Some(..))`; another
/// smaps line → `None`; a header that does not parse → `Some(None)`.
#[allow(clippy::type_complexity)]
fn mapping_header(line: &str) -> Option<Option<(Range, &str, &str)>> {
    let mut f = line.split_whitespace();
    let range = f.next()?;
    let (a, b) = range.split_once('-')?;
    if a.is_empty() || !a.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut parse = || {
        let start = usize::from_str_radix(a, 16).ok()?;
        let end = usize::from_str_radix(b, 16).ok()?;
        let perms = f.next()?;
        let path = f.nth(3).unwrap_or("");
        (start < end).then_some((Range { start, end }, perms, path))
    };
    Some(parse())
}

/// Releases the start-up-only pages of the running executable (see the
/// module doc); returns the bytes of the mappings released. Errors are
/// ignored: this is an optimisation, never needed for correctness.
pub fn release_startup_pages() -> usize {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return 0;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let exe = exe.to_string_lossy();
    let mut released = 0;
    for r in releasable(&smaps, &exe) {
        // SAFETY: the range is a whole mapping of our own executable that
        // is read-only and has no anonymous page: MADV_DONTNEED drops
        // only clean file pages, which read back identical on next access.
        let rc = unsafe {
            libc::madvise(
                r.start as *mut libc::c_void,
                r.end - r.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            released += r.end - r.start;
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:01 123 /usr/sbin/tern
Size:               1024 kB
Rss:                 300 kB
Anonymous:             0 kB
55d0a0100000-55d0a0300000 r-xp 00100000 fd:01 123 /usr/sbin/tern
Size:               2048 kB
Anonymous:             0 kB
55d0a0300000-55d0a0310000 r--p 00300000 fd:01 123 /usr/sbin/tern
Size:                 64 kB
Anonymous:            64 kB
55d0a0310000-55d0a0320000 rw-p 00310000 fd:01 123 /usr/sbin/tern
Anonymous:             8 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 999 /usr/lib/libc.so
Anonymous:             0 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
Anonymous:           132 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_the_executable() {
        let r = releasable(SMAPS, "/usr/sbin/tern");
        assert_eq!(
            r.as_slice(),
            &[
                Range {
                    start: 0x55d0a0000000,
                    end: 0x55d0a0100000
                },
                Range {
                    start: 0x55d0a0100000,
                    end: 0x55d0a0300000
                }
            ]
        );
    }

    #[test]
    fn garbage_and_missing_fields_release_nothing() {
        assert!(releasable("", "/x").is_empty());
        assert!(releasable("zz-yy r-xp 0 0 0 /x\nAnonymous: 0 kB\n", "/x").is_empty());
        assert!(releasable("2000-1000 r-xp 0 0 0 /x\nAnonymous: 0 kB\n", "/x").is_empty());
        // No Anonymous line before the next header: not released.
        let s = "1000-2000 r-xp 0 0 0 /x\nSize: 4 kB\n3000-4000 rw-p 0 0 0 /y\nAnonymous: 0 kB\n";
        assert!(releasable(s, "/x").is_empty());
        assert!(releasable("1000-2000 r-xp 0 0 0 /x\nAnonymous: 4 kB\n", "/x").is_empty());
    }
}
