//! The counting global allocator of the allocation tests (`spool_alloc`,
//! `tls_alloc`, `policy_alloc`). Counted per thread: the test harness and
//! async-io's helper thread allocate on their own threads. Each test crate
//! installs it with `#[global_allocator] static A: Counting = Counting;`.

// Each test crate uses only part of it.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts this thread's heap bytes (held and peak) and allocations.
/// `realloc` is the trait's default (alloc, copy, dealloc), so it counts
/// as one allocation and its bytes move correctly.
pub struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let _ = COUNT.try_with(|n| n.set(n.get() + 1));
            let _ = HELD.try_with(|c| {
                c.set(c.get() + l.size() as isize);
                let _ = PEAK.try_with(|pk| pk.set(pk.get().max(c.get())));
            });
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = HELD.try_with(|c| c.set(c.get() - l.size() as isize));
        System.dealloc(p, l)
    }
}

/// A starting point on this thread: the peak is reset to what is held now.
pub struct Mark {
    base: isize,
    count: u64,
}

/// Starts measuring on this thread.
pub fn mark() -> Mark {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    Mark {
        base,
        count: COUNT.with(Cell::get),
    }
}

impl Mark {
    /// Peak heap bytes above the mark.
    pub fn peak(&self) -> isize {
        PEAK.with(Cell::get) - self.base
    }
    /// Heap bytes held now above the mark.
    pub fn held(&self) -> isize {
        HELD.with(Cell::get) - self.base
    }
    /// Allocations (reallocations included) since the mark.
    pub fn allocations(&self) -> u64 {
        COUNT.with(Cell::get) - self.count
    }
}
