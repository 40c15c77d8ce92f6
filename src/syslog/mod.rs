//! The `log` backend: Postfix-shaped lines to syslog, a file and/or stderr.
//!
//! tern code logs through the `log` facade with the sub-program as target,
//! `log::info!(target: "smtpd", "{qid}: client={name}[{ip}]")`, and the
//! line reads `tern/smtpd[1234]: ...`, which is what `pflogsumm
//! --syslog-name=tern` and other Postfix log tools expect.
//!
//! Destinations (any combination):
//! - a local unix datagram socket (`syslog_socket`, default `/dev/log`),
//!   RFC 3164 without hostname, timestamp in **local time**, as glibc's
//!   syslog(3) sends it; or, instead, an RFC 5424 collector over UDP
//!   (`syslog_server = host:port`), RFC 3339 timestamp with the local offset;
//! - `maillog_file`, Postfix's format (`Mmm dd hh:mm:ss host tern/smtpd[pid]: text`);
//! - stderr in the same format (`tern run -f`).
//!
//! Writing is synchronous but never blocks: one non-blocking system call
//! per destination per record. A record no destination took goes to
//! stderr, and the first such fallback of an outage is announced there.

pub mod format;
pub mod repeat;
mod sink;
pub mod time;

use std::fs::File;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use core::fmt::{self, Write as _};

use format::{Escaper, Header, LineBuf};
pub use format::{Facility, Severity, UnknownFacility, MAX_LINE};
use sink::Remote;
use time::DateTime;

/// Where syslog lines go (config keys `syslog_socket` and `syslog_server`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// RFC 3164 to a local unix datagram socket (`syslog_socket`, default
    /// `/dev/log`). A missing socket is not an error: it is retried on
    /// every record until a syslogd creates it.
    Unix(PathBuf),
    /// RFC 5424 over UDP to `host:port` (`syslog_server`); a name is
    /// resolved once, by the system resolver, when the logger is built.
    Udp(String),
    /// RFC 3164 over UDP to `host:port` (`syslog_server` with
    /// `syslog_server_format = rfc3164`): the traditional network form,
    /// `<PRI>Mmm dd hh:mm:ss HOST tern/smtpd[pid]: text`, which receivers
    /// that write their traditional file format (rsyslog's default) store
    /// with the tag's colon intact.
    Udp3164(String),
    /// No syslog (only `maillog_file` and/or stderr).
    Off,
}

impl Default for Destination {
    fn default() -> Self {
        Destination::Unix(PathBuf::from("/dev/log"))
    }
}

impl Destination {
    /// From the two config values: a non-empty `syslog_server` wins, else a
    /// non-empty `syslog_socket`, else [`Destination::Off`].
    pub fn from_config(syslog_socket: &str, syslog_server: &str) -> Destination {
        match (syslog_socket.trim(), syslog_server.trim()) {
            (_, server) if !server.is_empty() => Destination::Udp(server.to_string()),
            ("", _) => Destination::Off,
            (path, _) => Destination::Unix(PathBuf::from(path)),
        }
    }

    /// Applies `syslog_server_format` (`rfc5424`, the default, or
    /// `rfc3164`) to a UDP destination; others are returned unchanged.
    pub fn with_server_format(self, format: &str) -> Destination {
        match self {
            Destination::Udp(s) if format.trim().eq_ignore_ascii_case("rfc3164") => {
                Destination::Udp3164(s)
            }
            other => other,
        }
    }
}

