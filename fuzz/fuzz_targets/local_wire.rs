#![no_main]
// The local delivery helper's request and reply codec on arbitrary bytes:
// no panic, and whatever decodes encodes back to the same bytes.
use tern::local::wire::{Reply, Request};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Request::decode(data) {
        assert_eq!(r.encode().as_deref(), Ok(data));
    }
    if let Ok(r) = Reply::decode(data) {
        assert_eq!(r.encode(), data);
    }
});
