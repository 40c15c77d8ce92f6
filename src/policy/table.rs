//! The TLS policy table (`smtp_tls_policy_maps`), Postfix format:
//!
//! ```text
//! example.com                 secure match=.example.com:example.com
//! .example.net                verify ciphers=high protocols=>=TLSv1.2
//! [mail.example.org]:587      secure match=nexthop
//! [thumb.example.org]         fingerprint
//!     match=b6:b4:72:34:...
//!     match=51:e9:af:2e:...
//! ```
//!
//! The value is a security level followed by `name=value` attributes,
//! separated by whitespace and/or commas. Every problem Postfix warns about
//! when it meets the entry at delivery time is an error here, at load
//! time, with the line number; so are attributes Postfix accepts but
//! ignores at a level (`match=` at `dane`), since they mean the operator
//! expected something that will not happen.
//!
//! Loaded once into a [`CompactTable`]: one arena for keys and the
//! normalised attributes, a sorted index of 24-byte slots holding the
//! pre-parsed level, protocols and connection reuse. A lookup is a binary
//! search per candidate key and allocates nothing.
//!
//! The same parser reads the answers of policy plug-ins (a `socketmap:`
//! server such as postfix-mta-sts-resolver) into an [`OwnedPolicyEntry`],
//! which owns its few strings for the one delivery that asked. Postfix
//! 3.10's MTA-STS attributes (`policy_type`, `policy_domain`, `policy_ttl`,
//! `{ policy_string = ... }`, `mx_host_pattern`, `policy_failure`) are read
//! into the same normalised form and shown as a [`StsDescriptor`]; any
//! attribute may be written `{ name = value }` to hold whitespace, and line
//! breaks between attributes count as whitespace.

use std::fmt;

use super::ciphers::{self, CipherError, ExcludedSuites};
use super::fingerprint::{parse_fingerprint, FingerprintError};
use super::level::{Level, UnknownLevel};
use super::protocols::{ProtocolsError, TlsVersions};
use crate::config::table::{parse_records, CompactTable, Hit, Report, SyntaxError, TableBuilder};

/// Pre-parsed per-entry data kept in the index slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyMeta {
    level: u8,
    /// `TlsVersions` bits; 0 when the entry has no `protocols=`.
    protocols: u8,
    /// 0 unset, 1 `no`, 2 `yes`.
    reuse: u8,
    /// `policy_type=`: 0 absent, 1 `sts`, 2 `no-policy-found`.
    sts: u8,
}

/// A problem in one policy table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The table text itself.
    Syntax(SyntaxError),
    /// The value has no level (only separators).
    EmptyPolicy,
    /// The first word is not a level.
    Level(UnknownLevel),
    /// An attribute after `none`.
    AttributeWithTlsDisabled(String),
    /// A word that is not `name=value`.
    Malformed {
        /// The word.
        token: String,
        /// What is missing.
        reason: &'static str,
    },
    /// `name=` with nothing after it.
    EmptyValue(String),
    /// A single-instance attribute given twice.
    Multiple(String),
    /// The attribute does nothing (or is refused by Postfix) at this level.
    InvalidAtLevel {
        /// Attribute name.
        name: String,
        /// The entry's level.
        level: Level,
    },
    /// Not one of match, protocols, ciphers, exclude, tafile, servername, connection_reuse.
    UnknownAttribute(String),
    /// A bad `protocols=` value.
    Protocols(ProtocolsError),
    /// A bad `ciphers=` grade.
    CipherGrade(String),
    /// A `ciphers=` grade or `exclude=` list tern cannot honour.
    Ciphers(CipherError),
    /// An attribute Postfix has that tern does not implement at this level.
    Unsupported {
        /// Attribute name.
        name: String,
        /// The entry's level.
        level: Level,
        /// What to do instead.
        hint: &'static str,
    },
    /// A bad fingerprint in `match=` at the fingerprint level.
    Fingerprint(FingerprintError),
    /// `servername=` is neither `hostname`, `nexthop` nor a DNS name.
    ServerName(String),
    /// `connection_reuse=` is neither `yes` nor `no`.
    ConnectionReuse(String),
    /// A `{ ... }` attribute without its `}` or without `name = value`.
    Braces(String),
    /// `policy_type=` is neither `sts` nor `no-policy-found`.
    PolicyType(String),
    /// An MTA-STS attribute in an entry that is not an STS policy.
    NotSts(String),
    /// A bad value of an MTA-STS attribute.
    StsValue {
        /// Attribute name.
        name: &'static str,
        /// The value.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
}

impl From<SyntaxError> for PolicyError {
    fn from(e: SyntaxError) -> PolicyError {
        PolicyError::Syntax(e)
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Syntax(e) => e.fmt(f),
            PolicyError::EmptyPolicy => f.write_str("invalid empty policy"),
            PolicyError::Level(e) => e.fmt(f),
            PolicyError::AttributeWithTlsDisabled(a) => {
                write!(f, "attribute \"{a}\" with TLS disabled (level \"none\" takes no attributes)")
            }
            PolicyError::Malformed { token, reason } => {
                write!(f, "malformed attribute/value pair \"{token}\": {reason}")
            }
            PolicyError::EmptyValue(n) => write!(f, "attribute \"{n}\" has empty value"),
            PolicyError::Multiple(n) => write!(f, "attribute \"{n}\" is specified multiple times"),
            PolicyError::InvalidAtLevel { name, level } => {
                write!(f, "attribute \"{name}\" invalid at security level \"{level}\"")
            }
            PolicyError::UnknownAttribute(n) => write!(f, "invalid attribute name: \"{n}\""),
            PolicyError::Protocols(e) => e.fmt(f),
            PolicyError::CipherGrade(g) => write!(
                f,
                "invalid cipher grade \"{g}\": expected high, medium, low, export or null"
            ),
            PolicyError::Ciphers(e @ CipherError::NullGrade) => e.fmt(f),
            PolicyError::Ciphers(e) => write!(f, "exclude: {e}"),
            PolicyError::Unsupported { name, level, hint } => write!(
                f,
                "attribute \"{name}\" is not supported at security level \"{level}\": {hint}"
            ),
            PolicyError::Fingerprint(e) => e.fmt(f),
            PolicyError::ServerName(s) => write!(
                f,
                "invalid servername \"{s}\": expected hostname, nexthop or a DNS name in A-label form"
            ),
            PolicyError::ConnectionReuse(v) => {
                write!(f, "attribute \"connection_reuse\" has bad value: \"{v}\"")
            }
            PolicyError::Braces(t) => {
                write!(f, "malformed attribute \"{t}\": expected {{ name = value }}")
            }
            PolicyError::PolicyType(v) => write!(
                f,
                "attribute \"policy_type\" has bad value: \"{v}\" (expected sts or no-policy-found)"
            ),
            PolicyError::NotSts(n) => write!(
                f,
                "attribute \"{n}\" is for MTA-STS policies only: it needs policy_type=sts"
            ),
            PolicyError::StsValue {
                name,
                value,
                expected,
            } => write!(
                f,
                "attribute \"{name}\" has bad value: \"{value}\" (expected {expected})"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

// Tags of the normalised attribute lines stored in the arena: `<tag><value>\n`.
const TAG_MATCH: char = 'm';
const TAG_CIPHERS: char = 'c';
const TAG_EXCLUDE: char = 'x';
const TAG_TAFILE: char = 't';
const TAG_SERVERNAME: char = 's';
const TAG_PROTOCOLS: char = 'p';
// MTA-STS attributes (Postfix 3.10).
const TAG_STS_DOMAIN: char = 'D';
const TAG_STS_TTL: char = 'L';
const TAG_STS_STRING: char = 'S';
const TAG_STS_PATTERN: char = 'P';
const TAG_STS_FAILURE: char = 'F';

/// `policy_failure=` of an MTA-STS plug-in answer: the policy must fail
/// with this RFC 8460 result type, whatever the server certificate. The
/// seed names four of the result types the verifier already has.
pub fn sts_failure(s: &str) -> Option<crate::tls::FailureKind> {
    use crate::tls::FailureKind as K;
    K::parse(s).filter(|k| {
        matches!(
            k,
            K::StsPolicyFetchError
                | K::StsPolicyInvalid
                | K::StsWebpkiInvalid
                | K::ValidationFailure
        )
    })
}

/// `policy_type=` of a plug-in answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsPolicyType {
    /// `sts`: an MTA-STS policy.
    Sts,
    /// `no-policy-found`.
    NoPolicyFound,
}

/// The MTA-STS part of a policy entry (a plug-in answer with
/// `policy_type=`), borrowed from the entry; the hop planner consumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StsDescriptor<'a> {
    attrs: &'a str,
    kind: StsPolicyType,
}

impl<'a> StsDescriptor<'a> {
    fn tagged(&self, tag: char) -> impl Iterator<Item = &'a str> + 'a {
        self.attrs
            .split_terminator('\n')
            .filter_map(move |l| l.strip_prefix(tag))
    }

