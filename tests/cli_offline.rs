//! Offline CLI, no lab: `policy validate` on the shipped scenario policies and on broken
//! files, `policy trace` of the S9 flows, `identity list --topology`'s reserved block.

use std::path::PathBuf;
use std::process::{Command, Output};

use palisade_e2e::paths;
use palisade_e2e::tools::{code, describe, run, stderr, stdout};

fn palisade(args: &[&str]) -> Output {
    run(Command::new(paths::palisade_bin())
        .args(args)
        .current_dir(paths::workspace()))
}

/// A policy file of the test's own in a fresh directory.
fn own_file(name: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("pe2e-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write policy");
    (dir, file)
}

#[test]
fn validate_accepts_every_scenario_directory() {
    let mut dirs: Vec<String> = std::fs::read_dir(paths::config_dir().join("policies"))
        .expect("config/policies")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .map(|p| format!("{}/", p.display()))
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 11, "S2-S11 scenario directories: {dirs:?}");
    let mut args = vec!["policy", "validate"];
    args.extend(dirs.iter().map(String::as_str));
    let out = palisade(&args);
    assert_eq!(
        code(&out),
        0,
        "validate config/policies/*/: {}",
        describe(&out)
    );
    // default-deny-dev's `egress: []` is accepted with a warning naming file and line.
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains("default-deny-dev.yaml:9:") && all.contains("egress: [{}]"),
        "warning for `egress: []` naming file:line and `egress: [{{}}]`: {all}"
    );
}

#[test]
fn validate_rejects_a_bad_cidr_with_position_and_field() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad}\n\
                spec:\n  endpointSelector: {}\n  egress:\n  - toCIDR: [10.0.0.0/33]\n";
    let (dir, file) = own_file("bad-cidr.yaml", text);
    let out = palisade(&["policy", "validate", &file.to_string_lossy()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(
        code(&out),
        0,
        "an invalid CIDR fails validation: {}",
        describe(&out)
    );
    let err = stderr(&out);
    let at = format!("{}:7:", file.display());
    assert!(err.contains(&at), "error names file:line ({at}): {err}");
    let col = err
        .split(&at)
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|c| c.parse::<u32>().ok());
    assert!(
        col.is_some_and(|c| c > 0),
        "error has a column after the line: {err}"
    );
    assert!(
        err.contains("spec.egress[0].toCIDR") && err.contains("10.0.0.0/33"),
        "error names the field and value: {err}"
    );
}

#[test]
fn validate_rejects_an_unknown_field() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: typo}\n\
                spec:\n  endpointSelector: {}\n  egres: []\n";
    let (dir, file) = own_file("typo.yaml", text);
    let out = palisade(&["policy", "validate", &file.to_string_lossy()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(
        code(&out),
        0,
        "an unknown field fails validation: {}",
        describe(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:6:", file.display())) && err.contains("egres"),
        "error names file:line and the unknown field: {err}"
    );
}

#[test]
fn validate_warns_on_empty_egress_list() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: empty}\n\
                spec:\n  endpointSelector: {matchLabels: {env: dev}}\n  egress: []\n";
    let (dir, file) = own_file("empty.yaml", text);
    let out = palisade(&["policy", "validate", &file.to_string_lossy()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        code(&out),
        0,
        "`egress: []` is accepted: {}",
        describe(&out)
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains(&format!("{}:6:", file.display())) && all.contains("egress: [{}]"),
        "warning names file:line and the `egress: [{{}}]` alternative: {all}"
    );
}

/// `policy trace` of an S9 flow; returns its output, checking the verdict is the last line.
fn trace(from: &str, method: &str, path: &str, verdict: &str) -> String {
    let topology = paths::topology();
    let policies = paths::scenario_policy("s9-l7-http");
    let out = palisade(&[
        "policy",
        "trace",
        "--topology",
        &topology.to_string_lossy(),
        "--policies",
        &policies.to_string_lossy(),
        "--from",
        from,
        "--to",
        "default/service-pod",
        "--dport",
        "80/TCP",
        "--http-method",
        method,
        "--http-path",
        path,
    ]);
    assert!(out.status.success(), "policy trace: {}", describe(&out));
    let text = stdout(&out);
    let last = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert_eq!(
        last,
        format!("Final verdict: {verdict}"),
        "{from} {method} {path}: last line of:\n{text}"
    );
    text
}

#[test]
fn trace_s9_verdicts() {
    let text = trace("default/client-prod", "GET", "/private", "DENIED");
    assert!(text.contains("403"), "L7 denial explained as 403: {text}");
    trace("default/client-prod", "GET", "/public", "ALLOWED");
    trace("default/client-dev", "GET", "/public", "DENIED");
}

#[test]
fn identity_list_offline_reserved_block() {
    let topology = paths::topology();
    let out = palisade(&[
        "identity",
        "list",
        "--topology",
        &topology.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "identity list --topology: {}",
        describe(&out)
    );
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .take(11)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let expected: Vec<Vec<&str>> = [
        ["ID", "LABELS"],
        ["1", "reserved:host"],
        ["2", "reserved:world"],
        ["3", "reserved:unmanaged"],
        ["4", "reserved:health"],
        ["5", "reserved:init"],
        ["6", "reserved:remote-node"],
        ["7", "reserved:kube-apiserver"],
        ["8", "reserved:ingress"],
        ["9", "reserved:world-ipv4"],
        ["10", "reserved:world-ipv6"],
    ]
    .iter()
    .map(|r| r.to_vec())
    .collect();
    assert_eq!(rows, expected, "reserved block:\n{text}");
    // Labels start in one column for every row.
    let col = |l: &str| l.find("reserved:").or_else(|| l.find("LABELS"));
    let cols: Vec<Option<usize>> = text.lines().take(11).map(col).collect();
    assert!(
        cols.windows(2).all(|w| w[0] == w[1]),
        "one LABELS column: {cols:?}\n{text}"
    );
    let next = text.lines().nth(11).unwrap_or_default();
    assert!(
        next.starts_with("256 "),
        "cluster identities follow from 256: {next:?}"
    );
}
