//! Power-cut replay harness for the spool: record what the real `tern`
//! binary asks of the file system (strace), then replay every crash point
//! and every allowed loss onto fresh copies of the spool, run recovery
//! through the library, and check that every acknowledged message is found
//! whole and nothing damaged would be delivered.
//!
//! # The file-system model
//!
//! Names and inodes are separate. The recorded operations are: create (a
//! name bound to a new, empty inode in its parent directory), write (bytes
//! at an offset of an inode; `O_APPEND` writes land at the end the file had
//! when they were issued), truncate, rename (`src` to `dst`: atomic, either
//! applied or not), unlink, mkdir, rmdir and link. Operations outside the
//! spool directory are ignored.
//!
//! Barriers: `fsync`/`fdatasync` of a file makes every earlier write and
//! truncate of that inode durable; `fsync` of a directory makes every
//! earlier namespace operation in it durable (create, unlink, mkdir, rmdir
//! in that directory; a rename or link once its *destination* directory is
//! synced); `syncfs` and `sync` make everything earlier durable. A
//! barrier counts from the moment its system call *starts* and an operation
//! from the moment its call *returns*, so calls that overlap in different
//! processes never make each other durable by accident.
//!
//! A power cut after event `k`: every durable operation is applied; of the
//! operations issued before `k` and not durable, ANY subset may be lost.
//! The kept ones are applied in issue order. A lost write leaves zeros where
//! it would have been when a later kept write extends the file past it,
//! and otherwise simply leaves the file shorter. A rename applies to the
//! inode its source named when it was issued, whether or not the create
//! of that name survived (the model is deliberately weaker than ext4's
//! ordered journal, which would keep the create).
//!
//! # Acknowledgments
//!
//! Also read from the trace: a write to a socket containing
//! `250 2.0.0 Ok: queued as ID` (the daemon's answer to DATA; it counts
//! from the start of that call) or the `exit_group(0)` of a process that
//! renamed a queue file into `active/`, `deferred/` or `hold/` (a
//! `tern sendmail`: its exit status is its acknowledgment).
//!
//! # The checker
//!
//! Each crash state is materialized into a scratch directory (tmpfs when
//! there is one) and recovered the way the daemon starts: `Spool::open`
//! (removes dead writers' `incoming/` files), `Spool::scan` (moves
//! unparseable files to `hold/`), then `Spool::open_message` and a full
//! read of every message in `active/` or `deferred/` with a recipient not
//! final. Such a message *would be delivered*; it must be byte-identical
//! to one the test submitted (the `Received:` header tern adds is checked
//! for sanity and skipped, the rest compared exactly, envelope sender and
//! recipients too), or it is TORN. A message acknowledged before the cut
//! must be deliverable whole — or, if the run delivered it (the sink got
//! it), be found with every recipient final or be gone after its queue file
//! was unlinked before the cut. Anything else is a LOSS. A message that
//! was delivered and unlinked before the cut but is deliverable again is a
//! DUPLICATE: allowed (the unlink is lazily durable), and counted.
//!
//! # Using it
//!
//! ```ignore
//! let bed = bed::Bed::new("relayhost = [127.0.0.1]:2525\n"); // tern.conf + spool
//! let base = Fs::snapshot(&bed.spool());        // the spool before recording
//! let d = bed.start_traced();                   // strace -f ... tern run -f
//! // ... submit messages (bed::message, bed::smtp_send), wait for the log ...
//! bed.cut(d);                                   // SIGKILL ends the recording
//! let rec = Recording::from_trace(&bed.trace(), &bed.spool(), base)?;
//! let sampling = Sampling::Systematic { random: 32, seed: 1 };
//! let r = replay(&rec, &submitted, &delivered, sampling, &scratch_dir("name"));
//! bed::check("name", "load", &rec, &r);         // LOSS = TORN = 0, JSON line
//! ```
//!
//! Many subsets give the same file-system state; each distinct state is
//! recovered once (keyed by a hash of every path and content) and judged
//! against the acknowledgments of every crash point that produced it.

#![allow(dead_code)]

pub mod bed;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tern::queue::{QueueDir, Spool};

/// The system calls recorded (`strace -e trace=`). `sendto`/`sendmsg`
/// carry the daemon's SMTP replies; `close` keeps the fd table right.
pub const TRACED_CALLS: &str = "openat,open,creat,write,pwrite64,writev,pwritev,pwritev2,\
ftruncate,truncate,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,link,linkat,\
fsync,fdatasync,syncfs,sync,close,exit_group,sendto,sendmsg";

/// `strace -f -y -xx -s 1048576 -e trace=... -o TRACE -- PROGRAM`: the
/// caller adds PROGRAM's arguments. `-xx` hex-encodes every string and
/// path, so the trace parses without ambiguity; `-y` names each fd's file.
pub fn strace(trace: &Path, program: &str) -> Command {
    let mut c = Command::new("strace");
    c.args(["-f", "-y", "-xx", "-s", "1048576", "-e"])
        .arg(format!("trace={TRACED_CALLS}"))
        .arg("-o")
        .arg(trace)
        .arg("--")
        .arg(program);
    c
}

// ---------------------------------------------------------------------------
// Model

/// What a name is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A regular file: index into the inode table.
    File(usize),
    /// A directory.
    Dir,
}

/// A file-system state: names (relative to the spool root, `/`-separated)
/// and inode contents.
#[derive(Clone, Debug, Default)]
pub struct Fs {
    /// Every name; directories included (the root itself is implicit).
    pub names: BTreeMap<String, Node>,
    /// Contents by inode number.
    pub inodes: Vec<Vec<u8>>,
}

