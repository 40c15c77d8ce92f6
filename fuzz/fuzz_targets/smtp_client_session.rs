#![no_main]
// Arbitrary server replies (split at LF) into a client session, with the
// driver reacting like a real one (message on Ready, TLS on StartTls).
// Checks: no panics; with TLS required, nothing is sent after EHLO unless
// TLS is up; every Delivered has one result per recipient.
use tern::smtp::client::*;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let tls = match mode % 3 {
        0 => TlsRequirement::None,
        1 => TlsRequirement::Opportunistic,
        _ => TlsRequirement::Required,
    };
    let mut c = Session::new(ClientParams {
        helo_name: "nas.example.org".into(),
        tls,
        implicit_tls: mode & 0x10 != 0,
        credentials: (mode & 0x20 != 0).then(|| ("u".to_string(), "p".to_string())),
        allow_plaintext_auth: false,
    });
    let mut messages = 0;
    for line in data.split(|&b| b == b'\n') {
        // The driver's own queue: follow-up actions are appended to it.
        let mut acts: Vec<ClientAction> = c.reply_line(line).into_iter().collect();
        let mut i = 0;
        while i < acts.len() && i < 64 {
            match &acts[i] {
                ClientAction::Ready => {
                    let more = if messages < 3 {
                        messages += 1;
                        c.send_message(Message {
                            sender: "a@b.example".into(),
                            recipients: vec!["x@y.example".into(), "z@y.example".into()],
                            size: Some(10),
                            eight_bit: mode & 0x40 != 0,
                            smtputf8: mode & 0x80 != 0,
                        })
                    } else {
                        c.quit()
                    };
                    acts.extend(more);
                }
                ClientAction::StartTls => {
                    let more = if mode & 0x08 != 0 {
                        c.tls_failed()
                    } else {
                        c.tls_established()
                    };
                    acts.extend(more);
                }
                ClientAction::Delivered(r) => assert_eq!(r.len(), 2),
                ClientAction::Send(b) => {
                    assert!(b.ends_with(b"\r\n"));
                    if tls == TlsRequirement::Required && !c.tls_active() {
                        assert!(
                            b.starts_with(b"EHLO")
                                || b.starts_with(b"STARTTLS")
                                || b.starts_with(b"QUIT"),
                            "sent {:?} without TLS",
                            String::from_utf8_lossy(b)
                        );
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
});
