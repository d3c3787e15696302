//! The policy documents as users write them: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy
//! (cilium.io/v2) and NetworkPolicy (networking.k8s.io/v1). Field values are validated while
//! deserializing, so every error carries the YAML line, column and field path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fqdn::FqdnSelector;
use crate::selector::LabelSelectorSpec;
use crate::values::{Cidr, Entity, HttpRegex, PortNumber, Protocol};

/// Object metadata (only what policy needs; other fields are accepted and ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Namespace (namespaced kinds only), `default` when omitted.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Object labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `kind: CiliumNetworkPolicy` / `CiliumClusterwideNetworkPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CiliumPolicy {
    /// `cilium.io/v2`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Metadata.
    pub metadata: Metadata,
    /// One rule.
    #[serde(default)]
    pub spec: Option<Rule>,
    /// Several rules.
    #[serde(default)]
    pub specs: Option<Vec<Rule>>,
    /// Status written by Kubernetes (ignored).
    #[serde(default, skip_serializing)]
    pub status: Option<serde_yaml_ng::Value>,
}

/// `EnableDefaultDeny`: whether a direction's rules put the endpoint into default deny.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnableDefaultDeny {
    /// Ingress (default true).
    #[serde(default)]
    pub ingress: Option<bool>,
    /// Egress (default true).
    #[serde(default)]
    pub egress: Option<bool>,
}

/// One Cilium rule (`spec` or an item of `specs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Endpoints this rule applies to.
    #[serde(default)]
    pub endpoint_selector: Option<LabelSelectorSpec>,
    /// Nodes this rule applies to (host policies; clusterwide only).
    #[serde(default)]
    pub node_selector: Option<LabelSelectorSpec>,
    /// Ingress allow rules.
    #[serde(default)]
    pub ingress: Option<Vec<IngressRule>>,
    /// Ingress deny rules.
    #[serde(default)]
    pub ingress_deny: Option<Vec<IngressRule>>,
    /// Egress allow rules.
    #[serde(default)]
    pub egress: Option<Vec<EgressRule>>,
    /// Egress deny rules.
    #[serde(default)]
    pub egress_deny: Option<Vec<EgressRule>>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Rule labels (shown in trace output).
    #[serde(default)]
    pub labels: Option<serde_yaml_ng::Value>,
    /// Turns default deny off per direction.
    #[serde(default)]
    pub enable_default_deny: Option<EnableDefaultDeny>,
}

/// An ingress (allow or deny) rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressRule {
    /// Peer endpoints.
    #[serde(default)]
    pub from_endpoints: Option<Vec<LabelSelectorSpec>>,
    /// Additional requirements on peers (deprecated in Cilium; accepted and applied).
    #[serde(default)]
    pub from_requires: Option<Vec<LabelSelectorSpec>>,
    /// Peer CIDRs.
    #[serde(default, rename = "fromCIDR")]
    pub from_cidr: Option<Vec<Cidr>>,
    /// Peer CIDRs with exceptions.
    #[serde(default, rename = "fromCIDRSet")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    /// Peer entities.
    #[serde(default)]
    pub from_entities: Option<Vec<Entity>>,
    /// Peer nodes.
    #[serde(default)]
    pub from_nodes: Option<Vec<LabelSelectorSpec>>,
    /// Ports (and L7 rules).
    #[serde(default)]
    pub to_ports: Option<Vec<PortRule>>,
    /// ICMP types.
    #[serde(default)]
    pub icmps: Option<Vec<IcmpRule>>,
    /// Mutual authentication (accepted, not enforced).
    #[serde(default)]
    pub authentication: Option<serde_yaml_ng::Value>,
}

