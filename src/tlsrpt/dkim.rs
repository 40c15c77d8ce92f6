//! DKIM signing (RFC 6376) of report messages: relaxed/relaxed
//! canonicalisation, SHA-256 body hash, and an `rsa-sha256` or
//! `ed25519-sha256` (RFC 8463) signature made with aws-lc-rs, already in
//! the binary for TLS. Sans-I/O: the key comes as PEM bytes, the time as a
//! number; the caller reads the file and the clock.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, RsaKeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

/// The header fields signed, when present (RFC 6376 §5.4.1 recommends the
/// content-bearing ones; the TLSRPT headers name what the report is).
pub const SIGNED_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "tls-report-domain",
    "tls-report-submitter",
    "tls-required",
];

/// A signing key.
pub enum Key {
    /// `a=rsa-sha256`.
    Rsa(RsaKeyPair),
    /// `a=ed25519-sha256`.
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Key::Rsa(_) => "Key::Rsa",
            Key::Ed25519(_) => "Key::Ed25519",
        })
    }
}

impl Key {
    /// The key from a PEM file's bytes: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or
    /// Ed25519, as `openssl genpkey` writes) or PKCS#1 (`BEGIN RSA PRIVATE
    /// KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<Key, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("no private key in PEM: {e}"))?;
        match der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
                .map(Key::Rsa)
                .map_err(|e| format!("RSA key: {e}")),
            PrivateKeyDer::Pkcs8(k) => {
                let d = k.secret_pkcs8_der();
                if let Ok(r) = RsaKeyPair::from_pkcs8(d) {
                    return Ok(Key::Rsa(r));
                }
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(d)
                    .map(Key::Ed25519)
                    .map_err(|e| format!("neither an RSA nor an Ed25519 key: {e}"))
            }
            _ => Err("unsupported key type (use RSA or Ed25519)".into()),
        }
    }

    /// The `a=` tag.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The public key as the DNS record's `p=` wants it: RSA as DER
    /// `RSAPublicKey` wrapped by the caller if needed; Ed25519 raw 32 bytes
    /// (RFC 8463 §4.2). For tests and the operator's log line.
    pub fn public_key(&self) -> Vec<u8> {
        match self {
            Key::Rsa(k) => k.public_key().as_ref().to_vec(),
            Key::Ed25519(k) => k.public_key().as_ref().to_vec(),
        }
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Key::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    data,
                    &mut sig,
                )
                .map_err(|_| "RSA signing failed".to_string())?;
                Ok(sig)
            }
            // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data.
            Key::Ed25519(k) => Ok(k
                .sign(digest::digest(&digest::SHA256, data).as_ref())
                .as_ref()
                .to_vec()),
        }
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Relaxed body canonicalisation (RFC 6376 §3.4.4) of a CRLF body.
pub fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    // A body ending in CRLF splits into a last empty piece: not a line.
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut wsp = false;
        for &b in line {
            if is_wsp(b) {
                wsp = true;
            } else {
                if wsp {
                    out.push(b' ');
                    wsp = false;
                }
                out.push(b);
            }
        }
        // Trailing whitespace is dropped (wsp pending at the end).
        out.extend_from_slice(b"\r\n");
    }
    // Empty lines at the end are ignored.
    while out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    if out == b"\r\n" {
        out.clear();
    }
    out
}

