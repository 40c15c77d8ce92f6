//! What tern does with a Postfix parameter it does not implement.
//!
//! A Postfix `main.cf` must load unchanged, so every name Postfix knows is
//! accepted ([`super::postfix`]). Most of them do not matter on tern (`biff`,
//! `compatibility_level`, session caches, OpenSSL tuning): one warning line
//! says the setting has no effect. The value decides the rest: a setting
//! tern cannot honour is an **error** where ignoring it would weaken
//! security or send mail somewhere the administrator did not mean it to go,
//! and a warning otherwise. The families, and why (docs/postfix.md has the
//! administrator's version):
//!
//! | family | error when | why |
//! | --- | --- | --- |
//! | routing: `default_transport`, `relay_transport`, `local_transport`, `virtual_transport` | not Postfix's default | mail would go where tern routes it, not where the file says |
//! | routing tables and redirections: `virtual_alias_maps`, `canonical_maps`, `relocated_maps`, `sender_dependent_*`, `smtp_generic_maps`, `*_bcc_maps`, `always_bcc`, `luser_relay`, `fallback_relay`, `mailbox_command`/`_transport`, `fallback_transport` | set | ignored, mail is delivered, copied or addressed differently |
//! | filters: `content_filter`, `*_milters`, `*header_checks`, `*body_checks`, `smtpd_proxy_filter` | set | ignored, mail skips the filter (virus scan, signing, header privacy) |
//! | `disable_dns_lookups = yes` | yes | tern would look up MX records the administrator switched off (as `smtp_dns_support_level = disabled`) |
//! | TLS trust: `smtp_tls_trust_anchor_file`, `smtp_tls_per_site` | set | tern would trust the whole CA bundle / ignore per-site TLS requirements |
//! | `smtp_enforce_tls = yes`, `smtpd_enforce_tls = yes` | yes, and the `*_tls_security_level` it stands for is not set | Postfix's obsolete switches; tern's level defaults (`may`) are weaker |
//! | `smtpd_tls_req_ccert = yes` | yes | clients without a certificate would be accepted |
//! | `smtpd_tls_chain_files` | set | the server would have no certificate: inbound mail in clear text |
//!
//! Everything else is a warning: the setting has no effect (session caches,
//! cipher lists tern's TLS library does not use, `smtp_tls_CApath` next to
//! the CA file, `smtp_tls_servername` and `smtp_tls_connection_reuse`, which
//! tern always does, SASL options where tern's client is stricter, SMTP
//! restriction lists where tern's built-in rule applies, ...).

/// The verdict on one Postfix-only setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// True when the configuration must be refused.
    pub error: bool,
    /// What the setting does on tern, and what to do instead (after
    /// `name = value: `).
    pub message: String,
}

fn warn(why: &str) -> Judgement {
    Judgement {
        error: false,
        message: format!("has no effect on tern: {why}"),
    }
}

fn refuse(why: &str) -> Judgement {
    Judgement {
        error: true,
        message: format!("not supported: {why}"),
    }
}

