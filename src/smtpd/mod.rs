//! SMTP listener driver: accepts connections, enforces limits, runs
//! `smtp::server` sessions over `tls::Stream`, and feeds the spool.

pub mod listen;
pub mod passwd;
