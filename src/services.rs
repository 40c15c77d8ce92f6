//! The long-running tasks of the daemon, started after the configuration is
//! loaded: listeners, group committer, queue manager, wake-up socket.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::LocalExecutor;

use crate::cleanup::Settings as CleanupSettings;
use crate::config::Config;
use crate::daemon::SharedConfig;
use crate::queue::Spool;
use crate::smtpd::{self, commit::GroupCommit, Listeners, Shared};
use crate::tls::BufferPool;

/// Handles to the running services.
pub struct Services {
    cfg: SharedConfig,
    smtpd: Rc<RefCell<Rc<Shared>>>,
    spool: Rc<Spool>,
    committer: Rc<GroupCommit>,
    pool: Rc<BufferPool>,
    delivery: Rc<crate::delivery::QueueManager>,
    /// The accept loops; dropped (listeners closed) when draining.
    accept: RefCell<Vec<smol::Task<()>>>,
    /// The user root was dropped to, if it was.
    dropped_to: Option<String>,
    /// What the pickup queues maildrop files with (replaced on reload).
    pickup: Rc<RefCell<Rc<CleanupSettings>>>,
    /// tern's own TLSRPT reporter, when on at start-up.
    tlsrpt: Option<Rc<crate::tlsrpt::daemon::Reporter>>,
}

/// Postfix's pickup also polls maildrop/ once a minute: a wake-up lost
/// (daemon restarting, socket buffer full) delays a message by this much.
const PICKUP_POLL: Duration = Duration::from_secs(60);

/// The pickup: on every wake-up and every [`PICKUP_POLL`], queues the
/// files in maildrop/ and tells the queue manager about them.
async fn pickup_loop(
    params: Rc<RefCell<Rc<CleanupSettings>>>,
    trigger: smol::channel::Receiver<()>,
    qmgr: Rc<crate::delivery::QueueManager>,
) {
    loop {
        let p = params.borrow().clone();
        let run = crate::queue::pickup::run_once(&p);
        for id in &run.queued {
            qmgr.notify_new(id);
        }
        if run.more {
            smol::future::yield_now().await;
            continue;
        }
        smol::future::or(
            async {
                let _ = trigger.recv().await;
            },
            async {
                smol::Timer::after(PICKUP_POLL).await;
            },
        )
        .await;
    }
}

/// How often the MTA-STS cache is checked for policies to refresh. A
/// policy is refreshed in the last quarter of its `max_age` (at most the
/// last day), so a minute's delay is immaterial; the check itself only
/// walks the cache (at most `mta_sts_cache_size` entries).
const STS_REFRESH_TICK: Duration = Duration::from_secs(60);

/// Proactive MTA-STS refresh (RFC 8461 §5): policies used since their
/// last fetch are fetched again shortly before they expire, so a domain
/// in use never drops to "no policy" between two messages. Runs on the
/// current configuration's resolver, whose cache survives reloads.
async fn sts_refresh_loop(qmgr: Rc<crate::delivery::QueueManager>) {
    loop {
        smol::Timer::after(STS_REFRESH_TICK).await;
        let ctx = qmgr.context();
        ctx.sts
            .refresh_due(crate::mtasts::resolver::unix_now())
            .await;
    }
}

/// Makes the spool's lazily written bookkeeping durable within
/// `queue_sync_delay` when no group commit does it first (docs/spool.md):
/// under load this never syncs, since every commit covers it.
async fn lazy_sync_loop(cfg: SharedConfig, spool: Rc<Spool>) {
    loop {
        let delay = cfg.borrow().time("queue_sync_delay");
        // Checked four times per delay: the window is at most 1.25 x delay.
        let tick = (delay / 4).max(Duration::from_millis(250));
        smol::Timer::after(tick).await;
        if let Err(e) = spool.sync_if_due(delay) {
            log::warn!(target: "qmgr", "warning: {e}");
        }
    }
}

