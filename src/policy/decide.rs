//! The effective TLS policy for one next hop.
//!
//! Order of the sources: policy table entry -> DANE (at the DANE levels)
//! -> MTA-STS -> default `smtp_tls_security_level`. This module picks the
//! level from the table or the default; DANE is applied per MX host by the
//! hop planner ([`super::plan`]), which is also where an MTA-STS policy
//! will come in.
//!
//! Also here: the certificate-name match list of the `verify` and `secure`
//! levels with the `nexthop`, `dot-nexthop` and `hostname` strategies
//! expanded into concrete names; fingerprints are parsed in
//! [`super::fingerprint`].

use std::fmt;

use super::ciphers::ExcludedSuites;
pub use super::fingerprint::{parse_fingerprint, Fingerprint, FingerprintError};
use super::level::Level;
use super::nexthop::NextHop;
pub use super::protocols::{ProtocolsError, TlsVersions};
use super::table::{
    lookup_maps, MatchList, OwnedPolicyEntry, PolicyEntry, PolicyTable, ServerName, StsDescriptor,
};

/// The main.cf settings the decision falls back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyDefaults<'a> {
    /// `smtp_tls_security_level`.
    pub level: Level,
    /// `smtp_tls_protocols` (opportunistic TLS).
    pub protocols: TlsVersions,
    /// `smtp_tls_mandatory_protocols` (encrypt and up).
    pub mandatory_protocols: TlsVersions,
    /// `smtp_tls_ciphers`: the cipher grade at `may` (checked at load).
    pub ciphers: &'a str,
    /// `smtp_tls_mandatory_ciphers`: the grade from `encrypt` up.
    pub mandatory_ciphers: &'a str,
    /// `smtp_tls_exclude_ciphers`: excluded at every level.
    pub exclude_ciphers: ExcludedSuites,
    /// `smtp_tls_mandatory_exclude_ciphers`: also excluded from `encrypt` up.
    pub mandatory_exclude_ciphers: ExcludedSuites,
    /// `smtp_tls_verify_cert_match` (Postfix default `hostname`).
    pub verify_cert_match: &'a str,
    /// `smtp_tls_secure_cert_match` (Postfix default `nexthop, dot-nexthop`).
    pub secure_cert_match: &'a str,
    /// `smtp_tls_fingerprint_cert_match` (default empty).
    pub fingerprint_cert_match: &'a str,
}

impl PolicyDefaults<'static> {
    /// Postfix's defaults for the match lists, protocols (`>=TLSv1`,
    /// which for tern means TLS 1.2 and 1.3) and ciphers (`medium`, no
    /// exclusions), with `may` as the level (Postfix's own empty default
    /// means `none`).
    pub const POSTFIX: PolicyDefaults<'static> = PolicyDefaults {
        level: Level::May,
        protocols: TlsVersions::ALL,
        mandatory_protocols: TlsVersions::ALL,
        ciphers: "medium",
        mandatory_ciphers: "medium",
        exclude_ciphers: ExcludedSuites::NONE,
        mandatory_exclude_ciphers: ExcludedSuites::NONE,
        verify_cert_match: "hostname",
        secure_cert_match: "nexthop, dot-nexthop",
        fingerprint_cert_match: "",
    };
}

impl Default for PolicyDefaults<'static> {
    fn default() -> Self {
        PolicyDefaults::POSTFIX
    }
}

/// Everything the decision needs for one next hop. MTA-STS and DANE inputs
/// join here when those steps are written.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInputs<'a> {
    /// The next-hop destination: the recipient domain, or the transport or
    /// relayhost next hop verbatim (the policy table key).
    pub nexthop: NextHop<'a>,
    /// `smtp_tls_policy_maps`, in order (may be empty).
    pub tables: &'a [PolicyTable],
    /// The main.cf fallbacks.
    pub defaults: &'a PolicyDefaults<'a>,
}

