//! Streaming decoder for the DATA phase (RFC 5321 §4.1.1.4, §4.5.2).
//!
//! # The rule, exactly
//!
//! * A line ends at LF. It is a *CRLF line* if the LF is preceded by CR,
//!   else a *bare-LF line*.
//! * **End-of-data is a line consisting of exactly `.` that is a CRLF line
//!   and whose preceding line is a CRLF line** (the start of DATA counts as
//!   following a CRLF line, since the `DATA` command itself ended there).
//!   Nothing else ends the data: not `LF.LF`, `LF.CRLF`, `CRLF.LF`,
//!   `CR.CR`, nor `.` followed by anything else (SMTP smuggling,
//!   CVE-2023-51764 / CVE-2023-51766).
//! * Dot-unstuffing: a leading `.` is removed from every line, terminator
//!   or not (a `.` line that does not end the data becomes an empty line).
//! * Output lines always end in CRLF. In [`BareNewline::Normalize`] (and
//!   `No`) mode a bare LF line end is written as CRLF. In
//!   [`BareNewline::Reject`] mode the first bare LF stops the output, the
//!   reader still consumes up to end-of-data (so the session stays in
//!   step with the client) and reports [`DataEnd::BareLf`]; the session
//!   answers `550 5.5.2 host Error: bare <LF> received`, as Postfix 3.7.11
//!   does with `smtpd_forbid_bare_newline = reject` (verified against it).
//! * A CR not followed by LF is data and is passed through unchanged.
//! * Size is the number of output bytes (after unstuffing, with CRLF line
//!   ends). Once it would exceed the limit the reader stops writing output
//!   but keeps consuming input until end-of-data, then reports
//!   [`DataEnd::TooBig`]; the session answers
//!   `552 5.3.4 Error: message file too big` (Postfix's text after DATA;
//!   `552 5.3.4 Message size exceeds fixed limit` is its answer to a
//!   too-large `SIZE=` at MAIL).
//!
//! The caller owns both buffers: each input byte yields at most two output
//! bytes, and [`DataReader::feed`] stops when the output has fewer than two
//! bytes of room.

pub use super::line::BareNewline;

/// How the data phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEnd {
    /// `CRLF.CRLF` seen; `size` bytes of body were produced.
    Complete {
        /// Body size in bytes as written (CRLF line ends).
        size: u64,
    },
    /// `CRLF.CRLF` seen, but the body exceeded the limit; output stopped
    /// at the limit.
    TooBig {
        /// Bytes the body would have had.
        size: u64,
    },
    /// `CRLF.CRLF` seen, but a bare LF came first in
    /// [`BareNewline::Reject`] mode; output stopped there.
    BareLf {
        /// Body offset (output bytes) where the first bare LF was.
        at: u64,
    },
}

/// Result of one [`DataReader::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed {
    /// Input bytes consumed. After an end, the rest of the input belongs
    /// to the command phase (pipelined commands after the dot).
    pub consumed: usize,
    /// Output bytes written.
    pub written: usize,
    /// Set once end-of-data was consumed.
    pub end: Option<DataEnd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// Inside a line.
    InLine,
    /// Inside a line, a CR was just seen (not yet written).
    Cr,
    /// Line started with '.', nothing else yet.
    Dot,
    /// Line is ".\r" so far.
    DotCr,
    /// End-of-data consumed.
    Done,
}

/// The DATA decoder. One per message.
#[derive(Debug, Clone)]
pub struct DataReader {
    state: State,
    prev_crlf: bool,
    size: u64,
    limit: u64,
    mode: BareNewline,
    too_big: bool,
    /// Output offset of the first bare LF in reject mode.
    bare_lf: Option<u64>,
}

impl DataReader {
    /// `limit`: `message_size_limit` in bytes, 0 for none.
    pub fn new(limit: u64, mode: BareNewline) -> Self {
        DataReader {
            state: State::LineStart,
            prev_crlf: true,
            size: 0,
            limit,
            mode,
            too_big: false,
            bare_lf: None,
        }
    }

    /// Body bytes counted so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True once the limit was crossed.
    pub fn too_big(&self) -> bool {
        self.too_big
    }

