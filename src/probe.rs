//! `tern probe DEST [-l LEVEL] [-m MATCH]...`: connects to a destination
//! the way delivery would (same next-hop resolution, policy, TLS
//! configuration and verifier, from `delivery::client`), says EHLO,
//! STARTTLS (or implicit TLS) and QUIT, and prints what Postfix's
//! posttls-finger prints: the certificate chain, the fingerprints of the
//! leaf certificate and public key, and the `... TLS connection
//! established to ...` line with the verification status. No mail is sent.
//!
//! The certificate-name formatting ([`format_name`], [`common_name`]) is
//! sans-I/O over DER bytes from the network and fuzzed
//! (`fuzz/fuzz_targets/probe_names.rs`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use crate::config::Config;
use crate::delivery::client::Delivery;
use crate::delivery::results::DeliveryResults;
use crate::tls::der::{self, DerError};
use crate::tls::{BufferPool, TlsOutcome};

/// What `tern probe` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeArgs {
    /// The destination: `domain`, `[host]`, `[host]:port` (as in relayhost).
    pub dest: String,
    /// The destination was written `smtps:DEST`: implicit TLS, as an
    /// `smtps:` transport-map entry.
    pub smtps: bool,
    /// `-l LEVEL`: overrides the policy (tables and default level).
    pub level: Option<String>,
    /// `-m MATCH` (repeatable): names or fingerprints the certificate must
    /// match at `verify`, `secure` and `fingerprint`.
    pub matches: Vec<String>,
    /// `-c FILE`, if given.
    pub config: Option<PathBuf>,
}

/// A command-line mistake, printed with the usage line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// An option that needs a value came last.
    MissingValue(&'static str),
    /// An option tern probe does not know.
    UnknownOption(String),
    /// No destination, or more than one.
    Destination,
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgError::MissingValue(o) => write!(f, "option {o} needs a value"),
            ArgError::UnknownOption(o) => write!(f, "unknown option {o}"),
            ArgError::Destination => f.write_str("exactly one destination is needed"),
        }
    }
}

/// The usage line.
pub const USAGE: &str = "usage: tern probe [-c FILE] [-l LEVEL] [-m MATCH]... [smtps:]DEST";

/// Parses `tern probe`'s arguments (after the sub-command).
pub fn parse_args(args: &[String]) -> Result<ProbeArgs, ArgError> {
    let mut out = ProbeArgs {
        dest: String::new(),
        smtps: false,
        level: None,
        matches: Vec::new(),
        config: None,
    };
    let mut dests = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-l" => out.level = Some(it.next().ok_or(ArgError::MissingValue("-l"))?.clone()),
            "-m" => out
                .matches
                .push(it.next().ok_or(ArgError::MissingValue("-m"))?.clone()),
            "-c" => out.config = Some(it.next().ok_or(ArgError::MissingValue("-c"))?.into()),
            o if o.starts_with('-') && o.len() > 1 => {
                return Err(ArgError::UnknownOption(o.to_string()))
            }
            d => dests.push(d.to_string()),
        }
    }
    match dests.as_slice() {
        [d] => match d.strip_prefix("smtps:") {
            Some(rest) if !rest.is_empty() => {
                out.dest = rest.to_string();
                out.smtps = true;
            }
            Some(_) => return Err(ArgError::Destination),
            None => out.dest = d.clone(),
        },
        _ => return Err(ArgError::Destination),
    }
    Ok(out)
}

/// Short names of the attribute types a server certificate's Name uses.
fn attr_name(oid: &[u8]) -> Option<&'static str> {
    // 2.5.4.x is 55 04 x; emailAddress is 1.2.840.113549.1.9.1.
    match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        [0x55, 0x04, 0x05] => Some("serialNumber"),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => Some("emailAddress"),
        _ => None,
    }
}

/// Most attributes of a Name that are printed; the rest is elided.
const MAX_ATTRS: usize = 16;
/// Longest attribute value printed (bytes); longer ones are cut.
const MAX_VALUE: usize = 256;

/// Calls `f(type, value)` for each attribute of a DER Name, in order.
fn each_attr(name: &[u8], mut f: impl FnMut(&[u8], String)) -> Result<(), DerError> {
    let seq = der::read_tlv(name)?;
    if seq.tag != 0x30 {
        return Err(DerError::UnexpectedTag(seq.tag));
    }
    let mut rdns = seq.contents;
    let mut n = 0;
    while !rdns.is_empty() {
        let set = der::read_tlv(rdns)?;
        rdns = set.rest;
        if set.tag != 0x31 {
            return Err(DerError::UnexpectedTag(set.tag));
        }
        let mut atvs = set.contents;
        while !atvs.is_empty() {
            let atv = der::read_tlv(atvs)?;
            atvs = atv.rest;
            if atv.tag != 0x30 {
                return Err(DerError::UnexpectedTag(atv.tag));
            }
            let oid = der::read_tlv(atv.contents)?;
            if oid.tag != 0x06 {
                return Err(DerError::UnexpectedTag(oid.tag));
            }
            let value = der::read_tlv(oid.rest)?;
            n += 1;
            if n > MAX_ATTRS {
                return Ok(());
            }
            f(oid.contents, printable(value.tag, value.contents));
        }
    }
    Ok(())
}

