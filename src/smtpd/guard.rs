//! The driver side of the per-client limits ([`super::anvil`]) and of
//! stress mode: one [`Guard`] per daemon, shared by every listener and
//! session, kept across reloads (the limits themselves are re-read from
//! [`Shared`] for each event).
//!
//! # Stress mode
//!
//! Postfix's master runs smtpd with `stress=yes` once a service has hit
//! its process limit, and Postfix 3.9's defaults then shorten
//! `smtpd_timeout` to 10 s, make it a deadline for each whole record
//! (`smtpd_per_record_deadline`) and drop `smtpd_hard_error_limit` and
//! `smtpd_junk_command_limit` to 1. tern has no processes to count; it is
//! under stress while more than `smtpd_stress_threshold` percent of the
//! `max_connections` slots are in use, and leaves it when the use falls to
//! half of that (so the log does not flap at the boundary). Unlike
//! Postfix, whose old processes keep the settings they started with, the
//! timeout applies to every session at its next read: idle and dripping
//! sessions that hold slots are the ones reclaimed.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::anvil::{self, Anvil, CheckBudget, Connect};
use super::Shared;
use crate::tls::BufferPool;

/// Per-client table, stress state and the clock origin.
pub struct Guard {
    anvil: RefCell<Anvil>,
    /// Password checks started in the current second, all clients.
    checks: Cell<CheckBudget>,
    pool: Rc<BufferPool>,
    stressed: Cell<bool>,
    origin: Instant,
}

/// A connection counted by the table; uncounted again when dropped.
pub struct Ticket {
    guard: Rc<Guard>,
    /// `None` for clients in `smtpd_client_event_limit_exceptions`.
    addr: Option<IpAddr>,
    /// The service, for the log lines.
    service: &'static str,
}

impl Guard {
    /// A guard for a daemon with `pool`'s slots; the table's size is fixed
    /// here ([`anvil::table_size`]).
    pub fn new(pool: Rc<BufferPool>) -> Rc<Guard> {
        Rc::new(Guard {
            anvil: RefCell::new(Anvil::new(anvil::table_size(pool.capacity()))),
            checks: Cell::new(CheckBudget::new()),
            pool,
            stressed: Cell::new(false),
            origin: Instant::now(),
        })
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn exempt(shared: &Shared, addr: IpAddr) -> bool {
        shared.limit_exceptions.iter().any(|n| n.contains(addr))
    }

    /// A new connection from `addr`: a ticket to hold for the session, or
    /// the refusal.
    pub fn connect(
        self: &Rc<Self>,
        shared: &Shared,
        service: &'static str,
        addr: IpAddr,
    ) -> Result<Ticket, Connect> {
        if Self::exempt(shared, addr) {
            return Ok(Ticket {
                guard: self.clone(),
                addr: None,
                service,
            });
        }
        let now = self.now();
        match self.anvil.borrow_mut().connect(addr, now, &shared.limits) {
            Connect::Allowed => Ok(Ticket {
                guard: self.clone(),
                addr: Some(addr),
                service,
            }),
            refused => Err(refused),
        }
    }

    /// Whether stress mode is on; logs when it starts and ends.
    pub fn stressed(&self, shared: &Shared) -> bool {
        let cap = self.pool.capacity() as u64;
        let in_use = cap.saturating_sub(self.pool.available() as u64);
        let was = self.stressed.get();
        let now = if was {
            in_use * 200 > cap * shared.stress_threshold
        } else {
            in_use * 100 > cap * shared.stress_threshold
        };
        if now != was {
            self.stressed.set(now);
            if now {
                log::warn!(target: "smtpd", "warning: {in_use} of {cap} connection slots (max_connections) in use: stress mode on (smtpd_timeout {}s per command, smtpd_hard_error_limit {} for new sessions)", shared.stress_timeout.as_secs(), shared.stress_hard_error_limit);
            } else {
                log::info!(target: "smtpd", "{in_use} of {cap} connection slots (max_connections) in use: stress mode off");
            }
        }
        now
    }

    /// The read limits for a record (command line or DATA line) that
    /// began at `record_start`: `(idle timeout, deadline)` for
    /// [`super::session::with_timeout`].
    pub fn read_limits(
        &self,
        shared: &Shared,
        record_start: Instant,
        deadline: Instant,
    ) -> (Duration, Instant) {
        if self.stressed(shared) {
            let t = shared.stress_timeout;
            (t, deadline.min(record_start + t))
        } else {
            (shared.timeout, deadline)
        }
    }
}

impl Ticket {
    /// The guard this ticket came from.
    pub fn guard(&self) -> &Rc<Guard> {
        &self.guard
    }

    /// A `MAIL FROM`: `Some((reply, warning))` when over
    /// `smtpd_client_message_rate_limit`.
    pub fn mail(&self, shared: &Shared, client: &str) -> Option<(String, String)> {
        let addr = self.addr?;
        let now = self.guard.now();
        let rate = self
            .guard
            .anvil
            .borrow_mut()
            .mail(addr, now, &shared.limits)
            .err()?;
        Some((
            format!("450 4.7.1 Error: too much mail from {addr}"),
            format!("warning: Message delivery request rate limit exceeded: {rate} from {client} for service {}", self.service),
        ))
    }

    /// An `AUTH`: `Some((reply, warning))` when over
    /// `smtpd_client_auth_rate_limit` or, refused before any password is
    /// asked for, `smtpd_client_auth_failure_limit`.
    pub fn auth(&self, shared: &Shared, client: &str) -> Option<(String, String)> {
        let addr = self.addr?;
        let now = self.guard.now();
        let mut anvil = self.guard.anvil.borrow_mut();
        if let Err(rate) = anvil.auth(addr, now, &shared.limits) {
            return Some((
                format!("450 4.7.1 Error: too many AUTH commands from {addr}"),
                format!(
                    "warning: AUTH command rate limit exceeded: {rate} from {client} for service {}",
                    self.service
                ),
            ));
        }
        let failures = anvil.auth_allowed(addr, now, &shared.limits).err()?;
        // 454 4.7.0 as Postfix answers AUTH it cannot serve now (a
        // temporary failure: a real user who mistyped retries later).
        Some((
            format!("454 4.7.0 Error: too many failed AUTH attempts from {addr}"),
            format!(
                "warning: AUTH failure rate limit exceeded: {failures} from {client} for service {}",
                self.service
            ),
        ))
    }

    /// Whether a password check may run now (`smtpd_auth_check_rate_limit`,
    /// counted for every client, exempt ones too: the thread is shared).
    pub fn take_check(&self, shared: &Shared) -> bool {
        let mut b = self.guard.checks.get();
        let ok = b.try_take(self.guard.now(), shared.limits.auth_checks_per_second);
        self.guard.checks.set(b);
        ok
    }

    /// A failed password check: counts it for the client address and
    /// returns how long to wait before answering (zero for clients in
    /// `smtpd_client_event_limit_exceptions`, which the session's own
    /// `smtpd_error_sleep_time` still slows).
    pub fn auth_failed(&self, shared: &Shared) -> Duration {
        let Some(addr) = self.addr else {
            return Duration::ZERO;
        };
        let now = self.guard.now();
        let n = self
            .guard
            .anvil
            .borrow_mut()
            .auth_failed(addr, now, &shared.limits);
        anvil::failure_delay(n, shared.limits.auth_failure_delay)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(a) = self.addr {
            self.guard.anvil.borrow_mut().disconnect(a);
        }
    }
}
