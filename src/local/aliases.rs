//! The aliases(5) format, sans-I/O: `name: value1, value2, ...`, comments,
//! continuation lines, quoted names, and destinations that are addresses,
//! `/file/names`, `|commands` or `:include:/file/names`.
//!
//! Quoted from aliases(5): "An alias definition has the form `name: value1,
//! value2, ...`. Empty lines and whitespace-only lines are ignored, as are
//! lines whose first non-whitespace character is a `#'. A logical line
//! starts with non-whitespace text. A line that starts with whitespace
//! continues a logical line." Names are folded to lower case.
//!
//! Every value is checked when the file is loaded (so `tern newaliases` and
//! start-up report each mistake with its line); lookups return the parsed
//! destinations again from the compact table.

use std::fmt;

use crate::config::table::{CompactTable, Report, SyntaxError, TableBuilder, MAX_TABLE_BYTES};

/// Most destinations one alias (or one `:include:` file) may list.
pub const MAX_DESTINATIONS: usize = 1000;

/// One destination on the right-hand side of an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A mail address (qualified or not). `literal` is set for `\user`:
    /// deliver to that user's mailbox without further alias expansion.
    Address {
        /// The address, angle brackets removed.
        address: String,
        /// Written with a leading backslash.
        literal: bool,
    },
    /// `/file/name`: append to a file (only with `allow_mail_to_files`).
    File(String),
    /// `|command`: pipe to a command (only with `allow_mail_to_commands`).
    Command(String),
    /// `:include:/file/name`: the destinations listed in that file.
    Include(String),
}

/// What is wrong with one alias line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasError {
    /// A problem in the table text itself (encoding, size, I/O).
    Syntax(SyntaxError),
    /// No `:` after the name.
    MissingColon,
    /// An empty name (`: value`).
    EmptyName,
    /// Nothing after the colon.
    EmptyValue,
    /// An unclosed `"` in the name or a destination.
    UnterminatedQuote,
    /// A destination that is empty (`a, , b`).
    EmptyDestination,
    /// An unquoted destination with whitespace inside.
    Whitespace(String),
    /// An address with an unbalanced `<` or `>`, or more than one `@` domain.
    BadAddress(String),
    /// `:include:` without a file name.
    EmptyInclude,
    /// An unquoted `:include:` file name with whitespace inside (often an
    /// inline comment, which aliases(5) does not have).
    IncludeWhitespace(String),
    /// More than [`MAX_DESTINATIONS`] destinations.
    TooManyDestinations,
}

impl From<SyntaxError> for AliasError {
    fn from(e: SyntaxError) -> Self {
        AliasError::Syntax(e)
    }
}

impl fmt::Display for AliasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AliasError::Syntax(e) => e.fmt(f),
            AliasError::MissingColon => f.write_str("expected format: name: value, value, ..."),
            AliasError::EmptyName => f.write_str("empty alias name"),
            AliasError::EmptyValue => f.write_str("alias has no destination"),
            AliasError::UnterminatedQuote => f.write_str("missing closing '\"'"),
            AliasError::EmptyDestination => f.write_str("empty destination between commas"),
            AliasError::Whitespace(d) if d.contains('#') => write!(
                f,
                "whitespace in destination \"{d}\": aliases(5) has no inline comments; put comments on lines of their own"
            ),
            AliasError::Whitespace(d) => write!(
                f,
                "whitespace in destination \"{d}\": separate destinations with commas, quote commands"
            ),
            AliasError::BadAddress(a) => write!(f, "malformed address \"{a}\""),
            AliasError::EmptyInclude => f.write_str(":include: without a file name"),
            AliasError::IncludeWhitespace(p) => write!(
                f,
                "whitespace in :include: file name \"{p}\": comments go on lines of their own (quote a name that has spaces)"
            ),
            AliasError::TooManyDestinations => {
                write!(f, "more than {MAX_DESTINATIONS} destinations")
            }
        }
    }
}

impl std::error::Error for AliasError {}

/// A loaded aliases file: names (lower case) to their right-hand side.
#[derive(Debug, Clone)]
pub struct AliasTable {
    table: CompactTable<()>,
}

/// Logical lines of an aliases(5) or `:include:` text: (first line number,
/// joined text). Comments and blank lines are skipped; continuation lines
/// are joined with a single space, so `a,\n  b` reads as `a, b`.
pub fn logical_lines(text: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
        let lineno = u32::try_from(n + 1).unwrap_or(u32::MAX);
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let first = line.iter().position(|b| !b.is_ascii_whitespace());
        let Some(first) = first else { continue };
        if line[first] == b'#' {
            continue;
        }
        if first > 0 {
            if let Some((_, last)) = out.last_mut() {
                last.push(b' ');
                last.extend_from_slice(&line[first..]);
                continue;
            }
        }
        out.push((lineno, line[first..].to_vec()));
    }
    out
}