impl Fs {
    /// Reads the tree under `root` (regular files and directories; sockets
    /// and the like are skipped: they hold no mail).
    pub fn snapshot(root: &Path) -> Fs {
        let mut fs_ = Fs::default();
        fn walk(fs_: &mut Fs, root: &Path, rel: &str) {
            let dir = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(rel)
            };
            let rd =
                fs::read_dir(&dir).unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()));
            for ent in rd.flatten() {
                let name = ent.file_name().to_string_lossy().into_owned();
                let r = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let Ok(ft) = ent.file_type() else { continue };
                if ft.is_dir() {
                    fs_.names.insert(r.clone(), Node::Dir);
                    walk(fs_, root, &r);
                } else if ft.is_file() {
                    let data = fs::read(ent.path())
                        .unwrap_or_else(|e| panic!("read {}: {e}", ent.path().display()));
                    fs_.inodes.push(data);
                    fs_.names.insert(r, Node::File(fs_.inodes.len() - 1));
                }
            }
        }
        walk(&mut fs_, root, "");
        fs_
    }

    fn inode(&mut self, ino: usize) -> &mut Vec<u8> {
        if self.inodes.len() <= ino {
            self.inodes.resize(ino + 1, Vec::new());
        }
        &mut self.inodes[ino]
    }

    /// Applies one operation.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Write { ino, off, data } => {
                let f = self.inode(*ino);
                let off = *off as usize;
                if f.len() < off + data.len() {
                    f.resize(off + data.len(), 0);
                }
                f[off..off + data.len()].copy_from_slice(data);
            }
            Op::Truncate { ino, len } => self.inode(*ino).resize(*len as usize, 0),
            Op::Create { ino, .. } | Op::Rename { ino, .. } | Op::Link { ino, .. } => {
                self.inode(*ino);
                apply_names(&mut self.names, op);
            }
            op => apply_names(&mut self.names, op),
        }
    }

    /// A hash of every name and what it holds (inode numbers left out:
    /// two states that read the same are the same state).
    pub fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (name, node) in &self.names {
            name.hash(&mut h);
            match node {
                Node::Dir => 0u8.hash(&mut h),
                Node::File(i) => {
                    1u8.hash(&mut h);
                    self.inodes.get(*i).map(|v| v.as_slice()).hash(&mut h);
                }
            }
        }
        h.finish()
    }

    /// Writes the state into `dir` (emptied first). A file whose directory
    /// was never created in this state gets one anyway: the model keeps no
    /// directory inodes, and tern creates its directories before any file.
    pub fn materialize(&self, dir: &Path) {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        for (name, node) in &self.names {
            let p = dir.join(name);
            match node {
                Node::Dir => {
                    fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()))
                }
                Node::File(i) => {
                    if let Some(parent) = p.parent() {
                        fs::create_dir_all(parent)
                            .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
                    }
                    fs::write(&p, &self.inodes[*i])
                        .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
                }
            }
        }
    }
}

/// The namespace half of [`Fs::apply`] (data operations change nothing here).
fn apply_names(names: &mut BTreeMap<String, Node>, op: &Op) {
    match op {
        Op::Create { path, ino } => {
            names.insert(path.clone(), Node::File(*ino));
        }
        Op::Rename { src, dst, ino } => {
            if names.get(src) == Some(&Node::File(*ino)) {
                names.remove(src);
            }
            names.insert(dst.clone(), Node::File(*ino));
        }
        Op::Unlink { path, ino } => {
            if names.get(path) == Some(&Node::File(*ino)) {
                names.remove(path);
            }
        }
        Op::Link { dst, ino } => {
            names.insert(dst.clone(), Node::File(*ino));
        }
        Op::Mkdir { path } => {
            names.entry(path.clone()).or_insert(Node::Dir);
        }
        Op::Rmdir { path } => {
            if names.get(path) == Some(&Node::Dir) {
                names.remove(path);
            }
        }
        Op::Write { .. } | Op::Truncate { .. } => {}
    }
}

/// One recorded file-system operation (paths relative to the spool root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new name for a new, empty inode.
    Create {
        /// The name.
        path: String,
        /// The inode.
        ino: usize,
    },
    /// Bytes at an offset.
    Write {
        /// The inode.
        ino: usize,
        /// Where.
        off: u64,
        /// What.
        data: Vec<u8>,
    },
    /// New length.
    Truncate {
        /// The inode.
        ino: usize,
        /// Its new length.
        len: u64,
    },
    /// Atomic rename of the inode `src` named when issued.
    Rename {
        /// Old name.
        src: String,
        /// New name.
        dst: String,
        /// The inode moved.
        ino: usize,
    },
    /// A name removed.
    Unlink {
        /// The name.
        path: String,
        /// The inode it named.
        ino: usize,
    },
    /// A second name for an inode.
    Link {
        /// New name.
        dst: String,
        /// The inode.
        ino: usize,
    },
    /// A directory created.
    Mkdir {
        /// Its name.
        path: String,
    },
    /// A directory removed.
    Rmdir {
        /// Its name.
        path: String,
    },
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

impl Op {
    /// Is this operation made durable by `b`?
    fn covered_by(&self, b: &Barrier) -> bool {
        match (b, self) {
            (Barrier::All, _) => true,
            (Barrier::File(i), Op::Write { ino, .. } | Op::Truncate { ino, .. }) => ino == i,
            (Barrier::Dir(d), Op::Create { path, .. })
            | (Barrier::Dir(d), Op::Unlink { path, .. })
            | (Barrier::Dir(d), Op::Mkdir { path })
            | (Barrier::Dir(d), Op::Rmdir { path }) => parent(path) == d,
            (Barrier::Dir(d), Op::Rename { dst, .. } | Op::Link { dst, .. }) => parent(dst) == d,
            _ => false,
        }
    }
}

