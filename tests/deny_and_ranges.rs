//! Policies of the suite's own (not scenario files): an `ingressDeny` beats an allow of every
//! entity; an egress port range (`endPort`) allows its ports, bounds included, and nothing
//! outside; conntrack lets replies through default-deny directions while new connections the
//! other way are still dropped; empty rules (`egress: [{}]`, `ingress: [{}]`) deny everything.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use palisade_e2e::tools::poll;
use palisade_e2e::Lab;

const DENY_BEATS_ALLOW: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: service-all-but-dev}
spec:
  endpointSelector: {matchLabels: {app: service}}
  ingress:
  - fromEntities: [all]
  ingressDeny:
  - fromEndpoints:
    - matchLabels: {env: dev}
"#;

const PORT_RANGE: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: myservice-port-range}
spec:
  endpointSelector: {matchLabels: {app: myService}}
  egress:
  - toCIDR: [20.1.1.1/32]
    toPorts:
    - ports: [{port: "8000", endPort: 8100, protocol: TCP}]
"#;

/// The client accepts nothing but its own node, the server may send to nothing but its own node:
/// both directions are in default deny without relying on empty rules, and replies need
/// conntrack.
const CONNTRACK: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-out-only}
spec:
  endpointSelector: {matchLabels: {access: granted}}
  egress:
  - toEndpoints: [{matchLabels: {app: server}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
  ingress:
  - fromEntities: [host]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: server-in-only}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {access: granted}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
  egress:
  - toEntities: [host]
"#;

/// Cilium's "default deny without allowing anything": one empty rule per direction.
const EMPTY_RULES: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dev-deny-all}
spec:
  endpointSelector: {matchLabels: {env: dev}}
  egress: [{}]
  ingress: [{}]
"#;

