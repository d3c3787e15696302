//! The contract between the DNS proxy and the agent: the proxy reports what an allowed answer
//! resolved to and waits until the agent has written ipcache and policy maps.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// Addresses learned from one allowed answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedAnswer {
    /// Name of the endpoint that asked.
    pub endpoint: String,
    /// The endpoint's source address.
    pub source: IpAddr,
    /// The question's name, normalized, as asked.
    pub qname: String,
    /// `qname` followed by every CNAME target in the chain (normalized).
    pub names: Vec<String>,
    /// A/AAAA addresses of the chain with their TTLs.
    pub addrs: Vec<(IpAddr, u32)>,
}

/// Why the agent could not apply a learned answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LearnError {
    /// A map was full; nothing was changed (the agent checks capacity before writing).
    #[error("map capacity exceeded: {0}")]
    Capacity(String),
    /// Any other failure to write the maps.
    #[error("cannot apply learned addresses: {0}")]
    Failed(String),
}

/// Implemented by the agent: allocates identities for `toFQDNs` selectors matching the names,
/// writes ipcache and policy entries, and only then returns. The DNS proxy holds the answer
/// until this future completes (bounded by `learn_timeout`). An error turns the answer into
/// SERVFAIL, since the addresses would not be reachable anyway.
pub trait FqdnLearner: Send + Sync + 'static {
    /// Applies one learned answer.
    fn learn(
        &self,
        update: LearnedAnswer,
    ) -> Pin<Box<dyn Future<Output = Result<(), LearnError>> + Send + '_>>;
}
