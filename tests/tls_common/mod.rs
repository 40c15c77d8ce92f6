//! Shared helpers for the TLS integration tests: certificates made with the
//! `openssl` CLI, loopback sockets, timeouts.
#![allow(dead_code)]
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use smol::Async;
use tern::tls::{BufferPool, CertKeyPaths, Stream};

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tern-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Self-signed leaf for `mx.example.test` (CA:FALSE, EKU serverAuth).
/// `kind`: "rsa" (2048) or "ec" (P-256).
pub fn make_cert(dir: &TempDir, kind: &str) -> CertKeyPaths {
    let cert = dir.path(&format!("{kind}-cert.pem"));
    let key = dir.path(&format!("{kind}-key.pem"));
    let newkey = match kind {
        "rsa" => "rsa:2048".to_string(),
        "ec" => {
            let params = dir.path("ec.param");
            let st = Command::new("openssl")
                .args(["ecparam", "-name", "prime256v1", "-out"])
                .arg(&params)
                .status()
                .unwrap();
            assert!(st.success());
            format!("ec:{}", params.display())
        }
        _ => panic!("kind"),
    };
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=mx.example.test",
        ])
        .args(["-newkey", &newkey, "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-addext",
            "subjectAltName=DNS:mx.example.test",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    CertKeyPaths { cert, key }
}

/// `openssl x509 -fingerprint -sha256` of a PEM certificate, as Postfix writes it.
pub fn openssl_fingerprint(cert: &Path, pubkey: bool) -> String {
    let out = if pubkey {
        let sh = format!(
            "openssl x509 -in '{}' -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -c",
            cert.display()
        );
        Command::new("sh").arg("-c").arg(sh).output().unwrap()
    } else {
        Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert)
            .output()
            .unwrap()
    };
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    s.trim()
        .rsplit(['=', ' '])
        .next()
        .unwrap()
        .to_ascii_uppercase()
}

pub fn listener() -> (Async<TcpListener>, u16) {
    let l = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let port = l.get_ref().local_addr().unwrap().port();
    (l, port)
}

pub async fn connect(pool: &BufferPool, port: u16) -> Stream {
    let tcp = Async::<TcpStream>::connect(([127, 0, 0, 1], port))
        .await
        .unwrap();
    Stream::new(tcp, pool.acquire().unwrap())
}

pub async fn accept(pool: &BufferPool, l: &Async<TcpListener>) -> Stream {
    let (tcp, _) = l.accept().await.unwrap();
    Stream::new(tcp, pool.acquire().unwrap())
}

/// Runs `f` to completion or panics after `secs`.
pub fn run<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(smol::future::or(f, async move {
        smol::Timer::after(Duration::from_secs(secs)).await;
        panic!("test timed out after {secs}s");
    }))
}

/// Reads one CRLF- or LF-terminated line (test helper, small lines only).
pub async fn read_line(s: &mut Stream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = s.read(&mut b).await.unwrap();
        if n == 0 {
            break;
        }
        line.push(b[0]);
        if b[0] == b'\n' || line.len() > 4096 {
            break;
        }
    }
    String::from_utf8(line).unwrap()
}

/// A free port on 127.0.0.1 (bind and release).
pub fn free_port() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    l.local_addr().unwrap().port()
}
