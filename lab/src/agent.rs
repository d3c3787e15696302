//! Starting the agent inside the local node's namespace: its config file, the detached
//! process, and the wait for its ready file.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::LabError;
use crate::process;
use crate::state::write_atomic;
use crate::LabOptions;

/// Files of the agent under the state directory.
pub struct AgentFiles {
    /// `palisade.yaml`.
    pub config: PathBuf,
    /// Written by the agent once the first policy is applied.
    pub ready: PathBuf,
    /// The agent's stdout and stderr.
    pub log: PathBuf,
    /// The agent's API socket.
    pub socket: PathBuf,
    /// The agent's own state (endpoint ids, learned FQDN cache), private to this lab.
    pub agent_state: PathBuf,
    /// TLS secrets of policies, `<namespace>/<name>/<item>` (the agent's `tls.secretsDir`).
    pub tls_secrets: PathBuf,
}

impl AgentFiles {
    /// Files under `state_dir`.
    pub fn new(state_dir: &Path) -> AgentFiles {
        AgentFiles {
            config: state_dir.join("palisade.yaml"),
            ready: state_dir.join("agent.ready"),
            log: state_dir.join("agent.log"),
            socket: state_dir.join("palisade.sock"),
            agent_state: state_dir.join("agent-state"),
            tls_secrets: state_dir.join("tls-secrets"),
        }
    }
}

/// Writes the agent's config: topology, policies, ready file, API socket, pin directory.
pub fn write_config(
    files: &AgentFiles,
    topology: &Path,
    policies: &Path,
    opts: &LabOptions,
) -> Result<(), LabError> {
    let quote = |p: &Path| serde_json::to_string(&p.to_string_lossy()).expect("string");
    let text = format!(
        "# written by palisade lab up\n\
         topology: {}\npolicies: {}\nreadyFile: {}\napiSocket: {}\nbpfPinDir: {}\nstateDir: {}\n\
         tls:\n  secretsDir: {}\n",
        quote(topology),
        quote(policies),
        quote(&files.ready),
        quote(&files.socket),
        quote(&opts.bpf_pin_dir),
        quote(&files.agent_state),
        quote(&files.tls_secrets),
    );
    write_atomic(&files.config, text.as_bytes())
}

/// Starts `<agent_exe> run --config … <agent_args…>` in `netns`, entering only the network
/// namespace so the agent sees the machine's bpffs (`ip netns exec` would hide it).
pub fn spawn(files: &AgentFiles, netns: &str, opts: &LabOptions) -> Result<Child, LabError> {
    let mut args = vec![
        "run".to_string(),
        "--config".to_string(),
        files.config.to_string_lossy().into_owned(),
    ];
    args.extend(opts.agent_args.iter().cloned());
    let _ = std::fs::remove_file(&files.ready);
    process::spawn_detached(
        netns,
        process::Enter::NetOnly,
        &opts.agent_exe,
        &args,
        &files.log,
    )
}

/// Waits for the ready file, failing early when the agent exits.
pub fn wait_ready(
    child: &mut Child,
    files: &AgentFiles,
    timeout: Duration,
) -> Result<(), LabError> {
    let start = Instant::now();
    loop {
        if files.ready.exists() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LabError::AgentExited {
                status: status.to_string(),
                log: files.log.clone(),
                tail: process::tail(&files.log, 20),
            });
        }
        if start.elapsed() > timeout {
            return Err(LabError::AgentTimeout {
                seconds: timeout.as_secs(),
                log: files.log.clone(),
                tail: process::tail(&files.log, 20),
            });
        }
        sleep(Duration::from_millis(50));
    }
}