/// Binds the listeners (before dropping root), then spawns every service.
pub async fn start(ex: &Rc<LocalExecutor<'static>>, cfg: SharedConfig) -> Result<Services, String> {
    let c = cfg.borrow().clone();
    let queue_dir = c.queue_directory();
    // Warnings of this load are remembered, so a reload of the same
    // settings does not log them again (syslog/repeat.rs).
    crate::syslog::repeat::begin(false);
    let spool = Rc::new(Spool::open(&queue_dir).map_err(|e| format!("queue_directory: {e}"))?);
    let max = usize::try_from(c.int("max_connections"))
        .unwrap_or(32)
        .max(1);
    let pool = Rc::new(BufferPool::new(max));
    // Every figure comes from the pool's own constants, so the line cannot
    // drift from what was reserved: per connection = TLS slot + command
    // buffers, and the ceiling = max_connections x that. The spool writer
    // is not in the pool (it is boxed with each message being received, by
    // smtpd, sendmail and bounces alike), so it is named on its own.
    use crate::tls::pool as parts;
    log::info!(
        target: "master",
        "daemon started -- version {}, configuration {}, max_connections {}, fixed buffers {} KiB reserved ({} B per connection: TLS records {} + command line {} + DATA {}; plus a {} B spool writer per message being received, and TLS handshake state)",
        env!("CARGO_PKG_VERSION"),
        c.origin(),
        max,
        pool.budget_bytes() / 1024,
        pool.per_connection_bytes(),
        parts::SLOT_BYTES,
        parts::LINE_LEN,
        parts::DATA_LEN,
        crate::queue::spool::WRITE_BUF,
    );
    config_warnings(&c);
    let started = Instant::now();
    let listeners = Listeners::bind(&c)?;
    let addresses = listeners.addresses();
    let committer = GroupCommit::new(max);
    ex.spawn(committer.clone().run(spool.clone())).detach();
    ex.spawn(lazy_sync_loop(cfg.clone(), spool.clone()))
        .detach();

    let delivery = crate::delivery::QueueManager::new(c.clone(), spool.clone(), pool.clone())?;
    let kick = delivery.clone();
    let shared = Shared::from_config(
        &c,
        spool.clone(),
        committer.clone(),
        Box::new(move |id: &str| kick.notify_new(id)),
    )?;
    // Rewriting tables may be root's only, like the keys: read them first.
    let pickup = Rc::new(RefCell::new(Rc::new(
        CleanupSettings::from_config(&c).map_err(|e| format!("pickup: {e}"))?,
    )));
    // The DKIM key of TLS reports may be root's only, like the TLS keys.
    let tlsrpt = {
        let s =
            crate::tlsrpt::daemon::Settings::from_config(&c).map_err(|e| format!("TLSRPT: {e}"))?;
        if s.enabled {
            if s.signer.is_none() {
                log::info!(target: "tlsrpt", "TLSRPT: reports by mail will be sent unsigned (no smtp_tlsrpt_dkim_key_file)");
            }
            let now = crate::mtasts::resolver::unix_now();
            Some(crate::tlsrpt::daemon::Reporter::new(
                &c,
                s,
                delivery.clone(),
                now,
            )?)
        } else {
            None
        }
    };
    delivery.set_tlsrpt(tlsrpt.clone());
    // After the keys and password file are read: like Postfix, they may be
    // readable by root only.
    let mut dropped_to = None;
    match c.get("mail_owner").trim() {
        // The dev config: stay whoever started it (`cargo run` as root in a
        // fresh container has no `tern` user, and ./run may be private).
        "" => {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                log::warn!(target: "master", "mail_owner is empty: not dropping root privileges");
            }
        }
        owner => {
            // Local delivery into users' homes needs root: a helper keeps it.
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                // A missing account is the usual first-run mistake: say what
                // to do before anything is started.
                smtpd::listen::user_ids(owner)?;
                if !local_delivery_possible(&c, &delivery.context()) {
                    // A send-only router: one process, not a second one
                    // that sits idle holding ~1 MiB (issue 15).
                    crate::local::helper::skip();
                    log::info!(target: "master", "local delivery helper not started: no mail is routed to local delivery (mydestination, transport_maps)");
                } else {
                    match crate::local::helper::spawn() {
                        Ok(pid) => {
                            log::info!(target: "master", "local delivery helper started, pid {pid}")
                        }
                        Err(e) => {
                            log::error!(target: "master", "cannot start the local delivery helper (home_mailbox delivery will fail): {e}")
                        }
                    }
                }
            }
            if smtpd::listen::drop_privileges(owner, &[queue_dir.as_path()])? {
                log::info!(target: "master", "running as {owner}");
                dropped_to = Some(owner.to_string());
            }
        }
    }
    // As the daemon's user: maildrop/ and the showq socket belong to it.
    crate::queue::maildrop::prepare(&queue_dir)
        .map_err(|e| format!("queue_directory: maildrop: {e}"))?;
    let showq = crate::queue::showq::bind(&queue_dir)
        .map_err(|e| format!("queue_directory: showq socket: {e}"))?;
    ex.spawn(crate::queue::showq::serve(showq, spool.clone()))
        .detach();
    let status = crate::status::bind(&queue_dir)
        .map_err(|e| format!("queue_directory: status socket: {e}"))?;
    let report = status_report(
        started,
        addresses,
        spool.clone(),
        pool.clone(),
        delivery.tls_tally(),
    );
    ex.spawn(crate::status::serve(status, report)).detach();
    let (pickup_tx, pickup_rx) = smol::channel::bounded(1);
    delivery.set_on_wake(Box::new(move || {
        let _ = pickup_tx.try_send(());
    }));
    ex.spawn(pickup_loop(pickup.clone(), pickup_rx, delivery.clone()))
        .detach();
    let smtpd = Rc::new(RefCell::new(Rc::new(shared)));
    let accept = RefCell::new(listeners.spawn(ex, smtpd.clone(), pool.clone())?);
    delivery.clone().spawn(ex, &queue_dir)?;
    ex.spawn(sts_refresh_loop(delivery.clone())).detach();
    if let Some(t) = &tlsrpt {
        ex.spawn(t.clone().run()).detach();
    }
    crate::syslog::repeat::end();
    Ok(Services {
        cfg,
        smtpd,
        spool,
        committer,
        pool,
        delivery,
        accept,
        dropped_to,
        pickup,
        tlsrpt,
    })
}

