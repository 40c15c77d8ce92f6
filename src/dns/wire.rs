//! DNS messages on the wire, without I/O: queries out, replies in.
//!
//! Queries are built with `simple-dns`, then the EDNS0 OPT record is
//! appended here: simple-dns 0.13 packs its OPT `version` field where the
//! DO bit lives and reads the extended RCODE from the wrong byte.
//!
//! Replies are parsed by the small reader below instead of
//! `simple_dns::Packet::parse`, because that one rejects a reply whose
//! question is TLSA (`InvalidQType(52)`), misreads extended RCODEs, fails
//! the whole packet on any record type it parses badly, and reserves memory
//! from the header counts before checking them. This reader walks each
//! section once, with every read bounds-checked, compression pointers only
//! backwards and a name limit of 255 octets, and keeps at most
//! [`MAX_RECORDS`] records. It never panics.

#![forbid(unsafe_code)]

use super::{Answer, DnsError, Mx, Status, Tlsa, Txt};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// EDNS0 UDP payload size we advertise (DNS flag day 2020).
pub const EDNS_UDP_PAYLOAD: u16 = 1232;
/// Largest query we build (a 255-octet name plus header, question, OPT).
pub const MAX_QUERY_LEN: usize = 300;
/// Most answer records kept from one reply; more is an error, not a
/// silent cut (a cut could drop the one TLSA record that matches).
pub const MAX_RECORDS: usize = 128;
/// Longest CNAME chain followed inside one answer.
pub const MAX_CNAME_HOPS: usize = 8;

const MAX_NAME_WIRE: usize = 255;
const MAX_POINTER_HOPS: usize = 127;
const HEADER_LEN: usize = 12;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_MX: u16 = 15;
const TYPE_TXT: u16 = 16;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const TYPE_TLSA: u16 = 52;
const CLASS_IN: u16 = 1;

/// The query types the resolver asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
    /// Canonical name.
    Cname,
    /// DANE TLSA (type 52).
    Tlsa,
}

impl RecordType {
    /// The numeric TYPE code.
    pub fn code(self) -> u16 {
        match self {
            RecordType::A => TYPE_A,
            RecordType::Aaaa => TYPE_AAAA,
            RecordType::Mx => TYPE_MX,
            RecordType::Txt => TYPE_TXT,
            RecordType::Cname => TYPE_CNAME,
            RecordType::Tlsa => TYPE_TLSA,
        }
    }

    /// The mnemonic, as in zone files and Postfix logs.
    pub fn name(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Cname => "CNAME",
            RecordType::Tlsa => "TLSA",
        }
    }
}

/// Record data of the types this resolver understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// A record.
    A(Ipv4Addr),
    /// AAAA record.
    Aaaa(Ipv6Addr),
    /// MX record.
    Mx(Mx),
    /// TXT record.
    Txt(Txt),
    /// CNAME target (lowercase, no trailing dot).
    Cname(String),
    /// TLSA record.
    Tlsa(Tlsa),
}

impl RData {
    fn type_code(&self) -> u16 {
        match self {
            RData::A(_) => TYPE_A,
            RData::Aaaa(_) => TYPE_AAAA,
            RData::Mx(_) => TYPE_MX,
            RData::Txt(_) => TYPE_TXT,
            RData::Cname(_) => TYPE_CNAME,
            RData::Tlsa(_) => TYPE_TLSA,
        }
    }
}

/// Why a query could not be built or a reply not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The name to query is empty, has an empty or >63-octet label, is
    /// longer than 255 octets, or has a character outside
    /// `[A-Za-z0-9_-]` (IDNs must be given as A-labels).
    InvalidName,
    /// The output buffer is too small for the query.
    BufferTooSmall,
    /// The message ends before the field at this offset.
    Truncated(usize),
    /// QR bit clear: a query, not a reply.
    NotAResponse,
    /// Reply ID differs from the query's.
    IdMismatch {
        /// Our ID.
        expected: u16,
        /// The reply's ID.
        got: u16,
    },
    /// Reply opcode is not QUERY.
    OpcodeMismatch(u8),
    /// Reply does not carry exactly one question.
    QuestionCount(u16),
    /// Reply question differs from ours (name, type or class).
    QuestionMismatch,
    /// A name longer than 255 octets at this offset.
    NameTooLong(usize),
    /// A label type other than plain or pointer at this offset.
    BadLabelType(usize),
    /// A compression pointer at this offset that does not point backwards.
    BadPointer(usize),
    /// Too many compression pointers in one name.
    TooManyPointers(usize),
    /// Record data of this type at this offset does not fit its format.
    BadRdata {
        /// Record TYPE.
        rtype: u16,
        /// Offset of the record data.
        at: usize,
    },
    /// More than [`MAX_RECORDS`] usable answer records.
    TooManyRecords,
    /// More than one OPT record, or one not owned by the root.
    BadOpt,
    /// A CNAME chain longer than [`MAX_CNAME_HOPS`] or looping.
    CnameChain,
    /// The TC bit is set where a full reply is needed (over TCP, or when
    /// interpreting a truncated UDP reply).
    TruncatedReply,
}