/// Splits the name off an alias line: `name: rest` or `"quoted name": rest`.
fn split_name(line: &str) -> Result<(String, &str), AliasError> {
    let (name, rest) = if let Some(q) = line.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = q.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => name.push(e),
                    None => return Err(AliasError::UnterminatedQuote),
                },
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => name.push(c),
            }
        }
        let end = end.ok_or(AliasError::UnterminatedQuote)?;
        let rest = q[end..].trim_start();
        let rest = rest.strip_prefix(':').ok_or(AliasError::MissingColon)?;
        (name, rest)
    } else {
        let colon = line.find(':').ok_or(AliasError::MissingColon)?;
        let name = line[..colon].trim();
        if name.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(AliasError::MissingColon);
        }
        (name.to_string(), &line[colon + 1..])
    };
    if name.is_empty() {
        return Err(AliasError::EmptyName);
    }
    Ok((name.to_ascii_lowercase(), rest.trim()))
}

/// Parses a right-hand side (also a `:include:` line) into destinations.
pub fn parse_destinations(value: &str, out: &mut Vec<Dest>) -> Result<(), AliasError> {
    let mut items: Vec<(String, bool)> = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_quote = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_quote = !in_quote;
                quoted = true;
            }
            '\\' if in_quote => match chars.next() {
                Some(e) => cur.push(e),
                None => return Err(AliasError::UnterminatedQuote),
            },
            ',' if !in_quote => {
                items.push((std::mem::take(&mut cur), quoted));
                quoted = false;
            }
            c => cur.push(c),
        }
    }
    if in_quote {
        return Err(AliasError::UnterminatedQuote);
    }
    items.push((cur, quoted));
    // A trailing comma (`a, b,`) is tolerated, as sendmail and Postfix do.
    if items.len() > 1 && items.last().is_some_and(|(s, q)| s.trim().is_empty() && !q) {
        items.pop();
    }
    for (raw, quoted) in items {
        let item = raw.trim();
        if item.is_empty() {
            return Err(AliasError::EmptyDestination);
        }
        if out.len() >= MAX_DESTINATIONS {
            return Err(AliasError::TooManyDestinations);
        }
        out.push(classify(item, quoted)?);
    }
    Ok(())
}

fn classify(item: &str, quoted: bool) -> Result<Dest, AliasError> {
    if let Some(cmd) = item.strip_prefix('|') {
        return Ok(Dest::Command(cmd.trim().to_string()));
    }
    if let Some(path) = item.strip_prefix(":include:") {
        let path = path.trim();
        if path.is_empty() {
            return Err(AliasError::EmptyInclude);
        }
        if !quoted && path.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(AliasError::IncludeWhitespace(path.to_string()));
        }
        return Ok(Dest::Include(path.to_string()));
    }
    if !quoted && item.contains(|c: char| c.is_ascii_whitespace()) {
        return Err(AliasError::Whitespace(item.to_string()));
    }
    if item.starts_with('/') {
        return Ok(Dest::File(item.to_string()));
    }
    let (literal, rest) = match item.strip_prefix('\\') {
        Some(r) => (true, r),
        None => (false, item),
    };
    let addr = match rest.strip_prefix('<') {
        Some(inner) => inner
            .strip_suffix('>')
            .ok_or_else(|| AliasError::BadAddress(item.to_string()))?,
        None => rest,
    };
    if addr.is_empty()
        || addr.contains(['<', '>', '\0'])
        || addr.matches('@').count() > 1 && !quoted
        || addr.ends_with('@')
        || addr.starts_with('@')
        || addr.len() > crate::queue::envelope::MAX_ADDRESS
    {
        return Err(AliasError::BadAddress(item.to_string()));
    }
    Ok(Dest::Address {
        address: addr.to_string(),
        literal,
    })
}

impl AliasTable {
    /// An empty table.
    pub fn empty() -> AliasTable {
        AliasTable {
            table: CompactTable::empty(),
        }
    }

