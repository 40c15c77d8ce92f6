//! SMTP client credentials (`smtp_sasl_password_maps`), Postfix format:
//!
//! ```text
//! [mail.isp.example]:587   username:password
//! mail.isp.example         username:password
//! ```
//!
//! Lookup order, as Postfix's smtp_sasl_passwd_lookup(): the sender address
//! (only with sender-dependent authentication: `user@domain`, then
//! `@domain`), then the remote server's host name, then the next-hop
//! destination verbatim (`[host]:port`, `[host]`, `host:port` or the domain).
//! The value splits at the first colon: the password may contain colons.

use std::fmt;

use std::rc::Rc;

use crate::config::table::{parse_records, CompactTable, Hit, Report, SyntaxError, TableBuilder};

/// A problem in one password map entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// The table text itself.
    Syntax(SyntaxError),
    /// No `:` between user name and password.
    MissingColon,
    /// Empty user name.
    EmptyUsername,
}

impl From<SyntaxError> for SaslError {
    fn from(e: SyntaxError) -> SaslError {
        SaslError::Syntax(e)
    }
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::Syntax(e) => e.fmt(f),
            SaslError::MissingColon => f.write_str("expected username:password"),
            SaslError::EmptyUsername => f.write_str("empty username in username:password"),
        }
    }
}

impl std::error::Error for SaslError {}

/// Credentials found for a delivery.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SaslCredentials<'a> {
    /// The key that matched.
    pub key: &'a str,
    /// Its line in the file.
    pub line: u32,
    /// User name.
    pub username: &'a str,
    /// Password.
    pub password: &'a str,
    /// The table file the entry came from.
    pub file: &'a str,
    /// The entry's line was malformed and skipped at load time
    /// ([`SaslPasswordMap::load`]): user name and password are empty and
    /// must not be used. Delivery defers instead: sending the mail without
    /// AUTH, or with credentials meant for another key, because of a
    /// skipped line would be wrong.
    pub broken: bool,
}

impl fmt::Debug for SaslCredentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password (logs, panics).
        f.debug_struct("SaslCredentials")
            .field("key", &self.key)
            .field("line", &self.line)
            .field("username", &self.username)
            .field("file", &self.file)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// What a delivery looks credentials up by.
#[derive(Debug, Clone, Copy)]
pub struct SaslQuery<'a> {
    /// The envelope sender, when `smtp_sender_dependent_authentication` is on.
    pub sender: Option<&'a str>,
    /// The remote server's host name (MX host, or the bracketed host).
    pub hostname: &'a str,
    /// The next-hop destination verbatim.
    pub nexthop: &'a str,
}

/// A loaded password map.
#[derive(Clone)]
pub struct SaslPasswordMap {
    table: CompactTable<()>,
    /// The file it was loaded from, for messages about broken entries.
    file: Rc<str>,
}

impl fmt::Debug for SaslPasswordMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslPasswordMap")
            .field("entries", &self.table.len())
            .finish()
    }
}

fn creds<'a>(h: Hit<'a, ()>, file: &'a str) -> SaslCredentials<'a> {
    let (username, password) = h.value.split_once(':').unwrap_or((h.value, ""));
    SaslCredentials {
        key: h.key,
        line: h.line,
        username,
        password,
        file,
        broken: h.broken,
    }
}

/// The value check of a password map entry: `username:password`, with a
/// user name.
fn check_value(value: &str) -> Result<(), SaslError> {
    match value.split_once(':') {
        None => Err(SaslError::MissingColon),
        Some(("", _)) => Err(SaslError::EmptyUsername),
        Some(_) => Ok(()),
    }
}

impl SaslPasswordMap {
    /// Makes every lookup find the table's one entry, whatever the key:
    /// a `static:VALUE` table (built from [`crate::config::table::static_text`]).
    pub fn matching_any_key(self) -> SaslPasswordMap {
        SaslPasswordMap {
            table: self.table.matching_any_key(),
            file: self.file,
        }
    }

    /// Parses map text; errors list every bad line as `file:line: message`.
    pub fn parse(
        text: &[u8],
        file: &str,
    ) -> Result<(SaslPasswordMap, Report<SaslError>), Report<SaslError>> {
        let mut report = Report::new(file);
        let mut b = TableBuilder::new(true);
        parse_records(text, true, &mut report, |r| {
            check_value(r.value)?;
            b.push(r.key, r.value, r.line, ())
                .map_err(|_| SaslError::Syntax(SyntaxError::TooLarge { bytes: text.len() }))
        });
        let table = b.finish(&mut report);
        if report.is_ok() {
            Ok((
                SaslPasswordMap {
                    table,
                    file: Rc::from(file),
                },
                report,
            ))
        } else {
            Err(report)
        }
    }

