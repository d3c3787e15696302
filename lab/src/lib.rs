//! Palisade's one-box lab: network namespaces act as cluster nodes, pods and external hosts,
//! wired like Cilium's native routing (routed pods, no bridge, a /32 route per pod), with
//! real servers in them (HTTP, whoami, dnsmasq) and the agent running inside the local node's
//! namespace. The agent binary exposes these functions as `palisade lab …` commands.
//!
//! Nothing is changed in the machine's root namespace: veth pairs are created directly into
//! their namespaces, sysctls are set inside them, and every name starts with a prefix
//! (`plab-` by default) so `down` finds leftovers even after a crash.
#![forbid(unsafe_code)]

mod agent;
mod commands;
pub mod dns;
mod down;
mod error;
mod netns;
mod network;
pub mod plan;
mod process;
mod serve;
mod state;
mod up;

use std::path::PathBuf;
use std::time::Duration;

pub use commands::{exec, label, status};
pub use down::down;
pub use error::LabError;
pub use palisade_policy::topology::ServeKind;
pub use serve::{serve, serve_with, TlsFiles};
pub use state::{LabState, LabStatus, Member, MemberKind, ProcessRecord};
pub use up::up;

/// Where the lab keeps its state and how it starts the agent.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// State directory: resolved topology, state, agent config and logs.
    pub state_dir: PathBuf,
    /// The `palisade` binary: run as the agent and as the lab's servers (`lab serve`).
    pub agent_exe: PathBuf,
    /// Extra arguments for `palisade run`.
    pub agent_args: Vec<String>,
    /// How long `up` waits for the agent's ready file.
    pub ready_timeout: Duration,
    /// Whether `up` starts the agent (off to test the lab's networking alone).
    pub start_agent: bool,
    /// Prefix of every namespace name (`plab-`); tests use their own.
    pub prefix: String,
    /// bpffs directory the agent pins into; `down` removes it.
    pub bpf_pin_dir: PathBuf,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            state_dir: PathBuf::from("/run/palisade-lab"),
            agent_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("palisade")),
            agent_args: Vec::new(),
            ready_timeout: Duration::from_secs(30),
            start_agent: true,
            prefix: "plab-".to_string(),
            bpf_pin_dir: PathBuf::from("/sys/fs/bpf/palisade-lab"),
        }
    }
}

/// Directory `ip netns exec` bind-mounts per-namespace files from.
pub(crate) const ETC_NETNS: &str = "/etc/netns";
