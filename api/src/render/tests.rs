//! Exact-output tests of every table.

use super::*;
use crate::flow::{FlowEvent, FlowKind};
use crate::views::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn identities_like_cilium_identity_list() {
    let ids = vec![
        IdentityView {
            id: 256,
            labels: s(&["k8s:io.kubernetes.pod.namespace=default", "k8s:app=webpod"]),
        },
        IdentityView {
            id: 16777217,
            labels: s(&["cidr:20.1.1.1/32"]),
        },
        IdentityView {
            id: 2,
            labels: s(&["reserved:world"]),
        },
        IdentityView {
            id: 1,
            labels: s(&["reserved:host"]),
        },
    ];
    let want = "\
ID         LABELS
1          reserved:host
2          reserved:world
256        k8s:app=webpod
           k8s:io.kubernetes.pod.namespace=default
16777217   cidr:20.1.1.1/32
";
    assert_eq!(render_identities(&ids), want);
}

#[test]
fn endpoints_table_with_extra_addresses() {
    let eps = vec![
        EndpointView {
            name: "default/webpod-1".into(),
            security_identity: 1234,
            state: "ready".into(),
            ipv4: s(&["10.0.1.7", "10.0.1.8"]),
            ipv6: s(&["fd00::7"]),
        },
        EndpointView {
            name: "default/client-prod".into(),
            security_identity: 256,
            state: "ready".into(),
            ipv4: s(&["10.0.1.5"]),
            ipv6: vec![],
        },
    ];
    let want = "\
NAME                  SECURITY IDENTITY   ENDPOINT STATE   IPV4       IPV6
default/client-prod   256                 ready            10.0.1.5
default/webpod-1      1234                ready            10.0.1.7   fd00::7
                                                           10.0.1.8
";
    assert_eq!(render_endpoints(&eps), want);
}

#[test]
fn endpoint_detail_shows_both_directions() {
    let d = EndpointDetail {
        endpoint: EndpointView {
            name: "default/service".into(),
            security_identity: 257,
            state: "ready".into(),
            ipv4: s(&["10.0.1.9"]),
            ipv6: vec![],
        },
        labels: s(&["k8s:io.kubernetes.pod.namespace=default", "k8s:app=service"]),
        ingress: DirectionView {
            enforced: true,
            entries: vec![PolicyEntryView {
                identity: 256,
                identity_labels: s(&["k8s:env=prod"]),
                proto: "TCP".into(),
                port: 80,
                end_port: 80,
                verdict: "redirect".into(),
                proxy_port: Some(15001),
                policies: s(&["default/allow-public-from-prod"]),
            }],
        },
        egress: DirectionView::default(),
    };
    let want = "\
Endpoint:            default/service
Security identity:   257
State:               ready
IPv4:                10.0.1.9
IPv6:
Labels:              k8s:app=service
                     k8s:io.kubernetes.pod.namespace=default

Ingress policy: enforced
IDENTITY   LABELS         PORT/PROTO   VERDICT    PROXY PORT   DERIVED FROM
256        k8s:env=prod   80/TCP       Redirect   15001        default/allow-public-from-prod

Egress policy: not enforced (all traffic allowed)
";
    assert_eq!(render_endpoint_detail(&d), want);
}

#[test]
fn bpf_policy_like_cilium_bpf_policy_get() {
    let entry = |dir: &str, id: u32, labels: &[&str], proto: &str, port: u16, verdict: &str| {
        BpfPolicyEntryView {
            direction: dir.into(),
            identity: id,
            identity_labels: s(labels),
            proto: proto.into(),
            port,
            end_port: port,
            verdict: verdict.into(),
            proxy_port: (verdict == "redirect").then_some(15001),
            bytes: None,
            packets: None,
        }
    };
    let entries = vec![
        entry("egress", 0, &[], "ANY", 0, "allow"),
        entry(
            "ingress",
            257,
            &["k8s:io.kubernetes.pod.namespace=default", "k8s:env=prod"],
            "TCP",
            80,
            "redirect",
        ),
        entry("ingress", 1, &[], "ANY", 0, "allow"),
    ];
    let want = "\
POLICY     DIRECTION   LABELS (source:key[=value])               PORT/PROTO   PROXY PORT
Allow      Ingress     reserved:host                             ANY          NONE
Redirect   Ingress     k8s:env=prod                              80/TCP       15001
                       k8s:io.kubernetes.pod.namespace=default
Allow      Egress      ANY                                       ANY          NONE
";
    assert_eq!(render_bpf_policy(&entries), want);

    let mut counted = entry("ingress", 0, &[], "TCP", 80, "deny");
    counted.bytes = Some(1500);
    counted.packets = Some(3);
    let want = "\
POLICY   DIRECTION   LABELS (source:key[=value])   PORT/PROTO   PROXY PORT   BYTES   PACKETS
Deny     Ingress     ANY                           80/TCP       NONE         1500    3
";
    assert_eq!(render_bpf_policy(&[counted]), want);
}