    /// Decodes from `input` into `out`. Call again with the unconsumed rest
    /// and fresh output room until `end` is set or the input is used up.
    pub fn feed(&mut self, input: &[u8], out: &mut [u8]) -> Feed {
        let mut w = 0usize;
        let mut i = 0usize;
        // Each step writes at most 2 bytes.
        while i < input.len() && self.state != State::Done && w + 2 <= out.len() {
            let b = input[i];
            i += 1;
            match (self.state, b) {
                (State::LineStart, b'.') => self.state = State::Dot,
                (State::Dot, b'\r') => self.state = State::DotCr,
                (State::DotCr, b'\n') => {
                    if self.prev_crlf {
                        self.state = State::Done;
                    } else {
                        // "." after a bare-LF line: an empty CRLF line.
                        self.emit(out, &mut w, b"\r\n");
                        self.prev_crlf = true;
                        self.state = State::LineStart;
                    }
                }
                (State::Dot | State::LineStart | State::InLine, b'\n') => {
                    if self.mode == BareNewline::Reject && self.bare_lf.is_none() {
                        self.bare_lf = Some(self.size);
                    }
                    self.emit(out, &mut w, b"\r\n");
                    self.prev_crlf = false;
                    self.state = State::LineStart;
                }
                (State::Cr, b'\n') => {
                    self.emit(out, &mut w, b"\r\n");
                    self.prev_crlf = true;
                    self.state = State::LineStart;
                }
                (State::Cr | State::DotCr, b'\r') => {
                    // The earlier CR was not followed by LF: it is data.
                    self.emit(out, &mut w, b"\r");
                    self.state = State::Cr;
                }
                (State::Cr | State::DotCr, other) => {
                    self.emit(out, &mut w, &[b'\r', other]);
                    self.state = State::InLine;
                }
                (State::LineStart | State::InLine, b'\r') => self.state = State::Cr,
                (State::LineStart | State::Dot | State::InLine, other) => {
                    self.emit(out, &mut w, &[other]);
                    self.state = State::InLine;
                }
                (State::Done, _) => {}
            }
        }
        let end = if self.state == State::Done {
            Some(if let Some(at) = self.bare_lf {
                DataEnd::BareLf { at }
            } else if self.too_big {
                DataEnd::TooBig { size: self.size }
            } else {
                DataEnd::Complete { size: self.size }
            })
        } else {
            None
        };
        Feed {
            consumed: i,
            written: w,
            end,
        }
    }

