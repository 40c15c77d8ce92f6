//! rustls and webpki errors in words, for log lines and deferral reasons.
//!
//! Their `Display` falls back to `Debug` for many variants
//! (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`,
//! `received fatal alert: HandshakeFailure`): a Rust type name tells an
//! administrator nothing. Everything tern logs about a failed handshake or
//! a refused certificate goes through [`describe`] (or [`describe_io`] for
//! the stream's `io::Error`s), which says what happened in a sentence.
use std::io;

use rustls::{AlertDescription, CertificateError, PeerIncompatible, PeerMisbehaved};

/// A rustls error as a sentence (no Rust type names).
pub fn describe(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => certificate(c),
        E::AlertReceived(a) => format!("the peer sent the TLS alert \"{}\"", alert(*a)),
        E::NoCertificatesPresented => "the server presented no certificate".into(),
        E::PeerIncompatible(p) => incompatible(p),
        E::PeerMisbehaved(p) => misbehaved(p),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "the peer sent data that is not a valid TLS handshake message".into()
        }
        E::InappropriateHandshakeMessage { .. } => {
            "the peer sent a TLS handshake message out of order".into()
        }
        E::DecryptError => "a TLS record could not be decrypted".into(),
        E::EncryptError => "a TLS record could not be encrypted".into(),
        E::PeerSentOversizedRecord => "the peer sent a TLS record larger than allowed".into(),
        E::NoApplicationProtocol => "no application protocol in common".into(),
        E::HandshakeNotComplete => "the TLS handshake did not complete".into(),
        E::FailedToGetCurrentTime => "the system clock could not be read".into(),
        E::FailedToGetRandomBytes => "no random numbers were available".into(),
        E::BadMaxFragmentSize => "bad maximum fragment size".into(),
        E::General(s) => s.clone(),
        _ => "TLS protocol error".into(),
    }
}

/// The stream's error as a sentence: a wrapped rustls error through
/// [`describe`], anything else by its own text (without Rust's
/// ` (os error N)` suffix).
pub fn describe_io(e: &io::Error) -> String {
    if let Some(r) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return describe(r);
    }
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    }
}

/// The reason in Postfix's `SSL_accept error from host[addr]: REASON`. A
/// client that ends the handshake cleanly, with a `close_notify` alert
/// (scanners such as testssl.sh and sslyze do, once they have what they
/// probed for) or by closing the connection, is `lost connection`: OpenSSL
/// reports both as a zero return with no error queued and no errno, which
/// Postfix's tls_server_start() words so. Anything else as
/// [`describe_io`].
pub fn describe_accept_io(e: &io::Error) -> String {
    let close_notify = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::AlertReceived(rustls::AlertDescription::CloseNotify)
            )
        });
    if close_notify || e.kind() == io::ErrorKind::UnexpectedEof {
        return "lost connection".into();
    }
    describe_io(e)
}

/// The cleartext SMTP reply at the start of `prefix` (the first bytes a
/// server sent where a TLS handshake was expected), as printable text up
/// to the end of its first line: `Some("220 mx.example.com ESMTP")`. A TLS
/// record starts with a content type byte (20 to 24), never with three
/// digits, so this tells a STARTTLS port reached with implicit TLS
/// (`smtp_tls_wrappermode = yes`) from a TLS failure.
pub fn cleartext_reply(prefix: &[u8]) -> Option<String> {
    let code = prefix.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if !matches!(prefix.get(3), None | Some(b' ' | b'-' | b'\r' | b'\n')) {
        return None;
    }
    let line = prefix
        .split(|b| *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or_default();
    Some(
        line.iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '?'
                }
            })
            .collect(),
    )
}

