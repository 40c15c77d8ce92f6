#![no_main]
// Parses arbitrary text as a policy plug-in's answer (level, attributes,
// `{ name = value }` groups, Postfix 3.10's MTA-STS attributes): never a
// panic; a parsed answer's accessors hold their invariants.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(o) = tern::policy::OwnedPolicyEntry::parse("fuzz.example", "socketmap:fuzz", text) {
        let e = o.entry();
        let _ = (e.level(), e.protocols(), e.servername(), e.connection_reuse());
        for m in e.match_list() {
            assert!(!m.is_empty());
        }
        if let Some(s) = e.sts() {
            let _ = (s.policy_type(), s.domain(), s.ttl(), s.failure());
            for p in s.policy_strings().chain(s.mx_host_patterns()) {
                assert!(!p.is_empty() && !p.contains('\n'));
            }
        }
    }
});
