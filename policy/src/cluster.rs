//! The cluster as policy sees it: endpoints with identities, and the ipcache (prefix →
//! identity) for pods, nodes, policy CIDRs and learned FQDN addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::fqdn::{FqdnMatcher, FqdnSelector};
use crate::identity::{self, Allocator, IdentityKind};
use crate::labels::{self, Label, LabelSet, SOURCE_CIDR, SOURCE_FQDN, SOURCE_RESERVED};
use crate::topology::{Pod, Topology};

/// Addresses the DNS proxy learned: name (normalized, trailing dot) → addresses.
pub type LearnedNames = BTreeMap<String, BTreeSet<IpAddr>>;

/// A pod as an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `namespace/name`.
    pub name: String,
    /// Security identity.
    pub identity: u32,
    /// Security labels.
    pub labels: LabelSet,
    /// Addresses.
    pub ips: Vec<IpAddr>,
    /// Node it runs on.
    pub node: String,
    /// True when it runs on the agent's node (its policy is enforced here).
    pub local: bool,
    /// Named container ports: name → (protocol number, port).
    pub named_ports: BTreeMap<String, (u8, u16)>,
    /// Host-side interface on its node.
    pub host_interface: Option<String>,
}

/// Everything identities are derived from.
#[derive(Debug, Clone)]
pub struct ClusterState {
    /// Endpoints by `namespace/name`.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Prefix → identity; the longest prefix wins, no match means world.
    pub ipcache: BTreeMap<IpNet, u32>,
    /// Labels of nodes by identity (host and remote-node identities), for node selectors.
    pub node_labels: BTreeMap<u32, Vec<LabelSet>>,
    /// Identities in use.
    pub in_use: BTreeSet<u32>,
}

/// Inputs from policies that create identities.
#[derive(Debug, Clone, Default)]
pub struct IdentityInputs {
    /// CIDR prefixes named by policies (including `except` entries).
    pub cidrs: BTreeSet<IpNet>,
    /// toFQDNs selectors of all policies.
    pub fqdn_selectors: BTreeSet<FqdnSelector>,
    /// True when some policy selects nodes by label (nodes then get their own identities).
    pub node_selectors_used: bool,
}

impl ClusterState {
    /// Computes endpoints and the ipcache. Identities come from `alloc`, so numbers stay stable
    /// across calls.
    pub fn build(
        topo: &Topology,
        inputs: &IdentityInputs,
        learned: &LearnedNames,
        alloc: &mut Allocator,
    ) -> ClusterState {
        let mut state = ClusterState {
            endpoints: BTreeMap::new(),
            ipcache: BTreeMap::new(),
            node_labels: BTreeMap::new(),
            in_use: BTreeSet::new(),
        };
        let local_node = topo
            .local_node()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        state.add_nodes(topo, inputs, &local_node, alloc);
        state.add_cidrs(inputs, alloc);
        state.add_fqdns(inputs, learned, alloc);
        for pod in &topo.pods {
            state.add_pod(pod, topo, &local_node, alloc);
        }
        state
    }

    fn add_nodes(
        &mut self,
        topo: &Topology,
        inputs: &IdentityInputs,
        local: &str,
        alloc: &mut Allocator,
    ) {
        for node in &topo.nodes {
            let nl = labels::node_labels(node);
            let id = if node.name == local {
                identity::HOST
            } else if inputs.node_selectors_used {
                let mut set = nl.clone();
                set.insert(Label::new(SOURCE_RESERVED, "remote-node", ""));
                alloc.local(&set, IdentityKind::Node)
            } else {
                identity::REMOTE_NODE
            };
            self.node_labels.entry(id).or_default().push(nl);
            self.in_use.insert(id);
            for ip in &node.ips {
                self.ipcache.insert(IpNet::from(*ip), id);
            }
        }
    }

    fn add_cidrs(&mut self, inputs: &IdentityInputs, alloc: &mut Allocator) {
        for net in &inputs.cidrs {
            if net.prefix_len() == 0 {
                continue; // the whole address space is the world identity itself
            }
            let set: LabelSet = [
                Label::new(SOURCE_CIDR, &net.to_string(), ""),
                Label::new(SOURCE_RESERVED, "world", ""),
            ]
            .into();
            let id = alloc.local(&set, IdentityKind::Cidr(*net));
            self.in_use.insert(id);
            self.ipcache.insert(*net, id);
        }
    }

