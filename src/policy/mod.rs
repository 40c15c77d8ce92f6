//! Outbound policy: TLS security level per next hop, transport map and SMTP
//! AUTH credentials.
//!
//! Sans-I/O: tables are parsed from bytes the caller read (see
//! [`crate::config::table::read_source`]), loaded once into compact
//! immutable structures and looked up without allocation. The effective
//! TLS policy is decided in [`decide`]: policy table, then (later) MTA-STS
//! and DANE ([`dane`] decides per MX host), then the default
//! `smtp_tls_security_level`.

pub mod ciphers;
pub mod dane;
pub mod decide;
pub mod fingerprint;
pub mod level;
pub mod nexthop;
pub mod protocols;
pub mod sasl;
pub mod table;
pub mod transport;

pub use decide::{decide, EffectivePolicy, PolicyDefaults, PolicyInputs};
pub use level::Level;
pub use nexthop::{NextHop, OwnedNextHop};
pub use table::{PolicyEntry, PolicyTable};
