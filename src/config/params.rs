//! The table of every configuration parameter tern knows: name, default,
//! value kind and one line of meaning. `config/tern.conf` is checked against
//! this table by a test, so the example file and the code cannot drift.

/// What kind of value a parameter takes; used to validate at load time so
/// that typed accessors never fail later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// `yes` or `no`.
    Bool,
    /// A non-negative integer.
    Int,
    /// A time with a unit suffix (`s`, `m`, `h`, `d`, `w`); the char is the
    /// unit assumed when none is given, as Postfix does per parameter.
    Time(char),
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// A list separated by commas and/or whitespace.
    List,
    /// A list of networks (`127.0.0.0/8`, `[::1]/128`, bare addresses).
    Networks,
    /// Listener addresses: `ip:port`, `[ipv6]:port`, or a bare `port`.
    Listen,
    /// A lookup table in `type:path` form (`texthash:/etc/tern/tls_policy`).
    Maps,
    /// A next hop such as `[smtp.example.com]:587` (empty allowed).
    NextHop,
}

/// One known parameter.
#[derive(Debug)]
pub struct Param {
    /// The parameter name, Postfix's where the meaning is the same.
    pub name: &'static str,
    /// Default value, before `$name` expansion. `@host` marks a default
    /// computed at run time (see `Config::computed_default`).
    pub default: &'static str,
    /// Value kind.
    pub kind: Kind,
    /// One-line meaning, printed by `tern config -d`.
    pub doc: &'static str,
}

const LEVELS: &[&str] = &[
    "none",
    "may",
    "encrypt",
    "dane",
    "dane-only",
    "fingerprint",
    "verify",
    "secure",
];

macro_rules! p {
    ($name:literal, $default:literal, $kind:expr, $doc:literal) => {
        Param {
            name: $name,
            default: $default,
            kind: $kind,
            doc: $doc,
        }
    };
}

