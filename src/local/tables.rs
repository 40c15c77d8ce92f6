//! Loading the tables local delivery and rewriting use (aliases,
//! canonical and virtual maps) from their `type:path` specifications, and
//! `tern newaliases`, which only checks them: tern reads the text, so
//! there is no database to build.

use std::path::Path;

use crate::config::table::{self, CompactTable, MapSpec};
use crate::config::Config;

use super::aliases::AliasTable;

/// The default `alias_maps`: a missing file there means "no aliases yet".
pub const DEFAULT_ALIASES: &str = "texthash:/etc/tern/aliases";

/// Loads an `alias_maps` value; errors are `file:line: message` lines.
pub fn load_aliases(value: &str) -> Result<Vec<AliasTable>, Vec<String>> {
    let specs = table::parse_map_list(value).map_err(|e| vec![format!("alias_maps: {e}")])?;
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for spec in specs {
        let text = match table::read_source(&spec) {
            Ok(t) => t,
            Err(e) => {
                let missing = !Path::new(spec.source_path()).exists();
                if missing && value.trim() == DEFAULT_ALIASES {
                    continue;
                }
                errs.push(e.to_string());
                continue;
            }
        };
        let (t, report) = AliasTable::parse(&text, spec.source_path());
        for w in &report.warnings {
            log::warn!(target: "local", "{w}");
        }
        if !report.is_ok() {
            errs.extend(report.errors.iter().map(|e| e.to_string()));
            if report.errors_dropped > 0 {
                errs.push(format!(
                    "{}: {} more errors",
                    spec.source_path(),
                    report.errors_dropped
                ));
            }
        }
        out.push(t);
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Loads a list of plain `type:path` tables (canonical and virtual maps).
pub fn load_plain_maps(name: &str, value: &str) -> Result<Vec<CompactTable<()>>, Vec<String>> {
    let specs: Vec<MapSpec> =
        table::parse_map_list(value).map_err(|e| vec![format!("{name}: {e}")])?;
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for spec in specs {
        match table::read_source(&spec) {
            Ok(text) => {
                let (t, report) = CompactTable::parse(&text, spec.source_path());
                errs.extend(report.errors.iter().map(|e| e.to_string()));
                out.push(t);
            }
            Err(e) => errs.push(format!("{name}: {e}")),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// `tern newaliases [-c FILE]`: checks every `alias_maps` file and prints
/// each problem as `file:line: message`. Returns the exit code.
pub fn newaliases(cfg: &Config, out: &mut dyn std::io::Write) -> i32 {
    match load_aliases(cfg.get("alias_maps")) {
        Ok(tables) => {
            let n: usize = tables.iter().map(AliasTable::len).sum();
            let _ = writeln!(
                out,
                "newaliases: {}: {n} aliases, ok (no database to build: tern reads the text)",
                cfg.get("alias_maps")
            );
            0
        }
        Err(errs) => {
            for e in errs {
                let _ = writeln!(out, "newaliases: {e}");
            }
            1
        }
    }
}
