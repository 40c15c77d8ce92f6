#![no_main]
// /proc/self/smaps text for the idle-memory trim: any bytes, no panic,
// every range it would release is non-empty, and none is released for an
// executable name that no header carries.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for r in tern::memtrim::releasable(&text, "/x") {
        assert!(r.start < r.end);
    }
    if !text.contains("/nowhere/at/all") {
        assert!(tern::memtrim::releasable(&text, "/nowhere/at/all").is_empty());
    }
});
