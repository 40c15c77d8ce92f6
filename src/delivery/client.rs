//! The outbound driver of one next hop: decides the policy, runs the hop
//! planner (`policy::plan`), performs the DNS lookups and connections it
//! asks for, and turns its outcome into a result for every recipient.
//! The connection itself is `session`'s.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::dns::RecordType;
use crate::policy::plan::{
    DnsInput, HostFailure, PlanEvent, PlanOutcome, Planner, Query, Skip, Step, StsInput, Target,
};
use crate::policy::{self, EffectivePolicy, Level, PolicyInputs};
use crate::queue::Spool;

use super::context::Context;
use super::results::{DeliveryResults, MessageJob, RcptResult, ResultKind};
use super::session::Conn;
use super::socketmap::{self, PolicyLookup};

/// A delivery session to one next hop.
pub struct Delivery {
    pub(super) ctx: Rc<Context>,
    pub(super) dest: String,
    /// `tern probe`: connect, EHLO, TLS, QUIT; record the peer's chain.
    pub(super) probing: bool,
    /// Implicit TLS on every connection (RFC 8314): the route said so
    /// (`smtps:` transport, `smtp_tls_wrappermode`); port 465 implies it.
    pub(super) implicit_tls: bool,
    /// Every message of this session has `TLS-Required: No` (RFC 8689):
    /// the level is lowered to `may` unless the route sends SMTP AUTH
    /// credentials ([`Delivery::tls_required_no`]).
    pub(super) tls_required_no: bool,
    /// The level was lowered for this session: a host that would get
    /// credentials gets none ([`Delivery::session_credentials`]).
    relaxed: std::cell::Cell<bool>,
    /// What a probe reports besides the handshake (planner events, DANE
    /// matches).
    notes: RefCell<Vec<String>>,
    /// Called when a server has answered for one message (the queue
    /// manager's positive concurrency feedback, as it happens).
    pub(super) on_delivered: Option<Rc<dyn Fn()>>,
    /// Called as soon as every recipient of a message was accepted by the
    /// server ([`Delivery::on_sent`]).
    pub(super) on_sent: Option<OnSent>,
}

/// The queue manager's hook for a message the server has taken whole: the
/// job and its results (all `Sent`).
pub type OnSent = Box<dyn Fn(&MessageJob, &[(usize, RcptResult)])>;

/// What the driver does with a planner step that needs the planner back.
enum Next {
    Dns(DnsInput),
    Connect(Target),
}

impl Delivery {
    /// A session for next hop `dest` (a domain or `[host]:port`).
    pub fn new(ctx: Rc<Context>, dest: String) -> Delivery {
        Delivery {
            ctx,
            dest,
            probing: false,
            implicit_tls: false,
            tls_required_no: false,
            relaxed: Default::default(),
            notes: Default::default(),
            on_delivered: None,
            on_sent: None,
        }
    }

    /// Runs `f` each time a server has answered for one message.
    pub fn on_delivered(mut self, f: Rc<dyn Fn()>) -> Delivery {
        self.on_delivered = Some(f);
        self
    }

    /// Hands each message whose recipients were all accepted to `f` the
    /// moment the server's replies are in, not when the whole session ends:
    /// a crash later in a long session on a reused connection must not
    /// re-deliver the messages it already handed over (docs/spool.md: a
    /// crash re-delivers at most what was in flight).
    pub fn on_sent(mut self, f: OnSent) -> Delivery {
        self.on_sent = Some(f);
        self
    }

    /// A probe of next hop `dest` (`tern probe`): the same resolution,
    /// policy, TLS configuration and verifier as a delivery, but no mail.
    pub fn probe(ctx: Rc<Context>, dest: String) -> Delivery {
        Delivery {
            probing: true,
            ..Delivery::new(ctx, dest)
        }
    }

    /// Sets implicit TLS for every connection of this delivery (from the
    /// route: `smtps:` transport or `smtp_tls_wrappermode`). A next hop
    /// without a port is then reached on 465.
    pub fn implicit_tls(mut self, on: bool) -> Delivery {
        self.implicit_tls = on;
        self
    }

