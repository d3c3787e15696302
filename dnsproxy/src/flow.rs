//! Per-query records sent to the agent (flow log, metrics, `palisade observe`).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// What the proxy did with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allowed and forwarded; `rcode` is the resolver's.
    Forwarded,
    /// Denied by policy (REFUSED or NXDOMAIN sent).
    Refused,
    /// Malformed query, upstream failure/timeout, learner failure or overload.
    Error,
}

impl Verdict {
    /// Lower-case name for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Forwarded => "forwarded",
            Verdict::Refused => "refused",
            Verdict::Error => "error",
        }
    }
}

/// Client transport of the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// DNS over UDP.
    Udp,
    /// DNS over TCP (length-prefixed).
    Tcp,
}

/// One handled query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsFlowRecord {
    /// When the query arrived.
    pub time: SystemTime,
    /// Client address.
    pub src: SocketAddr,
    /// Original destination (the resolver the client asked).
    pub resolver: SocketAddr,
    /// Client transport.
    pub transport: Transport,
    /// Endpoint name, if the source is a known endpoint.
    pub endpoint: Option<String>,
    /// First question's name (normalized); empty for unreadable queries.
    pub qname: String,
    /// First question's type (`A`, `AAAA`, ...); empty for unreadable queries.
    pub qtype: Cow<'static, str>,
    /// What happened.
    pub verdict: Verdict,
    /// Rcode sent to the client; `None` when nothing was sent.
    pub rcode: Option<u16>,
    /// From receiving the query to sending the answer.
    pub latency: Duration,
    /// Time spent waiting for the learner, when it was called (`None` also when skipped because
    /// the agent already had every address).
    pub learn_latency: Option<Duration>,
    /// From the upstream answer's arrival to the answer being ready to send (decoding, learner
    /// wait), when an answer arrived.
    #[serde(default)]
    pub release_latency: Option<Duration>,
}

impl DnsFlowRecord {
    /// Rcode name (`NOERROR`, `REFUSED`, ...), or `-` when nothing was sent.
    pub fn rcode_name(&self) -> &'static str {
        self.rcode.map_or("-", crate::wire::rcode_name)
    }
}
