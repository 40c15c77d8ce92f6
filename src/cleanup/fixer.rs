//! Header rewriting and completion as a message streams, for mail from
//! SMTP clients that `local_header_rewrite_clients` names, as Postfix's
//! cleanup(8) does for them (local submissions get the same from
//! [`super::local`], which holds their header block whole): address
//! headers are qualified and canonicalised, and a missing `From:`,
//! `Date:` or `Message-Id:` is added at the end of the header block.
//!
//! Sans-I/O: [`HeaderClients`] decides from values, and [`HeaderFixer`]
//! takes the message as it streams (CRLF lines, after dot-unstuffing) and
//! hands the bytes to write to a callback. Memory is bounded: one header
//! field is held at a time, at most [`MAX_FIELD`] bytes; a longer field
//! ends the rewriting for that message (the rest passes through as it is,
//! nothing is added), so a peer cannot make the buffer grow.

use std::net::IpAddr;

/// The longest header field (with its continuation lines) held for
/// rewriting.
pub const MAX_FIELD: usize = 16 * 1024;

/// `local_header_rewrite_clients`: which SMTP clients get their headers
/// rewritten (Postfix's names; its default is `permit_inet_interfaces`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderClients {
    /// `permit_inet_interfaces`: the client's address is one of this
    /// host's (`inet_interfaces`).
    pub inet_interfaces: bool,
    /// `permit_mynetworks`: the client is in `mynetworks`.
    pub mynetworks: bool,
    /// `permit_sasl_authenticated`: the client logged in with AUTH.
    pub sasl_authenticated: bool,
    /// `static:all`: every client.
    pub all: bool,
}

impl HeaderClients {
    /// Parses the parameter's value: a list of `permit_inet_interfaces`,
    /// `permit_mynetworks`, `permit_sasl_authenticated` and `static:all`
    /// (empty: no client). Anything else is an error naming the entry.
    pub fn parse(value: &str) -> Result<HeaderClients, String> {
        let mut c = HeaderClients::default();
        for item in crate::config::split_list(value) {
            match item.to_ascii_lowercase().as_str() {
                "permit_inet_interfaces" => c.inet_interfaces = true,
                "permit_mynetworks" => c.mynetworks = true,
                "permit_sasl_authenticated" => c.sasl_authenticated = true,
                "static:all" => c.all = true,
                _ => {
                    return Err(format!(
                        "\"{item}\" is not supported (use permit_inet_interfaces, permit_mynetworks, permit_sasl_authenticated or static:all)"
                    ))
                }
            }
        }
        Ok(c)
    }

    /// Whether a client at `addr` gets its headers rewritten. `interface`
    /// tells whether an address is one of this host's, `in_mynetworks`
    /// and `authenticated` describe the session.
    pub fn matches(
        &self,
        addr: IpAddr,
        interface: impl Fn(IpAddr) -> bool,
        in_mynetworks: bool,
        authenticated: bool,
    ) -> bool {
        self.all
            || self.mynetworks && in_mynetworks
            || self.sasl_authenticated && authenticated
            || self.inet_interfaces && (addr.is_loopback() || interface(addr))
    }
}

/// The `Message-Id:` value tern adds (`sendmail` and local SMTP clients):
/// `<YYYYMMDDHHMMSS.QUEUEID@myhostname>`, unique by the queue ID.
pub fn message_id(date: &crate::queue::clock::Civil, queue_id: &str, hostname: &str) -> String {
    format!(
        "<{:04}{:02}{:02}{:02}{:02}{:02}.{queue_id}@{hostname}>",
        date.year, date.month, date.day, date.hour, date.min, date.sec
    )
}

/// The header lines to add when missing, each a complete `Name: value\r\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// `From: ...\r\n`.
    pub from: String,
    /// `Date: ...\r\n`.
    pub date: String,
    /// `Message-Id: <...>\r\n`.
    pub message_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Headers,
    Body,
}

/// Rewrites the header block of one message as it streams; see the
/// module documentation.
#[derive(Debug)]
pub struct HeaderFixer {
    state: State,
    /// The current line, until its LF arrives.
    line: Vec<u8>,
    /// The current header field, until a line that is not its
    /// continuation arrives.
    field: Vec<u8>,
    seen_from: bool,
    seen_date: bool,
    seen_message_id: bool,
    added: Added,
}

impl HeaderFixer {
    /// A fixer for one message; `added` are the lines for missing headers.
    pub fn new(added: Added) -> HeaderFixer {
        HeaderFixer {
            state: State::Headers,
            line: Vec::new(),
            field: Vec::new(),
            seen_from: false,
            seen_date: false,
            seen_message_id: false,
            added,
        }
    }

