//! Measures what rustls heap-allocates per connection on top of the slot
//! buffers: tern's server Stream against `openssl s_client`, counting only
//! this process's allocations (the peer is another process).
//!
//! Only Rust-side heap is seen: aws-lc's own C `malloc`s (key shares, hash
//! and AEAD contexts) bypass the global allocator and are not counted.
mod alloc_common;
mod tls_common;

use alloc_common::Counting;
use std::process::{Command, Stdio};

use tern::tls::{build_server_config, BufferPool, TlsParams};
use tls_common::*;

#[global_allocator]
static A: Counting = Counting;

#[test]
fn rustls_heap_per_connection() {
    let dir = TempDir::new("alloc");
    // (Debian 12's OpenSSL 3.0 has no X25519MLKEM768 to test the PQ group with.)
    for (kind, curves) in [("ec", "X25519"), ("rsa", "X25519"), ("ec", "P-256")] {
        let c = make_cert(&dir, kind);
        let params = TlsParams::from_postfix(curves, "", false).unwrap();
        let cfg = build_server_config(&params, &[c]).unwrap();
        let pool = BufferPool::new(1);
        let (l, port) = listener();
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-groups",
                curves,
                "-ign_eof",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (peak, after) = run(30, async {
            let mut s = accept(&pool, &l).await;
            let m = alloc_common::mark();
            s.start_tls_server(cfg).await.unwrap();
            let (peak, after) = (m.peak(), m.held());
            s.shutdown().await.unwrap();
            (peak, after)
        });
        drop(child.stdin.take());
        let _ = child.wait();
        eprintln!("rustls heap, {kind} key, {curves}: peak {peak} B during handshake, {after} B held after");
        // The documented budget: well under 100 KB at peak, and something is
        // really allocated (the measurement works).
        assert!(peak > 1_000 && peak < 100_000, "{peak}");
        assert!(after < peak, "{after}");
    }
}
