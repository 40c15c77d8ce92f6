//! Parsing one SMTP command line (RFC 5321 §4.1) into a [`Command`].
//!
//! The line comes without its CRLF. Verbs are case-insensitive. Paths follow
//! RFC 5321 §4.1.2 (`Path`, `Mailbox`, `Local-part`, `Domain`,
//! `address-literal`); a source route (`<@a,@b:user@c>`) is accepted and
//! dropped, as RFC 5321 §C asks. Like Postfix (with
//! `smtpd_strict_rfc821_envelope = no`) a space after the colon and an
//! address without angle brackets are tolerated. Non-ASCII (UTF-8) in a
//! path is only valid together with the `SMTPUTF8` MAIL parameter
//! (RFC 6531); a RCPT path may contain UTF-8 and the session checks it
//! against the transaction's SMTPUTF8 flag.
//!
//! Every error maps to the reply Postfix gives for it ([`CommandError::reply`]).

use super::reply::Reply;
use core::fmt;

/// RFC 5321 §4.5.3.1.1: longest local part.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: longest domain.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3: longest path, including the angle brackets.
pub const MAX_PATH: usize = 256;

/// One parsed command; strings borrow from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `HELO domain` (the rest of the line, trimmed).
    Helo(&'a str),
    /// `EHLO domain` (the rest of the line, trimmed).
    Ehlo(&'a str),
    /// `MAIL FROM:<path> [params]`.
    Mail {
        /// The reverse path; [`Path::is_null`] for `<>`.
        from: Path<'a>,
        /// The parameters tern understands.
        params: MailParams<'a>,
    },
    /// `RCPT TO:<path>`; tern offers no RCPT parameters (no DSN).
    Rcpt {
        /// The forward path.
        to: Path<'a>,
    },
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string` (the argument, possibly empty).
    Vrfy(&'a str),
    /// `HELP [topic]`.
    Help,
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]`.
    Auth {
        /// Mechanism name as sent (compare case-insensitively).
        mechanism: &'a str,
        /// Initial response (base64, or `=` for empty), if given.
        initial: Option<&'a str>,
    },
}

impl Command<'_> {
    /// The verb in lower case, as Postfix names it in its disconnect line.
    pub fn verb(&self) -> Verb {
        match self {
            Command::Helo(_) => Verb::Helo,
            Command::Ehlo(_) => Verb::Ehlo,
            Command::Mail { .. } => Verb::Mail,
            Command::Rcpt { .. } => Verb::Rcpt,
            Command::Data => Verb::Data,
            Command::Rset => Verb::Rset,
            Command::Noop => Verb::Noop,
            Command::Quit => Verb::Quit,
            Command::Vrfy(_) => Verb::Vrfy,
            Command::Help => Verb::Unknown,
            Command::StartTls => Verb::StartTls,
            Command::Auth { .. } => Verb::Auth,
        }
    }
}

/// Command verbs in the order of Postfix's `smtpd_cmd_table`, which is the
/// order of its `disconnect from ...` counters. `Unknown` covers everything
/// Postfix does not implement (HELP, ETRN here, garbage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    /// HELO
    Helo,
    /// EHLO
    Ehlo,
    /// STARTTLS
    StartTls,
    /// AUTH
    Auth,
    /// MAIL
    Mail,
    /// RCPT
    Rcpt,
    /// DATA
    Data,
    /// RSET
    Rset,
    /// NOOP
    Noop,
    /// VRFY
    Vrfy,
    /// QUIT
    Quit,
    /// anything unrecognised
    Unknown,
}

impl Verb {
    /// All verbs, in counter order.
    pub const ALL: [Verb; 12] = [
        Verb::Helo,
        Verb::Ehlo,
        Verb::StartTls,
        Verb::Auth,
        Verb::Mail,
        Verb::Rcpt,
        Verb::Data,
        Verb::Rset,
        Verb::Noop,
        Verb::Vrfy,
        Verb::Quit,
        Verb::Unknown,
    ];

    /// Lower-case name as in Postfix's disconnect line.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Helo => "helo",
            Verb::Ehlo => "ehlo",
            Verb::StartTls => "starttls",
            Verb::Auth => "auth",
            Verb::Mail => "mail",
            Verb::Rcpt => "rcpt",
            Verb::Data => "data",
            Verb::Rset => "rset",
            Verb::Noop => "noop",
            Verb::Vrfy => "vrfy",
            Verb::Quit => "quit",
            Verb::Unknown => "unknown",
        }
    }

    /// Index into [`Verb::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A reverse or forward path. `mailbox` is `local@domain` exactly as sent
