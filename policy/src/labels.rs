//! Labels with Cilium's source prefixes (`k8s:`, `reserved:`, `cidr:`, `fqdn:`, `node:`) and
//! the security labels that identities are made of.

use std::collections::BTreeSet;
use std::fmt;

use crate::topology::{LabelMap, Node, Pod, Topology};

/// Source of labels of Kubernetes objects.
pub const SOURCE_K8S: &str = "k8s";
/// Source of reserved identities' labels.
pub const SOURCE_RESERVED: &str = "reserved";
/// Wildcard source used in selectors.
pub const SOURCE_ANY: &str = "any";
/// Source of CIDR identities' labels.
pub const SOURCE_CIDR: &str = "cidr";
/// Source of FQDN identities' labels.
pub const SOURCE_FQDN: &str = "fqdn";
/// Source of node labels.
pub const SOURCE_NODE: &str = "node";

/// Label keys Kubernetes and Cilium put on pods that say where they run.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Service account label key.
pub const SERVICE_ACCOUNT: &str = "io.cilium.k8s.policy.serviceaccount";
/// Cluster name label key.
pub const CLUSTER: &str = "io.cilium.k8s.policy.cluster";
/// Prefix of namespace labels copied onto pods.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

/// One label: `source:key=value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// Where it comes from (`k8s`, `reserved`, …).
    pub source: String,
    /// Key.
    pub key: String,
    /// Value (may be empty).
    pub value: String,
}

impl Label {
    /// Builds a label.
    pub fn new(source: &str, key: &str, value: &str) -> Self {
        Label {
            source: source.to_string(),
            key: key.to_string(),
            value: value.to_string(),
        }
    }

    /// Parses `source:key=value`, `key=value` or `key` (source defaults to `default_source`).
    pub fn parse(s: &str, default_source: &str) -> Self {
        let (kv, value) = match s.split_once('=') {
            Some((k, v)) => (k, v),
            None => (s, ""),
        };
        // Keys such as `node-role.kubernetes.io/control-plane` contain no colon, but
        // `k8s:app` does: the first colon separates a known source.
        match kv.split_once(':') {
            Some((src, key)) if is_source(src) => Label::new(src, key, value),
            _ => Label::new(default_source, kv, value),
        }
    }
}

/// True for the label sources Cilium knows.
pub fn is_source(s: &str) -> bool {
    matches!(
        s,
        "k8s" | "reserved" | "any" | "cidr" | "fqdn" | "node" | "unspec" | "container"
    )
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() && self.source != SOURCE_K8S {
            write!(f, "{}:{}", self.source, self.key)
        } else {
            write!(f, "{}:{}={}", self.source, self.key, self.value)
        }
    }
}

/// A sorted set of labels; equal sets get the same identity.
pub type LabelSet = BTreeSet<Label>;

/// Label keys that never become security labels (Cilium's default label filter).
fn is_ignored_key(key: &str) -> bool {
    const IGNORED: [&str; 8] = [
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "job-name",
        "controller-uid",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/controller-uid",
        "statefulset.kubernetes.io/pod-name",
    ];
    IGNORED.contains(&key)
        || key.starts_with("annotation.")
        || key.starts_with("io.kubernetes.") && key != POD_NAMESPACE
        || key.ends_with(".kubernetes.io/pod-name")
}

/// The security labels of a pod: its own labels, namespace, service account, cluster and the
/// namespace's labels, all with source `k8s`.
pub fn pod_security_labels(pod: &Pod, topo: &Topology) -> LabelSet {
    let mut set = LabelSet::new();
    for (k, v) in &pod.labels {
        if !is_ignored_key(k) {
            set.insert(Label::new(SOURCE_K8S, k, v));
        }
    }
    set.insert(Label::new(SOURCE_K8S, POD_NAMESPACE, &pod.namespace));
    set.insert(Label::new(
        SOURCE_K8S,
        SERVICE_ACCOUNT,
        &pod.service_account,
    ));
    set.insert(Label::new(SOURCE_K8S, CLUSTER, &topo.cluster));
    let mut ns_labels = topo.namespace_labels(&pod.namespace);
    // Kubernetes puts this label on every namespace.
    ns_labels
        .entry("kubernetes.io/metadata.name".to_string())
        .or_insert_with(|| pod.namespace.clone());
    for (k, v) in ns_labels {
        set.insert(Label::new(
            SOURCE_K8S,
            &format!("{NAMESPACE_LABELS_PREFIX}{k}"),
            &v,
        ));
    }
    set
}

/// Labels of a node as seen by node selectors (`fromNodes`, `nodeSelector`).
pub fn node_labels(node: &Node) -> LabelSet {
    labels_from_map(&node.labels, SOURCE_NODE)
}

/// Converts a plain label map to labels of one source.
pub fn labels_from_map(map: &LabelMap, source: &str) -> LabelSet {
    map.iter().map(|(k, v)| Label::new(source, k, v)).collect()
}

/// Formats a set as `k8s:a=b, k8s:c=d`.
pub fn display_set(set: &LabelSet) -> String {
    set.iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_with_and_without_source() {
        assert_eq!(
            Label::parse("k8s:app=web", "any"),
            Label::new("k8s", "app", "web")
        );
        assert_eq!(
            Label::parse("app=web", "any"),
            Label::new("any", "app", "web")
        );
        assert_eq!(
            Label::parse("node-role.kubernetes.io/control-plane", "any"),
            Label::new("any", "node-role.kubernetes.io/control-plane", "")
        );
        assert_eq!(
            Label::parse("reserved:host", "any"),
            Label::new("reserved", "host", "")
        );
    }

    #[test]
    fn template_hash_is_not_a_security_label() {
        let topo = Topology::default();
        let mut pod: Pod = serde_yaml_ng::from_str("name: a").unwrap();
        pod.labels.insert("app".into(), "web".into());
        pod.labels.insert("pod-template-hash".into(), "abc".into());
        let set = pod_security_labels(&pod, &topo);
        assert!(set.contains(&Label::new("k8s", "app", "web")));
        assert!(!set.iter().any(|l| l.key == "pod-template-hash"), "{set:?}");
        assert!(set.contains(&Label::new("k8s", POD_NAMESPACE, "default")));
        assert!(set.contains(&Label::new("k8s", SERVICE_ACCOUNT, "default")));
        assert!(set.contains(&Label::new("k8s", CLUSTER, "default")));
    }
}
