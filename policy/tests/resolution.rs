//! Table tests of resolution: entities, CIDR/except, port ranges, deny precedence, default-deny
//! activation, L7 precedence (Cilium CVE-2024-52529, CVE-2023-30851) and Kubernetes
//! NetworkPolicy truth tables.

use std::path::Path;

use palisade_policy::cluster::LearnedNames;
use palisade_policy::compile::Direction;
use palisade_policy::identity::Allocator;
use palisade_policy::load::parse_str;
use palisade_policy::resolve::{EndpointPolicy, L7Kind, ResolveOptions, Verdict};
use palisade_policy::{Engine, Topology};

const TOPO: &str = r#"
nodes:
- {name: n1, ips: [192.168.1.1], local: true}
- {name: n2, ips: [192.168.1.2], labels: {role: cp}}
namespaces:
- {name: default}
- {name: other, labels: {team: blue}}
pods:
- {name: a, node: n1, labels: {app: a}, ips: [10.0.1.1]}
- {name: b, node: n1, labels: {app: b, env: dev}, ips: [10.0.1.2]}
- {name: c, node: n1, labels: {app: c}, ips: [10.0.1.3]}
- {name: d, namespace: other, node: n2, labels: {app: d}, ips: [10.0.2.1]}
"#;

fn engine(policies: &str) -> Engine {
    let topo = Topology::parse(TOPO, Path::new("topo.yaml")).expect("topology");
    let set = parse_str(policies, Path::new("p.yaml")).expect("policies parse");
    Engine::new(
        topo,
        set.policies,
        &LearnedNames::new(),
        Allocator::new(),
        ResolveOptions::default(),
    )
}

fn policy(e: &Engine, pod: &str) -> std::sync::Arc<EndpointPolicy> {
    e.resolver().endpoint(&e.state.endpoints[pod])
}

fn id(e: &Engine, pod: &str) -> u32 {
    e.state.endpoints[pod].identity
}

fn cnp(name: &str, selector: &str, body: &str) -> String {
    format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  endpointSelector: {{matchLabels: {{{selector}}}}}\n{body}---\n")
}

/// (remote ip, proto, port, expected verdict)
type Case<'a> = (&'a str, u8, u16, Verdict);

fn check(e: &Engine, pod: &str, dir: Direction, cases: &[Case<'_>]) {
    let p = policy(e, pod);
    for (ip, proto, port, want) in cases {
        let remote = e.state.identity_of(ip.parse().unwrap());
        let got = p.direction(dir).lookup(remote, *proto, *port);
        assert_eq!(
            got.verdict, *want,
            "{pod} {dir} {ip} ({remote}) {proto}/{port}: {}",
            got.reason
        );
    }
}

const ALLOW: Verdict = Verdict::Allow;
const DENY: Verdict = Verdict::Deny;
const HTTP: Verdict = Verdict::Redirect(L7Kind::Http);

#[test]
fn default_deny_activation() {
    // No policy: not enforced.
    let e = engine("");
    assert!(!policy(&e, "default/a").egress.enforced);
    // egress: [] is not a rule: nothing enforced.
    let e = engine(&cnp("p", "app: a", "  egress: []\n"));
    assert!(!policy(&e, "default/a").egress.enforced);
    // egress: [{}] denies all egress.
    let e = engine(&cnp("p", "app: a", "  egress: [{}]\n"));
    let p = policy(&e, "default/a");
    assert!(p.egress.enforced && !p.ingress.enforced);
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[("10.0.1.2", 6, 80, DENY), ("1.1.1.1", 17, 53, DENY)],
    );
    // A deny rule alone also enables default deny.
    let e = engine(&cnp(
        "p",
        "app: a",
        "  egressDeny: [{toEntities: [world]}]\n",
    ));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[("10.0.1.2", 6, 80, DENY)],
    );
    // enableDefaultDeny: false keeps the rest allowed but applies the rule's L7 and denies.
    let body = "  enableDefaultDeny: {egress: false}\n  egressDeny:\n  - toCIDR: [1.1.1.1/32]\n";
    let e = engine(&cnp("p", "app: a", body));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("1.1.1.1", 6, 443, DENY),
            ("8.8.8.8", 6, 443, ALLOW),
            ("10.0.1.2", 6, 80, ALLOW),
        ],
    );
}

