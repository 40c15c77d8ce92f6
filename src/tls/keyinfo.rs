//! What kind of public key signed a handshake, for the Postfix log line.
//!
//! [`key_desc_from_spki`] reads a DER SubjectPublicKeyInfo (RFC 5280 §4.1)
//! far enough to name the algorithm and size: RSA modulus bits, the EC
//! curve, or Ed25519/Ed448. It is a small bounded DER walker, fuzzed by
//! `fuzz/fuzz_targets/tls_spki.rs`.
//!
//! The signature scheme actually used on a connection is recorded by the
//! signing-key wrapper (server) or the certificate verifier (client) through
//! [`record`], a client certificate's by the server's client-certificate
//! verifier through [`record_client`]; the stream takes it with [`take`] right after each
//! synchronous `process_tls_records` call. tern runs on one thread and that
//! call never yields, so what is taken belongs to that connection.
use std::cell::{Cell, RefCell};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::summary::MAX_SNI_LEN;

/// Named elliptic curve of an ECDSA key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (prime256v1, secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
}

impl Curve {
    /// The NIST name (`P-256`).
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// The name Debian's Postfix 3.7 logs (OpenSSL 3.0's short name,
    /// `prime256v1`; Postfix's README shows `P-256` from older OpenSSL).
    pub fn openssl_name(self) -> &'static str {
        match self {
            Curve::P256 => "prime256v1",
            Curve::P384 => "secp384r1",
            Curve::P521 => "secp521r1",
        }
    }
}

/// Algorithm and size of a public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyDesc {
    /// RSA (rsaEncryption or RSASSA-PSS SPKI) with this many modulus bits.
    Rsa {
        /// Modulus size in bits.
        bits: u32,
    },
    /// ECDSA on a named curve.
    Ec(Curve),
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
    /// Anything else (the log then names only the signature scheme).
    Other,
}

/// Why an SPKI could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpkiError {
    /// Input ended inside an element.
    Truncated,
    /// An element had an unexpected tag (`expected`, `found`).
    UnexpectedTag {
        /// Tag that was required here.
        expected: u8,
        /// Tag that was found.
        found: u8,
    },
    /// A length field is malformed or larger than this parser accepts.
    BadLength,
}

impl std::fmt::Display for SpkiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpkiError::Truncated => f.write_str("SubjectPublicKeyInfo is truncated"),
            SpkiError::UnexpectedTag { expected, found } => write!(
                f,
                "SubjectPublicKeyInfo: expected DER tag 0x{expected:02x}, found 0x{found:02x}"
            ),
            SpkiError::BadLength => f.write_str("SubjectPublicKeyInfo: bad DER length"),
        }
    }
}

impl std::error::Error for SpkiError {}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const INTEGER: u8 = 0x02;

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];

/// Splits one DER element with tag `tag` off the front of `input`:
/// returns (contents, rest).
fn element(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), SpkiError> {
    let (&found, rest) = input.split_first().ok_or(SpkiError::Truncated)?;
    if found != tag {
        return Err(SpkiError::UnexpectedTag {
            expected: tag,
            found,
        });
    }
    let (&first, mut rest) = rest.split_first().ok_or(SpkiError::Truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        // Keys are small; four length bytes is far more than enough.
        if n == 0 || n > 4 {
            return Err(SpkiError::BadLength);
        }
        let mut len = 0usize;
        for _ in 0..n {
            let (&b, r) = rest.split_first().ok_or(SpkiError::Truncated)?;
            len = (len << 8) | usize::from(b);
            rest = r;
        }
        len
    };
    if rest.len() < len {
        return Err(SpkiError::Truncated);
    }
    Ok(rest.split_at(len))
}

/// Reads the algorithm and key size out of a DER SubjectPublicKeyInfo.
pub fn key_desc_from_spki(spki: &[u8]) -> Result<KeyDesc, SpkiError> {
    let (body, _) = element(spki, SEQUENCE)?;
    let (alg, rest) = element(body, SEQUENCE)?;
    let (oid, params) = element(alg, OID)?;
    if oid == OID_RSA || oid == OID_RSA_PSS {
        let (bits, _) = element(rest, BIT_STRING)?;
        let (_unused, key) = bits.split_first().ok_or(SpkiError::Truncated)?;
        let (rsa, _) = element(key, SEQUENCE)?;
        let (modulus, _) = element(rsa, INTEGER)?;
        return Ok(KeyDesc::Rsa {
            bits: integer_bits(modulus),
        });
    }
    if oid == OID_EC {
        let (curve, _) = element(params, OID)?;
        return Ok(match curve {
            c if c == OID_P256 => KeyDesc::Ec(Curve::P256),
            c if c == OID_P384 => KeyDesc::Ec(Curve::P384),
            c if c == OID_P521 => KeyDesc::Ec(Curve::P521),
            _ => KeyDesc::Other,
        });
    }
    Ok(match oid {
        o if o == OID_ED25519 => KeyDesc::Ed25519,
        o if o == OID_ED448 => KeyDesc::Ed448,
        _ => KeyDesc::Other,
    })
}

