//! Postfix lookup tables in their text form, as `postmap(1)` and `texthash:`
//! read them, loaded once into a compact immutable index.
//!
//! The text format, quoted from postmap(1):
//!
//! ```text
//! A table entry has the form
//!      key whitespace value
//! Empty lines and whitespace-only lines are ignored, as are lines
//! whose first non-whitespace character is a `#'.
//! A logical line starts with non-whitespace text. A line that
//! starts with whitespace continues a logical line.
//! ```
//!
//! Keys may be written in double quotes (Postfix 3.2 and later) to contain
//! whitespace; `\"` and `\\` escape inside the quotes. Keys are folded to
//! lower case (ASCII only), as Postfix does for its fixed-case table types,
//! and lookups fold the query the same way. When a key appears twice the
//! first entry wins and the later one is reported, as Postfix's
//! `duplicate entry` warning does.
//!
//! Two ways to load. [`parse_records`] is strict: a line Postfix would skip
//! with a warning (a missing value, an unbalanced quote, non-UTF-8 text) is
//! an error, and the caller refuses the table; the local tables (aliases,
//! canonical and virtual maps) load this way. [`parse_records_lenient`]
//! does what postmap does: the line is skipped with a `file:line` warning,
//! and where its key can still be read the key is handed back, so that the
//! table can keep a *broken* entry for it ([`TableBuilder::push_broken`]).
//! A lookup that meets a broken entry must defer the mail rather than fall
//! back to a default: a skipped line in a TLS policy table would otherwise
//! silently downgrade a destination meant to be `secure` (a deliberate
//! difference from Postfix, whose lookup simply misses; docs/postfix.md).
//! The outbound tables (TLS policy, transport and SASL password maps) load
//! this way; [`CompactTable::load_checked`] does it for plain tables.
//!
//! Besides files, three table types of Postfix that live in the setting
//! itself or behind a socket: `static:VALUE` (every key gives VALUE),
//! `inline:{ key = value, ... }` (a small table written in main.cf) and
//! `socketmap:inet:HOST:PORT:NAME` / `socketmap:unix:PATH:NAME` (a lookup
//! server speaking Postfix's socketmap protocol; see [`super::socketmap`]
//! for the codec and `delivery::socketmap` for the client).
//!
//! Parsing is sans-I/O ([`parse_records`], [`CompactTable::build`]); the one
//! function that touches the file system is [`read_source`].

use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;

/// Largest table source file tern reads; arena offsets are `u32`, and a
/// router has no business loading a bigger table.
pub const MAX_TABLE_BYTES: usize = 64 << 20;

/// At most this many errors are kept per table; the rest are only counted,
/// so a binary file given as a table cannot flood memory.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// The map types tern accepts in a `type:path` table specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapType {
    /// `texthash:` — the text file itself, read at start-up (the native form).
    Texthash,
    /// `hash:` — Postfix's Berkeley DB file built by postmap; tern reads the
    /// source text file of the same name instead (without `.db`).
    Hash,
    /// `btree:` — like `hash:`, read from the source text.
    Btree,
    /// `lmdb:` — like `hash:`, read from the source text (not `.lmdb`).
    Lmdb,
    /// `cdb:` — like `hash:`, read from the source text (not `.cdb`).
    Cdb,
    /// `dbm:` — like `hash:`, read from the source text.
    Dbm,
    /// `static:VALUE` — every key gives VALUE (`static:{ text }` for text
    /// with whitespace).
    Static,
    /// `inline:{ key = value, { key = text with whitespace }, ... }` — a
    /// table written in the setting itself.
    Inline,
    /// `socketmap:inet:HOST:PORT:NAME` or `socketmap:unix:PATH:NAME` — a
    /// lookup server (Postfix's socketmap_table(5)); asked per lookup, so
    /// only where delivery can wait for it (`smtp_tls_policy_maps`).
    Socketmap,
}

impl MapType {
    /// The Postfix name of the type, as written before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            MapType::Texthash => "texthash",
            MapType::Hash => "hash",
            MapType::Btree => "btree",
            MapType::Lmdb => "lmdb",
            MapType::Cdb => "cdb",
            MapType::Dbm => "dbm",
            MapType::Static => "static",
            MapType::Inline => "inline",
            MapType::Socketmap => "socketmap",
        }
    }

    /// True for the types whose entries come from a file.
    pub fn is_file(self) -> bool {
        !matches!(self, MapType::Static | MapType::Inline | MapType::Socketmap)
    }

    fn from_name(name: &str) -> Option<MapType> {
        Some(match name {
            "texthash" => MapType::Texthash,
            "hash" => MapType::Hash,
            "btree" => MapType::Btree,
            "lmdb" => MapType::Lmdb,
            "cdb" => MapType::Cdb,
            "dbm" => MapType::Dbm,
            "static" => MapType::Static,
            "inline" => MapType::Inline,
            "socketmap" => MapType::Socketmap,
            _ => return None,
        })
    }
}

/// A parsed `type:path` table specification such as `texthash:/etc/tern/tls_policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// The type named before the colon.
    pub map_type: MapType,
    /// The path after the colon, exactly as written (for `static:`,
    /// `inline:` and `socketmap:`, the rest of the specification).
    pub path: String,
}

/// Where a `socketmap:` table's server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketmapEndpoint {
    /// `inet:HOST:PORT`: HOST is an IP address (IPv6 in brackets) or
    /// `localhost`; tern makes no blocking name lookup on its one thread.
    Inet(std::net::SocketAddr),
    /// `unix:PATH`.
    Unix(String),
}

/// A `socketmap:` table: the server and the name sent in each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketmapSpec {
    /// The server.
    pub endpoint: SocketmapEndpoint,
    /// The socketmap name: the first word of every request (`NAME KEY`).
    pub name: String,
}

impl SocketmapSpec {
    /// Parses what follows `socketmap:`: `inet:HOST:PORT:NAME` or
    /// `unix:PATH:NAME`.
    pub fn parse(s: &str) -> Result<SocketmapSpec, &'static str> {
        let (endpoint, name) = s
            .rsplit_once(':')
            .ok_or("expected inet:host:port:name or unix:pathname:name")?;
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            return Err("the socketmap name (after the last ':') must be one word");
        }
        let endpoint = if let Some(path) = endpoint.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("empty unix-domain socket path");
            }
            SocketmapEndpoint::Unix(path.to_string())
        } else if let Some(hp) = endpoint.strip_prefix("inet:") {
            let (host, port) = hp.rsplit_once(':').ok_or("expected inet:host:port:name")?;
            let port: u16 = port
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or("the port must be a number from 1 to 65535")?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let ip: std::net::IpAddr = if host.eq_ignore_ascii_case("localhost") {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                host.parse().map_err(|_| {
                    "the host must be an IP address or localhost (tern does no blocking host name lookup)"
                })?
            };
            SocketmapEndpoint::Inet(std::net::SocketAddr::new(ip, port))
        } else {
            return Err("expected inet:host:port:name or unix:pathname:name");
        };
        Ok(SocketmapSpec {
            endpoint,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for SocketmapSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            SocketmapEndpoint::Inet(a) => write!(f, "socketmap:inet:{a}:{}", self.name),
            SocketmapEndpoint::Unix(p) => write!(f, "socketmap:unix:{p}:{}", self.name),
        }
    }
}

