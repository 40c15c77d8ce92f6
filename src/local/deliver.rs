//! The local delivery driver, like Postfix's local(8): for each recipient
//! in a local domain, checks the message's `Delivered-To:` headers for a
//! forwarding loop, expands aliases, writes local mailboxes (Maildir) and
//! re-queues whatever the aliases forward elsewhere as one new message
//! with a `Delivered-To:` header. Results come back per envelope recipient
//! with ready-made log lines in Postfix's format.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use crate::config::table::CompactTable;
use crate::config::Config;
use crate::delivery::results::{arrival_time, RcptResult, ResultKind};
use crate::queue::{NewMessage, QueueEntry, Recipient, Spool};

use super::aliases::{self, AliasTable, Dest};
use super::expand::{self, Expander, Leaf, Lookup};
use super::tables::{load_aliases, load_plain_maps, read_include};
use super::wire::Outcome;
use super::{helper, maildir, users};

/// Bytes of a message's header read for the `Delivered-To:` loop check.
const HEADER_SCAN: usize = 64 * 1024;

/// Local delivery settings and tables (immutable; rebuilt on reload).
#[derive(Debug, Default)]
pub struct LocalDelivery {
    /// `alias_maps`, in order.
    pub aliases: Vec<AliasTable>,
    /// `virtual_mailbox_maps`: address (or bare user) -> Maildir path
    /// below `virtual_mailbox_base`.
    pub virtual_maps: Vec<CompactTable<()>>,
    /// `virtual_mailbox_base`.
    pub virtual_base: PathBuf,
    /// `home_mailbox` (must end in `/`: Maildir).
    pub home_mailbox: String,
    /// `mydestination` (lower case).
    pub local_domains: Vec<String>,
    /// `myorigin`.
    pub myorigin: String,
    /// `myhostname` (Maildir file names).
    pub myhostname: String,
    /// `allow_mail_to_commands`.
    pub allow_commands: bool,
    /// `allow_mail_to_files`.
    pub allow_files: bool,
}

/// The outcome for one envelope recipient.
#[derive(Debug)]
pub struct LocalResult {
    /// Index of the recipient in the envelope.
    pub index: usize,
    /// The result as the queue manager records it.
    pub result: RcptResult,
    /// Postfix-style log lines (without the `QID: ` prefix) for it.
    pub log: Vec<String>,
    /// A message was queued (the queue manager should run again).
    pub requeued: bool,
}

struct Tables<'a>(&'a LocalDelivery);

impl Lookup for Tables<'_> {
    fn alias(&self, local: &str) -> Option<Vec<Dest>> {
        self.0.aliases.iter().find_map(|t| t.lookup(local))
    }
    fn is_local_domain(&self, domain: &str) -> bool {
        self.0.is_local_domain(domain)
    }
    fn include(&self, path: &str) -> Result<Vec<Dest>, String> {
        aliases::parse_include(&read_include(path)?, path)
    }
}

/// Where a local user's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The Maildir directory.
    pub dir: PathBuf,
    /// Owner for new files and directories (only when running as root).
    pub owner: Option<(u32, u32)>,
    /// The system user whose home holds the Maildir (`home_mailbox`);
    /// `None` for mail-only users below `virtual_mailbox_base`.
    pub user: Option<String>,
}

