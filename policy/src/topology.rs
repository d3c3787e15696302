//! The topology file: nodes, namespaces, pods, services and external hosts of a cluster.
//!
//! It describes the scenario cluster for `policy trace`, the lab and the agent. Every field but
//! `name` may be omitted where a sensible default exists; the lab assigns addresses left out.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{LoadError, SourceLocation};

/// Label map as written in YAML (`key: value`).
pub type LabelMap = BTreeMap<String, String>;

/// A whole topology file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Topology {
    /// Cluster name (Cilium's `io.cilium.k8s.policy.cluster` label), `default` when omitted.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Nodes of the cluster; exactly one is `local` (the one the agent runs on).
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Kubernetes namespaces with their labels.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Pods (endpoints).
    #[serde(default)]
    pub pods: Vec<Pod>,
    /// Services (for `toServices` and for names the lab resolver answers).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Hosts outside the cluster (identity `world`).
    #[serde(default)]
    pub externals: Vec<External>,
    /// Extra records served by the lab's resolver.
    #[serde(default)]
    pub dns: DnsRecords,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            cluster: default_cluster(),
            nodes: Vec::new(),
            namespaces: Vec::new(),
            pods: Vec::new(),
            services: Vec::new(),
            externals: Vec::new(),
            dns: DnsRecords::default(),
        }
    }
}

fn default_cluster() -> String {
    "default".to_string()
}

/// A node of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Node {
    /// Node name, e.g. `k8s-w1`.
    pub name: String,
    /// Node labels (for `fromNodes` / `toNodes` / `nodeSelector`).
    #[serde(default)]
    pub labels: LabelMap,
    /// Node addresses.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// True for the node the agent runs on.
    #[serde(default)]
    pub local: bool,
    /// Interface through which traffic from other nodes and the world enters (set by the lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_interface: Option<String>,
}

/// A Kubernetes namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Namespace {
    /// Namespace name.
    pub name: String,
    /// Namespace labels (become `io.cilium.k8s.namespace.labels.*` security labels).
    #[serde(default)]
    pub labels: LabelMap,
}

/// A pod (endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pod {
    /// Pod name.
    pub name: String,
    /// Namespace, `default` when omitted.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Pod labels.
    #[serde(default)]
    pub labels: LabelMap,
    /// Service account, `default` when omitted.
    #[serde(default = "default_namespace")]
    pub service_account: String,
    /// Node the pod runs on; the only node when omitted.
    #[serde(default)]
    pub node: Option<String>,
    /// Pod addresses (assigned by the lab when omitted).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// Named container ports (for named ports in `toPorts`).
    #[serde(default)]
    pub ports: Vec<NamedPort>,
    /// Servers the lab starts in this pod.
    #[serde(default)]
    pub serve: Vec<Serve>,
    /// Host-side interface of the pod's veth pair on its node (set by the lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_interface: Option<String>,
}

fn default_namespace() -> String {
    "default".to_string()
}

/// A named container port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamedPort {
    /// Port name, e.g. `http`.
    pub name: String,
    /// Port number.
    pub port: u16,
    /// Protocol, TCP when omitted.
    #[serde(default = "default_tcp")]
    pub protocol: String,
}

fn default_tcp() -> String {
    "TCP".to_string()
}

/// A server the lab runs in a pod or external host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Serve {
    /// What to run.
    pub kind: ServeKind,
    /// Port to listen on (80 for HTTP kinds, 53 for DNS when omitted).
    #[serde(default)]
    pub port: Option<u16>,
}

/// Kinds of lab servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeKind {
    /// Answers `/public` and `/private` (and any path) with a small HTML page.
    Http,
    /// traefik/whoami-like: echoes hostname, addresses and the request.
    Whoami,
    /// dnsmasq answering the lab's names.
    Dns,
}

