//! Server certificate verification per Postfix security level.
//!
//! One [`TernVerifier`] per outbound connection (it records what it saw). It
//! always checks the handshake signatures with rustls's real functions
//! (`rustls::crypto::verify_tls12_signature` / `verify_tls13_signature` and
//! the provider's algorithms, in `keyinfo::verify_signature`, which the
//! listener's client-certificate verifier shares): whatever the level, a
//! peer must hold the private key of the certificate it shows. Only the certificate *acceptance*
//! differs by level:
//!
//! | level | [`VerifyMode`] | accepts | logs |
//! | --- | --- | --- | --- |
//! | `may`, `encrypt` | `Opportunistic` | any certificate | `Trusted` if it chains to the CA roots, else `Untrusted` |
//! | `fingerprint` | `Fingerprints` | the `smtp_tls_fingerprint_digest` (SHA-256 by default) of the certificate or of its public key (SPKI) in the `match=` list | `Verified` |
//! | `verify`, `secure` | `Verify` | chain to the CA roots and a SAN DNS name matching the list | `Verified` |
//! | `dane`, `dane-only` | `Dane` | a chain matching one of the usable TLSA records (DANE-EE: the leaf, names and expiry ignored; DANE-TA: chain to the anchor, name = TLSA base domain or next-hop domain), see [`super::dane`] | `Verified` |
//!
//! `verify` and `secure` differ only in which names the caller puts in the
//! list (`hostname`, `nexthop`, `dot-nexthop` resolved to names or
//! `.suffix` patterns): that is policy, not verification.
//!
//! Names are compared as Debian's Postfix 3.7 has OpenSSL compare them
//! (`SSL_add1_host` with `X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS`, see
//! [`cert_name_matches`]): the DNS subjectAltNames, or every subject CN when
//! the certificate has no DNS subjectAltName; a `*.` wildcard covers exactly
//! one label, and a `*.example.com` pattern (the seed's
//! `match=*.mail.hostpoint.ch`) names that wildcard itself.
//!
//! A trust anchor presented as the server's own certificate (a self-signed
//! certificate in `tafile=` or the CAfile, `CA:TRUE` as `openssl req
//! -x509` makes it) is trusted as itself, within its validity period, as
//! OpenSSL trusts it; webpki alone refuses a CA certificate as an end
//! entity.
//!
//! After the handshake (success or failure), [`TernVerifier::outcome`] gives a
//! [`TlsOutcome`] for the log and the TLSRPT counters (RFC 8460 failure types).
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::keyinfo::{self, Peer, SignedIn};
use super::server_config::ConfigError;
use super::summary::Trust;

/// Debian's CA bundle, the default `smtp_tls_CAfile`.
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One acceptable server name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchName {
    /// The certificate must be valid for exactly this DNS name (wildcards in
    /// the certificate apply as usual).
    Exact(String),
    /// `.example.com`: any name below example.com (not example.com itself).
    Suffix(String),
}

impl MatchName {
    /// `.example.com` becomes [`MatchName::Suffix`], anything else [`MatchName::Exact`].
    /// Lower-cased; a trailing dot is removed.
    pub fn parse(s: &str) -> MatchName {
        let s = s.trim_end_matches('.').to_ascii_lowercase();
        if s.starts_with('.') {
            MatchName::Suffix(s)
        } else {
            MatchName::Exact(s)
        }
    }
}

