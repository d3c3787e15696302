//! Bench helper: loads the datapath inside a node namespace, programs two pods that may talk
//! on port 5201 (iperf3) plus `extra` filler policy entries on other endpoint ids, attaches
//! to the two host-side veths and exits (the pinned links keep enforcing).
//!
//! Usage: datapath_setup <netns> <pin_dir> <host_if_a> <host_if_b> <extra_entries>

use std::{net::IpAddr, path::Path};

use palisade_bpf::{Datapath, Direction, EndpointInfo, PolicyEntry, Verdict};

fn rule(direction: Direction, identity: u32, proto: u8, port: u16) -> PolicyEntry {
    PolicyEntry {
        direction,
        identity,
        proto,
        port,
        end_port: port,
        verdict: Verdict::Allow,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(
        args.len(),
        6,
        "usage: datapath_setup <netns> <pin_dir> <if_a> <if_b> <extra>"
    );
    let extra: usize = args[5].parse().expect("extra entries");
    let f = std::fs::File::open(format!("/run/netns/{}", args[1])).expect("netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");

    let mut dp = Datapath::load(Path::new(&args[2])).expect("load");
    let ep = |id, identity| EndpointInfo {
        id,
        identity,
        ifindex: 0,
        ingress_enforced: true,
        egress_enforced: true,
    };
    let a: IpAddr = "10.201.0.1".parse().expect("ip");
    let b: IpAddr = "10.201.0.2".parse().expect("ip");
    dp.set_endpoint(a, ep(1, 1001)).expect("ep a");
    dp.set_endpoint(b, ep(2, 1002)).expect("ep b");
    dp.set_ipcache("10.201.0.1/32".parse().expect("net"), 1001)
        .expect("ipcache");
    dp.set_ipcache("10.201.0.2/32".parse().expect("net"), 1002)
        .expect("ipcache");
    let mut a_rules = vec![
        rule(Direction::Egress, 1002, 6, 5201),
        rule(Direction::Egress, 1002, 17, 5201),
        rule(Direction::Egress, 1002, 1, 8),
    ];
    let mut b_rules = vec![
        rule(Direction::Ingress, 1001, 6, 5201),
        rule(Direction::Ingress, 1001, 17, 5201),
        rule(Direction::Ingress, 1001, 1, 8),
    ];
    // Pad the two real endpoints to 10 entries with rules for other identities.
    for i in 0..2u32 {
        a_rules.push(rule(Direction::Egress, 3000 + i, 6, 80));
        b_rules.push(rule(Direction::Ingress, 3000 + i, 6, 80));
    }
    dp.sync_policy(1, &a_rules).expect("sync a");
    dp.sync_policy(2, &b_rules).expect("sync b");
    // Filler: 1000 entries per fake endpoint id.
    for (n, chunk) in (0..extra).collect::<Vec<_>>().chunks(1000).enumerate() {
        let entries: Vec<PolicyEntry> = chunk
            .iter()
            .map(|i| rule(Direction::Ingress, 5000 + *i as u32, 6, 80))
            .collect();
        dp.sync_policy(100 + n as u16, &entries)
            .expect("sync filler");
    }
    dp.attach_endpoint(&args[3]).expect("attach a");
    dp.attach_endpoint(&args[4]).expect("attach b");
    println!("policy map entries: {}", dp.policy_map_len().expect("len"));
}