/// Where the effective level came from (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource<'a> {
    /// A policy table entry.
    Table {
        /// The key that matched (`.example.com`, `[mx.example.com]:587`).
        key: &'a str,
        /// Its line in the table file.
        line: u32,
    },
    /// A policy plug-in's answer (a `socketmap:` table).
    Plugin {
        /// The table that answered (`socketmap:inet:127.0.0.1:8461:postfix`).
        table: &'a str,
        /// The key it answered for.
        key: &'a str,
    },
    /// `smtp_tls_security_level`.
    Default,
}

/// The decision could not produce a usable policy; Postfix defers the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideError {
    /// Fingerprint level with no fingerprints anywhere.
    NoFingerprints(String),
    /// A bad fingerprint in `smtp_tls_fingerprint_cert_match`.
    Fingerprint(FingerprintError),
    /// The policy table entry for the next hop was malformed and skipped
    /// at load time: its key is known, its policy is not. tern defers
    /// rather than use the default level (Postfix's lookup would miss and
    /// could downgrade a destination meant to be `secure`).
    BrokenEntry {
        /// The next hop.
        nexthop: String,
        /// The table file.
        file: String,
        /// The entry's line.
        line: u32,
    },
}

impl fmt::Display for DecideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecideError::NoFingerprints(d) => write!(
                f,
                "nexthop domain {d}: configured at fingerprint security level, but with no fingerprints to match."
            ),
            DecideError::Fingerprint(e) => write!(f, "smtp_tls_fingerprint_cert_match: {e}"),
            DecideError::BrokenEntry {
                nexthop,
                file,
                line,
            } => write!(
                f,
                "TLS policy lookup for {nexthop}: malformed entry {file}:{line} was skipped; fix the table"
            ),
        }
    }
}

impl std::error::Error for DecideError {}

/// The TLS policy to apply to one next hop.
#[derive(Debug, Clone, Copy)]
pub struct EffectivePolicy<'a> {
    /// The security level.
    pub level: Level,
    /// Where it came from.
    pub source: PolicySource<'a>,
    /// `ciphers=` of the entry.
    pub ciphers: Option<&'a str>,
    /// `exclude=` of the entry.
    pub exclude: Option<&'a str>,
    /// `servername=` of the entry.
    pub servername: Option<ServerName<'a>>,
    /// `connection_reuse=` of the entry.
    pub connection_reuse: Option<bool>,
    entry: Option<PolicyEntry<'a>>,
    defaults: &'a PolicyDefaults<'a>,
    nexthop: NextHop<'a>,
    /// Lowered for `TLS-Required: No` ([`EffectivePolicy::relax_for_tls_required_no`]).
    relaxed: bool,
}

