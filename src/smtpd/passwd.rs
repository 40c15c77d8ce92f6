//! The SMTP AUTH password file (`smtpd_sasl_password_file`): one user per
//! line, `user:$pbkdf2-sha256$i=ITER$SALT$HASH` (salt and hash in unpadded
//! standard base64, as PHC strings write them). Never plaintext.
//!
//! PBKDF2 runs on the only thread, so the iteration count is a trade-off:
//! 20,000 rounds of HMAC-SHA256 cost ~7 ms on x86-64 with SHA-NI and, by
//! the estimates in `boards/*.conf`, ~55 ms on a Cortex-A53 and ~290 ms on
//! a Cortex-A7, during which other sessions wait; hence the daemon-wide
//! `smtpd_auth_check_rate_limit`. Attackers who steal the file still face
//! a salted, iterated hash.

use std::num::NonZeroU32;

use aws_lc_rs::{pbkdf2, rand};

/// Iterations used for new hashes.
pub const DEFAULT_ITERATIONS: u32 = 20_000;
/// Most iterations a hash in the file may ask for: each AUTH runs them on
/// the only thread, so a typo such as `i=2000000000` must be an error at
/// load time, not hours of stalled sessions.
pub const MAX_ITERATIONS: u32 = 1_000_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// Longest user name accepted (also bounds lookups).
pub const MAX_USER: usize = 256;

/// One line of the file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The user name as clients send it in AUTH.
    pub user: String,
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// A parse error with its line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The loaded password file.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    entries: Vec<Entry>,
}

impl PasswordFile {
    /// Parses the file text; every bad line is reported.
    pub fn parse(text: &str) -> Result<PasswordFile, Vec<Error>> {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Ok(e) => entries.push(e),
                Err(message) => errors.push(Error {
                    line: i + 1,
                    message,
                }),
            }
        }
        if errors.is_empty() {
            Ok(PasswordFile { entries })
        } else {
            Err(errors)
        }
    }

    /// The largest iteration count in the file (0 when empty): what one
    /// [`PasswordFile::verify`] may cost at most.
    pub fn max_iterations(&self) -> u32 {
        self.entries
            .iter()
            .map(|e| e.iterations.get())
            .max()
            .unwrap_or(0)
    }

    /// Checks a user's password in constant time with respect to the hash.
    /// Unknown users cost the same PBKDF2 work, so timing does not reveal
    /// which names exist.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.entries.iter().find(|e| e.user == user) {
            Some(e) => pbkdf2::verify(
                pbkdf2::PBKDF2_HMAC_SHA256,
                e.iterations,
                &e.salt,
                password,
                &e.hash,
            )
            .is_ok(),
            None => {
                let mut out = [0u8; HASH_LEN];
                if let Some(n) = NonZeroU32::new(DEFAULT_ITERATIONS) {
                    pbkdf2::derive(
                        pbkdf2::PBKDF2_HMAC_SHA256,
                        n,
                        &[0u8; SALT_LEN],
                        password,
                        &mut out,
                    );
                }
                false
            }
        }
    }

    /// Returns the file text with `user` set to a new hash of `password`
    /// (replacing an existing line for that user, keeping every other line).
    pub fn set_password(text: &str, user: &str, password: &[u8]) -> Result<String, String> {
        if user.is_empty()
            || user.len() > MAX_USER
            || user.contains([':', '\n', '\r'])
            || user.trim() != user
        {
            return Err(format!("bad user name \"{user}\""));
        }
        let line = format!("{}:{}", user, hash_password(password)?);
        let mut out = String::new();
        let mut replaced = false;
        for l in text.lines() {
            if l.split_once(':').map(|(u, _)| u.trim()) == Some(user) {
                if !replaced {
                    out.push_str(&line);
                    out.push('\n');
                    replaced = true;
                }
            } else {
                out.push_str(l);
                out.push('\n');
            }
        }
        if !replaced {
            out.push_str(&line);
            out.push('\n');
        }
        Ok(out)
    }
}

