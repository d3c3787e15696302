//! Table tests of the BPF programs on crafted packets (BPF_PROG_TEST_RUN): lookup precedence,
//! deny over allow, port ranges, default deny vs not enforced, conntrack replies, marks,
//! spoofing, events, counters, map reuse on reload and policy sync accounting. Needs root.

#[path = "helpers/bpffs.rs"]
mod bpffs;
#[path = "helpers/packet.rs"]
mod packet;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use packet::{hop_by_hop, icmp, icmpv6_body, ipv6, tcp, udp, ACK, RST, SYN};
use palisade_bpf::{
    Datapath, DatapathError, Direction, DropReason, EndpointInfo, EventKind, Hook, PolicyEntry,
    Verdict, TC_ACT_OK, TC_ACT_SHOT,
};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const NET_2001: Ipv4Addr = Ipv4Addr::new(10, 1, 9, 9); // in 10.1.0.0/16 -> 2001
const NET_2002: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 5); // in 10.1.2.0/24 -> 2002
const WORLD: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);
const PROXY_PORT: u16 = 15999;
const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

fn entry(
    direction: Direction,
    identity: u32,
    proto: u8,
    ports: (u16, u16),
    verdict: Verdict,
) -> PolicyEntry {
    PolicyEntry {
        direction,
        identity,
        proto,
        port: ports.0,
        end_port: ports.1,
        verdict,
    }
}

fn ep(id: u16, identity: u32, ingress: bool, egress: bool) -> EndpointInfo {
    EndpointInfo {
        id,
        identity,
        ifindex: 0,
        ingress_enforced: ingress,
        egress_enforced: egress,
    }
}

/// A: egress and ingress enforced; B: ingress enforced; C: nothing enforced.
fn program(dp: &Datapath) {
    use Direction::{Egress, Ingress};
    use Verdict::{Allow, Deny};
    dp.set_endpoint(IpAddr::V4(A), ep(1, 1001, true, true))
        .expect("ep A");
    dp.set_endpoint(IpAddr::V4(B), ep(2, 1002, true, false))
        .expect("ep B");
    dp.set_endpoint(IpAddr::V4(C), ep(3, 1003, false, false))
        .expect("ep C");
    dp.set_ipcache("10.1.0.0/16".parse().expect("net"), 2001)
        .expect("ipcache");
    dp.set_ipcache("10.1.2.0/24".parse().expect("net"), 2002)
        .expect("ipcache");
    let a = [
        entry(Egress, 1002, 0, (0, 0), Allow),
        entry(Egress, 2002, 17, (53, 53), Allow),
        entry(Egress, 0, 6, (1000, 2000), Allow),
        entry(Egress, 2001, 0, (0, 0), Deny),
    ];
    let b = [
        entry(Ingress, 1001, 6, (80, 80), Allow),
        entry(Ingress, 1001, 6, (20, 30), Allow),
        entry(Ingress, 0, 6, (22, 22), Deny),
        entry(Ingress, 0, 6, (8080, 8090), Allow),
        entry(Ingress, 1003, 0, (0, 0), Allow),
        entry(
            Ingress,
            0,
            6,
            (443, 443),
            Verdict::Redirect {
                proxy_port: PROXY_PORT,
            },
        ),
        entry(Ingress, 1001, 1, (8, 8), Allow),
        entry(Ingress, 1001, 17, (5000, 5000), Allow),
        entry(Ingress, 1001, 17, (4096, 8191), Deny),
    ];
    let sa = dp.sync_policy(1, &a).expect("sync A");
    let sb = dp.sync_policy(2, &b).expect("sync B");
    assert_eq!(sa.deleted + sb.deleted, 0, "fresh maps have nothing stale");
}

fn run(dp: &Datapath, hook: Hook, frame: &[u8]) -> u32 {
    run_marked(dp, hook, frame, 0)
}

fn run_marked(dp: &Datapath, hook: Hook, frame: &[u8], mark: u32) -> u32 {
    dp.test_run(hook, frame, mark, 0).expect("test_run")
}

