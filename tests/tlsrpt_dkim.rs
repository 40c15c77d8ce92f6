//! DKIM signatures of TLSRPT report messages checked by dkimpy
//! (python3-dkim), an independent implementation; skipped when openssl or
//! dkimpy is missing.

const MSG: &[u8] = b"From: a@s.test\r\nTo: b@d.test\r\nSubject: Report Domain: d.test\r\n Submitter: s.test\r\nTLS-Required: No\r\n\r\nHello  \r\nworld\r\n\r\n";

/// An RSA signature checked by dkimpy (python3-dkim), an independent
/// implementation, when it and openssl are installed.
#[test]
fn rsa_signature_verified_by_dkimpy() {
    let dir = std::env::temp_dir().join(format!("tern-dkim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keyf = dir.join("k.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&keyf)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let has_dkim = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import dkim"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok || !has_dkim {
        eprintln!("openssl or python3-dkim missing: skipped");
        return;
    }
    let key = tern::tlsrpt::dkim::Key::from_pem(&std::fs::read(&keyf).unwrap()).unwrap();
    assert_eq!(key.algorithm(), "rsa-sha256");
    let pubder = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&keyf)
        .output()
        .unwrap()
        .stdout;
    let mut signed = tern::tlsrpt::dkim::sign(MSG, &key, "s.test", "sel", 1_700_000_000).unwrap();
    signed.extend_from_slice(MSG);
    let msgf = dir.join("m.eml");
    std::fs::write(&msgf, &signed).unwrap();
    let script = format!(
        "import dkim,sys\nrec=b'v=DKIM1; k=rsa; p={}'\nm=open(sys.argv[1],'rb').read()\nsys.exit(0 if dkim.verify(m, dnsfunc=lambda n, timeout=5: rec) else 1)",
        tern::base64::encode(&pubder)
    );
    let st = std::process::Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .arg(&msgf)
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(st.success(), "dkimpy rejected the signature");
}
