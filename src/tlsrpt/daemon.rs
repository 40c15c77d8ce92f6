//! The driver of tern's own TLS reports: owns the clock, the files under
//! `$queue_directory/tlsrpt/` and the ways out (the mail queue, HTTPS).
//!
//! - The counters ([`Counters`]) are checkpointed to `tlsrpt/counters`
//!   every `smtp_tlsrpt_checkpoint_interval` when they changed (atomic
//!   write: temporary file, fsync, rename), and reloaded at start.
//! - At the UTC day boundary the day's counters become one report per
//!   policy domain, sent to every `rua` of its record: `mailto:` as a
//!   (DKIM-signed when a key is configured) message queued through
//!   [`crate::cleanup::local::enqueue`], `https:` as a POST through the
//!   MTA-STS fetcher's HTTPS client; other schemes are logged and skipped.
//! - A POST that fails is kept in `tlsrpt/outbox/` and retried every
//!   [`RETRY_INTERVAL`] until a day has passed since the report was made
//!   (then dropped with a log line). Mail reports are retried by the queue.
//! - A checkpoint from an earlier day found at start is reported at once.
//! - `tern tlsrpt show` asks for a checkpoint and `tern tlsrpt send --now`
//!   for reports now, through wake-up datagrams ([`Request`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::counters::{Counters, Limits, Period};
use super::dkim::Key;
use super::report::{self, Identity, Range};
use super::{gzip, mail};
use crate::config::Config;
use crate::delivery::QueueManager;

/// The directory under `queue_directory`.
pub const DIR: &str = "tlsrpt";
/// The checkpoint file in [`DIR`].
pub const CHECKPOINT: &str = "counters";
/// Failed HTTPS reports, in [`DIR`].
pub const OUTBOX: &str = "outbox";
/// How often failed HTTPS posts are tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// How long a report is tried (RFC 8460 reports are daily: one that
/// cannot be delivered within a day is stale).
pub const GIVE_UP_AFTER: u64 = 86_400;
/// The media type of a report (RFC 8460 §6.4).
pub const MEDIA_TYPE: &str = "application/tlsrpt+gzip";

/// What a wake-up datagram asks of the reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Write the checkpoint now (`tern tlsrpt show`).
    Checkpoint,
    /// End the period now and send its reports (`tern tlsrpt send --now`).
    SendNow,
}

/// The DKIM signer of report messages.
#[derive(Debug)]
pub struct Signer {
    /// The private key (`smtp_tlsrpt_dkim_key_file`).
    pub key: Key,
    /// `s=` (`smtp_tlsrpt_dkim_selector`).
    pub selector: String,
    /// `d=` (`smtp_tlsrpt_dkim_domain`, default the sender's domain).
    pub domain: String,
}

/// The `smtp_tlsrpt_*` settings of the in-process reporter.
#[derive(Debug)]
pub struct Settings {
    /// Counting and reports are on (`smtp_tlsrpt_enable`, and
    /// `smtp_tlsrpt_builtin_reports`).
    pub enabled: bool,
    /// `smtp_tlsrpt_checkpoint_interval`.
    pub checkpoint_interval: Duration,
    /// `smtp_tlsrpt_max_domains`.
    pub limits: Limits,
    /// Organisation, contact, submitter.
    pub identity: Identity,
    /// `smtp_tlsrpt_report_sender`: envelope sender and `From:`.
    pub sender: String,
    /// The DKIM signer, when a key is configured.
    pub signer: Option<Signer>,
    /// `$queue_directory/tlsrpt`.
    pub dir: PathBuf,
}

/// The domain of an address (after the last `@`), or the address.
fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or(addr, |(_, d)| d)
}

/// Whether the in-process reporter is on in `cfg`: `smtp_tlsrpt_enable`
/// and `smtp_tlsrpt_builtin_reports` (`yes`, or `auto` when no
/// `smtp_tlsrpt_socket_name` sends events to an external generator).
pub fn enabled(cfg: &Config) -> bool {
    if !cfg.bool("smtp_tlsrpt_enable") {
        return false;
    }
    match cfg.get("smtp_tlsrpt_builtin_reports") {
        "yes" => true,
        "no" => false,
        _ => {
            crate::config::params::lookup("smtp_tlsrpt_socket_name").is_none()
                || cfg.get("smtp_tlsrpt_socket_name").trim().is_empty()
        }
    }
}

