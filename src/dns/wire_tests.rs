//! Tests of the wire layer. Well-formed replies are built with simple-dns
//! (an independent encoder, with name compression); malformed ones by hand.

use super::*;
use crate::dns::{DnsError, Status};
use simple_dns::rdata::{self as sd, RData as SdRData};
use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE};

const ID: u16 = 0x1234;

fn q(name: &str, t: RecordType) -> Query {
    Query::new(ID, name, t).unwrap()
}

fn sd_reply<'a>(name: &'a str, t: RecordType, flags: PacketFlag) -> Packet<'a> {
    let mut p = Packet::new_reply(ID);
    p.set_flags(flags);
    p.questions.push(Question::new(
        Name::new_unchecked(name),
        QTYPE::TYPE(TYPE::from(t.code())),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    p
}

fn rr<'a>(name: &'a str, ttl: u32, rdata: SdRData<'a>) -> ResourceRecord<'a> {
    ResourceRecord::new(Name::new_unchecked(name), CLASS::IN, ttl, rdata)
}

/// Hand-built message: header, one question, then raw records.
fn raw(id: u16, flags: u16, qname: &[u8], qtype: u16, counts: [u16; 3], rest: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    for c in counts {
        m.extend_from_slice(&c.to_be_bytes());
    }
    m.extend_from_slice(qname);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(rest);
    m
}

/// A raw record owned by a pointer to the question name (offset 12).
fn raw_rr(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = vec![0xC0, 12];
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

const QNAME: &[u8] = b"\x07example\x04test\x00";

#[test]
fn query_has_edns_do_and_rd() {
    let query = q("Example.TEST.", RecordType::Mx);
    assert_eq!(query.name, "example.test");
    let mut buf = [0u8; MAX_QUERY_LEN];
    let n = query.encode(&mut buf).unwrap();
    let m = &buf[..n];
    assert_eq!(&m[..2], &ID.to_be_bytes());
    assert_eq!(m[2] & 0x01, 0x01, "RD");
    assert_eq!(&m[4..12], &[0, 1, 0, 0, 0, 0, 0, 1]);
    // Question, then the OPT record: root, 41, 1232, TTL 0x00008000, rdlen 0.
    assert_eq!(&m[12..12 + QNAME.len()], QNAME);
    assert_eq!(
        &m[12 + QNAME.len()..],
        b"\x00\x0f\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"
    );
    // An independent parser agrees on the rest.
    let p = Packet::parse(m).unwrap();
    assert_eq!(p.id(), ID);
    assert_eq!(p.opt().unwrap().udp_packet_size, 1232);
    assert_eq!(p.questions[0].qname.to_string(), "example.test");
}

#[test]
fn tlsa_query_uses_type_52() {
    let query = q("_25._tcp.mx.example.test", RecordType::Tlsa);
    let mut buf = [0u8; MAX_QUERY_LEN];
    let n = query.encode(&mut buf).unwrap();
    let qlen = query.name.len() + 2;
    assert_eq!(&buf[12 + qlen..12 + qlen + 4], &[0, 52, 0, 1]);
    assert!(n > 12 + qlen + 4);
}

#[test]
fn query_name_validation_and_buffer() {
    for bad in [
        "",
        ".",
        "a..b",
        "exa mple.test",
        "ex\\.ample",
        "bücher.test",
        &"a".repeat(64),
        &format!("{}.test", ["abcdefghi"; 26].join(".")),
    ] {
        assert_eq!(
            Query::new(1, bad, RecordType::A),
            Err(WireError::InvalidName),
            "{bad:?}"
        );
    }
    assert!(Query::new(1, &"a".repeat(63), RecordType::A).is_ok());
    let mut small = [0u8; MAX_QUERY_LEN - 1];
    assert_eq!(
        q("example.test", RecordType::A).encode(&mut small),
        Err(WireError::BufferTooSmall)
    );
}

#[test]
fn parses_compressed_answers_of_every_type() {
    let mut p = sd_reply(
        "example.test",
        RecordType::Mx,
        PacketFlag::RESPONSE | PacketFlag::AUTHENTIC_DATA | PacketFlag::RECURSION_AVAILABLE,
    );
    p.answers.push(rr(
        "example.test",
        300,
        SdRData::MX(sd::MX {
            preference: 10,
            exchange: Name::new_unchecked("mx1.example.test"),
        }),
    ));
    p.answers.push(rr(
        "EXAMPLE.test",
        200,
        SdRData::MX(sd::MX {
            preference: 20,
            exchange: Name::new_unchecked("MX2.example.test"),
        }),
    ));
    p.answers.push(rr(
        "mx1.example.test",
        50,
        SdRData::A(std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
    ));
    p.answers.push(rr(
        "mx1.example.test",
        50,
        SdRData::AAAA("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().into()),
    ));
    let mut txt = sd::TXT::new();
    txt.add_string("v=STSv1; ").unwrap();
    txt.add_string("id=1").unwrap();
    p.answers.push(rr("example.test", 60, SdRData::TXT(txt)));
    let bytes = p.build_bytes_vec_compressed().unwrap();
    let query = q("example.test", RecordType::Mx);
    let reply = parse_reply(&bytes, &query).unwrap();
    assert!(reply.authenticated);
    assert!(!reply.truncated);
    assert_eq!(reply.rcode, 0);
    assert_eq!(reply.records.len(), 5);
    assert_eq!(reply.records[1].name, "example.test");
    assert_eq!(
        reply.records[1].data,
        RData::Mx(Mx {
            preference: 20,
            exchange: "mx2.example.test".into()
        })
    );
    assert_eq!(
        reply.records[2].data,
        RData::A(std::net::Ipv4Addr::new(192, 0, 2, 1))
    );
    assert_eq!(
        reply.records[3].data,
        RData::Aaaa("2001:db8::1".parse().unwrap())
    );
    assert_eq!(
        reply.records[4].data,
        RData::Txt(Txt {
            strings: vec![b"v=STSv1; ".to_vec(), b"id=1".to_vec()]
        })
    );
    let a = reply.answer(&query).unwrap();
    assert_eq!(a.status, Status::Found);
    assert!(a.authenticated);
    assert_eq!(a.records.len(), 2);
    assert_eq!(a.ttl, 200);
    assert_eq!(a.name, "example.test");
    let typed = a.typed::<Mx>();
    assert_eq!(typed.records[0].exchange, "mx1.example.test");
    // The TXT at the same name is in the reply, but not of the asked type.
    let t = reply.answer(&query).unwrap().typed::<Txt>();
    assert!(t.records.is_empty());
}

#[test]
fn follows_cname_chain_to_final_name() {
    let mut p = sd_reply("www.example.test", RecordType::A, PacketFlag::RESPONSE);
    p.answers.push(rr(
        "www.example.test",
        100,
        SdRData::CNAME(Name::new_unchecked("a.example.test").into()),
    ));
    p.answers.push(rr(
        "a.example.test",
        30,
        SdRData::CNAME(Name::new_unchecked("host.other.test").into()),
    ));
    p.answers.push(rr(
        "host.other.test",
        60,
        SdRData::A(std::net::Ipv4Addr::new(192, 0, 2, 7).into()),
    ));
    // A record at a name outside the chain must not be taken.
    p.answers.push(rr(
        "evil.test",
        60,
        SdRData::A(std::net::Ipv4Addr::new(6, 6, 6, 6).into()),
    ));
    let bytes = p.build_bytes_vec_compressed().unwrap();
    let query = q("www.example.test", RecordType::A);
    let a = parse_reply(&bytes, &query).unwrap().answer(&query).unwrap();
    assert_eq!(a.name, "host.other.test");
    assert_eq!(
        a.records,
        vec![RData::A(std::net::Ipv4Addr::new(192, 0, 2, 7))]
    );
    assert_eq!(a.ttl, 30);
    assert!(a.is_alias("www.example.test"));
    assert!(!a.authenticated);
}

#[test]
fn cname_loop_is_an_error() {
    let mut p = sd_reply("a.test", RecordType::A, PacketFlag::RESPONSE);
    p.answers.push(rr(
        "a.test",
        100,
        SdRData::CNAME(Name::new_unchecked("b.test").into()),
    ));
    p.answers.push(rr(
        "b.test",
        100,
        SdRData::CNAME(Name::new_unchecked("a.test").into()),
    ));
    let bytes = p.build_bytes_vec_compressed().unwrap();
    let query = q("a.test", RecordType::A);
    assert_eq!(
        parse_reply(&bytes, &query).unwrap().answer(&query),
        Err(DnsError::Malformed(WireError::CnameChain))
    );
}

#[test]
fn tlsa_reply_with_tlsa_question() {
    let qname = b"\x03_25\x04_tcp\x02mx\x07example\x04test\x00";
    let mut rdata = vec![3, 1, 1];
    rdata.extend_from_slice(&[0xAB; 32]);
    let mut rest = raw_rr(52, 3600, &rdata);
    rest.extend(raw_rr(46, 3600, &[0; 20])); // an RRSIG, skipped
    let m = raw(ID, 0x81A0, qname, 52, [2, 0, 0], &rest);
    let query = q("_25._tcp.mx.example.test", RecordType::Tlsa);
    let a = parse_reply(&m, &query).unwrap().answer(&query).unwrap();
    assert!(a.authenticated);
    let t = a.typed::<Tlsa>();
    assert_eq!(
        t.records,
        vec![Tlsa {
            usage: 3,
            selector: 1,
            matching_type: 1,
            data: vec![0xAB; 32]
        }]
    );
    // Too short for usage/selector/matching type.
    let m = raw(ID, 0x8180, qname, 52, [1, 0, 0], &raw_rr(52, 1, &[3, 1]));
    assert!(matches!(
        parse_reply(&m, &query),
        Err(WireError::BadRdata { rtype: 52, .. })
    ));
}

fn soa(ttl: u32, minimum: u32) -> Vec<u8> {
    let mut rd = Vec::new();
    rd.extend_from_slice(b"\x02ns\xC0\x0c\x0ahostmaster\xC0\x0c");
    for v in [1u32, 3600, 600, 86400, minimum] {
        rd.extend_from_slice(&v.to_be_bytes());
    }
    raw_rr(6, ttl, &rd)
}

#[test]
fn nxdomain_and_nodata_with_negative_ttl() {
    let query = q("example.test", RecordType::Mx);
    let m = raw(ID, 0x81A3, QNAME, 15, [0, 1, 0], &soa(3600, 300));
    let r = parse_reply(&m, &query).unwrap();
    assert_eq!(r.negative_ttl, Some(300));
    let a = r.answer(&query).unwrap();
    assert_eq!(
        (a.status, a.authenticated, a.ttl),
        (Status::NxDomain, true, 300)
    );
    assert!(a.is_nxdomain());
    let m = raw(ID, 0x8180, QNAME, 15, [0, 1, 0], &soa(60, 300));
    let a = parse_reply(&m, &query).unwrap().answer(&query).unwrap();
    assert_eq!(
        (a.status, a.authenticated, a.ttl),
        (Status::NoData, false, 60)
    );
    assert!(a.is_nodata());
    // No SOA: not cacheable.
    let m = raw(ID, 0x8180, QNAME, 15, [0, 0, 0], &[]);
    assert_eq!(
        parse_reply(&m, &query).unwrap().answer(&query).unwrap().ttl,
        0
    );
}

fn opt(ttl: u32) -> Vec<u8> {
    let mut r = vec![0, 0, 41, 0x04, 0xd0];
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&[0, 0]);
    r
}

#[test]
fn rcodes_including_extended() {
    let query = q("example.test", RecordType::A);
    for (rc, err) in [
        (1, DnsError::FormErr),
        (2, DnsError::ServFail),
        (4, DnsError::NotImp),
        (5, DnsError::Refused),
        (9, DnsError::Rcode(9)),
    ] {
        let m = raw(ID, 0x8180 | rc, QNAME, 1, [0, 0, 0], &[]);
        assert_eq!(parse_reply(&m, &query).unwrap().answer(&query), Err(err));
    }
    // BADVERS: extended RCODE 1 in the OPT TTL, header RCODE 0 => 16.
    let m = raw(ID, 0x8180, QNAME, 1, [0, 0, 1], &opt(0x0100_8000));
    let r = parse_reply(&m, &query).unwrap();
    assert_eq!(r.rcode, 16);
    assert_eq!(
        r.edns,
        Some(Edns {
            udp_payload: 1232,
            version: 0,
            dnssec_ok: true
        })
    );
    assert_eq!(r.answer(&query), Err(DnsError::Rcode(16)));
    // DO bit alone does not change the RCODE (simple-dns would misread it).
    let m = raw(ID, 0x8182, QNAME, 1, [0, 0, 1], &opt(0x0000_8000));
    assert_eq!(
        parse_reply(&m, &query).unwrap().answer(&query),
        Err(DnsError::ServFail)
    );
    // Two OPT records, or one not at the root.
    let mut two = opt(0);
    two.extend(opt(0));
    let m = raw(ID, 0x8180, QNAME, 1, [0, 0, 2], &two);
    assert_eq!(parse_reply(&m, &query), Err(WireError::BadOpt));
    let m = raw(ID, 0x8180, QNAME, 1, [0, 0, 1], &raw_rr(41, 0, &[]));
    assert_eq!(parse_reply(&m, &query), Err(WireError::BadOpt));
}

#[test]
fn mismatches_are_flagged() {
    let query = q("example.test", RecordType::A);
    let cases = [
        (
            raw(ID + 1, 0x8180, QNAME, 1, [0, 0, 0], &[]),
            WireError::IdMismatch {
                expected: ID,
                got: ID + 1,
            },
        ),
        (
            raw(ID, 0x0100, QNAME, 1, [0, 0, 0], &[]),
            WireError::NotAResponse,
        ),
        (
            raw(ID, 0x8980, QNAME, 1, [0, 0, 0], &[]),
            WireError::OpcodeMismatch(1),
        ),
        (
            raw(ID, 0x8180, QNAME, 28, [0, 0, 0], &[]),
            WireError::QuestionMismatch,
        ),
        (
            raw(ID, 0x8180, b"\x05other\x04test\x00", 1, [0, 0, 0], &[]),
            WireError::QuestionMismatch,
        ),
    ];
    for (m, err) in cases {
        let e = parse_reply(&m, &query).unwrap_err();
        assert_eq!(e, err);
        assert!(e.is_mismatch());
    }
    let mut m = raw(ID, 0x8180, QNAME, 1, [0, 0, 0], &[]);
    m[5] = 2;
    assert_eq!(parse_reply(&m, &query), Err(WireError::QuestionCount(2)));
    // Case differences in the echoed question are fine (0x20 style).
    let m = raw(ID, 0x8180, b"\x07ExAmPlE\x04TEST\x00", 1, [0, 0, 0], &[]);
    assert!(parse_reply(&m, &query).is_ok());
}

#[test]
fn truncated_reply_is_not_an_answer() {
    let query = q("example.test", RecordType::Txt);
    // TC set; the answer section is cut off mid-record and must not be read.
    let m = raw(ID, 0x8380, QNAME, 16, [3, 0, 0], &[0xC0, 12, 0]);
    let r = parse_reply(&m, &query).unwrap();
    assert!(r.truncated);
    assert_eq!(
        r.answer(&query),
        Err(DnsError::Malformed(WireError::TruncatedReply))
    );
}

#[test]
fn every_prefix_of_a_valid_reply_fails_cleanly() {
    let query = q("example.test", RecordType::Mx);
    let mut rest = raw_rr(15, 60, b"\x00\x0a\x02mx\xC0\x0c");
    rest.extend(soa(60, 60));
    rest.extend(opt(0x8000));
    let m = raw(ID, 0x8180, QNAME, 15, [1, 1, 1], &rest);
    assert!(parse_reply(&m, &query).is_ok());
    for n in 0..m.len() {
        assert!(parse_reply(&m[..n], &query).is_err(), "prefix {n}");
    }
}

#[test]
fn bad_names_and_pointers() {
    let query = q("example.test", RecordType::Mx);
    // Pointer to itself, forward pointer, pointer loop.
    for rdata in [
        &b"\x00\x0a\xC0\x2c"[..],
        b"\x00\x0a\xC0\xff",
        b"\x00\x0a\x01a\xC0\x2c",
    ] {
        let m = raw(ID, 0x8180, QNAME, 15, [1, 0, 0], &raw_rr(15, 1, rdata));
        assert!(
            matches!(parse_reply(&m, &query), Err(WireError::BadPointer(_))),
            "{rdata:?}"
        );
    }
    // Reserved label types 0x40 and 0x80.
    for t in [0x40u8, 0x80] {
        let m = raw(
            ID,
            0x8180,
            QNAME,
            15,
            [1, 0, 0],
            &raw_rr(15, 1, &[0, 1, t, 0]),
        );
        assert!(matches!(
            parse_reply(&m, &query),
            Err(WireError::BadLabelType(_))
        ));
    }
    // A name over 255 octets, built from many small labels.
    let mut long = vec![0u8, 1];
    for _ in 0..130 {
        long.extend_from_slice(b"\x01a");
    }
    long.push(0);
    let m = raw(ID, 0x8180, QNAME, 15, [1, 0, 0], &raw_rr(15, 1, &long));
    assert!(matches!(
        parse_reply(&m, &query),
        Err(WireError::NameTooLong(_))
    ));
    // MX whose name ends before its RDLENGTH does.
    let m = raw(
        ID,
        0x8180,
        QNAME,
        15,
        [1, 0, 0],
        &raw_rr(15, 1, b"\x00\x0a\x00\x00"),
    );
    assert!(matches!(
        parse_reply(&m, &query),
        Err(WireError::BadRdata { rtype: 15, .. })
    ));
    // Odd bytes in a label are escaped, never trusted as dots.
    let m = raw(
        ID,
        0x8180,
        QNAME,
        15,
        [1, 0, 0],
        &raw_rr(15, 1, b"\x00\x0a\x03a.\x01\x00"),
    );
    let r = parse_reply(&m, &query).unwrap();
    assert_eq!(
        r.records[0].data,
        RData::Mx(Mx {
            preference: 10,
            exchange: "a\\046\\001".into()
        })
    );
    // The root as exchange (null MX).
    let m = raw(
        ID,
        0x8180,
        QNAME,
        15,
        [1, 0, 0],
        &raw_rr(15, 1, b"\x00\x00\x00"),
    );
    let r = parse_reply(&m, &query).unwrap();
    assert_eq!(
        r.records[0].data,
        RData::Mx(Mx {
            preference: 0,
            exchange: ".".into()
        })
    );
}

#[test]
fn bad_rdata_lengths() {
    let query = q("example.test", RecordType::A);
    for (t, rd) in [
        (1u16, &[1u8, 2, 3][..]),
        (1, &[1, 2, 3, 4, 5]),
        (28, &[0; 15]),
        (16, &[]),
        (16, &[5, b'a']),
    ] {
        let m = raw(ID, 0x8180, QNAME, 1, [1, 0, 0], &raw_rr(t, 1, rd));
        assert!(
            matches!(parse_reply(&m, &query), Err(WireError::BadRdata { rtype, .. }) if rtype == t),
            "type {t} {rd:?}"
        );
    }
    // RDLENGTH beyond the message.
    let mut r = raw_rr(1, 1, &[1, 2, 3, 4]);
    let len = r.len();
    r[len - 6] = 0xff;
    let m = raw(ID, 0x8180, QNAME, 1, [1, 0, 0], &r);
    assert!(matches!(
        parse_reply(&m, &query),
        Err(WireError::Truncated(_))
    ));
}

#[test]
fn too_many_records_and_huge_ttl() {
    let query = q("example.test", RecordType::A);
    let mut rest = Vec::new();
    for i in 0..=MAX_RECORDS {
        rest.extend(raw_rr(1, 1, &[10, 0, (i >> 8) as u8, i as u8]));
    }
    let m = raw(
        ID,
        0x8180,
        QNAME,
        1,
        [(MAX_RECORDS + 1) as u16, 0, 0],
        &rest,
    );
    assert_eq!(parse_reply(&m, &query), Err(WireError::TooManyRecords));
    let m = raw(
        ID,
        0x8180,
        QNAME,
        1,
        [1, 0, 0],
        &raw_rr(1, 0x8000_0000, &[1, 2, 3, 4]),
    );
    assert_eq!(parse_reply(&m, &query).unwrap().records[0].ttl, 0);
}

#[test]
fn header_counts_do_not_reserve_memory() {
    // 65535 answers announced, none present: fails at the first read.
    let query = q("example.test", RecordType::A);
    let m = raw(ID, 0x8180, QNAME, 1, [0xffff, 0xffff, 0xffff], &[]);
    assert!(matches!(
        parse_reply(&m, &query),
        Err(WireError::Truncated(_))
    ));
}

#[test]
fn fuzz_entry_survives_samples() {
    fuzz_reply(&[]);
    fuzz_reply(&[0xff; 64]);
    let m = raw(
        0,
        0x8180,
        b"\x01a\x00",
        1,
        [1, 0, 0],
        &raw_rr(1, 1, &[1, 2, 3, 4]),
    );
    fuzz_reply(&m);
}

#[test]
fn mutated_replies_never_panic() {
    // Deterministic mutation of a valid, compressed reply: flip, insert and
    // cut bytes; every outcome must be a value, never a panic or a hang.
    let mut p = sd_reply("example.test", RecordType::Mx, PacketFlag::RESPONSE);
    p.answers.push(rr(
        "example.test",
        300,
        SdRData::MX(sd::MX {
            preference: 10,
            exchange: Name::new_unchecked("mx1.example.test"),
        }),
    ));
    p.answers.push(rr(
        "mx1.example.test",
        300,
        SdRData::CNAME(Name::new_unchecked("a.example.test").into()),
    ));
    let base = p.build_bytes_vec_compressed().unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut m = base.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % m.len().max(1);
            match next() % 3 {
                0 if !m.is_empty() => m[i] = next() as u8,
                1 => m.insert(i.min(m.len()), next() as u8),
                _ => m.truncate(i),
            }
        }
        fuzz_reply(&m);
        let query = q("example.test", RecordType::Mx);
        if let Ok(r) = parse_reply(&m, &query) {
            assert!(r.records.len() <= MAX_RECORDS);
            let _ = r.answer(&query);
        }
    }
}
