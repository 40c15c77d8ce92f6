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

/// Checks beyond syntax: the files and tables the configuration names.
pub fn deep_check(_cfg: &Config) -> Vec<ConfigError> {
    Vec::new()
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
        destination: Destination::from_config(cfg.get("syslog_socket"), cfg.get("syslog_server")),
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

/// `tern run [-c FILE] [-f] [--dev]`.
pub fn run(args: &[String]) -> ExitCode {
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
    init_logging(&cfg, foreground, "master");
    match daemon::run(source, cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tern: fatal: {e}");
            log::error!(target: "master", "fatal: {e}");
            ExitCode::from(1)
        }
    }
}

fn not_yet(what: &str) -> ExitCode {
    eprintln!("tern: {what} is not available in this build yet");
    ExitCode::from(69)
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

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(70))
}

/// `tern sendmail` / `sendmail`.
pub fn sendmail(args: &[String]) -> ExitCode {
    let (cfg, rest) = match front_end_config(args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    init_logging(&cfg, false, "sendmail");
    let mut params = crate::sendmail::SendmailParams::new(
        cfg.queue_directory(),
        cfg.get("myhostname"),
        cfg.get("myorigin"),
    );
    params.message_size_limit = cfg.int("message_size_limit");
    params.recipient_limit = usize::try_from(cfg.int("smtpd_recipient_limit")).unwrap_or(1000);
    match crate::local::Rewriter::from_config(&cfg) {
        Ok(rw) => params.rewrite = Some(rw),
        Err(e) => {
            eprintln!("sendmail: fatal: {e}");
            return ExitCode::from(78);
        }
    }
    exit_code(crate::sendmail::main(
        &rest,
        &params,
        &mut std::io::stdin().lock(),
    ))
}

/// `tern mailq` / `mailq`.
pub fn mailq(args: &[String]) -> ExitCode {
    let (cfg, _) = match front_end_config(args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let out = std::io::stdout();
    let err = std::io::stderr();
    match crate::queue::mailq::mailq(&cfg.queue_directory(), &mut out.lock(), &mut err.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailq: fatal: {e}");
            ExitCode::from(75)
        }
    }
}

/// `tern flush`.
pub fn flush(args: &[String]) -> ExitCode {
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

/// `tern probe`.
pub fn probe(_args: &[String]) -> ExitCode {
    not_yet("probe")
}

/// `tern passwd`.
pub fn passwd(_args: &[String]) -> ExitCode {
    not_yet("passwd")
}
