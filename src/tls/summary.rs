//! What was negotiated on a TLS connection, formatted as Postfix logs it.
//!
//! Formats, from Postfix's FORWARD_SECRECY_README, with curve names as
//! Debian's Postfix 3.7 writes them (OpenSSL 3.0 short names: `prime256v1`
//! where the README, made with an older OpenSSL, shows `P-256`);
//! `tests/tls_logs_postfix.rs` compares them with that Postfix's lines:
//!
//! ```text
//! TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256
//! TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange ECDHE (prime256v1) server-signature ECDSA (prime256v1) server-digest SHA256
//! TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) server-signature ED25519
//! Anonymous TLS connection established from host[addr]: ...
//! Untrusted TLS connection established to host[addr]:25: ...
//! (using TLSv1.3 with cipher ... server-digest SHA256)
//! ```
//!
//! TLS 1.2 cipher names are OpenSSL's (`ECDHE-RSA-AES256-GCM-SHA384`), as in
//! Postfix's TLSRPT_README; TLS 1.3 names are the RFC 8446 ones.
use std::fmt;
use std::net::IpAddr;

use rustls::{CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme};

use super::keyinfo::{HandshakeSignature, KeyDesc};

/// Longest DNS name (RFC 1035), the bound for a recorded SNI value.
pub const MAX_SNI_LEN: usize = 253;

/// Negotiated parameters of one TLS connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSummary {
    /// Protocol version (TLS 1.2 or 1.3).
    pub version: ProtocolVersion,
    /// Cipher suite.
    pub cipher: CipherSuite,
    /// Key-exchange group, when known.
    pub kx_group: Option<NamedGroup>,
    /// Server's handshake signature (scheme and key), when a certificate was used.
    pub server_signature: Option<HandshakeSignature>,
    /// SNI name the client sent (server side only).
    pub sni: Option<heapless::String<MAX_SNI_LEN>>,
    /// The client's handshake signature, when it presented a certificate
    /// (server side, `smtpd_tls_ask_ccert = yes`).
    pub client_signature: Option<HandshakeSignature>,
    /// Names from the certificate the client presented (server side).
    pub client_cert: Option<PeerCertNames>,
}

/// What Postfix shows of a client certificate it did not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertNames {
    /// Subject CN (empty if none, or not printable).
    pub subject_cn: String,
    /// Issuer CN, else issuer O (empty if neither), as Postfix's
    /// `tls_issuer_CN()`.
    pub issuer_cn: String,
}

impl PeerCertNames {
    /// Reads the names from a DER certificate; unreadable parts are empty.
    pub fn from_cert(der: &[u8]) -> PeerCertNames {
        use super::der::{cert_fields, name_attribute, OID_COMMON_NAME, OID_ORGANIZATION};
        let Ok(f) = cert_fields(der) else {
            return PeerCertNames {
                subject_cn: String::new(),
                issuer_cn: String::new(),
            };
        };
        let attr = |name: &[u8], oid: &[u8]| name_attribute(name, oid).ok().flatten();
        PeerCertNames {
            subject_cn: attr(f.subject, OID_COMMON_NAME).unwrap_or_default(),
            issuer_cn: attr(f.issuer, OID_COMMON_NAME)
                .or_else(|| attr(f.issuer, OID_ORGANIZATION))
                .unwrap_or_default(),
        }
    }
}

/// How far the client verified the server (Postfix's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Certificate not checked against a trusted CA, or that check failed.
    Untrusted,
    /// Chain to a trusted CA, name not verified.
    Trusted,
    /// Chain and name verified, or fingerprint/DANE matched.
    Verified,
}

impl Trust {
    /// `Untrusted`, `Trusted` or `Verified`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Untrusted => "Untrusted",
            Trust::Trusted => "Trusted",
            Trust::Verified => "Verified",
        }
    }
}

/// Postfix/OpenSSL name of the protocol version.
pub fn version_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        ProtocolVersion::TLSv1_1 => "TLSv1.1",
        ProtocolVersion::TLSv1_0 => "TLSv1",
        _ => "unknown",
    }
}

