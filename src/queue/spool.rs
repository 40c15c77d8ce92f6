//! The spool directory on flash: publishing queue files atomically, the
//! state logs, scanning, moving and removing. This is the I/O driver around
//! [`super::envelope`] and [`super::state`]; docs/spool.md gives the
//! crash-safety argument.

use super::envelope::{self, Envelope, EnvelopeError, Flags, Recipient, ValueError};
use super::state::{self, Folded, Outcome, RcptState, Status};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Size of the write buffer of an [`Incoming`]: the body reaches the file in
/// chunks of this size, never whole.
pub const WRITE_BUF: usize = 8192;
/// Temporary files in `incoming/` older than this are removed at open even
/// if their writer's PID seems alive (PID reuse after a reboot).
pub const STALE_TMP_SECS: u64 = 24 * 3600;

/// The sub-directories of the queue directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueDir {
    /// Due or being delivered.
    Active,
    /// Waiting for a retry time.
    Deferred,
    /// Not delivered: held by the admin, or unreadable files (never deleted).
    Hold,
}

impl QueueDir {
    /// Directory name under the queue directory.
    pub fn name(self) -> &'static str {
        match self {
            QueueDir::Active => "active",
            QueueDir::Deferred => "deferred",
            QueueDir::Hold => "hold",
        }
    }
    const ALL: [QueueDir; 3] = [QueueDir::Active, QueueDir::Deferred, QueueDir::Hold];
}

/// Errors of the spool; every variant names the file or queue ID concerned.
#[derive(Debug)]
pub enum SpoolError {
    /// A system call failed.
    Io {
        /// What was being done (`"fsync"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A queue file that cannot be parsed.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: Corruption,
    },
    /// The message exceeds the size limit given at [`Spool::create`].
    TooBig {
        /// The limit in bytes.
        limit: u64,
    },
    /// An envelope value is unusable (address with control characters, ...).
    Invalid(ValueError),
    /// No queue file with this ID in active/, deferred/ or hold/.
    NotFound {
        /// The queue ID asked for.
        id: String,
    },
    /// An outcome names a recipient index the envelope does not have.
    BadRecipient {
        /// Queue ID.
        id: String,
        /// Index given.
        index: usize,
        /// Number of recipients in the envelope.
        count: usize,
    },
    /// The [`Incoming`] failed before (write error or size limit) and cannot be committed.
    Unusable {
        /// Queue ID.
        id: String,
    },
}

/// Why a queue file is unreadable.
#[derive(Debug)]
pub enum Corruption {
    /// The envelope does not parse.
    Envelope(EnvelopeError),
    /// The file is shorter or longer than envelope + `size`.
    SizeMismatch {
        /// Bytes the envelope promises (envelope block + message).
        expected: u64,
        /// Bytes in the file.
        actual: u64,
    },
    /// The `id` line disagrees with the file name.
    IdMismatch {
        /// ID in the envelope.
        inside: String,
    },
    /// A file name in active/ or deferred/ that is not a queue ID.
    StrayName,
    /// A state log larger than [`state::MAX_LOG`].
    StateTooLarge,
    /// The message bytes do not match the envelope's `check`: a write of
    /// the file was lost (a power cut before the commit's sync: the
    /// message was never acknowledged) or the flash returned bad data.
    CheckMismatch {
        /// The `check` value in the envelope.
        expected: u32,
        /// The CRC of what the file holds.
        actual: u32,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::Envelope(e) => write!(f, "{e}"),
            Corruption::SizeMismatch { expected, actual } => write!(
                f,
                "file has {actual} bytes, envelope says {expected} (truncated or appended to)"
            ),
            Corruption::IdMismatch { inside } => {
                write!(f, "envelope id {inside} differs from the file name")
            }
            Corruption::StrayName => write!(f, "file name is not a queue ID"),
            Corruption::StateTooLarge => {
                write!(f, "state log larger than {} bytes", state::MAX_LOG)
            }
            Corruption::CheckMismatch { expected, actual } => write!(
                f,
                "message bytes do not match the envelope's check ({actual:08x}, expected \
                 {expected:08x}): a write lost in a power cut before the commit, or bad flash"
            ),
        }
    }
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Io { op, path, source } => {
                write!(f, "{op} {}: {source}", path.display())
            }
            SpoolError::Corrupt { path, reason } => {
                write!(f, "{}: corrupt queue file: {reason}", path.display())
            }
            SpoolError::TooBig { limit } => {
                write!(f, "message file too big (limit {limit} bytes)")
            }
            SpoolError::Invalid(e) => write!(f, "{e}"),
            SpoolError::NotFound { id } => write!(f, "{id}: no such queue file"),
            SpoolError::BadRecipient { id, index, count } => write!(
                f,
                "{id}: recipient index {index} out of range ({count} recipients)"
            ),
            SpoolError::Unusable { id } => {
                write!(f, "{id}: queue file failed earlier, cannot commit")
            }
        }
    }
}

impl std::error::Error for SpoolError {}