/// Strips one pair of `{ }` around `s` (and the whitespace inside them),
/// as Postfix's extpar() does for `static:{ text }` and `{ name = value }`.
/// `None` when `s` starts with `{` but has no matching `}` at its end.
pub fn strip_braces(s: &str) -> Option<&str> {
    let Some(inner) = s.strip_prefix('{') else {
        return Some(s);
    };
    let inner = inner.strip_suffix('}')?;
    let mut depth = 0usize;
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    (depth == 0).then(|| inner.trim_matches(|c: char| c.is_ascii_whitespace()))
}

/// Splits `s` into words separated by commas and/or whitespace, keeping
/// `{ ... }` groups (which may nest and hold separators) inside one word,
/// as Postfix's mystrtokq() does. A `{` without its `}` ends the last word
/// at the end of the text; callers find it with [`strip_braces`].
pub fn split_braced(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let start = rest.find(|c: char| !(c == ',' || c.is_ascii_whitespace()))?;
        let t = &rest[start..];
        let mut depth = 0usize;
        let mut end = t.len();
        for (i, c) in t.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                c if depth == 0 && (c == ',' || c.is_ascii_whitespace()) => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        rest = &t[end..];
        Some(&t[..end])
    })
}

/// The entries of an `inline:{ ... }` table, as `(key, value)` pairs in
/// order. Postfix's form is `inline:{ key=value, { key = text with
/// whitespace } }`; tern also takes `key = value` with whitespace around
/// the `=` (a value with whitespace still needs the braces).
pub fn inline_entries(body: &str) -> Result<Vec<(&str, &str)>, String> {
    let inner = match body.trim().strip_prefix('{') {
        Some(_) => strip_braces(body.trim()).ok_or("missing '}' at the end of the table")?,
        None => return Err("expected inline:{ key=value, ... }".into()),
    };
    let mut out = Vec::new();
    let mut words = split_braced(inner).peekable();
    while let Some(w) = words.next() {
        if w.starts_with('{') {
            let e = strip_braces(w).ok_or_else(|| format!("missing '}}' in \"{w}\""))?;
            let (k, v) = e
                .split_once('=')
                .ok_or_else(|| format!("expected {{ key = value }} in \"{w}\""))?;
            out.push((k.trim(), v.trim()));
            continue;
        }
        let (key, value) = match w.split_once('=') {
            Some((k, "")) => (k, words.next().unwrap_or("")),
            Some((k, v)) => (k, v),
            None => match words.next() {
                Some("=") => (w, words.next().unwrap_or("")),
                Some(n) if n.starts_with('=') => (w, &n[1..]),
                _ => return Err(format!("expected key=value, found \"{w}\"")),
            },
        };
        out.push((key, value));
    }
    for (k, v) in &out {
        if k.is_empty() || v.is_empty() {
            return Err(format!("expected key=value, found \"{k}={v}\""));
        }
        if k.contains(['\n', '\r']) || v.contains(['\n', '\r']) {
            return Err("line break inside an entry".into());
        }
        if k.contains('\0') || v.contains('\0') {
            return Err("null byte inside an entry".into());
        }
    }
    Ok(out)
}

/// The table text of an `inline:` table: one `"key" value` line per entry,
/// so that every table kind parses it with its own file parser (line N is
/// entry N).
fn inline_text(body: &str) -> Result<Vec<u8>, String> {
    let mut text = String::new();
    for (k, v) in inline_entries(body)? {
        text.push('"');
        for c in k.chars() {
            if c == '"' || c == '\\' {
                text.push('\\');
            }
            text.push(c);
        }
        text.push_str("\" ");
        text.push_str(v);
        text.push('\n');
    }
    Ok(text.into_bytes())
}

/// Why a `type:path` specification was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapSpecError {
    /// No `type:` prefix (Postfix requires one; there is no default type).
    MissingType(String),
    /// A type tern cannot read (regexp, pcre, cidr, mysql, proxy, ...).
    UnsupportedType(String),
    /// Nothing after the colon.
    EmptyPath(String),
    /// A malformed `inline:`, `static:` or `socketmap:` specification.
    Malformed {
        /// The specification.
        spec: String,
        /// What is wrong.
        why: String,
    },
}

impl fmt::Display for MapSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapSpecError::MissingType(s) => {
                write!(f, "table \"{s}\": expected type:name, e.g. texthash:{s}")
            }
            MapSpecError::UnsupportedType(t) => write!(
                f,
                "unsupported table type \"{t}\": tern reads texthash: (and hash:, btree:, lmdb:, cdb:, dbm: from their source text), static:, inline: and socketmap:"
            ),
            MapSpecError::EmptyPath(s) => write!(f, "table \"{s}\": empty file name"),
            MapSpecError::Malformed { spec, why } => write!(f, "table \"{spec}\": {why}"),
        }
    }
}

impl std::error::Error for MapSpecError {}

impl MapSpec {
    /// Parses one `type:path` specification.
    pub fn parse(spec: &str) -> Result<MapSpec, MapSpecError> {
        let spec = spec.trim();
        let Some((ty, path)) = spec.split_once(':') else {
            return Err(MapSpecError::MissingType(spec.to_string()));
        };
        if ty.is_empty() {
            return Err(MapSpecError::MissingType(spec.to_string()));
        }
        let map_type = MapType::from_name(&ty.to_ascii_lowercase())
            .ok_or_else(|| MapSpecError::UnsupportedType(ty.to_string()))?;
        if path.is_empty() {
            return Err(MapSpecError::EmptyPath(spec.to_string()));
        }
        let malformed = |why: String| MapSpecError::Malformed {
            spec: spec.to_string(),
            why,
        };
        match map_type {
            MapType::Static => {
                strip_braces(path)
                    .filter(|v| !v.is_empty() && !v.contains(['\n', '\r', '\0']))
                    .ok_or_else(|| malformed("expected static:value or static:{ value }".into()))?;
            }
            MapType::Inline => {
                inline_entries(path).map_err(malformed)?;
            }
            MapType::Socketmap => {
                SocketmapSpec::parse(path).map_err(|e| malformed(e.to_string()))?;
            }
            _ => {}
        }
        Ok(MapSpec {
            map_type,
            path: path.to_string(),
        })
    }

    /// The text file tern reads for this table: always `path` itself, since
    /// for indexed types the source file keeps the name without `.db`.
    /// (For the types without a file, the rest of the specification.)
    pub fn source_path(&self) -> &str {
        &self.path
    }

    /// True when the table is a file (`texthash:` and the indexed types).
    pub fn is_file(&self) -> bool {
        self.map_type.is_file()
    }

    /// How errors name the table: the file for file types, else the whole
    /// specification (`inline:{...}:2: invalid security level`).
    pub fn label(&self) -> String {
        if self.is_file() {
            self.path.clone()
        } else {
            self.to_string()
        }
    }

    /// The value of a `static:` table (braces stripped).
    pub fn static_value(&self) -> Option<&str> {
        (self.map_type == MapType::Static)
            .then(|| strip_braces(&self.path))
            .flatten()
    }

    /// The server and name of a `socketmap:` table.
    pub fn socketmap(&self) -> Option<SocketmapSpec> {
        (self.map_type == MapType::Socketmap)
            .then(|| SocketmapSpec::parse(&self.path).ok())
            .flatten()
    }

