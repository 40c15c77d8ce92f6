//! The spool on flash: one file per message, written once and published
//! atomically; per-recipient delivery state in a small append-only log;
//! group commit; the wake-up socket; and `mailq`.
//!
//! Layout under `queue_directory` (details and the crash-safety argument in
//! docs/spool.md):
//!
//! | path | holds |
//! | --- | --- |
//! | `incoming/` | files being written (`PID.SEQ.USEC`), never acknowledged |
//! | `active/ID`, `active/ID.state` | messages due now, and their state logs |
//! | `deferred/ID`, `deferred/ID.state` | messages waiting for a retry |
//! | `hold/` | held messages and unreadable files (never deleted) |
//! | `maildrop/` | files from users who cannot write the spool (mode 1733), for the pickup |
//! | `corrupt/` | maildrop files the pickup could not use (never deleted) |
//! | `public/qmgr` | the daemon's wake-up socket |
//! | `public/showq` | the daemon's queue listing for `mailq` by any user |
//!
//! [`envelope`] and [`state`] are sans-I/O parsers; [`Spool`] is the driver.

pub mod clock;
pub mod control;
pub mod envelope;
pub mod maildrop;
pub mod mailq;
pub mod pickup;
pub mod showq;
pub mod space;
pub mod spool;
pub mod state;
pub mod wake;

pub use envelope::{Envelope, EnvelopeError, Flags, Recipient};
pub use spool::{
    Corruption, HeldFile, Incoming, IoStats, MessageReader, NewMessage, QueueDir, QueueEntry,
    ScanReport, Spool, SpoolError,
};
pub use state::{Outcome, RcptState, Status};
