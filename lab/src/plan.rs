//! Resolves a topology into a lab plan: the address of everything the topology left out, the
//! name of every network namespace and interface, and the resolver pod. Pure: nothing is built
//! here, so the plan is unit-tested and the resolved topology is written from it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use palisade_policy::topology::{Serve, ServeKind, Topology};

use crate::error::LabError;

/// Interface of a pod, node or external host towards its uplink.
pub const UPLINK_IF: &str = "eth0";
/// Host-side veth of a node that carries the router address (no `dummy` driver here).
pub const ROUTER_IF: &str = "pal_host";
/// Peer of [`ROUTER_IF`], kept down-stream of nothing; it only exists because veths come in pairs.
pub const ROUTER_PEER_IF: &str = "pal_net";
/// Bridge of the fabric namespace that joins the nodes' segment.
pub const BRIDGE_IF: &str = "br0";

/// Everything `up` builds, with names and addresses resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The input topology with every address and interface filled in.
    pub topology: Topology,
    /// Namespace of the fabric (underlay and internet).
    pub fabric_netns: String,
    /// Addresses of the fabric's bridge: the gateway of each node segment.
    pub gateways: Vec<Ipv4Net>,
    /// Nodes, in topology order.
    pub nodes: Vec<NodePlan>,
    /// Pods, in topology order.
    pub pods: Vec<PodPlan>,
    /// External hosts, in topology order.
    pub externals: Vec<ExternalPlan>,
    /// Address of the resolver pod (the first pod serving `dns`).
    pub resolver: Option<Ipv4Addr>,
}

/// A node of the lab.
#[derive(Debug, Clone)]
pub struct NodePlan {
    /// Node name.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Node addresses on its uplink (the first is the node IP).
    pub ips: Vec<Ipv4Net>,
    /// Next hop towards the fabric.
    pub gateway: Ipv4Addr,
    /// Router address pods use as their default gateway.
    pub router: Ipv4Addr,
    /// Range pod addresses are assigned from.
    pub pod_cidr: Ipv4Net,
    /// Name of the fabric-side end of the uplink.
    pub fabric_if: String,
}

impl NodePlan {
    /// The node IP (first uplink address).
    pub fn ip(&self) -> Ipv4Addr {
        self.ips[0].addr()
    }
}

/// A pod of the lab.
#[derive(Debug, Clone)]
pub struct PodPlan {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Index of its node in [`Plan::nodes`].
    pub node: usize,
    /// Pod addresses (each a /32 on `eth0`).
    pub ips: Vec<Ipv4Addr>,
    /// Host-side veth in the node namespace.
    pub host_if: String,
    /// Servers to start.
    pub serve: Vec<Serve>,
}

impl PodPlan {
    /// `NAMESPACE/NAME`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// An external host of the lab.
#[derive(Debug, Clone)]
pub struct ExternalPlan {
    /// Host name.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Addresses (each a /32 on `eth0`).
    pub ips: Vec<Ipv4Addr>,
    /// Name of the fabric-side end of its link.
    pub fabric_if: String,
    /// Servers to start.
    pub serve: Vec<Serve>,
}

/// Resolves `topology` for a lab whose namespaces all start with `prefix`.
pub fn resolve(topology: &Topology, prefix: &str) -> Result<Plan, LabError> {
    if topology.nodes.is_empty() {
        return Err(LabError::Plan("the lab needs at least one node".into()));
    }
    if topology.nodes.len() > 250 {
        return Err(LabError::Plan("the lab supports at most 250 nodes".into()));
    }
    let mut used = explicit_addresses(topology)?;
    let nodes = plan_nodes(topology, prefix, &mut used)?;
    let pods = plan_pods(topology, prefix, &nodes, &mut used)?;
    let externals = plan_externals(topology, prefix, &mut used)?;
    let gateways = nodes
        .iter()
        .map(|n| Ipv4Net::new(n.gateway, n.ips[0].prefix_len()).expect("prefix from a net"))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let resolver = pods
        .iter()
        .find(|p| p.serve.iter().any(|s| s.kind == ServeKind::Dns))
        .map(|p| p.ips[0]);
    let plan = Plan {
        topology: resolved_topology(topology, &nodes, &pods, &externals),
        fabric_netns: format!("{prefix}fabric"),
        gateways,
        nodes,
        pods,
        externals,
        resolver,
    };
    check_unique_names(&plan)?;
    Ok(plan)
}

/// IPv4 addresses the topology fixes; IPv6 members are rejected (the lab is IPv4 only).
fn explicit_addresses(topology: &Topology) -> Result<BTreeSet<Ipv4Addr>, LabError> {
    let mut used = BTreeSet::new();
    // A resolved topology lists each node's router address; it is chosen again, not fixed.
    let node_ips: Vec<(&String, Vec<IpAddr>)> = topology
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let cidr = pod_cidr(i);
            let ips = n
                .ips
                .iter()
                .copied()
                .filter(|ip| !matches!(ip, IpAddr::V4(v4) if cidr.contains(v4)));
            (&n.name, ips.collect())
        })
        .collect();
    let all = node_ips
        .iter()
        .map(|(name, ips)| (*name, ips))
        .chain(topology.pods.iter().map(|p| (&p.name, &p.ips)))
        .chain(topology.externals.iter().map(|x| (&x.name, &x.ips)));
    for (name, ips) in all {
        for ip in ips {
            match ip {
                IpAddr::V4(v4) => {
                    used.insert(*v4);
                }
                IpAddr::V6(_) => {
                    return Err(LabError::Plan(format!(
                        "{name}: IPv6 address {ip}: the lab is IPv4 only"
                    )))
                }
            }
        }
    }
    Ok(used)
}

