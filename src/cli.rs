//! Command-line front ends other than the config commands in main.rs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{self, Config, ConfigError};
use crate::daemon::{self, ConfigSource};

/// The configuration file: `-c FILE`, else `$TERN_CONFIG`, else the default.
pub fn config_path(args: &[String]) -> PathBuf {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-c" {
            if let Some(p) = it.next() {
                return PathBuf::from(p);
            }
        } else if let Some(p) = a.strip_prefix("-c") {
            return PathBuf::from(p);
        }
    }
    std::env::var_os("TERN_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

/// One thing `check-config` reports beyond syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A warning (the configuration still loads) rather than an error.
    pub warning: bool,
    /// Where and what; a warning's message starts with `warning: `.
    pub problem: ConfigError,
}

/// Checks beyond syntax: the files and tables the configuration names
/// (TLS certificates and keys, the AUTH password file, lookup tables,
/// aliases), loaded exactly as the daemon loads them. Errors and the
/// warnings the daemon would log (skipped table lines), in the order found.
pub fn deep_check(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |key: &str, message: String| {
        out.push(ConfigError {
            file: cfg.origin().to_string(),
            line: cfg.line_of(key),
            message,
        })
    };
    if let Err(e) = crate::smtpd::server_tls(cfg) {
        push("smtpd_tls_cert_file", e);
    }
    let pw = cfg.get("smtpd_sasl_password_file");
    if !pw.is_empty() {
        match std::fs::read_to_string(pw) {
            Ok(text) => {
                if let Err(errs) = crate::smtpd::passwd::PasswordFile::parse(&text) {
                    for e in errs {
                        push(
                            "smtpd_sasl_password_file",
                            format!("{pw}:{}: {}", e.line, e.message),
                        );
                    }
                }
            }
            Err(e) => push("smtpd_sasl_password_file", format!("{pw}: {e}")),
        }
    }
    if let Err(e) = crate::policy::dane::parse_trusted_resolvers(cfg.get("dns_trusted_resolvers")) {
        push("dns_trusted_resolvers", e);
    }
    // Only root switches to mail_owner; for anyone else the account is
    // never used, so its absence is no error (a developer's check-config).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let uid_of = |name: &str| crate::smtpd::listen::user_ids(name).ok().map(|(u, _)| u);
        out.extend(crate::config::check_mail_owner(cfg, uid_of));
    }
    let mut out: Vec<Finding> = out
        .into_iter()
        .map(|problem| Finding {
            warning: false,
            problem,
        })
        .collect();
    // Table errors and warnings name their own file and line.
    let at = |warning: bool, message: String| Finding {
        warning,
        problem: ConfigError {
            file: cfg.origin().to_string(),
            line: None,
            message: if warning {
                format!("warning: {message}")
            } else {
                message
            },
        },
    };
    let (tables, warnings) = crate::delivery::tables::Tables::load_report(cfg);
    if let Err(errs) = tables {
        out.extend(errs.into_iter().map(|m| at(false, m)));
    }
    out.extend(warnings.into_iter().map(|m| at(true, m)));
    if let Err(e) = crate::local::deliver::LocalDelivery::from_config(cfg) {
        out.push(at(false, e));
    }
    if let Err(e) = crate::local::Rewriter::from_config(cfg) {
        out.push(at(false, e));
    }
    out
}

/// What `check-config` warns about without failing: settings that load
/// but would lose or hold up mail at run time. Each line starts with
/// `warning: `.
pub fn deep_warnings(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if !cfg.bool("smtp_sasl_auth_enable") {
        return out;
    }
    let specs = crate::config::table::parse_map_list(cfg.get("smtp_sasl_password_maps"))
        .unwrap_or_default();
    let mut maps = Vec::new();
    for spec in &specs {
        let text = crate::config::table::static_text(spec)
            .map_or_else(|| crate::config::table::read_source(spec), Ok);
        let Ok(text) = text else {
            continue; // an error of deep_check's
        };
        // Loaded as delivery loads it (skipped lines are deep_check's
        // warnings), so a broken entry for the relayhost counts as an
        // entry here: its own warning says what to fix.
        let (m, _) = crate::policy::sasl::SaslPasswordMap::load(&text, &spec.label());
        maps.push(if spec.static_value().is_some() {
            m.matching_any_key()
        } else {
            m
        });
    }
    out.extend(relayhost_sasl_warning(cfg.get("relayhost"), &specs, &maps));
    // The daemon re-reads the maps on SIGHUP as mail_owner (root is gone
    // by then): a file only root can read loads at start and makes every
    // later reload fail.
    let owner = cfg.get("mail_owner").trim();
    if owner.is_empty() {
        return out;
    }
    let Ok((uid, gid)) = crate::smtpd::listen::user_ids(owner) else {
        return out; // check_mail_owner reports it (as root)
    };
    for spec in specs.iter().filter(|s| s.is_file()) {
        let path = Path::new(spec.source_path());
        if let Some(why) = unreadable_by(path, uid, gid) {
            let group = group_name(gid);
            out.push(format!(
                "warning: smtp_sasl_password_maps: {} is not readable by mail_owner = {owner} ({why}): \
                 the daemon reads it again on every reload after dropping root, so a reload would fail; \
                 make it readable by the group only: chown root:{group} {p}; chmod 640 {p}",
                path.display(),
                p = path.display(),
            ));
        }
    }
    out
}

