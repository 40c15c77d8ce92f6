//! Loading the tables local delivery and rewriting use (aliases,
//! canonical and virtual maps) from their `type:path` specifications, and
//! `tern newaliases`, which only checks them: tern reads the text, so
//! there is no database to build.

use std::path::Path;

use crate::config::table::{self, CompactTable, MapSpec};
use crate::config::Config;

use super::aliases::{self, AliasTable, Dest};

/// The default `alias_maps`: a missing file there means "no aliases yet".
pub const DEFAULT_ALIASES: &str = "texthash:/etc/tern/aliases";

/// Loads an `alias_maps` value; errors are `file:line: message` lines.
pub fn load_aliases(value: &str) -> Result<Vec<AliasTable>, Vec<String>> {
    let (tables, errs) = load_aliases_report(value);
    if errs.is_empty() {
        Ok(tables.into_iter().map(|(_, t)| t).collect())
    } else {
        Err(errs)
    }
}

/// Every table that could be read (with its file name), and every error.
fn load_aliases_report(value: &str) -> (Vec<(String, AliasTable)>, Vec<String>) {
    let specs = match table::parse_map_list(value) {
        Ok(s) => s,
        Err(e) => return (Vec::new(), vec![format!("alias_maps: {e}")]),
    };
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
        out.push((spec.source_path().to_string(), t));
    }
    (out, errs)
}

/// Reads a `:include:` file the way delivery does.
pub fn read_include(path: &str) -> Result<Vec<u8>, String> {
    let spec = MapSpec {
        map_type: table::MapType::Texthash,
        path: path.to_string(),
    };
    table::read_source(&spec).map_err(|e| e.to_string())
}

/// Checks the `:include:` files named in `tables` (and in those files),
/// each once: errors as `file:line: message`, warnings for files that list
/// no one (mail to such an alias is deferred).
fn check_includes(tables: &[(String, AliasTable)]) -> (Vec<String>, Vec<String>) {
    let mut errs = Vec::new();
    let mut warns = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    // (file naming it, line there, include path, depth)
    let mut todo: Vec<(String, u32, String, usize)> = Vec::new();
    for (file, t) in tables {
        for (line, path) in t.includes() {
            todo.push((file.clone(), line, path, 1));
        }
    }
    todo.reverse();
    while let Some((from, line, path, depth)) = todo.pop() {
        if seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        if depth > super::expand::MAX_DEPTH {
            errs.push(format!(
                "{from}:{line}: :include: files nest deeper than {}",
                super::expand::MAX_DEPTH
            ));
            continue;
        }
        let text = match read_include(&path) {
            Ok(t) => t,
            Err(e) => {
                errs.push(format!("{from}:{line}: cannot read :include: file: {e}"));
                continue;
            }
        };
        let (dests, bad) = aliases::check_include_lines(&text, &path);
        if dests.is_empty() && bad.is_empty() {
            warns.push(format!(
                "{path}: no recipients: mail for the alias at {from}:{line} will be deferred"
            ));
        }
        errs.extend(bad);
        let mut nested: Vec<_> = dests
            .iter()
            .filter_map(|(l, d)| match d {
                Dest::Include(p) => Some((path.clone(), *l, p.clone(), depth + 1)),
                _ => None,
            })
            .collect();
        nested.reverse();
        todo.extend(nested);
    }
    (errs, warns)
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

/// `tern newaliases [-c FILE]`: checks every `alias_maps` file and the
/// `:include:` files they name, and prints each problem as
/// `file:line: message`. Returns the exit code.
pub fn newaliases(cfg: &Config, out: &mut dyn std::io::Write) -> i32 {
    let (tables, mut errs) = load_aliases_report(cfg.get("alias_maps"));
    let (inc_errs, warns) = check_includes(&tables);
    errs.extend(inc_errs);
    for w in warns {
        let _ = writeln!(out, "newaliases: warning: {w}");
    }
    if errs.is_empty() {
        let n: usize = tables.iter().map(|(_, t)| t.len()).sum();
        let _ = writeln!(
            out,
            "newaliases: {}: {n} aliases, ok (no database to build: tern reads the text)",
            cfg.get("alias_maps")
        );
        0
    } else {
        for e in errs {
            let _ = writeln!(out, "newaliases: {e}");
        }
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newaliases_checks_include_files() {
        let dir = std::env::temp_dir().join(format!("tern-newaliases-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("aliases"),
            format!(
                "team: :include:{d}/team\nempty: :include:{d}/empty\ngone: :include:{d}/missing\nagain: :include:{d}/team\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("team"),
            format!("a@x.test\nb c\n:include:{d}/nested\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("nested"),
            format!("ok@x.test\nbad,,\n# a missing file, named on line 4\n:include:{d}/deeper\n"),
        )
        .unwrap();
        std::fs::write(dir.join("empty"), "# no one yet\n").unwrap();
        let cfg = Config::parse_str(&format!("alias_maps = texthash:{d}/aliases\n"), "t").unwrap();
        let mut out = Vec::new();
        assert_eq!(newaliases(&cfg, &mut out), 1);
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            vec![
                format!("newaliases: warning: {d}/empty: no recipients: mail for the alias at {d}/aliases:2 will be deferred"),
                format!("newaliases: {d}/team:2: whitespace in destination \"b c\": separate destinations with commas, quote commands"),
                format!("newaliases: {d}/nested:2: empty destination between commas"),
                format!("newaliases: {d}/nested:4: cannot read :include: file: {d}/deeper: cannot read table: No such file or directory (os error 2)"),
                format!("newaliases: {d}/aliases:3: cannot read :include: file: {d}/missing: cannot read table: No such file or directory (os error 2)"),
            ],
            "{out}"
        );
        // Fixed: exit 0, the warning stays.
        std::fs::write(dir.join("team"), "a@x.test\n").unwrap();
        std::fs::write(
            dir.join("aliases"),
            format!("team: :include:{d}/team\nempty: :include:{d}/empty\n"),
        )
        .unwrap();
        let mut out = Vec::new();
        assert_eq!(newaliases(&cfg, &mut out), 0);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("warning: "), "{out}");
        assert!(out.contains("2 aliases, ok"), "{out}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
