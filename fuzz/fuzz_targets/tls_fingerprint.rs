#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(fp) = tern::policy::fingerprint::parse_fingerprint(s) {
            let again = fp.to_string();
            assert_eq!(tern::policy::fingerprint::parse_fingerprint(&again), Ok(fp));
        }
        let _ = tern::tls::server_config::TlsParams::from_postfix(s, "", false);
    }
});
