//! The policy snapshot the agent hands to the proxy: plain, serializable data, so the proxy can
//! also run in its own process. Compiled into lookup structures in `policy.rs`.

use palisade_httpmatch::HttpRuleSpec;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Everything the proxy needs to decide, at one policy revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySnapshot {
    /// Increases with every change; reported back once applied.
    pub revision: u64,
    /// CIDR → identity; the longest prefix wins, no match is world (2).
    pub ipcache: Vec<(ipnet::IpNet, u32)>,
    /// Local endpoints with their L7 rules.
    pub endpoints: Vec<EndpointL7>,
}

/// One local endpoint (pod) and its L7 rules per direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointL7 {
    /// Endpoint name, for logs and errors.
    pub name: String,
    /// Addresses owned by the endpoint.
    pub ips: Vec<IpAddr>,
    /// Its security identity (used for its own addresses ahead of the ipcache).
    pub identity: u32,
    /// Rules for traffic to this endpoint, by destination port.
    pub ingress: Vec<PortL7>,
    /// Rules for traffic from this endpoint, by destination port.
    pub egress: Vec<PortL7>,
}

/// The peers allowed on a destination port range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortL7 {
    /// First destination port; 0 matches any port.
    pub port: u16,
    /// Last port of the range; 0 (or less than `port`) means just `port`.
    #[serde(default)]
    pub end_port: u16,
    /// Allowed peers and their HTTP rules.
    pub peers: Vec<PeerL7>,
}

/// One allowed peer set on a port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerL7 {
    /// Remote identities; `None` (or a 0 in the list) means any peer.
    pub identities: Option<Vec<u32>>,
    /// HTTP rules; `None` means this peer is allowed on this port without L7 filtering.
    pub http: Option<Vec<HttpRuleSpec>>,
    /// TLS handling on this port for this peer; `None` means plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsL7>,
}

/// Cilium's `serverNames`, `terminatingTLS` and `originatingTLS` of one port rule, with the
/// secrets' contents (the proxy may run in its own process, so the material travels with the
/// snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsL7 {
    /// Allowed SNI values (`*` matches within one label); empty = SNI not checked.
    #[serde(default)]
    pub server_names: Vec<String>,
    /// Certificate chain and key presented to the client.
    #[serde(default)]
    pub terminating: Option<TlsMaterial>,
    /// CA bundle the upstream server is verified with.
    #[serde(default)]
    pub originating: Option<TlsMaterial>,
}

/// The PEM items of one TLS secret. Debug output never shows the private key.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsMaterial {
    /// `namespace/name` of the secret, for errors.
    pub secret: String,
    /// PEM certificate chain (leaf first).
    #[serde(default)]
    pub certificate: Option<String>,
    /// PEM private key.
    #[serde(default)]
    pub private_key: Option<String>,
    /// PEM CA bundle.
    #[serde(default, rename = "trustedCA")]
    pub trusted_ca: Option<String>,
    /// Why the agent could not provide the secret; the port then fails closed.
    #[serde(default)]
    pub error: Option<String>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("secret", &self.secret)
            .field("certificate", &self.certificate.as_ref().map(String::len))
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "[redacted]"),
            )
            .field("trusted_ca", &self.trusted_ca.as_ref().map(String::len))
            .field("error", &self.error)
            .finish()
    }
}
