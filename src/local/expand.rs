//! Alias expansion, sans-I/O: the tables and `:include:` files come in
//! through [`Lookup`]. Expansion is recursive and bounded; an address met
//! again inside its own expansion chain is a loop and fails the whole
//! recipient (it is bounced), except the Postfix rule that "when an address
//! is found in its own alias expansion, delivery is made to the user
//! instead" (`root: root, admin@example.com`).

use std::fmt;

use super::aliases::Dest;

/// Deepest alias nesting followed.
pub const MAX_DEPTH: usize = 20;
/// Most final destinations one recipient may expand to.
pub const MAX_LEAVES: usize = 1000;

/// Where one expanded destination goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// The mailbox of a local user (`user@localdomain`).
    Mailbox(String),
    /// A non-local address: forwarded as a new message.
    Forward(String),
    /// Append to this file (allowed by `allow_mail_to_files`).
    File(String),
    /// Pipe into this command (allowed by `allow_mail_to_commands`).
    Command(String),
}

/// Why a recipient could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// The address came back in its own expansion chain.
    Loop(String),
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep(String),
    /// More than [`MAX_LEAVES`] destinations.
    TooMany,
    /// A `:include:` file could not be read or parsed (temporary: the
    /// file may be fixed).
    Include(String),
    /// `|command` while `allow_mail_to_commands = no`.
    CommandRefused(String),
    /// `/file` while `allow_mail_to_files = no`.
    FileRefused(String),
    /// The expansion ends in no destination at all because a `:include:`
    /// file (named here) lists none. Temporary, so that the message is
    /// kept while a list is being rewritten, like Postfix's deferral of
    /// an alias whose lookup result has no recipient.
    NoRecipients(String),
}

impl ExpandError {
    /// The enhanced status code for the DSN and the log.
    pub fn dsn(&self) -> &'static str {
        match self {
            ExpandError::Loop(_) | ExpandError::TooDeep(_) => "5.4.6",
            ExpandError::TooMany => "5.3.4",
            ExpandError::Include(_) | ExpandError::NoRecipients(_) => "4.3.0",
            ExpandError::CommandRefused(_) | ExpandError::FileRefused(_) => "5.7.1",
        }
    }

    /// True for errors worth retrying.
    pub fn is_temporary(&self) -> bool {
        matches!(self, ExpandError::Include(_) | ExpandError::NoRecipients(_))
    }
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Loop(a) => write!(f, "mail forwarding loop for {a}"),
            ExpandError::TooDeep(a) => {
                write!(f, "alias expansion of {a} nests deeper than {MAX_DEPTH}")
            }
            ExpandError::TooMany => {
                write!(f, "alias expands to more than {MAX_LEAVES} destinations")
            }
            ExpandError::Include(e) => write!(f, "cannot expand :include: file: {e}"),
            ExpandError::NoRecipients(p) => {
                write!(f, "no recipients in :include: file {p}")
            }
            ExpandError::CommandRefused(c) => write!(
                f,
                "mail to command is restricted (allow_mail_to_commands = no): \"|{c}\""
            ),
            ExpandError::FileRefused(p) => {
                write!(
                    f,
                    "mail to file is restricted (allow_mail_to_files = no): {p}"
                )
            }
        }
    }
}

impl std::error::Error for ExpandError {}

/// What the expansion needs to know; implemented by the driver over the
/// loaded tables and the file system.
pub trait Lookup {
    /// The alias destinations for a local part (already lower case), if any.
    fn alias(&self, local: &str) -> Option<Vec<Dest>>;
    /// True if `domain` is delivered here (`mydestination`).
    fn is_local_domain(&self, domain: &str) -> bool;
    /// The destinations listed in a `:include:` file.
    fn include(&self, path: &str) -> Result<Vec<Dest>, String>;
}

/// Expansion settings.
#[derive(Debug, Clone)]
pub struct Expander<'a> {
    /// Domain for unqualified addresses (`myorigin`).
    pub myorigin: &'a str,
    /// `allow_mail_to_commands`.
    pub allow_commands: bool,
    /// `allow_mail_to_files`.
    pub allow_files: bool,
}

