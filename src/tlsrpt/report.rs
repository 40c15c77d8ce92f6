//! The RFC 8460 §4 report of one policy domain, as JSON, written by hand
//! (no serde: the shape is fixed and small). Sans-I/O: the caller gives the
//! date range and identity; nothing here reads a clock.
//!
//! Every field §4.4 requires is written: `organization-name`,
//! `date-range` (`start-datetime`, `end-datetime`), `contact-info`,
//! `report-id`, and per policy `policy` (`policy-type`, `policy-domain`,
//! `policy-string` and `mx-host` when the policy has them), `summary`
//! (both totals) and `failure-details` (`result-type`,
//! `failed-session-count`, and the optional fields tern knows:
//! `sending-mta-ip`, `receiving-mx-hostname`, `receiving-mx-helo`,
//! `receiving-ip`, `failure-reason-code`). `additional-information` is a
//! URI to a page about the failure; tern has none, so it is left out
//! rather than filled with something meaningless.

use std::fmt::Write as _;

use super::counters::DomainCounts;
use crate::syslog::time::DateTime;

/// Who sends the reports (from `smtp_tlsrpt_*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `organization-name`.
    pub organization: String,
    /// `contact-info`: an e-mail address or URI (never empty or null: some
    /// reporters once sent `null` here and receivers rejected it).
    pub contact: String,
    /// The submitter (`TLS-Report-Submitter`, the file name): a domain.
    pub submitter: String,
}

/// One report's period: `[start, end)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Start, inclusive.
    pub start: u64,
    /// End, exclusive.
    pub end: u64,
}

/// RFC 3339 UTC, whole seconds (`2016-04-01T00:00:00Z`).
pub fn datetime(unix: u64) -> String {
    let d = DateTime::from_unix(i64::try_from(unix).unwrap_or(i64::MAX), 0, 0);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year, d.month, d.day, d.hour, d.minute, d.second
    )
}

/// The report ID: the period's start, the domain, the send time (a
/// `send --now` and the day's report differ), `@` the submitter. Made of
/// characters that are safe in a `Report-ID: <...>` header.
pub fn report_id(range: Range, domain: &str, sent: u64, submitter: &str) -> String {
    let d = DateTime::from_unix(i64::try_from(range.start).unwrap_or(0), 0, 0);
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect()
    };
    format!(
        "{:04}{:02}{:02}.{}.{sent}@{}",
        d.year,
        d.month,
        d.day,
        clean(domain),
        clean(submitter)
    )
}

/// The attachment's file name (RFC 8460 §5.3):
/// `submitter!domain!begin!end!id.json.gz`.
pub fn file_name(id: &Identity, domain: &str, range: Range, sent: u64) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect()
    };
    format!(
        "{}!{}!{}!{}!{sent}.json.gz",
        clean(&id.submitter),
        clean(domain),
        range.start,
        range.end
    )
}

/// Appends `s` as a JSON string (RFC 8259 §7): quotes, backslashes and
/// control characters escaped; everything else as UTF-8.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn key(out: &mut String, k: &str) {
    string(out, k);
    out.push(':');
}

fn array(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, s);
    }
    out.push(']');
}