/// Logger settings; field docs name the config key each one comes from.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `syslog_name`: first half of every tag (`tern/smtpd`). Default `tern`.
    pub syslog_name: String,
    /// `syslog_facility`. Default `mail`.
    pub facility: Facility,
    /// `syslog_socket` / `syslog_server`. Default `/dev/log`.
    pub destination: Destination,
    /// Also write every record to stderr (`tern run -f`). Default off.
    pub stderr: bool,
    /// `maillog_file`: also append every record to this file. Default none.
    pub maillog_file: Option<PathBuf>,
    /// `syslog_level` (tern's key; `error warn info debug trace off`, parse
    /// with `LevelFilter::from_str`): least severe level logged. Default `info`.
    pub level: log::LevelFilter,
    /// `myhostname`, for RFC 5424 and `maillog_file` lines; `None` asks
    /// gethostname(2).
    pub hostname: Option<String>,
    /// Program for records whose target is not a program name (module
    /// paths like `tern::queue`): `master` for the daemon, `sendmail` for
    /// `tern sendmail`, and so on.
    pub default_program: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            syslog_name: "tern".to_string(),
            facility: Facility::Mail,
            destination: Destination::default(),
            stderr: false,
            maillog_file: None,
            level: log::LevelFilter::Info,
            hostname: None,
            default_program: "master".to_string(),
        }
    }
}

/// Why the logger could not be set up.
#[derive(Debug)]
pub enum InitError {
    /// `syslog_name` or `default_program` is empty, longer than 32 bytes or
    /// not made of `[A-Za-z0-9._-]`.
    BadName {
        /// Which setting.
        setting: &'static str,
        /// Its value.
        value: String,
    },
    /// `syslog_server` is not `host:port` or does not resolve.
    Server {
        /// The configured value.
        value: String,
        /// The resolver's answer.
        error: io::Error,
    },
    /// `maillog_file` cannot be opened for appending.
    File {
        /// The path.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// A global logger is already installed in this process.
    AlreadyInstalled,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::BadName { setting, value } => write!(
                f,
                "{setting} = \"{value}\": need 1 to 32 characters of A-Z a-z 0-9 . _ -"
            ),
            InitError::Server { value, error } => {
                write!(f, "syslog_server = \"{value}\": {error}")
            }
            InitError::File { path, error } => {
                write!(f, "maillog_file = {}: {error}", path.display())
            }
            InitError::AlreadyInstalled => f.write_str("a logger is already installed"),
        }
    }
}

impl std::error::Error for InitError {}

/// Counters since start, for tests and `tern` status output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records handed to the syslog socket.
    pub sent: u64,
    /// Records the syslog socket did not take (gone, refused, full).
    pub failed: u64,
    /// Records written to stderr because no configured destination took them.
    pub fallback: u64,
    /// Records `maillog_file` did not take (disk full, I/O error).
    pub file_failed: u64,
}

struct State {
    remote: Remote,
    file: Option<File>,
    /// Set while the syslog socket is failing; cleared (with a note) on the
    /// first success, so each outage is announced once.
    outage: bool,
    /// Whether stderr has already been told about this outage.
    announced: bool,
    /// When the last "works again" note or stderr announcement was written:
    /// a receiver that keeps filling up and draining must not turn every
    /// other line into a note.
    last_note: Option<Instant>,
    stats: Stats,
}

/// Least time between two notes about the logger itself.
const NOTE_INTERVAL: Duration = Duration::from_secs(60);

impl State {
    /// Whether a note may be written now (and if so, records that it was).
    fn note_due(&mut self) -> bool {
        let now = Instant::now();
        match self.last_note {
            Some(t) if now.duration_since(t) < NOTE_INTERVAL => false,
            _ => {
                self.last_note = Some(now);
                true
            }
        }
    }
}

/// The `log::Log` implementation. Build one with [`Logger::new`] to call it
/// directly (tests), or install it globally with [`init`].
pub struct Logger {
    level: AtomicUsize,
    ident: String,
    facility: Facility,
    hostname: String,
    default_program: String,
    stderr: bool,
    maillog_path: Option<PathBuf>,
    state: Mutex<State>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= format::MAX_PROGRAM
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most
    // that many bytes.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match core::str::from_utf8(buf.get(..end).unwrap_or(&[])) {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => "localhost".to_string(),
    }
}

fn level_from_usize(n: usize) -> log::LevelFilter {
    [
        log::LevelFilter::Off,
        log::LevelFilter::Error,
        log::LevelFilter::Warn,
        log::LevelFilter::Info,
        log::LevelFilter::Debug,
        log::LevelFilter::Trace,
    ]
    .get(n)
    .copied()
    .unwrap_or(log::LevelFilter::Trace)
}

