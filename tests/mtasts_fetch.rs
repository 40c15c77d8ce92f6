//! Issue 11, MTA-STS fetch and cache against real peers: Debian's nginx
//! serving policies over HTTPS with certificates from a test CA, names
//! resolved through nsd on loopback (an unsigned zone; tern's resolver
//! asks it directly, so a changed TXT record is seen at once). The
//! `StsResolver` runs in-process (`smol::block_on`), as the daemon runs it;
//! `tern sts purge` is the real binary, and the wake-up datagram it sends
//! is received by this process as the daemon would receive it.
//!
//! nginx listens on a free loopback port, not 443 (`FetchSettings::port`),
//! so that tests of other worktrees on the same machine cannot collide.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::{KeyKind, TestCa};
use common::dnssec::{DnsWorld, Signing, Zone};
use common::ports::{free_port, wait_listening};
use common::tempdir::{write, TempDir};
use tern::dns::{Resolver, ResolverConfig};
use tern::mtasts::{
    cache, Cache, FailureKind, FetchSettings, Fetcher, Mode, Source, StsLookup, StsResolver,
};
use tern::tls::{BufferPool, TlsParams};

const ZONE: &str = "example.test";

fn policy(id_note: &str, mx: &str) -> String {
    format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 86400\nnote: {id_note}\n")
}

/// The zone: for each case `C`, `_mta-sts.C` TXT with `ids[C]` and
/// `mta-sts.C` A 127.0.0.1.
fn records(ids: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (case, id) in ids {
        s.push_str(&format!(
            "_mta-sts.{case} IN TXT \"v=STSv1; id={id};\"\nmta-sts.{case} IN A 127.0.0.1\n"
        ));
    }
    s
}

const CASES: &[&str] = &["ok", "redirect", "wrongtype", "big", "wrongname", "down"];

fn initial_ids() -> Vec<(&'static str, &'static str)> {
    CASES.iter().map(|c| (*c, "1")).collect()
}

