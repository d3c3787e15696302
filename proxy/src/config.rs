//! Listener address, marks and resource limits of the proxy.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// How the proxy listens and talks upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Listener address (Cilium-like default `0.0.0.0:15001`; port 0 picks one).
    pub listen: SocketAddr,
    /// Set `IP_TRANSPARENT` so redirected flows (TPROXY / `bpf_sk_assign`) land here.
    pub transparent: bool,
    /// `SO_MARK` of upstream sockets when an egress (source-side) rule decided.
    pub upstream_mark_egress: u32,
    /// `SO_MARK` of upstream sockets when only the destination's ingress rules decided.
    pub upstream_mark_ingress: u32,
    /// Resource limits.
    pub limits: Limits,
}

/// Limits that protect the proxy from slow or greedy clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Time allowed to receive a request's headers (slowloris); the connection is closed after.
    pub header_timeout: Duration,
    /// Largest request head in bytes; larger gets 431 (HTTP/1.1; hyper's floor is 8192).
    pub max_header_bytes: usize,
    /// Largest number of header fields in one HTTP/1.1 request.
    pub max_headers: usize,
    /// Concurrent client connections; further connections wait in the kernel backlog.
    pub max_connections: usize,
    /// Time allowed to connect upstream.
    pub connect_timeout: Duration,
    /// Time open connections get to finish on shutdown.
    pub drain_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 15001)),
            transparent: true,
            upstream_mark_egress: 0xb00,
            upstream_mark_ingress: 0xa00,
            limits: Limits::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 60 * 1024,
            max_headers: 100,
            max_connections: 10_000,
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
        }
    }
}
