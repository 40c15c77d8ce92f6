#![no_main]
// sendmail's bounded header parser, address-list parser and line-end converter.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use tern::cleanup::{headers, LineEnds};
    if let Ok(fields) = headers::parse(data, 100) {
        for h in &fields {
            assert!(h.raw.end <= data.len() && h.value.end <= data.len());
            let mut out = Vec::new();
            let _ = headers::addresses(&data[h.value.clone()], &mut out, 50);
        }
    }
    let mut c = LineEnds::new(data.first().is_some_and(|b| b & 1 == 1));
    let mut out = [0u8; 64];
    let mut rest = data;
    while !rest.is_empty() {
        let (used, made, end) = c.feed(rest, &mut out);
        assert!(made <= out.len());
        if end {
            break;
        }
        rest = &rest[used..];
    }
});