/// The warning when `smtp_sasl_auth_enable = yes` and no password map
/// entry matches `relayhost` as delivery looks it up (the server's host
/// name, then the next hop verbatim; Postfix's order and exact keys).
fn relayhost_sasl_warning(
    relayhost: &str,
    specs: &[crate::config::table::MapSpec],
    maps: &[crate::policy::sasl::SaslPasswordMap],
) -> Option<String> {
    let relayhost = relayhost.trim();
    if relayhost.is_empty() {
        return None;
    }
    if specs.is_empty() {
        return Some(format!(
            "warning: smtp_sasl_auth_enable = yes but smtp_sasl_password_maps is empty: \
             tern sends no credentials to relayhost = {relayhost}, and a relay that requires a login \
             refuses the mail (it stays deferred)"
        ));
    }
    let host = crate::policy::nexthop::NextHop::parse(relayhost)
        .map(|h| h.host().to_string())
        .unwrap_or_else(|_| relayhost.to_string());
    let q = crate::policy::sasl::SaslQuery {
        sender: None,
        hostname: &host,
        nexthop: relayhost,
    };
    if crate::policy::sasl::lookup_maps(maps, &q).is_some() {
        return None;
    }
    Some(format!(
        "warning: smtp_sasl_auth_enable = yes but smtp_sasl_password_maps has no entry for \
         relayhost = {relayhost} (looked up as \"{host}\", then \"{relayhost}\": keys match exactly, \
         brackets and port included): tern sends no credentials, and a relay that requires a login \
         refuses the mail (it stays deferred)"
    ))
}

/// Why `path` cannot be read by `uid`/`gid` with no supplementary groups
/// (the daemon clears them when it drops root), or None when it can.
fn unreadable_by(path: &Path, uid: u32, gid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return None, // a missing file is deep_check's error
    };
    if !may_access(&meta, uid, gid, 0o4) {
        return Some(format!(
            "owner {}:{}, mode {:04o}",
            meta.uid(),
            meta.gid(),
            meta.mode() & 0o7777
        ));
    }
    // Every directory above it must let mail_owner through.
    for dir in path.ancestors().skip(1) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        if let Ok(m) = std::fs::metadata(dir) {
            if !may_access(&m, uid, gid, 0o1) {
                return Some(format!(
                    "directory {} has owner {}:{}, mode {:04o}",
                    dir.display(),
                    m.uid(),
                    m.gid(),
                    m.mode() & 0o7777
                ));
            }
        }
    }
    None
}

/// The permission check for `bit` (4 read, 1 search) as the kernel makes
/// it for an unprivileged `uid` with the single group `gid`.
fn may_access(meta: &std::fs::Metadata, uid: u32, gid: u32, bit: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    permits(meta.mode(), meta.uid(), meta.gid(), uid, gid, bit)
}

/// Owner bits if `uid` owns it, else group bits if `gid` is its group,
/// else the other bits (the first class that applies decides).
fn permits(mode: u32, owner: u32, group: u32, uid: u32, gid: u32, bit: u32) -> bool {
    let shift = if owner == uid {
        6
    } else if group == gid {
        3
    } else {
        0
    };
    (mode >> shift) & bit != 0
}

