//! The transport map (`transport_maps`), Postfix transport(5) format:
//!
//! ```text
//! example.com      smtp:[mail.example.com]:587
//! .example.com     smtp:[mail.example.com]:587
//! example.net      smtp:relay.example.net        (MX lookup of relay.example.net)
//! my.domain        :                             (no change)
//! other.example    :[gateway.example.com]        (next hop only)
//! bad.example      error:mail for bad.example is not deliverable
//! *                relay:
//! ```
//!
//! The value is `transport:nexthop`, split at the first colon. An empty
//! transport keeps the default transport; an empty next hop means the
//! recipient domain. For `smtp` and `relay` the next hop may list several
//! destinations separated by commas or whitespace (Postfix 3.5). Lookup
//! order is transport(5)'s: `user+ext@domain`, `user@domain`, `domain`,
//! then `.parent` domains upward, then `*`.

use std::fmt;

use super::nexthop::{NextHop, NextHopError};
use super::table::is_domain_name;
use crate::config::table::{parse_records, CompactTable, Hit, Report, SyntaxError, TableBuilder};

use std::rc::Rc;

/// At most this many next hops in one entry.
pub const MAX_NEXTHOPS: usize = 8;

/// The transports tern can run.
pub const TRANSPORTS: [&str; 7] = [
    "smtp", "relay", "smtps", "error", "retry", "local", "discard",
];

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// `smtp:` — MX (or bracketed) delivery over SMTP.
    Smtp,
    /// `relay:` — same client, the relay transport's queue.
    Relay,
    /// `smtps:` — the same client with implicit TLS on every connection
    /// (RFC 8314; what Postfix admins define in master.cf as a transport
    /// with `-o smtp_tls_wrappermode=yes`). Port 465 when none is given.
    Smtps,
    /// `error:` — bounce with the text.
    Error,
    /// `retry:` — defer with the text.
    Retry,
    /// `local:` — local delivery.
    Local,
    /// `discard:` — accept and drop.
    Discard,
    /// Empty transport (`:` or `:nexthop`): keep the default transport.
    Unchanged,
}

/// A problem in one transport map entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The table text itself.
    Syntax(SyntaxError),
    /// A transport name tern does not have.
    UnknownTransport(String),
    /// A bad next hop.
    NextHop {
        /// The next hop as written.
        hop: String,
        /// Why.
        error: NextHopError,
    },
    /// More than [`MAX_NEXTHOPS`] next hops.
    TooManyNextHops,
}

impl From<SyntaxError> for TransportError {
    fn from(e: SyntaxError) -> TransportError {
        TransportError::Syntax(e)
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Syntax(e) => e.fmt(f),
            TransportError::UnknownTransport(t) => write!(
                f,
                "unknown transport \"{t}\": expected smtp, relay, smtps, error, retry, local or discard"
            ),
            TransportError::NextHop { hop, error } => write!(f, "next hop \"{hop}\": {error}"),
            TransportError::TooManyNextHops => {
                write!(f, "more than {MAX_NEXTHOPS} next-hop destinations")
            }
        }
    }
}

impl std::error::Error for TransportError {}

fn split_value(value: &str) -> (&str, &str) {
    match value.split_once(':') {
        Some((t, n)) => (t, n.trim()),
        None => (value, ""),
    }
}

fn kind_of(transport: &str) -> Option<TransportKind> {
    Some(match transport {
        "" => TransportKind::Unchanged,
        "smtp" => TransportKind::Smtp,
        "relay" => TransportKind::Relay,
        "smtps" => TransportKind::Smtps,
        "error" => TransportKind::Error,
        "retry" => TransportKind::Retry,
        "local" => TransportKind::Local,
        "discard" => TransportKind::Discard,
        _ => return None,
    })
}

fn hop_words(nexthop: &str) -> impl Iterator<Item = &str> {
    nexthop
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
}

fn check_value(value: &str) -> Result<(), TransportError> {
    let (t, n) = split_value(value);
    let kind = kind_of(t).ok_or_else(|| TransportError::UnknownTransport(t.to_string()))?;
    if matches!(
        kind,
        TransportKind::Smtp
            | TransportKind::Relay
            | TransportKind::Smtps
            | TransportKind::Unchanged
    ) {
        let mut count = 0;
        for w in hop_words(n) {
            count += 1;
            if count > MAX_NEXTHOPS {
                return Err(TransportError::TooManyNextHops);
            }
            NextHop::parse(w).map_err(|error| TransportError::NextHop {
                hop: w.to_string(),
                error,
            })?;
        }
    }
    Ok(())
}

