#![no_main]
// Parses arbitrary bytes as a transport map (and as a SASL password map),
// strictly and leniently; every entry's next hops were validated at load,
// so they must all parse.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok((map, _)) = tern::policy::transport::TransportMap::parse(data, "fuzz") {
        if let Ok(text) = std::str::from_utf8(data) {
            for word in text.split_whitespace().take(64) {
                if let Some(e) = map.lookup_address(word, Some('+')) {
                    let _ = (
                        e.kind(),
                        e.transport(),
                        e.error_text(),
                        e.nexthops().count(),
                    );
                }
            }
        }
    }
    // The lenient load (what delivery uses): every good entry's next hops
    // parse, and a broken entry has no next hop to offer.
    let (map, _) = tern::policy::transport::TransportMap::load(data, "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        for word in text.split_whitespace().take(64) {
            if let Some(e) = map.lookup_address(word, Some('+')) {
                let hops = e.nexthops().count();
                assert!(!e.is_broken() || hops == 0);
            }
        }
    }
    let _ = tern::policy::sasl::SaslPasswordMap::parse(data, "fuzz");
    let (sasl, _) = tern::policy::sasl::SaslPasswordMap::load(data, "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        for word in text.split_whitespace().take(64) {
            if let Some(c) = sasl.get(word) {
                assert!(!c.broken || (c.username.is_empty() && c.password.is_empty()));
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = tern::policy::nexthop::NextHop::parse(s);
        let _ = tern::policy::protocols::TlsVersions::parse(s);
    }
});
