//! DANE for SMTP (RFC 7672, with RFC 6698/7671): TLSA matching against the
//! server's certificate chain, inside the handshake.
//!
//! Only DANE-TA(2) and DANE-EE(3) are usable for SMTP; PKIX-TA(0) and
//! PKIX-EE(1) records are "unusable" (RFC 7672 §3.1.3). DANE-EE matches the
//! leaf and ignores names and expiry. DANE-TA matches a certificate of the
//! chain (or a trust anchor known only by its key, `2 1 0`), then the chain
//! is verified up to that anchor by webpki, expiry included, and the leaf's
//! names are checked against the TLSA base domain and the next-hop domain.
//!
//! `tls::verify::TernVerifier` in `VerifyMode::Dane` calls [`authenticate`]
//! from `verify_server_cert`, inside the handshake, and passes the handshake
//! signature checks to rustls's own `verify_tls12_signature` /
//! `verify_tls13_signature`. A verifier that accepted every handshake
//! signature and matched TLSA afterwards would let a man in the middle
//! replay the real server's certificate without holding its key.

use std::sync::Arc;

use aws_lc_rs::digest;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use rustls::{CertificateError, RootCertStore};

use super::der;

/// TLSA records come from the resolver; matching is defined here.
pub use crate::dns::Tlsa;

impl Tlsa {
    /// Whether this record can authenticate an SMTP server (RFC 7672 §3.1):
    /// usage 2 or 3, known selector and matching type, digest of the right
    /// length.
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3)
            && self.selector <= 1
            && match self.matching_type {
                0 => !self.data.is_empty(),
                1 => self.data.len() == 32,
                2 => self.data.len() == 64,
                _ => false,
            }
    }

    /// Whether this record's association data matches `cert` (DER).
    pub fn matches_cert(&self, cert: &[u8]) -> bool {
        let selected = match self.selector {
            0 => cert,
            1 => match der::cert_fields(cert) {
                Ok(f) => f.spki,
                Err(_) => return false,
            },
            _ => return false,
        };
        match self.matching_type {
            0 => selected == self.data.as_slice(),
            1 => digest::digest(&digest::SHA256, selected).as_ref() == self.data.as_slice(),
            2 => digest::digest(&digest::SHA512, selected).as_ref() == self.data.as_slice(),
            _ => false,
        }
    }
}

impl std::fmt::Display for Tlsa {
    /// Presentation format, `3 1 1 ABCD...` as dig prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} ",
            self.usage, self.selector, self.matching_type
        )?;
        for b in &self.data {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// How the server was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneMatch {
    /// A DANE-EE(3) record matched the leaf certificate.
    EndEntity {
        /// The record that matched.
        record: Tlsa,
    },
    /// A DANE-TA(2) record matched an anchor and the chain verified up to it.
    TrustAnchor {
        /// The record that matched.
        record: Tlsa,
        /// Chain position of the anchor (None: key-only anchor outside the chain).
        depth: Option<usize>,
        /// How many certificates the server sent (an anchor outside the
        /// chain sits just above them, at this depth).
        sent: usize,
        /// The reference name the leaf matched.
        name: String,
    },
}

impl DaneMatch {
    /// The line Postfix logs for a match at `smtp_tls_loglevel >= 2`
    /// (tls_dane.c, `tls_dane_match`), `namaddr` being `host[addr]:port`:
    /// `depth=0 matched end entity public-key sha256 digest=E4:98:...`
    /// (selector 1) or `... matched trust anchor certificate sha256 digest
    /// 3A:...` (selector 0, Postfix's own spelling without `=`). Full
    /// association data (matching type 0) is shown as its SHA-256 digest,
    /// as Postfix digests it with its default algorithm.
    pub fn postfix_log_line(&self, namaddr: &str) -> String {
        let (record, depth, what) = match self {
            DaneMatch::EndEntity { record } => (record, 0, "end entity"),
            DaneMatch::TrustAnchor {
                record,
                depth,
                sent,
                ..
            } => (record, depth.unwrap_or(*sent), "trust anchor"),
        };
        let (alg, digest) = match record.matching_type {
            2 => ("sha512", crate::tls::verify::format_digest(&record.data)),
            1 => ("sha256", crate::tls::verify::format_digest(&record.data)),
            _ => (
                "sha256",
                crate::tls::verify::format_digest(
                    digest::digest(&digest::SHA256, &record.data).as_ref(),
                ),
            ),
        };
        if record.selector == 1 {
            format!("{namaddr}: depth={depth} matched {what} public-key {alg} digest={digest}")
        } else {
            format!("{namaddr}: depth={depth} matched {what} certificate {alg} digest {digest}")
        }
    }
}

