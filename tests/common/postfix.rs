//! A private Postfix instance on loopback, in the foreground.
//!
//! Layout under its temporary directory `T`:
//! `T/etc` (config_directory: main.cf, master.cf, sasl/smtpd.conf, sasldb2,
//! sasl_passwd; root-owned), `T/spool` (queue_directory), `T/data`
//! (data_directory), `T/log/maillog` (maillog_file, via postlogd),
//! `T/log/master.out` (master's stdout/stderr), `T/mail/inbox/` (Maildir
//! receiving every message for the local domains, via virtual(8) as
//! `nobody`). `meta_directory = /etc/postfix`, chroot off everywhere.
//!
//! SASL: Debian's Postfix uses Cyrus SASL and reads
//! `$config_directory/sasl/smtpd.conf`; users live in a private sasldb2
//! written with `saslpasswd2 -f` (package sasl2-bin), realm = the first
//! local domain (`smtpd_sasl_local_domain`), so users may log in as
//! `alice` or `alice@<realm>`. Mechanisms PLAIN and LOGIN.
//!
//! Started with `master -d` (MAIL_CONFIG=T/etc) in its own session;
//! readiness = every listener is in LISTEN state (read from /proc, so no
//! probe connection shows up in the log).

use super::ports::{free_port, wait_listening};
use super::process::{run, Daemon, RunOutput};
use super::tempdir::{group_id, own, read_lossy, user_ids, write_config, TempDir};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MASTER: &str = "/usr/lib/postfix/sbin/master";
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Builder for [`Postfix`]; see the methods for what each option sets.
#[derive(Debug, Clone)]
pub struct PostfixBuilder {
    hostname: String,
    syslog_name: String,
    local_domains: Vec<String>,
    tls: Option<(PathBuf, PathBuf)>,
    tls_level: Option<String>,
    smtps: bool,
    submission_users: Vec<(String, String)>,
    submission_requires_tls: bool,
    relay_port: Option<u16>,
    relay_tls_level: Option<String>,
    relay_ca_file: Option<PathBuf>,
    relay_match: Option<String>,
    relay_auth: Option<(String, String)>,
    relay_wrappermode: bool,
    main_cf: Vec<(String, String)>,
    smtp_port: Option<u16>,
    plain_ips: Vec<std::net::Ipv4Addr>,
}

impl Default for PostfixBuilder {
    fn default() -> Self {
        PostfixBuilder {
            hostname: "postfix.example.test".into(),
            syslog_name: "postfix".into(),
            local_domains: vec!["example.test".into()],
            tls: None,
            tls_level: None,
            smtps: false,
            submission_users: Vec::new(),
            submission_requires_tls: false,
            relay_port: None,
            relay_tls_level: None,
            relay_ca_file: None,
            relay_match: None,
            relay_auth: None,
            relay_wrappermode: false,
            main_cf: Vec::new(),
            smtp_port: None,
            plain_ips: Vec::new(),
        }
    }
}