/// An egress (allow or deny) rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressRule {
    /// Peer endpoints.
    #[serde(default)]
    pub to_endpoints: Option<Vec<LabelSelectorSpec>>,
    /// Additional requirements on peers (deprecated in Cilium; accepted and applied).
    #[serde(default)]
    pub to_requires: Option<Vec<LabelSelectorSpec>>,
    /// Peer CIDRs.
    #[serde(default, rename = "toCIDR")]
    pub to_cidr: Option<Vec<Cidr>>,
    /// Peer CIDRs with exceptions.
    #[serde(default, rename = "toCIDRSet")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    /// Peer entities.
    #[serde(default)]
    pub to_entities: Option<Vec<Entity>>,
    /// Peer services.
    #[serde(default)]
    pub to_services: Option<Vec<ServiceSelector>>,
    /// Peer DNS names (learned by the DNS proxy).
    #[serde(default, rename = "toFQDNs")]
    pub to_fqdns: Option<Vec<FqdnSelectorSpec>>,
    /// Peer nodes.
    #[serde(default)]
    pub to_nodes: Option<Vec<LabelSelectorSpec>>,
    /// Ports (and L7 rules).
    #[serde(default)]
    pub to_ports: Option<Vec<PortRule>>,
    /// ICMP types.
    #[serde(default)]
    pub icmps: Option<Vec<IcmpRule>>,
    /// Mutual authentication (accepted, not enforced).
    #[serde(default)]
    pub authentication: Option<serde_yaml_ng::Value>,
}

/// A validated `toFQDNs` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "FqdnSelector", into = "FqdnSelector")]
pub struct FqdnSelectorSpec(pub FqdnSelector);

impl TryFrom<FqdnSelector> for FqdnSelectorSpec {
    type Error = String;
    fn try_from(s: FqdnSelector) -> Result<Self, String> {
        s.compile().map_err(|e| e.to_string())?;
        Ok(FqdnSelectorSpec(s))
    }
}

impl From<FqdnSelectorSpec> for FqdnSelector {
    fn from(s: FqdnSelectorSpec) -> Self {
        s.0
    }
}

/// `toCIDRSet` / `fromCIDRSet` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CidrRule {
    /// The CIDR.
    pub cidr: Cidr,
    /// Sub-CIDRs carved out.
    #[serde(default)]
    pub except: Vec<Cidr>,
}

/// `toServices` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSelector {
    /// A service by name.
    #[serde(default)]
    pub k8s_service: Option<K8sServiceName>,
    /// Services by labels.
    #[serde(default)]
    pub k8s_service_selector: Option<K8sServiceSelector>,
}

/// `k8sService`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sServiceName {
    /// Service name.
    pub service_name: String,
    /// Namespace (the policy's when omitted).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `k8sServiceSelector`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sServiceSelector {
    /// Label selector on services.
    pub selector: LabelSelectorSpec,
    /// Namespace (the policy's when omitted).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `toPorts` entry: ports plus optional L7 rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    try_from = "RawPortRule"
)]
pub struct PortRule {
    /// Ports (empty = all ports).
    pub ports: Vec<PortProtocol>,
    /// L7 rules.
    pub rules: Option<L7Rules>,
    /// TLS SNI values allowed on the port (`*` matches within one label); the proxy reads the
    /// ClientHello and resets a connection whose SNI is missing or not listed.
    pub server_names: Option<Vec<String>>,
    /// Certificate the proxy presents to terminate the client's TLS.
    #[serde(rename = "terminatingTLS")]
    pub terminating_tls: Option<TlsContext>,
    /// Trusted CAs the proxy verifies the server with when it opens TLS upstream.
    #[serde(rename = "originatingTLS")]
    pub originating_tls: Option<TlsContext>,
    /// Envoy listener reference (accepted, not supported).
    pub listener: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPortRule {
    #[serde(default)]
    ports: Vec<PortProtocol>,
    #[serde(default)]
    rules: Option<L7Rules>,
    #[serde(default)]
    server_names: Option<Vec<String>>,
    #[serde(default, rename = "terminatingTLS")]
    terminating_tls: Option<TlsContext>,
    #[serde(default, rename = "originatingTLS")]
    originating_tls: Option<TlsContext>,
    #[serde(default)]
    listener: Option<serde_yaml_ng::Value>,
}

impl TryFrom<RawPortRule> for PortRule {
    type Error = String;
    fn try_from(r: RawPortRule) -> Result<Self, String> {
        if let Some(rules) = &r.rules {
            let has_http = !rules.http.is_empty();
            let has_dns = !rules.dns.is_empty();
            if has_http && has_dns {
                return Err("rules: http and dns rules cannot be combined on one port".into());
            }
            if has_http && r.ports.iter().all(|p| p.protocol == Protocol::Udp) {
                return Err("rules.http: HTTP rules need a TCP port, but every port is UDP".into());
            }
            if has_dns {
                for p in &r.ports {
                    if p.end_port.is_some_and(|e| Some(e) != p.port.number()) {
                        return Err(format!(
                            "rules.dns: DNS rules cannot apply to a port range ({}-{})",
                            p.port,
                            p.end_port.unwrap_or(0)
                        ));
                    }
                }
            }
            if (has_http || has_dns) && r.ports.is_empty() {
                return Err("rules: L7 rules need at least one port in `ports`".into());
            }
        }
        check_tls_fields(&r)?;
        for p in &r.ports {
            if let (Some(start), Some(end)) = (p.port.number(), p.end_port) {
                if end < start {
                    return Err(format!("ports: endPort {end} is lower than port {start}"));
                }
            }
        }
        Ok(PortRule {
            ports: r.ports,
            rules: r.rules,
            server_names: r.server_names,
            terminating_tls: r.terminating_tls,
            originating_tls: r.originating_tls,
            listener: r.listener,
        })
    }
}

/// Checks of `serverNames`, `terminatingTLS` and `originatingTLS` that span fields.
fn check_tls_fields(r: &RawPortRule) -> Result<(), String> {
    let tls =
        r.server_names.is_some() || r.terminating_tls.is_some() || r.originating_tls.is_some();
    if !tls {
        return Ok(());
    }
    if r.rules.as_ref().is_some_and(|l7| !l7.dns.is_empty()) {
        return Err("rules.dns: DNS rules cannot be combined with TLS settings on one port".into());
    }
    if r.ports.is_empty() {
        return Err("ports: TLS settings need at least one port in `ports`".into());
    }
    if r.ports.iter().all(|p| p.protocol == Protocol::Udp) {
        return Err("ports: TLS settings need a TCP port, but every port is UDP".into());
    }
    for (i, name) in r.server_names.iter().flatten().enumerate() {
        if !valid_server_name(name) {
            return Err(format!(
                "serverNames[{i}]: invalid server name \"{name}\": expected DNS labels of letters, digits, `-`, `_` or `*`"
            ));
        }
    }
    Ok(())
}

/// Cilium's pattern for a server name: dot-separated labels of `[-a-zA-Z0-9_*]`.
fn valid_server_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'))
        })
}

