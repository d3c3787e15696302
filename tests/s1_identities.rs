//! S1 (identities): reserved identities first with Cilium's numbers and names, one label a
//! line; replicas that differ only in `pod-template-hash` share an identity; `endpoint list`
//! columns; a new label on a running pod gives it a new identity shortly after.

use std::collections::BTreeMap;
use std::time::Duration;

use palisade_e2e::tools::{describe, poll, stdout};
use palisade_e2e::Lab;

const RESERVED: [(u64, &str); 10] = [
    (1, "reserved:host"),
    (2, "reserved:world"),
    (3, "reserved:unmanaged"),
    (4, "reserved:health"),
    (5, "reserved:init"),
    (6, "reserved:remote-node"),
    (7, "reserved:kube-apiserver"),
    (8, "reserved:ingress"),
    (9, "reserved:world-ipv4"),
    (10, "reserved:world-ipv6"),
];

/// `identity list` table → id → labels, checking the one-label-a-line layout on the way.
fn parse_identity_table(text: &str) -> Vec<(u64, Vec<String>)> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["ID", "LABELS"], "identity list header: {text}");
    let mut out: Vec<(u64, Vec<String>)> = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with(' ') {
            assert_eq!(fields.len(), 1, "one label a line: {line:?}");
            let last = out
                .last_mut()
                .unwrap_or_else(|| panic!("continuation first: {line:?}"));
            last.1.push(fields[0].to_string());
        } else {
            assert_eq!(fields.len(), 2, "ID then one label: {line:?}");
            let id = fields[0]
                .parse()
                .unwrap_or_else(|_| panic!("numeric ID: {line:?}"));
            out.push((id, vec![fields[1].to_string()]));
        }
    }
    out
}

/// `endpoint list -o json` → name → identity.
fn endpoint_identities(lab: &Lab) -> BTreeMap<String, u64> {
    lab.cli_json(&["endpoint", "list"])
        .as_array()
        .expect("endpoint list is an array")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("name").to_string();
            (
                name,
                e["security_identity"].as_u64().expect("numeric identity"),
            )
        })
        .collect()
}

fn endpoint_identity(lab: &Lab, name: &str) -> u64 {
    let v = lab.cli_json(&["endpoint", "get", name]);
    v["endpoint"]["security_identity"]
        .as_u64()
        .unwrap_or_else(|| panic!("endpoint get {name}: no identity in {v}"))
}

#[test]
fn s1_identities_reserved_shared_and_relabel() {
    let lab = Lab::up("s1");

    // Reserved identities first, Cilium's numbers and names, one label a line.
    let out = lab.cli(&["identity", "list"]);
    assert!(out.status.success(), "identity list: {}", describe(&out));
    let table = parse_identity_table(&stdout(&out));
    let first: Vec<(u64, Vec<String>)> = table.iter().take(10).cloned().collect();
    let expected: Vec<(u64, Vec<String>)> = RESERVED
        .iter()
        .map(|(id, l)| (*id, vec![l.to_string()]))
        .collect();
    assert_eq!(
        first,
        expected,
        "reserved block of identity list:\n{}",
        stdout(&out)
    );
    assert!(
        table[10..].iter().all(|(id, _)| *id >= 256),
        "cluster identities start at 256: {table:?}"
    );

    // Security labels of webpod: its own labels, namespace, service account, cluster,
    // namespace labels; never pod-template-hash. Both replicas share the identity.
    let webpod = endpoint_identity(&lab, "default/webpod");
    let webpod2 = endpoint_identity(&lab, "default/webpod-2");
    assert_eq!(
        webpod, webpod2,
        "replicas differing in pod-template-hash share an identity"
    );
    let labels = &table
        .iter()
        .find(|(id, _)| *id == webpod)
        .unwrap_or_else(|| panic!("identity {webpod} listed"))
        .1;
    let expected = [
        "k8s:app=webpod",
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
        "k8s:io.cilium.k8s.policy.cluster=default",
        "k8s:io.cilium.k8s.policy.serviceaccount=default",
        "k8s:io.kubernetes.pod.namespace=default",
    ];
    assert_eq!(labels, &expected, "webpod's security labels");
    assert!(
        !stdout(&out).contains("pod-template-hash"),
        "pod-template-hash is not a security label"
    );
    let with_app_webpod = table
        .iter()
        .filter(|(_, l)| l.iter().any(|l| l == "k8s:app=webpod"))
        .count();
    assert_eq!(with_app_webpod, 1, "exactly one identity for app=webpod");

    // endpoint list: the columns, every local endpoint ready.
    let out = lab.cli(&["endpoint", "list"]);
    assert!(out.status.success(), "endpoint list: {}", describe(&out));
    let text = stdout(&out);
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "SECURITY IDENTITY",
            "ENDPOINT STATE",
            "IPV4",
            "IPV6"
        ],
        "endpoint list header:\n{text}"
    );
    let prod_ip = lab.ip("default/client-prod").to_string();
    let row = text
        .lines()
        .find(|l| l.starts_with("default/client-prod "))
        .unwrap_or_else(|| panic!("client-prod row in:\n{text}"));
    assert!(
        row.contains(" ready ") && row.contains(&prod_ip),
        "client-prod row: {row:?}"
    );
    let before = endpoint_identities(&lab);
    assert!(
        before.len() >= 10 && lab.cli_json(&["endpoint", "list"])[0]["state"] == "ready",
        "local endpoints listed, ready: {before:?}"
    );
    let old = before["default/client-prod"];
    assert_eq!(
        before["default/prod-pod"], old,
        "client-prod and prod-pod have the same security labels"
    );

    // A new label on a running pod: a new identity shortly after.
    let rev = lab.revision().unwrap_or(0);
    lab.label("default/client-prod", "study=security");
    lab.wait_revision(rev);
    let new = poll(Duration::from_secs(10), || {
        let id = endpoint_identities(&lab)["default/client-prod"];
        (id != old).then_some(id)
    })
    .unwrap_or_else(|| panic!("client-prod kept identity {old} after study=security"));
    assert!(
        !before.values().any(|id| *id == new),
        "identity {new} is new, not one in use before: {before:?}"
    );
    let after = endpoint_identities(&lab);
    assert_eq!(
        after["default/prod-pod"], old,
        "prod-pod keeps its identity"
    );
    let out = lab.cli(&["identity", "list"]);
    let table = parse_identity_table(&stdout(&out));
    let labels = &table
        .iter()
        .find(|(id, _)| *id == new)
        .unwrap_or_else(|| panic!("new identity {new} in identity list"))
        .1;
    assert!(
        labels.iter().any(|l| l == "k8s:study=security")
            && labels.iter().any(|l| l == "k8s:env=prod"),
        "new identity's labels: {labels:?}"
    );
}