/// The name of group `gid`, or the number.
fn group_name(gid: u32) -> String {
    // SAFETY: getgrgid returns NULL or a pointer to static storage, read
    // at once on this (the only) thread.
    unsafe {
        let g = libc::getgrgid(gid);
        if g.is_null() || (*g).gr_name.is_null() {
            return gid.to_string();
        }
        std::ffi::CStr::from_ptr((*g).gr_name)
            .to_string_lossy()
            .into_owned()
    }
}

fn print_errors(errs: &[ConfigError]) -> ExitCode {
    for e in errs {
        eprintln!("tern: {e}");
    }
    ExitCode::from(1)
}

/// Installs the log backend as the configuration says. `program` names
/// lines logged without an explicit target (`tern/<program>[pid]`).
pub fn init_logging(cfg: &Config, foreground: bool, program: &str) {
    use crate::syslog::{Destination, Facility, Settings};
    let settings = Settings {
        syslog_name: cfg.get("syslog_name").to_string(),
        facility: Facility::from_name(cfg.get("syslog_facility")).unwrap_or(Facility::Mail),
        destination: Destination::from_config(cfg.get("syslog_socket"), cfg.get("syslog_server"))
            .with_server_format(cfg.get("syslog_server_format")),
        stderr: foreground,
        maillog_file: match cfg.get("maillog_file") {
            "" => None,
            f => Some(PathBuf::from(f)),
        },
        level: cfg
            .get("syslog_level")
            .parse()
            .unwrap_or(log::LevelFilter::Info),
        hostname: Some(cfg.get("myhostname").to_string()),
        default_program: program.to_string(),
    };
    if let Err(e) = crate::syslog::init(settings) {
        eprintln!("tern: warning: logging: {e}");
    }
}

/// `tern run --help`.
pub const RUN_USAGE: &str = "usage: tern run [-c FILE] [-f] [--dev]
  the daemon: detaches once listening; -f: stay in the foreground and log to
  stderr too; --dev: the built-in loopback configuration, spool in ./run";

/// `tern run [-c FILE] [-f] [--dev]`.
pub fn run(args: &[String]) -> ExitCode {
    let spec = crate::args::Spec {
        name: "tern run",
        usage: RUN_USAGE,
        flags: &["-f", "--dev"],
        valued: &["-c"],
        max_operands: 0,
    };
    if let Err(code) = crate::args::check(&spec, args) {
        return code;
    }
    let foreground = args.iter().any(|a| a == "-f");
    let source = if args.iter().any(|a| a == "--dev") {
        ConfigSource::BuiltinDev
    } else {
        ConfigSource::File(config_path(args))
    };
    let cfg = match source.load() {
        Ok(c) => c,
        Err(errs) => return print_errors(&errs),
    };
    if let Some(dir) = Path::new(cfg.get("maillog_file")).parent() {
        // The dev config logs under ./run; create it so the first start works.
        if !dir.as_os_str().is_empty() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    // One daemon per spool: the lock is taken here, before detaching, so a
    // second `tern run` says why on the terminal; the child inherits it.
    let mut pid_file = match crate::pidfile::PidFile::lock(&cfg.queue_directory()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "tern: fatal: {e}; {} is locked by it",
                crate::pidfile::path(&cfg.queue_directory()).display()
            );
            return ExitCode::from(1);
        }
    };
    if !foreground {
        // After detaching, stderr is /dev/null: a log target that cannot
        // be reached must be said now, or the daemon runs unseen.
        if let Some(w) = log_target_warning(&cfg) {
            eprintln!("tern: warning: {w}");
        }
    }
    // Without -f: into the background once the configuration is good; the
    // parent reports how start-up went.
    let mut ready = if foreground {
        daemon::Ready::foreground()
    } else {
        match daemon::detach() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("tern: fatal: cannot detach: {e}");
                return ExitCode::from(1);
            }
        }
    };
    init_logging(&cfg, foreground, "master");
    if let Err(e) = pid_file.write_pid() {
        let msg = format!("cannot write {}: {e}", pid_file.path().display());
        eprintln!("tern: fatal: {msg}");
        ready.fail(&format!("tern: fatal: {msg}"));
        return ExitCode::from(1);
    }
    let result = daemon::run(source, cfg, &mut ready);
    pid_file.release();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tern: fatal: {e}");
            ready.fail(&format!("tern: fatal: {e}"));
            log::error!(target: "master", "fatal: {e}");
            ExitCode::from(1)
        }
    }
}

