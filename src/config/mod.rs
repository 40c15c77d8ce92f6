//! The main configuration file (`tern.conf`, Postfix main.cf syntax) and the
//! typed view of it that the rest of tern reads.
//!
//! Loading validates every value against its kind (see [`params`]), so the
//! typed accessors below cannot fail at run time; every problem in a file is
//! reported at once as `file:line: message`.

pub mod compat;
pub mod net;
pub mod params;
pub mod parse;
pub mod postfix;
pub mod socketmap;
pub mod table;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use params::{Kind, PARAMS};

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/tern/tern.conf";

/// The built-in development configuration used by `tern run --dev`:
/// loopback listeners on high ports, spool under `./run`, no root needed.
pub const DEV_CONFIG: &str = include_str!("../../config/dev.conf");

/// A configuration problem, printed as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<built-in>`).
    pub file: String,
    /// 1-based line, when the problem belongs to one.
    pub line: Option<usize>,
    /// What is wrong, and how to fix it when we can tell.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    origin: String,
    /// Per parameter (same index as `PARAMS`): the value set in the file and
    /// its line, if any.
    explicit: Vec<Option<(String, usize)>>,
    /// Per parameter: the fully expanded value.
    values: Vec<String>,
    /// Postfix parameters tern does not implement, as set in the file:
    /// `(name, raw value, line)`, in file order, the last setting of a
    /// name only. They expand in `$name` references; see [`compat`].
    postfix_only: Vec<(String, String, usize)>,
    /// Warnings about settings that load but do nothing on tern, as
    /// `file:line: warning: ...` lines (see [`Config::warnings`]).
    warnings: Vec<ConfigError>,
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let origin = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| {
            vec![ConfigError {
                file: origin.clone(),
                line: None,
                message: format!("cannot read: {e}"),
            }]
        })?;
        let text = String::from_utf8(text).map_err(|e| {
            vec![ConfigError {
                file: origin.clone(),
                line: Some(line_of_offset_bytes(
                    e.as_bytes(),
                    e.utf8_error().valid_up_to(),
                )),
                message: "not valid UTF-8".into(),
            }]
        })?;
        Self::parse_str(&text, &origin)
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse_str(text: &str, origin: &str) -> Result<Config, Vec<ConfigError>> {
        let err = |line: Option<usize>, message: String| ConfigError {
            file: origin.to_string(),
            line,
            message,
        };
        let (entries, syntax) = parse::parse(text);
        let mut errors: Vec<ConfigError> = syntax
            .into_iter()
            .map(|e| err(Some(e.line), e.message))
            .collect();
        let mut explicit: Vec<Option<(String, usize)>> = vec![None; PARAMS.len()];
        let mut postfix_only: Vec<(String, String, usize)> = Vec::new();
        for e in entries {
            match params::lookup(&e.name) {
                Some((i, _)) => {
                    // Postfix: the last setting wins; so do we, silently.
                    explicit[i] = Some((e.value, e.line));
                }
                None if postfix::is_postfix_param(&e.name) => {
                    postfix_only.retain(|(n, _, _)| *n != e.name);
                    postfix_only.push((e.name, e.value, e.line));
                }
                None => {
                    let hint = params::nearest(&e.name)
                        .map(|n| format!("; did you mean \"{n}\"?"))
                        .unwrap_or_default();
                    errors.push(err(
                        Some(e.line),
                        format!("unknown parameter \"{}\"{hint}", e.name),
                    ));
                }
            }
        }
        postfix_only.sort_by_key(|(_, _, line)| *line);
        let computed = ComputedDefaults::from_system();
        let raw_of = |i: usize| -> String {
            match &explicit[i] {
                Some((v, _)) => v.clone(),
                None => computed.default_of(&PARAMS[i]),
            }
        };
        let mut raws: Vec<String> = (0..PARAMS.len()).map(raw_of).collect();
        // `myorigin = /file/name` (Debian's `/etc/mailname`): the domain is
        // the file's first line, as Postfix reads it; resolved before any
        // other value can refer to `$myorigin`.
        let myorigin = Self::index("myorigin");
        let origin_path = parse::expand(&raws[myorigin], &|name: &str| {
            lookup_raw(name, &raws, &postfix_only)
        })
        .ok()
        .filter(|v| v.starts_with('/'));
        if let Some(path) = origin_path {
            let line = explicit[myorigin].as_ref().map(|(_, l)| *l);
            raws[myorigin] = match read_domain_file(&path) {
                Ok(domain) => domain,
                Err(m) => {
                    errors.push(err(line, format!("myorigin = {path}: {m}")));
                    String::new()
                }
            };
        }
        let get = |name: &str| lookup_raw(name, &raws, &postfix_only);
        let mut values = Vec::with_capacity(PARAMS.len());
        for (i, p) in PARAMS.iter().enumerate() {
            let line = explicit[i].as_ref().map(|(_, l)| *l);
            let value = match parse::expand(&raws[i], &get) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(err(line, format!("{}: {}", p.name, expand_message(&e))));
                    String::new()
                }
            };
            if let Err(m) = validate(p, &value) {
                errors.push(err(line, format!("{} = {}: {m}", p.name, shorten(&value))));
            }
            values.push(value);
        }
        let mut warnings = Vec::new();
        let is_set = |name: &str| {
            params::lookup(name).is_some_and(|(i, _)| explicit[i].is_some())
                || postfix_only.iter().any(|(n, _, _)| n == name)
        };
        for (name, value, line) in &postfix_only {
            let default = postfix::default_of(name).unwrap_or("");
            let j = compat::judge(name, value, default, &is_set);
            let shown = match parse::expand(value, &get) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(err(Some(*line), format!("{name}: {}", expand_message(&e))));
                    continue;
                }
            };
            let message = format!("{name} = {}: {}", shorten(&shown), j.message);
            if j.error {
                errors.push(err(Some(*line), message));
            } else {
                warnings.push(err(Some(*line), format!("warning: {message}")));
            }
        }
        let cfg = Config {
            origin: origin.to_string(),
            explicit,
            values,
            postfix_only,
            warnings,
        };
        errors.extend(cfg.cross_checks());
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }

    /// Checks that involve several parameters.
    fn cross_checks(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let mut at = |name: &str, message: String| {
            out.push(ConfigError {
                file: self.origin.clone(),
                line: self.line_of(name),
                message,
            })
        };
        if !self.get("tls_ffdhe_auto_groups").is_empty() {
            at(
                "tls_ffdhe_auto_groups",
                "tls_ffdhe_auto_groups: FFDHE key exchange is not available (the aws-lc-rs TLS provider has only elliptic-curve and ML-KEM groups); leave it empty and use tls_eecdh_auto_curves".into(),
            );
        }
        // The listener honours these; a value it could not use must not be
        // silently replaced by the default.
        for key in ["smtpd_tls_protocols", "smtpd_tls_mandatory_protocols"] {
            if let Err(e) = crate::policy::decide::TlsVersions::parse(self.get(key)) {
                at(key, format!("{key} = {}: {e}", self.get(key)));
            }
        }
        // Postfix warns and uses 1; tern's typed settings never fall back
        // silently.
        for key in [
            "default_destination_concurrency_positive_feedback",
            "default_destination_concurrency_negative_feedback",
            "smtp_destination_concurrency_positive_feedback",
            "smtp_destination_concurrency_negative_feedback",
        ] {
            if let Err(e) = crate::delivery::concurrency::Feedback::parse(self.get(key)) {
                at(key, format!("{key} = {e}"));
            }
        }
        for (a, b) in [("minimal_backoff_time", "maximal_backoff_time")] {
            if self.time(a) > self.time(b) {
                at(a, format!("{a} is longer than {b}"));
            }
        }
        // The command-line buffer is a fixed share of the start-up pool: a
        // longer limit could not be honoured, and a shorter one would refuse
        // ordinary commands (RFC 5321 4.5.3.1.4: 512 octets).
        let max_line = (crate::tls::pool::LINE_LEN - 2) as u64;
        let line = self.int("line_length_limit");
        if !(512..=max_line).contains(&line) {
            at(
                "line_length_limit",
                format!(
                    "line_length_limit = {}: must be between 512 and {max_line} (the command-line buffer holds {} bytes with CRLF)",
                    self.get("line_length_limit"),
                    crate::tls::pool::LINE_LEN
                ),
            );
        }
        if self.int("max_connections") == 0 {
            at(
                "max_connections",
                "max_connections must be at least 1".into(),
            );
        }
        // Submission needs TLS: 465 is TLS from the first byte, and on 587
        // AUTH (required there) is offered only after STARTTLS.
        let no_cert = self.get("smtpd_tls_cert_file").is_empty()
            && self.get("smtpd_tls_eccert_file").is_empty();
        for key in ["submission_listen", "submissions_listen"] {
            if no_cert && !self.get(key).is_empty() {
                at(
                    key,
                    format!("{key} needs a certificate: set smtpd_tls_cert_file (or smtpd_tls_eccert_file)"),
                );
            }
        }
        self.check_listeners(&mut at);
        if !self.get("submission_listen").is_empty()
            && self.get("smtpd_sasl_password_file").is_empty()
        {
            at(
                "submission_listen",
                "submission_listen needs smtpd_sasl_password_file: submission requires AUTH".into(),
            );
        }
        if let Err(e) =
            crate::cleanup::fixer::HeaderClients::parse(self.get("local_header_rewrite_clients"))
        {
            at(
                "local_header_rewrite_clients",
                format!("local_header_rewrite_clients: {e}"),
            );
        }
        // Accepting `yes` and then bouncing every such alias would be a
        // surprise found only in a bounce; say so at load time instead.
        for (key, what) in [
            ("allow_mail_to_commands", "|command"),
            ("allow_mail_to_files", "/file/name"),
        ] {
            if self.bool(key) {
                at(
                    key,
                    format!("{key} = yes: not supported: this tern version does not deliver to {what} alias destinations; set it to no"),
                );
            }
        }
        out
    }

    /// `inet_protocols`, `inet_interfaces` and the listener parameters
    /// together: an address of an IP version that `inet_protocols` turns
    /// off is an error (as in Postfix), not silently dropped.
    fn check_listeners(&self, at: &mut impl FnMut(&str, String)) {
        let protocols = match net::Protocols::parse(self.get("inet_protocols")) {
            Ok(p) => p,
            Err(m) => {
                at("inet_protocols", format!("inet_protocols: {m}"));
                return;
            }
        };
        let off = |ip: std::net::IpAddr| {
            format!(
                "{} is an {} address, but inet_protocols = {}",
                ip,
                net::Protocols::family(ip),
                self.get("inet_protocols")
            )
        };
        for i in self.list("inet_interfaces") {
            match net::check_interface(i) {
                Ok(Some(ip)) if !protocols.allows(ip) => {
                    at("inet_interfaces", format!("inet_interfaces: {}", off(ip)))
                }
                Ok(_) => {}
                Err(m) => at("inet_interfaces", format!("inet_interfaces: {m}")),
            }
        }
        if self.list("inet_interfaces").next().is_none() {
            at(
                "inet_interfaces",
                "inet_interfaces is empty: use all, loopback-only or addresses".into(),
            );
        }
        for key in ["smtp_listen", "submission_listen", "submissions_listen"] {
            for entry in self.list(key) {
                if net::is_bare_port(entry) {
                    continue;
                }
                if let Ok(addrs) = net::parse_listen(entry, &[]) {
                    for a in addrs.iter().filter(|a| !protocols.allows(a.ip())) {
                        at(key, format!("{key}: {}", off(a.ip())));
                    }
                }
            }
        }
    }

    /// The built-in defaults, with nothing set.
    pub fn defaults() -> Config {
        // The defaults are validated by a unit test, so this cannot fail;
        // an empty config is still handled without panicking.
        Self::parse_str("", "<defaults>").unwrap_or_else(|_| Config {
            origin: "<defaults>".into(),
            explicit: vec![None; PARAMS.len()],
            values: PARAMS.iter().map(|p| p.default.to_string()).collect(),
            postfix_only: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// Warnings about the file, one `file:line: warning: ...` each: Postfix
    /// parameters that have no effect on tern ([`compat`]). `check-config`
    /// prints them; the daemon logs them at start and on reload.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// Postfix parameters set in the file that tern does not implement:
    /// `(name, raw value, line)` in file order.
    pub fn postfix_only(&self) -> &[(String, String, usize)] {
        &self.postfix_only
    }

    /// Where this configuration came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn index(name: &str) -> usize {
        match params::lookup(name) {
            Some((i, _)) => i,
            // A typo in tern's own source: caught by every test that loads
            // a config. Returning a harmless index keeps release builds alive.
            None => {
                debug_assert!(false, "unknown parameter name in code: {name}");
                0
            }
        }
    }

    /// The expanded value of a parameter.
    pub fn get(&self, name: &str) -> &str {
        &self.values[Self::index(name)]
    }

    /// The line a parameter was set on, if it was set in the file.
    pub fn line_of(&self, name: &str) -> Option<usize> {
        self.explicit[Self::index(name)].as_ref().map(|(_, l)| *l)
    }

    /// A `yes`/`no` parameter.
    pub fn bool(&self, name: &str) -> bool {
        parse_bool(self.get(name)).unwrap_or(false)
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> u64 {
        self.get(name).parse().unwrap_or(0)
    }

    /// A time parameter.
    pub fn time(&self, name: &str) -> Duration {
        let unit = match PARAMS[Self::index(name)].kind {
            Kind::Time(u) => u,
            _ => 's',
        };
        parse_time(self.get(name), unit).unwrap_or(Duration::ZERO)
    }

    /// A list parameter, split on commas and whitespace.
    pub fn list(&self, name: &str) -> impl Iterator<Item = &str> {
        split_list(self.get(name))
    }

    /// A networks parameter.
    pub fn networks(&self, name: &str) -> Vec<net::Network> {
        split_list(self.get(name))
            .filter_map(|s| net::Network::parse(s).ok())
            .collect()
    }

    /// A listener parameter, bare ports expanded with `inet_interfaces`
    /// and kept to the IP versions of `inet_protocols` (explicit addresses
    /// of a disabled version are refused at load time, see `cross_checks`).
    pub fn listen(&self, name: &str) -> Vec<std::net::SocketAddr> {
        let interfaces: Vec<&str> = self.list("inet_interfaces").collect();
        let protocols = self.protocols();
        split_list(self.get(name))
            .filter_map(|s| net::parse_listen(s, &interfaces).ok())
            .flatten()
            .filter(|a| protocols.allows(a.ip()))
            .collect()
    }

    /// `inet_protocols`: the IP versions for listeners and delivery.
    pub fn protocols(&self) -> net::Protocols {
        // Validated at load time; `all` is the default.
        net::Protocols::parse(self.get("inet_protocols")).unwrap_or(net::Protocols {
            ipv4: true,
            ipv6: true,
            all: true,
        })
    }

    /// `(name, raw value as written)` for every parameter set in the file.
    pub fn non_defaults(&self) -> Vec<(&'static str, &str)> {
        PARAMS
            .iter()
            .zip(&self.explicit)
            .filter_map(|(p, e)| e.as_ref().map(|(v, _)| (p.name, v.as_str())))
            .collect()
    }

    /// `name = value` lines like `postconf` (`-n`: only those set in the file).
    pub fn render(&self, non_default_only: bool) -> String {
        let mut out = String::new();
        for (i, p) in PARAMS.iter().enumerate() {
            match (&self.explicit[i], non_default_only) {
                (Some((v, _)), _) => out.push_str(&assignment(p.name, v)),
                (None, false) => out.push_str(&assignment(p.name, &self.values[i])),
                (None, true) => {}
            }
        }
        out
    }

    /// The queue directory as a path.
    pub fn queue_directory(&self) -> PathBuf {
        PathBuf::from(self.get("queue_directory"))
    }
}

/// What to do when the `mail_owner` account `name` does not exist: the
/// commands for Debian-like systems and for OpenWrt (no `useradd` there
/// unless `shadow-useradd` is installed). One text for `check-config` and
/// for `tern run`, so both say the same.
pub fn mail_owner_missing_hint(name: &str) -> String {
    format!(
        "create the account (Debian: `useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin {name}`; \
         OpenWrt: `opkg install shadow-useradd` and the same command, or add `{name}:x:5025:5025:{name}:/nonexistent:/bin/false` to /etc/passwd \
         and `{name}:x:5025:` to /etc/group), or set mail_owner to an existing unprivileged user"
    )
}

/// Checks `mail_owner` against the password database (`uid_of` returns the
/// account's uid, or `None` when there is none). Only meaningful when tern
/// runs as root, the one case where it switches to that account; the
/// caller decides. `mail_owner =` (empty: never drop root) is not checked.
/// The error carries the setting's line, or `(default)` when it is unset.
pub fn check_mail_owner(cfg: &Config, uid_of: impl Fn(&str) -> Option<u32>) -> Option<ConfigError> {
    let name = cfg.get("mail_owner").trim();
    if name.is_empty() {
        return None;
    }
    let line = cfg.line_of("mail_owner");
    let setting = match line {
        Some(_) => format!("mail_owner = {name}"),
        None => format!("mail_owner = {name} (default)"),
    };
    let message = match uid_of(name) {
        None => format!("{setting}: no such user; {}", mail_owner_missing_hint(name)),
        Some(0) => format!("{setting}: is root; use an unprivileged user"),
        Some(_) => return None,
    };
    Some(ConfigError {
        file: cfg.origin().to_string(),
        line,
        message,
    })
}

/// `name = value` as postconf prints it (`name =` when empty).
fn assignment(name: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{name} =\n")
    } else {
        format!("{name} = {value}\n")
    }
}

/// Defaults that depend on the system (host name).
struct ComputedDefaults {
    hostname: String,
}

impl ComputedDefaults {
    fn from_system() -> Self {
        let mut buf = [0u8; 256];
        // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates
        // when the name fits, and we stop at the first NUL or the end.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        let name = if rc == 0 {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        } else {
            String::new()
        };
        let hostname = if name.is_empty() {
            "localhost.localdomain".to_string()
        } else if !name.contains('.') {
            // Postfix insists on a FQDN; an unqualified router name like
            // "OpenWrt" gets the same treatment as Postfix's fallback.
            format!("{name}.localdomain")
        } else {
            name
        };
        ComputedDefaults { hostname }
    }

    fn default_of(&self, p: &params::Param) -> String {
        match (p.name, p.default) {
            ("myhostname", "@host") => self.hostname.clone(),
            ("mydomain", "@host") => match self.hostname.split_once('.') {
                Some((_, d)) if !d.is_empty() => d.to_string(),
                _ => "localdomain".into(),
            },
            _ => p.default.to_string(),
        }
    }
}

