//! Every scenario of shared/scenarios.md whose outcome is a policy decision, through `trace`
//! over the shipped topology and example policies in config/.

use std::path::{Path, PathBuf};

use palisade_policy::cluster::LearnedNames;
use palisade_policy::identity::Allocator;
use palisade_policy::load::load_paths;
use palisade_policy::resolve::ResolveOptions;
use palisade_policy::trace::{trace, HttpRequest, TraceRequest};
use palisade_policy::{Engine, Topology};

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn engine_with(files: &[&str], learned: &[(&str, &str)]) -> Engine {
    let topo = Topology::load(&config().join("topology.yaml")).expect("topology loads");
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|f| config().join("policies").join(f))
        .collect();
    let (set, errors) = load_paths(&paths);
    assert!(errors.is_empty(), "policies load: {errors:?}");
    let mut names = LearnedNames::new();
    for (name, ip) in learned {
        names
            .entry(palisade_policy::fqdn::normalize_name(name))
            .or_default()
            .insert(ip.parse().unwrap());
    }
    Engine::new(
        topo,
        set.policies,
        &names,
        Allocator::new(),
        ResolveOptions::default(),
    )
}

/// (method, path, headers) of an HTTP request to trace.
type Http<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

struct Flow<'a> {
    from: &'a str,
    to: &'a str,
    port: u16,
    proto: u8,
    http: Option<Http<'a>>,
    dns: Option<&'a str>,
}

fn flow<'a>(from: &'a str, to: &'a str, port: u16, proto: u8) -> Flow<'a> {
    Flow {
        from,
        to,
        port,
        proto,
        http: None,
        dns: None,
    }
}

fn allowed(engine: &Engine, f: &Flow<'_>) -> bool {
    let req = TraceRequest {
        from: f.from.into(),
        to: f.to.into(),
        dport: f.port,
        proto: f.proto,
        http: f.http.map(|(m, p, h)| HttpRequest {
            method: Some(m.into()),
            path: Some(p.into()),
            host: None,
            headers: h
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }),
        dns_name: f.dns.map(str::to_string),
    };
    let r = trace(engine, &req).expect("trace runs");
    assert!(
        r.lines.last().unwrap().starts_with("Final verdict: "),
        "{:?}",
        r.lines
    );
    r.allowed
}

