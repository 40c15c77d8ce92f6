#![no_main]
//! Any target, message and clock: every syslog line is one line of at most
//! MAX_LINE bytes with no control characters, and the time forms keep their
//! fixed widths.

use tern::syslog::format::{
    program_for_target, write_maillog, write_rfc3164, write_rfc5424, Facility, Header, LineBuf,
    Severity,
};
use tern::syslog::time::DateTime;
use tern::syslog::MAX_LINE;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 13 {
        return;
    }
    let (head, rest) = data.split_at(13);
    let secs = i64::from_le_bytes(head[0..8].try_into().unwrap());
    let offset = i32::from_le_bytes(head[8..12].try_into().unwrap());
    let sel = head[12];
    let t = DateTime::from_unix(secs, u32::from(sel) * 3907, offset);
    assert_eq!(t.rfc3164().to_string().len(), 15);
    let r3339 = t.rfc3339().to_string();
    assert!(r3339.len() == 27 || r3339.len() == 32, "{r3339}");
    assert!(t.rfc5322().to_string().len() <= 31);

    let text = String::from_utf8_lossy(rest);
    let (target, msg) = text.split_at(text.char_indices().nth(20).map_or(text.len(), |(i, _)| i));
    let h = Header {
        ident: "tern",
        program: program_for_target(target, "master"),
        pid: u32::from(sel) * 7919,
        facility: Facility::Local7,
        severity: Severity::Debug,
        time: t,
        hostname: target,
    };
    let mut line = LineBuf::new();
    match sel % 3 {
        0 => write_rfc3164(&mut line, &h, msg),
        1 => write_rfc5424(&mut line, &h, msg),
        _ => {
            write_maillog(&mut line, &h, msg);
            assert!(line.as_str().ends_with('\n'));
        }
    }
    let s = line.as_str();
    assert_eq!(s.len(), line.as_bytes().len(), "valid UTF-8");
    assert!(s.len() <= MAX_LINE);
    assert!(!s.trim_end_matches('\n').chars().any(char::is_control));
});
