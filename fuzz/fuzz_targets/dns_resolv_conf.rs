#![no_main]
// Arbitrary text as resolv.conf, as a dns_resolvers list and as
// dns_trusted_resolvers: never panics,
// and the server count stays bounded.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let c = tern::dns::ResolverConfig::from_resolv_conf(text);
        assert!(!c.servers.is_empty() && c.servers.len() <= tern::dns::conf::MAX_SERVERS);
        let _ = tern::dns::ResolverConfig::from_list(text);
        if let Ok(v) = tern::policy::dane::parse_trusted_resolvers(text) {
            assert!(v.len() <= tern::dns::conf::MAX_SERVERS);
        }
    }
});
