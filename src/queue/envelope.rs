//! The envelope at the head of every queue file: a short block of text
//! lines, then the raw message. Sans-I/O: this module only encodes and
//! parses bytes.
//!
//! ```text
//! tern-queue-file 1
//! id 5A3B1000C2F7
//! arrival 1700000000
//! size 00000000000000001234
//! check 5c3a9e01
//! flags bounce
//! origin 5A3B0F00A1C4
//! client host.example[192.0.2.1]
//! sender user@example.com
//! rcpt a@example.org<TAB>rfc822;a@example.org
//! rcpt b@example.org
//! end
//! <message bytes, CRLF line ends>
//! ```
//!
//! `size` is fixed-width so the writer can patch it in place once the body
//! is complete (the file is still unpublished then), together with `check`,
//! the CRC-32 of the message bytes: the spool publishes a file without
//! syncing it first (one `syncfs` covers a whole group commit), so a power
//! cut before that sync may leave any of its writes unwritten, and `check`
//! is how a reader tells such a file from a whole one (docs/spool.md).
//! Files of earlier versions have no `check` and read unchanged. Every value is checked
//! on the way in (no control characters) so the line format cannot be
//! confused by an address or a client name.

use std::fmt;

/// First line of every queue file; the number is the format version.
pub const MAGIC: &[u8] = b"tern-queue-file 1\n";
/// Width of the zero-padded `size` field, so it can be rewritten in place.
pub const SIZE_WIDTH: usize = 20;
/// Largest envelope block accepted by the parser (bytes up to and including `end\n`).
pub const MAX_ENVELOPE: usize = 1024 * 1024;
/// Most recipients one queue file may carry.
pub const MAX_RECIPIENTS: usize = 10_000;
/// Longest address (sender, recipient or ORCPT) accepted.
pub const MAX_ADDRESS: usize = 998;

/// Per-message flags.
///
/// Written as `flags bounce double-bounce tls-required-no` and `origin
/// ID`; both records are optional, so queue files of earlier versions read
/// unchanged. A `flags` record of blanks only (the room smtpd reserves for
/// a flag it learns from the message, see [`EnvelopeHead::flag_slot`])
/// means no flag, also to versions that know no `tls-required-no`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// The message is a bounce (DSN) itself: never bounce it to its sender.
    pub bounce: bool,
    /// The message is a postmaster notification about a bounce that could
    /// not be delivered (Postfix's double bounce): if it cannot be
    /// delivered either, it is held in `hold/`, never bounced again.
    pub double_bounce: bool,
    /// For a notification: the queue ID of the message whose failure it
    /// reports first (the original message, also for a double bounce), so
    /// that log lines about the notification name it.
    pub origin: Option<String>,
    /// The message header has `TLS-Required: No` (RFC 8689 §5): deliver
    /// it at TLS level `may`, unless the route sends SMTP AUTH
    /// credentials (see docs/policy.md).
    pub tls_required_no: bool,
}

/// The `tls-required-no` flag as it goes into a reserved flag slot: the
/// slot is this many blanks until the flag is set.
pub const TLS_REQUIRED_NO_SLOT: &[u8] = b" tls-required-no";

/// The offset of the reserved flag slot of an envelope written with
/// [`EnvelopeHead::flag_slot`], from the offset of the `size` digits that
/// [`write_head`] returns: the `flags` record follows the `size` record
/// and the `check` record, if there is one (`check`).
pub fn flag_slot_at(size_at: usize, check: bool) -> usize {
    let check_len = if check {
        b"\ncheck ".len() + CHECK_WIDTH
    } else {
        0
    };
    size_at + SIZE_WIDTH + check_len + b"\nflags".len()
}

/// One envelope recipient as accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address to deliver to (no angle brackets).
    pub address: String,
    /// The DSN original recipient (`ORCPT`, e.g. `rfc822;user@example.org`), if given.
    pub orcpt: Option<String>,
}

impl Recipient {
    /// A recipient without ORCPT.
    pub fn new(address: &str) -> Recipient {
        Recipient {
            address: address.to_string(),
            orcpt: None,
        }
    }
}

/// Envelope of a queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Queue ID (uppercase hex, 12 characters or more).
    pub id: String,
    /// Arrival time, seconds since the Unix epoch.
    pub arrival: u64,
    /// Size of the message (headers + body) after the envelope, in bytes.
    pub size: u64,
    /// [`finish_check`] of the message bytes and flags; `None` in files
    /// written before the record existed (those were synced before they
    /// were published, so they are whole).
    pub check: Option<u32>,
    /// Per-message flags.
    pub flags: Flags,
    /// Client description for logs (`host[ip]`, or `local` for sendmail).
    pub client: String,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// Envelope recipients, in the order they were accepted.
    pub recipients: Vec<Recipient>,
}

/// What went wrong parsing an envelope; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError {
    /// Line of the envelope block where the problem is (0 when not line-specific).
    pub line: usize,
    /// The problem.
    pub kind: EnvelopeErrorKind,
}