    /// Parses an aliases file; `file` names it in the report. Every line
    /// with an error is left out of the table and reported.
    pub fn parse(text: &[u8], file: &str) -> (AliasTable, Report<AliasError>) {
        let mut report: Report<AliasError> = Report::new(file);
        let mut b: TableBuilder<()> = TableBuilder::new(true);
        if text.len() > MAX_TABLE_BYTES {
            report.error(
                0,
                AliasError::Syntax(SyntaxError::TooLarge { bytes: text.len() }),
            );
            return (AliasTable::empty(), report);
        }
        let mut dests = Vec::new();
        for (line, raw) in logical_lines(text) {
            if raw.contains(&0) {
                report.error(line, AliasError::Syntax(SyntaxError::NulByte));
                continue;
            }
            let Ok(s) = std::str::from_utf8(&raw) else {
                report.error(line, AliasError::Syntax(SyntaxError::NonUtf8));
                continue;
            };
            let (name, value) = match split_name(s) {
                Ok(x) => x,
                Err(e) => {
                    report.error(line, e);
                    continue;
                }
            };
            if value.is_empty() {
                report.error(line, AliasError::EmptyValue);
                continue;
            }
            dests.clear();
            if let Err(e) = parse_destinations(value, &mut dests) {
                report.error(line, e);
                continue;
            }
            if b.push(&name, value, line, ()).is_err() {
                report.error(
                    line,
                    AliasError::Syntax(SyntaxError::TooLarge { bytes: text.len() }),
                );
                break;
            }
        }
        let table = b.finish(&mut report);
        (AliasTable { table }, report)
    }

    /// The destinations of `name` (case-insensitive), if it is an alias.
    pub fn lookup(&self, name: &str) -> Option<Vec<Dest>> {
        let hit = self.table.get(name)?;
        let mut out = Vec::new();
        // Values were checked at load time; a failure here cannot happen,
        // and would mean "not an alias" rather than a panic.
        parse_destinations(hit.value, &mut out).ok()?;
        Some(out)
    }

    /// True if `name` is an alias.
    pub fn contains(&self, name: &str) -> bool {
        self.table.get(name).is_some()
    }

    /// Number of aliases.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when there are no aliases.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every `:include:` file named in the table, with the line of the
    /// alias that names it (for `tern newaliases`).
    pub fn includes(&self) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        let mut dests = Vec::new();
        for hit in self.table.iter() {
            dests.clear();
            if parse_destinations(hit.value, &mut dests).is_ok() {
                for d in &dests {
                    if let Dest::Include(p) = d {
                        out.push((hit.line, p.clone()));
                    }
                }
            }
        }
        out
    }
}

/// Parses a `:include:` file: every logical line lists destinations.
/// Fails with the first error as `file:line: message`.
pub fn parse_include(text: &[u8], file: &str) -> Result<Vec<Dest>, String> {
    let (dests, mut errs) = check_include(text, file);
    if errs.is_empty() {
        Ok(dests)
    } else {
        Err(errs.swap_remove(0))
    }
}

/// Parses a `:include:` file and reports every bad line (for `tern
/// newaliases`): the destinations of the good lines, and one
/// `file:line: message` per error.
pub fn check_include(text: &[u8], file: &str) -> (Vec<Dest>, Vec<String>) {
    let (dests, errs) = check_include_lines(text, file);
    (dests.into_iter().map(|(_, d)| d).collect(), errs)
}

