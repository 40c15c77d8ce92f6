#![no_main]
// Rewrites arbitrary header values and addresses: no panic, and with an
// identity function the address-list rewriter returns its input unchanged.
use tern::local::rewrite::{rewrite_address_list, Rewriter, Side};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(rewrite_address_list(s, |a| a.to_string()), s);
    let rw = Rewriter {
        myorigin: "box.test".into(),
        local_domains: vec!["box.test".into()],
        append_at_myorigin: true,
        masquerade_domains: vec!["!keep.box.test".into(), "box.test".into()],
        ..Rewriter::default()
    };
    let _ = rw.header_value(s, Side::Sender);
    let _ = rw.header_value(s, Side::Recipient);
    let _ = rw.rewrite(s, Side::Sender);
});
