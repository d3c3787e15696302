//! Agent restart: enforcement lives in the kernel, so while the agent is SIGKILLed allowed
//! flows still pass and denied ones still time out; a new agent adopts the pinned maps and
//! writes nothing (its first revision: `written=0 deleted=0`), the entries are identical.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use palisade_e2e::tools::{poll, strip_ansi, tail};
use palisade_e2e::Lab;

const DEV: &str = "default/dev-pod";
const GRANTED: &str = "default/client-granted";
const OTHER: &str = "default/client-other";
const ENDPOINTS: [&str; 3] = [DEV, "default/server", "default/client-dev"];

fn verdicts(lab: &Lab, when: &str) {
    let server = format!("http://{}/", lab.ip("default/server"));
    let (rc, _) = lab.curl(GRANTED, &server);
    assert_eq!(
        rc, 0,
        "{when}: access=granted reaches the server, exit {rc}"
    );
    let (rc, _) = lab.curl(OTHER, &server);
    assert_eq!(rc, 28, "{when}: client-other must time out, exit {rc}");
    assert!(
        lab.ping(DEV, "192.168.10.101"),
        "{when}: dev-pod reaches its own node"
    );
    assert!(
        !lab.ping(DEV, "192.168.10.100"),
        "{when}: dev-pod must not reach k8s-ctr"
    );
}

fn entries(lab: &Lab) -> Vec<serde_json::Value> {
    ENDPOINTS
        .iter()
        .map(|e| lab.cli_json(&["bpf", "policy", "get", e]))
        .collect()
}

fn agent_pid(lab: &Lab) -> u32 {
    let state = lab.state();
    let agent = state["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["role"] == "agent")
        .unwrap_or_else(|| panic!("no agent in the lab state: {state}"));
    agent["pid"].as_u64().expect("agent pid") as u32
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or_default()
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn enforcement_survives_agent_kill_and_restart_adopts_maps() {
    let lab = Lab::up("rst");
    for pod in [GRANTED, OTHER, DEV] {
        lab.assert_tools(pod, &["curl", "ping"]);
    }
    lab.apply(&[
        "s2-entities/dev-to-host.yaml",
        "s11-knp/allow-granted-access.yaml",
    ]);
    verdicts(&lab, "agent running");
    let before = entries(&lab);
    assert!(
        before
            .iter()
            .all(|e| e.as_array().is_some_and(|a| !a.is_empty())),
        "every checked endpoint has entries: {before:?}"
    );

    let pid = agent_pid(&lab);
    assert!(alive(pid), "the agent (pid {pid}) runs");
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -KILL {pid}");
    poll(Duration::from_secs(5), || (!alive(pid)).then_some(()))
        .unwrap_or_else(|| panic!("agent {pid} still alive after SIGKILL"));
    verdicts(&lab, "agent killed");

    // A new agent with the same config, only in the node's network namespace (bpffs visible).
    let ready = lab.state_dir().join("agent.ready");
    let _ = std::fs::remove_file(&ready);
    let config = lab.agent_config().to_string_lossy().into_owned();
    let bin = lab.bin().to_string_lossy().into_owned();
    lab.spawn(
        "k8s-w1",
        "agent-restarted.log",
        &[&bin, "run", "--config", &config],
    );
    let log = lab.log_path("agent-restarted.log");
    let read_log = |p: &Path| strip_ansi(&std::fs::read_to_string(p).unwrap_or_default());
    poll(Duration::from_secs(20), || ready.exists().then_some(())).unwrap_or_else(|| {
        panic!(
            "restarted agent never became ready; log:\n{}",
            tail(&read_log(&log), 25)
        )
    });
    // The API may come up just after the ready file.
    poll(Duration::from_secs(5), || {
        lab.cli(&["status"]).status.success().then_some(())
    })
    .unwrap_or_else(|| panic!("restarted agent's API; log:\n{}", tail(&read_log(&log), 25)));

    let text = read_log(&log);
    let first = text
        .lines()
        .find(|l| l.contains("policy applied"))
        .unwrap_or_else(|| panic!("no `policy applied` in the restarted agent's log:\n{text}"));
    assert!(
        first.contains(" written=0 ") && first.contains(" deleted=0 "),
        "the restarted agent adopts the pinned entries and writes nothing: {first}"
    );
    assert_eq!(
        entries(&lab),
        before,
        "bpf policy entries identical after the restart"
    );
    verdicts(&lab, "agent restarted");
}