/// Kinds of envelope parse errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeErrorKind {
    /// The file does not start with [`MAGIC`] (not a queue file, or another version).
    BadMagic,
    /// No `end` line within the bytes given (or within [`MAX_ENVELOPE`]).
    Incomplete,
    /// The envelope block exceeds [`MAX_ENVELOPE`].
    TooLarge,
    /// A line that is not `key value` with a known key.
    UnknownKey(String),
    /// A key that may appear once appears twice.
    Duplicate(&'static str),
    /// A required key is missing.
    Missing(&'static str),
    /// A value is malformed (what, and why).
    BadValue(&'static str, &'static str),
    /// More than [`MAX_RECIPIENTS`] recipients.
    TooManyRecipients,
    /// No recipients at all.
    NoRecipients,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "envelope line {}: ", self.line)?;
        } else {
            write!(f, "envelope: ")?;
        }
        match &self.kind {
            EnvelopeErrorKind::BadMagic => write!(f, "not a tern queue file (bad first line)"),
            EnvelopeErrorKind::Incomplete => write!(f, "truncated: no \"end\" line"),
            EnvelopeErrorKind::TooLarge => write!(f, "envelope larger than {MAX_ENVELOPE} bytes"),
            EnvelopeErrorKind::UnknownKey(k) => write!(f, "unknown record \"{k}\""),
            EnvelopeErrorKind::Duplicate(k) => write!(f, "duplicate \"{k}\" record"),
            EnvelopeErrorKind::Missing(k) => write!(f, "missing \"{k}\" record"),
            EnvelopeErrorKind::BadValue(k, why) => write!(f, "bad \"{k}\" value: {why}"),
            EnvelopeErrorKind::TooManyRecipients => {
                write!(f, "more than {MAX_RECIPIENTS} recipients")
            }
            EnvelopeErrorKind::NoRecipients => write!(f, "no recipients"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// Why a value cannot go into an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// Which field (`sender`, `recipient`, `orcpt`, `id`).
    pub field: &'static str,
    /// The reason.
    pub reason: &'static str,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ValueError {}

/// Checks an address for the envelope: bounded, no control characters, no
/// spaces outside a quoted local part (SMTP allows none elsewhere).
pub fn check_address(field: &'static str, a: &str, allow_empty: bool) -> Result<(), ValueError> {
    if a.is_empty() && !allow_empty {
        return Err(ValueError {
            field,
            reason: "empty",
        });
    }
    if a.len() > MAX_ADDRESS {
        return Err(ValueError {
            field,
            reason: "too long",
        });
    }
    if a.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(ValueError {
            field,
            reason: "control character",
        });
    }
    let mut in_quote = false;
    let mut escaped = false;
    for b in a.bytes() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b' ' if !in_quote => {
                return Err(ValueError {
                    field,
                    reason: "space outside quotes",
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Replaces control characters so free text (client names, errors) stays on one line.
pub fn sanitize_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// The values of an envelope, borrowed: what [`write_head`] encodes. The
/// spool builds one from the caller's sender and recipients, so a new
/// queue file's envelope is never copied into an owned [`Envelope`] nor
/// into an encoded `Vec` first.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeHead<'a> {
    /// Queue ID (uppercase hex, 12 characters or more).
    pub id: &'a str,
    /// Arrival time, seconds since the Unix epoch.
    pub arrival: u64,
    /// Size of the message after the envelope (0 while it is written).
    pub size: u64,
    /// The `check` record.
    pub check: Check,
    /// Per-message flags.
    pub flags: &'a Flags,
    /// Client description; control characters become `?`, cut at 512 bytes.
    pub client: &'a str,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: &'a str,
    /// Envelope recipients, in order.
    pub recipients: &'a [Recipient],
    /// Reserve room for `tls-required-no` in the `flags` record (at
    /// [`flag_slot_at`]): smtpd writes the envelope before the message
    /// header arrives, and sets the flag in place if the header asks for
    /// it. Blanks until then, which every version reads as no flag.
    pub flag_slot: bool,
}

impl<'a> EnvelopeHead<'a> {
    /// A borrowed view of `env`.
    pub fn of(env: &'a Envelope) -> Self {
        EnvelopeHead {
            id: &env.id,
            arrival: env.arrival,
            size: env.size,
            check: env.check.map_or(Check::Absent, Check::Crc),
            flags: &env.flags,
            client: &env.client,
            sender: &env.sender,
            recipients: &env.recipients,
            flag_slot: false,
        }
    }
}

/// What [`write_head`] writes as the `check` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// No record (what files of earlier versions look like).
    Absent,
    /// `check --------`: the room the spool fills in with [`commit_patch`]
    /// when it publishes the file. Read back unfilled, it is an error: the
    /// file was never committed.
    Pending,
    /// `check` and the value, 8 lowercase hex digits.
    Crc(u32),
}

/// Width of the `check` value.
pub const CHECK_WIDTH: usize = 8;

/// The bytes that finish a head written with [`Check::Pending`]: written
/// at the offset [`write_head`] returned, in ONE write, they set the
/// `size` digits, the `check` value and (with `slot = Some(flag)`, for a
/// head written with [`EnvelopeHead::flag_slot`]) the reserved flag slot.
/// One write, so that a power cut keeps all three or none of them: a file
/// whose patch was lost reads as unfinished, never as whole with a flag
/// missing.
pub fn commit_patch(size: u64, check: u32, slot: Option<bool>) -> heapless::Vec<u8, 64> {
    let mut out = heapless::Vec::new();
    let mut digits = [0u8; 20];
    let mut hex = [0u8; CHECK_WIDTH];
    // 20 + 7 + 8 + 6 + 16 = 57 bytes: always fits.
    let _ = out.extend_from_slice(decimal(size, SIZE_WIDTH, &mut digits));
    let _ = out.extend_from_slice(b"\ncheck ");
    let _ = out.extend_from_slice(hex8(check, &mut hex));
    if let Some(flag) = slot {
        let _ = out.extend_from_slice(b"\nflags");
        let _ = out.extend_from_slice(slot_bytes(flag));
    }
    out
}

fn slot_bytes(flag: bool) -> &'static [u8] {
    const BLANK: [u8; TLS_REQUIRED_NO_SLOT.len()] = [b' '; TLS_REQUIRED_NO_SLOT.len()];
    if flag {
        TLS_REQUIRED_NO_SLOT
    } else {
        &BLANK
    }
}

fn hex8(v: u32, buf: &mut [u8; CHECK_WIDTH]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((v >> (28 - 4 * i)) & 0xf) as usize];
    }
    &buf[..]
}

