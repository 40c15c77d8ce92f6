//! One TLSRPT event as Postfix 3.10 makes it, sans-I/O: the final status
//! of a new connection (success, or the RFC 8460 result type and
//! Postfix's `failure_reason`), its `TLSRPT: status=...` log line, and the
//! datagram sys4's TLSRPT client library (libtlsrpt 0.5) sends to the
//! report generator's collector (`tlsrpt-collectd`).
//!
//! Postfix 3.10 (tlsrpt_wrapper.c, smtp_proto.c, tls_client.c,
//! tls_verify.c) decides the status; tern's verifier classifies a failure
//! for its own log lines, and [`status`] maps that onto Postfix's TLSRPT
//! result: an unknown issuer, a certificate not yet valid, an unsuitable
//! purpose and a failed handshake are `validation-failure` with OpenSSL's
//! verify-error words as the reason; an expired certificate is
//! `certificate-expired`; a DANE mismatch is `certificate-not-trusted`
//! (OpenSSL's DANE error falls through to smtp_proto.c's "not trusted");
//! `dane` with validated but unusable TLSA records (tern's fallback to
//! `encrypt`) is `tlsa-invalid`, `all-TLSA-records-unusable`.
//!
//! The datagram is written into a caller's buffer, key for key as
//! libtlsrpt's `tlsrpt_init_delivery_request` ... `tlsrpt_finish_delivery_request`
//! write it (`{"dpv": "1","d": "...","pr": "...","policies":[{...}]}`),
//! with two differences, both for RFC 8460 §4.4, whose report the
//! generator copies these fields into: `policy-domain` is also sent for
//! `no-policy-found` (Postfix leaves it out, and reports without it are a
//! known reporter bug), and `receiving-mx-helo` (`h`) is the name in the
//! server's greeting rather than Postfix's whole EHLO reply.

use std::fmt;

use crate::delivery::report::TlsAttempt;
use crate::policy::plan::PolicyType;
use crate::policy::Level;
use crate::tls::verify::reason;
use crate::tls::{FailureKind, TlsOutcome};

/// Postfix 3.10's final TLSRPT status of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `status=success`.
    Success,
    /// `status=failure`.
    Failure {
        /// RFC 8460 result type.
        kind: FailureKind,
        /// Postfix's `failure_reason` (the report's `failure-reason-code`),
        /// when it gives one.
        reason: Option<&'static str>,
    },
}

/// The status Postfix 3.10 reports for `a` (see the module docs). The
/// daily counters use the same mapping, so they agree with the log.
pub fn status(a: &TlsAttempt) -> Status {
    let dane_fell_back = a.policy.kind == PolicyType::Tlsa && a.level == Level::Encrypt;
    match &a.outcome {
        TlsOutcome::Success(_) if dane_fell_back => Status::Failure {
            kind: FailureKind::TlsaInvalid,
            reason: Some(reason::TLSA_UNUSABLE),
        },
        TlsOutcome::Success(_) => Status::Success,
        TlsOutcome::Failure { kind, .. } => {
            let (kind, reason) = match (*kind, a.failure_code) {
                (FailureKind::StarttlsNotSupported, _) => (FailureKind::StarttlsNotSupported, None),
                (_, Some(r)) if r == reason::TLSA_UNUSABLE => (FailureKind::TlsaInvalid, Some(r)),
                // Every other reason Postfix words is a validation failure
                // (OpenSSL verify errors, the failed handshake).
                (_, Some(r)) => (FailureKind::ValidationFailure, Some(r)),
                (FailureKind::TlsaInvalid, None) => (FailureKind::CertificateNotTrusted, None),
                (k, None) => (k, None),
            };
            Status::Failure { kind, reason }
        }
    }
}

/// The RFC 8460 result type in the log's spelling (`starttls_not_supported`:
/// Postfix's trw_failure_type_to_string, underscores for hyphens).
pub fn log_name(kind: FailureKind) -> &'static str {
    use FailureKind as K;
    match kind {
        K::StarttlsNotSupported => "starttls_not_supported",
        K::CertificateHostMismatch => "certificate_host_mismatch",
        K::CertificateExpired => "certificate_expired",
        K::CertificateNotTrusted => "certificate_not_trusted",
        K::TlsaInvalid => "tlsa_invalid",
        K::ValidationFailure => "validation_failure",
        K::StsPolicyFetchError => "sts_policy_fetch_error",
        K::StsPolicyInvalid => "sts_policy_invalid",
        K::StsWebpkiInvalid => "sts_webpki_invalid",
        K::DnssecInvalid => "dnssec_invalid",
        K::DaneRequired => "dane_required",
    }
}

