//! Shared fixtures of the MTA-STS integration tests (`tests/mtasts_*.rs`):
//! an MTA-STS lab where `example.test` publishes `MX 10 mx.example.test`
//! (127.0.0.1, a real Postfix with a certificate from a test CA), an
//! `_mta-sts` TXT record and `mta-sts.example.test` on a loopback address
//! of its own, where nginx serves `/.well-known/mta-sts.txt` over HTTPS
//! (port 443, as RFC 8461 §3.3 fixes it) with a certificate from the same
//! CA; names resolve through the DNS lab of the DANE tests (nsd + unbound,
//! unsigned zone). Also postfix-mta-sts-resolver, the Postfix plug-in, run
//! in a private mount namespace, and a socketmap client to ask it.
//!
//! Include it after `mod common;` and `mod dane_common;` with
//! `mod mtasts_common;`. Every process is stopped on drop. The tests run as
//! root (port 443 and 53, `unshare -m`).
#![allow(dead_code)]

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::certs::{KeyKind, Leaf, TestCa};
use crate::common::dnssec::{DnsWorld, Signing, Zone};
use crate::common::ports::{free_port, wait_listening};
use crate::common::postfix::{Postfix, PostfixBuilder};
use crate::common::process::{run, Daemon};
use crate::common::tempdir::{read_lossy, write, TempDir};
pub use crate::dane_common::{Tern, DOMAIN, MX_HOST, WAIT};

/// The policy host of [`DOMAIN`] (RFC 8461 §3.3).
pub const STS_HOST: &str = "mta-sts.example.test";
/// The policy's path on [`STS_HOST`].
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";
/// An MX pattern that matches no MX host of [`DOMAIN`].
pub const OTHER_MX: &str = "mx.elsewhere.test";
/// What tern's maillog must say when a `testing` policy is not satisfied
/// (every string on one line). The exact wording is tern's; adjust here.
pub const TESTING_FAILURE: &[&str] = &["MTA-STS", "testing"];
/// What the status line of mail deferred by an `enforce` policy must
/// name besides `status=deferred`.
pub const ENFORCE_DEFERRAL: &[&str] = &["MTA-STS"];
/// tern's config lines for built-in MTA-STS (the level in force is `may`,
/// as on a router without DANE).
pub const STS_ON: &str = "smtp_tls_security_level = may\nmta_sts_enable = yes";
/// tern's config lines without MTA-STS: plain opportunistic TLS.
pub const STS_OFF: &str = "smtp_tls_security_level = may\nmta_sts_enable = no";
/// Where `scripts/install-test-deps.sh` puts postfix-mta-sts-resolver;
/// `TERN_TEST_VENV` overrides it.
pub const DEFAULT_VENV: &str = "/opt/tern-test-venv";

/// A recipient in [`DOMAIN`], one per message so that each has its own
/// status line (`user1@example.test`, ...).
pub fn rcpt(n: usize) -> String {
    format!("user{n}@{DOMAIN}")
}

/// A policy file (RFC 8461 §3.2) with `mode` and one `mx:` line per
/// pattern, `max_age` one day.
pub fn policy(mode: &str, mx: &[&str]) -> String {
    let mut s = format!("version: STSv1\nmode: {mode}\n");
    for m in mx {
        s.push_str(&format!("mx: {m}\n"));
    }
    s.push_str("max_age: 86400\n");
    s
}

/// The records of `example.test`: MX -> mx (127.0.0.1), the policy host
/// at `sts_ip`, and `_mta-sts TXT "v=STSv1; id=ID"` with a TTL of 1 s, so
/// that an id change reaches tern (whose resolver caches by TTL) at once.
pub fn zone_records(sts_ip: Ipv4Addr, id: &str) -> String {
    format!(
        "@ IN MX 10 mx\nmx IN A 127.0.0.1\nmta-sts IN A {sts_ip}\n\
         _mta-sts 1 IN TXT \"v=STSv1; id={id}\"\n"
    )
}

static IPS: Mutex<Option<HashSet<Ipv4Addr>>> = Mutex::new(None);