/// The CRC-32 that `check` holds (see [`crate::crc32`]).
pub use crate::crc32::crc32;

/// The `check` of a message whose bytes have the CRC `body_crc`: that CRC
/// continued over one byte for the flag smtpd may set in place (`T` for
/// `tls-required-no`, `-` without), so the flag is as much part of the
/// checked content as the message. Writer and reader both call this.
pub fn finish_check(body_crc: u32, flags: &Flags) -> u32 {
    crc32(body_crc, if flags.tls_required_no { b"T" } else { b"-" })
}

/// Longest client description written into an envelope, in bytes.
const MAX_CLIENT_TEXT: usize = 512;

/// Checks every value [`write_head`] would write: the ID, the sender, the
/// recipient count, each recipient and ORCPT. Run before the first byte is
/// written, so an unusable envelope leaves nothing half-encoded.
pub fn check_head(h: &EnvelopeHead<'_>) -> Result<(), ValueError> {
    check_id(h.id)?;
    if let Some(o) = &h.flags.origin {
        check_id(o)?;
    }
    check_address("sender", h.sender, true)?;
    if h.recipients.is_empty() {
        return Err(ValueError {
            field: "recipient",
            reason: "no recipients",
        });
    }
    if h.recipients.len() > MAX_RECIPIENTS {
        return Err(ValueError {
            field: "recipient",
            reason: "too many recipients",
        });
    }
    for r in h.recipients {
        check_address("recipient", &r.address, false)?;
        if let Some(o) = &r.orcpt {
            check_address("orcpt", o, false)?;
        }
    }
    Ok(())
}

/// Writes the envelope block of `h` through `put`, piece by piece (no
/// allocation: numbers and the client text go through small stack
/// buffers). `size` is written as zero-padded [`SIZE_WIDTH`] digits; the
/// result is the byte offset of those digits from the start of the block
/// (for patching in place). Values are written as given: call
/// [`check_head`] first. The only errors are `put`'s.
pub fn write_head<E>(
    h: &EnvelopeHead<'_>,
    put: &mut dyn FnMut(&[u8]) -> Result<(), E>,
) -> Result<usize, E> {
    let mut w = Counted { put, at: 0 };
    let mut digits = [0u8; 20];
    w.put(MAGIC)?;
    w.put(b"id ")?;
    w.put(h.id.as_bytes())?;
    w.put(b"\narrival ")?;
    w.put(decimal(h.arrival, 0, &mut digits))?;
    w.put(b"\nsize ")?;
    let size_at = w.at;
    w.put(decimal(h.size, SIZE_WIDTH, &mut digits))?;
    w.put(b"\n")?;
    match h.check {
        Check::Absent => {}
        Check::Pending => w.put(b"check --------\n")?,
        Check::Crc(v) => {
            let mut hex = [0u8; CHECK_WIDTH];
            w.put(b"check ")?;
            w.put(hex8(v, &mut hex))?;
            w.put(b"\n")?;
        }
    }
    let f = h.flags;
    if h.flag_slot || f.bounce || f.double_bounce || f.tls_required_no {
        w.put(b"flags")?;
        // The slot comes first so that its offset does not depend on
        // the other flags (flag_slot_at).
        if h.flag_slot {
            if f.tls_required_no {
                w.put(TLS_REQUIRED_NO_SLOT)?;
            } else {
                w.put(&[b' '; TLS_REQUIRED_NO_SLOT.len()])?;
            }
        }
        if f.bounce {
            w.put(b" bounce")?;
        }
        if f.double_bounce {
            w.put(b" double-bounce")?;
        }
        if f.tls_required_no && !h.flag_slot {
            w.put(TLS_REQUIRED_NO_SLOT)?;
        }
        w.put(b"\n")?;
    }
    if let Some(o) = &h.flags.origin {
        w.put(b"origin ")?;
        w.put(o.as_bytes())?;
        w.put(b"\n")?;
    }
    w.put(b"client ")?;
    let mut text = [0u8; MAX_CLIENT_TEXT];
    w.put(sanitize_into(h.client, &mut text))?;
    w.put(b"\nsender ")?;
    w.put(h.sender.as_bytes())?;
    w.put(b"\n")?;
    for r in h.recipients {
        w.put(b"rcpt ")?;
        w.put(r.address.as_bytes())?;
        if let Some(o) = &r.orcpt {
            w.put(b"\t")?;
            w.put(o.as_bytes())?;
        }
        w.put(b"\n")?;
    }
    w.put(b"end\n")?;
    Ok(size_at)
}