#[test]
fn entities() {
    let e = engine(&cnp("p", "app: a", "  egress:\n  - toEntities: [host]\n"));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("192.168.1.1", 1, 8, ALLOW),
            ("192.168.1.2", 1, 8, DENY),
            ("8.8.8.8", 6, 443, DENY),
        ],
    );
    let e = engine(&cnp("p", "app: a", "  egress:\n  - toEntities: [world]\n"));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("8.8.8.8", 6, 443, ALLOW),
            ("10.0.1.2", 6, 80, DENY),
            ("192.168.1.1", 6, 22, DENY),
        ],
    );
    let e = engine(&cnp(
        "p",
        "app: a",
        "  egress:\n  - toEntities: [cluster]\n",
    ));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("8.8.8.8", 6, 443, DENY),
            ("10.0.1.2", 6, 80, ALLOW),
            ("10.0.2.1", 6, 80, ALLOW),
            ("192.168.1.2", 6, 22, ALLOW),
        ],
    );
    let e = engine(&cnp("p", "app: a", "  egress:\n  - toEntities: [all]\n"));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[("8.8.8.8", 6, 443, ALLOW), ("10.0.1.2", 6, 80, ALLOW)],
    );
    let e = engine(&cnp(
        "p",
        "app: a",
        "  egress:\n  - toEntities: [remote-node]\n",
    ));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[("192.168.1.2", 1, 8, ALLOW), ("192.168.1.1", 1, 8, DENY)],
    );
}

#[test]
fn endpoints_are_namespace_scoped() {
    let e = engine(&cnp("p", "app: a", "  egress:\n  - toEndpoints: [{}]\n"));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("10.0.1.2", 6, 80, ALLOW),
            ("10.0.2.1", 6, 80, DENY),
            ("8.8.8.8", 6, 80, DENY),
        ],
    );
    let body =
        "  egress:\n  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other}}]\n";
    let e = engine(&cnp("p", "app: a", body));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[("10.0.1.2", 6, 80, DENY), ("10.0.2.1", 6, 80, ALLOW)],
    );
    // An explicitly empty peer list selects nothing; omitted peers with toPorts mean any peer.
    let e = engine(&cnp(
        "p",
        "app: a",
        "  egress:\n  - toEndpoints: []\n    toPorts: [{ports: [{port: '80'}]}]\n",
    ));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[("10.0.1.2", 6, 80, DENY)],
    );
    let e = engine(&cnp(
        "p",
        "app: a",
        "  egress:\n  - toPorts: [{ports: [{port: '80'}]}]\n",
    ));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("10.0.1.2", 6, 80, ALLOW),
            ("8.8.8.8", 17, 80, ALLOW),
            ("8.8.8.8", 6, 81, DENY),
        ],
    );
}

#[test]
fn cidr_and_except() {
    let body = "  egress:\n  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.96.0.0/12]}]\n  - toCIDR: [20.1.1.1/32]\n";
    let e = engine(&cnp("p", "app: a", body));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("10.1.2.3", 6, 80, ALLOW),
            ("10.96.0.1", 6, 80, DENY),
            ("10.111.255.255", 6, 80, DENY),
            ("10.112.0.0", 6, 80, ALLOW),
            ("20.1.1.1", 6, 80, ALLOW),
            ("20.1.1.2", 6, 80, DENY),
            // pods inside 10/8 keep their identity: CIDR rules never select cluster endpoints
            ("10.0.1.2", 6, 80, DENY),
        ],
    );
}

