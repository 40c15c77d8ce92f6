//! The report message for a `mailto:` rua (RFC 8460 §5.3): a
//! `multipart/report; report-type="tlsrpt"` message with a short text part
//! and the gzipped JSON as an `application/tlsrpt+gzip` attachment, with
//! the `TLS-Report-Domain`, `TLS-Report-Submitter` and `TLS-Required: No`
//! (RFC 8689: a report must not wait for the TLS failures it reports)
//! headers. Sans-I/O: the caller gives the date, message ID and boundary.
//! Lines end in CRLF, as DKIM signs them and the queue stores them.

use std::fmt::Write as _;

use super::report::{datetime, Identity, Range};

/// The header marking a message as a TLSRPT report (RFC 8460 §5.3); the
/// queue manager recognises report messages by their envelope sender.
pub const REPORT_DOMAIN_HEADER: &str = "TLS-Report-Domain";

/// Everything the message says besides the report itself.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// `From:` (the `smtp_tlsrpt_report_sender`).
    pub from: &'a str,
    /// `To:` (the rua's address).
    pub to: &'a str,
    /// The policy domain.
    pub domain: &'a str,
    /// The report ID.
    pub report_id: &'a str,
    /// `Date:` value (RFC 5322 form).
    pub date: &'a str,
    /// `Message-ID:` value, with the angle brackets.
    pub message_id: &'a str,
    /// The MIME boundary (must not occur in the parts: the caller derives
    /// it from the report ID and time; base64 and the fixed text cannot
    /// contain `=_`).
    pub boundary: &'a str,
    /// The attachment's file name.
    pub file_name: &'a str,
}

/// The report message: header block, blank line, body, CRLF line ends.
pub fn message(id: &Identity, range: Range, e: &Envelope<'_>, gz: &[u8]) -> Vec<u8> {
    let mut m = String::with_capacity(1024 + gz.len() * 4 / 3);
    let _ = write!(
        m,
        "From: {from}\r\n\
         To: {to}\r\n\
         Subject: Report Domain: {domain}\r\n Submitter: {sub}\r\n Report-ID: <{rid}>\r\n\
         Date: {date}\r\n\
         Message-ID: {mid}\r\n\
         {REPORT_DOMAIN_HEADER}: {domain}\r\n\
         TLS-Report-Submitter: {sub}\r\n\
         TLS-Required: No\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n boundary=\"{b}\"\r\n\
         \r\n\
         This is a MIME-formatted message.\r\n\
         \r\n\
         --{b}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         Content-Transfer-Encoding: 7bit\r\n\
         \r\n\
         This is an aggregate TLS report (RFC 8460) from {org_line}\r\n\
         for {domain}, {start} to {end}.\r\n\
         \r\n\
         --{b}\r\n\
         Content-Type: application/tlsrpt+gzip\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment;\r\n filename=\"{file}\"\r\n\
         \r\n",
        from = e.from,
        to = e.to,
        domain = e.domain,
        sub = id.submitter,
        rid = e.report_id,
        date = e.date,
        mid = e.message_id,
        b = e.boundary,
        org_line = ascii_line(&id.organization),
        start = datetime(range.start),
        end = datetime(range.end),
        file = e.file_name,
    );
    let b64 = crate::base64::encode(gz);
    // 76 characters per line (RFC 2045 §6.8); base64 is ASCII.
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        m.push_str("\r\n");
    }
    let _ = write!(m, "\r\n--{}--\r\n", e.boundary);
    m.into_bytes()
}

/// `s` reduced to printable ASCII for the us-ascii text part.
fn ascii_line(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let id = Identity {
            organization: "Router é".into(),
            contact: "postmaster@s.test".into(),
            submitter: "s.test".into(),
        };
        let gz = crate::tlsrpt::gzip::compress(b"{\"a\":1}");
        let e = Envelope {
            from: "noreply-smtp-tls-reporting@s.test",
            to: "tlsrpt@d.test",
            domain: "d.test",
            report_id: "20240101.d.test.5@s.test",
            date: "Mon, 1 Jan 2024 00:00:05 +0000",
            message_id: "<tlsrpt.5@s.test>",
            boundary: "=_tlsrpt_5",
            file_name: "s.test!d.test!0!86400!5.json.gz",
        };
        let m = String::from_utf8(message(
            &id,
            Range {
                start: 0,
                end: 86_400,
            },
            &e,
            &gz,
        ))
        .unwrap();
        assert!(m.contains("\r\nSubject: Report Domain: d.test\r\n Submitter: s.test\r\n Report-ID: <20240101.d.test.5@s.test>\r\n"));
        assert!(m.contains(
            "\r\nTLS-Report-Domain: d.test\r\nTLS-Report-Submitter: s.test\r\nTLS-Required: No\r\n"
        ));
        assert!(
            m.contains("multipart/report; report-type=\"tlsrpt\";\r\n boundary=\"=_tlsrpt_5\"\r\n")
        );
        assert!(m.contains("Content-Type: application/tlsrpt+gzip\r\n"));
        assert!(m.contains("from Router ?\r\n"));
        assert!(m.ends_with("\r\n--=_tlsrpt_5--\r\n"));
        assert!(!m.replace("\r\n", "").contains('\n'));
        let b64: String = m
            .split("filename=\"s.test!d.test!0!86400!5.json.gz\"\r\n\r\n")
            .nth(1)
            .unwrap()
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .replace("\r\n", "");
        let back = crate::base64::decode(&b64).unwrap();
        assert_eq!(
            crate::tlsrpt::gzip::decompress(&back, 100).unwrap(),
            b"{\"a\":1}"
        );
    }
}