/// (quoted local parts keep their quotes), or empty for the null path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path<'a> {
    mailbox: &'a str,
    at: Option<usize>,
    utf8: bool,
}

impl<'a> Path<'a> {
    /// `local@domain` (or bare `postmaster`, or empty for `<>`).
    pub fn mailbox(&self) -> &'a str {
        self.mailbox
    }
    /// True for the null reverse path `<>`.
    pub fn is_null(&self) -> bool {
        self.mailbox.is_empty()
    }
    /// The local part as sent (quoted form kept).
    pub fn local_part(&self) -> &'a str {
        match self.at {
            Some(i) => self.mailbox.get(..i).unwrap_or(""),
            None => self.mailbox,
        }
    }
    /// The domain or address literal, if there is one.
    pub fn domain(&self) -> Option<&'a str> {
        self.at.and_then(|i| self.mailbox.get(i + 1..))
    }
    /// True if the path contains non-ASCII characters (needs SMTPUTF8).
    pub fn is_utf8(&self) -> bool {
        self.utf8
    }
}

/// `BODY=` values (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`
    SevenBit,
    /// `BODY=8BITMIME`
    EightBitMime,
}

/// MAIL parameters tern accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailParams<'a> {
    /// `SIZE=n` (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `AUTH=` (RFC 4954 §5), accepted and otherwise ignored.
    pub auth: Option<&'a str>,
}

/// Why a command line was refused. Each maps to Postfix's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Empty or blank line.
    Empty,
    /// Not valid UTF-8 (or contains NUL / control characters).
    BadUtf8,
    /// Verb not implemented.
    Unrecognized,
    /// `HELO` without a name.
    HeloSyntax,
    /// `EHLO` without a name.
    EhloSyntax,
    /// `MAIL` without `FROM:` or without a path.
    MailSyntax,
    /// `RCPT` without `TO:` or without a path.
    RcptSyntax,
    /// The reverse path is not RFC 5321 syntax.
    BadSender,
    /// The forward path is not RFC 5321 syntax (or is `<>`).
    BadRecipient,
    /// A parameter tern does not support (the parameter, truncated).
    UnsupportedOption(heapless::String<64>),
    /// `SIZE=` not a decimal number.
    BadSize,
    /// A UTF-8 sender without the `SMTPUTF8` parameter.
    NeedSmtputf8,
    /// Arguments after a verb that takes none (the verb).
    NoArguments(&'static str),
    /// `AUTH` without mechanism or with too many words.
    AuthSyntax,
}

impl CommandError {
    /// The reply Postfix sends for this error.
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Empty => Reply::new("500 5.5.2 Error: bad syntax"),
            CommandError::BadUtf8 => Reply::new("500 5.5.2 Error: bad UTF-8 syntax"),
            CommandError::Unrecognized => Reply::new("500 5.5.2 Error: command not recognized"),
            CommandError::HeloSyntax => Reply::new("501 Syntax: HELO hostname"),
            CommandError::EhloSyntax => Reply::new("501 Syntax: EHLO hostname"),
            CommandError::MailSyntax => Reply::new("501 5.5.4 Syntax: MAIL FROM:<address>"),
            CommandError::RcptSyntax => Reply::new("501 5.5.4 Syntax: RCPT TO:<address>"),
            CommandError::BadSender => Reply::new("501 5.1.7 Bad sender address syntax"),
            CommandError::BadRecipient => Reply::new("501 5.1.3 Bad recipient address syntax"),
            CommandError::UnsupportedOption(p) => {
                Reply::fmt(format_args!("555 5.5.4 Unsupported option: {p}"))
            }
            CommandError::BadSize => Reply::new("501 5.5.4 Bad message size syntax"),
            CommandError::NeedSmtputf8 => {
                Reply::new("553 5.6.7 Must declare SMTPUTF8 to send unicode address")
            }
            CommandError::NoArguments(v) => Reply::fmt(format_args!("501 5.5.4 Syntax: {v}")),
            CommandError::AuthSyntax => Reply::new("501 5.5.4 Syntax: AUTH mechanism"),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reply().text())
    }
}

impl std::error::Error for CommandError {}

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command<'_>, CommandError> {
    parse_with_verb(line).map_err(|(_, e)| e)
}