/// A transport map entry, borrowed from the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportEntry<'a> {
    /// The key that matched (`example.com`, `.example.com`, `*`, an address).
    pub key: &'a str,
    /// Its line in the file.
    pub line: u32,
    /// The table file it came from.
    pub file: &'a str,
    transport: &'a str,
    nexthop: &'a str,
    broken: bool,
}

impl<'a> TransportEntry<'a> {
    fn from_hit(h: Hit<'a, ()>, file: &'a str) -> TransportEntry<'a> {
        let (transport, nexthop) = split_value(h.value);
        TransportEntry {
            key: h.key,
            line: h.line,
            file,
            transport,
            nexthop,
            broken: h.broken,
        }
    }

    /// True when the entry's line was malformed and skipped at load time
    /// ([`TransportMap::load`]): only its key is known. Mail that meets it
    /// must be deferred (the router does), never routed by a less specific
    /// entry or the default route: that would send it somewhere the
    /// administrator did not mean.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// What the entry does.
    pub fn kind(&self) -> TransportKind {
        // Validated at load.
        kind_of(self.transport).unwrap_or(TransportKind::Unchanged)
    }

    /// The transport name; `None` means keep the default transport.
    pub fn transport(&self) -> Option<&'a str> {
        Some(self.transport).filter(|t| !t.is_empty())
    }

    /// The next-hop field as written; `None` means the recipient domain
    /// (or, with [`TransportKind::Unchanged`], no change at all).
    pub fn nexthop_text(&self) -> Option<&'a str> {
        Some(self.nexthop).filter(|n| !n.is_empty())
    }

    /// The next hops of an SMTP-type entry, in order (empty when none was given).
    pub fn nexthops(&self) -> impl Iterator<Item = NextHop<'a>> + 'a {
        let smtp = matches!(
            self.kind(),
            TransportKind::Smtp
                | TransportKind::Relay
                | TransportKind::Smtps
                | TransportKind::Unchanged
        );
        hop_words(if smtp { self.nexthop } else { "" }).filter_map(|w| NextHop::parse(w).ok())
    }

    /// The text of `error:` / `retry:` entries.
    pub fn error_text(&self) -> Option<&'a str> {
        match self.kind() {
            TransportKind::Error | TransportKind::Retry => Some(self.nexthop),
            _ => None,
        }
    }
}

/// A loaded transport map.
#[derive(Debug, Clone)]
pub struct TransportMap {
    table: CompactTable<()>,
    /// The file it was loaded from, for messages about broken entries.
    file: Rc<str>,
}

fn domain_keys(domain: &str) -> impl Iterator<Item = &str> {
    super::table::candidate_keys(domain)
}

impl TransportMap {
    /// Makes every lookup find the table's one entry, whatever the key:
    /// a `static:VALUE` table (built from [`crate::config::table::static_text`]).
    pub fn matching_any_key(self) -> TransportMap {
        TransportMap {
            table: self.table.matching_any_key(),
            file: self.file,
        }
    }

    /// Parses map text; errors list every bad line as `file:line: message`.
    pub fn parse(
        text: &[u8],
        file: &str,
    ) -> Result<(TransportMap, Report<TransportError>), Report<TransportError>> {
        let mut report = Report::new(file);
        let mut b = TableBuilder::new(true);
        parse_records(text, true, &mut report, |r| {
            check_value(r.value)?;
            b.push(r.key, r.value, r.line, ())
                .map_err(|_| TransportError::Syntax(SyntaxError::TooLarge { bytes: text.len() }))
        });
        let table = b.finish(&mut report);
        if report.is_ok() {
            Ok((
                TransportMap {
                    table,
                    file: Rc::from(file),
                },
                report,
            ))
        } else {
            Err(report)
        }
    }

    /// Loads map text as postmap does: a malformed line (a syntax error, an
    /// unknown transport, a bad next hop) is skipped with a `file:line`
    /// warning in the report, and when its key can be read the key is kept
    /// as a broken entry, so that mail for it defers instead of taking a
    /// less specific entry or the default route. The report's errors are
    /// only those that stop the whole table (too large). Delivery and
    /// `check-config` use this; [`TransportMap::parse`] is the strict form.
    pub fn load(text: &[u8], file: &str) -> (TransportMap, Report<TransportError>) {
        let (table, report) = CompactTable::load_checked(text, file, check_value);
        (
            TransportMap {
                table,
                file: Rc::from(file),
            },
            report,
        )
    }

