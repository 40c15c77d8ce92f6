//! `tern sendmail`: the Sendmail-compatible front end scripts call
//! (`sendmail -t`, `sendmail -i user@example.org`, `sendmail -bp`,
//! `sendmail -q`): option parsing, standard input, exit codes, as
//! Postfix's sendmail(1). Queuing itself is [`crate::cleanup`]'s: a user
//! who may write the spool queues through [`crate::cleanup::local`], and
//! the daemon wakes up; anyone else writes a `maildrop/` file
//! ([`crate::queue::maildrop`]), which the daemon's pickup then queues
//! through the same code for the file's owner.

use crate::cleanup::{self, headers, LineEnds};
use crate::queue::{clock, showq, wake};
use std::io::{self, Read, Write};

/// Exit codes from `<sysexits.h>`, as Postfix's sendmail uses them.
pub mod exit {
    /// Success.
    pub const EX_OK: i32 = 0;
    /// Command line usage error.
    pub const EX_USAGE: i32 = 64;
    /// Bad input data (header too large, message too big, unreadable input).
    pub const EX_DATAERR: i32 = 65;
    /// Addressee or login unknown / malformed address.
    pub const EX_NOUSER: i32 = 67;
    /// Service unavailable (e.g. flush requested but no daemon runs).
    pub const EX_UNAVAILABLE: i32 = 69;
    /// Internal software error.
    pub const EX_SOFTWARE: i32 = 70;
    /// Temporary failure (queue file could not be written): try again later.
    pub const EX_TEMPFAIL: i32 = 75;
}
use exit::*;

/// `sendmail`'s settings: exactly what cleanup needs for a local
/// submission (the queue directory, limits, rewriting).
pub type SendmailParams = cleanup::Settings;

/// Who runs `sendmail` (re-exported for [`run`]'s callers).
pub use crate::cleanup::Invoker;

struct Fatal(i32, String);

fn fatal<T>(code: i32, msg: impl Into<String>) -> Result<T, Fatal> {
    Err(Fatal(code, msg.into()))
}

impl From<cleanup::Error> for Fatal {
    fn from(e: cleanup::Error) -> Fatal {
        let code = match e.kind {
            cleanup::ErrorKind::Usage => EX_USAGE,
            cleanup::ErrorKind::Data => EX_DATAERR,
            cleanup::ErrorKind::Address => EX_NOUSER,
            cleanup::ErrorKind::Temporary => EX_TEMPFAIL,
        };
        Fatal(code, e.message)
    }
}

#[derive(Default)]
struct Options {
    mode: Mode,
    extract: bool,
    ignore_dots: bool,
    sender: Option<String>,
    full_name: Option<String>,
    qtime: bool,
    recipients: Vec<String>,
}

impl Options {
    /// The message as cleanup takes it.
    fn submission(&self) -> cleanup::Submission {
        cleanup::Submission {
            sender: self.sender.clone(),
            full_name: self.full_name.clone(),
            recipients: self.recipients.clone(),
            extract: self.extract,
            dot_ends: !self.ignore_dots,
        }
    }
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Mode {
    #[default]
    Enqueue,
    Mailq,
    Flush,
    NewAliases,
}

fn parse_args(args: &[String]) -> Result<Options, Fatal> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            o.recipients.extend(args[i..].iter().cloned());
            break;
        }
        if a == "-q" {
            o.mode = Mode::Flush;
            continue;
        }
        if a == "-V" {
            continue;
        }
        let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) else {
            o.recipients.push(a.clone());
            continue;
        };
        for (pos, c) in cluster.char_indices() {
            const WITH_ARG: &str = "ABCFLNRVXbefhopqr";
            let optarg = if WITH_ARG.contains(c) {
                let rest = &cluster[pos + c.len_utf8()..];
                let v = if !rest.is_empty() {
                    rest.to_string()
                } else if let Some(next) = args.get(i) {
                    i += 1;
                    next.clone()
                } else {
                    return fatal(EX_USAGE, format!("option requires an argument -- '{c}'"));
                };
                Some(v)
            } else {
                None
            };
            let arg = optarg.as_deref().unwrap_or("");
            match c {
                'A' | 'C' | 'L' | 'N' | 'R' | 'V' | 'X' | 'e' | 'h' | 'p' => {}
                'G' | 'U' | 'c' | 'm' | 'v' | 'x' => {}
                'B' => {
                    if arg != "8BITMIME" && arg != "7BIT" {
                        return fatal(EX_USAGE, "-B option needs 8BITMIME or 7BIT");
                    }
                }
                'F' => o.full_name = Some(arg.to_string()),
                'f' | 'r' => o.sender = Some(arg.to_string()),
                'I' => o.mode = Mode::NewAliases,
                'i' => o.ignore_dots = true,
                't' => o.extract = true,
                'n' => return fatal(EX_USAGE, "-n option not supported"),
                'o' => {
                    // -oi is -i; every other -o option is ignored, as Postfix does.
                    if arg.starts_with('i') {
                        o.ignore_dots = true;
                    }
                }
                'b' => match arg.chars().next() {
                    Some('m') => o.mode = Mode::Enqueue,
                    Some('p') => o.mode = Mode::Mailq,
                    Some('i') => o.mode = Mode::NewAliases,
                    Some(x) => return fatal(EX_USAGE, format!("unsupported: -b{x}")),
                    None => return fatal(EX_USAGE, "unsupported: -b"),
                },
                'q' => match arg.chars().next() {
                    Some(d) if d.is_ascii_digit() => o.qtime = true,
                    Some('R') => return fatal(EX_USAGE, "-qR (flush one site) is not implemented"),
                    Some(x) => return fatal(EX_USAGE, format!("-q{x} is not implemented")),
                    None => o.mode = Mode::Flush,
                },
                _ => {
                    return fatal(
                        EX_USAGE,
                        format!(
                            "invalid option -- '{c}'; usage: sendmail [options] [recipient ...]"
                        ),
                    )
                }
            }
            if optarg.is_some() {
                break;
            }
        }
    }
    if o.extract && o.mode != Mode::Enqueue {
        return fatal(EX_USAGE, "-t can be used only in delivery mode");
    }
    Ok(o)
}

