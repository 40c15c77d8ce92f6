//! The outbound tables named in the configuration, loaded once (at start
//! and on reload): transport map, TLS policy maps, SASL password maps and
//! the CA bundle, the `tafile=` trust anchors of policy entries. `tern
//! check-config` loads them the same way. Settings the tables depend on
//! (`smtp_tls_protocols`, `smtp_tls_mandatory_protocols`,
//! `smtp_tls_(mandatory_)ciphers`, `smtp_tls_(mandatory_)exclude_ciphers`,
//! `smtp_tls_fingerprint_digest` against the fingerprints) are checked here
//! too, so that delivery never meets a value it cannot use.
//!
//! The three tables load as postmap reads them: a malformed line is skipped
//! with a `file:line` warning, and its key, when readable, stays as a broken
//! entry that defers the mail it would have routed, secured or
//! authenticated (docs/postfix.md). A table that loads no usable entry from
//! a file that is not empty is an error.
//!
//! `static:` and `inline:` tables load like files (a static table matches
//! every key); a `socketmap:` table in `smtp_tls_policy_maps` is a policy
//! plug-in, asked per delivery by `delivery::socketmap` in the order the
//! tables are listed ([`Tables::policy_maps`]).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::RootCertStore;

use crate::config::table::{self, Located, MapType, Report, SocketmapSpec};
use crate::config::Config;
use crate::policy::ciphers::{self, ExcludedSuites};
use crate::policy::protocols::TlsVersions;
use crate::policy::sasl::{SaslError, SaslPasswordMap};
use crate::policy::table::PolicyError;
use crate::policy::transport::{TransportError, TransportMap};
use crate::policy::PolicyTable;
use crate::tls::verify::FingerprintDigest;

/// Everything outbound delivery looks up.
pub struct Tables {
    /// `transport_maps`.
    pub transport: Vec<TransportMap>,
    /// `smtp_tls_policy_maps`: the tables tern holds (files, `static:`,
    /// `inline:`), in the order listed.
    pub policy: Vec<PolicyTable>,
    /// `smtp_tls_policy_maps` in the order listed, with its policy
    /// plug-ins; empty when it lists none (then `policy` is the whole list).
    pub policy_maps: Vec<PolicyMap>,
    /// `smtp_sasl_password_maps` (empty unless `smtp_sasl_auth_enable`).
    pub sasl: Vec<SaslPasswordMap>,
    /// `smtp_tls_CAfile` (empty store when the file is missing: `verify`
    /// and `secure` then fail closed, and the start-up log says why).
    pub roots: Arc<RootCertStore>,
    /// The trust stores of policy entries with `tafile=`, keyed by
    /// [`tafile_key`]: at `verify`/`secure` they replace `roots` for that
    /// entry (Postfix: with trust-anchor files, the CAfile is no longer
    /// trusted for the destination).
    pub tafile_roots: HashMap<String, Arc<RootCertStore>>,
    /// `smtp_tls_fingerprint_digest`.
    pub fingerprint_digest: FingerprintDigest,
}

/// One table of `smtp_tls_policy_maps`, in the order listed.
#[derive(Debug, Clone)]
pub enum PolicyMap {
    /// `Tables::policy[i]`.
    Table(usize),
    /// A policy plug-in, asked over its socket per delivery.
    Socketmap(SocketmapSpec),
}

/// A table of a list, as loaded.
enum Loaded<T> {
    /// A table tern holds, with its name for later `file:line` errors.
    Table(T, String),
    /// A `socketmap:` table (only where the list allows it).
    Socketmap(SocketmapSpec),
}

/// The key of an entry's trust store in [`Tables::tafile_roots`]: its
/// `tafile=` paths in order, one per line.
pub fn tafile_key<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let mut k = String::new();
    for p in paths {
        k.push_str(p);
        k.push('\n');
    }
    k
}

/// Loaded tables of one kind, each with its file name; problems go to
/// `errors` and `warnings` as `file:line: message` lines.
struct Loader<'a> {
    cfg: &'a Config,
    errors: &'a mut Vec<String>,
    warnings: &'a mut Vec<String>,
}

/// True when table text has an entry-like line: not blank, not a comment.
/// A table that loads no entry from such a file is a mistake (an indented
/// table, every line malformed), not an empty table.
fn has_content(text: &[u8]) -> bool {
    text.split(|b| *b == b'\n').any(|l| {
        l.iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b != b'#')
    })
}

