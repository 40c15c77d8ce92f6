//! tern — a small mail transfer agent for home routers and NAS boxes.
//!
//! One process, one thread (`smol::LocalExecutor`), fixed-size buffers on
//! the hot path, and an outbound TLS policy engine with Postfix's security
//! levels. Protocol cores (`smtp`, `policy`, parsers, TLS verifiers) are
//! sans-I/O: they take bytes and return results; the drivers (`smtpd`,
//! `delivery`) own sockets, timers and files. See `docs/` and DESIGN.md.
#![warn(missing_docs)]

pub mod args;
pub mod base64;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod crc32;
pub mod daemon;
pub mod delivery;
pub mod dns;
pub mod local;
pub mod man;
pub mod memtrim;
pub mod mtasts;
pub mod pidfile;
pub mod policy;
pub mod probe;
pub mod queue;
pub mod sendmail;
pub mod services;
pub mod smtp;
pub mod smtpd;
pub mod status;
pub mod svc;
pub mod syslog;
pub mod tls;
pub mod tlsrpt;