/// OpenSSL name of a cipher suite and its (actual, raw) key bits.
pub fn cipher_name_bits(c: CipherSuite) -> (&'static str, u16) {
    match c {
        CipherSuite::TLS13_AES_256_GCM_SHA384 => ("TLS_AES_256_GCM_SHA384", 256),
        CipherSuite::TLS13_AES_128_GCM_SHA256 => ("TLS_AES_128_GCM_SHA256", 128),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => ("TLS_CHACHA20_POLY1305_SHA256", 256),
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
            ("ECDHE-ECDSA-AES256-GCM-SHA384", 256)
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
            ("ECDHE-ECDSA-AES128-GCM-SHA256", 128)
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-ECDSA-CHACHA20-POLY1305", 256)
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => ("ECDHE-RSA-AES256-GCM-SHA384", 256),
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => ("ECDHE-RSA-AES128-GCM-SHA256", 128),
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-RSA-CHACHA20-POLY1305", 256)
        }
        _ => ("unknown", 0),
    }
}

/// Writes the Postfix `key-exchange` value for a group.
fn write_kx(f: &mut fmt::Formatter<'_>, g: NamedGroup) -> fmt::Result {
    match g {
        NamedGroup::X25519 => f.write_str("X25519"),
        NamedGroup::X448 => f.write_str("X448"),
        // OpenSSL 3.0's short names, as Debian's Postfix 3.7 logs them.
        NamedGroup::secp256r1 => f.write_str("ECDHE (prime256v1)"),
        NamedGroup::secp384r1 => f.write_str("ECDHE (secp384r1)"),
        NamedGroup::secp521r1 => f.write_str("ECDHE (secp521r1)"),
        NamedGroup::X25519MLKEM768 => f.write_str("X25519MLKEM768"),
        NamedGroup::secp256r1MLKEM768 => f.write_str("SecP256r1MLKEM768"),
        NamedGroup::MLKEM768 => f.write_str("MLKEM768"),
        NamedGroup::MLKEM1024 => f.write_str("MLKEM1024"),
        other => write!(f, "{other:?}"),
    }
}

/// Digest name for `server-digest`, `None` for EdDSA (no separate hash).
fn scheme_digest(s: SignatureScheme) -> Option<&'static str> {
    use SignatureScheme as S;
    match s {
        S::RSA_PKCS1_SHA1 | S::ECDSA_SHA1_Legacy => Some("SHA1"),
        S::RSA_PKCS1_SHA256 | S::ECDSA_NISTP256_SHA256 | S::RSA_PSS_SHA256 => Some("SHA256"),
        S::RSA_PKCS1_SHA384 | S::ECDSA_NISTP384_SHA384 | S::RSA_PSS_SHA384 => Some("SHA384"),
        S::RSA_PKCS1_SHA512 | S::ECDSA_NISTP521_SHA512 | S::RSA_PSS_SHA512 => Some("SHA512"),
        _ => None,
    }
}

fn is_pss(s: SignatureScheme) -> bool {
    matches!(
        s,
        SignatureScheme::RSA_PSS_SHA256
            | SignatureScheme::RSA_PSS_SHA384
            | SignatureScheme::RSA_PSS_SHA512
    )
}

/// Writes ` {who}-signature X [{who}-digest Y]` (`who`: server or client).
fn write_signature(f: &mut fmt::Formatter<'_>, who: &str, sig: &HandshakeSignature) -> fmt::Result {
    write!(f, " {who}-signature ")?;
    match sig.key {
        KeyDesc::Rsa { bits } if is_pss(sig.scheme) => write!(f, "RSA-PSS ({bits} bits)")?,
        KeyDesc::Rsa { bits } => write!(f, "RSA ({bits} bits)")?,
        KeyDesc::Ec(curve) => write!(f, "ECDSA ({})", curve.openssl_name())?,
        KeyDesc::Ed25519 => f.write_str("ED25519")?,
        KeyDesc::Ed448 => f.write_str("ED448")?,
        KeyDesc::Other => write!(f, "{:?}", sig.scheme)?,
    }
    if let Some(d) = scheme_digest(sig.scheme) {
        write!(f, " {who}-digest {d}")?;
    }
    Ok(())
}

