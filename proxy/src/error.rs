//! Errors of the proxy's setup and of policy compilation (request-level failures are
//! HTTP answers, built in `response.rs`).

use std::net::SocketAddr;

/// The proxy could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Creating, configuring or binding the listener failed.
    #[error("listener {addr}: {op}: {source}")]
    Listen {
        /// Requested address.
        addr: SocketAddr,
        /// The failing step (`socket`, `IP_TRANSPARENT`, `bind`, `listen`).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Accepting a connection failed in a way that is not per-connection.
    #[error("accept: {0}")]
    Accept(std::io::Error),
}

/// A snapshot that cannot be compiled; the previous policy stays in force.
#[derive(Debug, thiserror::Error)]
#[error("revision {revision}: endpoint {endpoint} {direction} port {port}: {source}")]
pub struct CompileError {
    /// Snapshot revision.
    pub revision: u64,
    /// Endpoint name.
    pub endpoint: String,
    /// `ingress` or `egress`.
    pub direction: &'static str,
    /// First port of the offending entry.
    pub port: u16,
    /// The bad rule.
    #[source]
    pub source: palisade_httpmatch::HttpRuleError,
}