    /// A note for the operator when tern reads the source text in place of
    /// an indexed file; `None` for `texthash:` and the types without a file.
    pub fn note(&self) -> Option<TableWarning> {
        match self.map_type {
            MapType::Texthash | MapType::Static | MapType::Inline | MapType::Socketmap => None,
            t => Some(TableWarning::ReadsSourceText { map_type: t }),
        }
    }
}

impl fmt::Display for MapSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.map_type.as_str(), self.path)
    }
}

/// Parses a list of table specifications separated by whitespace or commas,
/// as `smtp_tls_policy_maps`, `transport_maps` and `smtp_sasl_password_maps` take.
/// `{ ... }` groups (`inline:{ a=b, c=d }`, `static:{ text }`) stay in one
/// specification, as Postfix's mystrtokq() keeps them.
pub fn parse_map_list(value: &str) -> Result<Vec<MapSpec>, MapSpecError> {
    split_braced(value).map(MapSpec::parse).collect()
}

/// An error or warning with its place: `file:line: message` when shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<E> {
    /// The table file (its path as configured).
    pub file: Rc<str>,
    /// 1-based line number of the first line of the logical line; 0 when
    /// the problem concerns the file as a whole.
    pub line: u32,
    /// What is wrong.
    pub error: E,
}

impl<E: fmt::Display> fmt::Display for Located<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.error)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.error)
        }
    }
}

impl<E: fmt::Display + fmt::Debug> std::error::Error for Located<E> {}

/// Errors in the table text itself, common to every table kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxError {
    /// The logical line is not valid UTF-8.
    NonUtf8,
    /// A NUL byte, which Postfix would silently truncate at.
    NulByte,
    /// A key without a value (Postfix: "expected format: key whitespace value").
    ExpectedKeyValue,
    /// A `"quoted key` without the closing quote.
    UnterminatedQuote,
    /// Text right after the closing quote of a quoted key.
    TextAfterQuote,
    /// The file is larger than [`MAX_TABLE_BYTES`].
    TooLarge {
        /// The size found.
        bytes: usize,
    },
    /// The file could not be read.
    Io(String),
    /// A table type this setting cannot use (`static:` or `socketmap:`
    /// where tern has no use for them).
    NotHere(MapType),
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyntaxError::NonUtf8 => f.write_str("non-UTF-8 input"),
            SyntaxError::NulByte => f.write_str("null byte in input"),
            SyntaxError::ExpectedKeyValue => f.write_str("expected format: key whitespace value"),
            SyntaxError::UnterminatedQuote => f.write_str("missing closing '\"' in quoted key"),
            SyntaxError::TextAfterQuote => {
                f.write_str("expected whitespace after the closing '\"' of a quoted key")
            }
            SyntaxError::TooLarge { bytes } => {
                write!(
                    f,
                    "table is {bytes} bytes, more than the limit of {MAX_TABLE_BYTES}"
                )
            }
            SyntaxError::Io(e) => write!(f, "cannot read table: {e}"),
            SyntaxError::NotHere(MapType::Socketmap) => f.write_str(
                "socketmap: tables are supported only in smtp_tls_policy_maps",
            ),
            SyntaxError::NotHere(t) => write!(
                f,
                "{}: tables are supported only in smtp_tls_policy_maps, transport_maps and smtp_sasl_password_maps",
                t.as_str()
            ),
        }
    }
}

/// Things that load but deserve the operator's attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableWarning {
    /// A continuation line with no logical line to continue; ignored.
    LeadingWhitespace,
    /// The key was seen before; this later entry is ignored.
    DuplicateEntry {
        /// The (folded) key.
        key: String,
    },
    /// The key ends in `:`, as in an aliases file.
    AliasFormat,
    /// An indexed type (`hash:` ...) was configured; tern read the source text.
    ReadsSourceText {
        /// The configured type.
        map_type: MapType,
    },
    /// A malformed line, skipped (lenient loading only).
    Skipped {
        /// Why the line is malformed.
        reason: String,
        /// Its key, when it could be read: mail for it is deferred.
        key: Option<String>,
    },
}

impl fmt::Display for TableWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableWarning::LeadingWhitespace => {
                f.write_str("logical line must not start with whitespace -- ignoring this line")
            }
            TableWarning::DuplicateEntry { key } => {
                write!(f, "duplicate entry: \"{key}\" -- ignoring this line")
            }
            TableWarning::AliasFormat => {
                f.write_str("record is in \"key: value\" format; is this an alias file?")
            }
            TableWarning::ReadsSourceText { map_type } => write!(
                f,
                "{}: table type read from its source text file as texthash: (no postmap step; changes take effect on reload)",
                map_type.as_str()
            ),
            TableWarning::Skipped { reason, key: None } => {
                write!(f, "{reason} -- ignoring this line")
            }
            TableWarning::Skipped {
                reason,
                key: Some(k),
            } => write!(
                f,
                "{reason} -- ignoring this line; mail for \"{k}\" is deferred until it is fixed"
            ),
        }
    }
}

/// Errors and warnings collected while loading one table.
#[derive(Debug, Clone)]
pub struct Report<E> {
    file: Rc<str>,
    /// Errors, at most [`MAX_REPORTED_ERRORS`].
    pub errors: Vec<Located<E>>,
    /// Errors beyond the kept ones.
    pub errors_dropped: usize,
    /// Warnings, at most [`MAX_REPORTED_ERRORS`].
    pub warnings: Vec<Located<TableWarning>>,
}

impl<E> Report<E> {
    /// An empty report for `file`.
    pub fn new(file: &str) -> Report<E> {
        Report {
            file: Rc::from(file),
            errors: Vec::new(),
            errors_dropped: 0,
            warnings: Vec::new(),
        }
    }

    /// The file this report is about.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Records an error at `line`.
    pub fn error(&mut self, line: u32, error: E) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(Located {
                file: self.file.clone(),
                line,
                error,
            });
        } else {
            self.errors_dropped += 1;
        }
    }

    /// Records a warning at `line`.
    pub fn warn(&mut self, line: u32, warning: TableWarning) {
        if self.warnings.len() < MAX_REPORTED_ERRORS {
            self.warnings.push(Located {
                file: self.file.clone(),
                line,
                error: warning,
            });
        }
    }

    /// True when no error was recorded.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.errors_dropped == 0
    }
}

/// One table entry as read from the text, before any interpretation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// First physical line of the logical line (1-based).
    pub line: u32,
    /// The key, unquoted and (when folding) lower-cased.
    pub key: &'a str,
    /// The value, surrounding whitespace stripped; continuation lines are
    /// joined with their leading whitespace kept, as Postfix does.
    pub value: &'a str,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// Reads logical lines: joins continuation lines, drops comments and blank
/// lines, and reports orphan continuation lines as Postfix's readllines() does.
struct LogicalLines<'a> {
    rest: &'a [u8],
    lineno: u32,
}

impl<'a> LogicalLines<'a> {
    fn next_physical(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        self.rest = rest;
        self.lineno += 1;
        Some(line)
    }

