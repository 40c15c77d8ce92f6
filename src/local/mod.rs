//! Mail for the box itself: address rewriting at queue entry
//! ([`rewrite`]), aliases(5) ([`aliases`], [`expand`]), and local delivery
//! to Maildir ([`maildir`], [`deliver`]) for recipients in `mydestination`,
//! as Postfix's cleanup(8) and local(8) do it. See docs/local.md.
//!
//! The parsers and the expansion are sans-I/O; [`deliver`] and
//! [`maildir`] are the drivers (files, the spool, the password database);
//! [`helper`] writes system users' Maildirs as the user once the daemon
//! has dropped root, speaking the [`wire`] codec. Header rewriting at
//! queue entry is [`crate::cleanup`]'s; it uses [`rewrite`].

pub mod aliases;
pub mod deliver;
pub mod expand;
pub mod helper;
pub mod maildir;
pub mod rewrite;
pub mod tables;
pub mod users;
pub mod wire;

pub use aliases::{AliasError, AliasTable, Dest};
pub use deliver::{LocalDelivery, LocalResult};
pub use expand::{ExpandError, Expander, Leaf};
pub use rewrite::{Rewriter, Side};
pub use tables::newaliases;

use crate::config::Config;

impl Rewriter {
    /// The rewriting settings and tables from the configuration; table
    /// errors come back as `file:line: message` lines.
    pub fn from_config(cfg: &Config) -> Result<Rewriter, String> {
        let mut errs = Vec::new();
        let mut load = |name: &str| {
            tables::load_plain_maps(name, cfg.get(name)).unwrap_or_else(|e| {
                errs.extend(e);
                Vec::new()
            })
        };
        let sender_canonical = load("sender_canonical_maps");
        let recipient_canonical = load("recipient_canonical_maps");
        if !errs.is_empty() {
            return Err(errs.join("\n"));
        }
        Ok(Rewriter {
            myorigin: cfg.get("myorigin").to_string(),
            local_domains: cfg
                .list("mydestination")
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            append_at_myorigin: cfg.bool("append_at_myorigin"),
            sender_canonical,
            recipient_canonical,
            masquerade_domains: cfg.list("masquerade_domains").map(str::to_string).collect(),
        })
    }
}