impl Settings {
    /// The settings from `cfg`; the DKIM key file is read here (before
    /// privileges are dropped, like the TLS keys).
    pub fn from_config(cfg: &Config) -> Result<Settings, String> {
        let sender = cfg.get("smtp_tlsrpt_report_sender").trim().to_string();
        let submitter = domain_of(&sender).to_string();
        let signer = match cfg.get("smtp_tlsrpt_dkim_key_file").trim() {
            "" => None,
            path => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("smtp_tlsrpt_dkim_key_file: {path}: {e}"))?;
                let key = Key::from_pem(&pem)
                    .map_err(|e| format!("smtp_tlsrpt_dkim_key_file: {path}: {e}"))?;
                let selector = cfg.get("smtp_tlsrpt_dkim_selector").trim().to_string();
                if selector.is_empty() {
                    return Err(
                        "smtp_tlsrpt_dkim_key_file is set but smtp_tlsrpt_dkim_selector is empty"
                            .into(),
                    );
                }
                let domain = match cfg.get("smtp_tlsrpt_dkim_domain").trim() {
                    "" => submitter.clone(),
                    d => d.to_string(),
                };
                Some(Signer {
                    key,
                    selector,
                    domain,
                })
            }
        };
        Ok(Settings {
            enabled: enabled(cfg),
            checkpoint_interval: cfg
                .time("smtp_tlsrpt_checkpoint_interval")
                .max(Duration::from_secs(60)),
            limits: Limits {
                max_domains: usize::try_from(cfg.int("smtp_tlsrpt_max_domains"))
                    .unwrap_or(usize::MAX)
                    .max(1),
            },
            identity: Identity {
                organization: cfg.get("smtp_tlsrpt_organization_name").to_string(),
                contact: cfg.get("smtp_tlsrpt_contact_info").to_string(),
                submitter,
            },
            sender,
            signer,
            dir: cfg.queue_directory().join(DIR),
        })
    }
}

/// The start of the UTC day containing `t`.
pub fn day_start(t: u64) -> u64 {
    t - t % 86_400
}

