//! MTA-STS (RFC 8461): discovery records, policies and MX matching
//! (sans-I/O), and — built on them — the policy fetch over HTTPS and the
//! per-domain cache in memory and on flash.

#![forbid(unsafe_code)]

pub mod policy;
pub mod record;

pub use policy::{Mode, Policy, PolicyError};
pub use record::{discover, Discovery, PolicyId, RecordError};