    /// Marks the session's messages as `TLS-Required: No` (the queue
    /// manager never mixes them with others): the policy's level becomes
    /// `may` before the hop planner is built, MTA-STS and DANE are not
    /// consulted, unless the route sends SMTP AUTH credentials.
    pub fn tls_required_no(mut self, on: bool) -> Delivery {
        self.tls_required_no = on;
        self
    }

    /// Runs a probe made with [`Delivery::probe`]: tries the hosts in
    /// delivery order until one completes EHLO (and TLS, when offered or
    /// required), then says QUIT. `tls_established`, `peer_chain` and
    /// `tls_attempts` tell what happened; `dead_destination` why no host
    /// would talk.
    pub async fn run_probe(&self) -> DeliveryResults {
        self.run_jobs(None, &[]).await
    }

    /// The trust anchors for a connection at `level`: at `verify` and
    /// `secure`, an entry's `tafile=` files replace `smtp_tls_CAfile`
    /// (Postfix's trust-anchor semantics); an entry whose store is missing
    /// (cannot happen after a successful load) gets an empty one, so it
    /// fails closed.
    pub(super) fn roots_for(
        &self,
        policy: &EffectivePolicy<'_>,
        level: Level,
    ) -> Arc<rustls::RootCertStore> {
        let key = super::tables::tafile_key(policy.tafiles());
        if key.is_empty() || !level.uses_name_match() {
            return self.ctx.tables.roots.clone();
        }
        self.ctx
            .tables
            .tafile_roots
            .get(&key)
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::RootCertStore::empty()))
    }

    /// Records a line for `tern probe` (nothing is kept for deliveries).
    pub(super) fn note(&self, line: String) {
        if self.probing {
            self.notes.borrow_mut().push(line);
        }
    }

    /// Logs what the planner decided, as Postfix logs it, and keeps it
    /// for a probe.
    fn event(&self, jobs: &[MessageJob], e: PlanEvent) {
        if let Some(line) = e.log_text() {
            match &e {
                PlanEvent::DnssecDisabled { .. } => log::warn!(target: "smtp", "{line}"),
                PlanEvent::ConnectFailed { .. } => {
                    let id = jobs.first().map_or("-", |j| j.id.as_str());
                    log::info!(target: "smtp", "{id}: {line}");
                    return;
                }
                _ => log::info!(target: "smtp", "{line}"),
            }
        }
        if self.probing {
            for l in e.to_string().lines() {
                self.note(l.to_string());
            }
        }
    }

    /// Logs an MX host that DANE rules out, in Postfix's words
    /// (smtp_connect.c: `warning: TLS policy lookup for DEST/HOST:
    /// REASON`), so the skip shows even when a later host takes the mail.
    fn skip_warning(&self, s: &Skip) {
        log::warn!(target: "smtp", "warning: TLS policy lookup for {}/{}: {}", s.dest, s.host, s.why);
        self.note(format!("skipped {}: {}", s.host, s.why));
    }

    /// The recipient domain's MTA-STS policy: discovery, cache, fetch.
    async fn sts_policy(&self, domain: &str) -> StsInput {
        use crate::mtasts::StsLookup;
        let now = crate::mtasts::resolver::unix_now();
        match self.ctx.sts.policy_for(domain, now).await {
            StsLookup::None => StsInput::None,
            StsLookup::Policy { policy, source, .. } => {
                self.note(format!(
                    "MTA-STS {domain}: policy from the {}",
                    match source {
                        crate::mtasts::Source::Cache => "cache",
                        crate::mtasts::Source::Fetched => "policy server (fetched now)",
                    }
                ));
                StsInput::Policy(policy)
            }
            StsLookup::Failed(f) => StsInput::Unavailable {
                kind: f.kind,
                reason: f.reason,
            },
        }
    }

    /// Asks the resolver what the planner needs.
    async fn lookup(&self, q: Query<'_>) -> DnsInput {
        let r = &self.ctx.resolver;
        match q {
            Query::Mx(domain) => DnsInput::Mx(r.lookup_mx(domain).await),
            Query::Addresses { host, ipv4, ipv6 } => {
                DnsInput::Addresses(r.lookup_addresses(host, ipv4, ipv6).await)
            }
            Query::Cname(host) => DnsInput::Cname(r.query(host, RecordType::Cname).await),
            Query::Tlsa { port, base } => {
                DnsInput::Tlsa(r.lookup_tlsa(&format!("_{port}._tcp.{base}")).await)
            }
            Query::Sts(domain) => DnsInput::Sts(self.sts_policy(domain).await),
        }
    }

    /// Delivers the jobs; never fails as a whole: every recipient gets a
    /// result.
    pub async fn run(&self, spool: &Spool, jobs: &[MessageJob]) -> DeliveryResults {
        if jobs.len() < 2 || !self.reuse_disabled().await {
            return self.run_jobs(Some(spool), jobs).await;
        }
        // `connection_reuse=no`: one connection per message.
        let mut all = DeliveryResults::new(0);
        for job in jobs {
            if let Some(why) = &all.dead_destination {
                let text = format!("delivery temporarily suspended: {why}");
                all.per_message.push(
                    job.rcpts
                        .iter()
                        .map(|(i, _)| {
                            (
                                *i,
                                RcptResult::new(ResultKind::Deferred, "none", "4.4.1", &text),
                            )
                        })
                        .collect(),
                );
                continue;
            }
            let r = self.run_jobs(Some(spool), std::slice::from_ref(job)).await;
            all.tls_established.extend(r.tls_established);
            all.tls_attempts.extend(r.tls_attempts);
            all.notes.extend(r.notes);
            all.per_message.extend(r.per_message);
            all.last_failure = r.last_failure.or(all.last_failure);
            all.connected = r.connected.or(all.connected);
            all.dead_destination = r.dead_destination;
            all.site_failure = r.site_failure.or(all.site_failure);
        }
        all
    }

    /// Whether the policy entry of this next hop says `connection_reuse=no`.
    /// A plug-in that cannot be asked counts as "no": `run_jobs` asks it
    /// again and defers the mail.
    async fn reuse_disabled(&self) -> bool {
        let Ok(nexthop) = super::route::parse_nexthop(&self.dest) else {
            return false;
        };
        let plugin = match self.plugin_policy(nexthop.borrow().as_str()).await {
            Ok(p) => p,
            Err(_) => return false,
        };
        let defaults = self.ctx.settings.policy_defaults();
        policy::decide_with(
            &PolicyInputs {
                nexthop: nexthop.borrow(),
                tables: &self.ctx.tables.policy,
                defaults: &defaults,
            },
            plugin.as_ref(),
        )
        .is_ok_and(|p| p.connection_reuse == Some(false))
    }

    /// Asks the policy plug-ins of `smtp_tls_policy_maps` (its `socketmap:`
    /// tables) for the next hop, in their place among the file tables:
    /// `Some` when a plug-in's answer comes first in Postfix's lookup
    /// order, `None` when a file table's entry (or nothing) does. Nothing
    /// is asked when the list has no plug-in.
    async fn plugin_policy(
        &self,
        destination: &str,
    ) -> Result<Option<policy::OwnedPolicyEntry>, socketmap::LookupError> {
        let tables = &self.ctx.tables;
        if tables.policy_maps.is_empty() {
            return Ok(None);
        }
        let timeout = self.ctx.settings.socketmap_timeout;
        match socketmap::lookup_policy(&tables.policy_maps, &tables.policy, destination, timeout)
            .await?
        {
            PolicyLookup::Plugin(e) => Ok(Some(e)),
            PolicyLookup::NotFromPlugin => Ok(None),
        }
    }

    /// One attempt at the next hop: the policy, then the planner's lookups
    /// and connections until it is done.
    async fn run_jobs(&self, spool: Option<&Spool>, jobs: &[MessageJob]) -> DeliveryResults {
        let started = Instant::now();
        let handoff = SystemTime::now();
        let mut results = DeliveryResults::new(jobs.len());
        let fail_all = |results: &mut DeliveryResults, f: &HostFailure, relay: &str| {
            let kind = if f.permanent {
                ResultKind::Bounced
            } else {
                ResultKind::Deferred
            };
            for (j, job) in jobs.iter().enumerate() {
                for (i, _) in &job.rcpts {
                    if !results.per_message[j].iter().any(|(k, _)| k == i) {
                        let mut r = RcptResult::new(kind, relay, &f.dsn, &f.text);
                        r.handoff = Some(handoff);
                        r.conn = started.elapsed().as_secs_f64();
                        r.done = Some(SystemTime::now());
                        results.per_message[j].push((*i, r));
                    }
                }
            }
        };
        let nexthop = match super::route::parse_nexthop(&self.dest) {
            Ok(n) => n,
            Err(e) => {
                fail_all(&mut results, &HostFailure::soft(e.clone(), "4.3.5"), "none");
                results.last_failure = Some(e);
                return results;
            }
        };
        // A policy plug-in that cannot answer defers the mail (4.7.5, as
        // Postfix's "policy table lookup error"): the default level would
        // be a downgrade whenever the plug-in is what asks for TLS.
        let plugin = match self.plugin_policy(nexthop.borrow().as_str()).await {
            Ok(p) => p,
            Err(e) => {
                log::warn!(
                    target: "smtp",
                    "warning: smtp_tls_policy_maps, next-hop destination \"{}\": policy table lookup error: {e}",
                    nexthop.borrow().as_str()
                );
                let f = HostFailure::soft(format!("TLS policy lookup error: {e}"), "4.7.5");
                self.note(format!("policy plug-in failed: {e}"));
                fail_all(&mut results, &f, "none");
                results.last_failure = Some(f.text);
                results.notes = self.notes.take();
                return results;
            }
        };
        if let Some(p) = &plugin {
            self.note(format!(
                "policy from {} for \"{}\": {}",
                p.table(),
                p.entry().key(),
                p.entry().level()
            ));
        }
        let defaults = self.ctx.settings.policy_defaults();
        let policy = match policy::decide_with(
            &PolicyInputs {
                nexthop: nexthop.borrow(),
                tables: &self.ctx.tables.policy,
                defaults: &defaults,
            },
            plugin.as_ref(),
        ) {
            Ok(p) => p,
            Err(e) => {
                let f = HostFailure::soft(e.to_string(), "4.7.5");
                fail_all(&mut results, &f, "none");
                results.last_failure = Some(f.text);
                return results;
            }
        };
        let mut policy = policy;
        if self.tls_required_no {
            self.relax_for_tls_required_no(&mut policy, jobs);
        }
        // Only an MX answer is shuffled. The first draw from aws-lc's
        // generator seeds it from jitter entropy (~430 million
        // instructions under callgrind), which a relayhost-only box must
        // not pay on its first delivery.
        let shuffle = if nexthop.borrow().uses_mx() {
            self.ctx.resolver.random_u32()
        } else {
            1
        };
        let mut plan = Planner::new(
            nexthop.borrow(),
            policy,
            &self.ctx.settings.plan,
            self.implicit_tls,
            self.probing,
            shuffle,
        );
        let outcome = loop {
            let next = match plan.poll() {
                Step::Lookup(q) => Next::Dns(self.lookup(q).await),
                Step::Connect(t) => Next::Connect(t.clone()),
                Step::Skip(s) => {
                    self.skip_warning(&s);
                    continue;
                }
                Step::Event(e) => {
                    self.event(jobs, e);
                    continue;
                }
                Step::Done(o) => break o,
            };
            match next {
                Next::Dns(answer) => plan.answer(answer),
                Next::Connect(t) => {
                    let times = (started, handoff);
                    let r = Conn::run(self, spool, jobs, &mut results, &t, &policy, times).await;
                    plan.connection_done(r, self.probing || results.work_left(jobs));
                }
            }
        };
        self.attach_tlsrpt(&nexthop.borrow(), jobs, &mut results)
            .await;
        if let PlanOutcome::Failed {
            failure,
            relay,
            dead,
        } = outcome
        {
            // A failure after every message had its answers (a connection
            // lost at QUIT) says nothing against the destination.
            if !failure.permanent && results.work_left(jobs) {
                results.site_failure = Some(failure.text.clone());
            }
            fail_all(&mut results, &failure, relay.as_deref().unwrap_or("none"));
            results.last_failure = Some(failure.text.clone());
            if dead {
                results.dead_destination = Some(failure.text);
            }
        }
        results.notes = self.notes.take();
        results
    }

    /// RFC 8689 `TLS-Required: No` for this session's messages: lowers
    /// `policy` to `may` and logs it once, or, on a route that sends SMTP
    /// AUTH credentials (an entry for the next hop's host or the next hop
    /// itself, as [`Delivery::credentials`] looks them up), keeps it and
    /// logs why: at `may` a man in the middle could take the password.
    fn relax_for_tls_required_no(&self, policy: &mut EffectivePolicy<'_>, jobs: &[MessageJob]) {
        let id = jobs.first().map_or("-", |j| j.id.as_str());
        let more = match jobs.len() {
            0 | 1 => String::new(),
            n => format!(" ({n} messages)"),
        };
        let host = super::route::parse_nexthop(&self.dest)
            .map(|n| n.borrow().host().to_string())
            .unwrap_or_else(|_| self.dest.clone());
        // A broken entry counts as credentials: the connection defers
        // anyway, and the level must not be lowered on its account.
        if self.sasl_entry(&host).is_some() {
            log::info!(
                target: "smtp",
                "{id}: TLS-Required: No not honoured for {}{more}: SMTP AUTH credentials are sent on this route; TLS security level {} kept",
                self.dest,
                policy.level.as_str()
            );
            self.note(format!(
                "TLS-Required: No not honoured: credentials on the route, level {} kept",
                policy.level.as_str()
            ));
            return;
        }
        let was = policy.relax_for_tls_required_no();
        self.relaxed.set(true);
        log::info!(
            target: "smtp",
            "{id}: TLS-Required: No: TLS policy relaxed to {} for {}{more} (was {}; MTA-STS and DANE not consulted)",
            policy.level.as_str(),
            self.dest,
            was.as_str()
        );
        self.note(format!(
            "TLS-Required: No: level {} instead of {}",
            policy.level.as_str(),
            was.as_str()
        ));
    }

    /// The credentials a connection to `host` may use: none when the
    /// session was lowered for `TLS-Required: No`. The route was checked
    /// before lowering; this covers an entry for an MX host that only the
    /// lookups named, so a password never goes over a lowered connection.
    pub(super) fn session_credentials(&self, host: &str) -> Option<(String, String)> {
        let c = self.credentials(host)?;
        if self.relaxed.get() {
            log::warn!(
                target: "smtp",
                "warning: {host}: TLS-Required: No lowered the TLS security level of this session: SMTP AUTH credentials not sent"
            );
            return None;
        }
        Some(c)
    }

    /// With `smtp_tlsrpt_enable = yes`, looks up the recipient domain's
    /// TLSRPT record (`_smtp._tls.<domain>`, once per run, and only when the
    /// run made TLS attempts) and attaches it to each of them. Only MX
    /// delivery to the recipient domain itself: a relayhost, a bracketed
    /// next hop or a transport's other destination reports to nobody
    /// (RFC 8460 reports go to the recipient domain about its own MX
    /// hosts). No record, several, a malformed one or a failed lookup: no
    /// record, so no report.
    async fn attach_tlsrpt(
        &self,
        nexthop: &crate::policy::nexthop::NextHop<'_>,
        jobs: &[MessageJob],
        results: &mut DeliveryResults,
    ) {
        if !self.ctx.settings.tlsrpt_enable || results.tls_attempts.is_empty() || !nexthop.uses_mx()
        {
            return;
        }
        let domain = nexthop.host();
        // The jobs of one run share the next hop; a recipient outside the
        // domain means the next hop is no recipient domain (a transport
        // entry pointing elsewhere). A probe has no jobs: its next hop is
        // the domain asked about.
        let recipient_domain = jobs.iter().flat_map(|j| j.rcpts.iter()).all(|(_, r)| {
            r.rsplit_once('@')
                .is_some_and(|(_, d)| d.trim_end_matches('.').eq_ignore_ascii_case(domain))
        });
        if !recipient_domain {
            return;
        }
        let Some(record) = self.tlsrpt_record(domain).await else {
            return;
        };
        let record = Rc::new(record);
        for a in &mut results.tls_attempts {
            a.tlsrpt = Some(record.clone());
        }
    }

    /// `domain`'s TLSRPT record, `None` without a valid one (Postfix's
    /// smtp_tlsrpt_find_policy: NXDOMAIN and no data are expected and
    /// quiet; other lookup errors and bad records get a warning).
    async fn tlsrpt_record(&self, domain: &str) -> Option<crate::tlsrpt::TlsRptRecord> {
        let name = format!("_smtp._tls.{}", domain.trim_end_matches('.'));
        let answer = match self.ctx.resolver.lookup_txt(&name).await {
            Ok(a) => a,
            // NXDOMAIN and NODATA are answers (no records), not errors.
            Err(e) => {
                log::warn!(target: "smtp", "warning: TLSRPT support: policy lookup failed for {domain}: {e}");
                return None;
            }
        };
        let joined: Vec<Vec<u8>> = answer.records.iter().map(|t| t.joined()).collect();
        match crate::tlsrpt::discover(joined.iter().map(Vec::as_slice)) {
            Ok(r) => Some(r),
            Err(crate::tlsrpt::RecordError::NoRecord) => None,
            Err(e) => {
                log::warn!(target: "smtp", "warning: TLSRPT support: ignoring the policy of {domain}: {e}");
                None
            }
        }
    }

    /// The `smtp_sasl_password_maps` entry for this server, broken or not.
    fn sasl_entry(&self, host: &str) -> Option<crate::policy::sasl::SaslCredentials<'_>> {
        if !self.ctx.settings.sasl_auth_enable {
            return None;
        }
        let q = crate::policy::sasl::SaslQuery {
            sender: None,
            hostname: host,
            nexthop: &self.dest,
        };
        crate::policy::sasl::lookup_maps(&self.ctx.tables.sasl, &q)
    }

    /// SMTP AUTH credentials for this server, from `smtp_sasl_password_maps`.
    /// None for a broken entry: [`Delivery::broken_credentials`] defers
    /// the connection before it is made.
    pub(super) fn credentials(&self, host: &str) -> Option<(String, String)> {
        self.sasl_entry(host)
            .filter(|c| !c.broken)
            .map(|c| (c.username.to_string(), c.password.to_string()))
    }

    /// The failure for a connection to `host` whose password map entry
    /// was malformed and skipped at load: the mail waits (4.3.0, a local
    /// configuration error) until the table is fixed, rather than going
    /// out without AUTH or being refused by the relay and bounced.
    pub(super) fn broken_credentials(&self, host: &str) -> Option<HostFailure> {
        let c = self.sasl_entry(host).filter(|c| c.broken)?;
        Some(HostFailure {
            // Not a network failure: the destination must not be marked
            // dead for the rest of the queue because of it.
            reached: true,
            ..HostFailure::soft(
                format!(
                    "smtp_sasl_password_maps entry for {} at {}:{} is malformed; fix the table",
                    c.key, c.file, c.line
                ),
                "4.3.0",
            )
        })
    }
}
