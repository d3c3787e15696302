//! Plain-data views the agent serves and the CLI renders.
//!
//! These types are the wire contract of the local API: JSON over the unix socket, and what
//! `-o json` prints. They depend on no other palisade crate, so the agent converts its own
//! state into them at the edge and the CLI never needs the policy engine.

use serde::{Deserialize, Serialize};

/// Health of the agent as a whole (`GET /v1/status`, `palisade status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// eBPF datapath state.
    pub datapath: DatapathStatus,
    /// HTTP and DNS proxy state.
    pub proxies: ProxiesStatus,
    /// Revision of the policy repository currently enforced.
    pub policy_revision: u64,
    /// Number of local endpoints.
    pub endpoints: u64,
    /// Number of allocated identities (reserved ones included).
    pub identities: u64,
    /// Number of imported policies.
    pub policies: u64,
    /// Number of FQDN names with learned addresses.
    pub fqdn_names: u64,
    /// Last error the agent hit, if any (shown until a later success clears it).
    #[serde(default)]
    pub last_error: Option<String>,
}

impl StatusView {
    /// Datapath and proxies both up: what `palisade status` (and so the DaemonSet's probes)
    /// should turn into exit code 0.
    pub fn healthy(&self) -> bool {
        self.datapath.ok && self.proxies.ok
    }
}

/// State of the eBPF datapath.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatapathStatus {
    /// Programs loaded and maps writable.
    pub ok: bool,
    /// Interfaces with the TC programs attached.
    pub interfaces: Vec<String>,
}

/// State of the transparent proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxiesStatus {
    /// Both listeners are up.
    pub ok: bool,
    /// HTTP L7 proxy listener port.
    pub http_port: u16,
    /// DNS proxy listener port (UDP and TCP).
    pub dns_port: u16,
}

/// A numeric security identity and its labels (`source:key=value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityView {
    /// Numeric identity (reserved 1..=10, cluster from 256, local `0x01000000 | n`).
    pub id: u32,
    /// Security labels, e.g. `k8s:env=prod`, `reserved:host`.
    pub labels: Vec<String>,
}

/// One row of `palisade endpoint list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointView {
    /// `namespace/pod`, e.g. `default/client-prod`.
    pub name: String,
    /// Numeric security identity of the endpoint.
    pub security_identity: u32,
    /// Endpoint state; `ready` once its policy is in the datapath.
    pub state: String,
    /// IPv4 addresses.
    pub ipv4: Vec<String>,
    /// IPv6 addresses.
    pub ipv6: Vec<String>,
}

/// `GET /v1/endpoints/{name}`: an endpoint with its resolved policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointDetail {
    /// The summary row.
    pub endpoint: EndpointView,
    /// Security labels of the endpoint.
    pub labels: Vec<String>,
    /// Resolved ingress policy.
    pub ingress: DirectionView,
    /// Resolved egress policy.
    pub egress: DirectionView,
}

/// Resolved policy of one direction of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionView {
    /// Default deny is in force (some selecting policy has a rule in this direction).
    pub enforced: bool,
    /// Policy map entries, as the agent resolved them.
    pub entries: Vec<PolicyEntryView>,
}

/// One resolved policy entry (what one key of the policy map will say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEntryView {
    /// Peer identity; 0 means any identity.
    pub identity: u32,
    /// Labels of the peer identity (empty for 0).
    pub identity_labels: Vec<String>,
    /// `TCP`, `UDP`, `ICMP`, `ANY`.
    pub proto: String,
    /// First port; 0 means any port.
    pub port: u16,
    /// Last port of a range; equal to `port` (or 0) for a single port.
    pub end_port: u16,
    /// `allow`, `deny` or `redirect`.
    pub verdict: String,
    /// Proxy port for `redirect`.
    pub proxy_port: Option<u16>,
    /// Names of the policies this entry is derived from (`namespace/name`).
    pub policies: Vec<String>,
}

/// `GET /v1/policies`: imported policies and the repository revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyListView {
    /// Repository revision, bumped on every change.
    pub revision: u64,
    /// Imported policies.
    pub policies: Vec<PolicyView>,
}

/// One imported policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (empty for cluster-wide policies).
    pub namespace: String,
    /// `CiliumNetworkPolicy`, `CiliumClusterwideNetworkPolicy`, `NetworkPolicy`.
    pub kind: String,
    /// Where it came from, `file:line`.
    pub source: String,
}

/// One decoded entry of an endpoint's kernel policy map (`palisade bpf policy get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfPolicyEntryView {
    /// `ingress` or `egress`.
    pub direction: String,
    /// Peer identity; 0 means any identity.
    pub identity: u32,
    /// Labels of the peer identity, when the agent knows them.
    #[serde(default)]
    pub identity_labels: Vec<String>,
    /// `TCP`, `UDP`, `ICMP`, `ANY`.
    pub proto: String,
    /// First port of the key's port range (0 = any port).
    pub port: u16,
    /// Last port of the key's range (decoded from the LPM port prefix; equal to `port` for an
    /// exact port).
    pub end_port: u16,
    /// `allow`, `deny` or `redirect`.
    pub verdict: String,
    /// Proxy port for `redirect`.
    pub proxy_port: Option<u16>,
    /// Bytes counted on this entry, if the datapath keeps counters.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Packets counted on this entry, if the datapath keeps counters.
    #[serde(default)]
    pub packets: Option<u64>,
}

/// One learned FQDN → addresses entry (`palisade fqdn cache list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FqdnCacheView {
    /// Endpoint that looked the name up (`namespace/pod`).
    pub endpoint: String,
    /// How the entry was learned; `lookup` for DNS proxy answers.
    #[serde(default = "default_fqdn_source")]
    pub source: String,
    /// Queried name, as asked (`api.github.com.`).
    pub name: String,
    /// TTL of the answer in seconds.
    pub ttl: u32,
    /// When the entry expires, unix seconds.
    pub expires_unix: u64,
    /// Learned addresses.
    pub ips: Vec<String>,
}

fn default_fqdn_source() -> String {
    "lookup".to_owned()
}

/// `POST /v1/trace`: a hypothetical packet (or request) to run through policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    /// Source: endpoint name, IP, or `key=value` labels.
    pub from: String,
    /// Destination: endpoint name, IP, or `key=value` labels.
    pub to: String,
    /// Destination port (0 = none).
    #[serde(default)]
    pub dport: u16,
    /// `TCP` (default), `UDP`, `ICMP`.
    #[serde(default)]
    pub proto: Option<String>,
    /// HTTP method, to trace L7 rules.
    #[serde(default)]
    pub http_method: Option<String>,
    /// HTTP path, to trace L7 rules.
    #[serde(default)]
    pub http_path: Option<String>,
    /// HTTP host, to trace L7 rules.
    #[serde(default)]
    pub http_host: Option<String>,
    /// HTTP headers as `Name: value`.
    #[serde(default)]
    pub http_headers: Vec<String>,
    /// DNS query name, to trace `rules.dns`.
    #[serde(default)]
    pub dns_name: Option<String>,
    /// Addresses the DNS answer would carry, to trace `toFQDNs` learning.
    #[serde(default)]
    pub dns_answers: Vec<String>,
}

/// Result of a trace: the reasoning, one step a line, and the verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceView {
    /// Human-readable steps.
    pub lines: Vec<String>,
    /// Final verdict.
    pub allowed: bool,
}