/// Cilium's `TLSContext`: a secret and the names of the items in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsContext {
    /// The secret holding the certificate, key and CA bundle.
    pub secret: TlsSecretRef,
    /// Item of the trusted CA bundle (default `ca.crt`).
    #[serde(default, rename = "trustedCA", skip_serializing_if = "Option::is_none")]
    pub trusted_ca: Option<String>,
    /// Item of the certificate chain (default `tls.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Item of the private key (default `tls.key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

/// Reference to a TLS secret; the namespace defaults to the policy's (`default` when
/// clusterwide).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsSecretRef {
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name (required, non-empty).
    #[serde(deserialize_with = "non_empty")]
    pub name: String,
}

fn non_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(s)
}

/// One port (or range) and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortProtocol {
    /// Number (as a string or integer; "0" = all) or a named port.
    #[serde(default)]
    pub port: PortNumber,
    /// End of a range.
    #[serde(default)]
    pub end_port: Option<u16>,
    /// TCP, UDP, SCTP or ANY (empty = ANY).
    #[serde(default)]
    pub protocol: Protocol,
}

/// L7 rules of a port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct L7Rules {
    /// HTTP rules (ORed).
    #[serde(default)]
    pub http: Vec<HttpRule>,
    /// DNS rules (ORed).
    #[serde(default)]
    pub dns: Vec<FqdnSelectorSpec>,
    /// Kafka rules (not supported; rejected when non-empty).
    #[serde(default, deserialize_with = "reject_kafka")]
    pub kafka: Vec<serde_yaml_ng::Value>,
}

fn reject_kafka<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<serde_yaml_ng::Value>, D::Error> {
    let v: Vec<serde_yaml_ng::Value> = Vec::deserialize(d)?;
    if v.is_empty() {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(
            "Kafka L7 rules are not supported by Palisade",
        ))
    }
}

/// One HTTP rule (Cilium's `PortRuleHTTP`): all given fields must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRule {
    /// Method regex (whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpRegex>,
    /// Path regex (whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpRegex>,
    /// Host regex (whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HttpRegex>,
    /// `Name` (present) or `Name: value` (exact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Header matches with mismatch actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_matches: Vec<HeaderMatch>,
}

