//! `tern sts list | show DOMAIN | purge DOMAIN|ALL`: the operator's view
//! of the policy cache on flash, and the way to drop a policy that a
//! domain changed without changing its ID (the most common complaint
//! against MTA-STS resolvers). A purge deletes the file(s) and tells a
//! running daemon to forget the policy (a wake-up datagram), so that the
//! next delivery fetches it again; with no daemon running, deleting the
//! file is all it takes.
//!
//! What is shown is what is on flash: the daemon writes a file whenever a
//! policy changes, but a refetch that only confirms a policy updates the
//! file's fetch time only now and then (see [`super::cache`]), so the
//! expiry shown can be earlier than the one the daemon uses.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::cache::{self, CacheFile};
use crate::queue::wake::{self, Wake};
use crate::syslog::time::DateTime;

/// Usage of `tern sts`.
pub const USAGE: &str = "usage: tern sts [-c FILE] list
       tern sts [-c FILE] show DOMAIN
       tern sts [-c FILE] purge DOMAIN|ALL
  list    cached MTA-STS policies: domain, mode, id, expiry, mx patterns
  show    one cached policy: its lines, fetch time and expiry
  purge   delete the cached policy (ALL: every one) and make a running
          daemon forget it: the next delivery fetches it again";

/// Local time in RFC 3339 form, for the listing.
fn when(secs: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    DateTime::local(t).rfc3339().to_string()
}

fn left(expires: u64, now: u64) -> String {
    if now >= expires {
        return "expired".into();
    }
    let s = expires - now;
    match s {
        0..=3599 => format!("in {}m", s / 60),
        3600..=86_399 => format!("in {}h", s / 3600),
        _ => format!("in {}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn mx(f: &CacheFile) -> String {
    f.policy.mx_patterns().collect::<Vec<_>>().join(",")
}

/// Runs `tern sts` with the arguments after `sts` (the config options
/// already removed) against the cache in `dir` (`$queue_directory/mta-sts`)
/// and the daemon of `queue_directory`. Returns the exit code: 0, 1 when
/// the domain has no cached policy (`show`), 64 for usage errors, 75 for
/// I/O errors.
pub fn run(
    args: &[String],
    queue_directory: &Path,
    now: u64,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let dir = queue_directory.join(cache::DIR);
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let _ = writeln!(out, "{USAGE}");
        return 0;
    }
    if let Some(bad) = args.iter().find(|a| a.starts_with('-')) {
        let _ = writeln!(err, "tern sts: unknown option \"{bad}\"\n{USAGE}");
        return 64;
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["list"] => list(&dir, now, out, err),
        ["show", domain] => show(&dir, domain, now, out, err),
        ["purge", target] => purge(&dir, queue_directory, target, out, err),
        _ => {
            let _ = writeln!(err, "{USAGE}");
            64
        }
    }
}

fn list(dir: &Path, now: u64, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let files = match cache::read_dir(dir) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "tern sts: {}: {e}", dir.display());
            return 75;
        }
    };
    if files.is_empty() {
        let _ = writeln!(out, "no cached MTA-STS policies in {}", dir.display());
        return 0;
    }
    let _ = writeln!(
        out,
        "{:<30} {:<8} {:<32} {:<25} {:<10} MX",
        "DOMAIN", "MODE", "ID", "EXPIRES", ""
    );
    for (path, parsed) in files {
        match parsed {
            Ok(f) => {
                let _ = writeln!(
                    out,
                    "{:<30} {:<8} {:<32} {:<25} {:<10} {}",
                    f.domain,
                    f.policy.mode.as_str(),
                    f.id,
                    when(f.expires()),
                    left(f.expires(), now),
                    mx(&f)
                );
            }
            Err(e) => {
                let _ = writeln!(err, "tern sts: {}: ignored: {e}", path.display());
            }
        }
    }
    0
}

fn domain_arg(d: &str) -> Option<String> {
    let d = d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase();
    cache::valid_domain(&d).then_some(d)
}

fn show(dir: &Path, domain: &str, now: u64, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let Some(domain) = domain_arg(domain) else {
        let _ = writeln!(err, "tern sts: invalid domain \"{domain}\"");
        return 64;
    };
    let path = dir.join(&domain);
    if !path.exists() {
        let _ = writeln!(err, "tern sts: no cached policy for {domain}");
        return 1;
    }
    match cache::read_file(&path) {
        Ok(f) => {
            let _ = writeln!(out, "domain: {}", f.domain);
            let _ = writeln!(out, "id: {}", f.id);
            let _ = writeln!(out, "fetched: {} ({})", when(f.fetched), f.fetched);
            let _ = writeln!(
                out,
                "expires: {} ({}, {})",
                when(f.expires()),
                f.expires(),
                left(f.expires(), now)
            );
            let _ = writeln!(out, "file: {}", path.display());
            for l in f.policy.lines() {
                let _ = writeln!(out, "{l}");
            }
            0
        }
        Err(e) => {
            let _ = writeln!(err, "tern sts: {}: {e}", path.display());
            75
        }
    }
}