    /// `policy_type=`.
    pub fn policy_type(&self) -> StsPolicyType {
        self.kind
    }

    /// `policy_domain=`: the domain the policy applies to.
    pub fn domain(&self) -> Option<&'a str> {
        self.tagged(TAG_STS_DOMAIN).next()
    }

    /// `policy_ttl=` in seconds: how long the answer may be cached.
    pub fn ttl(&self) -> Option<u32> {
        self.tagged(TAG_STS_TTL).next().and_then(|t| t.parse().ok())
    }

    /// The `policy_string` values, in order: the policy's lines.
    pub fn policy_strings(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.tagged(TAG_STS_STRING)
    }

    /// The `mx_host_pattern` values, in order: the policy's `mx` patterns.
    pub fn mx_host_patterns(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.tagged(TAG_STS_PATTERN)
    }

    /// `policy_failure=`: enforcement must fail with this result.
    pub fn failure(&self) -> Option<crate::tls::FailureKind> {
        self.tagged(TAG_STS_FAILURE).next().and_then(sts_failure)
    }
}

/// Parses a Postfix time value (`policy_ttl=`): a number with an optional
/// unit `s`, `m`, `h`, `d` or `w` (seconds by default), in seconds.
fn parse_ttl(v: &str) -> Option<u32> {
    let (num, mult) = match v.as_bytes().last()? {
        b's' => (&v[..v.len() - 1], 1u64),
        b'm' => (&v[..v.len() - 1], 60),
        b'h' => (&v[..v.len() - 1], 3600),
        b'd' => (&v[..v.len() - 1], 86400),
        b'w' => (&v[..v.len() - 1], 604_800),
        _ => (v, 1),
    };
    if num.is_empty() || num.len() > 10 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = num.parse::<u64>().ok()?.checked_mul(mult)?;
    u32::try_from(secs).ok()
}

/// A valid MTA-STS `mx` pattern (RFC 8461 §3.2): a host name, or `*.`
/// followed by one.
fn valid_mx_pattern(p: &str) -> bool {
    let name = p.strip_prefix("*.").unwrap_or(p);
    is_domain_name(name)
}

/// One attribute word of a policy: `name=value` or `{ name = value }`.
fn split_attribute(tok: &str) -> Result<(&str, &str), PolicyError> {
    if tok.starts_with('{') {
        let inner = crate::config::table::strip_braces(tok)
            .ok_or_else(|| PolicyError::Braces(tok.to_string()))?;
        let (n, v) = inner
            .split_once('=')
            .ok_or_else(|| PolicyError::Braces(tok.to_string()))?;
        let (n, v) = (n.trim_end(), v.trim_start());
        // A value is one line: the normalised form keeps one per line.
        if n.is_empty() || v.contains(['\n', '\r']) {
            return Err(PolicyError::Braces(tok.to_string()));
        }
        return Ok((n, v));
    }
    let (name, val) = tok.split_once('=').ok_or_else(|| PolicyError::Malformed {
        token: tok.to_string(),
        reason: "missing '=' after attribute name",
    })?;
    if name.is_empty() {
        return Err(PolicyError::Malformed {
            token: tok.to_string(),
            reason: "missing attribute name",
        });
    }
    // A `{` inside a bare word opens a group that may span lines
    // (`match=a{` newline `b}` is one word); the value must still be one
    // line, or its lines would read back as other attributes.
    if val.contains(['\n', '\r']) {
        return Err(PolicyError::Malformed {
            token: tok.to_string(),
            reason: "line break inside the value",
        });
    }
    Ok((name, val))
}

/// True when `s` is a host name in Postfix's valid_hostname() sense (so
/// parent-domain lookups apply): no brackets, no port, not all-numeric.
pub fn is_domain_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 || s.starts_with('.') || s.ends_with('.') {
        return false;
    }
    let mut all_numeric = true;
    for label in s.split('.') {
        if label.is_empty() || label.len() > 63 {
            return false;
        }
        for c in label.chars() {
            if !(c.is_alphanumeric() || c == '-' || c == '_' || (!c.is_ascii() && !c.is_control()))
            {
                return false;
            }
            if !c.is_ascii_digit() {
                all_numeric = false;
            }
        }
    }
    !all_numeric
}

