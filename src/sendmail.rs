//! `tern sendmail`: the Sendmail-compatible front end scripts call
//! (`sendmail -t`, `sendmail -i user@example.org`, `sendmail -bp`,
//! `sendmail -q`). It reads the message from stdin, adds missing `From:`,
//! `Date:` and `Message-Id:` headers and a `Received:` line, converts local
//! line ends to CRLF, writes the queue file through [`crate::queue::Spool`]
//! and wakes the daemon. Options and exit codes follow Postfix's sendmail(1).
//!
//! A user who cannot write the spool (not root, not its owner) writes a
//! `maildrop/` file instead ([`crate::queue::maildrop`]); the daemon's
//! pickup then runs this same queuing code for the file's owner
//! ([`enqueue_picked`]).
//!
//! Header parsing ([`headers`]) and line-end conversion ([`LineEnds`]) are
//! sans-I/O and bounded: the header block is capped at
//! `header_size_limit`, the body is streamed through a fixed buffer.

use crate::queue::envelope::{self, Recipient};
use crate::queue::{clock, showq, wake, NewMessage, Spool, SpoolError};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

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

/// Settings `sendmail` needs (the lead fills them from tern.conf).
#[derive(Debug, Clone)]
pub struct SendmailParams {
    /// `queue_directory`.
    pub queue_directory: PathBuf,
    /// `myhostname`: used in `Message-Id:` and `Received:`.
    pub myhostname: String,
    /// `myorigin`: domain appended to unqualified addresses and the login name.
    pub myorigin: String,
    /// `mail_name`: the program name in the `Received:` line.
    pub mail_name: String,
    /// `message_size_limit` in bytes (0 = no limit). Postfix default 10240000.
    pub message_size_limit: u64,
    /// `header_size_limit`: largest header block accepted. Postfix default 102400.
    pub header_size_limit: usize,
    /// Most recipients per message (`-t` plus arguments).
    pub recipient_limit: usize,
    /// Address rewriting at queue entry (`append_at_myorigin`, canonical
    /// maps, masquerading); `None`: only qualify with `myorigin`.
    pub rewrite: Option<crate::local::Rewriter>,
    /// `queue_minfree`: bytes that must stay free on the spool's file
    /// system; below it nothing is queued (exit 75). 0 = no check.
    pub queue_minfree: u64,
}

impl SendmailParams {
    /// The parameters from tern.conf (`tern sendmail` and the daemon's
    /// pickup use the same, so both queue a message the same way).
    pub fn from_config(cfg: &crate::config::Config) -> Result<SendmailParams, String> {
        let mut params = SendmailParams::new(
            cfg.queue_directory(),
            cfg.get("myhostname"),
            cfg.get("myorigin"),
        );
        params.mail_name = cfg.get("mail_name").to_string();
        params.message_size_limit = cfg.int("message_size_limit");
        params.queue_minfree = cfg.int("queue_minfree");
        params.recipient_limit = usize::try_from(cfg.int("smtpd_recipient_limit")).unwrap_or(1000);
        params.rewrite = Some(crate::local::Rewriter::from_config(cfg).map_err(|e| e.to_string())?);
        Ok(params)
    }

    /// Parameters with Postfix's defaults for the limits.
    pub fn new(queue_directory: PathBuf, myhostname: &str, myorigin: &str) -> SendmailParams {
        SendmailParams {
            queue_directory,
            myhostname: myhostname.to_string(),
            myorigin: myorigin.to_string(),
            mail_name: "tern".to_string(),
            message_size_limit: 10_240_000,
            header_size_limit: 102_400,
            recipient_limit: 1000,
            rewrite: None,
            queue_minfree: 0,
        }
    }
}

/// Who runs `sendmail`: becomes the default sender and `From:`.
#[derive(Debug, Clone)]
pub struct Invoker {
    /// Real user ID (for `Received: ... from userid N`).
    pub uid: u32,
    /// Login name.
    pub login: String,
    /// Full name from the password file's GECOS field, if any.
    pub full_name: Option<String>,
}

