//! Cleanup, as Postfix calls the stage every message passes on its way
//! into the queue: smtpd, `sendmail` and the pickup (maildrop files) all
//! queue through here, so a message is stamped and rewritten the same way
//! whoever sent it.
//!
//! - The envelope is rewritten at queue entry (`append_at_myorigin`,
//!   canonical maps, masquerading; [`crate::local::Rewriter`]); a changed
//!   recipient keeps the address as given as its ORCPT, and every change
//!   is logged as `cleanup: ID: rewrote WHAT <OLD> as <NEW>` ([`Rewrites`]).
//! - A `Received:` header is prepended: Postfix's SMTP form or its form
//!   for local submissions ([`crate::smtp::received`]).
//! - Address headers are rewritten and a missing `From:`, `Date:` or
//!   `Message-Id:` is added at the end of the header block.
//! - The message is streamed into the queue file through an
//!   [`embedded_io::Write`] ([`crate::queue::Incoming`] in production, a
//!   `Vec<u8>` in the tests) with fixed buffers, and the `qmgr: ID: from=`
//!   line is logged once it is committed ([`log_queued`]).
//!
//! The two sources differ where their input does: [`local`] reads the
//! header block whole first (`-t` takes recipients from it, and they must
//! be in the envelope before the queue file exists), drops `Bcc:`, checks
//! and de-duplicates the recipients and logs after the commit; [`smtp`]
//! gets an envelope the SMTP session already checked and streams the
//! headers through [`fixer::HeaderFixer`], only for the clients that
//! `local_header_rewrite_clients` names.
//!
//! - A `TLS-Required: No` header field (RFC 8689 §5) sets the envelope's
//!   `tls-required-no` flag ([`tls_required`]): the queue manager then
//!   delivers the message at TLS level `may` (docs/policy.md).
//!
//! Header parsing ([`headers`]), the header fixer ([`fixer`]), the
//! `TLS-Required` scanner and line-end conversion ([`LineEnds`]) are
//! sans-I/O and bounded.

pub mod fixer;
pub mod headers;
mod line_ends;
pub mod local;
pub mod smtp;
pub mod tls_required;

pub use line_ends::{LineEnds, LINE_ENDS_SLACK};
pub use local::Submission;

use crate::local::Rewriter;
use crate::queue::SpoolError;
use std::fmt;
use std::path::PathBuf;

/// Settings for local submissions (`sendmail`, the pickup); from
/// tern.conf, so that both queue a message the same way.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `queue_directory`.
    pub queue_directory: PathBuf,
    /// `myhostname`: used in `Message-Id:` and `Received:`.
    pub myhostname: String,
    /// `myorigin`: domain appended to unqualified addresses and the login name.
    pub myorigin: String,
    /// `mail_name`: the program name in the `Received:` line.
    pub mail_name: String,
    /// `message_size_limit` in bytes (0 = no limit). Postfix default 10240000.
    pub message_size_limit: u64,
    /// `header_size_limit`: largest header block accepted. Postfix default 102400.
    pub header_size_limit: usize,
    /// Most recipients per message (`-t` plus arguments).
    pub recipient_limit: usize,
    /// Address rewriting at queue entry (`append_at_myorigin`, canonical
    /// maps, masquerading); `None`: only qualify with `myorigin`.
    pub rewrite: Option<Rewriter>,
    /// `queue_minfree`: bytes that must stay free on the spool's file
    /// system; below it nothing is queued (exit 75). 0 = no check.
    pub queue_minfree: u64,
}

impl Settings {
    /// The settings from tern.conf.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Settings, String> {
        let mut s = Settings::new(
            cfg.queue_directory(),
            cfg.get("myhostname"),
            cfg.get("myorigin"),
        );
        s.mail_name = cfg.get("mail_name").to_string();
        s.message_size_limit = cfg.int("message_size_limit");
        s.queue_minfree = cfg.int("queue_minfree");
        s.recipient_limit = usize::try_from(cfg.int("smtpd_recipient_limit")).unwrap_or(1000);
        s.rewrite = Some(Rewriter::from_config(cfg).map_err(|e| e.to_string())?);
        Ok(s)
    }

    /// Settings with Postfix's defaults for the limits.
    pub fn new(queue_directory: PathBuf, myhostname: &str, myorigin: &str) -> Settings {
        Settings {
            queue_directory,
            myhostname: myhostname.to_string(),
            myorigin: myorigin.to_string(),
            mail_name: "tern".to_string(),
            message_size_limit: 10_240_000,
            header_size_limit: 102_400,
            recipient_limit: 1000,
            rewrite: None,
            queue_minfree: 0,
        }
    }
}

/// The local user a message comes from (who runs `sendmail`, or owns a
/// maildrop file): the default sender and `From:`.
#[derive(Debug, Clone)]
pub struct Invoker {
    /// Real user ID (for `Received: ... from userid N`).
    pub uid: u32,
    /// Login name.
    pub login: String,
    /// Full name from the password file's GECOS field, if any.
    pub full_name: Option<String>,
}

