//! tern's stub resolver against real servers on loopback: nsd serving
//! signed, unsigned and broken zones, unbound validating in front of it.

#[path = "common/dnssec.rs"]
mod dnssec;

use dnssec::{DnsWorld, Signing, Zone};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use tern::dns::mx::{resolve_next_hop_hosts, MxHost, NextHops};
use tern::dns::{DnsError, Resolver, ResolverConfig, Status, Tlsa};

const TLSA_HEX: &str = "8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1";

fn big_txt() -> String {
    let s = format!("\"{}\"", "x".repeat(200));
    vec![s; 20].join(" ")
}

fn zones() -> Vec<Zone> {
    vec![
        Zone::new(
            "example.test",
            Signing::Signed,
            &format!(
                "@ MX 20 mx2\n@ MX 10 mx1\n@ TXT \"v=STSv1; id=20240101\"\n\
                 mx1 A 127.0.0.10\nmx1 AAAA 2001:db8::10\nmx2 A 127.0.0.11\n\
                 _25._tcp.mx1 TLSA 3 1 1 {TLSA_HEX}\nwww CNAME mx1\n\
                 nomail MX 0 .\nhostonly A 127.0.0.12\nbig TXT {}\n",
                big_txt()
            ),
        ),
        Zone::new(
            "insecure.test",
            Signing::Unsigned,
            "@ MX 10 mx\nmx A 127.0.0.20\n_25._tcp.mx TLSA 3 1 1 00ff\n",
        ),
        Zone::new(
            "bogus.test",
            Signing::WrongAnchor,
            "@ MX 10 mx\nmx A 127.0.0.30\n",
        ),
        Zone::new(
            "expired.test",
            Signing::ExpiredSignatures,
            "@ MX 10 mx\nmx A 127.0.0.40\n",
        ),
    ]
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f)
}

