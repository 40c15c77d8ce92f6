#![no_main]
// The DATA decoder on arbitrary input in arbitrary chunk and output sizes
// (first two bytes choose them). Checks the invariants of the rule: output
// lines end in CRLF only, end-of-data only right after "\r\n.\r\n" (or at
// the very start), and chunking does not change the result.
use tern::smtp::data::{BareNewline, DataReader};

fn run(input: &[u8], chunk: usize, outlen: usize) -> (Vec<u8>, Option<usize>) {
    let mut r = DataReader::new(0, BareNewline::Normalize);
    let mut out = vec![0u8; outlen];
    let mut body = Vec::new();
    let mut pos = 0;
    let mut guard = 0;
    while pos < input.len() {
        guard += 1;
        assert!(guard < 10 * input.len() + 10, "no progress");
        let end = (pos + chunk).min(input.len());
        let f = r.feed(&input[pos..end], &mut out);
        body.extend_from_slice(&out[..f.written]);
        pos += f.consumed;
        if f.end.is_some() {
            return (body, Some(pos));
        }
    }
    (body, None)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let chunk = usize::from(data[0] % 16) + 1;
    let outlen = usize::from(data[1] % 16) + 2;
    let input = &data[2..];
    let (body, end) = run(input, chunk, outlen);
    assert_eq!((body.clone(), end), run(input, input.len().max(1), 4096));
    if let Some(used) = end {
        let seen = &input[..used];
        assert!(seen == b".\r\n" || seen.ends_with(b"\r\n.\r\n"));
    }
    // Every LF in the output is preceded by CR.
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && body[i - 1] == b'\r');
        }
    }
});
