//! The socketmap client: one lookup in a `socketmap:` table (Postfix's
//! socketmap_table(5)) on the daemon's one thread, and the policy-table
//! walk that asks plug-ins in their place among the file tables.
//!
//! A connection per lookup: a policy plug-in is asked once per delivery
//! attempt of a next hop, so keeping a connection open would save little
//! and need reconnect logic. The whole exchange (connect, request, reply)
//! runs under `socketmap_timeout`. The reply is collected in a buffer of
//! fixed size ([`crate::config::socketmap::MAX_REPLY`]); the codec is
//! sans-I/O in [`crate::config::socketmap`].
//!
//! Anything but `OK` and `NOTFOUND` (a server that is down, slow, answers
//! `TEMP`, `TIMEOUT`, `PERM` or garbage, or an answer that is not a valid
//! policy) is a [`LookupError`]: the caller defers the mail. A policy
//! lookup must never fail open: a downgrade to the default level is
//! exactly what an attacker who can stop the plug-in would want.

use std::fmt;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::Async;

use crate::config::socketmap::{self, NetstringReader, Reply, MAX_REPLY, MAX_REQUEST};
use crate::config::table::{SocketmapEndpoint, SocketmapSpec};
use crate::policy::table::{candidate_keys, OwnedPolicyEntry, PolicyTable};

use super::tables::PolicyMap;

/// Why a socketmap lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError {
    /// The table (`socketmap:inet:127.0.0.1:8461:postfix`).
    pub table: String,
    /// The key asked for.
    pub key: String,
    /// What went wrong.
    pub why: String,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} lookup of \"{}\": {}", self.table, self.key, self.why)
    }
}

/// Asks `spec` for `key`: `Ok(Some(data))` for `OK data`, `Ok(None)` for
/// `NOTFOUND`, an error for everything else.
pub async fn lookup(
    spec: &SocketmapSpec,
    key: &str,
    timeout: Duration,
) -> Result<Option<String>, LookupError> {
    let fail = |why: String| LookupError {
        table: spec.to_string(),
        key: key.to_string(),
        why,
    };
    let mut req = [0u8; MAX_REQUEST + 8];
    let n = socketmap::request(&spec.name, key, &mut req)
        .ok_or_else(|| fail("key unusable in a socketmap request".into()))?;
    let exchange = async {
        let mut reader = NetstringReader::new(MAX_REPLY);
        match &spec.endpoint {
            SocketmapEndpoint::Inet(addr) => {
                let mut s = Async::<TcpStream>::connect(*addr)
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                exchange(&mut s, &req[..n], &mut reader).await?;
            }
            SocketmapEndpoint::Unix(path) => {
                let mut s = Async::<UnixStream>::connect(path)
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                exchange(&mut s, &req[..n], &mut reader).await?;
            }
        }
        let reply = match reader.poll() {
            Ok(Some(ns)) => ns.payload,
            // exchange() returns only once the netstring is complete.
            _ => return Err("incomplete reply".to_string()),
        };
        match socketmap::parse_reply(reply).map_err(|e| e.to_string())? {
            Reply::Ok(data) => Ok(Some(data.to_string())),
            Reply::NotFound => Ok(None),
            Reply::Temp(r) => Err(format!("temporary failure: {}", printable(r))),
            Reply::Timeout(r) => Err(format!("server timeout: {}", printable(r))),
            Reply::Perm(r) => Err(format!("permanent failure: {}", printable(r))),
        }
    };
    smol::future::or(exchange, async {
        smol::Timer::after(timeout).await;
        Err(format!(
            "no reply within {}s (socketmap_timeout)",
            timeout.as_secs()
        ))
    })
    .await
    .map_err(fail)
}

/// Sends the request and reads until one netstring is complete.
async fn exchange<S>(s: &mut S, req: &[u8], reader: &mut NetstringReader) -> Result<(), String>
where
    S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
{
    s.write_all(req)
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    loop {
        match reader.poll() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err(format!("bad reply: {e}")),
        }
        let spare = reader.spare();
        if spare.is_empty() {
            return Err(format!("reply longer than {MAX_REPLY} bytes"));
        }
        let n = s
            .read(spare)
            .await
            .map_err(|e| format!("cannot read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed after {} bytes of reply",
                reader.received()
            ));
        }
        reader.filled(n);
    }
}

/// A server's reason, cut short and without control characters, for the
/// log and the mail's status.
fn printable(s: &str) -> String {
    let s: String = s
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.trim().is_empty() {
        "(no reason given)".into()
    } else {
        s
    }
}

/// What the policy-table walk found for a next hop.
#[derive(Debug)]
pub enum PolicyLookup {
    /// No plug-in answered first: a file table did, or nothing did. The
    /// file tables alone give the same entry (`policy::decide` looks it up).
    NotFromPlugin,
    /// A plug-in's answer, parsed.
    Plugin(OwnedPolicyEntry),
}

/// Walks `smtp_tls_policy_maps` for `destination` as Postfix does: for each
/// candidate key (the next hop, then `.parent` domains for a plain domain:
/// [`candidate_keys`]), every table in the order listed; the first that
/// has the key wins. Plug-ins are asked only the keys the walk reaches,
/// which are the keys Postfix would send them.
pub async fn lookup_policy(
    maps: &[PolicyMap],
    tables: &[PolicyTable],
    destination: &str,
    timeout: Duration,
) -> Result<PolicyLookup, LookupError> {
    for key in candidate_keys(destination) {
        for map in maps {
            match map {
                PolicyMap::Table(i) => {
                    if tables.get(*i).is_some_and(|t| t.get(key).is_some()) {
                        return Ok(PolicyLookup::NotFromPlugin);
                    }
                }
                PolicyMap::Socketmap(spec) => {
                    let Some(answer) = lookup(spec, key, timeout).await? else {
                        continue;
                    };
                    let table = spec.to_string();
                    return OwnedPolicyEntry::parse(key, &table, &answer)
                        .map(PolicyLookup::Plugin)
                        .map_err(|e| LookupError {
                            table,
                            key: key.to_string(),
                            why: format!("invalid policy \"{}\": {e}", printable(&answer)),
                        });
                }
            }
        }
    }
    Ok(PolicyLookup::NotFromPlugin)
}
