//! rustls configurations for the listener (and the shared crypto settings).
//!
//! [`TlsParams::from_postfix`] turns Postfix's `tls_eecdh_auto_curves` and
//! `tls_ffdhe_auto_groups` into an aws-lc-rs crypto provider;
//! [`build_server_config`] loads certificate chains and keys from PEM files
//! (RSA and ECDSA at once, like Postfix's `smtpd_tls_cert_file` and
//! `smtpd_tls_eccert_file`) and picks one per ClientHello from the client's
//! signature schemes; with `smtpd_tls_ask_ccert` it asks clients for a
//! certificate ([`AskClientCert`]). [`build_client_config`] makes the outbound side with a
//! caller-supplied certificate verifier (see [`crate::tls::verify`]).
//!
//! Both sides: TLS 1.2 and 1.3, records capped at
//! [`MAX_FRAGMENT_SIZE`](super::pool::MAX_FRAGMENT_SIZE), no session tickets
//! or session cache (nothing per peer kept in memory).
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName};
use rustls::{ClientConfig, ServerConfig, SignatureAlgorithm, SignatureScheme};

use super::keyinfo::{self, HandshakeSignature, KeyDesc};
use super::pool::MAX_FRAGMENT_SIZE;

/// tern's default for `tls_eecdh_auto_curves`.
pub const DEFAULT_EECDH_CURVES: &str = "X25519 X25519MLKEM768 prime256v1 secp384r1";

