//! Table tests for per-query decisions.

use std::net::{IpAddr, SocketAddr};

use palisade_policy::fqdn::FqdnSelector;

use super::*;
use crate::snapshot::{DnsPeer, DnsPortRule, DnsSnapshot, EndpointDns};

const KUBE_DNS: u32 = 300;

fn snapshot() -> DnsSnapshot {
    DnsSnapshot {
        revision: 7,
        ipcache: vec![
            ("10.96.0.10/32".parse().expect("net"), KUBE_DNS),
            ("10.96.0.0/16".parse().expect("net"), 400),
        ],
        endpoints: vec![
            EndpointDns {
                name: "default/mediabot".into(),
                ips: vec!["10.0.1.5".parse().expect("ip")],
                identity: 256,
                rules: vec![
                    DnsPortRule {
                        port: 53,
                        peers: vec![DnsPeer {
                            identities: Some(vec![KUBE_DNS]),
                            patterns: Some(vec![
                                FqdnSelector::pattern("*.github.com"),
                                FqdnSelector::name("cilium.io"),
                                FqdnSelector::pattern("bad pattern!"),
                            ]),
                        }],
                    },
                    DnsPortRule {
                        port: 5353,
                        peers: vec![DnsPeer {
                            identities: None,
                            patterns: None,
                        }],
                    },
                ],
            },
            EndpointDns {
                name: "default/anyport".into(),
                ips: vec!["10.0.1.6".parse().expect("ip")],
                identity: 257,
                rules: vec![DnsPortRule {
                    port: 0,
                    peers: vec![DnsPeer {
                        identities: Some(vec![0]),
                        patterns: Some(vec![FqdnSelector::pattern("*")]),
                    }],
                }],
            },
        ],
    }
}

#[test]
fn decision_table() {
    let p = CompiledPolicy::compile(&snapshot());
    let cases = [
        // (src, resolver, qname, allowed)
        ("10.0.1.5", "10.96.0.10:53", "api.github.com.", true),
        ("10.0.1.5", "10.96.0.10:53", "API.GitHub.COM", true),
        ("10.0.1.5", "10.96.0.10:53", "github.com.", false),
        ("10.0.1.5", "10.96.0.10:53", "a.b.github.com.", false),
        ("10.0.1.5", "10.96.0.10:53", "cilium.io.", true),
        ("10.0.1.5", "10.96.0.10:53", "docs.cilium.io.", false),
        ("10.0.1.5", "10.96.0.10:53", "example.org.", false),
        ("10.0.1.5", "10.96.0.11:53", "api.github.com.", false), // identity 400, not kube-dns
        ("10.0.1.5", "8.8.8.8:53", "api.github.com.", false),    // world
        ("10.0.1.5", "10.96.0.10:54", "api.github.com.", false), // no rule for port
        ("10.0.1.5", "8.8.8.8:5353", "anything.example.", true), // L3/L4-only allow
        ("10.0.1.6", "1.1.1.1:853", "example.org.", true),       // any port, identity 0
        ("10.0.1.7", "10.96.0.10:53", "api.github.com.", false), // unknown source
    ];
    for (src, resolver, qname, want) in cases {
        let src: IpAddr = src.parse().expect("src");
        let resolver: SocketAddr = resolver.parse().expect("resolver");
        let got = p.decide(src, resolver, qname);
        assert_eq!(
            matches!(got, Decision::Allow { .. }),
            want,
            "{src} → {resolver} {qname}: {got:?}"
        );
    }
}

#[test]
fn invalid_selector_is_reported_and_matches_nothing() {
    let p = CompiledPolicy::compile(&snapshot());
    assert_eq!(p.invalid.len(), 1, "one bad selector: {:?}", p.invalid);
    assert_eq!(p.invalid[0].0, "default/mediabot");
    assert_eq!(p.revision(), 7);
}

#[test]
fn ipcache_longest_prefix_wins() {
    let p = CompiledPolicy::compile(&snapshot());
    let id = |s: &str| p.identity_of(s.parse().expect("ip"));
    assert_eq!(id("10.96.0.10"), KUBE_DNS);
    assert_eq!(id("10.96.3.3"), 400);
    assert_eq!(id("192.0.2.1"), WORLD_IDENTITY);
    assert_eq!(id("::1"), WORLD_IDENTITY);
}

#[test]
fn deny_reasons() {
    let p = CompiledPolicy::compile(&snapshot());
    let reason = |src: &str, r: &str, q: &str| match p.decide(
        src.parse().expect("ip"),
        r.parse().expect("addr"),
        q,
    ) {
        Decision::Deny { reason, .. } => reason,
        Decision::Allow { .. } => "allowed",
    };
    assert_eq!(
        reason("10.0.1.5", "10.96.0.10:53", "x.org"),
        "name not allowed"
    );
    assert_eq!(
        reason("10.0.1.5", "10.96.0.10:99", "x.org"),
        "no DNS rule for this port"
    );
    assert_eq!(
        reason("10.0.1.5", "8.8.8.8:53", "x.org"),
        "no DNS rule for this resolver"
    );
    assert_eq!(
        reason("10.9.9.9", "8.8.8.8:53", "x.org"),
        "source is not a local endpoint"
    );
}