/// Like [`parse`], but on error also says which verb to count it under.
pub fn parse_with_verb(line: &[u8]) -> Result<Command<'_>, (Verb, CommandError)> {
    let line = core::str::from_utf8(line).map_err(|_| (Verb::Unknown, CommandError::BadUtf8))?;
    if line
        .chars()
        .any(|c| c.is_control() && c != '\t' && c != ' ')
    {
        return Err((Verb::Unknown, CommandError::BadUtf8));
    }
    let line = line.trim_matches(|c| c == ' ' || c == '\t');
    if line.is_empty() {
        return Err((Verb::Unknown, CommandError::Empty));
    }
    let (verb, rest) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], line[i..].trim_start_matches([' ', '\t'])),
        None => (line, ""),
    };
    let is = |v: &str| verb.eq_ignore_ascii_case(v);
    let no_args = |v: &'static str, c: Command<'static>, vb: Verb| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err((vb, CommandError::NoArguments(v)))
        }
    };
    if is("HELO") {
        if rest.is_empty() {
            return Err((Verb::Helo, CommandError::HeloSyntax));
        }
        Ok(Command::Helo(rest))
    } else if is("EHLO") {
        if rest.is_empty() {
            return Err((Verb::Ehlo, CommandError::EhloSyntax));
        }
        Ok(Command::Ehlo(rest))
    } else if is("MAIL") {
        parse_mail(rest).map_err(|e| (Verb::Mail, e))
    } else if is("RCPT") {
        parse_rcpt(rest).map_err(|e| (Verb::Rcpt, e))
    } else if is("DATA") {
        no_args("DATA", Command::Data, Verb::Data)
    } else if is("RSET") {
        no_args("RSET", Command::Rset, Verb::Rset)
    } else if is("NOOP") {
        Ok(Command::Noop)
    } else if is("QUIT") {
        no_args("QUIT", Command::Quit, Verb::Quit)
    } else if is("VRFY") {
        Ok(Command::Vrfy(rest))
    } else if is("HELP") {
        Ok(Command::Help)
    } else if is("STARTTLS") {
        no_args("STARTTLS", Command::StartTls, Verb::StartTls)
    } else if is("AUTH") {
        let mut words = rest.split([' ', '\t']).filter(|w| !w.is_empty());
        let mechanism = words.next().ok_or((Verb::Auth, CommandError::AuthSyntax))?;
        let initial = words.next();
        if words.next().is_some() {
            return Err((Verb::Auth, CommandError::AuthSyntax));
        }
        Ok(Command::Auth { mechanism, initial })
    } else {
        Err((Verb::Unknown, CommandError::Unrecognized))
    }
}

/// Strips a case-insensitive `prefix` (like `FROM:`), then optional blanks.
fn strip_keyword<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
            .map(|r| r.trim_start_matches([' ', '\t']))
    } else {
        None
    }
}

/// Splits `<path> params` or `path params`; returns (path text incl.
/// brackets or not, params text).
fn split_path(s: &str) -> Option<(&str, bool, &str)> {
    if let Some(body) = s.strip_prefix('<') {
        // Find the closing '>' outside a quoted string.
        let mut in_quote = false;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' if in_quote => escaped = true,
                '"' => in_quote = !in_quote,
                '>' if !in_quote => {
                    let rest = &body[i + 1..];
                    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
                        return None;
                    }
                    return Some((&body[..i], true, rest));
                }
                _ => {}
            }
        }
        None
    } else {
        if s.is_empty() {
            return None;
        }
        let end = s.find([' ', '\t']).unwrap_or(s.len());
        Some((&s[..end], false, &s[end..]))
    }
}

