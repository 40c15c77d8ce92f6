//! A DNSSEC test world on loopback: nsd serving the given zones (signed
//! with ldns-signzone, or not, or deliberately broken) and unbound as a
//! validating resolver with trust anchors from ldns-key2ds. Both run in the
//! foreground as children of the test and are stopped on drop.
//!
//! Use from a test file with
//! `#[path = "common/dnssec.rs"] mod dnssec;`.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a zone is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// Not signed, no trust anchor: answers are insecure (no AD).
    Unsigned,
    /// Signed, with the KSK's DS as unbound's trust anchor: answers get AD.
    Signed,
    /// Signed, but the anchor is the DS of another key: bogus (SERVFAIL).
    WrongAnchor,
    /// Signed with signatures that expired in 2020: bogus (SERVFAIL).
    ExpiredSignatures,
    /// Signed and anchored, but every AAAA signature is corrupted: AAAA
    /// answers are bogus (SERVFAIL), everything else validates (AD).
    BogusAaaa,
}

/// Spoils the signature (last field) of every RRSIG covering AAAA in
/// ldns-signzone output, keeping the base64 well-formed.
fn corrupt_aaaa_signatures(signed: &str) -> String {
    let mut out = String::with_capacity(signed.len());
    for line in signed.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let covers_aaaa = fields
            .iter()
            .position(|f| *f == "RRSIG")
            .is_some_and(|i| fields.get(i + 1) == Some(&"AAAA"));
        match (covers_aaaa, fields.last()) {
            (true, Some(sig)) => {
                let flipped: String = sig
                    .chars()
                    .enumerate()
                    .map(|(i, c)| match (i, c) {
                        (0, 'A') => 'B',
                        (0, _) => 'A',
                        (_, c) => c,
                    })
                    .collect();
                let keep = &line[..line.len() - sig.len()];
                out.push_str(keep);
                out.push_str(&flipped);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// One zone: its name and records in zone-file syntax, relative to the
/// origin (`@ MX 10 mx1`, `mx1 A 127.0.0.10`, ...). The harness adds SOA,
/// NS and the name server's address (`ns` A 127.0.0.1).
#[derive(Debug, Clone)]
pub struct Zone {
    /// Zone apex without trailing dot, e.g. `example.test`.
    pub name: String,
    /// Zone-file lines.
    pub records: String,
    /// How it is signed.
    pub signing: Signing,
}

impl Zone {
    /// Shorthand constructor.
    pub fn new(name: &str, signing: Signing, records: &str) -> Self {
        Zone {
            name: name.to_string(),
            records: records.to_string(),
            signing,
        }
    }
}

/// Running nsd + unbound. Drop stops both and removes the directory.
pub struct DnsWorld {
    /// Working directory (configs, keys, logs).
    pub dir: PathBuf,
    /// nsd's address (authoritative, answers without recursion).
    pub nsd: SocketAddr,
    /// unbound's address (validating resolver; point tern here).
    pub resolver: SocketAddr,
    /// DS records used as trust anchors, one per signed zone.
    pub anchors: Vec<String>,
    /// Time from `start` to both servers answering.
    pub startup: Duration,
    nsd_child: Option<Child>,
    unbound_child: Option<Child>,
    /// The zones as served (for [`DnsWorld::update_zone`]).
    zones: Vec<Zone>,
    /// Zone-file serial of the next [`DnsWorld::update_zone`].
    serial: u32,
}

static PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port free for both UDP and TCP, never handed out twice in
/// this process.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut used = PORTS.lock().unwrap();
        if used.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port");
}

fn run(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn keygen(dir: &Path, zone: &str, ksk: bool) -> String {
    let mut args = vec!["-a", "ECDSAP256SHA256"];
    if ksk {
        args.push("-k");
    }
    args.push(zone);
    run(dir, "ldns-keygen", &args).trim().to_string()
}

fn ds_of(dir: &Path, key_base: &str) -> String {
    let ds = run(
        dir,
        "ldns-key2ds",
        &["-n", "-2", &format!("{key_base}.key")],
    );
    // One line: owner TTL IN DS tag alg digesttype digest; unbound wants
    // it without the TTL being a problem, so pass it through as is.
    ds.trim().to_string()
}

/// Sends a query for `name` A and waits for any well-formed reply.
fn answers(addr: SocketAddr, name: &str) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let q = tern::dns::wire::Query::new(0x4242, name, tern::dns::RecordType::A).unwrap();
    let mut buf = [0u8; tern::dns::wire::MAX_QUERY_LEN];
    let n = q.encode(&mut buf).unwrap();
    if sock.send_to(&buf[..n], addr).is_err() {
        return false;
    }
    let mut rbuf = [0u8; 4096];
    match sock.recv_from(&mut rbuf) {
        Ok((n, _)) => tern::dns::wire::parse_reply(&rbuf[..n], &q).is_ok(),
        Err(_) => false,
    }
}

fn wait_until_up(addr: SocketAddr, name: &str, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if answers(addr, name) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{what} did not answer on {addr}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A zone file: SOA (with `serial`), NS, the name server's address, then
/// `records`.
fn zone_file(z: &str, serial: u32, records: &str) -> String {
    format!(
        "$ORIGIN {z}.\n$TTL 300\n@ IN SOA ns.{z}. hostmaster.{z}. {serial} 3600 600 86400 60\n\
         @ IN NS ns.{z}.\nns IN A 127.0.0.1\n{records}\n"
    )
}

fn stop(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        // SIGTERM first so the daemons clean up; then make sure.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl DnsWorld {
    /// Writes, signs and serves `zones`; returns when nsd and unbound both
    /// answer. Panics with the daemons' logs if they do not come up.
    pub fn start(zones: &[Zone]) -> DnsWorld {
        let ub_port = free_port();
        Self::start_at(zones, ([127, 0, 0, 1], ub_port).into())
    }

    /// Like [`DnsWorld::start`], with unbound listening on `resolver`
    /// (UDP and TCP), e.g. a loopback address of its own at port 53 for
    /// peers that resolve through `/etc/resolv.conf` (glibc, c-ares), which
    /// only speak port 53. The address must be free.
    pub fn start_at(zones: &[Zone], resolver: SocketAddr) -> DnsWorld {
        let t0 = Instant::now();
        let nsd_port = free_port();
        let ub_port = resolver.port();
        let ub_ip = resolver.ip();
        let dir = std::env::temp_dir().join(format!("tern-dns-{}-{nsd_port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let nsd: SocketAddr = ([127, 0, 0, 1], nsd_port).into();

        let mut nsd_conf = format!(
            "server:\n  ip-address: 127.0.0.1@{nsd_port}\n  database: \"\"\n  username: \"\"\n  \
             chroot: \"\"\n  zonesdir: \"{d}\"\n  zonelistfile: \"{d}/zone.list\"\n  \
             xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  \
             logfile: \"{d}/nsd.log\"\n  server-count: 1\n  verbosity: 1\n  \
             refuse-any: yes\nremote-control:\n  control-enable: no\n",
            d = dir.display()
        );
        let mut ub_conf = format!(
            "server:\n  interface: {ub_ip}@{ub_port}\n  port: {ub_port}\n  do-ip6: no\n  \
             username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  \
             use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  verbosity: 1\n  \
             val-log-level: 2\n  num-threads: 1\n  so-reuseport: no\n  \
             do-not-query-localhost: no\n  module-config: \"validator iterator\"\n  \
             access-control: 127.0.0.0/8 allow\n  local-zone: \".\" refuse\n  \
             local-zone: \"test.\" transparent\n  auto-trust-anchor-file: \"\"\n",
            d = dir.display()
        );
        let mut anchors = Vec::new();
        let mut tlds = HashSet::new();
        for zone in zones {
            let z = &zone.name;
            let file = format!("{z}.zone");
            std::fs::write(dir.join(&file), zone_file(z, 1, &zone.records)).unwrap();
            let served = if zone.signing == Signing::Unsigned {
                file.clone()
            } else {
                let ksk = keygen(&dir, z, true);
                let zsk = keygen(&dir, z, false);
                let signed = format!("{file}.signed");
                let mut args = vec!["-f", signed.as_str()];
                if zone.signing == Signing::ExpiredSignatures {
                    args.extend(["-i", "20190101000000", "-e", "20200101000000"]);
                }
                args.extend([file.as_str(), ksk.as_str(), zsk.as_str()]);
                run(&dir, "ldns-signzone", &args);
                if zone.signing == Signing::BogusAaaa {
                    let path = dir.join(&signed);
                    let text = std::fs::read_to_string(&path).unwrap();
                    let spoilt = corrupt_aaaa_signatures(&text);
                    assert_ne!(text, spoilt, "no AAAA signature in zone {z}");
                    std::fs::write(&path, spoilt).unwrap();
                }
                let anchor_key = if zone.signing == Signing::WrongAnchor {
                    keygen(&dir, z, true)
                } else {
                    ksk
                };
                let ds = ds_of(&dir, &anchor_key);
                writeln!(ub_conf, "  trust-anchor: \"{ds}\"").unwrap();
                anchors.push(ds);
                signed
            };
            writeln!(nsd_conf, "zone:\n  name: \"{z}\"\n  zonefile: \"{served}\"").unwrap();
            if let Some(tld) = z.rsplit('.').next() {
                if tlds.insert(tld.to_string()) && tld != "test" {
                    writeln!(ub_conf, "  local-zone: \"{tld}.\" transparent").unwrap();
                }
            }
        }
        for zone in zones {
            writeln!(
                ub_conf,
                "stub-zone:\n  name: \"{}.\"\n  stub-addr: 127.0.0.1@{nsd_port}",
                zone.name
            )
            .unwrap();
        }
        ub_conf.push_str("remote-control:\n  control-enable: no\n");
        std::fs::write(dir.join("nsd.conf"), &nsd_conf).unwrap();
        std::fs::write(dir.join("unbound.conf"), &ub_conf).unwrap();

        let mut world = DnsWorld {
            dir,
            nsd,
            resolver,
            anchors,
            startup: Duration::ZERO,
            nsd_child: None,
            unbound_child: None,
            zones: zones.to_vec(),
            serial: 2,
        };
        world.spawn();
        world.startup = t0.elapsed();
        world
    }

    /// Starts nsd, waits for it, then unbound, from the files in `dir`.
    fn spawn(&mut self) {
        let dir = &self.dir;
        let null = || Stdio::null();
        let mut nsd_child = Command::new("nsd")
            .args(["-d", "-c"])
            .arg(dir.join("nsd.conf"))
            .stdin(null())
            .stdout(null())
            .stderr(std::fs::File::create(dir.join("nsd.stderr")).unwrap())
            .spawn()
            .expect("nsd");
        let probe = self
            .zones
            .first()
            .map_or("test", |z| z.name.as_str())
            .to_string();
        wait_until_up(
            self.nsd,
            &probe,
            &mut nsd_child,
            &dir.join("nsd.log"),
            "nsd",
        );
        self.nsd_child = Some(nsd_child);
        let mut ub_child = Command::new("unbound")
            .args(["-d", "-c"])
            .arg(dir.join("unbound.conf"))
            .stdin(null())
            .stdout(null())
            .stderr(std::fs::File::create(dir.join("unbound.stderr")).unwrap())
            .spawn()
            .expect("unbound");
        wait_until_up(
            self.resolver,
            &probe,
            &mut ub_child,
            &dir.join("unbound.log"),
            "unbound",
        );
        self.unbound_child = Some(ub_child);
    }

    /// Replaces the records of the unsigned zone `name` (as in [`Zone`])
    /// and restarts nsd and unbound on the same addresses, so that the new
    /// records are served at once and unbound's cache is empty. Caches of
    /// the clients (tern's resolver) still hold the old answers for their
    /// TTL: give records that a test changes a short TTL.
    pub fn update_zone(&mut self, name: &str, records: &str) {
        let zone = self
            .zones
            .iter_mut()
            .find(|z| z.name == name)
            .unwrap_or_else(|| panic!("no zone {name} in this world"));
        assert_eq!(
            zone.signing,
            Signing::Unsigned,
            "update_zone re-serves unsigned zones only"
        );
        zone.records = records.to_string();
        let file = self.dir.join(format!("{name}.zone"));
        std::fs::write(&file, zone_file(name, self.serial, records)).unwrap();
        self.serial += 1;
        stop(&mut self.unbound_child);
        stop(&mut self.nsd_child);
        self.spawn();
    }
    /// Settings for tern's resolver pointing at unbound, with a short
    /// timeout so failing tests fail fast.
    pub fn resolver_config(&self) -> tern::dns::ResolverConfig {
        let mut c = tern::dns::ResolverConfig::with_servers(vec![self.resolver]);
        c.timeout = Duration::from_secs(2);
        c.attempts = 1;
        c
    }

    /// Stops unbound now (to show that answers come from tern's cache).
    pub fn stop_resolver(&mut self) {
        stop(&mut self.unbound_child);
    }
}

impl Drop for DnsWorld {
    fn drop(&mut self) {
        stop(&mut self.unbound_child);
        stop(&mut self.nsd_child);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
