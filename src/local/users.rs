//! The password database, for local users' home directories (getpwnam_r).

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// A user from the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
}

/// Looks up `name` (as given; login names are case-sensitive). `Ok(None)`
/// for no such user; `Err` when the database could not be read.
pub fn lookup(name: &str) -> std::io::Result<Option<User>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None);
    };
    if name.is_empty() || name.len() > 256 {
        return Ok(None);
    }
    // SAFETY: zeroed passwd is a valid out-parameter; getpwnam_r fills it.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: every pointer is to memory we own, sized as passed.
    let r = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if r != 0 {
        // ENOENT/ESRCH/EBADF/EPERM mean "not found" for some libcs.
        return match r {
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
            e => Err(std::io::Error::from_raw_os_error(e)),
        };
    }
    if result.is_null() || pw.pw_name.is_null() || pw.pw_dir.is_null() {
        return Ok(None);
    }
    // SAFETY: on success the strings are NUL-terminated inside `buf`.
    let (n, home) = unsafe {
        (
            CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned(),
            CStr::from_ptr(pw.pw_dir).to_string_lossy().into_owned(),
        )
    };
    Ok(Some(User {
        name: n,
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        home: PathBuf::from(home),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown() {
        let root = lookup("root").unwrap().unwrap();
        assert_eq!(root.uid, 0);
        assert_eq!(root.home, PathBuf::from("/root"));
        assert_eq!(lookup("no-such-user-tern-x").unwrap(), None);
        assert_eq!(lookup("a\0b").unwrap(), None);
        assert_eq!(lookup("").unwrap(), None);
    }
}