/// Why DANE authentication failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneError {
    /// No usable TLSA record: the caller falls back to `encrypt`.
    NoUsableRecords,
    /// The server sent no certificate.
    NoCertificate,
    /// Usable records exist but none matches the chain.
    NoMatch,
    /// A DANE-TA anchor matched, but the chain to it does not verify
    /// (expired, bad signature, wrong usage); the webpki reason.
    Chain(String),
    /// A DANE-TA anchor matched and the chain verified, but the leaf's
    /// names match none of the reference names.
    Name,
}

impl std::fmt::Display for DaneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaneError::NoUsableRecords => f.write_str("no usable TLSA records"),
            DaneError::NoCertificate => f.write_str("server sent no certificate"),
            DaneError::NoMatch => {
                f.write_str("no TLSA record matched the server certificate chain")
            }
            DaneError::Chain(e) => {
                write!(f, "certificate chain to the DANE trust anchor failed: {e}")
            }
            DaneError::Name => f.write_str(
                "server certificate name does not match the TLSA base domain or next-hop domain",
            ),
        }
    }
}

/// Authenticates a chain (leaf first) against TLSA records. `names` are the
/// reference identifiers for DANE-TA (TLSA base domain first, then the
/// next-hop domain); `now` bounds validity for DANE-TA only.
pub fn authenticate(
    records: &[Tlsa],
    chain: &[CertificateDer<'_>],
    names: &[&str],
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<DaneMatch, DaneError> {
    let usable: Vec<&Tlsa> = records.iter().filter(|r| r.usable()).collect();
    if usable.is_empty() {
        return Err(DaneError::NoUsableRecords);
    }
    let leaf = chain.first().ok_or(DaneError::NoCertificate)?;
    if let Some(r) = usable.iter().find(|r| r.usage == 3 && r.matches_cert(leaf)) {
        return Ok(DaneMatch::EndEntity {
            record: (*r).clone(),
        });
    }
    let mut first_failure = DaneError::NoMatch;
    for r in usable.iter().filter(|r| r.usage == 2) {
        // Anchors from the chain the server sent (RFC 7671 §5.2.2: servers
        // should include the TA), excluding the leaf itself.
        let mut anchors: Vec<(TrustAnchor<'static>, Option<usize>)> = Vec::new();
        for (i, c) in chain.iter().enumerate().skip(1) {
            if r.matches_cert(c) {
                if let Ok(ta) = anchor_from_cert(c) {
                    anchors.push((ta, Some(i)));
                }
            }
        }
        // `2 1 0` with a key not in the chain: the anchor is that key, named
        // by the issuer of the topmost certificate sent.
        if anchors.is_empty() && r.selector == 1 && r.matching_type == 0 {
            if let (Some(top), Ok(spki)) = (chain.last(), der::contents(&r.data)) {
                if let Ok(f) = der::cert_fields(top) {
                    if let Ok(issuer) = der::contents(f.issuer) {
                        anchors.push((
                            TrustAnchor {
                                subject: issuer.to_vec().into(),
                                subject_public_key_info: spki.to_vec().into(),
                                name_constraints: None,
                            },
                            None,
                        ));
                    }
                }
            }
        }
        // `2 0 0`: the full anchor certificate is the record itself.
        if anchors.is_empty() && r.selector == 0 && r.matching_type == 0 {
            if let Ok(ta) = anchor_from_cert(&CertificateDer::from(r.data.as_slice())) {
                anchors.push((ta, None));
            }
        }
        for (anchor, depth) in anchors {
            let intermediates: &[CertificateDer<'_>] = match depth {
                Some(d) => chain.get(1..d).unwrap_or(&[]),
                None => chain.get(1..).unwrap_or(&[]),
            };
            match verify_to_anchor(anchor, leaf, intermediates, names, now, provider) {
                Ok(name) => {
                    return Ok(DaneMatch::TrustAnchor {
                        record: (*r).clone(),
                        depth,
                        sent: chain.len(),
                        name,
                    })
                }
                Err(e) => {
                    if first_failure == DaneError::NoMatch {
                        first_failure = e;
                    }
                }
            }
        }
    }
    Err(first_failure)
}

fn anchor_from_cert(cert: &CertificateDer<'_>) -> Result<TrustAnchor<'static>, DaneError> {
    let f = der::cert_fields(cert).map_err(|_| DaneError::Chain("malformed certificate".into()))?;
    let subject =
        der::contents(f.subject).map_err(|_| DaneError::Chain("malformed subject".into()))?;
    let spki = der::contents(f.spki).map_err(|_| DaneError::Chain("malformed key".into()))?;
    Ok(TrustAnchor {
        subject: subject.to_vec().into(),
        subject_public_key_info: spki.to_vec().into(),
        name_constraints: None,
    })
}

fn verify_to_anchor(
    anchor: TrustAnchor<'static>,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    names: &[&str],
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<String, DaneError> {
    let mut roots = RootCertStore::empty();
    roots.roots.push(anchor);
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| DaneError::Chain(e.to_string()))?;
    let mut name_failure = false;
    for name in names {
        let Ok(server_name) = ServerName::try_from(name.trim_end_matches('.').to_string()) else {
            continue;
        };
        match verifier.verify_server_cert(leaf, intermediates, &server_name, &[], now) {
            Ok(_) => return Ok(name.trim_end_matches('.').to_string()),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => name_failure = true,
            Err(e) => return Err(DaneError::Chain(super::words::describe(&e))),
        }
    }
    if name_failure || names.is_empty() {
        Err(DaneError::Name)
    } else {
        Err(DaneError::Chain("no valid reference name".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(usage: u8, selector: u8, matching_type: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching_type,
            data,
        }
    }

    #[test]
    fn usability_rules() {
        assert!(rec(3, 1, 1, vec![0; 32]).usable());
        assert!(rec(2, 0, 2, vec![0; 64]).usable());
        assert!(
            !rec(0, 0, 1, vec![0; 32]).usable(),
            "PKIX-TA is unusable for SMTP"
        );
        assert!(
            !rec(1, 1, 1, vec![0; 32]).usable(),
            "PKIX-EE is unusable for SMTP"
        );
        assert!(!rec(3, 2, 1, vec![0; 32]).usable());
        assert!(!rec(3, 1, 3, vec![0; 32]).usable());
        assert!(!rec(3, 1, 1, vec![0; 31]).usable());
        assert!(!rec(3, 1, 0, vec![]).usable());
    }

    #[test]
    fn presentation_format() {
        assert_eq!(rec(3, 1, 1, vec![0xab, 0x01]).to_string(), "3 1 1 AB01");
    }

    // Fixtures made once with the openssl CLI (ECDSA P-256, valid
    // 2026-12-01 to 2126-11-07): a CA, leaves it issued for
    // `mx.example.test`, for `example.test` only (the next-hop domain) and
    // for `wrong.example.net`, and the SPKI DER of some of them (written by
    // `openssl pkey`, so independent of `der::cert_fields`).
    const CA: &[u8] = include_bytes!("testdata/ca.der");
    const CA_SPKI: &[u8] = include_bytes!("testdata/ca.spki.der");
    const MX: &[u8] = include_bytes!("testdata/mx.der");
    const MX_SPKI: &[u8] = include_bytes!("testdata/mx.spki.der");
    const NEXTHOP: &[u8] = include_bytes!("testdata/nexthop.der");
    const WRONG: &[u8] = include_bytes!("testdata/wrong.der");
    const WRONG_SPKI: &[u8] = include_bytes!("testdata/wrong.spki.der");
    const NAMES: &[&str] = &["mx.example.test", "example.test"];

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// 2027-06-01: every fixture is valid.
    fn valid_time() -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_811_808_000))
    }

    /// 2200-01-01: every fixture has expired.
    fn expired_time() -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(7_258_118_400))
    }

    fn sha256(d: &[u8]) -> Vec<u8> {
        digest::digest(&digest::SHA256, d).as_ref().to_vec()
    }

    fn sha512(d: &[u8]) -> Vec<u8> {
        digest::digest(&digest::SHA512, d).as_ref().to_vec()
    }

    fn chain(certs: &[&'static [u8]]) -> Vec<CertificateDer<'static>> {
        certs.iter().map(|c| CertificateDer::from(*c)).collect()
    }

    fn auth(
        r: Tlsa,
        certs: &[&'static [u8]],
        names: &[&str],
        now: UnixTime,
    ) -> Result<DaneMatch, DaneError> {
        authenticate(&[r], &chain(certs), names, now, &provider())
    }

    #[test]
    fn dane_ee_every_selector_and_matching_type() {
        for r in [
            rec(3, 0, 0, MX.to_vec()),
            rec(3, 0, 1, sha256(MX)),
            rec(3, 0, 2, sha512(MX)),
            rec(3, 1, 0, MX_SPKI.to_vec()),
            rec(3, 1, 1, sha256(MX_SPKI)),
            rec(3, 1, 2, sha512(MX_SPKI)),
        ] {
            assert_eq!(
                auth(r.clone(), &[MX, CA], NAMES, valid_time()),
                Ok(DaneMatch::EndEntity { record: r.clone() }),
                "{r}"
            );
            // One bit off: no match.
            let mut data = r.data.clone();
            data[0] ^= 1;
            assert_eq!(
                auth(
                    rec(3, r.selector, r.matching_type, data),
                    &[MX, CA],
                    NAMES,
                    valid_time()
                ),
                Err(DaneError::NoMatch),
                "{r}"
            );
        }
    }

    #[test]
    fn dane_ee_ignores_names_and_expiry() {
        // RFC 7672 §3.1.1: the leaf is for another name and, at this time,
        // long expired; the key is what the TLSA record pins.
        for r in [
            rec(3, 1, 1, sha256(WRONG_SPKI)),
            rec(3, 0, 2, sha512(WRONG)),
        ] {
            assert_eq!(
                auth(r.clone(), &[WRONG], NAMES, expired_time()),
                Ok(DaneMatch::EndEntity { record: r })
            );
        }
    }

    #[test]
    fn dane_ta_every_selector_and_matching_type() {
        for r in [
            rec(2, 0, 0, CA.to_vec()),
            rec(2, 0, 1, sha256(CA)),
            rec(2, 0, 2, sha512(CA)),
            rec(2, 1, 0, CA_SPKI.to_vec()),
            rec(2, 1, 1, sha256(CA_SPKI)),
            rec(2, 1, 2, sha512(CA_SPKI)),
        ] {
            assert_eq!(
                auth(r.clone(), &[MX, CA], NAMES, valid_time()),
                Ok(DaneMatch::TrustAnchor {
                    record: r.clone(),
                    depth: Some(1),
                    sent: 2,
                    name: "mx.example.test".into()
                }),
                "{r}"
            );
        }
    }

    #[test]
    fn match_lines_are_postfix_format() {
        let ee = DaneMatch::EndEntity {
            record: rec(3, 1, 1, vec![0xE4, 0x98, 0x0A]),
        };
        assert_eq!(
            ee.postfix_log_line("mx.example[192.0.2.1]:25"),
            "mx.example[192.0.2.1]:25: depth=0 matched end entity public-key sha256 digest=E4:98:0A"
        );
        let ta = DaneMatch::TrustAnchor {
            record: rec(2, 0, 2, vec![0x01, 0xFF]),
            depth: Some(1),
            sent: 2,
            name: "mx.example".into(),
        };
        assert_eq!(
            ta.postfix_log_line("mx.example[192.0.2.1]:25"),
            "mx.example[192.0.2.1]:25: depth=1 matched trust anchor certificate sha512 digest 01:FF"
        );
        // Full data is shown as its SHA-256 digest; an anchor outside the
        // chain sits just above the certificates sent.
        let outside = DaneMatch::TrustAnchor {
            record: rec(2, 1, 0, CA_SPKI.to_vec()),
            depth: None,
            sent: 1,
            name: "mx.example".into(),
        };
        assert_eq!(
            outside.postfix_log_line("h[a]:25"),
            format!(
                "h[a]:25: depth=1 matched trust anchor public-key sha256 digest={}",
                crate::tls::verify::format_digest(&sha256(CA_SPKI))
            )
        );
    }

    #[test]
    fn dane_ta_anchor_known_only_from_the_record() {
        // The server sends only its leaf. `2 1 0` and `2 0 0` carry the
        // whole anchor, so the chain can still be verified up to it.
        for r in [rec(2, 1, 0, CA_SPKI.to_vec()), rec(2, 0, 0, CA.to_vec())] {
            assert_eq!(
                auth(r.clone(), &[MX], NAMES, valid_time()),
                Ok(DaneMatch::TrustAnchor {
                    record: r.clone(),
                    depth: None,
                    sent: 1,
                    name: "mx.example.test".into()
                }),
                "{r}"
            );
        }
        // A digest names a key it cannot supply: no anchor, no match.
        assert_eq!(
            auth(rec(2, 1, 1, sha256(CA_SPKI)), &[MX], NAMES, valid_time()),
            Err(DaneError::NoMatch)
        );
        // The key of another certificate (the leaf's own) did not sign it.
        assert!(matches!(
            auth(
                rec(2, 1, 0, WRONG_SPKI.to_vec()),
                &[MX],
                NAMES,
                valid_time()
            ),
            Err(DaneError::Chain(_))
        ));
    }

    #[test]
    fn dane_ta_accepts_the_next_hop_domain_as_name() {
        // RFC 7672 §3.2.2: the leaf names only the next-hop domain.
        let r = rec(2, 0, 1, sha256(CA));
        assert_eq!(
            auth(r.clone(), &[NEXTHOP, CA], NAMES, valid_time()),
            Ok(DaneMatch::TrustAnchor {
                record: r.clone(),
                depth: Some(1),
                sent: 2,
                name: "example.test".into()
            })
        );
        // Without the next-hop domain among the reference names it fails,
        // as does a leaf for a name that is neither.
        assert_eq!(
            auth(
                r.clone(),
                &[NEXTHOP, CA],
                &["mx.example.test"],
                valid_time()
            ),
            Err(DaneError::Name)
        );
        assert_eq!(
            auth(r, &[WRONG, CA], NAMES, valid_time()),
            Err(DaneError::Name)
        );
    }

    #[test]
    fn dane_ta_checks_expiry() {
        // Unlike DANE-EE, the chain to a DANE-TA anchor is verified as a
        // PKIX chain, validity included.
        match auth(rec(2, 0, 1, sha256(CA)), &[MX, CA], NAMES, expired_time()) {
            Err(DaneError::Chain(e)) => assert!(e.contains("xpired"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_usable_and_no_certificate() {
        let p = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let now = UnixTime::now();
        assert_eq!(
            authenticate(&[rec(1, 1, 1, vec![0; 32])], &[], &["mx.example"], now, &p),
            Err(DaneError::NoUsableRecords)
        );
        assert_eq!(
            authenticate(&[rec(3, 1, 1, vec![0; 32])], &[], &["mx.example"], now, &p),
            Err(DaneError::NoCertificate)
        );
        let junk = CertificateDer::from(vec![0x30, 0x00]);
        assert_eq!(
            authenticate(
                &[rec(3, 1, 1, vec![0; 32])],
                &[junk],
                &["mx.example"],
                now,
                &p
            ),
            Err(DaneError::NoMatch)
        );
    }
}