#[test]
fn verdict_table() {
    let pins = bpffs::PinDir::new();
    let dp = Datapath::load(pins.path()).expect("load datapath");
    program(&dp);
    let mut events = dp.events().expect("events");
    use Hook::{FromContainer as FC, FromNetdev as FN, ToContainer as TC};
    #[rustfmt::skip]
    let table: Vec<(&str, Hook, Vec<u8>, u32)> = vec![
        ("L3+L4 exact allow", FC, tcp(A, 40000, B, 80, SYN), TC_ACT_OK),
        ("no entry for port 81: default deny", FC, tcp(A, 40001, B, 81, SYN), TC_ACT_SHOT),
        ("range 20-30 allows 23", FC, tcp(A, 40002, B, 23, SYN), TC_ACT_OK),
        ("wildcard deny on 22 beats identity allow 20-30", FC, tcp(A, 40003, B, 22, SYN), TC_ACT_SHOT),
        ("wildcard range 8080-8090 allows 8085", FC, tcp(A, 40004, B, 8085, SYN), TC_ACT_OK),
        ("8091 outside the range", FC, tcp(A, 40005, B, 8091, SYN), TC_ACT_SHOT),
        ("same-identity broader deny beats narrower allow", FC, udp(A, 40006, B, 5000), TC_ACT_SHOT),
        ("ICMP echo allowed by type 8", FC, icmp(A, B, 8, 77), TC_ACT_OK),
        ("L3-only allow for C", TC, tcp(C, 40007, B, 9999, SYN), TC_ACT_OK),
        ("L4 wildcard redirect beats L3-only; egress hook fails closed", TC, tcp(C, 40008, B, 443, SYN), TC_ACT_SHOT),
        ("redirect without a proxy socket drops", FC, tcp(C, 40009, B, 443, SYN), TC_ACT_SHOT),
        ("egress to ipcache /24 identity on UDP 53", FC, udp(A, 40010, NET_2002, 53), TC_ACT_OK),
        ("egress deny for /16 identity", FC, udp(A, 40011, NET_2001, 53), TC_ACT_SHOT),
        ("egress to world TCP 1500 by wildcard range", FC, tcp(A, 40012, WORLD, 1500, SYN), TC_ACT_OK),
        ("egress to world TCP 2001 default deny", FC, tcp(A, 40013, WORLD, 2001, SYN), TC_ACT_SHOT),
        ("not enforced endpoint C", FC, udp(C, 40014, WORLD, 9), TC_ACT_OK),
        ("reply to allowed A->B:80 passes A's default-deny ingress", FC, tcp(B, 80, A, 40000, SYN | ACK), TC_ACT_OK),
        ("reply also passes at A's to_container", TC, tcp(B, 80, A, 40000, ACK), TC_ACT_OK),
        ("new flow B->A default deny (A ingress)", FC, tcp(B, 40015, A, 80, SYN), TC_ACT_SHOT),
        ("echo reply passes via conntrack", TC, icmp(B, A, 0, 77), TC_ACT_OK),
        ("echo reply with another id does not", TC, icmp(B, A, 0, 78), TC_ACT_SHOT),
        ("world reply to allowed flow at external hook", FN, tcp(WORLD, 1500, A, 40012, SYN | ACK), TC_ACT_OK),
        ("world new flow to A at external hook", FN, tcp(WORLD, 1500, A, 40099, SYN), TC_ACT_SHOT),
        ("external traffic not for a local pod is not ours", FN, tcp(WORLD, 1, NET_2002, 2, SYN), TC_ACT_OK),
        ("local pod address arriving from outside is forged", FN, tcp(C, 1, B, 80, SYN), TC_ACT_SHOT),
        ("unknown source address from a pod is spoofed", FC, tcp(Ipv4Addr::new(10, 0, 0, 99), 1, B, 80, SYN), TC_ACT_SHOT),
        ("MLDv2 report behind hop-by-hop is link control", FC, ipv6(LINK_LOCAL, MLDV2_ROUTERS, 0, &hop_by_hop(58, &icmpv6_body(143))), TC_ACT_OK),
        ("MLDv1 report without extension header too", FC, ipv6(LINK_LOCAL, MLDV2_ROUTERS, 58, &icmpv6_body(131)), TC_ACT_OK),
        ("neighbour solicitation passes", FC, ipv6(LINK_LOCAL, MLDV2_ROUTERS, 58, &icmpv6_body(135)), TC_ACT_OK),
        ("UDP behind hop-by-hop to link multicast is not", FC, ipv6(LINK_LOCAL, MLDV2_ROUTERS, 0, &hop_by_hop(17, &[0u8; 8])), TC_ACT_SHOT),
        ("UDP from link-local to link multicast is spoofed", FC, ipv6(LINK_LOCAL, MLDV2_ROUTERS, 17, &[0u8; 8]), TC_ACT_SHOT),
        ("MLD type to a unicast address is not link control", FC, ipv6(LINK_LOCAL, LINK_LOCAL, 58, &icmpv6_body(143)), TC_ACT_SHOT),
    ];
    for (name, hook, frame, want) in &table {
        let got = run(&dp, *hook, frame);
        assert_eq!(got, *want, "case '{name}': got {got}, want {want}");
    }

    // Proxy upstream marks skip policy but open conntrack for the replies.
    let up = tcp(A, 40020, WORLD, 2001, SYN);
    assert_eq!(run(&dp, FC, &up), TC_ACT_SHOT, "unmarked: default deny");
    assert_eq!(
        run_marked(&dp, FC, &up, 0xb00),
        TC_ACT_OK,
        "egress-proxy mark passes"
    );
    let reply = tcp(WORLD, 2001, A, 40020, SYN | ACK);
    assert_eq!(
        run(&dp, TC, &reply),
        TC_ACT_OK,
        "reply to a proxy upstream flow passes"
    );

    // RST closes the flow; a fresh SYN on the same tuple is a new flow again (policy applies).
    assert_eq!(
        run(&dp, FC, &tcp(B, 80, A, 40000, RST)),
        TC_ACT_OK,
        "RST of a reply passes"
    );
    assert_eq!(
        run(&dp, FC, &tcp(B, 80, A, 40000, SYN)),
        TC_ACT_SHOT,
        "port reuse after RST"
    );

    assert!(
        dp.has_conntrack_to(IpAddr::V4(WORLD)).expect("ct"),
        "flow to 8.8.8.8 is live"
    );
    assert!(
        !dp.has_conntrack_to("9.9.9.9".parse().expect("ip"))
            .expect("ct"),
        "no flow to 9.9.9.9"
    );
    assert_eq!(dp.conntrack_gc().expect("gc"), 0, "nothing has expired yet");

    let evs = events.poll();
    let deny22 = evs
        .iter()
        .find(|e| e.dst.port() == 22)
        .expect("drop event for port 22");
    assert_eq!(deny22.kind, EventKind::Drop, "{deny22:?}");
    assert_eq!(deny22.reason, DropReason::PolicyDeny, "{deny22:?}");
    assert_eq!(
        (deny22.direction, deny22.endpoint),
        (Direction::Ingress, 2),
        "{deny22:?}"
    );
    assert_eq!(
        (deny22.src_identity, deny22.dst_identity),
        (1001, 1002),
        "{deny22:?}"
    );
    let e81 = evs
        .iter()
        .find(|e| e.dst.port() == 81)
        .expect("drop event for port 81");
    assert_eq!(e81.reason, DropReason::PolicyDefault, "{e81:?}");
    let r443 = evs
        .iter()
        .find(|e| e.dst.port() == 443 && e.hook == TC)
        .expect("443 event");
    assert_eq!(r443.reason, DropReason::RedirectAtEgress, "{r443:?}");
    let p443 = evs
        .iter()
        .find(|e| e.dst.port() == 443 && e.hook == FC)
        .expect("443 event");
    assert_eq!(p443.reason, DropReason::ProxyMissing, "{p443:?}");
    let spoof = evs.iter().find(|e| e.reason == DropReason::SpoofedSource);
    assert!(spoof.is_some(), "spoofed source reported");
    let new80 = evs
        .iter()
        .filter(|e| e.dst.port() == 80 && e.kind == EventKind::Allow)
        .count();
    assert_eq!(
        new80, 1,
        "one allow event for the new A->B:80 flow, none for its replies"
    );

    let ca = dp.counters(1).expect("counters A");
    assert!(ca.egress_forwarded_packets >= 4, "A forwarded: {ca:?}");
    assert!(ca.egress_dropped_packets >= 3, "A egress drops: {ca:?}");
    let cb = dp.counters(2).expect("counters B");
    assert!(cb.ingress_dropped_packets >= 4, "B ingress drops: {cb:?}");
}