#[test]
fn port_ranges_and_protocols() {
    let body = "  egress:\n  - toPorts: [{ports: [{port: '8000', endPort: 8100, protocol: TCP}, {port: '53', protocol: UDP}]}]\n";
    let e = engine(&cnp("p", "app: a", body));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("8.8.8.8", 6, 8000, ALLOW),
            ("8.8.8.8", 6, 8050, ALLOW),
            ("8.8.8.8", 6, 8100, ALLOW),
            ("8.8.8.8", 6, 7999, DENY),
            ("8.8.8.8", 6, 8101, DENY),
            ("8.8.8.8", 17, 8050, DENY),
            ("8.8.8.8", 17, 53, ALLOW),
            ("8.8.8.8", 6, 53, DENY),
        ],
    );
    let icmp = "  egress:\n  - icmps: [{fields: [{type: 8, family: IPv4}]}]\n";
    let e = engine(&cnp("p", "app: a", icmp));
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("8.8.8.8", 1, 8, ALLOW),
            ("8.8.8.8", 1, 13, DENY),
            ("8.8.8.8", 6, 8, DENY),
        ],
    );
}

#[test]
fn deny_beats_allow() {
    let docs = cnp("allow", "app: a", "  ingress:\n  - fromEntities: [all]\n")
        + &cnp(
            "deny",
            "app: a",
            "  ingressDeny:\n  - fromEndpoints: [{matchLabels: {env: dev}}]\n",
        );
    let e = engine(&docs);
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[
            ("10.0.1.2", 6, 80, DENY),
            ("10.0.1.3", 6, 80, ALLOW),
            ("8.8.8.8", 6, 80, ALLOW),
        ],
    );
    // A specific allow never shadows a broader deny of the same peer.
    let docs = cnp("allow", "app: a", "  ingress:\n  - fromEndpoints: [{matchLabels: {app: b}}]\n    toPorts: [{ports: [{port: '80', protocol: TCP}]}]\n")
        + &cnp("deny", "app: a", "  ingressDeny:\n  - fromEndpoints: [{matchLabels: {app: b}}]\n    toPorts: [{ports: [{port: '1', endPort: 1000, protocol: TCP}]}]\n");
    let e = engine(&docs);
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[("10.0.1.2", 6, 80, DENY), ("10.0.1.2", 6, 1001, DENY)],
    );
    // Wildcard deny on a port beats an identity-specific L3 allow.
    let docs = cnp(
        "allow",
        "app: a",
        "  ingress:\n  - fromEndpoints: [{matchLabels: {app: b}}]\n",
    ) + &cnp(
        "deny",
        "app: a",
        "  ingressDeny:\n  - toPorts: [{ports: [{port: '22', protocol: TCP}]}]\n",
    );
    let e = engine(&docs);
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[("10.0.1.2", 6, 22, DENY), ("10.0.1.2", 6, 80, ALLOW)],
    );
}

#[test]
fn l7_precedence_cves() {
    // CVE-2024-52529: an L3 allow on a port range plus an L7 rule on one port inside it still
    // redirects that port to the proxy.
    let docs = cnp(
        "l7",
        "app: a",
        "  ingress:\n  - toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{method: GET}]}}]\n  - fromEndpoints: [{matchLabels: {app: b}}]\n    toPorts: [{ports: [{port: '1', endPort: 1000, protocol: TCP}]}]\n",
    );
    let e = engine(&docs);
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[
            ("10.0.1.2", 6, 80, HTTP),
            ("10.0.1.2", 6, 81, ALLOW),
            ("10.0.1.3", 6, 80, HTTP),
            ("10.0.1.3", 6, 81, DENY),
        ],
    );
    // An L3-only allow of one peer does not bypass a port's L7 rules either.
    let docs = cnp(
        "l7",
        "app: a",
        "  ingress:\n  - toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{method: GET}]}}]\n  - fromEndpoints: [{matchLabels: {app: b}}]\n",
    );
    let e = engine(&docs);
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[("10.0.1.2", 6, 80, HTTP), ("10.0.1.2", 6, 22, ALLOW)],
    );
    // CVE-2023-30851: an L4-only allow for one peer (same port) makes that peer unfiltered,
    // and only that peer.
    let docs = cnp(
        "l7",
        "app: a",
        "  ingress:\n  - toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{method: GET}]}}]\n  - fromEndpoints: [{matchLabels: {app: b}}]\n    toPorts: [{ports: [{port: '80', protocol: TCP}]}]\n",
    );
    let e = engine(&docs);
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[("10.0.1.2", 6, 80, ALLOW), ("10.0.1.3", 6, 80, HTTP)],
    );
    let p = policy(&e, "default/a");
    let f = p.ingress.l7_filter(6, 80).expect("L7 filter on port 80");
    let c = id(&e, "default/c");
    assert!(
        f.peers_for(c).all(|p| p.http.is_some()),
        "peer c must stay HTTP-filtered"
    );
}