/// The report of `d` for `range`, with `report_id`.
pub fn json(id: &Identity, range: Range, report_id: &str, d: &DomainCounts) -> String {
    let mut o = String::with_capacity(512);
    o.push('{');
    key(&mut o, "organization-name");
    string(&mut o, &id.organization);
    o.push(',');
    key(&mut o, "date-range");
    o.push('{');
    key(&mut o, "start-datetime");
    string(&mut o, &datetime(range.start));
    o.push(',');
    key(&mut o, "end-datetime");
    string(&mut o, &datetime(range.end));
    o.push_str("},");
    key(&mut o, "contact-info");
    string(&mut o, &id.contact);
    o.push(',');
    key(&mut o, "report-id");
    string(&mut o, report_id);
    o.push(',');
    key(&mut o, "policies");
    o.push('[');
    for (i, p) in d.policies.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push('{');
        key(&mut o, "policy");
        o.push('{');
        key(&mut o, "policy-type");
        string(&mut o, p.kind.as_str());
        if !p.strings.is_empty() {
            o.push(',');
            key(&mut o, "policy-string");
            array(&mut o, &p.strings);
        }
        // Always, also for no-policy-found (a reporter once left it out
        // there, and receivers could not tell what the report was about).
        o.push(',');
        key(&mut o, "policy-domain");
        string(&mut o, &d.domain);
        if !p.mx.is_empty() {
            o.push(',');
            key(&mut o, "mx-host");
            array(&mut o, &p.mx);
        }
        o.push_str("},");
        key(&mut o, "summary");
        let _ = write!(
            o,
            "{{\"total-successful-session-count\":{},\"total-failure-session-count\":{}}}",
            p.success, p.failure
        );
        if !p.details.is_empty() {
            o.push(',');
            key(&mut o, "failure-details");
            o.push('[');
            for (j, f) in p.details.iter().enumerate() {
                if j > 0 {
                    o.push(',');
                }
                o.push('{');
                key(&mut o, "result-type");
                string(&mut o, f.result.as_str());
                if let Some(ip) = f.sending_ip {
                    o.push(',');
                    key(&mut o, "sending-mta-ip");
                    string(&mut o, &ip.to_string());
                }
                if !f.mx_host.is_empty() {
                    o.push(',');
                    key(&mut o, "receiving-mx-hostname");
                    string(&mut o, &f.mx_host);
                }
                if let Some(h) = &f.helo {
                    o.push(',');
                    key(&mut o, "receiving-mx-helo");
                    string(&mut o, h);
                }
                if let Some(ip) = f.mx_ip {
                    o.push(',');
                    key(&mut o, "receiving-ip");
                    string(&mut o, &ip.to_string());
                }
                let _ = write!(o, ",\"failed-session-count\":{}", f.count);
                if !f.reason.is_empty() {
                    o.push(',');
                    key(&mut o, "failure-reason-code");
                    string(&mut o, &f.reason);
                }
                o.push('}');
            }
            o.push(']');
        }
        o.push('}');
    }
    o.push_str("]}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::plan::PolicyType;
    use crate::tls::{FailureKind, TlsOutcome, Trust};
    use crate::tlsrpt::counters::tests::{attempt, failure};
    use crate::tlsrpt::counters::{Limits, Period};

    fn ident() -> Identity {
        Identity {
            organization: "Example \"Home\" Router".into(),
            contact: "postmaster@sender.test".into(),
            submitter: "sender.test".into(),
        }
    }

    #[test]
    fn dates_and_ids() {
        assert_eq!(datetime(0), "1970-01-01T00:00:00Z");
        assert_eq!(datetime(1_459_468_800), "2016-04-01T00:00:00Z");
        let r = Range {
            start: 1_459_468_800,
            end: 1_459_555_200,
        };
        assert_eq!(
            report_id(r, "exa<mple>.com", 1_459_555_300, "sender.test"),
            "20160401.example.com.1459555300@sender.test"
        );
        assert_eq!(
            file_name(&ident(), "example.com", r, 7),
            "sender.test!example.com!1459468800!1459555200!7.json.gz"
        );
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        string(&mut s, "a\"b\\c\n\u{1}\u{7f}é");
        assert_eq!(s, r#""a\"b\\c\n\u0001\u007fé""#);
    }

    #[test]
    fn report_fields() {
        let limits = Limits::default();
        let mut p = Period::new(1_459_468_800);
        let ok = attempt(
            "x.test",
            PolicyType::Sts,
            TlsOutcome::Success(Trust::Verified),
        );
        p.record(&ok, &[], &limits);
        p.record(&ok, &[], &limits);
        let mut bad = attempt(
            "x.test",
            PolicyType::Sts,
            failure(FailureKind::CertificateHostMismatch, "bad\"name"),
        );
        bad.helo = Some("mx\\evil".into());
        p.record(&bad, &[], &limits);
        p.record(
            &attempt(
                "x.test",
                PolicyType::NoPolicyFound,
                failure(FailureKind::StarttlsNotSupported, ""),
            ),
            &[],
            &limits,
        );
        let r = Range {
            start: 1_459_468_800,
            end: 1_459_555_200,
        };
        let j = json(&ident(), r, "id-1@sender.test", &p.domains[0]);
        assert_eq!(
            j,
            concat!(
                r#"{"organization-name":"Example \"Home\" Router","#,
                r#""date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-02T00:00:00Z"},"#,
                r#""contact-info":"postmaster@sender.test","report-id":"id-1@sender.test","#,
                r#""policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce"],"#,
                r#""policy-domain":"x.test","mx-host":["*.x.test"]},"#,
                r#""summary":{"total-successful-session-count":2,"total-failure-session-count":1},"#,
                r#""failure-details":[{"result-type":"certificate-host-mismatch","sending-mta-ip":"198.51.100.7","#,
                r#""receiving-mx-hostname":"mx.x.test","receiving-mx-helo":"mx\\evil","receiving-ip":"192.0.2.1","#,
                r#""failed-session-count":1,"failure-reason-code":"bad\"name"}]},"#,
                r#"{"policy":{"policy-type":"no-policy-found","policy-domain":"x.test"},"#,
                r#""summary":{"total-successful-session-count":0,"total-failure-session-count":1},"#,
                r#""failure-details":[{"result-type":"starttls-not-supported","sending-mta-ip":"198.51.100.7","#,
                r#""receiving-mx-hostname":"mx.x.test","receiving-mx-helo":"mx.x.test","receiving-ip":"192.0.2.1","#,
                r#""failed-session-count":1}]}]}"#
            )
        );
    }
}
