#![no_main]
// Arbitrary bytes as one command line: the parser must never panic, and
// every error must map to a well-formed reply.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    match tern::smtp::command::parse(data) {
        Ok(cmd) => {
            let _ = cmd.verb();
            if let tern::smtp::command::Command::Mail { from, .. } = cmd {
                let _ = (from.local_part(), from.domain());
            }
        }
        Err(e) => {
            let r = e.reply();
            assert!(r.as_bytes().ends_with(b"\r\n"));
            assert!(r.code() >= 400);
        }
    }
});
