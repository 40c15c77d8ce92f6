//! The policy plug-in interface of `smtp_tls_policy_maps` (issue 11 item
//! 5), end to end against a real Postfix on loopback: `static:` and
//! `inline:` tables, and `socketmap:` tables answered by a tiny socketmap
//! server written here (a thread with a std `TcpListener` that answers
//! canned netstrings; postfix-mta-sts-resolver itself comes later).
//!
//! What must hold: a plug-in's `OK encrypt` is applied like a table
//! entry; `NOTFOUND` leaves the default level; a plug-in that is down,
//! slow, or answers `TEMP`, `PERM` or garbage defers the mail with 4.7.5
//! (never a plaintext delivery) and the mail goes out once it answers.

mod common;
mod delivery_harness;

use common::certs::{self_signed, KeyKind};
use common::ports::free_port;
use common::postfix::Postfix;
use delivery_harness::{field, Tern};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn has_subject(pf: &Postfix, subject: &str) -> bool {
    pf.messages()
        .iter()
        .any(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {subject}")))
}

fn delivered(pf: &Postfix, subject: &str) {
    let deadline = std::time::Instant::now() + T;
    while !has_subject(pf, subject) {
        assert!(
            std::time::Instant::now() < deadline,
            "no message with Subject: {subject} in Postfix's Maildir"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the test socketmap server does with a request.
#[derive(Clone, Copy)]
enum Answer {
    /// Replies with this netstring payload.
    Reply(&'static str),
    /// Replies with these raw bytes (not a netstring).
    Raw(&'static [u8]),
    /// Reads the request and never answers.
    Silent,
}

/// A socketmap server on loopback; records every request payload.
struct SocketmapServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl SocketmapServer {
    fn start(answer: Answer) -> SocketmapServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        Self::serve(listener, answer)
    }

    fn start_on(port: u16, answer: Answer) -> SocketmapServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        Self::serve(listener, answer)
    }

    fn serve(listener: TcpListener, answer: Answer) -> SocketmapServer {
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        // Lives until the test process exits.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let Some(req) = read_netstring(&mut c) else {
                        return;
                    };
                    seen.lock().unwrap().push(req);
                    match answer {
                        Answer::Reply(p) => {
                            let _ = c.write_all(format!("{}:{p},", p.len()).as_bytes());
                        }
                        Answer::Raw(b) => {
                            let _ = c.write_all(b);
                        }
                        Answer::Silent => std::thread::sleep(Duration::from_secs(60)),
                    }
                });
            }
        });
        SocketmapServer { port, requests }
    }

    fn spec(&self) -> String {
        format!("socketmap:inet:127.0.0.1:{}:postfix", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_netstring(c: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        c.read_exact(&mut byte).ok()?;
        if byte[0] == b':' {
            break;
        }
        buf.push(byte[0]);
    }
    let len: usize = String::from_utf8(buf).ok()?.parse().ok()?;
    let mut payload = vec![0u8; len + 1];
    c.read_exact(&mut payload).ok()?;
    payload.pop();
    String::from_utf8(payload).ok()
}

/// Submits one message through a tern relaying to `port` with
/// `smtp_tls_policy_maps = maps`; returns (tern, queue ID, status line).
fn attempt(
    port: u16,
    maps: &str,
    extra: &[(&str, &str)],
    subject: &str,
    status: &str,
) -> (Tern, String, String) {
    let mut b = Tern::builder()
        .relay_to(port)
        .set("smtp_tls_policy_maps", maps);
    for (k, v) in extra {
        b = b.set(k, v);
    }
    let tern = b.start();
    let id = tern.submit("alice@example.net", "bob@example.test", subject);
    let line = tern.wait_log(&[&id, status], 1, T).remove(0);
    (tern, id, line)
}

/// A Postfix without TLS: any TLS requirement that is applied defers.
fn plain_postfix() -> Postfix {
    Postfix::builder().start()
}

#[test]
fn static_and_inline_tables_apply() {
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf_tls = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let pf = plain_postfix();
    let (tls_port, port) = (pf_tls.smtp_port(), pf.smtp_port());

    // static:encrypt applies to every next hop: no plaintext delivery.
    let (_t, _, line) = attempt(
        port,
        "static:encrypt",
        &[],
        "static-plain",
        "status=deferred",
    );
    assert!(
        line.contains("(TLS is required, but was not offered by host 127.0.0.1[127.0.0.1])"),
        "{line}"
    );
    assert!(!has_subject(&pf, "static-plain"));
    let (t, _, _) = attempt(tls_port, "static:encrypt", &[], "static-tls", "status=sent");
    assert!(
        t.log().contains("TLS connection established"),
        "{}",
        t.log()
    );
    delivered(&pf_tls, "static-tls");

    // static:{ ... } holds a value with whitespace (level and attributes).
    let (t, _, _) = attempt(
        tls_port,
        "static:{ encrypt protocols=>=TLSv1.2 }",
        &[],
        "static-braces",
        "status=sent",
    );
    assert!(t.log().contains("TLS connection established"));

    // inline: the entry for this next hop wins; others keep the default.
    let maps = format!(
        "inline:{{ [127.0.0.1]:{port} = encrypt, {{ other.example = secure match=nexthop }} }}"
    );
    let (_t, _, line) = attempt(port, &maps, &[], "inline-plain", "status=deferred");
    assert!(line.contains("TLS is required"), "{line}");
    assert!(!has_subject(&pf, "inline-plain"));
    let maps = format!("inline:{{ [127.0.0.1]:{tls_port}=encrypt }}");
    let (t, _, _) = attempt(tls_port, &maps, &[], "inline-tls", "status=sent");
    assert!(t.log().contains("TLS connection established"));
    delivered(&pf_tls, "inline-tls");
    // An inline table without an entry for the next hop: default (may),
    // plaintext to the Postfix without TLS.
    let (_t, _, _) = attempt(
        port,
        "inline:{ other.example=encrypt }",
        &[],
        "inline-miss",
        "status=sent",
    );
    delivered(&pf, "inline-miss");
}

#[test]
fn socketmap_answers_apply_and_failures_defer() {
    let leaf = self_signed(KeyKind::EcdsaP256, &["mx.example.test"]);
    let pf_tls = Postfix::builder().tls(&leaf.chain, &leaf.key).start();
    let pf = plain_postfix();
    let (tls_port, port) = (pf_tls.smtp_port(), pf.smtp_port());

    // OK encrypt: applied, asked with Postfix's request for the next hop.
    let sm = SocketmapServer::start(Answer::Reply("OK encrypt"));
    let (_t, _, line) = attempt(port, &sm.spec(), &[], "sm-plain", "status=deferred");
    assert!(line.contains("TLS is required"), "{line}");
    assert!(!has_subject(&pf, "sm-plain"));
    assert!(
        sm.requests()
            .contains(&format!("postfix [127.0.0.1]:{port}")),
        "{:?}",
        sm.requests()
    );
    let (t, _, _) = attempt(tls_port, &sm.spec(), &[], "sm-tls", "status=sent");
    assert!(t.log().contains("TLS connection established"));
    delivered(&pf_tls, "sm-tls");

    // An MTA-STS answer as postfix-mta-sts-resolver gives it parses and
    // applies (secure + match against a self-signed server: not trusted).
    let sm = SocketmapServer::start(Answer::Reply(
        "OK secure match=mx.example.test servername=hostname policy_type=sts policy_domain=example.test mx_host_pattern=mx.example.test { policy_string = version: STSv1 } { policy_string = mode: enforce }",
    ));
    let (_t, _, line) = attempt(tls_port, &sm.spec(), &[], "sm-sts", "status=deferred");
    assert_eq!(field(&line, "dsn"), Some("4.7.5"), "{line}");
    assert!(!has_subject(&pf_tls, "sm-sts"));

    // NOTFOUND: the default level (may) applies: plaintext to this Postfix.
    let sm = SocketmapServer::start(Answer::Reply("NOTFOUND "));
    let (_t, _, _) = attempt(port, &sm.spec(), &[], "sm-notfound", "status=sent");
    delivered(&pf, "sm-notfound");

    // A file table listed first wins over the plug-in for the same key,
    // and the plug-in is not asked.
    let sm = SocketmapServer::start(Answer::Reply("OK encrypt"));
    let maps = format!("inline:{{ [127.0.0.1]:{port}=may }}, {}", sm.spec());
    let (_t, _, _) = attempt(port, &maps, &[], "sm-after-inline", "status=sent");
    delivered(&pf, "sm-after-inline");
    assert!(sm.requests().is_empty(), "{:?}", sm.requests());

    // Failures: TEMP, PERM, TIMEOUT, garbage, slow: deferred with 4.7.5
    // and a status naming the plug-in, never a plaintext delivery.
    let cases: [(Answer, &str, &str); 5] = [
        (
            Answer::Reply("TEMP db down"),
            "temporary failure: db down",
            "sm-temp",
        ),
        (
            Answer::Reply("PERM no such map"),
            "permanent failure: no such map",
            "sm-perm",
        ),
        (
            Answer::Reply("TIMEOUT upstream"),
            "server timeout: upstream",
            "sm-timeout",
        ),
        (
            Answer::Raw(b"HTTP/1.0 400 Bad Request\r\n\r\n"),
            "bad reply: malformed netstring length",
            "sm-garbage",
        ),
        (
            Answer::Silent,
            "no reply within 2s (socketmap_timeout)",
            "sm-slow",
        ),
    ];
    for (answer, why, subject) in cases {
        let sm = SocketmapServer::start(answer);
        let (t, _, line) = attempt(
            port,
            &sm.spec(),
            &[("socketmap_timeout", "2s")],
            subject,
            "status=deferred",
        );
        assert_eq!(field(&line, "dsn"), Some("4.7.5"), "{line}");
        assert!(
            line.contains(&format!(
                "TLS policy lookup error: {} lookup of \"[127.0.0.1]:{port}\": {why}",
                sm.spec()
            )),
            "{line}"
        );
        assert!(
            t.log()
                .contains("warning: smtp_tls_policy_maps, next-hop destination"),
            "{}",
            t.log()
        );
        assert!(!has_subject(&pf, subject));
    }
}

#[test]
fn socketmap_down_defers_then_delivers_when_it_answers() {
    let pf = plain_postfix();
    let port = pf.smtp_port();
    let sm_port = free_port();
    let spec = format!("socketmap:inet:127.0.0.1:{sm_port}:postfix");
    let (t, id, line) = attempt(port, &spec, &[], "sm-down", "status=deferred");
    assert_eq!(field(&line, "dsn"), Some("4.7.5"), "{line}");
    assert!(line.contains("cannot connect"), "{line}");
    assert!(!has_subject(&pf, "sm-down"));
    // The plug-in comes up saying "may": the retry delivers.
    let sm = SocketmapServer::start_on(sm_port, Answer::Reply("OK may"));
    t.wait_log(&[&id, "status=sent"], 1, T);
    delivered(&pf, "sm-down");
    assert!(!sm.requests().is_empty());
}

#[test]
fn check_config_validates_plugin_tables() {
    let ok = Tern::builder()
        .set(
            "smtp_tls_policy_maps",
            "static:{ secure match=nexthop }, inline:{ a.example=may, { b.example = verify match=hostname } }, socketmap:inet:127.0.0.1:8461:postfix socketmap:unix:/run/sts.sock:postfix",
        )
        .set("transport_maps", "inline:{ c.example=smtp:[127.0.0.1]:2525 }")
        .check_config();
    assert_eq!(ok.status, Some(0), "{}", ok.combined());

    let cases = [
        (
            "smtp_tls_policy_maps",
            "static:sometimes",
            "static:sometimes:1: invalid security level \"sometimes\"",
        ),
        (
            "smtp_tls_policy_maps",
            "inline:{ a.example=may, b.example=encrypt }, inline:{ x=secure }",
            "",
        ),
        (
            "smtp_tls_policy_maps",
            "socketmap:inet:mta-sts.example:8461:postfix",
            "the host must be an IP address or localhost",
        ),
        (
            "transport_maps",
            "socketmap:inet:127.0.0.1:8461:transport",
            "socketmap: tables are supported only in smtp_tls_policy_maps",
        ),
    ];
    for (key, value, want) in cases {
        let out = Tern::builder().set(key, value).check_config();
        if want.is_empty() {
            assert_eq!(out.status, Some(0), "{value}: {}", out.combined());
        } else {
            assert_eq!(out.status, Some(1), "{value}: {}", out.combined());
            assert!(out.combined().contains(want), "{value}: {}", out.combined());
        }
    }
    // A malformed inline entry next to a good one is skipped with a
    // warning (issue 13: tables load as postmap reads them; mail for
    // b.example defers), and the configuration loads.
    let value = "inline:{ a.example=may, { b.example = may policy_domain=b.example } }";
    let out = Tern::builder()
        .set("smtp_tls_policy_maps", value)
        .check_config();
    assert_eq!(out.status, Some(0), "{value}: {}", out.combined());
    assert!(
        out.combined().contains(
            ":2: attribute \"policy_domain\" is for MTA-STS policies only: it needs policy_type=sts -- ignoring this line; mail for \"b.example\" is deferred until it is fixed"
        ),
        "{value}: {}",
        out.combined()
    );
}