#[test]
fn reload_reuses_maps_and_sync_is_minimal() {
    let pins = bpffs::PinDir::new();
    let dp = Datapath::load(pins.path()).expect("load datapath");
    program(&dp);
    let before = dp.policy_entries(2).expect("entries");
    assert!(!before.is_empty(), "B has entries");
    drop(dp);

    let dp = Datapath::load(pins.path()).expect("reload datapath");
    let after = dp.policy_entries(2).expect("entries");
    assert_eq!(before.len(), after.len(), "policy entries survive a reload");
    assert_eq!(
        dp.ipcache_entries().expect("ipcache").len(),
        2,
        "ipcache survives"
    );
    assert_eq!(
        run(&dp, Hook::FromContainer, &tcp(A, 1, B, 80, SYN)),
        TC_ACT_OK,
        "endpoints survive"
    );

    // Re-syncing the same desired set writes nothing; a change writes and deletes exactly it.
    use Direction::Egress;
    let a = [
        entry(Egress, 1002, 0, (0, 0), Verdict::Allow),
        entry(Egress, 2002, 17, (53, 53), Verdict::Allow),
        entry(Egress, 0, 6, (1000, 2000), Verdict::Allow),
        entry(Egress, 2001, 0, (0, 0), Verdict::Deny),
    ];
    let s = dp.sync_policy(1, &a).expect("resync");
    assert_eq!((s.written, s.deleted), (0, 0), "unchanged set: {s:?}");
    assert!(s.unchanged > 4, "range expanded into blocks: {s:?}");
    let s = dp.sync_policy(1, &a[..3]).expect("shrink");
    assert_eq!(
        (s.written, s.deleted),
        (0, 1),
        "one stale key deleted: {s:?}"
    );
    assert_eq!(
        run(&dp, Hook::FromContainer, &udp(A, 7, NET_2001, 53)),
        TC_ACT_SHOT,
        "deny gone: default deny still drops"
    );
    let entries = dp.policy_entries(1).expect("entries");
    let blocks: Vec<_> = entries.iter().filter(|e| e.proto == 6).collect();
    let covered: u32 = blocks
        .iter()
        .map(|e| u32::from(e.end_port - e.port) + 1)
        .sum();
    assert_eq!(
        covered, 1001,
        "blocks of 1000-2000 cover exactly 1001 ports: {blocks:?}"
    );

    // Capacity: refuse the whole set, write nothing.
    let huge: Vec<PolicyEntry> = (1..=20_000)
        .map(|id| entry(Egress, id, 0, (1, 65535), Verdict::Allow))
        .collect();
    let len_before = dp.policy_map_len().expect("len");
    match dp.sync_policy(3, &huge) {
        Err(DatapathError::PolicyCapacity { needed, capacity }) => {
            assert!(needed > capacity, "needed {needed} capacity {capacity}")
        }
        other => panic!("expected a capacity error, got {other:?}"),
    }
    assert_eq!(
        dp.policy_map_len().expect("len"),
        len_before,
        "nothing written on refusal"
    );
}