/// Writes `data` to `dir/name` atomically and durably (a power cut leaves
/// the old file or the new one).
pub fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads the checkpoint in `dir`: `Ok(None)` when there is none.
pub fn load_checkpoint(dir: &Path, limits: &Limits) -> Result<Option<Period>, String> {
    match std::fs::read_to_string(dir.join(CHECKPOINT)) {
        Ok(text) => Period::from_text(&text, limits).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The running reporter: settings (replaced on reload), counters, and
/// the queue manager that report messages are handed to.
pub struct Reporter {
    settings: std::cell::RefCell<Rc<Settings>>,
    /// The counters the queue manager feeds.
    pub counters: Rc<Counters>,
    qmgr: Rc<QueueManager>,
    cleanup: std::cell::RefCell<Rc<crate::cleanup::Settings>>,
    requests: (
        smol::channel::Sender<Request>,
        smol::channel::Receiver<Request>,
    ),
    /// A sequence number making message IDs and outbox names unique
    /// within one second.
    seq: std::cell::Cell<u32>,
}

impl Reporter {
    /// The reporter of `cfg`, counters continued from the checkpoint (a
    /// checkpoint of an earlier day is reported by [`Reporter::run`]).
    pub fn new(
        cfg: &Config,
        settings: Settings,
        qmgr: Rc<QueueManager>,
        now: u64,
    ) -> Result<Rc<Reporter>, String> {
        let period = match load_checkpoint(&settings.dir, &settings.limits) {
            Ok(Some(p)) => p,
            Ok(None) => Period::new(day_start(now)),
            Err(e) => {
                log::warn!(target: "tlsrpt", "warning: TLSRPT: {}: {e}; starting with empty counters", settings.dir.join(CHECKPOINT).display());
                Period::new(day_start(now))
            }
        };
        let cleanup = crate::cleanup::Settings::from_config(cfg)?;
        let counters = Counters::new(period, settings.limits);
        Ok(Rc::new(Reporter {
            settings: std::cell::RefCell::new(Rc::new(settings)),
            counters,
            qmgr,
            cleanup: std::cell::RefCell::new(Rc::new(cleanup)),
            requests: smol::channel::bounded(4),
            seq: std::cell::Cell::new(0),
        }))
    }

    /// New settings after a reload (counters stay).
    pub fn reload(&self, cfg: &Config, settings: Settings) {
        self.counters.set_limits(settings.limits);
        *self.settings.borrow_mut() = Rc::new(settings);
        if let Ok(c) = crate::cleanup::Settings::from_config(cfg) {
            *self.cleanup.borrow_mut() = Rc::new(c);
        }
    }

    /// A request from a wake-up datagram (never blocks: a burst of
    /// requests beyond the channel's room is dropped).
    pub fn request(&self, r: Request) {
        let _ = self.requests.0.try_send(r);
    }

    /// Writes the checkpoint: always with `force`, else only if the
    /// counters changed (the daemon's stop calls this).
    pub fn checkpoint(&self, force: bool) {
        let text = if force {
            Some(self.counters.checkpoint_text())
        } else {
            self.counters.checkpoint_due()
        };
        let Some(text) = text else { return };
        let dir = self.settings.borrow().dir.clone();
        if let Err(e) = write_atomic(&dir, CHECKPOINT, text.as_bytes()) {
            self.counters.set_dirty();
            log::warn!(target: "tlsrpt", "warning: TLSRPT: cannot write {}: {e}", dir.join(CHECKPOINT).display());
        }
    }

    /// The task: checkpoints, day boundaries, requests, retries.
    pub async fn run(self: Rc<Self>) {
        let now = crate::mtasts::resolver::unix_now();
        // A checkpoint of an earlier day (the daemon was down at midnight).
        let start = self.counters.snapshot().start;
        if start < day_start(now) {
            let end = day_start(start) + 86_400;
            let old = self.counters.take(day_start(now));
            self.send_period(&old, end.min(now), now);
            self.checkpoint(true);
        }
        let mut next_checkpoint = now + self.settings.borrow().checkpoint_interval.as_secs();
        let mut next_retry = now + 60;
        loop {
            let now = crate::mtasts::resolver::unix_now();
            let midnight = day_start(now) + 86_400;
            let wake = next_checkpoint.min(midnight).min(next_retry);
            let wait = Duration::from_secs(wake.saturating_sub(now).max(1));
            let req = smol::future::or(async { self.requests.1.recv().await.ok() }, async {
                smol::Timer::after(wait).await;
                None
            })
            .await;
            let now = crate::mtasts::resolver::unix_now();
            match req {
                Some(Request::Checkpoint) => self.checkpoint(true),
                Some(Request::SendNow) => {
                    log::info!(target: "tlsrpt", "TLSRPT: sending reports now (tern tlsrpt send --now)");
                    let p = self.counters.take(now);
                    self.send_period(&p, now, now);
                    self.checkpoint(true);
                }
                None => {}
            }
            if now >= day_start(self.counters.snapshot().start) + 86_400 {
                let end = day_start(self.counters.snapshot().start) + 86_400;
                let p = self.counters.take(day_start(now));
                self.send_period(&p, end, now);
                self.checkpoint(true);
            }
            if now >= next_checkpoint {
                self.checkpoint(false);
                next_checkpoint = now + self.settings.borrow().checkpoint_interval.as_secs();
            }
            if now >= next_retry {
                self.retry_outbox(now).await;
                next_retry = now + RETRY_INTERVAL.as_secs();
            }
            if req == Some(Request::SendNow) {
                // The posts just written go out now, not in half an hour.
                self.retry_outbox(now).await;
            }
        }
    }

    fn next_seq(&self) -> u32 {
        let n = self.seq.get().wrapping_add(1);
        self.seq.set(n);
        n
    }

    /// One report per domain of `p` (period `[p.start, end)`), to every
    /// rua. HTTPS reports are written to the outbox; the caller posts them.
    fn send_period(&self, p: &Period, end: u64, now: u64) {
        let s = self.settings.borrow().clone();
        let range = Range {
            start: p.start,
            end: end.max(p.start),
        };
        for d in &p.domains {
            if d.policies.is_empty() {
                continue;
            }
            let id = report::report_id(range, &d.domain, now, &s.identity.submitter);
            let json = report::json(&s.identity, range, &id, d);
            let gz = gzip::compress(json.as_bytes());
            let file = report::file_name(&s.identity, &d.domain, range, now);
            if d.rua.is_empty() {
                log::warn!(target: "tlsrpt", "warning: TLSRPT: domain={}: no rua known; report {id} dropped", d.domain);
            }
            for rua in &d.rua {
                let lower = rua.to_ascii_lowercase();
                if lower.starts_with("mailto:") {
                    self.send_mail(
                        &s,
                        d.domain.as_str(),
                        &id,
                        range,
                        &file,
                        &gz,
                        &rua[7..],
                        now,
                    );
                } else if lower.starts_with("https:") {
                    self.queue_post(&d.domain, &id, rua, &gz, now);
                } else {
                    log::warn!(target: "tlsrpt", "warning: TLSRPT: domain={}: skipping rua {}: unsupported scheme (mailto: and https: are)", d.domain, crate::mtasts::record::printable(rua));
                }
            }
        }
    }

    /// Queues the report message to the `mailto:` address `to` (any
    /// `?hfields` dropped: RFC 8460 uses only the address).
    #[allow(clippy::too_many_arguments)]
    fn send_mail(
        &self,
        s: &Settings,
        domain: &str,
        id: &str,
        range: Range,
        file: &str,
        gz: &[u8],
        to: &str,
        now: u64,
    ) {
        let to = to.split('?').next().unwrap_or("");
        let to = percent_decode(to);
        if crate::queue::envelope::check_address("recipient", &to, false).is_err()
            || !to.contains('@')
        {
            log::warn!(target: "tlsrpt", "warning: TLSRPT: domain={domain}: skipping rua mailto:{}: not a mail address", crate::mtasts::record::printable(&to));
            return;
        }
        let seq = self.next_seq();
        let date = crate::syslog::time::rfc5322_date(std::time::SystemTime::now());
        let mid = format!("<tlsrpt.{now}.{seq}@{}>", s.identity.submitter);
        let boundary = format!("=_tlsrpt_{now}_{seq}");
        let env = mail::Envelope {
            from: &s.sender,
            to: &to,
            domain,
            report_id: id,
            date: &date,
            message_id: &mid,
            boundary: &boundary,
            file_name: file,
        };
        let mut msg = mail::message(&s.identity, range, &env, gz);
        let signed = match &s.signer {
            Some(sg) => match super::dkim::sign(&msg, &sg.key, &sg.domain, &sg.selector, now) {
                Ok(mut h) => {
                    h.extend_from_slice(&msg);
                    msg = h;
                    format!(
                        "DKIM-signed ({} s={} d={})",
                        sg.key.algorithm(),
                        sg.selector,
                        sg.domain
                    )
                }
                Err(e) => format!("unsigned (DKIM signing failed: {e})"),
            },
            None => "unsigned (no smtp_tlsrpt_dkim_key_file)".to_string(),
        };
        let sub = crate::cleanup::local::Submission {
            sender: Some(s.sender.clone()),
            full_name: None,
            recipients: vec![to.clone()],
            extract: false,
            dot_ends: false,
        };
        let who = crate::cleanup::Invoker::current().unwrap_or(crate::cleanup::Invoker {
            uid: 0,
            login: "tern".into(),
            full_name: None,
        });
        let cleanup = self.cleanup.borrow().clone();
        match crate::cleanup::local::enqueue(&cleanup, &sub, &who, now, &mut &msg[..]) {
            Ok(qid) => {
                log::info!(target: "tlsrpt", "TLSRPT: report {id} for domain={domain} queued as {qid} to <{to}>, {signed}");
                self.qmgr.notify_new(&qid);
            }
            Err(e) => {
                log::warn!(target: "tlsrpt", "warning: TLSRPT: report {id} for domain={domain} to <{to}> not queued: {e}");
            }
        }
    }

    /// Writes an HTTPS report to the outbox: first line the URL, the time
    /// it was made, the domain and report ID (tab-separated); then the
    /// gzip bytes.
    fn queue_post(&self, domain: &str, id: &str, url: &str, gz: &[u8], now: u64) {
        let dir = self.settings.borrow().dir.join(OUTBOX);
        let name = format!("{now}.{}", self.next_seq());
        let mut data = format!("{url}\t{now}\t{domain}\t{id}\n").into_bytes();
        data.extend_from_slice(gz);
        if let Err(e) = write_atomic(&dir, &name, &data) {
            log::warn!(target: "tlsrpt", "warning: TLSRPT: report {id} for domain={domain} to {url} dropped: cannot write {}: {e}", dir.display());
        }
    }

    /// Posts every report in the outbox; drops those older than a day.
    async fn retry_outbox(&self, now: u64) {
        let dir = self.settings.borrow().dir.join(OUTBOX);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            let Some(nl) = data.iter().position(|b| *b == b'\n') else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let head = String::from_utf8_lossy(&data[..nl]).into_owned();
            let f: Vec<&str> = head.split('\t').collect();
            let [url, made, domain, id] = f.as_slice() else {
                log::warn!(target: "tlsrpt", "warning: TLSRPT: removing malformed outbox file {}", path.display());
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let made: u64 = made.parse().unwrap_or(0);
            if now.saturating_sub(made) > GIVE_UP_AFTER {
                log::warn!(target: "tlsrpt", "warning: TLSRPT: report {id} for domain={domain} to {url}: giving up after a day of failed attempts");
                let _ = std::fs::remove_file(&path);
                continue;
            }
            match self.post(url, &data[nl + 1..]).await {
                Ok(status) if (200..300).contains(&status) => {
                    log::info!(target: "tlsrpt", "TLSRPT: report {id} for domain={domain} posted to {url}: HTTP {status}");
                    let _ = std::fs::remove_file(&path);
                }
                Ok(status) => {
                    log::warn!(target: "tlsrpt", "warning: TLSRPT: report {id} for domain={domain} to {url}: HTTP {status}; trying again later");
                }
                Err(e) => {
                    log::warn!(target: "tlsrpt", "warning: TLSRPT: report {id} for domain={domain} to {url}: {e}; trying again later");
                }
            }
        }
    }

    async fn post(&self, url: &str, body: &[u8]) -> Result<u16, String> {
        let (host, port, path) =
            parse_https(url).ok_or_else(|| "malformed https URL".to_string())?;
        let ctx = self.qmgr.context();
        ctx.sts
            .fetcher()
            .post(&host, port, &path, MEDIA_TYPE, body)
            .await
    }
}

/// `https://host[:port][/path]` → (host, port, path); `None` for anything
/// else (user info, IP literals in brackets, bad ports).
pub fn parse_https(url: &str) -> Option<(String, u16, String)> {
    let rest = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') || authority.starts_with('[') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => (authority, 443),
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| (host.to_ascii_lowercase(), port, path))
}

/// `%XX` in a mailto address (RFC 6068).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `tern tlsrpt show`: the counters as text.
pub fn describe(p: &Period) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "period start {}", report::datetime(p.start));
    if p.domains.is_empty() {
        o.push_str("no TLS sessions counted\n");
    }
    for d in &p.domains {
        let _ = writeln!(o, "domain {} rua={}", d.domain, d.rua.join(","));
        for pol in &d.policies {
            let _ = write!(o, "  policy {}", pol.kind.as_str());
            if !pol.mx.is_empty() {
                let _ = write!(o, " mx={}", pol.mx.join(","));
            }
            let _ = writeln!(o, ": successful={} failed={}", pol.success, pol.failure);
            for f in &pol.details {
                let ip = |i: Option<std::net::IpAddr>| i.map(|i| i.to_string()).unwrap_or_default();
                let _ = writeln!(
                    o,
                    "    {} x{}: {}[{}] helo={} from {}{}",
                    f.result.as_str(),
                    f.count,
                    crate::mtasts::record::printable(&f.mx_host),
                    ip(f.mx_ip),
                    crate::mtasts::record::printable(f.helo.as_deref().unwrap_or("")),
                    ip(f.sending_ip),
                    if f.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", crate::mtasts::record::printable(&f.reason))
                    }
                );
            }
        }
    }
    o
}

