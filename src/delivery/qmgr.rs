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
use crate::queue::{
    self, Flags, NewMessage, Outcome, QueueDir, QueueEntry, Recipient, Spool, Status,
};
use crate::tls::BufferPool;

use super::bounce::{self, Action, RecipientStatus};
use super::client::Delivery;
use super::concurrency::Windows;
use super::context::{context, Context};
use super::results::{arrival_time, MessageJob, RcptResult, ResultKind};
use super::route::{Route, Router};
use super::schedule;

/// The queue manager.
pub struct QueueManager {
    ctx: RefCell<Rc<Context>>,
    spool: Rc<Spool>,
    kick_tx: Sender<()>,
    /// Also told of every wake-up datagram: the pickup (a non-root
    /// `sendmail` wakes the daemon for its maildrop file).
    on_wake: RefCell<Option<Box<dyn Fn()>>>,
    /// tern's own TLSRPT reporter (counters fed after each session,
    /// `tern tlsrpt` requests), when on. Kept here, not in the context:
    /// the counters outlive reloads.
    tlsrpt: RefCell<Option<Rc<crate::tlsrpt::daemon::Reporter>>>,
    kick_rx: Receiver<()>,
    /// The next run must read the whole spool (start, timer, flush, reload).
    full: Cell<bool>,
    /// Messages to look at in the next partial run: new arrivals, and due
    /// messages that found no free slot last time. Partial runs keep a
    /// busy queue from being re-read from flash for every arrival.
    fresh: RefCell<Vec<String>>,
    /// Earliest next attempt seen, for the scheduler's timer.
    earliest_due: Cell<Option<u64>>,
    /// Per-destination concurrency windows and open sessions.
    windows: RefCell<Windows>,
    in_flight: RefCell<HashSet<String>>,
    /// Messages in local delivery (a set of its own: a message can be in
    /// an SMTP session and in local delivery at once, and the session's
    /// end must not make it look free).
    local_busy: RefCell<HashSet<String>>,
    stopping: Cell<bool>,
    /// Outbound TLS results of the last 24 hours, for `tern status`.
    tally: Rc<crate::status::TlsTally>,
}

/// Messages in local delivery at a time. Home Maildirs are written one at
/// a time by the helper anyway; this bounds the queue files held open by
/// waiting deliveries (Postfix's default local_destination_concurrency_limit
/// is 2 too, per recipient; tern applies it to local delivery as a whole).
const LOCAL_CONCURRENCY: usize = 2;

/// What one queue run groups SMTP recipients by: (next hop, implicit
/// TLS, `TLS-Required: No`). Each key gets sessions of its own.
type PlanKey = (String, bool, bool);