/// libtlsrpt's `tlsrpt_failure_t` code of a result type (the datagram's
/// `c`; the collector maps it back to the RFC 8460 name).
pub fn failure_code(kind: FailureKind) -> u16 {
    use FailureKind as K;
    match kind {
        K::StarttlsNotSupported => 201,
        K::CertificateHostMismatch => 202,
        K::CertificateNotTrusted => 203,
        K::CertificateExpired => 204,
        K::ValidationFailure => 205,
        K::StsPolicyFetchError => 301,
        K::StsPolicyInvalid => 302,
        K::StsWebpkiInvalid => 303,
        K::TlsaInvalid => 304,
        K::DnssecInvalid => 305,
        K::DaneRequired => 306,
    }
}

/// libtlsrpt's `tlsrpt_policy_type_t` code (`policy-type`).
pub fn policy_code(kind: PolicyType) -> u8 {
    match kind {
        PolicyType::Tlsa => 1,
        PolicyType::Sts => 2,
        PolicyType::NoPolicyFound => 9,
    }
}

/// Display adapter: Postfix 3.10's line, e.g. `TLSRPT: status=failure,
/// domain=example.org, receiving_mx=mail.example.org[192.0.2.2],
/// failure_type=starttls_not_supported` (msg_info: no queue ID).
pub struct LogLine<'a> {
    attempt: &'a TlsAttempt,
    domain: &'a str,
}

/// The log line of `a` for the TLSRPT policy domain `domain`.
pub fn log_line<'a>(a: &'a TlsAttempt, domain: &'a str) -> LogLine<'a> {
    LogLine { attempt: a, domain }
}

impl fmt::Display for LogLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.attempt;
        match status(a) {
            Status::Success => write!(
                f,
                "TLSRPT: status=success, domain={}, receiving_mx={}[{}]",
                self.domain, a.host, a.addr
            ),
            Status::Failure { kind, reason } => {
                write!(
                    f,
                    "TLSRPT: status=failure, domain={}, receiving_mx={}[{}], failure_type={}",
                    self.domain,
                    a.host,
                    a.addr,
                    log_name(kind)
                )?;
                if let Some(r) = reason {
                    write!(f, ", failure_reason={r}")?;
                }
                Ok(())
            }
        }
    }
}

/// The datagram did not fit the buffer (its length so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TLSRPT datagram larger than its buffer")
    }
}

/// Writes into a fixed buffer; once full, every later write is refused.
struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
    full: bool,
}

impl Out<'_> {
    fn raw(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(dst) if !self.full => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            _ => self.full = true,
        }
    }

    /// A JSON string body, escaped as libtlsrpt's table does: `"`, `\`
    /// and the named controls with a backslash, other controls and DEL as
    /// `\u00XX`, everything else (UTF-8 included) as it is.
    fn escaped(&mut self, s: &str) {
        for &b in s.as_bytes() {
            match b {
                b'"' => self.raw(b"\\\""),
                b'\\' => self.raw(b"\\\\"),
                0x08 => self.raw(b"\\b"),
                0x0c => self.raw(b"\\f"),
                b'\n' => self.raw(b"\\n"),
                b'\r' => self.raw(b"\\r"),
                b'\t' => self.raw(b"\\t"),
                0..=0x1f | 0x7f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.raw(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 15)],
                    ]);
                }
                _ => self.raw(&[b]),
            }
        }
    }

    /// libtlsrpt's write_attribute: `,"name": "value"` (note the space).
    fn attribute(&mut self, first: bool, name: &str, value: &str) {
        if !first {
            self.raw(b",");
        }
        self.raw(b"\"");
        self.raw(name.as_bytes());
        self.raw(b"\": \"");
        self.escaped(value);
        self.raw(b"\"");
    }

    /// A decimal number (codes and counts: small, non-negative).
    fn number(&mut self, n: u16) {
        let mut digits = [0u8; 5];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.raw(&digits[i..]);
    }

    /// `,"name":["a","b"]`, left out when empty (as libtlsrpt does).
    fn list<'s>(&mut self, name: &str, items: impl Iterator<Item = &'s str>) {
        let mut first = true;
        for item in items {
            if first {
                self.raw(b",\"");
                self.raw(name.as_bytes());
                self.raw(b"\":[");
            } else {
                self.raw(b",");
            }
            first = false;
            self.raw(b"\"");
            self.escaped(item);
            self.raw(b"\"");
        }
        if !first {
            self.raw(b"]");
        }
    }
}

