//! What every delivery reads, built once per configuration (start and
//! SIGHUP) and replaced whole: tables, resolver, TLS parameters and the
//! typed outbound settings. Deliveries never look a key up by name, so a
//! misspelled setting is a compile error, not a silent default.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use crate::config::Config;
use crate::dns::{Resolver, ResolverConfig};
use crate::policy::ciphers::ExcludedSuites;
use crate::policy::decide::{PolicyDefaults, TlsVersions};
use crate::policy::plan::PlanSettings;
use crate::policy::Level;
use crate::tls::verify::FingerprintDigest;
use crate::tls::BufferPool;

use super::report::{NoReports, Sinks, TlsReportSink};
use super::tables::Tables;

/// The main.cf values outbound delivery uses, parsed once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What the hop planner reads.
    pub plan: PlanSettings,
    /// `smtp_tls_security_level`.
    pub level: Level,
    /// `smtp_tls_protocols`.
    pub protocols: TlsVersions,
    /// `smtp_tls_mandatory_protocols`.
    pub mandatory_protocols: TlsVersions,
    /// `smtp_tls_ciphers`.
    pub ciphers: String,
    /// `smtp_tls_mandatory_ciphers`.
    pub mandatory_ciphers: String,
    /// `smtp_tls_exclude_ciphers`.
    pub exclude_ciphers: ExcludedSuites,
    /// `smtp_tls_mandatory_exclude_ciphers`.
    pub mandatory_exclude_ciphers: ExcludedSuites,
    /// `smtp_tls_verify_cert_match`.
    pub verify_cert_match: String,
    /// `smtp_tls_secure_cert_match`.
    pub secure_cert_match: String,
    /// `smtp_tls_fingerprint_cert_match`.
    pub fingerprint_cert_match: String,
    /// `smtp_connect_timeout`.
    pub connect_timeout: Duration,
    /// `socketmap_timeout`: one `socketmap:` lookup (a policy plug-in).
    pub socketmap_timeout: Duration,
    /// `smtp_helo_timeout` (also every command and TLS handshake).
    pub helo_timeout: Duration,
    /// `smtp_greeting_timeout`, capped at `smtp_helo_timeout`: how long
    /// a server may stay silent before its first greeting byte.
    pub greeting_timeout: Duration,
    /// `smtp_data_done_timeout` (body and end of data).
    pub data_done_timeout: Duration,
    /// `smtp_line_length_limit`: longer body lines are broken with
    /// `CRLF SPACE` (0: never).
    pub line_length_limit: usize,
    /// `smtp_helo_name`.
    pub helo_name: String,
    /// `smtp_tls_loglevel`.
    pub tls_loglevel: u64,
    /// `smtp_sasl_auth_enable`.
    pub sasl_auth_enable: bool,
    /// `maximal_queue_lifetime`.
    pub maximal_queue_lifetime: Duration,
    /// `minimal_backoff_time`.
    pub minimal_backoff_time: Duration,
    /// `maximal_backoff_time`.
    pub maximal_backoff_time: Duration,
    /// The per-destination concurrency window (`smtp_*destination_
    /// concurrency*`, which default to the `default_*` and
    /// `initial_destination_concurrency` values).
    pub concurrency: super::concurrency::Limits,
    /// `destination_concurrency_feedback_debug`.
    pub concurrency_debug: bool,
    /// `mydestination`.
    pub mydestination: Vec<String>,
    /// `relayhost`.
    pub relayhost: String,
    /// `smtp_tls_wrappermode`.
    pub wrappermode: bool,
    /// `myhostname`.
    pub myhostname: String,
    /// `bounce_size_limit`.
    pub bounce_size_limit: usize,
    /// `smtp_sasl_auth_soft_bounce`: a 5xx reply to AUTH defers (yes) or
    /// bounces (no).
    pub sasl_auth_soft_bounce: bool,
    /// `2bounce_notice_recipient`, with `@$myorigin` added to a bare name.
    pub double_bounce_recipient: String,
    /// `double_bounce_sender@$myorigin`.
    pub double_bounce_sender: String,
    /// `undeliverable_bounce_hold_limit`.
    pub bounce_hold_limit: usize,
    /// `mta_sts_enable`, `mta_sts_cache_size`, `mta_sts_*_timeout`.
    pub sts: crate::mtasts::StsSettings,
    /// `smtp_tlsrpt_enable`: look up recipient domains' TLSRPT records and
    /// report TLS attempts to them.
    pub tlsrpt_enable: bool,
}

