//! The queue manager: finds due messages, groups their recipients by next
//! hop, runs deliveries within the concurrency limits, records every
//! recipient's outcome durably, retries with backoff and bounces what
//! cannot be delivered.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use smol::channel::{bounded, Receiver, Sender};
use smol::LocalExecutor;

use crate::config::Config;
use crate::dns::{Resolver, ResolverConfig};
use crate::queue::{
    self, Flags, NewMessage, Outcome, QueueDir, QueueEntry, Recipient, Spool, Status,
};
use crate::tls::BufferPool;

use super::bounce::{self, Action, RecipientStatus};
use super::client::{arrival_time, Delivery, MessageJob, RcptResult, ResultKind};
use super::route::{Route, Router};
use super::schedule::{self, Slots};
use super::tables::Tables;

/// Settings and tables the deliveries read; replaced whole on reload.
pub struct Context {
    /// The configuration.
    pub cfg: Rc<Config>,
    /// Outbound tables.
    pub tables: Tables,
    /// The stub resolver.
    pub resolver: Rc<Resolver>,
    /// Connection buffers (shared with the listener).
    pub pool: Rc<BufferPool>,
    /// TLS parameters (curves, cipher order).
    pub tls: crate::tls::TlsParams,
    /// Aliases and mailboxes for `mydestination` recipients.
    pub local: crate::local::LocalDelivery,
    /// Whether the resolvers' AD bit counts for DANE (dnssec lookups on, and
    /// every resolver on loopback or in `dns_trusted_resolvers`), decided
    /// once per configuration.
    pub trust_ad: bool,
}

/// The queue manager.
pub struct QueueManager {
    ctx: RefCell<Rc<Context>>,
    spool: Rc<Spool>,
    kick_tx: Sender<()>,
    /// Also told of every wake-up datagram: the pickup (a non-root
    /// `sendmail` wakes the daemon for its maildrop file).
    on_wake: RefCell<Option<Box<dyn Fn()>>>,
    kick_rx: Receiver<()>,
    /// The next run must read the whole spool (start, timer, flush, reload).
    full: Cell<bool>,
    /// Messages to look at in the next partial run: new arrivals, and due
    /// messages that found no free slot last time. Partial runs keep a
    /// busy queue from being re-read from flash for every arrival.
    fresh: RefCell<Vec<String>>,
    /// Earliest next attempt seen, for the scheduler's timer.
    earliest_due: Cell<Option<u64>>,
    slots: RefCell<Slots>,
    in_flight: RefCell<HashSet<String>>,
    /// Messages in local delivery (a set of its own: a message can be in
    /// an SMTP session and in local delivery at once, and the session's
    /// end must not make it look free).
    local_busy: RefCell<HashSet<String>>,
    stopping: Cell<bool>,
}

/// Messages in local delivery at a time. Home Maildirs are written one at
/// a time by the helper anyway; this bounds the queue files held open by
/// waiting deliveries (Postfix's default local_destination_concurrency_limit
/// is 2 too, per recipient; tern applies it to local delivery as a whole).
const LOCAL_CONCURRENCY: usize = 2;

/// Loads what deliveries (and `tern probe`) read from `cfg`: tables,
/// resolver, TLS parameters.
pub fn context(cfg: Rc<Config>, pool: Rc<BufferPool>) -> Result<Context, String> {
    let tables = Tables::load(&cfg).map_err(|e| e.join("\n"))?;
    let rc = match cfg.get("dns_resolvers") {
        "" => ResolverConfig::from_resolv_conf_file(Path::new("/etc/resolv.conf"))
            .map_err(|e| format!("/etc/resolv.conf: {e}"))?,
        list => ResolverConfig::from_list(list).map_err(|e| format!("dns_resolvers: {e}"))?,
    };
    let resolver = Rc::new(Resolver::new(rc));
    let named = crate::policy::dane::parse_trusted_resolvers(cfg.get("dns_trusted_resolvers"))?;
    let list = |v: &[std::net::SocketAddr]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let ad = crate::policy::dane::ad_trust(
        cfg.get("smtp_dns_support_level") == "dnssec",
        &resolver.config().servers,
        &named,
    );
    let trust_ad = ad.trusted();
    match ad {
        crate::policy::dane::AdTrust::Trusted { remote } if !remote.is_empty() => {
            log::warn!(target: "master", "warning: DNS resolver {} is not on loopback; its AD bit is trusted for DANE (dns_trusted_resolvers): the network path to it must be secure", list(&remote));
        }
        crate::policy::dane::AdTrust::Untrusted { untrusted } if !untrusted.is_empty() => {
            log::warn!(target: "master", "warning: DNS resolver {} is not on loopback and not in dns_trusted_resolvers: its AD bit is not trusted, so DANE cannot authenticate (dane acts as may, dane-only defers)", list(&untrusted));
        }
        _ => {}
    }
    let tls = crate::tls::params(&cfg)?;
    let local = crate::local::LocalDelivery::from_config(&cfg)?;
    Ok(Context {
        cfg,
        tables,
        resolver,
        pool,
        tls,
        local,
        trust_ad,
    })
}