impl embedded_io::Error for SpoolError {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind;
        match self {
            SpoolError::Io { source, .. } => source.kind().into(),
            SpoolError::Corrupt { .. } => ErrorKind::InvalidData,
            SpoolError::Invalid(_) => ErrorKind::InvalidInput,
            SpoolError::NotFound { .. } => ErrorKind::NotFound,
            // The variant itself says more than any ErrorKind could.
            SpoolError::TooBig { .. }
            | SpoolError::BadRecipient { .. }
            | SpoolError::Unusable { .. } => ErrorKind::Other,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Counters of what the spool asked of the flash, for docs and tuning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// `syncfs` calls on the spool's file system (one per group commit,
    /// one per lazy bookkeeping sync).
    pub fs_syncs: u64,
    /// `fdatasync` calls (only when two state logs of one message are
    /// merged after a crash).
    pub file_syncs: u64,
    /// Bytes written to queue files and state logs.
    pub bytes_written: u64,
    /// Renames (publishing, moving between directories).
    pub renames: u64,
}

#[derive(Default)]
struct Counters {
    fs_syncs: AtomicU64,
    file_syncs: AtomicU64,
    bytes_written: AtomicU64,
    renames: AtomicU64,
}

struct Inner {
    root: PathBuf,
    /// The queue directory, open: the handle `syncfs` is called on.
    root_dir: File,
    incoming: PathBuf,
    dirs: [PathBuf; 3],
    counters: Counters,
    /// Milliseconds since the epoch when bookkeeping (a removal, a state
    /// record, a move) was first left unsynced since the last `syncfs`;
    /// 0 when everything is durable. See [`Spool::sync_if_due`].
    dirty_since_ms: AtomicU64,
    /// The first repairing scan reads every message to check it against
    /// its `check` (torn files only arise from a crash before start).
    verified: std::sync::atomic::AtomicBool,
}

impl Inner {
    fn dir(&self, d: QueueDir) -> &Path {
        match d {
            QueueDir::Active => &self.dirs[0],
            QueueDir::Deferred => &self.dirs[1],
            QueueDir::Hold => &self.dirs[2],
        }
    }

    /// One `syncfs` of the spool's file system: everything written,
    /// renamed and unlinked in the spool before it is durable after it.
    /// This is the commit's only sync; it also makes the lazily written
    /// bookkeeping durable.
    fn sync_fs(&self) -> Result<(), SpoolError> {
        // Cleared before the sync: bookkeeping issued while it runs marks
        // the spool dirty again and is synced later.
        self.dirty_since_ms.store(0, Ordering::Relaxed);
        syncfs(&self.root_dir).map_err(io_err("syncfs", &self.root))?;
        self.counters.fs_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Bookkeeping was written without a sync: remember since when.
    fn mark_dirty(&self) {
        let now = now_millis().max(1);
        let _ = self
            .dirty_since_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn sync_file(&self, f: &File, path: &Path) -> Result<(), SpoolError> {
        f.sync_data().map_err(io_err("fdatasync", path))?;
        self.counters.file_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), SpoolError> {
        fs::rename(from, to).map_err(io_err("rename", from))?;
        self.counters.renames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Sequence number in the names of temporary files in `incoming/`.
static TEMP_SEQ: AtomicU32 = AtomicU32::new(0);

/// The spool: `incoming/` (files being written), `active/`, `deferred/`,
/// `hold/`, and `public/` (the wake-up socket) under the queue directory.
/// Several processes may use one spool at once (the daemon and any number
/// of `sendmail`s); only the daemon should call the mutating queue-manager
/// methods ([`Spool::scan`], [`Spool::record`], [`Spool::move_to`], [`Spool::remove`]).
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
    removed_at_open: usize,
}

/// What to queue: the envelope of a new message.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// Envelope sender; empty for `<>`.
    pub sender: &'a str,
    /// Envelope recipients (at least one).
    pub recipients: &'a [Recipient],
    /// Arrival time, seconds since the epoch.
    pub arrival: u64,
    /// Client description for logs (`host[ip]`, `local`).
    pub client: &'a str,
    /// Per-message flags.
    pub flags: Flags,
    /// Largest message accepted in bytes (`message_size_limit`); 0 = no limit.
    pub size_limit: u64,
    /// Publish into `deferred/` instead of `active/` (e.g. a bounce to send later).
    pub deferred: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IncState {
    Open,
    Failed,
    Renamed,
    Committed,
}

/// A queue file being written: stream the message with [`Incoming::write`],
/// then publish it with [`Incoming::commit`] or [`Spool::commit_batch`].
/// Dropped without commit, the temporary file is removed.
pub struct Incoming {
    inner: Arc<Inner>,
    id: String,
    file: File,
    tmp: PathBuf,
    buf: Box<[u8; WRITE_BUF]>,
    fill: usize,
    size_at: u64,
    /// The head has the reserved `flags` slot ([`Spool::create_with_flag_slot`]).
    flag_slot: bool,
    /// The message is `tls-required-no` (from the caller's flags, or set
    /// into the slot when the file is published).
    tls_required_no: bool,
    /// CRC-32 of the message bytes so far (the envelope's `check`).
    crc: u32,
    body: u64,
    limit: u64,
    target: QueueDir,
    state: IncState,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("id", &self.id)
            .field("size", &self.body)
            .field("state", &self.state)
            .finish()
    }
}

/// One queued message as [`Spool::scan`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Where the file is.
    pub dir: QueueDir,
    /// The envelope (ID, sender, recipients, sizes, flags).
    pub envelope: Envelope,
    /// One state per envelope recipient, same order.
    pub rcpts: Vec<RcptState>,
    /// Bytes of the queue file on flash (envelope + message).
    pub file_size: u64,
    /// Earliest time a non-final recipient is due (arrival time for never
    /// tried ones); `None` when every recipient is final (remove it).
    pub next_attempt: Option<u64>,
}

impl QueueEntry {
    /// The queue ID.
    pub fn id(&self) -> &str {
        &self.envelope.id
    }
    /// True when every recipient is delivered or bounced.
    pub fn is_done(&self) -> bool {
        self.next_attempt.is_none()
    }
}

/// A file moved to `hold/` because it could not be parsed.
#[derive(Debug)]
pub struct HeldFile {
    /// Its name (now under `hold/`).
    pub name: String,
    /// Why.
    pub error: SpoolError,
}

/// Result of [`Spool::scan`] / [`Spool::list`].
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Readable messages in active/, deferred/ and hold/.
    pub entries: Vec<QueueEntry>,
    /// Files moved to hold/ by this scan (only [`Spool::scan`] moves).
    pub held: Vec<HeldFile>,
    /// Unreadable files seen but left where they are ([`Spool::list`], or already in hold/).
    pub unreadable: Vec<SpoolError>,
    /// Torn or garbled state records ignored (normal after a crash).
    pub ignored_state_records: usize,
}

/// A queued message opened for delivery: envelope, recipient states and a
/// reader for the message bytes (buffered with a fixed 8 KiB buffer).
pub struct MessageReader {
    /// Directory the file was found in.
    pub dir: QueueDir,
    /// The envelope.
    pub envelope: Envelope,
    /// Per-recipient state, envelope order.
    pub rcpts: Vec<RcptState>,
    body: io::Take<BufReader<File>>,
}

impl fmt::Debug for MessageReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageReader")
            .field("id", &self.envelope.id)
            .finish()
    }
}

