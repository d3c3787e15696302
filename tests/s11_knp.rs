//! S11 (Kubernetes NetworkPolicy): only access=granted pods reach app=server on TCP 80. A
//! second granted client, and a second server replica, only map addresses to identities that
//! already exist: no other endpoint's policy entries are rewritten (the agent's `policy
//! applied` line and `bpf policy get` of the server show it).

use std::collections::BTreeSet;

use palisade_e2e::Lab;

const SERVER: &str = "default/server";
const GRANTED: &str = "default/client-granted";
const OTHER: &str = "default/client-other";

/// Endpoint names in a `touched={"a", "b"}` field.
fn touched(field: &str) -> BTreeSet<String> {
    field
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn s11_knp_granted_clients_and_no_rewrites() {
    let lab = Lab::up("s11");
    for pod in [GRANTED, OTHER, "default/client-dev"] {
        lab.assert_tools(pod, &["curl"]);
    }
    let server = format!("http://{}/", lab.ip(SERVER));
    let (rc, _) = lab.curl(OTHER, &server);
    assert_eq!(rc, 0, "client-other reaches the server before the policy");

    lab.apply(&["s11-knp/allow-granted-access.yaml"]);
    let (rc, body) = lab.curl(GRANTED, &server);
    assert_eq!(rc, 0, "access=granted reaches app=server:80, exit {rc}");
    assert!(body.contains("Hello from /"), "server's page, got {body:?}");
    let (rc, _) = lab.curl(OTHER, &server);
    assert_eq!(rc, 28, "client-other (access=none) must time out");

    // A second granted client: only the ipcache changes.
    let server_entries = lab.cli_json(&["bpf", "policy", "get", SERVER]);
    assert!(
        server_entries.as_array().is_some_and(|a| !a.is_empty()),
        "the server has policy entries: {server_entries}"
    );
    let before = lab.revision().unwrap_or(0);
    lab.label(OTHER, "access=granted");
    let rev = lab.wait_revision(before);
    let (rc, _) = lab.curl(OTHER, &server);
    assert_eq!(
        rc, 0,
        "client-other, now access=granted, gets through: exit {rc}"
    );
    for r in before + 1..=rev {
        let fields = lab.applied(r);
        let t = touched(&fields["touched"]);
        assert!(
            t.is_empty() && fields["written"] == "0" && fields["deleted"] == "0",
            "relabelling a client must rewrite no endpoint's policy entries (revision {r}: {fields:?})"
        );
    }
    assert_eq!(
        lab.cli_json(&["bpf", "policy", "get", SERVER]),
        server_entries,
        "the server's policy entries are unchanged by a second granted client"
    );

    // A second server replica (app2 relabelled to exactly the server's labels): its own entries
    // are written, the first server's are not touched.
    lab.spawn(
        "default/app2",
        "app2-http.log",
        &[
            &lab.bin().to_string_lossy(),
            "lab",
            "serve",
            "http",
            "--port",
            "80",
            "--name",
            "app2",
        ],
    );
    let before = lab.revision().unwrap_or(0);
    lab.label("default/app2", "id-");
    lab.label("default/app2", "app=server");
    let rev = lab.wait_revision(before);
    let rev = palisade_e2e::tools::poll(std::time::Duration::from_secs(5), || {
        let id = |n: &str| {
            lab.cli_json(&["endpoint", "get", n])["endpoint"]["security_identity"].clone()
        };
        (id("default/app2") == id(SERVER)).then(|| lab.revision().unwrap_or(rev))
    })
    .unwrap_or_else(|| panic!("app2 never got the server's identity"));
    for r in before + 1..=rev {
        let t = touched(&lab.applied(r)["touched"]);
        assert!(
            !t.contains(SERVER),
            "a second replica must not rewrite the first server's entries (revision {r}: {t:?})"
        );
    }
    assert_eq!(
        lab.cli_json(&["bpf", "policy", "get", SERVER]),
        server_entries,
        "the server's policy entries are unchanged by a second replica"
    );
    let replica = format!("http://{}/", lab.ip("default/app2"));
    let (rc, _) = lab.curl(GRANTED, &replica);
    assert_eq!(
        rc, 0,
        "a granted client reaches the second replica, exit {rc}"
    );
    let (rc, _) = lab.curl("default/client-dev", &replica);
    assert_eq!(
        rc, 28,
        "a client without access=granted times out on the second replica"
    );
}