/// Writes the collector datagram of `a` into `buf` and returns its
/// length: TLSRPT domain `domain`, its record as published `record`.
pub fn datagram(
    a: &TlsAttempt,
    domain: &str,
    record: &str,
    buf: &mut [u8],
) -> Result<usize, TooLong> {
    let mut o = Out {
        buf,
        len: 0,
        full: false,
    };
    o.raw(b"{");
    o.attribute(true, "dpv", "1");
    o.attribute(false, "d", domain);
    o.attribute(false, "pr", record);
    o.raw(b",\"policies\":[{\"policy-type\":");
    o.number(policy_code(a.policy.kind).into());
    o.attribute(false, "policy-domain", &a.policy.domain);
    if a.policy.kind != PolicyType::NoPolicyFound {
        o.list("policy-string", a.policy.strings.iter().map(String::as_str));
        o.list("mx-host", a.policy.mx_patterns.iter().map(String::as_str));
    }
    let failed = match status(a) {
        Status::Success => false,
        Status::Failure { kind, reason } => {
            o.raw(b",\"failure-details\":[{\"c\":");
            o.number(failure_code(kind));
            // Addresses need no escaping; the buffers are on the stack.
            let mut ip = IpText::default();
            if let Some(s) = a.sending_ip {
                o.attribute(false, "s", ip.of(s));
            }
            o.attribute(false, "n", &a.host);
            if let Some(h) = &a.helo {
                o.attribute(false, "h", h);
            }
            o.attribute(false, "r", ip.of(a.addr));
            if let Some(r) = reason {
                o.attribute(false, "f", r);
            }
            o.raw(b"}]");
            true
        }
    };
    // `t`: failure details in this policy; `f`: the final result.
    o.raw(if failed {
        b",\"t\":1,\"f\":1}]}"
    } else {
        b",\"t\":0,\"f\":0}]}"
    });
    if o.full {
        Err(TooLong)
    } else {
        Ok(o.len)
    }
}

/// An address as text without allocating (at most 45 bytes for IPv6).
struct IpText {
    buf: [u8; 48],
}

impl Default for IpText {
    fn default() -> IpText {
        IpText { buf: [0; 48] }
    }
}