fn check(engine: &Engine, cases: &[(Flow<'_>, bool)]) {
    for (f, want) in cases {
        assert_eq!(
            allowed(engine, f),
            *want,
            "{} -> {} {}/{} http={:?} dns={:?}",
            f.from,
            f.to,
            f.port,
            f.proto,
            f.http.map(|h| (h.0, h.1)),
            f.dns
        );
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

#[test]
fn s1_same_labels_share_identity() {
    let e = engine_with(&[], &[]);
    let a = &e.state.endpoints["default/webpod"];
    let b = &e.state.endpoints["default/webpod-2"];
    assert_eq!(
        a.identity, b.identity,
        "pod-template-hash is not a security label"
    );
    assert!(a.identity >= 256);
    let prod = &e.state.endpoints["default/prod-pod"];
    let client = &e.state.endpoints["default/client-prod"];
    assert_eq!(prod.identity, client.identity, "same labels, same identity");
    let listing = palisade_policy::identity::render_list(e.alloc.all());
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines[0].starts_with("ID"), "{listing}");
    assert!(
        lines[1].starts_with("1 ") && lines[1].ends_with("reserved:host"),
        "{listing}"
    );
    assert!(
        lines[10].starts_with("10 ") && lines[10].ends_with("reserved:world-ipv6"),
        "{listing}"
    );
    assert!(
        listing.contains("k8s:io.cilium.k8s.policy.serviceaccount=default"),
        "{listing}"
    );
}

#[test]
fn s2_entities() {
    let dev = "default/dev-pod";
    let before = engine_with(&[], &[]);
    check(
        &before,
        &[
            (flow(dev, "default/webpod", 80, TCP), true),
            (flow(dev, "node:k8s-ctr", 8, ICMP), true),
        ],
    );

    // `egress: []` alone changes nothing.
    let deny_only = engine_with(&["s2-entities/default-deny-dev.yaml"], &[]);
    check(
        &deny_only,
        &[
            (flow(dev, "default/webpod", 80, TCP), true),
            (flow(dev, "node:k8s-ctr", 8, ICMP), true),
        ],
    );

    let both = engine_with(
        &[
            "s2-entities/default-deny-dev.yaml",
            "s2-entities/dev-to-host.yaml",
        ],
        &[],
    );
    let host_only = engine_with(&["s2-entities/dev-to-host.yaml"], &[]);
    for e in [&both, &host_only] {
        check(
            e,
            &[
                (flow(dev, "node:k8s-w1", 8, ICMP), true),
                (flow(dev, "192.168.10.101", 8, ICMP), true),
                (flow(dev, "kube-system/kube-dns", 53, UDP), false),
                (flow(dev, "node:k8s-ctr", 8, ICMP), false),
                (flow(dev, "192.168.10.102", 8, ICMP), false),
            ],
        );
    }
    let remote = engine_with(
        &[
            "s2-entities/default-deny-dev.yaml",
            "s2-entities/dev-to-host.yaml",
            "s2-entities/dev-to-remote-node.yaml",
        ],
        &[],
    );
    check(
        &remote,
        &[
            (flow(dev, "192.168.10.100", 8, ICMP), true),
            (flow(dev, "192.168.10.102", 8, ICMP), true),
            (flow(dev, "kube-system/kube-dns", 53, UDP), false),
        ],
    );
}

#[test]
fn s3_nodes() {
    let e = engine_with(&["s3-nodes/to-prod-from-control-plane-nodes.yaml"], &[]);
    check(
        &e,
        &[
            (flow("node:k8s-ctr", "default/prod-pod", 80, TCP), true),
            (flow("192.168.10.100", "default/prod-pod", 80, TCP), true),
            (flow("node:k8s-w2", "default/prod-pod", 80, TCP), false),
            (flow("default/dev-pod", "default/prod-pod", 80, TCP), false),
        ],
    );
}

#[test]
fn s4_cidr_cnp_and_knp_agree() {
    for file in ["s4-cidr/cidr-rule.yaml", "s4-cidr-knp/cidr-rule-knp.yaml"] {
        let e = engine_with(&[file], &[]);
        let me = "default/myservice";
        check(
            &e,
            &[
                (flow(me, "20.1.1.1", 80, TCP), true),
                (flow(me, "20.1.1.2", 80, TCP), false),
                (flow(me, "10.1.1.1", 80, TCP), true),
                (flow(me, "10.96.0.10", 80, TCP), false),
                (flow(me, "10.111.0.1", 443, TCP), false),
                (flow(me, "10.112.0.1", 443, TCP), true),
                // CIDR rules never select cluster endpoints.
                (flow(me, "default/webpod", 80, TCP), false),
            ],
        );
    }
}

#[test]
fn s5_services() {
    let e = engine_with(&["s5-services/service-rule.yaml"], &[]);
    check(
        &e,
        &[
            (flow("default/app2", "default/myservice", 80, TCP), true),
            (
                flow("default/app2", "another-namespace/staging-pod", 80, TCP),
                true,
            ),
            (flow("default/app2", "default/webpod", 80, TCP), false),
        ],
    );
}

#[test]
fn s6_fqdn() {
    let e = engine_with(
        &["s6-fqdn/fqdn.yaml"],
        &[("api.github.com", "203.0.113.10")],
    );
    let bot = "default/mediabot";
    let dns = |name| Flow {
        dns: Some(name),
        ..flow(bot, "kube-system/kube-dns", 53, UDP)
    };
    check(
        &e,
        &[
            (dns("api.github.com"), true),
            (dns("support.github.com"), true),
            (flow(bot, "203.0.113.10", 80, TCP), true),
            (flow(bot, "203.0.113.11", 80, TCP), false),
            (flow(bot, "default/webpod", 80, TCP), false),
        ],
    );
    // Before anything is learned, the FQDN allows nothing.
    let cold = engine_with(&["s6-fqdn/fqdn.yaml"], &[]);
    check(&cold, &[(flow(bot, "203.0.113.10", 80, TCP), false)]);
}

#[test]
fn s7_dns_refused() {
    let e = engine_with(&["s7-dns/fqdn.yaml"], &[]);
    let bot = "default/mediabot";
    let dns = |name, proto| Flow {
        dns: Some(name),
        ..flow(bot, "kube-system/kube-dns", 53, proto)
    };
    check(
        &e,
        &[
            (dns("api.github.com", UDP), true),
            (dns("API.GitHub.com.", UDP), true),
            (dns("api.github.com", TCP), true),
            (dns("example.org", UDP), false),
            (dns("github.com", UDP), false),
        ],
    );
}

#[test]
fn s8_l4() {
    let e = engine_with(&["s8-l4/l4-rule.yaml"], &[]);
    check(
        &e,
        &[
            (flow("default/myservice", "default/webpod", 80, TCP), true),
            (flow("default/myservice", "20.1.1.1", 80, TCP), true),
            (
                flow("default/myservice", "default/webpod", 8080, TCP),
                false,
            ),
            (flow("default/myservice", "default/webpod", 80, UDP), false),
        ],
    );
}

#[test]
fn s9_l7_http() {
    let before = engine_with(&[], &[]);
    let get = |from, path| Flow {
        http: Some(("GET", path, &[][..])),
        ..flow(from, "default/service-pod", 80, TCP)
    };
    check(
        &before,
        &[
            (get("default/client-prod", "/private"), true),
            (get("default/client-dev", "/public"), true),
        ],
    );
    let e = engine_with(&["s9-l7-http/allow-public-from-prod.yaml"], &[]);
    check(
        &e,
        &[
            (get("default/client-prod", "/public"), true),
            (get("default/client-prod", "/private"), false),
            (get("default/client-prod", "/public/../private"), false),
            (get("default/client-prod", "//public"), true),
            (
                Flow {
                    http: Some(("POST", "/public", &[][..])),
                    ..flow("default/client-prod", "default/service-pod", 80, TCP)
                },
                false,
            ),
            (get("default/client-dev", "/public"), false),
            (get("default/client-dev", "/private"), false),
        ],
    );
}

#[test]
fn s10_l7_headers() {
    let e = engine_with(&["s10-l7-headers/l7-rule.yaml"], &[]);
    let req = |m, p, h: &'static [(&'static str, &'static str)]| Flow {
        http: Some((m, p, h)),
        ..flow("default/client-prod", "default/myservice", 80, TCP)
    };
    check(
        &e,
        &[
            (req("GET", "/path1", &[]), true),
            (req("GET", "/path1/x", &[]), false),
            (req("PUT", "/path2", &[("X-My-Header", "true")]), true),
            (req("PUT", "/path2", &[("x-my-header", "true")]), true),
            (req("PUT", "/path2", &[]), false),
            (req("PUT", "/path2", &[("X-My-Header", "false")]), false),
            (req("GET", "/path2", &[("X-My-Header", "true")]), false),
            (req("DELETE", "/path1", &[]), false),
        ],
    );
}

#[test]
fn s11_kubernetes_network_policy() {
    let e = engine_with(&["s11-knp/allow-granted-access.yaml"], &[]);
    check(
        &e,
        &[
            (
                flow("default/client-granted", "default/server", 80, TCP),
                true,
            ),
            (
                flow("default/client-other", "default/server", 80, TCP),
                false,
            ),
            (
                flow("default/client-granted", "default/server", 8080, TCP),
                false,
            ),
            (
                flow("default/client-granted", "default/server", 80, UDP),
                false,
            ),
            // KNP does not restrict the server's egress.
            (flow("default/server", "default/webpod", 80, TCP), true),
        ],
    );
}
