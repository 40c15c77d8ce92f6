//! TLSRPT (RFC 8460): the reporting policy record of a recipient domain,
//! and — built on the TLS attempts the queue manager hands to its
//! [`crate::delivery::report::TlsReportSink`] — Postfix 3.10's log lines,
//! the datagrams of sys4's report generator, daily counters and reports.

#![forbid(unsafe_code)]

pub mod event;
pub mod record;
pub mod sink;

pub use record::{discover, RecordError, TlsRptRecord};
pub use sink::TlsRptSink;
