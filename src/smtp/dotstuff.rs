//! The outbound body encoder: dot-stuffing with strict CRLF line ends,
//! and long lines broken as Postfix's smtp client breaks them.
//!
//! Whatever line ends the input has, the output has only CRLF: CRLF stays
//! CRLF, a bare LF becomes CRLF, and a bare CR (CR not followed by LF)
//! becomes CRLF too. So a message that arrived with smuggling sequences
//! (`LF.LF`, `CR.CR`, `LF.CRLF` ...) can never end tern's DATA early at the
//! next hop: every line that starts with `.` gets a second `.`, and the
//! only `CRLF.CRLF` on the wire is the one [`DotStuffer::finish`] writes.
//!
//! `smtp_line_length_limit` (Postfix default 998): a line longer than the
//! limit is broken by inserting `CRLF SPACE` ("to minimize the damage to
//! MIME formatted mail", postconf(5)), as Postfix's `smtp_text_out` does:
//! the limit's worth of octets, CRLF, a space, and the rest, again broken
//! every limit octets (the space counts). A line of exactly the limit is
//! not touched. Unlike Postfix, a stuffed dot counts toward the limit, so
//! no line on the wire is ever longer than the limit (RFC 5321's 1000
//! octets with CRLF). Continuation lines start with a space, so folding
//! never puts a dot at the start of a line.

/// Encoder state; one per message.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    pending_cr: bool,
    /// `smtp_line_length_limit`; 0: lines are never broken.
    limit: usize,
    /// Octets written on the current output line (without its CRLF).
    col: usize,
}

/// Postfix's default `smtp_line_length_limit`: 998 octets plus CRLF is
/// RFC 5321's 1000.
pub const DEFAULT_LINE_LIMIT: usize = 998;

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Most output bytes one input byte can produce: a pending CR's CRLF plus
/// a stuffed dot and the byte, or a fold's CRLF SPACE and the byte (a fold
/// never follows a line end: the column is then 0).
pub const MAX_EXPANSION: usize = 4;

impl DotStuffer {
    /// A fresh encoder at the start of the body, breaking lines at
    /// [`DEFAULT_LINE_LIMIT`].
    pub fn new() -> Self {
        Self::with_line_limit(DEFAULT_LINE_LIMIT)
    }

    /// A fresh encoder breaking lines longer than `limit` octets
    /// (`smtp_line_length_limit`; 0: never).
    pub fn with_line_limit(limit: usize) -> Self {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
            limit,
            col: 0,
        }
    }

    /// Encodes from `input` into `out`; returns (consumed, written). Stops
    /// when `out` has less than [`MAX_EXPANSION`] bytes of room.
    pub fn feed(&mut self, input: &[u8], out: &mut [u8]) -> (usize, usize) {
        let mut w = 0;
        let mut i = 0;
        while i < input.len() && w + MAX_EXPANSION <= out.len() {
            let b = input[i];
            i += 1;
            if self.pending_cr {
                self.pending_cr = false;
                put(out, &mut w, b"\r\n");
                self.at_line_start = true;
                self.col = 0;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    put(out, &mut w, b"\r\n");
                    self.at_line_start = true;
                    self.col = 0;
                }
                _ => {
                    if self.at_line_start && b == b'.' {
                        put(out, &mut w, b".");
                        self.col += 1;
                    } else if self.limit > 0 && self.col >= self.limit {
                        // Only now, with a content byte in hand, is the
                        // line known to be longer than the limit: a line
                        // of exactly the limit stays whole, as in Postfix.
                        put(out, &mut w, b"\r\n ");
                        self.col = 1;
                    }
                    put(out, &mut w, &[b]);
                    self.col = self.col.saturating_add(1);
                    self.at_line_start = false;
                }
            }
        }
        (i, w)
    }

    /// The end of the body: a CRLF if the last line is unfinished, then
    /// `.` CRLF. Needs at most 5 bytes.
    pub fn finish(&mut self) -> heapless::Vec<u8, 8> {
        let mut v = heapless::Vec::new();
        if self.pending_cr || !self.at_line_start {
            let _ = v.extend_from_slice(b"\r\n");
        }
        let _ = v.extend_from_slice(b".\r\n");
        *self = Self::with_line_limit(self.limit);
        v
    }
}

