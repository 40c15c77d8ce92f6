//! Splitting a byte stream into command or reply lines, on a buffer the
//! caller owns.
//!
//! The driver reads from the socket into [`LineSplitter::spare`], reports the
//! count with [`LineSplitter::filled`], then takes lines with
//! [`LineSplitter::next_line`] until it returns `None`. The buffer never
//! grows: a line longer than the limit is skipped up to its end and reported
//! once as [`LineError::TooLong`].
//!
//! Line ends: CRLF always. A bare LF ends a line too, unless the mode is
//! [`BareNewline::Reject`], where it is reported as [`LineError::BareLf`]
//! (Postfix 3.9 `smtpd_forbid_bare_newline = reject`). A CR not followed by
//! LF is part of the line.
//!
//! After `STARTTLS` the driver must call [`LineSplitter::discard`]: anything
//! the client pipelined after the command was sent in plaintext and must not
//! be read as if it came over TLS (CVE-2011-0411).

/// Postfix's `line_length_limit` default.
pub const DEFAULT_LINE_LIMIT: usize = 2048;

/// What to do with a line ending in a bare LF (Postfix's
/// `smtpd_forbid_bare_newline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BareNewline {
    /// Accept bare LF as a line end and treat it as CRLF for content (the
    /// default). End-of-data still needs `CRLF.CRLF`.
    #[default]
    Normalize,
    /// Reply `521 5.5.2 host Error: bare <LF> received` and disconnect.
    Reject,
    /// Postfix's old behaviour. tern handles it like `Normalize`: it never
    /// lets a bare LF take part in end-of-data, whatever the setting.
    No,
}

/// Why no line could be returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// A line exceeded the limit; its bytes were skipped up to its end.
    TooLong,
    /// A line ended in a bare LF in [`BareNewline::Reject`] mode.
    BareLf,
}

impl core::fmt::Display for LineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LineError::TooLong => f.write_str("line too long"),
            LineError::BareLf => f.write_str("bare <LF> received"),
        }
    }
}

impl std::error::Error for LineError {}

/// Line splitting state over a caller-owned buffer. `buf[start..end]`
/// holds unread bytes.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    start: usize,
    end: usize,
    /// Bytes already scanned for a line end in `buf[start..end]`.
    scanned: usize,
    limit: usize,
    mode: BareNewline,
    /// Skipping the tail of an overlong line.
    skipping: bool,
}

impl LineSplitter {
    /// `limit`: longest line without its line end (at most the buffer
    /// length minus 2; the buffer passed later must be at least limit + 2).
    pub fn new(limit: usize, mode: BareNewline) -> Self {
        LineSplitter {
            start: 0,
            end: 0,
            scanned: 0,
            limit,
            mode,
            skipping: false,
        }
    }

    /// Changes the bare-LF mode (e.g. exempting `mynetworks`).
    pub fn set_mode(&mut self, mode: BareNewline) {
        self.mode = mode;
    }