/// A TLS configuration error; every variant names what is wrong and where.
#[derive(Debug)]
pub enum ConfigError {
    /// A PEM file could not be read or parsed.
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: rustls::pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The private key could not be used by the crypto provider.
    BadKey {
        /// The key file.
        path: PathBuf,
        /// rustls's reason.
        error: rustls::Error,
    },
    /// The key does not belong to the first certificate of the chain.
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// Two certificate/key pairs of the same algorithm.
    DuplicateAlgorithm {
        /// `RSA`, `ECDSA`, ...
        algorithm: &'static str,
        /// The second key file of that algorithm.
        key: PathBuf,
    },
    /// No certificate/key pair was given to a TLS listener.
    NoCertificates,
    /// `tls_eecdh_auto_curves` names a curve tern does not know.
    UnknownCurve {
        /// The name as written.
        name: String,
    },
    /// No usable key exchange group remains.
    NoCurves,
    /// The server was given neither TLS 1.2 nor TLS 1.3.
    NoProtocols,
    /// `tls_ffdhe_auto_groups` is not empty: the provider cannot do FFDHE.
    FfdheUnsupported {
        /// The configured value.
        groups: String,
    },
    /// rustls rejected the assembled configuration.
    Rustls(rustls::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Pem { path, error } => {
                write!(f, "{}: cannot read PEM: {error}", path.display())
            }
            ConfigError::NoCertificate { path } => {
                write!(f, "{}: no CERTIFICATE in PEM file", path.display())
            }
            ConfigError::BadKey { path, error } => {
                write!(f, "{}: unusable private key: {error}", path.display())
            }
            ConfigError::KeyMismatch { cert, key } => write!(
                f,
                "{}: private key does not match the first certificate in {}",
                key.display(),
                cert.display()
            ),
            ConfigError::DuplicateAlgorithm { algorithm, key } => write!(
                f,
                "{}: a second {algorithm} key; configure at most one key per algorithm",
                key.display()
            ),
            ConfigError::NoCertificates => {
                f.write_str("TLS server needs a certificate and key (smtpd_tls_cert_file, smtpd_tls_key_file)")
            }
            ConfigError::UnknownCurve { name } => write!(
                f,
                "tls_eecdh_auto_curves: unknown curve \"{name}\" (known: X25519, X25519MLKEM768, prime256v1, secp384r1)"
            ),
            ConfigError::NoCurves => {
                f.write_str("tls_eecdh_auto_curves: no supported key exchange group left")
            }
            ConfigError::NoProtocols => f.write_str(
                "smtpd_tls_protocols: neither TLSv1.2 nor TLSv1.3 is enabled",
            ),
            ConfigError::FfdheUnsupported { groups } => write!(
                f,
                "tls_ffdhe_auto_groups = {groups}: the aws-lc-rs TLS provider has no FFDHE; set tls_ffdhe_auto_groups empty (ECDHE and X25519 are used)"
            ),
            ConfigError::Rustls(e) => write!(f, "TLS configuration rejected: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<rustls::Error> for ConfigError {
    fn from(e: rustls::Error) -> Self {
        ConfigError::Rustls(e)
    }
}

/// Crypto settings shared by server and client configs.
#[derive(Clone, Debug)]
pub struct TlsParams {
    /// The aws-lc-rs provider with tern's key exchange groups and suite order.
    pub provider: Arc<CryptoProvider>,
    /// Curve names from the list that are known but not available here (X448,
    /// secp521r1): the caller logs a warning, as Postfix does.
    pub ignored_curves: Vec<String>,
    /// The server picks the cipher suite by its own order, not the
    /// client's (rustls `ignore_client_order`, Postfix's
    /// `tls_preempt_cipherlist`). Set with ChaCha20 first: an OpenSSL
    /// client lists AES-GCM first, and a board without AES instructions
    /// must still get ChaCha20.
    pub prefer_server_order: bool,
}

/// Looks up one `tls_eecdh_auto_curves` name: `Ok(Some)` supported,
/// `Ok(None)` known but unavailable, `Err` unknown.
fn curve_by_name(name: &str) -> Result<Option<&'static dyn SupportedKxGroup>, ConfigError> {
    let lower = name.to_ascii_lowercase();
    Ok(Some(match lower.as_str() {
        "x25519" => aws_lc_rs::kx_group::X25519,
        "prime256v1" | "p-256" | "secp256r1" => aws_lc_rs::kx_group::SECP256R1,
        "secp384r1" | "p-384" => aws_lc_rs::kx_group::SECP384R1,
        "x25519mlkem768" => aws_lc_rs::kx_group::X25519MLKEM768,
        "x448" | "secp521r1" | "p-521" => return Ok(None),
        _ => {
            return Err(ConfigError::UnknownCurve {
                name: name.to_string(),
            })
        }
    }))
}

fn is_chacha(s: &rustls::SupportedCipherSuite) -> bool {
    matches!(
        s.suite(),
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

impl TlsParams {
    /// Builds the provider from Postfix-style settings.
    ///
    /// `eecdh_curves`: names separated by spaces or commas, most preferred
    /// first (empty: [`DEFAULT_EECDH_CURVES`]). `ffdhe_groups` must be empty.
    /// `chacha_first` puts ChaCha20-Poly1305 ahead of AES-GCM (boards without
    /// AES instructions, e.g. many armv7 SoCs).
    pub fn from_postfix(
        eecdh_curves: &str,
        ffdhe_groups: &str,
        chacha_first: bool,
    ) -> Result<TlsParams, ConfigError> {
        if !ffdhe_groups.trim().is_empty() {
            return Err(ConfigError::FfdheUnsupported {
                groups: ffdhe_groups.trim().to_string(),
            });
        }
        let list = if eecdh_curves.trim().is_empty() {
            DEFAULT_EECDH_CURVES
        } else {
            eecdh_curves
        };
        let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
        let mut ignored = Vec::new();
        for name in list.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
            if name.is_empty() {
                continue;
            }
            match curve_by_name(name)? {
                Some(g) => {
                    if !groups.iter().any(|h| h.name() == g.name()) {
                        groups.push(g);
                    }
                }
                None => ignored.push(name.to_string()),
            }
        }
        if groups.is_empty() {
            return Err(ConfigError::NoCurves);
        }
        let mut provider = aws_lc_rs::default_provider();
        provider.kx_groups = groups;
        if chacha_first {
            // Stable sort keeps AES-256 before AES-128 among the rest.
            provider.cipher_suites.sort_by_key(|s| !is_chacha(s));
        }
        Ok(TlsParams {
            provider: Arc::new(provider),
            ignored_curves: ignored,
            prefer_server_order: chacha_first,
        })
    }
}

/// The TLS parameters both directions use (`tls_eecdh_auto_curves`,
/// `tls_ffdhe_auto_groups`, `tls_cipher_preference`).
pub fn params(cfg: &crate::config::Config) -> Result<TlsParams, String> {
    let p = TlsParams::from_postfix(
        cfg.get("tls_eecdh_auto_curves"),
        cfg.get("tls_ffdhe_auto_groups"),
        cfg.get("tls_cipher_preference") == "chacha20",
    )
    .map_err(|e| e.to_string())?;
    for c in &p.ignored_curves {
        log::warn!(target: "master", "warning: tls_eecdh_auto_curves: {c} is not available; ignored");
    }
    Ok(p)
}

/// Paths of one certificate chain and its private key (may be the same file).
#[derive(Clone, Debug)]
pub struct CertKeyPaths {
    /// PEM file with the leaf certificate first, then intermediates.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A signing key that records the scheme it signs with (for the log line).
#[derive(Debug)]
struct RecordingKey {
    inner: Arc<dyn SigningKey>,
    desc: KeyDesc,
}

#[derive(Debug)]
struct RecordingSigner {
    inner: Box<dyn Signer>,
    desc: KeyDesc,
}

impl Signer for RecordingSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let sig = self.inner.sign(message)?;
        keyinfo::record(HandshakeSignature {
            scheme: self.inner.scheme(),
            key: self.desc,
        });
        Ok(sig)
    }

    fn scheme(&self) -> SignatureScheme {
        self.inner.scheme()
    }
}

impl SigningKey for RecordingKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let inner = self.inner.choose_scheme(offered)?;
        Some(Box::new(RecordingSigner {
            inner,
            desc: self.desc,
        }))
    }

    fn public_key(&self) -> Option<rustls::pki_types::SubjectPublicKeyInfoDer<'_>> {
        self.inner.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }
}