    /// True once the header block is behind (everything passes through).
    pub fn in_body(&self) -> bool {
        self.state == State::Body
    }

    /// Feeds message bytes. `edit(name, value)` returns a new value for an
    /// address header (without the trailing CRLF), or `None` to keep it;
    /// `out` receives the bytes to write, in order.
    pub fn feed<E>(
        &mut self,
        mut input: &[u8],
        edit: &mut impl FnMut(&str, &str) -> Option<String>,
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while !input.is_empty() {
            if self.state == State::Body {
                return out(input);
            }
            let (part, rest, complete) = match input.iter().position(|b| *b == b'\n') {
                Some(i) => (&input[..=i], &input[i + 1..], true),
                None => (input, &[][..], false),
            };
            input = rest;
            if self.line.len() + part.len() > MAX_FIELD {
                // Too long to hold: write it all as it came.
                self.give_up(out)?;
                out(part)?;
                continue;
            }
            self.line.extend_from_slice(part);
            if complete {
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, edit, out)?;
            }
        }
        Ok(())
    }

    /// The end of the message: a header block that never ended gets the
    /// missing headers and the empty line that ends it.
    pub fn finish<E>(
        &mut self,
        edit: &mut impl FnMut(&str, &str) -> Option<String>,
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.state == State::Body {
            return Ok(());
        }
        self.finish_field(edit, out)?;
        self.state = State::Body;
        self.emit_missing(out)?;
        out(b"\r\n")?;
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            Ok(())
        } else {
            out(&line)
        }
    }

    fn process_line<E>(
        &mut self,
        line: &[u8],
        edit: &mut impl FnMut(&str, &str) -> Option<String>,
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if continuation && !self.field.is_empty() {
            if self.field.len() + line.len() > MAX_FIELD {
                self.give_up(out)?;
                return out(line);
            }
            self.field.extend_from_slice(line);
            return Ok(());
        }
        self.finish_field(edit, out)?;
        if line == b"\r\n" || line == b"\n" {
            self.state = State::Body;
            self.emit_missing(out)?;
            return out(line);
        }
        if super::headers::field_name_len(line).is_some() {
            self.field.extend_from_slice(line);
            return Ok(());
        }
        // Not a header line: the body starts here, without the empty
        // line; the header block is ended for it, as `sendmail` does.
        self.state = State::Body;
        self.emit_missing(out)?;
        out(b"\r\n")?;
        out(line)
    }

    /// Writes the held field, rewritten if `edit` says so.
    fn finish_field<E>(
        &mut self,
        edit: &mut impl FnMut(&str, &str) -> Option<String>,
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.field.is_empty() {
            return Ok(());
        }
        let field = std::mem::take(&mut self.field);
        let Some(colon) = field.iter().position(|b| *b == b':') else {
            return out(&field);
        };
        let name = String::from_utf8_lossy(&field[..colon]);
        let name = name.trim_end();
        match name.to_ascii_lowercase().as_str() {
            "from" => self.seen_from = true,
            "date" => self.seen_date = true,
            "message-id" => self.seen_message_id = true,
            _ => {}
        }
        let end = field.len()
            - usize::from(field.ends_with(b"\n"))
            - usize::from(field.ends_with(b"\r\n"));
        let new_value = std::str::from_utf8(&field[colon + 1..end])
            .ok()
            .and_then(|v| edit(name, v));
        match new_value {
            Some(v) => out(format!("{name}:{v}\r\n").as_bytes()),
            None => out(&field),
        }
    }

    fn emit_missing<E>(&mut self, out: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if !self.seen_from {
            out(self.added.from.as_bytes())?;
        }
        if !self.seen_date {
            out(self.added.date.as_bytes())?;
        }
        if !self.seen_message_id {
            out(self.added.message_id.as_bytes())?;
        }
        Ok(())
    }

    /// Stops rewriting: what is held is written as it is.
    fn give_up<E>(&mut self, out: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.state = State::Body;
        let field = std::mem::take(&mut self.field);
        let line = std::mem::take(&mut self.line);
        out(&field)?;
        out(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added() -> Added {
        Added {
            from: "From: root@box.test\r\n".into(),
            date: "Date: Tue, 1 Dec 2026 22:00:00 +0000\r\n".into(),
            message_id: "Message-Id: <1.ID@box.test>\r\n".into(),
        }
    }

    /// Qualifies bare words in To: and From:, as a Rewriter would.
    fn edit(name: &str, value: &str) -> Option<String> {
        if !["to", "from"].contains(&name.to_ascii_lowercase().as_str()) {
            return None;
        }
        let v = value.trim();
        (!v.contains('@')).then(|| format!(" {v}@box.test"))
    }

    /// Runs the fixer over `input` fed in chunks of `chunk` bytes.
    fn run(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut f = HeaderFixer::new(added());
        let mut out = Vec::new();
        let mut w = |b: &[u8]| -> Result<(), ()> {
            out.extend_from_slice(b);
            Ok(())
        };
        for c in input.chunks(chunk.max(1)) {
            f.feed(c, &mut edit, &mut w).unwrap();
        }
        f.finish(&mut edit, &mut w).unwrap();
        out
    }

    #[test]
    fn rewrites_and_completes_in_any_chunking() {
        let input = b"To: ops\r\nSubject: hi\r\n  folded\r\n\r\nbody\r\nTo: not a header\r\n";
        let want = "To: ops@box.test\r\nSubject: hi\r\n  folded\r\nFrom: root@box.test\r\nDate: Tue, 1 Dec 2026 22:00:00 +0000\r\nMessage-Id: <1.ID@box.test>\r\n\r\nbody\r\nTo: not a header\r\n";
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(
                String::from_utf8_lossy(&run(input, chunk)),
                want,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn present_headers_are_not_added_twice() {
        let input = b"from: a@x.test\r\nDATE: x\r\nMessage-ID: <m@x>\r\n\r\nb\r\n";
        assert_eq!(run(input, 5), input.to_vec());
    }

    #[test]
    fn headers_only_or_no_empty_line_or_empty_message() {
        let a = added();
        let missing = format!("{}{}{}", a.from, a.date, a.message_id);
        assert_eq!(
            String::from_utf8_lossy(&run(b"Subject: s\r\n", 4)),
            format!("Subject: s\r\n{missing}\r\n")
        );
        assert_eq!(
            String::from_utf8_lossy(&run(b"Subject: s\r\njust text\r\n", 4)),
            format!("Subject: s\r\n{missing}\r\njust text\r\n")
        );
        assert_eq!(
            String::from_utf8_lossy(&run(b"", 1)),
            format!("{missing}\r\n")
        );
        // A continuation with no field before it is body text.
        assert_eq!(
            String::from_utf8_lossy(&run(b" indented\r\n", 3)),
            format!("{missing}\r\n indented\r\n")
        );
    }

    #[test]
    fn an_overlong_field_or_line_passes_through_untouched() {
        let long = "x".repeat(MAX_FIELD);
        let input = format!("To: ops\r\nSubject: a\r\n {long}\r\n\r\nbody\r\n");
        let out = run(input.as_bytes(), 100);
        // To: was written before the long field began; nothing is added.
        let want = format!("To: ops@box.test\r\nSubject: a\r\n {long}\r\n\r\nbody\r\n");
        assert_eq!(String::from_utf8_lossy(&out), want);
        let input = format!("X-Long: {long}{long}\r\nTo: ops\r\n\r\n");
        assert_eq!(run(input.as_bytes(), 333), input.as_bytes());
    }

    #[test]
    fn write_errors_stop_at_once() {
        let mut f = HeaderFixer::new(added());
        let mut n = 0;
        let mut w = |_: &[u8]| -> Result<(), &str> {
            n += 1;
            Err("disk full")
        };
        assert_eq!(
            f.feed(b"To: a\r\n\r\n", &mut edit, &mut w),
            Err("disk full")
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn client_matching() {
        let c = HeaderClients::parse("permit_inet_interfaces").unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lan: IpAddr = "192.168.1.20".parse().unwrap();
        let own: IpAddr = "192.168.1.1".parse().unwrap();
        let ours = |a: IpAddr| a == own;
        assert!(c.matches(lo, ours, false, false));
        assert!(c.matches("::1".parse().unwrap(), ours, false, false));
        assert!(c.matches(own, ours, false, false));
        assert!(!c.matches(lan, ours, true, true));
        let c = HeaderClients::parse("permit_inet_interfaces, permit_mynetworks").unwrap();
        assert!(c.matches(lan, ours, true, false));
        let c = HeaderClients::parse("permit_sasl_authenticated").unwrap();
        assert!(c.matches(lan, ours, false, true) && !c.matches(lo, ours, false, false));
        assert!(HeaderClients::parse("static:all")
            .unwrap()
            .matches(lan, ours, false, false));
        assert!(!HeaderClients::parse("")
            .unwrap()
            .matches(lo, ours, true, true));
        let e = HeaderClients::parse("permit_mynetworks check_address_map hash:/x").unwrap_err();
        assert!(
            e.starts_with("\"check_address_map\" is not supported"),
            "{e}"
        );
    }
}