impl Invoker {
    /// The calling user, from `getuid()` and the password database.
    pub fn current() -> Option<Invoker> {
        // SAFETY: getuid cannot fail.
        Invoker::from_uid(unsafe { libc::getuid() })
    }

    /// User `uid` from the password database (the pickup: a maildrop
    /// file's owner); `None` if it has no entry.
    pub fn from_uid(uid: u32) -> Option<Invoker> {
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        // SAFETY: buffers are ours and sized as passed; result is checked below.
        let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
        if r != 0 || result.is_null() || pw.pw_name.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so the strings are NUL-terminated inside `buf`.
        let login = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }
            .to_string_lossy()
            .into_owned();
        let full_name = if pw.pw_gecos.is_null() {
            None
        } else {
            let g = unsafe { std::ffi::CStr::from_ptr(pw.pw_gecos) }.to_string_lossy();
            let name = g.split(',').next().unwrap_or("").trim().to_string();
            (!name.is_empty()).then_some(name)
        };
        Some(Invoker {
            uid,
            login,
            full_name,
        })
    }
}

/// Sans-I/O header parsing for `sendmail`.
pub mod headers {
    use std::ops::Range;

    /// One header field in a header block.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Header {
        /// The field name (without the colon).
        pub name: Range<usize>,
        /// The value after the colon up to the end of the last continuation
        /// line (line ends excluded at the very end).
        pub value: Range<usize>,
        /// The whole field including continuation lines and its final line end.
        pub raw: Range<usize>,
    }

    impl Header {
        /// True if the field is named `name` (ASCII case-insensitive).
        pub fn is(&self, block: &[u8], name: &str) -> bool {
            block
                .get(self.name.clone())
                .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
        }
    }

    /// Why a header block does not parse; `line` counts from 1.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum HeaderError {
        /// A continuation line with no field before it.
        OrphanContinuation {
            /// Line number.
            line: usize,
        },
        /// A line that is neither `name:` nor a continuation.
        NotAField {
            /// Line number.
            line: usize,
        },
        /// More fields than the caller allows.
        TooManyFields {
            /// The limit.
            max: usize,
        },
    }

    impl std::fmt::Display for HeaderError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                HeaderError::OrphanContinuation { line } => {
                    write!(f, "header line {line}: continuation without a header field")
                }
                HeaderError::NotAField { line } => {
                    write!(f, "header line {line}: not a header field")
                }
                HeaderError::TooManyFields { max } => write!(f, "more than {max} header fields"),
            }
        }
    }

    impl std::error::Error for HeaderError {}

    /// Length of the field name if `line` starts a header field (`name:`,
    /// name of printable ASCII without colon or space).
    pub fn field_name_len(line: &[u8]) -> Option<usize> {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = &line[..colon];
        (!name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))).then_some(colon)
    }

    /// True for a continuation line (starts with space or tab).
    pub fn is_continuation(line: &[u8]) -> bool {
        matches!(line.first(), Some(b' ' | b'\t'))
    }

    /// Parses a header block (lines ending in LF or CRLF, no blank line).
    pub fn parse(block: &[u8], max_fields: usize) -> Result<Vec<Header>, HeaderError> {
        let mut out: Vec<Header> = Vec::new();
        let mut pos = 0;
        let mut lineno = 0;
        while pos < block.len() {
            lineno += 1;
            let rest = &block[pos..];
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |n| n + 1);
            let line = &rest[..end];
            let mut content_end = end;
            while content_end > 0 && matches!(line[content_end - 1], b'\n' | b'\r') {
                content_end -= 1;
            }
            if is_continuation(line) {
                let Some(h) = out.last_mut() else {
                    return Err(HeaderError::OrphanContinuation { line: lineno });
                };
                h.value.end = pos + content_end;
                h.raw.end = pos + end;
            } else if let Some(n) = field_name_len(line) {
                if out.len() >= max_fields {
                    return Err(HeaderError::TooManyFields { max: max_fields });
                }
                out.push(Header {
                    name: pos..pos + n,
                    value: pos + n + 1..pos + content_end.max(n + 1),
                    raw: pos..pos + end,
                });
            } else {
                return Err(HeaderError::NotAField { line: lineno });
            }
            pos += end;
        }
        Ok(out)
    }

    /// Why an address list does not parse.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum AddressError {
        /// An unclosed quote, comment or angle bracket, or a stray `>`.
        Unbalanced,
        /// One address longer than the envelope allows.
        TooLong,
        /// More addresses than the limit.
        TooMany {
            /// The limit.
            max: usize,
        },
        /// Not UTF-8.
        NotUtf8,
    }

    impl std::fmt::Display for AddressError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                AddressError::Unbalanced => write!(f, "unbalanced quote, comment or <>"),
                AddressError::TooLong => write!(f, "address too long"),
                AddressError::TooMany { max } => write!(f, "more than {max} addresses"),
                AddressError::NotUtf8 => write!(f, "address is not UTF-8"),
            }
        }
    }

    impl std::error::Error for AddressError {}

    fn target<'a>(
        in_angle: bool,
        angle: &'a mut Option<Vec<u8>>,
        plain: &'a mut Vec<u8>,
    ) -> &'a mut Vec<u8> {
        if in_angle {
            angle.get_or_insert_with(Vec::new)
        } else {
            plain
        }
    }

    /// Extracts the addresses of an RFC 5322 address list (`To:` value):
    /// display names, comments and group names are dropped, `<...>` wins
    /// over the rest, whitespace outside quotes is removed. Appends to `out`.
    pub fn addresses(value: &[u8], out: &mut Vec<String>, max: usize) -> Result<(), AddressError> {
        let mut plain: Vec<u8> = Vec::new();
        let mut angle: Option<Vec<u8>> = None;
        let mut in_angle = false;
        let mut in_quote = false;
        let mut depth = 0usize;
        let mut escaped = false;
        let mut finish =
            |plain: &mut Vec<u8>, angle: &mut Option<Vec<u8>>| -> Result<(), AddressError> {
                let raw = angle.take().unwrap_or_else(|| std::mem::take(plain));
                plain.clear();
                // Drop an obsolete source route (`@a,@b:user@c`).
                let raw = match raw.iter().rposition(|&b| b == b':') {
                    Some(i) if raw.first() == Some(&b'@') => raw[i + 1..].to_vec(),
                    _ => raw,
                };
                if raw.is_empty() {
                    return Ok(());
                }
                if raw.len() > super::envelope::MAX_ADDRESS {
                    return Err(AddressError::TooLong);
                }
                if out.len() >= max {
                    return Err(AddressError::TooMany { max });
                }
                out.push(String::from_utf8(raw).map_err(|_| AddressError::NotUtf8)?);
                Ok(())
            };
        for &b in value {
            if escaped {
                escaped = false;
                if depth == 0 {
                    target(in_angle, &mut angle, &mut plain).push(b);
                }
                continue;
            }
            if depth > 0 {
                match b {
                    b'\\' => escaped = true,
                    b'(' => depth += 1,
                    b')' => depth -= 1,
                    _ => {}
                }
                continue;
            }
            if in_quote {
                target(in_angle, &mut angle, &mut plain).push(b);
                match b {
                    b'\\' => escaped = true,
                    b'"' => in_quote = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => {
                    target(in_angle, &mut angle, &mut plain).push(b);
                    in_quote = true;
                }
                b'(' => depth = 1,
                b'<' if !in_angle => {
                    in_angle = true;
                    angle = Some(Vec::new());
                }
                b'<' => return Err(AddressError::Unbalanced),
                b'>' if in_angle => in_angle = false,
                b'>' => return Err(AddressError::Unbalanced),
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b',' | b';' if !in_angle => finish(&mut plain, &mut angle)?,
                // Group name ("undisclosed-recipients:") is not an address.
                b':' if !in_angle && angle.is_none() && !plain.contains(&b'@') => plain.clear(),
                _ => target(in_angle, &mut angle, &mut plain).push(b),
            }
        }
        if in_quote || in_angle || depth > 0 || escaped {
            return Err(AddressError::Unbalanced);
        }
        finish(&mut plain, &mut angle)
    }
}