/// Every parameter, sorted by name (binary-searched by `lookup`).
pub static PARAMS: &[Param] = &[
    p!(
        "2bounce_notice_recipient",
        "postmaster",
        Kind::Text,
        "who gets a bounce that could not be delivered (Postfix's double bounce); @$myorigin is added to a bare name"
    ),
    p!(
        "alias_maps",
        "texthash:/etc/tern/aliases",
        Kind::Maps,
        "aliases(5) tables for local recipients"
    ),
    p!(
        "allow_mail_to_commands",
        "no",
        Kind::Bool,
        "let aliases deliver to |commands (not supported yet: yes is a configuration error)"
    ),
    p!(
        "allow_mail_to_files",
        "no",
        Kind::Bool,
        "let aliases deliver to /file/names (not supported yet: yes is a configuration error)"
    ),
    p!(
        "anvil_rate_time_unit",
        "60s",
        Kind::Time('s'),
        "the time unit of the smtpd_client_*_rate_limit counters"
    ),
    p!(
        "append_at_myorigin",
        "yes",
        Kind::Bool,
        "append @$myorigin to unqualified addresses at queue entry"
    ),
    p!(
        "bounce_size_limit",
        "50000",
        Kind::Int,
        "bytes of the original message returned in a bounce"
    ),
    p!(
        "default_destination_concurrency_failed_cohort_limit",
        "1",
        Kind::Int,
        "failed sessions, in windows' worth without a delivery between them, after which a destination is suspended (0: never)"
    ),
    p!(
        "default_destination_concurrency_limit",
        "20",
        Kind::Int,
        "most sessions open to one destination; the window grows toward it while mail waits (0: no limit but max_connections)"
    ),
    p!(
        "default_destination_concurrency_negative_feedback",
        "1",
        Kind::Text,
        "window decrease per failed session: N, N/M, N/concurrency or N/sqrt_concurrency, from 0 to 1"
    ),
    p!(
        "default_destination_concurrency_positive_feedback",
        "1",
        Kind::Text,
        "window increase per delivery: N, N/M, N/concurrency or N/sqrt_concurrency, from 0 to 1"
    ),
    p!(
        "destination_concurrency_feedback_debug",
        "no",
        Kind::Bool,
        "log each destination's window after every change (Postfix's qmgr_queue_throttle/unthrottle lines)"
    ),
    p!(
        "dns_resolvers",
        "",
        Kind::List,
        "resolver addresses (ip or ip:port); empty: /etc/resolv.conf"
    ),
    p!(
        "dns_trusted_resolvers",
        "",
        Kind::List,
        "resolvers not on loopback whose AD bit DANE trusts (ip or ip:port, as in dns_resolvers); loopback is always trusted"
    ),
    p!(
        "double_bounce_sender",
        "double-bounce",
        Kind::Text,
        "sender (local part, @$myorigin added) of double bounces to the postmaster"
    ),
    p!(
        "home_mailbox",
        "Maildir/",
        Kind::Text,
        "mailbox below a local user's home directory"
    ),
    p!(
        "inet_interfaces",
        "all",
        Kind::List,
        "addresses that bare-port listeners (the default smtp_listen = 25) bind: all, loopback-only, or IP addresses"
    ),
    p!(
        "inet_protocols",
        "all",
        Kind::List,
        "IP versions for listeners and delivery: all (IPv6 only where the host has it), ipv4, ipv6, or \"ipv4, ipv6\""
    ),
    p!(
        "initial_destination_concurrency",
        "5",
        Kind::Int,
        "sessions a destination may have before any feedback (lowered to the limit)"
    ),
    p!(
        "line_length_limit",
        "2048",
        Kind::Int,
        "longest SMTP command line accepted (512 to 4094; outside is a config error)"
    ),
    p!(
        "local_header_rewrite_clients",
        "permit_inet_interfaces",
        Kind::List,
        "SMTP clients whose header addresses are rewritten and whose missing From:, Date:, Message-Id: are added: permit_inet_interfaces, permit_mynetworks, permit_sasl_authenticated, static:all, or empty"
    ),
    p!(
        "mail_name",
        "tern",
        Kind::Text,
        "the name in the SMTP greeting and Received headers"
    ),
    p!(
        "mail_owner",
        "tern",
        Kind::Text,
        "user the daemon runs as after binding ports when started as root"
    ),
    p!(
        "maillog_file",
        "",
        Kind::Text,
        "also write log lines to this file (empty: syslog only)"
    ),
    p!(
        "masquerade_domains",
        "",
        Kind::List,
        "addresses in subdomains of these become the domain, in the envelope sender and all address headers (!domain: exception)"
    ),
    p!(
        "max_connections",
        "32",
        Kind::Int,
        "inbound plus outbound sessions; sizes the buffer pool"
    ),
    p!(
        "maximal_backoff_time",
        "4000s",
        Kind::Time('s'),
        "longest wait between delivery attempts"
    ),
    p!(
        "maximal_queue_lifetime",
        "5d",
        Kind::Time('d'),
        "how long a message may stay queued before it bounces"
    ),
    p!(
        "message_size_limit",
        "10240000",
        Kind::Int,
        "largest message accepted, in bytes"
    ),
    p!(
        "minimal_backoff_time",
        "300s",
        Kind::Time('s'),
        "shortest wait between delivery attempts"
    ),
    p!(
        "mta_sts_cache_size",
        "100",
        Kind::Int,
        "most MTA-STS policies cached (in memory and as one small file each under $queue_directory/mta-sts); when full, expired and testing policies go first"
    ),
    p!(
        "mta_sts_connect_timeout",
        "10s",
        Kind::Time('s'),
        "TCP connect timeout per address of an MTA-STS policy fetch (https://mta-sts.DOMAIN/)"
    ),
    p!(
        "mta_sts_enable",
        "yes",
        Kind::Bool,
        "MTA-STS (RFC 8461) for outbound MX delivery: discover, fetch and cache recipient domains' policies"
    ),
    p!(
        "mta_sts_read_timeout",
        "20s",
        Kind::Time('s'),
        "time limit for the TLS handshake, request and whole response of an MTA-STS policy fetch"
    ),
    p!(
        "mydestination",
        "$myhostname, localhost.$mydomain, localhost",
        Kind::List,
        "domains delivered locally"
    ),
    p!(
        "mydomain",
        "@host",
        Kind::Text,
        "the internet domain of this host (default: myhostname minus its first label)"
    ),
    p!(
        "myhostname",
        "@host",
        Kind::Text,
        "the fully qualified host name (default: the system's)"
    ),
    p!(
        "mynetworks",
        "127.0.0.0/8 [::1]/128",
        Kind::Networks,
        "clients allowed to relay without AUTH"
    ),
    p!(
        "myorigin",
        "$myhostname",
        Kind::Text,
        "domain appended to unqualified addresses"
    ),
    p!(
        "queue_directory",
        "/var/spool/tern",
        Kind::Text,
        "the spool, on flash"
    ),
    p!(
        "queue_minfree",
        "0",
        Kind::Int,
        "free bytes the spool's file system must keep: smtpd answers 452 4.3.1 at MAIL FROM below it (or below 1.5 x message_size_limit), sendmail exits 75"
    ),
    p!(
        "queue_run_delay",
        "300s",
        Kind::Time('s'),
        "how often the queue is scanned for due messages"
    ),
    p!(
        "queue_sync_delay",
        "10s",
        Kind::Time('s'),
        "longest time a removal, deferral or delivery record stays unsynced when no message arrives to sync it with (one syncfs then); bounds how many deliveries a power cut can make tern repeat (tern only; docs/spool.md)"
    ),
    p!(
        "recipient_canonical_maps",
        "",
        Kind::Maps,
        "canonical(5) tables for envelope and header recipient addresses"
    ),
    p!(
        "relayhost",
        "",
        Kind::NextHop,
        "smarthost for all remote mail: [host]:port, host:port (MX lookup) or empty"
    ),
    p!(
        "sender_canonical_maps",
        "",
        Kind::Maps,
        "canonical(5) tables for envelope and header sender addresses"
    ),
    p!(
        "smtp_connect_timeout",
        "30s",
        Kind::Time('s'),
        "time limit for connecting to a remote server"
    ),
    p!(
        "smtp_data_done_timeout",
        "600s",
        Kind::Time('s'),
        "time limit for the reply to the end of data"
    ),
    p!(
        "smtp_destination_concurrency_failed_cohort_limit",
        "$default_destination_concurrency_failed_cohort_limit",
        Kind::Int,
        "default_destination_concurrency_failed_cohort_limit for SMTP delivery"
    ),
    p!(
        "smtp_destination_concurrency_limit",
        "$default_destination_concurrency_limit",
        Kind::Int,
        "default_destination_concurrency_limit for SMTP delivery"
    ),
    p!(
        "smtp_destination_concurrency_negative_feedback",
        "$default_destination_concurrency_negative_feedback",
        Kind::Text,
        "default_destination_concurrency_negative_feedback for SMTP delivery"
    ),
    p!(
        "smtp_destination_concurrency_positive_feedback",
        "$default_destination_concurrency_positive_feedback",
        Kind::Text,
        "default_destination_concurrency_positive_feedback for SMTP delivery"
    ),
    p!(
        "smtp_dns_support_level",
        "dnssec",
        Kind::Enum(&["enabled", "dnssec"]),
        "dnssec: trust the resolver's AD bit for DANE; enabled: no DNSSEC (Postfix's disabled is refused)"
    ),
    p!(
        "smtp_greeting_timeout",
        "30s",
        Kind::Time('s'),
        "time limit for the first byte of the server's greeting (at most smtp_helo_timeout); silence usually means an implicit-TLS port without smtp_tls_wrappermode"
    ),
    p!(
        "smtp_helo_name",
        "$myhostname",
        Kind::Text,
        "name sent in EHLO"
    ),
    p!(
        "smtp_helo_timeout",
        "300s",
        Kind::Time('s'),
        "time limit for the greeting and EHLO replies"
    ),
    p!(
        "smtp_initial_destination_concurrency",
        "$initial_destination_concurrency",
        Kind::Int,
        "initial_destination_concurrency for SMTP delivery"
    ),
    p!(
        "smtp_line_length_limit",
        "998",
        Kind::Int,
        "longest message line sent via SMTP, without CRLF; longer lines are broken by inserting CRLF SPACE; 0: no limit"
    ),
    p!(
        "smtp_listen",
        "25",
        Kind::Listen,
        "MTA listener (port 25 service): a bare port binds the inet_interfaces addresses; ip:port and [ipv6]:port entries bind just that address"
    ),
    p!(
        "smtp_sasl_auth_enable",
        "no",
        Kind::Bool,
        "authenticate to servers listed in smtp_sasl_password_maps"
    ),
    p!(
        "smtp_sasl_auth_soft_bounce",
        "yes",
        Kind::Bool,
        "defer (yes) or bounce (no) mail when the server rejects tern's AUTH with a 5xx reply"
    ),
    p!(
        "smtp_sasl_password_maps",
        "",
        Kind::Maps,
        "[host]:port user:password table for the SMTP client"
    ),
    p!(
        "smtp_tcp_port",
        "25",
        Kind::Int,
        "port used for MX delivery"
    ),
    p!(
        "smtp_tls_CAfile",
        "/etc/ssl/certs/ca-certificates.crt",
        Kind::Text,
        "trusted CAs for the verify and secure levels"
    ),
    p!(
        "smtp_tls_ciphers",
        "medium",
        Kind::Text,
        "minimum cipher grade at the may level (high, medium, low, export; null is refused)"
    ),
    p!(
        "smtp_tls_exclude_ciphers",
        "",
        Kind::List,
        "OpenSSL cipher names or aliases not offered at any level (TLS 1.2 suites)"
    ),
    p!(
        "smtp_tls_fingerprint_cert_match",
        "",
        Kind::List,
        "fingerprints for the fingerprint level"
    ),
    p!(
        "smtp_tls_fingerprint_digest",
        "sha256",
        Kind::Enum(&["sha256", "sha512"]),
        "digest for the fingerprint level"
    ),
    p!(
        "smtp_tls_loglevel",
        "1",
        Kind::Int,
        "0: no TLS logging, 1: one line per handshake, 2: more"
    ),
    p!(
        "smtp_tls_mandatory_ciphers",
        "medium",
        Kind::Text,
        "minimum cipher grade at encrypt and above"
    ),
    p!(
        "smtp_tls_mandatory_exclude_ciphers",
        "",
        Kind::List,
        "ciphers also not offered at encrypt and above"
    ),
    p!(
        "smtp_tls_mandatory_protocols",
        ">=TLSv1.2",
        Kind::List,
        "TLS versions at encrypt and above"
    ),
    p!(
        "smtp_tls_policy_maps",
        "",
        Kind::Maps,
        "per-destination TLS policy table, Postfix tls_policy format"
    ),
    p!(
        "smtp_tls_protocols",
        ">=TLSv1.2",
        Kind::List,
        "TLS versions at the may level"
    ),
    p!(
        "smtp_tls_secure_cert_match",
        "nexthop, dot-nexthop",
        Kind::List,
        "names checked at the secure level"
    ),
    p!(
        "smtp_tls_security_level",
        "may",
        Kind::Enum(LEVELS),
        "default outbound TLS level"
    ),
    p!(
        "smtp_tls_verify_cert_match",
        "hostname",
        Kind::List,
        "names checked at the verify level"
    ),
    p!(
        "smtp_tls_wrappermode",
        "no",
        Kind::Bool,
        "implicit TLS (RFC 8314) to the relayhost and smtp:/relay: transport next hops, any port (not MX delivery); smtps: entries and port 465 always use it"
    ),
    p!(
        "smtp_tlsrpt_builtin_reports",
        "auto",
        Kind::Enum(&["auto", "yes", "no"]),
        "tern's own TLSRPT counters and daily reports (auto: when no smtp_tlsrpt_socket_name is set)"
    ),
    p!(
        "smtp_tlsrpt_checkpoint_interval",
        "1h",
        Kind::Time('s'),
        "how often changed TLSRPT counters are saved to $queue_directory/tlsrpt/counters (a reboot loses at most this much)"
    ),
    p!(
        "smtp_tlsrpt_contact_info",
        "postmaster@$myorigin",
        Kind::Text,
        "contact-info of TLSRPT reports"
    ),
    p!(
        "smtp_tlsrpt_dkim_domain",
        "",
        Kind::Text,
        "DKIM d= of TLSRPT report messages (empty: the report sender's domain)"
    ),
    p!(
        "smtp_tlsrpt_dkim_key_file",
        "",
        Kind::Text,
        "PEM private key (RSA or Ed25519) that signs TLSRPT report messages (empty: unsigned, logged)"
    ),
    p!(
        "smtp_tlsrpt_dkim_selector",
        "",
        Kind::Text,
        "DKIM s= of TLSRPT report messages"
    ),
    p!(
        "smtp_tlsrpt_enable",
        "no",
        Kind::Bool,
        "TLSRPT (RFC 8460) events for recipient domains that publish a _smtp._tls record: Postfix 3.10's `TLSRPT: status=...` log lines, datagrams to smtp_tlsrpt_socket_name"
    ),
    p!(
        "smtp_tlsrpt_max_domains",
        "100",
        Kind::Int,
        "most policy domains counted per day for TLSRPT reports; further new domains are logged and not counted"
    ),
    p!(
        "smtp_tlsrpt_organization_name",
        "$myorigin",
        Kind::Text,
        "organization-name of TLSRPT reports"
    ),
    p!(
        "smtp_tlsrpt_report_sender",
        "noreply-smtp-tls-reporting@$myorigin",
        Kind::Text,
        "envelope sender and From: of TLSRPT report messages; its domain is the report submitter"
    ),
    p!(
        "smtp_tlsrpt_skip_reused_handshakes",
        "yes",
        Kind::Bool,
        "accepted for Postfix 3.10 compatibility, no effect: tern never resumes a TLS session (every new connection has a full handshake, which is reported)"
    ),
    p!(
        "smtp_tlsrpt_socket_name",
        "",
        Kind::Text,
        "unix datagram socket of sys4's TLSRPT report generator (tlsrpt-collectd), absolute or relative to queue_directory; empty: no datagrams"
    ),
    p!(
        "smtpd_auth_check_rate_limit",
        "4",
        Kind::Int,
        "password (PBKDF2) checks that may start per second, all clients together; AUTH beyond it gets 454 4.7.0 Temporary authentication failure instead of waiting, so checks take a bounded share of the one thread (0: no limit; tern only; see the board profiles for the cost of a check)"
    ),
    p!(
        "smtpd_auth_failure_delay_ms",
        "1000",
        Kind::Int,
        "milliseconds to wait before answering a failed AUTH, times the failures of that client address in the current anvil_rate_time_unit (at most 10 times; a timer, other sessions go on; 0: no wait; tern only)"
    ),
    p!(
        "smtpd_banner",
        "$myhostname ESMTP $mail_name",
        Kind::Text,
        "text after 220 in the greeting"
    ),
    p!(
        "smtpd_client_auth_failure_limit",
        "10",
        Kind::Int,
        "failed AUTH attempts one client address may make per anvil_rate_time_unit, over all its sessions; beyond it AUTH is refused (454 4.7.0) without a password check (0: no limit; tern only)"
    ),
    p!(
        "smtpd_client_auth_rate_limit",
        "0",
        Kind::Int,
        "AUTH commands one client address may send per anvil_rate_time_unit (0: no limit)"
    ),
    p!(
        "smtpd_client_connection_count_limit",
        "8",
        Kind::Int,
        "simultaneous connections from one client address (0: no limit); when not set: max_connections/4, at least 2"
    ),
    p!(
        "smtpd_client_connection_rate_limit",
        "0",
        Kind::Int,
        "connections one client address may open per anvil_rate_time_unit (0: no limit)"
    ),
    p!(
        "smtpd_client_event_limit_exceptions",
        "$mynetworks",
        Kind::Networks,
        "clients the smtpd_client_*_limit settings do not apply to"
    ),
    p!(
        "smtpd_client_message_rate_limit",
        "0",
        Kind::Int,
        "MAIL FROM requests one client address may send per anvil_rate_time_unit (0: no limit)"
    ),
    p!(
        "smtpd_forbid_bare_newline",
        "normalize",
        Kind::Enum(&["normalize", "reject", "no"]),
        "bare LF in commands and DATA: normalize to CRLF, or reject"
    ),
    p!(
        "smtpd_forbid_unauth_pipelining",
        "yes",
        Kind::Bool,
        "disconnect clients that pipeline where RFC 2920 forbids it (554 5.5.0 Error: SMTP protocol synchronization)"
    ),
    p!(
        "smtpd_hard_error_limit",
        "20",
        Kind::Int,
        "errors before a client is disconnected"
    ),
    p!(
        "smtpd_junk_command_limit",
        "100",
        Kind::Int,
        "HELO, EHLO, RSET, NOOP, VRFY, HELP beyond this many count as errors"
    ),
    p!(
        "smtpd_recipient_limit",
        "1000",
        Kind::Int,
        "recipients per message"
    ),
    p!(
        "smtpd_recipient_overshoot_limit",
        "1000",
        Kind::Int,
        "recipients beyond smtpd_recipient_limit answered 452 before each counts as an error"
    ),
    p!(
        "smtpd_sasl_password_file",
        "",
        Kind::Text,
        "users and salted hashes for SMTP AUTH (empty: AUTH off)"
    ),
    p!(
        "smtpd_soft_error_limit",
        "10",
        Kind::Int,
        "errors before replies are delayed"
    ),
    p!(
        "smtpd_stress_hard_error_limit",
        "1",
        Kind::Int,
        "smtpd_hard_error_limit of sessions that start in stress mode (Postfix: ${stress?{1}:{20}})"
    ),
    p!(
        "smtpd_stress_threshold",
        "80",
        Kind::Int,
        "stress mode starts when more than this percentage of max_connections slots is in use, and ends at half of it"
    ),
    p!(
        "smtpd_stress_timeout",
        "10s",
        Kind::Time('s'),
        "in stress mode, the time a client has for each whole command line (Postfix: ${stress?{10}:{300}}s with smtpd_per_record_deadline)"
    ),
    p!(
        "smtpd_timeout",
        "300s",
        Kind::Time('s'),
        "idle time limit for a client"
    ),
    p!(
        "smtpd_tls_ask_ccert",
        "no",
        Kind::Bool,
        "ask clients for a certificate (optional for them; logged, not verified)"
    ),
    p!(
        "smtpd_tls_auth_only",
        "yes",
        Kind::Bool,
        "offer AUTH only over TLS"
    ),
    p!(
        "smtpd_tls_cert_file",
        "",
        Kind::Text,
        "server certificate chain (PEM; RSA)"
    ),
    p!(
        "smtpd_tls_eccert_file",
        "",
        Kind::Text,
        "second server certificate chain (PEM; ECDSA)"
    ),
    p!(
        "smtpd_tls_eckey_file",
        "$smtpd_tls_eccert_file",
        Kind::Text,
        "key of the ECDSA certificate"
    ),
    p!(
        "smtpd_tls_key_file",
        "$smtpd_tls_cert_file",
        Kind::Text,
        "key of the RSA certificate"
    ),
    p!(
        "smtpd_tls_loglevel",
        "1",
        Kind::Int,
        "0: no TLS logging, 1: one line per handshake"
    ),
    p!(
        "smtpd_tls_mandatory_protocols",
        ">=TLSv1.2",
        Kind::List,
        "TLS versions on port 465 and with smtpd_tls_security_level = encrypt"
    ),
    p!(
        "smtpd_tls_protocols",
        ">=TLSv1.2",
        Kind::List,
        "TLS versions offered with STARTTLS (Postfix syntax: >=TLSv1.2, !TLSv1.2)"
    ),
    p!(
        "smtpd_tls_received_header",
        "yes",
        Kind::Bool,
        "TLS details as a comment in the Received header"
    ),
    p!(
        "smtpd_tls_security_level",
        "may",
        Kind::Enum(&["none", "may", "encrypt"]),
        "inbound TLS: none, may (offer STARTTLS), encrypt (require it)"
    ),
    p!(
        "smtpd_total_time_limit",
        "1800s",
        Kind::Time('s'),
        "longest a client session may last"
    ),
    p!(
        "socketmap_timeout",
        "100s",
        Kind::Time('s'),
        "time limit for one socketmap: lookup (connect, request and reply); Postfix's built-in limit"
    ),
    p!(
        "submission_listen",
        "",
        Kind::Listen,
        "STARTTLS submission listeners (AUTH required), e.g. 587"
    ),
    p!(
        "submissions_listen",
        "",
        Kind::Listen,
        "implicit-TLS submission listeners (RFC 8314), e.g. 465"
    ),
    p!(
        "syslog_facility",
        "mail",
        Kind::Enum(&[
            "mail", "daemon", "user", "local0", "local1", "local2", "local3", "local4", "local5",
            "local6", "local7"
        ]),
        "syslog facility"
    ),
    p!(
        "syslog_level",
        "info",
        Kind::Enum(&["error", "warn", "info", "debug", "trace", "off"]),
        "lowest severity logged"
    ),
    p!(
        "syslog_name",
        "tern",
        Kind::Text,
        "program name in log lines (tern/smtpd[pid])"
    ),
    p!(
        "syslog_server",
        "",
        Kind::Text,
        "host:port of a UDP syslog collector (empty: local socket); see syslog_server_format"
    ),
    p!(
        "syslog_server_format",
        "rfc5424",
        Kind::Enum(&["rfc5424", "rfc3164"]),
        "what is sent to syslog_server: RFC 5424, or RFC 3164 (Mmm dd hh:mm:ss host tern/smtpd[pid]: ...) for receivers that write the traditional format, such as rsyslog's default file template"
    ),
    p!(
        "syslog_socket",
        "/dev/log",
        Kind::Text,
        "local syslog socket (RFC 3164)"
    ),
    p!(
        "tls_cipher_preference",
        "aes",
        Kind::Enum(&["aes", "chacha20"]),
        "AES-GCM first, or ChaCha20-Poly1305 first (boards without AES instructions)"
    ),
    p!(
        "tls_eecdh_auto_curves",
        "X25519 X25519MLKEM768 prime256v1 secp384r1",
        Kind::List,
        "key exchange groups, in preference order"
    ),
    p!(
        "tls_ffdhe_auto_groups",
        "",
        Kind::List,
        "FFDHE groups: not available with the aws-lc-rs provider; must stay empty"
    ),
    p!(
        "tls_wildcard_matches_multiple_labels",
        "yes",
        Kind::Bool,
        "accepted for Postfix main.cf files; as in Debian's Postfix 3.7, a certificate's *. wildcard covers exactly one label either way"
    ),
    p!(
        "transport_maps",
        "",
        Kind::Maps,
        "per-domain routes: domain smtp:[host]:port"
    ),
    p!(
        "undeliverable_bounce_hold_limit",
        "20",
        Kind::Int,
        "double bounces that could not be delivered either, kept in hold/ (mailq shows them); beyond this the oldest is discarded with a log line"
    ),
    p!(
        "virtual_mailbox_base",
        "",
        Kind::Text,
        "directory holding Maildirs of mail-only users (virtual_mailbox_maps)"
    ),
    p!(
        "virtual_mailbox_maps",
        "",
        Kind::Maps,
        "local user (user@domain or user) -> Maildir path below virtual_mailbox_base, ending in /"
    ),
];