fn purge(
    dir: &Path,
    queue_directory: &Path,
    target: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let domain = if target == "ALL" {
        None
    } else {
        match domain_arg(target) {
            Some(d) => Some(d),
            None => {
                let _ = writeln!(err, "tern sts: invalid domain \"{target}\"");
                return 64;
            }
        }
    };
    let removed = match &domain {
        Some(d) => cache::remove_file(dir, d).map(usize::from),
        None => cache::read_dir(dir).and_then(|files| {
            let mut n = 0;
            for (path, _) in files {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                n += usize::from(cache::remove_file(dir, name)?);
            }
            Ok(n)
        }),
    };
    let removed = match removed {
        Ok(n) => n,
        Err(e) => {
            let _ = writeln!(err, "tern sts: {}: {e}", dir.display());
            return 75;
        }
    };
    let what = domain.as_deref().unwrap_or("all domains");
    let _ = writeln!(out, "{what}: {removed} cached policy file(s) removed");
    // The daemon may hold the policy in memory even without a file (a
    // write that failed): tell it in every case.
    match wake::notify(queue_directory, Wake::StsPurge(domain)) {
        Ok(true) => {
            let _ = writeln!(out, "the running daemon was told to forget it");
        }
        Ok(false) => {}
        Err(e) => {
            let _ = writeln!(err, "tern sts: cannot reach the daemon: {e}");
            return 75;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mtasts::{Cache, Mode, Policy, PolicyId};

    fn run_str(args: &[&str], q: &Path) -> (u8, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let code = run(&args, q, 1_000, &mut o, &mut e);
        (
            code,
            String::from_utf8_lossy(&o).into_owned(),
            String::from_utf8_lossy(&e).into_owned(),
        )
    }

    #[test]
    fn list_show_purge() {
        let q = std::env::temp_dir().join(format!("tern-sts-admin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&q);
        let mut c = Cache::new(10, Some(q.join(cache::DIR)));
        let p = Policy::from_parts(Mode::Enforce, 86_400, &["mx.example.com"]).unwrap();
        c.store(
            "example.com",
            PolicyId::parse("abc").unwrap(),
            p.clone(),
            500,
        );
        c.store("example.net", PolicyId::parse("def").unwrap(), p, 500);

        let (code, out, _) = run_str(&["--help"], &q);
        assert_eq!(code, 0);
        assert!(out.starts_with("usage: tern sts"));
        let (code, _, err) = run_str(&["list", "-x"], &q);
        assert_eq!(code, 64);
        assert!(err.contains("unknown option \"-x\""), "{err}");
        assert_eq!(run_str(&["frobnicate"], &q).0, 64);
        assert_eq!(run_str(&["purge", "../etc"], &q).0, 64);

        let (code, out, _) = run_str(&["list"], &q);
        assert_eq!(code, 0);
        assert!(out.contains("example.com") && out.contains("enforce") && out.contains("abc"));
        assert!(out.contains("mx.example.com"), "{out}");
        let (code, out, _) = run_str(&["show", "Example.COM."], &q);
        assert_eq!(code, 0);
        assert!(
            out.contains("id: abc\n") && out.contains("mode: enforce\n"),
            "{out}"
        );
        assert!(out.contains("fetched: ") && out.contains("(500)"), "{out}");
        assert_eq!(run_str(&["show", "nothing.example"], &q).0, 1);

        let (code, out, _) = run_str(&["purge", "example.com"], &q);
        assert_eq!(code, 0);
        assert!(
            out.contains("example.com: 1 cached policy file(s) removed"),
            "{out}"
        );
        assert_eq!(run_str(&["show", "example.com"], &q).0, 1);
        let (code, out, _) = run_str(&["purge", "ALL"], &q);
        assert_eq!(code, 0);
        assert!(out.contains("all domains: 1 cached"), "{out}");
        let (_, out, _) = run_str(&["list"], &q);
        assert!(out.starts_with("no cached MTA-STS policies"), "{out}");
        let _ = std::fs::remove_dir_all(&q);
    }
}