impl Logger {
    /// Builds a logger: validates names, resolves `syslog_server`, opens
    /// `maillog_file`. Connects to the syslog socket only when it first logs.
    pub fn new(settings: Settings) -> Result<Logger, InitError> {
        for (setting, value) in [
            ("syslog_name", &settings.syslog_name),
            ("default_program", &settings.default_program),
        ] {
            if !valid_name(value) {
                return Err(InitError::BadName {
                    setting,
                    value: value.clone(),
                });
            }
        }
        let remote = match &settings.destination {
            Destination::Off => Remote::Off,
            Destination::Unix(path) => Remote::Unix {
                path: path.clone(),
                sock: None,
            },
            Destination::Udp(value) | Destination::Udp3164(value) => {
                let addr = resolve(value).map_err(|error| InitError::Server {
                    value: value.clone(),
                    error,
                })?;
                let rfc3164 = matches!(settings.destination, Destination::Udp3164(_));
                Remote::Udp {
                    addr,
                    sock: None,
                    rfc3164,
                }
            }
        };
        let file = match &settings.maillog_file {
            None => None,
            Some(path) => Some(sink::open_log_file(path).map_err(|error| InitError::File {
                path: path.clone(),
                error,
            })?),
        };
        Ok(Logger {
            level: AtomicUsize::new(settings.level as usize),
            ident: settings.syslog_name,
            facility: settings.facility,
            hostname: settings.hostname.unwrap_or_else(system_hostname),
            default_program: settings.default_program,
            stderr: settings.stderr,
            maillog_path: settings.maillog_file,
            state: Mutex::new(State {
                remote,
                file,
                outage: false,
                announced: false,
                last_note: None,
                stats: Stats::default(),
            }),
        })
    }

    /// The least severe level this logger writes.
    pub fn level(&self) -> log::LevelFilter {
        level_from_usize(self.level.load(Ordering::Relaxed))
    }

