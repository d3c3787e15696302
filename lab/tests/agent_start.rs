//! `up` starts the agent inside the local node's namespace with the config it wrote, waits for
//! the ready file, reports an agent that dies with its log, and `down` stops it. A shell
//! script stands in for the agent binary.

#[path = "support/helpers.rs"]
mod helpers;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use helpers::{assert_gone, options, topology_file, LabGuard};
use palisade_lab::LabError;

const TOPOLOGY: &str =
    "nodes:\n- {name: n1}\n- {name: n2, local: true}\npods: [{name: p, node: n2}]\n";

/// Writes an executable fake agent running `body` after `run --config FILE`.
fn fake_agent(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-agent");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = run ] && [ \"$2\" = --config ] || exit 2\ncfg=\"$3\"\n\
         ready=$(sed -n 's/^readyFile: \"\\(.*\\)\"$/\\1/p' \"$cfg\")\n{body}\n"
    );
    std::fs::write(&path, script).expect("write fake agent");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn agent_runs_in_the_local_node_until_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options("agt");
    opts.start_agent = true;
    opts.agent_args = vec!["--extra".into()];
    opts.agent_exe = fake_agent(
        dir.path(),
        "echo \"args: $*\"; echo \"netns: $(ip netns identify $$)\"; \
         grep -q ' /sys/fs/bpf bpf ' /proc/mounts && echo bpffs: mounted; touch \"$ready\"; exec sleep 300",
    );
    let _ = palisade_lab::down(&opts);
    let guard = LabGuard(opts.clone());
    let topo = topology_file(dir.path(), TOPOLOGY);
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("policies dir");
    let status = palisade_lab::up(&topo, &policies, &opts).expect("lab up with agent");
    assert!(status.agent_ready, "ready file seen:\n{status}");
    let (agent, running) = status
        .processes
        .iter()
        .find(|(p, _)| p.role == "agent")
        .expect("agent recorded");
    assert!(*running, "agent still runs");
    let log = std::fs::read_to_string(&agent.log).expect("agent log");
    assert!(
        log.contains(&format!("netns: {}n2\n", opts.prefix)),
        "runs in the local node's namespace:\n{log}"
    );
    assert!(log.contains("--extra"), "extra args passed:\n{log}");
    assert!(
        log.contains("bpffs: mounted\n"),
        "the agent sees the machine's bpffs:\n{log}"
    );
    let config = std::fs::read_to_string(opts.state_dir.join("palisade.yaml")).expect("config");
    for key in [
        "topology: ",
        "policies: ",
        "readyFile: ",
        "apiSocket: ",
        "bpfPinDir: ",
    ] {
        assert!(config.contains(key), "{key} in config:\n{config}");
    }
    assert!(
        config.contains(&format!("{:?}", policies.display().to_string())),
        "{config}"
    );
    assert!(status.to_string().contains("running, ready"), "{status}");
    let pid = agent.pid;
    drop(guard);
    assert_gone(&opts);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "agent stopped: {stat}"
    );
}

#[test]
fn agent_that_dies_is_reported_with_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options("agtdie");
    opts.start_agent = true;
    opts.agent_exe = fake_agent(
        dir.path(),
        "echo 'boom: policy x.yaml:3 is bad' >&2; exit 3",
    );
    let _ = palisade_lab::down(&opts);
    let _guard = LabGuard(opts.clone());
    let topo = topology_file(dir.path(), TOPOLOGY);
    let err = palisade_lab::up(&topo, dir.path(), &opts).expect_err("agent exits");
    assert!(matches!(err, LabError::AgentExited { .. }), "{err}");
    assert!(
        err.to_string().contains("boom: policy x.yaml:3 is bad"),
        "log tail in error: {err}"
    );
    let status = palisade_lab::status(&opts).expect("lab stays up for inspection");
    assert!(status.to_string().contains("not running"), "{status}");
}