/// How a session reaches its next hop, besides the destination.
#[derive(Debug, Clone, Copy)]
struct SessionRoute {
    /// Implicit TLS (RFC 8314) on every connection.
    implicit_tls: bool,
    /// Every message of the session has `TLS-Required: No`.
    tls_required_no: bool,
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
            windows: RefCell::new(Windows::default()),
            in_flight: RefCell::new(HashSet::new()),
            local_busy: RefCell::new(HashSet::new()),
            stopping: Cell::new(false),
            tally: Rc::default(),
            on_wake: RefCell::new(None),
            tlsrpt: RefCell::new(None),
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
        self.install(ctx);
        Ok(())
    }

    /// Puts a context built by [`context`] in place (SIGHUP, once every
    /// part of the new configuration has loaded) and asks for a full run.
    pub fn install(&self, mut ctx: Context) {
        // Policies fetched so far stay cached: a reload must not make every
        // domain's policy be fetched again (nor lose the in-use marks).
        ctx.sts
            .adopt_cache(&self.ctx.borrow().sts, crate::mtasts::resolver::unix_now());
        *self.ctx.borrow_mut() = Rc::new(ctx);
        self.kick();
    }

    /// The context deliveries started now use (the MTA-STS refresh task).
    pub fn context(&self) -> Rc<Context> {
        self.ctx.borrow().clone()
    }

    /// Feeds `r`'s counters from now on (`None`: reporting off).
    pub fn set_tlsrpt(&self, r: Option<Rc<crate::tlsrpt::daemon::Reporter>>) {
        *self.tlsrpt.borrow_mut() = r;
    }

    /// Runs `f` on every wake-up request from now on (the pickup's trigger).
    pub fn set_on_wake(&self, f: Box<dyn Fn()>) {
        *self.on_wake.borrow_mut() = Some(f);
    }

    /// Outbound TLS results of the last 24 hours (`tern status`).
    pub fn tls_tally(&self) -> Rc<crate::status::TlsTally> {
        self.tally.clone()
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
                        me.windows.borrow_mut().revive_all();
                        me.flush_deferred();
                        me.kick();
                    }
                    Ok(queue::wake::Wake::TlsRpt(r)) => {
                        match me.tlsrpt.borrow().as_ref() {
                            Some(t) => t.request(r),
                            None => log::warn!(target: "qmgr", "warning: tern tlsrpt: TLSRPT reports are off (smtp_tlsrpt_enable, smtp_tlsrpt_builtin_reports)"),
                        }
                    }
                    Ok(queue::wake::Wake::StsPurge(domain)) => {
                        // `tern sts purge` deleted the file(s): forget the
                        // policy so the next delivery fetches it again.
                        me.ctx.borrow().sts.purge(domain.as_deref());
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
        // Held messages stay held (hold/ is never delivered from).
        for e in report
            .entries
            .into_iter()
            .filter(|e| e.dir != QueueDir::Hold)
        {
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
        let Some(entries) = self.entries(full) else {
            return;
        };
        let ctx = self.ctx.borrow().clone();
        let now = queue::clock::now();
        let mut next_due: Option<u64> = None;
        // (destination, implicit TLS, TLS-Required: No) -> messages, in
        // queue order. Messages lowered by `TLS-Required: No` get sessions
        // of their own: a connection made at `may` never carries a message
        // whose policy asks for more, nor the other way round.
        let mut plan: BTreeMap<PlanKey, Vec<MessageJob>> = BTreeMap::new();
        for entry in entries {
            // hold/ is neither delivered from nor cleaned: what is there
            // waits for the owner (mailq shows it).
            if self.busy(entry.id()) || entry.dir == QueueDir::Hold {
                continue;
            }
            let Some(due) = entry.next_attempt else {
                self.finish(&entry);
                continue;
            };
            if schedule::expired(
                entry.envelope.arrival,
                now,
                ctx.settings.maximal_queue_lifetime,
            ) && entry.rcpts.iter().any(|r| r.attempts > 0)
            {
                self.expire(&ctx, &entry, now);
                continue;
            }
            if due > now {
                next_due = Some(next_due.map_or(due, |n| n.min(due)));
                continue;
            }
            self.route_entry(ex, &ctx, entry, now, &mut plan);
        }
        for ((dest, implicit_tls, tls_required_no), jobs) in plan {
            if self.stopping.get() {
                break;
            }
            let route = SessionRoute {
                implicit_tls,
                tls_required_no,
            };
            self.dispatch(ex, &ctx, dest, route, jobs, now);
        }
        if let Some(t) = next_due {
            self.note_due(t);
        }
    }

    /// The messages a run looks at: the whole spool, or the fresh ones.
    fn entries(&self, full: bool) -> Option<Vec<QueueEntry>> {
        if full {
            self.fresh.borrow_mut().clear();
            self.earliest_due.set(None);
            return match self.spool.scan() {
                Ok(r) => Some(r.entries),
                Err(e) => {
                    log::error!(target: "qmgr", "queue scan failed: {e}");
                    None
                }
            };
        }
        let mut ids = std::mem::take(&mut *self.fresh.borrow_mut());
        ids.sort();
        ids.dedup();
        Some(
            ids.iter()
                .filter_map(|id| match self.spool.scan_one(id) {
                    Ok(e) => e,
                    Err(e) => {
                        log::warn!(target: "qmgr", "{id}: {e}");
                        None
                    }
                })
                .collect(),
        )
    }

    /// Routes the due recipients of one message: SMTP ones join `plan`
    /// under their next hop, local ones go to local delivery, routing
    /// decisions (error:, retry:, discard:) are recorded at once.
    fn route_entry(
        self: &Rc<Self>,
        ex: &Rc<LocalExecutor<'static>>,
        ctx: &Rc<Context>,
        entry: QueueEntry,
        now: u64,
        plan: &mut BTreeMap<PlanKey, Vec<MessageJob>>,
    ) {
        let set = &ctx.settings;
        let router = Router {
            transport: &ctx.tables.transport,
            local_domains: &set.mydestination,
            relayhost: &set.relayhost,
            wrappermode: set.wrappermode,
        };
        let mut immediate: Vec<(usize, Outcome, RcptResult)> = Vec::new();
        let mut local_rcpts: Vec<usize> = Vec::new();
        let recipients = entry.envelope.recipients.iter().zip(&entry.rcpts);
        for (i, (rcpt, st)) in recipients.enumerate() {
            let pending = match st.status {
                Status::Pending => true,
                Status::Deferred { until } => until <= now,
                _ => false,
            };
            if !pending {
                continue;
            }
            let (outcome, result) = match router.route(&rcpt.address) {
                Route::Smtp {
                    nexthop,
                    implicit_tls,
                } => {
                    let lowered = entry.envelope.flags.tls_required_no;
                    let jobs = plan.entry((nexthop, implicit_tls, lowered)).or_default();
                    match jobs.iter_mut().find(|j| j.id == entry.id()) {
                        Some(j) => j.rcpts.push((i, rcpt.address.clone())),
                        None => jobs.push(MessageJob::from_entry(
                            &entry,
                            vec![(i, rcpt.address.clone())],
                        )),
                    }
                    continue;
                }
                Route::Local => {
                    local_rcpts.push(i);
                    continue;
                }
                Route::Error(text) => (
                    Outcome::Bounced { text: text.clone() },
                    RcptResult::new(ResultKind::Bounced, "none", &dsn_in(&text, "5.0.0"), &text),
                ),
                Route::Retry(text) => {
                    let wait = schedule::backoff(
                        st.attempts + 1,
                        set.minimal_backoff_time,
                        set.maximal_backoff_time,
                        schedule::seed(entry.id()),
                    );
                    let result = RcptResult::new(
                        ResultKind::Deferred,
                        "none",
                        &dsn_in(&text, "4.0.0"),
                        &text,
                    );
                    let until = now + wait.as_secs();
                    (Outcome::Deferred { until, text }, result)
                }
                Route::Discard(text) => (
                    Outcome::Delivered { text: text.clone() },
                    RcptResult::new(ResultKind::Sent, "none", "2.0.0", &text),
                ),
            };
            immediate.push((i, outcome, result));
        }
        if !immediate.is_empty() {
            let job = MessageJob::from_entry(&entry, Vec::new());
            self.record(ctx, &job, immediate, now, true);
        }
        if !local_rcpts.is_empty() {
            if self.local_busy.borrow().len() >= LOCAL_CONCURRENCY {
                // Looked at again when a local delivery ends.
                self.fresh.borrow_mut().push(entry.id().to_string());
            } else {
                self.spawn_local(ex, ctx, entry, local_rcpts);
            }
        }
    }

    /// Starts sessions for one destination's messages, as many as its
    /// concurrency window has room for (and the total limit allows);
    /// defers them at once when the destination is dead. The messages
    /// are cut into shares as if every session up to the limit were
    /// open: what the sessions started now do not take waits in `fresh`
    /// (not covered by any connection) until a session ends or the
    /// window opens, so a growing backlog is what opens new connections.
    fn dispatch(
        self: &Rc<Self>,
        ex: &Rc<LocalExecutor<'static>>,
        ctx: &Rc<Context>,
        dest: String,
        route: SessionRoute,
        jobs: Vec<MessageJob>,
        now: u64,
    ) {
        let limits = ctx.settings.concurrency;
        // Outbound sessions may use at most half the pool: inbound mail
        // must still find a slot while the WAN is slow.
        let total = u32::try_from(ctx.pool.capacity() / 2).unwrap_or(1).max(1);
        let dead = self
            .windows
            .borrow_mut()
            .dead_reason(&dest, now)
            .map(str::to_string);
        if let Some(why) = dead {
            let text = format!("delivery temporarily suspended: {why}");
            for job in jobs {
                let results = job
                    .rcpts
                    .iter()
                    .map(|(i, _)| {
                        let r = RcptResult::new(ResultKind::Deferred, "none", "4.4.1", &text);
                        (*i, r)
                    })
                    .collect();
                self.apply(ctx, &job, results);
            }
            return;
        }
        let room = self.windows.borrow_mut().room(&dest, &limits, total, now);
        let share = super::concurrency::share_size(jobs.len(), limits.limit, total);
        let mut jobs = jobs.into_iter();
        for _ in 0..room {
            let share: Vec<MessageJob> = jobs.by_ref().take(share).collect();
            if share.is_empty() {
                break;
            }
            if !self
                .windows
                .borrow_mut()
                .acquire(&dest, &limits, total, now)
            {
                self.fresh
                    .borrow_mut()
                    .extend(share.iter().map(|j| j.id.clone()));
                break;
            }
            for j in &share {
                self.in_flight.borrow_mut().insert(j.id.clone());
            }
            let me = self.clone();
            let ctx = ctx.clone();
            let dest = dest.clone();
            ex.spawn(async move { me.deliver(ctx, dest, route, share).await })
                .detach();
        }
        // Looked at again when a session ends or the window opens.
        self.fresh.borrow_mut().extend(jobs.map(|j| j.id));
    }

    /// A server answered for one message to `dest` (positive feedback):
    /// the window may open; if it did and mail is waiting, start more.
    fn delivered_one(&self, ctx: &Context, dest: &str) {
        let limits = &ctx.settings.concurrency;
        let c = self.windows.borrow_mut().positive(dest, limits);
        if ctx.settings.concurrency_debug {
            let line = self
                .windows
                .borrow()
                .debug_line("qmgr_queue_unthrottle", dest, limits);
            log::info!(target: "qmgr", "{line}");
        }
        if (c.after > c.before || c.revived) && !self.fresh.borrow().is_empty() {
            self.poke();
        }
    }

    /// One delivery session's task: run it, record its results, hand its
    /// TLS attempts to the report sink, free its slot.
    async fn deliver(
        self: Rc<Self>,
        ctx: Rc<Context>,
        dest: String,
        route: SessionRoute,
        share: Vec<MessageJob>,
    ) {
        let started = Instant::now();
        let feedback: Rc<dyn Fn()> = {
            let (me, ctx, dest) = (self.clone(), ctx.clone(), dest.clone());
            Rc::new(move || me.delivered_one(&ctx, &dest))
        };
        // Messages the server took are recorded at once (their results
        // would otherwise wait for the end of the session, and a crash
        // before it would send them all again).
        let recorded: Rc<RefCell<HashSet<String>>> = Rc::default();
        let (me, c, done) = (self.clone(), ctx.clone(), recorded.clone());
        let delivery = Delivery::new(ctx.clone(), dest.clone())
            .implicit_tls(route.implicit_tls)
            .tls_required_no(route.tls_required_no)
            .on_delivered(feedback)
            .on_sent(Box::new(move |job, res| {
                me.apply(&c, job, res.to_vec());
                done.borrow_mut().insert(job.id.clone());
            }));
        let results = delivery.run(&self.spool, &share).await;
        for a in &results.tls_attempts {
            ctx.reports.record(a);
            crate::delivery::report::TlsReportSink::record(&*self.tally, a);
        }
        if results.tls_attempts.is_empty()
            && results.connected.is_some()
            && results
                .per_message
                .iter()
                .flatten()
                .any(|(_, r)| r.kind == ResultKind::Sent)
        {
            self.tally.plaintext_at(crate::mtasts::resolver::unix_now());
        }
        // RFC 8460 §3: the sessions that deliver reports are not counted
        // in the next report. Report messages are told by their envelope
        // sender; RFC 8689 keeps them on connections of their own.
        if let Some(t) = self.tlsrpt.borrow().as_ref() {
            let sender = ctx.cfg.get("smtp_tlsrpt_report_sender");
            if !share.iter().all(|j| j.sender.eq_ignore_ascii_case(sender)) {
                for a in &results.tls_attempts {
                    crate::delivery::report::TlsReportSink::record(&*t.counters, a);
                }
            }
        }
        drop(delivery);
        if let Some(why) = results.site_failure {
            // Negative feedback. A destination declared dead stays so until
            // minimal_backoff_time has passed, as Postfix's
            // qmgr_queue_throttle (a fixed minute kept mail waiting long
            // after the WAN was back).
            let limits = &ctx.settings.concurrency;
            let wait = ctx.settings.minimal_backoff_time.as_secs().max(1);
            let until = queue::clock::now() + wait;
            self.windows
                .borrow_mut()
                .negative(&dest, limits, until, &why);
            if ctx.settings.concurrency_debug {
                let line = self
                    .windows
                    .borrow()
                    .debug_line("qmgr_queue_throttle", &dest, limits);
                log::info!(target: "qmgr", "{line}");
            }
        }
        for (job, res) in share.iter().zip(results.per_message) {
            if !recorded.borrow().contains(&job.id) {
                self.apply(&ctx, job, res);
            }
            self.in_flight.borrow_mut().remove(&job.id);
        }
        self.windows.borrow_mut().release(&dest);
        log::debug!(target: "qmgr", "{dest}: session done in {:?}", started.elapsed());
        self.poke();
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
        if results.is_empty() {
            // Not attempted (held or deleted meanwhile): nothing to record.
            return;
        }
        let now = queue::clock::now();
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
                        ctx.settings.minimal_backoff_time,
                        ctx.settings.maximal_backoff_time,
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
        if !bounced.is_empty() && self.is_double_bounce(ctx, job) {
            self.hold_undeliverable(ctx, job, outcomes, now);
            return;
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
        if !bounced.is_empty() && !self.send_bounce(ctx, job, &bounced, Action::Failed) {
            // The notification could not be queued: keep the message
            // itself rather than lose the only trace of the failure.
            match self.spool.hold(&job.id) {
                Ok(()) => {
                    log::warn!(target: "qmgr", "warning: {}: held: its non-delivery notification could not be queued", job.id)
                }
                Err(e) => log::error!(target: "qmgr", "{}: cannot hold: {e}", job.id),
            }
            return;
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

    /// A postmaster notification about an undeliverable bounce (or mail
    /// from the double-bounce address, as Postfix recognises it): never
    /// bounced, held when it cannot be delivered.
    fn is_double_bounce(&self, ctx: &Context, job: &MessageJob) -> bool {
        job.flags.double_bounce
            || (!ctx.settings.double_bounce_sender.is_empty()
                && job
                    .sender
                    .eq_ignore_ascii_case(&ctx.settings.double_bounce_sender))
    }

    /// Keeps a double bounce that could not be delivered: into `hold/`
    /// first (durably), then its outcomes recorded there, so that a crash
    /// in between leaves it held with its recipients still open, never
    /// back in the queue with every recipient final (a scan would remove
    /// it). Then at most `undeliverable_bounce_hold_limit` of them stay:
    /// the oldest beyond that are removed, each with a log line.
    fn hold_undeliverable(
        &self,
        ctx: &Context,
        job: &MessageJob,
        outcomes: Vec<(usize, Outcome)>,
        now: u64,
    ) {
        let origin = job.flags.origin.as_deref().unwrap_or(&job.id);
        if let Err(e) = self.spool.hold(&job.id) {
            // Not held: try again later rather than record it as final.
            log::error!(target: "qmgr", "{}: cannot move the undeliverable postmaster notification to hold/: {e}; retrying later", job.id);
            let later = now + ctx.settings.maximal_backoff_time.as_secs().max(1);
            let retry: Vec<(usize, Outcome)> = outcomes
                .into_iter()
                .map(|(i, o)| match o {
                    Outcome::Bounced { text } => (i, Outcome::Deferred { until: later, text }),
                    other => (i, other),
                })
                .collect();
            if let Err(e) = self.spool.record(&job.id, &retry, now) {
                log::error!(target: "qmgr", "{}: cannot record delivery status: {e}", job.id);
            }
            self.note_due(later);
            return;
        }
        if let Err(e) = self.spool.record(&job.id, &outcomes, now) {
            // Held all the same; mailq shows the last deferral instead.
            log::error!(target: "qmgr", "{}: cannot record delivery status: {e}", job.id);
        }
        log::warn!(
            target: "qmgr",
            "warning: {}: undeliverable postmaster notification held, original queue ID {origin} (hold/{}: listed by mailq)",
            job.id,
            job.id
        );
        let limit = ctx.settings.bounce_hold_limit;
        let held: Vec<QueueEntry> = match self.spool.held() {
            Ok(h) => h
                .into_iter()
                .filter(|e| {
                    e.envelope.flags.double_bounce
                        || e.envelope
                            .sender
                            .eq_ignore_ascii_case(&ctx.settings.double_bounce_sender)
                })
                .collect(),
            Err(e) => {
                log::warn!(target: "qmgr", "hold/: {e}");
                return;
            }
        };
        let excess = held.len().saturating_sub(limit);
        for old in held.iter().take(excess) {
            let o = old.envelope.flags.origin.as_deref().unwrap_or(old.id());
            match self.spool.remove(old.id()) {
                Ok(()) => log::warn!(
                    target: "qmgr",
                    "warning: {}: undeliverable postmaster notification discarded, original queue ID {o}: undeliverable_bounce_hold_limit = {limit} reached",
                    old.id()
                ),
                Err(e) => {
                    log::error!(target: "qmgr", "{}: cannot remove from hold/: {e}", old.id())
                }
            }
        }
    }

    /// Queues a DSN to the sender. A message that is itself a bounce or
    /// has the null sender is never bounced to its sender: the postmaster
    /// gets a double bounce instead (Postfix's 2bounce notice, which
    /// tern always sends). False when the notification could not be
    /// queued.
    fn send_bounce(
        &self,
        ctx: &Context,
        job: &MessageJob,
        failed: &[(String, RcptResult)],
        action: Action,
    ) -> bool {
        if job.sender.is_empty() || job.is_bounce {
            log::info!(target: "bounce", "{}: not bouncing: the message is a bounce or has a null sender", job.id);
            return self.send_double_bounce(ctx, job, failed);
        }
        let host = ctx.settings.myhostname.as_str();
        let limit = ctx.settings.bounce_size_limit;
        let (original, headers_only) = match self.read_original(&job.id, limit) {
            Ok(x) => x,
            Err(e) => {
                log::error!(target: "bounce", "{}: cannot read the message for the bounce: {e}", job.id);
                return false;
            }
        };
        let now = queue::clock::now();
        let statuses = recipient_statuses(failed, action);
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
        let flags = Flags {
            bounce: true,
            double_bounce: false,
            origin: Some(job.flags.origin.clone().unwrap_or_else(|| job.id.clone())),
            // The DSN returns the original header (a `TLS-Required: No`
            // among it) as its content, but its own header has none: the
            // sender's domain keeps its policy for it (docs/policy.md).
            tls_required_no: false,
        };
        match self.queue_notification("", &rcpts, flags, &text) {
            Ok(id) => {
                log::info!(target: "bounce", "{}: sender non-delivery notification: {id}", job.id);
                self.announce(&id, "", text.len());
                true
            }
            Err(e) => {
                log::error!(target: "bounce", "{}: cannot queue the bounce: {e}", job.id);
                false
            }
        }
    }

    /// Queues Postfix's double bounce: the reasons a bounce (or a
    /// null-sender message) could not be delivered and its headers, from
    /// `double_bounce_sender` to `2bounce_notice_recipient`. False when it
    /// could not be queued (or there is no recipient for it).
    fn send_double_bounce(
        &self,
        ctx: &Context,
        job: &MessageJob,
        failed: &[(String, RcptResult)],
    ) -> bool {
        let set = &ctx.settings;
        let to = set.double_bounce_recipient.as_str();
        if to.is_empty() {
            log::warn!(target: "bounce", "warning: {}: 2bounce_notice_recipient is empty: no postmaster notification", job.id);
            return false;
        }
        // Headers only: the postmaster needs to see what failed, not the
        // returned message again (Postfix: DSN_RET_HDRS).
        let original = match self.read_original(&job.id, set.bounce_size_limit) {
            Ok((mut buf, _)) => {
                if let Some(end) = find_header_end(&buf) {
                    buf.truncate(end);
                }
                buf
            }
            Err(e) => {
                log::error!(target: "bounce", "{}: cannot read the message for the postmaster notification: {e}", job.id);
                return false;
            }
        };
        let now = queue::clock::now();
        let statuses = recipient_statuses(failed, Action::Failed);
        let unique = format!("{now}");
        let report = bounce::Report {
            myhostname: &set.myhostname,
            queue_id: &job.id,
            sender: &job.sender,
            arrival_date: &crate::queue::clock::local(job.arrival).rfc5322(),
            date: &crate::queue::clock::local(now).rfc5322(),
            unique: &unique,
            recipients: &statuses,
            headers_only: true,
        };
        let text = bounce::render_postmaster_copy(&report, to, &original);
        let rcpts = [Recipient::new(to)];
        let flags = Flags {
            bounce: true,
            double_bounce: true,
            origin: Some(job.flags.origin.clone().unwrap_or_else(|| job.id.clone())),
            tls_required_no: false,
        };
        match self.queue_notification(&set.double_bounce_sender, &rcpts, flags, &text) {
            Ok(id) => {
                log::info!(target: "bounce", "{}: postmaster non-delivery notification: {id}", job.id);
                self.announce(&id, &set.double_bounce_sender, text.len());
                true
            }
            Err(e) => {
                log::error!(target: "bounce", "{}: cannot queue the postmaster notification: {e}", job.id);
                false
            }
        }
    }

    /// Writes a notification into the queue and looks at it soon.
    fn queue_notification(
        &self,
        sender: &str,
        rcpts: &[Recipient],
        flags: Flags,
        text: &[u8],
    ) -> Result<String, queue::SpoolError> {
        let now = queue::clock::now();
        let id = self
            .spool
            .create(&NewMessage {
                sender,
                recipients: rcpts,
                arrival: now,
                client: "local",
                flags,
                size_limit: 0,
                deferred: false,
            })
            .and_then(|mut inc| {
                inc.write(text)?;
                inc.commit()
            })?;
        Ok(id)
    }

    /// After the bounce daemon's line: qmgr's line for the new message
    /// (as Postfix's qmgr logs every new message: pflogsumm takes the
    /// size of delivered mail from it), and a look at it soon.
    fn announce(&self, id: &str, sender: &str, size: usize) {
        log::info!(target: "qmgr", "{id}: from=<{sender}>, size={size}, nrcpt=1 (queue active)");
        self.notify_new(id);
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

/// The DSN per-recipient parts of the failed recipients.
fn recipient_statuses(failed: &[(String, RcptResult)], action: Action) -> Vec<RecipientStatus<'_>> {
    failed
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
        .collect()
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
