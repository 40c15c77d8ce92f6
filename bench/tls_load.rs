//! The project's SMTP load generator with STARTTLS (smtp-source has none),
//! on its own. The suite (bench/suite.rs) links the same code.
//!
//! ```text
//! cargo bench --bench tls_load -- [--tls CA NAME] [--handshakes] \
//!     [-s SESSIONS] [-m COUNT] [-f FROM] [-t TO] [--limit SECS] PORT
//! ```
//!
//! Sends COUNT messages (1024 bytes of payload, one per session, as
//! `smtp-source -l 1024` without `-d`) over SESSIONS parallel sessions to
//! 127.0.0.1:PORT, with STARTTLS if `--tls` names the CA file to trust and
//! the server name to check; `--handshakes` does only connect, EHLO,
//! STARTTLS, the handshake and QUIT, COUNT times. Prints the rate. Without
//! a PORT (as under `cargo test --benches`) it prints its usage and exits.

#[path = "support/loadgen.rs"]
#[allow(dead_code)]
mod loadgen;

use std::path::PathBuf;
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: tls_load [--tls CA NAME] [--handshakes] [-s SESSIONS] [-m COUNT] \
         [-f FROM] [-t TO] [--limit SECS] PORT"
    );
    std::process::exit(2)
}

fn main() {
    let mut load = loadgen::Load {
        port: 0,
        sessions: 1,
        count: 1,
        tls: None,
        from: "load@example.org".into(),
        to: "sink@example.net".into(),
        limit: Duration::from_secs(600),
    };
    let mut handshakes = false;
    let mut args = std::env::args().skip(1);
    let num =
        |v: Option<String>| -> usize { v.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()) };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--tls" => {
                let ca = args.next().unwrap_or_else(|| usage());
                let name = args.next().unwrap_or_else(|| usage());
                load.tls = Some((PathBuf::from(ca), name));
            }
            "--handshakes" => handshakes = true,
            "-s" => load.sessions = num(args.next()),
            "-m" => load.count = num(args.next()),
            "-f" => load.from = args.next().unwrap_or_else(|| usage()),
            "-t" => load.to = args.next().unwrap_or_else(|| usage()),
            "--limit" => load.limit = Duration::from_secs(num(args.next()) as u64),
            p => load.port = p.parse().unwrap_or_else(|_| usage()),
        }
    }
    if load.port == 0 {
        println!("tls_load: no port given (run with cargo bench --bench tls_load -- PORT)");
        return;
    }
    let r = if handshakes {
        loadgen::handshakes(&load)
    } else {
        loadgen::send(&load)
    };
    match r {
        Ok(r) => println!(
            "{} {} in {:.3} s over {} sessions: {:.1}/s",
            r.done,
            if handshakes { "handshakes" } else { "messages" },
            r.elapsed.as_secs_f64(),
            load.sessions,
            r.rate()
        ),
        Err(e) => {
            eprintln!("tls_load: {e}");
            std::process::exit(1);
        }
    }
}