/// A loopback address (127.64.0.0/10 and up, chosen at random) where TCP
/// `port` — and UDP `port` too if `udp` — can be bound right now; never
/// the same twice in one test process. For servers whose port is fixed
/// (HTTPS 443, DNS 53): parallel tests, and other engineers' test runs,
/// each get an address of their own.
pub fn loopback_ip(port: u16, udp: bool) -> Ipv4Addr {
    let mut used = IPS.lock().unwrap_or_else(|e| e.into_inner());
    let used = used.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let r = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let ip = Ipv4Addr::new(
            127,
            64 + (r % 128) as u8,
            (r >> 8) as u8,
            1 + ((r >> 16) % 254) as u8,
        );
        if used.contains(&ip) || TcpListener::bind((ip, port)).is_err() {
            continue;
        }
        if udp && UdpSocket::bind((ip, port)).is_err() {
            continue;
        }
        used.insert(ip);
        return ip;
    }
    panic!("no free loopback address for port {port}");
}

/// True if a TCP socket listens on `ip:port` (read from /proc/net/tcp, so
/// no probe connection shows up in the server's log).
pub fn listening_at(ip: Ipv4Addr, port: u16) -> bool {
    let o = ip.octets();
    let want = format!(
        "{:02X}{:02X}{:02X}{:02X}:{port:04X}",
        o[3], o[2], o[1], o[0]
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let local = f.nth(1).unwrap_or("");
        let state = f.nth(1).unwrap_or("");
        state == "0A" && local == want
    })
}

/// nginx serving [`POLICY_PATH`] as `text/plain` over HTTPS on
/// `ip:443` with a certificate for [`STS_HOST`], to clients that send SNI
/// [`STS_HOST`] only.
/// Stopped on drop.
pub struct PolicyHost {
    nginx: Option<Daemon>,
    dir: TempDir,
    /// The loopback address nginx listens on (port 443).
    pub ip: Ipv4Addr,
    _leaf: Leaf,
}

impl PolicyHost {
    /// Starts nginx on a fresh loopback address with a certificate for
    /// [`STS_HOST`] issued by `ca`, serving `policy`.
    pub fn start(ca: &TestCa, policy: &str) -> PolicyHost {
        let leaf = ca.server_cert(KeyKind::EcdsaP256, &[STS_HOST]);
        let dir = TempDir::new("mtasts-nginx");
        let ip = loopback_ip(443, false);
        let d = dir.path().display();
        std::fs::create_dir_all(dir.join("www/.well-known")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        // One process in the foreground (no master, no daemon): the test
        // owns it. Temp paths under the directory: nothing touches /var.
        // A handshake without SNI `mta-sts.example.test` is refused (the
        // default server), so a fetch must send it (RFC 8461 §3.3).
        // nginx 1.22 offers TLS 1.3 only when told.
        write(
            &dir.join("nginx.conf"),
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp/body;\n  \
                 proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  \
                 uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  \
                 ssl_protocols TLSv1.2 TLSv1.3;\n  types {{ text/plain txt; }}\n  default_type application/octet-stream;\n  \
                 server {{\n    listen {ip}:443 ssl default_server;\n    \
                 ssl_reject_handshake on;\n  }}\n  \
                 server {{\n    listen {ip}:443 ssl;\n    server_name {STS_HOST};\n    \
                 ssl_certificate {};\n    ssl_certificate_key {};\n    root {d}/www;\n  }}\n}}\n",
                leaf.chain.display(),
                leaf.key.display()
            ),
        );
        let host = PolicyHost {
            nginx: None,
            dir,
            ip,
            _leaf: leaf,
        };
        host.set_policy(policy);
        let mut host = host;
        host.nginx = Some(host.spawn());
        host
    }

    fn spawn(&self) -> Daemon {
        let d = self.dir.path();
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-e")
            .arg(d.join("error.log"));
        let mut nginx = Daemon::spawn("nginx", cmd, &d.join("nginx.out"));
        let deadline = Instant::now() + WAIT;
        while !listening_at(self.ip, 443) {
            if let Some(st) = nginx.exited() {
                panic!(
                    "nginx exited ({st}): {}{}",
                    nginx.output(),
                    read_lossy(&d.join("error.log"))
                );
            }
            assert!(Instant::now() < deadline, "nginx not listening");
            std::thread::sleep(Duration::from_millis(5));
        }
        nginx
    }

    /// Replaces the served policy (nginx reads the file per request).
    pub fn set_policy(&self, text: &str) {
        write(&self.dir.join("www/.well-known/mta-sts.txt"), text);
    }

    /// Stops nginx: the policy server is down (connection refused).
    pub fn stop(&mut self) {
        if let Some(mut n) = self.nginx.take() {
            n.stop();
        }
    }

    /// The requests nginx served so far (its access log).
    pub fn access_log(&self) -> String {
        read_lossy(&self.dir.join("access.log"))
    }

    /// How many times the policy was fetched so far (nginx logs a request
    /// after answering it: see [`PolicyHost::assert_fetches`]).
    pub fn fetches(&self) -> usize {
        self.access_log()
            .lines()
            .filter(|l| l.contains(POLICY_PATH))
            .count()
    }

    /// Asserts that the policy was fetched exactly `n` times: waits
    /// (bounded) for the n-th access-log line, which nginx writes just
    /// after the response, then compares.
    pub fn assert_fetches(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.fetches() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(self.fetches(), n, "policy fetches:\n{}", self.access_log());
    }

    /// Whether a TLS handshake without SNI succeeds (openssl s_client
    /// `-noservername`): it must not.
    pub fn handshake_without_sni(&self, ca: &Path) -> bool {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-noservername", "-brief", "-CAfile"])
            .arg(ca)
            .arg("-connect")
            .arg(format!("{}:443", self.ip));
        run(cmd, Some(b""), WAIT).success()
    }

    /// Fetches the policy with curl (verifying against `ca`), as a check of
    /// the fixture: returns the response headers and body.
    pub fn curl(&self, ca: &Path) -> String {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-i", "--max-time", "10", "--cacert"])
            .arg(ca)
            .arg("--resolve")
            .arg(format!("{STS_HOST}:443:{}", self.ip))
            .arg(format!("https://{STS_HOST}{POLICY_PATH}"));
        let out = run(cmd, None, WAIT);
        assert!(out.success(), "curl failed: {}", out.combined());
        out.stdout
    }
}