impl QueueManager {
    /// Loads the outbound tables and resolver settings.
    pub fn new(
        cfg: Rc<Config>,
        spool: Rc<Spool>,
        pool: Rc<BufferPool>,
    ) -> Result<Rc<QueueManager>, String> {
        let ctx = context(cfg, pool)?;
        let (kick_tx, kick_rx) = bounded(1);
        Ok(Rc::new(QueueManager {
            ctx: RefCell::new(Rc::new(ctx)),
            spool,
            kick_tx,
            kick_rx,
            full: Cell::new(true),
            fresh: RefCell::new(Vec::new()),
            earliest_due: Cell::new(None),
            slots: RefCell::new(Slots::default()),
            in_flight: RefCell::new(HashSet::new()),
            local_busy: RefCell::new(HashSet::new()),
            stopping: Cell::new(false),
            on_wake: RefCell::new(None),
        }))
    }

    /// Asks for a full queue run soon (`tern flush`, reload, sendmail).
    pub fn kick(&self) {
        self.full.set(true);
        let _ = self.kick_tx.try_send(());
    }

    /// A message was just committed: look at it soon, without re-reading
    /// the rest of the queue.
    pub fn notify_new(&self, id: &str) {
        self.fresh.borrow_mut().push(id.to_string());
        let _ = self.kick_tx.try_send(());
    }

    /// A delivery session ended: start waiting work on the freed slot.
    fn poke(&self) {
        let _ = self.kick_tx.try_send(());
    }

    /// Replaces tables and settings for deliveries started from now on.
    pub fn reload(&self, cfg: Rc<Config>) -> Result<(), String> {
        let pool = self.ctx.borrow().pool.clone();
        let ctx = context(cfg, pool)?;
        *self.ctx.borrow_mut() = Rc::new(ctx);
        self.kick();
        Ok(())
    }

    /// Puts a context built by [`context`] in place (SIGHUP, once every
    /// part of the new configuration has loaded) and asks for a full run.
    pub fn install(&self, ctx: Context) {
        *self.ctx.borrow_mut() = Rc::new(ctx);
        self.kick();
    }

    /// Runs `f` on every wake-up request from now on (the pickup's trigger).
    pub fn set_on_wake(&self, f: Box<dyn Fn()>) {
        *self.on_wake.borrow_mut() = Some(f);
    }

    /// Starts no new deliveries (shutdown).
    pub fn stop(&self) {
        self.stopping.set(true);
    }

    /// Messages in local delivery now (shutdown waits for them: a home
    /// Maildir write the helper is doing should be recorded).
    pub fn local_deliveries(&self) -> usize {
        self.local_busy.borrow().len()
    }

    /// Spawns the scheduler and the wake-up socket listener.
    pub fn spawn(
        self: Rc<Self>,
        ex: &Rc<LocalExecutor<'static>>,
        queue_dir: &Path,
    ) -> Result<(), String> {
        let wake =
            queue::wake::Listener::bind(queue_dir).map_err(|e| format!("wake-up socket: {e}"))?;
        let me = self.clone();
        ex.spawn(async move {
            loop {
                let w = wake.recv().await;
                if w.is_ok() {
                    if let Some(f) = me.on_wake.borrow().as_ref() {
                        f();
                    }
                }
                match w {
                    Ok(queue::wake::Wake::Flush) => {
                        log::info!(target: "qmgr", "flush requested: retrying every deferred message now");
                        me.slots.borrow_mut().revive_all();
                        me.flush_deferred();
                        me.kick();
                    }
                    Ok(_) => me.kick(),
                    Err(e) => {
                        log::warn!(target: "qmgr", "wake-up socket: {e}");
                        smol::Timer::after(Duration::from_secs(1)).await;
                    }
                }
            }
        })
        .detach();
        let ex2 = ex.clone();
        ex.spawn(async move { self.run(ex2).await }).detach();
        Ok(())
    }