fn parse_mail(rest: &str) -> Result<Command<'_>, CommandError> {
    let after = strip_keyword(rest, "FROM:").ok_or(CommandError::MailSyntax)?;
    if after.is_empty() {
        return Err(CommandError::MailSyntax);
    }
    // An unclosed '<' or junk after '>' is an address error in Postfix.
    let (path_text, _bracketed, params_text) = split_path(after).ok_or(CommandError::BadSender)?;
    let from = if path_text.is_empty() {
        Path {
            mailbox: "",
            at: None,
            utf8: false,
        }
    } else {
        parse_path(path_text, false).ok_or(CommandError::BadSender)?
    };
    let mut params = MailParams::default();
    for p in params_text.split([' ', '\t']).filter(|w| !w.is_empty()) {
        let (key, value) = match p.find('=') {
            Some(i) => (&p[..i], Some(&p[i + 1..])),
            None => (p, None),
        };
        let k = |n: &str| key.eq_ignore_ascii_case(n);
        match value {
            Some(v) if k("SIZE") => {
                if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CommandError::BadSize);
                }
                params.size = Some(v.parse().map_err(|_| CommandError::BadSize)?);
            }
            Some(v) if k("BODY") => {
                params.body = Some(if v.eq_ignore_ascii_case("7BIT") {
                    Body::SevenBit
                } else if v.eq_ignore_ascii_case("8BITMIME") {
                    Body::EightBitMime
                } else {
                    // Postfix 3.7: "555 5.5.4 Unsupported option: BODY=X".
                    return Err(unsupported(p));
                });
            }
            Some(v) if k("AUTH") => params.auth = Some(v),
            None if k("SMTPUTF8") => params.smtputf8 = true,
            _ => return Err(unsupported(p)),
        }
    }
    if from.utf8 && !params.smtputf8 {
        return Err(CommandError::NeedSmtputf8);
    }
    Ok(Command::Mail { from, params })
}

fn unsupported(p: &str) -> CommandError {
    let mut s = heapless::String::new();
    for c in p.chars() {
        if s.push(c).is_err() {
            break;
        }
    }
    CommandError::UnsupportedOption(s)
}

fn parse_rcpt(rest: &str) -> Result<Command<'_>, CommandError> {
    let after = strip_keyword(rest, "TO:").ok_or(CommandError::RcptSyntax)?;
    if after.is_empty() {
        return Err(CommandError::RcptSyntax);
    }
    let (path_text, _, params_text) = split_path(after).ok_or(CommandError::BadRecipient)?;
    if path_text.is_empty() {
        return Err(CommandError::BadRecipient);
    }
    let to = parse_path(path_text, true).ok_or(CommandError::BadRecipient)?;
    if let Some(p) = params_text.split([' ', '\t']).find(|w| !w.is_empty()) {
        return Err(unsupported(p));
    }
    Ok(Command::Rcpt { to })
}

/// Parses the inside of `<...>`: optional source route, then a mailbox.
/// `allow_postmaster`: RCPT may name bare `postmaster` (RFC 5321 §4.1.1.3).
fn parse_path(s: &str, allow_postmaster: bool) -> Option<Path<'_>> {
    if s.len() + 2 > MAX_PATH {
        return None;
    }
    let mailbox = if s.starts_with('@') {
        // A-d-l ":" — each At-domain is "@" Domain, comma-separated.
        let colon = s.find(':')?;
        for hop in s[..colon].split(',') {
            let d = hop.strip_prefix('@')?;
            if !is_domain(d) {
                return None;
            }
        }
        &s[colon + 1..]
    } else {
        s
    };
    if allow_postmaster && mailbox.eq_ignore_ascii_case("postmaster") {
        return Some(Path {
            mailbox,
            at: None,
            utf8: false,
        });
    }
    let at = mailbox.rfind('@')?;
    let (local, domain) = (&mailbox[..at], &mailbox[at + 1..]);
    if local.is_empty() || local.len() > MAX_LOCAL_PART || domain.len() > MAX_DOMAIN {
        return None;
    }
    if !(is_dot_string(local) || is_quoted_string(local)) {
        return None;
    }
    if !(is_domain(domain) || is_address_literal(domain)) {
        return None;
    }
    Some(Path {
        mailbox,
        at: Some(at),
        utf8: !mailbox.is_ascii(),
    })
}

/// RFC 5322 atext, extended by RFC 6531 to UTF-8 non-ASCII.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|a| !a.is_empty() && a.chars().all(is_atext))
}

fn is_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
        return false;
    };
    if s.len() < 2 {
        return false;
    }
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if (' '..='~').contains(&n) => {}
                _ => return false,
            },
            '"' => return false,
            c if (' '..='~').contains(&c) || !c.is_ascii() => {}
            _ => return false,
        }
    }
    true
}