impl PostfixBuilder {
    /// `myhostname` (default `postfix.example.test`); also the banner name.
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = name.into();
        self
    }

    /// `syslog_name` (default `postfix`): the program name in the log,
    /// what pflogsumm's `--syslog-name` must match.
    pub fn syslog_name(mut self, name: &str) -> Self {
        self.syslog_name = name.into();
        self
    }

    /// Replaces the domains delivered into the test Maildir
    /// (`virtual_mailbox_domains`, default `example.test`). Recipients in
    /// other domains go to the relayhost, if any.
    pub fn local_domains(mut self, domains: &[&str]) -> Self {
        self.local_domains = domains.iter().map(|d| d.to_string()).collect();
        self
    }

    /// Server certificate (chain file: leaf first) and key: enables
    /// STARTTLS (`smtpd_tls_security_level = may` unless set otherwise).
    /// Without it the server offers no STARTTLS.
    pub fn tls(mut self, cert_chain: &Path, key: &Path) -> Self {
        self.tls = Some((cert_chain.into(), key.into()));
        self
    }

    /// `smtpd_tls_security_level` of the port-25-style listener
    /// (`none`, `may`, `encrypt`).
    pub fn tls_security_level(mut self, level: &str) -> Self {
        self.tls_level = Some(level.into());
        self
    }

    /// Adds an implicit-TLS listener (`smtpd_tls_wrappermode = yes`) on a
    /// port of its own ([`Postfix::smtps_port`]); needs [`Self::tls`]. If
    /// submission users exist it requires AUTH like the submission port.
    pub fn smtps(mut self) -> Self {
        self.smtps = true;
        self
    }

    /// Adds a SASL user; the first call also adds a submission listener
    /// ([`Postfix::submission_port`]) that requires AUTH to send anything.
    pub fn submission_user(mut self, user: &str, password: &str) -> Self {
        self.submission_users.push((user.into(), password.into()));
        self
    }

    /// On the submission listener: STARTTLS required and AUTH only after it
    /// (`smtpd_tls_security_level = encrypt`, `smtpd_tls_auth_only = yes`).
    pub fn submission_requires_tls(mut self) -> Self {
        self.submission_requires_tls = true;
        self
    }

    /// `relayhost = [127.0.0.1]:PORT`: mail for non-local domains goes there
    /// (e.g. into tern).
    pub fn relayhost(mut self, port: u16) -> Self {
        self.relay_port = Some(port);
        self
    }

    /// `smtp_tls_security_level` for relaying, and `smtp_tls_CAfile`.
    pub fn relay_tls(mut self, level: &str, ca_file: Option<&Path>) -> Self {
        self.relay_tls_level = Some(level.into());
        self.relay_ca_file = ca_file.map(Into::into);
        self
    }

    /// Names the relay's certificate must match at `verify`/`secure`
    /// (`smtp_tls_verify_cert_match` and `smtp_tls_secure_cert_match`);
    /// needed because the next hop is the literal `127.0.0.1`.
    pub fn relay_cert_match(mut self, names: &str) -> Self {
        self.relay_match = Some(names.into());
        self
    }

    /// SMTP AUTH towards the relayhost (`smtp_sasl_auth_enable`,
    /// `smtp_sasl_password_maps = texthash:...`).
    pub fn relay_auth(mut self, user: &str, password: &str) -> Self {
        self.relay_auth = Some((user.into(), password.into()));
        self
    }

    /// `smtp_tls_wrappermode = yes` towards the relayhost (port 465 style;
    /// Postfix requires level `encrypt` or higher with it).
    pub fn relay_wrappermode(mut self) -> Self {
        self.relay_wrappermode = true;
        self
    }

    /// Listens on this port instead of a fresh one: a second instance can
    /// take over a stopped one's address (a receiving server that comes
    /// back). Get it from [`free_port`] or an earlier instance.
    pub fn smtp_port(mut self, port: u16) -> Self {
        self.smtp_port = Some(port);
        self
    }

    /// Adds a listener at `ip` (another loopback address), on the same port
    /// as the plain listener, that offers no STARTTLS
    /// (`smtpd_tls_security_level = none`): a second MX host of the same
    /// instance for a client whose `smtp_tcp_port` is fixed.
    pub fn plain_listener_at(mut self, ip: std::net::Ipv4Addr) -> Self {
        self.plain_ips.push(ip);
        self
    }

    /// Any other main.cf setting; later calls override earlier settings and
    /// the builder's own.
    pub fn main_cf(mut self, key: &str, value: &str) -> Self {
        self.main_cf.push((key.into(), value.into()));
        self
    }

    /// Writes the instance, starts `master -d`, waits for every listener.
    /// Panics with master's output and the maillog if it does not come up
    /// within 10 s.
    pub fn start(self) -> Postfix {
        Postfix::start(self)
    }
}

/// A running private Postfix instance; stopped and removed on drop.
#[derive(Debug)]
pub struct Postfix {
    // Field order is drop order: processes first, then the directory.
    master: Option<Daemon>,
    dir: TempDir,
    smtp_port: u16,
    smtps_port: Option<u16>,
    submission_port: Option<u16>,
    syslog_name: String,
    startup: Duration,
}

fn opts(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("\n  -o {k}={v}"))
        .collect()
}