/// A durability barrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// `fsync`/`fdatasync` of a file.
    File(usize),
    /// `fsync` of a directory (relative path; "" is the spool root).
    Dir(String),
    /// `syncfs` or `sync`.
    All,
}

/// One event of the recording, in the order the kernel saw them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A file-system operation (counts from its return).
    Op(Op),
    /// A barrier (counts from its start).
    Sync(Barrier),
    /// Messages acknowledged (counts from the start of the reply).
    Ack(Vec<String>),
}

/// A recorded run: the spool before it, and everything that happened.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The spool when recording began.
    pub base: Fs,
    /// The events, in order.
    pub events: Vec<Event>,
    /// Every queue ID published during the run, with the final content of
    /// its inode (to tell which submitted message it is).
    pub published: BTreeMap<String, Vec<u8>>,
}

// ---------------------------------------------------------------------------
// Recorder: strace's output into a Recording

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b.get(i + 1) == Some(&b'x') {
            let h = std::str::from_utf8(&b[i + 2..i + 4]).map_err(|e| e.to_string())?;
            out.push(u8::from_str_radix(h, 16).map_err(|e| format!("{h}: {e}"))?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The decoded contents of every `"..."` string in `s`, concatenated.
fn strings(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(a) = rest.find('"') {
        let after = &rest[a + 1..];
        let b = after
            .find('"')
            .ok_or_else(|| format!("unterminated string in {s:.200}"))?;
        out.extend(unhex(&after[..b])?);
        rest = &after[b + 1..];
    }
    Ok(out)
}

/// `3<\x2f...>` → (3, "/..."); `AT_FDCWD</cwd>` → (-100, "/cwd").
fn fd_arg(a: &str) -> Option<(i64, String)> {
    let (num, rest) = a.split_once('<')?;
    let path = rest.strip_suffix('>')?;
    let fd = if num == "AT_FDCWD" {
        -100
    } else {
        num.trim().parse().ok()?
    };
    Some((fd, String::from_utf8_lossy(&unhex(path).ok()?).into_owned()))
}

/// A quoted path argument.
fn path_arg(a: &str) -> Result<String, String> {
    let a = a.trim();
    let inner = a
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .ok_or_else(|| format!("not a path: {a:.100}"))?;
    Ok(String::from_utf8_lossy(&unhex(inner)?).into_owned())
}

/// Splits arguments at top-level commas.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            '{' | '[' | '<' if !quoted => depth += 1,
            '}' | ']' | '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// One completed system call.
#[derive(Debug)]
struct Call {
    pid: u32,
    name: String,
    args: Vec<String>,
    ret: String,
    /// Line index where it started / returned.
    start: usize,
    end: usize,
}

fn parse_calls(text: &str) -> Result<Vec<Call>, String> {
    let mut pending: HashMap<u32, (usize, String)> = HashMap::new();
    let mut calls = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        let (start, full) = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, (n, head.to_string()));
            continue;
        } else if let Some(r) = rest.strip_prefix("<... ") {
            let (_, tail) = r
                .split_once(" resumed>")
                .ok_or_else(|| format!("line {n}: bad resume: {line:.200}"))?;
            let Some((s, head)) = pending.remove(&pid) else {
                // Started before strace attached: nothing to learn.
                continue;
            };
            (s, format!("{head}{tail}"))
        } else {
            (n, rest.to_string())
        };
        let Some(open) = full.find('(') else { continue };
        let name = full[..open].to_string();
        // "name(args) = ret"; strace pads resumed lines before the "=".
        let Some(eq) = full.rfind(" = ") else {
            continue;
        };
        let before = full[..eq].trim_end();
        let Some(close) = before.strip_suffix(')').map(str::len) else {
            continue;
        };
        let ret = full[eq + 3..].trim().to_string();
        calls.push(Call {
            pid,
            name,
            args: split_args(&full[open + 1..close]),
            ret,
            start,
            end: n,
        });
    }
    Ok(calls)
}

#[derive(Clone, Debug)]
struct OpenFd {
    path: String,
    ino: Option<usize>,
    dir: Option<String>,
    off: u64,
    append: bool,
}

struct Builder {
    root: String,
    live: Fs,
    fds: HashMap<(u32, i64), OpenFd>,
    cwd: HashMap<u32, String>,
    events: Vec<(usize, Event)>,
    published_by: HashMap<u32, Vec<String>>,
    published: BTreeMap<String, usize>,
}

const QUEUE_DIRS: [&str; 3] = ["active", "deferred", "hold"];

fn queue_name(rel: &str) -> Option<&str> {
    let (d, name) = rel.split_once('/')?;
    (QUEUE_DIRS.contains(&d) && !name.contains('.') && !name.contains('/')).then_some(name)
}

impl Builder {
    fn rel(&self, abs: &str) -> Option<String> {
        if abs == self.root {
            return Some(String::new());
        }
        abs.strip_prefix(&self.root)
            .and_then(|r| r.strip_prefix('/'))
            .map(|r| r.trim_end_matches('/').to_string())
    }

    fn resolve(&self, pid: u32, dirfd: Option<&str>, path: &str) -> Result<String, String> {
        if path.starts_with('/') {
            return Ok(path.to_string());
        }
        let base = match dirfd.and_then(fd_arg) {
            Some((_, p)) => p,
            None => self
                .cwd
                .get(&pid)
                .cloned()
                .ok_or_else(|| format!("pid {pid}: relative path {path} before any cwd"))?,
        };
        Ok(format!("{base}/{path}"))
    }

    fn op(&mut self, at: usize, op: Op) {
        self.live.apply(&op);
        self.events.push((at, Event::Op(op)));
    }

