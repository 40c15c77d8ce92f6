#![no_main]
// main.cf syntax and $name expansion: every input gives a Config or a list
// of errors, never a panic. A valid config's listener expansion
// (inet_interfaces x inet_protocols) and the listener/protocol value
// parsers on their own get the same input.
use tern::config::net;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = tern::config::Config::parse_str(text, "fuzz") {
            let _ = cfg.protocols();
            for key in ["smtp_listen", "submission_listen", "submissions_listen"] {
                let _ = cfg.listen(key);
            }
        }
        let _ = net::Protocols::parse(text);
        let _ = net::check_interface(text);
        let interfaces: Vec<&str> = tern::config::split_list(text).collect();
        for entry in tern::config::split_list(text) {
            let _ = net::parse_listen(entry, &interfaces);
        }
    }
});