/// Why a certificate was refused, in words.
pub fn certificate(c: &CertificateError) -> String {
    use CertificateError as C;
    match c {
        C::BadEncoding => "the certificate is malformed".into(),
        C::Expired => "the certificate has expired".into(),
        C::ExpiredContext { time, not_after } => format!(
            "the certificate has expired ({} seconds ago)",
            time.as_secs().saturating_sub(not_after.as_secs())
        ),
        C::NotValidYet => "the certificate is not valid yet".into(),
        C::NotValidYetContext { time, not_before } => format!(
            "the certificate is not valid yet (for another {} seconds; is the clock right?)",
            not_before.as_secs().saturating_sub(time.as_secs())
        ),
        C::Revoked => "the certificate has been revoked".into(),
        C::UnhandledCriticalExtension => {
            "the certificate has a critical extension tern does not understand".into()
        }
        C::UnknownIssuer => {
            "the certificate chain does not lead to a trusted CA or trust anchor (unknown issuer)"
                .into()
        }
        C::UnknownRevocationStatus => "the certificate's revocation status is unknown".into(),
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
            "the certificate revocation list has expired".into()
        }
        C::BadSignature => {
            "a signature (in the certificate chain or the handshake) does not verify".into()
        }
        C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "the certificate chain is signed with an algorithm tern does not support".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "no certificate name matches the expected names".into()
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the certificate is not for TLS servers (extended key usage)".into()
        }
        C::InvalidOcspResponse => "the OCSP response is not valid".into(),
        C::ApplicationVerificationFailure => "the certificate was not accepted".into(),
        C::Other(o) => match o.0.downcast_ref::<webpki::Error>() {
            Some(w) => webpki_error(w),
            None => "the certificate was not accepted".into(),
        },
        _ => "the certificate was not accepted".into(),
    }
}

/// webpki's errors that rustls passes on as `CertificateError::Other`.
fn webpki_error(e: &webpki::Error) -> String {
    use webpki::Error as W;
    match e {
        W::CaUsedAsEndEntity => "the server certificate is a CA certificate (CA:TRUE) and is \
            not itself a trust anchor here: put it in the tafile= or CAfile to trust it, or \
            give the server a certificate issued by that CA"
            .into(),
        W::EndEntityUsedAsCa => {
            "a certificate that is not a CA (CA:FALSE) issued another one in the chain".into()
        }
        W::PathLenConstraintViolated => {
            "the certificate chain is longer than a CA's path length constraint allows".into()
        }
        W::NameConstraintViolation => "a certificate name violates a CA's name constraints".into(),
        W::MaximumPathDepthExceeded
        | W::MaximumPathBuildCallsExceeded
        | W::MaximumSignatureChecksExceeded
        | W::MaximumNameConstraintComparisonsExceeded => {
            "the certificate chain is too long or too complex to verify".into()
        }
        W::UnsupportedCertVersion => "the certificate is not an X.509 version 3 certificate".into(),
        W::UnsupportedCriticalExtension => {
            "the certificate has a critical extension tern does not understand".into()
        }
        W::BadDer
        | W::BadDerTime
        | W::TrailingData(_)
        | W::MalformedExtensions
        | W::ExtensionValueInvalid
        | W::MalformedDnsIdentifier
        | W::MalformedNameConstraint
        | W::InvalidSerialNumber
        | W::InvalidNetworkMaskConstraint => "the certificate is malformed".into(),
        W::InvalidCertValidity => "the certificate's validity period is malformed".into(),
        W::EmptyEkuExtension | W::RequiredEkuNotFoundContext(_) => {
            "the certificate is not for TLS servers (extended key usage)".into()
        }
        W::CertDistrusted => "the certificate is distrusted".into(),
        W::UnsupportedNameType => "the certificate has a name of a type tern cannot check".into(),
        W::SignatureAlgorithmMismatch => {
            "the certificate's signature algorithm fields disagree".into()
        }
        _ => "the certificate was not accepted".into(),
    }
}

/// An alert's name as OpenSSL words it (`handshake failure`), which is
/// what Postfix's logs show.
fn alert(a: AlertDescription) -> String {
    use AlertDescription as A;
    let s = match a {
        A::CloseNotify => "close notify",
        A::UnexpectedMessage => "unexpected message",
        A::BadRecordMac => "bad record mac",
        A::RecordOverflow => "record overflow",
        A::HandshakeFailure => "handshake failure",
        A::BadCertificate => "bad certificate",
        A::UnsupportedCertificate => "unsupported certificate",
        A::CertificateRevoked => "certificate revoked",
        A::CertificateExpired => "certificate expired",
        A::CertificateUnknown => "certificate unknown",
        A::IllegalParameter => "illegal parameter",
        A::UnknownCA => "unknown CA",
        A::AccessDenied => "access denied",
        A::DecodeError => "decode error",
        A::DecryptError => "decrypt error",
        A::ProtocolVersion => "protocol version",
        A::InsufficientSecurity => "insufficient security",
        A::InternalError => "internal error",
        A::InappropriateFallback => "inappropriate fallback",
        A::UserCanceled => "user canceled",
        A::NoRenegotiation => "no renegotiation",
        A::MissingExtension => "missing extension",
        A::UnsupportedExtension => "unsupported extension",
        A::UnrecognisedName => "unrecognized name",
        A::UnknownPSKIdentity => "unknown PSK identity",
        A::CertificateRequired => "certificate required",
        A::NoApplicationProtocol => "no application protocol",
        other => return format!("alert number {}", u8::from(other)),
    };
    s.into()
}