/// A sink that counts what went through it (for the `size` offset).
struct Counted<'p, E> {
    put: &'p mut dyn FnMut(&[u8]) -> Result<(), E>,
    at: usize,
}

impl<E> Counted<'_, E> {
    fn put(&mut self, b: &[u8]) -> Result<(), E> {
        self.at += b.len();
        (self.put)(b)
    }
}

/// `n` in decimal, zero-padded to `width` digits (at most 20, which any
/// u64 fits), in the end of `buf`.
fn decimal(mut n: u64, width: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while buf.len() - i < width.min(buf.len()) {
        i -= 1;
        buf[i] = b'0';
    }
    &buf[i..]
}

/// [`sanitize_text`] with `max` = [`MAX_CLIENT_TEXT`] into a stack buffer.
fn sanitize_into<'b>(s: &str, buf: &'b mut [u8; MAX_CLIENT_TEXT]) -> &'b [u8] {
    let mut len = 0;
    for c in s.chars() {
        // The same rule as sanitize_text: the original character's length
        // decides where the text is cut, also when it is replaced by '?'.
        if len + c.len_utf8() > MAX_CLIENT_TEXT {
            break;
        }
        let c = if c.is_control() { '?' } else { c };
        len += c.encode_utf8(&mut buf[len..]).len();
    }
    &buf[..len]
}

/// Encodes the envelope block into a new `Vec` ([`check_head`], then
/// [`write_head`]); `size` is written as zero-padded [`SIZE_WIDTH`]
/// digits. Returns the block and the byte offset of the size digits. The
/// spool writes new queue files through [`write_head`] directly; this is
/// for tests, tools and the fuzz target, and produces the same bytes.
pub fn encode(env: &Envelope) -> Result<(Vec<u8>, usize), ValueError> {
    let h = EnvelopeHead::of(env);
    check_head(&h)?;
    let mut out = Vec::with_capacity(128 + env.recipients.len() * 40);
    let size_at = write_head(
        &h,
        &mut |b: &[u8]| -> Result<(), std::convert::Infallible> {
            out.extend_from_slice(b);
            Ok(())
        },
    );
    match size_at {
        Ok(at) => Ok((out, at)),
        Err(never) => match never {},
    }
}