    /// Loads map text as postmap does: a malformed line (a syntax error, no
    /// `username:password`) is skipped with a `file:line` warning in the
    /// report, and when its key can be read the key is kept as a broken
    /// entry ([`SaslCredentials::broken`]), so that delivery to it defers
    /// instead of going out without AUTH or with another key's
    /// credentials. The report's errors are only those that stop the whole
    /// table (too large). Delivery and `check-config` use this;
    /// [`SaslPasswordMap::parse`] is the strict form.
    pub fn load(text: &[u8], file: &str) -> (SaslPasswordMap, Report<SaslError>) {
        let (table, report) = CompactTable::load_checked(text, file, check_value);
        (
            SaslPasswordMap {
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
    pub fn get(&self, key: &str) -> Option<SaslCredentials<'_>> {
        self.table.get(key).map(|h| creds(h, &self.file))
    }

    /// Looks up in Postfix's order: sender (`user@domain`, `@domain`),
    /// server host name, next-hop destination.
    pub fn lookup(&self, q: &SaslQuery<'_>) -> Option<SaslCredentials<'_>> {
        lookup_maps(std::slice::from_ref(self), q)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// [`SaslPasswordMap::lookup`] over several maps: each key in all maps
/// before the next key.
pub fn lookup_maps<'a>(
    maps: &'a [SaslPasswordMap],
    q: &SaslQuery<'_>,
) -> Option<SaslCredentials<'a>> {
    let find = |k: &str| maps.iter().find_map(|m| m.get(k));
    if let Some(sender) = q.sender.filter(|s| !s.is_empty()) {
        if let Some(c) = find(sender) {
            return Some(c);
        }
        if let Some(at) = sender.rfind('@') {
            if let Some(c) = find(&sender[at..]) {
                return Some(c);
            }
        }
    }
    find(q.hostname).or_else(|| find(q.nexthop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order() {
        let (m, _) = SaslPasswordMap::parse(
            b"[mail.isp.example]:587 nexthop:pw1\n\
              mail.isp.example host:pw:with:colons\n\
              isp.example domain:pw3\n\
              me@home.example sender:pw4\n\
              @home.example senderdomain:pw5\n",
            "sasl_passwd",
        )
        .unwrap();
        let q = SaslQuery {
            sender: None,
            hostname: "mail.isp.example",
            nexthop: "[mail.isp.example]:587",
        };
        // Host name before the next hop, as Postfix does.
        let c = m.lookup(&q).unwrap();
        assert_eq!(
            (c.username, c.password, c.line),
            ("host", "pw:with:colons", 2)
        );
        let q2 = SaslQuery {
            hostname: "other.example",
            ..q
        };
        assert_eq!(m.lookup(&q2).unwrap().username, "nexthop");
        let q3 = SaslQuery {
            hostname: "mx1.isp.example",
            nexthop: "isp.example",
            sender: None,
        };
        assert_eq!(m.lookup(&q3).unwrap().username, "domain");
        let q4 = SaslQuery {
            sender: Some("Me@Home.example"),
            ..q
        };
        assert_eq!(m.lookup(&q4).unwrap().username, "sender");
        let q5 = SaslQuery {
            sender: Some("you@home.example"),
            ..q
        };
        assert_eq!(m.lookup(&q5).unwrap().username, "senderdomain");
        let q6 = SaslQuery {
            sender: Some("you@else.example"),
            hostname: "x",
            nexthop: "y",
        };
        assert!(m.lookup(&q6).is_none());
        let dbg = format!("{:?}", m.lookup(&q).unwrap());
        assert!(!dbg.contains("pw"));
    }

    #[test]
    fn errors_with_lines() {
        let r = SaslPasswordMap::parse(b"a u:p\nb user password\nc :pw\n", "/etc/tern/sasl_passwd")
            .unwrap_err();
        let e: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            vec![
                "/etc/tern/sasl_passwd:2: expected username:password",
                "/etc/tern/sasl_passwd:3: empty username in username:password",
            ]
        );
    }

    #[test]
    fn lenient_load_keeps_broken_keys() {
        let (m, rep) = SaslPasswordMap::load(
            b"[relay.example]:587 user:pw\n[bad.example]:587 userpw\nmx.bad.example :pw\n",
            "/etc/tern/sasl_passwd",
        );
        assert!(rep.is_ok(), "{:?}", rep.errors);
        assert_eq!((m.len(), m.usable_len()), (3, 1));
        let shown: Vec<String> = rep.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "/etc/tern/sasl_passwd:2: expected username:password -- ignoring this line; mail for \"[bad.example]:587\" is deferred until it is fixed",
                "/etc/tern/sasl_passwd:3: empty username in username:password -- ignoring this line; mail for \"mx.bad.example\" is deferred until it is fixed",
            ]
        );
        let q = SaslQuery {
            sender: None,
            hostname: "relay.example",
            nexthop: "[relay.example]:587",
        };
        let c = m.lookup(&q).unwrap();
        assert!(!c.broken && c.username == "user");
        // The next hop's entry is broken: the lookup says so (and no
        // password leaks from another key).
        let q = SaslQuery {
            hostname: "bad.example",
            nexthop: "[bad.example]:587",
            ..q
        };
        let c = m.lookup(&q).unwrap();
        assert!(c.broken && c.username.is_empty() && c.password.is_empty());
        assert_eq!((c.file, c.line), ("/etc/tern/sasl_passwd", 2));
        // A broken host entry is found before the next hop, in Postfix's order.
        let q = SaslQuery {
            hostname: "mx.bad.example",
            nexthop: "[relay.example]:587",
            ..q
        };
        assert!(m.lookup(&q).unwrap().broken);
    }
}