/// A Kubernetes service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Service {
    /// Service name.
    pub name: String,
    /// Namespace, `default` when omitted.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Service labels (for `k8sServiceSelector`).
    #[serde(default)]
    pub labels: LabelMap,
    /// Pod selector; a service without one has no pod backends.
    #[serde(default)]
    pub selector: Option<LabelMap>,
    /// Service ports.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Backend addresses of a selector-less service (outside the cluster).
    #[serde(default)]
    pub endpoints: Vec<IpAddr>,
}

/// A service port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    /// Port number.
    pub port: u16,
    /// Protocol, TCP when omitted.
    #[serde(default = "default_tcp")]
    pub protocol: String,
}

/// A host outside the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct External {
    /// Host name (also answered by the lab's resolver).
    pub name: String,
    /// Addresses (assigned by the lab when omitted).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// Servers the lab starts on this host.
    #[serde(default)]
    pub serve: Vec<Serve>,
}

/// Extra records for the lab's resolver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsRecords {
    /// TTL of every answer, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// `name → target` CNAME records.
    #[serde(default)]
    pub cnames: BTreeMap<String, String>,
    /// `name → addresses` A/AAAA records, beside those of externals, services and pods.
    #[serde(default)]
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
}

impl Default for DnsRecords {
    fn default() -> Self {
        DnsRecords {
            ttl: default_ttl(),
            cnames: BTreeMap::new(),
            hosts: BTreeMap::new(),
        }
    }
}

fn default_ttl() -> u32 {
    60
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates topology YAML; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Topology, LoadError> {
        let topo: Topology =
            serde_yaml_ng::from_str(text).map_err(|e| LoadError::yaml(path, &e))?;
        topo.validate(path)?;
        Ok(topo)
    }

    fn validate(&self, path: &Path) -> Result<(), LoadError> {
        let err = |field: String, msg: String| LoadError::Invalid {
            location: SourceLocation::file(path),
            field,
            message: msg,
        };
        let locals = self.nodes.iter().filter(|n| n.local).count();
        if locals > 1 {
            return Err(err(
                "nodes".into(),
                "more than one node is `local: true`".into(),
            ));
        }
        for (i, pod) in self.pods.iter().enumerate() {
            match &pod.node {
                Some(n) if !self.nodes.iter().any(|x| &x.name == n) => {
                    return Err(err(
                        format!("pods[{i}].node"),
                        format!("node {n:?} is not in `nodes`"),
                    ))
                }
                None if self.nodes.len() > 1 => {
                    return Err(err(
                        format!("pods[{i}].node"),
                        "required when the topology has more than one node".into(),
                    ))
                }
                _ => {}
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for pod in &self.pods {
            if !names.insert(format!("{}/{}", pod.namespace, pod.name)) {
                return Err(err(
                    "pods".into(),
                    format!("pod {}/{} appears twice", pod.namespace, pod.name),
                ));
            }
        }
        Ok(())
    }

    /// The node the agent runs on: the one marked `local`, else the first.
    pub fn local_node(&self) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.local)
            .or_else(|| self.nodes.first())
    }

    /// The node a pod runs on (its `node`, else the only node).
    pub fn node_of(&self, pod: &Pod) -> Option<&Node> {
        match &pod.node {
            Some(n) => self.nodes.iter().find(|x| &x.name == n),
            None => self.nodes.first(),
        }
    }

    /// Finds a pod by `NAMESPACE/NAME` (or bare `NAME` in `default`).
    pub fn pod(&self, name: &str) -> Option<&Pod> {
        let (ns, pod) = name.split_once('/').unwrap_or(("default", name));
        self.pods
            .iter()
            .find(|p| p.namespace == ns && p.name == pod)
    }

    /// Labels of a namespace (empty when the namespace is not listed).
    pub fn namespace_labels(&self, ns: &str) -> LabelMap {
        self.namespaces
            .iter()
            .find(|n| n.name == ns)
            .map(|n| n.labels.clone())
            .unwrap_or_default()
    }
}