impl Drop for PolicyHost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- nginx error.log\n{}--- nginx access.log\n{}",
                read_lossy(&self.dir.join("error.log")),
                self.access_log()
            );
        }
        self.stop();
    }
}

/// Everything but tern: the test CA, the Postfix MX, the policy host and
/// the DNS lab. Field order is drop order.
pub struct Lab {
    /// The DNS lab serving `example.test` (unbound is `dns.resolver`).
    pub dns: DnsWorld,
    /// The policy host.
    pub sts: PolicyHost,
    /// The MX: Postfix on 127.0.0.1, STARTTLS with a certificate from `ca`.
    pub pf: Postfix,
    /// Issuer of every certificate; tern's `smtp_tls_CAfile`.
    pub ca: TestCa,
    /// The TXT record's current id.
    pub id: String,
}

impl Lab {
    /// A lab whose MX has a certificate for [`MX_HOST`] and whose policy
    /// host serves `policy` under TXT id `1`.
    pub fn start(policy: &str) -> Lab {
        Self::start_with(policy, &[MX_HOST], None)
    }

    /// Like [`Lab::start`], with the MX's certificate for `mx_names`, and
    /// unbound on `resolver` if given (e.g. a loopback address at port 53).
    pub fn start_with(policy: &str, mx_names: &[&str], resolver: Option<SocketAddr>) -> Lab {
        let ca = TestCa::new();
        let leaf = ca.server_cert(KeyKind::EcdsaP256, mx_names);
        let pf = receiver().tls(&leaf.chain, &leaf.key).start();
        let sts = PolicyHost::start(&ca, policy);
        let id = "1".to_string();
        let zones = [Zone::new(
            DOMAIN,
            Signing::Unsigned,
            &zone_records(sts.ip, &id),
        )];
        let dns = match resolver {
            Some(addr) => DnsWorld::start_at(&zones, addr),
            None => DnsWorld::start(&zones),
        };
        Lab {
            dns,
            sts,
            pf,
            ca,
            id,
        }
    }

    /// The MX's port (tern's `smtp_tcp_port`).
    pub fn port(&self) -> u16 {
        self.pf.smtp_port()
    }

    /// tern delivering to this lab: its resolver, the MX port, the test CA
    /// as `smtp_tls_CAfile`, then `extra` (e.g. [`STS_ON`]).
    pub fn tern(&self, extra: &str) -> Tern {
        Tern::start(
            self.dns.resolver,
            self.port(),
            &format!("smtp_tls_CAfile = {}\n{extra}", self.ca.cert.display()),
        )
    }