/// `name` with `@origin` added when it has no domain (Postfix's
/// append_at_myorigin for the addresses it makes itself).
fn qualify(name: &str, origin: &str) -> String {
    if name.is_empty() || name.contains('@') || origin.is_empty() {
        name.to_string()
    } else {
        format!("{name}@{origin}")
    }
}

/// The SMTP transport's concurrency settings (validated at load: a
/// feedback that does not parse cannot get here; 1 is Postfix's fallback).
fn concurrency_limits(cfg: &Config) -> super::concurrency::Limits {
    use super::concurrency::{Feedback, Limits};
    let int = |k: &str| u32::try_from(cfg.int(k)).unwrap_or(u32::MAX);
    let fb = |k: &str| Feedback::parse(cfg.get(k)).unwrap_or(Feedback::ONE);
    Limits {
        initial: int("smtp_initial_destination_concurrency").max(1),
        limit: int("smtp_destination_concurrency_limit"),
        positive: fb("smtp_destination_concurrency_positive_feedback"),
        negative: fb("smtp_destination_concurrency_negative_feedback"),
        cohort_limit: int("smtp_destination_concurrency_failed_cohort_limit"),
    }
}

impl Settings {
    /// Reads the settings from a validated configuration; `trust_ad` is
    /// the resolver decision of [`context`].
    pub fn from_config(cfg: &Config, trust_ad: bool) -> Settings {
        let protocols = cfg.protocols();
        Settings {
            plan: PlanSettings {
                smtp_port: u16::try_from(cfg.int("smtp_tcp_port")).unwrap_or(25),
                dns_support_level: cfg.get("smtp_dns_support_level").to_string(),
                trust_ad,
                ipv4: protocols.ipv4,
                ipv6: protocols.ipv6,
                inet_protocols: cfg.get("inet_protocols").to_string(),
                fingerprint_digest: FingerprintDigest::parse(
                    cfg.get("smtp_tls_fingerprint_digest"),
                )
                .unwrap_or(FingerprintDigest::Sha256),
                mta_sts: cfg.bool("mta_sts_enable"),
            },
            level: Level::parse(cfg.get("smtp_tls_security_level")).unwrap_or(Level::May),
            protocols: TlsVersions::parse(cfg.get("smtp_tls_protocols"))
                .unwrap_or(TlsVersions::ALL),
            mandatory_protocols: TlsVersions::parse(cfg.get("smtp_tls_mandatory_protocols"))
                .unwrap_or(TlsVersions::ALL),
            // Validated by Tables::load (start, reload, check-config).
            ciphers: cfg.get("smtp_tls_ciphers").to_string(),
            mandatory_ciphers: cfg.get("smtp_tls_mandatory_ciphers").to_string(),
            exclude_ciphers: ExcludedSuites::parse(cfg.get("smtp_tls_exclude_ciphers"))
                .unwrap_or_default(),
            mandatory_exclude_ciphers: ExcludedSuites::parse(
                cfg.get("smtp_tls_mandatory_exclude_ciphers"),
            )
            .unwrap_or_default(),
            verify_cert_match: cfg.get("smtp_tls_verify_cert_match").to_string(),
            secure_cert_match: cfg.get("smtp_tls_secure_cert_match").to_string(),
            fingerprint_cert_match: cfg.get("smtp_tls_fingerprint_cert_match").to_string(),
            connect_timeout: cfg.time("smtp_connect_timeout"),
            socketmap_timeout: cfg.time("socketmap_timeout"),
            helo_timeout: cfg.time("smtp_helo_timeout"),
            greeting_timeout: cfg
                .time("smtp_greeting_timeout")
                .min(cfg.time("smtp_helo_timeout")),
            data_done_timeout: cfg.time("smtp_data_done_timeout"),
            line_length_limit: usize::try_from(cfg.int("smtp_line_length_limit"))
                .unwrap_or(crate::smtp::dotstuff::DEFAULT_LINE_LIMIT),
            helo_name: cfg.get("smtp_helo_name").to_string(),
            tls_loglevel: cfg.int("smtp_tls_loglevel"),
            sasl_auth_enable: cfg.bool("smtp_sasl_auth_enable"),
            maximal_queue_lifetime: cfg.time("maximal_queue_lifetime"),
            minimal_backoff_time: cfg.time("minimal_backoff_time"),
            maximal_backoff_time: cfg.time("maximal_backoff_time"),
            concurrency: concurrency_limits(cfg),
            concurrency_debug: cfg.bool("destination_concurrency_feedback_debug"),
            mydestination: cfg.list("mydestination").map(str::to_string).collect(),
            relayhost: cfg.get("relayhost").to_string(),
            wrappermode: cfg.bool("smtp_tls_wrappermode"),
            myhostname: cfg.get("myhostname").to_string(),
            bounce_size_limit: usize::try_from(cfg.int("bounce_size_limit")).unwrap_or(50_000),
            sasl_auth_soft_bounce: cfg.bool("smtp_sasl_auth_soft_bounce"),
            double_bounce_recipient: qualify(
                cfg.get("2bounce_notice_recipient").trim(),
                cfg.get("myorigin"),
            ),
            double_bounce_sender: qualify(
                cfg.get("double_bounce_sender").trim(),
                cfg.get("myorigin"),
            ),
            bounce_hold_limit: usize::try_from(cfg.int("undeliverable_bounce_hold_limit"))
                .unwrap_or(20),
            sts: crate::mtasts::StsSettings::from_config(cfg),
            tlsrpt_enable: cfg.bool("smtp_tlsrpt_enable"),
        }
    }