    /// Fills `buf` with the next logical line; returns its first line number.
    fn next_into<E>(&mut self, buf: &mut Vec<u8>, report: &mut Report<E>) -> Option<u32> {
        buf.clear();
        loop {
            let line = self.next_physical()?;
            let first = line.iter().position(|&b| !is_space(b));
            let Some(first) = first else { continue };
            if line[first] == b'#' {
                continue;
            }
            if first > 0 {
                report.warn(self.lineno, TableWarning::LeadingWhitespace);
                continue;
            }
            let start = self.lineno;
            buf.extend_from_slice(line);
            // Continuation lines, skipping embedded comment and blank lines.
            loop {
                let save = (self.rest, self.lineno);
                let Some(next) = self.next_physical() else {
                    break;
                };
                match next.iter().position(|&b| !is_space(b)) {
                    None => continue,
                    Some(i) if next[i] == b'#' => continue,
                    Some(0) => {
                        (self.rest, self.lineno) = save;
                        break;
                    }
                    Some(_) => buf.extend_from_slice(next),
                }
            }
            return Some(start);
        }
    }
}

/// Splits a logical line into key and value, unquoting a quoted key into `key_buf`.
fn split_record<'b>(
    text: &'b str,
    key_buf: &'b mut String,
) -> Result<(&'b str, &'b str), SyntaxError> {
    let (key, rest): (&str, &str) = if let Some(q) = text.strip_prefix('"') {
        key_buf.clear();
        let mut chars = q.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => key_buf.push(e),
                    None => return Err(SyntaxError::UnterminatedQuote),
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => key_buf.push(c),
            }
        }
        let end = end.ok_or(SyntaxError::UnterminatedQuote)?;
        let rest = &q[end + 1..];
        if !rest.is_empty() && !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
            return Err(SyntaxError::TextAfterQuote);
        }
        (key_buf.as_str(), rest)
    } else {
        match text.find(|c: char| c.is_ascii_whitespace()) {
            Some(i) => (&text[..i], &text[i..]),
            None => (text, ""),
        }
    };
    let value = rest.trim_matches(|c: char| c.is_ascii_whitespace());
    if key.is_empty() || value.is_empty() {
        return Err(SyntaxError::ExpectedKeyValue);
    }
    Ok((key, value))
}

/// Parses table text and calls `each` for every record, in file order.
///
/// Syntax errors go to `report` (converted into the caller's error type);
/// `each` returns the caller's own errors for the record, also reported
/// with the record's line. Keys are lower-cased (ASCII) when `fold` is set.
pub fn parse_records<E: From<SyntaxError>>(
    text: &[u8],
    fold: bool,
    report: &mut Report<E>,
    each: impl FnMut(Record<'_>) -> Result<(), E>,
) {
    parse_records_with(text, fold, report, each, |report, line, _, e| {
        report.error(line, e)
    });
}

/// Like [`parse_records`], but as postmap loads a table: a malformed line
/// (a syntax error, or an error `each` returns for it) is skipped with a
/// [`TableWarning::Skipped`] naming its line, and `broken` gets the line's
/// key when it can be read, so the caller can record a broken entry. Only
/// a table too large to load is an error.
pub fn parse_records_lenient<E: From<SyntaxError> + fmt::Display>(
    text: &[u8],
    fold: bool,
    report: &mut Report<E>,
    each: impl FnMut(Record<'_>) -> Result<(), E>,
    mut broken: impl FnMut(&str, u32),
) {
    parse_records_with(text, fold, report, each, |report, line, key, e| {
        if let Some(k) = key {
            broken(k, line);
        }
        report.warn(
            line,
            TableWarning::Skipped {
                reason: e.to_string(),
                key: key.map(str::to_string),
            },
        );
    });
}

/// The key of a malformed logical line, if it can be read: its first word,
/// unquoted only when it is not a quoted key (an unbalanced quote leaves
/// nothing to trust), valid UTF-8 and free of NUL bytes; folded like keys.
fn readable_key(line: &[u8], fold: bool) -> Option<String> {
    let end = line.iter().position(|&b| is_space(b)).unwrap_or(line.len());
    let word = &line[..end];
    if word.is_empty() || word[0] == b'"' || word.contains(&0) {
        return None;
    }
    let mut k = std::str::from_utf8(word).ok()?.to_string();
    if fold {
        k.make_ascii_lowercase();
    }
    Some(k)
}

fn parse_records_with<E: From<SyntaxError>, R: FnMut(Record<'_>) -> Result<(), E>>(
    text: &[u8],
    fold: bool,
    report: &mut Report<E>,
    mut each: R,
    mut bad: impl FnMut(&mut Report<E>, u32, Option<&str>, E),
) {
    if text.len() > MAX_TABLE_BYTES {
        report.error(0, E::from(SyntaxError::TooLarge { bytes: text.len() }));
        return;
    }
    let mut lines = LogicalLines {
        rest: text,
        lineno: 0,
    };
    let mut buf = Vec::new();
    let mut key_buf = String::new();
    let mut folded = String::new();
    while let Some(line) = lines.next_into(&mut buf, report) {
        if buf.contains(&0) {
            let k = readable_key(&buf, fold);
            bad(report, line, k.as_deref(), E::from(SyntaxError::NulByte));
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            let k = readable_key(&buf, fold);
            bad(report, line, k.as_deref(), E::from(SyntaxError::NonUtf8));
            continue;
        };
        let (key, value) = match split_record(text, &mut key_buf) {
            Ok(kv) => kv,
            Err(e) => {
                // A quoted key that closed properly is readable too.
                let k = match e {
                    SyntaxError::TextAfterQuote | SyntaxError::ExpectedKeyValue
                        if text.starts_with('"') =>
                    {
                        quoted_key(text, fold)
                    }
                    _ => readable_key(&buf, fold),
                };
                bad(report, line, k.as_deref(), E::from(e));
                continue;
            }
        };
        if key.ends_with(':') {
            report.warn(line, TableWarning::AliasFormat);
        }
        let key = if fold && key.bytes().any(|b| b.is_ascii_uppercase()) {
            folded.clear();
            folded.push_str(key);
            folded.make_ascii_lowercase();
            folded.as_str()
        } else {
            key
        };
        if let Err(e) = each(Record { line, key, value }) {
            bad(report, line, Some(key), e);
        }
    }
}

/// The unquoted, folded key of a line that starts with a closed quoted key.
fn quoted_key(text: &str, fold: bool) -> Option<String> {
    let mut buf = String::new();
    let rest = text.strip_prefix('"')?;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => buf.push(chars.next()?),
            '"' => {
                if fold {
                    buf.make_ascii_lowercase();
                }
                return (!buf.is_empty()).then_some(buf);
            }
            c => buf.push(c),
        }
    }
    None
}

/// Reads a table's source file (the only I/O here), bounded by [`MAX_TABLE_BYTES`].
/// An `inline:` table gives its entries as table text (no I/O); `static:`
/// and `socketmap:` tables have no text and are refused here: the loaders
/// that support them handle them first ([`static_text`]).
pub fn read_source(spec: &MapSpec) -> Result<Vec<u8>, Located<SyntaxError>> {
    use std::io::Read;
    let at = |error| Located {
        file: Rc::from(spec.label().as_str()),
        line: 0,
        error,
    };
    match spec.map_type {
        MapType::Inline => {
            // Validated by MapSpec::parse; a failure here cannot happen.
            return inline_text(&spec.path).map_err(|e| at(SyntaxError::Io(e)));
        }
        MapType::Static | MapType::Socketmap => {
            return Err(at(SyntaxError::NotHere(spec.map_type)));
        }
        _ => {}
    }
    let file =
        std::fs::File::open(spec.source_path()).map_err(|e| at(SyntaxError::Io(e.to_string())))?;
    let mut data = Vec::new();
    let limit = MAX_TABLE_BYTES as u64 + 1;
    file.take(limit)
        .read_to_end(&mut data)
        .map_err(|e| at(SyntaxError::Io(e.to_string())))?;
    if data.len() > MAX_TABLE_BYTES {
        return Err(at(SyntaxError::TooLarge { bytes: data.len() }));
    }
    Ok(data)
}