/// Formats a digest (a fingerprint, a TLSA association) as Postfix logs it:
/// upper-case hex, colon-separated.
pub fn format_digest(fp: &[u8]) -> String {
    let mut s = String::with_capacity(fp.len() * 3);
    for (i, b) in fp.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The digest of the `fingerprint` level (`smtp_tls_fingerprint_digest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FingerprintDigest {
    /// SHA-256 (32 bytes), Postfix's default since 3.6.
    Sha256,
    /// SHA-512 (64 bytes).
    Sha512,
}

impl FingerprintDigest {
    /// From the parameter value (`sha256`, `sha512`; case ignored).
    pub fn parse(name: &str) -> Option<FingerprintDigest> {
        if name.eq_ignore_ascii_case("sha256") {
            Some(FingerprintDigest::Sha256)
        } else if name.eq_ignore_ascii_case("sha512") {
            Some(FingerprintDigest::Sha512)
        } else {
            None
        }
    }

    /// Digest length in bytes.
    pub fn len(self) -> usize {
        match self {
            FingerprintDigest::Sha256 => 32,
            FingerprintDigest::Sha512 => 64,
        }
    }

    /// Always false (a digest has bytes); for clippy's `len` convention.
    pub fn is_empty(self) -> bool {
        false
    }

    /// The parameter value naming it.
    pub fn name(self) -> &'static str {
        match self {
            FingerprintDigest::Sha256 => "sha256",
            FingerprintDigest::Sha512 => "sha512",
        }
    }

    fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            FingerprintDigest::Sha256 => &digest::SHA256,
            FingerprintDigest::Sha512 => &digest::SHA512,
        }
    }
}

/// How the server certificate is judged.
#[derive(Clone, Debug)]
pub enum VerifyMode {
    /// `may` / `encrypt`: accept any certificate; report Trusted or Untrusted.
    Opportunistic,
    /// `fingerprint` with the digest of `smtp_tls_fingerprint_digest`: the
    /// certificate's or its public key's digest must be in `list`.
    Fingerprints {
        /// The digest algorithm.
        digest: FingerprintDigest,
        /// Acceptable digests (entries of another length never match).
        list: Vec<Vec<u8>>,
    },
    /// `verify` / `secure`: chain to the roots and one of these names.
    Verify(Vec<MatchName>),
    /// `dane` / `dane-only` with usable TLSA records: [`super::dane`]
    /// matching; `names` are the TLSA base domain, then the next-hop domain
    /// (reference identifiers for DANE-TA).
    Dane {
        /// The usable TLSA records of the host.
        records: Vec<super::dane::Tlsa>,
        /// Reference names for DANE-TA.
        names: Vec<String>,
    },
    /// MTA-STS (RFC 8461 §4.2): chain to the roots and `host` in a DNS
    /// subjectAltName, a wildcard covering one left-most label, no CN
    /// fallback (webpki's name check, whatever the `verify` level's
    /// Postfix-compatible rules say).
    Sts {
        /// The MX host name.
        host: String,
        /// `false` for a `testing` policy: the verdict is recorded for
        /// TLSRPT, the handshake goes on (verify, do not enforce).
        enforce: bool,
        /// A failure decided before the handshake (a policy plug-in's
        /// `policy_failure=`, or an MX host outside a `testing` policy):
        /// recorded whatever the certificate.
        forced: Option<(FailureKind, String)>,
    },
}

/// RFC 8460 §4.3 result types a handshake can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The server did not offer STARTTLS (set by the driver, not the verifier).
    StarttlsNotSupported,
    /// No certificate name matched.
    CertificateHostMismatch,
    /// The certificate (or one in the chain) has expired.
    CertificateExpired,
    /// No trust anchor (or listed fingerprint) was found.
    CertificateNotTrusted,
    /// No TLSA record matched the chain (RFC 8460 `tlsa-invalid`).
    TlsaInvalid,
    /// Any other failure: bad encoding, handshake failure, ...
    ValidationFailure,
    /// The MTA-STS policy could not be fetched (RFC 8460
    /// `sts-policy-fetch-error`).
    StsPolicyFetchError,
    /// The MTA-STS policy did not parse (`sts-policy-invalid`).
    StsPolicyInvalid,
    /// The MTA-STS policy's HTTPS server failed PKIX validation
    /// (`sts-webpki-invalid`).
    StsWebpkiInvalid,
    /// DNSSEC validation of the DANE records failed (`dnssec-invalid`).
    /// In the registry for reports and plug-in answers; neither Postfix
    /// 3.10 nor tern reports it: a bogus or unvalidated lookup defers or
    /// lowers the level before any connection, and RFC 8460 events are
    /// only made for connections.
    DnssecInvalid,
    /// DANE was required but no TLSA records were found (`dane-required`);
    /// likewise in the registry only (`dane-only` without usable records
    /// defers before connecting).
    DaneRequired,
}

impl FailureKind {
    /// The RFC 8460 `result-type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::StarttlsNotSupported => "starttls-not-supported",
            FailureKind::CertificateHostMismatch => "certificate-host-mismatch",
            FailureKind::CertificateExpired => "certificate-expired",
            FailureKind::CertificateNotTrusted => "certificate-not-trusted",
            FailureKind::TlsaInvalid => "tlsa-invalid",
            FailureKind::ValidationFailure => "validation-failure",
            FailureKind::StsPolicyFetchError => "sts-policy-fetch-error",
            FailureKind::StsPolicyInvalid => "sts-policy-invalid",
            FailureKind::StsWebpkiInvalid => "sts-webpki-invalid",
            FailureKind::DnssecInvalid => "dnssec-invalid",
            FailureKind::DaneRequired => "dane-required",
        }
    }

    /// The result type of a name in RFC 8460's `result-type` registry
    /// that a policy plug-in may force (`policy_failure=`).
    pub fn parse(name: &str) -> Option<FailureKind> {
        [
            FailureKind::StarttlsNotSupported,
            FailureKind::CertificateHostMismatch,
            FailureKind::CertificateExpired,
            FailureKind::CertificateNotTrusted,
            FailureKind::TlsaInvalid,
            FailureKind::ValidationFailure,
            FailureKind::StsPolicyFetchError,
            FailureKind::StsPolicyInvalid,
            FailureKind::StsWebpkiInvalid,
            FailureKind::DnssecInvalid,
            FailureKind::DaneRequired,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// The result of one TLS attempt, for the log and TLSRPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsOutcome {
    /// Handshake completed; how far the server was authenticated.
    Success(Trust),
    /// Handshake failed.
    Failure {
        /// RFC 8460 result type.
        kind: FailureKind,
        /// Human-readable detail (`failure-reason-code`), e.g. `fingerprint mismatch`.
        reason: String,
    },
}

#[derive(Debug, Default)]
struct Seen {
    trust: Option<Trust>,
    failure: Option<(FailureKind, String)>,
    /// The failure in Postfix 3.10's TLSRPT words (see [`reason`]).
    code: Option<&'static str>,
    dane: Option<super::dane::DaneMatch>,
}

/// The `failure_reason` texts Postfix 3.10 gives TLSRPT (its log line's
/// `failure_reason=`, the datagram's `f`): for certificate problems
/// OpenSSL 3's `X509_verify_cert_error_string()` with spaces turned into
/// underscores (tls_verify.c), else Postfix's own words (tls_client.c).
/// Postfix reports all of these as `validation-failure`, except
/// [`reason::TLSA_UNUSABLE`] (`tlsa-invalid`).
pub mod reason {
    /// `X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT`: the server's certificate
    /// signs itself and is no trust anchor.
    pub const SELF_SIGNED: &str = "self-signed_certificate";
    /// `X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN`: the presented chain ends in
    /// a self-signed certificate that is no trust anchor.
    pub const SELF_SIGNED_IN_CHAIN: &str = "self-signed_certificate_in_certificate_chain";
    /// `X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY`: the chain leads to
    /// an issuer that is not among the trust anchors.
    pub const NO_LOCAL_ISSUER: &str = "unable_to_get_local_issuer_certificate";
    /// `X509_V_ERR_CERT_NOT_YET_VALID`.
    pub const NOT_YET_VALID: &str = "certificate_is_not_yet_valid";
    /// `X509_V_ERR_INVALID_PURPOSE`: no serverAuth extended key usage.
    pub const INVALID_PURPOSE: &str = "unsuitable_certificate_purpose";
    /// The TLS handshake itself failed (Postfix's own text).
    pub const HANDSHAKE: &str = "tls-handshake-failure";
    /// `dane`: validated TLSA records, none usable (Postfix's own text,
    /// reported as `tlsa-invalid`; the connection falls back to `encrypt`).
    pub const TLSA_UNUSABLE: &str = "all-TLSA-records-unusable";
}

/// True when a certificate names itself as its issuer (OpenSSL's
/// "self-signed" test is issuer == subject plus a self-signature; the
/// names suffice here: the chain was refused anyway, this only picks the
/// words of the refusal).
fn self_issued(cert: &[u8]) -> bool {
    super::der::cert_fields(cert).is_ok_and(|f| f.issuer == f.subject)
}

/// The OpenSSL verify error Postfix would have reported (as a
/// [`reason`] text) for a chain rustls/webpki refused with `e`, when
/// Postfix 3.10 gives it a `failure_reason` at all: an unknown issuer is
/// told apart, as OpenSSL does, by whether the server's own certificate or
/// the last one it sent is self-signed. Expiry and name mismatches have
/// their own result types and no reason; other errors none (Postfix's
/// default case).
pub fn openssl_reason(
    e: &rustls::Error,
    end_entity: &[u8],
    intermediates: &[CertificateDer<'_>],
) -> Option<&'static str> {
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    let unknown_issuer = match c {
        CertificateError::UnknownIssuer => true,
        CertificateError::Other(o) => {
            o.0.downcast_ref::<webpki::Error>()
                .is_some_and(|w| matches!(w, webpki::Error::CaUsedAsEndEntity))
        }
        _ => false,
    };
    if unknown_issuer {
        return Some(if self_issued(end_entity) {
            reason::SELF_SIGNED
        } else if intermediates
            .last()
            .is_some_and(|c| self_issued(c.as_ref()))
        {
            reason::SELF_SIGNED_IN_CHAIN
        } else {
            reason::NO_LOCAL_ISSUER
        });
    }
    match c {
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            Some(reason::NOT_YET_VALID)
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            Some(reason::INVALID_PURPOSE)
        }
        _ => None,
    }
}