/// A name the server certificate must carry (verify and secure levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertName<'a> {
    /// This exact DNS name (case ignored).
    Exact(&'a str),
    /// Any name of one or more labels followed by `.` and this suffix.
    Subdomain(&'a str),
}

impl CertName<'_> {
    /// Whether a (non-wildcard) DNS name from the certificate satisfies
    /// this requirement; wildcard certificate names are the verifier's job.
    pub fn matches(&self, dns_name: &str) -> bool {
        let n = dns_name.strip_suffix('.').unwrap_or(dns_name);
        match *self {
            CertName::Exact(e) => n.eq_ignore_ascii_case(e.strip_suffix('.').unwrap_or(e)),
            CertName::Subdomain(s) => {
                // The byte before the suffix must be an ASCII '.', which
                // also makes the suffix start a char boundary.
                n.len() > s.len() + 1
                    && n.as_bytes()[n.len() - s.len() - 1] == b'.'
                    && n[n.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// The expanded certificate name list; allocation-free.
#[derive(Debug, Clone)]
pub struct CertNames<'a> {
    list: MatchList<'a>,
    nexthop: &'a str,
    hostname: &'a str,
}

impl<'a> Iterator for CertNames<'a> {
    type Item = CertName<'a>;
    fn next(&mut self) -> Option<CertName<'a>> {
        let t = self.list.next()?;
        Some(if t.eq_ignore_ascii_case("nexthop") {
            CertName::Exact(self.nexthop)
        } else if t.eq_ignore_ascii_case("dot-nexthop") {
            CertName::Subdomain(self.nexthop)
        } else if t.eq_ignore_ascii_case("hostname") {
            CertName::Exact(self.hostname)
        } else if let Some(s) = t.strip_prefix('.') {
            CertName::Subdomain(s)
        } else {
            CertName::Exact(t)
        })
    }
}

impl<'a> EffectivePolicy<'a> {
    /// The table entry the policy came from, if any.
    pub fn entry(&self) -> Option<PolicyEntry<'a>> {
        self.entry
    }

    /// The MTA-STS policy a policy plug-in answered with (`policy_type=sts`
    /// and its `policy_domain`, `policy_ttl`, `policy_string`,
    /// `mx_host_pattern` and `policy_failure` attributes), or its
    /// `policy_type=no-policy-found`. The hop planner consumes it: it takes
    /// MTA-STS's place in the order (after DANE) and replaces the built-in
    /// MTA-STS lookup for the domain; the entry's level and `match=` still
    /// apply as Postfix applies them.
    pub fn sts(&self) -> Option<StsDescriptor<'a>> {
        if self.relaxed {
            return None;
        }
        self.entry.and_then(|e| e.sts())
    }

    /// `smtp_tls_security_level`, whatever the entry says (a policy
    /// plug-in's MTA-STS answer comes after DANE at the DANE levels).
    pub fn default_level(&self) -> Level {
        self.defaults.level
    }

    /// RFC 8689 §4.2.1 for a message with `TLS-Required: No`: the
    /// recipient-side policies are ignored and TLS is opportunistic. The
    /// level becomes `may` (`none` stays `none`: the header asks for less
    /// security, never for more), a plug-in's MTA-STS answer is dropped,
    /// and the hop planner asks for no MTA-STS policy (see
    /// [`EffectivePolicy::relaxed`]); at `may` it asks for no TLSA records
    /// either. The caller decides whether the route allows it (not when
    /// it sends SMTP AUTH credentials). Returns the level it had.
    pub fn relax_for_tls_required_no(&mut self) -> Level {
        let was = self.level;
        self.level = self.level.min(Level::May);
        self.relaxed = true;
        was
    }

    /// Lowered for `TLS-Required: No`: MTA-STS is not consulted.
    pub fn relaxed(&self) -> bool {
        self.relaxed
    }

    /// The next-hop domain used by the `nexthop` strategies: the next hop
    /// without brackets and port.
    pub fn nexthop_domain(&self) -> &'a str {
        self.nexthop.host()
    }

    /// The raw match list: the entry's `match=` values if it has any, else
    /// the main.cf setting for the level (empty for levels without one).
    pub fn match_list(&self) -> MatchList<'a> {
        if let Some(e) = self.entry.filter(|e| e.has_match()) {
            return e.match_list();
        }
        let d = self.defaults;
        match self.level {
            Level::Verify => MatchList::main_cf(d.verify_cert_match, false),
            Level::Secure => MatchList::main_cf(d.secure_cert_match, false),
            Level::Fingerprint => MatchList::main_cf(d.fingerprint_cert_match, true),
            _ => MatchList::main_cf("", false),
        }
    }

    /// Names the certificate must match at `verify`/`secure`, with
    /// `nexthop`, `dot-nexthop` and `hostname` expanded; `mx_host` is the
    /// server's host name (from the MX record, or the bracketed host).
    /// Empty at other levels.
    pub fn cert_names<'b>(&self, mx_host: &'b str) -> CertNames<'b>
    where
        'a: 'b,
    {
        let list = if self.level.uses_name_match() {
            self.match_list()
        } else {
            MatchList::main_cf("", false)
        };
        CertNames {
            list,
            nexthop: self.nexthop.host(),
            hostname: mx_host,
        }
    }

    /// The fingerprints at the `fingerprint` level (validated by [`decide`]).
    pub fn fingerprints(&self) -> impl Iterator<Item = Fingerprint> + 'a {
        let list = if self.level == Level::Fingerprint {
            self.match_list()
        } else {
            MatchList::main_cf("", true)
        };
        list.filter_map(|f| parse_fingerprint(f).ok())
    }

    /// The TLS versions to offer on a connection that runs at `level`
    /// (the policy's level, or what DANE made of it: `may` without TLSA
    /// records, `encrypt` with unusable ones): the entry's `protocols=`,
    /// else `smtp_tls_protocols` at `may` and `smtp_tls_mandatory_protocols`
    /// above, as Postfix's opportunistic/mandatory split.
    pub fn protocols_at(&self, level: Level) -> TlsVersions {
        match self.entry.and_then(|e| e.protocols()) {
            Some(p) => p,
            None if level.uses_mandatory_settings() => self.defaults.mandatory_protocols,
            None => self.defaults.protocols,
        }
    }

    /// The TLS 1.2 suites not to offer on a connection at `level`, as
    /// Postfix's set_cipher_grade(): the entry's `exclude=` replaces the
    /// main.cf lists; without it, `smtp_tls_exclude_ciphers`, plus
    /// `smtp_tls_mandatory_exclude_ciphers` from `encrypt` up. (Postfix
    /// also adds `eNULL`/`aNULL` at the mandatory levels; rustls has no such
    /// suites.) Values were validated at load; an invalid one cannot reach
    /// here, and would exclude nothing extra.
    pub fn excluded_suites_at(&self, level: Level) -> ExcludedSuites {
        if let Some(x) = self.exclude {
            return ExcludedSuites::parse(x).unwrap_or_default();
        }
        let d = self.defaults;
        if level.uses_mandatory_settings() {
            d.exclude_ciphers.union(d.mandatory_exclude_ciphers)
        } else {
            d.exclude_ciphers
        }
    }

    /// The minimum cipher grade at `level`: the entry's `ciphers=`, else
    /// `smtp_tls_ciphers` at `may` and `smtp_tls_mandatory_ciphers` above.
    /// Every suite rustls offers is AEAD with forward secrecy (OpenSSL
    /// `HIGH`), so `export` .. `high` all leave the same set; `null` is
    /// refused at load ([`super::ciphers::check_grade`]).
    pub fn cipher_grade_at(&self, level: Level) -> &'a str {
        match self.ciphers {
            Some(c) => c,
            None if level.uses_mandatory_settings() => self.defaults.mandatory_ciphers,
            None => self.defaults.ciphers,
        }
    }

    /// The `tafile=` values of the entry.
    pub fn tafiles(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.entry.into_iter().flat_map(|e| e.tafiles())
    }

    /// The SNI name to send, if any (`servername=`), resolved against the
    /// server's host name.
    pub fn sni<'b>(&self, mx_host: &'b str) -> Option<&'b str>
    where
        'a: 'b,
    {
        match self.servername? {
            ServerName::Hostname => Some(mx_host),
            ServerName::Nexthop => Some(self.nexthop.host()),
            ServerName::Name(n) => Some(n),
        }
    }
}

