//! `maildrop/`: how a local user who cannot write the spool submits mail
//! (Postfix's postdrop + pickup, without a setuid or setgid binary).
//!
//! `tern sendmail` run by such a user writes one file into
//! `$queue_directory/maildrop/` (mode 1733: anyone may create, nobody may
//! list, sticky so nobody removes another's file); the daemon's pickup
//! ([`super::pickup`]) turns it into a normal queue file. Who submitted is
//! the file's owner (`fstat`), never a field of the file.
//!
//! File format (docs/spool.md), a text envelope then the message as
//! `sendmail` read it (line ends already CRLF, already cut at a lone `.`
//! unless `-i`):
//!
//! ```text
//! tern-maildrop 1
//! flags extract              (optional: -t)
//! sender ops@example.org     (optional: -f; an empty value is -f '<>')
//! fullname Backup Job        (optional: -F)
//! rcpt admin@example.org     (one per command-line recipient argument, as given)
//! end
//! Subject: ...
//! ```
//!
//! [`encode`] and [`parse`] are sans-I/O and bounded ([`MAX_ENVELOPE`]);
//! [`DropFile`] is the writer's driver.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// First line of every maildrop file.
pub const MAGIC: &[u8] = b"tern-maildrop 1\n";
/// Largest envelope (everything up to and including `end\n`).
pub const MAX_ENVELOPE: usize = 16 * 1024;
/// Largest single envelope value.
pub const MAX_VALUE: usize = 998;
/// Most `rcpt` records (command-line arguments; `-t` has no limit here).
pub const MAX_RCPT_ARGS: usize = 1000;

/// The envelope of a maildrop file: what the command line said. Not who
/// sent it: that is the file's owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropEnvelope {
    /// `-t`: recipients from the To/Cc/Bcc headers too.
    pub extract: bool,
    /// `-f SENDER` as given (`Some("")` = the null sender).
    pub sender: Option<String>,
    /// `-F NAME`.
    pub full_name: Option<String>,
    /// Recipient arguments as given (each may hold an address list).
    pub recipients: Vec<String>,
}

/// Why a maildrop envelope cannot be written or read; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaildropError {
    /// The file does not start with [`MAGIC`].
    BadMagic,
    /// No `end` line within [`MAX_ENVELOPE`] bytes or before the file ends.
    NoEnd,
    /// A record this version does not know.
    UnknownRecord {
        /// Line number.
        line: usize,
    },
    /// A record that may appear once appears again.
    Duplicate {
        /// Line number.
        line: usize,
    },
    /// A value with control characters, not UTF-8, or longer than [`MAX_VALUE`].
    BadValue {
        /// Line number (0 when encoding).
        line: usize,
        /// Which record.
        what: &'static str,
    },
    /// More than [`MAX_RCPT_ARGS`] recipients.
    TooManyRecipients,
    /// The encoded envelope would exceed [`MAX_ENVELOPE`].
    TooLong,
}

impl std::fmt::Display for MaildropError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaildropError::BadMagic => write!(f, "not a maildrop file (bad first line)"),
            MaildropError::NoEnd => write!(
                f,
                "no end of envelope within {MAX_ENVELOPE} bytes (truncated or not a maildrop file)"
            ),
            MaildropError::UnknownRecord { line } => {
                write!(f, "envelope line {line}: unknown record")
            }
            MaildropError::Duplicate { line } => {
                write!(f, "envelope line {line}: duplicate record")
            }
            MaildropError::BadValue { line, what } => write!(
                f,
                "envelope line {line}: bad {what} value (control characters, not UTF-8, or over {MAX_VALUE} bytes)"
            ),
            MaildropError::TooManyRecipients => {
                write!(f, "more than {MAX_RCPT_ARGS} recipient arguments")
            }
            MaildropError::TooLong => write!(f, "envelope longer than {MAX_ENVELOPE} bytes"),
        }
    }
}

impl std::error::Error for MaildropError {}

