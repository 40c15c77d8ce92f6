#![no_main]
// The Maildir line-end converter and the Delivered-To scanner on arbitrary
// bytes: no panic, output never longer than input, every LF kept, and the
// result does not depend on where the input is split.
use tern::local::deliver::delivered_to;
use tern::local::maildir::CrlfToLf;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = delivered_to(data);
    let whole = {
        let mut c = CrlfToLf::default();
        let mut out = vec![0u8; data.len() + 1];
        let n = c.feed(data, &mut out);
        let mut t = [0u8; 1];
        let m = c.finish(&mut t);
        out.truncate(n);
        out.extend_from_slice(&t[..m]);
        out
    };
    assert!(whole.len() <= data.len());
    let lf = |v: &[u8]| v.iter().filter(|&&x| x == b'\n').count();
    assert_eq!(lf(&whole), lf(data));
    let mid = data.len() / 2;
    let mut c = CrlfToLf::default();
    let mut a = vec![0u8; mid + 1];
    let n = c.feed(&data[..mid], &mut a);
    a.truncate(n);
    let mut b = vec![0u8; data.len() - mid + 1];
    let m = c.feed(&data[mid..], &mut b);
    a.extend_from_slice(&b[..m]);
    let mut t = [0u8; 1];
    let k = c.finish(&mut t);
    a.extend_from_slice(&t[..k]);
    assert_eq!(a, whole);
});