fn running_as_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn safe_relative(p: &str) -> bool {
    Path::new(p)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

impl LocalDelivery {
    /// Builds the local delivery state from the configuration; every table
    /// error (with its line) is reported here, at start-up or reload.
    pub fn from_config(cfg: &Config) -> Result<LocalDelivery, String> {
        let mut errs = Vec::new();
        let aliases = load_aliases(cfg.get("alias_maps")).unwrap_or_else(|e| {
            errs.extend(e);
            Vec::new()
        });
        let virtual_maps = load_plain_maps("virtual_mailbox_maps", cfg.get("virtual_mailbox_maps"))
            .unwrap_or_else(|e| {
                errs.extend(e);
                Vec::new()
            });
        let home_mailbox = cfg.get("home_mailbox").to_string();
        if !home_mailbox.ends_with('/') || !safe_relative(&home_mailbox) {
            errs.push(format!(
                "home_mailbox = {home_mailbox}: tern delivers to Maildir only: use a relative path ending in / (e.g. Maildir/)"
            ));
        }
        if !errs.is_empty() {
            return Err(errs.join("\n"));
        }
        Ok(LocalDelivery {
            aliases,
            virtual_maps,
            virtual_base: PathBuf::from(cfg.get("virtual_mailbox_base")),
            home_mailbox,
            local_domains: cfg
                .list("mydestination")
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            myorigin: cfg.get("myorigin").to_string(),
            myhostname: cfg.get("myhostname").to_string(),
            allow_commands: cfg.bool("allow_mail_to_commands"),
            allow_files: cfg.bool("allow_mail_to_files"),
        })
    }

    /// True if `domain` is in `mydestination`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.');
        self.local_domains.iter().any(|l| l.eq_ignore_ascii_case(d))
    }

    fn expander(&self) -> Expander<'_> {
        Expander {
            myorigin: &self.myorigin,
            allow_commands: self.allow_commands,
            allow_files: self.allow_files,
        }
    }

    fn virtual_lookup(&self, local: &str, domain: &str) -> Option<String> {
        let full = format!("{local}@{domain}");
        self.virtual_maps
            .iter()
            .find_map(|t| t.get(&full).or_else(|| t.get(local)))
            .map(|h| h.value.trim().to_string())
    }

    /// The mailbox of a local address, `Ok(None)` for an unknown user,
    /// `Err` for a temporary problem (password database, bad map entry).
    pub fn mailbox(&self, addr: &str) -> Result<Option<Mailbox>, String> {
        let (local, domain) = expand::split(addr);
        let local = local.to_ascii_lowercase();
        let domain = domain.unwrap_or(&self.myorigin);
        if let Some(v) = self.virtual_lookup(&local, domain) {
            let dir = if self.virtual_base.as_os_str().is_empty() {
                if !v.starts_with('/') {
                    return Err(format!(
                        "virtual_mailbox_maps entry for {addr} is relative but virtual_mailbox_base is empty"
                    ));
                }
                PathBuf::from(&v)
            } else {
                if !safe_relative(&v) {
                    return Err(format!(
                        "virtual_mailbox_maps entry for {addr} must be a path below virtual_mailbox_base: {v}"
                    ));
                }
                self.virtual_base.join(&v)
            };
            let owner = if running_as_root() {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(&self.virtual_base)
                    .ok()
                    .map(|m| (m.uid(), m.gid()))
            } else {
                None
            };
            return Ok(Some(Mailbox {
                dir,
                owner,
                user: None,
            }));
        }
        match users::lookup(&local) {
            Ok(Some(u)) => Ok(Some(Mailbox {
                dir: u.home.join(&self.home_mailbox),
                owner: running_as_root().then_some((u.uid, u.gid)),
                user: Some(u.name),
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("cannot read the password database: {e}")),
        }
    }

    /// For the SMTP server: is `local@domain` (a local domain) an alias,
    /// a mail-only user or a system user? `postmaster` always is.
    pub fn knows(&self, local: &str, domain: &str) -> bool {
        let l = local.to_ascii_lowercase();
        if l == "postmaster" {
            return true;
        }
        if self.aliases.iter().any(|t| t.contains(&l)) {
            return true;
        }
        if self.virtual_lookup(&l, domain).is_some() {
            return true;
        }
        // A failing password database must not turn into 550s.
        !matches!(users::lookup(&l), Ok(None))
    }

    /// Delivers the recipients `rcpts` (envelope indexes) of `entry`;
    /// `picked` is when the queue manager took the message (for the log
    /// lines' `delays=`). Async because a home Maildir is written by the
    /// helper process, whose answer is awaited without blocking the
    /// executor; everything else here is file I/O, as in the spool.
    pub async fn deliver(
        &self,
        spool: &Spool,
        entry: &QueueEntry,
        rcpts: &[usize],
        picked: SystemTime,
    ) -> Vec<LocalResult> {
        let id = entry.id();
        let env = &entry.envelope;
        // The hand-off to the local delivery agent, as Postfix's local(8)
        // receives the whole request at once: `delays=` b ends here and d
        // runs from here to each recipient's result.
        let t = Times {
            picked,
            handoff: SystemTime::now(),
        };
        let delivered_to = match read_delivered_to(spool, id) {
            Ok(v) => v,
            Err(e) => {
                let text = format!("cannot read queue file: {e}");
                return rcpts
                    .iter()
                    .map(|&i| self.result(entry, i, None, ResultKind::Deferred, "4.3.0", &text, t))
                    .collect();
            }
        };
        let mut out = Vec::with_capacity(rcpts.len());
        for &i in rcpts {
            let Some(rcpt) = env.recipients.get(i) else {
                continue;
            };
            let addr = rcpt.address.as_str();
            let orig = rcpt
                .orcpt
                .as_deref()
                .map(|o| o.strip_prefix("rfc822;").unwrap_or(o))
                .filter(|o| !o.eq_ignore_ascii_case(addr));
            if delivered_to.iter().any(|d| d.eq_ignore_ascii_case(addr)) {
                let text = format!("mail forwarding loop for {addr}");
                out.push(self.result(entry, i, orig, ResultKind::Bounced, "5.4.6", &text, t));
                continue;
            }
            let leaves = match self.expander().expand(addr, &Tables(self)) {
                Ok(l) => l,
                Err(e) => {
                    let kind = if e.is_temporary() {
                        ResultKind::Deferred
                    } else {
                        ResultKind::Bounced
                    };
                    out.push(self.result(entry, i, orig, kind, e.dsn(), &e.to_string(), t));
                    continue;
                }
            };
            out.push(self.deliver_leaves(spool, entry, i, orig, &leaves, t).await);
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn result(
        &self,
        entry: &QueueEntry,
        index: usize,
        orig: Option<&str>,
        kind: ResultKind,
        dsn: &str,
        text: &str,
        t: Times,
    ) -> LocalResult {
        let to = entry
            .envelope
            .recipients
            .get(index)
            .map(|r| r.address.as_str())
            .unwrap_or("");
        let r = t.stamp(RcptResult::new(kind, "local", dsn, text));
        let line = log_line(entry, to, orig, &r, t.picked);
        LocalResult {
            index,
            result: r,
            log: vec![line],
            requeued: false,
        }
    }

    async fn deliver_leaves(
        &self,
        spool: &Spool,
        entry: &QueueEntry,
        index: usize,
        orig: Option<&str>,
        leaves: &[Leaf],
        t: Times,
    ) -> LocalResult {
        let env = &entry.envelope;
        let to = env
            .recipients
            .get(index)
            .map(|r| r.address.as_str())
            .unwrap_or("");
        // The recipient as given, for orig_to= of expanded deliveries.
        let given = orig.unwrap_or(to);
        let mut log = Vec::new();
        let mut worst: Option<RcptResult> = None;
        let keep = |r: RcptResult, worst: &mut Option<RcptResult>| {
            let rank = |k: ResultKind| match k {
                ResultKind::Sent => 0,
                ResultKind::Bounced => 1,
                ResultKind::Deferred => 2,
            };
            if worst.as_ref().map_or(true, |w| rank(r.kind) > rank(w.kind)) {
                *worst = Some(r);
            }
        };
        let mut forwards: Vec<Recipient> = Vec::new();
        for leaf in leaves {
            match leaf {
                Leaf::Mailbox(a) => {
                    let r = t.stamp(self.to_mailbox(spool, entry, a, given).await);
                    let o = (!a.eq_ignore_ascii_case(given)).then_some(given);
                    log.push(log_line(entry, a, o, &r, t.picked));
                    keep(r, &mut worst);
                }
                Leaf::Forward(a) => forwards.push(Recipient::new(a)),
                Leaf::File(p) | Leaf::Command(p) => {
                    let r = t.stamp(RcptResult::new(
                        ResultKind::Bounced,
                        "local",
                        "5.3.5",
                        &format!("delivery to files and commands is not supported by tern: {p}"),
                    ));
                    log.push(log_line(entry, to, orig, &r, t.picked));
                    keep(r, &mut worst);
                }
            }
        }
        let mut requeued = false;
        if !forwards.is_empty() {
            let r = match forward(spool, entry, to, &forwards) {
                Ok(qid) => {
                    requeued = true;
                    RcptResult::new(
                        ResultKind::Sent,
                        "local",
                        "2.0.0",
                        &format!("forwarded as {qid}"),
                    )
                }
                Err(e) => RcptResult::new(
                    ResultKind::Deferred,
                    "local",
                    "4.3.0",
                    &format!("cannot forward: {e}"),
                ),
            };
            let r = t.stamp(r);
            log.push(log_line(entry, to, orig, &r, t.picked));
            keep(r, &mut worst);
        }
        // Never "delivered to nowhere": an expansion without destinations
        // keeps the message (expansion reports empty :include: files).
        let result = worst.unwrap_or_else(|| {
            let r = t.stamp(RcptResult::new(
                ResultKind::Deferred,
                "local",
                "4.3.0",
                "alias expansion yields no recipients",
            ));
            log.push(log_line(entry, to, orig, &r, t.picked));
            r
        });
        LocalResult {
            index,
            result,
            log,
            requeued,
        }
    }

    async fn to_mailbox(
        &self,
        spool: &Spool,
        entry: &QueueEntry,
        addr: &str,
        given: &str,
    ) -> RcptResult {
        let (local, _) = expand::split(addr);
        let mb = match self.mailbox(addr) {
            Ok(Some(m)) => m,
            Ok(None) => {
                return RcptResult::new(
                    ResultKind::Bounced,
                    "local",
                    "5.1.1",
                    &format!("unknown user: \"{}\"", local.to_ascii_lowercase()),
                )
            }
            Err(e) => return RcptResult::new(ResultKind::Deferred, "local", "4.3.0", &e),
        };
        let mut reader = match spool.open_message(entry.id()) {
            Ok(r) => r,
            Err(e) => {
                return RcptResult::new(
                    ResultKind::Deferred,
                    "local",
                    "4.3.0",
                    &format!("cannot read queue file: {e}"),
                )
            }
        };
        let prepend = format!(
            "Return-Path: <{}>\nDelivered-To: {}\nX-Original-To: {}\n",
            entry.envelope.sender,
            clean(addr),
            clean(given)
        );
        let outcome = match &mb.user {
            // The daemon has dropped root: the helper writes as the user
            // (or, left out at start-up or dead, the delivery defers).
            Some(user) if helper::owns_home_delivery() => match reader.file_span() {
                Ok((file, offset, len)) => {
                    helper::deliver(
                        user,
                        &self.home_mailbox,
                        &self.myhostname,
                        prepend.as_bytes(),
                        file,
                        offset,
                        len,
                    )
                    .await
                }
                Err(e) => Some(Outcome::Temporary(format!("cannot read queue file: {e}"))),
            },
            _ => None,
        };
        let outcome = outcome.unwrap_or_else(|| {
            match maildir::deliver(
                &mb.dir,
                prepend.as_bytes(),
                &mut reader,
                mb.owner,
                &self.myhostname,
            ) {
                Ok(p) => Outcome::Delivered(p.display().to_string()),
                Err(e) => Outcome::Temporary(e.to_string()),
            }
        });
        match outcome {
            Outcome::Delivered(_) => {
                RcptResult::new(ResultKind::Sent, "local", "2.0.0", "delivered to maildir")
            }
            Outcome::Temporary(e) => RcptResult::new(
                ResultKind::Deferred,
                "local",
                "4.2.0",
                &format!("maildir delivery failed: {e}"),
            ),
            Outcome::Permanent(e) => RcptResult::new(ResultKind::Bounced, "local", "5.1.1", &e),
        }
    }
}

/// Header-safe text: no line breaks or other controls.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// When the queue manager took a message and when local delivery got it.
#[derive(Debug, Clone, Copy)]
struct Times {
    picked: SystemTime,
    handoff: SystemTime,
}

impl Times {
    /// `r` with the hand-off and the time of its result, for `delays=`
    /// (local delivery has no connection set-up: c is 0).
    fn stamp(&self, mut r: RcptResult) -> RcptResult {
        r.handoff = Some(self.handoff);
        r.conn = 0.0;
        r.done = Some(SystemTime::now());
        r
    }
}

/// `to=<..>, orig_to=<..>, relay=local, delay=N, delays=a/b/c/d, dsn=X,
/// status=S (text)` with the queue ID in front, as local(8) logs; the
/// delays as Postfix's log_adhoc computes and format_tv prints them (the
/// same fields as the smtp lines).
fn log_line(
    entry: &QueueEntry,
    to: &str,
    orig: Option<&str>,
    r: &RcptResult,
    picked: SystemTime,
) -> String {
    let arrival = arrival_time(entry.id(), entry.envelope.arrival);
    format_line(entry.id(), to, orig, r, arrival, picked, SystemTime::now())
}

/// Sans-I/O: the local(8) line for `r`, given when the message arrived
/// (`arrival_time`), when the queue manager took it, and the time now.
fn format_line(
    id: &str,
    to: &str,
    orig: Option<&str>,
    r: &RcptResult,
    arrival: SystemTime,
    picked: SystemTime,
    now: SystemTime,
) -> String {
    let status = match r.kind {
        ResultKind::Sent => "sent",
        ResultKind::Deferred => "deferred",
        ResultKind::Bounced => "bounced",
    };
    let orig = orig.map(|o| format!(", orig_to=<{o}>")).unwrap_or_default();
    format!(
        "{id}: to=<{to}>{orig}, relay=local, {}, dsn={}, status={status} ({})",
        r.timing(arrival, picked, now).fields(),
        r.dsn,
        r.text
    )
}

/// The `Delivered-To:` values in a queued message's header.
fn read_delivered_to(spool: &Spool, id: &str) -> Result<Vec<String>, String> {
    let reader = spool.open_message(id).map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(4096);
    reader
        .take(HEADER_SCAN as u64)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    Ok(delivered_to(&head))
}

/// Sans-I/O: the `Delivered-To:` values in a header block (stops at the
/// first empty line).
pub fn delivered_to(head: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        const NAME: &[u8] = b"delivered-to:";
        if line.len() > NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            let v = String::from_utf8_lossy(&line[NAME.len()..])
                .trim()
                .to_string();
            let v = v
                .strip_prefix('<')
                .and_then(|x| x.strip_suffix('>'))
                .map(str::to_string)
                .unwrap_or(v);
            out.push(v);
        }
    }
    out
}

/// Re-queues the message for the forwarded addresses, with
/// `Delivered-To: rcpt` on top (Postfix resubmits forwarded mail too, so
/// that each address gets its own delivery status).
fn forward(
    spool: &Spool,
    entry: &QueueEntry,
    rcpt: &str,
    to: &[Recipient],
) -> Result<String, String> {
    let env = &entry.envelope;
    let mut reader = spool.open_message(entry.id()).map_err(|e| e.to_string())?;
    let mut inc = spool
        .create(&NewMessage {
            sender: &env.sender,
            recipients: to,
            arrival: crate::queue::clock::now(),
            client: "local",
            // A forwarded notification stays one: a forwarded bounce is
            // never bounced to its sender, a forwarded double bounce is
            // held if it fails.
            flags: env.flags.clone(),
            size_limit: 0,
            deferred: false,
        })
        .map_err(|e| e.to_string())?;
    inc.write(format!("Delivered-To: {}\r\n", clean(rcpt)).as_bytes())
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 8192];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        inc.write(&buf[..n]).map_err(|e| e.to_string())?;
    }
    let size = inc.size();
    let qid = inc.commit().map_err(|e| e.to_string())?;
    // As Postfix logs a forwarded copy: cleanup's new message, then qmgr's
    // line; the original's `status=sent (forwarded as QID)` follows.
    log::info!(
        target: "qmgr",
        "{qid}: from=<{}>, size={size}, nrcpt={} (queue active)",
        clean(&env.sender),
        to.len()
    );
    Ok(qid)
}

