#![no_main]
// The maildrop envelope parser (files written by any local user): any
// bytes, no panic, and a parsed envelope re-encodes to a block that parses
// to the same envelope.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok((env, len)) = tern::queue::maildrop::parse(data) {
        assert!(len <= data.len() && len <= tern::queue::maildrop::MAX_ENVELOPE);
        let mut out = Vec::new();
        if tern::queue::maildrop::encode(&env, &mut out).is_ok() {
            assert_eq!(tern::queue::maildrop::parse(&out), Ok((env, out.len())));
        }
    }
});
