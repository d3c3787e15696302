//! Numeric security identities, Cilium's way: reserved 1..10, cluster identities from 256 for
//! pod label sets, node-local identities (`0x01 << 24 | n`) for CIDR, FQDN and node label sets.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;

use crate::labels::{Label, LabelSet, SOURCE_RESERVED};

/// The local host.
pub const HOST: u32 = 1;
/// Outside the cluster.
pub const WORLD: u32 = 2;
/// Endpoints not managed by the CNI.
pub const UNMANAGED: u32 = 3;
/// Health endpoints.
pub const HEALTH: u32 = 4;
/// Endpoints being initialized.
pub const INIT: u32 = 5;
/// Other nodes.
pub const REMOTE_NODE: u32 = 6;
/// The Kubernetes API server.
pub const KUBE_APISERVER: u32 = 7;
/// Cilium ingress.
pub const INGRESS: u32 = 8;
/// Outside the cluster, IPv4.
pub const WORLD_IPV4: u32 = 9;
/// Outside the cluster, IPv6.
pub const WORLD_IPV6: u32 = 10;
/// First cluster-scoped identity.
pub const CLUSTER_MIN: u32 = 256;
/// Scope bits of node-local identities.
pub const LOCAL_SCOPE: u32 = 0x0100_0000;
/// "Any identity" in policy keys.
pub const ANY: u32 = 0;

/// Reserved identities with their label names, in Cilium's order.
pub const RESERVED: [(u32, &str); 10] = [
    (HOST, "host"),
    (WORLD, "world"),
    (UNMANAGED, "unmanaged"),
    (HEALTH, "health"),
    (INIT, "init"),
    (REMOTE_NODE, "remote-node"),
    (KUBE_APISERVER, "kube-apiserver"),
    (INGRESS, "ingress"),
    (WORLD_IPV4, "world-ipv4"),
    (WORLD_IPV6, "world-ipv6"),
];

/// What an identity stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityKind {
    /// One of the reserved identities.
    Reserved,
    /// Pods with one security label set.
    Pod,
    /// Remote nodes with one label set.
    Node,
    /// A CIDR prefix from a policy.
    Cidr(IpNet),
    /// Addresses learned for toFQDNs selectors.
    Fqdn,
}

/// An identity with its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Numeric identity.
    pub id: u32,
    /// Its labels.
    pub labels: LabelSet,
    /// What it stands for.
    pub kind: IdentityKind,
}

impl Identity {
    /// True for identities outside the cluster (world entity).
    pub fn is_world(&self) -> bool {
        matches!(self.kind, IdentityKind::Cidr(_) | IdentityKind::Fqdn)
            || matches!(self.id, WORLD | WORLD_IPV4 | WORLD_IPV6)
    }
}

/// Hands out identities; the same label set always gets the same number for the allocator's
/// lifetime, so a new pod with known labels never changes anyone's policy.
#[derive(Debug, Clone)]
pub struct Allocator {
    by_labels: HashMap<LabelSet, u32>,
    identities: BTreeMap<u32, Identity>,
    next_cluster: u32,
    next_local: u32,
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

impl Allocator {
    /// An allocator holding the reserved identities.
    pub fn new() -> Self {
        let mut a = Allocator {
            by_labels: HashMap::new(),
            identities: BTreeMap::new(),
            next_cluster: CLUSTER_MIN,
            next_local: LOCAL_SCOPE | 1,
        };
        for (id, name) in RESERVED {
            let labels: LabelSet = [Label::new(SOURCE_RESERVED, name, "")].into();
            a.by_labels.insert(labels.clone(), id);
            a.identities.insert(
                id,
                Identity {
                    id,
                    labels,
                    kind: IdentityKind::Reserved,
                },
            );
        }
        a
    }

    /// The cluster identity of a pod label set (allocated on first use).
    pub fn pod(&mut self, labels: &LabelSet) -> u32 {
        self.get_or_insert(labels, IdentityKind::Pod, false)
    }

    /// The node-local identity for a label set of the given kind (allocated on first use).
    pub fn local(&mut self, labels: &LabelSet, kind: IdentityKind) -> u32 {
        self.get_or_insert(labels, kind, true)
    }

    fn get_or_insert(&mut self, labels: &LabelSet, kind: IdentityKind, local: bool) -> u32 {
        if let Some(id) = self.by_labels.get(labels) {
            return *id;
        }
        let id = if local {
            self.next_local += 1;
            self.next_local - 1
        } else {
            self.next_cluster += 1;
            self.next_cluster - 1
        };
        self.by_labels.insert(labels.clone(), id);
        self.identities.insert(
            id,
            Identity {
                id,
                labels: labels.clone(),
                kind,
            },
        );
        id
    }

    /// Looks an identity up.
    pub fn get(&self, id: u32) -> Option<&Identity> {
        self.identities.get(&id)
    }

    /// The identity of a label set, if allocated.
    pub fn find(&self, labels: &LabelSet) -> Option<u32> {
        self.by_labels.get(labels).copied()
    }

    /// All identities, by number (reserved first).
    pub fn all(&self) -> impl Iterator<Item = &Identity> {
        self.identities.values()
    }

    /// Forgets identities not in `keep` (reserved identities are always kept). Numbers are never
    /// reused, so a released number cannot be confused with a new label set.
    pub fn retain(&mut self, keep: &std::collections::BTreeSet<u32>) {
        self.identities
            .retain(|id, ident| ident.kind == IdentityKind::Reserved || keep.contains(id));
        let ids = &self.identities;
        self.by_labels.retain(|_, id| ids.contains_key(id));
    }
}

/// Formats `cilium identity list`-style output: `ID  LABELS`, one label per line.
pub fn render_list<'a>(identities: impl Iterator<Item = &'a Identity>) -> String {
    let mut out = String::from("ID         LABELS\n");
    for ident in identities {
        let mut first = true;
        for l in &ident.labels {
            if first {
                out.push_str(&format!("{:<10} {}\n", ident.id, l));
                first = false;
            } else {
                out.push_str(&format!("{:<10} {}\n", "", l));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_numbers_match_cilium() {
        let a = Allocator::new();
        let names: Vec<(u32, String)> = a
            .all()
            .map(|i| (i.id, i.labels.iter().next().unwrap().to_string()))
            .collect();
        assert_eq!(names[0], (1, "reserved:host".to_string()));
        assert_eq!(names[5], (6, "reserved:remote-node".to_string()));
        assert_eq!(names[9], (10, "reserved:world-ipv6".to_string()));
    }

    #[test]
    fn same_labels_same_identity() {
        let mut a = Allocator::new();
        let l1: LabelSet = [Label::new("k8s", "app", "a")].into();
        let l2: LabelSet = [Label::new("k8s", "app", "b")].into();
        let i1 = a.pod(&l1);
        assert_eq!(i1, CLUSTER_MIN);
        assert_eq!(a.pod(&l1), i1);
        assert_eq!(a.pod(&l2), CLUSTER_MIN + 1);
        let c = a.local(
            &[Label::new("cidr", "1.2.3.4/32", "")].into(),
            IdentityKind::Fqdn,
        );
        assert_eq!(c & LOCAL_SCOPE, LOCAL_SCOPE);
    }
}
