#![no_main]
// Arbitrary input through the line splitter into a server session, with
// events interleaved (lines starting with a 0x01 byte are events). Checks
// that the session never panics, never executes a line while waiting for
// TLS, that replies are well formed, and that the log lines it builds from
// client bytes (improper pipelining, NOQUEUE, session end) are one line of
// printable text.
use tern::smtp::line::{BareNewline, LineSplitter};
use tern::smtp::server::{Action, EndReason, Event, RcptClass, ServerParams, Session};

/// A log line must stay one line: no control bytes from the client.
fn one_line(l: &str) {
    assert!(!l.bytes().any(|b| b == b'\n' || b == b'\r'), "{l:?}");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut s = Session::new(ServerParams {
        tls_available: true,
        auth_available: true,
        recipient_limit: 5,
        ..ServerParams::default()
    });
    let mut classify = |p: &tern::smtp::command::Path<'_>| match p.domain() {
        Some("localhost") | None => RcptClass::Local,
        Some(d) if d.len() % 2 == 0 => RcptClass::LocalUnknown,
        _ => RcptClass::Remote,
    };
    let mut buf = [0u8; 600];
    let mut split = LineSplitter::new(512, BareNewline::Normalize);
    let _ = s.greeting();
    let mut pos = 0;
    while pos < data.len() && !s.is_closed() {
        let len = buf.len();
        let spare = split.spare(&mut buf);
        let n = spare.len().min(data.len() - pos).min(97);
        spare[..n].copy_from_slice(&data[pos..pos + n]);
        split.filled(len, n);
        pos += n;
        let mut lines = Vec::new();
        while let Some(l) = split.next_line(&buf) {
            lines.push(l.map(|l| l.to_vec()));
        }
        for l in lines {
            let actions = match l {
                Ok(l) if l.first() == Some(&1) => {
                    let e = match l.get(1).copied().unwrap_or(0) % 8 {
                        0 => Event::TlsEstablished,
                        1 => Event::TlsFailed,
                        2 => Event::AuthVerdict(true),
                        3 => Event::AuthVerdict(false),
                        4 => Event::Committed("QID"),
                        5 => Event::CommitFailed,
                        6 => Event::DataTooBig,
                        _ => Event::Timeout,
                    };
                    s.event(e)
                }
                Ok(l) => {
                    let waiting = !s.wants_line();
                    if let Some(line) = s.improper_pipelining(&l, split.buffered(&buf), "c[1]") {
                        one_line(&line);
                        // At most 100 client bytes, each escaped to at most 4.
                        assert!(line.len() <= 60 + 400, "{line:?}");
                    }
                    let a = s.line(&l, &mut classify);
                    if let Some(line) = s.take_reject_log("c[1]") {
                        assert!(line.starts_with("NOQUEUE: reject: "), "{line:?}");
                    }
                    if waiting {
                        assert!(a.iter().all(|x| matches!(x, Action::Close)));
                    }
                    a
                }
                Err(e) => s.line_error(e),
            };
            for a in &actions {
                match a {
                    Action::Send(r) => assert!(r.as_bytes().ends_with(b"\r\n")),
                    Action::StartTls => split.discard(),
                    _ => {}
                }
            }
            if actions.contains(&Action::StartTls) {
                break;
            }
        }
    }
    let _ = s.command_counts();
    for r in [EndReason::LostConnection, EndReason::Timeout, EndReason::TooManyErrors] {
        if let Some(l) = s.end_line(r, 7, "c[1]") {
            one_line(&l);
        }
    }
});