impl Invoker {
    /// The calling user, from `getuid()` and the password database.
    pub fn current() -> Option<Invoker> {
        // SAFETY: getuid cannot fail.
        Invoker::from_uid(unsafe { libc::getuid() })
    }

    /// User `uid` from the password database (the pickup: a maildrop
    /// file's owner); `None` if it has no entry.
    pub fn from_uid(uid: u32) -> Option<Invoker> {
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        // SAFETY: buffers are ours and sized as passed; result is checked below.
        let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
        if r != 0 || result.is_null() || pw.pw_name.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so the strings are NUL-terminated inside `buf`.
        let login = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }
            .to_string_lossy()
            .into_owned();
        let full_name = if pw.pw_gecos.is_null() {
            None
        } else {
            let g = unsafe { std::ffi::CStr::from_ptr(pw.pw_gecos) }.to_string_lossy();
            let name = g.split(',').next().unwrap_or("").trim().to_string();
            (!name.is_empty()).then_some(name)
        };
        Some(Invoker {
            uid,
            login,
            full_name,
        })
    }
}

/// What kind of failure kept a message out of the queue; `sendmail`
/// turns it into its exit code, the pickup into "retry" or "set aside".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The submission is unusable as given: no recipients, a bad sender
    /// (sendmail's `EX_USAGE`).
    Usage,
    /// The message is unusable: header block too large or malformed, a
    /// bad address in a header, too big, unreadable input (`EX_DATAERR`).
    Data,
    /// A malformed recipient address (`EX_NOUSER`).
    Address,
    /// The queue could not be written: try again later (`EX_TEMPFAIL`).
    Temporary,
}

/// Why a message was not queued: the kind and the text for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The reason, as `sendmail: fatal:` prints it.
    pub message: String,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<SpoolError> for Error {
    fn from(e: SpoolError) -> Error {
        match e {
            SpoolError::TooBig { .. } => Error::new(ErrorKind::Data, e.to_string()),
            SpoolError::Invalid(_) => Error::new(ErrorKind::Address, e.to_string()),
            _ => Error::new(
                ErrorKind::Temporary,
                format!("error writing queue file: {e}"),
            ),
        }
    }
}

/// A sink that cannot fail (a `Vec<u8>` in the tests).
impl From<core::convert::Infallible> for Error {
    fn from(e: core::convert::Infallible) -> Error {
        match e {}
    }
}

/// The rewrites made at queue entry, kept until the queue ID is known
/// and then logged in the order they were made.
#[derive(Debug, Default)]
pub struct Rewrites(Vec<(&'static str, String, String)>);

impl Rewrites {
    /// Records that `what` (`sender`, `recipient`, `header`) `old` became
    /// `new`, if it did; true if so.
    fn note(&mut self, what: &'static str, old: &str, new: &str) -> bool {
        let changed = old != new;
        if changed {
            self.0.push((what, old.to_string(), new.to_string()));
        }
        changed
    }

    /// Logs every rewrite as `cleanup: ID: rewrote WHAT <OLD> as <NEW>`.
    pub fn log(&self, id: &str) {
        for (what, old, new) in &self.0 {
            log_rewrite(id, what, old, new);
        }
    }
}

fn log_rewrite(id: &str, what: &str, old: &str, new: &str) {
    log::info!(target: "cleanup", "{id}: rewrote {what} <{}> as <{}>", one_line(old), one_line(new));
}

/// A folded header must stay on one log line.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Postfix's qmgr line for a message just queued, which pflogsumm counts
/// as "received" (sender and bytes): tern's queue manager picks new mail
/// up without a line of its own.
pub fn log_queued(id: &str, sender: &str, size: u64, nrcpt: usize) {
    log::info!(
        target: "qmgr",
        "{id}: from=<{sender}>, size={size}, nrcpt={nrcpt} (queue active)"
    );
}

/// The address header `name` (its value without the final line end)
/// rewritten with `rw`: `(old, new)` values, or `None` if it is no address
/// header or nothing changes.
fn rewrite_header(rw: &Rewriter, name: &str, value: &[u8]) -> Option<(String, String)> {
    let side = Rewriter::header_side(name)?;
    let old = String::from_utf8_lossy(value).into_owned();
    let new = rw.header_value(&old, side)?;
    Some((old, new))
}

/// The header lines added when missing: `from` is the whole `From:` line
/// (each source has its own), `Date:` is the arrival time and the
/// `Message-Id:` is made unique by the queue ID.
fn added(
    from: String,
    date: &crate::queue::clock::Civil,
    id: &str,
    hostname: &str,
) -> fixer::Added {
    fixer::Added {
        from,
        date: format!("Date: {}\r\n", date.rfc5322()),
        message_id: format!("Message-Id: {}\r\n", fixer::message_id(date, id, hostname)),
    }
}