    /// Serves a new policy and publishes a new TXT id (`id`).
    pub fn publish(&mut self, policy: &str, id: &str) {
        self.sts.set_policy(policy);
        self.id = id.to_string();
        self.dns
            .update_zone(DOMAIN, &zone_records(self.sts.ip, &self.id));
    }

    /// How many SMTP connections the MX has accepted so far.
    pub fn mx_connections(&self) -> usize {
        self.pf
            .log()
            .lines()
            .filter(|l| l.contains(": connect from "))
            .count()
    }

    /// `dig` through the lab's resolver: the answer section (`+short`).
    pub fn dig(&self, qtype: &str, name: &str) -> String {
        let r = self.dns.resolver;
        let mut cmd = Command::new("dig");
        cmd.arg(format!("@{}", r.ip()))
            .args(["-p", &r.port().to_string(), "+short", "+time=2", "+tries=1"])
            .args([qtype, name]);
        let out = run(cmd, None, WAIT);
        assert!(out.success(), "dig failed: {}", out.combined());
        out.stdout
    }
}

/// A Postfix receiving mail for example.test as `mx.example.test`.
pub fn receiver() -> PostfixBuilder {
    Postfix::builder()
        .hostname(MX_HOST)
        .local_domains(&[DOMAIN])
}

/// The `Verified TLS connection established to mx.example.test[...]`
/// lines in tern's maillog.
pub fn verified_lines(tern: &Tern, lab: &Lab) -> Vec<String> {
    let verified = format!(
        "Verified TLS connection established to {MX_HOST}[127.0.0.1]:{}",
        lab.port()
    );
    tern.tls_lines()
        .into_iter()
        .filter(|l| l.contains(&verified))
        .collect()
}

/// Submits message `n` (to [`rcpt`]`(n)`) and asserts that it went out to
/// the MX and arrived there. Returns the status line.
pub fn assert_delivered(tern: &Tern, lab: &Lab, n: usize) -> String {
    let messages = lab.pf.messages().len();
    tern.send(&rcpt(n), &format!("message {n}"));
    let status = tern.wait_status(&rcpt(n));
    assert!(
        status.contains("status=sent")
            && status.contains(&format!("relay={MX_HOST}[127.0.0.1]:{}", lab.port())),
        "message {n}: expected sent via {MX_HOST}: {status}\n{}",
        tern.diagnostics()
    );
    lab.pf.wait_for_message(messages + 1, WAIT);
    status
}

/// Like [`assert_delivered`], and the session's TLS was verified for
/// [`MX_HOST`] (a new `Verified TLS connection established to
/// mx.example.test[127.0.0.1]:PORT` line).
pub fn assert_verified_delivery(tern: &Tern, lab: &Lab, n: usize) -> String {
    let before = verified_lines(tern, lab).len();
    let status = assert_delivered(tern, lab, n);
    assert!(
        verified_lines(tern, lab).len() > before,
        "message {n}: delivered without a Verified TLS session: {:?}\n{}",
        tern.tls_lines(),
        tern.diagnostics()
    );
    status
}

/// Submits message `n` and asserts that it was deferred for MTA-STS
/// ([`ENFORCE_DEFERRAL`]) without tern connecting to the MX at all (RFC
/// 8461 §4.2: MX hosts outside the policy are not connected to). Returns
/// the status line.
pub fn assert_sts_deferred_unconnected(tern: &Tern, lab: &Lab, n: usize) -> String {
    let before = lab.mx_connections();
    let messages = lab.pf.messages().len();
    let status = assert_deferred(tern, lab, n);
    for needle in ENFORCE_DEFERRAL {
        assert!(
            status.contains(needle),
            "message {n}: deferral reason does not name {needle}: {status}"
        );
    }
    // A connection tern made would have been logged before the deferral;
    // leave Postfix's log writer a moment.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        lab.mx_connections(),
        before,
        "message {n}: tern connected to the MX although the policy excludes it\n{}",
        lab.pf.log()
    );
    assert_eq!(lab.pf.messages().len(), messages, "the MX got a message");
    status
}