/// The table text of a `static:` table: one entry, key `static`, whose
/// value every lookup gets once the table is marked with
/// [`CompactTable::matching_any_key`]. `None` for other types.
pub fn static_text(spec: &MapSpec) -> Option<Vec<u8>> {
    spec.static_value()
        .map(|v| format!("static {v}\n").into_bytes())
}

/// A byte range in a table's arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    off: u32,
    len: u32,
}

/// One fixed-size index slot: key and value in the arena, source line, and
/// whatever the table kind pre-parsed (`meta`).
#[derive(Debug, Clone, Copy)]
struct Slot<M> {
    key: Span,
    value: Span,
    /// The source line, and in the top bit [`BROKEN`]: the line was
    /// malformed and skipped, only the key is known. One word for both
    /// keeps a policy table slot at 24 bytes.
    line_flags: u32,
    meta: M,
}

/// The broken-entry bit of [`Slot::line_flags`].
const BROKEN: u32 = 1 << 31;

impl<M> Slot<M> {
    fn line(&self) -> u32 {
        self.line_flags & !BROKEN
    }

    fn broken(&self) -> bool {
        self.line_flags & BROKEN != 0
    }
}

/// An immutable lookup table: every key and value in one `String` arena, a
/// sorted index of fixed-size slots, binary search, no allocation per lookup.
///
/// `M` is a small `Copy` value a table kind pre-parses per entry (the TLS
/// policy table keeps its security level there); plain tables use `()`.
#[derive(Debug, Clone)]
pub struct CompactTable<M: Copy = ()> {
    arena: String,
    index: Vec<Slot<M>>,
    fold: bool,
    /// A `static:` table: every key finds the first entry.
    any: bool,
}

/// A found entry, borrowed from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a, M> {
    /// The stored (folded) key that matched.
    pub key: &'a str,
    /// The stored value.
    pub value: &'a str,
    /// The line the entry came from.
    pub line: u32,
    /// The pre-parsed data of the entry.
    pub meta: M,
    /// True for an entry whose line was malformed and skipped
    /// ([`TableBuilder::push_broken`]): `value` is empty and `meta` the
    /// caller's placeholder; the lookup must defer, not use it.
    pub broken: bool,
}

/// Collects entries for a [`CompactTable`].
#[derive(Debug)]
pub struct TableBuilder<M: Copy = ()> {
    arena: String,
    index: Vec<Slot<M>>,
    fold: bool,
}

/// The builder ran past the `u32` arena limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaFull;

impl fmt::Display for ArenaFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("table too large")
    }
}

impl<M: Copy> TableBuilder<M> {
    /// A new builder; `fold` says whether keys are case-folded (lookups fold too).
    pub fn new(fold: bool) -> TableBuilder<M> {
        TableBuilder {
            arena: String::new(),
            index: Vec::new(),
            fold,
        }
    }

    fn put(arena: &mut String, s: &str) -> Result<Span, ArenaFull> {
        let off = u32::try_from(arena.len()).map_err(|_| ArenaFull)?;
        let len = u32::try_from(s.len()).map_err(|_| ArenaFull)?;
        if off.checked_add(len).is_none() {
            return Err(ArenaFull);
        }
        arena.push_str(s);
        Ok(Span { off, len })
    }

    /// Adds one entry. The key must already be folded if the table folds
    /// ([`parse_records`] does that).
    pub fn push(&mut self, key: &str, value: &str, line: u32, meta: M) -> Result<(), ArenaFull> {
        self.push_slot(key, value, line, meta, false)
    }

    /// Adds a broken entry: the key of a malformed line that was skipped.
    /// Lookups of the key find it with [`Hit::broken`] set; as with any
    /// entry, the first line for a key wins.
    pub fn push_broken(&mut self, key: &str, line: u32, meta: M) -> Result<(), ArenaFull> {
        self.push_slot(key, "", line, meta, true)
    }

    fn push_slot(
        &mut self,
        key: &str,
        value: &str,
        line: u32,
        meta: M,
        broken: bool,
    ) -> Result<(), ArenaFull> {
        let key = Self::put(&mut self.arena, key)?;
        let value = Self::put(&mut self.arena, value)?;
        // Lines past 2^31 cannot occur: the arena is far smaller.
        let line_flags = line.min(!BROKEN) | if broken { BROKEN } else { 0 };
        self.index.push(Slot {
            key,
            value,
            line_flags,
            meta,
        });
        Ok(())
    }

    /// Like [`TableBuilder::finish`], for entries not pushed in file order
    /// (broken entries added after the good ones): the first *line* of a
    /// key wins, and duplicates are reported in line order.
    pub fn finish_by_line<E>(mut self, report: &mut Report<E>) -> CompactTable<M> {
        self.index.sort_by_key(|s| s.line());
        self.finish(report)
    }

    /// Sorts, drops later duplicates (warning about each), and packs the
    /// arena in index order so that a binary search touches nearby memory.
    pub fn finish<E>(self, report: &mut Report<E>) -> CompactTable<M> {
        let TableBuilder {
            arena,
            mut index,
            fold,
        } = self;
        let get = |s: Span| &arena.as_bytes()[s.off as usize..(s.off + s.len) as usize];
        // Stable sort keeps file order among equal keys: the first one wins.
        index.sort_by(|a, b| get(a.key).cmp(get(b.key)));
        let mut packed = String::with_capacity(arena.len());
        let mut out: Vec<Slot<M>> = Vec::with_capacity(index.len());
        let mut prev: Option<Span> = None;
        for slot in &index {
            let key = &arena[slot.key.off as usize..(slot.key.off + slot.key.len) as usize];
            if let Some(p) = prev {
                if get(p) == key.as_bytes() {
                    report.warn(
                        slot.line(),
                        TableWarning::DuplicateEntry {
                            key: key.to_string(),
                        },
                    );
                    continue;
                }
            }
            prev = Some(slot.key);
            let value = &arena[slot.value.off as usize..(slot.value.off + slot.value.len) as usize];
            // Lengths and offsets only shrink while packing: no overflow.
            let k = Span {
                off: packed.len() as u32,
                len: slot.key.len,
            };
            packed.push_str(key);
            let v = Span {
                off: packed.len() as u32,
                len: slot.value.len,
            };
            packed.push_str(value);
            out.push(Slot {
                key: k,
                value: v,
                line_flags: slot.line_flags,
                meta: slot.meta,
            });
        }
        packed.shrink_to_fit();
        // `out` is in key order already: it was filled from the sorted index.
        out.shrink_to_fit();
        CompactTable {
            arena: packed,
            index: out,
            fold,
            any: false,
        }
    }
}