    /// Changes the level (this logger only; [`LogHandle::set_level`] also
    /// updates the `log` crate's global filter).
    pub fn set_level(&self, level: log::LevelFilter) {
        self.level.store(level as usize, Ordering::Relaxed);
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    /// Reopens `maillog_file` (after rotation) and drops the syslog socket
    /// so the next record reconnects. On error the old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let mut st = self.lock();
        st.remote.disconnect();
        if let Some(path) = &self.maillog_path {
            st.file = Some(sink::open_log_file(path)?);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (none of ours can) must not turn
        // every later log call into a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Formats and writes one record: the body is escaped and capped once,
    /// then framed per destination.
    fn write_record(&self, program: &str, severity: Severity, args: fmt::Arguments<'_>) {
        let mut body = LineBuf::new();
        // Formatting happens before locking: a Display impl that itself logs
        // must not deadlock.
        let _ = Escaper(&mut body).write_fmt(args);
        let header = Header {
            ident: &self.ident,
            program,
            pid: std::process::id(),
            facility: self.facility,
            severity,
            time: DateTime::local(SystemTime::now()),
            hostname: &self.hostname,
        };
        let mut line = LineBuf::new();
        let mut st = self.lock();
        let st = &mut *st;

        let mut taken = false;
        let mut syslog_error = None;
        match &st.remote {
            Remote::Off => {}
            Remote::Unix { .. } => format::write_rfc3164(&mut line, &header, body.as_str()),
            Remote::Udp { rfc3164: true, .. } => {
                format::write_rfc3164_host(&mut line, &header, body.as_str())
            }
            Remote::Udp { .. } => format::write_rfc5424(&mut line, &header, body.as_str()),
        }
        if !matches!(st.remote, Remote::Off) {
            match st.remote.send(line.as_bytes()) {
                Ok(()) => {
                    st.stats.sent += 1;
                    taken = true;
                    if st.outage && st.note_due() {
                        st.outage = false;
                        st.announced = false;
                        self.resumed_note(st, &header);
                    }
                }
                Err(e) => {
                    st.stats.failed += 1;
                    st.outage = true;
                    syslog_error = Some(e);
                }
            }
        }

        if st.file.is_none() && !self.stderr && taken {
            return;
        }
        format::write_maillog(&mut line, &header, body.as_str());
        if let Some(f) = &st.file {
            match sink::write_nonblocking(f.as_raw_fd(), line.as_bytes()) {
                Ok(()) => taken = true,
                Err(_) => st.stats.file_failed += 1,
            }
        }
        let fd = sink::stderr_fd();
        // With `-f` the admin watches stderr: tell them syslog is failing
        // even though stderr has every record anyway.
        let fallback = !self.stderr && !taken;
        if (fallback || (self.stderr && syslog_error.is_some())) && !st.announced && st.note_due() {
            st.announced = true;
            let why = syslog_error.map_or_else(|| "no destination".to_string(), |e| e.to_string());
            let note = format!(
                "warning: cannot log to {}: {why}; logging to stderr until it works again",
                st.remote.describe()
            );
            let mut h = header;
            h.program = &self.default_program;
            h.severity = Severity::Warning;
            let mut nl = LineBuf::new();
            format::write_maillog(&mut nl, &h, &note);
            let _ = sink::write_nonblocking(fd, nl.as_bytes());
        }
        if self.stderr {
            // stderr is a destination of its own: nothing to fall back to.
            let _ = sink::write_nonblocking(fd, line.as_bytes());
            return;
        }
        if !fallback {
            return;
        }
        st.stats.fallback += 1;
        let _ = sink::write_nonblocking(fd, line.as_bytes());
    }

    /// Tells syslog that it missed records, once per outage.
    fn resumed_note(&self, st: &mut State, header: &Header<'_>) {
        let mut h = *header;
        h.program = &self.default_program;
        h.severity = Severity::Warning;
        let note = format!(
            "warning: logging to {} works again; {} records failed so far, {} went to stderr",
            st.remote.describe(),
            st.stats.failed,
            st.stats.fallback
        );
        let mut line = LineBuf::new();
        match st.remote {
            Remote::Udp { rfc3164: true, .. } => format::write_rfc3164_host(&mut line, &h, &note),
            Remote::Udp { .. } => format::write_rfc5424(&mut line, &h, &note),
            _ => format::write_rfc3164(&mut line, &h, &note),
        }
        if st.remote.send(line.as_bytes()).is_ok() {
            st.stats.sent += 1;
        }
    }
}

fn resolve(value: &str) -> io::Result<SocketAddr> {
    value
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "name has no address"))
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // `log` macros without `target:` use the module path as target; a
        // crate root's path ("tern", "polling") has no `::` and would pass
        // for a program name, so only an explicit target names the program.
        let program = if record.module_path() == Some(record.target()) {
            self.default_program.as_str()
        } else {
            format::program_for_target(record.target(), &self.default_program)
        };
        if record.level() == log::Level::Warn && repeat::is_repeat(program, record.args()) {
            return;
        }
        self.write_record(program, record.level().into(), *record.args());
    }

    fn flush(&self) {}
}

/// The installed global logger, for runtime control.
#[derive(Clone, Copy)]
pub struct LogHandle {
    logger: &'static Logger,
}

impl LogHandle {
    /// Changes the level, for this logger and `log`'s global filter.
    pub fn set_level(&self, level: log::LevelFilter) {
        self.logger.set_level(level);
        log::set_max_level(level);
    }

    /// See [`Logger::reopen`] (call on SIGHUP after log rotation).
    pub fn reopen(&self) -> io::Result<()> {
        self.logger.reopen()
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.logger.stats()
    }

    /// The installed logger.
    pub fn logger(&self) -> &'static Logger {
        self.logger
    }
}

/// Builds a [`Logger`] and installs it as the process's `log` logger. Once
/// per process: a second call returns [`InitError::AlreadyInstalled`].
pub fn init(settings: Settings) -> Result<LogHandle, InitError> {
    let logger: &'static Logger = Box::leak(Box::new(Logger::new(settings)?));
    log::set_logger(logger).map_err(|_| InitError::AlreadyInstalled)?;
    log::set_max_level(logger.level());
    Ok(LogHandle { logger })
}
