#![no_main]
// main.cf syntax and $name expansion: every input gives a Config or a list
// of errors, never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tern::config::Config::parse_str(text, "fuzz");
    }
});
