#![no_main]
// Envelope and state-log parsers of the spool: any bytes, no panic, and a
// parsed envelope re-encodes to the same block.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok((env, len)) = tern::queue::envelope::parse(data) {
        assert!(len <= data.len());
        if let Ok((bytes, _)) = tern::queue::envelope::encode(&env) {
            assert_eq!(tern::queue::envelope::parse(&bytes).map(|(e, _)| e), Ok(env));
        }
    }
    let _ = tern::queue::state::fold(data, 3);
});
