//! Per-connection buffers, allocated once at start-up.
//!
//! Every session (inbound or outbound) needs one TLS [`Slot`]; an inbound
//! SMTP session also takes one set of [`CommandBuffers`] (command line and
//! DATA decode buffer). The pool holds `max_connections` of each, carved
//! out of one allocation made in [`BufferPool::new`]; [`BufferPool::acquire`]
//! and [`BufferPool::acquire_inbound`] only move buffer handles out of free
//! lists and dropping them moves them back, so the steady state allocates
//! nothing for buffers (a `SlotBuffers` is three pointers, a
//! `CommandBuffers` two). When no TLS slot is free the driver refuses the
//! session (`421 4.3.2 Too many connections`) instead of growing.
//!
//! # Per-connection byte budget
//!
//! | buffer | bytes | why this size |
//! | --- | --- | --- |
//! | incoming TLS | [`INCOMING_TLS_LEN`] = 18,437 | the largest record rustls accepts (2^14 + 2048 + 5 header); rustls also joins fragmented handshake messages in place here, so a peer certificate chain may be up to about 18 KB |
//! | outgoing TLS | [`OUTGOING_TLS_LEN`] = 4,352 | records are capped with `max_fragment_size` = [`MAX_FRAGMENT_SIZE`] (4,096 incl. 5-byte header) plus at most 24 bytes of AEAD expansion |
//! | plaintext | [`PLAINTEXT_LEN`] = 16,384 | one decrypted record (2^14), so a record can always be taken out of rustls whole |
//! | command line | [`LINE_LEN`] = 4,096 | one SMTP command line plus CRLF (`line_length_limit` is capped to fit); the DATA bytes are read through it too |
//! | DATA decode | [`DATA_LEN`] = 1,024 | dot-unstuffed body bytes on their way to the spool writer (which has its own buffer); the decoder loops |
//!
//! TLS slot: [`SLOT_BYTES`] = 39,173 bytes; command buffers:
//! [`COMMAND_BYTES`] = 5,120 bytes; together [`CONNECTION_BYTES`] = 44,293
//! bytes per connection, fixed. [`BufferPool::per_connection_bytes`] is the
//! figure the daemon logs.
//!
//! # Why two free lists, not one bigger slot
//!
//! An outbound (delivery) session reads replies into a buffer of its own
//! and never uses the command buffers, so it takes only a TLS slot: the
//! command buffers stay in their free list, untouched. There are still
//! `max_connections` of them, because inbound sessions may fill every slot
//! (only outbound sessions are capped, at half). Their pages become
//! resident only when an inbound session first uses them; a box that mostly
//! delivers never touches most of them.
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

/// Bytes of the TLS buffers of one connection slot.
pub const SLOT_BYTES: usize = INCOMING_TLS_LEN + OUTGOING_TLS_LEN + PLAINTEXT_LEN;

/// Command line buffer of an inbound session: one line plus its CRLF
/// (`line_length_limit` may not exceed `LINE_LEN - 2`).
pub const LINE_LEN: usize = 4096;

/// DATA decode buffer of an inbound session: dot-unstuffed body bytes
/// between the line buffer and the spool writer.
pub const DATA_LEN: usize = 1024;

/// Bytes of the command buffers of one inbound session.
pub const COMMAND_BYTES: usize = LINE_LEN + DATA_LEN;

/// Bytes reserved per connection: one TLS slot and one set of command buffers.
pub const CONNECTION_BYTES: usize = SLOT_BYTES + COMMAND_BYTES;

/// The buffers of one connection.
pub struct SlotBuffers {
    /// TLS records read from the socket, not yet processed by rustls.
    pub incoming: &'static mut [u8; INCOMING_TLS_LEN],
    /// TLS records encoded by rustls, not yet written to the socket.
    pub outgoing: &'static mut [u8; OUTGOING_TLS_LEN],
    /// Decrypted application data not yet handed to the reader.
    pub plaintext: &'static mut [u8; PLAINTEXT_LEN],
}