#[cfg(test)]
mod tests {
    use super::super::tables::{newaliases, DEFAULT_ALIASES};
    use super::*;

    #[test]
    fn delivered_to_headers() {
        let h = b"Received: x\r\nDelivered-To: root@box.test\r\ndelivered-to: <A@b>\r\n\r\nDelivered-To: body@x\r\n";
        assert_eq!(delivered_to(h), vec!["root@box.test", "A@b"]);
        assert!(delivered_to(b"\r\nDelivered-To: x\r\n").is_empty());
    }

    fn local() -> LocalDelivery {
        let (a, _) = AliasTable::parse(b"admin: root\n", "a");
        let (v, _) = CompactTable::parse(
            b"alice@box.test alice/Maildir/\nbob bob/\nevil@box.test ../../etc/\n",
            "v",
        );
        LocalDelivery {
            aliases: vec![a],
            virtual_maps: vec![v],
            virtual_base: PathBuf::from("/srv/mail"),
            home_mailbox: "Maildir/".into(),
            local_domains: vec!["box.test".into()],
            myorigin: "box.test".into(),
            myhostname: "box.test".into(),
            ..LocalDelivery::default()
        }
    }

    #[test]
    fn mailboxes_and_known_users() {
        let l = local();
        assert_eq!(
            l.mailbox("Alice@box.test").unwrap().unwrap().dir,
            PathBuf::from("/srv/mail/alice/Maildir/")
        );
        assert_eq!(
            l.mailbox("bob").unwrap().unwrap().dir,
            PathBuf::from("/srv/mail/bob/")
        );
        assert!(l.mailbox("evil@box.test").unwrap_err().contains("below"));
        assert_eq!(
            l.mailbox("root@box.test").unwrap().unwrap().dir,
            PathBuf::from("/root/Maildir/")
        );
        assert_eq!(l.mailbox("no-such-user-x@box.test").unwrap(), None);
        for known in ["admin", "ADMIN", "alice", "bob", "root", "postmaster"] {
            assert!(l.knows(known, "box.test"), "{known}");
        }
        assert!(!l.knows("no-such-user-x", "box.test"));
        assert!(l.is_local_domain("BOX.test."));
        assert!(!l.is_local_domain("other.test"));
    }