/// Loads trust anchors from a PEM bundle (`smtp_tls_CAfile`).
pub fn load_ca_file(path: &Path) -> Result<RootCertStore, ConfigError> {
    let pem_err = |error| ConfigError::Pem {
        path: path.to_path_buf(),
        error,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(ConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

/// A per-connection certificate verifier (see the module docs).
#[derive(Debug)]
pub struct TernVerifier {
    mode: VerifyMode,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Seen>,
}

fn classify(e: &rustls::Error) -> (FailureKind, String) {
    let kind = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                FailureKind::CertificateExpired
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                FailureKind::CertificateHostMismatch
            }
            // No anchor could vouch for the chain: an unknown issuer, or an
            // issuer name that matches but whose key did not sign it.
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
            | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. }
            | CertificateError::UnhandledCriticalExtension
            | CertificateError::InvalidPurpose
            | CertificateError::InvalidPurposeContext { .. } => FailureKind::CertificateNotTrusted,
            // A chain webpki would not build: a CA certificate presented
            // as the server's own (and not itself an anchor), a chain
            // breaking a CA's constraints. OpenSSL, so Postfix, calls
            // these untrusted too.
            CertificateError::Other(o)
                if o.0.downcast_ref::<webpki::Error>().is_some_and(|w| {
                    matches!(
                        w,
                        webpki::Error::CaUsedAsEndEntity
                            | webpki::Error::EndEntityUsedAsCa
                            | webpki::Error::PathLenConstraintViolated
                            | webpki::Error::NameConstraintViolation
                    )
                }) =>
            {
                FailureKind::CertificateNotTrusted
            }
            _ => FailureKind::ValidationFailure,
        },
        _ => FailureKind::ValidationFailure,
    };
    (kind, super::words::describe(e))
}