#[test]
fn dnssec_world_lookups() {
    let world = DnsWorld::start(&zones());
    eprintln!("DNSSEC world up in {:?}", world.startup);
    let r = Resolver::new(world.resolver_config());
    assert!(r.servers_are_loopback());
    // Our query carries DO: unbound echoes it and sends signatures along.
    let q = tern::dns::wire::Query::new(99, "example.test", tern::dns::RecordType::Mx).unwrap();
    let mut buf = [0u8; tern::dns::wire::MAX_QUERY_LEN];
    let n = q.encode(&mut buf).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&buf[..n], world.resolver).unwrap();
    let mut rbuf = [0u8; 4096];
    let (len, _) = sock.recv_from(&mut rbuf).unwrap();
    let reply = tern::dns::wire::parse_reply(&rbuf[..len], &q).unwrap();
    assert!(reply.authenticated);
    assert!(reply.edns.is_some_and(|e| e.dnssec_ok && e.version == 0));
    assert_eq!(reply.rcode, 0);
    // RRSIG (type 46) came along: answer count exceeds the 2 MX we keep.
    assert!(u16::from_be_bytes([rbuf[6], rbuf[7]]) > 2);
    assert_eq!(reply.records.len(), 2);
    block_on(async {
        // Signed zone: everything authenticated.
        let mx = r.lookup_mx("example.test").await.unwrap();
        assert_eq!(mx.status, Status::Found);
        assert!(mx.authenticated);
        assert_eq!(mx.records.len(), 2);

        let hops = resolve_next_hop_hosts(&r, "Example.Test.").await.unwrap();
        assert!(hops.authenticated);
        assert_eq!(hops.domain, "example.test");
        assert_eq!(
            hops.hops,
            NextHops::Mx(vec![
                MxHost {
                    name: "mx1.example.test".into(),
                    preference: 10
                },
                MxHost {
                    name: "mx2.example.test".into(),
                    preference: 20
                },
            ])
        );

        let ip = r.lookup_ip("mx1.example.test").await.unwrap();
        assert!(ip.authenticated);
        assert_eq!(
            ip.records,
            vec![
                "127.0.0.10".parse::<IpAddr>().unwrap(),
                "2001:db8::10".parse().unwrap()
            ]
        );

        let txt = r.lookup_txt("example.test").await.unwrap();
        assert!(txt.authenticated);
        assert_eq!(txt.records.len(), 1);
        assert_eq!(txt.records[0].joined(), b"v=STSv1; id=20240101");

        let tlsa = r.lookup_tlsa("_25._tcp.mx1.example.test").await.unwrap();
        assert!(tlsa.authenticated);
        let data: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&TLSA_HEX[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            tlsa.records,
            vec![Tlsa {
                usage: 3,
                selector: 1,
                matching_type: 1,
                data
            }]
        );

        // CNAME followed, final name reported, still secure.
        let www = r.lookup_a("www.example.test").await.unwrap();
        assert_eq!(www.name, "mx1.example.test");
        assert!(www.authenticated);
        assert_eq!(
            www.records,
            vec!["127.0.0.10".parse::<std::net::Ipv4Addr>().unwrap()]
        );

        // Secure denial: NXDOMAIN and NODATA, both with AD.
        let nx = r.lookup_tlsa("_25._tcp.mx2.example.test").await.unwrap();
        assert_eq!(nx.status, Status::NxDomain);
        assert!(nx.authenticated && nx.records.is_empty());
        let nodata = r.lookup_aaaa("mx2.example.test").await.unwrap();
        assert_eq!(nodata.status, Status::NoData);
        assert!(nodata.authenticated);
        assert!(
            nodata.ttl > 0 && nodata.ttl <= 60,
            "negative TTL {}",
            nodata.ttl
        );
        let nx_ip = r.lookup_ip("nothere.example.test").await.unwrap();
        assert_eq!(nx_ip.status, Status::NxDomain);

        // Null MX and implicit MX.
        let null = resolve_next_hop_hosts(&r, "nomail.example.test")
            .await
            .unwrap();
        assert_eq!(null.hops, NextHops::NullMx);
        assert!(null.authenticated);
        let implicit = resolve_next_hop_hosts(&r, "hostonly.example.test")
            .await
            .unwrap();
        assert_eq!(
            implicit.hops,
            NextHops::Implicit(MxHost {
                name: "hostonly.example.test".into(),
                preference: 0
            })
        );
        assert!(implicit.authenticated);
        let gone = resolve_next_hop_hosts(&r, "nothere.example.test")
            .await
            .unwrap();
        assert_eq!(gone.hops, NextHops::NxDomain);

        // Unsigned zone: same kind of answers, no AD.
        let imx = resolve_next_hop_hosts(&r, "insecure.test").await.unwrap();
        assert!(!imx.authenticated);
        assert_eq!(
            imx.hops,
            NextHops::Mx(vec![MxHost {
                name: "mx.insecure.test".into(),
                preference: 10
            }])
        );
        let itlsa = r.lookup_tlsa("_25._tcp.mx.insecure.test").await.unwrap();
        assert!(!itlsa.authenticated);
        assert_eq!(itlsa.records.len(), 1);
        let inx = r.lookup_mx("nothere.insecure.test").await.unwrap();
        assert_eq!((inx.status, inx.authenticated), (Status::NxDomain, false));

        // Bogus zones: SERVFAIL, never an answer.
        assert_eq!(r.lookup_mx("bogus.test").await, Err(DnsError::ServFail));
        assert_eq!(r.lookup_a("mx.bogus.test").await, Err(DnsError::ServFail));
        assert_eq!(r.lookup_mx("expired.test").await, Err(DnsError::ServFail));
        assert_eq!(
            resolve_next_hop_hosts(&r, "bogus.test").await,
            Err(DnsError::ServFail)
        );

        // Outside the served zones unbound refuses.
        assert_eq!(r.lookup_mx("example.com").await, Err(DnsError::Refused));
        assert_eq!(r.lookup_mx("bad name").await, Err(DnsError::InvalidName));
    });
}