/// One lab at a time in this binary (lab up is 1-2 s; two cores are shared).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the lab's HTTP server on `port` in `member` and waits until `from` gets an answer.
fn listener(lab: &Lab, member: &str, port: u16, from: &str) -> String {
    let bin = lab.bin().to_string_lossy().into_owned();
    let port_s = port.to_string();
    lab.spawn(
        member,
        &format!("http-{}-{port}.log", member.replace('/', "-")),
        &[
            &bin, "lab", "serve", "http", "--port", &port_s, "--name", member,
        ],
    );
    let url = format!("http://{}:{port}/", lab.ip(member));
    poll(Duration::from_secs(5), || {
        (lab.curl(from, &url).0 == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("listener {url} never answered {from}"));
    url
}

#[test]
fn ingress_deny_beats_allow_all_entities() {
    let _one = serial();
    let lab = Lab::up("dr1");
    for pod in [
        "default/client-dev",
        "default/dev-pod",
        "default/client-prod",
    ] {
        lab.assert_tools(pod, &["curl"]);
    }
    // ingressDeny from env=dev beats fromEntities [all].
    let service = format!("http://{}/", lab.ip("default/service-pod"));
    let (rc, _) = lab.curl("default/client-dev", &service);
    assert_eq!(rc, 0, "client-dev reaches service-pod before any policy");
    lab.apply_yaml("deny-beats-allow.yaml", DENY_BEATS_ALLOW);
    for dev in ["default/client-dev", "default/dev-pod"] {
        let (rc, _) = lab.curl(dev, &service);
        assert_eq!(
            rc, 28,
            "{dev} (env=dev) is denied although every entity is allowed, exit {rc}"
        );
    }
    for (who, what) in [
        ("default/client-prod", "a pod"),
        ("k8s-ctr", "a remote node"),
        ("k8s-w1", "the host"),
    ] {
        let (rc, body) = lab.curl(who, &service);
        assert_eq!(
            rc, 0,
            "{who} ({what}) is allowed by fromEntities all, exit {rc}"
        );
        assert!(
            body.contains("Hello from /"),
            "service-pod's page, got {body:?}"
        );
    }
}

#[test]
fn egress_port_range_bounds() {
    let _one = serial();
    let lab = Lab::up("dr2");
    lab.assert_tools("default/myservice", &["curl"]);
    // Egress port range 8000-8100: bounds inside, neighbours outside.
    let ext = "cidr-host.example";
    let urls: Vec<(u16, String)> = [7999, 8000, 8100, 8101]
        .into_iter()
        .map(|p| (p, listener(&lab, ext, p, "default/myservice")))
        .collect();
    lab.apply_yaml("port-range.yaml", PORT_RANGE);
    for (port, url) in &urls {
        let inside = (8000..=8100).contains(port);
        let (rc, _) = lab.curl("default/myservice", url);
        if inside {
            assert_eq!(rc, 0, "port {port} is inside 8000-8100, exit {rc}");
        } else {
            assert_eq!(
                rc, 28,
                "port {port} is outside 8000-8100 and must time out, exit {rc}"
            );
        }
    }
    let (rc, _) = lab.curl("default/myservice", "http://20.1.1.1/");
    assert_eq!(rc, 28, "port 80 is outside the range too");
}

#[test]
fn conntrack_replies_pass_new_reverse_connections_do_not() {
    let _one = serial();
    let lab = Lab::up("dr3");
    for pod in [
        "default/client-granted",
        "default/client-other",
        "default/server",
    ] {
        lab.assert_tools(pod, &["curl"]);
    }
    // Conntrack: replies pass default-deny directions, new reverse connections do not.
    let client = "default/client-granted";
    let server = format!("http://{}/", lab.ip("default/server"));
    let back = listener(&lab, client, 8080, "default/server");
    let (rc, _) = lab.curl("default/client-other", &back);
    assert_eq!(
        rc, 0,
        "client-other reaches client-granted:8080 before the policies"
    );
    lab.apply_yaml("conntrack.yaml", CONNTRACK);
    for attempt in 1..=3 {
        let (rc, body) = lab.curl(client, &server);
        assert_eq!(rc, 0, "attempt {attempt}: the reply passes the server's egress deny and the client's ingress deny");
        assert!(body.contains("Hello from /"), "server's page, got {body:?}");
    }
    let (rc, _) = lab.curl("default/server", &back);
    assert_eq!(
        rc, 28,
        "a new connection from the server to the client must be dropped, exit {rc}"
    );
    let (rc, _) = lab.curl("default/client-other", &back);
    assert_eq!(
        rc, 28,
        "the client's ingress default deny drops client-other too, exit {rc}"
    );
}

#[test]
fn empty_rules_deny_everything() {
    let _one = serial();
    let lab = Lab::up("dr4");
    lab.assert_tools("default/dev-pod", &["curl", "ping"]);
    let webpod = format!("http://{}/", lab.ip("default/webpod"));
    let dev = format!("http://{}:8080/", lab.ip("default/dev-pod"));
    let bin = lab.bin().to_string_lossy().into_owned();
    lab.spawn(
        "default/dev-pod",
        "dev-http.log",
        &[
            &bin, "lab", "serve", "http", "--port", "8080", "--name", "dev",
        ],
    );
    poll(Duration::from_secs(5), || {
        (lab.curl("default/client-prod", &dev).0 == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("dev-pod's listener never answered"));
    let (rc, _) = lab.curl("default/dev-pod", &webpod);
    assert_eq!(rc, 0, "dev-pod reaches webpod before the policy");
    lab.apply_yaml("empty-rules.yaml", EMPTY_RULES);
    let (rc, _) = lab.curl("default/dev-pod", &webpod);
    assert_eq!(
        rc, 28,
        "`egress: [{{}}]` denies all egress (scenarios.md S2), exit {rc}"
    );
    assert!(
        !lab.ping("default/dev-pod", "192.168.10.100"),
        "`egress: [{{}}]` denies ICMP too"
    );
    let (rc, _) = lab.curl("default/client-prod", &dev);
    assert_eq!(rc, 28, "`ingress: [{{}}]` denies all ingress, exit {rc}");
}
