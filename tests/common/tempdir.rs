//! Temporary directories under `/tmp/tern-testbed`, removed on drop.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Root of every directory the test bed creates.
pub const BASE: &str = "/tmp/tern-testbed";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh directory, mode 0755 (so that `postfix` and `nobody` can traverse
/// it), deleted with its contents on drop unless `TERN_TESTBED_KEEP` is set.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `/tmp/tern-testbed/<prefix>-<pid>-<n>`.
    pub fn new(prefix: &str) -> TempDir {
        let base = Path::new(BASE);
        fs::create_dir_all(base).unwrap_or_else(|e| panic!("create {BASE}: {e}"));
        // The umask may be 077; peers running as other users must traverse.
        let _ = fs::set_permissions(base, fs::Permissions::from_mode(0o755));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("{prefix}-{}-{n}", std::process::id()));
        if path.exists() {
            // Left over by an earlier process that had the same pid.
            let _ = fs::remove_dir_all(&path);
        }
        fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(rel)`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Creates a subdirectory (mode 0755) and returns its path.
    pub fn subdir(&self, rel: &str) -> PathBuf {
        let p = self.path.join(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("TERN_TESTBED_KEEP").is_some() {
            eprintln!("testbed: keeping {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Writes `contents` to `path`, panicking with the path on failure.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Like [`write`], then sets the file's mtime one minute back. Postfix
/// programs that find a config or table file modified within the last
/// second sleep about 2 s before using it; backdating avoids that.
pub fn write_config(path: &Path, contents: impl AsRef<[u8]>) {
    write(path, contents);
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(past))
        .unwrap_or_else(|e| panic!("set mtime {}: {e}", path.display()));
}

/// Reads `path` as (lossy) UTF-8; a missing file reads as empty.
pub fn read_lossy(path: &Path) -> String {
    match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    }
}

/// Looks up a user's uid and primary gid in `/etc/passwd`.
pub fn user_ids(name: &str) -> (u32, u32) {
    let passwd = read_lossy(Path::new("/etc/passwd"));
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == name {
            if let (Ok(u), Ok(g)) = (f[2].parse(), f[3].parse()) {
                return (u, g);
            }
        }
    }
    panic!("user {name} not in /etc/passwd (run scripts/install-test-deps.sh)")
}

/// Looks up a group's gid in `/etc/group`.
pub fn group_id(name: &str) -> u32 {
    let group = read_lossy(Path::new("/etc/group"));
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 2 && f[0] == name {
            if let Ok(g) = f[2].parse() {
                return g;
            }
        }
    }
    panic!("group {name} not in /etc/group (run scripts/install-test-deps.sh)")
}

/// chown + chmod in one call, panicking with the path on failure.
pub fn own(path: &Path, uid: u32, gid: u32, mode: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
