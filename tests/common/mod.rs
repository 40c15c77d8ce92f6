//! Test bed for tern's integration tests: real peer programs (Postfix,
//! smtp-sink/smtp-source, swaks, posttls-finger, pflogsumm, socat, openssl)
//! started and stopped on loopback, each on ports of its own.
//!
//! Include it from an integration test with `mod common;`. Every instance
//! owns a temporary directory and its processes (in their own session and
//! process group); dropping it kills the group and removes the directory.
//! Set `TERN_TESTBED_KEEP=1` to keep the directories for a post-mortem.
//!
//! Helpers panic with a precise message (including the peer's log) instead
//! of returning errors: they are test fixtures, and a panic with context is
//! what a failing test should print. Every wait is bounded in time.
//!
//! The peer programs are installed by `scripts/install-test-deps.sh`.

// Each test file uses a different part of the bed.
#![allow(dead_code)]

pub mod certs;
pub mod dnssec;
pub mod ports;
pub mod postfix;
pub mod process;
pub mod sink;
pub mod source;
pub mod tempdir;
pub mod tools;