/// Chooses among the configured keys by the client's signature schemes:
/// ECDSA/EdDSA first when the client can verify them, else RSA.
#[derive(Debug)]
struct KeyByScheme {
    /// Ordered by preference.
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for KeyByScheme {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = client_hello.server_name() {
            keyinfo::record_sni(sni);
        }
        let offered = client_hello.signature_schemes();
        self.keys
            .iter()
            .find(|k| k.key.choose_scheme(offered).is_some())
            .or_else(|| self.keys.first())
            .cloned()
    }
}

fn algorithm_name(a: SignatureAlgorithm) -> &'static str {
    match a {
        SignatureAlgorithm::RSA => "RSA",
        SignatureAlgorithm::ECDSA => "ECDSA",
        SignatureAlgorithm::ED25519 => "ED25519",
        SignatureAlgorithm::ED448 => "ED448",
        _ => "other",
    }
}

fn load_pair(provider: &CryptoProvider, p: &CertKeyPaths) -> Result<CertifiedKey, ConfigError> {
    let pem_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ConfigError::Pem { path, error }
    };
    let chain = CertificateDer::pem_file_iter(&p.cert)
        .map_err(pem_err(&p.cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(&p.cert))?;
    if chain.is_empty() {
        return Err(ConfigError::NoCertificate {
            path: p.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&p.key).map_err(pem_err(&p.key))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| ConfigError::BadKey {
            path: p.key.clone(),
            error,
        })?;
    let desc = signing
        .public_key()
        .and_then(|spki| keyinfo::key_desc_from_spki(spki.as_ref()).ok())
        .unwrap_or(KeyDesc::Other);
    let ck = CertifiedKey::new(
        chain,
        Arc::new(RecordingKey {
            inner: signing,
            desc,
        }),
    );
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(_)) => Err(ConfigError::KeyMismatch {
            cert: p.cert.clone(),
            key: p.key.clone(),
        }),
        Err(error) => Err(ConfigError::BadKey {
            path: p.key.clone(),
            error,
        }),
    }
}

/// Listener choices beyond the crypto parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// Offer TLS 1.2 (`smtpd_tls_protocols` allows it).
    pub tls12: bool,
    /// Offer TLS 1.3.
    pub tls13: bool,
    /// `smtpd_tls_ask_ccert`: request (never require) a client
    /// certificate; see [`AskClientCert`].
    pub ask_client_cert: bool,
}

impl Default for ServerOptions {
    /// TLS 1.2 and 1.3, no client certificate requested.
    fn default() -> Self {
        ServerOptions {
            tls12: true,
            tls13: true,
            ask_client_cert: false,
        }
    }
}