impl fmt::Display for TlsSummary {
    /// `TLSv1.3 with cipher NAME (B/B bits) key-exchange ... server-digest ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, bits) = cipher_name_bits(self.cipher);
        write!(
            f,
            "{} with cipher {name} ({bits}/{bits} bits)",
            version_name(self.version)
        )?;
        if let Some(g) = self.kx_group {
            f.write_str(" key-exchange ")?;
            write_kx(f, g)?;
        }
        if let Some(sig) = &self.server_signature {
            write_signature(f, "server", sig)?;
        }
        if let Some(sig) = &self.client_signature {
            write_signature(f, "client", sig)?;
        }
        Ok(())
    }
}

/// Display adapter: the smtpd log line (see [`TlsSummary::server_log`]).
pub struct ServerLog<'a> {
    summary: &'a TlsSummary,
    host: &'a str,
    addr: IpAddr,
}

impl fmt::Display for ServerLog<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Postfix's server never verifies a client certificate against
        // a CA here: "Untrusted" when one was presented, else "Anonymous".
        let status = if self.summary.client_cert.is_some() {
            "Untrusted"
        } else {
            "Anonymous"
        };
        // Postfix adds ` to SNI` only when `tls_server_sni_maps` chose the
        // certificate for that name; tern has no SNI maps, so never, even
        // when the client sent SNI (log parsers key on the exact line).
        write!(
            f,
            "{status} TLS connection established from {}[{}]: {}",
            self.host, self.addr, self.summary
        )
    }
}

/// Display adapter: the delivery log line (see [`TlsSummary::client_log`]).
pub struct ClientLog<'a> {
    summary: &'a TlsSummary,
    /// `established` for a new connection, `reused` for a later message
    /// on it (Postfix's TLS_USAGE_NEW / TLS_USAGE_USED).
    usage: &'static str,
    trust: Trust,
    host: &'a str,
    addr: IpAddr,
    port: u16,
}

impl fmt::Display for ClientLog<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} TLS connection {} to {}[{}]:{}: {}",
            self.trust.as_str(),
            self.usage,
            self.host,
            self.addr,
            self.port,
            self.summary
        )
    }
}

/// Display adapter: the Received-header comment (see [`TlsSummary::received_comment`]).
pub struct ReceivedComment<'a>(&'a TlsSummary);

impl fmt::Display for ReceivedComment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(using {})", self.0)
    }
}

impl TlsSummary {
    /// `Anonymous TLS connection established from host[addr]: ...` (never
    /// ` to SNI`: Postfix writes that only for a certificate its
    /// `tls_server_sni_maps` chose, and tern has none); `Untrusted`
    /// instead of `Anonymous` when the client presented a certificate
    /// (`smtpd_tls_ask_ccert`), which tern never checks against a CA.
    pub fn server_log<'a>(&'a self, host: &'a str, addr: IpAddr) -> ServerLog<'a> {
        ServerLog {
            summary: self,
            host,
            addr,
        }
    }