    /// The main.cf fallbacks of the policy decision, borrowed.
    pub fn policy_defaults(&self) -> PolicyDefaults<'_> {
        PolicyDefaults {
            level: self.level,
            protocols: self.protocols,
            mandatory_protocols: self.mandatory_protocols,
            ciphers: &self.ciphers,
            mandatory_ciphers: &self.mandatory_ciphers,
            exclude_ciphers: self.exclude_ciphers,
            mandatory_exclude_ciphers: self.mandatory_exclude_ciphers,
            verify_cert_match: &self.verify_cert_match,
            secure_cert_match: &self.secure_cert_match,
            fingerprint_cert_match: &self.fingerprint_cert_match,
        }
    }
}

/// Settings and tables the deliveries read; replaced whole on reload.
pub struct Context {
    /// The configuration (for what is not outbound delivery's: local
    /// delivery, bounces' templates).
    pub cfg: Rc<Config>,
    /// The typed outbound settings.
    pub settings: Settings,
    /// Outbound tables.
    pub tables: Tables,
    /// The stub resolver.
    pub resolver: Rc<Resolver>,
    /// Connection buffers (shared with the listener).
    pub pool: Rc<BufferPool>,
    /// TLS parameters (curves, cipher order).
    pub tls: crate::tls::TlsParams,
    /// Aliases and mailboxes for `mydestination` recipients.
    pub local: crate::local::LocalDelivery,
    /// Whether the resolvers' AD bit counts for DANE (dnssec lookups on, and
    /// every resolver on loopback or in `dns_trusted_resolvers`), decided
    /// once per configuration.
    pub trust_ad: bool,
    /// Where every TLS attempt goes.
    pub reports: Rc<dyn TlsReportSink>,
    /// MTA-STS policies of recipient domains (its cache is handed from
    /// one configuration to the next on reload: `StsResolver::adopt_cache`).
    pub sts: crate::mtasts::StsResolver,
}

