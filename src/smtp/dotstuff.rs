//! The outbound body encoder: dot-stuffing with strict CRLF line ends.
//!
//! Whatever line ends the input has, the output has only CRLF: CRLF stays
//! CRLF, a bare LF becomes CRLF, and a bare CR (CR not followed by LF)
//! becomes CRLF too. So a message that arrived with smuggling sequences
//! (`LF.LF`, `CR.CR`, `LF.CRLF` ...) can never end tern's DATA early at the
//! next hop: every line that starts with `.` gets a second `.`, and the
//! only `CRLF.CRLF` on the wire is the one [`DotStuffer::finish`] writes.

/// Encoder state; one per message.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Most output bytes one input byte can produce (a pending CR's CRLF plus
/// a stuffed dot).
pub const MAX_EXPANSION: usize = 4;

impl DotStuffer {
    /// A fresh encoder at the start of the body.
    pub fn new() -> Self {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
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
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    put(out, &mut w, b"\r\n");
                    self.at_line_start = true;
                }
                _ => {
                    if self.at_line_start && b == b'.' {
                        put(out, &mut w, b".");
                    }
                    put(out, &mut w, &[b]);
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
        *self = Self::new();
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
        let mut d = DotStuffer::new();
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
}
