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
    dane: Option<super::dane::DaneMatch>,
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
            _ => FailureKind::ValidationFailure,
        },
        _ => FailureKind::ValidationFailure,
    };
    (kind, e.to_string())
}

/// True when a SAN DNS name lies strictly below `suffix` (`.example.com`).
fn name_has_suffix(name: &str, suffix: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.len() > suffix.len()
        && name
            .get(name.len() - suffix.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
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
        }
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
        cert: &ParsedCertificate<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
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
        if let Err(e) = self.chain_check(&parsed, intermediates, now) {
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
        let ee = webpki::EndEntityCert::try_from(end_entity).ok();
        names.iter().any(|m| match m {
            MatchName::Exact(n) => ServerName::try_from(n.as_str())
                .ok()
                .is_some_and(|sn| verify_server_name(parsed, &sn).is_ok()),
            MatchName::Suffix(sfx) => ee
                .as_ref()
                .is_some_and(|ee| ee.valid_dns_names().any(|n| name_has_suffix(n, sfx))),
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
                    .and_then(|p| self.chain_check(&p, intermediates, now))
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
                if let Err(e) = self.chain_check(&parsed, intermediates, now) {
                    self.set(Some(Trust::Untrusted), Some(classify(&e)));
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
}