/// True when a SAN DNS name lies strictly below `suffix` (`.example.com`);
/// the `.suffix` rule of [`cert_name_matches`] on text, for the tests.
#[cfg(test)]
fn name_has_suffix(name: &str, suffix: &str) -> bool {
    let name = name.trim_end_matches('.');
    bytes_have_suffix(name.as_bytes(), suffix.as_bytes())
}

/// `name` is longer than `suffix` and ends with it (ASCII case ignored).
fn bytes_have_suffix(name: &[u8], suffix: &[u8]) -> bool {
    name.len() > suffix.len()
        && name
            .get(name.len() - suffix.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

/// The `.rest` after a certificate name's valid full-label wildcard
/// (`*.mail.example.com` gives `.mail.example.com`), as OpenSSL's
/// `valid_star()` judges it with `X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS`:
/// `*` is the whole first label, at least two labels follow, and those are
/// letters, digits and inner hyphens. Anything else (`f*.example.com`,
/// `*.com`) is no wildcard and compared literally.
fn wildcard_suffix(cert_name: &[u8]) -> Option<&[u8]> {
    let rest = cert_name.strip_prefix(b"*")?;
    let labels = rest.strip_prefix(b".")?;
    let mut count = 0;
    for label in labels.split(|b| *b == b'.') {
        let ok = !label.is_empty()
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-')
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
        if !ok {
            return None;
        }
        count += 1;
    }
    (count >= 2).then_some(rest)
}

/// Whether one name the certificate presents (a DNS subjectAltName, or a
/// CN when there is none) matches one reference name, as OpenSSL 3.0's
/// `X509_check_host()` decides it for Postfix 3.7:
///
/// * `.example.com` ([`MatchName::Suffix`]): the certificate name is
///   longer and ends with it (`mx.example.com`, `*.example.com`,
///   `a.b.example.com`; not `example.com`);
/// * a certificate wildcard `*.example.com` covers exactly one label
///   (`mx.example.com`, not `a.b.example.com`, not `example.com`):
///   Postfix's `tls_wildcard_matches_multiple_labels = yes` has no effect
///   on Debian's Postfix 3.7, whose smtp client refuses `a.b.example.com`
///   too (tests/delivery_names.rs asks it);
/// * a reference `*.example.com` matches the certificate wildcard
///   `*.example.com` itself (OpenSSL lets a wildcard match a literal `*`),
///   and nothing else;
/// * otherwise the names are equal, ASCII case ignored.
pub fn cert_name_matches(cert_name: &[u8], reference: &MatchName) -> bool {
    match reference {
        MatchName::Suffix(sfx) => bytes_have_suffix(cert_name, sfx.as_bytes()),
        MatchName::Exact(r) => {
            let r = r.as_bytes();
            match wildcard_suffix(cert_name) {
                Some(suffix) => {
                    if !bytes_have_suffix(r, suffix) {
                        return false;
                    }
                    let label = &r[..r.len() - suffix.len()];
                    label == b"*"
                        || label
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                }
                None => cert_name.eq_ignore_ascii_case(r),
            }
        }
    }
}

/// The names a certificate is checked against: its DNS subjectAltNames
/// or, only when it has none (OpenSSL's rule, so Postfix's), every CN of
/// its subject. Nothing for a certificate tern cannot read.
fn presented_names(cert: &[u8]) -> Vec<Vec<u8>> {
    use super::der;
    match der::subject_alt_dns_names(cert) {
        Ok(Some(names)) if !names.is_empty() => names.into_iter().map(<[u8]>::to_vec).collect(),
        Ok(_) => der::cert_fields(cert)
            .and_then(|f| der::name_attributes(f.subject, der::OID_COMMON_NAME))
            .map(|cns| cns.into_iter().map(String::into_bytes).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// When the server's certificate is itself one of the trust anchors
/// (same subject and public key): `Some(Ok)` within its validity period,
/// `Some(Err)` outside it, `None` when it is no anchor (or unreadable).
fn anchor_itself(
    end_entity: &[u8],
    roots: &RootCertStore,
    now: UnixTime,
) -> Option<Result<(), rustls::Error>> {
    use super::der;
    let f = der::cert_fields(end_entity).ok()?;
    let subject = der::contents(f.subject).ok()?;
    let spki = der::contents(f.spki).ok()?;
    roots
        .roots
        .iter()
        .any(|a| a.subject.as_ref() == subject && a.subject_public_key_info.as_ref() == spki)
        .then(|| {
            let (not_before, not_after) = der::validity(f.validity)
                .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
            let t = now.as_secs();
            if t < not_before {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidYet,
                ))
            } else if t > not_after {
                Err(rustls::Error::InvalidCertificate(CertificateError::Expired))
            } else {
                Ok(())
            }
        })
}

impl TernVerifier {
    /// A verifier for one connection. `roots` may be empty for `fingerprint`
    /// (and for `may`, where everything is then `Untrusted`).
    pub fn new(
        mode: VerifyMode,
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Arc<TernVerifier> {
        Arc::new(TernVerifier {
            mode,
            roots,
            provider,
            seen: Mutex::new(Seen::default()),
        })
    }

    fn set(&self, trust: Option<Trust>, failure: Option<(FailureKind, String)>) {
        if let Ok(mut s) = self.seen.lock() {
            s.trust = trust;
            s.failure = failure;
            s.code = None;
        }
    }

    /// Records the [`reason`] text of the failure just [`set`](Self::set).
    fn set_code(&self, code: Option<&'static str>) {
        if let Ok(mut s) = self.seen.lock() {
            s.code = code;
        }
    }

    /// The recorded failure in Postfix 3.10's TLSRPT words (a [`reason`]
    /// text), when it has one.
    pub fn failure_code(&self) -> Option<&'static str> {
        self.seen.lock().ok().and_then(|s| s.code)
    }

    /// Result of this connection's attempt. `handshake_ok` is whether the
    /// handshake as a whole completed; a recorded verification failure wins
    /// over the generic handshake error.
    pub fn outcome(&self, handshake_error: Option<&dyn fmt::Display>) -> TlsOutcome {
        let seen = match self.seen.lock() {
            Ok(s) => (s.trust, s.failure.clone()),
            Err(_) => (None, None),
        };
        match (seen, handshake_error) {
            ((_, Some((kind, reason))), _) => TlsOutcome::Failure { kind, reason },
            (_, Some(e)) => TlsOutcome::Failure {
                kind: FailureKind::ValidationFailure,
                reason: e.to_string(),
            },
            ((Some(t), None), None) => TlsOutcome::Success(t),
            ((None, None), None) => TlsOutcome::Success(Trust::Untrusted),
        }
    }

    /// How DANE authenticated the server, when the mode was `Dane` and it
    /// succeeded (for `tern probe` and debug logs).
    pub fn dane_match(&self) -> Option<super::dane::DaneMatch> {
        self.seen.lock().ok().and_then(|s| s.dane.clone())
    }

    fn chain_check(
        &self,
        end_entity: &CertificateDer<'_>,
        cert: &ParsedCertificate<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        // The anchor itself first: webpki would refuse a CA:TRUE one as an
        // end entity, and a chain to it proves nothing more.
        if let Some(r) = anchor_itself(end_entity.as_ref(), &self.roots, now) {
            return r;
        }
        verify_server_cert_signed_by_trust_anchor(
            cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )
    }

    /// RFC 8461 §4.2 for `host`: on failure, the trust reached, the RFC 8460
    /// result type, the reason and the error that fails the handshake.
    fn sts_check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        host: &str,
        forced: &Option<(FailureKind, String)>,
        now: UnixTime,
    ) -> Result<(), (Trust, FailureKind, String, rustls::Error)> {
        let parsed = ParsedCertificate::try_from(end_entity).map_err(|e| {
            let (kind, reason) = classify(&e);
            (Trust::Untrusted, kind, reason, e)
        })?;
        if let Err(e) = self.chain_check(end_entity, &parsed, intermediates, now) {
            let (kind, reason) = classify(&e);
            return Err((Trust::Untrusted, kind, reason, e));
        }
        let name_ok = ServerName::try_from(host)
            .ok()
            .is_some_and(|sn| verify_server_name(&parsed, &sn).is_ok());
        if !name_ok {
            return Err((
                Trust::Trusted,
                FailureKind::CertificateHostMismatch,
                format!("no DNS name of the certificate matches MX host {host}"),
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            ));
        }
        if let Some((kind, reason)) = forced {
            return Err((
                Trust::Trusted,
                *kind,
                reason.clone(),
                rustls::Error::General(format!("MTA-STS policy failure ({})", kind.as_str())),
            ));
        }
        Ok(())
    }

    /// The trust this connection's verification reached (a `testing`
    /// policy's connection goes on after a recorded failure).
    pub fn trust(&self) -> Trust {
        self.seen
            .lock()
            .ok()
            .and_then(|s| s.trust)
            .unwrap_or(Trust::Untrusted)
    }

    fn names_match(
        &self,
        end_entity: &CertificateDer<'_>,
        parsed: &ParsedCertificate<'_>,
        names: &[MatchName],
    ) -> bool {
        let presented = presented_names(end_entity.as_ref());
        names.iter().any(|m| match m {
            // An IP address literal is checked against the iPAddress
            // subjectAltNames (OpenSSL 3.0's SSL_add1_host does the same).
            MatchName::Exact(n) if n.parse::<std::net::IpAddr>().is_ok() => {
                ServerName::try_from(n.as_str())
                    .ok()
                    .is_some_and(|sn| verify_server_name(parsed, &sn).is_ok())
            }
            _ => presented.iter().any(|p| cert_name_matches(p, m)),
        })
    }

    /// The `fingerprint` level: the digest of the certificate or of its
    /// SubjectPublicKeyInfo must be one of `list`.
    fn fingerprint_check<'l>(
        &self,
        end_entity: &CertificateDer<'_>,
        digest: FingerprintDigest,
        mut list: impl Iterator<Item = &'l [u8]>,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let alg = digest.algorithm();
        let cert_fp = digest::digest(alg, end_entity.as_ref());
        let spki_fp = webpki::EndEntityCert::try_from(end_entity)
            .ok()
            .map(|ee| digest::digest(alg, ee.subject_public_key_info().as_ref()));
        let hit = list
            .any(|fp| fp == cert_fp.as_ref() || spki_fp.as_ref().is_some_and(|s| fp == s.as_ref()));
        if hit {
            self.set(Some(Trust::Verified), None);
            Ok(ServerCertVerified::assertion())
        } else {
            let reason = format!(
                "fingerprint mismatch: certificate {}",
                format_digest(cert_fp.as_ref())
            );
            self.set(
                Some(Trust::Untrusted),
                Some((FailureKind::CertificateNotTrusted, reason)),
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

impl ServerCertVerifier for TernVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.mode {
            VerifyMode::Opportunistic => {
                let trusted = ParsedCertificate::try_from(end_entity)
                    .and_then(|p| self.chain_check(end_entity, &p, intermediates, now))
                    .is_ok();
                let trust = if trusted {
                    Trust::Trusted
                } else {
                    Trust::Untrusted
                };
                self.set(Some(trust), None);
                Ok(ServerCertVerified::assertion())
            }
            VerifyMode::Fingerprints { digest, list } => {
                self.fingerprint_check(end_entity, *digest, list.iter().map(Vec::as_slice))
            }
            VerifyMode::Verify(names) => {
                let parsed = match ParsedCertificate::try_from(end_entity) {
                    Ok(p) => p,
                    Err(e) => {
                        self.set(Some(Trust::Untrusted), Some(classify(&e)));
                        return Err(e);
                    }
                };
                if let Err(e) = self.chain_check(end_entity, &parsed, intermediates, now) {
                    self.set(Some(Trust::Untrusted), Some(classify(&e)));
                    self.set_code(openssl_reason(&e, end_entity.as_ref(), intermediates));
                    return Err(e);
                }
                if !self.names_match(end_entity, &parsed, names) {
                    self.set(
                        Some(Trust::Trusted),
                        Some((
                            FailureKind::CertificateHostMismatch,
                            "no certificate name matches the expected names".to_string(),
                        )),
                    );
                    return Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName,
                    ));
                }
                self.set(Some(Trust::Verified), None);
                Ok(ServerCertVerified::assertion())
            }
            VerifyMode::Sts {
                host,
                enforce,
                forced,
            } => {
                let verdict = self.sts_check(end_entity, intermediates, host, forced, now);
                match verdict {
                    Ok(()) => {
                        self.set(Some(Trust::Verified), None);
                        Ok(ServerCertVerified::assertion())
                    }
                    Err((trust, kind, reason, e)) => {
                        self.set(Some(trust), Some((kind, reason)));
                        self.set_code(openssl_reason(&e, end_entity.as_ref(), intermediates));
                        if *enforce {
                            Err(e)
                        } else {
                            Ok(ServerCertVerified::assertion())
                        }
                    }
                }
            }
            VerifyMode::Dane { records, names } => {
                use super::dane::{self, DaneError};
                let mut chain = Vec::with_capacity(1 + intermediates.len());
                chain.push(end_entity.clone());
                chain.extend(intermediates.iter().cloned());
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                match dane::authenticate(records, &chain, &names, now, &self.provider) {
                    Ok(m) => {
                        self.set(Some(Trust::Verified), None);
                        if let Ok(mut s) = self.seen.lock() {
                            s.dane = Some(m);
                        }
                        Ok(ServerCertVerified::assertion())
                    }
                    Err(e) => {
                        let kind = match &e {
                            DaneError::NoMatch | DaneError::NoUsableRecords => {
                                FailureKind::TlsaInvalid
                            }
                            DaneError::Name => FailureKind::CertificateHostMismatch,
                            DaneError::Chain(c) if c.contains("xpired") => {
                                FailureKind::CertificateExpired
                            }
                            DaneError::Chain(_) => FailureKind::CertificateNotTrusted,
                            DaneError::NoCertificate => FailureKind::ValidationFailure,
                        };
                        self.set(Some(Trust::Untrusted), Some((kind, e.to_string())));
                        if matches!(e, DaneError::NoUsableRecords) {
                            self.set_code(Some(reason::TLSA_UNUSABLE));
                        }
                        Err(rustls::Error::InvalidCertificate(
                            CertificateError::ApplicationVerificationFailure,
                        ))
                    }
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        keyinfo::verify_signature(
            SignedIn::Tls12,
            Peer::Server,
            message,
            cert,
            dss,
            &self.provider,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        keyinfo::verify_signature(
            SignedIn::Tls13,
            Peer::Server,
            message,
            cert,
            dss,
            &self.provider,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        assert_eq!(
            FingerprintDigest::parse("SHA512"),
            Some(FingerprintDigest::Sha512)
        );
        assert_eq!(
            FingerprintDigest::parse("sha256").map(|d| d.len()),
            Some(32)
        );
        assert_eq!(FingerprintDigest::Sha512.len(), 64);
        assert_eq!(FingerprintDigest::parse("md5"), None);
        assert_eq!(format_digest(&[0xab, 0x01]), "AB:01");
    }

    #[test]
    fn names() {
        assert_eq!(
            MatchName::parse(".Example.COM."),
            MatchName::Suffix(".example.com".into())
        );
        assert_eq!(
            MatchName::parse("mx.example.com"),
            MatchName::Exact("mx.example.com".into())
        );
        assert!(name_has_suffix("mx.example.com", ".example.com"));
        assert!(name_has_suffix("*.example.com", ".example.com"));
        assert!(name_has_suffix("MX.EXAMPLE.COM", ".example.com"));
        assert!(!name_has_suffix("example.com", ".example.com"));
        assert!(!name_has_suffix("badexample.com", ".example.com"));
        assert!(!name_has_suffix("é.com", ".example.com"));
    }

    #[test]
    fn failure_names() {
        assert_eq!(
            FailureKind::CertificateHostMismatch.as_str(),
            "certificate-host-mismatch"
        );
        let (k, _) = classify(&rustls::Error::InvalidCertificate(
            CertificateError::Expired,
        ));
        assert_eq!(k, FailureKind::CertificateExpired);
        let (k, _) = classify(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(k, FailureKind::CertificateNotTrusted);
        // Every RFC 8460 name a plug-in may force parses back.
        for name in [
            "sts-policy-fetch-error",
            "sts-policy-invalid",
            "sts-webpki-invalid",
            "validation-failure",
        ] {
            assert_eq!(
                FailureKind::parse(name).map(FailureKind::as_str),
                Some(name)
            );
        }
        assert_eq!(FailureKind::parse("sts-unknown"), None);
    }

    // Fixtures made once with the openssl CLI (ECDSA P-256, valid
    // 2026-12-07 for 100 years): a CA and leaves it issued with CN
    // mx.example.test and no SAN, with that CN and SAN other.example.test,
    // with SAN *.mail.example.test, with two CNs and no SAN, with CN
    // mx.example.test and only an IP SAN; and a self-signed certificate
    // made with a plain `openssl req -x509 -subj /CN=self.example.test`
    // (Debian's openssl.cnf: CA:TRUE, no SAN).
    const NAMES_CA: &[u8] = include_bytes!("testdata/names/ca.der");
    const CN_ONLY: &[u8] = include_bytes!("testdata/names/cn-only.der");
    const SAN_CN: &[u8] = include_bytes!("testdata/names/san-cn.der");
    const WILD: &[u8] = include_bytes!("testdata/names/wild.der");
    const TWO_CN: &[u8] = include_bytes!("testdata/names/two-cn.der");
    const IP_ONLY: &[u8] = include_bytes!("testdata/names/ip-only.der");
    const SELF_CA: &[u8] = include_bytes!("testdata/names/self-ca.der");

    /// 2027-01-01, inside every fixture's validity.
    fn now() -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_798_761_600))
    }

    fn roots(certs: &[&[u8]]) -> Arc<RootCertStore> {
        let mut r = RootCertStore::empty();
        for c in certs {
            r.add(CertificateDer::from(c.to_vec())).unwrap();
        }
        Arc::new(r)
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// `verify` with `names` against `cert` and the fixture CA (or `anchors`).
    fn verify_at(cert: &[u8], names: &[&str], anchors: &[&[u8]], at: UnixTime) -> TlsOutcome {
        let v = TernVerifier::new(
            VerifyMode::Verify(names.iter().map(|n| MatchName::parse(n)).collect()),
            roots(anchors),
            provider(),
        );
        let ee = CertificateDer::from(cert.to_vec());
        let sn = ServerName::try_from("ignored.example").unwrap();
        let _ = v.verify_server_cert(&ee, &[], &sn, &[], at);
        v.outcome(None)
    }

    fn verify(cert: &[u8], names: &[&str]) -> TlsOutcome {
        verify_at(cert, names, &[NAMES_CA], now())
    }

    fn verified(o: &TlsOutcome) -> bool {
        *o == TlsOutcome::Success(Trust::Verified)
    }

    fn mismatch(o: &TlsOutcome) -> bool {
        matches!(
            o,
            TlsOutcome::Failure {
                kind: FailureKind::CertificateHostMismatch,
                ..
            }
        )
    }

    #[test]
    fn wildcard_rules_are_openssls() {
        let m = |c: &str, r: &str| cert_name_matches(c.as_bytes(), &MatchName::parse(r));
        assert!(m("*.example.com", "mx.example.com"));
        assert!(m("*.example.com", "MX.Example.COM"));
        assert!(m("*.example.com", "xn--bcher-kva.example.com"));
        assert!(!m("*.example.com", "a.b.example.com"), "one label only");
        assert!(!m("*.example.com", "example.com"));
        assert!(
            m("*.example.com", "*.example.com"),
            "a pattern names the wildcard"
        );
        assert!(!m("mx.example.com", "*.example.com"));
        assert!(!m("*.com", "example.com"), "two labels after the star");
        assert!(m("*.com", "*.com"), "no wildcard: literal");
        assert!(
            !m("f*.example.com", "foo.example.com"),
            "no partial wildcards"
        );
        assert!(!m("*.exa_mple.com", "mx.exa_mple.com"));
        assert!(m("*.example.com", ".example.com"));
        assert!(m("*.mail.example.com", ".example.com"));
        assert!(m("a.b.example.com", ".example.com"));
        assert!(!m("example.com", ".example.com"));
        assert!(!m("badexample.com", ".example.com"));
        assert!(!m("mx.example.com", "mx.example.co"));
        assert!(!m("mx\u{e9}.example.com", "mx.example.com"));
    }

    #[test]
    fn common_name_only_without_dns_names() {
        assert!(verified(&verify(CN_ONLY, &["mx.example.test"])));
        assert!(verified(&verify(CN_ONLY, &[".example.test"])));
        assert!(mismatch(&verify(CN_ONLY, &["other.example.test"])));
        // A DNS subjectAltName hides the CN.
        assert!(mismatch(&verify(SAN_CN, &["mx.example.test"])));
        assert!(verified(&verify(SAN_CN, &["other.example.test"])));
        // Every CN counts; an IP subjectAltName is no DNS name.
        assert!(verified(&verify(TWO_CN, &["two.example.test"])));
        assert!(verified(&verify(TWO_CN, &["one.example.test"])));
        assert!(verified(&verify(IP_ONLY, &["mx.example.test"])));
        assert!(verified(&verify(IP_ONLY, &["192.0.2.1"])));
        assert!(mismatch(&verify(CN_ONLY, &["192.0.2.1"])));
    }

    #[test]
    fn hostpoint_pattern_and_wildcard_reach() {
        // The seed's `secure match=*.mail.hostpoint.ch`.
        assert!(verified(&verify(WILD, &["*.mail.example.test"])));
        assert!(verified(&verify(WILD, &["mx1.mail.example.test"])));
        assert!(verified(&verify(WILD, &[".example.test"])));
        assert!(mismatch(&verify(WILD, &["a.b.mail.example.test"])));
        assert!(mismatch(&verify(WILD, &["mail.example.test"])));
        assert!(verified(&verify(
            WILD,
            &["nomatch.example.test", "MX2.mail.example.test"]
        )));
    }

    #[test]
    fn ca_true_self_signed_certificate_as_its_own_anchor() {
        // As a tafile=/CAfile trust anchor: trusted as itself, names as usual.
        assert!(verified(&verify_at(
            SELF_CA,
            &["self.example.test"],
            &[SELF_CA],
            now()
        )));
        assert!(mismatch(&verify_at(
            SELF_CA,
            &["other.example.test"],
            &[SELF_CA],
            now()
        )));
        // Not an anchor: refused in words, not as a Rust debug name.
        match verify_at(SELF_CA, &["self.example.test"], &[NAMES_CA], now()) {
            TlsOutcome::Failure { kind, reason } => {
                assert_eq!(kind, FailureKind::CertificateNotTrusted, "{reason}");
                assert!(!reason.contains("CaUsedAsEndEntity"), "{reason}");
                assert!(reason.contains("CA:TRUE"), "{reason}");
            }
            o => panic!("{o:?}"),
        }
        // Outside its validity period.
        let late = UnixTime::since_unix_epoch(std::time::Duration::from_secs(6_000_000_000));
        match verify_at(SELF_CA, &["self.example.test"], &[SELF_CA], late) {
            TlsOutcome::Failure { kind, reason } => {
                assert_eq!(kind, FailureKind::CertificateExpired);
                assert_eq!(reason, "the certificate has expired");
            }
            o => panic!("{o:?}"),
        }
        // At `may`, the anchor makes it Trusted.
        let v = TernVerifier::new(VerifyMode::Opportunistic, roots(&[SELF_CA]), provider());
        let ee = CertificateDer::from(SELF_CA.to_vec());
        let sn = ServerName::try_from("x.example").unwrap();
        assert!(v.verify_server_cert(&ee, &[], &sn, &[], now()).is_ok());
        assert_eq!(v.outcome(None), TlsOutcome::Success(Trust::Trusted));
        // And a fingerprint target.
        let fp = digest::digest(&digest::SHA256, SELF_CA);
        let v = TernVerifier::new(
            VerifyMode::Fingerprints {
                digest: FingerprintDigest::Sha256,
                list: vec![fp.as_ref().to_vec()],
            },
            roots(&[]),
            provider(),
        );
        assert!(v.verify_server_cert(&ee, &[], &sn, &[], now()).is_ok());
        assert!(verified(&v.outcome(None)));
    }

    #[test]
    fn unknown_issuer_is_worded() {
        match verify_at(CN_ONLY, &["mx.example.test"], &[SELF_CA], now()) {
            TlsOutcome::Failure { kind, reason } => {
                assert_eq!(kind, FailureKind::CertificateNotTrusted);
                assert!(reason.contains("unknown issuer"), "{reason}");
            }
            o => panic!("{o:?}"),
        }
    }
}
