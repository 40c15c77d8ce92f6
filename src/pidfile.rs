//! The daemon's pid file, `$queue_directory/pid/master.pid`, as Postfix's
//! master keeps it: the pid right-aligned in `4 * sizeof(unsigned long)`
//! characters and a newline (32 on 64-bit systems; Postfix 3.7's
//! `master.c` writes `"%*lu\n"` with that width), mode 0644, and an
//! exclusive `flock` held for the daemon's whole life. The lock, not the
//! file's existence, says whether a daemon runs: a file left by a crash
//! (or by a daemon that could not unlink it after dropping root) is
//! harmless, and a second daemon finds the lock taken and refuses to start.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The pid file under `queue_directory`.
pub fn path(queue_directory: &Path) -> PathBuf {
    queue_directory.join("pid").join("master.pid")
}

/// Width of the pid field, as Postfix computes it.
const WIDTH: usize = 4 * std::mem::size_of::<libc::c_ulong>();

/// The pid file's contents for `pid`.
pub fn format(pid: u32) -> String {
    format!("{pid:>WIDTH$}\n")
}

/// The pid in a pid file's contents (Postfix's or tern's), if any.
pub fn parse(text: &str) -> Option<u32> {
    text.trim().parse().ok().filter(|p| *p > 0)
}

/// The locked pid file of the running daemon; the lock goes with the
/// process (or with [`PidFile::release`]).
#[derive(Debug)]
pub struct PidFile {
    file: File,
    path: PathBuf,
}

/// Why the pid file could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another daemon holds the lock (its pid, when the file names one).
    Running(Option<u32>),
    /// The file or its directory could not be created, opened or locked.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Running(Some(pid)) => {
                write!(f, "the mail system is already running (pid {pid})")
            }
            LockError::Running(None) => write!(f, "the mail system is already running"),
            LockError::Io(p, e) => write!(f, "open lock file {}: {e}", p.display()),
        }
    }
}

fn try_flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    // SAFETY: flock on a descriptor this File owns.
    if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut s).ok()?;
    parse(&s)
}

impl PidFile {
    /// Creates `pid/` if needed and takes the lock, without waiting.
    /// The pid is written by [`PidFile::write_pid`] (after a fork the
    /// child, which inherits the lock, writes its own).
    pub fn lock(queue_directory: &Path) -> Result<PidFile, LockError> {
        let path = path(queue_directory);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LockError::Io(dir.to_path_buf(), e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| LockError::Io(path.clone(), e))?;
        match try_flock(&file, libc::LOCK_EX) {
            Ok(true) => Ok(PidFile { file, path }),
            Ok(false) => Err(LockError::Running(read_pid(&mut file))),
            Err(e) => Err(LockError::Io(path, e)),
        }
    }

    /// Writes this process's pid (replacing what was there) and flushes it.
    pub fn write_pid(&mut self) -> io::Result<()> {
        let text = format(std::process::id());
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// At exit: removes the file (when this user may; after dropping root
    /// it may not, as with Postfix, and the released lock is what counts),
    /// then releases the lock.
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// What the pid file says about a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Locked by a live daemon with this pid.
    Running(u32),
    /// No file, or nobody holds its lock.
    Stopped,
}

/// Is a daemon running for `queue_directory`? Tests the lock with a
/// shared lock taken and dropped at once (readable by anyone: mode 0644).
pub fn state(queue_directory: &Path) -> io::Result<State> {
    let path = path(queue_directory);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::Stopped),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    if try_flock(&file, libc::LOCK_SH)? {
        return Ok(State::Stopped);
    }
    match read_pid(&mut file) {
        Some(pid) => Ok(State::Running(pid)),
        // Locked but not written yet: the daemon is starting.
        None => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is locked but names no pid yet", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_format() {
        let s = format(9859);
        assert_eq!(s.len(), WIDTH + 1);
        assert!(s.ends_with("9859\n") && s.starts_with(' '));
        assert_eq!(parse(&s), Some(9859));
        assert_eq!(parse("  \n"), None);
        assert_eq!(parse("0\n"), None);
    }
}
