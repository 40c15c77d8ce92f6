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
}

impl Router<'_> {
    /// Routes one recipient address.
    pub fn route(&self, rcpt: &str) -> Route {
        let domain = rcpt.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let domain = domain.trim_end_matches('.');
        for map in self.transport {
            if let Some(e) = map.lookup_address(rcpt, Some('+')) {
                let hop = e.nexthop_text().filter(|t| !t.is_empty());
                return match e.kind() {
                    TransportKind::Smtp | TransportKind::Relay | TransportKind::Unchanged => {
                        match hop {
                            Some(h) => Route::Smtp {
                                nexthop: h.to_string(),
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
            };
        }
        Route::Smtp {
            nexthop: domain.to_ascii_lowercase(),
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
        };
        assert_eq!(
            r.route("a@example.com"),
            Route::Smtp {
                nexthop: "[mail.example.com]:2525".into()
            }
        );
        assert_eq!(
            r.route("a@sub.example.com"),
            Route::Smtp {
                nexthop: "sub.example.com".into()
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
                nexthop: "other.example".into()
            }
        );
        let r = Router {
            transport: &t,
            local_domains: &local,
            relayhost: "[smtp.isp.example]:587",
        };
        assert_eq!(
            r.route("x@other.example"),
            Route::Smtp {
                nexthop: "[smtp.isp.example]:587".into()
            }
        );
        assert_eq!(
            r.route("a@example.com"),
            Route::Smtp {
                nexthop: "[mail.example.com]:2525".into()
            }
        );
    }

    #[test]
    fn bad_nexthop_is_an_error() {
        assert!(parse_nexthop("[unclosed").is_err());
        assert!(parse_nexthop("[h]:587").is_ok());
    }
}
