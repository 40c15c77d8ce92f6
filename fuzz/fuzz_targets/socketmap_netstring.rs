#![no_main]
// Feeds arbitrary bytes, in two pieces, to the socketmap reply reader: it
// must agree with a one-shot decode, never hold more than its fixed
// buffer, and a complete reply must classify (or be refused) without
// panicking. A decoded payload re-encodes to a netstring that decodes
// to it again.
use tern::config::socketmap::{decode, encode, parse_reply, NetstringReader, MAX_REPLY};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut r = NetstringReader::new(MAX_REPLY);
    let mut fed = 0;
    for piece in [&data[..split], &data[split..]] {
        if r.poll().map_or(true, |n| n.is_some()) {
            break;
        }
        let spare = r.spare();
        let n = piece.len().min(spare.len());
        spare[..n].copy_from_slice(&piece[..n]);
        r.filled(n);
        fed += n;
    }
    assert!(r.received() <= MAX_REPLY + 8);
    let once = decode(&data[..fed], MAX_REPLY);
    match (r.poll(), once) {
        (Ok(Some(a)), Ok(Some(b))) => {
            assert_eq!(a, b);
            let _ = parse_reply(a.payload);
            let mut out = vec![0u8; a.payload.len() + 16];
            let n = encode(a.payload, &mut out).expect("fits");
            let again = decode(&out[..n], MAX_REPLY).expect("valid").expect("complete");
            assert_eq!((again.payload, again.consumed), (a.payload, n));
        }
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        (a, b) => panic!("reader {a:?} != decode {b:?}"),
    }
});
