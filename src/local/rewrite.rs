//! Address rewriting at queue entry, sans-I/O: `append_at_myorigin`,
//! `sender_canonical_maps` / `recipient_canonical_maps` and
//! `masquerade_domains`, applied to the envelope and to the address
//! headers (From, Sender, Reply-To, To, Cc), once, when a message enters
//! the queue (Postfix's cleanup(8) does the same). Masquerading follows
//! Postfix's default `masquerade_classes` (`envelope_sender,
//! header_sender, header_recipient`): every address header, and the
//! envelope sender, but not envelope recipients.
//!
//! Canonical table lookups follow canonical(5): `user@domain` first, then
//! `user` when the domain is local (`mydestination` or `myorigin`), then
//! `@domain`. A result that starts with `@` keeps the local part; a result
//! without `@` is qualified with `myorigin`.

use crate::config::table::CompactTable;

/// Which side of the envelope an address is on (selects the table and
/// whether masquerading applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Envelope sender, From:, Sender:, Reply-To:.
    Sender,
    /// Envelope recipients, To:, Cc:.
    Recipient,
}

/// The rewriting settings and tables (immutable after load).
#[derive(Debug, Clone, Default)]
pub struct Rewriter {
    /// `myorigin`.
    pub myorigin: String,
    /// `mydestination` (lower case), for `user` lookups.
    pub local_domains: Vec<String>,
    /// `append_at_myorigin`.
    pub append_at_myorigin: bool,
    /// `sender_canonical_maps`, in order.
    pub sender_canonical: Vec<CompactTable<()>>,
    /// `recipient_canonical_maps`, in order.
    pub recipient_canonical: Vec<CompactTable<()>>,
    /// `masquerade_domains`; `!domain` entries are exceptions.
    pub masquerade_domains: Vec<String>,
}

impl Rewriter {
    fn is_local(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.');
        d.eq_ignore_ascii_case(&self.myorigin)
            || self.local_domains.iter().any(|l| l.eq_ignore_ascii_case(d))
    }

    fn canonical(&self, tables: &[CompactTable<()>], addr: &str) -> Option<String> {
        let (local, domain) = addr.rsplit_once('@')?;
        for t in tables {
            let found = t
                .get(addr)
                .or_else(|| self.is_local(domain).then(|| t.get(local)).flatten())
                .or_else(|| t.get(&format!("@{domain}")));
            if let Some(hit) = found {
                let v = hit.value.trim();
                return Some(if let Some(d) = v.strip_prefix('@') {
                    format!("{local}@{d}")
                } else if v.contains('@') {
                    v.to_string()
                } else {
                    format!("{v}@{}", self.myorigin)
                });
            }
        }
        None
    }

    fn masquerade(&self, addr: &str) -> Option<String> {
        let (local, domain) = addr.rsplit_once('@')?;
        let dl = domain.to_ascii_lowercase();
        for m in &self.masquerade_domains {
            let (neg, m) = match m.strip_prefix('!') {
                Some(x) => (true, x),
                None => (false, m.as_str()),
            };
            let m = m.to_ascii_lowercase();
            if dl == m {
                // Already the masquerade domain (or an excepted one).
                return None;
            }
            if dl.ends_with(&format!(".{m}")) {
                return if neg {
                    None
                } else {
                    Some(format!("{local}@{m}"))
                };
            }
        }
        None
    }

    /// True if `recipient_canonical_maps` rewrites `addr` (qualified):
    /// the SMTP server accepts such a local recipient, which is judged
    /// after rewriting.
    pub fn is_recipient_canonical(&self, addr: &str) -> bool {
        self.canonical(&self.recipient_canonical, addr).is_some()
    }

    /// Rewrites one envelope address; the empty (null) sender stays
    /// empty. Masquerading applies to the sender only (Postfix's default
    /// `masquerade_classes` has `envelope_sender` but not
    /// `envelope_recipient`).
    pub fn rewrite(&self, addr: &str, side: Side) -> String {
        self.rewrite_as(addr, side, side == Side::Sender)
    }

    /// Rewrites one header address: like [`Rewriter::rewrite`], but
    /// masquerading applies to both sides (`header_sender` and
    /// `header_recipient` in Postfix's default `masquerade_classes`).
    pub fn rewrite_header(&self, addr: &str, side: Side) -> String {
        self.rewrite_as(addr, side, true)
    }

