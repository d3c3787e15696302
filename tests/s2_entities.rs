//! S2 (entities) as users check it by hand: dev-pod (env=dev, node k8s-w1) under
//! `default-deny-dev` (`egress: []`, no effect), `dev-to-host` (only its own node) and
//! `dev-to-remote-node` (the other nodes too), with real curl and ping.

use palisade_e2e::tools::{code, stderr, stdout};
use palisade_e2e::Lab;

const DEV: &str = "default/dev-pod";
const CTR: &str = "192.168.10.100";
const W1: &str = "192.168.10.101";
const W2: &str = "192.168.10.102";

#[test]
fn s2_entities_host_then_remote_node() {
    let lab = Lab::up("s2");
    lab.assert_tools(DEV, &["curl", "ping"]);

    // Before any policy: webpod answers its whoami text, every node answers ping.
    let (rc, body) = lab.curl(DEV, "webpod");
    assert_eq!(rc, 0, "curl webpod before any policy: exit {rc}");
    assert!(
        body.contains("Hostname: webpod"),
        "whoami text expected, got {body:?}"
    );
    assert!(
        lab.ping(DEV, CTR),
        "ping the control plane before any policy"
    );

    // `egress: []` selects dev-pod but has no rule: no default deny, nothing blocked.
    lab.apply(&["s2-entities/default-deny-dev.yaml"]);
    let (rc, body) = lab.curl(DEV, "webpod");
    assert_eq!(
        rc, 0,
        "default-deny-dev alone must block nothing (curl webpod exit {rc})"
    );
    assert!(
        body.contains("Hostname: webpod"),
        "whoami text expected, got {body:?}"
    );
    assert!(
        lab.ping(DEV, CTR),
        "default-deny-dev alone must block nothing (ping {CTR})"
    );
    assert!(
        lab.ping(DEV, W2),
        "default-deny-dev alone must block nothing (ping {W2})"
    );

    // toEntities [host]: own node only; the resolver pod is not the host, so DNS times out.
    lab.apply(&["s2-entities/dev-to-host.yaml"]);
    assert!(lab.ping(DEV, W1), "dev-to-host: own node {W1} must answer");
    let out = lab.exec(DEV, &["curl", "-sS", "-m", "1", "webpod"]);
    assert_eq!(
        code(&out),
        28,
        "curl webpod must time out: stdout {:?} stderr {:?}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Resolving timed out"),
        "DNS to the resolver pod is dropped, so curl reports a resolve timeout: {:?}",
        stderr(&out)
    );
    let webpod = lab.ip("default/webpod").to_string();
    let (rc, _) = lab.curl(DEV, &format!("http://{webpod}/"));
    assert_eq!(rc, 28, "curl webpod by address must time out too");
    assert!(!lab.ping(DEV, CTR), "dev-to-host: {CTR} must not answer");
    assert!(!lab.ping(DEV, W2), "dev-to-host: {W2} must not answer");

    // toEntities [remote-node]: the other nodes answer again; pods still do not.
    lab.apply(&["s2-entities/dev-to-remote-node.yaml"]);
    assert!(lab.ping(DEV, CTR), "dev-to-remote-node: {CTR} must answer");
    assert!(lab.ping(DEV, W2), "dev-to-remote-node: {W2} must answer");
    assert!(lab.ping(DEV, W1), "own node still answers");
    let (rc, _) = lab.curl(DEV, &format!("http://{webpod}/"));
    assert_eq!(rc, 28, "remote-node does not cover pods on remote nodes");
}