/// Line-end converter for local input: LF and CRLF become CRLF, a CR not
/// followed by LF is dropped (the spool holds SMTP-safe line ends only), the
/// last line gets a line end, and unless `-i` a line with a lone `.` ends
/// the input. Sans-I/O, constant memory.
#[derive(Debug, Clone)]
pub struct LineEnds {
    dot_ends: bool,
    bol: bool,
    cr: bool,
    dot: bool,
    dot_cr: bool,
}

/// Room [`LineEnds::feed`] needs in `out` per input byte.
pub const LINE_ENDS_SLACK: usize = 4;

impl LineEnds {
    /// A converter; `dot_ends` = a lone `.` line ends the input (no `-i`).
    pub fn new(dot_ends: bool) -> LineEnds {
        LineEnds {
            dot_ends,
            bol: true,
            cr: false,
            dot: false,
            dot_cr: false,
        }
    }

    /// Converts from `input` into `out` until either is exhausted (`out`
    /// keeps [`LINE_ENDS_SLACK`] bytes spare). Returns (bytes consumed,
    /// bytes produced, lone dot seen: input ends there).
    pub fn feed(&mut self, input: &[u8], out: &mut [u8]) -> (usize, usize, bool) {
        let mut o = 0;
        for (i, &b) in input.iter().enumerate() {
            if o + LINE_ENDS_SLACK > out.len() {
                return (i, o, false);
            }
            if self.dot_cr {
                self.dot_cr = false;
                if b == b'\n' {
                    return (i + 1, o, true);
                }
                out[o] = b'.';
                o += 1;
                self.bol = false;
            } else if self.dot {
                self.dot = false;
                match b {
                    b'\n' => return (i + 1, o, true),
                    b'\r' => {
                        self.dot_cr = true;
                        continue;
                    }
                    _ => {
                        out[o] = b'.';
                        o += 1;
                        self.bol = false;
                    }
                }
            }
            if self.cr {
                self.cr = false;
                if b == b'\n' {
                    out[o..o + 2].copy_from_slice(b"\r\n");
                    o += 2;
                    self.bol = true;
                    continue;
                }
            }
            match b {
                b'\r' => self.cr = true,
                b'\n' => {
                    out[o..o + 2].copy_from_slice(b"\r\n");
                    o += 2;
                    self.bol = true;
                }
                b'.' if self.bol && self.dot_ends => self.dot = true,
                _ => {
                    out[o] = b;
                    o += 1;
                    self.bol = false;
                }
            }
        }
        (input.len(), o, false)
    }

