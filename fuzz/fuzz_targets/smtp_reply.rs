#![no_main]
// Arbitrary bytes split at LF into reply lines for the client-side parser:
// no panics, bounded output, consistent codes.
use tern::smtp::reply::{ReplyParser, REPLY_MAX_TEXT};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut p = ReplyParser::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(Some(r)) = p.feed_line(line) {
            assert!((200..600).contains(&r.code));
            assert!(r.one_line().len() <= REPLY_MAX_TEXT + 4 + r.line_count());
            if let Some(e) = r.enhanced {
                assert_eq!(u16::from(e.class), r.code / 100);
            }
        }
    }
});
