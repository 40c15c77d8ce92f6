#![no_main]
// Parses arbitrary text as an smtpd_sasl_password_file: nothing may panic,
// every error names a line of the input, and a file that loads can be
// asked to verify passwords (only when its hashes are cheap enough for a
// fuzzer; the parser itself bounds them at MAX_ITERATIONS).
use tern::smtpd::passwd::{PasswordFile, MAX_ITERATIONS};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PasswordFile::parse(text) {
        Ok(file) => {
            assert!(file.max_iterations() <= MAX_ITERATIONS);
            if file.max_iterations() <= 64 {
                let user = text.split(':').next().unwrap_or("").trim();
                let _ = file.verify(user, data);
                let _ = file.verify("nobody-at-all", b"");
            }
        }
        Err(errors) => {
            let lines = text.lines().count().max(1);
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
                assert!(!e.message.is_empty());
            }
        }
    }
});