/// Runs `sendmail` with the real stdout, stderr, clock and calling user.
/// `args` excludes the program name. Returns the exit code.
pub fn main(args: &[String], params: &SendmailParams, stdin: &mut dyn Read) -> i32 {
    let Some(who) = Invoker::current() else {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        eprintln!("sendmail: fatal: no login name found for user ID {uid}");
        return EX_NOUSER;
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    run(
        args,
        params,
        &who,
        clock::now(),
        stdin,
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}

/// [`main`] with everything injected (tests, and `tern sendmail` alike).
/// Messages go to `stderr` as `sendmail: fatal: ...`.
pub fn run(
    args: &[String],
    params: &SendmailParams,
    who: &Invoker,
    now: u64,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    match run_inner(args, params, who, now, stdin, stdout, stderr) {
        Ok(()) => EX_OK,
        Err(Fatal(code, msg)) => {
            let _ = writeln!(stderr, "sendmail: fatal: {msg}");
            code
        }
    }
}

fn run_inner(
    args: &[String],
    params: &SendmailParams,
    who: &Invoker,
    now: u64,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), Fatal> {
    let opts = parse_args(args)?;
    match opts.mode {
        // `tern sendmail -bi` runs newaliases before coming here
        // (`is_newaliases`); without tables there is nothing to rebuild.
        Mode::NewAliases => return Ok(()),
        Mode::Mailq => {
            if !opts.recipients.is_empty() {
                return fatal(EX_USAGE, "display queue mode requires no recipient");
            }
            return match showq::mailq_for_caller(&params.queue_directory, stdout, stderr) {
                Ok(()) => Ok(()),
                Err(e @ showq::MailqError::Down) => fatal(EX_UNAVAILABLE, e.to_string()),
                Err(e) => fatal(EX_TEMPFAIL, e.to_string()),
            };
        }
        Mode::Flush => {
            if !opts.recipients.is_empty() {
                return fatal(EX_USAGE, "flush queue mode requires no recipient");
            }
            return match wake::notify(&params.queue_directory, wake::Wake::Flush) {
                Ok(true) => Ok(()),
                Ok(false) => fatal(
                    EX_UNAVAILABLE,
                    "Cannot flush mail queue - mail system is down",
                ),
                Err(e) => fatal(EX_UNAVAILABLE, format!("Cannot flush mail queue: {e}")),
            };
        }
        Mode::Enqueue if opts.qtime => return Ok(()),
        Mode::Enqueue => {}
    }
    check_space(params)?;
    if !can_write_spool(params) {
        return submit_maildrop(&opts, params, stdin);
    }
    cleanup::local::enqueue(params, &opts.submission(), who, now, stdin)?;
    // Best effort: if no daemon listens, the message waits for its next scan.
    let _ = wake::notify(&params.queue_directory, wake::Wake::NewMail);
    Ok(())
}

/// `queue_minfree`: refuses (EX_TEMPFAIL, nothing queued) while the spool's
/// file system is short of space, so a script's mail never fills the flash.
fn check_space(params: &SendmailParams) -> Result<(), Fatal> {
    match crate::queue::space::check_dir(&params.queue_directory, params.queue_minfree, 0, 0) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(short)) => fatal(
            EX_TEMPFAIL,
            format!(
                "{}: message not queued; try again later",
                short.minfree_text()
            ),
        ),
        Err(e) => fatal(
            EX_TEMPFAIL,
            format!(
                "queue_directory {}: cannot check free space: {e}",
                params.queue_directory.display()
            ),
        ),
    }
}

/// Whether `args` ask for `-bi` (initialize the alias database): the
/// caller runs `newaliases` then, as Postfix's sendmail does.
pub fn is_newaliases(args: &[String]) -> bool {
    parse_args(args).is_ok_and(|o| o.mode == Mode::NewAliases)
}