/// The client-certificate verifier for `smtpd_tls_ask_ccert = yes`.
///
/// It asks for a certificate but does not require one, and accepts any
/// well-formed certificate as *unverified*: like Postfix without
/// `smtpd_tls_CAfile`, tern only reports what was presented (`Untrusted
/// TLS connection ...`, `(Client CN "...", Issuer "..." (not verified))`)
/// and grants nothing for it. The handshake signature is still checked
/// with rustls's own `verify_tls12_signature` / `verify_tls13_signature`
/// and the provider's algorithms, so a client must hold the private key
/// of the certificate it shows.
#[derive(Debug)]
pub struct AskClientCert {
    provider: Arc<CryptoProvider>,
}

impl AskClientCert {
    /// A verifier checking signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> AskClientCert {
        AskClientCert { provider }
    }
}

impl ClientCertVerifier for AskClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No CA list: a client may send whatever certificate it has.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Unverified by design, but it must at least be a certificate.
        webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        keyinfo::verify_signature(
            keyinfo::SignedIn::Tls12,
            keyinfo::Peer::Client,
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
            keyinfo::SignedIn::Tls13,
            keyinfo::Peer::Client,
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

/// Builds the listener's config from certificate/key pairs (one per
/// algorithm), with TLS 1.2 and 1.3.
pub fn build_server_config(
    params: &TlsParams,
    pairs: &[CertKeyPaths],
) -> Result<Arc<ServerConfig>, ConfigError> {
    build_server_config_with(params, pairs, &ServerOptions::default())
}

/// Builds the listener's config from certificate/key pairs with `opts`.
pub fn build_server_config_with(
    params: &TlsParams,
    pairs: &[CertKeyPaths],
    opts: &ServerOptions,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::with_capacity(2);
    if opts.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if opts.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if versions.is_empty() {
        return Err(ConfigError::NoProtocols);
    }
    if pairs.is_empty() {
        return Err(ConfigError::NoCertificates);
    }
    let mut keys: Vec<Arc<CertifiedKey>> = Vec::with_capacity(pairs.len());
    for p in pairs {
        let ck = load_pair(&params.provider, p)?;
        let alg = ck.key.algorithm();
        if keys.iter().any(|k| k.key.algorithm() == alg) {
            return Err(ConfigError::DuplicateAlgorithm {
                algorithm: algorithm_name(alg),
                key: p.key.clone(),
            });
        }
        keys.push(Arc::new(ck));
    }
    // Smaller, faster signatures first; RSA for clients that offer nothing else.
    keys.sort_by_key(|k| k.key.algorithm() == SignatureAlgorithm::RSA);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&params.provider))
        .with_protocol_versions(&versions)?;
    let builder = if opts.ask_client_cert {
        builder
            .with_client_cert_verifier(Arc::new(AskClientCert::new(Arc::clone(&params.provider))))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(Arc::new(KeyByScheme { keys }));
    config.ignore_client_order = params.prefer_server_order;
    config.max_fragment_size = Some(MAX_FRAGMENT_SIZE);
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// Builds an outbound config around `verifier` (one per connection or per
/// policy; see [`crate::tls::verify::TernVerifier`]).
pub fn build_client_config(
    params: &TlsParams,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<Arc<ClientConfig>, ConfigError> {
    build_client_config_with(params, verifier, &ClientLimits::default())
}

/// What a policy restricts on the outbound side (Postfix's `protocols=`,
/// `smtp_tls_protocols`, `smtp_tls_mandatory_protocols`, `exclude=`).
#[derive(Clone, Debug)]
pub struct ClientLimits {
    /// Offer TLS 1.2.
    pub tls12: bool,
    /// Offer TLS 1.3.
    pub tls13: bool,
    /// Cipher suites not to offer.
    pub exclude: Vec<rustls::CipherSuite>,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            tls12: true,
            tls13: true,
            exclude: Vec::new(),
        }
    }
}

