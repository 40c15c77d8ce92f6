#![no_main]
// The DER walker behind DANE selectors and public-key fingerprints, and the
// TLSA matcher on top of it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tern::tls::der::cert_fields(data);
    let rec = tern::tls::dane::Tlsa { usage: 3, selector: 1, matching_type: 1, data: vec![0; 32] };
    let _ = rec.matches_cert(data);
});
