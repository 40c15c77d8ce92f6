//! Per-connection buffers, allocated once at start-up.
//!
//! Every session (inbound or outbound) needs one [`Slot`]. The pool holds
//! `max_connections` slots whose buffers are allocated in
//! [`BufferPool::new`]; [`BufferPool::acquire`] only moves the buffer handles out of a
//! free list and dropping the [`Slot`] moves it back, so the steady state
//! allocates nothing for buffers (a `SlotBuffers` is three pointers). When the pool is empty the driver refuses
//! the session (`421 4.3.2 Too many connections`) instead of growing.
//!
//! # Per-connection byte budget
//!
//! | buffer | bytes | why this size |
//! | --- | --- | --- |
//! | incoming TLS | [`INCOMING_TLS_LEN`] = 18,437 | the largest record rustls accepts (2^14 + 2048 + 5 header); rustls also joins fragmented handshake messages in place here, so a peer certificate chain may be up to about 18 KB |
//! | outgoing TLS | [`OUTGOING_TLS_LEN`] = 4,352 | records are capped with `max_fragment_size` = [`MAX_FRAGMENT_SIZE`] (4,096 incl. 5-byte header) plus at most 24 bytes of AEAD expansion |
//! | plaintext | [`PLAINTEXT_LEN`] = 16,384 | one decrypted record (2^14), so a record can always be taken out of rustls whole |
//!
//! Total: [`SLOT_BYTES`] = 39,173 bytes per connection, fixed.
//!
//! What rustls still heap-allocates per connection (not in this budget): its
//! handshake state, the transcript hash, key schedule, the peer's certificate
//! chain, and one `Vec` per decrypted application record (freed once copied
//! into the plaintext buffer). The `tls_alloc` integration test measures the
//! Rust-side heap with a counting allocator: a server handshake peaks at
//! about 5.7 KB (ECDSA P-256) to 7.3 KB (RSA 2048) above the slot, with
//! under 1 KB held afterwards. aws-lc's own C allocations (key shares, hash
//! and AEAD contexts) bypass that allocator and are not in these figures;
//! the ~50-70 KB quoted for rustls covers its buffered API, whose internal
//! buffers the unbuffered API replaces with this slot.
use std::cell::RefCell;
use std::rc::Rc;

/// Largest TLS record on the wire that rustls accepts: 2^14 plaintext +
/// 2048 bytes of expansion + 5-byte header (RFC 8446 §5.2 allows 2^14+256 for
/// TLS 1.3; TLS 1.2 allows 2^14+2048).
pub const INCOMING_TLS_LEN: usize = 16_384 + 2_048 + 5;

/// `max_fragment_size` given to rustls (it counts the 5-byte record header).
pub const MAX_FRAGMENT_SIZE: usize = 4_096;

/// Outgoing record buffer: one capped record plus AEAD expansion, with slack.
pub const OUTGOING_TLS_LEN: usize = MAX_FRAGMENT_SIZE + 256;

/// Plaintext buffer: one full decrypted record.
pub const PLAINTEXT_LEN: usize = 16_384;

/// Bytes of fixed buffers per connection slot.
pub const SLOT_BYTES: usize = INCOMING_TLS_LEN + OUTGOING_TLS_LEN + PLAINTEXT_LEN;

/// The buffers of one connection.
pub struct SlotBuffers {
    /// TLS records read from the socket, not yet processed by rustls.
    pub incoming: &'static mut [u8; INCOMING_TLS_LEN],
    /// TLS records encoded by rustls, not yet written to the socket.
    pub outgoing: &'static mut [u8; OUTGOING_TLS_LEN],
    /// Decrypted application data not yet handed to the reader.
    pub plaintext: &'static mut [u8; PLAINTEXT_LEN],
}

/// Cuts one slot's three buffers off the front of `rest`.
fn carve(rest: &'static mut [u8]) -> Option<(SlotBuffers, &'static mut [u8])> {
    if rest.len() < SLOT_BYTES {
        return None;
    }
    let (inc, rest) = rest.split_at_mut(INCOMING_TLS_LEN);
    let (out, rest) = rest.split_at_mut(OUTGOING_TLS_LEN);
    let (plain, rest) = rest.split_at_mut(PLAINTEXT_LEN);
    Some((
        SlotBuffers {
            incoming: inc.try_into().ok()?,
            outgoing: out.try_into().ok()?,
            plaintext: plain.try_into().ok()?,
        },
        rest,
    ))
}

struct PoolInner {
    free: RefCell<Vec<SlotBuffers>>,
    capacity: usize,
}

/// A fixed set of per-connection buffer slots (single-threaded, cheap to clone).
#[derive(Clone)]
pub struct BufferPool {
    inner: Rc<PoolInner>,
}

impl BufferPool {
    /// Reserves `max_connections` slots now (`max_connections * SLOT_BYTES`
    /// bytes) as one zeroed allocation. The allocator maps it from the
    /// kernel, so pages become resident only when a session first touches
    /// them: the ceiling is fixed at start, the RSS follows use. The
    /// allocation lives as long as the process (a daemon has one pool).
    pub fn new(max_connections: usize) -> Self {
        let mut free = Vec::with_capacity(max_connections);
        let arena: &'static mut [u8] =
            Box::leak(vec![0u8; max_connections * SLOT_BYTES].into_boxed_slice());
        let mut rest = arena;
        while let Some((slot, r)) = carve(rest) {
            free.push(slot);
            rest = r;
        }
        BufferPool {
            inner: Rc::new(PoolInner {
                free: RefCell::new(free),
                capacity: max_connections,
            }),
        }
    }

    /// Takes a free slot, or `None` when every slot is in use.
    pub fn acquire(&self) -> Option<Slot> {
        let bufs = self.inner.free.borrow_mut().pop()?;
        Some(Slot {
            bufs: Some(bufs),
            pool: Rc::clone(&self.inner),
        })
    }

    /// Number of slots the pool was created with.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Number of slots currently free.
    pub fn available(&self) -> usize {
        self.inner.free.borrow().len()
    }

    /// Bytes of buffers held by the pool (the figure the daemon logs at start).
    pub fn budget_bytes(&self) -> usize {
        self.inner.capacity * SLOT_BYTES
    }
}

/// One connection's buffers; returned to the pool on drop.
pub struct Slot {
    // Always `Some` until drop.
    bufs: Option<SlotBuffers>,
    pool: Rc<PoolInner>,
}

impl Slot {
    /// The buffers of this slot.
    pub fn buffers(&mut self) -> &mut SlotBuffers {
        match self.bufs.as_mut() {
            Some(b) => b,
            None => unreachable!("slot buffers are present until drop"),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(b) = self.bufs.take() {
            // Capacity was reserved for every slot: this push never reallocates.
            self.pool.free.borrow_mut().push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_constants() {
        assert_eq!(INCOMING_TLS_LEN, 18_437);
        assert_eq!(SLOT_BYTES, 39_173);
    }

    #[test]
    fn exhaustion_and_return() {
        let pool = BufferPool::new(2);
        assert_eq!(pool.budget_bytes(), 2 * SLOT_BYTES);
        let a = pool.acquire().unwrap();
        let mut b = pool.acquire().unwrap();
        assert!(pool.acquire().is_none());
        assert_eq!(pool.available(), 0);
        b.buffers().incoming[0] = 7;
        drop(a);
        assert_eq!(pool.available(), 1);
        let c = pool.acquire();
        assert!(c.is_some());
        assert!(pool.acquire().is_none());
        drop(b);
        drop(c);
        assert_eq!(pool.available(), 2);
        assert_eq!(pool.capacity(), 2);
    }
}