/// Significant bits of a non-negative DER INTEGER.
fn integer_bits(int: &[u8]) -> u32 {
    let mut bytes = int;
    while let Some((&0, rest)) = bytes.split_first() {
        bytes = rest;
    }
    match bytes.first() {
        None => 0,
        Some(&top) => {
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX / 8);
            len.saturating_mul(8).saturating_sub(top.leading_zeros())
        }
    }
}

/// The signature a handshake was authenticated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeSignature {
    /// TLS signature scheme used in CertificateVerify / ServerKeyExchange.
    pub scheme: SignatureScheme,
    /// The signing key.
    pub key: KeyDesc,
}

thread_local! {
    static LAST: Cell<Option<HandshakeSignature>> = const { Cell::new(None) };
    static CLIENT: Cell<Option<HandshakeSignature>> = const { Cell::new(None) };
    static SNI: RefCell<Option<heapless::String<MAX_SNI_LEN>>> = const { RefCell::new(None) };
}

/// Records the SNI name the client sent (from the certificate resolver).
pub(crate) fn record_sni(name: &str) {
    // A DNS name longer than 253 bytes is not valid SNI; rustls rejects it first.
    let s = heapless::String::try_from(name).ok();
    SNI.with(|c| *c.borrow_mut() = s);
}

/// Takes (and clears) the SNI recorded since the last call.
pub(crate) fn take_sni() -> Option<heapless::String<MAX_SNI_LEN>> {
    SNI.with(|c| c.borrow_mut().take())
}

/// Records the signature of the handshake being processed on this thread.
pub(crate) fn record(sig: HandshakeSignature) {
    LAST.with(|c| c.set(Some(sig)));
}

/// Takes (and clears) the signature recorded since the last call.
pub(crate) fn take() -> Option<HandshakeSignature> {
    LAST.with(|c| c.take())
}

/// Records the client's signature (server side, when the client presented
/// a certificate; kept apart from the server's own signature).
pub(crate) fn record_client(sig: HandshakeSignature) {
    CLIENT.with(|c| c.set(Some(sig)));
}

/// Takes (and clears) the client signature recorded since the last call.
pub(crate) fn take_client() -> Option<HandshakeSignature> {
    CLIENT.with(|c| c.take())
}

/// Whose handshake signature is checked: it is recorded for that side's
/// log line ([`take`] or [`take_client`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    /// The server (checked by the outbound verifier).
    Server,
    /// A client that presented a certificate (checked by the listener).
    Client,
}

/// The TLS version whose signature rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignedIn {
    /// TLS 1.2 (ServerKeyExchange, CertificateVerify).
    Tls12,
    /// TLS 1.3 (CertificateVerify).
    Tls13,
}

/// Checks a handshake signature with rustls's own functions and the
/// provider's algorithms, then records it for the log. Both certificate
/// verifiers use this, so whatever a verifier accepts as a certificate, the
/// peer must hold its private key.
pub(crate) fn verify_signature(
    version: SignedIn,
    signer: Peer,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    provider: &CryptoProvider,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let algs = &provider.signature_verification_algorithms;
    let ok = match version {
        SignedIn::Tls12 => rustls::crypto::verify_tls12_signature(message, cert, dss, algs)?,
        SignedIn::Tls13 => rustls::crypto::verify_tls13_signature(message, cert, dss, algs)?,
    };
    let key = webpki::EndEntityCert::try_from(cert)
        .ok()
        .and_then(|ee| key_desc_from_spki(ee.subject_public_key_info().as_ref()).ok())
        .unwrap_or(KeyDesc::Other);
    let sig = HandshakeSignature {
        scheme: dss.scheme,
        key,
    };
    match signer {
        Peer::Server => record(sig),
        Peer::Client => record_client(sig),
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors() {
        assert_eq!(key_desc_from_spki(&[]), Err(SpkiError::Truncated));
        assert_eq!(
            key_desc_from_spki(&[0x31, 0]),
            Err(SpkiError::UnexpectedTag {
                expected: 0x30,
                found: 0x31
            })
        );
        assert_eq!(
            key_desc_from_spki(&[0x30, 0x85, 1, 1, 1, 1, 1]),
            Err(SpkiError::BadLength)
        );
        assert_eq!(
            key_desc_from_spki(&[0x30, 0x05, 0x30]),
            Err(SpkiError::Truncated)
        );
        // An empty algorithm sequence.
        assert_eq!(
            key_desc_from_spki(&[0x30, 0x02, 0x30, 0x00]),
            Err(SpkiError::Truncated)
        );
    }

    #[test]
    fn ed25519_and_bits() {
        // SPKI of an Ed25519 key (RFC 8410 §10.1 example, 32 zero bytes of key).
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(&[0u8; 32]);
        assert_eq!(key_desc_from_spki(&spki), Ok(KeyDesc::Ed25519));
        assert_eq!(integer_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(integer_bits(&[0x01, 0xff]), 9);
        assert_eq!(integer_bits(&[0x00]), 0);
    }
}