/// Why a detached daemon would log nowhere a person looks, if so: the
/// syslog socket cannot be reached now. Records then go to
/// `maillog_file` alone (named in the message), or nowhere until a syslogd
/// appears.
pub fn log_target_warning(cfg: &Config) -> Option<String> {
    use crate::syslog::Destination;
    let dest = Destination::from_config(cfg.get("syslog_socket"), cfg.get("syslog_server"));
    let maillog = cfg.get("maillog_file");
    let why = match &dest {
        Destination::Unix(path) => {
            let s = std::os::unix::net::UnixDatagram::unbound().ok()?;
            match s.connect(path) {
                Ok(()) => return None,
                Err(e) => format!("cannot reach the syslog socket {}: {e}", path.display()),
            }
        }
        // UDP has no connection to test; a name that does not resolve is
        // an error of the logger's set-up, reported on its own.
        Destination::Udp(_) | Destination::Udp3164(_) => return None,
        Destination::Off if maillog.is_empty() => {
            "syslog_socket, syslog_server and maillog_file are all empty".to_string()
        }
        Destination::Off => return None,
    };
    Some(if maillog.is_empty() {
        format!(
            "{why}; maillog_file is not set, so the daemon's log is lost until a syslog              daemon listens there (set maillog_file = /var/log/tern.log, or syslog_socket)"
        )
    } else {
        format!("{why}; logging to maillog_file = {maillog} only")
    })
}

/// Loads the configuration for a front end (`sendmail`, `mailq`,
/// `flush`): `-C FILE` (sendmail's option) or `-c FILE`, else
/// `$TERN_CONFIG`, else the default; the config options are removed from
/// `args`. A missing default file means built-in defaults, so that
/// `sendmail` works on a box that only has the binary.
fn front_end_config(args: &[String]) -> Result<(Config, Vec<String>), ExitCode> {
    let mut rest = Vec::new();
    let mut path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-C" | "-c" => path = it.next().map(PathBuf::from),
            _ => rest.push(a.clone()),
        }
    }
    let explicit = path.is_some() || std::env::var_os("TERN_CONFIG").is_some();
    let path = path.unwrap_or_else(|| config_path(&[]));
    if !explicit && !path.exists() {
        return Ok((Config::defaults(), rest));
    }
    match Config::load(&path) {
        Ok(c) => Ok((c, rest)),
        Err(errs) => Err(print_errors(&errs)),
    }
}

/// [`front_end_config`] for the service and queue commands (`svc.rs`).
pub(crate) fn front_end_config_pub(args: &[String]) -> Result<(Config, Vec<String>), ExitCode> {
    front_end_config(args)
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(70))
}

/// `tern sendmail` / `sendmail`.
pub fn sendmail(args: &[String]) -> ExitCode {
    // Only --help: sendmail's own parser rejects unknown options (64).
    if let Some(code) = crate::args::help_only(
        "usage: sendmail [-C FILE] [-t] [-i] [-f SENDER] [-F NAME] [-bp] [-bi] [-q] [RECIPIENT...]
  queue a message from standard input (Postfix's sendmail options)",
        args,
    ) {
        return code;
    }
    let (cfg, rest) = match front_end_config(args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    init_logging(&cfg, false, "sendmail");
    if crate::sendmail::is_newaliases(&rest) {
        // `sendmail -bi` is `newaliases`, as with Postfix.
        let code = crate::local::newaliases(&cfg, &mut std::io::stderr());
        return exit_code(code);
    }
    let params = match crate::cleanup::Settings::from_config(&cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sendmail: fatal: {e}");
            return ExitCode::from(78);
        }
    };
    exit_code(crate::sendmail::main(
        &rest,
        &params,
        &mut std::io::stdin().lock(),
    ))
}

/// `tern mailq` / `mailq`.
pub fn mailq(args: &[String]) -> ExitCode {
    let spec = crate::args::Spec {
        name: "mailq",
        usage: "usage: tern mailq [-c FILE]   (or mailq [-C FILE])\n  list the queue as Postfix's mailq: * active, ! on hold",
        flags: &[],
        valued: &["-c", "-C"],
        max_operands: 0,
    };
    if let Err(code) = crate::args::check(&spec, args) {
        return code;
    }
    let (cfg, _) = match front_end_config(args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let out = std::io::stdout();
    let err = std::io::stderr();
    use crate::queue::showq::{mailq_for_caller, MailqError};
    match mailq_for_caller(&cfg.queue_directory(), &mut out.lock(), &mut err.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailq: fatal: {e}");
            ExitCode::from(if matches!(e, MailqError::Down) {
                69
            } else {
                75
            })
        }
    }
}

/// `tern flush`.
pub fn flush(args: &[String]) -> ExitCode {
    let spec = crate::args::Spec {
        name: "tern flush",
        usage: "usage: tern flush [-c FILE]\n  ask the daemon to retry every deferred message now",
        flags: &[],
        valued: &["-c", "-C"],
        max_operands: 0,
    };
    if let Err(code) = crate::args::check(&spec, args) {
        return code;
    }
    let (cfg, _) = match front_end_config(args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match crate::queue::wake::notify(&cfg.queue_directory(), crate::queue::wake::Wake::Flush) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("tern: fatal: Cannot flush mail queue - mail system is down");
            ExitCode::from(69)
        }
        Err(e) => {
            eprintln!("tern: fatal: cannot reach the daemon: {e}");
            ExitCode::from(75)
        }
    }
}