/// Compares a stored (folded) key with a query, folding the query on the fly.
fn cmp_folded(stored: &[u8], query: &[u8], fold: bool) -> Ordering {
    if !fold {
        return stored.cmp(query);
    }
    let n = stored.len().min(query.len());
    for i in 0..n {
        let (a, b) = (stored[i], query[i].to_ascii_lowercase());
        match a.cmp(&b) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    stored.len().cmp(&query.len())
}

impl<M: Copy> CompactTable<M> {
    /// An empty table.
    pub fn empty() -> CompactTable<M> {
        CompactTable {
            arena: String::new(),
            index: Vec::new(),
            fold: true,
            any: false,
        }
    }

    /// Makes every lookup find the first entry, whatever the key: what a
    /// `static:` table does ([`static_text`] builds its one entry).
    pub fn matching_any_key(mut self) -> CompactTable<M> {
        self.any = true;
        self
    }

    fn str_at(&self, s: Span) -> &str {
        // Spans were made from this arena on char boundaries.
        self.arena
            .get(s.off as usize..(s.off + s.len) as usize)
            .unwrap_or("")
    }

    fn hit(&self, slot: &Slot<M>) -> Hit<'_, M> {
        Hit {
            key: self.str_at(slot.key),
            value: self.str_at(slot.value),
            line: slot.line(),
            meta: slot.meta,
            broken: slot.broken(),
        }
    }

    /// Exact lookup of `key` (case-insensitive if the table folds keys).
    pub fn get(&self, key: &str) -> Option<Hit<'_, M>> {
        if self.any {
            return self.index.first().map(|slot| self.hit(slot));
        }
        let q = key.as_bytes();
        // Queries are nearly always lower case already: then a plain
        // memcmp does, and folding per byte is skipped.
        let fold = self.fold && q.iter().any(u8::is_ascii_uppercase);
        self.index
            .binary_search_by(|slot| cmp_folded(self.str_at(slot.key).as_bytes(), q, fold))
            .ok()
            .and_then(|i| self.index.get(i))
            .map(|slot| self.hit(slot))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// All entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = Hit<'_, M>> + '_ {
        self.index.iter().map(|s| self.hit(s))
    }

    /// Bytes held: arena capacity plus index capacity times the slot size.
    pub fn bytes(&self) -> usize {
        self.arena.capacity() + self.index.capacity() * std::mem::size_of::<Slot<M>>()
    }

    /// Size of one index slot in bytes.
    pub fn slot_size() -> usize {
        std::mem::size_of::<Slot<M>>()
    }

    /// Bytes in the arena (all keys and values).
    pub fn arena_bytes(&self) -> usize {
        self.arena.capacity()
    }
}

/// Errors of a plain key/value table (only syntax errors are possible).
pub type PlainError = SyntaxError;

impl CompactTable<()> {
    /// Parses table text into a plain key/value table (aliases, password maps, ...).
    pub fn parse(text: &[u8], file: &str) -> (CompactTable<()>, Report<SyntaxError>) {
        let mut report = Report::new(file);
        let mut b = TableBuilder::new(true);
        parse_records(text, true, &mut report, |r| {
            b.push(r.key, r.value, r.line, ())
                .map_err(|_| SyntaxError::TooLarge { bytes: text.len() })
        });
        let t = b.finish(&mut report);
        (t, report)
    }

    /// Loads a plain key/value table as postmap does ([`parse_records_lenient`]):
    /// `check` validates each value (the table kind's own rules); a line it
    /// refuses, or a syntax error, is skipped with a `file:line` warning,
    /// and its key, when readable, is kept as a broken entry
    /// ([`TableBuilder::push_broken`]) so that a lookup of it can defer.
    /// The report's errors are only those that stop the whole table (too large).
    pub fn load_checked<E: From<SyntaxError> + fmt::Display>(
        text: &[u8],
        file: &str,
        mut check: impl FnMut(&str) -> Result<(), E>,
    ) -> (CompactTable<()>, Report<E>) {
        let mut report = Report::new(file);
        // Broken keys are collected apart: the record callback holds the
        // builder while a line is checked.
        let mut broken: Vec<(String, u32)> = Vec::new();
        let mut b = TableBuilder::new(true);
        parse_records_lenient(
            text,
            true,
            &mut report,
            |r| {
                check(r.value)?;
                b.push(r.key, r.value, r.line, ())
                    .map_err(|_| E::from(SyntaxError::TooLarge { bytes: text.len() }))
            },
            |key, line| broken.push((key.to_string(), line)),
        );
        for (key, line) in &broken {
            if b.push_broken(key, *line, ()).is_err() {
                report.error(*line, E::from(SyntaxError::TooLarge { bytes: text.len() }));
            }
        }
        // Broken entries were pushed last: restore file order so that the
        // first line of a key wins, broken or not.
        let t = b.finish_by_line(&mut report);
        (t, report)
    }

    /// Number of entries that are not broken: what the loader compares
    /// with the file's content (a table with none is a mistake).
    pub fn usable_len(&self) -> usize {
        self.index.iter().filter(|s| !s.broken()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> (Vec<(u32, String, String)>, Report<SyntaxError>) {
        let mut report = Report::new("t");
        let mut out = Vec::new();
        parse_records(text.as_bytes(), true, &mut report, |r| {
            out.push((r.line, r.key.to_string(), r.value.to_string()));
            Ok(())
        });
        (out, report)
    }

    #[test]
    fn readllines_cases_from_postfix() {
        // Cases of Postfix's readlline.c test table, as key/value records.
        let (r, rep) = records(" abcde x\nfghij y\n");
        assert_eq!(r, vec![(2, "fghij".into(), "y".into())]);
        assert_eq!(rep.warnings[0].line, 1);
        assert_eq!(rep.warnings[0].error, TableWarning::LeadingWhitespace);
        let (r, _) = records("#abc\ndef g");
        assert_eq!(r, vec![(2, "def".into(), "g".into())]);
        let (r, _) = records("abc\n def\n");
        assert_eq!(r, vec![(1, "abc".into(), "def".into())]);
        let (r, _) = records("abc x\n #def\n ghi");
        assert_eq!(r, vec![(1, "abc".into(), "x ghi".into())]);
        let (r, _) = records("abc x\n#def\n ghi");
        assert_eq!(r, vec![(1, "abc".into(), "x ghi".into())]);
        let (r, _) = records("abc x\n\n ghi\nnext v");
        assert_eq!(
            r,
            vec![
                (1, "abc".into(), "x ghi".into()),
                (4, "next".into(), "v".into())
            ]
        );
        let (r, _) = records("abc x\n \n");
        assert_eq!(r, vec![(1, "abc".into(), "x".into())]);
    }

    #[test]
    fn continuation_keeps_leading_whitespace_of_later_lines() {
        let (r, _) = records("[thumb.example.org]\t\tfingerprint\n    match=aa\n    match=bb\n");
        assert_eq!(r[0].2, "fingerprint    match=aa    match=bb");
    }

    #[test]
    fn keys_fold_values_do_not() {
        let (r, _) = records("Example.COM  Secure Match=X\r\n");
        assert_eq!(r, vec![(1, "example.com".into(), "Secure Match=X".into())]);
    }

    #[test]
    fn quoted_keys() {
        let (r, rep) = records("\"a b\\\"c\\\\\" v\n");
        assert!(rep.is_ok());
        assert_eq!(r[0].1, "a b\"c\\");
        let (_, rep) = records("x v\n\"abc v\n");
        assert_eq!(rep.errors[0].line, 2);
        assert_eq!(rep.errors[0].error, SyntaxError::UnterminatedQuote);
        let (_, rep) = records("\"abc\"v w\n");
        assert_eq!(rep.errors[0].error, SyntaxError::TextAfterQuote);
    }

    #[test]
    fn errors_with_line_numbers() {
        let text = b"good v\n\nlonely\nbad\x00 v\nutf\xff v\n";
        let mut report: Report<SyntaxError> = Report::new("/etc/tern/x");
        parse_records(text, true, &mut report, |_| Ok(()));
        let shown: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "/etc/tern/x:3: expected format: key whitespace value",
                "/etc/tern/x:4: null byte in input",
                "/etc/tern/x:5: non-UTF-8 input",
            ]
        );
    }

