#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tern::probe::format_name(data);
    let _ = tern::probe::common_name(data);
    let _ = tern::probe::parse_args(
        &String::from_utf8_lossy(data)
            .split(' ')
            .map(str::to_string)
            .collect::<Vec<_>>(),
    );
});