/// True for a syntactically valid queue ID: 12 to 24 uppercase hex digits.
pub fn is_queue_id(s: &str) -> bool {
    (12..=24).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

fn check_id(id: &str) -> Result<(), ValueError> {
    if is_queue_id(id) {
        Ok(())
    } else {
        Err(ValueError {
            field: "id",
            reason: "not 12-24 uppercase hex digits",
        })
    }
}

/// Parses the envelope block at the start of `buf`. Returns the envelope and
/// the length of the block (the message starts there). `Incomplete` means
/// more bytes are needed (up to [`MAX_ENVELOPE`]).
pub fn parse(buf: &[u8]) -> Result<(Envelope, usize), EnvelopeError> {
    let err = |line, kind| EnvelopeError { line, kind };
    if buf.len() < MAGIC.len() {
        if MAGIC.starts_with(buf) {
            return Err(err(1, EnvelopeErrorKind::Incomplete));
        }
        return Err(err(1, EnvelopeErrorKind::BadMagic));
    }
    if &buf[..MAGIC.len()] != MAGIC {
        return Err(err(1, EnvelopeErrorKind::BadMagic));
    }
    let mut pos = MAGIC.len();
    let mut lineno = 1;
    let mut id = None;
    let mut arrival = None;
    let mut size = None;
    let mut check = None;
    let mut flags = None;
    let mut origin = None;
    let mut client = None;
    let mut sender = None;
    let mut recipients = Vec::new();
    loop {
        lineno += 1;
        let rest = buf.get(pos..).unwrap_or(&[]);
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if buf.len() >= MAX_ENVELOPE {
                return Err(err(lineno, EnvelopeErrorKind::TooLarge));
            }
            return Err(err(lineno, EnvelopeErrorKind::Incomplete));
        };
        let line = &rest[..nl];
        pos += nl + 1;
        if pos > MAX_ENVELOPE {
            return Err(err(lineno, EnvelopeErrorKind::TooLarge));
        }
        if line == b"end" {
            break;
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| err(lineno, EnvelopeErrorKind::BadValue("line", "not UTF-8")))?;
        let (key, value) = text.split_once(' ').unwrap_or((text, ""));
        let bad =
            |k: &'static str, why: &'static str| err(lineno, EnvelopeErrorKind::BadValue(k, why));
        match key {
            "id" => {
                if id.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("id")));
                }
                if !is_queue_id(value) {
                    return Err(bad("id", "not 12-24 uppercase hex digits"));
                }
                id = Some(value.to_string());
            }
            "arrival" => {
                if arrival.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("arrival")));
                }
                arrival = Some(parse_u64(value).ok_or_else(|| bad("arrival", "not a number"))?);
            }
            "size" => {
                if size.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("size")));
                }
                if value.len() != SIZE_WIDTH {
                    return Err(bad("size", "not 20 digits"));
                }
                size = Some(parse_u64(value).ok_or_else(|| bad("size", "not a number"))?);
            }
            "check" => {
                if check.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("check")));
                }
                if value.len() != CHECK_WIDTH {
                    return Err(bad("check", "not 8 hex digits"));
                }
                if value == "--------" {
                    return Err(bad(
                        "check",
                        "unfinished: the file was never committed (a cut before its sync)",
                    ));
                }
                if !value
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                {
                    return Err(bad("check", "not 8 hex digits"));
                }
                check = Some(
                    u32::from_str_radix(value, 16).map_err(|_| bad("check", "not 8 hex digits"))?,
                );
            }
            "flags" => {
                if flags.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("flags")));
                }
                let mut f = Flags::default();
                for word in value.split(' ').filter(|w| !w.is_empty()) {
                    match word {
                        "bounce" => f.bounce = true,
                        "double-bounce" => f.double_bounce = true,
                        "tls-required-no" => f.tls_required_no = true,
                        // An older tern stops here on `tls-required-no`
                        // and moves the file to hold/ (docs/policy.md).
                        _ => return Err(bad("flags", "unknown flag")),
                    }
                }
                flags = Some(f);
            }
            "origin" => {
                if origin.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("origin")));
                }
                if !is_queue_id(value) {
                    return Err(bad("origin", "not 12-24 uppercase hex digits"));
                }
                origin = Some(value.to_string());
            }
            "client" => {
                if client.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("client")));
                }
                if value.chars().any(|c| c.is_control()) {
                    return Err(bad("client", "control character"));
                }
                client = Some(value.to_string());
            }
            "sender" => {
                if sender.is_some() {
                    return Err(err(lineno, EnvelopeErrorKind::Duplicate("sender")));
                }
                check_address("sender", value, true).map_err(|e| bad("sender", e.reason))?;
                sender = Some(value.to_string());
            }
            "rcpt" => {
                if recipients.len() >= MAX_RECIPIENTS {
                    return Err(err(lineno, EnvelopeErrorKind::TooManyRecipients));
                }
                let (addr, orcpt) = match value.split_once('\t') {
                    Some((a, o)) => (a, Some(o)),
                    None => (value, None),
                };
                check_address("rcpt", addr, false).map_err(|e| bad("rcpt", e.reason))?;
                if let Some(o) = orcpt {
                    check_address("orcpt", o, false).map_err(|e| bad("orcpt", e.reason))?;
                }
                recipients.push(Recipient {
                    address: addr.to_string(),
                    orcpt: orcpt.map(str::to_string),
                });
            }
            _ => {
                return Err(err(
                    lineno,
                    EnvelopeErrorKind::UnknownKey(sanitize_text(key, 40)),
                ))
            }
        }
    }
    let missing = |k| err(0, EnvelopeErrorKind::Missing(k));
    if recipients.is_empty() {
        return Err(err(0, EnvelopeErrorKind::NoRecipients));
    }
    Ok((
        Envelope {
            id: id.ok_or_else(|| missing("id"))?,
            arrival: arrival.ok_or_else(|| missing("arrival"))?,
            size: size.ok_or_else(|| missing("size"))?,
            check,
            flags: Flags {
                origin,
                ..flags.unwrap_or_default()
            },
            client: client.ok_or_else(|| missing("client"))?,
            sender: sender.ok_or_else(|| missing("sender"))?,
            recipients,
        },
        pos,
    ))
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > SIZE_WIDTH || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            id: "0A1B2C3D4E5F".into(),
            arrival: 1_700_000_000,
            size: 1234,
            check: None,
            flags: Flags {
                bounce: true,
                ..Flags::default()
            },
            client: "host.example[192.0.2.1]".into(),
            sender: "".into(),
            recipients: vec![
                Recipient {
                    address: "a@example.org".into(),
                    orcpt: Some("rfc822;A@example.org".into()),
                },
                Recipient::new("\"x y\"@example.org"),
            ],
        }
    }

    #[test]
    fn crc32_is_zlibs_and_streams() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xCBF4_3926);
        assert_eq!(crc32(0, b""), 0);
    }

    /// The spool's head: `check --------` until the one patch write sets
    /// size, check and flag slot together; unpatched, the file is refused
    /// as never committed; patched, it reads as if written whole.
    #[test]
    fn the_commit_patch_finishes_a_pending_head_in_one_write() {
        for (slot, flag) in [(false, false), (true, false), (true, true)] {
            let mut e = sample();
            let mut head = EnvelopeHead::of(&e);
            head.size = 0;
            head.check = Check::Pending;
            head.flag_slot = slot;
            let mut bytes = Vec::new();
            let size_at = write_head(&head, &mut |b: &[u8]| -> Result<(), ()> {
                bytes.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            let err = parse(&bytes).unwrap_err();
            assert_eq!(err.line, 5, "{err}");
            assert!(err.to_string().contains("never committed"), "{err}");
            let patch = commit_patch(1234, 0x5c3a_9e01, slot.then_some(flag));
            bytes[size_at..size_at + patch.len()].copy_from_slice(&patch);
            e.check = Some(0x5c3a_9e01);
            e.flags.tls_required_no = flag;
            assert_eq!(parse(&bytes).unwrap().0, e);
            if slot {
                let at = flag_slot_at(size_at, true);
                assert_eq!(at + TLS_REQUIRED_NO_SLOT.len(), size_at + patch.len());
            }
            // The same bytes as a head written with the final values.
            let mut head = EnvelopeHead::of(&e);
            head.flag_slot = slot;
            let mut whole = Vec::new();
            write_head(&head, &mut |b: &[u8]| -> Result<(), ()> {
                whole.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            assert_eq!(whole, bytes);
            assert!(String::from_utf8_lossy(&whole).contains("\ncheck 5c3a9e01\n"));
        }
        let mut f = Flags::default();
        let plain = finish_check(7, &f);
        f.tls_required_no = true;
        assert_ne!(finish_check(7, &f), plain);
    }

    #[test]
    fn bad_check_values_are_refused() {
        let base = "tern-queue-file 1\nid 0A1B2C3D4E5F\narrival 1\n\
                    size 00000000000000000000\ncheck XX\nclient local\n\
                    sender \nrcpt a@example.org\nend\n";
        for bad in ["1234567", "123456789", "ABCDEF01", "1234567g", "+1234567"] {
            let text = base.replace("XX", bad);
            let e = parse(text.as_bytes()).unwrap_err();
            assert_eq!(e.line, 5, "{bad}: {e}");
            assert!(e.to_string().contains("\"check\""), "{e}");
        }
        let twice = base.replace("check XX", "check 00000001\ncheck 00000001");
        assert_eq!(
            parse(twice.as_bytes()).unwrap_err().kind,
            EnvelopeErrorKind::Duplicate("check")
        );
        let good = base.replace("XX", "0000abcd");
        assert_eq!(parse(good.as_bytes()).unwrap().0.check, Some(0xabcd));
    }

    #[test]
    fn round_trip() {
        let e = sample();
        let (bytes, size_at) = encode(&e).unwrap();
        assert_eq!(
            &bytes[size_at..size_at + SIZE_WIDTH],
            b"00000000000000001234"
        );
        let mut with_body = bytes.clone();
        with_body.extend_from_slice(b"Subject: x\r\n\r\nbody\r\n");
        let (p, len) = parse(&with_body).unwrap();
        assert_eq!(p, e);
        assert_eq!(len, bytes.len());
    }

    #[test]
    fn notification_records_round_trip_and_old_files_still_read() {
        let mut e = sample();
        e.flags.double_bounce = true;
        e.flags.origin = Some("5A3B0F00A1C4".into());
        let (bytes, _) = encode(&e).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(
            text.contains("\nflags bounce double-bounce\norigin 5A3B0F00A1C4\nclient "),
            "{text}"
        );
        assert_eq!(parse(&bytes).unwrap().0, e);
        // A double bounce alone, and a file written before these records.
        e.flags.bounce = false;
        assert_eq!(parse(&encode(&e).unwrap().0).unwrap().0, e);
        let old = "tern-queue-file 1\nid 0A1B2C3D4E5F\narrival 1\n\
                   size 00000000000000000000\nflags bounce\nclient local\n\
                   sender \nrcpt a@example.org\nend\n";
        let (p, _) = parse(old.as_bytes()).unwrap();
        assert!(p.flags.bounce && !p.flags.double_bounce && p.flags.origin.is_none());
        // A bad origin is refused on the way in and on the way out.
        e.flags.origin = Some("../x".into());
        assert_eq!(encode(&e).unwrap_err().field, "id");
        let bad = old.replace("client local", "origin 12\nclient local");
        assert_eq!(parse(bad.as_bytes()).unwrap_err().line, 6);
    }

    #[test]
    fn tls_required_no_round_trips_and_old_files_read_unchanged() {
        let mut e = sample();
        e.flags.tls_required_no = true;
        let (bytes, _) = encode(&e).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(text.contains("\nflags bounce tls-required-no\n"), "{text}");
        assert_eq!(parse(&bytes).unwrap().0, e);
        e.flags.bounce = false;
        let (bytes, _) = encode(&e).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\nflags tls-required-no\n"));
        assert_eq!(parse(&bytes).unwrap().0, e);
        // A file of an earlier version (no such flag) reads as before.
        let old = "tern-queue-file 1\nid 0A1B2C3D4E5F\narrival 1\n\
                   size 00000000000000000000\nclient local\n\
                   sender \nrcpt a@example.org\nend\n";
        assert!(!parse(old.as_bytes()).unwrap().0.flags.tls_required_no);
    }

    /// The head smtpd writes: a slot of blanks that reads as no flag, at
    /// the offset `flag_slot_at` names, and the flag once put there.
    #[test]
    fn the_reserved_flag_slot_reads_as_no_flag_until_set() {
        for bounce in [false, true] {
            let mut e = sample();
            e.flags.bounce = bounce;
            let mut head = EnvelopeHead::of(&e);
            head.flag_slot = true;
            let mut bytes = Vec::new();
            let size_at = write_head(&head, &mut |b: &[u8]| -> Result<(), ()> {
                bytes.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            let at = flag_slot_at(size_at, false);
            assert_eq!(&bytes[at - 5..at], b"flags");
            let slot = at..at + TLS_REQUIRED_NO_SLOT.len();
            assert!(bytes[slot.clone()].iter().all(|b| *b == b' '));
            assert_eq!(parse(&bytes).unwrap().0, e, "blank slot");
            bytes[slot].copy_from_slice(TLS_REQUIRED_NO_SLOT);
            e.flags.tls_required_no = true;
            assert_eq!(parse(&bytes).unwrap().0, e, "slot set");
            // Written with the flag already known: the same bytes.
            let mut head = EnvelopeHead::of(&e);
            head.flag_slot = true;
            let mut again = Vec::new();
            write_head(&head, &mut |b: &[u8]| -> Result<(), ()> {
                again.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            assert_eq!(again, bytes);
        }
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let (bytes, _) = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            let e = parse(&bytes[..n]).unwrap_err();
            assert_eq!(e.kind, EnvelopeErrorKind::Incomplete, "prefix {n}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let (bytes, _) = encode(&sample()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let cases: &[(&str, &str, usize)] = &[
            ("arrival 1700000000", "arrival x", 3),
            ("id 0A1B2C3D4E5F", "id 0a1b", 2),
            ("flags bounce", "flags bounce weird", 5),
            ("sender \n", "sender a b\n", 7),
            ("rcpt a@example.org", "color a@example.org", 8),
        ];
        for (from, to, line) in cases {
            let bad = text.replacen(from, to, 1);
            let e = parse(bad.as_bytes()).unwrap_err();
            assert_eq!(e.line, *line, "{to}: {e}");
        }
        let e = parse(b"From x\n").unwrap_err();
        assert_eq!(e.kind, EnvelopeErrorKind::BadMagic);
        let no_id = text.replacen("id 0A1B2C3D4E5F\n", "", 1);
        assert_eq!(
            parse(no_id.as_bytes()).unwrap_err().kind,
            EnvelopeErrorKind::Missing("id")
        );
        let dup = text.replacen("client", "client x\nclient", 1);
        assert_eq!(
            parse(dup.as_bytes()).unwrap_err().kind,
            EnvelopeErrorKind::Duplicate("client")
        );
    }

    /// The encoder as it was before `write_head` (format! and a Vec), kept
    /// here as the reference the streaming encoder must match byte for byte.
    fn legacy_encode(env: &Envelope) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(format!("id {}\narrival {}\nsize ", env.id, env.arrival).as_bytes());
        let size_at = out.len();
        out.extend_from_slice(format!("{:0width$}\n", env.size, width = SIZE_WIDTH).as_bytes());
        if env.flags.bounce {
            out.extend_from_slice(b"flags bounce\n");
        }
        out.extend_from_slice(b"client ");
        out.extend_from_slice(sanitize_text(&env.client, 512).as_bytes());
        out.extend_from_slice(b"\nsender ");
        out.extend_from_slice(env.sender.as_bytes());
        out.push(b'\n');
        for r in &env.recipients {
            out.extend_from_slice(b"rcpt ");
            out.extend_from_slice(r.address.as_bytes());
            if let Some(o) = &r.orcpt {
                out.push(b'\t');
                out.extend_from_slice(o.as_bytes());
            }
            out.push(b'\n');
        }
        out.extend_from_slice(b"end\n");
        (out, size_at)
    }

    #[test]
    fn encodes_the_documented_bytes() {
        let (bytes, size_at) = encode(&sample()).unwrap();
        let want = "tern-queue-file 1\nid 0A1B2C3D4E5F\narrival 1700000000\n\
                    size 00000000000000001234\nflags bounce\n\
                    client host.example[192.0.2.1]\nsender \n\
                    rcpt a@example.org\trfc822;A@example.org\n\
                    rcpt \"x y\"@example.org\nend\n";
        assert_eq!(String::from_utf8_lossy(&bytes), want);
        assert_eq!(
            size_at,
            "tern-queue-file 1\nid 0A1B2C3D4E5F\narrival 1700000000\nsize ".len()
        );
    }

    #[test]
    fn streaming_encoder_matches_the_old_one() {
        let long = "x".repeat(MAX_ADDRESS - 12) + "@example.org";
        // Client texts around the 512-byte cut, with multi-byte and control
        // characters (U+0085 is a 2-byte control character: replaced by one
        // '?', but its own length decides the cut).
        let clients = [
            String::new(),
            "h[192.0.2.1]".to_string(),
            "a\tb\u{7f}c\u{85}d".to_string(),
            "é".repeat(300),
            "x".repeat(511) + "é",
            "x".repeat(511) + "\u{85}" + "y",
            "x".repeat(600),
        ];
        let numbers = [0, 7, 1_700_000_000, u64::MAX / 3, u64::MAX];
        for (i, client) in clients.iter().enumerate() {
            for (j, &n) in numbers.iter().enumerate() {
                let rcpts = (0..(i * 3 + j + 1))
                    .map(|k| Recipient {
                        address: if k % 2 == 0 {
                            long.clone()
                        } else {
                            format!("r{k}@x.example")
                        },
                        orcpt: (k % 3 == 1).then(|| format!("rfc822;R{k}@x.example")),
                    })
                    .collect();
                let e = Envelope {
                    id: "0A1B2C3D4E5F".into(),
                    arrival: n,
                    size: u64::MAX - n,
                    check: None,
                    flags: Flags {
                        bounce: j % 2 == 0,
                        ..Flags::default()
                    },
                    client: client.clone(),
                    sender: if j == 0 {
                        String::new()
                    } else {
                        "s@example.org".into()
                    },
                    recipients: rcpts,
                };
                assert_eq!(
                    encode(&e).unwrap(),
                    legacy_encode(&e),
                    "client {i}, number {j}"
                );
            }
        }
    }

    #[test]
    fn write_head_pieces_offsets_and_sink_errors() {
        let e = sample();
        let (whole, size_at) = encode(&e).unwrap();
        // A sink that accepts `room` bytes, then fails: the error is the
        // sink's, and nothing past the limit was offered to it.
        for room in [0, 1, 17, size_at, whole.len() - 1] {
            let mut got = Vec::new();
            let r = write_head(&EnvelopeHead::of(&e), &mut |b: &[u8]| {
                if got.len() + b.len() > room {
                    return Err(room);
                }
                got.extend_from_slice(b);
                Ok(())
            });
            assert_eq!(r, Err(room));
            assert!(got.len() <= room && whole.starts_with(&got));
        }
        let mut got = Vec::new();
        let r = write_head(&EnvelopeHead::of(&e), &mut |b: &[u8]| -> Result<(), ()> {
            got.extend_from_slice(b);
            Ok(())
        });
        assert_eq!(r, Ok(size_at));
        assert_eq!(got, whole);
    }

    #[test]
    fn check_head_names_the_bad_field() {
        let e = sample();
        let field = |f: &dyn Fn(&mut Envelope)| {
            let mut e = e.clone();
            f(&mut e);
            check_head(&EnvelopeHead::of(&e)).map_err(|v| (v.field, v.reason))
        };
        assert_eq!(field(&|_| {}), Ok(()));
        assert_eq!(field(&|e| e.id = "0a1b".into()).unwrap_err().0, "id");
        assert_eq!(
            field(&|e| e.sender = "a\rb".into()).unwrap_err().0,
            "sender"
        );
        assert_eq!(
            field(&|e| e.recipients.clear()),
            Err(("recipient", "no recipients"))
        );
        assert_eq!(
            field(&|e| e.recipients = vec![Recipient::new("a@b"); MAX_RECIPIENTS + 1]),
            Err(("recipient", "too many recipients"))
        );
        assert_eq!(
            field(&|e| e.recipients[1].address = String::new()),
            Err(("recipient", "empty"))
        );
        assert_eq!(
            field(&|e| e.recipients[0].orcpt = Some("x".repeat(MAX_ADDRESS + 1))),
            Err(("orcpt", "too long"))
        );
        // encode refuses the same values.
        let mut bad = e.clone();
        bad.recipients[0].orcpt = Some("a\nrcpt evil@x".into());
        assert_eq!(encode(&bad).unwrap_err().field, "orcpt");
    }

    #[test]
    fn rejects_unsafe_values() {
        let mut e = sample();
        e.recipients[0].address = "a@b\nrcpt evil@x".into();
        assert!(encode(&e).is_err());
        let mut e = sample();
        e.sender = "a b@c".into();
        assert!(encode(&e).is_err());
        let mut e = sample();
        e.client = "evil\nrcpt x@y".into();
        let (bytes, _) = encode(&e).unwrap();
        assert_eq!(parse(&bytes).unwrap().0.recipients.len(), 2);
    }
}
