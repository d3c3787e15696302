//! Builds the lab's namespaces, links, addresses and routes from a [`Plan`]: a fabric
//! namespace (a bridge for the nodes' segment, routed links to external hosts), one namespace
//! per node with Cilium-like routed pods (a /32 route per pod via its host-side veth, the
//! router address on a veth), and one namespace per pod and external host.

use crate::error::LabError;
use crate::netns;
use crate::plan::{Plan, BRIDGE_IF, ROUTER_IF, ROUTER_PEER_IF, UPLINK_IF};

/// Every namespace of the plan, fabric first.
pub fn namespaces(plan: &Plan) -> Vec<String> {
    std::iter::once(plan.fabric_netns.clone())
        .chain(plan.nodes.iter().map(|n| n.netns.clone()))
        .chain(plan.pods.iter().map(|p| p.netns.clone()))
        .chain(plan.externals.iter().map(|x| x.netns.clone()))
        .collect()
}

/// Creates the namespaces; the caller records them first so `down` can find them.
pub fn create_namespaces(plan: &Plan) -> Result<(), LabError> {
    namespaces(plan).iter().try_for_each(|ns| netns::add(ns))
}

/// Creates links, addresses, routes and sysctls inside the (already created) namespaces.
pub fn wire(plan: &Plan) -> Result<(), LabError> {
    // Before any link exists: new interfaces copy `default`, and the machine's own rp_filter
    // (which new namespaces inherit, often 2 on Debian) must not decide the lab's behaviour.
    let routers = [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    ];
    netns::sysctl(&plan.fabric_netns, &routers)?;
    for node in &plan.nodes {
        netns::sysctl(&node.netns, &routers)?;
    }
    netns::ip_batch(None, &veth_pairs(plan))?;
    netns::ip_batch(Some(&plan.fabric_netns), &fabric_lines(plan))?;
    for (i, node) in plan.nodes.iter().enumerate() {
        netns::ip_batch(Some(&node.netns), &node_lines(plan, i))?;
    }
    for pod in &plan.pods {
        let router = plan.nodes[pod.node].router;
        let mut lines = vec!["link set lo up".to_string()];
        lines.extend(
            pod.ips
                .iter()
                .map(|ip| format!("addr add {ip}/32 dev {UPLINK_IF}")),
        );
        lines.push(format!("link set {UPLINK_IF} up"));
        lines.push(format!("route add {router} dev {UPLINK_IF} scope link"));
        lines.push(format!("route add default via {router} dev {UPLINK_IF}"));
        netns::ip_batch(Some(&pod.netns), &lines)?;
    }
    let world_gw = plan.gateways[0].addr();
    for ext in &plan.externals {
        let mut lines = vec!["link set lo up".to_string()];
        lines.extend(
            ext.ips
                .iter()
                .map(|ip| format!("addr add {ip}/32 dev {UPLINK_IF}")),
        );
        lines.push(format!("link set {UPLINK_IF} up"));
        lines.push(format!("route add {world_gw} dev {UPLINK_IF} scope link"));
        lines.push(format!("route add default via {world_gw} dev {UPLINK_IF}"));
        netns::ip_batch(Some(&ext.netns), &lines)?;
    }
    Ok(())
}

/// Every veth pair, created straight into its two namespaces (never in the root namespace).
fn veth_pairs(plan: &Plan) -> Vec<String> {
    let pair = |a: &str, a_ns: &str, b: &str, b_ns: &str| {
        format!("link add {a} netns {a_ns} type veth peer name {b} netns {b_ns}")
    };
    let mut lines = Vec::new();
    for node in &plan.nodes {
        lines.push(pair(
            UPLINK_IF,
            &node.netns,
            &node.fabric_if,
            &plan.fabric_netns,
        ));
        lines.push(pair(ROUTER_IF, &node.netns, ROUTER_PEER_IF, &node.netns));
    }
    for pod in &plan.pods {
        lines.push(pair(
            &pod.host_if,
            &plan.nodes[pod.node].netns,
            UPLINK_IF,
            &pod.netns,
        ));
    }
    for ext in &plan.externals {
        lines.push(pair(
            UPLINK_IF,
            &ext.netns,
            &ext.fabric_if,
            &plan.fabric_netns,
        ));
    }
    lines
}

/// The fabric: a bridge joining the nodes (one L2 segment, as in a real cluster), holding
/// the gateway address; routed /32 links to external hosts; pod ranges routed to their nodes.
fn fabric_lines(plan: &Plan) -> Vec<String> {
    let mut lines = vec![
        "link set lo up".to_string(),
        format!("link add {BRIDGE_IF} type bridge"),
        format!("link set {BRIDGE_IF} up"),
    ];
    lines.extend(
        plan.gateways
            .iter()
            .map(|gw| format!("addr add {gw} dev {BRIDGE_IF}")),
    );
    for node in &plan.nodes {
        lines.push(format!("link set {} master {BRIDGE_IF} up", node.fabric_if));
    }
    for node in &plan.nodes {
        lines.push(format!("route add {} via {}", node.pod_cidr, node.ip()));
    }
    for pod in &plan.pods {
        let node = &plan.nodes[pod.node];
        for ip in pod.ips.iter().filter(|ip| !node.pod_cidr.contains(*ip)) {
            lines.push(format!("route add {ip}/32 via {}", node.ip()));
        }
    }
    for ext in &plan.externals {
        lines.push(format!("link set {} up", ext.fabric_if));
        for ip in &ext.ips {
            lines.push(format!("route add {ip}/32 dev {}", ext.fabric_if));
        }
    }
    lines
}

/// A node: uplink addresses and default route, the router address, a /32 route per local
/// pod, and the other nodes' pod ranges via those nodes when they share the segment.
fn node_lines(plan: &Plan, index: usize) -> Vec<String> {
    let node = &plan.nodes[index];
    let mut lines = vec!["link set lo up".to_string()];
    lines.extend(
        node.ips
            .iter()
            .map(|ip| format!("addr add {ip} dev {UPLINK_IF}")),
    );
    lines.push(format!("link set {UPLINK_IF} up"));
    lines.push(format!(
        "route add default via {} dev {UPLINK_IF}",
        node.gateway
    ));
    lines.push(format!("addr add {}/32 dev {ROUTER_IF}", node.router));
    lines.push(format!("link set {ROUTER_PEER_IF} up"));
    lines.push(format!("link set {ROUTER_IF} up"));
    for pod in plan.pods.iter().filter(|p| p.node == index) {
        lines.push(format!("link set {} up", pod.host_if));
        for ip in &pod.ips {
            lines.push(format!("route add {ip}/32 dev {}", pod.host_if));
        }
    }
    let segment = node.ips[0].trunc();
    for (j, other) in plan.nodes.iter().enumerate() {
        // Off-segment nodes are reached through the fabric's default route instead.
        if j == index || !segment.contains(&other.ip()) {
            continue;
        }
        lines.push(format!(
            "route add {} via {} dev {UPLINK_IF}",
            other.pod_cidr,
            other.ip()
        ));
        for pod in plan.pods.iter().filter(|p| p.node == j) {
            for ip in pod.ips.iter().filter(|ip| !other.pod_cidr.contains(*ip)) {
                lines.push(format!(
                    "route add {ip}/32 via {} dev {UPLINK_IF}",
                    other.ip()
                ));
            }
        }
    }
    lines
}
