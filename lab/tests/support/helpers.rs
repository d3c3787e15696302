//! Shared helpers of the lab's tests: options with a per-test prefix and state directory, a
//! guard that tears the lab down even when the test panics, and running commands in members.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use palisade_lab::{LabOptions, LabStatus};

/// Options for a test lab: prefix `plabt-<tag>-`, its own state and bpffs directories, the
/// stand-in server binary, no agent.
pub fn options(tag: &str) -> LabOptions {
    // $PALISADE_E2E_PREFIX keeps two checkouts running the suite at once apart.
    let tag = match std::env::var("PALISADE_E2E_PREFIX") {
        Ok(p) => format!("{p}{tag}"),
        Err(_) => tag.to_string(),
    };
    LabOptions {
        state_dir: PathBuf::from(format!("/run/palisade-labt-{tag}")),
        agent_exe: PathBuf::from(env!("CARGO_BIN_EXE_palisade-lab")),
        agent_args: Vec::new(),
        ready_timeout: Duration::from_secs(10),
        start_agent: false,
        prefix: format!("plabt-{tag}-"),
        bpf_pin_dir: PathBuf::from(format!("/sys/fs/bpf/palisade-labt-{tag}")),
    }
}

/// Tears the lab down on drop (also on panic).
pub struct LabGuard(pub LabOptions);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = palisade_lab::down(&self.0) {
            eprintln!("down failed in guard: {e}");
        }
    }
}

/// Writes `yaml` as a topology file in `dir`.
pub fn topology_file(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("topology.yaml");
    std::fs::write(&path, yaml).expect("write topology");
    path
}

/// Runs a command in a member's namespace (found in `status`), capturing its output.
pub fn run_in(status: &LabStatus, member: &str, cmd: &[&str]) -> Output {
    let m = status
        .members
        .iter()
        .find(|m| m.name == member)
        .unwrap_or_else(|| panic!("no member {member} in\n{status}"));
    Command::new("ip")
        .args(["netns", "exec", &m.netns])
        .args(cmd)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?} in {member}: {e}"))
}

/// stdout of a command in a member, asserting it succeeded.
pub fn stdout_in(status: &LabStatus, member: &str, cmd: &[&str]) -> String {
    let out = run_in(status, member, cmd);
    assert!(
        out.status.success(),
        "{cmd:?} in {member} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lab namespaces with `prefix` that still exist.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// `/etc/netns` entries with `prefix` that still exist.
pub fn etc_netns_with(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts nothing of the lab with these options is left.
pub fn assert_gone(opts: &LabOptions) {
    assert_eq!(
        namespaces_with(&opts.prefix),
        Vec::<String>::new(),
        "namespaces left"
    );
    assert_eq!(
        etc_netns_with(&opts.prefix),
        Vec::<String>::new(),
        "/etc/netns dirs left"
    );
    assert!(
        !opts.state_dir.exists(),
        "state dir {} left",
        opts.state_dir.display()
    );
    assert!(!opts.bpf_pin_dir.exists(), "pin dir left");
}
