//! The TLSRPT report sink (the driver around [`super::event`]): for each
//! TLS attempt of a recipient domain that publishes a TLSRPT record,
//! Postfix 3.10's `TLSRPT: status=...` log line and, when
//! `smtp_tlsrpt_socket_name` is set, the datagram of sys4's client library
//! to the report generator's collector. The daily counters are a separate
//! sink; [`crate::delivery::report::Sinks`] hands every attempt to both.

use std::cell::{Cell, RefCell};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::delivery::report::{TlsAttempt, TlsReportSink};

use super::event;

/// Largest datagram sent. libtlsrpt builds it in memory without a bound;
/// tern's buffer is fixed: a report-worthy event (TLSA records or an
/// MTA-STS policy's lines, a few hundred bytes each) fits many times over.
/// A larger one is dropped with a warning, never truncated.
pub const DATAGRAM_MAX: usize = 16 * 1024;

/// At most one warning about the socket per this long (a collector that is
/// down must not flood the log: one line per delivery would).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Where datagrams go.
struct Collector {
    path: PathBuf,
    /// Unbound and non-blocking: `send_to` never waits for the collector
    /// (libtlsrpt sends with MSG_DONTWAIT for the same reason).
    sock: UnixDatagram,
}

/// Log lines and collector datagrams for TLSRPT events.
pub struct TlsRptSink {
    collector: Option<Collector>,
    /// The datagram buffer, allocated once.
    buf: RefCell<Box<[u8]>>,
    /// When the last socket warning was logged.
    warned: Cell<Option<Instant>>,
}

impl TlsRptSink {
    /// A sink that logs, and sends datagrams to `socket` when one is given
    /// (the resolved `smtp_tlsrpt_socket_name`). A socket that cannot be
    /// created is logged and leaves the log lines only.
    pub fn new(socket: Option<&Path>) -> TlsRptSink {
        let collector = socket.and_then(|path| {
            let sock = UnixDatagram::unbound().and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            });
            match sock {
                Ok(sock) => Some(Collector {
                    path: path.to_path_buf(),
                    sock,
                }),
                Err(e) => {
                    log::warn!(target: "smtp", "warning: TLSRPT: cannot create a socket for {}: {e}", path.display());
                    None
                }
            }
        });
        TlsRptSink {
            collector,
            buf: RefCell::new(vec![0u8; DATAGRAM_MAX].into_boxed_slice()),
            warned: Cell::new(None),
        }
    }

    /// Logs a socket problem unless one was logged within [`WARN_EVERY`].
    fn warn(&self, what: &dyn std::fmt::Display) {
        let now = Instant::now();
        if self
            .warned
            .get()
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return;
        }
        self.warned.set(Some(now));
        // Postfix's words (tlsrpt_wrapper.c), then which socket.
        log::warn!(target: "smtp", "warning: Could not report TLS handshake result to tlsrpt library: {what}");
    }

    fn send(&self, c: &Collector, a: &TlsAttempt, domain: &str, record: &str) {
        let Ok(mut buf) = self.buf.try_borrow_mut() else {
            return;
        };
        match event::datagram(a, domain, record, &mut buf) {
            Ok(n) => {
                if let Err(e) = c.sock.send_to(&buf[..n], &c.path) {
                    self.warn(&format_args!("{} ({e})", c.path.display()));
                }
            }
            Err(e) => self.warn(&format_args!("{e} ({DATAGRAM_MAX} bytes), domain {domain}")),
        }
    }
}

impl TlsReportSink for TlsRptSink {
    fn record(&self, a: &TlsAttempt) {
        // Only recipient domains that publish a valid record (RFC 8460 §3).
        let Some(rec) = &a.tlsrpt else {
            return;
        };
        let domain = a.policy_domain();
        // Postfix logs it with msg_info: no queue ID, smtp's own line.
        log::info!(target: "smtp", "{}", event::log_line(a, domain));
        if let Some(c) = &self.collector {
            self.send(c, a, domain, &rec.text);
        }
    }
}

/// `smtp_tlsrpt_socket_name` as a path: absolute, or relative to
/// `queue_directory` (Postfix's rule); `None` when empty.
pub fn socket_path(value: &str, queue_directory: &Path) -> Option<PathBuf> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    let p = Path::new(v);
    Some(if p.is_absolute() {
        p.to_path_buf()
    } else {
        queue_directory.join(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names() {
        let q = Path::new("/var/spool/tern");
        assert_eq!(socket_path("", q), None);
        assert_eq!(socket_path("  ", q), None);
        assert_eq!(
            socket_path("/run/tlsrpt.sock", q),
            Some(PathBuf::from("/run/tlsrpt.sock"))
        );
        assert_eq!(
            socket_path("run/tlsrpt/tlsrpt.sock", q),
            Some(PathBuf::from("/var/spool/tern/run/tlsrpt/tlsrpt.sock"))
        );
    }
}