/// Relaxed header canonicalisation (RFC 6376 §3.4.2) of one field
/// (`Name: value` with any folding, without the final CRLF), CRLF added.
pub fn relaxed_header(field: &[u8]) -> Vec<u8> {
    let colon = field.iter().position(|b| *b == b':').unwrap_or(field.len());
    let name = field[..colon].trim_ascii();
    let value = field.get(colon + 1..).unwrap_or(b"");
    let mut out: Vec<u8> = name.to_ascii_lowercase();
    out.push(b':');
    let mut wsp = false;
    let mut started = false;
    for &b in value {
        if b == b'\r' || b == b'\n' {
            continue;
        }
        if is_wsp(b) {
            wsp = true;
        } else {
            if wsp && started {
                out.push(b' ');
            }
            wsp = false;
            started = true;
            out.push(b);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The header fields of a CRLF message, each with its folded lines
/// (without the final CRLF), and where the body starts.
fn fields(msg: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    let mut start: Option<usize> = None;
    while pos < msg.len() {
        let end = msg[pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(msg.len(), |i| pos + i);
        let line = &msg[pos..end];
        let next = (end + 2).min(msg.len());
        if line.is_empty() {
            if let Some(s) = start.take() {
                out.push(&msg[s..pos.saturating_sub(2)]);
            }
            return (out, next);
        }
        if is_wsp(line[0]) && start.is_some() {
            // A continuation line of the field being read.
        } else {
            if let Some(s) = start.take() {
                out.push(&msg[s..pos - 2]);
            }
            start = Some(pos);
        }
        pos = next;
    }
    if let Some(s) = start {
        out.push(&msg[s..msg.len().min(pos).saturating_sub(2).max(s)]);
    }
    (out, msg.len())
}

fn field_name(f: &[u8]) -> String {
    let colon = f.iter().position(|b| *b == b':').unwrap_or(f.len());
    String::from_utf8_lossy(f[..colon].trim_ascii()).to_ascii_lowercase()
}

/// Signs `msg` (CRLF lines, header block, blank line, body) for `domain`
/// with `selector` at Unix time `now`; returns the `DKIM-Signature:` field
/// to put at the top of the message, folded, ending in CRLF.
pub fn sign(
    msg: &[u8],
    key: &Key,
    domain: &str,
    selector: &str,
    now: u64,
) -> Result<Vec<u8>, String> {
    let (hdrs, body_at) = fields(msg);
    let body = relaxed_body(msg.get(body_at..).unwrap_or(b""));
    let bh = crate::base64::encode(digest::digest(&digest::SHA256, &body).as_ref());
    // Each signed name takes the last instance not yet taken (§5.4.2);
    // names not present are left out of h=.
    let mut used = vec![false; hdrs.len()];
    let mut names = Vec::new();
    let mut data = Vec::with_capacity(1024);
    for want in SIGNED_HEADERS {
        if let Some(i) = (0..hdrs.len())
            .rev()
            .find(|&i| !used[i] && field_name(hdrs[i]) == *want)
        {
            used[i] = true;
            names.push(*want);
            data.extend_from_slice(&relaxed_header(hdrs[i]));
        }
    }
    let tags = format!(
        "v=1; a={}; c=relaxed/relaxed; d={domain}; s={selector};\r\n\tt={now}; h={};\r\n\tbh={bh};\r\n\tb=",
        key.algorithm(),
        names.join(":")
    );
    let unsigned = format!("DKIM-Signature: {tags}");
    let mut canon = relaxed_header(unsigned.as_bytes());
    // The signature field itself goes in without its CRLF (§3.7).
    canon.truncate(canon.len() - 2);
    data.extend_from_slice(&canon);
    let sig = crate::base64::encode(&key.sign(&data)?);
    let mut out = unsigned.into_bytes();
    // Folded every 72 characters: relaxed canonicalisation removes the
    // folding whitespace again, so the signature covers the same bytes.
    for (i, chunk) in sig.as_bytes().chunks(72).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n\t ");
        }
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalisation() {
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
        assert_eq!(relaxed_body(b"x"), b"x\r\n");
        assert_eq!(relaxed_header(b"A: X"), b"a:X\r\n");
        assert_eq!(relaxed_header(b"B : Y\t\r\n\tZ  "), b"b:Y Z\r\n");
        let (f, at) = fields(b"A: 1\r\nB: 2\r\n 3\r\n\r\nbody\r\n");
        assert_eq!(f, [&b"A: 1"[..], &b"B: 2\r\n 3"[..]]);
        assert_eq!(at, 18);
    }

    const MSG: &[u8] = b"From: a@s.test\r\nTo: b@d.test\r\nSubject: Report Domain: d.test\r\n Submitter: s.test\r\nTLS-Required: No\r\n\r\nHello  \r\nworld\r\n\r\n";

    /// The signature verifies with the public key over the data RFC 6376
    /// says is signed (rebuilt independently here).
    #[test]
    fn ed25519_signature_verifies() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            crate::base64::encode(pkcs8.as_ref())
        );
        let key = Key::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(key.algorithm(), "ed25519-sha256");
        let h =
            String::from_utf8(sign(MSG, &key, "s.test", "sel", 1_700_000_000).unwrap()).unwrap();
        assert!(h.starts_with(
            "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=s.test; s=sel;"
        ));
        assert!(h.contains("h=from:to:subject:tls-required;"));
        let b = h
            .split("b=")
            .last()
            .unwrap()
            .replace(['\r', '\n', '\t', ' '], "");
        let body_hash =
            crate::base64::encode(digest::digest(&digest::SHA256, b"Hello\r\nworld\r\n").as_ref());
        assert!(h.contains(&format!("bh={body_hash};")));
        let unsigned = &h[..h.rfind("b=").unwrap() + 2];
        let mut data = b"from:a@s.test\r\nto:b@d.test\r\nsubject:Report Domain: d.test Submitter: s.test\r\ntls-required:No\r\n".to_vec();
        let c = relaxed_header(unsigned.as_bytes());
        data.extend_from_slice(&c[..c.len() - 2]);
        let pk = signature::UnparsedPublicKey::new(&signature::ED25519, key.public_key());
        let sig = crate::base64::decode(&b).unwrap();
        pk.verify(digest::digest(&digest::SHA256, &data).as_ref(), &sig)
            .unwrap();
    }
}