const KNP: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n";

#[test]
fn kubernetes_network_policy_truth_tables() {
    // default deny ingress: `podSelector: {}` with policyTypes [Ingress] and no rules.
    let e = engine(&format!(
        "{KNP}metadata: {{name: deny}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress]\n"
    ));
    for pod in ["default/a", "default/b"] {
        let p = policy(&e, pod);
        assert!(p.ingress.enforced && !p.egress.enforced, "{pod}");
    }
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[
            ("10.0.1.2", 6, 80, DENY),
            ("8.8.8.8", 6, 80, DENY),
            ("192.168.1.1", 6, 80, ALLOW),
        ],
    );
    assert!(
        !policy(&e, "other/d").ingress.enforced,
        "other namespaces untouched"
    );

    // allow all ingress: an empty rule.
    let e = engine(&format!(
        "{KNP}metadata: {{name: all}}\nspec:\n  podSelector: {{}}\n  ingress: [{{}}]\n"
    ));
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[("10.0.2.1", 6, 80, ALLOW), ("8.8.8.8", 6, 80, ALLOW)],
    );

    // default deny egress via policyTypes; an egress section alone implies Egress.
    let e = engine(&format!(
        "{KNP}metadata: {{name: e}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n"
    ));
    assert!(policy(&e, "default/a").egress.enforced && !policy(&e, "default/a").ingress.enforced);
    let e = engine(&format!("{KNP}metadata: {{name: e}}\nspec:\n  podSelector: {{}}\n  egress: [{{to: [{{podSelector: {{}}}}]}}]\n"));
    let p = policy(&e, "default/a");
    assert!(
        p.egress.enforced && p.ingress.enforced,
        "ingress is always implied"
    );
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            ("10.0.1.2", 6, 80, ALLOW),
            ("10.0.2.1", 6, 80, DENY),
            ("8.8.8.8", 6, 80, DENY),
        ],
    );

    // namespaceSelector alone: every pod of matching namespaces; with podSelector: both.
    let e = engine(&format!(
        "{KNP}metadata: {{name: ns}}\nspec:\n  podSelector: {{matchLabels: {{app: a}}}}\n  ingress:\n  - from: [{{namespaceSelector: {{matchLabels: {{team: blue}}}}}}]\n"
    ));
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[("10.0.2.1", 6, 80, ALLOW), ("10.0.1.2", 6, 80, DENY)],
    );
    let e = engine(&format!(
        "{KNP}metadata: {{name: ns}}\nspec:\n  podSelector: {{matchLabels: {{app: a}}}}\n  ingress:\n  - from: [{{namespaceSelector: {{}}, podSelector: {{matchLabels: {{app: b}}}}}}]\n"
    ));
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[
            ("10.0.1.2", 6, 80, ALLOW),
            ("10.0.2.1", 6, 80, DENY),
            ("8.8.8.8", 6, 80, DENY),
        ],
    );

    // ports with endPort and named protocol; `from` omitted means every source.
    let e = engine(&format!(
        "{KNP}metadata: {{name: p}}\nspec:\n  podSelector: {{matchLabels: {{app: a}}}}\n  ingress:\n  - ports: [{{port: 8000, endPort: 8080}}, {{port: 53, protocol: UDP}}]\n"
    ));
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[
            ("8.8.8.8", 6, 8040, ALLOW),
            ("8.8.8.8", 17, 8040, DENY),
            ("10.0.1.2", 17, 53, ALLOW),
            ("10.0.1.2", 6, 53, DENY),
        ],
    );
}