    fn emit(&mut self, out: &mut [u8], w: &mut usize, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.limit != 0 && self.size > self.limit {
            self.too_big = true;
        }
        if self.too_big || self.bare_lf.is_some() {
            return;
        }
        for &b in bytes {
            if let Some(slot) = out.get_mut(*w) {
                *slot = b;
                *w += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the whole input through with a small output buffer and odd
    /// chunk sizes; returns (body, end, bytes consumed).
    fn run(
        input: &[u8],
        limit: u64,
        mode: BareNewline,
        chunk: usize,
    ) -> (Vec<u8>, Option<DataEnd>, usize) {
        let mut r = DataReader::new(limit, mode);
        let mut body = Vec::new();
        let mut pos = 0;
        let mut out = [0u8; 7];
        while pos < input.len() {
            let end = (pos + chunk).min(input.len());
            let f = r.feed(&input[pos..end], &mut out);
            body.extend_from_slice(&out[..f.written]);
            pos += f.consumed;
            if f.end.is_some() {
                return (body, f.end, pos);
            }
        }
        (body, None, pos)
    }

    fn all_chunks(input: &[u8], mode: BareNewline) -> (Vec<u8>, Option<DataEnd>, usize) {
        let first = run(input, 0, mode, 1);
        for c in 2..=input.len().max(2) {
            assert_eq!(run(input, 0, mode, c), first, "chunk size {c}");
        }
        first
    }

    #[test]
    fn plain_end_and_pipelined_rest() {
        let input = b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        let (body, end, used) = all_chunks(input, BareNewline::Normalize);
        assert_eq!(body, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(end, Some(DataEnd::Complete { size: 20 }));
        assert_eq!(&input[used..], b"QUIT\r\n");
    }

    #[test]
    fn empty_body() {
        let (body, end, used) = all_chunks(b".\r\n", BareNewline::Normalize);
        assert_eq!(body, b"");
        assert_eq!(end, Some(DataEnd::Complete { size: 0 }));
        assert_eq!(used, 3);
    }

    #[test]
    fn dot_unstuffing() {
        let (body, end, _) = all_chunks(b"..a\r\n...\r\n.b\r\n.\r\n", BareNewline::Normalize);
        assert_eq!(body, b".a\r\n..\r\nb\r\n");
        assert!(end.is_some());
    }

    #[test]
    fn smuggling_variants_do_not_end_data() {
        for (input, expect) in [
            (
                &b"a\n.\nMAIL FROM:<x@y>\n"[..],
                &b"a\r\n\r\nMAIL FROM:<x@y>\r\n"[..],
            ),
            (
                b"a\n.\r\nMAIL FROM:<x@y>\r\n",
                b"a\r\n\r\nMAIL FROM:<x@y>\r\n",
            ),
            (
                b"a\r\n.\nMAIL FROM:<x@y>\r\n",
                b"a\r\n\r\nMAIL FROM:<x@y>\r\n",
            ),
            (b"a\r.\rMAIL FROM:<x@y>\r\n", b"a\r.\rMAIL FROM:<x@y>\r\n"),
            (b"a\r\n.\rMAIL\r\n", b"a\r\n\rMAIL\r\n"),
            (b"a\r\n. \r\nb\r\n", b"a\r\n \r\nb\r\n"),
            (b"a\r\n.\r\r\nb\r\n", b"a\r\n\r\r\nb\r\n"),
        ] {
            let (body, end, used) = all_chunks(input, BareNewline::Normalize);
            assert_eq!(end, None, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(body, expect, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(used, input.len());
        }
        // After a bare-LF line the next ".\r\n" is not the end either, but
        // a real CRLF.CRLF later is.
        let input = b"a\n.\r\nb\r\n.\r\n";
        let (body, end, used) = all_chunks(input, BareNewline::Normalize);
        assert_eq!(body, b"a\r\n\r\nb\r\n");
        assert!(end.is_some());
        assert_eq!(used, input.len());
    }

    #[test]
    fn bare_cr_is_data() {
        let (body, end, _) = all_chunks(b"a\rb\r\r\n.\r\n", BareNewline::Normalize);
        assert_eq!(body, b"a\rb\r\r\n");
        assert!(end.is_some());
    }

    #[test]
    fn reject_mode() {
        let input = b"ab\r\ncd\nx\r\n.\nyy\r\n.\r\nQUIT\r\n";
        let (body, end, used) = run(input, 0, BareNewline::Reject, 3);
        assert_eq!(body, b"ab\r\ncd");
        assert_eq!(end, Some(DataEnd::BareLf { at: 6 }));
        assert_eq!(&input[used..], b"QUIT\r\n");
        let mut r = DataReader::new(0, BareNewline::Reject);
        let mut out = [0u8; 64];
        let f = r.feed(b"ab\r\ncd\r\n.\r\n", &mut out);
        assert_eq!(f.end, Some(DataEnd::Complete { size: 8 }));
    }

    #[test]
    fn size_limit_consumes_to_end() {
        let input = b"0123456789\r\n0123456789\r\n.\r\nQUIT\r\n";
        let (body, end, used) = run(input, 12, BareNewline::Normalize, 5);
        assert_eq!(body, b"0123456789\r\n");
        assert_eq!(end, Some(DataEnd::TooBig { size: 24 }));
        assert_eq!(&input[used..], b"QUIT\r\n");
        let (_, end, _) = run(input, 24, BareNewline::Normalize, 5);
        assert_eq!(end, Some(DataEnd::Complete { size: 24 }));
    }

    #[test]
    fn stops_when_output_full() {
        let mut r = DataReader::new(0, BareNewline::Normalize);
        let mut out = [0u8; 3];
        let f = r.feed(b"\n\n\n", &mut out);
        assert_eq!((f.consumed, f.written), (1, 2));
        let mut none = [0u8; 1];
        let f = r.feed(b"\n\n", &mut none);
        assert_eq!((f.consumed, f.written), (0, 0));
    }
}