fn value_ok(v: &str) -> bool {
    v.len() <= MAX_VALUE && !v.chars().any(char::is_control)
}

/// Appends the envelope of `env` to `out` (empty or not; `out` is not
/// cleared). Fails on values a reader could not tell apart from records.
pub fn encode(env: &DropEnvelope, out: &mut Vec<u8>) -> Result<(), MaildropError> {
    if env.recipients.len() > MAX_RCPT_ARGS {
        return Err(MaildropError::TooManyRecipients);
    }
    let start = out.len();
    out.extend_from_slice(MAGIC);
    if env.extract {
        out.extend_from_slice(b"flags extract\n");
    }
    let put = |out: &mut Vec<u8>, what: &'static str, v: &str| {
        if !value_ok(v) {
            return Err(MaildropError::BadValue { line: 0, what });
        }
        out.extend_from_slice(what.as_bytes());
        out.push(b' ');
        out.extend_from_slice(v.as_bytes());
        out.push(b'\n');
        Ok(())
    };
    if let Some(s) = &env.sender {
        put(out, "sender", s)?;
    }
    if let Some(n) = &env.full_name {
        put(out, "fullname", n)?;
    }
    for r in &env.recipients {
        put(out, "rcpt", r)?;
    }
    out.extend_from_slice(b"end\n");
    if out.len() - start > MAX_ENVELOPE {
        out.truncate(start);
        return Err(MaildropError::TooLong);
    }
    Ok(())
}

/// Parses the envelope at the start of `buf` (the first bytes of a file, at
/// most [`MAX_ENVELOPE`] are looked at). Returns it and its length: the
/// message starts at that offset.
pub fn parse(buf: &[u8]) -> Result<(DropEnvelope, usize), MaildropError> {
    let buf = &buf[..buf.len().min(MAX_ENVELOPE)];
    if !buf.starts_with(MAGIC) {
        return Err(MaildropError::BadMagic);
    }
    let mut env = DropEnvelope::default();
    let mut pos = MAGIC.len();
    let mut line = 1;
    loop {
        line += 1;
        let rest = &buf[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return Err(MaildropError::NoEnd);
        };
        let l = &rest[..nl];
        pos += nl + 1;
        if l == b"end" {
            return Ok((env, pos));
        }
        let (key, value) = match l.iter().position(|&b| b == b' ') {
            Some(sp) => (&l[..sp], &l[sp + 1..]),
            None => (l, &b""[..]),
        };
        let text = |what: &'static str| -> Result<String, MaildropError> {
            match std::str::from_utf8(value) {
                Ok(v) if value_ok(v) => Ok(v.to_string()),
                _ => Err(MaildropError::BadValue { line, what }),
            }
        };
        match key {
            b"flags" => {
                if env.extract {
                    return Err(MaildropError::Duplicate { line });
                }
                if value != b"extract" {
                    return Err(MaildropError::BadValue {
                        line,
                        what: "flags",
                    });
                }
                env.extract = true;
            }
            b"sender" => {
                if env.sender.is_some() {
                    return Err(MaildropError::Duplicate { line });
                }
                env.sender = Some(text("sender")?);
            }
            b"fullname" => {
                if env.full_name.is_some() {
                    return Err(MaildropError::Duplicate { line });
                }
                env.full_name = Some(text("fullname")?);
            }
            b"rcpt" => {
                if env.recipients.len() >= MAX_RCPT_ARGS {
                    return Err(MaildropError::TooManyRecipients);
                }
                env.recipients.push(text("rcpt")?);
            }
            _ => return Err(MaildropError::UnknownRecord { line }),
        }
    }
}

/// The maildrop directory under `queue_directory`.
pub fn dir(queue_directory: &Path) -> PathBuf {
    queue_directory.join("maildrop")
}

/// Where the pickup puts maildrop files it cannot use (never deleted).
pub fn corrupt_dir(queue_directory: &Path) -> PathBuf {
    queue_directory.join("corrupt")
}