    fn add_fqdns(
        &mut self,
        inputs: &IdentityInputs,
        learned: &LearnedNames,
        alloc: &mut Allocator,
    ) {
        let matchers: Vec<FqdnMatcher> = inputs
            .fqdn_selectors
            .iter()
            .filter_map(|s| s.compile().ok())
            .collect();
        // Which selectors select each learned address.
        let mut per_ip: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
        for (name, ips) in learned {
            for m in matchers.iter().filter(|m| m.matches(name)) {
                for ip in ips {
                    per_ip
                        .entry(*ip)
                        .or_default()
                        .insert(fqdn_label_key(m.selector()));
                }
            }
        }
        for (ip, keys) in per_ip {
            let set = fqdn_identity_labels(ip, &keys, &inputs.cidrs);
            let id = alloc.local(&set, IdentityKind::Fqdn);
            self.in_use.insert(id);
            self.ipcache.insert(IpNet::from(ip), id);
        }
    }

    fn add_pod(&mut self, pod: &Pod, topo: &Topology, local: &str, alloc: &mut Allocator) {
        let sec = labels::pod_security_labels(pod, topo);
        let id = alloc.pod(&sec);
        self.in_use.insert(id);
        let node = topo
            .node_of(pod)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        for ip in &pod.ips {
            self.ipcache.insert(IpNet::from(*ip), id);
        }
        let named_ports = pod
            .ports
            .iter()
            .filter_map(|p| {
                let proto = p.protocol.parse::<crate::values::Protocol>().ok()?.number();
                Some((p.name.clone(), (proto, p.port)))
            })
            .collect();
        let name = format!("{}/{}", pod.namespace, pod.name);
        self.endpoints.insert(
            name.clone(),
            Endpoint {
                name,
                identity: id,
                labels: sec,
                ips: pod.ips.clone(),
                local: node == local,
                node,
                named_ports,
                host_interface: pod.host_interface.clone(),
            },
        );
    }

    /// The identity of an address: longest matching prefix, else world.
    pub fn identity_of(&self, ip: IpAddr) -> u32 {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        for len in (0..=max).rev() {
            if let Ok(net) = IpNet::new(ip, len) {
                if let Some(id) = self.ipcache.get(&net.trunc()) {
                    return *id;
                }
            }
        }
        identity::WORLD
    }

    /// The endpoint owning an address.
    pub fn endpoint_by_ip(&self, ip: IpAddr) -> Option<&Endpoint> {
        self.endpoints.values().find(|e| e.ips.contains(&ip))
    }
}

/// Labels of the identity of a learned address: the toFQDNs selectors that select it, and, as
/// Cilium's CIDR labels do, every policy CIDR containing it, so that `toCIDR`/`toCIDRSet` rules
/// keep selecting an address once DNS has taught it (the ipcache's /32 wins over the prefix).
pub fn fqdn_identity_labels(
    ip: IpAddr,
    selector_keys: &BTreeSet<String>,
    policy_cidrs: &BTreeSet<IpNet>,
) -> LabelSet {
    let mut set: LabelSet = selector_keys
        .iter()
        .map(|k| Label::new(SOURCE_FQDN, k, ""))
        .collect();
    for net in policy_cidrs {
        if net.prefix_len() > 0 && net.contains(&ip) {
            set.insert(Label::new(SOURCE_CIDR, &net.to_string(), ""));
        }
    }
    // The family's whole space, as Cilium labels CIDR identities: world-ipv4/-ipv6 and
    // `0.0.0.0/0` / `::/0` rules select by it.
    let all = if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
    set.insert(Label::new(SOURCE_CIDR, all, ""));
    set.insert(Label::new(SOURCE_RESERVED, "world", ""));
    set
}

/// The label key of a toFQDNs selector (`fqdn:api.github.com`, `fqdn:*.github.com`).
pub fn fqdn_label_key(s: &FqdnSelector) -> String {
    s.match_name
        .clone()
        .or_else(|| s.match_pattern.clone())
        .unwrap_or_default()
        .to_ascii_lowercase()
}