/// Submits message `n` and asserts it was deferred (not sent, nothing
/// new at the MX). Returns the status line.
pub fn assert_deferred(tern: &Tern, lab: &Lab, n: usize) -> String {
    let messages = lab.pf.messages().len();
    tern.send(&rcpt(n), &format!("message {n}"));
    let status = tern.wait_status(&rcpt(n));
    assert!(
        status.contains("status=deferred ("),
        "message {n}: expected deferred: {status}\n{}",
        tern.diagnostics()
    );
    assert_eq!(lab.pf.messages().len(), messages, "the MX got a message");
    status
}

/// Encodes `s` as a netstring (`LEN:DATA,`).
pub fn netstring(s: &str) -> Vec<u8> {
    format!("{}:{s},", s.len()).into_bytes()
}

/// Asks a socketmap server (Postfix's socketmap_table(5)) for `key` in map
/// `name` and returns the reply's payload (e.g. `OK secure ...`).
pub fn socketmap_query(addr: SocketAddr, name: &str, key: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect to socketmap");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&netstring(&format!("{name} {key}"))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).expect("socketmap reply");
        assert!(n > 0, "socketmap closed after {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((len, rest)) = text.split_once(':') {
            let len: usize = len.parse().expect("netstring length");
            if rest.len() > len {
                assert_eq!(&rest[len..len + 1], ",", "netstring end: {text:?}");
                return rest[..len].to_string();
            }
        }
    }
}

/// postfix-mta-sts-resolver's `mta-sts-daemon` on 127.0.0.1, resolving
/// through a resolv.conf that names `resolver_ip` (port 53 only, as
/// c-ares reads it), bind-mounted over /etc/resolv.conf in a private mount
/// namespace (`unshare -m`), and trusting `ca` (`SSL_CERT_FILE`).
/// `tlsrpt: true`, so answers carry Postfix 3.10's MTA-STS attributes.
/// Stopped on drop.
pub struct StsResolver {
    daemon: Daemon,
    dir: TempDir,
    /// Its socketmap listener.
    pub addr: SocketAddr,
}

impl StsResolver {
    /// The venv's `mta-sts-daemon`.
    pub fn program() -> PathBuf {
        let venv = std::env::var_os("TERN_TEST_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV));
        venv.join("bin/mta-sts-daemon")
    }

    /// Starts it and waits until it listens.
    pub fn start(resolver_ip: Ipv4Addr, ca: &Path) -> StsResolver {
        let program = Self::program();
        assert!(
            program.exists(),
            "{} missing: run scripts/install-test-deps.sh",
            program.display()
        );
        let dir = TempDir::new("mtasts-resolver");
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let resolv = dir.join("resolv.conf");
        write(&resolv, format!("nameserver {resolver_ip}\n"));
        let conf = dir.join("mta-sts-daemon.yml");
        // `reuse_port` stays at its default (true): 1.5.1 fails to start
        // with `reuse_port: false` (UnboundLocalError in responder.py).
        write(
            &conf,
            format!(
                "host: 127.0.0.1\nport: {port}\nshutdown_timeout: 1\n\
                 cache:\n  type: internal\n  options:\n    cache_size: 100\n\
                 default_zone:\n  strict_testing: false\n  timeout: 4\n  require_sni: true\n  \
                 tlsrpt: true\n"
            ),
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$1\" /etc/resolv.conf && exec \"$2\" -v debug -c \"$3\"",
            "sh",
        ])
        .arg(&resolv)
        .arg(&program)
        .arg(&conf)
        .env("SSL_CERT_FILE", ca);
        let mut daemon = Daemon::spawn("mta-sts-daemon", cmd, &dir.join("daemon.out"));
        let deadline = Instant::now() + WAIT;
        while !wait_listening(port, Duration::from_millis(50)) {
            if let Some(st) = daemon.exited() {
                panic!("mta-sts-daemon exited ({st}):\n{}", daemon.output());
            }
            assert!(
                Instant::now() < deadline,
                "mta-sts-daemon not listening on {port}:\n{}",
                daemon.output()
            );
        }
        StsResolver { daemon, dir, addr }
    }

    /// Its log (stdout/stderr, `-v debug`).
    pub fn output(&self) -> String {
        self.daemon.output()
    }

    /// tern's `smtp_tls_policy_maps` value for it.
    pub fn policy_maps(&self) -> String {
        format!("socketmap:inet:{}:postfix", self.addr)
    }
}

impl Drop for StsResolver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- mta-sts-daemon output\n{}", self.output());
        }
        self.daemon.stop();
    }
}