/// [`check_include`] with the line each destination is on, so a nested
/// `:include:` that is missing is reported where it is named.
pub fn check_include_lines(text: &[u8], file: &str) -> (Vec<(u32, Dest)>, Vec<String>) {
    if text.len() > MAX_TABLE_BYTES {
        return (
            Vec::new(),
            vec![format!("{file}: larger than {MAX_TABLE_BYTES} bytes")],
        );
    }
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (line, raw) in logical_lines(text) {
        if raw.contains(&0) {
            errs.push(format!("{file}:{line}: {}", SyntaxError::NulByte));
            continue;
        }
        let Ok(s) = std::str::from_utf8(&raw) else {
            errs.push(format!("{file}:{line}: {}", SyntaxError::NonUtf8));
            continue;
        };
        let mut here = Vec::new();
        if let Err(e) = parse_destinations(s.trim(), &mut here) {
            errs.push(format!("{file}:{line}: {e}"));
            if matches!(e, AliasError::TooManyDestinations) {
                break;
            }
            continue;
        }
        if out.len() + here.len() > MAX_DESTINATIONS {
            errs.push(format!(
                "{file}:{line}: {}",
                AliasError::TooManyDestinations
            ));
            break;
        }
        out.extend(here.into_iter().map(|d| (line, d)));
    }
    (out, errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: &str) -> Dest {
        Dest::Address {
            address: a.into(),
            literal: false,
        }
    }

    #[test]
    fn parses_lists_comments_continuations_and_quotes() {
        let text = b"# system\nRoot: admin@example.com,\n  other, \\root\n\n\"a b\": <x@y>\n   # comment inside\npost:\tf, \"|/usr/bin/x -y\", /var/log/m, :include:/etc/l\n";
        let (t, r) = AliasTable::parse(text, "aliases");
        assert!(r.is_ok(), "{:?}", r.errors);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.lookup("ROOT").unwrap(),
            vec![
                addr("admin@example.com"),
                addr("other"),
                Dest::Address {
                    address: "root".into(),
                    literal: true
                }
            ]
        );
        assert_eq!(t.lookup("a b").unwrap(), vec![addr("x@y")]);
        assert_eq!(
            t.lookup("post").unwrap(),
            vec![
                addr("f"),
                Dest::Command("/usr/bin/x -y".into()),
                Dest::File("/var/log/m".into()),
                Dest::Include("/etc/l".into())
            ]
        );
        assert!(t.lookup("nobody").is_none());
    }

    #[test]
    fn errors_carry_line_numbers() {
        let text = b"ok: a\nno colon here\nempty:\n: x\nbad: a,,b\nsp: a b\n\"q: x\nlt: <a@b\nok: dup\ninc: :include:\n";
        let (t, r) = AliasTable::parse(text, "aliases");
        let got: Vec<(u32, AliasError)> =
            r.errors.iter().map(|e| (e.line, e.error.clone())).collect();
        assert_eq!(
            got,
            vec![
                (2, AliasError::MissingColon),
                (3, AliasError::EmptyValue),
                (4, AliasError::EmptyName),
                (5, AliasError::EmptyDestination),
                (6, AliasError::Whitespace("a b".into())),
                (7, AliasError::UnterminatedQuote),
                (8, AliasError::BadAddress("<a@b".into())),
                (10, AliasError::EmptyInclude),
            ]
        );
        assert_eq!(r.warnings.len(), 1, "duplicate warned");
        assert_eq!(r.warnings[0].line, 9);
        assert_eq!(t.lookup("ok").unwrap(), vec![addr("a")]);
        assert_eq!(
            r.errors[0].to_string(),
            "aliases:2: expected format: name: value, value, ..."
        );
    }

    #[test]
    fn non_utf8_and_nul() {
        let (_, r) = AliasTable::parse(b"a: \xff\nb: x\0y\n", "f");
        assert_eq!(r.errors.len(), 2);
        assert_eq!(r.errors[0].error, AliasError::Syntax(SyntaxError::NonUtf8));
        assert_eq!(r.errors[1].error, AliasError::Syntax(SyntaxError::NulByte));
    }

    #[test]
    fn include_names_with_whitespace_are_refused_with_their_line() {
        // docs/local.md once showed this: aliases(5) has no inline comments.
        let text = b"ok: a\nt: :include:/etc/tern/team.list      # one per line\nq: \":include:/srv/my lists/x\"\nc: a, b  # note\n";
        let (t, r) = AliasTable::parse(text, "aliases");
        let got: Vec<(u32, AliasError)> =
            r.errors.iter().map(|e| (e.line, e.error.clone())).collect();
        assert_eq!(
            got,
            vec![
                (
                    2,
                    AliasError::IncludeWhitespace("/etc/tern/team.list      # one per line".into())
                ),
                (4, AliasError::Whitespace("b  # note".into())),
            ]
        );
        assert!(
            r.errors[0]
                .to_string()
                .starts_with("aliases:2: whitespace in :include: file name \"/etc/tern/team.list"),
            "{}",
            r.errors[0]
        );
        assert!(r.errors[1].to_string().contains("no inline comments"));
        // Quoted, a name with a space is fine.
        assert_eq!(
            t.lookup("q").unwrap(),
            vec![Dest::Include("/srv/my lists/x".into())]
        );
        assert_eq!(t.includes(), vec![(3, "/srv/my lists/x".to_string())]);
        assert!(t.lookup("t").is_none());
    }

    #[test]
    fn include_check_reports_every_bad_line() {
        let (d, errs) = check_include(b"a@x\nb c\n\xff\n  ,\nok@y, :include:/z  #\nlast\n", "/l");
        assert_eq!(d, vec![addr("a@x"), addr("last")]);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs[0].starts_with("/l:2: whitespace in destination"),
            "{errs:?}"
        );
        assert!(errs[1].starts_with("/l:3: "), "{errs:?}");
        assert!(
            errs[2].starts_with("/l:5: whitespace in :include: file name \"/z  #\""),
            "{errs:?}"
        );
        let (d, errs) = check_include(b"# nobody\n\n", "/e");
        assert!(d.is_empty() && errs.is_empty());
    }

    #[test]
    fn include_files() {
        let d = parse_include(b"# list\na@x, b,\n  c\n", "l").unwrap();
        assert_eq!(d, vec![addr("a@x"), addr("b"), addr("c")]);
        assert!(parse_include(b"a@x,,\n", "l")
            .unwrap_err()
            .starts_with("l:1: "));
    }
}