/// Whether this process writes the spool itself: root, the spool's owner,
/// or anyone where there is no `maildrop/` (no daemon ever prepared one:
/// the old direct path, which creates the spool if it may). Everyone else
/// submits through `maildrop/`.
fn can_write_spool(params: &SendmailParams) -> bool {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0
        || !crate::queue::maildrop::dir(&params.queue_directory).is_dir()
    {
        return true;
    }
    let incoming = params.queue_directory.join("incoming");
    let Ok(path) = std::ffi::CString::new(incoming.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: path is NUL-terminated; faccessat only reads it. AT_EACCESS:
    // the effective IDs decide, as they do for the writes that follow.
    unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        ) == 0
    }
}

/// `sendmail` by a user who cannot write the spool: checks what it can
/// (command-line recipients, size), writes a maildrop file and wakes the
/// daemon. Header completion, rewriting and `-t` happen at pickup, the same
/// code as for root's mail ([`crate::cleanup::local`]).
fn submit_maildrop(
    opts: &Options,
    params: &SendmailParams,
    stdin: &mut dyn Read,
) -> Result<(), Fatal> {
    use crate::queue::maildrop::{self, DropEnvelope, DropFile};
    let mut check: Vec<String> = Vec::new();
    for a in &opts.recipients {
        headers::addresses(a.as_bytes(), &mut check, params.recipient_limit)
            .or_else(|e| fatal(EX_NOUSER, format!("bad recipient address \"{a}\": {e}")))?;
    }
    if check.is_empty() && !opts.extract {
        return fatal(
            EX_USAGE,
            "Recipient addresses must be specified on the command line or via the -t option",
        );
    }
    let env = DropEnvelope {
        extract: opts.extract,
        sender: opts.sender.as_ref().map(|s| {
            let s = s.trim();
            s.strip_prefix('<')
                .and_then(|x| x.strip_suffix('>'))
                .unwrap_or(s)
                .to_string()
        }),
        full_name: opts.full_name.clone(),
        recipients: opts.recipients.clone(),
    };
    let mut head = Vec::new();
    maildrop::encode(&env, &mut head).or_else(|e| fatal(EX_USAGE, e.to_string()))?;
    let mut f = DropFile::create(&params.queue_directory)
        .or_else(|e| fatal(EX_TEMPFAIL, format!("cannot create maildrop file: {e}")))?;
    let wr = |e: io::Error| Fatal(EX_TEMPFAIL, format!("error writing maildrop file: {e}"));
    f.write(&head).map_err(wr)?;
    let mut conv = LineEnds::new(!opts.ignore_dots);
    let mut inbuf = [0u8; 4096];
    let mut out = [0u8; 4096];
    let mut total: u64 = 0;
    let limit = params.message_size_limit;
    let put = |f: &mut DropFile, data: &[u8], total: &mut u64| -> Result<(), Fatal> {
        *total += data.len() as u64;
        if limit > 0 && *total > limit {
            return fatal(
                EX_DATAERR,
                format!("message file too big (message_size_limit = {limit} bytes)"),
            );
        }
        f.write(data).map_err(wr)
    };
    'read: loop {
        let n = match stdin.read(&mut inbuf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return fatal(EX_DATAERR, format!("error reading input: {e}")),
        };
        let mut data = &inbuf[..n];
        while !data.is_empty() {
            let (used, made, end) = conv.feed(data, &mut out);
            put(&mut f, &out[..made], &mut total)?;
            data = &data[used..];
            if end {
                break 'read;
            }
        }
    }
    let mut tail = [0u8; 4];
    let n = conv.finish(&mut tail);
    put(&mut f, &tail[..n], &mut total)?;
    f.commit()
        .or_else(|e| fatal(EX_TEMPFAIL, format!("cannot commit maildrop file: {e}")))?;
    // Best effort: without a daemon the file waits in maildrop/.
    let _ = wake::notify(&params.queue_directory, wake::Wake::NewMail);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let o = parse_args(&s(&[
            "-t", "-oi", "-oem", "-odi", "-fme@x", "-F", "Me", "a@b",
        ]))
        .ok()
        .unwrap();
        assert!(o.extract && o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("me@x"));
        assert_eq!(o.full_name.as_deref(), Some("Me"));
        assert_eq!(o.recipients, ["a@b"]);
        assert!(parse_args(&s(&["-bp"])).ok().unwrap().mode == Mode::Mailq);
        assert!(parse_args(&s(&["-q"])).ok().unwrap().mode == Mode::Flush);
        for bad in [
            &["-k"][..],
            &["-bs"],
            &["-f"],
            &["-t", "-bp"],
            &["-n"],
            &["-qX"],
        ] {
            match parse_args(&s(bad)) {
                Err(Fatal(code, _)) => assert_eq!(code, EX_USAGE, "{bad:?}"),
                Ok(_) => panic!("{bad:?} accepted"),
            }
        }
    }
}