/// Judges `name = value` for a Postfix parameter tern does not implement.
/// `value` is the raw value as written; `postfix_default` its Postfix
/// default (raw); `is_set` says whether the file sets another parameter.
pub fn judge(
    name: &str,
    value: &str,
    postfix_default: &str,
    is_set: &dyn Fn(&str) -> bool,
) -> Judgement {
    let value = value.trim();
    let yes = super::parse_bool(value) == Some(true);
    // An empty value or Postfix's own default never asks for anything.
    let active = !value.is_empty() && value != postfix_default;
    match name {
        "default_transport" | "relay_transport" | "local_transport" | "virtual_transport"
            if active =>
        {
            refuse("tern routes mail by relayhost, transport_maps, mydestination and virtual_mailbox_maps only; remove it, or use transport_maps")
        }
        "virtual_alias_maps"
        | "virtual_alias_domains"
        | "virtual_maps"
        | "canonical_maps"
        | "relocated_maps"
        | "sender_dependent_relayhost_maps"
        | "sender_dependent_default_transport_maps"
        | "smtp_generic_maps"
        | "recipient_bcc_maps"
        | "sender_bcc_maps"
        | "always_bcc"
        | "luser_relay"
        | "fallback_relay"
        | "smtp_fallback_relay"
        | "mailbox_command"
        | "mailbox_command_maps"
        | "mailbox_transport"
        | "mailbox_transport_maps"
        | "fallback_transport"
        | "fallback_transport_maps"
            if active =>
        {
            refuse("tern would ignore it and deliver, copy or address mail differently; remove it (tern has sender_canonical_maps, recipient_canonical_maps, aliases and transport_maps)")
        }
        "content_filter"
        | "smtpd_proxy_filter"
        | "smtpd_milters"
        | "non_smtpd_milters"
        | "header_checks"
        | "mime_header_checks"
        | "nested_header_checks"
        | "body_checks"
        | "smtp_header_checks"
        | "smtp_mime_header_checks"
        | "smtp_nested_header_checks"
        | "smtp_body_checks"
            if active =>
        {
            refuse("tern has no content filters or milters; mail would skip the filter")
        }
        "disable_dns_lookups" if yes => refuse(
            "tern always uses DNS (MX records) for delivery, as smtp_dns_support_level = disabled is refused; use relayhost = [host] to send without MX lookups",
        ),
        "smtp_tls_trust_anchor_file" if active => refuse(
            "tern would trust the whole smtp_tls_CAfile instead; put the anchors in smtp_tls_CAfile, or use tafile= in smtp_tls_policy_maps",
        ),
        "smtp_tls_per_site" if active => refuse(
            "obsolete since Postfix 2.3 and not read by tern; move the entries to smtp_tls_policy_maps",
        ),
        "smtp_enforce_tls" if yes && !is_set("smtp_tls_security_level") => refuse(
            "obsolete; tern's default smtp_tls_security_level = may would be weaker: set smtp_tls_security_level = verify (or encrypt with smtp_tls_enforce_peername = no)",
        ),
        "smtpd_enforce_tls" if yes && !is_set("smtpd_tls_security_level") => refuse(
            "obsolete; tern's default smtpd_tls_security_level = may would accept mail in clear text: set smtpd_tls_security_level = encrypt",
        ),
        "smtpd_tls_req_ccert" if yes => refuse(
            "tern does not verify client certificates, so clients without one would be accepted",
        ),
        "smtpd_tls_chain_files" if active => refuse(
            "tern reads its server certificate from smtpd_tls_cert_file/smtpd_tls_key_file (and smtpd_tls_eccert_file/smtpd_tls_eckey_file); without them it has no certificate and receives in clear text",
        ),
        "smtp_tls_CApath" | "tls_append_default_CA" => {
            warn("tern trusts the CA certificates in smtp_tls_CAfile (and tafile= of policy entries) only")
        }
        "smtp_tls_servername" => warn("tern always sends SNI: the MX host name, or servername= of the policy entry"),
        "smtp_tls_connection_reuse" => {
            warn("tern always reuses connections, with TLS too (connection_reuse=no in a policy entry turns it off)")
        }
        "smtp_sasl_security_options" | "smtp_sasl_tls_security_options" | "smtp_sasl_mechanism_filter" => {
            warn("tern authenticates only over TLS, with PLAIN or LOGIN")
        }
        "smtp_use_tls" | "smtp_enforce_tls" | "smtp_tls_enforce_peername" => {
            warn("obsolete; smtp_tls_security_level decides")
        }
        "smtpd_use_tls" | "smtpd_enforce_tls" => warn("obsolete; smtpd_tls_security_level decides"),
        "relay_domains" | "relay_recipient_maps" => warn(
            "tern relays only for mynetworks and SMTP AUTH clients and receives for mydestination and virtual_mailbox_maps",
        ),
        "smtpd_relay_restrictions"
        | "smtpd_recipient_restrictions"
        | "smtpd_client_restrictions"
        | "smtpd_helo_restrictions"
        | "smtpd_sender_restrictions"
        | "smtpd_data_restrictions"
        | "smtpd_end_of_data_restrictions"
        | "smtpd_etrn_restrictions" => warn(
            "tern's built-in rule applies: relay for mynetworks and SMTP AUTH clients (permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination)",
        ),
        "smtpd_sasl_auth_enable" | "smtpd_sasl_type" | "smtpd_sasl_path" | "smtpd_sasl_security_options" => {
            warn("tern offers SMTP AUTH when smtpd_sasl_password_file is set (see tern passwd)")
        }
        "alias_database" => warn("tern reads alias_maps as text; there is no database to build"),
        "recipient_delimiter" => warn(
            "addresses with an extension (user+ext) are not split: each must exist as written, e.g. as an alias",
        ),
        "mailbox_size_limit" => warn("tern delivers to Maildir, without a mailbox size limit"),
        n if n.contains("session_cache") => warn("tern keeps no TLS session cache"),
        n if n.starts_with("tls_") || n.starts_with("smtpd_tls_") || n.starts_with("smtp_tls_") => {
            warn("tern's TLS library (rustls) has its own cipher and protocol choices")
        }
        _ => warn("not implemented"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(name: &str, value: &str) -> Judgement {
        let d = super::super::postfix::default_of(name).unwrap();
        judge(name, value, d, &|_| false)
    }

    #[test]
    fn harmless_settings_warn() {
        for (n, v) in [
            ("biff", "no"),
            ("append_dot_mydomain", "no"),
            ("compatibility_level", "3.6"),
            ("readme_directory", "no"),
            (
                "smtp_tls_session_cache_database",
                "btree:${data_directory}/smtp_scache",
            ),
            ("smtpd_tls_dh1024_param_file", "/etc/ssl/dh.pem"),
            ("smtpd_tls_eecdh_grade", "strong"),
            ("tls_preempt_cipherlist", "yes"),
            ("tls_ssl_options", "NO_RENEGOTIATION"),
            ("smtpd_tls_mandatory_ciphers", "high"),
            ("smtpd_tls_ciphers", "high"),
            ("smtp_tls_servername", "hostname"),
            ("smtp_tls_connection_reuse", "yes"),
            ("smtp_sasl_security_options", "noanonymous"),
            ("smtp_tls_CApath", "/etc/ssl/certs"),
            (
                "smtpd_relay_restrictions",
                "permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
            ),
            ("default_transport", "smtp"),
            ("smtp_enforce_tls", "no"),
            ("content_filter", ""),
        ] {
            let r = j(n, v);
            assert!(!r.error, "{n} = {v}: {r:?}");
            assert!(
                r.message.starts_with("has no effect on tern: "),
                "{n}: {r:?}"
            );
        }
    }

    #[test]
    fn settings_that_would_weaken_security_or_misroute_are_errors() {
        for (n, v) in [
            ("default_transport", "error:outbound mail disabled"),
            ("virtual_alias_maps", "hash:/etc/postfix/virtual"),
            ("content_filter", "amavis:[127.0.0.1]:10024"),
            ("smtpd_milters", "inet:localhost:8891"),
            ("disable_dns_lookups", "yes"),
            ("smtp_tls_trust_anchor_file", "/etc/postfix/ta.pem"),
            ("smtp_tls_per_site", "hash:/etc/postfix/tls_per_site"),
            ("smtp_enforce_tls", "yes"),
            ("smtpd_enforce_tls", "yes"),
            ("smtpd_tls_req_ccert", "yes"),
            ("smtpd_tls_chain_files", "/etc/ssl/chain.pem"),
            ("mailbox_command", "procmail -a \"$EXTENSION\""),
        ] {
            let r = j(n, v);
            assert!(r.error, "{n} = {v}: {r:?}");
            assert!(r.message.starts_with("not supported: "), "{n}: {r:?}");
        }
        // The obsolete switch is harmless when the level itself is set.
        let d = super::super::postfix::default_of("smtp_enforce_tls").unwrap();
        let r = judge("smtp_enforce_tls", "yes", d, &|n| {
            n == "smtp_tls_security_level"
        });
        assert!(!r.error, "{r:?}");
    }
}