    fn rewrite_as(&self, addr: &str, side: Side, masquerade: bool) -> String {
        if addr.is_empty() {
            return String::new();
        }
        let mut a = if !addr.contains('@') && self.append_at_myorigin {
            format!("{addr}@{}", self.myorigin)
        } else {
            addr.to_string()
        };
        let tables = match side {
            Side::Sender => &self.sender_canonical,
            Side::Recipient => &self.recipient_canonical,
        };
        if let Some(c) = self.canonical(tables, &a) {
            a = c;
        }
        if masquerade {
            if let Some(m) = self.masquerade(&a) {
                a = m;
            }
        }
        a
    }

    /// The side of an address header, or `None` if `name` is not one
    /// rewritten here.
    pub fn header_side(name: &str) -> Option<Side> {
        const SENDER: &[&str] = &["from", "sender", "reply-to", "resent-from", "resent-sender"];
        const RCPT: &[&str] = &["to", "cc", "resent-to", "resent-cc"];
        let n = name.to_ascii_lowercase();
        if SENDER.contains(&n.as_str()) {
            Some(Side::Sender)
        } else if RCPT.contains(&n.as_str()) {
            Some(Side::Recipient)
        } else {
            None
        }
    }

    /// Rewrites every address in a header value; `None` if nothing changed.
    pub fn header_value(&self, value: &str, side: Side) -> Option<String> {
        let out = rewrite_address_list(value, |a| self.rewrite_header(a, side));
        (out != value).then_some(out)
    }
}

