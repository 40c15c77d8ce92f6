#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tern::tls::keyinfo::key_desc_from_spki(data);
});