    /// `Untrusted|Trusted|Verified TLS connection established to host[addr]:port: ...`
    pub fn client_log<'a>(
        &'a self,
        trust: Trust,
        host: &'a str,
        addr: IpAddr,
        port: u16,
    ) -> ClientLog<'a> {
        ClientLog {
            summary: self,
            usage: "established",
            trust,
            host,
            addr,
            port,
        }
    }

    /// `Untrusted|Trusted|Verified TLS connection reused to host[addr]:port: ...`:
    /// Postfix's line for a message sent over a connection that already
    /// carried one (no new handshake, so no TLSRPT event).
    pub fn client_log_reused<'a>(
        &'a self,
        trust: Trust,
        host: &'a str,
        addr: IpAddr,
        port: u16,
    ) -> ClientLog<'a> {
        ClientLog {
            usage: "reused",
            ..self.client_log(trust, host, addr, port)
        }
    }

    /// `(using TLSv1.3 with cipher ... server-digest SHA256)` for the Received
    /// header; one line, the caller folds it.
    pub fn received_comment(&self) -> ReceivedComment<'_> {
        ReceivedComment(self)
    }

    /// Postfix's second Received comment: `(Client CN "...", Issuer "..."
    /// (not verified))` for a presented certificate, `(Client did not
    /// present a certificate)` when one was asked for (`asked`), else
    /// `(No client certificate requested)`.
    pub fn client_cert_comment(&self, asked: bool) -> String {
        match &self.client_cert {
            Some(c) => format!(
                "(Client CN \"{}\", Issuer \"{}\" (not verified))",
                c.subject_cn, c.issuer_cn
            ),
            None if asked => "(Client did not present a certificate)".into(),
            None => "(No client certificate requested)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::keyinfo::Curve;

    fn rsa_x25519() -> TlsSummary {
        TlsSummary {
            version: ProtocolVersion::TLSv1_3,
            cipher: CipherSuite::TLS13_AES_256_GCM_SHA384,
            kx_group: Some(NamedGroup::X25519),
            server_signature: Some(HandshakeSignature {
                scheme: SignatureScheme::RSA_PSS_SHA256,
                key: KeyDesc::Rsa { bits: 2048 },
            }),
            sni: None,
            client_signature: None,
            client_cert: None,
        }
    }

    #[test]
    fn seed_examples() {
        let s = rsa_x25519();
        assert_eq!(
            s.to_string(),
            "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256"
        );
        assert_eq!(
            s.client_log(Trust::Untrusted, "127.0.0.1", "127.0.0.1".parse().unwrap(), 25).to_string(),
            "Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256"
        );
        assert_eq!(
            s.received_comment().to_string(),
            "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)"
        );
        let ec = TlsSummary {
            kx_group: Some(NamedGroup::secp256r1),
            server_signature: Some(HandshakeSignature {
                scheme: SignatureScheme::ECDSA_NISTP256_SHA256,
                key: KeyDesc::Ec(Curve::P256),
            }),
            ..rsa_x25519()
        };
        assert_eq!(
            ec.to_string(),
            "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange ECDHE (prime256v1) server-signature ECDSA (prime256v1) server-digest SHA256"
        );
        let ed = TlsSummary {
            kx_group: None,
            server_signature: Some(HandshakeSignature {
                scheme: SignatureScheme::ED25519,
                key: KeyDesc::Ed25519,
            }),
            ..rsa_x25519()
        };
        assert_eq!(
            ed.server_log("localhost", "127.0.0.1".parse().unwrap()).to_string(),
            "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) server-signature ED25519"
        );
    }

    #[test]
    fn client_certificate_seed_examples() {
        // FORWARD_SECRECY_README, smtpd with smtpd_tls_ask_ccert.
        let s = TlsSummary {
            client_signature: Some(HandshakeSignature {
                scheme: SignatureScheme::ECDSA_NISTP256_SHA256,
                key: KeyDesc::Ec(Curve::P256),
            }),
            client_cert: Some(PeerCertNames {
                subject_cn: "example.org".into(),
                issuer_cn: "example.org".into(),
            }),
            ..rsa_x25519()
        };
        assert_eq!(
            s.server_log("localhost", "127.0.0.1".parse().unwrap()).to_string(),
            "Untrusted TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256 client-signature ECDSA (prime256v1) client-digest SHA256"
        );
        assert_eq!(
            s.received_comment().to_string(),
            "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256 client-signature ECDSA (prime256v1) client-digest SHA256)"
        );
        assert_eq!(
            s.client_cert_comment(true),
            "(Client CN \"example.org\", Issuer \"example.org\" (not verified))"
        );
        let anon = rsa_x25519();
        assert_eq!(
            anon.client_cert_comment(true),
            "(Client did not present a certificate)"
        );
        assert_eq!(
            anon.client_cert_comment(false),
            "(No client certificate requested)"
        );
        // Garbage gives empty names, never a panic.
        assert_eq!(
            PeerCertNames::from_cert(b"\x30\x00"),
            PeerCertNames {
                subject_cn: String::new(),
                issuer_cn: String::new()
            }
        );
    }

    #[test]
    fn sni_and_tls12() {
        let mut s = rsa_x25519();
        s.sni = Some(heapless::String::try_from("server.example").unwrap());
        s.version = ProtocolVersion::TLSv1_2;
        s.cipher = CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384;
        s.server_signature = Some(HandshakeSignature {
            scheme: SignatureScheme::RSA_PKCS1_SHA384,
            key: KeyDesc::Rsa { bits: 3072 },
        });
        assert_eq!(
            s.server_log("client.example", "192.0.2.1".parse().unwrap()).to_string(),
            "Anonymous TLS connection established from client.example[192.0.2.1]: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits) key-exchange X25519 server-signature RSA (3072 bits) server-digest SHA384"
        );
    }
}