impl HttpRule {
    /// The rule in the form the HTTP matcher compiles.
    pub fn to_spec(&self) -> palisade_httpmatch::HttpRuleSpec {
        palisade_httpmatch::HttpRuleSpec {
            method: self.method.as_ref().map(|r| r.0.clone()),
            path: self.path.as_ref().map(|r| r.0.clone()),
            host: self.host.as_ref().map(|r| r.0.clone()),
            headers: self.headers.clone(),
            header_matches: self
                .header_matches
                .iter()
                .map(|h| palisade_httpmatch::HeaderMatch {
                    name: h.name.clone(),
                    value: h.value.clone(),
                    mismatch: h.mismatch.map(|m| match m {
                        MismatchAction::Log => palisade_httpmatch::Mismatch::Log,
                        MismatchAction::Add => palisade_httpmatch::Mismatch::Add,
                        MismatchAction::Delete => palisade_httpmatch::Mismatch::Delete,
                        MismatchAction::Replace => palisade_httpmatch::Mismatch::Replace,
                    }),
                })
                .collect(),
        }
    }
}

/// `headerMatches` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Header name.
    pub name: String,
    /// Expected value (presence when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What to do on mismatch: LOG, ADD, DELETE, REPLACE (empty = deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<MismatchAction>,
    /// Secret reference (accepted; values from secrets are not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
}

/// Secret reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRef {
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// Header mismatch action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MismatchAction {
    /// Allow and log.
    Log,
    /// Allow and add the header.
    Add,
    /// Allow and delete the header.
    Delete,
    /// Allow and replace the header value.
    Replace,
}

/// `icmps` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IcmpRule {
    /// ICMP fields.
    pub fields: Vec<IcmpField>,
}

/// One ICMP type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IcmpField {
    /// `IPv4` (default) or `IPv6`.
    #[serde(default)]
    pub family: Option<String>,
    /// Type number or name (`EchoRequest`, …).
    #[serde(rename = "type")]
    pub icmp_type: crate::values::IcmpType,
}

/// `kind: NetworkPolicy` (networking.k8s.io/v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesPolicy {
    /// `networking.k8s.io/v1`.
    pub api_version: String,
    /// `NetworkPolicy`.
    pub kind: String,
    /// Metadata.
    pub metadata: Metadata,
    /// The spec.
    pub spec: KnpSpec,
    /// Status (ignored).
    #[serde(default, skip_serializing)]
    pub status: Option<serde_yaml_ng::Value>,
}

/// NetworkPolicy spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KnpSpec {
    /// Pods in the policy's namespace this applies to.
    pub pod_selector: LabelSelectorSpec,
    /// Ingress rules.
    #[serde(default)]
    pub ingress: Option<Vec<KnpRule>>,
    /// Egress rules.
    #[serde(default)]
    pub egress: Option<Vec<KnpRule>>,
    /// `Ingress` and/or `Egress`.
    #[serde(default)]
    pub policy_types: Option<Vec<KnpPolicyType>>,
}

/// `Ingress` / `Egress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KnpPolicyType {
    /// Ingress.
    Ingress,
    /// Egress.
    Egress,
}

/// One NetworkPolicy ingress or egress rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KnpRule {
    /// Ingress peers.
    #[serde(default)]
    pub from: Option<Vec<KnpPeer>>,
    /// Egress peers.
    #[serde(default)]
    pub to: Option<Vec<KnpPeer>>,
    /// Ports.
    #[serde(default)]
    pub ports: Option<Vec<KnpPort>>,
}

/// NetworkPolicy peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KnpPeer {
    /// Pods.
    #[serde(default)]
    pub pod_selector: Option<LabelSelectorSpec>,
    /// Namespaces.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelectorSpec>,
    /// Addresses.
    #[serde(default)]
    pub ip_block: Option<KnpIpBlock>,
}

/// `ipBlock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KnpIpBlock {
    /// The CIDR.
    pub cidr: Cidr,
    /// Carved out.
    #[serde(default)]
    pub except: Vec<Cidr>,
}

/// NetworkPolicy port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KnpPort {
    /// TCP (default), UDP or SCTP.
    #[serde(default = "tcp")]
    pub protocol: Protocol,
    /// Number or name; all ports when omitted.
    #[serde(default)]
    pub port: PortNumber,
    /// End of range.
    #[serde(default)]
    pub end_port: Option<u16>,
}

fn tcp() -> Protocol {
    Protocol::Tcp
}
