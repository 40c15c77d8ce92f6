//! Strict option checking for the sub-commands: `--help` (or `-h`) prints
//! the command's usage on stdout and does nothing else (exit 0); an option
//! the command does not know is an error with the usage on stderr and exit
//! 64 (EX_USAGE, as Postfix's commands exit on a usage error).

use std::process::ExitCode;

/// EX_USAGE from sysexits.h.
pub const EX_USAGE: u8 = 64;

/// What a command accepts.
pub struct Spec<'a> {
    /// `tern NAME` for messages.
    pub name: &'a str,
    /// The usage text (`usage: tern NAME ...`).
    pub usage: &'a str,
    /// Options without a value (`-f`, `--dev`).
    pub flags: &'a [&'a str],
    /// Options followed by a value (`-c FILE`; `-cFILE` works too).
    pub valued: &'a [&'a str],
    /// How many operands (non-option arguments) it takes, at most.
    pub max_operands: usize,
}

/// The answer to `--help`, or a usage error; `Ok` when `args` are
/// acceptable. `-h` means help unless the command takes `-h` itself.
pub fn check(spec: &Spec<'_>, args: &[String]) -> Result<(), ExitCode> {
    let help = |a: &str| a == "--help" || (a == "-h" && !spec.flags.contains(&"-h"));
    if args.iter().any(|a| help(a)) {
        println!("{}", spec.usage);
        return Err(ExitCode::SUCCESS);
    }
    let mut operands = 0;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.as_str();
        if spec.flags.contains(&a) {
            continue;
        }
        if spec.valued.contains(&a) {
            if it.next().is_none() {
                return usage_error(spec, &format!("option {a} needs a value"));
            }
            continue;
        }
        if a.len() > 2 && spec.valued.iter().any(|v| v.len() == 2 && a.starts_with(v)) {
            continue; // -cFILE
        }
        if a.starts_with('-') && a != "-" {
            return usage_error(spec, &format!("unknown option \"{a}\""));
        }
        operands += 1;
        if operands > spec.max_operands {
            return usage_error(spec, &format!("unexpected argument \"{a}\""));
        }
    }
    Ok(())
}

fn usage_error(spec: &Spec<'_>, what: &str) -> Result<(), ExitCode> {
    eprintln!("{}: {what}\n{}", spec.name, spec.usage);
    Err(ExitCode::from(EX_USAGE))
}

/// Just `--help`: for commands with option parsers of their own
/// (`sendmail`, whose `-h` is not help).
pub fn help_only(usage: &str, args: &[String]) -> Option<ExitCode> {
    if args.iter().any(|a| a == "--help") {
        println!("{usage}");
        return Some(ExitCode::SUCCESS);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    const SPEC: Spec<'static> = Spec {
        name: "tern x",
        usage: "usage: tern x [-c FILE] [-n]",
        flags: &["-n"],
        valued: &["-c"],
        max_operands: 0,
    };

    #[test]
    fn strict() {
        assert!(check(&SPEC, &s(&["-n", "-c", "f"])).is_ok());
        assert!(check(&SPEC, &s(&["-cf"])).is_ok());
        assert!(check(&SPEC, &s(&["-c"])).is_err());
        assert!(check(&SPEC, &s(&["-x"])).is_err());
        assert!(check(&SPEC, &s(&["op"])).is_err());
        assert!(check(&SPEC, &s(&["--help"])).is_err());
    }
}
