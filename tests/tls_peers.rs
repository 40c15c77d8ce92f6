//! tern's Stream against real programs: posttls-finger and openssl s_client
//! against a tern listener; tern's client against openssl s_server.
mod tls_common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use tern::tls::{
    build_client_config, build_server_config, BufferPool, Stream, TernVerifier, TlsParams, Trust,
    VerifyMode,
};
use tls_common::*;

/// A minimal SMTP server: greeting, EHLO with STARTTLS, upgrade, EHLO, QUIT.
/// Returns tern's own summary details.
async fn tiny_smtpd(mut s: Stream, cfg: Arc<rustls::ServerConfig>) -> String {
    s.write_all(b"220 mx.example.test ESMTP tern-test\r\n")
        .await
        .unwrap();
    let mut details = String::new();
    for _ in 0..20 {
        let line = read_line(&mut s).await;
        eprintln!("tiny_smtpd got {line:?}");
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let ext: &[u8] = if s.is_tls() {
                    b"250 mx.example.test\r\n"
                } else {
                    b"250-mx.example.test\r\n250 STARTTLS\r\n"
                };
                s.write_all(ext).await.unwrap();
            }
            "STAR" => {
                s.write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await
                    .unwrap();
                s.start_tls_server(Arc::clone(&cfg)).await.unwrap();
                details = s.tls_summary().unwrap().to_string();
            }
            "QUIT" | "" => {
                if !line.is_empty() {
                    s.write_all(b"221 2.0.0 Bye\r\n").await.unwrap();
                }
                let _ = s.shutdown().await;
                break;
            }
            _ => s.write_all(b"250 2.0.0 Ok\r\n").await.unwrap(),
        }
    }
    details
}

#[test]
fn posttls_finger_against_tern_listener() {
    let dir = TempDir::new("peer-ptf");
    let rsa = make_cert(&dir, "rsa");
    let ec = make_cert(&dir, "ec");
    let params = TlsParams::from_postfix("", "", false).unwrap();
    for pairs in [vec![rsa.clone()], vec![rsa.clone(), ec.clone()]] {
        let cfg = build_server_config(&params, &pairs).unwrap();
        let pool = BufferPool::new(1);
        let (l, port) = listener();
        // posttls-finger reads $MAIL_CONFIG/main.cf; an empty one gives defaults.
        std::fs::write(dir.path("main.cf"), "").unwrap();
        let child = Command::new("/usr/sbin/posttls-finger")
            .env("MAIL_CONFIG", &dir.0)
            .args(["-c", "-l", "may", "-L", "summary"])
            .arg(format!("[127.0.0.1]:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let ours = run(30, async {
            let s = accept(&pool, &l).await;
            tiny_smtpd(s, cfg).await
        });
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let prefix =
            format!("Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{port}: ");
        let theirs = text
            .lines()
            .find_map(|l| l.split_once(&prefix).map(|(_, d)| d.to_string()))
            .unwrap_or_else(|| panic!("no summary in posttls-finger output:\n{text}"));
        // OpenSSL's own view of the same connection, byte for byte (curve
        // names included: Debian's Postfix 3.7 writes "prime256v1").
        assert_eq!(ours, theirs);
        let sig = if pairs.len() == 2 {
            "ECDSA (prime256v1)"
        } else {
            "RSA-PSS (2048 bits)"
        };
        assert!(ours.contains(&format!("server-signature {sig}")), "{ours}");
    }
}

#[test]
fn openssl_s_client_implicit_tls() {
    let dir = TempDir::new("peer-sclient");
    let ec = make_cert(&dir, "ec");
    let params = TlsParams::from_postfix("", "", false).unwrap();
    let cfg = build_server_config(&params, &[ec]).unwrap();
    let pool = BufferPool::new(1);
    let (l, port) = listener();
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "mx.example.test",
            "-ign_eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (line, log) = run(30, async {
        let mut s = accept(&pool, &l).await;
        s.start_tls_server(cfg).await.unwrap();
        let log = s
            .tls_summary()
            .unwrap()
            .server_log("localhost", "127.0.0.1".parse().unwrap())
            .to_string();
        s.write_all(b"220 hello over implicit TLS\r\n")
            .await
            .unwrap();
        use std::io::Write;
        stdin.write_all(b"EHLO client.example\r\n").unwrap();
        stdin.flush().unwrap();
        let line = read_line(&mut s).await;
        s.write_all(b"221 bye\r\n").await.unwrap();
        s.shutdown().await.unwrap();
        drop(stdin);
        (line, log)
    });
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(line, "EHLO client.example\r\n");
    assert!(stdout.contains("220 hello over implicit TLS"), "{stdout}");
    assert!(stdout.contains("221 bye"), "{stdout}");
    assert!(stdout.contains("TLSv1.3"), "{stdout}");
    assert_eq!(
        log,
        "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256"
    );
}

/// tern's client against `openssl s_server -rev` (reverses each line).
fn against_s_server(extra: &[&str], key: &str) -> String {
    let dir = TempDir::new(&format!("peer-sserver-{key}-{}", extra.len()));
    let c = make_cert(&dir, key);
    let port = free_port();
    let mut child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-naccept",
            "1",
            "-rev",
            "-cert",
        ])
        .arg(&c.cert)
        .arg("-key")
        .arg(&c.key)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let params = TlsParams::from_postfix("", "", false).unwrap();
    let verifier = TernVerifier::new(
        VerifyMode::Opportunistic,
        Arc::new(RootCertStore::empty()),
        Arc::clone(&params.provider),
    );
    let cfg = build_client_config(&params, verifier.clone()).unwrap();
    let pool = BufferPool::new(1);
    let line = run(30, async {
        let mut s = None;
        for _ in 0..100 {
            if let Ok(tcp) =
                smol::Async::<std::net::TcpStream>::connect(([127, 0, 0, 1], port)).await
            {
                s = Some(Stream::new(tcp, pool.acquire().unwrap()));
                break;
            }
            smol::Timer::after(Duration::from_millis(50)).await;
        }
        let mut s = s.expect("s_server did not start");
        s.start_tls_client(cfg, ServerName::try_from("mx.example.test").unwrap())
            .await
            .unwrap();
        s.write_all(b"hello tern\n").await.unwrap();
        let back = read_line(&mut s).await;
        assert_eq!(back, "nret olleh\n");
        let d = s
            .tls_summary()
            .unwrap()
            .client_log(
                Trust::Untrusted,
                "mx.example.test",
                "127.0.0.1".parse().unwrap(),
                port,
            )
            .to_string();
        let _ = s.shutdown().await;
        d
    });
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn tern_client_against_openssl_s_server() {
    let l13 = against_s_server(&[], "rsa");
    assert!(
        l13.starts_with("Untrusted TLS connection established to mx.example.test[127.0.0.1]:"),
        "{l13}"
    );
    assert!(l13.ends_with(": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA512"), "{l13}");
    let l12 = against_s_server(&["-tls1_2"], "ec");
    assert!(l12.ends_with(": TLSv1.2 with cipher ECDHE-ECDSA-AES256-GCM-SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA384"), "{l12}");
}
