//! tern's server Stream against tern's client Stream over loopback.
mod tls_common;

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use tern::policy::fingerprint::parse_fingerprint;
use tern::tls::verify::{load_ca_file, FingerprintDigest};
use tern::tls::{
    build_client_config, build_server_config, BufferPool, CertKeyPaths, FailureKind, MatchName,
    TernVerifier, TlsOutcome, TlsParams, Trust, VerifyMode,
};
use tls_common::*;

struct Result1 {
    server: Option<String>,
    client: Result<String, String>,
    outcome: TlsOutcome,
    echoed: bool,
}

/// One session: the client writes `payload`, the server echoes it back.
fn session(
    pairs: &[CertKeyPaths],
    params: &TlsParams,
    mode: VerifyMode,
    roots: RootCertStore,
    payload: &[u8],
) -> Result1 {
    let server_cfg = build_server_config(params, pairs).unwrap();
    let verifier = TernVerifier::new(mode, Arc::new(roots), Arc::clone(&params.provider));
    let client_cfg = build_client_config(params, verifier.clone()).unwrap();
    let pool = BufferPool::new(2);
    let (l, port) = listener();
    run(20, async {
        let server = async {
            let mut s = accept(&pool, &l).await;
            if s.start_tls_server(server_cfg).await.is_err() {
                return None;
            }
            let line = s
                .tls_summary()
                .unwrap()
                .server_log("localhost", "127.0.0.1".parse().unwrap())
                .to_string();
            let mut buf = vec![0u8; 3000];
            let mut total = 0;
            while total < payload.len() {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0);
                s.write_all(&buf[..n]).await.unwrap();
                total += n;
            }
            s.shutdown().await.unwrap();
            Some(line)
        };
        let client = async {
            let mut s = connect(&pool, port).await;
            let name = ServerName::try_from("mx.example.test").unwrap();
            if let Err(e) = s.start_tls_client(client_cfg, name).await {
                return (Err(e.to_string()), false);
            }
            let sum = s.tls_summary().unwrap().to_string();
            let send = async {
                // Large writes while the peer echoes: exercises both buffers.
                s_write(&mut s, payload).await
            };
            let echoed = send.await;
            (Ok(sum), echoed)
        };
        let (server, (client, echoed)) = smol::future::zip(server, client).await;
        Result1 {
            server,
            client,
            outcome: verifier.outcome(None),
            echoed,
        }
    })
}

/// Writes `payload` in pieces and reads the echo; true if it came back intact.
async fn s_write(s: &mut tern::tls::Stream, payload: &[u8]) -> bool {
    let mut back = Vec::with_capacity(payload.len());
    let mut buf = vec![0u8; 20000];
    for chunk in payload.chunks(7000) {
        s.write_all(chunk).await.unwrap();
        while back.len() < payload.len().min(back.len() + 1) && back.len() < payload.len() {
            let n = s.read(&mut buf).await.unwrap();
            back.extend_from_slice(&buf[..n]);
            if back.len() >= payload.len() || back.len() % 7000 == 0 {
                break;
            }
        }
    }
    while back.len() < payload.len() {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        back.extend_from_slice(&buf[..n]);
    }
    // After the server's close_notify the stream reports end of data.
    assert_eq!(s.read(&mut buf).await.unwrap(), 0);
    back == payload
}

fn default_params() -> TlsParams {
    TlsParams::from_postfix("", "", false).unwrap()
}

#[test]
fn ecdsa_preferred_when_both_configured() {
    let dir = TempDir::new("lo-both");
    let rsa = make_cert(&dir, "rsa");
    let ec = make_cert(&dir, "ec");
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let r = session(
        &[rsa, ec],
        &default_params(),
        VerifyMode::Opportunistic,
        RootCertStore::empty(),
        &payload,
    );
    let details = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256";
    assert_eq!(r.client.unwrap(), details);
    assert_eq!(
        r.server.unwrap(),
        format!("Anonymous TLS connection established from localhost[127.0.0.1]: {details}")
    );
    assert_eq!(r.outcome, TlsOutcome::Success(Trust::Untrusted));
    assert!(r.echoed);
}

#[test]
fn rsa_pss_and_curve_choice_and_trusted() {
    let dir = TempDir::new("lo-rsa");
    let rsa = make_cert(&dir, "rsa");
    let roots = load_ca_file(&rsa.cert).unwrap();
    let params = TlsParams::from_postfix("prime256v1", "", true).unwrap();
    let r = session(
        &[rsa],
        &params,
        VerifyMode::Opportunistic,
        roots,
        b"hello\r\n",
    );
    assert_eq!(
        r.client.unwrap(),
        "TLSv1.3 with cipher TLS_CHACHA20_POLY1305_SHA256 (256/256 bits) key-exchange ECDHE (prime256v1) server-signature RSA-PSS (2048 bits) server-digest SHA512"
    );
    // rustls's RSA signer takes its own first choice among the client's
    // schemes (PSS-SHA512), OpenSSL's would be SHA256: the log tells the truth.
    assert_eq!(r.outcome, TlsOutcome::Success(Trust::Trusted));
    assert!(r.echoed);
}