impl WireError {
    /// True when the reply is well-formed but not the answer to our query
    /// (possibly spoofed); a UDP driver keeps waiting instead of failing.
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            WireError::NotAResponse
                | WireError::IdMismatch { .. }
                | WireError::OpcodeMismatch(_)
                | WireError::QuestionCount(_)
                | WireError::QuestionMismatch
        )
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::InvalidName => f.write_str("invalid name"),
            WireError::BufferTooSmall => f.write_str("buffer too small"),
            WireError::Truncated(at) => write!(f, "message ends at offset {at}"),
            WireError::NotAResponse => f.write_str("not a response"),
            WireError::IdMismatch { expected, got } => {
                write!(f, "id {got} does not match query id {expected}")
            }
            WireError::OpcodeMismatch(o) => write!(f, "unexpected opcode {o}"),
            WireError::QuestionCount(n) => write!(f, "{n} questions instead of 1"),
            WireError::QuestionMismatch => f.write_str("question does not match query"),
            WireError::NameTooLong(at) => write!(f, "name too long at offset {at}"),
            WireError::BadLabelType(at) => write!(f, "bad label type at offset {at}"),
            WireError::BadPointer(at) => write!(f, "bad compression pointer at offset {at}"),
            WireError::TooManyPointers(at) => write!(f, "compression loop at offset {at}"),
            WireError::BadRdata { rtype, at } => {
                write!(f, "bad data for type {rtype} at offset {at}")
            }
            WireError::TooManyRecords => write!(f, "more than {MAX_RECORDS} records"),
            WireError::BadOpt => f.write_str("bad or duplicate OPT record"),
            WireError::CnameChain => f.write_str("CNAME chain too long or looping"),
            WireError::TruncatedReply => f.write_str("reply truncated (TC)"),
        }
    }
}

impl std::error::Error for WireError {}

/// Normalises a name for querying and comparing: lowercase, no trailing
/// dot. Rejects what cannot be a mail domain or DANE/MTA-STS owner name.
pub fn normalize_name(name: &str) -> Result<String, WireError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(WireError::InvalidName);
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(WireError::InvalidName);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(WireError::InvalidName);
        }
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// Compares two names in presentation form, ignoring ASCII case and a
/// trailing dot.
pub fn names_equal(a: &str, b: &str) -> bool {
    let a = a.strip_suffix('.').unwrap_or(a);
    let b = b.strip_suffix('.').unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

/// One outstanding question: what a reply must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Random message ID.
    pub id: u16,
    /// Normalised name (see [`normalize_name`]).
    pub name: String,
    /// Asked type.
    pub qtype: RecordType,
}

impl Query {
    /// Validates `name` and pairs it with an ID (which the caller draws at
    /// random).
    pub fn new(id: u16, name: &str, qtype: RecordType) -> Result<Self, WireError> {
        Ok(Query {
            id,
            name: normalize_name(name)?,
            qtype,
        })
    }