/// Decides the effective policy: the first table entry for the next hop
/// (exact key, then parent `.domain` keys), else the default level.
pub fn decide<'a>(inputs: &PolicyInputs<'a>) -> Result<EffectivePolicy<'a>, DecideError> {
    decide_with(inputs, None)
}

/// [`decide`] when `smtp_tls_policy_maps` lists a policy plug-in: the
/// driver has already walked the keys through every table in order (the
/// plug-in asked over its socket) and passes what the plug-in answered.
/// `None` means no plug-in answer came first: then the file tables give
/// the same entry as the driver's walk, and they are looked up here.
pub fn decide_with<'a>(
    inputs: &PolicyInputs<'a>,
    plugin: Option<&'a OwnedPolicyEntry>,
) -> Result<EffectivePolicy<'a>, DecideError> {
    let entry = match plugin {
        Some(p) => Some(p.entry()),
        None => lookup_maps(inputs.tables, inputs.nexthop.as_str()),
    };
    if let Some(e) = entry.filter(|e| e.is_broken()) {
        return Err(DecideError::BrokenEntry {
            nexthop: inputs.nexthop.as_str().to_string(),
            file: e.file().to_string(),
            line: e.line(),
        });
    }
    // DANE and MTA-STS are the hop planner's (plan.rs), per MX host.
    let (level, source) = match (entry, plugin) {
        (Some(e), Some(p)) => (
            e.level(),
            PolicySource::Plugin {
                table: p.table(),
                key: e.key(),
            },
        ),
        (Some(e), None) => (
            e.level(),
            PolicySource::Table {
                key: e.key(),
                line: e.line(),
            },
        ),
        (None, _) => (inputs.defaults.level, PolicySource::Default),
    };
    let d = inputs.defaults;
    let policy = EffectivePolicy {
        level,
        source,
        ciphers: entry.and_then(|e| e.ciphers()),
        exclude: entry.and_then(|e| e.exclude()),
        servername: entry.and_then(|e| e.servername()),
        connection_reuse: entry.and_then(|e| e.connection_reuse()),
        entry,
        defaults: d,
        nexthop: inputs.nexthop,
        relaxed: false,
    };
    if level == Level::Fingerprint {
        let mut any = false;
        for f in policy.match_list() {
            parse_fingerprint(f).map_err(DecideError::Fingerprint)?;
            any = true;
        }
        if !any {
            return Err(DecideError::NoFingerprints(
                inputs.nexthop.host().to_string(),
            ));
        }
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP1: &str = "b6:b4:72:34:e2:59:cd:fb:c2:ca:63:0d:4d:cc:2c:7d:84:de:e6:2f:00:11:22:33:44:55:66:77:88:99:aa:bb";

    fn table(text: &str) -> Vec<PolicyTable> {
        vec![PolicyTable::parse(text.as_bytes(), "p").unwrap().0]
    }

    fn names(p: &EffectivePolicy<'_>, mx: &str) -> Vec<String> {
        p.cert_names(mx)
            .map(|n| match n {
                CertName::Exact(s) => s.to_string(),
                CertName::Subdomain(s) => format!("*.{s}"),
            })
            .collect()
    }

    #[test]
    fn a_broken_entry_defers_instead_of_falling_back_to_the_default() {
        let (t, _) = PolicyTable::load(b"[mx.example]\n.example.org secure\n", "/etc/p");
        let tables = vec![t];
        let d = PolicyDefaults::POSTFIX;
        let decide_for = |hop: &'static str| {
            decide(&PolicyInputs {
                nexthop: NextHop::parse(hop).unwrap(),
                tables: &tables,
                defaults: &d,
            })
            .map(|p| p.level)
        };
        let e = decide_for("[mx.example]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "TLS policy lookup for [mx.example]: malformed entry /etc/p:1 was skipped; fix the table"
        );
        assert_eq!(decide_for("a.example.org").unwrap(), Level::Secure);
        assert_eq!(decide_for("other.example").unwrap(), Level::May);
    }

    #[test]
    fn table_then_default() {
        let t = table("example.com secure\n.example.com verify match=hostname:.example.com\n[relay.example]:587 encrypt protocols=>=TLSv1.3 connection_reuse=yes\n");
        let d = PolicyDefaults {
            level: Level::Dane,
            ..PolicyDefaults::POSTFIX
        };
        let hop = NextHop::parse("example.com").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        assert_eq!(p.level, Level::Secure);
        assert_eq!(
            p.source,
            PolicySource::Table {
                key: "example.com",
                line: 1
            }
        );
        // secure default match: nexthop, dot-nexthop.
        assert_eq!(
            names(&p, "mx1.mail.example.net"),
            vec!["example.com", "*.example.com"]
        );

        let hop = NextHop::parse("sub.example.com").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        assert_eq!(p.level, Level::Verify);
        assert_eq!(
            names(&p, "mx.sub.example.com"),
            vec!["mx.sub.example.com", "*.example.com"]
        );

        let hop = NextHop::parse("[relay.example]:587").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        assert_eq!(p.level, Level::Encrypt);
        let v = p.protocols_at(p.level);
        assert!(!v.tls12() && v.tls13());
        assert_eq!(p.connection_reuse, Some(true));
        assert_eq!(p.nexthop_domain(), "relay.example");
        assert!(p.cert_names("relay.example").next().is_none());

        let hop = NextHop::parse("other.org").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        assert_eq!((p.level, p.source), (Level::Dane, PolicySource::Default));
        assert!(p.entry().is_none());
    }

    #[test]
    fn default_verify_matches_hostname() {
        let d = PolicyDefaults {
            level: Level::Verify,
            ..PolicyDefaults::POSTFIX
        };
        let hop = NextHop::parse("example.org").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &[],
            defaults: &d,
        })
        .unwrap();
        assert_eq!(names(&p, "mx.example.net"), vec!["mx.example.net"]);
        let d2 = PolicyDefaults {
            level: Level::Secure,
            secure_cert_match: "nexthop:.Example.ORG example.com",
            ..PolicyDefaults::POSTFIX
        };
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &[],
            defaults: &d2,
        })
        .unwrap();
        assert_eq!(
            names(&p, "mx"),
            vec!["example.org", "*.Example.ORG", "example.com"]
        );
    }

    #[test]
    fn protocols_default_by_level() {
        let d = PolicyDefaults {
            level: Level::May,
            protocols: TlsVersions::parse("TLSv1.2").unwrap(),
            mandatory_protocols: TlsVersions::parse(">=TLSv1.3").unwrap(),
            ..PolicyDefaults::POSTFIX
        };
        let t = table("enc.example encrypt\n");
        let hop = NextHop::parse("may.example").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        let v = p.protocols_at(p.level);
        assert!(v.tls12() && !v.tls13());
        let hop = NextHop::parse("enc.example").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        let v = p.protocols_at(p.level);
        assert!(!v.tls12() && v.tls13());
        // What DANE made of the level decides, unless protocols= is set.
        assert!(p.protocols_at(Level::May).tls12());
        assert!(!p.protocols_at(Level::Encrypt).tls12());
        let t = table("x.example dane\ny.example dane protocols=TLSv1.2 exclude=CHACHA20\n");
        let hop = NextHop::parse("x.example").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        assert!(p.protocols_at(Level::May).tls12() && !p.protocols_at(Level::May).tls13());
        assert!(!p.protocols_at(Level::Dane).tls12());
        assert!(p.excluded_suites_at(Level::Dane).is_empty());
        let hop = NextHop::parse("y.example").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        assert!(!p.protocols_at(Level::Dane).tls13());
        assert!(p
            .excluded_suites_at(Level::Dane)
            .excludes(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256));
    }

    #[test]
    fn ciphers_and_exclusions_by_level() {
        use rustls::CipherSuite as S;
        let d = PolicyDefaults {
            ciphers: "low",
            mandatory_ciphers: "high",
            exclude_ciphers: ExcludedSuites::parse("CHACHA20").unwrap(),
            mandatory_exclude_ciphers: ExcludedSuites::parse("aRSA").unwrap(),
            ..PolicyDefaults::POSTFIX
        };
        let t = table(
            "enc.example encrypt
own.example verify ciphers=medium exclude=AES256
",
        );
        let p = |hop: &'static str| {
            decide(&PolicyInputs {
                nexthop: NextHop::parse(hop).unwrap(),
                tables: &t,
                defaults: &d,
            })
            .unwrap()
        };
        // Opportunistic: smtp_tls_ciphers and smtp_tls_exclude_ciphers only.
        let may = p("other.example");
        assert_eq!(may.cipher_grade_at(Level::May), "low");
        let x = may.excluded_suites_at(Level::May);
        assert!(x.excludes(S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
        assert!(!x.excludes(S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        // Mandatory: the mandatory grade, both exclusion lists.
        let enc = p("enc.example");
        assert_eq!(enc.cipher_grade_at(enc.level), "high");
        let x = enc.excluded_suites_at(enc.level);
        assert!(x.excludes(S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
        assert!(x.excludes(S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(!x.excludes(S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256));
        // The level DANE made of it decides (dane without TLSA runs at may).
        assert!(!enc
            .excluded_suites_at(Level::May)
            .excludes(S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert_eq!(enc.cipher_grade_at(Level::May), "low");
        // ciphers= and exclude= of the entry replace the main.cf values.
        let own = p("own.example");
        assert_eq!(own.cipher_grade_at(own.level), "medium");
        let x = own.excluded_suites_at(own.level);
        assert!(x.excludes(S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384));
        assert!(!x.excludes(S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert!(!x.excludes(S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
    }

    #[test]
    fn fingerprints() {
        let t = table(&format!(
            "[hub.example] fingerprint match={FP1}|{}\n",
            FP1.replace(':', "")
        ));
        let hop = NextHop::parse("[hub.example]").unwrap();
        let d = PolicyDefaults::POSTFIX;
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        let f: Vec<Fingerprint> = p.fingerprints().collect();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0], f[1]);
        assert_eq!(f[0].as_bytes()[0], 0xb6);
        assert_eq!(f[0].as_bytes().len(), 32);
        assert!(p.cert_names("hub.example").next().is_none());

        // From main.cf when the entry has no match=.
        let d = PolicyDefaults {
            level: Level::Fingerprint,
            fingerprint_cert_match: FP1,
            ..PolicyDefaults::POSTFIX
        };
        let hop = NextHop::parse("[other.example]").unwrap();
        let p = decide(&PolicyInputs {
            nexthop: hop,
            tables: &t,
            defaults: &d,
        })
        .unwrap();
        assert_eq!(p.fingerprints().count(), 1);

        let d = PolicyDefaults {
            level: Level::Fingerprint,
            ..PolicyDefaults::POSTFIX
        };
        let e = decide(&PolicyInputs {
            nexthop: hop,
            tables: &[],
            defaults: &d,
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "nexthop domain other.example: configured at fingerprint security level, but with no fingerprints to match.");
        let d = PolicyDefaults {
            level: Level::Fingerprint,
            fingerprint_cert_match: "abc",
            ..PolicyDefaults::POSTFIX
        };
        assert!(matches!(
            decide(&PolicyInputs {
                nexthop: hop,
                tables: &[],
                defaults: &d
            }),
            Err(DecideError::Fingerprint(FingerprintError::NotHex(_)))
        ));
    }

    #[test]
    fn fingerprint_parsing() {
        assert_eq!(parse_fingerprint(FP1).unwrap().as_bytes().len(), 32);
        assert_eq!(
            parse_fingerprint(&"ab".repeat(20))
                .unwrap()
                .as_bytes()
                .len(),
            20
        );
        assert_eq!(
            parse_fingerprint("ab:cd"),
            Err(FingerprintError::Length {
                text: "ab:cd".into(),
                bytes: 2
            })
        );
        assert!(matches!(
            parse_fingerprint("a:bc"),
            Err(FingerprintError::NotHex(_))
        ));
        assert!(matches!(
            parse_fingerprint("abc"),
            Err(FingerprintError::NotHex(_))
        ));
        assert!(matches!(
            parse_fingerprint(&"ab".repeat(65)),
            Err(FingerprintError::Length { bytes: 65, .. })
        ));
        assert!(format!("{:?}", parse_fingerprint(FP1).unwrap()).starts_with("B6:B4:"));
    }

    #[test]
    fn cert_name_matching() {
        assert!(CertName::Exact("mx.example.com").matches("MX.Example.com"));
        assert!(CertName::Exact("mx.example.com").matches("mx.example.com."));
        assert!(!CertName::Exact("mx.example.com").matches("a.mx.example.com"));
        assert!(CertName::Subdomain("example.com").matches("a.b.example.com"));
        assert!(!CertName::Subdomain("example.com").matches("example.com"));
        assert!(!CertName::Subdomain("example.com").matches("badexample.com"));
        assert!(!CertName::Subdomain("example.com").matches(".example.com"));
    }

    #[test]
    fn sni() {
        let t = table("a.example may servername=hostname\nb.example may servername=nexthop\nc.example may servername=sni.example\n");
        let d = PolicyDefaults::POSTFIX;
        let sni = |dest: &str| {
            let hop = NextHop::parse(dest).unwrap();
            decide(&PolicyInputs {
                nexthop: hop,
                tables: &t,
                defaults: &d,
            })
            .unwrap()
            .sni("mx.host")
            .map(str::to_string)
        };
        assert_eq!(sni("a.example").as_deref(), Some("mx.host"));
        assert_eq!(sni("b.example").as_deref(), Some("b.example"));
        assert_eq!(sni("c.example").as_deref(), Some("sni.example"));
        assert_eq!(sni("d.example"), None);
    }
}