    #[test]
    fn alias_format_warning() {
        let (_, rep) = records("postmaster: root\n");
        assert_eq!(rep.warnings[0].error, TableWarning::AliasFormat);
    }

    #[test]
    fn compact_table_lookup_and_duplicates() {
        let (t, rep) = CompactTable::parse(b"b.example 2\na.example 1\nB.example 3\nc 4\n", "f");
        assert_eq!(t.len(), 3);
        assert_eq!(
            rep.warnings[0].to_string(),
            "f:3: duplicate entry: \"b.example\" -- ignoring this line"
        );
        let h = t.get("B.EXAMPLE").unwrap();
        assert_eq!((h.key, h.value, h.line), ("b.example", "2", 1));
        assert_eq!(t.get("a.example").unwrap().value, "1");
        assert_eq!(t.get("c").unwrap().value, "4");
        assert!(t.get("d").is_none());
        assert!(t.get("").is_none());
        assert!(t.get("a.exampl").is_none());
        assert_eq!(t.arena_bytes(), "a.example1b.example2c4".len());
        let keys: Vec<&str> = t.iter().map(|h| h.key).collect();
        assert_eq!(keys, vec!["a.example", "b.example", "c"]);
    }

    #[test]
    fn empty_table_lookup() {
        let t: CompactTable<()> = CompactTable::empty();
        assert!(t.get("x").is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn map_specs() {
        let s = MapSpec::parse("texthash:/etc/tern/tls_policy").unwrap();
        assert_eq!(s.map_type, MapType::Texthash);
        assert_eq!(s.source_path(), "/etc/tern/tls_policy");
        assert_eq!(s.note(), None);
        let h = MapSpec::parse("hash:/etc/postfix/transport").unwrap();
        assert_eq!(h.source_path(), "/etc/postfix/transport");
        assert!(h
            .note()
            .unwrap()
            .to_string()
            .starts_with("hash: table type read"));
        assert_eq!(MapSpec::parse("lmdb:/x").unwrap().map_type, MapType::Lmdb);
        assert_eq!(
            MapSpec::parse("pcre:/etc/x"),
            Err(MapSpecError::UnsupportedType("pcre".into()))
        );
        assert_eq!(
            MapSpec::parse("/etc/x"),
            Err(MapSpecError::MissingType("/etc/x".into()))
        );
        assert_eq!(
            MapSpec::parse("hash:"),
            Err(MapSpecError::EmptyPath("hash:".into()))
        );
        let l = parse_map_list(" texthash:/a, hash:/b\tlmdb:/c ").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].to_string(), "hash:/b");
        assert!(parse_map_list("texthash:/a, mysql:/b").is_err());
        assert!(parse_map_list("").unwrap().is_empty());
    }

    #[test]
    fn static_inline_and_socketmap_specs() {
        let s = MapSpec::parse("static:encrypt").unwrap();
        assert_eq!(
            (s.map_type, s.static_value()),
            (MapType::Static, Some("encrypt"))
        );
        assert!(!s.is_file());
        assert_eq!(s.note(), None);
        assert_eq!(s.label(), "static:encrypt");
        assert_eq!(static_text(&s).unwrap(), b"static encrypt\n");
        let s = MapSpec::parse("static:{ secure match=nexthop }").unwrap();
        assert_eq!(s.static_value(), Some("secure match=nexthop"));
        assert!(matches!(
            MapSpec::parse("static:{ x"),
            Err(MapSpecError::Malformed { .. })
        ));
        assert!(matches!(
            MapSpec::parse("static:{ }"),
            Err(MapSpecError::Malformed { .. })
        ));
        let e = read_source(&MapSpec::parse("static:may").unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "static:may: static: tables are supported only in smtp_tls_policy_maps, transport_maps and smtp_sasl_password_maps"
        );

        let s = MapSpec::parse("socketmap:inet:127.0.0.1:8461:postfix").unwrap();
        let m = s.socketmap().unwrap();
        assert_eq!(
            m.endpoint,
            SocketmapEndpoint::Inet("127.0.0.1:8461".parse().unwrap())
        );
        assert_eq!(m.name, "postfix");
        assert_eq!(m.to_string(), "socketmap:inet:127.0.0.1:8461:postfix");
        let m = MapSpec::parse("socketmap:inet:[::1]:8461:x")
            .unwrap()
            .socketmap()
            .unwrap();
        assert_eq!(
            m.endpoint,
            SocketmapEndpoint::Inet("[::1]:8461".parse().unwrap())
        );
        let m = MapSpec::parse("socketmap:inet:localhost:8461:x")
            .unwrap()
            .socketmap()
            .unwrap();
        assert_eq!(
            m.endpoint,
            SocketmapEndpoint::Inet("127.0.0.1:8461".parse().unwrap())
        );
        let m = MapSpec::parse("socketmap:unix:/run/mta-sts.sock:postfix")
            .unwrap()
            .socketmap()
            .unwrap();
        assert_eq!(
            m.endpoint,
            SocketmapEndpoint::Unix("/run/mta-sts.sock".into())
        );
        for bad in [
            "socketmap:inet:127.0.0.1:8461",
            "socketmap:inet:127.0.0.1:0:x",
            "socketmap:inet:127.0.0.1:99999:x",
            "socketmap:inet:mta-sts.example:8461:x",
            "socketmap:unix::x",
            "socketmap:tcp:1.2.3.4:5:x",
            "socketmap:x",
        ] {
            assert!(
                matches!(MapSpec::parse(bad), Err(MapSpecError::Malformed { .. })),
                "{bad}"
            );
        }
        let e = read_source(&MapSpec::parse("socketmap:unix:/x:y").unwrap()).unwrap_err();
        assert!(e
            .to_string()
            .ends_with("socketmap: tables are supported only in smtp_tls_policy_maps"));
    }

