//! The policy the DNS proxy enforces, as handed over by the agent (serde, so the proxy can run as
//! its own process later). Compiled into [`crate::CompiledPolicy`] once per revision.

use std::net::IpAddr;

use palisade_policy::fqdn::FqdnSelector;
use serde::{Deserialize, Serialize};

/// Everything the DNS proxy needs at one policy revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSnapshot {
    /// Increases with every change; reported in logs.
    pub revision: u64,
    /// IP prefix → identity; longest prefix wins, no match = world (2).
    pub ipcache: Vec<(ipnet::IpNet, u32)>,
    /// Local endpoints whose DNS traffic is redirected to the proxy.
    pub endpoints: Vec<EndpointDns>,
}

/// One local endpoint (pod) and its DNS rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDns {
    /// Endpoint name as the agent shows it (e.g. `default/mediabot`).
    pub name: String,
    /// Addresses the endpoint sends from.
    pub ips: Vec<IpAddr>,
    /// The endpoint's security identity.
    pub identity: u32,
    /// Egress DNS rules, per destination port.
    pub rules: Vec<DnsPortRule>,
}

/// DNS rules for one destination port (port 0 = any port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsPortRule {
    /// Destination (resolver) port, 0 for any.
    pub port: u16,
    /// Allowed resolvers and the names each may be asked for; any peer allowing is enough.
    pub peers: Vec<DnsPeer>,
}

/// Which resolvers, and which names may be asked of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsPeer {
    /// Resolver identities; `None` = any resolver (identity 0 in the list is a wildcard too).
    pub identities: Option<Vec<u32>>,
    /// `None` = an L3/L4-only allow: every name; `Some` = only names matching one of these.
    pub patterns: Option<Vec<FqdnSelector>>,
}