    /// End of input: flushes a pending `.` and terminates the last line.
    /// Needs 4 bytes of `out`; returns bytes produced.
    pub fn finish(&mut self, out: &mut [u8; 4]) -> usize {
        let mut o = 0;
        if self.dot || self.dot_cr {
            out[0] = b'.';
            o = 1;
            self.bol = false;
        }
        self.dot = false;
        self.dot_cr = false;
        self.cr = false;
        if !self.bol {
            out[o..o + 2].copy_from_slice(b"\r\n");
            o += 2;
            self.bol = true;
        }
        o
    }
}

struct Fatal(i32, String);

fn fatal<T>(code: i32, msg: impl Into<String>) -> Result<T, Fatal> {
    Err(Fatal(code, msg.into()))
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
    enqueue(&opts, params, who, now, stdin)?;
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

fn qualify(addr: &str, origin: &str) -> String {
    if addr.contains('@') || addr.is_empty() {
        addr.to_string()
    } else {
        format!("{addr}@{origin}")
    }
}

enum Line {
    Eof,
    Line,
}

/// Reads one line (through LF) into `buf`, never beyond `max` bytes total.
fn read_line(r: &mut dyn BufRead, buf: &mut Vec<u8>, max: usize) -> Result<Line, Fatal> {
    let start = buf.len();
    loop {
        let avail = r
            .fill_buf()
            .or_else(|e| fatal(EX_DATAERR, format!("error reading input: {e}")))?;
        if avail.is_empty() {
            return Ok(if buf.len() > start {
                Line::Line
            } else {
                Line::Eof
            });
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(n) => (n + 1, true),
            None => (avail.len(), false),
        };
        if buf.len() + take > max {
            return fatal(
                EX_DATAERR,
                format!("message header exceeds header_size_limit ({max} bytes)"),
            );
        }
        buf.extend_from_slice(&avail[..take]);
        r.consume(take);
        if done {
            return Ok(Line::Line);
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

fn is_lone_dot(line: &[u8]) -> bool {
    line == b".\n" || line == b".\r\n"
}

struct Writer<'a> {
    inc: &'a mut crate::queue::Incoming,
    conv: LineEnds,
    out: [u8; 4096],
}

impl Writer<'_> {
    /// Converts and writes; returns true if a lone dot ended the input.
    fn write(&mut self, mut data: &[u8]) -> Result<bool, Fatal> {
        while !data.is_empty() {
            let (used, made, end) = self.conv.feed(data, &mut self.out);
            self.inc.write(&self.out[..made]).map_err(spool_fatal)?;
            data = &data[used..];
            if end {
                return Ok(true);
            }
        }
        Ok(false)
    }
    fn raw(&mut self, data: &[u8]) -> Result<(), Fatal> {
        self.inc.write(data).map_err(spool_fatal)
    }
    fn finish(&mut self) -> Result<(), Fatal> {
        let mut tail = [0u8; 4];
        let n = self.conv.finish(&mut tail);
        self.raw(&tail[..n])
    }
}

fn spool_fatal(e: SpoolError) -> Fatal {
    match e {
        SpoolError::TooBig { .. } => Fatal(EX_DATAERR, e.to_string()),
        SpoolError::Invalid(_) => Fatal(EX_NOUSER, e.to_string()),
        _ => Fatal(EX_TEMPFAIL, format!("error writing queue file: {e}")),
    }
}

fn quote_phrase(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    if clean
        .chars()
        .all(|c| c.is_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c))
    {
        clean
    } else {
        let mut s = String::from("\"");
        for c in clean.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    }
}

const MAX_HEADER_FIELDS: usize = 1000;

fn enqueue(
    opts: &Options,
    params: &SendmailParams,
    who: &Invoker,
    now: u64,
    stdin: &mut dyn Read,
) -> Result<String, Fatal> {
    use crate::local::Side;
    // Rewrites done at queue entry, logged once the message is queued.
    let mut rewrites: Vec<(&str, String, String)> = Vec::new();
    let mut rewrite = |what: &'static str, a: &str, side: Side| -> String {
        let out = match &params.rewrite {
            Some(rw) => rw.rewrite(a, side),
            None => qualify(a, &params.myorigin),
        };
        if out != a {
            rewrites.push((what, a.to_string(), out.clone()));
        }
        out
    };
    // The sender as submitted, before any rewriting: what Postfix's pickup
    // logs (`from=<root>`); qmgr's line shows the rewritten one.
    let submitted = match &opts.sender {
        Some(s) => {
            let s = s.trim();
            s.strip_prefix('<')
                .and_then(|x| x.strip_suffix('>'))
                .unwrap_or(s)
                .to_string()
        }
        None => who.login.clone(),
    };
    let sender = match &opts.sender {
        Some(_) => rewrite("sender", &submitted, Side::Sender),
        None => match &params.rewrite {
            Some(_) => rewrite("sender", &who.login, Side::Sender),
            None => format!("{}@{}", who.login, params.myorigin),
        },
    };
    envelope::check_address("sender", &sender, true).or_else(|e| {
        fatal(
            EX_USAGE,
            format!("bad sender address <{sender}>: {}", e.reason),
        )
    })?;

    // 1. The header block, bounded.
    let mut input = BufReader::with_capacity(8192, stdin);
    let mut block: Vec<u8> = Vec::new();
    let mut first_body: Vec<u8> = Vec::new();
    let mut ended_by_dot = false;
    let limit = params.header_size_limit;
    let mut first = true;
    loop {
        let mut line = Vec::new();
        match read_line(&mut input, &mut line, limit.saturating_sub(block.len()))? {
            Line::Eof => break,
            Line::Line => {}
        }
        if first && line.starts_with(b"From ") {
            first = false;
            continue; // mbox "From " line, as Postfix strips it
        }
        first = false;
        if !opts.ignore_dots && is_lone_dot(&line) {
            ended_by_dot = true;
            break;
        }
        if is_blank(&line) {
            break;
        }
        if headers::is_continuation(&line) && !block.is_empty()
            || headers::field_name_len(&line).is_some()
        {
            block.extend_from_slice(&line);
        } else {
            first_body = line; // no blank line: the body starts here
            break;
        }
    }
    let fields =
        headers::parse(&block, MAX_HEADER_FIELDS).or_else(|e| fatal(EX_DATAERR, e.to_string()))?;
    let value = |h: &headers::Header| block.get(h.value.clone()).unwrap_or(&[]);
    let has = |name: &str| fields.iter().any(|h| h.is(&block, name));

    // 2. Recipients: arguments, plus To/Cc/Bcc with -t (Resent-* if present).
    let mut rcpts: Vec<String> = Vec::new();
    for a in &opts.recipients {
        headers::addresses(a.as_bytes(), &mut rcpts, params.recipient_limit)
            .or_else(|e| fatal(EX_NOUSER, format!("bad recipient address \"{a}\": {e}")))?;
    }
    if opts.extract {
        let resent = fields.iter().any(|h| {
            block
                .get(h.name.clone())
                .is_some_and(|n| n.len() > 7 && n[..7].eq_ignore_ascii_case(b"resent-"))
        });
        let names: &[&str] = if resent {
            &["resent-to", "resent-cc", "resent-bcc"]
        } else {
            &["to", "cc", "bcc"]
        };
        for h in fields
            .iter()
            .filter(|h| names.iter().any(|n| h.is(&block, n)))
        {
            headers::addresses(value(h), &mut rcpts, params.recipient_limit).or_else(|e| {
                fatal(
                    EX_DATAERR,
                    format!(
                        "bad address in {} header: {e}",
                        String::from_utf8_lossy(block.get(h.name.clone()).unwrap_or(&[]))
                    ),
                )
            })?;
        }
    }
    if rcpts.is_empty() {
        return if opts.extract {
            fatal(EX_DATAERR, "No recipient addresses found in message header")
        } else {
            fatal(
                EX_USAGE,
                "Recipient addresses must be specified on the command line or via the -t option",
            )
        };
    }
    let mut recipients = Vec::with_capacity(rcpts.len());
    for r in &rcpts {
        let q = rewrite("recipient", r, Side::Recipient);
        envelope::check_address("recipient", &q, false).or_else(|e| {
            fatal(
                EX_NOUSER,
                format!("bad recipient address <{q}>: {}", e.reason),
            )
        })?;
        if !recipients.iter().any(|x: &Recipient| x.address == q) {
            let mut rc = Recipient::new(&q);
            // The address as given, for DSNs and local(8)'s orig_to=.
            if q != *r && envelope::check_address("orcpt", r, false).is_ok() {
                rc.orcpt = Some(format!("rfc822;{r}"));
            }
            recipients.push(rc);
        }
    }

    // 3. The queue file.
    let spool = Spool::open(&params.queue_directory)
        .or_else(|e| fatal(EX_TEMPFAIL, format!("cannot open queue: {e}")))?;
    let mut inc = spool
        .create(&NewMessage {
            sender: &sender,
            recipients: &recipients,
            arrival: now,
            client: "local",
            flags: Default::default(),
            size_limit: params.message_size_limit,
            deferred: false,
        })
        .map_err(spool_fatal)?;
    let id = inc.id().to_string();
    let date = clock::local(now);
    {
        let mut w = Writer {
            inc: &mut inc,
            conv: LineEnds::new(false),
            out: [0u8; 4096],
        };
        w.raw(
            crate::smtp::received::local_received_header(
                &params.myhostname,
                &params.mail_name,
                who.uid,
                &id,
                &date.rfc5322(),
            )
            .as_bytes(),
        )?;
        for h in &fields {
            if h.is(&block, "bcc") || h.is(&block, "resent-bcc") {
                continue;
            }
            let name = block.get(h.name.clone()).unwrap_or(&[]);
            let new_value = match (&params.rewrite, std::str::from_utf8(name)) {
                (Some(rw), Ok(n)) => crate::local::Rewriter::header_side(n).and_then(|side| {
                    let v = String::from_utf8_lossy(value(h)).into_owned();
                    rw.header_value(&v, side).map(|nv| (n, v, nv))
                }),
                _ => None,
            };
            match new_value {
                Some((n, old, nv)) => {
                    w.write(format!("{n}:{nv}\r\n").as_bytes())?;
                    rewrites.push(("header", format!("{n}:{old}"), format!("{n}:{nv}")));
                }
                None => {
                    w.write(block.get(h.raw.clone()).unwrap_or(&[]))?;
                }
            }
            w.finish()?;
        }
        if !has("from") {
            let name = opts.full_name.as_deref().or(who.full_name.as_deref());
            let addr = if sender.is_empty() {
                format!("{}@{}", who.login, params.myorigin)
            } else {
                sender.clone()
            };
            let from = match name {
                Some(n) if !n.trim().is_empty() => {
                    format!("From: {} <{addr}>\r\n", quote_phrase(n.trim()))
                }
                _ => format!("From: {addr}\r\n"),
            };
            w.raw(from.as_bytes())?;
        }
        if !has("date") {
            w.raw(format!("Date: {}\r\n", date.rfc5322()).as_bytes())?;
        }
        if !has("message-id") {
            w.raw(
                format!(
                    "Message-Id: {}\r\n",
                    crate::local::headers::message_id(&date, &id, &params.myhostname)
                )
                .as_bytes(),
            )?;
        }
        w.raw(b"\r\n")?;

        // 4. The body, streamed.
        w.conv = LineEnds::new(!opts.ignore_dots);
        if !ended_by_dot && !w.write(&first_body)? {
            loop {
                let chunk = input
                    .fill_buf()
                    .or_else(|e| fatal(EX_DATAERR, format!("error reading input: {e}")))?;
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len();
                let end = w.write(chunk)?;
                input.consume(n);
                if end {
                    break;
                }
            }
        }
        w.finish()?;
    }
    let size = inc.size();
    inc.commit().map_err(spool_fatal)?;
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    log::info!(target: "pickup", "{id}: uid={} from=<{}>", who.uid, clean(&submitted));
    for (what, from, to) in &rewrites {
        log::info!(target: "cleanup", "{id}: rewrote {what} <{}> as <{}>", clean(from), clean(to));
    }
    // Postfix's qmgr line, which pflogsumm counts as "received" (sender
    // and bytes); tern's daemon picks the file up without a line of its
    // own, so it is logged here, once the message is in the queue.
    log::info!(
        target: "qmgr",
        "{id}: from=<{sender}>, size={size}, nrcpt={} (queue active)",
        recipients.len()
    );
    Ok(id)
}