/// Range node `index`'s pods get their addresses from: `172.20.<index>.0/24`.
fn pod_cidr(index: usize) -> Ipv4Net {
    let index = u8::try_from(index).expect("at most 250 nodes");
    Ipv4Net::new(Ipv4Addr::new(172, 20, index, 0), 24).expect("valid")
}

fn v4s(ips: &[IpAddr]) -> Vec<Ipv4Addr> {
    ips.iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// The first address of `candidates` not in `used`, now marked used.
fn take(
    used: &mut BTreeSet<Ipv4Addr>,
    mut candidates: impl Iterator<Item = Ipv4Addr>,
    what: &str,
) -> Result<Ipv4Addr, LabError> {
    let ip = candidates
        .find(|ip| !used.contains(ip))
        .ok_or_else(|| LabError::Plan(format!("no free address left for {what}")))?;
    used.insert(ip);
    Ok(ip)
}

fn plan_nodes(
    topology: &Topology,
    prefix: &str,
    used: &mut BTreeSet<Ipv4Addr>,
) -> Result<Vec<NodePlan>, LabError> {
    let mut nodes = Vec::new();
    for (i, node) in topology.nodes.iter().enumerate() {
        let pod_cidr = pod_cidr(i);
        let mut ips = v4s(&node.ips);
        // A resolved topology lists the router address among the node's; drop it here.
        ips.retain(|ip| !pod_cidr.contains(ip));
        if ips.is_empty() {
            let candidates = (100..=250).map(|h| Ipv4Addr::new(192, 168, 10, h));
            ips.push(take(used, candidates, &format!("node {}", node.name))?);
        }
        let router = take(
            used,
            pod_cidr.hosts(),
            &format!("the router of {}", node.name),
        )?;
        let nets = ips
            .iter()
            .map(|ip| Ipv4Net::new(*ip, 24).expect("valid"))
            .collect::<Vec<_>>();
        nodes.push(NodePlan {
            name: node.name.clone(),
            netns: format!("{prefix}{}", node.name),
            ips: nets,
            gateway: Ipv4Addr::UNSPECIFIED,
            router,
            pod_cidr,
            fabric_if: format!("node{i}"),
        });
    }
    // Each node segment's gateway is its .1 (or .254 when a node holds .1), shared by segment.
    let node_ips: BTreeSet<Ipv4Addr> = nodes
        .iter()
        .flat_map(|n| n.ips.iter().map(|i| i.addr()))
        .collect();
    for node in &mut nodes {
        let net = node.ips[0].trunc();
        let [a, b, c, _] = net.addr().octets();
        node.gateway = [1u8, 254]
            .into_iter()
            .map(|h| Ipv4Addr::new(a, b, c, h))
            .find(|ip| !node_ips.contains(ip))
            .ok_or_else(|| LabError::Plan(format!("no gateway address free in {net}")))?;
        used.insert(node.gateway);
    }
    Ok(nodes)
}

fn plan_pods(
    topology: &Topology,
    prefix: &str,
    nodes: &[NodePlan],
    used: &mut BTreeSet<Ipv4Addr>,
) -> Result<Vec<PodPlan>, LabError> {
    let mut pods = Vec::new();
    for pod in &topology.pods {
        let node = topology
            .node_of(pod)
            .and_then(|n| nodes.iter().position(|x| x.name == n.name))
            .ok_or_else(|| LabError::Plan(format!("pod {}: no node", pod.name)))?;
        let mut ips = v4s(&pod.ips);
        if ips.is_empty() {
            let cidr = nodes[node].pod_cidr;
            let candidates = cidr.hosts().filter(|ip| ip.octets()[3] >= 10);
            ips.push(take(used, candidates, &format!("pod {}", pod.name))?);
        }
        let key = format!("{}/{}", pod.namespace, pod.name);
        pods.push(PodPlan {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            netns: format!("{prefix}pod-{}-{}", pod.namespace, pod.name),
            node,
            ips,
            host_if: format!("lxc{:011x}", fnv1a(key.as_bytes()) >> 20),
            serve: pod.serve.clone(),
        });
    }
    Ok(pods)
}

fn plan_externals(
    topology: &Topology,
    prefix: &str,
    used: &mut BTreeSet<Ipv4Addr>,
) -> Result<Vec<ExternalPlan>, LabError> {
    let mut externals = Vec::new();
    for (k, ext) in topology.externals.iter().enumerate() {
        let mut ips = v4s(&ext.ips);
        if ips.is_empty() {
            let candidates = (10..=250).map(|h| Ipv4Addr::new(203, 0, 113, h));
            ips.push(take(used, candidates, &format!("external {}", ext.name))?);
        }
        externals.push(ExternalPlan {
            name: ext.name.clone(),
            netns: format!("{prefix}ext-{}", ext.name),
            ips,
            fabric_if: format!("ext{k}"),
            serve: ext.serve.clone(),
        });
    }
    Ok(externals)
}

/// A stable hash for interface names (Cilium names veths `lxc<hash>` too): 64-bit FNV-1a,
/// then splitmix64's finalizer so names differing in one letter look different.
fn fnv1a(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn resolved_topology(
    topology: &Topology,
    nodes: &[NodePlan],
    pods: &[PodPlan],
    externals: &[ExternalPlan],
) -> Topology {
    let mut out = topology.clone();
    for (node, plan) in out.nodes.iter_mut().zip(nodes) {
        // The router address belongs to the node, as Cilium's ipcache has it (host/remote-node).
        let mut ips: Vec<IpAddr> = plan.ips.iter().map(|n| IpAddr::V4(n.addr())).collect();
        ips.push(IpAddr::V4(plan.router));
        node.ips = ips;
        node.external_interface = Some(UPLINK_IF.to_string());
    }
    for (pod, plan) in out.pods.iter_mut().zip(pods) {
        pod.ips = plan.ips.iter().copied().map(IpAddr::V4).collect();
        pod.host_interface = Some(plan.host_if.clone());
    }
    for (ext, plan) in out.externals.iter_mut().zip(externals) {
        ext.ips = plan.ips.iter().copied().map(IpAddr::V4).collect();
    }
    out
}

fn check_unique_names(plan: &Plan) -> Result<(), LabError> {
    let mut seen = BTreeSet::new();
    let names = std::iter::once(&plan.fabric_netns)
        .chain(plan.nodes.iter().map(|n| &n.netns))
        .chain(plan.pods.iter().map(|p| &p.netns))
        .chain(plan.externals.iter().map(|x| &x.netns));
    for name in names {
        let ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(LabError::Plan(format!(
                "namespace name {name:?} has odd characters"
            )));
        }
        if !seen.insert(name) {
            return Err(LabError::Plan(format!(
                "two lab members map to namespace {name:?}"
            )));
        }
    }
    let mut ifs = BTreeSet::new();
    for pod in &plan.pods {
        if !ifs.insert((pod.node, &pod.host_if)) {
            return Err(LabError::Plan(format!(
                "interface name clash: {}",
                pod.host_if
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