/// RFC 5321 Domain; sub-domains may be U-labels (RFC 6531).
pub fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_DOMAIN
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn is_address_literal(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) else {
        return false;
    };
    if let Some(v6) = strip_keyword(inner, "IPv6:") {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if inner.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    // General-address-literal = Standardized-tag ":" 1*dcontent
    match inner.find(':') {
        Some(i) => {
            let (tag, content) = (&inner[..i], &inner[i + 1..]);
            is_domain(tag)
                && !tag.eq_ignore_ascii_case("IPv6")
                && !content.is_empty()
                && content
                    .bytes()
                    .all(|b| (33..=90).contains(&b) || (94..=126).contains(&b))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command<'_>, CommandError> {
        parse(s.as_bytes())
    }

    #[test]
    fn verbs() {
        assert_eq!(
            p("EHLO client.example").unwrap(),
            Command::Ehlo("client.example")
        );
        assert_eq!(p("helo  x y ").unwrap(), Command::Helo("x y"));
        assert_eq!(p("data").unwrap(), Command::Data);
        assert_eq!(p("RSET").unwrap(), Command::Rset);
        assert_eq!(p("NOOP whatever").unwrap(), Command::Noop);
        assert_eq!(p("QUIT").unwrap(), Command::Quit);
        assert_eq!(p("VRFY root").unwrap(), Command::Vrfy("root"));
        assert_eq!(p("HELP").unwrap(), Command::Help);
        assert_eq!(p("StartTLS").unwrap(), Command::StartTls);
        assert_eq!(
            p("AUTH PLAIN AGEAYg==").unwrap(),
            Command::Auth {
                mechanism: "PLAIN",
                initial: Some("AGEAYg==")
            }
        );
        assert_eq!(
            p("AUTH LOGIN").unwrap(),
            Command::Auth {
                mechanism: "LOGIN",
                initial: None
            }
        );
    }

    #[test]
    fn verb_errors_and_replies() {
        let r = |s: &str| p(s).unwrap_err().reply().as_bytes().to_vec();
        assert_eq!(r(""), b"500 5.5.2 Error: bad syntax\r\n");
        assert_eq!(r("   "), b"500 5.5.2 Error: bad syntax\r\n");
        assert_eq!(r("ETRN x"), b"500 5.5.2 Error: command not recognized\r\n");
        assert_eq!(r("EHLO"), b"501 Syntax: EHLO hostname\r\n");
        assert_eq!(r("HELO "), b"501 Syntax: HELO hostname\r\n");
        assert_eq!(r("DATA x"), b"501 5.5.4 Syntax: DATA\r\n");
        assert_eq!(r("STARTTLS now"), b"501 5.5.4 Syntax: STARTTLS\r\n");
        assert_eq!(r("AUTH"), b"501 5.5.4 Syntax: AUTH mechanism\r\n");
        assert_eq!(r("AUTH PLAIN a b"), b"501 5.5.4 Syntax: AUTH mechanism\r\n");
        assert_eq!(parse(b"MAIL \xff").unwrap_err(), CommandError::BadUtf8);
        assert_eq!(parse(b"NOOP \x00").unwrap_err(), CommandError::BadUtf8);
        assert_eq!(parse(b"NOOP a\rb").unwrap_err(), CommandError::BadUtf8);
    }

    #[test]
    fn mail_paths() {
        let Command::Mail { from, params } = p("MAIL FROM:<>").unwrap() else {
            panic!()
        };
        assert!(from.is_null());
        assert_eq!(params, MailParams::default());
        let Command::Mail { from, .. } = p("mail from: <a.b@example.com>").unwrap() else {
            panic!()
        };
        assert_eq!(from.mailbox(), "a.b@example.com");
        assert_eq!(from.local_part(), "a.b");
        assert_eq!(from.domain(), Some("example.com"));
        let Command::Mail { from, .. } = p("MAIL FROM:bare@example.com").unwrap() else {
            panic!()
        };
        assert_eq!(from.mailbox(), "bare@example.com");
        let Command::Mail { from, .. } = p("MAIL FROM:<\"john doe\\\"x>\"@example.com>").unwrap()
        else {
            panic!()
        };
        assert_eq!(from.local_part(), "\"john doe\\\"x>\"");
        let Command::Mail { from, .. } =
            p("MAIL FROM:<@a.example,@b.example:u@c.example>").unwrap()
        else {
            panic!()
        };
        assert_eq!(from.mailbox(), "u@c.example");
        for lit in ["[192.0.2.1]", "[IPv6:2001:db8::1]", "[x-tag:abc]"] {
            let line = format!("MAIL FROM:<u@{lit}>");
            let Command::Mail { from, .. } = p(&line).unwrap() else {
                panic!()
            };
            assert_eq!(from.domain(), Some(lit));
        }
    }

    #[test]
    fn mail_errors() {
        let e = |s: &str| p(s).unwrap_err();
        assert_eq!(e("MAIL"), CommandError::MailSyntax);
        assert_eq!(e("MAIL TO:<a@b>"), CommandError::MailSyntax);
        assert_eq!(e("MAIL FROM:"), CommandError::MailSyntax);
        assert_eq!(e("MAIL FROM:<a@b"), CommandError::BadSender);
        assert_eq!(e("MAIL FROM:<a@b>x"), CommandError::BadSender);
        assert_eq!(e("RCPT TO:<a@b"), CommandError::BadRecipient);
        assert_eq!(e("RCPT TO:"), CommandError::RcptSyntax);
        for bad in [
            "<a>",
            "<@b>",
            "<a..b@c>",
            "<.a@c>",
            "<a@-c>",
            "<a@c..d>",
            "<a@[300.1.1.1]>",
            "<a@[IPv6:zz]>",
            "<a b@c>",
            "<@x:>",
            "<\"a\"b@c>",
        ] {
            assert_eq!(
                e(&format!("MAIL FROM:{bad}")),
                CommandError::BadSender,
                "{bad}"
            );
        }
        let long = format!("MAIL FROM:<{}@example.com>", "a".repeat(65));
        assert_eq!(e(&long), CommandError::BadSender);
        let long = format!("MAIL FROM:<a@{}.example>", "b".repeat(64));
        assert_eq!(e(&long), CommandError::BadSender);
        assert_eq!(
            e("MAIL FROM:<a@b> SIZE=x").reply().as_bytes(),
            b"501 5.5.4 Bad message size syntax\r\n"
        );
        assert_eq!(
            e("MAIL FROM:<a@b> SIZE=99999999999999999999"),
            CommandError::BadSize
        );
        assert_eq!(
            e("MAIL FROM:<a@b> BODY=BINARYMIME").reply().as_bytes(),
            b"555 5.5.4 Unsupported option: BODY=BINARYMIME\r\n"
        );
        assert_eq!(
            e("MAIL FROM:<a@b> RET=FULL").reply().as_bytes(),
            b"555 5.5.4 Unsupported option: RET=FULL\r\n"
        );
        assert_eq!(
            e("MAIL FROM:<j\u{f6}rg@b.example>").reply().as_bytes(),
            b"553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n"
        );
        assert_eq!(
            e("MAIL FROM <x@b>").reply().as_bytes(),
            b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
        );
    }

    #[test]
    fn mail_params() {
        let Command::Mail { from, params } = p(
            "MAIL FROM:<j\u{f6}rg@b\u{fc}cher.example> size=1000 BODY=8bitmime SMTPUTF8 AUTH=<>",
        )
        .unwrap() else {
            panic!()
        };
        assert!(from.is_utf8());
        assert_eq!(params.size, Some(1000));
        assert_eq!(params.body, Some(Body::EightBitMime));
        assert!(params.smtputf8);
        assert_eq!(params.auth, Some("<>"));
    }

    #[test]
    fn rcpt() {
        let Command::Rcpt { to } = p("RCPT TO:<Postmaster>").unwrap() else {
            panic!()
        };
        assert_eq!(to.mailbox(), "Postmaster");
        assert_eq!(to.domain(), None);
        let Command::Rcpt { to } = p("rcpt to: <u@example.org>").unwrap() else {
            panic!()
        };
        assert_eq!(to.mailbox(), "u@example.org");
        let e = |s: &str| p(s).unwrap_err().reply().as_bytes().to_vec();
        assert_eq!(
            e("RCPT TO:<>"),
            b"501 5.1.3 Bad recipient address syntax\r\n"
        );
        assert_eq!(
            e("RCPT TO:<user>"),
            b"501 5.1.3 Bad recipient address syntax\r\n"
        );
        assert_eq!(
            e("RCPT FROM:<a@b>"),
            b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
        );
        assert_eq!(
            e("RCPT TO:<a@b> NOTIFY=NEVER"),
            b"555 5.5.4 Unsupported option: NOTIFY=NEVER\r\n"
        );
        assert_eq!(
            parse_with_verb(b"RCPT TO:<a@b> NOTIFY=NEVER")
                .unwrap_err()
                .0,
            Verb::Rcpt
        );
    }
}
