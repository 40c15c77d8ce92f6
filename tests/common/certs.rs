//! Test PKI made with the `openssl` CLI: a CA, server leaves (RSA 2048 or
//! ECDSA P-256) signed by it, self-signed leaves and client certificates,
//! with Postfix-style SHA-256 fingerprints of the certificate and of its
//! public key.

use super::process::run_ok;
use super::tempdir::{write, TempDir};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

const OPENSSL_TIMEOUT: Duration = Duration::from_secs(30);

/// Key algorithm of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA, 2048 bits.
    Rsa2048,
    /// ECDSA on P-256 (prime256v1).
    EcdsaP256,
}

impl KeyKind {
    fn newkey_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Rsa2048 => &["-newkey", "rsa:2048"],
            KeyKind::EcdsaP256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        }
    }
}

/// A generated certificate and its key, in PEM files.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate alone (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, unencrypted, mode 0600).
    pub key: PathBuf,
    /// Certificate followed by the issuing CA's (PEM); equals `cert` for a
    /// self-signed leaf. What a server should present.
    pub chain: PathBuf,
    /// The certificate in DER.
    pub cert_der: PathBuf,
    /// Its SubjectPublicKeyInfo in DER.
    pub spki_der: PathBuf,
    /// SHA-256 of the DER certificate, uppercase colon hex as Postfix logs
    /// and matches it (`smtp_tls_fingerprint_cert_match`, `fingerprint` level).
    pub cert_sha256: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, same format
    /// (`smtp_tls_fingerprint_digest = sha256` public-key fingerprint).
    pub pkey_sha256: String,
    /// DNS names (and IP addresses) in the subjectAltName.
    pub names: Vec<String>,
    _dir: Rc<TempDir>,
}

impl Leaf {
    /// `cert_sha256` as lowercase hex without colons (TLSA 3 0 1 data).
    pub fn cert_sha256_hex(&self) -> String {
        plain_hex(&self.cert_sha256)
    }

    /// `pkey_sha256` as lowercase hex without colons (TLSA 3 1 1 data).
    pub fn pkey_sha256_hex(&self) -> String {
        plain_hex(&self.pkey_sha256)
    }

    /// The certificate PEM text.
    pub fn cert_pem(&self) -> String {
        super::tempdir::read_lossy(&self.cert)
    }
}

fn plain_hex(colon: &str) -> String {
    colon.replace(':', "").to_ascii_lowercase()
}

/// A test certificate authority in its own temporary directory; every
/// certificate it issues lives there too (kept alive by each [`Leaf`]).
#[derive(Debug)]
pub struct TestCa {
    /// CA certificate (PEM): what clients use as CAfile.
    pub cert: PathBuf,
    /// CA private key (PEM).
    pub key: PathBuf,
    /// SHA-256 fingerprint of the CA certificate (colon hex).
    pub cert_sha256: String,
    /// SHA-256 fingerprint of the CA public key (colon hex).
    pub pkey_sha256: String,
    dir: Rc<TempDir>,
    serial: Cell<u32>,
}

fn openssl(args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    run_ok(cmd, None, OPENSSL_TIMEOUT);
}

