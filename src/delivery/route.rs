//! Where a recipient goes: transport map, then local domains, then
//! relayhost, then the recipient domain's MX hosts (Postfix's order).
//! Sans-I/O.

use crate::policy::transport::{TransportKind, TransportMap};
use crate::policy::OwnedNextHop;

/// The route of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// SMTP to this next hop (`example.com` with MX lookup, or
    /// `[host]:port` without). `relay` is true for a relayhost or a
    /// transport-map next hop (the policy key is the next hop verbatim).
    Smtp {
        /// The next hop as written (also the TLS policy table key).
        nexthop: String,
        /// Implicit TLS on every connection (`smtps:` transport, or
        /// `smtp_tls_wrappermode = yes` for a configured next hop).
        implicit_tls: bool,
    },
    /// A domain in `mydestination` (or `local:` in the transport map).
    Local,
    /// `error:` transport: bounce with this text.
    Error(String),
    /// `retry:` transport: defer with this text.
    Retry(String),
    /// `discard:` transport: drop, reporting success.
    Discard(String),
}

/// The routing inputs, from the configuration.
pub struct Router<'a> {
    /// `transport_maps`.
    pub transport: &'a [TransportMap],
    /// `mydestination`.
    pub local_domains: &'a [String],
    /// `relayhost` (empty for direct MX delivery).
    pub relayhost: &'a str,
    /// `smtp_tls_wrappermode`: implicit TLS to the relayhost and to the
    /// next hops of `smtp:`/`relay:` entries, as Postfix's main.cf setting
    /// applies to its smtp and relay transports. Not to a recipient
    /// domain's MX hosts: no MX serves implicit TLS on port 25, and tern
    /// has no master.cf to scope it further (`smtps:` does that per entry).
    pub wrappermode: bool,
}

impl Router<'_> {
    /// Routes one recipient address.
    pub fn route(&self, rcpt: &str) -> Route {
        let domain = rcpt.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let domain = domain.trim_end_matches('.');
        for map in self.transport {
            if let Some(e) = map.lookup_address(rcpt, Some('+')) {
                if e.is_broken() {
                    // The line for this key was skipped at load: routing by
                    // a less specific entry or the default route could send
                    // the mail where the administrator did not mean it to go.
                    return Route::Retry(format!(
                        "4.3.0 transport_maps entry for {} at {}:{} is malformed; fix the table",
                        e.key, e.file, e.line
                    ));
                }
                let hop = e.nexthop_text().filter(|t| !t.is_empty());
                return match e.kind() {
                    TransportKind::Smtp
                    | TransportKind::Relay
                    | TransportKind::Smtps
                    | TransportKind::Unchanged => {
                        let smtps = e.kind() == TransportKind::Smtps;
                        match hop {
                            Some(h) => Route::Smtp {
                                nexthop: h.to_string(),
                                implicit_tls: smtps || self.wrappermode,
                            },
                            // `smtps:` alone: the recipient domain's MX
                            // hosts, with implicit TLS (on port 465).
                            None if smtps => Route::Smtp {
                                nexthop: domain.to_ascii_lowercase(),
                                implicit_tls: true,
                            },
                            None => self.default_route(domain),
                        }
                    }
                    TransportKind::Error => Route::Error(
                        e.error_text()
                            .filter(|t| !t.is_empty())
                            .unwrap_or("mail for this destination is refused")
                            .to_string(),
                    ),
                    TransportKind::Retry => Route::Retry(
                        e.error_text()
                            .filter(|t| !t.is_empty())
                            .unwrap_or("delivery to this destination is postponed")
                            .to_string(),
                    ),
                    TransportKind::Local => Route::Local,
                    TransportKind::Discard => Route::Discard(
                        e.error_text()
                            .filter(|t| !t.is_empty())
                            .unwrap_or("discarded")
                            .to_string(),
                    ),
                };
            }
        }
        self.default_route(domain)
    }

    /// Can any recipient reach local delivery (`Route::Local`) with these
    /// inputs? The daemon starts the root helper that writes home Maildirs
    /// only then (docs/local.md). Conservative: true whenever some address
    /// might, judged by routing one probe address per local domain, per
    /// transport-map key (an address key as itself, a domain, `.parent`
    /// or `*` key through a made-up address it matches) and, when
    /// `bare_addresses` (`append_at_myorigin = no` leaves recipients
    /// without a domain, which route locally), one address without a
    /// domain. A probe that meets a broken entry routes `Retry`, as the
    /// real mail would.
    pub fn can_route_local(&self, bare_addresses: bool) -> bool {
        // A label no administrator writes as a key, so the probe of a
        // domain meets the domain's own entry (or `*`), never a user's.
        const PROBE: &str = "tern-local-probe";
        let local = |addr: &str| self.route(addr) == Route::Local;
        if bare_addresses && local(PROBE) {
            return true;
        }
        if self
            .local_domains
            .iter()
            .any(|d| local(&format!("{PROBE}@{d}")))
        {
            return true;
        }
        self.transport.iter().flat_map(|m| m.keys()).any(|key| {
            let addr = if key.contains('@') {
                key.to_string()
            } else if key == "*" {
                format!("{PROBE}@{PROBE}.invalid")
            } else if let Some(parent) = key.strip_prefix('.') {
                format!("{PROBE}@{PROBE}.{parent}")
            } else if key.contains('.') {
                format!("{PROBE}@{key}")
            } else if bare_addresses {
                // A bare key (`root`) matches a recipient without a domain.
                key.to_string()
            } else {
                return false;
            };
            local(&addr)
        })
    }

    fn default_route(&self, domain: &str) -> Route {
        if domain.is_empty()
            || self
                .local_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
        {
            return Route::Local;
        }
        if !self.relayhost.is_empty() {
            return Route::Smtp {
                nexthop: self.relayhost.to_string(),
                implicit_tls: self.wrappermode,
            };
        }
        Route::Smtp {
            nexthop: domain.to_ascii_lowercase(),
            implicit_tls: false,
        }
    }
}

