//! Line ends of local input (`sendmail`'s standard input, a maildrop
//! file): the spool holds SMTP line ends only.

/// Line-end converter for local input: LF and CRLF become CRLF, a CR not
/// followed by LF is dropped (the spool holds SMTP-safe line ends only), the
/// last line gets a line end, and unless `-i` a line with a lone `.` ends
/// the input. Sans-I/O, constant memory.
#[derive(Debug, Clone)]
pub struct LineEnds {
    dot_ends: bool,
    bol: bool,
    cr: bool,
    dot: bool,
    dot_cr: bool,
}

/// Room [`LineEnds::feed`] needs in `out` per input byte.
pub const LINE_ENDS_SLACK: usize = 4;

impl LineEnds {
    /// A converter; `dot_ends` = a lone `.` line ends the input (no `-i`).
    pub fn new(dot_ends: bool) -> LineEnds {
        LineEnds {
            dot_ends,
            bol: true,
            cr: false,
            dot: false,
            dot_cr: false,
        }
    }

    /// Converts from `input` into `out` until either is exhausted (`out`
    /// keeps [`LINE_ENDS_SLACK`] bytes spare). Returns (bytes consumed,
    /// bytes produced, lone dot seen: input ends there).
    pub fn feed(&mut self, input: &[u8], out: &mut [u8]) -> (usize, usize, bool) {
        let mut o = 0;
        for (i, &b) in input.iter().enumerate() {
            if o + LINE_ENDS_SLACK > out.len() {
                return (i, o, false);
            }
            if self.dot_cr {
                self.dot_cr = false;
                if b == b'\n' {
                    return (i + 1, o, true);
                }
                out[o] = b'.';
                o += 1;
                self.bol = false;
            } else if self.dot {
                self.dot = false;
                match b {
                    b'\n' => return (i + 1, o, true),
                    b'\r' => {
                        self.dot_cr = true;
                        continue;
                    }
                    _ => {
                        out[o] = b'.';
                        o += 1;
                        self.bol = false;
                    }
                }
            }
            if self.cr {
                self.cr = false;
                if b == b'\n' {
                    out[o..o + 2].copy_from_slice(b"\r\n");
                    o += 2;
                    self.bol = true;
                    continue;
                }
            }
            match b {
                b'\r' => self.cr = true,
                b'\n' => {
                    out[o..o + 2].copy_from_slice(b"\r\n");
                    o += 2;
                    self.bol = true;
                }
                b'.' if self.bol && self.dot_ends => self.dot = true,
                _ => {
                    out[o] = b;
                    o += 1;
                    self.bol = false;
                }
            }
        }
        (input.len(), o, false)
    }

    /// End of input: flushes a pending `.` and terminates the last line.
    /// Needs 4 bytes of `out`; returns bytes produced.
    pub fn finish(&mut self, out: &mut [u8; 4]) -> usize {
        let mut o = 0;
        if self.dot || self.dot_cr {
            out[0] = b'.';
            o = 1;
            self.bol = false;
        }
        self.dot = false;
        self.dot_cr = false;
        self.cr = false;
        if !self.bol {
            out[o..o + 2].copy_from_slice(b"\r\n");
            o += 2;
            self.bol = true;
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(input: &[u8], dot_ends: bool) -> (Vec<u8>, bool) {
        let mut c = LineEnds::new(dot_ends);
        let mut out = Vec::new();
        let mut buf = [0u8; 16];
        let mut rest = input;
        // Feed one byte at a time with a tiny buffer: exercises every state split.
        while !rest.is_empty() {
            let (u, m, e) = c.feed(&rest[..1], &mut buf);
            out.extend_from_slice(&buf[..m]);
            rest = &rest[u..];
            if e {
                return (out, true);
            }
        }
        let mut t = [0u8; 4];
        let n = c.finish(&mut t);
        out.extend_from_slice(&t[..n]);
        (out, false)
    }

    #[test]
    fn line_ends() {
        assert_eq!(conv(b"a\nb\r\nc", false).0, b"a\r\nb\r\nc\r\n");
        assert_eq!(conv(b"a\rb\r\r\n", false).0, b"ab\r\n");
        assert_eq!(conv(b"x\n.\nafter\n", true), (b"x\r\n".to_vec(), true));
        assert_eq!(conv(b"x\r\n.\r\nafter\n", true), (b"x\r\n".to_vec(), true));
        assert_eq!(conv(b"x\n.\nafter\n", false).0, b"x\r\n.\r\nafter\r\n");
        assert_eq!(conv(b"..\n.a\n.", true).0, b"..\r\n.a\r\n.\r\n");
        assert_eq!(conv(b".\rx\n", true).0, b".x\r\n");
        assert_eq!(conv(b"", true).0, b"");
    }
}
