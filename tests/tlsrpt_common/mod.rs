//! Shared fixtures of the TLSRPT integration tests (`tests/tlsrpt_*.rs`):
//! sys4's collector (`tlsrpt-collectd` from the test venv) on a private
//! socket and database, a small HTTPS receiver for report POSTs (rustls,
//! on loopback), and `gzip -d` for report bodies.
//!
//! Include it after `mod common;` and `mod dane_common;` with
//! `mod tlsrpt_common;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::common::process::{run, Daemon};
use crate::common::tempdir::TempDir;
use crate::dane_common::WAIT;

/// The test venv (`TERN_TEST_VENV`, default `/opt/tern-test-venv`).
pub fn venv() -> PathBuf {
    PathBuf::from(
        std::env::var("TERN_TEST_VENV").unwrap_or_else(|_| "/opt/tern-test-venv".to_string()),
    )
}

/// sys4's collector on a private socket and database.
pub struct Collector {
    daemon: Daemon,
    /// The collector's socket (tern's `smtp_tlsrpt_socket_name`).
    pub sock: PathBuf,
    db: PathBuf,
    _dir: TempDir,
}

impl Collector {
    /// Starts `tlsrpt-collectd` and waits (bounded) for its socket.
    pub fn start() -> Collector {
        let dir = TempDir::new("tlsrpt-collectd");
        let sock = dir.join("tlsrpt.sock");
        let db = dir.join("collectd.sqlite");
        let mut cmd = Command::new(venv().join("bin/tlsrpt-collectd"));
        cmd.arg("--storage")
            .arg(format!("sqlite://{}", db.display()))
            .arg("--socketname")
            .arg(&sock)
            .arg("--sockettimeout")
            .arg("1")
            // tern sends as mail_owner (nobody).
            .arg("--socketmode")
            .arg("0666")
            .arg("--logfilename")
            .arg(dir.join("collectd.log"));
        let mut daemon = Daemon::spawn("tlsrpt-collectd", cmd, &dir.join("collectd.out"));
        let deadline = Instant::now() + WAIT;
        while !sock.exists() {
            if let Some(st) = daemon.exited() {
                panic!("tlsrpt-collectd exited ({st}):\n{}", daemon.output());
            }
            assert!(Instant::now() < deadline, "no collector socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        Collector {
            daemon,
            sock,
            db,
            _dir: dir,
        }
    }

    /// Stops the collector (it commits on SIGTERM) and returns its rows:
    /// `finalresults` as `domain|policy-type|cntrtotal|cntrfailure` and
    /// `failures` as `domain|c|f|cntr`, sorted.
    pub fn rows(mut self) -> (Vec<String>, Vec<String>) {
        self.daemon.stop();
        let script = r#"
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for d, p, t, f in con.execute("SELECT domain, policy, cntrtotal, cntrfailure FROM finalresults"):
    print("R|%s|%s|%d|%d" % (d, json.loads(p)["policy-type"], t, f))
for d, r, n in con.execute("SELECT domain, reason, cntr FROM failures"):
    r = json.loads(r)
    print("F|%s|%s|%s|%d" % (d, r.get("c"), r.get("f", ""), n))
"#;
        let mut cmd = Command::new(venv().join("bin/python3"));
        cmd.arg("-c").arg(script).arg(&self.db);
        let out = run(cmd, None, WAIT);
        assert!(out.success(), "{}", out.combined());
        let mut r = Vec::new();
        let mut f = Vec::new();
        for l in out.stdout.lines() {
            if let Some(x) = l.strip_prefix("R|") {
                r.push(x.to_string());
            } else if let Some(x) = l.strip_prefix("F|") {
                f.push(x.to_string());
            }
        }
        r.sort();
        f.sort();
        (r, f)
    }
}

/// The collector's rows in RFC 8460 words, as the report generator
/// (`tlsrpt-reportd`, `TLSRPTReportd.render_report`) turns them into a
/// report: `R|domain|policy-type|successful|failed` per policy and
/// `F|domain|result-type|count` per failure detail, sorted. The code maps
/// are tlsrpt_reporter 0.6's `policy_type_names` and `fcmap`.
pub fn collector_counts(results: &[String], failures: &[String]) -> Vec<String> {
    let policy = |c: &str| match c {
        "1" => "tlsa",
        "2" => "sts",
        "9" => "no-policy-found",
        _ => panic!("policy type code {c} unknown to tlsrpt_reporter"),
    };
    let result = |c: &str| match c {
        "201" => "starttls-not-supported",
        "202" => "certificate-host-mismatch",
        "203" => "certificate-not-trusted",
        "204" => "certificate-expired",
        "205" => "validation-failure",
        "301" => "sts-policy-fetch-error",
        "302" => "sts-policy-invalid",
        "303" => "sts-webpki-invalid",
        "304" => "tlsa-invalid",
        "305" => "dnssec-invalid",
        "306" => "dane-required",
        _ => panic!("result code {c} unknown to tlsrpt_reporter"),
    };
    let mut out = Vec::new();
    for r in results {
        let f: Vec<&str> = r.split('|').collect();
        let (total, failed): (u64, u64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        out.push(format!(
            "R|{}|{}|{}|{failed}",
            f[0],
            policy(f[1]),
            total - failed
        ));
    }
    for r in failures {
        let f: Vec<&str> = r.split('|').collect();
        out.push(format!("F|{}|{}|{}", f[0], result(f[1]), f[3]));
    }
    out.sort();
    out
}

/// `tern tlsrpt show` in the words of [`collector_counts`]: `domain D`
/// starts a domain, `  policy TYPE[ mx=...]: successful=N failed=M` a
/// policy, `    RESULT xN: ...` a failure detail.
pub fn show_counts(show: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut domain = String::new();
    for line in show.lines() {
        if let Some(rest) = line.strip_prefix("domain ") {
            domain = rest.split_whitespace().next().unwrap_or("").to_string();
        } else if let Some(rest) = line.strip_prefix("  policy ") {
            let kind = rest.split([' ', ':']).next().unwrap();
            let num = |k: &str| -> String {
                let at = rest.find(k).unwrap_or_else(|| panic!("{k} in {line}")) + k.len();
                rest[at..].split_whitespace().next().unwrap().to_string()
            };
            out.push(format!(
                "R|{domain}|{kind}|{}|{}",
                num("successful="),
                num("failed=")
            ));
        } else if let Some(rest) = line.strip_prefix("    ") {
            let mut w = rest.split_whitespace();
            let result = w.next().unwrap();
            let count = w
                .next()
                .unwrap()
                .trim_start_matches('x')
                .trim_end_matches(':');
            out.push(format!("F|{domain}|{result}|{count}"));
        }
    }
    out.sort();
    out
}

/// HTTPS requests on `listener` (rustls, certificate from the lab CA), one
/// per connection: each request (head and body) is sent to the receiver
/// after it was answered 200.
pub fn https_receiver(listener: TcpListener, chain: &Path, key: &Path) -> mpsc::Receiver<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then Content-Length bytes of body.
            while let Ok(n) = tls.read(&mut buf) {
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                if let Some(h) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&req[..h]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if req.len() >= h + 4 + len {
                        break;
                    }
                }
            }
            let _ =
                tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tx.send(req);
        }
    });
    rx
}

/// `gzip -dc` of `data`, as UTF-8.
pub fn gunzip(data: &[u8]) -> String {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gzip -d failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The leaves of a JSON document as `path = value` (`a.b[0].c = "x"`,
/// values in JSON), from Python's `json` (which also checks the syntax).
pub fn json_fields(json: &str) -> std::collections::BTreeMap<String, String> {
    let script = r#"
import json, sys
def walk(p, v):
    if isinstance(v, dict):
        for k, x in v.items():
            walk(p + "." + k if p else k, x)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            walk("%s[%d]" % (p, i), x)
    else:
        print("%s = %s" % (p, json.dumps(v)))
walk("", json.loads(sys.stdin.read()))
"#;
    let mut cmd = Command::new(venv().join("bin/python3"));
    cmd.arg("-c").arg(script);
    let out = run(cmd, Some(json.as_bytes()), WAIT);
    assert!(out.success(), "not JSON: {}\n{json}", out.combined());
    out.stdout
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
