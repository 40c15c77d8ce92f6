//! Command-line front ends other than the config commands in main.rs.

use std::path::PathBuf;
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
    let _ = foreground;
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

/// `tern sendmail` / `sendmail`.
pub fn sendmail(_args: &[String]) -> ExitCode {
    not_yet("sendmail")
}

/// `tern mailq` / `mailq`.
pub fn mailq(_args: &[String]) -> ExitCode {
    not_yet("mailq")
}

/// `tern flush`.
pub fn flush(_args: &[String]) -> ExitCode {
    not_yet("flush")
}

/// `tern probe`.
pub fn probe(_args: &[String]) -> ExitCode {
    not_yet("probe")
}

/// `tern passwd`.
pub fn passwd(_args: &[String]) -> ExitCode {
    not_yet("passwd")
}
