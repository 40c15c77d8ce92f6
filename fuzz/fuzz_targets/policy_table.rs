#![no_main]
// Parses arbitrary bytes as a TLS policy table, strictly and as delivery
// loads it (malformed lines skipped, readable keys kept as broken
// entries); every loaded entry must be found again by its own key, and its
// accessors must not panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use tern::policy::table::PolicyTable;
    let strict = PolicyTable::parse(data, "fuzz").ok().map(|(t, _)| t);
    let (lenient, _) = PolicyTable::load(data, "fuzz");
    if let Some(t) = &strict {
        // What loads strictly loads the same way leniently, with no broken entry.
        assert_eq!(t.len(), lenient.usable_len());
        assert_eq!(lenient.len(), lenient.usable_len());
    }
    for table in strict.iter().chain(std::iter::once(&lenient)) {
        for e in table.iter() {
            let again = table.get(e.key()).map(|x| (x.line(), x.is_broken()));
            assert_eq!(again, Some((e.line(), e.is_broken())));
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