/// The command buffers of one inbound SMTP session.
pub struct CommandBuffers {
    /// Command lines (and DATA bytes) read from the stream, not yet parsed.
    pub line: &'static mut [u8; LINE_LEN],
    /// DATA bytes decoded (dot-unstuffed) on their way to the spool.
    pub data: &'static mut [u8; DATA_LEN],
}

/// Cuts one set of command buffers off the front of `rest`.
fn carve_command(rest: &'static mut [u8]) -> Option<(CommandBuffers, &'static mut [u8])> {
    if rest.len() < COMMAND_BYTES {
        return None;
    }
    let (line, rest) = rest.split_at_mut(LINE_LEN);
    let (data, rest) = rest.split_at_mut(DATA_LEN);
    Some((
        CommandBuffers {
            line: line.try_into().ok()?,
            data: data.try_into().ok()?,
        },
        rest,
    ))
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
    free_command: RefCell<Vec<CommandBuffers>>,
    capacity: usize,
}

/// A fixed set of per-connection buffer slots (single-threaded, cheap to clone).
#[derive(Clone)]
pub struct BufferPool {
    inner: Rc<PoolInner>,
}

impl BufferPool {
    /// Reserves `max_connections` TLS slots and as many sets of command
    /// buffers now (`max_connections * CONNECTION_BYTES` bytes) as one
    /// zeroed allocation: the TLS slots first, the command buffers after
    /// them. The allocator maps it from the kernel, so pages become
    /// resident only when a session first touches them: the ceiling is
    /// fixed at start, the RSS follows use. The allocation lives as long as
    /// the process (a daemon has one pool).
    pub fn new(max_connections: usize) -> Self {
        let mut free = Vec::with_capacity(max_connections);
        let mut free_command = Vec::with_capacity(max_connections);
        let arena: &'static mut [u8] =
            Box::leak(vec![0u8; max_connections * CONNECTION_BYTES].into_boxed_slice());
        let (tls, command) = arena.split_at_mut(max_connections * SLOT_BYTES);
        let mut rest = tls;
        while let Some((slot, r)) = carve(rest) {
            free.push(slot);
            rest = r;
        }
        let mut rest = command;
        while let Some((bufs, r)) = carve_command(rest) {
            free_command.push(bufs);
            rest = r;
        }
        BufferPool {
            inner: Rc::new(PoolInner {
                free: RefCell::new(free),
                free_command: RefCell::new(free_command),
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

    /// Takes a TLS slot and a set of command buffers for an inbound SMTP
    /// session, or `None` when every TLS slot is in use. Each inbound
    /// session holds one TLS slot and there are as many command buffer sets
    /// as slots, so a free slot always finds free command buffers; should
    /// that ever fail, the slot goes back and the session is refused.
    pub fn acquire_inbound(&self) -> Option<InboundSlot> {
        let tls = self.acquire()?;
        let bufs = self.inner.free_command.borrow_mut().pop()?;
        Some(InboundSlot {
            tls,
            command: CommandSlot {
                bufs: Some(bufs),
                pool: Rc::clone(&self.inner),
            },
        })
    }

    /// Number of slots the pool was created with.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Number of TLS slots currently free.
    pub fn available(&self) -> usize {
        self.inner.free.borrow().len()
    }

    /// Number of command buffer sets currently free.
    #[cfg(test)]
    fn available_command(&self) -> usize {
        self.inner.free_command.borrow().len()
    }

    /// Bytes reserved per connection: a TLS slot plus a set of command
    /// buffers ([`CONNECTION_BYTES`]; the figure the daemon logs at start).
    pub fn per_connection_bytes(&self) -> usize {
        CONNECTION_BYTES
    }

    /// Bytes of buffers held by the pool (the ceiling the daemon logs at start).
    pub fn budget_bytes(&self) -> usize {
        self.inner.capacity * CONNECTION_BYTES
    }
}

/// What an inbound session holds: its TLS slot and its command buffers,
/// each returned to the pool when dropped.
pub struct InboundSlot {
    /// The TLS record buffers (given to the `tls::Stream`).
    pub tls: Slot,
    /// The command line and DATA decode buffers.
    pub command: CommandSlot,
}

/// One inbound session's command buffers; returned to the pool on drop.
pub struct CommandSlot {
    // Always `Some` until drop.
    bufs: Option<CommandBuffers>,
    pool: Rc<PoolInner>,
}

impl CommandSlot {
    /// The buffers of this set.
    pub fn buffers(&mut self) -> &mut CommandBuffers {
        match self.bufs.as_mut() {
            Some(b) => b,
            None => unreachable!("command buffers are present until drop"),
        }
    }
}

impl Drop for CommandSlot {
    fn drop(&mut self) {
        if let Some(b) = self.bufs.take() {
            // The line buffer may hold the last client's AUTH exchange; the
            // next session must not inherit it, even unread. 5 KB of
            // memset per session, on pages the session already touched.
            b.line.fill(0);
            b.data.fill(0);
            // Capacity was reserved for every set: this push never reallocates.
            self.pool.free_command.borrow_mut().push(b);
        }
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
        assert_eq!(COMMAND_BYTES, 5_120);
        assert_eq!(CONNECTION_BYTES, 44_293);
    }

    #[test]
    fn inbound_takes_both_parts_outbound_only_tls() {
        let pool = BufferPool::new(3);
        assert_eq!(pool.budget_bytes(), 3 * (SLOT_BYTES + COMMAND_BYTES));
        assert_eq!(pool.per_connection_bytes(), SLOT_BYTES + COMMAND_BYTES);
        let out = pool.acquire().unwrap();
        assert_eq!((pool.available(), pool.available_command()), (2, 3));
        let mut a = pool.acquire_inbound().unwrap();
        let b = pool.acquire_inbound().unwrap();
        assert_eq!((pool.available(), pool.available_command()), (0, 1));
        // No TLS slot left: refused, and the spare command set stays free.
        assert!(pool.acquire_inbound().is_none());
        assert!(pool.acquire().is_none());
        assert_eq!(pool.available_command(), 1);
        a.command.buffers().line[0] = b'A';
        a.command.buffers().data[DATA_LEN - 1] = b'Z';
        drop(a);
        assert_eq!((pool.available(), pool.available_command()), (1, 2));
        drop(out);
        drop(b);
        assert_eq!((pool.available(), pool.available_command()), (3, 3));
        // Every set comes back zeroed, so a later session cannot see the
        // bytes of an earlier one.
        let mut held = Vec::new();
        while let Some(mut s) = pool.acquire_inbound() {
            let c = s.command.buffers();
            assert!(c.line.iter().all(|&x| x == 0));
            assert!(c.data.iter().all(|&x| x == 0));
            held.push(s);
        }
        assert_eq!(held.len(), 3);
    }

    #[test]
    fn buffers_do_not_overlap() {
        // Each buffer is a distinct region of the arena: writing a marker
        // through one is never seen through another.
        let pool = BufferPool::new(2);
        let mut s = Vec::new();
        while let Some(x) = pool.acquire_inbound() {
            s.push(x);
        }
        for (i, x) in s.iter_mut().enumerate() {
            let m = i as u8 + 1;
            let t = x.tls.buffers();
            t.incoming.fill(m);
            t.outgoing.fill(m + 10);
            t.plaintext.fill(m + 20);
            let c = x.command.buffers();
            c.line.fill(m + 30);
            c.data.fill(m + 40);
        }
        for (i, x) in s.iter_mut().enumerate() {
            let m = i as u8 + 1;
            let t = x.tls.buffers();
            assert!(t.incoming.iter().all(|&b| b == m));
            assert!(t.outgoing.iter().all(|&b| b == m + 10));
            assert!(t.plaintext.iter().all(|&b| b == m + 20));
            let c = x.command.buffers();
            assert!(c.line.iter().all(|&b| b == m + 30));
            assert!(c.data.iter().all(|&b| b == m + 40));
        }
    }

    #[test]
    fn exhaustion_and_return() {
        let pool = BufferPool::new(2);
        assert_eq!(pool.budget_bytes(), 2 * CONNECTION_BYTES);
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
