//! TLSRPT (RFC 8460): the reporting policy record of a recipient domain,
//! and — built on the TLS attempts the queue manager hands to its
//! [`crate::delivery::report::TlsReportSink`] — Postfix 3.10's log lines,
//! the datagrams of sys4's report generator, daily counters and reports.
//!
//! The in-process reports: [`counters`] count the day's attempts (bounded,
//! checkpointed to flash), [`report`] writes a domain's JSON, [`gzip`]
//! compresses it, [`mail`] wraps it in the §5.3 message and [`dkim`] signs
//! that; [`daemon`] is the driver (clock, files, queue, HTTPS).

#![forbid(unsafe_code)]

pub mod counters;
pub mod daemon;
pub mod dkim;
pub mod event;
pub mod gzip;
pub mod mail;
pub mod record;
pub mod report;
pub mod sink;

pub use record::{discover, RecordError, TlsRptRecord};
pub use sink::TlsRptSink;