    fn fd(&self, pid: u32, arg: &str) -> Option<OpenFd> {
        let (fd, path) = fd_arg(arg)?;
        if let Some(f) = self.fds.get(&(pid, fd)) {
            if f.path == path {
                return Some(f.clone());
            }
        }
        // Another thread of the same process: same fd number and file.
        self.fds
            .iter()
            .find(|((_, n), f)| *n == fd && f.path == path)
            .map(|(_, f)| f.clone())
    }

    fn set_off(&mut self, pid: u32, arg: &str, off: u64) {
        if let Some((fd, path)) = fd_arg(arg) {
            let key = self
                .fds
                .iter()
                .find(|((p, n), f)| *n == fd && f.path == path && *p == pid)
                .or_else(|| {
                    self.fds
                        .iter()
                        .find(|((_, n), f)| *n == fd && f.path == path)
                })
                .map(|(k, _)| *k);
            if let Some(k) = key {
                if let Some(f) = self.fds.get_mut(&k) {
                    f.off = off;
                }
            }
        }
    }

    fn data_write(&mut self, c: &Call, data: Vec<u8>, at_off: Option<u64>) -> Result<(), String> {
        let a0 = c.args.first().map(String::as_str).unwrap_or("");
        let Some(f) = self.fd(c.pid, a0) else {
            let (_, path) = fd_arg(a0).unwrap_or((0, String::new()));
            if path.starts_with("socket:") {
                self.ack_check(c, &data);
            } else if self.rel(&path).is_some() {
                return Err(format!("write to untracked spool fd: {a0}"));
            }
            return Ok(());
        };
        let Some(ino) = f.ino else { return Ok(()) };
        let n: usize = c
            .ret
            .split_whitespace()
            .next()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let data = data[..n.min(data.len())].to_vec();
        let off = match at_off {
            Some(o) => o,
            None if f.append => self.live.inodes[ino].len() as u64,
            None => f.off,
        };
        if at_off.is_none() {
            self.set_off(c.pid, a0, off + data.len() as u64);
        }
        self.op(c.end, Op::Write { ino, off, data });
        Ok(())
    }

    fn ack_check(&mut self, c: &Call, data: &[u8]) {
        const NEEDLE: &[u8] = b"250 2.0.0 Ok: queued as ";
        let mut ids = Vec::new();
        let mut rest = data;
        while let Some(i) = rest.windows(NEEDLE.len()).position(|w| w == NEEDLE) {
            let tail = &rest[i + NEEDLE.len()..];
            let id: Vec<u8> = tail
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .copied()
                .collect();
            ids.push(String::from_utf8_lossy(&id).into_owned());
            rest = tail;
        }
        if !ids.is_empty() {
            self.events.push((c.start, Event::Ack(ids)));
        }
    }