#[test]
fn fqdn_cache_like_cilium_fqdn_cache_list() {
    let entries = vec![FqdnCacheView {
        endpoint: "default/mediabot".into(),
        source: "lookup".into(),
        name: "api.github.com.".into(),
        ttl: 60,
        expires_unix: 1_709_210_096,
        ips: s(&["140.82.112.5", "140.82.112.6"]),
    }];
    let want = "\
Endpoint           Source   FQDN              TTL   ExpirationTime         IPs
default/mediabot   lookup   api.github.com.   60    2024-02-29T12:34:56Z   140.82.112.5,140.82.112.6
";
    assert_eq!(render_fqdn_cache(&entries), want);
}

#[test]
fn policies_with_revision() {
    let p = PolicyListView {
        revision: 3,
        policies: vec![
            PolicyView {
                name: "allow-public-from-prod".into(),
                namespace: "default".into(),
                kind: "CiliumNetworkPolicy".into(),
                source: "policies/l7.yaml:1".into(),
            },
            PolicyView {
                name: "cidr-rule".into(),
                namespace: String::new(),
                kind: "CiliumClusterwideNetworkPolicy".into(),
                source: "a.yaml:12".into(),
            },
        ],
    };
    let want = "\
Revision: 3
NAME                     NAMESPACE   KIND                             SOURCE
allow-public-from-prod   default     CiliumNetworkPolicy              policies/l7.yaml:1
cidr-rule                -           CiliumClusterwideNetworkPolicy   a.yaml:12
";
    assert_eq!(render_policies(&p), want);
}

#[test]
fn flow_lines_like_hubble_observe() {
    let mut ev = FlowEvent {
        time_unix_ms: 1_749_092_645_120,
        kind: FlowKind::L7Http,
        verdict: "DENIED".into(),
        reason: "http-request".into(),
        direction: "ingress".into(),
        endpoint: "default/service".into(),
        src: "default/client-prod:43210".into(),
        dst: "default/service:80".into(),
        src_identity: 256,
        dst_identity: 257,
        proto: "TCP".into(),
        summary: "GET http://service/private => 403".into(),
        src_endpoint: String::new(),
        dst_endpoint: String::new(),
    };
    assert_eq!(
        render_flow(&ev),
        "Jun  5 03:04:05.120: default/client-prod:43210 (ID:256) -> default/service:80 (ID:257) \
         http-request DENIED (GET http://service/private => 403)"
    );
    ev.kind = FlowKind::Drop;
    ev.src = "192.168.10.100:5000".into();
    ev.src_identity = 2;
    ev.reason = "Policy denied".into();
    ev.verdict = "DROPPED".into();
    ev.summary.clear();
    assert_eq!(
        render_flow(&ev),
        "Jun  5 03:04:05.120: 192.168.10.100:5000 (world) -> default/service:80 (ID:257) \
         Policy denied DROPPED"
    );
}

#[test]
fn status_summary() {
    let st = StatusView {
        datapath: DatapathStatus {
            ok: true,
            interfaces: s(&["veth1", "veth2"]),
        },
        proxies: ProxiesStatus {
            ok: true,
            http_port: 15001,
            dns_port: 15053,
        },
        policy_revision: 4,
        endpoints: 5,
        identities: 14,
        policies: 3,
        fqdn_names: 1,
        last_error: None,
    };
    let want = "\
Datapath:     Ok   2 interfaces: veth1, veth2
Proxies:      Ok   HTTP 15001, DNS 15053
Policy:       revision 4, 3 policies
Endpoints:    5
Identities:   14
FQDN names:   1
Last error:   none
";
    assert_eq!(render_status(&st), want);
    assert!(st.healthy(), "datapath and proxies ok");
    let mut broken = st.clone();
    broken.proxies.ok = false;
    assert!(!broken.healthy(), "a failed proxy is unhealthy");
}

#[test]
fn trace_ends_with_final_verdict() {
    let v = TraceView {
        lines: s(&["Tracing From: [k8s:env=dev]", "  No rule allows"]),
        allowed: false,
    };
    assert_eq!(
        render_trace(&v),
        "Tracing From: [k8s:env=dev]\n  No rule allows\nFinal verdict: DENIED\n"
    );
}

#[test]
fn port_proto_forms() {
    assert_eq!(port_proto("ANY", 0, 0), "ANY");
    assert_eq!(port_proto("udp", 0, 0), "ANY/UDP");
    assert_eq!(port_proto("TCP", 8080, 8090), "8080-8090/TCP");
    assert_eq!(port_proto("ANY", 53, 53), "53/ANY");
    assert_eq!(port_proto("TCP", 80, 0), "80/TCP");
}
