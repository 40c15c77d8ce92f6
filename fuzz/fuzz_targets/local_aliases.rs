#![no_main]
// Parses arbitrary bytes as an aliases(5) file and as a :include: file;
// then expands a few names against the table, with :include: files that
// are the input again. Nothing may panic, every reported error has a
// line inside the input, and expansion stays within its limits.
use tern::local::aliases::{parse_include, AliasTable, Dest};
use tern::local::expand::{Expander, Lookup, MAX_LEAVES};

struct T<'a>(&'a AliasTable, &'a [u8]);

impl Lookup for T<'_> {
    fn alias(&self, local: &str) -> Option<Vec<Dest>> {
        self.0.lookup(local)
    }
    fn is_local_domain(&self, d: &str) -> bool {
        d == "box.test"
    }
    fn include(&self, path: &str) -> Result<Vec<Dest>, String> {
        parse_include(self.1, path)
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (table, report) = AliasTable::parse(data, "fuzz");
    let lines = data.split(|&b| b == b'\n').count() as u32;
    for e in &report.errors {
        assert!(e.line <= lines);
    }
    let _ = parse_include(data, "fuzz");
    let e = Expander {
        myorigin: "box.test",
        allow_commands: true,
        allow_files: true,
    };
    for name in ["root", "a", "postmaster"] {
        if let Ok(leaves) = e.expand(name, &T(&table, data)) {
            assert!(leaves.len() <= MAX_LEAVES);
        }
    }
});