    fn call(&mut self, c: &Call) -> Result<(), String> {
        // A failed call changed nothing.
        if c.ret.starts_with('-') && c.name != "exit_group" {
            return Ok(());
        }
        for a in &c.args {
            if let Some(p) = a
                .strip_prefix("AT_FDCWD<")
                .and_then(|p| p.strip_suffix('>'))
            {
                let cwd = String::from_utf8_lossy(&unhex(p)?).into_owned();
                self.cwd.insert(c.pid, cwd);
            }
        }
        let arg = |i: usize| c.args.get(i).map(String::as_str).unwrap_or("");
        match c.name.as_str() {
            "openat" | "open" | "creat" => {
                let Some((fd, abs)) = fd_arg(&c.ret) else {
                    return Ok(());
                };
                self.fds.remove(&(c.pid, fd));
                let Some(rel) = self.rel(&abs) else {
                    return Ok(());
                };
                let flags = match c.name.as_str() {
                    "openat" => arg(2).to_string(),
                    "open" => arg(1).to_string(),
                    _ => "O_CREAT|O_WRONLY|O_TRUNC".to_string(),
                };
                let mut ino = None;
                let mut dir = None;
                match self.live.names.get(&rel).copied() {
                    _ if rel.is_empty() => dir = Some(rel.clone()),
                    Some(Node::Dir) => dir = Some(rel.clone()),
                    Some(Node::File(i)) => {
                        ino = Some(i);
                        if flags.contains("O_TRUNC") {
                            self.op(c.end, Op::Truncate { ino: i, len: 0 });
                        }
                    }
                    None if flags.contains("O_CREAT") => {
                        let i = self.live.inodes.len();
                        self.op(
                            c.end,
                            Op::Create {
                                path: rel.clone(),
                                ino: i,
                            },
                        );
                        ino = Some(i);
                    }
                    None if flags.contains("O_DIRECTORY") => dir = Some(rel.clone()),
                    None => return Err(format!("open of {rel} the model does not know")),
                }
                self.fds.insert(
                    (c.pid, fd),
                    OpenFd {
                        path: abs,
                        ino,
                        dir,
                        off: 0,
                        append: flags.contains("O_APPEND"),
                    },
                );
            }
            "close" => {
                if let Some((fd, _)) = fd_arg(arg(0)) {
                    self.fds.remove(&(c.pid, fd));
                }
            }
            "write" => self.data_write(c, strings(arg(1))?, None)?,
            "writev" => self.data_write(c, strings(arg(1))?, None)?,
            "pwrite64" => {
                let off = arg(3)
                    .parse()
                    .map_err(|e| format!("pwrite64 offset: {e}"))?;
                self.data_write(c, strings(arg(1))?, Some(off))?
            }
            "pwritev" | "pwritev2" => {
                let off = arg(3).parse().map_err(|e| format!("pwritev offset: {e}"))?;
                self.data_write(c, strings(arg(1))?, Some(off))?
            }
            "sendto" | "sendmsg" => {
                if let Some((_, p)) = fd_arg(arg(0)) {
                    if p.starts_with("socket:") {
                        let data = strings(&c.args[1..].join(","))?;
                        self.ack_check(c, &data);
                    }
                }
            }
            "ftruncate" => {
                if let Some(f) = self.fd(c.pid, arg(0)) {
                    if let Some(ino) = f.ino {
                        let len = arg(1).parse().map_err(|e| format!("ftruncate: {e}"))?;
                        self.op(c.end, Op::Truncate { ino, len });
                    }
                }
            }
            "truncate" => {
                let abs = self.resolve(c.pid, None, &path_arg(arg(0))?)?;
                if let Some(rel) = self.rel(&abs) {
                    if let Some(Node::File(ino)) = self.live.names.get(&rel).copied() {
                        let len = arg(1).parse().map_err(|e| format!("truncate: {e}"))?;
                        self.op(c.end, Op::Truncate { ino, len });
                    }
                }
            }
            "rename" | "renameat" | "renameat2" | "link" | "linkat" => {
                let (src, dst) = if c.name == "rename" || c.name == "link" {
                    (
                        self.resolve(c.pid, None, &path_arg(arg(0))?)?,
                        self.resolve(c.pid, None, &path_arg(arg(1))?)?,
                    )
                } else {
                    (
                        self.resolve(c.pid, Some(arg(0)), &path_arg(arg(1))?)?,
                        self.resolve(c.pid, Some(arg(2)), &path_arg(arg(3))?)?,
                    )
                };
                let (rs, rd) = (self.rel(&src), self.rel(&dst));
                if rs.is_none() && rd.is_none() {
                    return Ok(());
                }
                let (Some(rs), Some(rd)) = (rs, rd) else {
                    return Err(format!(
                        "{} across the spool boundary: {src} -> {dst}",
                        c.name
                    ));
                };
                let Some(Node::File(ino)) = self.live.names.get(&rs).copied() else {
                    return Err(format!("{} of {rs}: not a file the model knows", c.name));
                };
                if c.name.starts_with("link") {
                    self.op(
                        c.end,
                        Op::Link {
                            dst: rd.clone(),
                            ino,
                        },
                    );
                } else {
                    self.op(
                        c.end,
                        Op::Rename {
                            src: rs,
                            dst: rd.clone(),
                            ino,
                        },
                    );
                }
                if let Some(id) = queue_name(&rd) {
                    self.published_by
                        .entry(c.pid)
                        .or_default()
                        .push(id.to_string());
                    self.published.insert(id.to_string(), ino);
                }
            }
            "unlink" | "unlinkat" | "rmdir" => {
                let (abs, rmdir) = match c.name.as_str() {
                    "unlinkat" => (
                        self.resolve(c.pid, Some(arg(0)), &path_arg(arg(1))?)?,
                        arg(2).contains("AT_REMOVEDIR"),
                    ),
                    n => (self.resolve(c.pid, None, &path_arg(arg(0))?)?, n == "rmdir"),
                };
                let Some(rel) = self.rel(&abs) else {
                    return Ok(());
                };
                match self.live.names.get(&rel).copied() {
                    Some(Node::File(ino)) if !rmdir => {
                        self.op(c.end, Op::Unlink { path: rel, ino })
                    }
                    Some(Node::Dir) if rmdir => self.op(c.end, Op::Rmdir { path: rel }),
                    other => return Err(format!("{} of {rel}: model has {other:?}", c.name)),
                }
            }
            "mkdir" | "mkdirat" => {
                let abs = if c.name == "mkdir" {
                    self.resolve(c.pid, None, &path_arg(arg(0))?)?
                } else {
                    self.resolve(c.pid, Some(arg(0)), &path_arg(arg(1))?)?
                };
                if let Some(rel) = self.rel(&abs) {
                    if !rel.is_empty() {
                        self.op(c.end, Op::Mkdir { path: rel });
                    }
                }
            }
            "fsync" | "fdatasync" => {
                let Some((_, abs)) = fd_arg(arg(0)) else {
                    return Ok(());
                };
                let Some(rel) = self.rel(&abs) else {
                    return Ok(());
                };
                let b = match self.fd(c.pid, arg(0)) {
                    Some(OpenFd { dir: Some(d), .. }) => Barrier::Dir(d),
                    Some(OpenFd { ino: Some(i), .. }) => Barrier::File(i),
                    _ => match self.live.names.get(&rel) {
                        Some(Node::File(i)) => Barrier::File(*i),
                        _ if rel.is_empty() => Barrier::Dir(rel),
                        Some(Node::Dir) => Barrier::Dir(rel),
                        None => return Err(format!("{} of unknown {rel}", c.name)),
                    },
                };
                self.events.push((c.start, Event::Sync(b)));
            }
            "syncfs" | "sync" => self.events.push((c.start, Event::Sync(Barrier::All))),
            "exit_group" if arg(0) == "0" => {
                if let Some(ids) = self.published_by.remove(&c.pid) {
                    self.events.push((c.start, Event::Ack(ids)));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Recording {
    /// Builds a recording from strace's output file, for the spool at
    /// `root` whose state before the run was `base`.
    pub fn from_trace(trace: &Path, root: &Path, base: Fs) -> Result<Recording, String> {
        let text = fs::read_to_string(trace).map_err(|e| format!("{}: {e}", trace.display()))?;
        Recording::parse(&text, root, base)
    }

    /// Same, from the trace text.
    pub fn parse(text: &str, root: &Path, base: Fs) -> Result<Recording, String> {
        let root = fs::canonicalize(root)
            .map_err(|e| format!("{}: {e}", root.display()))?
            .to_string_lossy()
            .into_owned();
        let mut calls = parse_calls(text)?;
        // The kernel applied them in the order they returned.
        calls.sort_by_key(|c| c.end);
        let mut b = Builder {
            root,
            live: base.clone(),
            fds: HashMap::new(),
            cwd: HashMap::new(),
            events: Vec::new(),
            published_by: HashMap::new(),
            published: BTreeMap::new(),
        };
        for c in &calls {
            b.call(c)
                .map_err(|e| format!("trace line {}: {} : {e}", c.end + 1, c.name))?;
        }
        b.events.sort_by_key(|(at, _)| *at);
        let published = b
            .published
            .iter()
            .map(|(id, ino)| (id.clone(), b.live.inodes[*ino].clone()))
            .collect();
        Ok(Recording {
            base,
            events: b.events.into_iter().map(|(_, e)| e).collect(),
            published,
        })
    }

    /// Counts of (operations, barriers, acknowledged messages).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for e in &self.events {
            match e {
                Event::Op(_) => n.0 += 1,
                Event::Sync(_) => n.1 += 1,
                Event::Ack(ids) => n.2 += ids.len(),
            }
        }
        n
    }

    /// The same run with every barrier removed: what the spool would risk
    /// without its syncs (the harness's negative control).
    pub fn without_syncs(&self) -> Recording {
        let mut r = self.clone();
        r.events.retain(|e| !matches!(e, Event::Sync(_)));
        r
    }

    /// The same run with each acknowledgment moved before the barriers
    /// that precede it (back to the previous op): an acknowledgment that
    /// does not wait for its sync.
    pub fn acks_before_syncs(&self) -> Recording {
        let mut r = self.clone();
        let mut i = 0;
        while i < r.events.len() {
            if matches!(r.events[i], Event::Ack(_)) {
                let mut j = i;
                while j > 0 && matches!(r.events[j - 1], Event::Sync(_)) {
                    r.events.swap(j - 1, j);
                    j -= 1;
                }
            }
            i += 1;
        }
        r
    }
}

// ---------------------------------------------------------------------------
// Replayer and checker

/// A message the test submitted, as tern must store it.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// Unique marker (also in the message).
    pub marker: String,
    /// Envelope sender tern must record.
    pub sender: String,
    /// Envelope recipients.
    pub rcpts: Vec<String>,
    /// The message after tern's `Received:` header: CRLF line ends, not
    /// dot-stuffed.
    pub message: Vec<u8>,
}

/// Which subsets of the volatile operations to replay at each crash point.
#[derive(Clone, Copy, Debug)]
pub enum Sampling {
    /// Every subset; panics past `max_volatile` volatile operations.
    All {
        /// Bound on the volatile operations (2^n subsets).
        max_volatile: usize,
    },
    /// Keep all, lose all, every prefix kept (the rest lost), every single
    /// operation lost, every single operation kept, and `random` seeded
    /// pseudo-random subsets.
    Systematic {
        /// Pseudo-random subsets per crash point.
        random: usize,
        /// Seed.
        seed: u64,
    },
}

/// What recovery makes of one crash state.
#[derive(Clone, Debug, Default)]
struct Recovered {
    /// Would be delivered: Ok(index of the submitted message) or why it is damaged.
    deliverable: BTreeMap<String, Result<usize, String>>,
    /// Found with every recipient final.
    done: BTreeSet<String>,
    /// In hold/, or unreadable.
    other: BTreeSet<String>,
}

/// Results of a replay.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Crash points (one after each event, and one before the first).
    pub crash_points: usize,
    /// Largest number of volatile operations at one crash point.
    pub max_volatile: usize,
    /// Most subsets replayed at one crash point.
    pub max_subsets: usize,
    /// (crash point, subset) pairs replayed.
    pub replays: usize,
    /// Distinct file-system states recovered through the library.
    pub states: usize,
    /// Messages that must survive: acknowledged in the recording, or
    /// already queued when it began.
    pub accepted: usize,
    /// Acknowledged messages accounted for (found whole or delivered) at
    /// the last crash point with nothing lost.
    pub delivered: usize,
    /// Replays where an acknowledged message was missing or damaged.
    pub lost: usize,
    /// Replays where a damaged message would have been delivered.
    pub torn: usize,
    /// Replays where a message delivered and removed before the cut would
    /// be delivered again.
    pub duplicated: usize,
    /// The first failures, described.
    pub failures: Vec<String>,
    /// Wall time of the replay.
    pub elapsed: Duration,
}

impl Report {
    /// One JSON line for the reliability report.
    pub fn json(&self, test: &str, load: &str) -> String {
        format!(
            "{{\"suite\":\"powercut\",\"test\":\"{}\",\"load\":\"{}\",\"faults\":\"{} crash points x up to {} subsets ({} replays, {} distinct states)\",\"accepted\":{},\"delivered\":{},\"lost\":{},\"duplicated\":{}}}",
            json_escape(test),
            json_escape(load),
            self.crash_points,
            self.max_subsets,
            self.replays,
            self.states,
            self.accepted,
            self.delivered,
            self.lost,
            self.duplicated
        )
    }

