//! Runtime settings of the DNS proxy (ports, marks, timeouts, limits).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The answer given to a query that policy does not allow (Cilium's `--tofqdns-dns-reject-response-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RejectCode {
    /// `REFUSED` (Cilium's default).
    #[default]
    Refused,
    /// `NXDOMAIN`.
    NameError,
}

/// How the DNS proxy listens, forwards and waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsProxyConfig {
    /// Port of the transparent UDP and TCP listeners on `0.0.0.0` (0 = any free port, for tests).
    pub listen_port: u16,
    /// `SO_MARK` of upstream sockets, so the datapath lets the proxy's own queries pass.
    pub upstream_mark: u32,
    /// Answer for a query that policy does not allow.
    pub reject: RejectCode,
    /// How long to wait for the resolver before answering SERVFAIL.
    pub upstream_timeout: Duration,
    /// Longest wait for the learner before the answer is released anyway (counted).
    pub learn_timeout: Duration,
    /// Queries handled at once; beyond it a query is answered SERVFAIL at once.
    pub max_in_flight: usize,
    /// A repeated answer whose addresses the agent already has (expiry within this much) skips
    /// the learner, but each name in use still reaches it at least once per this interval, so
    /// the agent's expiries lag by at most this much. Zero calls the learner for every answer.
    #[serde(default = "default_learn_refresh")]
    pub learn_refresh: Duration,
}

fn default_learn_refresh() -> Duration {
    Duration::from_secs(1)
}

impl Default for DnsProxyConfig {
    fn default() -> Self {
        DnsProxyConfig {
            listen_port: 15053,
            upstream_mark: 0xb00,
            reject: RejectCode::Refused,
            upstream_timeout: Duration::from_secs(5),
            learn_timeout: Duration::from_secs(1),
            max_in_flight: 1024,
            learn_refresh: default_learn_refresh(),
        }
    }
}