/// Hashes a password as `$pbkdf2-sha256$i=N$salt$hash`.
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt).map_err(|_| "no randomness available for the salt".to_string())?;
    let iters = NonZeroU32::new(DEFAULT_ITERATIONS).ok_or("zero iterations")?;
    let mut hash = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iters,
        &salt,
        password,
        &mut hash,
    );
    Ok(format!(
        "$pbkdf2-sha256$i={}${}${}",
        DEFAULT_ITERATIONS,
        crate::base64::encode_unpadded(&salt),
        crate::base64::encode_unpadded(&hash)
    ))
}

fn parse_line(line: &str) -> Result<Entry, String> {
    let (user, phc) = line
        .split_once(':')
        .ok_or("expected user:$pbkdf2-sha256$i=N$salt$hash")?;
    let user = user.trim();
    if user.is_empty() || user.len() > MAX_USER {
        return Err("empty or overlong user name".into());
    }
    let mut parts = phc.trim().split('$');
    let (Some(""), Some(alg), Some(iter), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(format!("user {user}: expected $pbkdf2-sha256$i=N$salt$hash (a plaintext password is not accepted; set it with `tern passwd`)"));
    };
    if alg != "pbkdf2-sha256" {
        return Err(format!(
            "user {user}: unsupported hash \"{alg}\" (only pbkdf2-sha256)"
        ));
    }
    let iterations = iter
        .strip_prefix("i=")
        .and_then(|n| n.parse::<u32>().ok())
        .and_then(NonZeroU32::new)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or_else(|| {
            format!("user {user}: bad iteration count \"{iter}\" (1 to {MAX_ITERATIONS})")
        })?;
    let salt = crate::base64::decode(salt).map_err(|e| format!("user {user}: salt: {e}"))?;
    let hash = crate::base64::decode(hash).map_err(|e| format!("user {user}: hash: {e}"))?;
    if salt.len() < 8 || hash.len() != HASH_LEN {
        return Err(format!("user {user}: salt too short or hash not 32 bytes"));
    }
    Ok(Entry {
        user: user.to_string(),
        iterations,
        salt,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_then_verify() {
        let text = PasswordFile::set_password("# users\n", "alice", b"s3cret").unwrap();
        let text = PasswordFile::set_password(&text, "bob", b"hunter2").unwrap();
        let text = PasswordFile::set_password(&text, "alice", b"n3w").unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("# users\nalice:$pbkdf2-sha256$i=20000$"));
        let f = PasswordFile::parse(&text).unwrap();
        assert!(f.verify("alice", b"n3w"));
        assert!(!f.verify("alice", b"s3cret"));
        assert!(f.verify("bob", b"hunter2"));
        assert!(!f.verify("carol", b"hunter2"));
    }

    #[test]
    fn plaintext_and_garbage_are_rejected_with_lines() {
        let errs = PasswordFile::parse("alice:secret\n\nbob:$md5$x$y$z\ncarol\n").unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 3, 4]);
        assert!(errs[0]
            .message
            .contains("plaintext password is not accepted"));
        assert!(errs[1].message.contains("unsupported hash"));
    }

    #[test]
    fn iteration_counts_are_bounded() {
        let salt = crate::base64::encode_unpadded(&[1u8; 16]);
        let hash = crate::base64::encode_unpadded(&[2u8; 32]);
        let line = |i: &str| format!("u:$pbkdf2-sha256$i={i}${salt}${hash}\n");
        let f = PasswordFile::parse(&line("1000000")).unwrap();
        assert_eq!(f.max_iterations(), 1_000_000);
        for bad in ["0", "1000001", "4294967295", "99999999999", "-1", "x", ""] {
            let errs = PasswordFile::parse(&line(bad)).unwrap_err();
            assert_eq!(errs.len(), 1, "{bad}");
            assert!(
                errs[0].message.contains("bad iteration count"),
                "{bad}: {}",
                errs[0].message
            );
        }
        assert_eq!(PasswordFile::parse("# none\n").unwrap().max_iterations(), 0);
    }

    #[test]
    fn bad_user_names() {
        for u in ["", "a:b", " a", "x\ny"] {
            assert!(PasswordFile::set_password("", u, b"p").is_err(), "{u:?}");
        }
    }
}