    /// Appends [`Report::json`] to `$TERN_RELIABILITY_OUT` when set.
    pub fn emit(&self, test: &str, load: &str) {
        let Ok(path) = std::env::var("TERN_RELIABILITY_OUT") else {
            return;
        };
        use std::io::Write;
        let line = self.json(test, load);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        writeln!(f, "{line}").unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

fn json_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// Which submitted message `stored` is (the queue file's message bytes,
/// starting with tern's `Received:` header), or why it is none.
pub fn identify(stored: &[u8], subs: &[Submitted]) -> Result<usize, String> {
    if !stored.starts_with(b"Received: ") {
        return Err(format!(
            "does not start with Received: {:?}",
            preview(stored)
        ));
    }
    // The Received header ends at the first CRLF not followed by a fold.
    let mut i = 0;
    let end = loop {
        let Some(p) = stored[i..].windows(2).position(|w| w == b"\r\n") else {
            return Err("no end to the Received header".into());
        };
        let e = i + p + 2;
        match stored.get(e) {
            Some(b' ') | Some(b'\t') => i = e,
            _ => break e,
        }
    };
    let head = &stored[..end];
    if head.iter().any(|&b| b == 0 || (b >= 0x80)) {
        return Err(format!("damaged Received header {:?}", preview(head)));
    }
    let rest = &stored[end..];
    subs.iter()
        .position(|s| s.message == rest)
        .ok_or_else(|| format!("not a submitted message: {:?}", preview(rest)))
}

fn preview(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned();
    let zeros = b.iter().filter(|&&x| x == 0).count();
    format!("{s}... ({} bytes, {zeros} NUL)", b.len())
}

fn recover(fs_: &Fs, scratch: &Path, subs: &[Submitted]) -> Recovered {
    fs_.materialize(scratch);
    let spool = Spool::open(scratch).unwrap_or_else(|e| panic!("Spool::open after a cut: {e}"));
    let report = spool
        .scan()
        .unwrap_or_else(|e| panic!("Spool::scan after a cut: {e}"));
    let mut r = Recovered::default();
    for h in &report.held {
        r.other
            .insert(h.name.rsplit('/').next().unwrap_or("").to_string());
    }
    for e in &report.entries {
        let id = e.id().to_string();
        if e.dir == QueueDir::Hold {
            r.other.insert(id);
            continue;
        }
        if e.is_done() {
            r.done.insert(id);
            continue;
        }
        let verdict = match spool.open_message(&id) {
            // A refused file is not delivered: fine unless acknowledged.
            Err(_) => {
                r.other.insert(id);
                continue;
            }
            Ok(mut m) => {
                let mut body = Vec::new();
                match m.read_to_end(&mut body) {
                    Err(e) => Err(format!("read: {e}")),
                    Ok(_) => identify(&body, subs).and_then(|i| {
                        let s = &subs[i];
                        let rcpts: Vec<&str> = m
                            .envelope
                            .recipients
                            .iter()
                            .map(|r| r.address.as_str())
                            .collect();
                        if m.envelope.sender != s.sender || rcpts != s.rcpts {
                            Err(format!(
                                "envelope <{}> {rcpts:?} is not the submitted <{}> {:?}",
                                m.envelope.sender, s.sender, s.rcpts
                            ))
                        } else {
                            Ok(i)
                        }
                    }),
                }
            }
        };
        r.deliverable.insert(id, verdict);
    }
    r
}

/// A small deterministic PRNG (xorshift64*), for reproducible samples.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn subsets(m: usize, sampling: Sampling, point: usize) -> Vec<Vec<bool>> {
    match sampling {
        Sampling::All { max_volatile } => {
            assert!(
                m <= max_volatile,
                "{m} volatile operations at crash point {point}: more than {max_volatile} to enumerate"
            );
            (0..1u64 << m)
                .map(|bits| (0..m).map(|i| bits & (1 << i) != 0).collect())
                .collect()
        }
        Sampling::Systematic { random, seed } => {
            let mut out: Vec<Vec<bool>> = Vec::new();
            for j in 0..=m {
                out.push((0..m).map(|i| i < j).collect()); // prefixes: none .. all
            }
            for j in 0..m {
                out.push((0..m).map(|i| i != j).collect()); // one lost
                out.push((0..m).map(|i| i == j).collect()); // one kept
            }
            let mut rng = Rng(seed ^ (point as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            for _ in 0..random {
                out.push((0..m).map(|_| rng.next() & 1 == 1).collect());
            }
            out.sort();
            out.dedup();
            out
        }
    }
}

/// Replays `rec` at every crash point with the subsets `sampling` picks,
/// recovers each state in `scratch` and judges it. `subs` are the
/// messages the test submitted; `delivered` the queue IDs the run's
/// relay received.
pub fn replay(
    rec: &Recording,
    subs: &[Submitted],
    delivered: &BTreeSet<String>,
    sampling: Sampling,
    scratch: &Path,
) -> Report {
    let t0 = Instant::now();
    let n = rec.events.len();
    // When each op becomes durable (index of the covering barrier).
    let mut durable_at = vec![usize::MAX; n];
    for (i, e) in rec.events.iter().enumerate() {
        if let Event::Op(op) = e {
            durable_at[i] = rec.events[i + 1..]
                .iter()
                .position(|b| matches!(b, Event::Sync(b) if op.covered_by(b)))
                .map(|p| i + 1 + p)
                .unwrap_or(usize::MAX);
        }
    }
    // When each queue file was unlinked (its message gone for good).
    let mut removed_at: HashMap<String, usize> = HashMap::new();
    for (i, e) in rec.events.iter().enumerate() {
        if let Event::Op(Op::Unlink { path, .. }) = e {
            if let Some(id) = queue_name(path) {
                removed_at.entry(id.to_string()).or_insert(i);
            }
        }
    }
    let mut report = Report {
        crash_points: n + 1,
        ..Report::default()
    };
    let mut cache: HashMap<u64, Recovered> = HashMap::new();
    // Messages already queued before the recording were acknowledged
    // then: they must survive every cut too.
    let mut acked: Vec<String> = rec
        .base
        .names
        .keys()
        .filter_map(|n| queue_name(n).map(str::to_string))
        .collect();
    let mut seen_ack: HashSet<String> = acked.iter().cloned().collect();
    let fail = |report: &mut Report, what: String| {
        if report.failures.len() < 10 {
            report.failures.push(what);
        }
    };
    for k in 0..=n {
        if k > 0 {
            if let Event::Ack(ids) = &rec.events[k - 1] {
                for id in ids {
                    if seen_ack.insert(id.clone()) {
                        acked.push(id.clone());
                    }
                }
            }
        }
        let volatile: Vec<usize> = (0..k)
            .filter(|&i| matches!(rec.events[i], Event::Op(_)) && durable_at[i] >= k)
            .collect();
        report.max_volatile = report.max_volatile.max(volatile.len());
        let sets = subsets(volatile.len(), sampling, k);
        report.max_subsets = report.max_subsets.max(sets.len());
        for keep in sets {
            report.replays += 1;
            let kept: HashSet<usize> = volatile
                .iter()
                .zip(&keep)
                .filter(|(_, &k)| k)
                .map(|(i, _)| *i)
                .collect();
            let applied: Vec<usize> = (0..k)
                .filter(|&i| {
                    matches!(rec.events[i], Event::Op(_))
                        && (durable_at[i] < k || kept.contains(&i))
                })
                .collect();
            // The state is fixed by the names and, for each inode they
            // reach, the data operations applied to it: a cheap key that
            // avoids building (and hashing) the contents of every replay.
            let mut names = rec.base.names.clone();
            let mut data: HashMap<usize, Vec<usize>> = HashMap::new();
            for &i in &applied {
                if let Event::Op(op) = &rec.events[i] {
                    match op {
                        Op::Write { ino, .. } | Op::Truncate { ino, .. } => {
                            data.entry(*ino).or_default().push(i)
                        }
                        op => apply_names(&mut names, op),
                    }
                }
            }
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for (name, node) in &names {
                (name, node).hash(&mut h);
                if let Node::File(ino) = node {
                    data.get(ino).hash(&mut h);
                }
            }
            let r = cache.entry(h.finish()).or_insert_with(|| {
                let mut st = rec.base.clone();
                for &i in &applied {
                    if let Event::Op(op) = &rec.events[i] {
                        st.apply(op);
                    }
                }
                recover(&st, scratch, subs)
            });
            let lost_ops = || {
                volatile
                    .iter()
                    .zip(&keep)
                    .filter(|(_, &k)| !k)
                    .map(|(i, _)| format!("#{i} {}", short(&rec.events[*i])))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let mut lost = false;
            let mut torn = false;
            let mut dup = false;
            for (id, v) in &r.deliverable {
                match v {
                    Err(why) => {
                        torn = true;
                        fail(&mut report, format!("TORN at crash point {k} ({}): {id} would be delivered but {why}; lost: {}", at(rec, k), lost_ops()));
                    }
                    Ok(_) => {
                        if removed_at.get(id).is_some_and(|&j| j < k) {
                            dup = true;
                        }
                    }
                }
            }
            for id in &acked {
                let ok = match r.deliverable.get(id) {
                    Some(Ok(_)) => true,
                    Some(Err(_)) => false,
                    None if r.done.contains(id) => delivered.contains(id),
                    None => {
                        delivered.contains(id)
                            && removed_at.get(id).is_some_and(|&j| j < k)
                            && !r.other.contains(id)
                    }
                };
                if !ok {
                    lost = true;
                    fail(&mut report, format!("LOSS at crash point {k} ({}): acknowledged {id} not found whole (recovered: {r:?}); lost: {}", at(rec, k), lost_ops()));
                }
            }
            report.lost += lost as usize;
            report.torn += torn as usize;
            report.duplicated += dup as usize;
        }
    }
    // The final state, everything kept: how many acknowledged messages
    // are accounted for.
    let mut all = rec.base.clone();
    for e in &rec.events {
        if let Event::Op(op) = e {
            all.apply(op);
        }
    }
    let r = recover(&all, scratch, subs);
    report.accepted = acked.len();
    report.delivered = acked
        .iter()
        .filter(|id| match r.deliverable.get(*id) {
            Some(Ok(_)) => true,
            Some(Err(_)) => false,
            None => delivered.contains(*id),
        })
        .count();
    report.states = cache.len();
    report.elapsed = t0.elapsed();
    let _ = fs::remove_dir_all(scratch);
    report
}

fn at(rec: &Recording, k: usize) -> String {
    if k == 0 {
        "before the first event".into()
    } else {
        format!("after #{} {}", k - 1, short(&rec.events[k - 1]))
    }
}

fn short(e: &Event) -> String {
    match e {
        Event::Op(Op::Write { ino, off, data }) => {
            format!("write ino {ino} @{off} +{}", data.len())
        }
        Event::Op(op) => format!("{op:?}"),
        e => format!("{e:?}"),
    }
}

/// Maps published queue IDs to submitted messages by their final
/// content; with `delivered_markers` (markers the relay received), the
/// set of queue IDs delivered.
pub fn delivered_ids(
    rec: &Recording,
    subs: &[Submitted],
    delivered_markers: &BTreeSet<String>,
) -> BTreeSet<String> {
    rec.published
        .iter()
        .filter_map(|(id, content)| {
            let body_at = content.windows(5).position(|w| w == b"\nend\n")? + 5;
            let i = identify(&content[body_at..], subs).ok()?;
            delivered_markers
                .contains(&subs[i].marker)
                .then(|| id.clone())
        })
        .collect()
}

/// A scratch directory for materialized states: on tmpfs when possible.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("tern-powercut-{name}-{}", std::process::id()))
}