    /// Writes the query (RD set, EDNS0 payload 1232, DO set) into `buf`,
    /// returning its length. The same bytes serve UDP and, after a length
    /// prefix, TCP.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, TYPE};
        // simple-dns panics ("write() returned Ok(0)") when its output does
        // not fit, so check the bound first: a valid name always fits.
        if buf.len() < MAX_QUERY_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let mut packet = Packet::new_query(self.id);
        packet.set_flags(PacketFlag::RECURSION_DESIRED);
        let qname = Name::new(&self.name).map_err(|_| WireError::InvalidName)?;
        packet.questions.push(Question::new(
            qname,
            QTYPE::TYPE(TYPE::from(self.qtype.code())),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        let mut cursor = std::io::Cursor::new(&mut *buf);
        packet
            .write_to(&mut cursor)
            .map_err(|_| WireError::BufferTooSmall)?;
        let len = usize::try_from(cursor.position()).map_err(|_| WireError::BufferTooSmall)?;
        // OPT: root owner, TYPE 41, CLASS = payload size, TTL = ext-RCODE 0,
        // version 0, flags with DO (0x8000), RDLENGTH 0 (RFC 6891 §6.1.2).
        let [p0, p1] = EDNS_UDP_PAYLOAD.to_be_bytes();
        let opt = [0u8, 0, 41, p0, p1, 0, 0, 0x80, 0, 0, 0];
        let end = len + opt.len();
        let out = buf.get_mut(len..end).ok_or(WireError::BufferTooSmall)?;
        out.copy_from_slice(&opt);
        // ARCOUNT: simple-dns wrote 0, we added one record.
        let arcount = buf.get_mut(10..12).ok_or(WireError::BufferTooSmall)?;
        arcount.copy_from_slice(&1u16.to_be_bytes());
        Ok(end)
    }
}

/// EDNS0 information from a reply's OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The responder's UDP payload size.
    pub udp_payload: u16,
    /// EDNS version.
    pub version: u8,
    /// DO bit echoed.
    pub dnssec_ok: bool,
}

/// One answer record of a known type (class IN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, lowercase, no trailing dot.
    pub name: String,
    /// TTL in seconds (values above 2^31-1 read as 0, RFC 2181 §8).
    pub ttl: u32,
    /// The data.
    pub data: RData,
}

/// A parsed reply that matches its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Full RCODE, including the EDNS extended bits.
    pub rcode: u16,
    /// TC: truncated; when set, the sections are not read (ask over TCP).
    pub truncated: bool,
    /// AD: the resolver validated the answer with DNSSEC.
    pub authenticated: bool,
    /// Answer-section records of the types in [`RData`], in order.
    pub records: Vec<Record>,
    /// RFC 2308 §5 negative TTL: min(SOA TTL, SOA MINIMUM) from the
    /// authority section, if an SOA is there.
    pub negative_ttl: Option<u32>,
    /// The OPT record, if any.
    pub edns: Option<Edns>,
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u16(&mut self) -> Result<u16, WireError> {
        let s = self.slice(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let s = self.slice(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn slice(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(WireError::Truncated(self.pos))?;
        let s = self
            .msg
            .get(self.pos..end)
            .ok_or(WireError::Truncated(self.pos))?;
        self.pos = end;
        Ok(s)
    }

    fn name(&mut self) -> Result<String, WireError> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Ok(name)
    }
}

/// Reads a possibly compressed name at `start`; returns it in presentation
/// form (lowercase, `\DDD` escapes, `"."` for the root) and the offset after
/// its in-place part.
fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), WireError> {
    let mut out = String::new();
    let mut pos = start;
    let mut after: Option<usize> = None;
    let mut wire_len = 1usize; // the root label
    let mut hops = 0usize;
    // Every pointer must aim before the place the previous one aimed at
    // (or before the name's start): real compression only refers to
    // earlier names, and this rules out loops.
    let mut limit = start;
    loop {
        let len = *msg.get(pos).ok_or(WireError::Truncated(pos))?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                pos += 1;
                break;
            }
            0x00 => {
                let n = usize::from(len);
                wire_len += n + 1;
                if wire_len > MAX_NAME_WIRE {
                    return Err(WireError::NameTooLong(start));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + n)
                    .ok_or(WireError::Truncated(pos + 1))?;
                if !out.is_empty() {
                    out.push('.');
                }
                for &b in label {
                    push_escaped(&mut out, b);
                }
                pos += 1 + n;
            }
            0xC0 => {
                let low = *msg.get(pos + 1).ok_or(WireError::Truncated(pos + 1))?;
                let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                if target >= limit {
                    return Err(WireError::BadPointer(pos));
                }
                limit = target;
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(WireError::TooManyPointers(start));
                }
                if after.is_none() {
                    after = Some(pos + 2);
                }
                pos = target;
            }
            _ => return Err(WireError::BadLabelType(pos)),
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    Ok((out, after.unwrap_or(pos)))
}