fn valid_dns_name(s: &str) -> bool {
    s.is_ascii()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Parses one policy value into (meta, normalised attribute text).
fn parse_policy(value: &str, attrs: &mut String) -> Result<PolicyMeta, PolicyError> {
    attrs.clear();
    // Words separated by whitespace (line breaks too) and commas; a
    // `{ name = value }` group is one word (Postfix's mystrtokq()).
    let mut toks = crate::config::table::split_braced(value);
    let level_word = toks.next().ok_or(PolicyError::EmptyPolicy)?;
    let level = Level::parse(level_word).map_err(PolicyError::Level)?;
    let mut meta = PolicyMeta {
        level: level as u8,
        protocols: 0,
        reuse: 0,
        sts: 0,
    };
    if level == Level::None {
        if let Some(t) = toks.next() {
            return Err(PolicyError::AttributeWithTlsDisabled(t.to_string()));
        }
        return Ok(meta);
    }
    let (mut ciphers, mut protocols, mut exclude, mut servername, mut reuse) =
        (false, false, false, false, false);
    let (mut ptype, mut pdomain, mut pttl, mut pfailure) = (false, false, false, false);
    // The first MTA-STS attribute other than policy_type, for the error
    // when the entry turns out not to be an STS policy.
    let mut sts_attr: Option<&'static str> = None;
    for tok in toks {
        let (name, val) = split_attribute(tok)?;
        let name_lc = name.to_ascii_lowercase();
        let once = |seen: &mut bool| {
            if std::mem::replace(seen, true) {
                Err(PolicyError::Multiple(name_lc.clone()))
            } else {
                Ok(())
            }
        };
        let invalid = || PolicyError::InvalidAtLevel {
            name: name_lc.clone(),
            level,
        };
        let tag = match name_lc.as_str() {
            "ciphers" => {
                if val.is_empty() {
                    return Err(PolicyError::EmptyValue(name_lc));
                }
                once(&mut ciphers)?;
                if !ciphers::is_grade(val) {
                    return Err(PolicyError::CipherGrade(val.to_string()));
                }
                ciphers::check_grade(val).map_err(PolicyError::Ciphers)?;
                TAG_CIPHERS
            }
            "protocols" => {
                once(&mut protocols)?;
                meta.protocols = TlsVersions::parse(val)
                    .map_err(PolicyError::Protocols)?
                    .bits();
                TAG_PROTOCOLS
            }
            "exclude" => {
                once(&mut exclude)?;
                ExcludedSuites::parse(val).map_err(PolicyError::Ciphers)?;
                TAG_EXCLUDE
            }
            "match" => {
                if !matches!(level, Level::Fingerprint | Level::Verify | Level::Secure) {
                    return Err(invalid());
                }
                if val.is_empty() {
                    return Err(PolicyError::EmptyValue(name_lc));
                }
                if level == Level::Fingerprint {
                    for fp in val.split('|').filter(|s| !s.is_empty()) {
                        parse_fingerprint(fp).map_err(PolicyError::Fingerprint)?;
                    }
                }
                TAG_MATCH
            }
            "tafile" => {
                if !matches!(
                    level,
                    Level::Dane | Level::DaneOnly | Level::Verify | Level::Secure
                ) {
                    return Err(invalid());
                }
                if level.is_dane() {
                    return Err(PolicyError::Unsupported {
                        name: name_lc,
                        level,
                        hint: "tern authenticates DANE servers by their TLSA records only; use tafile= at verify or secure",
                    });
                }
                if val.is_empty() {
                    return Err(PolicyError::EmptyValue(name_lc));
                }
                TAG_TAFILE
            }
            "servername" => {
                if val.is_empty() {
                    return Err(PolicyError::EmptyValue(name_lc));
                }
                once(&mut servername)?;
                if !(val == "hostname" || val == "nexthop" || valid_dns_name(val)) {
                    return Err(PolicyError::ServerName(val.to_string()));
                }
                TAG_SERVERNAME
            }
            "connection_reuse" => {
                once(&mut reuse)?;
                meta.reuse = if val.eq_ignore_ascii_case("yes") {
                    2
                } else if val.eq_ignore_ascii_case("no") {
                    1
                } else {
                    return Err(PolicyError::ConnectionReuse(val.to_string()));
                };
                continue;
            }
            "policy_type" => {
                once(&mut ptype)?;
                meta.sts = match val {
                    "sts" => 1,
                    "no-policy-found" => 2,
                    _ => return Err(PolicyError::PolicyType(val.to_string())),
                };
                continue;
            }
            "policy_domain" => {
                once(&mut pdomain)?;
                sts_attr.get_or_insert("policy_domain");
                if !is_domain_name(val) {
                    return Err(PolicyError::StsValue {
                        name: "policy_domain",
                        value: val.to_string(),
                        expected: "a domain name",
                    });
                }
                TAG_STS_DOMAIN
            }
            "policy_ttl" => {
                once(&mut pttl)?;
                sts_attr.get_or_insert("policy_ttl");
                let secs = parse_ttl(val).ok_or_else(|| PolicyError::StsValue {
                    name: "policy_ttl",
                    value: val.to_string(),
                    expected: "a time in seconds, or with a unit s, m, h, d or w",
                })?;
                attrs.push(TAG_STS_TTL);
                attrs.push_str(&secs.to_string());
                attrs.push('\n');
                continue;
            }
            "policy_string" => {
                sts_attr.get_or_insert("policy_string");
                if val.is_empty() {
                    return Err(PolicyError::EmptyValue(name_lc));
                }
                TAG_STS_STRING
            }
            "mx_host_pattern" => {
                sts_attr.get_or_insert("mx_host_pattern");
                if !valid_mx_pattern(val) {
                    return Err(PolicyError::StsValue {
                        name: "mx_host_pattern",
                        value: val.to_string(),
                        expected: "a host name or *. and a domain",
                    });
                }
                TAG_STS_PATTERN
            }
            "policy_failure" => {
                once(&mut pfailure)?;
                sts_attr.get_or_insert("policy_failure");
                if sts_failure(val).is_none() {
                    return Err(PolicyError::StsValue {
                        name: "policy_failure",
                        value: val.to_string(),
                        expected: "sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid or validation-failure",
                    });
                }
                TAG_STS_FAILURE
            }
            _ => return Err(PolicyError::UnknownAttribute(name.to_string())),
        };
        attrs.push(tag);
        attrs.push_str(val);
        attrs.push('\n');
    }
    // Postfix: "It is an error to specify these attributes for a non-STS
    // policy" (no policy_type, or policy_type=no-policy-found).
    if let Some(n) = sts_attr.filter(|_| meta.sts != 1) {
        return Err(PolicyError::NotSts(n.to_string()));
    }
    Ok(meta)
}

/// A loaded TLS policy table.
#[derive(Debug, Clone)]
pub struct PolicyTable {
    table: CompactTable<PolicyMeta>,
    /// The file it was loaded from, for messages about broken entries.
    file: std::rc::Rc<str>,
}

/// The placeholder meta of a broken entry (never read: lookups that meet
/// one defer; see [`PolicyEntry::is_broken`]).
const BROKEN_META: PolicyMeta = PolicyMeta {
    level: u8::MAX,
    protocols: 0,
    reuse: 0,
    sts: 0,
};

/// Where a `servername=` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerName<'a> {
    /// `servername=hostname`: the name of the server connected to (MX host).
    Hostname,
    /// `servername=nexthop`: the next-hop domain.
    Nexthop,
    /// A fixed DNS name.
    Name(&'a str),
}

/// A policy table entry, borrowed from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyEntry<'a> {
    key: &'a str,
    attrs: &'a str,
    line: u32,
    meta: PolicyMeta,
    broken: bool,
    file: &'a str,
}