    /// The free tail of `buf` to read into; moves unread bytes to the front
    /// first. Empty only if `buf` is full of an unfinished line, which
    /// [`next_line`](Self::next_line) prevents for `buf.len() >= limit + 2`.
    pub fn spare<'b>(&mut self, buf: &'b mut [u8]) -> &'b mut [u8] {
        if self.start > 0 {
            buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        buf.get_mut(self.end..).unwrap_or(&mut [])
    }

    /// Records that `n` bytes were read into the slice from [`spare`](Self::spare).
    pub fn filled(&mut self, buf_len: usize, n: usize) {
        self.end = (self.end + n).min(buf_len);
    }

    /// Bytes buffered but not yet returned as lines.
    pub fn buffered<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Marks `n` buffered bytes as consumed by someone else (the DATA
    /// reader takes the bytes after the `DATA` line from
    /// [`buffered`](Self::buffered)).
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        self.scanned = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops every buffered byte. Required after STARTTLS (CVE-2011-0411).
    pub fn discard(&mut self) {
        self.start = 0;
        self.end = 0;
        self.scanned = 0;
        self.skipping = false;
    }

    /// The next complete line without its line end, if one is buffered.
    pub fn next_line<'b>(&mut self, buf: &'b [u8]) -> Option<Result<&'b [u8], LineError>> {
        loop {
            let data = buf.get(self.start..self.end)?;
            let from = self.scanned.min(data.len());
            match data[from..].iter().position(|&b| b == b'\n') {
                Some(off) => {
                    let lf = from + off;
                    let crlf = lf > 0 && data[lf - 1] == b'\r';
                    let line = &data[..if crlf { lf - 1 } else { lf }];
                    let line_start = self.start;
                    self.start += lf + 1;
                    self.scanned = 0;
                    if self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                    }
                    if self.skipping {
                        self.skipping = false;
                        return Some(Err(LineError::TooLong));
                    }
                    if line.len() > self.limit {
                        return Some(Err(LineError::TooLong));
                    }
                    if !crlf && self.mode == BareNewline::Reject {
                        return Some(Err(LineError::BareLf));
                    }
                    return buf.get(line_start..line_start + line.len()).map(Ok);
                }
                None => {
                    self.scanned = data.len();
                    // Keep one byte: it may be the CR of a CRLF.
                    if data.len() > self.limit + 1 {
                        self.skipping = true;
                        let keep = data.len() - 1;
                        self.start += keep;
                        self.scanned = 1;
                        continue;
                    }
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut LineSplitter, buf: &mut [u8], data: &[u8]) {
        let len = buf.len();
        let spare = s.spare(buf);
        spare[..data.len()].copy_from_slice(data);
        s.filled(len, data.len());
    }

    fn lines(s: &mut LineSplitter, buf: &[u8]) -> Vec<Result<Vec<u8>, LineError>> {
        let mut v = Vec::new();
        while let Some(l) = s.next_line(buf) {
            v.push(l.map(|l| l.to_vec()));
        }
        v
    }

    #[test]
    fn crlf_lf_and_cr() {
        let mut buf = [0u8; 64];
        let mut s = LineSplitter::new(20, BareNewline::Normalize);
        feed(&mut s, &mut buf, b"EHLO a\r\nNOOP\nQU\rIT\r\nRS");
        assert_eq!(
            lines(&mut s, &buf),
            [
                Ok(b"EHLO a".to_vec()),
                Ok(b"NOOP".to_vec()),
                Ok(b"QU\rIT".to_vec())
            ]
        );
        feed(&mut s, &mut buf, b"ET\r");
        assert!(lines(&mut s, &buf).is_empty());
        feed(&mut s, &mut buf, b"\n");
        assert_eq!(lines(&mut s, &buf), [Ok(b"RSET".to_vec())]);
    }

    #[test]
    fn reject_bare_lf() {
        let mut buf = [0u8; 64];
        let mut s = LineSplitter::new(20, BareNewline::Reject);
        feed(&mut s, &mut buf, b"NOOP\r\nNOOP\n");
        assert_eq!(
            lines(&mut s, &buf),
            [Ok(b"NOOP".to_vec()), Err(LineError::BareLf)]
        );
    }

    /// Feeds `data` in pieces as large as the buffer allows, collecting lines.
    fn feed_all(
        s: &mut LineSplitter,
        buf: &mut [u8],
        data: &[u8],
        piece: usize,
    ) -> Vec<Result<Vec<u8>, LineError>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let len = buf.len();
            let spare = s.spare(buf);
            assert!(!spare.is_empty(), "buffer stuck");
            let n = spare.len().min(piece).min(data.len() - pos);
            spare[..n].copy_from_slice(&data[pos..pos + n]);
            s.filled(len, n);
            pos += n;
            out.extend(lines(s, buf));
        }
        out
    }

    #[test]
    fn too_long_is_skipped_once() {
        for piece in 1..=12 {
            let mut buf = [0u8; 12];
            let mut s = LineSplitter::new(10, BareNewline::Normalize);
            let mut input = b"0123456789".to_vec();
            input.extend_from_slice(&[b'b'; 40]);
            input.extend_from_slice(b"\r\nOK\r\n0123456789\r\n01234567890\r\nx\r\n");
            assert_eq!(
                feed_all(&mut s, &mut buf, &input, piece),
                [
                    Err(LineError::TooLong),
                    Ok(b"OK".to_vec()),
                    Ok(b"0123456789".to_vec()),
                    Err(LineError::TooLong),
                    Ok(b"x".to_vec())
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn discard_drops_pipelined_plaintext() {
        let mut buf = [0u8; 64];
        let mut s = LineSplitter::new(20, BareNewline::Normalize);
        feed(&mut s, &mut buf, b"STARTTLS\r\nMAIL FROM:<a@b>\r\n");
        assert_eq!(s.next_line(&buf), Some(Ok(&b"STARTTLS"[..])));
        s.discard();
        assert_eq!(s.next_line(&buf), None);
        assert!(s.buffered(&buf).is_empty());
    }

    #[test]
    fn consume_for_data() {
        let mut buf = [0u8; 64];
        let mut s = LineSplitter::new(20, BareNewline::Normalize);
        feed(&mut s, &mut buf, b"DATA\r\nSubject: x\r\n");
        assert_eq!(s.next_line(&buf), Some(Ok(&b"DATA"[..])));
        assert_eq!(s.buffered(&buf), b"Subject: x\r\n");
        s.consume(9);
        assert_eq!(s.buffered(&buf), b"x\r\n");
    }
}