/// `tern sts list | show DOMAIN | purge DOMAIN|ALL` (see
/// [`crate::mtasts::admin`]); `-c FILE` names the configuration.
pub fn sts(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", crate::mtasts::admin::USAGE);
        return ExitCode::SUCCESS;
    }
    let (cfg, rest) = match front_end_config(args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let code = crate::mtasts::admin::run(
        &rest,
        &cfg.queue_directory(),
        crate::mtasts::resolver::unix_now(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    ExitCode::from(code)
}

/// `tern tlsrpt show | send --now` (see [`crate::tlsrpt::daemon::cli`]);
/// `-c FILE` names the configuration.
pub fn tlsrpt(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", crate::tlsrpt::daemon::USAGE);
        return ExitCode::SUCCESS;
    }
    let (cfg, rest) = match front_end_config(args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(bad) = rest.iter().find(|a| a.starts_with('-') && *a != "--now") {
        eprintln!(
            "tern tlsrpt: unknown option \"{bad}\"\n{}",
            crate::tlsrpt::daemon::USAGE
        );
        return ExitCode::from(crate::args::EX_USAGE);
    }
    let limits = crate::tlsrpt::counters::Limits {
        max_domains: usize::try_from(cfg.int("smtp_tlsrpt_max_domains")).unwrap_or(usize::MAX),
    };
    let code = crate::tlsrpt::daemon::cli(
        &rest,
        &cfg.queue_directory(),
        &limits,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    ExitCode::from(code)
}

/// `tern probe`.
pub fn probe(args: &[String]) -> ExitCode {
    if let Some(code) = crate::args::help_only(crate::probe::USAGE, args) {
        return code;
    }
    crate::probe::main(args)
}

/// `tern passwd [-c FILE] [-f PWFILE] USER`: sets USER's SMTP AUTH
/// password in `smtpd_sasl_password_file` (or `-f PWFILE`). The password is
/// read from standard input: once (the first line) from a pipe, twice
/// without echo from a terminal. The file is replaced atomically; a new
/// file is mode 0600 and, when run as root, owned by `mail_owner` (the
/// daemon reads it after dropping privileges); an existing file keeps its
/// owner and mode.
pub fn passwd(args: &[String]) -> ExitCode {
    if let Some(code) = crate::args::help_only(
        "usage: tern passwd [-c CONFIG] [-f PASSWORD_FILE] USER\n  set USER's SMTP AUTH password (read from stdin)",
        args,
    ) {
        return code;
    }
    let mut file: Option<PathBuf> = None;
    let mut config_args = Vec::new();
    let mut user: Option<&str> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-f" => file = it.next().map(PathBuf::from),
            "-c" | "-C" => {
                config_args.push(a.clone());
                if let Some(p) = it.next() {
                    config_args.push(p.clone());
                }
            }
            s if s.starts_with('-') => {
                eprintln!("tern passwd: unknown option \"{s}\"\nusage: tern passwd [-c CONFIG] [-f PASSWORD_FILE] USER");
                return ExitCode::from(64);
            }
            s => user = Some(s),
        }
    }
    let Some(user) = user else {
        eprintln!("usage: tern passwd [-c CONFIG] [-f PASSWORD_FILE] USER");
        return ExitCode::from(64);
    };
    let (cfg, _) = match front_end_config(&config_args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let path = match file {
        Some(f) => f,
        None => match cfg.get("smtpd_sasl_password_file") {
            "" => {
                eprintln!(
                    "tern: fatal: smtpd_sasl_password_file is not set; set it or use -f FILE"
                );
                return ExitCode::from(78);
            }
            f => PathBuf::from(f),
        },
    };
    let password = match read_new_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tern: fatal: {e}");
            return ExitCode::from(1);
        }
    };
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            eprintln!("tern: fatal: {}: {e}", path.display());
            return ExitCode::from(74);
        }
    };
    let text = match crate::smtpd::passwd::PasswordFile::set_password(&old, user, &password) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tern: fatal: {e}");
            return ExitCode::from(65);
        }
    };
    match replace_file(&path, text.as_bytes(), cfg.get("mail_owner")) {
        Ok(()) => {
            eprintln!("tern: password for {user} set in {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tern: fatal: {}: {e}", path.display());
            ExitCode::from(74)
        }
    }
}

