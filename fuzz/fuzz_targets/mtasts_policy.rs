#![no_main]
// Arbitrary bytes as an MTA-STS policy body: never a panic; a policy that
// parses parses again from its canonical lines to the same policy, and
// every pattern matches the host it describes.
use tern::mtasts::Policy;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Policy::parse(data) {
        let canonical: String = p.lines().map(|l| l + "\n").collect();
        assert_eq!(Policy::parse(canonical.as_bytes()), Ok(p.clone()));
        for pat in p.mx_patterns() {
            let host = pat.replacen('*', "x", 1);
            assert!(p.matches(&host), "{pat}");
        }
    }
});
