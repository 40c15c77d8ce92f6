//! MTA-STS (RFC 8461): discovery records, policies and MX matching
//! (sans-I/O), the HTTP response of a policy fetch (sans-I/O, [`http`]),
//! and — built on them — the fetch over HTTPS ([`fetch`]), the per-domain
//! cache in memory and on flash ([`cache`]) and the resolver delivery asks
//! ([`StsResolver`]).

#![forbid(unsafe_code)]

pub mod admin;
pub mod cache;
pub mod fetch;
pub mod http;
pub mod policy;
pub mod record;
pub mod resolver;

pub use cache::Cache;
pub use fetch::{FailureKind, FetchSettings, Fetcher, StsFailure};
pub use policy::{Mode, Policy, PolicyError};
pub use record::{discover, Discovery, PolicyId, RecordError};
pub use resolver::{Source, StsLookup, StsResolver, StsSettings};
