#![no_main]
// Parses arbitrary text as an `exclude=` list and a `ciphers=` grade; a
// list that parses must still parse with its tokens re-joined by colons,
// to the same set.
use tern::policy::ciphers::{check_grade, is_grade, ExcludedSuites};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = (check_grade(s), is_grade(s));
        if let Ok(set) = ExcludedSuites::parse(s) {
            let joined: Vec<&str> = s
                .split(|c: char| c == ':' || c == ',' || c.is_ascii_whitespace())
                .filter(|t| !t.is_empty())
                .collect();
            assert_eq!(ExcludedSuites::parse(&joined.join(":")), Ok(set));
            assert_eq!(set.union(set), set);
        }
    }
});
