#![no_main]
// Arbitrary bytes as a DNS reply to queries of every supported type:
// parse_reply and Reply::answer must never panic or loop.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tern::dns::wire::fuzz_reply(data);
});
