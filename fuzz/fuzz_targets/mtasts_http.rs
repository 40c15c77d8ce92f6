#![no_main]
// Arbitrary bytes as the response to an MTA-STS policy fetch, fed as the
// driver feeds them (growing prefixes, then end of stream): never a panic;
// a complete response's decoded body is at most 64 KiB and lies inside the
// buffer; the answer for the whole input does not depend on how it was cut
// up; and the cache file decoder takes the same bytes without panicking.
use tern::mtasts::http::{body_end, decode_body, parse_head, parse_response, MAX_BODY};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (cut, data) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => return,
    };
    // Incremental, as fetch.rs drives it: the first complete answer wins.
    let mut incremental = None;
    let mut end = 0;
    while end < data.len() && incremental.is_none() {
        end = (end + cut).min(data.len());
        let mut buf = data[..end].to_vec();
        match parse_response(&mut buf, false) {
            Ok(Some((head, n))) => {
                assert!(n <= MAX_BODY && head.len + n <= buf.len());
                incremental = Some(Ok(buf[head.len..head.len + n].to_vec()));
            }
            Ok(None) => {}
            Err(e) => incremental = Some(Err(e)),
        }
    }
    // The whole input at once, with and without end of stream.
    let mut buf = data.to_vec();
    let whole = parse_response(&mut buf, false)
        .map(|r| r.map(|(h, n)| buf[h.len..h.len + n].to_vec()));
    if let Some(Ok(body)) = &incremental {
        // A body complete in a prefix stays the same body.
        if let Ok(Some(w)) = &whole {
            assert_eq!(w, body);
        }
    }
    let mut buf = data.to_vec();
    let _ = parse_response(&mut buf, true);
    // The steps on their own, as the driver calls them.
    if let Ok(Some(head)) = parse_head(data) {
        let mut body = data[head.len..].to_vec();
        if let Ok(Some(n)) = body_end(&head, &body, true) {
            let _ = decode_body(&head, &mut body[..n]);
        }
    }
    let _ = tern::mtasts::cache::decode(data);
});