impl<'a> PolicyEntry<'a> {
    fn from_hit(h: Hit<'a, PolicyMeta>, file: &'a str) -> PolicyEntry<'a> {
        PolicyEntry {
            key: h.key,
            attrs: h.value,
            line: h.line,
            meta: h.meta,
            broken: h.broken,
            file,
        }
    }

    /// True when the entry's line was malformed and skipped at load time
    /// ([`PolicyTable::load`]): only its key is known, and mail for it must
    /// be deferred ([`super::decide::decide`] does), never sent at the
    /// default level.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The table file the entry came from.
    pub fn file(&self) -> &'a str {
        self.file
    }

    fn tagged(&self, tag: char) -> impl Iterator<Item = &'a str> + 'a {
        self.attrs
            .split_terminator('\n')
            .filter_map(move |l| l.strip_prefix(tag))
    }

    /// The key that matched (folded), e.g. `.example.com`.
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// The line of the table the entry came from.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The security level.
    pub fn level(&self) -> Level {
        Level::from_u8(self.meta.level).unwrap_or(Level::Secure)
    }

    /// The `match=` values as written, in order (each may hold several
    /// patterns: `:`-separated, or `|`-separated fingerprints).
    pub fn match_values(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.tagged(TAG_MATCH)
    }

    /// True when the entry has at least one `match=`.
    pub fn has_match(&self) -> bool {
        self.match_values().next().is_some()
    }

    /// The individual match patterns or fingerprints, split as Postfix does
    /// (`:` at verify/secure, `|` at fingerprint), empty parts skipped.
    pub fn match_list(&self) -> MatchList<'a> {
        let sep: fn(char) -> bool = if self.level() == Level::Fingerprint {
            |c| c == '|'
        } else {
            |c| c == ':'
        };
        MatchList {
            lines: Some(self.attrs.split_terminator('\n')),
            cur: None,
            sep,
        }
    }

    /// `protocols=`, parsed; `None` when absent.
    pub fn protocols(&self) -> Option<TlsVersions> {
        self.protocols_text()
            .map(|_| TlsVersions::from_bits(self.meta.protocols))
    }

    /// `protocols=` as written.
    pub fn protocols_text(&self) -> Option<&'a str> {
        self.tagged(TAG_PROTOCOLS).next()
    }

    /// `ciphers=` (a Postfix cipher grade).
    pub fn ciphers(&self) -> Option<&'a str> {
        self.tagged(TAG_CIPHERS).next()
    }

    /// `exclude=` (colon-separated cipher names).
    pub fn exclude(&self) -> Option<&'a str> {
        self.tagged(TAG_EXCLUDE).next()
    }

    /// The `tafile=` values, in order.
    pub fn tafiles(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.tagged(TAG_TAFILE)
    }

    /// `servername=`.
    pub fn servername(&self) -> Option<ServerName<'a>> {
        self.tagged(TAG_SERVERNAME).next().map(|s| match s {
            "hostname" => ServerName::Hostname,
            "nexthop" => ServerName::Nexthop,
            name => ServerName::Name(name),
        })
    }

    /// `connection_reuse=`.
    pub fn connection_reuse(&self) -> Option<bool> {
        match self.meta.reuse {
            2 => Some(true),
            1 => Some(false),
            _ => None,
        }
    }

    /// The MTA-STS attributes, when the entry has `policy_type=`.
    pub fn sts(&self) -> Option<StsDescriptor<'a>> {
        let kind = match self.meta.sts {
            1 => StsPolicyType::Sts,
            2 => StsPolicyType::NoPolicyFound,
            _ => return None,
        };
        Some(StsDescriptor {
            attrs: self.attrs,
            kind,
        })
    }
}

/// A policy entry that owns its text: a policy plug-in's answer (a
/// `socketmap:` lookup), made for one delivery. [`OwnedPolicyEntry::entry`]
/// shows it as the same [`PolicyEntry`] a table lookup gives, so everything
/// downstream reads both alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPolicyEntry {
    key: String,
    table: String,
    attrs: String,
    meta: PolicyMeta,
}

impl OwnedPolicyEntry {
    /// Parses a plug-in answer `value` found under `key` in `table` (the
    /// table's specification, for the log). The same rules as a table line;
    /// a `tafile=` is refused, since its trust store would have to be read
    /// per lookup.
    pub fn parse(key: &str, table: &str, value: &str) -> Result<OwnedPolicyEntry, PolicyError> {
        let mut attrs = String::new();
        let meta = parse_policy(value, &mut attrs)?;
        let entry = OwnedPolicyEntry {
            key: key.to_ascii_lowercase(),
            table: table.to_string(),
            attrs,
            meta,
        };
        if entry.entry().tafiles().next().is_some() {
            return Err(PolicyError::Unsupported {
                name: "tafile".into(),
                level: entry.entry().level(),
                hint: "tern loads trust anchors with the tables, not per plug-in answer; use tafile= in a file table",
            });
        }
        Ok(entry)
    }

    /// The entry, as a table lookup would give it (line 0).
    pub fn entry(&self) -> PolicyEntry<'_> {
        PolicyEntry {
            key: &self.key,
            attrs: &self.attrs,
            line: 0,
            meta: self.meta,
            broken: false,
            file: &self.table,
        }
    }

    /// The table that answered (`socketmap:inet:127.0.0.1:8461:postfix`).
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// A split on a separator predicate.
type SepSplit<'a> = std::str::Split<'a, fn(char) -> bool>;

/// The match patterns, strategies or fingerprints of a policy: from the
/// table entry's `match=` attributes or from a main.cf setting. Iterating
/// allocates nothing.
#[derive(Debug, Clone)]
pub struct MatchList<'a> {
    lines: Option<std::str::SplitTerminator<'a, char>>,
    cur: Option<SepSplit<'a>>,
    sep: fn(char) -> bool,
}

impl<'a> MatchList<'a> {
    /// Splits a main.cf value: `smtp_tls_verify_cert_match` and
    /// `smtp_tls_secure_cert_match` take commas, whitespace or colons;
    /// `smtp_tls_fingerprint_cert_match` (`fingerprint` true) commas or
    /// whitespace only, as colons sit inside fingerprints.
    pub fn main_cf(value: &'a str, fingerprint: bool) -> MatchList<'a> {
        let sep: fn(char) -> bool = if fingerprint {
            |c| matches!(c, ' ' | '\t' | '\r' | '\n' | ',')
        } else {
            |c| matches!(c, ' ' | '\t' | '\r' | '\n' | ',' | ':')
        };
        MatchList {
            lines: None,
            cur: Some(value.split(sep)),
            sep,
        }
    }
}

impl<'a> Iterator for MatchList<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        loop {
            if let Some(cur) = &mut self.cur {
                match cur.next() {
                    Some("") => continue,
                    Some(s) => return Some(s),
                    None => self.cur = None,
                }
            }
            let line = self.lines.as_mut()?.next()?;
            if let Some(v) = line.strip_prefix(TAG_MATCH) {
                self.cur = Some(v.split(self.sep));
            }
        }
    }
}

/// The candidate keys for a destination, most specific first: the
/// destination itself, then (for a plain domain) `.parent` forms up to the
/// top-level domain, exactly as Postfix's tls_policy_lookup() walks them.
pub fn candidate_keys(destination: &str) -> impl Iterator<Item = &str> {
    let walk = is_domain_name(destination);
    let mut next = Some(destination);
    let mut first = true;
    std::iter::from_fn(move || {
        let cur = next?;
        next = if walk {
            let from = if first { 0 } else { 1 };
            cur.get(from..)
                .and_then(|rest| rest.find('.'))
                .map(|i| &cur[from + i..])
                .filter(|s| s.len() > 1)
        } else {
            None
        };
        first = false;
        Some(cur)
    })
}

impl PolicyTable {
    /// Makes every lookup find the table's one entry, whatever the key:
    /// a `static:VALUE` table (built from [`crate::config::table::static_text`]).
    pub fn matching_any_key(self) -> PolicyTable {
        PolicyTable {
            table: self.table.matching_any_key(),
            file: self.file,
        }
    }

    /// Parses table text. On success returns the table and the report (its
    /// warnings: duplicates, orphan continuation lines); on any error the
    /// report lists every error found, as `file:line: message`.
    pub fn parse(
        text: &[u8],
        file: &str,
    ) -> Result<(PolicyTable, Report<PolicyError>), Report<PolicyError>> {
        let mut report = Report::new(file);
        let mut b = TableBuilder::new(true);
        let mut attrs = String::new();
        parse_records(text, true, &mut report, |r| {
            let meta = parse_policy(r.value, &mut attrs)?;
            b.push(r.key, &attrs, r.line, meta)
                .map_err(|_| PolicyError::Syntax(SyntaxError::TooLarge { bytes: text.len() }))
        });
        let table = b.finish(&mut report);
        if report.is_ok() {
            Ok((
                PolicyTable {
                    table,
                    file: std::rc::Rc::from(file),
                },
                report,
            ))
        } else {
            Err(report)
        }
    }