/// The raw value `$name` expands to: tern's parameter, else a Postfix
/// parameter set in the file, else Postfix's default; `None` (expands to
/// nothing, as in Postfix) for a name neither knows.
fn lookup_raw<'a>(
    name: &str,
    raws: &'a [String],
    postfix_only: &'a [(String, String, usize)],
) -> Option<&'a str> {
    if let Some((i, _)) = params::lookup(name) {
        return raws.get(i).map(String::as_str);
    }
    if let Some((_, v, _)) = postfix_only.iter().find(|(n, _, _)| n == name) {
        return Some(v.as_str());
    }
    postfix::default_of(name)
}

/// The domain in a `myorigin = /file/name` file: its first line, trimmed
/// (Debian's `/etc/mailname` holds one name). An unreadable file, an empty
/// first line or one that is no domain name is an error: a wrong origin
/// would put `root@/etc/mailname` on every local sender.
fn read_domain_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut text))
        .map_err(|e| format!("cannot read the domain from the file: {e}"))?;
    let first = text.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let name = std::str::from_utf8(first)
        .map_err(|_| "the file's first line is not valid UTF-8".to_string())?
        .trim();
    if name.is_empty() {
        return Err("the file's first line is empty; write the mail domain there".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(format!(
            "the file's first line \"{}\" is not a domain name",
            shorten(name)
        ));
    }
    Ok(name.to_string())
}

