//! Outbound delivery: the queue manager picks due messages, resolves next
//! hops, runs `smtp::client` sessions over `tls::Stream` and records each
//! recipient's outcome; bounces go back to the sender as DSNs.

pub mod bounce;
pub mod client;
pub mod concurrency;
pub mod context;
pub mod qmgr;
pub mod report;
pub mod results;
pub mod route;
pub mod schedule;
mod session;
pub mod socketmap;
pub mod tables;

pub use qmgr::QueueManager;