    /// Loads table text as Postfix does: a malformed line (a syntax error,
    /// an unknown level, a bad attribute) is skipped with a `file:line`
    /// warning in the report, and when its key can be read the key is kept
    /// as a broken entry, so that mail for it defers instead of falling
    /// back to `smtp_tls_security_level`. The report's errors are only those
    /// that stop the whole table (too large). This is what delivery and
    /// `check-config` use; [`PolicyTable::parse`] is the strict form.
    pub fn load(text: &[u8], file: &str) -> (PolicyTable, Report<PolicyError>) {
        let mut report = Report::new(file);
        // Broken keys are collected apart: the record callback holds the
        // builder while a line is parsed.
        let mut broken: Vec<(String, u32)> = Vec::new();
        let mut b = TableBuilder::new(true);
        let mut attrs = String::new();
        crate::config::table::parse_records_lenient(
            text,
            true,
            &mut report,
            |r| {
                let meta = parse_policy(r.value, &mut attrs)?;
                b.push(r.key, &attrs, r.line, meta)
                    .map_err(|_| PolicyError::Syntax(SyntaxError::TooLarge { bytes: text.len() }))
            },
            |key, line| broken.push((key.to_string(), line)),
        );
        for (key, line) in &broken {
            if b.push_broken(key, *line, BROKEN_META).is_err() {
                report.error(
                    *line,
                    PolicyError::Syntax(SyntaxError::TooLarge { bytes: text.len() }),
                );
            }
        }
        // The builder's stable sort keeps the first line of a key, so a
        // broken line before a good one for the same key still wins (and
        // the other way round), as file order says. Broken entries were
        // pushed last, so restore file order by line first.
        let table = b.finish_by_line(&mut report);
        (
            PolicyTable {
                table,
                file: std::rc::Rc::from(file),
            },
            report,
        )
    }

    /// An empty table.
    pub fn empty() -> PolicyTable {
        PolicyTable {
            table: CompactTable::empty(),
            file: std::rc::Rc::from(""),
        }
    }

    /// The file the table was loaded from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Number of entries that are not broken.
    pub fn usable_len(&self) -> usize {
        self.iter().filter(|e| !e.is_broken()).count()
    }

    /// Looks one key up, exactly (case-insensitive).
    pub fn get(&self, key: &str) -> Option<PolicyEntry<'_>> {
        self.table
            .get(key)
            .map(|h| PolicyEntry::from_hit(h, &self.file))
    }

    /// Looks up the next-hop destination as Postfix does for
    /// `smtp_tls_policy_maps`: as-is (`example.com`, `[mx.example.com]:587`),
    /// then, for a plain domain, `.parent.domain` entries upward. A bare
    /// `domain` key matches only that domain.
    pub fn lookup(&self, destination: &str) -> Option<PolicyEntry<'_>> {
        candidate_keys(destination).find_map(|k| self.get(k))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// All entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = PolicyEntry<'_>> + '_ {
        self.table
            .iter()
            .map(|h| PolicyEntry::from_hit(h, &self.file))
    }

    /// Checks the fingerprints of every `fingerprint` entry against the
    /// digest in force (`smtp_tls_fingerprint_digest`, `len` bytes): one
    /// `(line, message)` per fingerprint of another length.
    pub fn fingerprint_length_errors(&self, digest: &str, len: usize) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for e in self.iter().filter(|e| e.level() == Level::Fingerprint) {
            for fp in e.match_list() {
                if let Ok(f) = parse_fingerprint(fp) {
                    if f.as_bytes().len() != len {
                        out.push((
                            e.line(),
                            format!(
                                "fingerprint \"{fp}\" has {} bytes, but smtp_tls_fingerprint_digest = {digest} gives {len}",
                                f.as_bytes().len()
                            ),
                        ));
                    }
                }
            }
        }
        out
    }

    /// Memory held: arena plus index, in bytes.
    pub fn bytes(&self) -> usize {
        self.table.bytes()
    }

    /// Bytes of the arena alone.
    pub fn arena_bytes(&self) -> usize {
        self.table.arena_bytes()
    }

    /// Size of one index slot.
    pub fn slot_size() -> usize {
        CompactTable::<PolicyMeta>::slot_size()
    }
}