fn expand_message(e: &parse::ExpandError) -> String {
    match e {
        parse::ExpandError::Syntax(m) => m.clone(),
        parse::ExpandError::Recursion(v) => format!("recursive $name expansion in \"{v}\""),
    }
}

fn shorten(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push_str("...");
    }
    t
}

fn line_of_offset_bytes(bytes: &[u8], off: usize) -> usize {
    1 + bytes[..off.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// Splits a Postfix list value on commas and whitespace.
pub fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// Parses `yes`/`no` (and `true`/`false`, as Postfix accepts).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Parses a Postfix time value (`300s`, `5d`, `1w`, bare number in `unit`).
pub fn parse_time(v: &str, unit: char) -> Option<Duration> {
    let v = v.trim();
    let (num, u) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, unit),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match u {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

fn validate(p: &params::Param, v: &str) -> Result<(), String> {
    match p.kind {
        Kind::Text | Kind::List => Ok(()),
        Kind::Bool => parse_bool(v)
            .map(|_| ())
            .ok_or_else(|| "expected yes or no".into()),
        Kind::Int => v
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| "expected a whole number".into()),
        Kind::Time(u) => parse_time(v, u)
            .map(|_| ())
            .ok_or_else(|| "expected a time such as 300s, 30m, 4h, 5d or 1w".into()),
        Kind::Enum(words) => {
            if words.contains(&v) {
                Ok(())
            } else {
                Err(format!("expected one of: {}", words.join(", ")))
            }
        }
        Kind::Networks => {
            for s in split_list(v) {
                net::Network::parse(s)?;
            }
            Ok(())
        }
        Kind::Listen => {
            for s in split_list(v) {
                net::parse_listen(s, &["all"])?;
            }
            Ok(())
        }
        Kind::Maps => table::parse_map_list(v)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Kind::NextHop => {
            if v.is_empty() {
                return Ok(());
            }
            crate::policy::NextHop::parse(v)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::parse_str("", "<defaults>").unwrap();
        assert_eq!(c.int("message_size_limit"), 10_240_000);
        assert_eq!(
            c.time("maximal_queue_lifetime"),
            Duration::from_secs(5 * 86_400)
        );
        assert_eq!(c.get("myorigin"), c.get("myhostname"));
        assert!(c.get("mydestination").contains("localhost."));
        assert!(c.render(true).is_empty());
    }

    #[test]
    fn missing_mail_owner_names_its_line_or_the_default() {
        let none = |_: &str| None;
        let c = Config::parse_str("", "t.conf").unwrap();
        let e = check_mail_owner(&c, none).unwrap().to_string();
        assert!(
            e.starts_with("t.conf: mail_owner = tern (default): no such user; create the account (Debian: `useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin tern`"),
            "{e}"
        );
        assert!(e.contains("OpenWrt: `opkg install shadow-useradd`"), "{e}");
        let c = Config::parse_str("# x\nmail_owner = mailer\n", "t.conf").unwrap();
        let e = check_mail_owner(&c, none).unwrap().to_string();
        assert!(
            e.starts_with("t.conf:2: mail_owner = mailer: no such user"),
            "{e}"
        );
        assert!(
            e.contains(
                "useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin mailer`"
            ),
            "{e}"
        );
        let e = check_mail_owner(&c, |_| Some(0)).unwrap().to_string();
        assert_eq!(
            e,
            "t.conf:2: mail_owner = mailer: is root; use an unprivileged user"
        );
        assert!(check_mail_owner(&c, |n| (n == "mailer").then_some(105)).is_none());
        let c = Config::parse_str("mail_owner =\n", "t.conf").unwrap();
        assert!(check_mail_owner(&c, none).is_none());
    }

    #[test]
    fn unsupported_alias_destinations_are_refused() {
        for key in ["allow_mail_to_commands", "allow_mail_to_files"] {
            let errs = Config::parse_str(&format!("# x\n{key} = yes\n"), "t.conf").unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            let e = errs[0].to_string();
            assert!(
                e.starts_with(&format!("t.conf:2: {key} = yes: not supported")),
                "{e}"
            );
            assert!(Config::parse_str(&format!("{key} = no\n"), "t.conf").is_ok());
        }
    }

    #[test]
    fn expansion_and_non_defaults() {
        let c = Config::parse_str(
            "myhostname = mx.example.org\nmydomain = example.org\nmyorigin = $mydomain\n",
            "t.conf",
        )
        .unwrap();
        assert_eq!(c.get("myorigin"), "example.org");
        assert_eq!(
            c.get("mydestination"),
            "mx.example.org, localhost.example.org, localhost"
        );
        assert_eq!(c.get("smtpd_banner"), "mx.example.org ESMTP tern");
        assert_eq!(
            c.render(true),
            "mydomain = example.org\nmyhostname = mx.example.org\nmyorigin = $mydomain\n"
        );
    }

    #[test]
    fn postfix_parameters_load_with_one_warning_each() {
        let text = "biff = no\ncompatibility_level = 3.6\nbiff = yes\nsmtp_tls_CApath = /etc/ssl/certs\nsmtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)\nsmtp_tls_CAfile = $config_directory/ca.pem\n";
        let c = Config::parse_str(text, "pf.cf").unwrap();
        let w: Vec<String> = c.warnings().iter().map(|w| w.to_string()).collect();
        assert_eq!(w.len(), 3, "{w:#?}");
        // The last setting of a name wins, as for tern's own parameters.
        assert_eq!(
            w[0],
            "pf.cf:2: warning: compatibility_level = 3.6: has no effect on tern: not implemented"
        );
        assert_eq!(
            w[1],
            "pf.cf:3: warning: biff = yes: has no effect on tern: not implemented"
        );
        assert!(w[2].starts_with("pf.cf:4: warning: smtp_tls_CApath = /etc/ssl/certs: has no effect on tern: tern trusts"), "{w:#?}");
        // $mail_name is tern's; $config_directory is Postfix's default.
        assert!(c.get("smtpd_banner").ends_with(" ESMTP tern (Debian/GNU)"));
        assert_eq!(c.get("smtp_tls_CAfile"), "/etc/postfix/ca.pem");
        assert_eq!(c.postfix_only().len(), 3);
        // A Postfix-only name set in the file expands to its value.
        let c = Config::parse_str(
            "config_directory = /etc/tern\nalias_maps = texthash:$config_directory/aliases\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.get("alias_maps"), "texthash:/etc/tern/aliases");
        assert!(Config::parse_str("", "t").unwrap().warnings().is_empty());
    }

    #[test]
    fn postfix_settings_tern_cannot_honour_are_errors() {
        let errs = Config::parse_str(
            "# x\nsmtp_tls_trust_anchor_file = /etc/postfix/ta.pem\ncontent_filter = amavis:[127.0.0.1]:10024\nsmtp_enforce_tls = yes\n",
            "pf.cf",
        )
        .unwrap_err();
        let e: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[0].starts_with(
                "pf.cf:2: smtp_tls_trust_anchor_file = /etc/postfix/ta.pem: not supported: "
            ),
            "{e:#?}"
        );
        assert!(e[1].starts_with("pf.cf:3: content_filter = "), "{e:#?}");
        assert!(
            e[2].starts_with("pf.cf:4: smtp_enforce_tls = yes: not supported: obsolete"),
            "{e:#?}"
        );
        // With the level it stands for set, the old switch is only a warning.
        let c = Config::parse_str(
            "smtp_enforce_tls = yes\nsmtp_tls_security_level = verify\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.warnings().len(), 1);
        // A bad $ in a Postfix-only value is an error with its line.
        let errs = Config::parse_str("\nbiff = ${x\n", "t").unwrap_err();
        assert_eq!(errs[0].line, Some(2), "{errs:?}");
    }

    #[test]
    fn unknown_names_still_fail_with_postfix_names_suggested() {
        let errs = Config::parse_str("compatability_level = 2\nmyhostnam = x\n", "t").unwrap_err();
        let e: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            vec![
                "t:1: unknown parameter \"compatability_level\"; did you mean \"compatibility_level\"?",
                "t:2: unknown parameter \"myhostnam\"; did you mean \"myhostname\"?",
            ]
        );
    }

    #[test]
    fn myorigin_file_gives_the_domain() {
        let dir = std::env::temp_dir().join(format!("tern-myorigin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("mailname");
        std::fs::write(&f, "box.example.org\nignored\n").unwrap();
        let text = format!(
            "myorigin = {}\nmasquerade_domains = $myorigin\n",
            f.display()
        );
        let c = Config::parse_str(&text, "t").unwrap();
        assert_eq!(c.get("myorigin"), "box.example.org");
        assert_eq!(c.get("masquerade_domains"), "box.example.org");
        // As written, for `tern config -n`.
        assert!(c
            .render(true)
            .contains(&format!("myorigin = {}", f.display())));
        for (content, needle) in [
            ("\n", "first line is empty"),
            ("root@/etc/mailname\n", "is not a domain name"),
        ] {
            std::fs::write(&f, content).unwrap();
            let errs = Config::parse_str(&text, "t").unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(errs[0].message.contains(needle), "{errs:?}");
        }
        let missing = dir.join("nope");
        let errs =
            Config::parse_str(&format!("\nmyorigin = {}\n", missing.display()), "t").unwrap_err();
        assert_eq!(errs[0].line, Some(2));
        assert!(
            errs[0].message.starts_with(&format!(
                "myorigin = {}: cannot read the domain from the file: ",
                missing.display()
            )),
            "{errs:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_length_limit_out_of_range_is_an_error_with_line() {
        for bad in ["511", "4095", "100000", "0"] {
            let text = format!("myhostname = mx.example.org\nline_length_limit = {bad}\n");
            let errs = Config::parse_str(&text, "ll.conf").unwrap_err();
            let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            assert_eq!(shown.len(), 1, "{shown:#?}");
            assert!(
                shown[0].starts_with(&format!(
                    "ll.conf:2: line_length_limit = {bad}: must be between 512 and 4094"
                )),
                "{shown:#?}"
            );
        }
        for good in ["512", "2048", "4094"] {
            let text = format!("line_length_limit = {good}\n");
            let c = Config::parse_str(&text, "ok.conf").unwrap();
            assert_eq!(c.get("line_length_limit"), good);
        }
    }

    #[test]
    fn three_mistakes_three_errors_with_lines() {
        let text = "myhostname = mx.example.org\nmessage_size_limt = 100\nsmtp_tls_security_level = strict\n\nmaximal_queue_lifetime = 5 days\n";
        let errs = Config::parse_str(text, "bad.conf").unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 3, "{shown:#?}");
        assert!(shown[0].starts_with("bad.conf:2: unknown parameter \"message_size_limt\"; did you mean \"message_size_limit\"?"));
        assert!(shown[1].starts_with(
            "bad.conf:3: smtp_tls_security_level = strict: expected one of: none, may"
        ));
        assert!(
            shown[2].starts_with("bad.conf:5: maximal_queue_lifetime = 5 days: expected a time")
        );
    }

    #[test]
    fn ffdhe_request_is_a_clear_error() {
        let errs = Config::parse_str("tls_ffdhe_auto_groups = ffdhe2048\n", "f.conf").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .to_string()
            .starts_with("f.conf:1: tls_ffdhe_auto_groups: FFDHE key exchange is not available"));
    }

    #[test]
    fn typed_values() {
        let c = Config::parse_str(
            "mynetworks = 127.0.0.0/8, [::1]/128 192.168.1.0/24\nsmtp_listen = 127.0.0.1:2525 [::1]:2525\nsubmission_listen = 587\nsmtpd_sasl_password_file = /x\nsmtpd_tls_cert_file = /c\ninet_interfaces = loopback-only\nmaximal_backoff_time = 1h\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.networks("mynetworks").len(), 3);
        assert_eq!(c.listen("smtp_listen").len(), 2);
        let sub = c.listen("submission_listen");
        assert_eq!(sub.len(), 2, "{sub:?}");
        assert!(sub.iter().all(|a| a.port() == 587 && a.ip().is_loopback()));
        assert_eq!(c.time("maximal_backoff_time"), Duration::from_secs(3600));
    }

    #[test]
    fn default_smtp_listen_follows_inet_interfaces() {
        let addrs = |text: &str| -> Vec<String> {
            let c = Config::parse_str(text, "t").unwrap();
            c.listen("smtp_listen")
                .iter()
                .map(|a| a.to_string())
                .collect()
        };
        // The Postfix way to make a box send-only: port 25 on loopback only.
        assert_eq!(
            addrs("inet_interfaces = loopback-only\n"),
            ["127.0.0.1:25", "[::1]:25"]
        );
        assert_eq!(addrs(""), ["0.0.0.0:25", "[::]:25"]);
        assert_eq!(
            addrs("inet_interfaces = 192.168.1.1, 127.0.0.1\n"),
            ["192.168.1.1:25", "127.0.0.1:25"]
        );
        // An explicit address still wins.
        assert_eq!(
            addrs("inet_interfaces = loopback-only\nsmtp_listen = 192.168.1.1:25\n"),
            ["192.168.1.1:25"]
        );
        // inet_protocols filters what bare ports expand to.
        assert_eq!(
            addrs("inet_interfaces = loopback-only\ninet_protocols = ipv4\n"),
            ["127.0.0.1:25"]
        );
        assert_eq!(addrs("inet_protocols = ipv6\n"), ["[::]:25"]);
        assert_eq!(
            addrs("inet_protocols = ipv4, ipv6\n"),
            ["0.0.0.0:25", "[::]:25"]
        );
        let c = Config::parse_str("", "t").unwrap();
        assert!(c.protocols().all);
        let c = Config::parse_str("inet_protocols = ipv4 ipv6\n", "t").unwrap();
        assert!(!c.protocols().all && c.protocols().ipv6);
    }

    #[test]
    fn listener_and_protocol_mistakes_are_errors() {
        for (text, line, needle) in [
            ("inet_protocols = ipv5\n", 1, "\"ipv5\" is not a protocol"),
            ("inet_protocols =\n", 1, "no protocol given"),
            (
                "inet_interfaces = eth0\n",
                1,
                "host names are not supported",
            ),
            ("inet_interfaces =\n", 1, "inet_interfaces is empty"),
            (
                "inet_protocols = ipv4\nsmtp_listen = [::1]:25\n",
                2,
                "smtp_listen: ::1 is an IPv6 address, but inet_protocols = ipv4",
            ),
            (
                "inet_protocols = ipv6\n\ninet_interfaces = 127.0.0.1\n",
                3,
                "inet_interfaces: 127.0.0.1 is an IPv4 address",
            ),
            (
                "inet_protocols = ipv6\nsmtpd_tls_cert_file = /c\nsubmissions_listen = 127.0.0.1:465\n",
                3,
                "submissions_listen: 127.0.0.1 is an IPv4",
            ),
        ] {
            let errs = Config::parse_str(text, "k").unwrap_err();
            assert_eq!(errs.len(), 1, "{text}: {errs:?}");
            assert!(errs[0].message.contains(needle), "{text}: {errs:?}");
            assert_eq!(errs[0].line, Some(line), "{text}: {errs:?}");
        }
    }

    #[test]
    fn every_key_of_the_design_contract_is_known() {
        // shared/DESIGN.md, "The interface contract": Postfix's names, then
        // tern's own keys. Scripts and admins rely on each being accepted.
        for k in [
            "myhostname",
            "mydomain",
            "myorigin",
            "mynetworks",
            "mydestination",
            "relayhost",
            "transport_maps",
            "queue_directory",
            "message_size_limit",
            "maximal_queue_lifetime",
            "minimal_backoff_time",
            "maximal_backoff_time",
            "smtpd_tls_cert_file",
            "smtpd_tls_key_file",
            "smtpd_tls_security_level",
            "smtpd_tls_received_header",
            "smtpd_tls_loglevel",
            "smtp_tls_security_level",
            "smtp_tls_policy_maps",
            "smtp_tls_CAfile",
            "smtp_tls_loglevel",
            "smtp_sasl_password_maps",
            "smtp_tls_wrappermode",
            "smtp_tlsrpt_enable",
            "tls_eecdh_auto_curves",
            "syslog_name",
            "syslog_facility",
            "maillog_file",
            "smtp_listen",
            "submission_listen",
            "submissions_listen",
            "smtp_tcp_port",
            "dns_resolvers",
            "max_connections",
            "smtpd_sasl_password_file",
            "mta_sts_enable",
        ] {
            assert!(params::lookup(k).is_some(), "{k} is not a known parameter");
        }
        let c = Config::parse_str("smtp_tls_CAfile = /etc/tern/ca.pem\n", "ca").unwrap();
        assert_eq!(c.get("smtp_tls_CAfile"), "/etc/tern/ca.pem");
    }

    #[test]
    fn bad_values_of_each_kind() {
        for (line, needle) in [
            ("mynetworks = 300.1.1.1/8", "mynetworks"),
            ("smtp_listen = 127.0.0.1:99999", "smtp_listen"),
            ("transport_maps = mysql:/etc/x", "unsupported table type"),
            ("relayhost = [unclosed:587", "relayhost"),
            ("smtpd_tls_received_header = maybe", "yes or no"),
            ("myorigin = ${mydomain", "missing '}'"),
        ] {
            let errs = Config::parse_str(line, "k").unwrap_err();
            assert!(errs[0].to_string().contains(needle), "{line}: {errs:?}");
            assert_eq!(errs[0].line, Some(1));
        }
    }

    #[test]
    fn example_file_lists_every_parameter_with_its_default() {
        let text = include_str!("../../config/tern.conf");
        // Every parameter appears as a commented default line "#name = default".
        for p in PARAMS {
            let want = format!("#{} = {}", p.name, p.default.replace("@host", ""));
            let found = text.lines().any(|l| {
                l.trim_end() == want.trim_end()
                    || (p.default == "@host" && l.starts_with(&format!("#{} =", p.name)))
            });
            assert!(found, "config/tern.conf lacks the line: {want}");
        }
        // And the example itself (with its few live settings) is valid.
        Config::parse_str(text, "config/tern.conf").unwrap();
        Config::parse_str(DEV_CONFIG, "config/dev.conf").unwrap();
    }
}