/// Splits `user@domain` at the last `@`; `None` domain when unqualified.
pub fn split(addr: &str) -> (&str, Option<&str>) {
    match addr.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (addr, None),
    }
}

/// The destinations found so far, and the last empty `:include:` file.
#[derive(Default)]
struct Acc {
    leaves: Vec<Leaf>,
    empty_include: Option<String>,
}

impl Expander<'_> {
    fn qualify(&self, a: &str) -> String {
        if a.contains('@') {
            a.to_string()
        } else {
            format!("{a}@{}", self.myorigin)
        }
    }

    /// Expands one recipient into its final destinations (deduplicated,
    /// in order of first appearance).
    pub fn expand(&self, rcpt: &str, tables: &dyn Lookup) -> Result<Vec<Leaf>, ExpandError> {
        let mut out = Acc::default();
        let mut chain = Vec::new();
        self.visit(&self.qualify(rcpt), false, tables, &mut chain, &mut out)?;
        match (out.leaves.is_empty(), out.empty_include) {
            (true, Some(path)) => Err(ExpandError::NoRecipients(path)),
            _ => Ok(out.leaves),
        }
    }

    fn push(out: &mut Acc, leaf: Leaf) -> Result<(), ExpandError> {
        if out.leaves.contains(&leaf) {
            return Ok(());
        }
        if out.leaves.len() >= MAX_LEAVES {
            return Err(ExpandError::TooMany);
        }
        out.leaves.push(leaf);
        Ok(())
    }

    fn visit(
        &self,
        addr: &str,
        literal: bool,
        tables: &dyn Lookup,
        chain: &mut Vec<String>,
        out: &mut Acc,
    ) -> Result<(), ExpandError> {
        let (local, domain) = split(addr);
        let domain = domain.unwrap_or(self.myorigin);
        if !tables.is_local_domain(domain.trim_end_matches('.')) {
            return Self::push(out, Leaf::Forward(addr.to_string()));
        }
        let key = local.to_ascii_lowercase();
        let dests = if literal { None } else { tables.alias(&key) };
        let Some(dests) = dests else {
            return Self::push(out, Leaf::Mailbox(addr.to_string()));
        };
        let me = addr.to_ascii_lowercase();
        if chain.contains(&me) {
            return Err(ExpandError::Loop(addr.to_string()));
        }
        if chain.len() >= MAX_DEPTH {
            return Err(ExpandError::TooDeep(addr.to_string()));
        }
        chain.push(me.clone());
        let r = self.visit_list(&me, addr, &dests, tables, chain, out, 0);
        chain.pop();
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn visit_list(
        &self,
        me: &str,
        addr: &str,
        dests: &[Dest],
        tables: &dyn Lookup,
        chain: &mut Vec<String>,
        out: &mut Acc,
        include_depth: usize,
    ) -> Result<(), ExpandError> {
        for d in dests {
            match d {
                Dest::Address { address, literal } => {
                    let q = self.qualify(address);
                    if q.eq_ignore_ascii_case(me) {
                        // Listed in its own expansion: the user's mailbox.
                        Self::push(out, Leaf::Mailbox(addr.to_string()))?;
                    } else {
                        self.visit(&q, *literal, tables, chain, out)?;
                    }
                }
                Dest::Command(c) if self.allow_commands => {
                    Self::push(out, Leaf::Command(c.clone()))?
                }
                Dest::Command(c) => return Err(ExpandError::CommandRefused(c.clone())),
                Dest::File(p) if self.allow_files => Self::push(out, Leaf::File(p.clone()))?,
                Dest::File(p) => return Err(ExpandError::FileRefused(p.clone())),
                Dest::Include(path) => {
                    if include_depth + chain.len() >= MAX_DEPTH {
                        return Err(ExpandError::TooDeep(addr.to_string()));
                    }
                    let inner = tables.include(path).map_err(ExpandError::Include)?;
                    if inner.is_empty() {
                        out.empty_include = Some(path.clone());
                    }
                    self.visit_list(me, addr, &inner, tables, chain, out, include_depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::aliases::{parse_include, AliasTable};
    use super::*;

    struct T(AliasTable);
    impl Lookup for T {
        fn alias(&self, local: &str) -> Option<Vec<Dest>> {
            self.0.lookup(local)
        }
        fn is_local_domain(&self, d: &str) -> bool {
            d == "box.test" || d == "localhost"
        }
        fn include(&self, path: &str) -> Result<Vec<Dest>, String> {
            match path {
                "/l" => parse_include(b"x@far.test, root\n", path),
                "/self" => parse_include(b":include:/self\n", path),
                "/empty" => parse_include(b"# nobody yet\n", path),
                _ => Err(format!("{path}: No such file or directory")),
            }
        }
    }

    fn t(text: &str) -> T {
        let (a, r) = AliasTable::parse(text.as_bytes(), "a");
        assert!(r.is_ok(), "{:?}", r.errors);
        T(a)
    }

    const E: Expander<'static> = Expander {
        myorigin: "box.test",
        allow_commands: false,
        allow_files: false,
    };

    #[test]
    fn nested_aliases_self_reference_and_dedup() {
        let tb = t("root: admin, owner@remote.test\nadmin: \\admin, Owner@Remote.test, root2\nroot2: admin2@localhost\npostmaster: root\nme: me, x@y.test\n");
        assert_eq!(
            E.expand("root", &tb).unwrap(),
            vec![
                Leaf::Mailbox("admin@box.test".into()),
                Leaf::Forward("Owner@Remote.test".into()),
                Leaf::Mailbox("admin2@localhost".into()),
                Leaf::Forward("owner@remote.test".into()),
            ]
        );
        assert_eq!(
            E.expand("me@box.test", &tb).unwrap(),
            vec![
                Leaf::Mailbox("me@box.test".into()),
                Leaf::Forward("x@y.test".into())
            ]
        );
        assert_eq!(
            E.expand("nobody@box.test", &tb).unwrap(),
            vec![Leaf::Mailbox("nobody@box.test".into())]
        );
        assert_eq!(
            E.expand("root@far.test", &tb).unwrap(),
            vec![Leaf::Forward("root@far.test".into())]
        );
    }

    #[test]
    fn loops_are_errors() {
        let tb = t("a: b\nb: c@localhost\nc: a@box.test\n");
        assert_eq!(
            E.expand("a", &tb),
            Err(ExpandError::Loop("a@box.test".into()))
        );
        assert_eq!(E.expand("a", &tb).unwrap_err().dsn(), "5.4.6");
        let tb = t("inc: :include:/self\n");
        assert!(matches!(E.expand("inc", &tb), Err(ExpandError::TooDeep(_))));
    }

    #[test]
    fn includes_commands_and_files() {
        let tb = t(
            "l: :include:/l\nroot: r@far.test\nc: |/bin/true\nf: /tmp/x\nm: :include:/missing\n",
        );
        assert_eq!(
            E.expand("l", &tb).unwrap(),
            vec![
                Leaf::Forward("x@far.test".into()),
                Leaf::Forward("r@far.test".into())
            ]
        );
        assert_eq!(
            E.expand("c", &tb),
            Err(ExpandError::CommandRefused("/bin/true".into()))
        );
        assert_eq!(
            E.expand("f", &tb),
            Err(ExpandError::FileRefused("/tmp/x".into()))
        );
        let e = E.expand("m", &tb).unwrap_err();
        assert!(e.is_temporary());
        // An empty list is not "delivered to nowhere": kept and retried.
        let tb2 = t("e: :include:/empty\nboth: :include:/empty, r@far.test\n");
        let e = E.expand("e", &tb2).unwrap_err();
        assert_eq!(e, ExpandError::NoRecipients("/empty".into()));
        assert!(e.is_temporary() && e.dsn() == "4.3.0");
        assert_eq!(e.to_string(), "no recipients in :include: file /empty");
        // Other members still get it.
        assert_eq!(
            E.expand("both", &tb2).unwrap(),
            vec![Leaf::Forward("r@far.test".into())]
        );
        let open = Expander {
            allow_commands: true,
            allow_files: true,
            ..E
        };
        assert_eq!(
            open.expand("c", &tb).unwrap(),
            vec![Leaf::Command("/bin/true".into())]
        );
        assert_eq!(
            open.expand("f", &tb).unwrap(),
            vec![Leaf::File("/tmp/x".into())]
        );
    }
}
