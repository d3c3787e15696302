//! Errors of the DNS proxy's runtime (binding and serving).

use std::net::SocketAddr;

/// Why the DNS proxy could not start or keep serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsProxyError {
    /// Creating, configuring or binding a listener socket failed.
    #[error("cannot bind DNS proxy {proto} listener on {addr}: {source}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// Address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A listener failed while serving (not a per-query error).
    #[error("DNS proxy {proto} listener failed: {source}")]
    Serve {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
