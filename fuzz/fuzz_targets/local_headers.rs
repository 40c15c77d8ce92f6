#![no_main]
// Streams arbitrary message bytes through the SMTP header fixer, cut
// into chunks of a fuzzed size: no panic, and the output is the same
// however the input is cut (a line split across reads is one line).
use tern::cleanup::fixer::{Added, HeaderFixer};
use tern::local::rewrite::Rewriter;

fn run(data: &[u8], cut: usize, rw: &Rewriter) -> Vec<u8> {
    let mut f = HeaderFixer::new(Added {
        from: "From: a@box.test\r\n".into(),
        date: "Date: Tue, 1 Dec 2026 22:00:00 +0000\r\n".into(),
        message_id: "Message-Id: <x@box.test>\r\n".into(),
    });
    let mut out = Vec::new();
    let mut w = |b: &[u8]| -> Result<(), ()> {
        out.extend_from_slice(b);
        Ok(())
    };
    let mut edit = |name: &str, value: &str| {
        let side = Rewriter::header_side(name)?;
        rw.header_value(value, side)
    };
    for c in data.chunks(cut.max(1)) {
        let _ = f.feed(c, &mut edit, &mut w);
    }
    let _ = f.finish(&mut edit, &mut w);
    out
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    let rw = Rewriter {
        myorigin: "box.test".into(),
        local_domains: vec!["box.test".into()],
        append_at_myorigin: true,
        ..Rewriter::default()
    };
    let a = run(data, usize::from(cut), &rw);
    let b = run(data, data.len(), &rw);
    assert_eq!(a, b, "output depends on how the input is cut");
});
