#![no_main]
// Whatever the body, the encoded output has CRLF line ends only and our own
// DATA reader finds exactly one end-of-data: at the very end.
use tern::smtp::data::{BareNewline, DataEnd, DataReader};
use tern::smtp::dotstuff::DotStuffer;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut d = DotStuffer::new();
    let mut out = [0u8; 64];
    let mut wire = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let (c, w) = d.feed(&data[pos..], &mut out);
        assert!(c > 0);
        wire.extend_from_slice(&out[..w]);
        pos += c;
    }
    wire.extend_from_slice(&d.finish());
    for (i, &b) in wire.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && wire[i - 1] == b'\r');
        }
        if b == b'\r' {
            assert_eq!(wire.get(i + 1), Some(&b'\n'));
        }
    }
    let mut r = DataReader::new(0, BareNewline::Reject);
    let mut body = vec![0u8; wire.len() * 2 + 2];
    let f = r.feed(&wire, &mut body);
    assert_eq!(f.consumed, wire.len());
    assert!(matches!(f.end, Some(DataEnd::Complete { .. })));
});
