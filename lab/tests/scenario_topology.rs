//! The shipped scenario topology comes up (without the agent) and gives the "before any
//! policy" outcomes of shared/scenarios.md: `curl webpod`, pings to every node, the S9 page,
//! `curl api.github.com` and the S4 hosts by address.

#[path = "support/helpers.rs"]
mod helpers;

use std::path::Path;

use helpers::{assert_gone, options, run_in, stdout_in, LabGuard};

#[test]
fn scenario_topology_before_any_policy() {
    let opts = options("scn");
    let _ = palisade_lab::down(&opts);
    let guard = LabGuard(opts.clone());
    let topo = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/scenarios.yaml");
    let dir = tempfile::tempdir().expect("tempdir");
    let status = palisade_lab::up(&topo, dir.path(), &opts).expect("scenario lab up");
    assert!(
        status.processes.iter().all(|(_, up)| *up),
        "every server runs:\n{status}"
    );

    let who = stdout_in(
        &status,
        "default/dev-pod",
        &["curl", "-sS", "-m", "5", "webpod"],
    );
    assert!(
        who.starts_with("Hostname: webpod"),
        "whoami from a replica:\n{who}"
    );
    for node in ["192.168.10.100", "192.168.10.101", "192.168.10.102"] {
        let out = run_in(
            &status,
            "default/dev-pod",
            &["ping", "-c", "1", "-W", "2", node],
        );
        assert!(out.status.success(), "dev-pod cannot ping {node}");
    }
    for client in ["default/client-prod", "default/client-dev"] {
        let page = stdout_in(
            &status,
            client,
            &["curl", "-sS", "-m", "5", "service-svc/public"],
        );
        assert_eq!(
            page, "<html><body><h1>Hello from /public</h1></body></html>\n",
            "{client}"
        );
    }
    let head = stdout_in(
        &status,
        "default/mediabot",
        &["curl", "-sSI", "-m", "5", "api.github.com"],
    );
    assert!(
        head.starts_with("HTTP/1.1 200 OK"),
        "curl -I api.github.com:\n{head}"
    );
    for ip in ["20.1.1.1", "10.1.1.1", "10.96.0.10"] {
        let page = stdout_in(
            &status,
            "default/myservice",
            &["curl", "-sS", "-m", "5", &format!("http://{ip}/")],
        );
        assert!(page.contains("Hello from /"), "{ip}: {page}");
    }
    let staging = stdout_in(
        &status,
        "default/app2",
        &["curl", "-sS", "-m", "5", "staging-svc.another-namespace/"],
    );
    assert!(
        staging.contains("Hello from /"),
        "cross-namespace service name: {staging}"
    );

    drop(guard);
    assert_gone(&opts);
}