/// The daemon's pickup: queues the message of a maildrop file exactly as
/// [`run`] would have for `who` (its owner), with the command line `env`
/// recorded, reading the message from `body` (already CRLF and cut at a
/// lone dot by the submitting `sendmail`). Returns the queue ID, or the
/// sysexits code and reason: `EX_TEMPFAIL` means try again later, anything
/// else means this file will never be queued.
pub fn enqueue_picked(
    env: &crate::queue::maildrop::DropEnvelope,
    params: &SendmailParams,
    who: &Invoker,
    now: u64,
    body: &mut dyn Read,
) -> Result<String, (i32, String)> {
    let opts = Options {
        mode: Mode::Enqueue,
        extract: env.extract,
        // The submitting sendmail already stopped at a lone dot.
        ignore_dots: true,
        sender: env.sender.clone(),
        full_name: env.full_name.clone(),
        qtime: false,
        recipients: env.recipients.clone(),
    };
    enqueue(&opts, params, who, now, body).map_err(|Fatal(c, m)| (c, m))
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
/// code as for root's mail ([`enqueue_picked`]).
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
    use super::headers::*;
    use super::*;

    fn conv(input: &[u8], dot_ends: bool) -> (Vec<u8>, bool) {
        let mut c = LineEnds::new(dot_ends);
        let mut out = Vec::new();
        let mut buf = [0u8; 16];
        let mut rest = input;
        // Feed one byte at a time with a tiny buffer: exercises every state split.
        while !rest.is_empty() {
            let (u, m, e) = c.feed(&rest[..1], &mut buf);
            out.extend_from_slice(&buf[..m]);
            rest = &rest[u..];
            if e {
                return (out, true);
            }
        }
        let mut t = [0u8; 4];
        let n = c.finish(&mut t);
        out.extend_from_slice(&t[..n]);
        (out, false)
    }

    #[test]
    fn line_ends() {
        assert_eq!(conv(b"a\nb\r\nc", false).0, b"a\r\nb\r\nc\r\n");
        assert_eq!(conv(b"a\rb\r\r\n", false).0, b"ab\r\n");
        assert_eq!(conv(b"x\n.\nafter\n", true), (b"x\r\n".to_vec(), true));
        assert_eq!(conv(b"x\r\n.\r\nafter\n", true), (b"x\r\n".to_vec(), true));
        assert_eq!(conv(b"x\n.\nafter\n", false).0, b"x\r\n.\r\nafter\r\n");
        assert_eq!(conv(b"..\n.a\n.", true).0, b"..\r\n.a\r\n.\r\n");
        assert_eq!(conv(b".\rx\n", true).0, b".x\r\n");
        assert_eq!(conv(b"", true).0, b"");
    }

    #[test]
    fn header_block() {
        let b = b"To: a@x,\n  b@y\r\nSubject: hi\n";
        let h = parse(b, 10).unwrap();
        assert_eq!(h.len(), 2);
        assert!(h[0].is(b, "TO"));
        assert_eq!(&b[h[0].value.clone()], b" a@x,\n  b@y");
        assert_eq!(&b[h[1].raw.clone()], b"Subject: hi\n");
        assert_eq!(
            parse(b" x\n", 10),
            Err(HeaderError::OrphanContinuation { line: 1 })
        );
        assert_eq!(
            parse(b"A: 1\nnot a header\n", 10),
            Err(HeaderError::NotAField { line: 2 })
        );
        assert_eq!(
            parse(b"A: 1\nB: 2\n", 1),
            Err(HeaderError::TooManyFields { max: 1 })
        );
    }

    #[test]
    fn address_lists() {
        let mut v = Vec::new();
        addresses(
            b"\"Doe, John\" <john@x.org>, plain@y.org (comment, here), undisclosed:;, grp: a@b, <@r1,@r2:c@d>; last",
            &mut v,
            10,
        )
        .unwrap();
        assert_eq!(v, ["john@x.org", "plain@y.org", "a@b", "c@d", "last"]);
        assert_eq!(
            addresses(b"<a@b", &mut v, 10),
            Err(AddressError::Unbalanced)
        );
        assert_eq!(addresses(b"\"x", &mut v, 10), Err(AddressError::Unbalanced));
        assert_eq!(addresses(b"(x", &mut v, 10), Err(AddressError::Unbalanced));
        let mut w = Vec::new();
        assert_eq!(
            addresses(b"a,b,c", &mut w, 2),
            Err(AddressError::TooMany { max: 2 })
        );
    }

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