    #[test]
    fn config_errors() {
        let cfg = Config::parse_str(
            "home_mailbox = Mailbox\nalias_maps = texthash:/nonexistent/tern-aliases\n",
            "t",
        )
        .unwrap();
        let e = LocalDelivery::from_config(&cfg).unwrap_err();
        assert!(e.contains("/nonexistent/tern-aliases"), "{e}");
        assert!(e.contains("home_mailbox = Mailbox"), "{e}");
        // The default aliases file may be missing: no aliases yet.
        assert!(load_aliases(DEFAULT_ALIASES).is_ok() || Path::new("/etc/tern/aliases").exists());
        let mut out = Vec::new();
        let cfg = Config::parse_str("alias_maps = texthash:/nonexistent/x\n", "t").unwrap();
        assert_eq!(newaliases(&cfg, &mut out), 1);
        assert!(String::from_utf8_lossy(&out).starts_with("newaliases: /nonexistent/x: "));
    }

    #[test]
    fn log_line_has_postfix_delays() {
        use std::time::Duration;
        // Queue ID 4B1C2...: created 307138 us into its arrival second.
        let arrival = arrival_time("4B1C2ABCDE", 1_700_000_000);
        let at = |ms: u64| arrival + Duration::from_millis(ms);
        // Picked 1.2 s after arrival, handed to local delivery 13 ms
        // later, written 370 ms after that; logged a moment later.
        let mut r = RcptResult::new(ResultKind::Sent, "local", "2.0.0", "delivered to maildir");
        r.handoff = Some(at(1_200 + 13));
        r.done = Some(at(1_200 + 13 + 370));
        let line = format_line(
            "4B1C2ABCDE",
            "alice@box.test",
            Some("postmaster@box.test"),
            &r,
            arrival,
            at(1_200),
            at(2_500),
        );
        assert_eq!(
            line,
            "4B1C2ABCDE: to=<alice@box.test>, orig_to=<postmaster@box.test>, relay=local, \
             delay=1.6, delays=1.2/0.01/0/0.37, dsn=2.0.0, status=sent (delivered to maildir)"
        );
        // A fast delivery of old mail (a retry): whole seconds from 10 s,
        // and no orig_to= for the address as given.
        let mut r = RcptResult::new(
            ResultKind::Deferred,
            "local",
            "4.2.0",
            "maildir delivery failed: x",
        );
        r.handoff = Some(at(3_600_000));
        r.done = Some(at(3_600_004));
        let line = format_line(
            "4B1C2ABCDE",
            "bob@box.test",
            None,
            &r,
            arrival,
            at(3_600_000),
            at(3_600_010),
        );
        assert_eq!(
            line,
            "4B1C2ABCDE: to=<bob@box.test>, relay=local, delay=3600, delays=3600/0/0/0, \
             dsn=4.2.0, status=deferred (maildir delivery failed: x)"
        );
        // Stamped results: hand-off and result time are filled in.
        let t = Times {
            picked: at(0),
            handoff: at(5),
        };
        let r = t.stamp(RcptResult::new(ResultKind::Sent, "local", "2.0.0", "x"));
        assert_eq!(r.handoff, Some(at(5)));
        assert!(r.done.is_some_and(|d| d >= at(5)));
    }

    #[test]
    fn relative_paths() {
        assert!(safe_relative("Maildir/"));
        assert!(safe_relative("example.org/u/"));
        assert!(!safe_relative("../x/"));
        assert!(!safe_relative("/abs/"));
    }
}