fn push_escaped(out: &mut String, b: u8) {
    let b = b.to_ascii_lowercase();
    if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
        out.push(char::from(b));
    } else {
        out.push('\\');
        out.push(char::from(b'0' + b / 100));
        out.push(char::from(b'0' + (b / 10) % 10));
        out.push(char::from(b'0' + b % 10));
    }
}

struct RrHeader {
    name: String,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata_start: usize,
    rdata_end: usize,
}

fn read_rr_header(r: &mut Reader<'_>) -> Result<RrHeader, WireError> {
    let name = r.name()?;
    let rtype = r.u16()?;
    let class = r.u16()?;
    let ttl = r.u32()?;
    let rdlen = usize::from(r.u16()?);
    let rdata_start = r.pos;
    r.slice(rdlen)?;
    Ok(RrHeader {
        name,
        rtype,
        class,
        ttl,
        rdata_start,
        rdata_end: rdata_start + rdlen,
    })
}

fn read_rdata(msg: &[u8], h: &RrHeader) -> Result<Option<RData>, WireError> {
    let bad = WireError::BadRdata {
        rtype: h.rtype,
        at: h.rdata_start,
    };
    let data = msg.get(h.rdata_start..h.rdata_end).ok_or(bad)?;
    let rd = match h.rtype {
        TYPE_A => {
            let o: [u8; 4] = data.try_into().map_err(|_| bad)?;
            RData::A(Ipv4Addr::from(o))
        }
        TYPE_AAAA => {
            let o: [u8; 16] = data.try_into().map_err(|_| bad)?;
            RData::Aaaa(Ipv6Addr::from(o))
        }
        TYPE_MX => {
            let pref = data.get(..2).ok_or(bad)?;
            let (exchange, next) = read_name(msg, h.rdata_start + 2)?;
            if next != h.rdata_end {
                return Err(bad);
            }
            RData::Mx(Mx {
                preference: u16::from_be_bytes([pref[0], pref[1]]),
                exchange,
            })
        }
        TYPE_CNAME => {
            let (target, next) = read_name(msg, h.rdata_start)?;
            if next != h.rdata_end {
                return Err(bad);
            }
            RData::Cname(target)
        }
        TYPE_TXT => {
            let mut strings = Vec::new();
            let mut rest = data;
            if rest.is_empty() {
                return Err(bad);
            }
            while let Some((&n, tail)) = rest.split_first() {
                let s = tail.get(..usize::from(n)).ok_or(bad)?;
                strings.push(s.to_vec());
                rest = &tail[s.len()..];
            }
            RData::Txt(Txt { strings })
        }
        TYPE_TLSA => {
            let head = data.get(..3).ok_or(bad)?;
            RData::Tlsa(Tlsa {
                usage: head[0],
                selector: head[1],
                matching_type: head[2],
                data: data[3..].to_vec(),
            })
        }
        _ => return Ok(None),
    };
    Ok(Some(rd))
}

fn clamp_ttl(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 {
        0
    } else {
        ttl
    }
}

