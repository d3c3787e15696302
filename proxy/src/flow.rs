//! Flow records: one per HTTP request, sent to the agent for `palisade observe` and metrics.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// What the proxy did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowVerdict {
    /// Allowed and sent upstream (`status` is the upstream's).
    Forwarded,
    /// Denied by policy (403, or 200 + `grpc-status: 7`).
    Denied,
    /// Not decided or not delivered: bad request, no policy, upstream failure.
    Error,
}

/// One HTTP request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpFlowRecord {
    /// When the request head arrived.
    pub time: SystemTime,
    /// Client address.
    pub src: SocketAddr,
    /// Original destination.
    pub dst: SocketAddr,
    /// Identity of the client.
    pub src_identity: u32,
    /// Identity of the destination.
    pub dst_identity: u32,
    /// Request method.
    pub method: String,
    /// Authority as sent.
    pub host: String,
    /// Path as matched (normalized, with query), or as received when it could not be normalized.
    pub path: String,
    /// Outcome.
    pub verdict: FlowVerdict,
    /// Status sent to the client.
    pub status: u16,
    /// Time from request head to response head.
    pub latency: Duration,
    /// Why (deny/error reason) and `headerMatches` LOG notes.
    pub notes: Vec<String>,
}