/// Loads what deliveries (and `tern probe`) read from `cfg`: tables,
/// resolver, TLS parameters, typed settings.
pub fn context(cfg: Rc<Config>, pool: Rc<BufferPool>) -> Result<Context, String> {
    let tables = Tables::load(&cfg).map_err(|e| e.join("\n"))?;
    let rc = match cfg.get("dns_resolvers") {
        "" => ResolverConfig::from_resolv_conf_file(Path::new("/etc/resolv.conf"))
            .map_err(|e| format!("/etc/resolv.conf: {e}"))?,
        list => ResolverConfig::from_list(list).map_err(|e| format!("dns_resolvers: {e}"))?,
    };
    let resolver = Rc::new(Resolver::new(rc));
    let named = crate::policy::dane::parse_trusted_resolvers(cfg.get("dns_trusted_resolvers"))?;
    let list = |v: &[std::net::SocketAddr]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let ad = crate::policy::dane::ad_trust(
        cfg.get("smtp_dns_support_level") == "dnssec",
        &resolver.config().servers,
        &named,
    );
    let trust_ad = ad.trusted();
    match ad {
        crate::policy::dane::AdTrust::Trusted { remote } if !remote.is_empty() => {
            log::warn!(target: "master", "warning: DNS resolver {} is not on loopback; its AD bit is trusted for DANE (dns_trusted_resolvers): the network path to it must be secure", list(&remote));
        }
        crate::policy::dane::AdTrust::Untrusted { untrusted } if !untrusted.is_empty() => {
            log::warn!(target: "master", "warning: DNS resolver {} is not on loopback and not in dns_trusted_resolvers: its AD bit is not trusted, so DANE cannot authenticate (dane acts as may, dane-only defers)", list(&untrusted));
        }
        _ => {}
    }
    let tls = crate::tls::params(&cfg)?;
    let local = crate::local::LocalDelivery::from_config(&cfg)?;
    let settings = Settings::from_config(&cfg, trust_ad);
    let sts = sts_resolver(&cfg, &settings, &tables, &resolver, &pool, &tls);
    let reports = report_sinks(&cfg, &settings);
    Ok(Context {
        cfg,
        settings,
        tables,
        resolver,
        pool,
        tls,
        local,
        trust_ad,
        reports,
        sts,
    })
}

/// Where TLS attempts go: nowhere unless `smtp_tlsrpt_enable = yes`; then
/// the TLSRPT log lines and collector datagrams (`smtp_tlsrpt_socket_name`,
/// absolute or relative to `queue_directory`). Further sinks (the daily
/// counters) join the same fan-out.
fn report_sinks(cfg: &Config, settings: &Settings) -> Rc<dyn TlsReportSink> {
    if !settings.tlsrpt_enable {
        return Rc::new(NoReports);
    }
    let socket = crate::tlsrpt::sink::socket_path(
        cfg.get("smtp_tlsrpt_socket_name"),
        Path::new(cfg.get("queue_directory")),
    );
    let sinks: Vec<Rc<dyn TlsReportSink>> =
        vec![Rc::new(crate::tlsrpt::TlsRptSink::new(socket.as_deref()))];
    Rc::new(Sinks(sinks))
}

/// The MTA-STS resolver of a configuration: fetches verify against the
/// `smtp_tls_CAfile` store; the cache is loaded from flash (not when
/// MTA-STS is off: nothing would use it).
fn sts_resolver(
    cfg: &Config,
    settings: &Settings,
    tables: &Tables,
    resolver: &Rc<Resolver>,
    pool: &Rc<BufferPool>,
    tls: &crate::tls::TlsParams,
) -> crate::mtasts::StsResolver {
    use crate::mtasts::{cache::Cache, resolver as sts, Fetcher, StsResolver};
    let s = &settings.sts;
    let fetcher = Fetcher::new(
        s.fetch.clone(),
        resolver.clone(),
        pool.clone(),
        tables.roots.clone(),
        tls.clone(),
    );
    let cache = if s.enabled {
        Cache::load(s.cache_size, sts::cache_dir(cfg), sts::unix_now())
    } else {
        Cache::new(s.cache_size, Some(sts::cache_dir(cfg)))
    };
    StsResolver::new(s.enabled, fetcher, resolver.clone(), cache)
}