/// A directory string as text: UTF-8 and the ASCII string types as they
/// are, BMPString decoded, anything else as `#hex`. Control characters
/// become `?` so that a certificate cannot forge output lines.
fn printable(tag: u8, v: &[u8]) -> String {
    let v = v.get(..MAX_VALUE).unwrap_or(v);
    let text = match tag {
        // UTF8String, PrintableString, T61String, IA5String
        0x0c | 0x13 | 0x14 | 0x16 => String::from_utf8_lossy(v).into_owned(),
        // BMPString
        0x1e => {
            let units: Vec<u16> = v
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => {
            let mut s = String::from("#");
            for b in v {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    };
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A DER Name in OpenSSL's one-line form: `/O=tern testbed/CN=tern test CA`.
pub fn format_name(name: &[u8]) -> Result<String, DerError> {
    let mut s = String::new();
    each_attr(name, |oid, value| {
        s.push('/');
        match attr_name(oid) {
            Some(n) => s.push_str(n),
            None => s.push('?'),
        }
        s.push('=');
        s.push_str(&value);
    })?;
    Ok(s)
}

/// The last CN of a DER Name (what posttls-finger prints as subject_CN).
pub fn common_name(name: &[u8]) -> Result<Option<String>, DerError> {
    let mut cn = None;
    each_attr(name, |oid, value| {
        if attr_name(oid) == Some("CN") {
            cn = Some(value);
        }
    })?;
    Ok(cn)
}

fn colon_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The report lines for a finished probe, without the program prefix:
/// one `depth=N subject=... issuer=...` line per certificate, the
/// posttls-finger summary of the leaf, and the established line or why it
/// failed. `sha512` selects the digest like `smtp_tls_fingerprint_digest`.
pub fn report(results: &DeliveryResults, sha512: bool) -> Vec<String> {
    let mut out = results.notes.clone();
    let hostport = results
        .tls_attempts
        .last()
        .map(|a| format!("{}[{}]:{}", a.host, a.addr, a.port))
        .or_else(|| results.connected.clone())
        .unwrap_or_default();
    let alg = if sha512 {
        &aws_lc_rs::digest::SHA512
    } else {
        &aws_lc_rs::digest::SHA256
    };
    for (depth, cert) in results.peer_chain.iter().enumerate() {
        match der::cert_fields(cert) {
            Ok(f) => {
                let subject = format_name(f.subject).unwrap_or_else(|e| format!("<{e:?}>"));
                let issuer = format_name(f.issuer).unwrap_or_else(|e| format!("<{e:?}>"));
                out.push(format!(
                    "{hostport}: depth={depth} subject={subject} issuer={issuer}"
                ));
                if depth == 0 {
                    let cn = |n| common_name(n).ok().flatten().unwrap_or_default();
                    out.push(format!(
                        "{hostport}: subject_CN={}, issuer_CN={}, fingerprint={}, pkey_fingerprint={}",
                        cn(f.subject),
                        cn(f.issuer),
                        colon_hex(aws_lc_rs::digest::digest(alg, cert).as_ref()),
                        colon_hex(aws_lc_rs::digest::digest(alg, f.spki).as_ref()),
                    ));
                }
            }
            Err(e) => out.push(format!(
                "{hostport}: depth={depth} unparsable certificate: {e:?}"
            )),
        }
    }
    if let Some(a) = results.tls_attempts.last() {
        if let TlsOutcome::Failure { kind, reason } = &a.outcome {
            out.push(format!(
                "server certificate verification failed for {hostport}: {reason} ({})",
                kind.as_str()
            ));
        }
    }
    out.extend(results.tls_established.iter().cloned());
    if results.tls_established.is_empty() {
        match &results.last_failure {
            Some(why) => out.push(why.clone()),
            None => out.push(format!("{hostport}: session completed without TLS")),
        }
    }
    out
}

/// Loads the configuration with the probe's overrides applied: `-l`
/// replaces the level and ignores the policy tables (as posttls-finger
/// does); `-m` sets the match lists of the verify, secure and fingerprint
/// levels.
fn load_config(a: &ProbeArgs) -> Result<Config, String> {
    let path = a
        .config
        .clone()
        .unwrap_or_else(|| crate::cli::config_path(&[]));
    let mut text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if a.config.is_none() && e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    text.push('\n');
    if let Some(l) = &a.level {
        text.push_str(&format!(
            "smtp_tls_security_level = {l}\nsmtp_tls_policy_maps =\n"
        ));
    }
    if !a.matches.is_empty() {
        let names = a.matches.join(", ");
        let fps = a.matches.join(" ");
        text.push_str(&format!(
            "smtp_tls_verify_cert_match = {names}\nsmtp_tls_secure_cert_match = {names}\n\
             smtp_tls_fingerprint_cert_match = {fps}\n"
        ));
    }
    Config::parse_str(&text, &path.display().to_string()).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `tern probe`: prints the report on stdout, each line prefixed with
/// `tern probe: `; exit 0 when a session completed, 1 when not, 64 on a
/// usage error, 78 on a configuration error.
pub fn main(args: &[String]) -> ExitCode {
    let a = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tern probe: {e}\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let cfg = match load_config(&a) {
        Ok(c) => Rc::new(c),
        Err(e) => {
            eprintln!("tern probe: fatal: {e}");
            return ExitCode::from(78);
        }
    };
    let pool = Rc::new(BufferPool::new(1));
    let ctx = match crate::delivery::context::context(cfg, pool) {
        Ok(c) => Rc::new(c),
        Err(e) => {
            eprintln!("tern probe: fatal: {e}");
            return ExitCode::from(78);
        }
    };
    // As the router decides for delivery: smtp_tls_wrappermode covers
    // configured next hops (`[host]`, `[host]:port`), not a domain's MX.
    let set = &ctx.settings;
    let implicit_tls =
        a.smtps || set.wrappermode && (a.dest.starts_with('[') || a.dest == set.relayhost);
    let sha512 = set.plan.fingerprint_digest == crate::tls::verify::FingerprintDigest::Sha512;
    let results = smol::block_on(
        Delivery::probe(ctx, a.dest.clone())
            .implicit_tls(implicit_tls)
            .run_probe(),
    );
    for line in report(&results, sha512) {
        println!("tern probe: {line}");
    }
    if results.last_failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn args() {
        let a = parse_args(&s(&[
            "-l",
            "secure",
            "-m",
            "a.example",
            "-m",
            "b",
            "[x]:25",
        ]))
        .unwrap();
        assert_eq!(a.dest, "[x]:25");
        assert_eq!(a.level.as_deref(), Some("secure"));
        assert_eq!(a.matches, s(&["a.example", "b"]));
        assert!(!a.smtps);
        let a = parse_args(&s(&["smtps:[x]:4650"])).unwrap();
        assert_eq!((a.dest.as_str(), a.smtps), ("[x]:4650", true));
        assert_eq!(parse_args(&s(&["smtps:"])), Err(ArgError::Destination));
        assert_eq!(parse_args(&s(&["-l"])), Err(ArgError::MissingValue("-l")));
        assert_eq!(parse_args(&s(&[])), Err(ArgError::Destination));
        assert_eq!(parse_args(&s(&["a", "b"])), Err(ArgError::Destination));
        assert_eq!(
            parse_args(&s(&["-x", "a"])),
            Err(ArgError::UnknownOption("-x".into()))
        );
    }

    /// SEQUENCE { SET { SEQUENCE { OID 2.5.4.10, UTF8 "Org" } },
    ///            SET { SEQUENCE { OID 2.5.4.3, PrintableString "mx" } } }
    const NAME: &[u8] = &[
        0x30, 0x1c, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x03, b'O', b'r',
        b'g', 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x03, b'm', b'x', b'\n',
    ];

    #[test]
    fn names() {
        assert_eq!(format_name(NAME).unwrap(), "/O=Org/CN=mx?");
        assert_eq!(common_name(NAME).unwrap().as_deref(), Some("mx?"));
        assert_eq!(common_name(&[0x30, 0x00]).unwrap(), None);
    }

    #[test]
    fn name_errors() {
        assert!(format_name(&[]).is_err());
        assert!(format_name(&[0x31, 0x00]).is_err());
        // Truncated inside the attribute.
        assert!(format_name(&NAME[..NAME.len() - 3]).is_err());
        // A SET that holds something else than an AttributeTypeAndValue.
        assert!(format_name(&[0x30, 0x04, 0x31, 0x02, 0x05, 0x00]).is_err());
        // Value of an unknown string type comes out as hex.
        let odd = [
            0x30, 0x0b, 0x31, 0x09, 0x30, 0x07, 0x06, 0x03, 0x55, 0x04, 0x03, 0x04, 0x00,
        ];
        assert_eq!(format_name(&odd).unwrap(), "/CN=#");
    }

    #[test]
    fn hex() {
        assert_eq!(colon_hex(&[0x0a, 0xff, 0x00]), "0A:FF:00");
    }
}