/// The `tern status` report of this daemon: queue figures are read from
/// the spool when asked (read-only, as `mailq`), the rest from memory.
fn status_report(
    started: Instant,
    listeners: Vec<String>,
    spool: Rc<Spool>,
    pool: Rc<BufferPool>,
    tally: Rc<crate::status::TlsTally>,
) -> Rc<dyn Fn() -> String> {
    Rc::new(move || {
        let mut f = crate::status::Figures {
            pid: std::process::id(),
            uptime: started.elapsed().as_secs(),
            listeners: listeners.clone(),
            tls: tally.last_day(crate::mtasts::resolver::unix_now()),
            reserved: pool.budget_bytes(),
            in_use: (pool.capacity() - pool.available()) * pool.per_connection_bytes(),
            connections: (pool.capacity() - pool.available(), pool.capacity()),
            resident: crate::status::resident_bytes(),
            ..Default::default()
        };
        let mut out = Vec::new();
        match spool.list() {
            Ok(r) => {
                for e in &r.entries {
                    match e.dir {
                        crate::queue::QueueDir::Active => f.active += 1,
                        crate::queue::QueueDir::Deferred => f.deferred += 1,
                        crate::queue::QueueDir::Hold => f.hold += 1,
                    }
                    f.queue_bytes += e.file_size;
                }
                f.reasons = crate::status::reasons(&r.entries);
            }
            Err(e) => {
                use std::io::Write;
                let _ = writeln!(out, "queue: cannot be read: {e}");
            }
        }
        let _ = crate::status::render(&f, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Can `c` route any mail to local delivery, and so into a system user's
/// home Maildir? Only then does a daemon started as root keep the root
/// helper (docs/local.md). Mail-only users below `virtual_mailbox_base`
/// do not need it, but every local domain also reaches system users
/// (`root`), so a local domain is enough.
fn local_delivery_possible(c: &Config, ctx: &crate::delivery::context::Context) -> bool {
    let set = &ctx.settings;
    crate::delivery::route::Router {
        transport: &ctx.tables.transport,
        local_domains: &set.mydestination,
        relayhost: &set.relayhost,
        wrappermode: set.wrappermode,
    }
    .can_route_local(!c.bool("append_at_myorigin"))
}

/// Warnings about settings that load but will not do what they seem to:
/// reserved parameters asking for a missing feature, and a spool whose
/// file system already fails the `queue_minfree` rule (every message would
/// get a 452, seen otherwise only as mail that never arrives). Logged at
/// start-up and after each reload; neither stops the daemon.
fn config_warnings(c: &Config) {
    for w in c.warnings() {
        log::warn!(target: "master", "{w}");
    }
    for w in crate::config::params::reserved_warnings(|n| c.line_of(n).map(|_| c.get(n))) {
        log::warn!(target: "master", "{w}");
    }
    let dir = c.queue_directory();
    let (minfree, limit) = (c.int("queue_minfree"), c.int("message_size_limit"));
    if crate::queue::space::needed(minfree, limit, 0) == 0 {
        return;
    }
    match crate::queue::space::free_bytes(&dir) {
        Ok(free) => {
            if let Some(w) = crate::queue::space::startup_warning(&dir, free, minfree, limit) {
                log::warn!(target: "master", "{w}");
            }
        }
        Err(e) => log::warn!(target: "master", "warning: statvfs {}: {e}", dir.display()),
    }
}

impl Services {
    /// SIGHUP with a newly loaded configuration: builds everything that can
    /// change without a restart (smtpd settings with certificates, password
    /// file, aliases and rewriting tables; the delivery context with its
    /// tables, resolver and TLS parameters) and swaps all of it at once. If
    /// any part fails, nothing changes and the errors are logged. Settings
    /// that only a restart applies are named in a warning.
    pub fn reload(&self, new: Config) {
        crate::syslog::repeat::begin(true);
        let new = Rc::new(new);
        let kick = self.delivery.clone();
        let shared = Shared::from_config(
            &new,
            self.spool.clone(),
            self.committer.clone(),
            Box::new(move |id: &str| kick.notify_new(id)),
        );
        let ctx = crate::delivery::context::context(new.clone(), self.pool.clone());
        let pickup = CleanupSettings::from_config(&new);
        let (shared, ctx, pickup) = match (shared, ctx, pickup) {
            (Ok(s), Ok(c), Ok(p)) => (s, c, p),
            (s, c, p) => {
                // Failures are said every time.
                crate::syslog::repeat::end();
                let errs: Vec<String> = [s.err(), c.err(), p.err()].into_iter().flatten().collect();
                for line in errs.iter().flat_map(|e| e.lines()) {
                    log::warn!(target: "master", "warning: reload failed, keeping the old configuration: {line}");
                }
                if let Some(owner) = &self.dropped_to {
                    if errs.iter().any(|e| e.contains("Permission denied")) {
                        log::warn!(target: "master", "warning: reload: the daemon runs as {owner} since start-up; files it re-reads (certificates, keys, tables) must be readable by {owner}, or restart it");
                    }
                }
                return;
            }
        };
        let old = self.cfg.borrow().clone();
        let fixed = restart_only_changes(&old, &new);
        if !fixed.is_empty() {
            log::warn!(target: "master", "warning: reload: {} changed; the running values stay until a restart", fixed.join(", "));
        }
        if crate::local::helper::skipped() && local_delivery_possible(&new, &ctx) {
            // Root is gone: the helper can only be forked at start-up.
            // Such mail defers (helper::NOT_STARTED_REASON), never lost.
            log::warn!(target: "master", "warning: reload: mail is now routed to local delivery (mydestination, transport_maps), but the local delivery helper was not started with this daemon; home Maildir deliveries are deferred until tern is restarted");
        }
        *self.cfg.borrow_mut() = new.clone();
        *self.smtpd.borrow_mut() = Rc::new(shared);
        self.delivery.install(ctx);
        *self.pickup.borrow_mut() = Rc::new(pickup);
        match (
            &self.tlsrpt,
            crate::tlsrpt::daemon::Settings::from_config(&new),
        ) {
            (Some(t), Ok(s)) => t.reload(&new, s),
            (_, Err(e)) => {
                log::warn!(target: "master", "warning: reload: TLSRPT: {e}; keeping the old report settings")
            }
            (None, Ok(s)) if s.enabled => {
                log::warn!(target: "master", "warning: reload: TLSRPT reports were off at start-up; they start with the next restart")
            }
            (None, Ok(_)) => {}
        }
        log::info!(target: "master", "reload -- configuration {}", new.origin());
        config_warnings(&new);
        crate::syslog::repeat::end();
    }

    /// Stops taking new work and lets sessions and local deliveries finish,
    /// for at most 10 s.
    pub async fn shutdown(&self) {
        // Close the listening sockets first: new clients get "connection
        // refused" and try another MX or later, as with a stopped Postfix.
        self.accept.borrow_mut().clear();
        self.delivery.stop();
        let until = Instant::now() + Duration::from_secs(10);
        while (self.pool.available() < self.pool.capacity() || self.delivery.local_deliveries() > 0)
            && Instant::now() < until
        {
            smol::Timer::after(Duration::from_millis(50)).await;
        }
        // The day's TLSRPT counters so far survive the stop.
        if let Some(t) = &self.tlsrpt {
            t.checkpoint(false);
        }
        if let Err(e) = self.spool.sync_pending() {
            log::warn!(target: "master", "warning: {e}");
        }
        let (batches, messages) = self.committer.stats();
        log::info!(target: "master", "{messages} messages committed in {batches} group commits");
    }
}

/// Parameters read only at start-up: the listening sockets, the buffer
/// pool, the spool, the user the daemon runs as, and logging.
const RESTART_ONLY: &[&str] = &[
    "smtp_listen",
    "submission_listen",
    "submissions_listen",
    "inet_interfaces",
    "inet_protocols",
    "max_connections",
    "queue_directory",
    "mail_owner",
    "syslog_socket",
    "syslog_server",
    "syslog_server_format",
    "syslog_facility",
    "syslog_name",
    "syslog_level",
    "maillog_file",
];

/// The restart-only parameters whose values differ between `old` and `new`.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    RESTART_ONLY
        .iter()
        .copied()
        .filter(|k| old.get(k) != new.get(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_changes_are_named() {
        let old =
            Config::parse_str("max_connections = 8\nmessage_size_limit = 1000\n", "a").unwrap();
        let same =
            Config::parse_str("max_connections = 8\nmessage_size_limit = 2000\n", "b").unwrap();
        assert!(restart_only_changes(&old, &same).is_empty());
        let new = Config::parse_str(
            "max_connections = 9\nsmtp_listen = 127.0.0.1:2525\nmail_owner = nobody\n",
            "c",
        )
        .unwrap();
        assert_eq!(
            restart_only_changes(&old, &new),
            ["smtp_listen", "max_connections", "mail_owner"]
        );
    }
}
