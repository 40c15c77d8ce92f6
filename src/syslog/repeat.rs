//! Warnings about the configuration are logged once: when the daemon
//! starts, or when a reload brings them in. A reload that loads the same
//! settings again says nothing more, so a `tern reload` from a cron job or
//! a log-rotation script does not bury the log in the same warnings.
//!
//! The daemon opens a window around each (re)load ([`begin`], [`end`]);
//! inside it every warning is remembered by a hash of its program and
//! text, and on a reload one that the previous load also logged is
//! dropped. Outside the windows nothing is filtered.

use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Most warnings remembered per load (a hash each).
const MAX: usize = 256;

struct Repeat {
    /// Inside a window: `Some(reload)`.
    window: Option<bool>,
    /// What the previous load logged.
    seen: Vec<u64>,
    /// What this load logged (or would have).
    next: Vec<u64>,
}

static STATE: Mutex<Repeat> = Mutex::new(Repeat {
    window: None,
    seen: Vec::new(),
    next: Vec::new(),
});

/// Opens a window: at start-up (`reload` false) or for a reload.
pub fn begin(reload: bool) {
    if let Ok(mut s) = STATE.lock() {
        s.window = Some(reload);
        s.next.clear();
    }
}

/// Closes the window: its warnings are what the next reload compares with.
pub fn end() {
    if let Ok(mut s) = STATE.lock() {
        if s.window.take().is_some() {
            s.seen = std::mem::take(&mut s.next);
        }
    }
}

/// Should this warning be dropped as a repeat?
pub(super) fn is_repeat(program: &str, text: &dyn std::fmt::Display) -> bool {
    let Ok(mut s) = STATE.lock() else {
        return false;
    };
    let Some(reload) = s.window else {
        return false;
    };
    let mut h = std::hash::DefaultHasher::new();
    program.hash(&mut h);
    text.to_string().hash(&mut h);
    let h = h.finish();
    if s.next.len() < MAX && !s.next.contains(&h) {
        s.next.push(h);
    }
    reload && s.seen.contains(&h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_drops_only_repeats() {
        begin(false);
        assert!(!is_repeat("master", &"warning: a"));
        end();
        begin(true);
        assert!(is_repeat("master", &"warning: a"));
        assert!(!is_repeat("master", &"warning: b"));
        end();
        // Outside a window nothing is filtered.
        assert!(!is_repeat("master", &"warning: a"));
        // A warning the last load did not have is logged when it comes back.
        begin(true);
        assert!(!is_repeat("master", &"warning: c"));
        end();
        begin(true);
        assert!(!is_repeat("master", &"warning: a"));
        end();
    }
}