/// Services besides the smtpd listeners: Debian's master.cf with chroot off
/// and the optional pipe(8) transports left out.
const MASTER_CF_SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

impl Postfix {
    /// A builder with the defaults: no TLS, one plain listener, local
    /// domain `example.test`, no relayhost.
    pub fn builder() -> PostfixBuilder {
        PostfixBuilder::default()
    }

    fn start(b: PostfixBuilder) -> Postfix {
        let t0 = Instant::now();
        let dir = TempDir::new("postfix");
        let (pf_uid, pf_gid) = user_ids("postfix");
        let (nobody_uid, nobody_gid) = user_ids("nobody");
        let postdrop = group_id("postdrop");
        let etc = dir.subdir("etc");
        let spool = dir.subdir("spool");
        let data = dir.subdir("data");
        let log = dir.subdir("log");
        let mail = dir.subdir("mail");
        own(&data, pf_uid, 0, 0o700);
        own(&mail, nobody_uid, nobody_gid, 0o700);
        // What `postfix post-install create-missing` makes (2 s), done directly.
        for d in [
            "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
            "private", "saved", "trace",
        ] {
            own(&dir.subdir(&format!("spool/{d}")), pf_uid, 0, 0o700);
        }
        own(&dir.subdir("spool/maildrop"), pf_uid, postdrop, 0o730);
        own(&dir.subdir("spool/public"), pf_uid, postdrop, 0o710);
        own(&dir.subdir("spool/pid"), 0, 0, 0o755);

        let smtp_port = b.smtp_port.unwrap_or_else(free_port);
        let smtps_port = b.smtps.then(free_port);
        let submission_port = (!b.submission_users.is_empty()).then(free_port);
        let realm = b
            .local_domains
            .first()
            .cloned()
            .unwrap_or_else(|| "example.test".into());

        let p = |x: &Path| x.display().to_string();
        let mut main: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| main.push((k.into(), v.into()));
        set("compatibility_level", "3.6");
        set("queue_directory", &p(&spool));
        set("data_directory", &p(&data));
        set("meta_directory", "/etc/postfix");
        set("syslog_name", &b.syslog_name);
        set("maillog_file", &p(&log.join("maillog")));
        set("maillog_file_prefixes", &p(&log));
        set("inet_interfaces", "127.0.0.1");
        set("inet_protocols", "ipv4");
        set("myhostname", &b.hostname);
        set("mydestination", "");
        set("mynetworks", "127.0.0.0/8");
        set("alias_maps", "");
        set("alias_database", "");
        set("local_recipient_maps", "");
        set("biff", "no");
        set("virtual_mailbox_domains", &b.local_domains.join(", "));
        set("virtual_mailbox_base", &p(&mail));
        set("virtual_mailbox_maps", "static:inbox/");
        set("virtual_uid_maps", &format!("static:{nobody_uid}"));
        set("virtual_gid_maps", &format!("static:{nobody_gid}"));
        // Deferred mail (e.g. tern not up yet) is retried within seconds.
        set("queue_run_delay", "1s");
        set("minimal_backoff_time", "1s");
        set("maximal_backoff_time", "2s");
        set("smtpd_tls_loglevel", "1");
        set("smtp_tls_loglevel", "1");
        if let Some((cert, key)) = &b.tls {
            set("smtpd_tls_cert_file", &p(cert));
            set("smtpd_tls_key_file", &p(key));
            set(
                "smtpd_tls_security_level",
                b.tls_level.as_deref().unwrap_or("may"),
            );
        } else {
            set(
                "smtpd_tls_security_level",
                b.tls_level.as_deref().unwrap_or("none"),
            );
        }
        if !b.submission_users.is_empty() {
            set("smtpd_sasl_local_domain", &realm);
        }
        if let Some(port) = b.relay_port {
            let relay = format!("[127.0.0.1]:{port}");
            set("relayhost", &relay);
            if let Some((user, pass)) = &b.relay_auth {
                let file = etc.join("sasl_passwd");
                write_config(&file, format!("{relay} {user}:{pass}\n"));
                own(&file, 0, 0, 0o600);
                set("smtp_sasl_auth_enable", "yes");
                set("smtp_sasl_password_maps", &format!("texthash:{}", p(&file)));
                set("smtp_sasl_security_options", "noanonymous");
                set("smtp_sasl_tls_security_options", "noanonymous");
            }
        }
        if let Some(level) = &b.relay_tls_level {
            set("smtp_tls_security_level", level);
        }
        if let Some(ca) = &b.relay_ca_file {
            set("smtp_tls_CAfile", &p(ca));
        }
        if let Some(m) = &b.relay_match {
            set("smtp_tls_verify_cert_match", m);
            set("smtp_tls_secure_cert_match", m);
        }
        if b.relay_wrappermode {
            set("smtp_tls_wrappermode", "yes");
        }
        for (k, v) in &b.main_cf {
            set(k, v);
        }
        let main_cf: String = main.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        write_config(&etc.join("main.cf"), main_cf);

        let listener = |port: u16, o: &str| {
            format!("127.0.0.1:{port} inet  n       -       n       -       -       smtpd{o}\n")
        };
        let sasl_opts = [
            ("smtpd_sasl_auth_enable", "yes"),
            (
                "smtpd_client_restrictions",
                "permit_sasl_authenticated,reject",
            ),
            (
                "smtpd_relay_restrictions",
                "permit_sasl_authenticated,reject",
            ),
        ];
        let mut master_cf = listener(smtp_port, "");
        for ip in &b.plain_ips {
            master_cf += &format!(
                "{ip}:{smtp_port} inet  n       -       n       -       -       smtpd{}\n",
                opts(&[("smtpd_tls_security_level", "none")])
            );
        }
        if let Some(port) = submission_port {
            let mut o = opts(&sasl_opts);
            if b.submission_requires_tls {
                o += &opts(&[
                    ("smtpd_tls_security_level", "encrypt"),
                    ("smtpd_tls_auth_only", "yes"),
                ]);
            }
            master_cf += &listener(port, &o);
        }
        if let Some(port) = smtps_port {
            assert!(
                b.tls.is_some(),
                "Postfix::builder().smtps() needs .tls(cert, key)"
            );
            let mut o = opts(&[
                ("smtpd_tls_wrappermode", "yes"),
                ("smtpd_tls_security_level", "encrypt"),
            ]);
            if submission_port.is_some() {
                o += &opts(&sasl_opts);
            }
            master_cf += &listener(port, &o);
        }
        master_cf += MASTER_CF_SERVICES;
        write_config(&etc.join("master.cf"), master_cf);

        if !b.submission_users.is_empty() {
            let db = etc.join("sasldb2");
            let sasl = dir.subdir("etc/sasl");
            write_config(
                &sasl.join("smtpd.conf"),
                format!(
                    "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n\
                     sasldb_path: {}\n",
                    p(&db)
                ),
            );
            for (user, pass) in &b.submission_users {
                let mut cmd = Command::new("saslpasswd2");
                cmd.args(["-p", "-c", "-f"])
                    .arg(&db)
                    .args(["-u", &realm, user]);
                let out = run(cmd, Some(pass.as_bytes()), Duration::from_secs(10));
                assert!(
                    out.success(),
                    "saslpasswd2 for {user} failed (package sasl2-bin?): {}",
                    out.combined()
                );
            }
            // smtpd reads it after dropping privileges to postfix.
            own(&db, 0, pf_gid, 0o640);
        }

        let mut cmd = Command::new(MASTER);
        cmd.arg("-d")
            .env("MAIL_CONFIG", &etc)
            .current_dir(dir.path());
        let master = Daemon::spawn("postfix master", cmd, &log.join("master.out"));
        let mut pf = Postfix {
            master: Some(master),
            dir,
            smtp_port,
            smtps_port,
            submission_port,
            syslog_name: b.syslog_name,
            startup: Duration::ZERO,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        for port in [Some(smtp_port), submission_port, smtps_port]
            .into_iter()
            .flatten()
        {
            loop {
                if wait_listening(port, Duration::from_millis(50)) {
                    break;
                }
                let exited = pf.master.as_mut().and_then(|m| m.exited());
                if exited.is_some() || Instant::now() >= deadline {
                    let why = match exited {
                        Some(st) => format!("master exited ({st})"),
                        None => format!("port {port} not listening after {START_TIMEOUT:?}"),
                    };
                    panic!("Postfix did not start: {why}\n{}", pf.diagnostics());
                }
            }
        }
        pf.startup = t0.elapsed();
        pf
    }

    /// The plain listener (STARTTLS if configured, no AUTH needed from
    /// 127.0.0.0/8, which is `mynetworks`).
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// The implicit-TLS listener, if [`PostfixBuilder::smtps`] was set.
    pub fn smtps_port(&self) -> Option<u16> {
        self.smtps_port
    }

    /// The AUTH-required listener, if a submission user was added.
    pub fn submission_port(&self) -> Option<u16> {
        self.submission_port
    }

    /// Process id of `master` (also its process group), while running.
    pub fn master_pid(&self) -> u32 {
        self.master.as_ref().map(|m| m.pid()).unwrap_or(0)
    }

    /// How long `start` took, from creating the directory to listening.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// `syslog_name` of this instance (for pflogsumm).
    pub fn syslog_name(&self) -> &str {
        &self.syslog_name
    }

    /// The instance's config directory (`postconf -c` / `postfix -c`).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// The maillog file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log/maillog")
    }

