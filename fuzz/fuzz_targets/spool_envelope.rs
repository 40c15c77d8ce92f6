#![no_main]
// Envelope and state-log parsers of the spool: any bytes, no panic, and a
// parsed envelope re-encodes to the same block. The streaming encoder the
// spool uses (`check_head` + `write_head` into a sink) accepts exactly what
// `encode` accepts and gives the same bytes and `size` offset.
use tern::queue::envelope::{self, EnvelopeHead};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok((env, len)) = envelope::parse(data) {
        assert!(len <= data.len());
        if let Ok((bytes, size_at)) = envelope::encode(&env) {
            assert_eq!(envelope::parse(&bytes).map(|(e, _)| e), Ok(env.clone()));
            let head = EnvelopeHead::of(&env);
            assert_eq!(envelope::check_head(&head), Ok(()));
            let mut streamed = Vec::new();
            let r = envelope::write_head(&head, &mut |b: &[u8]| {
                streamed.extend_from_slice(b);
                Ok::<(), ()>(())
            });
            assert_eq!(r, Ok(size_at));
            assert_eq!(streamed, bytes);
        } else {
            assert!(envelope::check_head(&EnvelopeHead::of(&env)).is_err());
        }
    }
    let _ = tern::queue::state::fold(data, 3);
});