/// Rewrites the addresses of an RFC 5322 address list with `f`, keeping
/// display names, comments, quoting and separators as they are. An
/// address is the text in `<...>`, or else the first bare word of an
/// element (`user@host (Name)`). Group names (`team: a, b;`) are kept.
pub fn rewrite_address_list(value: &str, mut f: impl FnMut(&str) -> String) -> String {
    let b = value.as_bytes();
    let mut out = String::with_capacity(value.len() + 16);
    // Byte ranges of the addresses to replace, found in one scan.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let (mut depth, mut quote, mut esc) = (0usize, false, false);
    let mut elem_start = 0;
    let mut angle: Option<usize> = None;
    let mut had_angle = false;
    let finish_elem = |start: usize, end: usize, had_angle: bool, spans: &mut Vec<_>| {
        if had_angle {
            return;
        }
        // The first bare word outside comments and quotes.
        let (mut d, mut q, mut e) = (0usize, false, false);
        let mut word: Option<usize> = None;
        let mut i = start;
        while i < end {
            let c = b[i];
            if e {
                e = false;
            } else if q {
                match c {
                    b'\\' => e = true,
                    b'"' => q = false,
                    _ => {}
                }
            } else if d > 0 {
                match c {
                    b'\\' => e = true,
                    b'(' => d += 1,
                    b')' => d -= 1,
                    _ => {}
                }
            } else {
                match c {
                    b'(' | b' ' | b'\t' | b'\r' | b'\n' if word.is_some() => break,
                    b'(' => d = 1,
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b'"' => {
                        q = true;
                        word.get_or_insert(i);
                    }
                    _ => {
                        word.get_or_insert(i);
                    }
                }
            }
            i += 1;
        }
        if let Some(w) = word {
            if i > w {
                spans.push((w, i));
            }
        }
    };
    for (i, &c) in b.iter().enumerate() {
        if esc {
            esc = false;
            continue;
        }
        if quote {
            match c {
                b'\\' => esc = true,
                b'"' => quote = false,
                _ => {}
            }
            continue;
        }
        if depth > 0 {
            match c {
                b'\\' => esc = true,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => quote = true,
            b'(' => depth = 1,
            b'<' if angle.is_none() => angle = Some(i + 1),
            b'>' => {
                if let Some(s) = angle.take() {
                    spans.push((s, i));
                    had_angle = true;
                }
            }
            b':' if angle.is_none() && !had_angle => elem_start = i + 1,
            b',' | b';' if angle.is_none() => {
                finish_elem(elem_start, i, had_angle, &mut spans);
                elem_start = i + 1;
                had_angle = false;
            }
            _ => {}
        }
    }
    if quote || depth > 0 || angle.is_some() {
        // Unbalanced: leave the header alone rather than guess.
        return value.to_string();
    }
    finish_elem(elem_start, b.len(), had_angle, &mut spans);
    spans.sort_unstable();
    let mut pos = 0;
    for (s, e) in spans {
        let Some(addr) = value.get(s..e) else {
            continue;
        };
        if s < pos {
            continue;
        }
        out.push_str(value.get(pos..s).unwrap_or(""));
        let trimmed = addr.trim();
        if trimmed.is_empty() {
            out.push_str(addr);
        } else {
            // Whitespace around the address (`< a@b >`) stays as it was.
            let lead = addr.len() - addr.trim_start().len();
            out.push_str(&addr[..lead]);
            out.push_str(&f(trimmed));
            out.push_str(&addr[lead + trimmed.len()..]);
        }
        pos = e;
    }
    out.push_str(value.get(pos..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> CompactTable<()> {
        let (t, r) = CompactTable::parse(text.as_bytes(), "t");
        assert!(r.is_ok());
        t
    }

    fn rw() -> Rewriter {
        Rewriter {
            myorigin: "box.example.org".into(),
            local_domains: vec!["box.example.org".into(), "localhost".into()],
            append_at_myorigin: true,
            sender_canonical: vec![table(
                "root admin@example.org\n@old.example @new.example\nfull@x.test @y.test\n",
            )],
            recipient_canonical: vec![table("bob@box.example.org robert\n")],
            masquerade_domains: vec!["!keep.example.org".into(), "example.org".into()],
        }
    }

    #[test]
    fn envelope_rewriting() {
        let r = rw();
        assert_eq!(r.rewrite("", Side::Sender), "");
        assert_eq!(r.rewrite("root", Side::Sender), "admin@example.org");
        assert_eq!(r.rewrite("root", Side::Recipient), "root@box.example.org");
        assert_eq!(r.rewrite("cron", Side::Sender), "cron@example.org");
        assert_eq!(r.rewrite("a@old.example", Side::Sender), "a@new.example");
        assert_eq!(r.rewrite("full@x.test", Side::Sender), "full@y.test");
        assert_eq!(r.rewrite("bob", Side::Recipient), "robert@box.example.org");
        assert!(r.is_recipient_canonical("Bob@box.example.org"));
        assert!(!r.is_recipient_canonical("root@box.example.org"));
        assert!(!r.is_recipient_canonical("bob"));
        assert_eq!(
            r.rewrite("x@keep.example.org", Side::Sender),
            "x@keep.example.org"
        );
        assert_eq!(
            r.rewrite("x@a.b.example.org", Side::Sender),
            "x@example.org"
        );
        assert_eq!(
            r.rewrite("x@notexample.org", Side::Sender),
            "x@notexample.org"
        );
        let plain = Rewriter {
            append_at_myorigin: false,
            ..Rewriter::default()
        };
        assert_eq!(plain.rewrite("root", Side::Recipient), "root");
    }

    #[test]
    fn header_lists() {
        let r = rw();
        let up = |s: &str| rewrite_address_list(s, |a| a.to_uppercase());
        assert_eq!(up("a@b"), "A@B");
        assert_eq!(
            up("\"Doe, J\" <j@x>, plain (Plain, Name), grp: m@n, <o@p>;"),
            "\"Doe, J\" <J@X>, PLAIN (Plain, Name), grp: M@N, <O@P>;"
        );
        assert_eq!(up(" root"), " ROOT");
        assert_eq!(up("< a@b >, <\r:>"), "< A@B >, <\r:>");
        assert_eq!(up("<a@b"), "<a@b");
        assert_eq!(
            r.header_value(" root, Bob <bob>", Side::Recipient).unwrap(),
            " root@example.org, Bob <robert@example.org>"
        );
        let plain = Rewriter {
            masquerade_domains: Vec::new(),
            ..rw()
        };
        assert_eq!(
            plain
                .header_value(" root, Bob <bob>", Side::Recipient)
                .unwrap(),
            " root@box.example.org, Bob <robert@box.example.org>"
        );
        assert_eq!(r.header_value(" x@y.test", Side::Recipient), None);
        // Masquerading: header recipients too, envelope recipients not.
        assert_eq!(
            r.header_value(" x@sub.example.org, <y@keep.example.org>", Side::Recipient)
                .unwrap(),
            " x@example.org, <y@keep.example.org>"
        );
        assert_eq!(
            r.header_value("A <a@nas.example.org>", Side::Sender)
                .unwrap(),
            "A <a@example.org>"
        );
        assert_eq!(
            r.rewrite("x@sub.example.org", Side::Recipient),
            "x@sub.example.org"
        );
        assert_eq!(Rewriter::header_side("FROM"), Some(Side::Sender));
        assert_eq!(Rewriter::header_side("Cc"), Some(Side::Recipient));
        assert_eq!(Rewriter::header_side("Subject"), None);
    }
}
