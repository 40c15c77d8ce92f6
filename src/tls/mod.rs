//! TLS: rustls configurations, the fixed-buffer connection, per-level
//! certificate verifiers and the session summary for logs.

pub mod dane;
pub mod der;
