//! Sans-I/O SMTP: command and reply parsing, line splitting, the DATA
//! decoder, the server session state machine and the Received header.
//!
//! Nothing here touches a socket, a clock or a file: the cores take bytes
//! and events and return replies and actions, so they are deterministic,
//! testable byte by byte and fuzzable. The `smtpd` and `delivery` drivers
//! own the I/O. `scripts/check-sans-io.sh` checks it.
//!
//! * [`line`]: lines from a caller-owned buffer, bare-LF policy, limits.
//! * [`command`]: one command line to a [`command::Command`].
//! * [`reply`]: building replies; parsing a server's replies.
//! * [`data`]: the DATA decoder (end only on `CRLF.CRLF`).
//! * [`server`]: the server session.
//! * [`received`]: the `Received:` header.
//! * [`client`]: the client session for outbound delivery.
//! * [`dotstuff`]: the outbound body encoder (dot-stuffing, CRLF only).

#![forbid(unsafe_code)]

pub mod client;
pub mod command;
pub mod data;
pub mod dotstuff;
pub mod line;
pub mod received;
pub mod reply;
pub mod server;