/// Parses a next hop for connecting; errors are configuration mistakes
/// that defer the mail with the reason.
pub fn parse_nexthop(text: &str) -> Result<OwnedNextHop, String> {
    OwnedNextHop::parse(text).map_err(|e| format!("bad next hop \"{text}\": {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> TransportMap {
        TransportMap::parse(text.as_bytes(), "transport").unwrap().0
    }

    #[test]
    fn order_transport_local_relayhost_mx() {
        let t = [map("example.com smtp:[mail.example.com]:2525\n.example.com smtp:\nbad.example error:5.1.2 no thanks\nlater.example retry:4.4.1 not yet\n")];
        let local = ["box.example".to_string()];
        let r = Router {
            transport: &t,
            local_domains: &local,
            relayhost: "",
            wrappermode: false,
        };
        assert_eq!(
            r.route("a@example.com"),
            Route::Smtp {
                nexthop: "[mail.example.com]:2525".into(),
                implicit_tls: false,
            }
        );
        assert_eq!(
            r.route("a@sub.example.com"),
            Route::Smtp {
                nexthop: "sub.example.com".into(),
                implicit_tls: false,
            }
        );
        assert_eq!(
            r.route("a@bad.example"),
            Route::Error("5.1.2 no thanks".into())
        );
        assert_eq!(
            r.route("a@later.example"),
            Route::Retry("4.4.1 not yet".into())
        );
        assert_eq!(r.route("root@BOX.example"), Route::Local);
        assert_eq!(r.route("root"), Route::Local);
        assert_eq!(
            r.route("x@Other.Example."),
            Route::Smtp {
                nexthop: "other.example".into(),
                implicit_tls: false,
            }
        );
        let r = Router {
            transport: &t,
            local_domains: &local,
            relayhost: "[smtp.isp.example]:587",
            wrappermode: false,
        };
        assert_eq!(
            r.route("x@other.example"),
            Route::Smtp {
                nexthop: "[smtp.isp.example]:587".into(),
                implicit_tls: false,
            }
        );
        assert_eq!(
            r.route("a@example.com"),
            Route::Smtp {
                nexthop: "[mail.example.com]:2525".into(),
                implicit_tls: false,
            }
        );
    }

    #[test]
    fn implicit_tls_per_transport() {
        let t = [map("a.example smtps:[mail.a.example]:4650\nb.example smtp:[mail.b.example]:2465\nc.example smtps:\nd.example :[gw.d.example]\n")];
        let hop = |nexthop: &str, implicit_tls: bool| Route::Smtp {
            nexthop: nexthop.into(),
            implicit_tls,
        };
        for wrappermode in [false, true] {
            let r = Router {
                transport: &t,
                local_domains: &[],
                relayhost: "[smtp.isp.example]:2465",
                wrappermode,
            };
            // `smtps:` is implicit TLS whatever the port and the setting.
            assert_eq!(r.route("x@a.example"), hop("[mail.a.example]:4650", true));
            assert_eq!(r.route("x@c.example"), hop("c.example", true));
            // smtp_tls_wrappermode covers configured next hops: the
            // relayhost on any port and smtp:/relay: entries.
            assert_eq!(
                r.route("x@b.example"),
                hop("[mail.b.example]:2465", wrappermode)
            );
            assert_eq!(r.route("x@d.example"), hop("[gw.d.example]", wrappermode));
            assert_eq!(
                r.route("x@other.example"),
                hop("[smtp.isp.example]:2465", wrappermode)
            );
        }
        // Never to a recipient domain's MX hosts.
        let r = Router {
            transport: &[],
            local_domains: &[],
            relayhost: "",
            wrappermode: true,
        };
        assert_eq!(r.route("x@other.example"), hop("other.example", false));
    }

    #[test]
    fn a_broken_entry_defers() {
        let (m, _) = TransportMap::load(
            b"good.example smtp:[mail.good.example]\nbad.example smtp:[oops\n.bad.example smtp:[mx.bad.example]\n* relay:[smarthost.example]\n",
            "/etc/tern/transport",
        );
        let t = [m];
        let r = Router {
            transport: &t,
            local_domains: &[],
            relayhost: "[relay.example]",
            wrappermode: false,
        };
        assert_eq!(
            r.route("a@good.example"),
            Route::Smtp {
                nexthop: "[mail.good.example]".into(),
                implicit_tls: false,
            }
        );
        // Neither `*` nor the relayhost: the broken key defers.
        assert_eq!(
            r.route("A@Bad.Example"),
            Route::Retry(
                "4.3.0 transport_maps entry for bad.example at /etc/tern/transport:2 is malformed; fix the table".into()
            )
        );
        // The good `.bad.example` entry still routes the subdomains.
        assert_eq!(
            r.route("a@x.bad.example"),
            Route::Smtp {
                nexthop: "[mx.bad.example]".into(),
                implicit_tls: false,
            }
        );
    }

    #[test]
    fn local_delivery_is_possible() {
        let router = |t: &[TransportMap], local: &[String]| -> (bool, bool) {
            let r = Router {
                transport: t,
                local_domains: local,
                relayhost: "[smtp.isp.example]:587",
                wrappermode: false,
            };
            (r.can_route_local(false), r.can_route_local(true))
        };
        let boxd = ["box.example".to_string()];
        // A send-only router: nothing is local, unless a recipient may
        // stay without a domain (append_at_myorigin = no).
        assert_eq!(router(&[], &[]), (false, true));
        assert_eq!(router(&[], &boxd), (true, true));
        // Every local domain sent elsewhere: no local delivery.
        let away = [map("box.example smtp:[hub.example]\n")];
        assert_eq!(router(&away, &boxd), (false, true));
        let all = [map("* relay:[hub.example]\n")];
        assert_eq!(router(&all, &boxd), (false, false));
        let all_err = [map("* error:5.7.1 no mail here\n")];
        assert_eq!(router(&all_err, &boxd), (false, false));
        // `smtp:` without a next hop keeps the default route: local.
        let same = [map("box.example smtp:\n")];
        assert_eq!(router(&same, &boxd), (true, true));
        // One user kept local, or a `local:` entry for another domain.
        let user = [map("root@box.example local:\n* relay:[hub.example]\n")];
        assert_eq!(router(&user, &boxd), (true, true));
        let other = [map(".lan.example local:\n")];
        assert_eq!(router(&other, &[]), (true, true));
        let wild = [map("* local:\n")];
        assert_eq!(router(&wild, &[]), (true, true));
        // A bare key matters only for recipients without a domain.
        let bare = [map("root local:\n* relay:[hub.example]\n")];
        assert_eq!(router(&bare, &[]), (false, true));
        // A broken entry defers the domain's mail: not local.
        let (broken, _) = TransportMap::load(b"box.example smtp:[oops\n", "transport");
        assert_eq!(router(&[broken], &boxd), (false, true));
    }

    #[test]
    fn bad_nexthop_is_an_error() {
        assert!(parse_nexthop("[unclosed").is_err());
        assert!(parse_nexthop("[h]:587").is_ok());
    }
}
