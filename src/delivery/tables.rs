//! The outbound tables named in the configuration, loaded once (at start
//! and on reload): transport map, TLS policy maps, SASL password maps and
//! the CA bundle. `tern check-config` loads them the same way.

use std::sync::Arc;

use rustls::RootCertStore;

use crate::config::table::{self, Located, Report};
use crate::config::Config;
use crate::policy::sasl::SaslPasswordMap;
use crate::policy::transport::TransportMap;
use crate::policy::PolicyTable;

/// Everything outbound delivery looks up.
pub struct Tables {
    /// `transport_maps`.
    pub transport: Vec<TransportMap>,
    /// `smtp_tls_policy_maps`.
    pub policy: Vec<PolicyTable>,
    /// `smtp_sasl_password_maps` (empty unless `smtp_sasl_auth_enable`).
    pub sasl: Vec<SaslPasswordMap>,
    /// `smtp_tls_CAfile` (empty store when the file is missing: `verify`
    /// and `secure` then fail closed, and the start-up log says why).
    pub roots: Arc<RootCertStore>,
}

fn load<T, E: std::fmt::Display>(
    cfg: &Config,
    key: &str,
    parse: impl Fn(&[u8], &str) -> Result<(T, Report<E>), Report<E>>,
    errors: &mut Vec<String>,
) -> Vec<T> {
    let specs = match table::parse_map_list(cfg.get(key)) {
        Ok(s) => s,
        Err(e) => {
            errors.push(format!("{key}: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for spec in specs {
        let file = spec.source_path().to_string();
        if let Some(note) = spec.note() {
            log::info!(target: "master", "{file}: {note}");
        }
        let text = match table::read_source(&spec) {
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
                out.push(t);
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
        let transport = load(cfg, "transport_maps", TransportMap::parse, &mut errors);
        let policy = load(cfg, "smtp_tls_policy_maps", PolicyTable::parse, &mut errors);
        let sasl = if cfg.bool("smtp_sasl_auth_enable") {
            load(
                cfg,
                "smtp_sasl_password_maps",
                SaslPasswordMap::parse,
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
                sasl,
                roots: Arc::new(roots),
            })
        } else {
            Err(errors)
        }
    }
}