/// Finds a parameter by name.
pub fn lookup(name: &str) -> Option<(usize, &'static Param)> {
    PARAMS
        .binary_search_by(|p| p.name.cmp(name))
        .ok()
        .map(|i| (i, &PARAMS[i]))
}

/// Parameters accepted for configurations written for later versions but
/// not acted on yet: `(name, feature)`. Loading them is not an error (a
/// newer tern.conf must still start this daemon); setting one to `yes` in
/// the file gets a warning from the daemon and `check-config`, so nobody
/// believes the feature is on. The defaults are DESIGN.md's for when the
/// features land, so they do not warn. Empty since TLSRPT
/// (`smtp_tlsrpt_enable`) landed; kept for the next such feature.
pub const RESERVED: &[(&str, &str)] = &[];

/// The warnings for reserved parameters set to `yes` in the file;
/// `explicit` returns a parameter's value if the file sets it (`None`
/// for a default). Each line starts with `warning: `, Postfix's prefix.
pub fn reserved_warnings<'a>(explicit: impl Fn(&str) -> Option<&'a str>) -> Vec<String> {
    RESERVED
        .iter()
        .filter(|(name, _)| explicit(name).and_then(super::parse_bool) == Some(true))
        .map(|(name, feature)| {
            format!(
                "warning: {name} = yes has no effect: MTA-STS / TLSRPT are not implemented (this version has no {feature} support)"
            )
        })
        .collect()
}

