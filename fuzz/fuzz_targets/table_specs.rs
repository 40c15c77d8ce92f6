#![no_main]
// Parses arbitrary text as a table list (`static:{...}`, `inline:{...}`,
// `socketmap:...` among file tables): never a panic, and an accepted
// `inline:` table always yields table text its parser reads without error.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(specs) = tern::config::table::parse_map_list(text) else {
        return;
    };
    for spec in specs {
        let _ = (spec.label(), spec.static_value(), spec.socketmap());
        if spec.map_type == tern::config::table::MapType::Inline {
            let t = tern::config::table::read_source(&spec).expect("inline text");
            let (_, report) = tern::config::table::CompactTable::parse(&t, "fuzz");
            assert!(report.is_ok(), "{:?}", report.errors);
        }
    }
});
