//! `smtp-source` (Postfix's test SMTP client, no TLS) as a load generator.

use super::process::{run, RunOutput};
use std::process::Command;
use std::time::Duration;

/// Builder for one smtp-source run against 127.0.0.1:`port`.
#[derive(Debug, Clone)]
pub struct SmtpSource {
    port: u16,
    messages: usize,
    sessions: usize,
    size: usize,
    from: String,
    to: String,
    extra: Vec<String>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct SourceReport {
    /// Messages asked for (`-m`).
    pub messages: usize,
    /// The process result (smtp-source reports protocol errors on stderr).
    pub output: RunOutput,
}

impl SourceReport {
    /// Exit status 0 and nothing on stderr.
    pub fn success(&self) -> bool {
        self.output.success() && self.output.stderr.trim().is_empty()
    }

    /// Messages per second over the whole run.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.output.elapsed.as_secs_f64().max(1e-6)
    }
}

impl SmtpSource {
    /// One message, one session, default size, `from@example.test` to
    /// `to@example.test`.
    pub fn new(port: u16) -> SmtpSource {
        SmtpSource {
            port,
            messages: 1,
            sessions: 1,
            size: 0,
            from: "from@example.test".into(),
            to: "to@example.test".into(),
            extra: Vec::new(),
        }
    }

    /// Total messages (`-m`).
    pub fn messages(mut self, n: usize) -> Self {
        self.messages = n;
        self
    }

    /// Parallel sessions (`-s`).
    pub fn sessions(mut self, n: usize) -> Self {
        self.sessions = n;
        self
    }

    /// Message body size in bytes (`-l`); 0 keeps smtp-source's default.
    pub fn size(mut self, bytes: usize) -> Self {
        self.size = bytes;
        self
    }

    /// Envelope sender (`-f`).
    pub fn from(mut self, addr: &str) -> Self {
        self.from = addr.into();
        self
    }

    /// Envelope recipient (`-t`).
    pub fn to(mut self, addr: &str) -> Self {
        self.to = addr.into();
        self
    }

    /// Any other smtp-source option (e.g. `-d` one message per session,
    /// `-N` unique recipients, `-r N` recipients per message).
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.into());
        self
    }

    /// Runs it; kills it after `timeout` (then `output.timed_out`).
    pub fn run(&self, timeout: Duration) -> SourceReport {
        let mut cmd = Command::new("smtp-source");
        cmd.arg("-m")
            .arg(self.messages.to_string())
            .arg("-s")
            .arg(self.sessions.to_string())
            .arg("-f")
            .arg(&self.from)
            .arg("-t")
            .arg(&self.to);
        if self.size > 0 {
            cmd.arg("-l").arg(self.size.to_string());
        }
        cmd.args(&self.extra)
            .arg(format!("127.0.0.1:{}", self.port));
        SourceReport {
            messages: self.messages,
            output: run(cmd, None, timeout),
        }
    }
}