    #[test]
    fn inline_tables() {
        let body = "{ [127.0.0.1]:2525 = encrypt, { example.com = secure match=nexthop }, a=b c= d, e =f, \"q\" = v }";
        assert_eq!(
            inline_entries(body).unwrap(),
            vec![
                ("[127.0.0.1]:2525", "encrypt"),
                ("example.com", "secure match=nexthop"),
                ("a", "b"),
                ("c", "d"),
                ("e", "f"),
                ("\"q\"", "v"),
            ]
        );
        let s = MapSpec::parse(&format!("inline:{body}")).unwrap();
        let text = read_source(&s).unwrap();
        let (t, rep) = CompactTable::parse(&text, &s.label());
        assert!(rep.is_ok(), "{:?}", rep.errors);
        assert_eq!(t.get("[127.0.0.1]:2525").unwrap().value, "encrypt");
        assert_eq!(t.get("EXAMPLE.com").unwrap().value, "secure match=nexthop");
        assert_eq!(t.get("example.com").unwrap().line, 2);
        assert_eq!(t.get("\"q\"").unwrap().value, "v");
        for bad in ["{ a }", "{ a = }", "{ a=b", "a=b", "{ {a b} }", "{ = b }"] {
            assert!(inline_entries(bad).is_err(), "{bad}");
            assert!(MapSpec::parse(&format!("inline:{bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn map_lists_keep_braces_together() {
        let l = parse_map_list(
            "texthash:/a, inline:{ x = may, { y.example = secure match=nexthop } }\n static:{ encrypt protocols=TLSv1.3 },socketmap:inet:127.0.0.1:8461:postfix",
        )
        .unwrap();
        let types: Vec<MapType> = l.iter().map(|s| s.map_type).collect();
        assert_eq!(
            types,
            vec![
                MapType::Texthash,
                MapType::Inline,
                MapType::Static,
                MapType::Socketmap
            ]
        );
        assert_eq!(l[2].static_value(), Some("encrypt protocols=TLSv1.3"));
        assert_eq!(
            split_braced(" a,{b c},{d {e} f}g ,, h").collect::<Vec<_>>(),
            vec!["a", "{b c}", "{d {e} f}g", "h"]
        );
        assert_eq!(strip_braces("{ a {b} }"), Some("a {b}"));
        assert_eq!(strip_braces("{ a }}"), None);
        assert_eq!(strip_braces("plain"), Some("plain"));
    }

    #[test]
    fn static_tables_match_every_key() {
        let (t, _) = CompactTable::parse(b"static encrypt\n", "static:encrypt");
        let t = t.matching_any_key();
        assert_eq!(t.get("anything.example").unwrap().value, "encrypt");
        assert_eq!(t.get("").unwrap().key, "static");
        let e: CompactTable<()> = CompactTable::empty().matching_any_key();
        assert!(e.get("x").is_none());
    }

    #[test]
    fn read_source_errors_name_the_file() {
        let spec = MapSpec::parse("texthash:/nonexistent/tern-test-table").unwrap();
        let e = read_source(&spec).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("/nonexistent/tern-test-table: cannot read table:"));
    }

    /// `(line, key)` pairs.
    type Keys = Vec<(u32, String)>;

    fn lenient(text: &[u8]) -> (Keys, Keys, Report<SyntaxError>) {
        let mut report = Report::new("/etc/tern/t");
        let mut good = Vec::new();
        let mut broken = Vec::new();
        parse_records_lenient(
            text,
            true,
            &mut report,
            |r| {
                if r.value == "bad" {
                    return Err(SyntaxError::ExpectedKeyValue);
                }
                good.push((r.line, r.key.to_string()));
                Ok(())
            },
            |k, line| broken.push((line, k.to_string())),
        );
        (good, broken, report)
    }

    #[test]
    fn lenient_loading_skips_malformed_lines_and_keeps_readable_keys() {
        let (good, broken, rep) = lenient(
            b"a v\n[Lonely.Example]\n\"q k\"x v\n\"open v\nnul\x00 v\nutf\xff v\nsem bad\nz v\n",
        );
        assert!(rep.is_ok(), "{:?}", rep.errors);
        assert_eq!(good, vec![(1, "a".into()), (8, "z".into())]);
        assert_eq!(
            broken,
            vec![
                (2, "[lonely.example]".into()),
                (3, "q k".into()),
                (7, "sem".into()),
            ]
        );
        let shown: Vec<String> = rep.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "/etc/tern/t:2: expected format: key whitespace value -- ignoring this line; mail for \"[lonely.example]\" is deferred until it is fixed",
                "/etc/tern/t:3: expected whitespace after the closing '\"' of a quoted key -- ignoring this line; mail for \"q k\" is deferred until it is fixed",
                "/etc/tern/t:4: missing closing '\"' in quoted key -- ignoring this line",
                "/etc/tern/t:5: null byte in input -- ignoring this line",
                "/etc/tern/t:6: non-UTF-8 input -- ignoring this line",
                "/etc/tern/t:7: expected format: key whitespace value -- ignoring this line; mail for \"sem\" is deferred until it is fixed",
            ]
        );
        // The strict form reports the same lines as errors.
        let mut strict: Report<SyntaxError> = Report::new("t");
        parse_records(b"a v\n[x]\n", true, &mut strict, |_| Ok(()));
        assert_eq!(strict.errors.len(), 1);
        assert!(strict.warnings.is_empty());
    }

    #[test]
    fn readable_keys() {
        assert_eq!(readable_key(b"Key value", true).as_deref(), Some("key"));
        assert_eq!(readable_key(b"Key", false).as_deref(), Some("Key"));
        assert_eq!(readable_key(b"\"q v", true), None);
        assert_eq!(readable_key(b"k\x00 v", true), None);
        assert_eq!(readable_key(b"k\xff v", true), None);
        assert_eq!(readable_key(b"k v\xff", true).as_deref(), Some("k"));
        assert_eq!(quoted_key("\"A \\\"b\"x", true).as_deref(), Some("a \"b"));
        assert_eq!(quoted_key("\"\"", true), None);
        assert_eq!(quoted_key("\"abc", true), None);
    }

    #[test]
    fn broken_entries_are_found_and_the_first_line_wins() {
        let mut report: Report<SyntaxError> = Report::new("f");
        let mut b: TableBuilder<()> = TableBuilder::new(true);
        b.push("good", "v", 1, ()).unwrap();
        b.push("dup", "v", 4, ()).unwrap();
        b.push_broken("bad", 2, ()).unwrap();
        b.push_broken("dup", 3, ()).unwrap();
        let t = b.finish_by_line(&mut report);
        assert!(!t.get("good").unwrap().broken);
        let h = t.get("BAD").unwrap();
        assert!(h.broken && h.value.is_empty() && h.line == 2);
        // The broken line 3 came first: the key stays broken.
        assert!(t.get("dup").unwrap().broken);
        assert_eq!(
            report.warnings[0].to_string(),
            "f:4: duplicate entry: \"dup\" -- ignoring this line"
        );
    }

    #[test]
    fn load_checked_keeps_broken_keys_and_good_entries() {
        let (t, rep) =
            CompactTable::load_checked(b"a 1\nb\nc bad\nd 4\nb 5\n", "/etc/tern/m", |v: &str| {
                if v == "bad" {
                    Err(SyntaxError::ExpectedKeyValue)
                } else {
                    Ok(())
                }
            });
        assert!(rep.is_ok());
        assert_eq!((t.len(), t.usable_len()), (4, 2));
        assert!(!t.get("a").unwrap().broken);
        let b = t.get("B").unwrap();
        assert!(b.broken && b.line == 2);
        assert!(t.get("c").unwrap().broken);
        assert_eq!(t.get("d").unwrap().value, "4");
        let shown: Vec<String> = rep.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(shown[0].starts_with("/etc/tern/m:2: "), "{shown:?}");
        assert!(shown[2].contains("m:5: duplicate entry"), "{shown:?}");
    }

    #[test]
    fn read_source_reads_a_file() {
        let dir = std::env::temp_dir().join(format!("tern-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t");
        std::fs::write(&p, "k v\n").unwrap();
        let spec = MapSpec::parse(&format!("hash:{}", p.display())).unwrap();
        assert_eq!(read_source(&spec).unwrap(), b"k v\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
