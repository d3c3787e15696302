//! Checks the packaging against the repository: every file the Dockerfile copies exists,
//! every command it runs is real (cargo packages, make targets, scripts, apt packages), and the
//! DaemonSet, ConfigMap and systemd unit agree with the image and with each other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// The agent's capabilities, exactly (no more, no fewer).
const CAPS: [&str; 6] = [
    "NET_ADMIN",
    "SYS_ADMIN",
    "BPF",
    "PERFMON",
    "NET_RAW",
    "SYS_RESOURCE",
];
/// Config path inside the image, on the box, and in the DaemonSet.
const CONFIG: &str = "/etc/palisade/palisade.yaml";
/// Makefile targets the lead's Makefile provides (checked against the real one when present).
const PLANNED_MAKE_TARGETS: [&str; 5] = ["build", "test", "demo", "bench", "lab-down"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Dockerfile instructions `(KEYWORD, arguments)`, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (kw, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((kw.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

/// Arguments without leading `--flag` / `--flag=value` options.
fn without_flags(args: &str) -> Vec<&str> {
    args.split_whitespace()
        .skip_while(|w| w.starts_with("--"))
        .collect()
}

/// Names of the workspace's packages (from each member's manifest).
fn workspace_packages() -> BTreeSet<String> {
    let root = read("Cargo.toml");
    let members_line = root
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("workspace members");
    members_line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|member| {
            let manifest = read(&format!("{member}/Cargo.toml"));
            manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|rest| rest.strip_suffix('"'))
                .unwrap_or_else(|| panic!("{member}/Cargo.toml has no package name"))
                .to_owned()
        })
        .collect()
}

/// Targets of the real Makefile, or the planned ones while it does not exist yet.
fn make_targets() -> BTreeSet<String> {
    match std::fs::read_to_string(repo().join("Makefile")) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.starts_with(['\t', ' ', '#', '.']))
            .filter_map(|l| l.split_once(':'))
            .filter(|(_, rest)| !rest.starts_with('='))
            .flat_map(|(names, _)| names.split_whitespace().map(str::to_owned))
            .collect(),
        Err(_) => PLANNED_MAKE_TARGETS.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn dockerfile_copy_sources_exist() {
    let copies = check_copies(&read("Dockerfile"));
    assert!(
        copies >= 8,
        "expected the workspace and the config to be copied, saw {copies}"
    );
}

/// Asserts every COPY/ADD source exists; returns how many were checked.
fn check_copies(docker: &str) -> usize {
    let mut copies = 0;
    for (kw, args) in instructions(docker) {
        if kw != "COPY" && kw != "ADD" {
            continue;
        }
        if args.contains("--from=") {
            continue; // copies between stages are checked in dockerfile_image_layout
        }
        let words = without_flags(&args);
        let (_, sources) = words.split_last().expect("COPY has a destination");
        for src in sources {
            copies += 1;
            assert!(
                repo().join(src).exists(),
                "Dockerfile copies {src}, which does not exist in the repository"
            );
        }
    }
    copies
}

#[test]
fn dockerfile_runs_only_real_commands() {
    let built = check_runs(&read("Dockerfile"));
    assert_eq!(
        built,
        vec!["palisade"],
        "the image builds exactly the agent package"
    );
}

/// Asserts every RUN command is real; returns the cargo packages built.
fn check_runs(docker: &str) -> Vec<String> {
    let packages = workspace_packages();
    let targets = make_targets();
    let mut built = Vec::new();
    for (kw, args) in instructions(docker) {
        if kw != "RUN" {
            continue;
        }
        let script = without_flags(&args).join(" ");
        for cmd in script.split("&&").flat_map(|c| c.split(';')) {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            let Some((&prog, rest)) = words.split_first() else {
                continue;
            };
            match prog {
                "cargo" => {
                    assert_eq!(rest.first(), Some(&"build"), "only cargo build: {cmd}");
                    let pos = rest
                        .iter()
                        .position(|w| *w == "-p")
                        .expect("cargo build -p NAME");
                    let pkg = rest.get(pos + 1).expect("package after -p");
                    assert!(
                        packages.contains(*pkg),
                        "{pkg} is not a workspace package: {packages:?}"
                    );
                    built.push(pkg.to_string());
                }
                "make" => {
                    for t in rest.iter().filter(|w| !w.starts_with('-')) {
                        assert!(
                            targets.contains(*t),
                            "make target {t} does not exist: {targets:?}"
                        );
                    }
                }
                "apt-get" => check_apt(rest),
                "rm" => {}
                other if other.ends_with(".sh") => {
                    assert!(repo().join(other).exists(), "script {other} does not exist");
                }
                other => {
                    panic!("Dockerfile runs {other:?}; only cargo, make, apt-get, rm, scripts")
                }
            }
        }
    }
    built
}

#[test]
#[should_panic(expected = "does not exist in the repository")]
fn checker_rejects_a_missing_copy_source() {
    check_copies("FROM x\nCOPY no-such-dir /x\n");
}

#[test]
#[should_panic(expected = "make target")]
fn checker_rejects_an_unknown_make_target() {
    check_runs("FROM x\nRUN apt-get update \\\n && make no-such-target\n");
}

#[test]
#[should_panic(expected = "apt package no-such-package-palisade is unknown")]
fn checker_rejects_an_unknown_apt_package() {
    check_runs("FROM x\nRUN apt-get install -y no-such-package-palisade\n");
}

#[test]
#[should_panic(expected = "is not a workspace package")]
fn checker_rejects_an_unknown_cargo_package() {
    check_runs("FROM x\nRUN cargo build --release -p palisade-nope\n");
}

/// `apt-get update` / `install -y ... PKGS`: every package must be known to apt (the images
/// are Debian bookworm, like this machine).
fn check_apt(args: &[&str]) {
    match args.first() {
        Some(&"update") => {}
        Some(&"install") => {
            for pkg in args[1..].iter().filter(|w| !w.starts_with('-')) {
                assert!(
                    succeeds("apt-cache", &["show", "--no-all-versions", pkg])
                        || succeeds("dpkg-query", &["-W", pkg]),
                    "apt package {pkg} is unknown to apt-cache and not installed here"
                );
            }
        }
        other => panic!("unexpected apt-get subcommand {other:?}"),
    }
}

/// Runs a command quietly; true when it exits 0. (Package lists may be absent on a freshly
/// cleaned machine, hence the installed-package fallback above.)
fn succeeds(prog: &str, args: &[&str]) -> bool {
    std::process::Command::new(prog)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn dockerfile_image_layout() {
    let docker = read("Dockerfile");
    let ins = instructions(&docker);
    let froms: Vec<&str> = ins
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(
        froms,
        ["rust:1.95-bookworm AS builder", "debian:bookworm-slim"]
    );
    let agent = read("agent/Cargo.toml");
    let bin = agent
        .split("[[bin]]")
        .nth(1)
        .expect("agent declares its [[bin]]");
    assert!(
        bin.lines().any(|l| l.trim() == "name = \"palisade\""),
        "agent binary is named palisade"
    );
    let copies: Vec<&str> = ins
        .iter()
        .filter(|(k, _)| k == "COPY")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(
        copies.contains(&"--from=builder /src/target/release/palisade /usr/local/bin/palisade"),
        "binary copied to /usr/local/bin/palisade: {copies:?}"
    );
    assert!(copies.contains(&"config/palisade.yaml /etc/palisade/palisade.yaml"));
    let cmd = ins.iter().find(|(k, _)| k == "CMD").expect("CMD");
    assert_eq!(cmd.1, format!(r#"["run", "--config", "{CONFIG}"]"#));
}

fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("expected a list, got {v:?}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

#[test]
fn daemonset_is_unprivileged_with_exact_capabilities() {
    let ds = yaml("deploy/daemonset.yaml");
    assert_eq!(ds["kind"].as_str(), Some("DaemonSet"));
    assert_eq!(ds["metadata"]["namespace"].as_str(), Some("kube-system"));
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(pod["hostPID"].as_bool(), Some(false));
    let agent = &pod["containers"][0];
    assert_eq!(agent["name"].as_str(), Some("palisade"));
    assert_eq!(strings(&agent["args"]), ["run", "--config", CONFIG]);
    let sc = &agent["securityContext"];
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    let caps: BTreeSet<String> = strings(&sc["capabilities"]["add"]).into_iter().collect();
    assert_eq!(caps, CAPS.iter().map(|s| s.to_string()).collect());
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);

    let mounts: Vec<(String, String)> = agent["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap().to_owned();
            (name, m["mountPath"].as_str().unwrap().to_owned())
        })
        .collect();
    for path in [
        "/sys/fs/bpf",
        "/var/run/palisade",
        "/proc/sys/net",
        "/etc/palisade",
    ] {
        assert!(
            mounts.iter().any(|(_, p)| p == path),
            "agent mounts {path}: {mounts:?}"
        );
    }
    let volume = |name: &str| {
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("volume {name}"))
            .clone()
    };
    for (name, path) in &mounts {
        let v = volume(name);
        if path == "/sys/fs/bpf" || path == "/var/run/palisade" || path == "/proc/sys/net" {
            assert_eq!(
                v["hostPath"]["path"].as_str(),
                Some(path.as_str()),
                "{name} is the host's"
            );
        }
    }
    // The bpffs mount is made (Bidirectional) by the privileged init container only.
    let init = &pod["initContainers"][0];
    assert_eq!(
        init["volumeMounts"][0]["mountPath"].as_str(),
        Some("/sys/fs/bpf")
    );
    assert_eq!(
        init["volumeMounts"][0]["mountPropagation"].as_str(),
        Some("Bidirectional")
    );

    let cm = yaml("deploy/configmap.yaml");
    let config_volume = volume("config");
    assert_eq!(config_volume["configMap"]["name"], cm["metadata"]["name"]);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            strings(&agent[probe]["exec"]["command"]),
            ["/usr/local/bin/palisade", "status"],
            "{probe}"
        );
    }
}

#[test]
fn configmap_matches_the_shipped_config_keys() {
    let cm = yaml("deploy/configmap.yaml");
    assert_eq!(cm["metadata"]["namespace"].as_str(), Some("kube-system"));
    let text = cm["data"]["palisade.yaml"]
        .as_str()
        .expect("data palisade.yaml");
    let cfg: Value = serde_yaml_ng::from_str(text).expect("embedded config parses");
    assert_eq!(
        cfg["apiSocket"].as_str(),
        Some("/var/run/palisade/palisade.sock"),
        "socket on the mounted host directory"
    );
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_mapping()
            .expect("config is a mapping")
            .keys()
            .map(|k| k.as_str().expect("string key").to_owned())
            .collect()
    };
    let shipped: Value = serde_yaml_ng::from_str(&read("config/palisade.yaml"))
        .expect("config/palisade.yaml parses");
    let unknown: Vec<String> = keys(&cfg).difference(&keys(&shipped)).cloned().collect();
    assert!(
        unknown.is_empty(),
        "ConfigMap keys missing from config/palisade.yaml (renamed?): {unknown:?}"
    );
}

#[test]
fn systemd_unit_runs_the_agent_with_the_capability_set() {
    let unit = read("deploy/palisade.service");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}= missing"))
            .to_owned()
    };
    assert_eq!(
        value("ExecStart"),
        format!("/usr/local/bin/palisade run --config {CONFIG}")
    );
    assert_eq!(value("Restart"), "always");
    let want: BTreeSet<String> = CAPS.iter().map(|c| format!("CAP_{c}")).collect();
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let got: BTreeSet<String> = value(key).split_whitespace().map(str::to_owned).collect();
        assert_eq!(got, want, "{key}");
    }
    assert!(unit.contains("[Install]\nWantedBy=multi-user.target"));
}
