//! Effective TLS policy for a next hop: policy table, then MTA-STS, then
//! DANE, then the default level.

pub mod dane;