#[test]
fn tcp_fallback_for_large_answers() {
    let world = DnsWorld::start(&zones());
    // Over UDP alone, both servers set TC for this name at our payload size.
    for server in [world.resolver, world.nsd] {
        let q =
            tern::dns::wire::Query::new(7, "big.example.test", tern::dns::RecordType::Txt).unwrap();
        let mut buf = [0u8; tern::dns::wire::MAX_QUERY_LEN];
        let n = q.encode(&mut buf).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.send_to(&buf[..n], server).unwrap();
        let mut rbuf = [0u8; 4096];
        let (len, _) = sock.recv_from(&mut rbuf).unwrap();
        assert!(len <= 1232);
        let reply = tern::dns::wire::parse_reply(&rbuf[..len], &q).unwrap();
        assert!(reply.truncated, "via {server}");
    }
    block_on(async {
        // Through unbound, and straight from nsd (authoritative, no
        // recursion): 4000+ bytes do not fit our 1232-byte EDNS payload.
        for server in [world.resolver, world.nsd] {
            let mut cfg = ResolverConfig::with_servers(vec![server]);
            cfg.timeout = Duration::from_secs(2);
            cfg.attempts = 1;
            let r = Resolver::new(cfg);
            let a = r.lookup_txt("big.example.test").await.unwrap();
            assert_eq!(a.records.len(), 1, "via {server}");
            assert_eq!(a.records[0].strings.len(), 20);
            assert_eq!(a.records[0].joined(), "x".repeat(4000).into_bytes());
            assert_eq!(a.authenticated, server == world.resolver);
        }
    });
}

#[test]
fn cache_answers_without_the_server() {
    let mut world = DnsWorld::start(&zones());
    let mut cfg = world.resolver_config();
    cfg.timeout = Duration::from_millis(300);
    let r = Resolver::new(cfg);
    block_on(async {
        let first = r.lookup_mx("example.test").await.unwrap();
        let nodata = r.lookup_aaaa("mx2.example.test").await.unwrap();
        world.stop_resolver();
        let again = r.lookup_mx("EXAMPLE.test").await.unwrap();
        assert_eq!(again.records, first.records);
        assert!(again.authenticated);
        assert!(again.ttl <= first.ttl);
        // Negative answers are cached too.
        assert_eq!(
            r.lookup_aaaa("mx2.example.test").await.unwrap().status,
            nodata.status
        );
        // Something never asked now fails: the server is gone.
        assert!(r.lookup_txt("example.test").await.is_err());
        r.clear_cache();
        assert!(r.lookup_mx("example.test").await.is_err());
    });
}

#[test]
fn timeout_and_retry_across_servers() {
    // A socket that never answers (and never sends ICMP errors).
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let mut cfg = ResolverConfig::with_servers(vec![silent_addr]);
    cfg.timeout = Duration::from_millis(200);
    cfg.attempts = 2;
    let r = Resolver::new(cfg.clone());
    let t0 = Instant::now();
    assert_eq!(
        block_on(r.lookup_mx("example.test")),
        Err(DnsError::Timeout)
    );
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");

    // The first server is silent, the second answers.
    let world = DnsWorld::start(&zones());
    cfg.servers = vec![silent_addr, world.resolver];
    let r = Resolver::new(cfg);
    let a = block_on(r.lookup_mx("example.test")).unwrap();
    assert!(a.authenticated);
}

#[test]
fn closed_port_is_unreachable() {
    let port = dnssec::free_port();
    let mut cfg = ResolverConfig::with_servers(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    cfg.timeout = Duration::from_millis(500);
    cfg.attempts = 1;
    let r = Resolver::new(cfg);
    assert_eq!(
        block_on(r.lookup_a("example.test")),
        Err(DnsError::Unreachable(std::io::ErrorKind::ConnectionRefused))
    );
}
