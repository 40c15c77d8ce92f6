//! TLS for the listener and for delivery, on fixed per-connection buffers.
//!
//! * [`pool`]: the per-connection buffer slots, allocated once at start-up.
//! * [`stream`]: [`Stream`], plain TCP or TLS over rustls's unbuffered API.
//! * [`server_config`]: rustls configs from PEM files and Postfix-style
//!   curve lists; [`params`], the crypto settings both directions share.
//! * [`verify`]: the client's certificate verifier per Postfix level.
//! * [`summary`]: negotiated parameters in Postfix's log formats.
//! * [`keyinfo`]: public-key description (RSA bits, curve) for the log.
//! * [`dane`]: TLSA matching and the DANE verifier; [`der`]: the X.509
//!   fields it reads.
//! * [`words`]: rustls and webpki errors as sentences for logs and
//!   deferral reasons.
pub mod dane;
pub mod der;
pub mod keyinfo;
pub mod pool;
pub mod server_config;
pub mod stream;
pub mod summary;
pub mod verify;
pub mod words;

pub use pool::{BufferPool, CommandSlot, InboundSlot, Slot};
pub use server_config::{
    build_client_config, build_server_config, build_server_config_with, params, AskClientCert,
    CertKeyPaths, ConfigError, ServerOptions, TlsParams,
};
pub use stream::Stream;
pub use summary::{PeerCertNames, TlsSummary, Trust};
pub use verify::{FailureKind, MatchName, TernVerifier, TlsOutcome, VerifyMode};