impl Loader<'_> {
    /// The tables of list `key`; `any` makes a `static:` table match every
    /// key, `usable` counts a table's entries.
    fn load<T, E: std::fmt::Display>(
        &mut self,
        key: &str,
        parse: impl Fn(&[u8], &str) -> Result<(T, Report<E>), Report<E>>,
        any: fn(T) -> T,
        usable: impl Fn(&T) -> usize,
    ) -> Vec<T> {
        self.load_named(key, parse, any, usable)
            .into_iter()
            .filter_map(|l| match l {
                Loaded::Table(t, _) => Some(t),
                Loaded::Socketmap(_) => None,
            })
            .collect()
    }

    /// [`Loader::load`], keeping each table's file name (for later
    /// `file:line` errors) and, for `smtp_tls_policy_maps`, its socketmap
    /// tables in their place.
    fn load_named<T, E: std::fmt::Display>(
        &mut self,
        key: &str,
        parse: impl Fn(&[u8], &str) -> Result<(T, Report<E>), Report<E>>,
        any: fn(T) -> T,
        usable: impl Fn(&T) -> usize,
    ) -> Vec<Loaded<T>> {
        let specs = match table::parse_map_list(self.cfg.get(key)) {
            Ok(s) => s,
            Err(e) => {
                self.errors.push(format!("{key}: {e}"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for spec in specs {
            let file = spec.label();
            if let Some(note) = spec.note() {
                log::info!(target: "master", "{file}: {note}");
            }
            if spec.map_type == MapType::Socketmap && key == "smtp_tls_policy_maps" {
                if let Some(s) = spec.socketmap() {
                    out.push(Loaded::Socketmap(s));
                    continue;
                }
            }
            let is_static = spec.map_type == MapType::Static;
            let text = match table::static_text(&spec).map_or_else(|| table::read_source(&spec), Ok)
            {
                Ok(t) => t,
                Err(e) => {
                    self.errors.push(format!("{key}: {e}"));
                    continue;
                }
            };
            match parse(&text, &file) {
                Ok((t, report)) => {
                    self.warnings
                        .extend(report.warnings.iter().map(|w| w.to_string()));
                    if usable(&t) == 0 && has_content(&text) {
                        self.errors.push(format!(
                            "{file}: {key}: no usable entry although the file is not empty (see the warnings above; a line that starts with whitespace continues the previous one, so table lines must not be indented)"
                        ));
                    }
                    let t = if is_static { any(t) } else { t };
                    out.push(Loaded::Table(t, file));
                }
                Err(report) => {
                    self.warnings
                        .extend(report.warnings.iter().map(|w| w.to_string()));
                    self.errors
                        .extend(report.errors.iter().map(|e: &Located<E>| e.to_string()));
                    if report.errors_dropped > 0 {
                        self.errors
                            .push(format!("{file}: {} more errors", report.errors_dropped));
                    }
                }
            }
        }
        out
    }
}

/// [`TransportMap::load`] in the shape the loader takes: malformed lines
/// are warnings (and broken entries that defer), only a table too large fails.
fn load_transport(
    text: &[u8],
    file: &str,
) -> Result<(TransportMap, Report<TransportError>), Report<TransportError>> {
    let (t, report) = TransportMap::load(text, file);
    if report.is_ok() {
        Ok((t, report))
    } else {
        Err(report)
    }
}

/// [`SaslPasswordMap::load`] in the shape the loader takes: malformed lines
/// are warnings (and broken entries that defer), only a table too large fails.
fn load_sasl(
    text: &[u8],
    file: &str,
) -> Result<(SaslPasswordMap, Report<SaslError>), Report<SaslError>> {
    let (t, report) = SaslPasswordMap::load(text, file);
    if report.is_ok() {
        Ok((t, report))
    } else {
        Err(report)
    }
}

/// [`PolicyTable::load`] in the shape the loader takes: malformed lines are
/// warnings (and broken entries), only a table too large fails.
fn load_policy(
    text: &[u8],
    file: &str,
) -> Result<(PolicyTable, Report<PolicyError>), Report<PolicyError>> {
    let (t, report) = PolicyTable::load(text, file);
    if report.is_ok() {
        Ok((t, report))
    } else {
        Err(report)
    }
}

impl Tables {
    /// Loads every table; all problems are returned together, each as
    /// `file:line: message`. Warnings (skipped table lines, a CA file that
    /// cannot be read where nothing needs it) are logged.
    pub fn load(cfg: &Config) -> Result<Tables, Vec<String>> {
        let (tables, warnings) = Self::load_report(cfg);
        for w in &warnings {
            log::warn!(target: "master", "warning: {w}");
        }
        tables
    }

    /// [`Tables::load`], returning the warnings instead of logging them
    /// (`check-config` prints them), each as `file:line: message`.
    pub fn load_report(cfg: &Config) -> (Result<Tables, Vec<String>>, Vec<String>) {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut loader = Loader {
            cfg,
            errors: &mut errors,
            warnings: &mut warnings,
        };
        let transport = loader.load(
            "transport_maps",
            load_transport,
            TransportMap::matching_any_key,
            TransportMap::usable_len,
        );
        let loaded = loader.load_named(
            "smtp_tls_policy_maps",
            load_policy,
            PolicyTable::matching_any_key,
            PolicyTable::usable_len,
        );
        let mut named = Vec::new();
        let mut policy_maps = Vec::new();
        for l in loaded {
            match l {
                Loaded::Table(t, file) => {
                    policy_maps.push(PolicyMap::Table(named.len()));
                    named.push((t, file));
                }
                Loaded::Socketmap(s) => policy_maps.push(PolicyMap::Socketmap(s)),
            }
        }
        if !policy_maps
            .iter()
            .any(|m| matches!(m, PolicyMap::Socketmap(_)))
        {
            policy_maps.clear();
        }
        let sasl = if cfg.bool("smtp_sasl_auth_enable") {
            loader.load(
                "smtp_sasl_password_maps",
                load_sasl,
                SaslPasswordMap::matching_any_key,
                SaslPasswordMap::usable_len,
            )
        } else {
            Vec::new()
        };
        let fingerprint_digest = check_settings(cfg, &mut errors);
        check_main_cf_fingerprints(cfg, &named, fingerprint_digest, &mut errors);
        let tafile_roots = load_tafiles(&named, fingerprint_digest, &mut errors);
        let policy: Vec<PolicyTable> = named.into_iter().map(|(t, _)| t).collect();
        let ca = cfg.get("smtp_tls_CAfile");
        let roots = match crate::tls::verify::load_ca_file(std::path::Path::new(ca)) {
            Ok(r) => r,
            Err(e) => {
                // Where verify or secure needs the CA file (the default
                // level, or a policy entry without its own tafile=), every
                // such delivery would defer: refuse the configuration.
                match ca_file_user(cfg, &policy) {
                    Some(who) => errors.push(format!(
                        "smtp_tls_CAfile: {e}: needed by {who}; point smtp_tls_CAfile at the CA bundle (Debian: /etc/ssl/certs/ca-certificates.crt)"
                    )),
                    None => warnings.push(format!(
                        "smtp_tls_CAfile: {e}: the verify and secure levels will fail"
                    )),
                }
                RootCertStore::empty()
            }
        };
        let result = if errors.is_empty() {
            Ok(Tables {
                transport,
                policy,
                policy_maps,
                sasl,
                roots: Arc::new(roots),
                tafile_roots,
                fingerprint_digest,
            })
        } else {
            Err(errors)
        };
        (result, warnings)
    }
}

/// Checks the main.cf settings outbound TLS depends on (protocols, cipher
/// grades and exclusions, the fingerprint digest); returns the digest.
fn check_settings(cfg: &Config, errors: &mut Vec<String>) -> FingerprintDigest {
    for key in ["smtp_tls_protocols", "smtp_tls_mandatory_protocols"] {
        if let Err(e) = TlsVersions::parse(cfg.get(key)) {
            errors.push(format!("{key}: {e}"));
        }
    }
    for key in ["smtp_tls_ciphers", "smtp_tls_mandatory_ciphers"] {
        let grade = cfg.get(key);
        if !ciphers::is_grade(grade) {
            errors.push(format!(
                "{key}: invalid cipher grade \"{grade}\": expected high, medium, low, export or null"
            ));
        } else if let Err(e) = ciphers::check_grade(grade) {
            errors.push(format!("{key}: {e}"));
        }
    }
    for key in [
        "smtp_tls_exclude_ciphers",
        "smtp_tls_mandatory_exclude_ciphers",
    ] {
        if let Err(e) = ExcludedSuites::parse(cfg.get(key)) {
            errors.push(format!("{key}: {e}"));
        }
    }
    let digest_name = cfg.get("smtp_tls_fingerprint_digest");
    match FingerprintDigest::parse(digest_name) {
        Some(d) => d,
        None => {
            errors.push(format!(
                "smtp_tls_fingerprint_digest: unsupported digest \"{digest_name}\" (sha256 or sha512)"
            ));
            FingerprintDigest::Sha256
        }
    }
}

/// `smtp_tls_fingerprint_cert_match` against the digest, where the
/// fingerprint level takes its list from main.cf.
fn check_main_cf_fingerprints(
    cfg: &Config,
    named: &[(PolicyTable, String)],
    fingerprint_digest: FingerprintDigest,
    errors: &mut Vec<String>,
) {
    // smtp_tls_fingerprint_cert_match matters only where the
    // fingerprint level takes its list from main.cf: as the default
    // level, or for table entries at that level without match=.
    let main_cf_fps = cfg.get("smtp_tls_security_level") == "fingerprint"
        || named.iter().any(|(t, _)| {
            t.iter()
                .any(|e| e.level() == crate::policy::Level::Fingerprint && !e.has_match())
        });
    if main_cf_fps {
        for fp in crate::policy::table::MatchList::main_cf(
            cfg.get("smtp_tls_fingerprint_cert_match"),
            true,
        ) {
            match crate::policy::decide::parse_fingerprint(fp) {
                Err(e) => errors.push(format!("smtp_tls_fingerprint_cert_match: {e}")),
                Ok(f) if f.as_bytes().len() != fingerprint_digest.len() => errors.push(format!(
                    "smtp_tls_fingerprint_cert_match: fingerprint \"{fp}\" has {} bytes, but smtp_tls_fingerprint_digest = {} gives {}",
                    f.as_bytes().len(),
                    fingerprint_digest.name(),
                    fingerprint_digest.len()
                )),
                Ok(_) => {}
            }
        }
    }
}

/// The trust stores of the policy entries' `tafile=` files, and the
/// entries' fingerprint lengths checked against the digest.
fn load_tafiles(
    named: &[(PolicyTable, String)],
    fingerprint_digest: FingerprintDigest,
    errors: &mut Vec<String>,
) -> HashMap<String, Arc<RootCertStore>> {
    let mut tafile_roots: HashMap<String, Arc<RootCertStore>> = HashMap::new();
    for (t, file) in named {
        for (line, e) in
            t.fingerprint_length_errors(fingerprint_digest.name(), fingerprint_digest.len())
        {
            errors.push(format!("{file}:{line}: {e}"));
        }
        for e in t.iter().filter(|e| !e.is_broken()) {
            let key = tafile_key(e.tafiles());
            if key.is_empty() || tafile_roots.contains_key(&key) {
                continue;
            }
            let mut store = RootCertStore::empty();
            let mut ok = true;
            for path in e.tafiles() {
                match crate::tls::verify::load_ca_file(std::path::Path::new(path)) {
                    Ok(r) => store.roots.extend(r.roots),
                    Err(err) => {
                        errors.push(format!("{file}:{}: tafile: {err}", e.line()));
                        ok = false;
                    }
                }
            }
            if ok {
                tafile_roots.insert(key, Arc::new(store));
            }
        }
    }
    tafile_roots
}

/// What needs `smtp_tls_CAfile`, if anything: the default level at
/// `verify`/`secure`, or the first policy entry at those levels without
/// `tafile=` (its own trust anchors replace the CA file).
fn ca_file_user(cfg: &Config, policy: &[PolicyTable]) -> Option<String> {
    let level = cfg.get("smtp_tls_security_level");
    if level == "verify" || level == "secure" {
        return Some(format!("smtp_tls_security_level = {level}"));
    }
    policy.iter().flat_map(|t| t.iter()).find_map(|e| {
        let needs = !e.is_broken()
            && matches!(
                e.level(),
                crate::policy::Level::Verify | crate::policy::Level::Secure
            )
            && e.tafiles().next().is_none();
        needs.then(|| format!("{}:{} ({} {})", e.file(), e.line(), e.key(), e.level()))
    })
}