/// The daemon's side at start: creates `maildrop/` (mode 1733) and
/// `corrupt/` (0700), owned by whoever runs this (mail_owner by then), and
/// makes `queue_directory` and `public/` searchable by everyone.
pub fn prepare(queue_directory: &Path) -> io::Result<()> {
    // Users must reach maildrop/ and the sockets in public/: add the search
    // bit for others if a strict umask left it out (listing stays as it is).
    for d in [
        queue_directory.to_path_buf(),
        queue_directory.join("public"),
    ] {
        let mode = std::fs::metadata(&d)?.permissions().mode() & 0o7777;
        if mode & 0o011 != 0o011 {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode | 0o011))?;
        }
    }
    let md = dir(queue_directory);
    std::fs::create_dir_all(&md)?;
    // Explicitly: create_dir_all applies the umask, and a restart must
    // repair a mode someone changed.
    std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o1733))?;
    let c = corrupt_dir(queue_directory);
    std::fs::create_dir_all(&c)?;
    std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// 128 random bits as 32 hex digits: maildrop file names must not be
/// guessable, because the files are readable by the daemon's user and the
/// directory is searchable by everyone (only listing is denied).
fn random_name() -> io::Result<String> {
    let mut b = [0u8; 16];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: the pointer and length describe the unfilled part of `b`.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A maildrop file being written: `maildrop/.NAME` until [`DropFile::commit`]
/// renames it to `maildrop/NAME`. Dropped uncommitted, it is removed.
#[derive(Debug)]
pub struct DropFile {
    file: File,
    tmp: PathBuf,
    name: String,
    dir: PathBuf,
    committed: bool,
}

impl DropFile {
    /// Creates `.NAME` in the maildrop directory (`O_EXCL`, mode 0644 set
    /// explicitly so the umask cannot hide it from the daemon's user).
    pub fn create(queue_directory: &Path) -> io::Result<DropFile> {
        let dir = dir(queue_directory);
        let name = random_name()?;
        let tmp = dir.join(format!(".{name}"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", tmp.display())))?;
        let me = DropFile {
            file,
            tmp,
            name,
            dir,
            committed: false,
        };
        me.file
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io::Error::new(e.kind(), format!("chmod {}: {e}", me.tmp.display())))?;
        Ok(me)
    }

    /// Appends bytes.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", self.tmp.display())))
    }

    /// fsync, rename to the final name, then make the rename durable. The
    /// directory cannot be opened (and so not fsynced) by a user without
    /// read permission on it, so then the file system is synced instead
    /// (`syncfs`): only after this may `sendmail` exit 0.
    pub fn commit(mut self) -> io::Result<String> {
        let ctx = |op: &str, p: &Path, e: io::Error| {
            io::Error::new(e.kind(), format!("{op} {}: {e}", p.display()))
        };
        self.file
            .sync_all()
            .map_err(|e| ctx("fsync", &self.tmp, e))?;
        let fin = self.dir.join(&self.name);
        std::fs::rename(&self.tmp, &fin).map_err(|e| ctx("rename", &self.tmp, e))?;
        self.committed = true;
        match File::open(&self.dir) {
            Ok(d) => d.sync_all().map_err(|e| ctx("fsync", &self.dir, e))?,
            Err(_) => {
                use std::os::fd::AsRawFd;
                // SAFETY: the fd is open for the lifetime of self.file.
                if unsafe { libc::syncfs(self.file.as_raw_fd()) } != 0 {
                    return Err(ctx("syncfs", &fin, io::Error::last_os_error()));
                }
            }
        }
        Ok(std::mem::take(&mut self.name))
    }
}

impl Drop for DropFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> DropEnvelope {
        DropEnvelope {
            extract: true,
            sender: Some("ops@example.org".into()),
            full_name: Some("Backup Job".into()),
            recipients: vec!["a@x.org, b@y.org".into(), "c".into()],
        }
    }

    #[test]
    fn round_trip() {
        for env in [full(), DropEnvelope::default()] {
            let mut out = b"prefix".to_vec();
            encode(&env, &mut out).unwrap();
            let mut file = out[6..].to_vec();
            let head = file.len();
            file.extend_from_slice(b"Subject: x\r\n\r\nbody\r\n");
            assert_eq!(parse(&file), Ok((env, head)));
        }
        let null = DropEnvelope {
            sender: Some(String::new()),
            ..Default::default()
        };
        let mut out = Vec::new();
        encode(&null, &mut out).unwrap();
        assert_eq!(parse(&out).unwrap().0.sender.as_deref(), Some(""));
    }

    #[test]
    fn encode_refuses_values_that_could_forge_records() {
        let mut env = full();
        env.recipients.push("x@y\nsender evil@x".into());
        let mut out = Vec::new();
        assert_eq!(
            encode(&env, &mut out),
            Err(MaildropError::BadValue {
                line: 0,
                what: "rcpt"
            })
        );
        let long = DropEnvelope {
            recipients: vec!["a".repeat(MAX_VALUE); 20],
            ..Default::default()
        };
        let mut out = b"keep".to_vec();
        assert_eq!(encode(&long, &mut out), Err(MaildropError::TooLong));
        assert_eq!(out, b"keep");
        let many = DropEnvelope {
            recipients: vec!["a".into(); MAX_RCPT_ARGS + 1],
            ..Default::default()
        };
        assert_eq!(
            encode(&many, &mut Vec::new()),
            Err(MaildropError::TooManyRecipients)
        );
    }

    #[test]
    fn parse_errors() {
        let p = |s: &[u8]| parse(s).map(|x| x.1);
        assert_eq!(p(b""), Err(MaildropError::BadMagic));
        assert_eq!(p(b"tern-maildrop 2\nend\n"), Err(MaildropError::BadMagic));
        assert_eq!(p(b"tern-maildrop 1\nrcpt a"), Err(MaildropError::NoEnd));
        assert_eq!(
            p(b"tern-maildrop 1\nbogus x\nend\n"),
            Err(MaildropError::UnknownRecord { line: 2 })
        );
        assert_eq!(
            p(b"tern-maildrop 1\nsender a\nsender b\nend\n"),
            Err(MaildropError::Duplicate { line: 3 })
        );
        assert_eq!(
            p(b"tern-maildrop 1\nflags extract\nflags extract\nend\n"),
            Err(MaildropError::Duplicate { line: 3 })
        );
        assert_eq!(
            p(b"tern-maildrop 1\nflags other\nend\n"),
            Err(MaildropError::BadValue {
                line: 2,
                what: "flags"
            })
        );
        assert_eq!(
            p(b"tern-maildrop 1\nrcpt a\x01b\nend\n"),
            Err(MaildropError::BadValue {
                line: 2,
                what: "rcpt"
            })
        );
        assert_eq!(
            p(b"tern-maildrop 1\nrcpt \xff\nend\n"),
            Err(MaildropError::BadValue {
                line: 2,
                what: "rcpt"
            })
        );
        // An `end` beyond MAX_ENVELOPE is not looked for.
        let mut big = MAGIC.to_vec();
        while big.len() < MAX_ENVELOPE {
            big.extend_from_slice(b"rcpt a\n");
        }
        big.extend_from_slice(b"end\n");
        assert!(matches!(
            p(&big),
            Err(MaildropError::NoEnd | MaildropError::TooManyRecipients)
        ));
        let mut many = MAGIC.to_vec();
        for _ in 0..=MAX_RCPT_ARGS {
            many.extend_from_slice(b"rcpt a\n");
        }
        many.extend_from_slice(b"end\n");
        assert_eq!(p(&many), Err(MaildropError::TooManyRecipients));
        // CR is a control character: no CRLF envelopes.
        assert_eq!(
            p(b"tern-maildrop 1\nrcpt a\r\nend\n"),
            Err(MaildropError::BadValue {
                line: 2,
                what: "rcpt"
            })
        );
    }
}