fn put(out: &mut [u8], w: &mut usize, bytes: &[u8]) {
    for &b in bytes {
        if let Some(slot) = out.get_mut(*w) {
            *slot = b;
            *w += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::data::{BareNewline, DataEnd, DataReader};

    fn encode(input: &[u8], chunk: usize) -> Vec<u8> {
        encode_with(input, chunk, DEFAULT_LINE_LIMIT)
    }

    fn encode_with(input: &[u8], chunk: usize, limit: usize) -> Vec<u8> {
        let mut d = DotStuffer::with_line_limit(limit);
        let mut out = [0u8; 9];
        let mut v = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + chunk).min(input.len());
            let (c, w) = d.feed(&input[pos..end], &mut out);
            v.extend_from_slice(&out[..w]);
            pos += c;
        }
        v.extend_from_slice(&d.finish());
        v
    }

    #[test]
    fn stuffing_and_line_ends() {
        for chunk in 1..8 {
            assert_eq!(encode(b"a\r\n.b\r\n", chunk), b"a\r\n..b\r\n.\r\n");
            assert_eq!(encode(b".", chunk), b"..\r\n.\r\n");
            assert_eq!(encode(b"", chunk), b".\r\n");
            assert_eq!(encode(b"x", chunk), b"x\r\n.\r\n");
            assert_eq!(encode(b"a\n.\nb", chunk), b"a\r\n..\r\nb\r\n.\r\n");
            assert_eq!(encode(b"a\r.\rb\r", chunk), b"a\r\n..\r\nb\r\n.\r\n");
            assert_eq!(encode(b"a\r\r\n.\r\n", chunk), b"a\r\n\r\n..\r\n.\r\n");
        }
    }

    /// Whatever the input, our own DATA reader reads it back to exactly
    /// one end, at the very end, and recovers the CRLF-normalised input.
    #[test]
    fn round_trip_through_data_reader() {
        let inputs: [&[u8]; 5] = [
            b"a\n.\nMAIL FROM:<x@y>\n",
            b"a\r\n.\r\nb",
            b"\r.\r\n.\n.",
            b"..\r\n...\n",
            b"plain\r\n",
        ];
        for input in inputs {
            let wire = encode(input, 3);
            let mut r = DataReader::new(0, BareNewline::Reject);
            let mut out = vec![0u8; wire.len() * 2 + 2];
            let f = r.feed(&wire, &mut out);
            assert_eq!(f.consumed, wire.len(), "{input:?}");
            assert!(matches!(f.end, Some(DataEnd::Complete { .. })), "{input:?}");
            let mut expect = Vec::new();
            let mut i = 0;
            while i < input.len() {
                match input[i] {
                    b'\r' if input.get(i + 1) == Some(&b'\n') => {
                        expect.extend_from_slice(b"\r\n");
                        i += 1;
                    }
                    b'\r' | b'\n' => expect.extend_from_slice(b"\r\n"),
                    b => expect.push(b),
                }
                i += 1;
            }
            if !expect.is_empty() && !expect.ends_with(b"\r\n") {
                expect.extend_from_slice(b"\r\n");
            }
            assert_eq!(&out[..f.written], &expect[..], "{input:?}");
        }
    }

    #[test]
    fn long_lines_are_broken_with_crlf_space() {
        for chunk in 1..9 {
            let e = |i: &[u8]| encode_with(i, chunk, 5);
            // Exactly the limit: untouched; one more: broken.
            assert_eq!(e(b"abcde"), b"abcde\r\n.\r\n");
            assert_eq!(e(b"abcde\r\n"), b"abcde\r\n.\r\n");
            assert_eq!(e(b"abcdef"), b"abcde\r\n f\r\n.\r\n");
            // The space counts: continuation lines carry limit - 1.
            assert_eq!(
                e(b"abcdefghijklm\r\nz"),
                b"abcde\r\n fghi\r\n jklm\r\nz\r\n.\r\n"
            );
            // A stuffed dot counts toward the limit on the wire.
            assert_eq!(e(b".bcdef"), b"..bcd\r\n ef\r\n.\r\n");
            // A dot after a fold is behind the space: never stuffed, never
            // at a line start.
            assert_eq!(e(b"abcde.\r\n.\r\n"), b"abcde\r\n .\r\n..\r\n.\r\n");
            // Line ends at the boundary, CRLF split across chunks, bare CR
            // and bare LF: a line end, not a fold.
            assert_eq!(e(b"abcde\r\nfghij\r\n"), b"abcde\r\nfghij\r\n.\r\n");
            assert_eq!(e(b"abcde\rx"), b"abcde\r\nx\r\n.\r\n");
            assert_eq!(e(b"abcde\nx"), b"abcde\r\nx\r\n.\r\n");
            assert_eq!(e(b"abcde\r"), b"abcde\r\n.\r\n");
            // 0: no limit.
            let long = vec![b'x'; 5000];
            let mut want = long.clone();
            want.extend_from_slice(b"\r\n.\r\n");
            assert_eq!(encode_with(&long, chunk, 0), want);
        }
        // The default is Postfix's 998.
        let long = vec![b'y'; 998 * 3];
        let wire = encode(&long, 4096);
        let lines: Vec<&[u8]> = wire.split(|&b| b == b'\n').collect();
        assert_eq!(lines[0].len(), 999);
        assert_eq!(lines[1].len(), 999);
        assert_eq!(lines[1][0], b' ');
    }

    /// Pseudo-random bodies of `a`, `.`, CR and LF: every wire line fits
    /// the limit, our DATA reader sees one end, and taking out the
    /// inserted `CRLF SPACE` gives back the CRLF-normalised input.
    #[test]
    fn folding_changes_nothing_but_the_inserted_octets() {
        let mut seed = 0x2545_f491_u32;
        for round in 0..300 {
            let len = (round * 7) % 97;
            let limit = 2 + round % 9;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    // Mostly `a`, so that long lines happen.
                    match seed % 16 {
                        0 => b'\r',
                        1 => b'\n',
                        2 | 3 => b'.',
                        _ => b'a',
                    }
                })
                .collect();
            let wire = encode_with(&input, 1 + round % 5, limit);
            for line in wire.split(|&b| b == b'\n') {
                assert!(line.len() <= limit + 1, "{input:?} {wire:?}");
            }
            let mut r = DataReader::new(0, BareNewline::Reject);
            let mut out = vec![0u8; wire.len() + 2];
            let f = r.feed(&wire, &mut out);
            assert_eq!(f.consumed, wire.len(), "{input:?}");
            assert!(matches!(f.end, Some(DataEnd::Complete { .. })));
            let got = out[..f.written].to_vec();
            let mut unfolded = Vec::new();
            let mut i = 0;
            while i < got.len() {
                if got[i..].starts_with(b"\r\n ") {
                    i += 3;
                } else {
                    unfolded.push(got[i]);
                    i += 1;
                }
            }
            let mut expect = Vec::new();
            let mut i = 0;
            while i < input.len() {
                match input[i] {
                    b'\r' if input.get(i + 1) == Some(&b'\n') => {
                        expect.extend_from_slice(b"\r\n");
                        i += 1;
                    }
                    b'\r' | b'\n' => expect.extend_from_slice(b"\r\n"),
                    b => expect.push(b),
                }
                i += 1;
            }
            if !expect.is_empty() && !expect.ends_with(b"\r\n") {
                expect.extend_from_slice(b"\r\n");
            }
            assert_eq!(unfolded, expect, "{input:?} limit {limit}");
        }
    }
}