fn incompatible(p: &PeerIncompatible) -> String {
    use PeerIncompatible as P;
    match p {
        P::NoCipherSuitesInCommon => "no TLS cipher suite in common with the peer".into(),
        P::NoKxGroupsInCommon => "no TLS key exchange group in common with the peer".into(),
        P::NoSignatureSchemesInCommon => "no TLS signature scheme in common with the peer".into(),
        P::ServerDoesNotSupportTls12Or13
        | P::Tls12NotOffered
        | P::Tls12NotOfferedOrEnabled
        | P::Tls13RequiredForQuic
        | P::SupportedVersionsExtensionRequired => {
            "no TLS protocol version in common with the peer (tern speaks TLS 1.2 and 1.3)".into()
        }
        _ => "the peer's TLS settings are incompatible with tern's".into(),
    }
}

fn misbehaved(_p: &PeerMisbehaved) -> String {
    "the peer broke the TLS protocol".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn cleartext_replies() {
        assert_eq!(
            cleartext_reply(b"220 mx.example ESMTP\r\n").as_deref(),
            Some("220 mx.example ESMTP")
        );
        assert_eq!(
            cleartext_reply(b"220-mx.exam").as_deref(),
            Some("220-mx.exam")
        );
        assert_eq!(cleartext_reply(b"421").as_deref(), Some("421"));
        assert_eq!(cleartext_reply(b"220 \x1b[1m").as_deref(), Some("220 ?[1m"));
        // TLS records: handshake (22) and alert (21).
        assert_eq!(cleartext_reply(b"\x16\x03\x03\x00\x7a"), None);
        assert_eq!(cleartext_reply(b"\x15\x03\x03\x00\x02\x02\x28"), None);
        assert_eq!(cleartext_reply(b"22"), None);
        assert_eq!(cleartext_reply(b"2200"), None);
        assert_eq!(cleartext_reply(b""), None);
    }

    #[test]
    fn no_debug_names() {
        let other = |w: webpki::Error| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(w),
            )))
        };
        let cases = [
            other(webpki::Error::CaUsedAsEndEntity),
            other(webpki::Error::PathLenConstraintViolated),
            other(webpki::Error::UnsupportedCertVersion),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            rustls::Error::AlertReceived(AlertDescription::HandshakeFailure),
            rustls::Error::AlertReceived(AlertDescription::Unknown(200)),
            rustls::Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        ];
        for e in &cases {
            let s = describe(e);
            // No CamelCase word (a Rust variant name: a lower-case letter
            // followed by an upper-case one) in the text.
            let camel = s
                .as_bytes()
                .windows(2)
                .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
            assert!(!camel, "{e:?} -> {s}");
        }
        assert!(
            describe(&cases[0]).starts_with("the server certificate is a CA certificate (CA:TRUE)")
        );
        assert_eq!(
            describe(&cases[4]),
            "the peer sent the TLS alert \"handshake failure\""
        );
        assert_eq!(
            describe(&cases[5]),
            "the peer sent the TLS alert \"alert number 200\""
        );
        let io = io::Error::new(io::ErrorKind::InvalidData, cases[3].clone());
        assert_eq!(describe_io(&io), describe(&cases[3]));
        let io = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(describe_io(&io), "Connection reset by peer");
    }

    #[test]
    fn clean_close_in_accept_is_lost_connection() {
        let cn = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CloseNotify),
        );
        assert_eq!(describe_accept_io(&cn), "lost connection");
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed");
        assert_eq!(describe_accept_io(&eof), "lost connection");
        let other = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        );
        assert_eq!(describe_accept_io(&other), describe_io(&other));
    }
}