/// Reads the new password: from a terminal twice, without echo, and the two
/// must match; otherwise the first line of standard input.
fn read_new_password() -> Result<Vec<u8>, String> {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    // SAFETY: isatty has no preconditions.
    let tty = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
    let read_line = |prompt: &str| -> Result<Vec<u8>, String> {
        if tty {
            eprint!("{prompt}");
        }
        let echo = tty.then(EchoOff::new).flatten();
        let mut line = Vec::new();
        stdin
            .lock()
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading the password: {e}"))?;
        drop(echo);
        if tty {
            eprintln!();
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(line)
    };
    let first = read_line("New password: ")?;
    if first.is_empty() {
        return Err("empty password".into());
    }
    if tty && read_line("Retype new password: ")? != first {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}

/// Terminal echo switched off for as long as it lives.
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<EchoOff> {
        // SAFETY: all-zero is a valid termios to be filled by tcgetattr;
        // tcsetattr gets a termios that tcgetattr filled.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                return None;
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(EchoOff(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings tcgetattr returned.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0);
        }
    }
}

/// Writes `data` to a temporary file next to `path` and renames it over
/// `path`, so a crash leaves the old or the new file, never half of one.
fn replace_file(path: &Path, data: &[u8], mail_owner: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "passwd".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        match std::fs::metadata(path) {
            Ok(m) => {
                f.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
                // Only root may give the file away; others keep their own.
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } == 0 {
                    std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
                }
            }
            Err(_) => {
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } == 0 && !mail_owner.is_empty() {
                    if let Ok((uid, gid)) = crate::smtpd::listen::user_ids(mail_owner) {
                        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
                    }
                }
            }
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_classes() {
        // root:tern 0640 -> tern (group) reads, others do not.
        assert!(permits(0o100640, 0, 5025, 5025, 5025, 4));
        assert!(!permits(0o100600, 0, 0, 5025, 5025, 4));
        // The owner class decides even when group bits would allow.
        assert!(!permits(0o100040, 5025, 5025, 5025, 5025, 4));
        assert!(permits(0o100604, 0, 0, 5025, 5025, 4));
        assert!(permits(0o040711, 0, 0, 5025, 5025, 1));
        assert!(!permits(0o040700, 0, 0, 5025, 5025, 1));
    }

    #[test]
    fn relayhost_key_mismatch_warns() {
        let map = |text: &str| {
            crate::policy::sasl::SaslPasswordMap::parse(text.as_bytes(), "sasl_passwd")
                .unwrap()
                .0
        };
        let specs = crate::config::table::parse_map_list("texthash:/etc/tern/sasl_passwd").unwrap();
        let m = [map("[smtp.example]:587 u:p\n")];
        assert!(relayhost_sasl_warning("[smtp.example]:587", &specs, &m).is_none());
        let w = relayhost_sasl_warning("smtp.example:587", &specs, &m).unwrap();
        assert!(
            w.contains("no entry for relayhost = smtp.example:587"),
            "{w}"
        );
        // The host name alone matches any port, as in delivery.
        let m = [map("smtp.example u:p\n")];
        assert!(relayhost_sasl_warning("[smtp.example]:465", &specs, &m).is_none());
        assert!(relayhost_sasl_warning("", &specs, &m).is_none());
        let w = relayhost_sasl_warning("[smtp.example]:587", &[], &[]).unwrap();
        assert!(w.contains("smtp_sasl_password_maps is empty"), "{w}");
    }
}