impl Read for MessageReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.body.read(buf)
    }
}

impl MessageReader {
    /// The open queue file with the offset and length of the message bytes
    /// not read yet, for handing the file to another process (local
    /// delivery as the recipient) that reads it with `pread`.
    pub fn file_span(&mut self) -> io::Result<(&File, u64, u64)> {
        let len = self.body.limit();
        let pos = self.body.get_mut().stream_position()?;
        Ok((self.body.get_ref().get_ref(), pos, len))
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `syncfs(2)` on the file system holding `f`.
fn syncfs(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `f` keeps open.
    if unsafe { libc::syncfs(f.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads the `len` message bytes of `file` from `at` and checks them (with
/// `env`'s flags) against `env.check`; leaves the file anywhere.
fn verify_check(file: &mut File, at: u64, env: &Envelope, path: &Path) -> Result<(), SpoolError> {
    let Some(expected) = env.check else {
        return Ok(());
    };
    file.seek(SeekFrom::Start(at))
        .map_err(io_err("seek", path))?;
    let mut buf = [0u8; 4096];
    let mut left = env.size;
    let mut crc = 0;
    while left > 0 {
        let want = (buf.len() as u64).min(left) as usize;
        let n = file.read(&mut buf[..want]).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        crc = envelope::crc32(crc, &buf[..n]);
        left -= n as u64;
    }
    let actual = envelope::finish_check(crc, &env.flags);
    if left > 0 || actual != expected {
        return Err(SpoolError::Corrupt {
            path: path.to_path_buf(),
            reason: Corruption::CheckMismatch { expected, actual },
        });
    }
    Ok(())
}

fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// A `sendmail` run by root writes into a spool that the daemon, after
/// dropping privileges, owns as `mail_owner`: the file must belong to the
/// spool's owner too, or the daemon cannot read it (mode 0600).
fn give_to_spool_owner(file: &File, dir: &Path) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let m = fs::metadata(dir)?;
    if m.uid() == 0 {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(m.uid()), Some(m.gid()))
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

impl Spool {
    /// Opens (creating if needed) the spool under `queue_directory`, and
    /// removes temporary files in `incoming/` whose writer is gone: such
    /// files were never acknowledged. Files of live writers (another
    /// `sendmail` right now) are left alone.
    pub fn open(queue_directory: &Path) -> Result<Spool, SpoolError> {
        let root = queue_directory.to_path_buf();
        let incoming = root.join("incoming");
        let dirs = QueueDir::ALL.map(|d| root.join(d.name()));
        for d in [&root, &incoming, &root.join("public")]
            .into_iter()
            .chain(dirs.iter())
        {
            fs::create_dir_all(d).map_err(io_err("mkdir", d))?;
        }
        let root_dir = File::open(&root).map_err(io_err("open", &root))?;
        let inner = Arc::new(Inner {
            root,
            root_dir,
            incoming,
            dirs,
            counters: Counters::default(),
            dirty_since_ms: AtomicU64::new(0),
            verified: std::sync::atomic::AtomicBool::new(false),
        });
        let mut spool = Spool {
            inner,
            removed_at_open: 0,
        };
        spool.removed_at_open = spool.clean_incoming()?;
        Ok(spool)
    }

    fn clean_incoming(&self) -> Result<usize, SpoolError> {
        let dir = &self.inner.incoming;
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for ent in fs::read_dir(dir).map_err(io_err("readdir", dir))? {
            let ent = ent.map_err(io_err("readdir", dir))?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            let pid: Option<i32> = name.split('.').next().and_then(|p| p.parse().ok());
            let old = ent
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age.as_secs() > STALE_TMP_SECS);
            let orphan = match pid {
                Some(p) => p != std::process::id() as i32 && !pid_alive(p),
                None => true,
            };
            if orphan || old {
                let path = ent.path();
                match fs::remove_file(&path) {
                    Ok(()) => {
                        removed += 1;
                        log::info!("removed unfinished queue file {}", path.display());
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("unlink", &path)(e)),
                }
            }
        }
        Ok(removed)
    }

    /// Number of unfinished temporary files [`Spool::open`] removed.
    pub fn removed_at_open(&self) -> usize {
        self.removed_at_open
    }

    /// The queue directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// What this process has asked of the flash so far through this spool.
    pub fn io_stats(&self) -> IoStats {
        let c = &self.inner.counters;
        IoStats {
            fs_syncs: c.fs_syncs.load(Ordering::Relaxed),
            file_syncs: c.file_syncs.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            renames: c.renames.load(Ordering::Relaxed),
        }
    }

    /// Starts a queue file: allocates the queue ID and writes the envelope
    /// into the (fixed) write buffer. The ID is the microseconds of the
    /// clock (5 hex digits) followed by the file's inode number (at least 7
    /// hex digits), as Postfix does: two live files never share an inode, so
    /// two queued messages never share an ID, whichever process wrote them.
    pub fn create(&self, msg: &NewMessage<'_>) -> Result<Incoming, SpoolError> {
        self.create_inner(msg, false)
    }

    /// [`Spool::create`] with room in the envelope for a flag learnt from
    /// the message as it streams ([`Incoming::set_tls_required_no`]):
    /// smtpd writes the envelope before the header arrives. The room is a
    /// `flags` record of blanks, which every version of tern reads as no
    /// flag.
    pub fn create_with_flag_slot(&self, msg: &NewMessage<'_>) -> Result<Incoming, SpoolError> {
        self.create_inner(msg, true)
    }

    fn create_inner(&self, msg: &NewMessage<'_>, flag_slot: bool) -> Result<Incoming, SpoolError> {
        let inner = &self.inner;
        // One counter per process, not per `Spool`: two spools opened on
        // the same directory in one process (threads) must not pick the
        // same temporary name in the same microsecond.
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = inner.incoming.join(format!(
            "{}.{}.{}",
            std::process::id(),
            seq,
            now_micros() % 1_000_000_000
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let ino = file.metadata().map_err(io_err("fstat", &tmp))?.ino();
        let id = format!("{:05X}{:07X}", now_micros() % 1_000_000, ino);
        // The envelope is encoded straight from the caller's borrowed
        // sender and recipients into the fixed write buffer: no owned copy
        // of the recipient list, no encoded block in between (with 1000
        // long recipients those were about 1 MB for the length of this call).
        let head = envelope::EnvelopeHead {
            id: &id,
            arrival: msg.arrival,
            size: 0,
            check: envelope::Check::Pending,
            flags: &msg.flags,
            client: msg.client,
            sender: msg.sender,
            recipients: msg.recipients,
            flag_slot,
        };
        // Checked before anything is written; on error the file (still
        // empty) is removed as before.
        let checked = envelope::check_head(&head);
        let mut inc = Incoming {
            inner: Arc::clone(inner),
            id: String::new(),
            file,
            tmp,
            buf: Box::new([0u8; WRITE_BUF]),
            fill: 0,
            size_at: 0,
            flag_slot: false,
            tls_required_no: msg.flags.tls_required_no,
            crc: 0,
            body: 0,
            limit: msg.size_limit,
            target: if msg.deferred {
                QueueDir::Deferred
            } else {
                QueueDir::Active
            },
            state: IncState::Open,
        };
        // On error `inc` is dropped here and removes the temporary file.
        give_to_spool_owner(&inc.file, &inner.incoming).map_err(io_err("fchown", &inc.tmp))?;
        checked.map_err(SpoolError::Invalid)?;
        // A head larger than WRITE_BUF reaches the file in WRITE_BUF
        // chunks, as the body does; nothing is synced here (the commit
        // patches size and check in, renames, and syncs the file system).
        let size_at = envelope::write_head(&head, &mut |b: &[u8]| inc.put(b))?;
        inc.size_at = size_at as u64;
        inc.flag_slot = flag_slot;
        inc.id = id;
        Ok(inc)
    }

    /// Publishes several finished messages with ONE sync: each file gets
    /// its `size` and `check` (one write), is renamed into `active/` (or
    /// `deferred/`), and then one `syncfs` makes all of them durable at
    /// once — files, renames, and the bookkeeping written lazily since the
    /// last sync. Sessions that finish DATA at about the same time share
    /// it. Afterwards check [`Incoming::is_committed`] on each: only those
    /// may be acknowledged. Returns the first error met, if any.
    ///
    /// Why no sync of the file before its rename: a cut before the
    /// `syncfs` may keep the rename and lose some of the file's writes,
    /// but such a file was never acknowledged, and its `check` (or its
    /// unpatched `size`/`check`) tells it apart at the next start, which
    /// moves it to `hold/` (docs/spool.md).
    pub fn commit_batch(&self, batch: &mut [Incoming]) -> Result<(), SpoolError> {
        let mut first_err = None;
        let mut any = false;
        for inc in batch.iter_mut() {
            if inc.state != IncState::Open {
                if inc.state == IncState::Failed && first_err.is_none() {
                    first_err = Some(SpoolError::Unusable { id: inc.id.clone() });
                }
                continue;
            }
            match inc.publish() {
                Ok(()) => any = true,
                Err(e) => {
                    inc.state = IncState::Failed;
                    let _ = fs::remove_file(&inc.tmp);
                    first_err.get_or_insert(e);
                }
            }
        }
        if any {
            let res = self.inner.sync_fs();
            for inc in batch.iter_mut() {
                if inc.state == IncState::Renamed {
                    // Not acknowledged if the sync failed: the file stays
                    // (it may still be delivered; SMTP's duplicate
                    // window), the client retries.
                    inc.state = if res.is_ok() {
                        IncState::Committed
                    } else {
                        IncState::Failed
                    };
                }
            }
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Makes the lazily written bookkeeping (removals, state records,
    /// moves) durable with one `syncfs` if some of it has waited `delay`
    /// or longer; the daemon calls this from a timer, which bounds how
    /// many completed deliveries a power cut can make tern repeat. A group
    /// commit syncs it too, so under load this never runs. Returns whether
    /// it synced.
    pub fn sync_if_due(&self, delay: std::time::Duration) -> Result<bool, SpoolError> {
        let since = self.inner.dirty_since_ms.load(Ordering::Relaxed);
        if since == 0 || now_millis().saturating_sub(since) < delay.as_millis() as u64 {
            return Ok(false);
        }
        self.inner.sync_fs().map(|()| true)
    }

    /// Syncs pending bookkeeping now, if there is any (at shutdown).
    pub fn sync_pending(&self) -> Result<bool, SpoolError> {
        self.sync_if_due(std::time::Duration::ZERO)
    }

    /// True when some bookkeeping is not durable yet.
    pub fn has_unsynced(&self) -> bool {
        self.inner.dirty_since_ms.load(Ordering::Relaxed) != 0
    }

    fn find(&self, id: &str) -> Result<(QueueDir, PathBuf), SpoolError> {
        if !envelope::is_queue_id(id) {
            return Err(SpoolError::NotFound { id: id.to_string() });
        }
        for d in QueueDir::ALL {
            let p = self.inner.dir(d).join(id);
            if p.exists() {
                return Ok((d, p));
            }
        }
        Err(SpoolError::NotFound { id: id.to_string() })
    }

    /// Opens a queued message for delivery.
    pub fn open_message(&self, id: &str) -> Result<MessageReader, SpoolError> {
        let (dir, path) = self.find(id)?;
        let (env, head_len, mut file) = read_envelope(&path)?;
        // Checked before a byte is handed on, so nothing damaged is ever
        // delivered (a bad flash block after start; torn files from a cut
        // are already moved away by the first scan).
        verify_check(&mut file, head_len, &env, &path)?;
        let folded = self.read_state(dir, &env)?;
        file.seek(SeekFrom::Start(head_len))
            .map_err(io_err("seek", &path))?;
        Ok(MessageReader {
            dir,
            rcpts: folded.rcpts,
            body: BufReader::with_capacity(WRITE_BUF, file).take(env.size),
            envelope: env,
        })
    }

    fn read_state(&self, dir: QueueDir, env: &Envelope) -> Result<Folded, SpoolError> {
        // The log normally sits next to its message; after an interrupted
        // move it may still be in the other directory (IDs are unique, so
        // a log of that name can only be this message's).
        let name = format!("{}.state", env.id);
        let mut path = self.inner.dir(dir).join(&name);
        if !path.exists() {
            if let Some(p) = QueueDir::ALL
                .iter()
                .map(|d| self.inner.dir(*d).join(&name))
                .find(|p| p.exists())
            {
                path = p;
            }
        }
        let mut log = Vec::new();
        match File::open(&path) {
            Ok(f) => {
                f.take(state::MAX_LOG as u64 + 1)
                    .read_to_end(&mut log)
                    .map_err(io_err("read", &path))?;
                if log.len() > state::MAX_LOG {
                    return Err(SpoolError::Corrupt {
                        path,
                        reason: Corruption::StateTooLarge,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("open", &path)(e)),
        }
        let folded = state::fold(&log, env.recipients.len());
        if folded.ignored > 0 {
            log::warn!(
                "{}: ignored {} torn or damaged state record(s) in {}",
                env.id,
                folded.ignored,
                path.display()
            );
        }
        Ok(folded)
    }

    /// Records outcomes for recipients (by index into the envelope's
    /// recipient list) with one append, not synced: it becomes durable with
    /// the next group commit or [`Spool::sync_if_due`]. A cut before that
    /// loses the record; the recipients it described are tried again (a
    /// deferral repeated early, or a delivery repeated: the window
    /// docs/spool.md bounds).
    pub fn record(
        &self,
        id: &str,
        outcomes: &[(usize, Outcome)],
        now: u64,
    ) -> Result<(), SpoolError> {
        let (dir, path) = self.find(id)?;
        let (env, _, _) = read_envelope(&path)?;
        let mut out = Vec::with_capacity(outcomes.len() * 80);
        for (i, o) in outcomes {
            if *i >= env.recipients.len() {
                return Err(SpoolError::BadRecipient {
                    id: id.to_string(),
                    index: *i,
                    count: env.recipients.len(),
                });
            }
            state::encode(&mut out, *i, o, now);
        }
        let spath = self.inner.dir(dir).join(format!("{id}.state"));
        if !spath.exists() {
            // Reunite a log left behind by an interrupted move first, so a
            // message never has two logs.
            for other in QueueDir::ALL {
                let p = self.inner.dir(other).join(format!("{id}.state"));
                if other != dir && p.exists() {
                    self.inner.rename(&p, &spath)?;
                    break;
                }
            }
        }
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&spath)
            .map_err(io_err("open", &spath))?;
        f.write_all(&out).map_err(io_err("write", &spath))?;
        self.inner
            .counters
            .bytes_written
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        self.inner.mark_dirty();
        Ok(())
    }

    /// Moves a message (and its state log) to another directory, e.g. to
    /// `deferred/` after a failed attempt. No fsync: the directory is only
    /// a hint (the retry time lives in the state log), and [`Spool::scan`]
    /// reunites a log with its message after a crash.
    pub fn move_to(&self, id: &str, to: QueueDir) -> Result<(), SpoolError> {
        let (from, path) = self.find(id)?;
        if from == to {
            return Ok(());
        }
        let dest = self.inner.dir(to);
        self.inner.rename(&path, &dest.join(id))?;
        self.inner.mark_dirty();
        let slog = self.inner.dir(from).join(format!("{id}.state"));
        if slog.exists() {
            self.inner
                .rename(&slog, &dest.join(format!("{id}.state")))?;
        }
        Ok(())
    }

    /// Moves a message (and its state log) into `hold/` for good: the
    /// queue manager never delivers nor removes what is there, `mailq`
    /// shows it with `!`. Unlike [`Spool::move_to`] the renames are made
    /// durable (one `syncfs`) before this returns, so that
    /// the outcome recorded afterwards (every recipient final) can never
    /// be found with the message back in `active/`, where a scan would
    /// remove it as done.
    pub fn hold(&self, id: &str) -> Result<(), SpoolError> {
        let (from, _) = self.find(id)?;
        if from == QueueDir::Hold {
            return Ok(());
        }
        self.move_to(id, QueueDir::Hold)?;
        self.inner.sync_fs()
    }

    /// The readable messages in `hold/`, oldest first (arrival, then ID);
    /// read-only. Unreadable files there are skipped: they are reported
    /// by [`Spool::list`] and [`Spool::scan`].
    pub fn held(&self) -> Result<Vec<QueueEntry>, SpoolError> {
        let dir = self.inner.dir(QueueDir::Hold).to_path_buf();
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).map_err(io_err("readdir", &dir))? {
            let ent = ent.map_err(io_err("readdir", &dir))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if !envelope::is_queue_id(&name) {
                continue;
            }
            if let Ok((e, _)) = self.entry(QueueDir::Hold, &name, &dir.join(&name), false) {
                out.push(e);
            }
        }
        out.sort_by(|a, b| {
            (a.envelope.arrival, &a.envelope.id).cmp(&(b.envelope.arrival, &b.envelope.id))
        });
        Ok(out)
    }

    /// Removes a message whose recipients are all final. Not synced (as
    /// Postfix does not sync its unlinks): the removal becomes durable with
    /// the next group commit or [`Spool::sync_if_due`]; a power cut before
    /// that brings the message back and its last recipients are delivered
    /// again (docs/spool.md bounds that window). When the last recipients
    /// just became final, calling this *instead of* [`Spool::record`]
    /// saves the log write.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        let (dir, path) = self.find(id)?;
        fs::remove_file(&path).map_err(io_err("unlink", &path))?;
        self.inner.mark_dirty();
        let slog = self.inner.dir(dir).join(format!("{id}.state"));
        match fs::remove_file(&slog) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("unlink", &slog)(e)),
        }
        Ok(())
    }

    /// Daemon's scan: lists every message, moves unreadable files to
    /// `hold/` (never deletes them; logs each with the reason), reunites
    /// state logs with their messages after an interrupted move, and
    /// deletes state logs whose message is gone (interrupted remove).
    pub fn scan(&self) -> Result<ScanReport, SpoolError> {
        self.walk(true)
    }

    /// One message's current entry (envelope and recipient states), or
    /// None when it is gone; for the queue manager after recording outcomes.
    pub fn scan_one(&self, id: &str) -> Result<Option<QueueEntry>, SpoolError> {
        if !envelope::is_queue_id(id) {
            return Ok(None);
        }
        for d in [QueueDir::Active, QueueDir::Deferred] {
            let path = self.inner.dir(d).join(id);
            match self.entry(d, id, &path, false) {
                Ok((e, _)) => return Ok(Some(e)),
                Err(SpoolError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Read-only listing (for `mailq`, safe while the daemon runs).
    pub fn list(&self) -> Result<ScanReport, SpoolError> {
        self.walk(false)
    }

    fn walk(&self, repair: bool) -> Result<ScanReport, SpoolError> {
        let mut report = ScanReport::default();
        let verify = repair && !self.inner.verified.swap(true, Ordering::Relaxed);
        for d in QueueDir::ALL {
            let dir = self.inner.dir(d).to_path_buf();
            let mut names = Vec::new();
            for ent in fs::read_dir(&dir).map_err(io_err("readdir", &dir))? {
                let ent = ent.map_err(io_err("readdir", &dir))?;
                names.push(ent.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            for name in &names {
                let path = dir.join(name);
                if let Some(id) = name.strip_suffix(".state") {
                    if envelope::is_queue_id(id) && !names.iter().any(|n| n == id) {
                        if repair {
                            self.orphan_log(d, id, &path)?;
                        }
                        continue;
                    }
                    if envelope::is_queue_id(id) {
                        continue;
                    }
                }
                let res = if envelope::is_queue_id(name) {
                    self.entry(d, name, &path, verify && d != QueueDir::Hold)
                } else {
                    Err(SpoolError::Corrupt {
                        path: path.clone(),
                        reason: Corruption::StrayName,
                    })
                };
                match res {
                    Ok((e, ignored)) => {
                        report.ignored_state_records += ignored;
                        report.entries.push(e);
                    }
                    Err(SpoolError::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        // Removed or moved under us by the daemon: not an error.
                    }
                    Err(e @ SpoolError::Corrupt { .. }) if repair && d != QueueDir::Hold => {
                        log::error!("{e}; moving it to hold/");
                        let held = self.hold_file(d, name)?;
                        report.held.push(HeldFile {
                            name: held,
                            error: e,
                        });
                    }
                    Err(e @ SpoolError::Corrupt { .. }) => report.unreadable.push(e),
                    Err(e @ SpoolError::Io { .. }) if repair => {
                        // One file the daemon cannot open (wrong owner, a bad
                        // flash block) must not stop delivery of the others.
                        log::error!("{e}; skipping it");
                        report.unreadable.push(e);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(report)
    }

    fn entry(
        &self,
        d: QueueDir,
        name: &str,
        path: &Path,
        verify: bool,
    ) -> Result<(QueueEntry, usize), SpoolError> {
        let (env, head_len, mut file) = read_envelope(path)?;
        if verify {
            verify_check(&mut file, head_len, &env, path)?;
        }
        if env.id != name {
            return Err(SpoolError::Corrupt {
                path: path.to_path_buf(),
                reason: Corruption::IdMismatch { inside: env.id },
            });
        }
        let folded = self.read_state(d, &env)?;
        let next_attempt = folded
            .rcpts
            .iter()
            .filter_map(|r| match r.status {
                Status::Pending => Some(env.arrival),
                Status::Deferred { until } => Some(until),
                _ => None,
            })
            .min();
        Ok((
            QueueEntry {
                dir: d,
                file_size: head_len + env.size,
                envelope: env,
                rcpts: folded.rcpts,
                next_attempt,
            },
            folded.ignored,
        ))
    }

    fn orphan_log(&self, d: QueueDir, id: &str, path: &Path) -> Result<(), SpoolError> {
        for other in QueueDir::ALL {
            if other != d && self.inner.dir(other).join(id).exists() {
                let dest = self.inner.dir(other).join(format!("{id}.state"));
                if !dest.exists() {
                    log::info!(
                        "{id}: state log reunited with its message in {}/",
                        other.name()
                    );
                    return self.inner.rename(path, &dest);
                }
                // Two logs (should not happen): keep every record.
                let bytes = fs::read(path).map_err(io_err("read", path))?;
                let mut f = OpenOptions::new()
                    .append(true)
                    .open(&dest)
                    .map_err(io_err("open", &dest))?;
                f.write_all(&bytes).map_err(io_err("write", &dest))?;
                // Synced before the unlink: the records must not exist
                // nowhere for a moment.
                self.inner.sync_file(&f, &dest)?;
                self.inner.mark_dirty();
                return fs::remove_file(path).map_err(io_err("unlink", path));
            }
        }
        log::info!("{id}: removing state log of a removed message");
        fs::remove_file(path).map_err(io_err("unlink", path))
    }

    fn hold_file(&self, d: QueueDir, name: &str) -> Result<String, SpoolError> {
        let hold = self.inner.dir(QueueDir::Hold);
        let mut dest_name = name.to_string();
        let mut n = 0;
        while hold.join(&dest_name).exists() && n < 1000 {
            n += 1;
            dest_name = format!("{name}.{n}");
        }
        let src = self.inner.dir(d).join(name);
        self.inner.rename(&src, &hold.join(&dest_name))?;
        let slog = self.inner.dir(d).join(format!("{name}.state"));
        if slog.exists() {
            self.inner
                .rename(&slog, &hold.join(format!("{dest_name}.state")))?;
        }
        Ok(dest_name)
    }

    /// Where message `id` is now (`None`: not queued, or not a queue ID).
    /// For the queue manager's last look before sending a message that
    /// `tern queue hold` or `delete` may have moved since the run began.
    pub fn location(&self, id: &str) -> Option<QueueDir> {
        if !envelope::is_queue_id(id) {
            return None;
        }
        self.find(id).ok().map(|(d, _)| d)
    }

    /// `tern queue release`: a held message (and its log) back to
    /// `deferred/`, where the queue manager finds it when its recipients
    /// are due (Postfix's `postsuper -H`).
    pub fn release(&self, id: &str) -> Result<(), SpoolError> {
        self.release_to(id, QueueDir::Deferred)
    }

    /// Moves a message and its log to `to` like [`Spool::move_to`], and
    /// makes the renames durable (one `syncfs`) before it returns, so
    /// that what `tern queue` reports done stays done.
    pub fn release_to(&self, id: &str, to: QueueDir) -> Result<(), SpoolError> {
        let (from, _) = self.find(id)?;
        if from == to {
            return Ok(());
        }
        self.move_to(id, to)?;
        self.inner.sync_fs()
    }
}

/// Reads and checks the envelope of a queue file; returns it, the length of
/// the envelope block, and the open file.
fn read_envelope(path: &Path) -> Result<(Envelope, u64, File), SpoolError> {
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let file_len = f.metadata().map_err(io_err("fstat", path))?.len();
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = f.read(&mut chunk).map_err(io_err("read", path))?;
        buf.extend_from_slice(&chunk[..n]);
        match envelope::parse(&buf) {
            Ok((env, head)) => {
                let expected = head as u64 + env.size;
                if expected != file_len {
                    return Err(SpoolError::Corrupt {
                        path: path.to_path_buf(),
                        reason: Corruption::SizeMismatch {
                            expected,
                            actual: file_len,
                        },
                    });
                }
                return Ok((env, head as u64, f));
            }
            Err(e) if e.kind == envelope::EnvelopeErrorKind::Incomplete && n > 0 => {}
            Err(e) => {
                return Err(SpoolError::Corrupt {
                    path: path.to_path_buf(),
                    reason: Corruption::Envelope(e),
                })
            }
        }
    }
}

impl Incoming {
    /// The queue ID (for `250 2.0.0 Ok: queued as ID` and log lines).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Message bytes written so far.
    pub fn size(&self) -> u64 {
        self.body
    }

    /// True once the message is durably published (acknowledge it then).
    pub fn is_committed(&self) -> bool {
        self.state == IncState::Committed
    }

    /// Marks the message `TLS-Required: No`: the flag goes into the slot
    /// [`Spool::create_with_flag_slot`] reserved when the file is
    /// published. False (nothing marked) for a file made without a slot.
    pub fn set_tls_required_no(&mut self) -> bool {
        if self.flag_slot {
            self.tls_required_no = true;
        }
        self.flag_slot
    }

    fn put(&mut self, mut data: &[u8]) -> Result<(), SpoolError> {
        while !data.is_empty() {
            let room = WRITE_BUF - self.fill;
            let n = room.min(data.len());
            self.buf[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == WRITE_BUF {
                self.flush_buf()?;
            }
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<(), SpoolError> {
        if self.fill > 0 {
            if let Err(e) = self.file.write_all(&self.buf[..self.fill]) {
                self.state = IncState::Failed;
                return Err(io_err("write", &self.tmp)(e));
            }
            self.inner
                .counters
                .bytes_written
                .fetch_add(self.fill as u64, Ordering::Relaxed);
            self.fill = 0;
        }
        Ok(())
    }

    /// Appends message bytes (CRLF line ends, dot-unstuffed). Past the size
    /// limit it returns [`SpoolError::TooBig`] and the file can no longer be
    /// committed (the caller keeps reading DATA and replies 552).
    pub fn write(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        if self.state != IncState::Open {
            return Err(SpoolError::Unusable {
                id: self.id.clone(),
            });
        }
        let new = self.body + data.len() as u64;
        if self.limit > 0 && new > self.limit {
            self.state = IncState::Failed;
            return Err(SpoolError::TooBig { limit: self.limit });
        }
        self.put(data)?;
        self.crc = envelope::crc32(self.crc, data);
        self.body = new;
        Ok(())
    }

    fn publish(&mut self) -> Result<(), SpoolError> {
        self.flush_buf()?;
        let flags = Flags {
            tls_required_no: self.tls_required_no,
            ..Flags::default()
        };
        let check = envelope::finish_check(self.crc, &flags);
        // Size, check and flag slot in ONE write (they are adjacent): a cut
        // keeps all of them or none, and without them the file reads as
        // never committed.
        let patch = envelope::commit_patch(
            self.body,
            check,
            self.flag_slot.then_some(self.tls_required_no),
        );
        self.file
            .write_all_at(&patch, self.size_at)
            .map_err(io_err("write", &self.tmp))?;
        self.inner
            .counters
            .bytes_written
            .fetch_add(patch.len() as u64, Ordering::Relaxed);
        let dest = self.inner.dir(self.target).join(&self.id);
        self.inner.rename(&self.tmp, &dest)?;
        self.state = IncState::Renamed;
        Ok(())
    }

    /// Publishes this message alone (one `syncfs`) and returns its queue ID.
    pub fn commit(self) -> Result<String, SpoolError> {
        let spool = Spool {
            inner: Arc::clone(&self.inner),
            removed_at_open: 0,
        };
        let mut one = [self];
        spool.commit_batch(&mut one)?;
        let [inc] = one;
        if inc.is_committed() {
            Ok(inc.id.clone())
        } else {
            Err(SpoolError::Unusable { id: inc.id.clone() })
        }
    }
}

/// The queue file as an `embedded_io` sink: cleanup streams every message
/// through this trait, so the same code writes into memory in its tests.
impl embedded_io::ErrorType for Incoming {
    type Error = SpoolError;
}

impl embedded_io::Write for Incoming {
    /// All of `buf` or nothing: the size limit is judged on whole chunks,
    /// as [`Incoming::write`] does.
    fn write(&mut self, buf: &[u8]) -> Result<usize, SpoolError> {
        Incoming::write(self, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), SpoolError> {
        if self.state != IncState::Open {
            return Err(SpoolError::Unusable {
                id: self.id.clone(),
            });
        }
        self.flush_buf()
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if matches!(self.state, IncState::Open | IncState::Failed) {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_is_an_embedded_io_sink() {
        use embedded_io::{Error as _, Write as _};
        let dir = std::env::temp_dir().join(format!("tern-spool-eio-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::open(&dir).unwrap();
        let rcpts = [Recipient::new("a@example.org")];
        let msg = NewMessage {
            sender: "s@example.org",
            recipients: &rcpts,
            arrival: 1_700_000_000,
            client: "local",
            flags: Flags::default(),
            size_limit: 10,
            deferred: false,
        };
        let mut inc = spool.create(&msg).unwrap();
        inc.write_all(b"Hi: x\r\n").unwrap();
        inc.flush().unwrap();
        let e = inc.write_all(b"1234").unwrap_err();
        assert!(matches!(e, SpoolError::TooBig { limit: 10 }), "{e}");
        assert_eq!(e.kind(), embedded_io::ErrorKind::Other);
        assert!(matches!(inc.flush(), Err(SpoolError::Unusable { .. })));
        drop(inc);

        let mut inc = spool.create(&msg).unwrap();
        inc.write_all(b"Hi: x\r\n").unwrap();
        inc.flush().unwrap();
        // Exactly at the limit: still accepted.
        inc.write_all(b"b\r\n").unwrap();
        let id = inc.commit().unwrap();
        let mut text = String::new();
        spool
            .open_message(&id)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "Hi: x\r\nb\r\n");
        let _ = fs::remove_dir_all(&dir);
    }

    /// smtpd's file: the flag slot is set at publication, also when the
    /// envelope left the write buffer long before (a large recipient list
    /// and body); without the flag the slot stays blank.
    #[test]
    fn the_flag_slot_is_set_in_place_at_commit() {
        let dir = std::env::temp_dir().join(format!("tern-spool-slot-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::open(&dir).unwrap();
        let rcpts: Vec<Recipient> = (0..300)
            .map(|i| Recipient::new(&format!("recipient-number-{i}@example.org")))
            .collect();
        let msg = NewMessage {
            sender: "s@example.org",
            recipients: &rcpts,
            arrival: 1_700_000_000,
            client: "host[192.0.2.1]",
            flags: Flags::default(),
            size_limit: 0,
            deferred: false,
        };
        for set in [false, true] {
            let mut inc = spool.create_with_flag_slot(&msg).unwrap();
            inc.write(b"TLS-Required: No\r\n\r\n").unwrap();
            inc.write(&[b'x'; 3 * WRITE_BUF]).unwrap();
            if set {
                assert!(inc.set_tls_required_no());
            }
            let id = inc.commit().unwrap();
            let m = spool.open_message(&id).unwrap();
            assert_eq!(m.envelope.flags.tls_required_no, set);
            assert_eq!(m.envelope.recipients.len(), 300);
        }
        // A file made without a slot cannot take the flag.
        let mut inc = spool.create(&msg).unwrap();
        assert!(!inc.set_tls_required_no());
        inc.write(b"\r\n").unwrap();
        let id = inc.commit().unwrap();
        assert!(
            !spool
                .open_message(&id)
                .unwrap()
                .envelope
                .flags
                .tls_required_no
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