/// Usage of `tern tlsrpt`.
pub const USAGE: &str = "usage: tern tlsrpt [-c FILE] show
       tern tlsrpt [-c FILE] send --now
  show        today's TLSRPT counters (a running daemon is asked to write
              its checkpoint first; without one, the last checkpoint)
  send --now  make the running daemon end the period now and send one
              report per policy domain (mail and HTTPS) at once";

/// Runs `tern tlsrpt` with the arguments after `tlsrpt` (config options
/// removed) for the daemon of `queue_directory`. Exit codes: 0, 64 usage,
/// 75 no daemon (send) or unreadable checkpoint.
pub fn cli(
    args: &[String],
    queue_directory: &Path,
    limits: &Limits,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> u8 {
    use crate::queue::wake::{self, Wake};
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = queue_directory.join(DIR);
    match words.as_slice() {
        ["show"] => {
            let before = std::fs::metadata(dir.join(CHECKPOINT))
                .and_then(|m| m.modified())
                .ok();
            // Ask the daemon for a fresh checkpoint, and give it a moment:
            // it writes within milliseconds unless it is very busy.
            if let Ok(true) = wake::notify(queue_directory, Wake::TlsRpt(Request::Checkpoint)) {
                for _ in 0..20 {
                    std::thread::sleep(Duration::from_millis(100));
                    let now = std::fs::metadata(dir.join(CHECKPOINT))
                        .and_then(|m| m.modified())
                        .ok();
                    if now.is_some() && now != before {
                        break;
                    }
                }
            }
            match load_checkpoint(&dir, limits) {
                Ok(Some(p)) => {
                    let _ = out.write_all(describe(&p).as_bytes());
                    0
                }
                Ok(None) => {
                    let _ = writeln!(
                        out,
                        "no TLSRPT counters yet ({} does not exist)",
                        dir.join(CHECKPOINT).display()
                    );
                    0
                }
                Err(e) => {
                    let _ = writeln!(err, "tern tlsrpt: {}: {e}", dir.join(CHECKPOINT).display());
                    75
                }
            }
        }
        ["send", "--now"] => match wake::notify(queue_directory, Wake::TlsRpt(Request::SendNow)) {
            Ok(true) => {
                let _ = writeln!(
                    out,
                    "tern tlsrpt: the daemon is sending the reports now (see the mail log)"
                );
                0
            }
            Ok(false) => {
                let _ = writeln!(err, "tern tlsrpt: no daemon is running; the saved counters are reported when it starts");
                75
            }
            Err(e) => {
                let _ = writeln!(err, "tern tlsrpt: cannot reach the daemon: {e}");
                75
            }
        },
        _ => {
            let _ = writeln!(err, "{USAGE}");
            64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_https("https://r.example.com/tlsrpt"),
            Some(("r.example.com".into(), 443, "/tlsrpt".into()))
        );
        assert_eq!(
            parse_https("HTTPS://R.example.com:8443"),
            Some(("r.example.com".into(), 8443, "/".into()))
        );
        assert_eq!(
            parse_https("https://r.test?x=1"),
            Some(("r.test".into(), 443, "/?x=1".into()))
        );
        for bad in [
            "http://r.test/",
            "https://",
            "https://u@r.test/",
            "https://[::1]/",
            "https://r.test:0/",
            "https://r.test:99999/",
            "https://r_test/",
        ] {
            assert_eq!(parse_https(bad), None, "{bad}");
        }
        assert_eq!(percent_decode("a%40b%2x"), "a@b%2x");
        assert_eq!(day_start(86_400 * 3 + 5), 86_400 * 3);
    }
}
