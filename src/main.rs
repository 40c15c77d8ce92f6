//! The `tern` binary: dispatches on the sub-command, or on argv[0] when it is
//! invoked through a `sendmail` or `mailq` symlink.

use std::path::PathBuf;
use std::process::ExitCode;

use tern::args::Spec;
use tern::config::{self, Config};

const USAGE: &str = "usage: tern COMMAND [OPTIONS]
commands:
  run [-c FILE] [-f] [--dev]    the daemon (detaches once listening; -f: foreground,
                                log to stderr too; --dev: built-in loopback config,
                                spool in ./run)
  check-config [-c FILE]        validate the configuration, print every error
  config [-n] [-d] [-c FILE]    print settings (-n: only those set; -d: with meanings)
  sendmail [OPTIONS] [RCPT...]  queue a message from standard input
  mailq                         list the queue (! on hold)
  flush                         ask the daemon to retry every queued message now
  stop [-t SECONDS]             stop the daemon (SIGTERM), wait until it has exited
  reload                        make the daemon re-read its configuration (SIGHUP)
  status                        running or not (exit 0/3), queue, TLS, memory
  queue delete|hold|release|requeue ID...|ALL   change the queue (postsuper)
  probe [-l LEVEL] [-m MATCH] DEST   TLS probe of a destination
  passwd [-c FILE] USER         set USER's SMTP AUTH password
  sts list|show DOMAIN|purge DOMAIN|ALL   the MTA-STS policy cache
  tlsrpt show|send --now                 TLSRPT counters; send the reports now
  newaliases [-c FILE]          check the alias_maps files, print every error
  man 8|5                       print the manual page tern(8) or tern.conf(5) (roff)
  version                       print the version
every command takes -c FILE (default $TERN_CONFIG or /etc/tern/tern.conf) and --help";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("tern")
        .to_string();
    match argv0.as_str() {
        "sendmail" => return tern::cli::sendmail(&args[1..]),
        "mailq" => return tern::cli::mailq(&args[1..]),
        "newaliases" => return newaliases(&args[1..]),
        _ => {}
    }
    let Some(cmd) = args.get(1) else {
        eprintln!("{USAGE}");
        return ExitCode::from(64);
    };
    let rest = &args[2..];
    match cmd.as_str() {
        "run" => tern::cli::run(rest),
        "check-config" => check_config(rest),
        "config" => show_config(rest),
        "sendmail" => tern::cli::sendmail(rest),
        "mailq" => tern::cli::mailq(rest),
        "flush" => tern::cli::flush(rest),
        "probe" => tern::cli::probe(rest),
        "passwd" => tern::cli::passwd(rest),
        "sts" => tern::cli::sts(rest),
        "tlsrpt" => tern::cli::tlsrpt(rest),
        "newaliases" => newaliases(rest),
        "stop" => tern::svc::stop(rest),
        "reload" => tern::svc::reload(rest),
        "status" => tern::svc::status(rest),
        "queue" => tern::svc::queue(rest),
        "man" => man(rest),
        "version" | "--version" | "-V" => {
            let spec = Spec {
                name: "tern version",
                usage: "usage: tern version\n  print the version",
                flags: &[],
                valued: &[],
                max_operands: 0,
            };
            if let Err(code) = tern::args::check(&spec, rest) {
                return code;
            }
            println!("tern {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("tern: unknown command \"{other}\"\n{USAGE}");
            ExitCode::from(64)
        }
    }
}

fn newaliases(args: &[String]) -> ExitCode {
    let spec = Spec {
        name: "newaliases",
        usage: "usage: tern newaliases [-c FILE]\n  check the alias_maps files, print every error",
        flags: &[],
        valued: &["-c", "-C"],
        max_operands: 0,
    };
    if let Err(code) = tern::args::check(&spec, args) {
        return code;
    }
    match Config::load(&config_path(args)) {
        Ok(cfg) => ExitCode::from(tern::local::newaliases(&cfg, &mut std::io::stderr()) as u8),
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            ExitCode::from(1)
        }
    }
}

/// `tern man 8|5`: the page on stdout (packages install it gzipped).
fn man(args: &[String]) -> ExitCode {
    let spec = Spec {
        name: "tern man",
        usage: "usage: tern man 8|5\n  print the manual page tern(8) or tern.conf(5) (roff)",
        flags: &[],
        valued: &[],
        max_operands: 1,
    };
    if let Err(code) = tern::args::check(&spec, args) {
        return code;
    }
    let page = match args {
        [section] => tern::man::page(section, USAGE),
        _ => None,
    };
    match page {
        Some(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("usage: tern man 8|5");
            ExitCode::from(64)
        }
    }
}

fn config_path(args: &[String]) -> PathBuf {
    tern::cli::config_path(args)
}

fn check_config(args: &[String]) -> ExitCode {
    let spec = Spec {
        name: "tern check-config",
        usage: "usage: tern check-config [-c FILE]\n  validate the configuration and the files it names, print every error",
        flags: &[],
        valued: &["-c"],
        max_operands: 0,
    };
    if let Err(code) = tern::args::check(&spec, args) {
        return code;
    }
    let path = config_path(args);
    match Config::load(&path) {
        Ok(cfg) => {
            // Postfix parameters that do nothing here: accepted, but said.
            for w in cfg.warnings() {
                eprintln!("{w}");
            }
            let findings = tern::cli::deep_check(&cfg);
            for f in &findings {
                eprintln!("{}", f.problem);
            }
            if findings.iter().any(|f| !f.warning) {
                return ExitCode::from(1);
            }
            // Reserved parameters load (a newer config must work) but
            // must not look as if they did something.
            for w in config::params::reserved_warnings(|n| cfg.line_of(n).map(|_| cfg.get(n))) {
                eprintln!("{}: {w}", path.display());
            }
            for w in tern::cli::deep_warnings(&cfg) {
                eprintln!("{}: {w}", path.display());
            }
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            ExitCode::from(1)
        }
    }
}

fn show_config(args: &[String]) -> ExitCode {
    let spec = Spec {
        name: "tern config",
        usage: "usage: tern config [-n] [-d] [-c FILE] [--dev]\n  print the settings (-n: only those set; -d: with their meanings)",
        flags: &["-n", "-d", "--dev"],
        valued: &["-c"],
        max_operands: 0,
    };
    if let Err(code) = tern::args::check(&spec, args) {
        return code;
    }
    let non_default = args.iter().any(|a| a == "-n");
    let docs = args.iter().any(|a| a == "-d");
    let path = config_path(args);
    let cfg = if args.iter().any(|a| a == "--dev") {
        Config::parse_str(config::DEV_CONFIG, "<built-in dev>")
    } else {
        Config::load(&path)
    };
    match cfg {
        Ok(cfg) => {
            if docs {
                for p in config::params::PARAMS {
                    println!("{} = {}\n    {}", p.name, cfg.get(p.name), p.doc);
                }
            } else {
                print!("{}", cfg.render(non_default));
            }
            ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            ExitCode::from(1)
        }
    }
}