    /// The file the map was loaded from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Number of entries that are not broken.
    pub fn usable_len(&self) -> usize {
        self.table.usable_len()
    }

    /// Exact lookup of one key.
    pub fn get(&self, key: &str) -> Option<TransportEntry<'_>> {
        self.table
            .get(key)
            .map(|h| TransportEntry::from_hit(h, &self.file))
    }

    /// Domain lookup: `domain`, then `.parent` domains, then `*`.
    pub fn lookup_domain(&self, domain: &str) -> Option<TransportEntry<'_>> {
        let walk = is_domain_name(domain);
        let mut keys = domain_keys(domain);
        let exact = if walk { None } else { keys.next() };
        exact
            .into_iter()
            .chain(keys)
            .find_map(|k| self.get(k))
            .or_else(|| self.get("*"))
    }

    /// Recipient lookup: `user+ext@domain`, `user@domain` (when `delimiter`
    /// splits an extension off), then [`TransportMap::lookup_domain`].
    pub fn lookup_address(
        &self,
        address: &str,
        delimiter: Option<char>,
    ) -> Option<TransportEntry<'_>> {
        let Some((local, domain)) = address.rsplit_once('@') else {
            return self.lookup_domain(address);
        };
        if let Some(e) = self.get(address) {
            return Some(e);
        }
        if let Some(base) = delimiter.and_then(|d| local.split_once(d)).map(|(b, _)| b) {
            let mut key: heapless::String<512> = heapless::String::new();
            if key.push_str(base).is_ok() && key.push('@').is_ok() && key.push_str(domain).is_ok() {
                if let Some(e) = self.get(&key) {
                    return Some(e);
                }
            }
        }
        self.lookup_domain(domain)
    }

    /// Every key, broken ones included (a `static:` map has one entry,
    /// whatever it is asked).
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.table.iter().map(|h| h.key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.table.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> TransportMap {
        match TransportMap::parse(text.as_bytes(), "transport") {
            Ok((t, _)) => t,
            Err(r) => panic!("{:?}", r.errors),
        }
    }

    const SEED: &str = "\
gmail.com       smtp:[64.233.166.26]
gmail.com       smtp:[173.194.221.26]

veloplus.ch     smtp:[66.102.1.27]

example.co.uk   smtp:[tls.example.com]
example.co.jp   smtp:[tls.example.com]
";

    #[test]
    fn seed_guide_map() {
        let (t, rep) = TransportMap::parse(SEED.as_bytes(), "transport").unwrap();
        // The first duplicate wins, as Postfix's texthash does.
        let e = t.lookup_domain("gmail.com").unwrap();
        assert_eq!(e.nexthops().next().unwrap().as_str(), "[64.233.166.26]");
        assert_eq!(rep.warnings[0].line, 2);
        let e = t.lookup_domain("example.co.uk").unwrap();
        let hop = e.nexthops().next().unwrap();
        assert_eq!((hop.host(), hop.uses_mx()), ("tls.example.com", false));
        assert!(t.lookup_domain("sub.example.co.uk").is_none());
    }

    #[test]
    fn forms_and_order() {
        let t = load(
            "example.com smtp:[mail.example.com]:587\n\
             .example.com smtp:relay.example.net\n\
             my.domain :\n\
             gw.example :[gateway.example.com]\n\
             bad.example error:mail for bad.example is not deliverable\n\
             slow.example relay:\n\
             multi.example smtp:bar.example, foo.example:2525\n\
             user@example.org local:\n\
             *       relay:[smarthost.example]:465\n",
        );
        let e = t.lookup_domain("example.com").unwrap();
        assert_eq!(
            (e.kind(), e.transport(), e.line),
            (TransportKind::Smtp, Some("smtp"), 1)
        );
        let h = e.nexthops().next().unwrap();
        assert_eq!(
            (h.host(), h.port(), h.uses_mx()),
            ("mail.example.com", Some(587), false)
        );
        let e = t.lookup_domain("a.b.Example.COM").unwrap();
        assert_eq!(e.key, ".example.com");
        assert!(e.nexthops().next().unwrap().uses_mx());
        let e = t.lookup_domain("my.domain").unwrap();
        assert_eq!(
            (e.kind(), e.transport(), e.nexthop_text()),
            (TransportKind::Unchanged, None, None)
        );
        let e = t.lookup_domain("gw.example").unwrap();
        assert_eq!(
            (e.kind(), e.nexthop_text()),
            (TransportKind::Unchanged, Some("[gateway.example.com]"))
        );
        let e = t.lookup_domain("bad.example").unwrap();
        assert_eq!(
            e.error_text(),
            Some("mail for bad.example is not deliverable")
        );
        assert_eq!(e.nexthops().count(), 0);
        let e = t.lookup_domain("slow.example").unwrap();
        assert_eq!((e.kind(), e.nexthop_text()), (TransportKind::Relay, None));
        let e = t.lookup_domain("multi.example").unwrap();
        let hops: Vec<&str> = e.nexthops().map(|h| h.as_str()).collect();
        assert_eq!(hops, vec!["bar.example", "foo.example:2525"]);
        let e = t.lookup_domain("nowhere.example").unwrap();
        assert_eq!(e.key, "*");
        assert_eq!(e.nexthops().next().unwrap().port(), Some(465));
        // Address lookups.
        assert_eq!(
            t.lookup_address("user@example.org", Some('+'))
                .unwrap()
                .kind(),
            TransportKind::Local
        );
        assert_eq!(
            t.lookup_address("User+tag@Example.org", Some('+'))
                .unwrap()
                .kind(),
            TransportKind::Local
        );
        assert_eq!(
            t.lookup_address("user+tag@example.org", None).unwrap().key,
            "*"
        );
        assert_eq!(
            t.lookup_address("x@a.example.com", Some('+')).unwrap().key,
            ".example.com"
        );
        assert_eq!(t.lookup_address("[192.0.2.1]", None).unwrap().key, "*");
    }

    #[test]
    fn errors_with_lines() {
        let r = TransportMap::parse(
            b"ok smtp:\nuucp.example uucp:example\nx smtp:[a\ny smtp:a:b:c\nz smtp:a b c d e f g h i\nw\n",
            "/etc/tern/transport",
        )
        .unwrap_err();
        let e: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            vec![
                "/etc/tern/transport:2: unknown transport \"uucp\": expected smtp, relay, smtps, error, retry, local or discard",
                "/etc/tern/transport:3: next hop \"[a\": missing ']' in next-hop destination",
                "/etc/tern/transport:4: next hop \"a:b:c\": IPv6 address without brackets: write [2001:db8::1] or [2001:db8::1]:port",
                "/etc/tern/transport:5: more than 8 next-hop destinations",
                "/etc/tern/transport:6: expected format: key whitespace value",
            ]
        );
    }

    #[test]
    fn lenient_load_keeps_broken_keys() {
        let (t, rep) = TransportMap::load(
            b"ok.example smtp:[mail.ok.example]\nbad.example uucp:x\n.sub.example smtp:[a\nlonely.example\n\"open smtp:\n",
            "/etc/tern/transport",
        );
        assert!(rep.is_ok(), "{:?}", rep.errors);
        assert_eq!((t.len(), t.usable_len()), (4, 1));
        let shown: Vec<String> = rep.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "/etc/tern/transport:2: unknown transport \"uucp\": expected smtp, relay, smtps, error, retry, local or discard -- ignoring this line; mail for \"bad.example\" is deferred until it is fixed",
                "/etc/tern/transport:3: next hop \"[a\": missing ']' in next-hop destination -- ignoring this line; mail for \".sub.example\" is deferred until it is fixed",
                "/etc/tern/transport:4: expected format: key whitespace value -- ignoring this line; mail for \"lonely.example\" is deferred until it is fixed",
                "/etc/tern/transport:5: missing closing '\"' in quoted key -- ignoring this line",
            ]
        );
        let e = t.lookup_domain("ok.example").unwrap();
        assert!(!e.is_broken());
        let e = t.lookup_address("User@Bad.Example", Some('+')).unwrap();
        assert!(e.is_broken());
        assert_eq!(
            (e.key, e.file, e.line),
            ("bad.example", "/etc/tern/transport", 2)
        );
        // A broken parent entry covers the subdomains, as a good one would.
        assert!(t.lookup_domain("x.sub.example").unwrap().is_broken());
        assert!(t.lookup_domain("other.example").is_none());
        // The strict form refuses the same text.
        assert!(TransportMap::parse(b"bad.example uucp:x\n", "t").is_err());
    }
}
