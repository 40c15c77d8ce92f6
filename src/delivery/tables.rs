//! The outbound tables named in the configuration, loaded once (at start
//! and on reload): transport map, TLS policy maps, SASL password maps and
//! the CA bundle, the `tafile=` trust anchors of policy entries. `tern
//! check-config` loads them the same way. Settings the tables depend on
//! (`smtp_tls_protocols`, `smtp_tls_mandatory_protocols`,
//! `smtp_tls_(mandatory_)ciphers`, `smtp_tls_(mandatory_)exclude_ciphers`,
//! `smtp_tls_fingerprint_digest` against the fingerprints) are checked here
//! too, so that delivery never meets a value it cannot use.
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
use crate::policy::sasl::SaslPasswordMap;
use crate::policy::transport::TransportMap;
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

fn load<T, E: std::fmt::Display>(
    cfg: &Config,
    key: &str,
    parse: impl Fn(&[u8], &str) -> Result<(T, Report<E>), Report<E>>,
    any: fn(T) -> T,
    errors: &mut Vec<String>,
) -> Vec<T> {
    load_named(cfg, key, parse, any, errors)
        .into_iter()
        .filter_map(|l| match l {
            Loaded::Table(t, _) => Some(t),
            Loaded::Socketmap(_) => None,
        })
        .collect()
}

/// A table of a list, as loaded.
enum Loaded<T> {
    /// A table tern holds, with its name for later `file:line` errors.
    Table(T, String),
    /// A `socketmap:` table (only where the list allows it).
    Socketmap(SocketmapSpec),
}

/// [`load`], keeping each table's file name (for later `file:line` errors)
/// and, for `smtp_tls_policy_maps`, its socketmap tables in their place.
/// `any` makes a `static:` table match every key.
fn load_named<T, E: std::fmt::Display>(
    cfg: &Config,
    key: &str,
    parse: impl Fn(&[u8], &str) -> Result<(T, Report<E>), Report<E>>,
    any: fn(T) -> T,
    errors: &mut Vec<String>,
) -> Vec<Loaded<T>> {
    let specs = match table::parse_map_list(cfg.get(key)) {
        Ok(s) => s,
        Err(e) => {
            errors.push(format!("{key}: {e}"));
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
        let text = match table::static_text(&spec).map_or_else(|| table::read_source(&spec), Ok) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{key}: {e}"));
                continue;
            }
        };
        match parse(&text, &file) {
            Ok((t, report)) => {
                for w in &report.warnings {
                    log::warn!(target: "master", "{w}");
                }
                let t = if is_static { any(t) } else { t };
                out.push(Loaded::Table(t, file));
            }
            Err(report) => {
                errors.extend(report.errors.iter().map(|e: &Located<E>| e.to_string()));
                if report.errors_dropped > 0 {
                    errors.push(format!("{file}: {} more errors", report.errors_dropped));
                }
            }
        }
    }
    out
}

impl Tables {
    /// Loads every table; all problems are returned together, each as
    /// `file:line: message`.
    pub fn load(cfg: &Config) -> Result<Tables, Vec<String>> {
        let mut errors = Vec::new();
        let transport = load(
            cfg,
            "transport_maps",
            TransportMap::parse,
            TransportMap::matching_any_key,
            &mut errors,
        );
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
        let fingerprint_digest = match FingerprintDigest::parse(digest_name) {
            Some(d) => d,
            None => {
                errors.push(format!(
                    "smtp_tls_fingerprint_digest: unsupported digest \"{digest_name}\" (sha256 or sha512)"
                ));
                FingerprintDigest::Sha256
            }
        };
        let loaded = load_named(
            cfg,
            "smtp_tls_policy_maps",
            PolicyTable::parse,
            PolicyTable::matching_any_key,
            &mut errors,
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
        let mut tafile_roots: HashMap<String, Arc<RootCertStore>> = HashMap::new();
        for (t, file) in &named {
            for (line, e) in
                t.fingerprint_length_errors(fingerprint_digest.name(), fingerprint_digest.len())
            {
                errors.push(format!("{file}:{line}: {e}"));
            }
            for e in t.iter() {
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
        let policy: Vec<PolicyTable> = named.into_iter().map(|(t, _)| t).collect();
        let sasl = if cfg.bool("smtp_sasl_auth_enable") {
            load(
                cfg,
                "smtp_sasl_password_maps",
                SaslPasswordMap::parse,
                SaslPasswordMap::matching_any_key,
                &mut errors,
            )
        } else {
            Vec::new()
        };
        let ca = cfg.get("smtp_tls_CAfile");
        let roots = match crate::tls::verify::load_ca_file(std::path::Path::new(ca)) {
            Ok(r) => r,
            Err(e) => {
                log::warn!(target: "master", "smtp_tls_CAfile: {e}: the verify and secure levels will fail");
                RootCertStore::empty()
            }
        };
        if errors.is_empty() {
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
        }
    }
}