/// nginx in the foreground (no master), killed on drop.
struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, port: u16, ca: &TestCa) -> Nginx {
        let ok = ca.server_cert(KeyKind::EcdsaP256, &["mta-sts.ok.example.test"]);
        let other = ca.server_cert(KeyKind::EcdsaP256, &["mta-sts.elsewhere.example.test"]);
        let sans: Vec<String> = CASES
            .iter()
            .filter(|c| **c != "wrongname")
            .map(|c| format!("mta-sts.{c}.example.test"))
            .collect();
        let sans: Vec<&str> = sans.iter().map(String::as_str).collect();
        let all = ca.server_cert(KeyKind::EcdsaP256, &sans);
        let d = dir.display();
        for c in CASES {
            std::fs::create_dir_all(dir.join(c).join(".well-known")).unwrap();
        }
        let ok_policy = policy("first", "mx.ok.example.test");
        write(&dir.join("ok/.well-known/mta-sts.txt"), &ok_policy);
        for c in ["redirect", "wrongtype", "wrongname", "down"] {
            write(
                &dir.join(c).join(".well-known/mta-sts.txt"),
                policy(c, "mx.example.test"),
            );
        }
        // Over 64 KiB: a valid policy followed by comment-like padding.
        let big = policy("big", "mx.example.test") + &"x: padding\n".repeat(7000);
        write(&dir.join("big/.well-known/mta-sts.txt"), big);
        let server = |name: &str, cert: &common::certs::Leaf, extra: &str| {
            format!(
                "  server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name mta-sts.{name}.example.test;\n    \
                 ssl_certificate {};\n    ssl_certificate_key {};\n    root {d}/{name};\n{extra}  }}\n",
                cert.chain.display(),
                cert.key.display()
            )
        };
        let mut conf = format!(
            "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\nhttp {{\n  access_log {d}/access.log;\n  \
             client_body_temp_path {d}/tmp-body;\n  proxy_temp_path {d}/tmp-proxy;\n  \
             fastcgi_temp_path {d}/tmp-fcgi;\n  uwsgi_temp_path {d}/tmp-uwsgi;\n  scgi_temp_path {d}/tmp-scgi;\n  \
             types {{ text/plain txt; }}\n  default_type application/octet-stream;\n"
        );
        conf += &server("ok", &ok, "");
        conf += &server(
            "redirect",
            &all,
            "    location = /.well-known/mta-sts.txt { return 301 https://mta-sts.ok.example.test/.well-known/mta-sts.txt; }\n",
        );
        conf += &server("wrongtype", &all, "    types { text/html txt; }\n");
        conf += &server("big", &all, "");
        conf += &server("wrongname", &other, "");
        conf += &server("down", &all, "");
        conf += "}\n";
        write(&dir.join("nginx.conf"), conf);
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (apt-get install nginx-light)");
        let mut n = Nginx {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        if !wait_listening(port, Duration::from_secs(10)) {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            n.stop();
            panic!("nginx did not listen on {port}: {log}");
        }
        n
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory preconditions.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn set_policy(&self, case: &str, text: &str) {
        write(&self.dir.join(case).join(".well-known/mta-sts.txt"), text);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything a test needs: DNS, nginx, the CA, a queue directory and the
/// resolver pieces.
struct World {
    dns: DnsWorld,
    nginx: Nginx,
    _ca: TestCa,
    dir: TempDir,
    port: u16,
    resolver: Rc<Resolver>,
    roots: Arc<rustls::RootCertStore>,
    pool: Rc<BufferPool>,
    serial: u32,
}

impl World {
    fn start() -> World {
        let dns = DnsWorld::start(&[Zone::new(ZONE, Signing::Unsigned, &records(&initial_ids()))]);
        let ca = TestCa::new();
        let dir = TempDir::new("mtasts");
        let port = free_port();
        let nginx = Nginx::start(&dir.subdir("www"), port, &ca);
        let mut rc = ResolverConfig::with_servers(vec![dns.nsd]);
        rc.timeout = Duration::from_secs(2);
        rc.attempts = 1;
        let roots = tern::tls::verify::load_ca_file(&ca.cert).expect("CA file");
        World {
            dns,
            nginx,
            _ca: ca,
            dir,
            port,
            resolver: Rc::new(Resolver::new(rc)),
            roots: Arc::new(roots),
            pool: Rc::new(BufferPool::new(2)),
            serial: 1,
        }
    }

    fn queue_dir(&self) -> PathBuf {
        self.dir.join("queue")
    }

    /// A resolver as the daemon builds it, its cache loaded from flash.
    fn sts(&self) -> StsResolver {
        let settings = FetchSettings {
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(5),
            ipv4: true,
            ipv6: false,
            port: self.port,
        };
        let tls = TlsParams::from_postfix("", "", false).unwrap();
        let fetcher = Fetcher::new(
            settings,
            self.resolver.clone(),
            self.pool.clone(),
            self.roots.clone(),
            tls,
        );
        let cache = Cache::load(
            100,
            self.queue_dir().join(cache::DIR),
            tern::mtasts::resolver::unix_now(),
        );
        StsResolver::new(true, fetcher, self.resolver.clone(), cache)
    }

    /// Publishes new TXT ids: rewrites the zone, has nsd reload it, waits
    /// until `watch`'s record is served as `ids` says (or is gone), and
    /// empties tern's DNS cache.
    fn set_ids(&mut self, ids: &[(&str, &str)], watch: &str) {
        self.serial += 1;
        let body = format!(
            "$ORIGIN {ZONE}.\n$TTL 300\n@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. {} 3600 600 86400 60\n\
             @ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n{}\n",
            self.serial,
            records(ids)
        );
        write(&self.dns.dir.join(format!("{ZONE}.zone")), body);
        let pid: i32 = std::fs::read_to_string(self.dns.dir.join("nsd.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: kill has no memory preconditions.
        unsafe {
            libc::kill(pid, libc::SIGHUP);
        }
        let want = ids
            .iter()
            .find(|(c, _)| *c == watch)
            .map(|(_, id)| format!("v=STSv1; id={id};").into_bytes());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.resolver.clear_cache();
            let got = smol::block_on(
                self.resolver
                    .lookup_txt(&format!("_mta-sts.{watch}.{ZONE}")),
            );
            let served = got.map(|a| a.records.iter().map(|t| t.joined()).collect::<Vec<_>>());
            match (&want, served) {
                (Some(w), Ok(r)) if r.contains(w) => break,
                (None, Ok(r)) if r.is_empty() => break,
                _ => {}
            }
            assert!(Instant::now() < deadline, "nsd did not reload the zone");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.resolver.clear_cache();
    }
}

fn now() -> u64 {
    tern::mtasts::resolver::unix_now()
}

fn expect_policy(l: &StsLookup, source: Source) -> Rc<tern::mtasts::Policy> {
    match l {
        StsLookup::Policy {
            policy, source: s, ..
        } if *s == source => policy.clone(),
        other => panic!("expected a policy from {source:?}, got {other:?}"),
    }
}

fn expect_failed(l: &StsLookup, kind: FailureKind) -> String {
    match l {
        StsLookup::Failed(f) if f.kind == kind => f.reason.clone(),
        other => panic!("expected a {kind:?} failure, got {other:?}"),
    }
}

#[test]
fn fetch_ok_and_refusals() {
    let w = World::start();
    let sts = w.sts();
    let d = |c: &str| format!("{c}.{ZONE}");

    // A good policy: fetched, cached in memory and on flash.
    let p = expect_policy(
        &smol::block_on(sts.policy_for(&d("ok"), now())),
        Source::Fetched,
    );
    assert_eq!(p.mode, Mode::Enforce);
    assert!(p.matches("mx.ok.example.test"));
    assert!(!p.matches("mx.example.test"));
    let file = w.queue_dir().join("mta-sts").join(d("ok"));
    let on_flash = cache::read_file(&file).expect("cache file");
    assert_eq!(on_flash.id.as_str(), "1");
    // The second lookup is the cache's (same id, far from expiry).
    expect_policy(
        &smol::block_on(sts.policy_for(&d("ok"), now())),
        Source::Cache,
    );
    // Names are compared without case or trailing dot.
    expect_policy(
        &smol::block_on(sts.policy_for("OK.Example.Test.", now())),
        Source::Cache,
    );

    // No redirects (RFC 8461 §3.3).
    let why = expect_failed(
        &smol::block_on(sts.policy_for(&d("redirect"), now())),
        FailureKind::StsPolicyFetchError,
    );
    assert!(why.contains("HTTP status 301"), "{why}");
    // text/plain only (§3.2).
    let why = expect_failed(
        &smol::block_on(sts.policy_for(&d("wrongtype"), now())),
        FailureKind::StsPolicyInvalid,
    );
    assert!(why.contains("text/html"), "{why}");
    // 64 KiB at most.
    let why = expect_failed(
        &smol::block_on(sts.policy_for(&d("big"), now())),
        FailureKind::StsPolicyFetchError,
    );
    assert!(why.contains("larger than 65536"), "{why}");
    // A certificate for another name: sts-webpki-invalid.
    let why = expect_failed(
        &smol::block_on(sts.policy_for(&d("wrongname"), now())),
        FailureKind::StsWebpkiInvalid,
    );
    assert!(why.contains("certificate"), "{why}");
    // None of the failures left anything on flash.
    for c in ["redirect", "wrongtype", "big", "wrongname"] {
        assert!(!w.queue_dir().join("mta-sts").join(d(c)).exists(), "{c}");
    }
    // A domain without a record has no policy and costs no fetch.
    assert!(matches!(
        smol::block_on(sts.policy_for("nothing.example.test", now())),
        StsLookup::None
    ));
    // The slot went back to the pool after every fetch.
    assert_eq!(w.pool.available(), w.pool.capacity());
}

#[test]
fn cached_policy_outlives_a_dead_server_and_a_restart() {
    let mut w = World::start();
    let domain = format!("down.{ZONE}");
    {
        let sts = w.sts();
        expect_policy(
            &smol::block_on(sts.policy_for(&domain, now())),
            Source::Fetched,
        );
    }
    // The policy host goes away and the domain announces a new id: the
    // refetch fails, the unexpired cached policy is still used (§5).
    w.nginx.stop();
    let mut ids = initial_ids();
    ids.retain(|(c, _)| *c != "down");
    ids.push(("down", "2"));
    w.set_ids(&ids, "down");
    let sts = w.sts();
    // This resolver was built after the first fetch: it read the policy
    // from flash, as after a restart.
    assert_eq!(sts.cache().borrow().len(), 1);
    match smol::block_on(sts.policy_for(&domain, now())) {
        StsLookup::Policy {
            policy,
            source: Source::Cache,
            refresh_error: Some(f),
        } => {
            assert_eq!(policy.mode, Mode::Enforce);
            assert_eq!(f.kind, FailureKind::StsPolicyFetchError);
            assert!(
                f.reason.contains("connect to mta-sts.down.example.test"),
                "{f:?}"
            );
        }
        other => panic!("expected the cached policy with a refresh error, got {other:?}"),
    }
    drop(sts);
    // Another "restart" while the server is still down: same answer.
    let sts = w.sts();
    expect_policy(
        &smol::block_on(sts.policy_for(&domain, now())),
        Source::Cache,
    );
    // With the record gone, the unexpired cached policy still applies.
    let mut ids = initial_ids();
    ids.retain(|(c, _)| *c != "down");
    w.set_ids(&ids, "down");
    let sts = w.sts();
    expect_policy(
        &smol::block_on(sts.policy_for(&domain, now())),
        Source::Cache,
    );
}

#[test]
fn id_change_refetches_and_purge_refetches() {
    let mut w = World::start();
    let domain = format!("ok.{ZONE}");
    let sts = w.sts();
    let p = expect_policy(
        &smol::block_on(sts.policy_for(&domain, now())),
        Source::Fetched,
    );
    assert!(p.matches("mx.ok.example.test"));

    // New policy and new id: fetched again.
    w.nginx
        .set_policy("ok", &policy("second", "mx2.ok.example.test"));
    let mut ids = initial_ids();
    ids.retain(|(c, _)| *c != "ok");
    ids.push(("ok", "2"));
    w.set_ids(&ids, "ok");
    let p = expect_policy(
        &smol::block_on(sts.policy_for(&domain, now())),
        Source::Fetched,
    );
    assert!(p.matches("mx2.ok.example.test") && !p.matches("mx.ok.example.test"));
    let file = w.queue_dir().join("mta-sts").join(&domain);
    assert_eq!(cache::read_file(&file).unwrap().id.as_str(), "2");

    // The domain changes its policy but forgets the id: the cache keeps
    // the old one, as the RFC says...
    w.nginx
        .set_policy("ok", &policy("third", "mx3.ok.example.test"));
    let p = expect_policy(
        &smol::block_on(sts.policy_for(&domain, now())),
        Source::Cache,
    );
    assert!(p.matches("mx2.ok.example.test"));

    // ... until the operator purges it. This process plays the daemon: it
    // holds the wake-up socket, as `tern run` does.
    let q = w.queue_dir();
    let listener = tern::queue::wake::Listener::bind(&q).expect("wake socket");
    let conf = w.dir.join("tern.conf");
    write(&conf, format!("queue_directory = {}\n", q.display()));
    let tern = env!("CARGO_BIN_EXE_tern");
    let out = Command::new(tern)
        .args(["sts", "-c"])
        .arg(&conf)
        .arg("list")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        listing.contains(&domain) && listing.contains("mx2.ok.example.test"),
        "{listing}"
    );
    let out = Command::new(tern)
        .args(["sts", "-c"])
        .arg(&conf)
        .args(["purge", &domain])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(said.contains("1 cached policy file(s) removed"), "{said}");
    assert!(said.contains("running daemon was told"), "{said}");
    assert!(!file.exists());
    let wake = smol::block_on(listener.recv()).unwrap();
    assert_eq!(
        wake,
        tern::queue::wake::Wake::StsPurge(Some(domain.clone()))
    );
    sts.purge(Some(&domain));
    let p = expect_policy(
        &smol::block_on(sts.policy_for(&domain, now())),
        Source::Fetched,
    );
    assert!(p.matches("mx3.ok.example.test"), "{p:?}");
    assert!(file.exists());

    // With no daemon running, purge only deletes the files.
    drop(listener);
    let out = Command::new(tern)
        .args(["sts", "-c"])
        .arg(&conf)
        .args(["purge", "ALL"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(said.contains("all domains: 1 cached"), "{said}");
    assert!(!said.contains("daemon"), "{said}");
    assert!(!file.exists());
    // `--help` prints usage and does nothing; unknown options are errors.
    let out = Command::new(tern)
        .args(["sts", "purge", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: tern sts"));
    let out = Command::new(tern)
        .args(["sts", "-c"])
        .arg(&conf)
        .args(["list", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}