impl IpText {
    fn of(&mut self, ip: std::net::IpAddr) -> &str {
        use std::io::Write;
        let mut cur = std::io::Cursor::new(&mut self.buf[..]);
        // 48 bytes hold any address; a failed write leaves what fit.
        let _ = write!(cur, "{ip}");
        let n = usize::try_from(cur.position()).unwrap_or(0);
        std::str::from_utf8(&self.buf[..n]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::plan::PolicyDescriptor;
    use crate::tls::Trust;
    use std::net::IpAddr;

    fn attempt(
        domain: &str,
        host: &str,
        addr: &str,
        kind: PolicyType,
        outcome: TlsOutcome,
    ) -> TlsAttempt {
        TlsAttempt {
            policy: PolicyDescriptor {
                kind,
                domain: domain.into(),
                strings: Vec::new(),
                mx_patterns: Vec::new(),
            },
            level: Level::Verify,
            host: host.into(),
            addr: addr.parse().unwrap(),
            port: 25,
            helo: Some(host.into()),
            sending_ip: Some("192.0.2.100".parse::<IpAddr>().unwrap()),
            reused: false,
            outcome,
            failure_code: None,
            tlsrpt: None,
        }
    }

    fn failure(kind: FailureKind) -> TlsOutcome {
        TlsOutcome::Failure {
            kind,
            reason: "whatever tern logs".into(),
        }
    }

    /// The seed's three lines (TLSRPT_README), byte for byte.
    #[test]
    fn seed_lines() {
        let a = attempt(
            "example.com",
            "mail.example.com",
            "192.0.2.1",
            PolicyType::NoPolicyFound,
            TlsOutcome::Success(Trust::Untrusted),
        );
        assert_eq!(
            log_line(&a, "example.com").to_string(),
            "TLSRPT: status=success, domain=example.com, receiving_mx=mail.example.com[192.0.2.1]"
        );
        let a = attempt(
            "example.org",
            "mail.example.org",
            "192.0.2.2",
            PolicyType::NoPolicyFound,
            failure(FailureKind::StarttlsNotSupported),
        );
        assert_eq!(
            log_line(&a, "example.org").to_string(),
            "TLSRPT: status=failure, domain=example.org, receiving_mx=mail.example.org[192.0.2.2], failure_type=starttls_not_supported"
        );
        let mut a = attempt(
            "example.net",
            "mail.example.net",
            "192.0.2.3",
            PolicyType::NoPolicyFound,
            failure(FailureKind::CertificateNotTrusted),
        );
        a.failure_code = Some(reason::SELF_SIGNED);
        assert_eq!(
            log_line(&a, "example.net").to_string(),
            "TLSRPT: status=failure, domain=example.net, receiving_mx=mail.example.net[192.0.2.3], failure_type=validation_failure, failure_reason=self-signed_certificate"
        );
    }

    #[test]
    fn postfix_mapping() {
        let base = |outcome, code| {
            let mut a = attempt(
                "d.test",
                "mx.d.test",
                "192.0.2.1",
                PolicyType::Tlsa,
                outcome,
            );
            a.failure_code = code;
            a
        };
        let f = |k| status(&base(failure(k), None));
        assert_eq!(
            f(FailureKind::CertificateExpired),
            Status::Failure {
                kind: FailureKind::CertificateExpired,
                reason: None
            }
        );
        // DANE mismatch: OpenSSL's DANE error is Postfix's default case.
        assert_eq!(
            f(FailureKind::TlsaInvalid),
            Status::Failure {
                kind: FailureKind::CertificateNotTrusted,
                reason: None
            }
        );
        assert_eq!(
            f(FailureKind::CertificateHostMismatch),
            Status::Failure {
                kind: FailureKind::CertificateHostMismatch,
                reason: None
            }
        );
        assert_eq!(
            status(&base(
                failure(FailureKind::ValidationFailure),
                Some(reason::HANDSHAKE)
            )),
            Status::Failure {
                kind: FailureKind::ValidationFailure,
                reason: Some("tls-handshake-failure")
            }
        );
        // `dane` with unusable TLSA records ran at `encrypt`: Postfix
        // reports tlsa-invalid even though the handshake succeeded.
        let mut a = base(TlsOutcome::Success(Trust::Untrusted), None);
        a.level = Level::Encrypt;
        assert_eq!(
            status(&a),
            Status::Failure {
                kind: FailureKind::TlsaInvalid,
                reason: Some("all-TLSA-records-unusable")
            }
        );
        a.level = Level::Dane;
        assert_eq!(status(&a), Status::Success);
    }

    #[test]
    fn every_result_type_has_libtlsrpt_code_and_log_name() {
        for k in [
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
        ] {
            assert_eq!(log_name(k), k.as_str().replace('-', "_"));
            assert!((201..=306).contains(&failure_code(k)));
        }
    }

    #[test]
    fn datagram_success_as_libtlsrpt_writes_it() {
        let mut a = attempt(
            "example.com",
            "mail.example.com",
            "192.0.2.1",
            PolicyType::Sts,
            TlsOutcome::Success(Trust::Verified),
        );
        a.policy.strings = vec!["version: STSv1".into(), "mode: enforce".into()];
        a.policy.mx_patterns = vec!["*.example.com".into()];
        let mut buf = [0u8; 1024];
        let n = datagram(
            &a,
            "example.com",
            "v=TLSRPTv1; rua=mailto:r@example.com",
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            r#"{"dpv": "1","d": "example.com","pr": "v=TLSRPTv1; rua=mailto:r@example.com","policies":[{"policy-type":2,"policy-domain": "example.com","policy-string":["version: STSv1","mode: enforce"],"mx-host":["*.example.com"],"t":0,"f":0}]}"#
        );
    }

    #[test]
    fn datagram_failure_with_details() {
        let mut a = attempt(
            "example.net",
            "mail.example.net",
            "2001:db8::25",
            PolicyType::NoPolicyFound,
            failure(FailureKind::CertificateNotTrusted),
        );
        a.failure_code = Some(reason::SELF_SIGNED);
        a.helo = Some("mx \"q\"\\\n\u{1}".into());
        // no-policy-found: strings are never sent.
        a.policy.strings = vec!["ignored".into()];
        let mut buf = [0u8; 1024];
        let n = datagram(&a, "example.net", "v=TLSRPTv1; rua=mailto:x@y", &mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            r#"{"dpv": "1","d": "example.net","pr": "v=TLSRPTv1; rua=mailto:x@y","policies":[{"policy-type":9,"policy-domain": "example.net","failure-details":[{"c":205,"s": "192.0.2.100","n": "mail.example.net","h": "mx \"q\"\\\n\u0001","r": "2001:db8::25","f": "self-signed_certificate"}],"t":1,"f":1}]}"#
        );
    }

    #[test]
    fn datagram_too_long_is_refused_not_truncated() {
        let a = attempt(
            "example.com",
            "mail.example.com",
            "192.0.2.1",
            PolicyType::NoPolicyFound,
            TlsOutcome::Success(Trust::Untrusted),
        );
        let mut buf = [0u8; 40];
        assert_eq!(
            datagram(&a, "example.com", "v=TLSRPTv1;", &mut buf),
            Err(TooLong)
        );
        let mut big = [0u8; 4096];
        let n = datagram(&a, "example.com", "v=TLSRPTv1;", &mut big).unwrap();
        let mut exact = vec![0u8; n];
        assert_eq!(
            datagram(&a, "example.com", "v=TLSRPTv1;", &mut exact),
            Ok(n)
        );
    }
}