#[test]
fn verify_names() {
    let dir = TempDir::new("lo-verify");
    let ec = make_cert(&dir, "ec");
    let roots = || load_ca_file(&ec.cert).unwrap();
    let p = default_params();
    for (names, ok) in [
        (vec!["mx.example.test"], true),
        (vec!["other.example.test", ".example.test"], true),
        (vec![".mx.example.test"], false),
        (vec!["example.test"], false),
    ] {
        let mode = VerifyMode::Verify(names.iter().map(|n| MatchName::parse(n)).collect());
        let r = session(std::slice::from_ref(&ec), &p, mode, roots(), b"x");
        if ok {
            assert_eq!(r.outcome, TlsOutcome::Success(Trust::Verified), "{names:?}");
            assert!(r.client.is_ok());
        } else {
            assert!(r.client.is_err(), "{names:?}");
            assert!(r.server.is_none());
            match r.outcome {
                TlsOutcome::Failure { kind, .. } => {
                    assert_eq!(kind, FailureKind::CertificateHostMismatch)
                }
                o => panic!("{o:?}"),
            }
        }
    }
    // Not in the roots: certificate-not-trusted.
    let dir2 = TempDir::new("lo-verify2");
    let other = make_cert(&dir2, "rsa");
    let r = session(
        std::slice::from_ref(&ec),
        &p,
        VerifyMode::Verify(vec![MatchName::parse("mx.example.test")]),
        load_ca_file(&other.cert).unwrap(),
        b"x",
    );
    assert!(
        matches!(
            r.outcome,
            TlsOutcome::Failure {
                kind: FailureKind::CertificateNotTrusted,
                ..
            }
        ),
        "{:?}",
        r.outcome
    );
}

#[test]
fn fingerprints() {
    let dir = TempDir::new("lo-fp");
    let ec = make_cert(&dir, "ec");
    let p = default_params();
    for pubkey in [false, true] {
        let fp = parse_fingerprint(&openssl_fingerprint(&ec.cert, pubkey)).unwrap();
        let r = session(
            std::slice::from_ref(&ec),
            &p,
            VerifyMode::Fingerprints {
                digest: FingerprintDigest::Sha256,
                list: vec![vec![0u8; 32], fp.as_bytes().to_vec()],
            },
            RootCertStore::empty(),
            b"x",
        );
        assert_eq!(r.outcome, TlsOutcome::Success(Trust::Verified));
    }
    let r = session(
        std::slice::from_ref(&ec),
        &p,
        VerifyMode::Fingerprints {
            digest: FingerprintDigest::Sha256,
            list: vec![vec![0u8; 32]],
        },
        RootCertStore::empty(),
        b"x",
    );
    match r.outcome {
        TlsOutcome::Failure { kind, reason } => {
            assert_eq!(kind, FailureKind::CertificateNotTrusted);
            assert!(
                reason.contains(&openssl_fingerprint(&ec.cert, false)),
                "{reason}"
            );
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn pool_exhaustion_and_double_starttls() {
    let dir = TempDir::new("lo-pool");
    let ec = make_cert(&dir, "ec");
    let params = default_params();
    let server_cfg = build_server_config(&params, &[ec]).unwrap();
    let client_cfg = build_client_config(
        &params,
        TernVerifier::new(
            VerifyMode::Opportunistic,
            Arc::new(RootCertStore::empty()),
            Arc::clone(&params.provider),
        ),
    )
    .unwrap();
    let pool = BufferPool::new(2);
    let (l, port) = listener();
    run(20, async {
        let server = async {
            let mut s = accept(&pool, &l).await;
            s.start_tls_server(Arc::clone(&server_cfg)).await.unwrap();
            let e = s
                .start_tls_server(Arc::clone(&server_cfg))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            let line = read_line(&mut s).await;
            assert_eq!(line, "QUIT\r\n");
            s.write_all(b"221 bye\r\n").await.unwrap();
            s.shutdown().await.unwrap();
        };
        let client = async {
            let mut s = connect(&pool, port).await;
            s.start_tls_client(client_cfg, ServerName::try_from("mx.example.test").unwrap())
                .await
                .unwrap();
            // Both slots in use now.
            assert!(pool.acquire().is_none());
            s.write_all(b"QUIT\r\n").await.unwrap();
            assert_eq!(read_line(&mut s).await, "221 bye\r\n");
        };
        smol::future::zip(server, client).await;
    });
    assert_eq!(pool.available(), 2);
}