/// [`build_client_config`] offering only the versions and suites `limits`
/// leave; an error when nothing usable remains.
pub fn build_client_config_with(
    params: &TlsParams,
    verifier: Arc<dyn ServerCertVerifier>,
    limits: &ClientLimits,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::with_capacity(2);
    if limits.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if limits.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let provider = if limits.exclude.is_empty() {
        Arc::clone(&params.provider)
    } else {
        let mut p = (*params.provider).clone();
        p.cipher_suites
            .retain(|s| !limits.exclude.contains(&s.suite()));
        Arc::new(p)
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.max_fragment_size = Some(MAX_FRAGMENT_SIZE);
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves() {
        let p = TlsParams::from_postfix("", "", false).unwrap();
        let names: Vec<_> = p.provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [
                rustls::NamedGroup::X25519,
                rustls::NamedGroup::X25519MLKEM768,
                rustls::NamedGroup::secp256r1,
                rustls::NamedGroup::secp384r1
            ]
        );
        let p = TlsParams::from_postfix("P-384, X448 secp256r1 prime256v1", "", false).unwrap();
        let names: Vec<_> = p.provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [rustls::NamedGroup::secp384r1, rustls::NamedGroup::secp256r1]
        );
        assert_eq!(p.ignored_curves, ["X448"]);
    }

    #[test]
    fn curve_errors() {
        let e = TlsParams::from_postfix("X25519 brainpoolP256r1", "", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tls_eecdh_auto_curves: unknown curve \"brainpoolP256r1\" (known: X25519, X25519MLKEM768, prime256v1, secp384r1)"
        );
        assert!(matches!(
            TlsParams::from_postfix("X448", "", false),
            Err(ConfigError::NoCurves)
        ));
        let e = TlsParams::from_postfix("", "ffdhe2048 ffdhe3072", false).unwrap_err();
        assert!(
            e.to_string()
                .contains("aws-lc-rs TLS provider has no FFDHE"),
            "{e}"
        );
    }

    #[test]
    fn chacha_first() {
        let p = TlsParams::from_postfix("", "", true).unwrap();
        assert!(is_chacha(&p.provider.cipher_suites[0]));
        assert_eq!(
            p.provider.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );
        assert!(p.prefer_server_order);
        let p = TlsParams::from_postfix("", "", false).unwrap();
        assert!(!is_chacha(&p.provider.cipher_suites[0]));
        assert!(!p.prefer_server_order);
    }

    #[test]
    fn no_protocols_is_an_error() {
        let p = TlsParams::from_postfix("", "", false).unwrap();
        let opts = ServerOptions {
            tls12: false,
            tls13: false,
            ..ServerOptions::default()
        };
        // Checked before any file is read.
        let e = build_server_config_with(&p, &[], &opts).unwrap_err();
        assert!(matches!(e, ConfigError::NoProtocols), "{e}");
        assert_eq!(
            e.to_string(),
            "smtpd_tls_protocols: neither TLSv1.2 nor TLSv1.3 is enabled"
        );
    }

    #[test]
    fn client_limits() {
        let p = TlsParams::from_postfix("", "", false).unwrap();
        let v = crate::tls::verify::TernVerifier::new(
            crate::tls::VerifyMode::Opportunistic,
            Arc::new(rustls::RootCertStore::empty()),
            Arc::clone(&p.provider),
        );
        let only13 = ClientLimits {
            tls12: false,
            ..ClientLimits::default()
        };
        assert!(build_client_config_with(&p, v.clone(), &only13).is_ok());
        let none = ClientLimits {
            tls12: false,
            tls13: false,
            exclude: Vec::new(),
        };
        assert!(build_client_config_with(&p, v.clone(), &none).is_err());
        // Every TLS 1.2 suite excluded with TLS 1.2 alone: nothing left.
        let tls12_suites: Vec<rustls::CipherSuite> = p
            .provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .map(|s| s.suite())
            .collect();
        let starved = ClientLimits {
            tls12: true,
            tls13: false,
            exclude: tls12_suites,
        };
        assert!(build_client_config_with(&p, v, &starved).is_err());
    }

    #[test]
    fn missing_files_named() {
        let p = TlsParams::from_postfix("", "", false).unwrap();
        let e = build_server_config(
            &p,
            &[CertKeyPaths {
                cert: "/nonexistent/cert.pem".into(),
                key: "/nonexistent/key.pem".into(),
            }],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/cert.pem: cannot read PEM"),
            "{e}"
        );
        assert!(matches!(
            build_server_config(&p, &[]),
            Err(ConfigError::NoCertificates)
        ));
    }
}
