#![no_main]
// The DER walker behind DANE selectors and public-key fingerprints, and the
// TLSA matcher on top of it; the Name attribute reader behind the client
// certificate's CN and issuer; the subjectAltName, validity and CN readers
// and the name matcher behind server certificate name checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(f) = tern::tls::der::cert_fields(data) {
        // Client certificate names (smtpd_tls_ask_ccert).
        let _ = tern::tls::der::name_attribute(f.subject, tern::tls::der::OID_COMMON_NAME);
        let _ = tern::tls::der::name_attribute(f.issuer, tern::tls::der::OID_ORGANIZATION);
        // Server certificate names and a trust anchor's validity.
        let _ = tern::tls::der::name_attributes(f.subject, tern::tls::der::OID_COMMON_NAME);
        let _ = tern::tls::der::validity(f.validity);
    }
    let _ = tern::tls::der::subject_alt_dns_names(data);
    let _ = tern::tls::der::validity(data);
    for name in [&b"*.example.com"[..], data] {
        let _ = tern::tls::verify::cert_name_matches(
            name,
            &tern::tls::MatchName::parse("mx.example.com"),
        );
    }
    // A bare Name too, as the attribute walker sees it.
    let _ = tern::tls::der::name_attribute(data, tern::tls::der::OID_COMMON_NAME);
    let _ = tern::tls::PeerCertNames::from_cert(data);
    let rec = tern::tls::dane::Tlsa { usage: 3, selector: 1, matching_type: 1, data: vec![0; 32] };
    let _ = rec.matches_cert(data);
});
