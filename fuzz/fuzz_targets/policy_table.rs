#![no_main]
// Parses arbitrary bytes as a TLS policy table; every loaded entry must be
// found again by its own key, and its accessors must not panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok((table, _)) = tern::policy::table::PolicyTable::parse(data, "fuzz") {
        for e in table.iter() {
            let again = table.get(e.key()).map(|x| x.line());
            assert_eq!(again, Some(e.line()));
            let _ = (
                e.level(),
                e.protocols(),
                e.ciphers(),
                e.servername(),
                e.connection_reuse(),
            );
            for m in e.match_list() {
                assert!(!m.is_empty());
            }
            let _ = table.lookup(e.key());
        }
    }
});