/// The known name closest to `name` (edit distance at most 3), for
/// "unknown parameter, did you mean ...?" messages.
///
/// tern's own names come first, so that on a tie a typo is taken for the
/// parameter tern implements rather than a Postfix-only one.
pub fn nearest(name: &str) -> Option<&'static str> {
    PARAMS
        .iter()
        .map(|p| p.name)
        .chain(super::postfix::names())
        .map(|n| (edit_distance(name, n), n))
        .filter(|(d, _)| *d <= 3.max(name.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in PARAMS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn nearest_suggests_typos() {
        assert_eq!(nearest("myhostnam"), Some("myhostname"));
        assert_eq!(
            nearest("smtp_tls_securty_level"),
            Some("smtp_tls_security_level")
        );
        assert_eq!(nearest("zzzzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn reserved_parameters_warn_only_when_set_to_yes() {
        for (name, _) in RESERVED {
            let (_, p) = lookup(name).unwrap();
            assert!(p.doc.starts_with("reserved, no effect yet"), "{name}");
        }
        // Defaults (nothing set in the file) are quiet, even `yes`.
        assert!(reserved_warnings(|_| None).is_empty());
        assert!(reserved_warnings(|_| Some("no")).is_empty());
        // mta_sts_enable and smtp_tlsrpt_enable are implemented: no
        // longer reserved, so nothing warns.
        assert!(reserved_warnings(|n| (n == "mta_sts_enable").then_some("yes")).is_empty());
        assert!(reserved_warnings(|n| (n == "smtp_tlsrpt_enable").then_some("yes")).is_empty());
        assert!(reserved_warnings(|_| Some("yes")).is_empty());
    }
}