/// Looks a destination up in several tables (`smtp_tls_policy_maps` lists
/// them): for each candidate key, every table in order, as Postfix's
/// maps_find() does before the next (parent) key is tried.
pub fn lookup_maps<'a>(tables: &'a [PolicyTable], destination: &str) -> Option<PolicyEntry<'a>> {
    candidate_keys(destination).find_map(|k| tables.iter().find_map(|t| t.get(k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> PolicyTable {
        match PolicyTable::parse(text.as_bytes(), "tls_policy") {
            Ok((t, _)) => t,
            Err(r) => panic!("{:?}", r.errors),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match PolicyTable::parse(text.as_bytes(), "/etc/tern/tls_policy") {
            Ok(_) => vec![],
            Err(r) => r.errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    const POSTCONF_EXAMPLE: &str = "\
example.edu                 none
example.mil                 may
example.gov                 encrypt protocols=TLSv1.2
example.com                 verify ciphers=high
example.net                 secure
.example.net                secure match=.example.net:example.net
[mail.example.org]:587      secure match=nexthop
# Postfix 2.5 and later
[thumb.example.org]          fingerprint
    match=b6:b4:72:34:e2:59:cd:fb:c2:ca:63:0d:4d:cc:2c:7d:84:de:e6:2f:00:11:22:33:44:55:66:77:88:99:aa:bb
    match=51:e9:af:2e:1e:40:1f:00:64:0a:30:35:2d:09:16:31:5a:eb:82:76:00:11:22:33:44:55:66:77:88:99:aa:bb
";

    #[test]
    fn postconf_example_loads() {
        let t = load(POSTCONF_EXAMPLE);
        assert_eq!(t.len(), 8);
        assert_eq!(t.lookup("example.edu").unwrap().level(), Level::None);
        let gov = t.lookup("example.gov").unwrap();
        assert_eq!(gov.level(), Level::Encrypt);
        assert_eq!(gov.protocols_text(), Some("TLSv1.2"));
        assert!(gov.protocols().unwrap().tls12() && !gov.protocols().unwrap().tls13());
        assert_eq!(t.lookup("example.com").unwrap().ciphers(), Some("high"));
        let sub = t.lookup("mx.Example.NET").unwrap();
        assert_eq!(sub.key(), ".example.net");
        assert_eq!(sub.line(), 6);
        assert_eq!(
            sub.match_list().collect::<Vec<_>>(),
            vec![".example.net", "example.net"]
        );
        assert_eq!(t.lookup("example.net").unwrap().line(), 5);
        let thumb = t.lookup("[thumb.example.org]").unwrap();
        assert_eq!(thumb.level(), Level::Fingerprint);
        assert_eq!(thumb.line(), 9);
        assert_eq!(thumb.match_list().count(), 2);
        assert!(t.lookup("[mail.example.org]:587").unwrap().has_match());
    }

    #[test]
    fn lookup_order() {
        let t =
            load("example.com encrypt\n.example.com verify\n.com may\n[mx.example.com] secure\n");
        // A bare domain matches only itself.
        assert_eq!(t.lookup("example.com").unwrap().level(), Level::Encrypt);
        assert_eq!(t.lookup("a.example.com").unwrap().level(), Level::Verify);
        assert_eq!(t.lookup("a.b.example.com").unwrap().key(), ".example.com");
        assert_eq!(t.lookup("other.com").unwrap().key(), ".com");
        assert!(t.lookup("example.org").is_none());
        // Next-hop forms are looked up verbatim only: no parent walk.
        assert_eq!(t.lookup("[mx.example.com]").unwrap().level(), Level::Secure);
        assert!(t.lookup("[mx.example.com]:587").is_none());
        assert!(t.lookup("[a.example.com]").is_none());
        assert!(t.lookup("a.example.com:587").is_none());
        assert!(t.lookup("").is_none());
        assert!(t.lookup(".").is_none());
    }

    #[test]
    fn candidate_key_walk() {
        let v: Vec<&str> = candidate_keys("a.b.example.com").collect();
        assert_eq!(
            v,
            vec!["a.b.example.com", ".b.example.com", ".example.com", ".com"]
        );
        assert_eq!(
            candidate_keys("localhost").collect::<Vec<_>>(),
            vec!["localhost"]
        );
        assert_eq!(
            candidate_keys("[a.b]:25").collect::<Vec<_>>(),
            vec!["[a.b]:25"]
        );
        assert_eq!(
            candidate_keys("192.0.2.1").collect::<Vec<_>>(),
            vec!["192.0.2.1"]
        );
    }

    #[test]
    fn several_maps_key_before_map() {
        let a = load(".example.com may\n");
        let b = load("x.example.com secure\n");
        let tables = [a, b];
        // The exact key in the second map beats the parent key in the first.
        assert_eq!(
            lookup_maps(&tables, "x.example.com").unwrap().level(),
            Level::Secure
        );
        assert_eq!(
            lookup_maps(&tables, "y.example.com").unwrap().level(),
            Level::May
        );
    }

    #[test]
    fn attributes() {
        let t = load(
            "a verify match=hostname:.a,match=nexthop tafile=/x tafile=/y servername=hostname connection_reuse=yes exclude=aNULL:MD5\n\
             b may connection_reuse=NO servername=mx.b.example protocols=>=TLSv1.3\n\
             c dane-only servername=nexthop\n",
        );
        let a = t.get("a").unwrap();
        assert_eq!(
            a.match_list().collect::<Vec<_>>(),
            vec!["hostname", ".a", "nexthop"]
        );
        assert_eq!(a.tafiles().collect::<Vec<_>>(), vec!["/x", "/y"]);
        assert_eq!(a.servername(), Some(ServerName::Hostname));
        assert_eq!(a.connection_reuse(), Some(true));
        assert_eq!(a.exclude(), Some("aNULL:MD5"));
        assert_eq!(a.protocols(), None);
        let b = t.get("b").unwrap();
        assert_eq!(b.connection_reuse(), Some(false));
        assert_eq!(b.servername(), Some(ServerName::Name("mx.b.example")));
        assert!(!b.protocols().unwrap().tls12() && b.protocols().unwrap().tls13());
        let c = t.get("c").unwrap();
        assert_eq!(c.servername(), Some(ServerName::Nexthop));
        assert_eq!(c.connection_reuse(), None);
        assert_eq!(c.ciphers(), None);
    }

    #[test]
    fn errors_carry_lines() {
        let e = errors(
            "ok.example may\n\
             a.example sometimes\n\
             b.example none match=x\n\
             c.example may match=x\n\
             d.example verify colour=blue\n\
             e.example encrypt protocols=TLSv1.2 protocols=TLSv1.3\n\
             f.example verify match=\n\
             g.example encrypt ciphers=strong\n\
             h.example fingerprint match=zz:11\n\
             i.example may servername=bad_name!\n\
             j.example may connection_reuse=maybe\n\
             k.example verify matchhostname\n\
             l.example encrypt tafile=/x\n\
             m.example may protocols=TLSv1.4\n\
             n.example dane match=nexthop\n\
             o.example ,\n\
             p.example may =x\n\
             q.example encrypt ciphers=null\n\
             r.example encrypt exclude=aNULL:arsa\n\
             s.example encrypt exclude=TLS_AES_128_GCM_SHA256\n\
             t.example dane tafile=/x\n",
        );
        let f = "/etc/tern/tls_policy";
        assert_eq!(
            e,
            vec![
                format!("{f}:2: invalid security level \"sometimes\""),
                format!("{f}:3: attribute \"match=x\" with TLS disabled (level \"none\" takes no attributes)"),
                format!("{f}:4: attribute \"match\" invalid at security level \"may\""),
                format!("{f}:5: invalid attribute name: \"colour\""),
                format!("{f}:6: attribute \"protocols\" is specified multiple times"),
                format!("{f}:7: attribute \"match\" has empty value"),
                format!("{f}:8: invalid cipher grade \"strong\": expected high, medium, low, export or null"),
                format!("{f}:9: invalid fingerprint \"zz:11\": expected hexadecimal digits, optionally colon-separated"),
                format!("{f}:10: invalid servername \"bad_name!\": expected hostname, nexthop or a DNS name in A-label form"),
                format!("{f}:11: attribute \"connection_reuse\" has bad value: \"maybe\""),
                format!("{f}:12: malformed attribute/value pair \"matchhostname\": missing '=' after attribute name"),
                format!("{f}:13: attribute \"tafile\" invalid at security level \"encrypt\""),
                format!("{f}:14: unknown TLS protocol \"TLSv1.4\": expected SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, !name, >=name or <=name"),
                format!("{f}:15: attribute \"match\" invalid at security level \"dane\""),
                format!("{f}:16: invalid empty policy"),
                format!("{f}:17: malformed attribute/value pair \"=x\": missing attribute name"),
                format!("{f}:18: cipher grade \"null\" is not supported: tern (rustls) has no ciphers without encryption"),
                format!("{f}:19: exclude: unknown or unsupported cipher name \"arsa\" (OpenSSL names and aliases, case-sensitive, e.g. aRSA, CHACHA20, ECDHE-RSA-AES128-GCM-SHA256)"),
                format!("{f}:20: exclude: \"TLS_AES_128_GCM_SHA256\" is a TLS 1.3 cipher suite; exclusions apply only to TLS 1.2 suites (as in Postfix)"),
                format!("{f}:21: attribute \"tafile\" is not supported at security level \"dane\": tern authenticates DANE servers by their TLSA records only; use tafile= at verify or secure"),
            ]
        );
    }

    #[test]
    fn syntax_errors_and_warnings() {
        let e = errors("a.example\nb.example may\n");
        assert_eq!(
            e,
            vec!["/etc/tern/tls_policy:1: expected format: key whitespace value"]
        );
        let (t, rep) = PolicyTable::parse(b"  orphan\na may\nA encrypt\n", "p").unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.get("a").unwrap().level(), Level::May);
        let w: Vec<String> = rep.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            vec![
                "p:1: logical line must not start with whitespace -- ignoring this line",
                "p:3: duplicate entry: \"a\" -- ignoring this line",
            ]
        );
    }

    #[test]
    fn seed_guide_tables_load() {
        // The tls_policy of the seed guide's Google template, byte for byte.
        let text = "    gmail.com   secure match=mx.google.com\n    veloplus.ch secure match=mx.google.com\n\n\n    # gmail-smtp-in.l.google.com.\n    [64.233.166.26]     secure match=mx.google.com\n";
        // Indented as in the guide: every line is an orphan continuation.
        let (t, rep) = PolicyTable::parse(text.as_bytes(), "g").unwrap();
        assert!(t.is_empty());
        assert_eq!(rep.warnings.len(), 3);
        let dedented: String = text
            .lines()
            .map(|l| l.trim_start().to_string() + "\n")
            .collect();
        let t = load(&dedented);
        assert_eq!(
            t.lookup("[64.233.166.26]")
                .unwrap()
                .match_list()
                .collect::<Vec<_>>(),
            vec!["mx.google.com"]
        );
        assert_eq!(t.lookup("gmail.com").unwrap().level(), Level::Secure);
    }

    /// The seed guide's Hostpoint example (tls-policy-guide.rst.txt), as
    /// the file /etc/postfix/tls_policy holds it (the guide indents it as
    /// a literal block): two keys without a value.
    const HOSTPOINT: &str = "\
# mx1.mail.hostpoint.ch.
[217.26.49.138]     secure match=*.mail.hostpoint.ch

# mx2.mail.hostpoint.ch.
[217.26.49.139]     secure match=*.mail.hostpoint.ch

# mx.hostpoint.ch.
[217.26.48.124]

# antargus.adm.hostpoint.ch.
[54.229.223.246]
";

    #[test]
    fn hostpoint_example_loads_with_broken_entries() {
        // Strictly, it is refused.
        assert_eq!(errors(HOSTPOINT).len(), 2);
        let (t, rep) = PolicyTable::load(HOSTPOINT.as_bytes(), "/etc/postfix/tls_policy");
        assert!(rep.is_ok(), "{:?}", rep.errors);
        let w: Vec<String> = rep.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            vec![
                "/etc/postfix/tls_policy:8: expected format: key whitespace value -- ignoring this line; mail for \"[217.26.48.124]\" is deferred until it is fixed",
                "/etc/postfix/tls_policy:11: expected format: key whitespace value -- ignoring this line; mail for \"[54.229.223.246]\" is deferred until it is fixed",
            ]
        );
        assert_eq!((t.len(), t.usable_len()), (4, 2));
        let ok = t.lookup("[217.26.49.138]").unwrap();
        assert!(!ok.is_broken());
        assert_eq!(ok.level(), Level::Secure);
        assert_eq!(
            ok.match_list().collect::<Vec<_>>(),
            vec!["*.mail.hostpoint.ch"]
        );
        let bad = t.lookup("[217.26.48.124]").unwrap();
        assert!(bad.is_broken());
        assert_eq!((bad.line(), bad.file()), (8, "/etc/postfix/tls_policy"));
        assert!(t.lookup("[217.26.48.125]").is_none());
    }

    #[test]
    fn lenient_load_turns_every_entry_error_into_a_broken_entry() {
        let text = "ok.example may\n\
                    a.example sometimes\n\
                    b.example none match=x\n\
                    .c.example verify colour=blue\n\
                    A.example secure\n\
                    \"open secure\n";
        let (t, rep) = PolicyTable::load(text.as_bytes(), "p");
        assert!(rep.is_ok());
        let w: Vec<String> = rep.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(w.len(), 5, "{w:#?}");
        assert_eq!(
            w[0],
            "p:2: invalid security level \"sometimes\" -- ignoring this line; mail for \"a.example\" is deferred until it is fixed"
        );
        assert!(w[3].starts_with("p:6: missing closing"), "{w:#?}");
        // The broken line 2 is the first for a.example: line 5 is the duplicate.
        assert_eq!(
            w[4],
            "p:5: duplicate entry: \"a.example\" -- ignoring this line"
        );
        assert!(t.get("a.example").unwrap().is_broken());
        assert!(t.get("b.example").unwrap().is_broken());
        // A broken parent entry covers the subdomains, as a good one would.
        assert!(t.lookup("mx.c.example").unwrap().is_broken());
        assert!(!t.lookup("ok.example").unwrap().is_broken());
        assert_eq!(t.usable_len(), 1);
        // Nothing but broken entries: no usable entry, the loader's error.
        let (t, _) = PolicyTable::load(b"x\ny\n", "p");
        assert_eq!((t.len(), t.usable_len()), (2, 0));
    }

    #[test]
    fn fingerprint_lengths_against_the_digest() {
        let fp32 = "ab".repeat(32);
        let fp64 = "cd:".repeat(63) + "cd";
        let t = load(&format!(
            "a fingerprint match={fp32}\nb fingerprint match={fp64}|{fp32}\nc verify match=nexthop\n"
        ));
        assert!(t.fingerprint_length_errors("sha256", 32).len() == 1);
        assert_eq!(t.fingerprint_length_errors("sha256", 32)[0].0, 2);
        let e = t.fingerprint_length_errors("sha512", 64);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].0, e[1].0), (1, 2));
        assert_eq!(
            e[0].1,
            format!("fingerprint \"{fp32}\" has 32 bytes, but smtp_tls_fingerprint_digest = sha512 gives 64")
        );
    }

    const RESOLVER_ANSWER: &str = "secure match=mx.example.test servername=hostname policy_type=sts policy_domain=example.test mx_host_pattern=mx.example.test { policy_string = version: STSv1 } { policy_string = mode: enforce }";

    #[test]
    fn plugin_answer_with_sts_attributes() {
        let o = OwnedPolicyEntry::parse(
            "Example.test",
            "socketmap:inet:127.0.0.1:8461:postfix",
            RESOLVER_ANSWER,
        )
        .unwrap();
        let e = o.entry();
        assert_eq!(e.level(), Level::Secure);
        assert_eq!(e.key(), "example.test");
        assert_eq!(e.line(), 0);
        assert_eq!(o.table(), "socketmap:inet:127.0.0.1:8461:postfix");
        assert_eq!(e.match_list().collect::<Vec<_>>(), vec!["mx.example.test"]);
        assert_eq!(e.servername(), Some(ServerName::Hostname));
        let sts = e.sts().unwrap();
        assert_eq!(sts.policy_type(), StsPolicyType::Sts);
        assert_eq!(sts.domain(), Some("example.test"));
        assert_eq!(sts.ttl(), None);
        assert_eq!(sts.failure(), None);
        assert_eq!(
            sts.policy_strings().collect::<Vec<_>>(),
            vec!["version: STSv1", "mode: enforce"]
        );
        assert_eq!(
            sts.mx_host_patterns().collect::<Vec<_>>(),
            vec!["mx.example.test"]
        );
    }

    #[test]
    fn seed_example_with_line_breaks_and_braces() {
        // RFC 8461 §3.2's policy as the seed shows it, over several lines,
        // with the whitespace the { } form ignores.
        let answer = "secure match=mail.example.com:.example.net:backupmx.example.com\n\
            policy_type=sts policy_domain=example.com policy_ttl=1d\r\n\
            {policy_string=version: STSv1}\n{ policy_string =  mode: enforce }\n\
            {   policy_string   =   mx: mail.example.com   }\n\
            { policy_string = mx: *.example.net } { policy_string = mx: backupmx.example.com }\n\
            { policy_string = max_age: 604800 },\n\
            mx_host_pattern=mail.example.com mx_host_pattern=*.example.net\tmx_host_pattern=backupmx.example.com\n\
            policy_failure=sts-webpki-invalid\n";
        let o = OwnedPolicyEntry::parse("example.com", "p", answer).unwrap();
        let e = o.entry();
        assert_eq!(e.match_list().count(), 3);
        let sts = e.sts().unwrap();
        assert_eq!(sts.ttl(), Some(86400));
        assert_eq!(
            sts.failure(),
            Some(crate::tls::FailureKind::StsWebpkiInvalid)
        );
        assert_eq!(sts_failure("certificate-expired"), None);
        assert_eq!(
            sts.policy_strings().collect::<Vec<_>>(),
            vec![
                "version: STSv1",
                "mode: enforce",
                "mx: mail.example.com",
                "mx: *.example.net",
                "mx: backupmx.example.com",
                "max_age: 604800"
            ]
        );
        assert_eq!(
            sts.mx_host_patterns().collect::<Vec<_>>(),
            vec!["mail.example.com", "*.example.net", "backupmx.example.com"]
        );
        // Any attribute may use the brace form.
        let o = OwnedPolicyEntry::parse("k", "p", "verify { match = hostname:nexthop }").unwrap();
        assert_eq!(
            o.entry().match_list().collect::<Vec<_>>(),
            vec!["hostname", "nexthop"]
        );
        assert_eq!(o.entry().sts(), None);
        // no-policy-found alone is fine.
        let o = OwnedPolicyEntry::parse("k", "p", "may policy_type=no-policy-found").unwrap();
        assert_eq!(
            o.entry().sts().unwrap().policy_type(),
            StsPolicyType::NoPolicyFound
        );
        for f in [
            "sts-policy-fetch-error",
            "sts-policy-invalid",
            "sts-webpki-invalid",
            "validation-failure",
        ] {
            let o = OwnedPolicyEntry::parse(
                "k",
                "p",
                &format!("secure policy_type=sts policy_failure={f}"),
            )
            .unwrap();
            assert_eq!(o.entry().sts().unwrap().failure().unwrap().as_str(), f);
        }
        for (t, secs) in [
            ("30", 30),
            ("30s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("1w", 604_800),
        ] {
            let o = OwnedPolicyEntry::parse(
                "k",
                "p",
                &format!("secure policy_type=sts policy_ttl={t}"),
            )
            .unwrap();
            assert_eq!(o.entry().sts().unwrap().ttl(), Some(secs));
        }
    }

    #[test]
    fn sts_attribute_errors() {
        let err = |v: &str| {
            OwnedPolicyEntry::parse("k", "p", v)
                .unwrap_err()
                .to_string()
        };
        // Not an STS policy: policy_type absent, or no-policy-found.
        assert_eq!(
            err("secure match=mx.example.test policy_domain=example.test"),
            "attribute \"policy_domain\" is for MTA-STS policies only: it needs policy_type=sts"
        );
        assert_eq!(
            err("secure { policy_string = version: STSv1 }"),
            "attribute \"policy_string\" is for MTA-STS policies only: it needs policy_type=sts"
        );
        assert_eq!(
            err("may policy_type=no-policy-found mx_host_pattern=mx.example.test"),
            "attribute \"mx_host_pattern\" is for MTA-STS policies only: it needs policy_type=sts"
        );
        assert_eq!(
            err("secure policy_ttl=60 policy_type=no-policy-found"),
            "attribute \"policy_ttl\" is for MTA-STS policies only: it needs policy_type=sts"
        );
        assert_eq!(
            err("secure policy_failure=validation-failure"),
            "attribute \"policy_failure\" is for MTA-STS policies only: it needs policy_type=sts"
        );
        assert_eq!(
            err("secure policy_type=tlsa"),
            "attribute \"policy_type\" has bad value: \"tlsa\" (expected sts or no-policy-found)"
        );
        assert_eq!(
            err("secure policy_type=sts policy_type=sts"),
            "attribute \"policy_type\" is specified multiple times"
        );
        assert_eq!(
            err("secure policy_type=sts policy_failure=oops"),
            "attribute \"policy_failure\" has bad value: \"oops\" (expected sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid or validation-failure)"
        );
        assert!(err("secure policy_type=sts policy_ttl=soon")
            .starts_with("attribute \"policy_ttl\" has bad value"));
        assert!(err("secure policy_type=sts policy_ttl=99999999999")
            .starts_with("attribute \"policy_ttl\" has bad value"));
        assert!(err("secure policy_type=sts policy_domain=[x]")
            .starts_with("attribute \"policy_domain\" has bad value"));
        assert!(err("secure policy_type=sts mx_host_pattern=*.")
            .starts_with("attribute \"mx_host_pattern\" has bad value"));
        assert_eq!(
            err("secure policy_type=sts policy_string="),
            "attribute \"policy_string\" has empty value"
        );
        // Brace errors.
        assert_eq!(
            err("secure policy_type=sts { policy_string = version: STSv1"),
            "malformed attribute \"{ policy_string = version: STSv1\": expected { name = value }"
        );
        assert!(err("secure { policy_string }").starts_with("malformed attribute"));
        assert!(err("secure { = x }").starts_with("malformed attribute"));
        assert!(err("secure policy_type=sts { policy_string = a\nb }")
            .starts_with("malformed attribute"));
        assert!(err("secure {match=a}x").starts_with("malformed attribute"));
        // The level rules still hold, and tafile= is not taken from a plug-in.
        assert!(err("none policy_type=sts")
            .starts_with("attribute \"policy_type=sts\" with TLS disabled"));
        assert!(err("sometimes").starts_with("invalid security level"));
        assert!(err("secure tafile=/etc/ssl/x.pem")
            .starts_with("attribute \"tafile\" is not supported"));
        assert_eq!(err(""), "invalid empty policy");
    }

    /// Found by the policy_answer fuzz target: a `{` inside a bare
    /// `name=value` word kept the word going over line breaks, and the
    /// value's later lines read back as other attributes (here an empty
    /// `mx_host_pattern` and a forged `policy_string`).
    #[test]
    fn bare_value_with_a_brace_cannot_span_lines() {
        for answer in [
            "secure policy_type=sts match=mx{\nP\n}",
            "secure policy_type=sts match=mx{\nSversion: STSv1\n}",
            "secure policy_type=sts match=mx{\r\nPmx.example.test }",
        ] {
            let e = OwnedPolicyEntry::parse("k", "p", answer).unwrap_err();
            assert!(
                e.to_string().contains("line break inside the value"),
                "{answer:?}: {e}"
            );
        }
        // A brace without a line break stays a value, as before.
        let o = OwnedPolicyEntry::parse("k", "p", "secure match=mx{a}").unwrap();
        assert_eq!(o.entry().match_list().collect::<Vec<_>>(), vec!["mx{a}"]);
    }

    #[test]
    fn sts_attributes_in_a_table_file_keep_slots_small() {
        let t = load("example.test secure match=mx.example.test policy_type=sts policy_domain=example.test\n    { policy_string = version: STSv1 }\n    mx_host_pattern=mx.example.test\nplain.test encrypt\n");
        let e = t.get("example.test").unwrap();
        assert_eq!(e.sts().unwrap().domain(), Some("example.test"));
        assert_eq!(
            e.sts().unwrap().policy_strings().collect::<Vec<_>>(),
            vec!["version: STSv1"]
        );
        assert_eq!(t.get("plain.test").unwrap().sts(), None);
        assert_eq!(PolicyTable::slot_size(), 24);
        assert_eq!(
            errors("a.test encrypt policy_domain=a.test\n"),
            vec!["/etc/tern/tls_policy:1: attribute \"policy_domain\" is for MTA-STS policies only: it needs policy_type=sts"]
        );
    }

    #[test]
    fn bytes_accounting() {
        let t = load("a.example may\nb.example secure match=nexthop\n");
        assert_eq!(PolicyTable::slot_size(), 24);
        assert_eq!(t.bytes(), t.arena_bytes() + 2 * 24);
        assert_eq!(t.arena_bytes(), "a.exampleb.examplemnexthop\n".len());
        assert!(PolicyTable::empty().lookup("a.example").is_none());
    }
}
