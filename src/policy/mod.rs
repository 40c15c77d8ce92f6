//! Outbound policy: TLS security level per next hop, transport map and SMTP
//! AUTH credentials.
//!
//! Sans-I/O: tables are parsed from bytes the caller read (see
//! [`crate::config::table::read_source`]), loaded once into compact
//! immutable structures and looked up without allocation; nothing here
//! opens a file or a socket or reads a clock (`scripts/check-sans-io.sh`
//! checks it).
//!
//! The effective TLS policy of a next hop comes from, in this order: the
//! policy table entry, then DANE (at the `dane` and `dane-only` levels;
//! [`dane`] judges each MX host), then MTA-STS (not yet implemented), then
//! the default `smtp_tls_security_level`. [`decide`] makes the per-next-hop
//! part; the sans-I/O hop planner (`plan`, being written) will make the
//! per-host decisions that the delivery driver makes today.

#![forbid(unsafe_code)]

pub mod ciphers;
pub mod dane;
pub mod decide;
pub mod fingerprint;
pub mod level;
pub mod nexthop;
pub mod plan;
pub mod protocols;
pub mod sasl;
pub mod table;
pub mod transport;

pub use decide::{decide, decide_with, EffectivePolicy, PolicyDefaults, PolicyInputs};
pub use level::Level;
pub use nexthop::{NextHop, OwnedNextHop};
pub use table::{OwnedPolicyEntry, PolicyEntry, PolicyTable, StsDescriptor};