    /// Makes every deferred recipient due now (`tern flush`).
    fn flush_deferred(&self) {
        let Ok(report) = self.spool.scan() else {
            return;
        };
        let now = queue::clock::now();
        for e in report.entries {
            let due: Vec<(usize, Outcome)> = e
                .rcpts
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match r.status {
                    Status::Deferred { until } if until > now => Some((
                        i,
                        Outcome::Deferred {
                            until: now,
                            text: r.last_text.clone(),
                        },
                    )),
                    _ => None,
                })
                .collect();
            if !due.is_empty() && !self.busy(e.id()) {
                if let Err(err) = self.spool.record(e.id(), &due, now) {
                    log::warn!(target: "qmgr", "{}: flush: {err}", e.id());
                }
            }
        }
    }

    /// Is the message in an SMTP session or in local delivery?
    fn busy(&self, id: &str) -> bool {
        self.in_flight.borrow().contains(id) || self.local_busy.borrow().contains(id)
    }

    async fn run(self: Rc<Self>, ex: Rc<LocalExecutor<'static>>) {
        loop {
            if self.stopping.get() {
                return;
            }
            let full = self.full.replace(false);
            self.queue_run(&ex, full);
            let delay = self
                .ctx
                .borrow()
                .cfg
                .time("queue_run_delay")
                .max(Duration::from_secs(1));
            let now = queue::clock::now();
            let wait = self
                .earliest_due
                .get()
                .map(|t| Duration::from_secs(t.saturating_sub(now)).min(delay))
                .unwrap_or(delay);
            let kicked = smol::future::or(
                async {
                    let _ = self.kick_rx.recv().await;
                    true
                },
                async {
                    smol::Timer::after(wait).await;
                    false
                },
            )
            .await;
            if !kicked {
                // Deferred mail fell due, or the periodic queue scan.
                self.full.set(true);
            }
            // Fold a burst of kicks (many messages arriving) into one run.
            smol::Timer::after(Duration::from_millis(20)).await;
            while self.kick_rx.try_recv().is_ok() {}
        }
    }

    /// One pass over the queue (`full`) or over the messages named in
    /// `fresh`; updates `earliest_due`.
    fn queue_run(self: &Rc<Self>, ex: &Rc<LocalExecutor<'static>>, full: bool) {
        let entries: Vec<QueueEntry> = if full {
            self.fresh.borrow_mut().clear();
            self.earliest_due.set(None);
            match self.spool.scan() {
                Ok(r) => r.entries,
                Err(e) => {
                    log::error!(target: "qmgr", "queue scan failed: {e}");
                    return;
                }
            }
        } else {
            let mut ids = std::mem::take(&mut *self.fresh.borrow_mut());
            ids.sort();
            ids.dedup();
            ids.iter()
                .filter_map(|id| match self.spool.scan_one(id) {
                    Ok(e) => e,
                    Err(e) => {
                        log::warn!(target: "qmgr", "{id}: {e}");
                        None
                    }
                })
                .collect()
        };
        let ctx = self.ctx.borrow().clone();
        let cfg = &ctx.cfg;
        let now = queue::clock::now();
        let local: Vec<String> = cfg.list("mydestination").map(str::to_string).collect();
        let router = Router {
            transport: &ctx.tables.transport,
            local_domains: &local,
            relayhost: cfg.get("relayhost"),
            wrappermode: cfg.bool("smtp_tls_wrappermode"),
        };
        let mut next_due: Option<u64> = None;
        // (destination, implicit TLS) -> messages, in queue order.
        let mut plan: BTreeMap<(String, bool), Vec<MessageJob>> = BTreeMap::new();
        for entry in entries {
            if self.busy(entry.id()) {
                continue;
            }
            let Some(due) = entry.next_attempt else {
                self.finish(&entry);
                continue;
            };
            if schedule::expired(
                entry.envelope.arrival,
                now,
                cfg.time("maximal_queue_lifetime"),
            ) && entry.rcpts.iter().any(|r| r.attempts > 0)
            {
                self.expire(&ctx, &entry, now);
                continue;
            }
            if due > now {
                next_due = Some(next_due.map_or(due, |n| n.min(due)));
                continue;
            }
            let mut immediate: Vec<(usize, Outcome, RcptResult)> = Vec::new();
            let mut local_rcpts: Vec<usize> = Vec::new();
            for (i, (rcpt, st)) in entry
                .envelope
                .recipients
                .iter()
                .zip(&entry.rcpts)
                .enumerate()
            {
                let pending = match st.status {
                    Status::Pending => true,
                    Status::Deferred { until } => until <= now,
                    _ => false,
                };
                if !pending {
                    continue;
                }
                match router.route(&rcpt.address) {
                    Route::Smtp {
                        nexthop,
                        implicit_tls,
                    } => {
                        let jobs = plan.entry((nexthop, implicit_tls)).or_default();
                        match jobs.iter_mut().find(|j| j.id == entry.id()) {
                            Some(j) => j.rcpts.push((i, rcpt.address.clone())),
                            None => jobs.push(MessageJob::from_entry(
                                &entry,
                                vec![(i, rcpt.address.clone())],
                            )),
                        }
                    }
                    Route::Local => local_rcpts.push(i),
                    Route::Error(text) => immediate.push((
                        i,
                        Outcome::Bounced { text: text.clone() },
                        RcptResult::new(
                            ResultKind::Bounced,
                            "none",
                            &dsn_in(&text, "5.0.0"),
                            &text,
                        ),
                    )),
                    Route::Retry(text) => {
                        let until = now
                            + schedule::backoff(
                                st.attempts + 1,
                                cfg.time("minimal_backoff_time"),
                                cfg.time("maximal_backoff_time"),
                                schedule::seed(entry.id()),
                            )
                            .as_secs();
                        immediate.push((
                            i,
                            Outcome::Deferred {
                                until,
                                text: text.clone(),
                            },
                            RcptResult::new(
                                ResultKind::Deferred,
                                "none",
                                &dsn_in(&text, "4.0.0"),
                                &text,
                            ),
                        ));
                    }
                    Route::Discard(text) => immediate.push((
                        i,
                        Outcome::Delivered { text: text.clone() },
                        RcptResult::new(ResultKind::Sent, "none", "2.0.0", &text),
                    )),
                }
            }
            if !immediate.is_empty() {
                let job = MessageJob::from_entry(&entry, Vec::new());
                self.record(&ctx, &job, immediate, now, true);
            }
            if !local_rcpts.is_empty() {
                if self.local_busy.borrow().len() >= LOCAL_CONCURRENCY {
                    // Looked at again when a local delivery ends.
                    self.fresh.borrow_mut().push(entry.id().to_string());
                } else {
                    self.spawn_local(ex, &ctx, entry, local_rcpts);
                }
            }
        }
        let per_dest = u32::try_from(cfg.int("default_destination_concurrency_limit"))
            .unwrap_or(4)
            .max(1);
        // Outbound sessions may use at most half the pool: inbound mail
        // must still find a slot while the WAN is slow.
        let total = u32::try_from(ctx.pool.capacity() / 2).unwrap_or(1).max(1);
        for ((dest, implicit_tls), jobs) in plan {
            if self.stopping.get() {
                break;
            }
            if let Some(why) = self
                .slots
                .borrow_mut()
                .dead_reason(&dest, now)
                .map(str::to_string)
            {
                for job in jobs {
                    let results = job
                        .rcpts
                        .iter()
                        .map(|(i, _)| {
                            let text = format!("delivery temporarily suspended: {why}");
                            (
                                *i,
                                RcptResult::new(ResultKind::Deferred, "none", "4.4.1", &text),
                            )
                        })
                        .collect();
                    self.apply(&ctx, &job, results);
                }
                continue;
            }
            // Split the destination's messages over up to `per_dest`
            // sessions; each session reuses its connection for its share.
            let n = jobs.len().min(per_dest as usize).max(1);
            let mut shares: Vec<Vec<MessageJob>> = (0..n).map(|_| Vec::new()).collect();
            for (k, j) in jobs.into_iter().enumerate() {
                shares[k % n].push(j);
            }
            let mut no_slot = false;
            for share in shares {
                if no_slot || !self.slots.borrow_mut().acquire(&dest, per_dest, total) {
                    // Looked at again when a slot frees.
                    no_slot = true;
                    self.fresh
                        .borrow_mut()
                        .extend(share.iter().map(|j| j.id.clone()));
                    continue;
                }
                for j in &share {
                    self.in_flight.borrow_mut().insert(j.id.clone());
                }
                let me = self.clone();
                let ctx2 = ctx.clone();
                let dest2 = dest.clone();
                ex.spawn(async move {
                    let started = Instant::now();
                    let delivery =
                        Delivery::new(ctx2.clone(), dest2.clone()).implicit_tls(implicit_tls);
                    let results = delivery.run(&me.spool, &share).await;
                    if let Some(why) = results.dead_destination {
                        // Postfix's qmgr unthrottles a dead destination after
                        // minimal_backoff_time (qmgr_queue_throttle); a fixed
                        // minute kept mail waiting long after the WAN was back.
                        let wait = ctx2.cfg.time("minimal_backoff_time").as_secs().max(1);
                        let until = queue::clock::now() + wait;
                        me.slots.borrow_mut().mark_dead(&dest2, until, &why);
                    }
                    for (job, res) in share.iter().zip(results.per_message) {
                        me.apply(&ctx2, job, res);
                        me.in_flight.borrow_mut().remove(&job.id);
                    }
                    me.slots.borrow_mut().release(&dest2);
                    log::debug!(target: "qmgr", "{dest2}: session done in {:?}", started.elapsed());
                    me.poke();
                })
                .detach();
            }
        }
        if let Some(t) = next_due {
            self.note_due(t);
        }
    }

    /// Local delivery (aliases, Maildir) of `rcpts` of `entry` in a task
    /// of its own: a home Maildir is written by the root helper, whose
    /// answer the task awaits while sessions and other deliveries go on.
    fn spawn_local(
        self: &Rc<Self>,
        ex: &Rc<LocalExecutor<'static>>,
        ctx: &Rc<Context>,
        entry: QueueEntry,
        rcpts: Vec<usize>,
    ) {
        let picked = SystemTime::now();
        self.local_busy.borrow_mut().insert(entry.id().to_string());
        let me = self.clone();
        let ctx = ctx.clone();
        ex.spawn(async move {
            let results = ctx.local.deliver(&me.spool, &entry, &rcpts, picked).await;
            let mut out = Vec::with_capacity(results.len());
            for lr in results {
                for line in &lr.log {
                    log::info!(target: "local", "{line}");
                }
                if lr.requeued {
                    me.kick();
                }
                out.push((lr.index, lr.result));
            }
            if !out.is_empty() {
                me.apply(&ctx, &MessageJob::from_entry(&entry, Vec::new()), out);
            }
            me.local_busy.borrow_mut().remove(entry.id());
            me.poke();
        })
        .detach();
    }

    fn note_due(&self, t: u64) {
        self.earliest_due
            .set(Some(self.earliest_due.get().map_or(t, |e| e.min(t))));
    }

    /// Turns delivery results into durable outcomes, log lines and bounces.
    fn apply(&self, ctx: &Context, job: &MessageJob, results: Vec<(usize, RcptResult)>) {
        let now = queue::clock::now();
        let cfg = &ctx.cfg;
        let mut out = Vec::with_capacity(results.len());
        for (i, r) in results {
            let attempts = job.attempts.get(i).copied().unwrap_or(0) + 1;
            let outcome = match r.kind {
                ResultKind::Sent => Outcome::Delivered {
                    text: r.text.clone(),
                },
                ResultKind::Bounced => Outcome::Bounced {
                    text: r.text.clone(),
                },
                ResultKind::Deferred => {
                    let wait = schedule::backoff(
                        attempts,
                        cfg.time("minimal_backoff_time"),
                        cfg.time("maximal_backoff_time"),
                        schedule::seed(&job.id),
                    );
                    Outcome::Deferred {
                        until: now + wait.as_secs(),
                        text: r.text.clone(),
                    }
                }
            };
            out.push((i, outcome, r));
        }
        self.record(ctx, job, out, now, true);
    }

    /// Records outcomes durably; logs one line per recipient unless
    /// `per_rcpt_lines` is false (expiry), then bounces what bounced.
    fn record(
        &self,
        ctx: &Context,
        job: &MessageJob,
        results: Vec<(usize, Outcome, RcptResult)>,
        now: u64,
        per_rcpt_lines: bool,
    ) {
        let mut outcomes = Vec::with_capacity(results.len());
        let mut bounced: Vec<(String, RcptResult)> = Vec::new();
        let arrival = arrival_time(&job.id, job.arrival);
        let wall = SystemTime::now();
        for (i, outcome, r) in results {
            let rcpt = job.all_rcpts.get(i).cloned().unwrap_or_default();
            let status = match r.kind {
                ResultKind::Sent => "sent",
                ResultKind::Deferred => "deferred",
                ResultKind::Bounced => "bounced",
            };
            // Local delivery logged its own lines (with orig_to=); expiry
            // logs one qmgr line for the message instead.
            if r.relay != "local" && per_rcpt_lines {
                let conn_use = if r.conn_use > 1 {
                    format!(", conn_use={}", r.conn_use)
                } else {
                    String::new()
                };
                log::info!(
                    target: "smtp",
                    "{}: to=<{}>, relay={}{conn_use}, {}, dsn={}, status={} ({})",
                    job.id,
                    rcpt,
                    r.relay,
                    r.timing(arrival, job.picked, wall).fields(),
                    r.dsn,
                    status,
                    r.text
                );
            }
            if r.kind == ResultKind::Bounced {
                bounced.push((rcpt, r));
            }
            outcomes.push((i, outcome));
        }
        // Delivered to the last open recipients: remove the message
        // without recording first (docs/spool.md: saves one fdatasync and,
        // for a first attempt, the state log's directory fsync; a crash
        // before the unlink is on flash re-delivers only these recipients).
        if bounced.is_empty()
            && outcomes
                .iter()
                .all(|(_, o)| matches!(o, Outcome::Delivered { .. }))
        {
            if let Ok(Some(entry)) = self.spool.scan_one(&job.id) {
                let done = entry.rcpts.iter().enumerate().all(|(i, r)| {
                    outcomes.iter().any(|(j, _)| *j == i)
                        || !matches!(r.status, Status::Pending | Status::Deferred { .. })
                });
                if done {
                    self.finish(&entry);
                    return;
                }
            }
        }
        // Refresh the state from disk to learn whether every recipient is
        // now final.
        if let Err(e) = self.spool.record(&job.id, &outcomes, now) {
            log::error!(target: "qmgr", "{}: cannot record delivery status: {e}", job.id);
            return;
        }
        if !bounced.is_empty() {
            self.send_bounce(ctx, job, &bounced, Action::Failed);
        }
        match self.spool.scan_one(&job.id) {
            Ok(Some(entry)) => match entry.next_attempt.inspect(|t| self.note_due(*t)) {
                None => self.finish(&entry),
                Some(t) if t > now && entry.dir == QueueDir::Active => {
                    if let Err(e) = self.spool.move_to(&job.id, QueueDir::Deferred) {
                        log::warn!(target: "qmgr", "{}: {e}", job.id);
                    }
                }
                Some(_) => {}
            },
            Ok(None) => {}
            Err(e) => log::warn!(target: "qmgr", "{}: {e}", job.id),
        }
    }

    fn finish(&self, entry: &QueueEntry) {
        match self.spool.remove(entry.id()) {
            Ok(()) => log::info!(target: "qmgr", "{}: removed", entry.id()),
            Err(e) => log::error!(target: "qmgr", "{}: cannot remove: {e}", entry.id()),
        }
    }

    /// Bounces every non-final recipient of a message that outlived
    /// `maximal_queue_lifetime`. As Postfix's qmgr, one line for the
    /// message (`from=<sender>, status=expired, returned to sender`), no
    /// per-recipient lines (each deferral was logged when it happened);
    /// the DSN carries each recipient's last reason.
    fn expire(&self, ctx: &Context, entry: &QueueEntry, now: u64) {
        let job = MessageJob::from_entry(entry, Vec::new());
        log::info!(
            target: "qmgr",
            "{}: from=<{}>, status=expired, returned to sender",
            job.id,
            job.sender
        );
        let results = entry
            .rcpts
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.status, Status::Pending | Status::Deferred { .. }))
            .map(|(i, r)| {
                let text = if r.last_text.is_empty() {
                    "message expired".to_string()
                } else {
                    format!("message expired: {}", r.last_text)
                };
                (
                    i,
                    Outcome::Bounced { text: text.clone() },
                    RcptResult::new(ResultKind::Bounced, "none", "4.4.7", &text),
                )
            })
            .collect();
        self.record(ctx, &job, results, now, false);
    }

    /// Queues a DSN to the sender, unless the message is itself a bounce or
    /// has the null sender (never bounce a bounce).
    fn send_bounce(
        &self,
        ctx: &Context,
        job: &MessageJob,
        failed: &[(String, RcptResult)],
        action: Action,
    ) {
        if job.sender.is_empty() || job.is_bounce {
            log::info!(target: "bounce", "{}: not bouncing: the message is a bounce or has a null sender", job.id);
            return;
        }
        let cfg = &ctx.cfg;
        let host = cfg.get("myhostname");
        let limit = usize::try_from(cfg.int("bounce_size_limit")).unwrap_or(50_000);
        let (original, headers_only) = match self.read_original(&job.id, limit) {
            Ok(x) => x,
            Err(e) => {
                log::error!(target: "bounce", "{}: cannot read the message for the bounce: {e}", job.id);
                return;
            }
        };
        let now = queue::clock::now();
        let statuses: Vec<RecipientStatus<'_>> = failed
            .iter()
            .map(|(rcpt, r)| RecipientStatus {
                final_rcpt: rcpt,
                original_rcpt: None,
                action,
                status: &r.dsn,
                remote_mta: r.remote_mta.as_deref(),
                diagnostic: &r.text,
                diagnostic_is_smtp: r.remote_mta.is_some(),
            })
            .collect();
        let unique = format!("{now}");
        let report = bounce::Report {
            myhostname: host,
            queue_id: &job.id,
            sender: &job.sender,
            arrival_date: &crate::queue::clock::local(job.arrival).rfc5322(),
            date: &crate::queue::clock::local(now).rfc5322(),
            unique: &unique,
            recipients: &statuses,
            headers_only,
        };
        let text = bounce::render(&report, &original);
        let rcpts = [Recipient::new(&job.sender)];
        let made = self
            .spool
            .create(&NewMessage {
                sender: "",
                recipients: &rcpts,
                arrival: now,
                client: "local",
                flags: Flags { bounce: true },
                size_limit: 0,
                deferred: false,
            })
            .and_then(|mut inc| {
                inc.write(&text)?;
                inc.commit()
            });
        match made {
            Ok(id) => {
                log::info!(target: "bounce", "{}: sender non-delivery notification: {id}", job.id);
                // As Postfix's qmgr does for every new message: pflogsumm
                // takes the size of delivered mail from this line.
                log::info!(target: "qmgr", "{id}: from=<>, size={}, nrcpt=1 (queue active)", text.len());
                self.notify_new(&id);
            }
            Err(e) => log::error!(target: "bounce", "{}: cannot queue the bounce: {e}", job.id),
        }
    }

    /// The original message, cut to `limit` bytes at a line end; headers
    /// only when it is larger than that (Postfix's bounce_size_limit).
    fn read_original(&self, id: &str, limit: usize) -> Result<(Vec<u8>, bool), String> {
        use std::io::Read;
        let mut r = self.spool.open_message(id).map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(limit.min(64 * 1024));
        (&mut r)
            .take(limit as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| e.to_string())?;
        if buf.len() <= limit {
            return Ok((buf, false));
        }
        let end = find_header_end(&buf).unwrap_or(buf.len().min(limit));
        buf.truncate(end);
        Ok((buf, true))
    }
}

fn find_header_end(b: &[u8]) -> Option<usize> {
    b.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| b.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
}

/// The enhanced status code at the start of an error text, or `fallback`.
fn dsn_in(text: &str, fallback: &str) -> String {
    let first = text.split_whitespace().next().unwrap_or("");
    let parts: Vec<&str> = first.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && matches!(parts[0], "2" | "4" | "5")
    {
        first.to_string()
    } else {
        fallback.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_from_text() {
        assert_eq!(dsn_in("5.1.2 no thanks", "5.0.0"), "5.1.2");
        assert_eq!(dsn_in("no thanks", "5.0.0"), "5.0.0");
        assert_eq!(dsn_in("9.1.1 x", "4.0.0"), "4.0.0");
    }

    #[test]
    fn header_end() {
        assert_eq!(find_header_end(b"A: b\r\n\r\nbody"), Some(6));
        assert_eq!(find_header_end(b"A: b\n\nbody"), Some(5));
        assert_eq!(find_header_end(b"A: b"), None);
    }
}