    /// The maillog text so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    /// Maildir holding the delivered messages (`new/` below it).
    pub fn maildir(&self) -> PathBuf {
        self.dir.join("mail/inbox")
    }

    /// The raw messages delivered so far (one per recipient, as virtual(8)
    /// wrote them: with `Return-Path:` and `Delivered-To:` prepended),
    /// oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = fs::read_dir(self.maildir().join(sub)) {
                for e in rd.flatten() {
                    let t = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    files.push((t, e.path()));
                }
            }
        }
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| fs::read(p).ok())
            .collect()
    }

    /// Waits until at least `count` messages were delivered and returns all
    /// of them; panics with the maillog after `timeout`.
    pub fn wait_for_message(&self, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if m.len() >= count {
                return m;
            }
            if Instant::now() >= deadline {
                panic!(
                    "Postfix: {} of {count} messages after {timeout:?}\n{}",
                    m.len(),
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until a maillog line contains `needle`; returns that line, or
    /// `None` after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log().lines().find(|l| l.contains(needle)) {
                return Some(l.to_string());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until at least `n` maillog lines contain `needle`; returns
    /// whether they did within `timeout`.
    pub fn wait_for_log_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().lines().filter(|l| l.contains(needle)).count() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs a Postfix command-line tool against this instance, e.g.
    /// `pf.command("postqueue", &["-f"])` (adds `-c CONFIG_DIR` first).
    pub fn command(&self, tool: &str, args: &[&str]) -> RunOutput {
        let mut cmd = Command::new(tool);
        cmd.arg("-c").arg(self.config_dir()).args(args);
        run(cmd, None, Duration::from_secs(20))
    }

    /// Asks the queue manager to retry deferred mail now (`postqueue -f`).
    pub fn flush(&self) {
        let out = self.command("postqueue", &["-f"]);
        assert!(out.success(), "postqueue -f: {}", out.combined());
    }

    /// Number of messages in the queue (`postqueue -j`, one JSON per line).
    pub fn queue_len(&self) -> usize {
        let out = self.command("postqueue", &["-j"]);
        assert!(out.success(), "postqueue -j: {}", out.combined());
        out.stdout.lines().filter(|l| l.starts_with('{')).count()
    }

    /// Stops master and every child (SIGTERM to the group, SIGKILL after
    /// 3 s). The directory stays until drop. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut m) = self.master.take() {
            m.stop();
        }
    }

    /// master's output and the maillog, for failure messages.
    pub fn diagnostics(&self) -> String {
        let master = self.master.as_ref().map(|m| m.output()).unwrap_or_default();
        format!(
            "--- Postfix {} master output\n{master}--- maillog {}\n{}",
            self.dir.path().display(),
            self.log_path().display(),
            self.log()
        )
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        self.stop();
    }
}