/// Parses `msg` as the reply to `query`. Mismatching replies give errors
/// for which [`WireError::is_mismatch`] is true.
pub fn parse_reply(msg: &[u8], query: &Query) -> Result<Reply, WireError> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let qdcount = r.u16()?;
    let ancount = r.u16()?;
    let nscount = r.u16()?;
    let arcount = r.u16()?;
    debug_assert_eq!(r.pos, HEADER_LEN);
    if flags & 0x8000 == 0 {
        return Err(WireError::NotAResponse);
    }
    if id != query.id {
        return Err(WireError::IdMismatch {
            expected: query.id,
            got: id,
        });
    }
    let opcode = ((flags >> 11) & 0xF) as u8;
    if opcode != 0 {
        return Err(WireError::OpcodeMismatch(opcode));
    }
    if qdcount != 1 {
        return Err(WireError::QuestionCount(qdcount));
    }
    let qname = r.name()?;
    let qtype = r.u16()?;
    let qclass = r.u16()?;
    if !names_equal(&qname, &query.name) || qtype != query.qtype.code() || qclass != CLASS_IN {
        return Err(WireError::QuestionMismatch);
    }
    let truncated = flags & 0x0200 != 0;
    let mut reply = Reply {
        rcode: flags & 0x000F,
        truncated,
        authenticated: flags & 0x0020 != 0,
        records: Vec::new(),
        negative_ttl: None,
        edns: None,
    };
    if truncated {
        // Sections may be cut anywhere; the caller retries over TCP.
        return Ok(reply);
    }
    for _ in 0..ancount {
        let h = read_rr_header(&mut r)?;
        if h.class != CLASS_IN {
            continue;
        }
        if let Some(data) = read_rdata(msg, &h)? {
            if reply.records.len() >= MAX_RECORDS {
                return Err(WireError::TooManyRecords);
            }
            reply.records.push(Record {
                name: h.name,
                ttl: clamp_ttl(h.ttl),
                data,
            });
        }
    }
    for _ in 0..nscount {
        let h = read_rr_header(&mut r)?;
        if h.rtype == TYPE_SOA && h.class == CLASS_IN {
            let mut sr = Reader {
                msg,
                pos: h.rdata_start,
            };
            sr.name()?; // MNAME
            sr.name()?; // RNAME
            sr.slice(16)?; // SERIAL REFRESH RETRY EXPIRE
            let minimum = sr.u32()?;
            if sr.pos != h.rdata_end {
                return Err(WireError::BadRdata {
                    rtype: TYPE_SOA,
                    at: h.rdata_start,
                });
            }
            let neg = clamp_ttl(h.ttl).min(clamp_ttl(minimum));
            reply.negative_ttl = Some(reply.negative_ttl.map_or(neg, |n| n.min(neg)));
        }
    }
    for _ in 0..arcount {
        let h = read_rr_header(&mut r)?;
        if h.rtype == TYPE_OPT {
            if reply.edns.is_some() || h.name != "." {
                return Err(WireError::BadOpt);
            }
            // TTL of OPT: EXTENDED-RCODE(8) VERSION(8) DO(1) Z(15).
            let ext = (h.ttl >> 24) as u16;
            reply.rcode |= ext << 4;
            reply.edns = Some(Edns {
                udp_payload: h.class,
                version: (h.ttl >> 16) as u8,
                dnssec_ok: h.ttl & 0x8000 != 0,
            });
        }
    }
    Ok(reply)
}

impl Reply {
    /// Interprets the reply for `query`: RCODE, CNAME chain, records of the
    /// asked type at the final name, NODATA/NXDOMAIN with the negative TTL.
    pub fn answer(&self, query: &Query) -> Result<Answer<RData>, DnsError> {
        if self.truncated {
            return Err(DnsError::Malformed(WireError::TruncatedReply));
        }
        let nx = match self.rcode {
            0 => false,
            3 => true,
            1 => return Err(DnsError::FormErr),
            2 => return Err(DnsError::ServFail),
            4 => return Err(DnsError::NotImp),
            5 => return Err(DnsError::Refused),
            other => return Err(DnsError::Rcode(other)),
        };
        let want = query.qtype.code();
        let mut name = query.name.clone();
        let mut ttl = u32::MAX;
        if query.qtype != RecordType::Cname {
            let mut hops = 0;
            while let Some(rec) = self
                .records
                .iter()
                .find(|r| matches!(r.data, RData::Cname(_)) && names_equal(&r.name, &name))
            {
                hops += 1;
                if hops > MAX_CNAME_HOPS {
                    return Err(DnsError::Malformed(WireError::CnameChain));
                }
                if let RData::Cname(target) = &rec.data {
                    name = target.clone();
                }
                ttl = ttl.min(rec.ttl);
            }
        }
        let records: Vec<RData> = self
            .records
            .iter()
            .filter(|r| r.data.type_code() == want && names_equal(&r.name, &name))
            .map(|r| {
                ttl = ttl.min(r.ttl);
                r.data.clone()
            })
            .collect();
        let status = if nx {
            Status::NxDomain
        } else if records.is_empty() {
            Status::NoData
        } else {
            Status::Found
        };
        if status != Status::Found {
            ttl = self.negative_ttl.unwrap_or(0);
        }
        Ok(Answer {
            status,
            records: if nx { Vec::new() } else { records },
            authenticated: self.authenticated,
            name,
            ttl,
        })
    }
}

/// Fuzzing entry point: parses arbitrary bytes as a reply to a fixed
/// query of each type and interprets it. Must never panic.
pub fn fuzz_reply(data: &[u8]) {
    let id = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    for qtype in [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Mx,
        RecordType::Txt,
        RecordType::Cname,
        RecordType::Tlsa,
    ] {
        if let Ok(q) = Query::new(id, "a", qtype) {
            if let Ok(reply) = parse_reply(data, &q) {
                let _ = reply.answer(&q);
            }
        }
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
