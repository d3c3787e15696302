//! Tests of address and name resolution.

use std::path::Path;

use super::*;

const TOPO: &str = r#"
nodes:
- {name: ctr, ips: [192.168.10.100]}
- {name: w1, local: true}
pods:
- {name: a, node: w1}
- {name: b, node: w1, ips: [10.5.5.5]}
- {name: c, node: ctr, serve: [{kind: dns}]}
externals:
- {name: x}
- {name: fixed, ips: [20.1.1.1]}
"#;

fn plan() -> Plan {
    let topo = Topology::parse(TOPO, Path::new("t.yaml")).expect("valid topology");
    resolve(&topo, "plabt-").expect("resolves")
}

#[test]
fn fills_in_addresses_left_out() {
    let plan = plan();
    assert_eq!(
        plan.nodes[0].ip(),
        Ipv4Addr::new(192, 168, 10, 100),
        "explicit node IP kept"
    );
    assert_eq!(
        plan.nodes[1].ip(),
        Ipv4Addr::new(192, 168, 10, 101),
        "next free node IP"
    );
    assert_eq!(plan.nodes[1].router, Ipv4Addr::new(172, 20, 1, 1));
    assert_eq!(
        plan.pods[0].ips,
        [Ipv4Addr::new(172, 20, 1, 10)],
        "pod on node index 1"
    );
    assert_eq!(
        plan.pods[1].ips,
        [Ipv4Addr::new(10, 5, 5, 5)],
        "explicit pod IP kept"
    );
    assert_eq!(plan.pods[2].ips, [Ipv4Addr::new(172, 20, 0, 10)]);
    assert_eq!(plan.externals[0].ips, [Ipv4Addr::new(203, 0, 113, 10)]);
    assert_eq!(plan.externals[1].ips, [Ipv4Addr::new(20, 1, 1, 1)]);
    assert_eq!(plan.nodes[0].gateway, Ipv4Addr::new(192, 168, 10, 1));
    assert_eq!(
        plan.resolver,
        Some(Ipv4Addr::new(172, 20, 0, 10)),
        "the dns pod"
    );
}

#[test]
fn resolved_topology_has_addresses_and_interfaces() {
    let plan = plan();
    let topo = &plan.topology;
    let w1 = &topo.nodes[1];
    let ips: Vec<String> = w1.ips.iter().map(ToString::to_string).collect();
    assert_eq!(
        ips,
        ["192.168.10.101", "172.20.1.1"],
        "node IP, then router IP"
    );
    assert_eq!(w1.external_interface.as_deref(), Some(UPLINK_IF));
    let a = &topo.pods[0];
    assert_eq!(
        a.host_interface.as_deref(),
        Some(plan.pods[0].host_if.as_str())
    );
    assert!(
        plan.pods[0].host_if.len() <= 15,
        "interface name fits IFNAMSIZ"
    );
    assert_eq!(plan.pods[0].netns, "plabt-pod-default-a");
    assert_eq!(plan.nodes[1].netns, "plabt-w1");
}

#[test]
fn resolving_a_resolved_topology_is_stable() {
    let first = plan();
    let again = resolve(&first.topology, "plabt-").expect("resolves again");
    assert_eq!(
        first.topology, again.topology,
        "router IP is not taken for a node IP"
    );
}

#[test]
fn rejects_ipv6_and_name_clashes() {
    let v6 = "nodes: [{name: n, ips: ['fd00::1']}]";
    let topo = Topology::parse(v6, Path::new("t.yaml")).expect("valid topology");
    assert!(resolve(&topo, "p-").is_err(), "IPv6 is refused");
    let clash = "nodes: [{name: fabric}]";
    let topo = Topology::parse(clash, Path::new("t.yaml")).expect("valid topology");
    assert!(
        resolve(&topo, "p-").is_err(),
        "node named fabric clashes with the fabric netns"
    );
}
