//! Maildir delivery (the qmail/Dovecot format): write `tmp/NAME`, fsync
//! it, link it to `new/NAME`, remove the `tmp` name, fsync `new/`. A crash
//! at any point leaves either nothing in `new/` or the complete message.
//!
//! Names follow the Maildir spec: `SECONDS.MUSECPPIDQSEQ.HOST`, with `/`
//! and `:` in the host name written as `\057` and `\072`. Line ends are
//! converted from the spool's CRLF to LF, as mail readers expect in
//! Maildir files. Name and conversion are sans-I/O ([`unique_name`],
//! [`CrlfToLf`]); [`deliver`] is the driver.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A unique Maildir file name.
pub fn unique_name(secs: u64, usec: u32, pid: u32, seq: u32, host: &str) -> String {
    let mut h = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => h.push_str("\\057"),
            ':' => h.push_str("\\072"),
            c if c.is_control() => h.push('_'),
            c => h.push(c),
        }
    }
    format!("{secs}.M{usec}P{pid}Q{seq}.{h}")
}

/// CRLF to LF, streaming: a CR is held back until the next byte shows
/// whether it starts a CRLF. Constant memory.
#[derive(Debug, Default, Clone)]
pub struct CrlfToLf {
    cr: bool,
}

impl CrlfToLf {
    /// Converts `input` into `out` (which needs `input.len() + 1` bytes);
    /// returns the bytes produced.
    pub fn feed(&mut self, input: &[u8], out: &mut [u8]) -> usize {
        let mut o = 0;
        for &b in input {
            if self.cr {
                self.cr = false;
                if b != b'\n' {
                    if let Some(slot) = out.get_mut(o) {
                        *slot = b'\r';
                        o += 1;
                    }
                }
            }
            if b == b'\r' {
                self.cr = true;
                continue;
            }
            if let Some(slot) = out.get_mut(o) {
                *slot = b;
                o += 1;
            }
        }
        o
    }

    /// End of input: a held CR is written out (needs 1 byte).
    pub fn finish(&mut self, out: &mut [u8]) -> usize {
        if std::mem::take(&mut self.cr) {
            if let Some(slot) = out.first_mut() {
                *slot = b'\r';
                return 1;
            }
        }
        0
    }
}

/// Why a Maildir delivery failed (every case is worth a retry).
#[derive(Debug)]
pub struct MaildirError {
    /// What was being done.
    pub op: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// The OS error.
    pub err: io::Error,
}

impl fmt::Display for MaildirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.err)
    }
}

impl std::error::Error for MaildirError {}

fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MaildirError + 'a {
    move |err| MaildirError {
        op,
        path: path.to_path_buf(),
        err,
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn chown(path: &Path, owner: Option<(u32, u32)>) -> Result<(), MaildirError> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(at("chown", path))?;
    }
    Ok(())
}

/// Sans-I/O: what [`create`] does for the Maildir `dir`, given which
/// paths `exists`. Returns the directories to create, in order (missing
/// ancestors, as for a mail-only user's `base/domain/user/`, then `dir`,
/// then `tmp`, `new`, `cur`), and the directories whose entries change
/// and must be fsynced afterwards (each created directory's parent), so
/// that a power loss after the first delivery cannot lose the Maildir.
pub fn creation_plan(dir: &Path, exists: &dyn Fn(&Path) -> bool) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut make = Vec::new();
    let mut up = Some(dir);
    while let Some(p) = up {
        if p.as_os_str().is_empty() || exists(p) {
            break;
        }
        make.push(p.to_path_buf());
        up = p.parent();
    }
    make.reverse();
    for sub in ["tmp", "new", "cur"] {
        let p = dir.join(sub);
        if !exists(&p) {
            make.push(p);
        }
    }
    let mut sync: Vec<PathBuf> = Vec::new();
    for p in &make {
        if let Some(parent) = p.parent().filter(|q| !q.as_os_str().is_empty()) {
            if !sync.iter().any(|s| s == parent) {
                sync.push(parent.to_path_buf());
            }
        }
    }
    (make, sync)
}

/// Creates `dir` and its `tmp`, `new`, `cur` (mode 0700) where missing,
/// with any missing parents, and fsyncs the parent of every directory it
/// created; new directories are given to `owner` (when running as root).
pub fn create(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), MaildirError> {
    let (make, sync) = creation_plan(dir, &|p| p.is_dir());
    if make.is_empty() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.mode(0o700);
    for p in &make {
        match b.create(p) {
            Ok(()) => chown(p, owner)?,
            // Created at the same moment by another delivery.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(at("create directory", p)(e)),
        }
    }
    for d in &sync {
        File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(at("fsync directory", d))?;
    }
    Ok(())
}

/// Delivers one message: `prepend` (headers, already LF-terminated) then
/// `body` (CRLF, converted to LF). Returns the path in `new/`.
pub fn deliver(
    dir: &Path,
    prepend: &[u8],
    body: &mut dyn Read,
    owner: Option<(u32, u32)>,
    host: &str,
) -> Result<PathBuf, MaildirError> {
    create(dir, owner)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let name = unique_name(
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        host,
    );
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(at("create maildir file", &tmp))?;
    let r = write_all(&mut f, prepend, body, &tmp)
        .and_then(|()| f.sync_all().map_err(at("fsync", &tmp)))
        .and_then(|()| chown(&tmp, owner))
        .and_then(|()| fs::hard_link(&tmp, &new).map_err(at("link to", &new)));
    // The tmp name goes in every case: on success new/ holds the message,
    // on failure a half-written file must not stay.
    let _ = fs::remove_file(&tmp);
    r?;
    let nd = dir.join("new");
    File::open(&nd)
        .and_then(|d| d.sync_all())
        .map_err(at("fsync directory", &nd))?;
    Ok(new)
}