#[test]
fn new_pod_with_known_identity_changes_no_entries() {
    let docs = cnp(
        "p",
        "app: a",
        "  ingress:\n  - fromEndpoints: [{matchLabels: {env: dev}}]\n",
    );
    let before = engine(&docs);
    let mut topo = before.topology.clone();
    let mut extra = topo.pods.iter().find(|p| p.name == "b").unwrap().clone();
    extra.name = "b2".into();
    extra.ips = vec!["10.0.1.9".parse().unwrap()];
    topo.pods.push(extra);
    let after = Engine::new(
        topo,
        before.policies.clone(),
        &LearnedNames::new(),
        before.alloc.clone(),
        ResolveOptions::default(),
    );
    assert_eq!(id(&after, "default/b2"), id(&before, "default/b"));
    for pod in ["default/a", "default/b", "default/c"] {
        assert_eq!(
            policy(&before, pod),
            policy(&after, pod),
            "{pod} policy must not change"
        );
    }
}

/// Cilium gives a learned address the labels of every policy CIDR containing it, so a CIDR rule
/// keeps selecting an address after DNS taught it (its /32 wins in the ipcache).
#[test]
fn cidr_rules_still_select_addresses_learned_by_dns() {
    let body = "  egress:\n  - toCIDRSet: [{cidr: 20.0.0.0/8, except: [20.9.0.0/16]}]\n    toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]\n  - toFQDNs: [{matchName: api.example.com}]\n    toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n  - toCIDR: [0.0.0.0/0]\n    toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]\n  - toCIDR: [\"::/0\"]\n    toPorts: [{ports: [{port: \"8081\", protocol: TCP}]}]\n  - toEntities: [world-ipv4]\n    toPorts: [{ports: [{port: \"9090\", protocol: TCP}]}]\n  - toEntities: [world-ipv6]\n    toPorts: [{ports: [{port: \"9091\", protocol: TCP}]}]\n";
    let topo = Topology::parse(TOPO, Path::new("topo.yaml")).expect("topology");
    let set = parse_str(&cnp("p", "app: a", body), Path::new("p.yaml")).expect("policies parse");
    let mut learned = LearnedNames::new();
    learned.insert(
        "api.example.com.".to_string(),
        ["20.1.1.1", "20.9.1.1", "30.1.1.1", "2001:db8::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect(),
    );
    let e = Engine::new(
        topo,
        set.policies,
        &learned,
        Allocator::new(),
        ResolveOptions::default(),
    );
    let learned_ids: std::collections::BTreeSet<u32> = ["20.1.1.1", "20.9.1.1", "30.1.1.1"]
        .iter()
        .map(|a| e.state.identity_of(a.parse().unwrap()))
        .collect();
    assert_eq!(
        learned_ids.len(),
        3,
        "one identity per set of containing policy CIDRs"
    );
    check(
        &e,
        "default/a",
        Direction::Egress,
        &[
            // inside the CIDR: both the CIDR rule and the FQDN rule apply
            ("20.1.1.1", 6, 80, ALLOW),
            ("20.1.1.1", 6, 443, ALLOW),
            // inside the except: only the FQDN rule
            ("20.9.1.1", 6, 80, DENY),
            ("20.9.1.1", 6, 443, ALLOW),
            // outside the CIDR: only the FQDN rule
            ("30.1.1.1", 6, 80, DENY),
            ("30.1.1.1", 6, 443, ALLOW),
            // not learned: the CIDR rule as before
            ("20.1.1.2", 6, 80, ALLOW),
            ("20.1.1.2", 6, 443, DENY),
            // /0 and world-ipv4/-ipv6 select the learned addresses of their family
            ("20.9.1.1", 6, 8080, ALLOW),
            ("30.1.1.1", 6, 8080, ALLOW),
            ("2001:db8::1", 6, 8080, DENY),
            ("2001:db8::1", 6, 8081, ALLOW),
            ("30.1.1.1", 6, 8081, DENY),
            ("30.1.1.1", 6, 9090, ALLOW),
            ("2001:db8::1", 6, 9090, DENY),
            ("2001:db8::1", 6, 9091, ALLOW),
            ("2001:db8::1", 6, 443, ALLOW),
        ],
    );
}

#[test]
fn tls_ports_redirect_like_http_rules() {
    // serverNames alone, terminatingTLS alone, and both inside an L3 range allow: every one
    // redirects its port, and the L3/L4 allow of another peer on a wider range stays an allow.
    let docs = cnp(
        "tls",
        "app: a",
        "  ingress:\n  - toPorts:\n    - ports: [{port: '443', protocol: TCP}]\n      serverNames: [a.example.com]\n    - ports: [{port: '8443', protocol: TCP}]\n      terminatingTLS: {secret: {name: a-tls}}\n      originatingTLS: {secret: {namespace: certs, name: ca}, trustedCA: bundle.pem}\n      rules: {http: [{path: /public}]}\n  - fromEndpoints: [{matchLabels: {app: b}}]\n    toPorts: [{ports: [{port: '1', endPort: 9000, protocol: TCP}]}]\n",
    );
    let e = engine(&docs);
    check(
        &e,
        "default/a",
        Direction::Ingress,
        &[
            ("10.0.1.3", 6, 443, HTTP),
            ("10.0.1.3", 6, 8443, HTTP),
            ("10.0.1.3", 6, 444, DENY),
            ("10.0.1.2", 6, 443, HTTP),
            ("10.0.1.2", 6, 444, ALLOW),
        ],
    );
    let p = policy(&e, "default/a");
    let sni = p.ingress.l7_filter(6, 443).expect("filter on 443");
    let c = id(&e, "default/c");
    let peer = sni.peers_for(c).next().expect("peer c");
    assert!(peer.http.is_none(), "SNI-only port has no HTTP rules");
    let tls = peer.tls.as_ref().expect("tls settings");
    assert_eq!(tls.server_names, vec!["a.example.com".to_string()]);
    let term = p.ingress.l7_filter(6, 8443).expect("filter on 8443");
    let peer = term.peers_for(c).next().expect("peer c");
    assert_eq!(peer.http.as_ref().map(Vec::len), Some(1));
    let tls = peer.tls.as_ref().expect("tls settings");
    let t = tls.terminating.as_ref().expect("terminating");
    assert_eq!(
        t.secret.namespace.as_deref(),
        Some("default"),
        "policy namespace"
    );
    assert_eq!(t.secret.name, "a-tls");
    let o = tls.originating.as_ref().expect("originating");
    assert_eq!(o.secret.namespace.as_deref(), Some("certs"));
    assert_eq!(o.trusted_ca.as_deref(), Some("bundle.pem"));

    // `policy trace` says what the proxy does with TLS on the port.
    let traced = |port: u16| {
        let req = palisade_policy::trace::TraceRequest {
            from: "default/c".into(),
            to: "default/a".into(),
            dport: port,
            proto: 6,
            http: None,
            dns_name: None,
        };
        palisade_policy::trace::trace(&e, &req)
            .expect("trace")
            .lines
            .join("\n")
    };
    let t = traced(443);
    assert!(
        t.contains("SNI must be one of [a.example.com] (else reset); relayed undecrypted"),
        "{t}"
    );
    let t = traced(8443);
    assert!(
        t.contains("terminated with secret default/a-tls; re-encrypted upstream, server verified with secret certs/ca"),
        "{t}"
    );
}
