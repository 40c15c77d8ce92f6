#![no_main]
// The DER walker behind DANE selectors and public-key fingerprints, and the
// TLSA matcher on top of it; the Name attribute reader behind the client
// certificate's CN and issuer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(f) = tern::tls::der::cert_fields(data) {
        // Client certificate names (smtpd_tls_ask_ccert).
        let _ = tern::tls::der::name_attribute(f.subject, tern::tls::der::OID_COMMON_NAME);
        let _ = tern::tls::der::name_attribute(f.issuer, tern::tls::der::OID_ORGANIZATION);
    }
    // A bare Name too, as the attribute walker sees it.
    let _ = tern::tls::der::name_attribute(data, tern::tls::der::OID_COMMON_NAME);
    let _ = tern::tls::PeerCertNames::from_cert(data);
    let rec = tern::tls::dane::Tlsa { usage: 3, selector: 1, matching_type: 1, data: vec![0; 32] };
    let _ = rec.matches_cert(data);
});