fn write_all(
    f: &mut File,
    prepend: &[u8],
    body: &mut dyn Read,
    path: &Path,
) -> Result<(), MaildirError> {
    let mut w = io::BufWriter::with_capacity(8192, f);
    w.write_all(prepend).map_err(at("write", path))?;
    let mut inb = [0u8; 4096];
    let mut outb = [0u8; 4097];
    let mut conv = CrlfToLf::default();
    loop {
        let n = match body.read(&mut inb) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(at("read queue file for", path)(e)),
        };
        let m = conv.feed(&inb[..n], &mut outb);
        w.write_all(&outb[..m]).map_err(at("write", path))?;
    }
    let m = conv.finish(&mut outb);
    w.write_all(&outb[..m]).map_err(at("write", path))?;
    w.flush().map_err(at("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_host() {
        assert_eq!(
            unique_name(1700000000, 42, 7, 3, "a/b:c"),
            "1700000000.M42P7Q3.a\\057b\\072c"
        );
    }

    #[test]
    fn crlf_conversion_split_anywhere() {
        let input = b"a\r\nb\rc\r\n\r\nend\r";
        for split in 0..input.len() {
            let mut c = CrlfToLf::default();
            let mut out = vec![0u8; 64];
            let mut n = c.feed(&input[..split], &mut out);
            let mut rest = vec![0u8; 64];
            let m = c.feed(&input[split..], &mut rest);
            out.truncate(n);
            out.extend_from_slice(&rest[..m]);
            let mut t = [0u8; 1];
            n = c.finish(&mut t);
            out.extend_from_slice(&t[..n]);
            assert_eq!(out, b"a\nb\rc\n\nend\r", "split at {split}");
        }
    }

    #[test]
    fn creation_plan_creates_parents_first_and_syncs_their_parents() {
        let have =
            |set: &'static [&'static str]| move |p: &Path| set.iter().any(|s| Path::new(s) == p);
        // First delivery to a mail-only user: base exists, the rest not.
        let (make, sync) = creation_plan(Path::new("/base/dom/u/"), &have(&["/", "/base"]));
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            make,
            p(&[
                "/base/dom",
                "/base/dom/u",
                "/base/dom/u/tmp",
                "/base/dom/u/new",
                "/base/dom/u/cur"
            ])
        );
        assert_eq!(sync, p(&["/base", "/base/dom", "/base/dom/u"]));
        // A Maildir that lost its cur/: only that, and the Maildir synced.
        let (make, sync) = creation_plan(
            Path::new("/h/Maildir"),
            &have(&["/h", "/h/Maildir", "/h/Maildir/tmp", "/h/Maildir/new"]),
        );
        assert_eq!((make, sync), (p(&["/h/Maildir/cur"]), p(&["/h/Maildir"])));
        // Complete: nothing to do.
        let (make, sync) = creation_plan(
            Path::new("/h/M"),
            &have(&["/h/M", "/h/M/tmp", "/h/M/new", "/h/M/cur"]),
        );
        assert!(make.is_empty() && sync.is_empty());
    }

    #[test]
    fn create_makes_the_tree_and_reports_failures() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("tern-mdcreate-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir(&base).unwrap();
        let md = base.join("d/u/Maildir");
        create(&md, None).unwrap();
        for sub in ["", "tmp", "new", "cur"] {
            let m = fs::metadata(md.join(sub)).unwrap();
            assert!(m.is_dir());
            assert_eq!(m.permissions().mode() & 0o777, 0o700, "{sub}");
        }
        create(&md, None).unwrap();
        // A file where the Maildir should be: an error naming the path.
        fs::write(base.join("file"), b"x").unwrap();
        let e = create(&base.join("file/Maildir"), None).unwrap_err();
        assert_eq!(e.op, "create directory");
        assert!(e.to_string().contains("file/Maildir"), "{e}");
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn delivers_into_new() {
        let base = std::env::temp_dir().join(format!("tern-maildir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let md = base.join("u/Maildir");
        let p = deliver(
            &md,
            b"Delivered-To: u@x\n",
            &mut &b"Subject: s\r\n\r\nbody\r\n"[..],
            None,
            "h",
        )
        .unwrap();
        assert!(p.starts_with(md.join("new")));
        assert_eq!(
            fs::read(&p).unwrap(),
            b"Delivered-To: u@x\nSubject: s\n\nbody\n"
        );
        assert_eq!(fs::read_dir(md.join("tmp")).unwrap().count(), 0);
        assert!(md.join("cur").is_dir());
        let p2 = deliver(&md, b"", &mut &b"x\r\n"[..], None, "h").unwrap();
        assert_ne!(p, p2);
        fs::remove_dir_all(&base).unwrap();
    }
}
