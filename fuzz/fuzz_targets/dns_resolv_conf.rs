#![no_main]
// Arbitrary text as resolv.conf and as a dns_resolvers list: never panics,
// and the server count stays bounded.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let c = tern::dns::ResolverConfig::from_resolv_conf(text);
        assert!(!c.servers.is_empty() && c.servers.len() <= tern::dns::conf::MAX_SERVERS);
        let _ = tern::dns::ResolverConfig::from_list(text);
    }
});