fn openssl_out(args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    run_ok(cmd, stdin, OPENSSL_TIMEOUT).stdout
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// "SHA2-256(stdin)= ab:cd:.." -> "AB:CD:..".
fn parse_dgst(out: &str) -> String {
    let hex = out.rsplit("= ").next().unwrap_or("").trim();
    assert!(
        hex.len() == 95 && hex.split(':').all(|b| b.len() == 2),
        "unexpected openssl dgst output: {out:?}"
    );
    hex.to_ascii_uppercase()
}

/// Converts a PEM certificate to DER and SPKI DER files and returns their
/// SHA-256 fingerprints (cert, public key), computed by openssl.
fn fingerprints(cert: &Path, cert_der: &Path, spki_der: &Path) -> (String, String) {
    openssl(&[
        "x509",
        "-in",
        path_str(cert),
        "-outform",
        "DER",
        "-out",
        path_str(cert_der),
    ]);
    let pubkey = openssl_out(&["x509", "-in", path_str(cert), "-noout", "-pubkey"], None);
    openssl_out(
        &[
            "pkey",
            "-pubin",
            "-outform",
            "DER",
            "-out",
            path_str(spki_der),
        ],
        Some(pubkey.as_bytes()),
    );
    let c = parse_dgst(&openssl_out(
        &["dgst", "-sha256", "-c", path_str(cert_der)],
        None,
    ));
    let k = parse_dgst(&openssl_out(
        &["dgst", "-sha256", "-c", path_str(spki_der)],
        None,
    ));
    (c, k)
}

fn san(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            if n.parse::<std::net::IpAddr>().is_ok() {
                format!("IP:{n}")
            } else {
                format!("DNS:{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Extension file for a leaf: end entity, the given EKU, SAN if any names.
fn leaf_ext(kind: KeyKind, eku: &str, names: &[&str], issuer_keyid: bool) -> String {
    let usage = match kind {
        KeyKind::Rsa2048 => "digitalSignature,keyEncipherment",
        KeyKind::EcdsaP256 => "digitalSignature",
    };
    let mut s = format!(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,{usage}\nsubjectKeyIdentifier=hash\n"
    );
    s.push_str(&format!("extendedKeyUsage={eku}\n"));
    if issuer_keyid {
        s.push_str("authorityKeyIdentifier=keyid\n");
    }
    if !names.is_empty() {
        s.push_str(&format!("subjectAltName={}\n", san(names)));
    }
    s
}

/// Minimal config so `req` adds no default extensions of its own.
const REQ_CNF: &str = "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=unused\n";

impl TestCa {
    /// Generates a new CA (ECDSA P-256, CN "tern test CA", valid 10 years).
    pub fn new() -> TestCa {
        let dir = Rc::new(TempDir::new("certs"));
        write(&dir.join("req.cnf"), REQ_CNF);
        let cnf = dir.join("ca.cnf");
        write(
            &cnf,
            format!(
                "{REQ_CNF}[v3_ca]\nbasicConstraints=critical,CA:TRUE\n\
                 keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n"
            ),
        );
        let cert = dir.join("ca.pem");
        let key = dir.join("ca.key");
        let mut args = vec!["req", "-x509", "-config", path_str(&cnf)];
        args.extend_from_slice(KeyKind::EcdsaP256.newkey_args());
        args.extend_from_slice(&[
            "-nodes",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&cert),
            "-days",
            "3650",
            "-subj",
            "/O=tern testbed/CN=tern test CA",
            "-extensions",
            "v3_ca",
        ]);
        openssl(&args);
        let (cert_sha256, pkey_sha256) =
            fingerprints(&cert, &dir.join("ca.der"), &dir.join("ca.spki.der"));
        TestCa {
            cert,
            key,
            cert_sha256,
            pkey_sha256,
            dir,
            serial: Cell::new(1),
        }
    }

    fn issue(&self, kind: KeyKind, cn: &str, names: &[&str], eku: &str, tag: &str) -> Leaf {
        let n = self.serial.get() + 1;
        self.serial.set(n);
        let base = format!("{tag}{n}");
        let key = self.dir.join(&format!("{base}.key"));
        let csr = self.dir.join(&format!("{base}.csr"));
        let cert = self.dir.join(&format!("{base}.pem"));
        let ext = self.dir.join(&format!("{base}.ext"));
        write(&ext, leaf_ext(kind, eku, names, true));
        let subj = format!("/CN={cn}");
        let mut args = vec!["req", "-new", "-config"];
        let cnf = self.dir.join("req.cnf");
        args.push(path_str(&cnf));
        args.extend_from_slice(kind.newkey_args());
        args.extend_from_slice(&[
            "-nodes",
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&csr),
            "-subj",
            &subj,
        ]);
        openssl(&args);
        let serial = n.to_string();
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_str(&csr),
            "-CA",
            path_str(&self.cert),
            "-CAkey",
            path_str(&self.key),
            "-set_serial",
            &serial,
            "-days",
            "825",
            "-extfile",
            path_str(&ext),
            "-out",
            path_str(&cert),
        ]);
        let chain = self.dir.join(&format!("{base}.chain.pem"));
        let mut pem = std::fs::read(&cert).expect("read leaf");
        pem.extend(std::fs::read(&self.cert).expect("read CA"));
        write(&chain, pem);
        finish(&self.dir, base, cert, key, chain, names)
    }

    /// A server certificate (EKU serverAuth) for `names` (DNS names or IP
    /// addresses; the first is also the CN), signed by this CA.
    pub fn server_cert(&self, kind: KeyKind, names: &[&str]) -> Leaf {
        let cn = names.first().copied().unwrap_or("server");
        self.issue(kind, cn, names, "serverAuth", "server")
    }

    /// A server certificate with subject CN `cn` and the subjectAltName
    /// `names` (none: no SAN extension at all, so that name checks fall
    /// back to the CN as Postfix's do), signed by this CA.
    pub fn server_cert_cn(&self, kind: KeyKind, cn: &str, names: &[&str]) -> Leaf {
        self.issue(kind, cn, names, "serverAuth", "server")
    }

    /// A client certificate (EKU clientAuth) with CN `cn`, signed by this CA.
    pub fn client_cert(&self, kind: KeyKind, cn: &str) -> Leaf {
        self.issue(kind, cn, &[], "clientAuth", "client")
    }

    /// Directory holding this CA's files (for a `CApath`-less CAfile test).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

fn finish(
    dir: &Rc<TempDir>,
    base: String,
    cert: PathBuf,
    key: PathBuf,
    chain: PathBuf,
    names: &[&str],
) -> Leaf {
    let cert_der = dir.join(&format!("{base}.der"));
    let spki_der = dir.join(&format!("{base}.spki.der"));
    let (cert_sha256, pkey_sha256) = fingerprints(&cert, &cert_der, &spki_der);
    Leaf {
        cert,
        key,
        chain,
        cert_der,
        spki_der,
        cert_sha256,
        pkey_sha256,
        names: names.iter().map(|s| s.to_string()).collect(),
        _dir: Rc::clone(dir),
    }
}

/// A self-signed server certificate for `names` (basicConstraints
/// critical CA:FALSE, EKU serverAuth, as webpki requires), in its own
/// temporary directory.
pub fn self_signed(kind: KeyKind, names: &[&str]) -> Leaf {
    let dir = Rc::new(TempDir::new("selfsigned"));
    let cnf = dir.join("req.cnf");
    write(
        &cnf,
        format!(
            "{REQ_CNF}[v3_leaf]\n{}",
            leaf_ext(kind, "serverAuth", names, false)
        ),
    );
    let cert = dir.join("self.pem");
    let key = dir.join("self.key");
    let cn = format!("/CN={}", names.first().copied().unwrap_or("self-signed"));
    let mut args = vec!["req", "-x509", "-config", path_str(&cnf)];
    args.extend_from_slice(kind.newkey_args());
    args.extend_from_slice(&[
        "-nodes",
        "-keyout",
        path_str(&key),
        "-out",
        path_str(&cert),
        "-days",
        "825",
        "-subj",
        &cn,
        "-extensions",
        "v3_leaf",
    ]);
    openssl(&args);
    let chain = cert.clone();
    finish(&dir, "self".to_string(), cert, key, chain, names)
}

/// A self-signed certificate made as an administrator makes one with a
/// plain `openssl req -x509 -newkey ... -subj /CN=cn` and the system's
/// openssl.cnf: its `v3_ca` section makes it `CA:TRUE`, no
/// subjectAltName, no extended key usage. What docs/policy.md says
/// `tafile=` takes; webpki alone refuses it as an end entity.
pub fn plain_self_signed(kind: KeyKind, cn: &str) -> Leaf {
    let dir = Rc::new(TempDir::new("plainself"));
    let cert = dir.join("self.pem");
    let key = dir.join("self.key");
    let subj = format!("/CN={cn}");
    let mut args = vec!["req", "-x509"];
    args.extend_from_slice(kind.newkey_args());
    args.extend_from_slice(&[
        "-nodes",
        "-keyout",
        path_str(&key),
        "-out",
        path_str(&cert),
        "-days",
        "30",
        "-subj",
        &subj,
    ]);
    openssl(&args);
    let text = openssl_out(&["x509", "-in", path_str(&cert), "-noout", "-text"], None);
    assert!(
        text.contains("CA:TRUE"),
        "openssl req -x509 made no CA:TRUE certificate:\n{text}"
    );
    let chain = cert.clone();
    finish(&dir, "self".to_string(), cert, key, chain, &[])
}
