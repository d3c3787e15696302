//! The lab's state file (`<state_dir>/state.json`): what `up` created, so `down`, `exec`,
//! `label` and `status` work from another process, and [`LabStatus`], its view for users.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::process;

/// Name of the state file in the state directory.
pub const STATE_FILE: &str = "state.json";

/// What a lab member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberKind {
    /// The underlay / internet namespace.
    Fabric,
    /// A cluster node.
    Node,
    /// A pod.
    Pod,
    /// A host outside the cluster.
    External,
}

impl fmt::Display for MemberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberKind::Fabric => "fabric",
            MemberKind::Node => "node",
            MemberKind::Pod => "pod",
            MemberKind::External => "external",
        })
    }
}

/// A namespace of the lab and what lives there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Kind of member.
    pub kind: MemberKind,
    /// Name: `NAMESPACE/POD` for pods, the plain name otherwise.
    pub name: String,
    /// Network namespace.
    pub netns: String,
    /// Addresses.
    pub ips: Vec<IpAddr>,
    /// Node a pod runs on.
    pub node: Option<String>,
    /// Host-side interface of a pod, uplink of a node.
    pub interface: Option<String>,
}

/// A background process the lab started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// `agent`, or the server kind and port (`http:80`, `dns:53`).
    pub role: String,
    /// Member it runs in.
    pub member: String,
    /// Its network namespace.
    pub netns: String,
    /// Process id.
    pub pid: i32,
    /// Its start time (see `process::start_time`), to never signal a reused pid.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// Its log file.
    pub log: PathBuf,
}

impl ProcessRecord {
    /// Whether the recorded process still runs (same pid and start time).
    pub fn running(&self) -> bool {
        process::alive(self.pid) && process::start_time(self.pid) == self.start_time
    }
}

/// Everything `up` created.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    /// Prefix of every namespace of this lab.
    pub prefix: String,
    /// Network namespaces created.
    pub namespaces: Vec<String>,
    /// `/etc/netns/*` directories written.
    pub etc_netns: Vec<PathBuf>,
    /// bpffs directory the agent pins into.
    pub bpf_pin_dir: PathBuf,
    /// Members with their addresses.
    pub members: Vec<Member>,
    /// Background processes.
    pub processes: Vec<ProcessRecord>,
    /// Address of the resolver pod.
    pub resolver: Option<Ipv4Addr>,
}

impl LabState {
    /// Reads the state file of `state_dir`.
    pub fn load(state_dir: &Path) -> Result<LabState, LabError> {
        let path = state_dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LabError::NotUp(path))
            }
            Err(e) => return Err(LabError::io(path, e)),
        };
        serde_json::from_str(&text).map_err(|e| LabError::State {
            path,
            message: e.to_string(),
        })
    }

    /// Writes the state file atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), LabError> {
        let text = serde_json::to_string_pretty(self).expect("state serializes");
        write_atomic(&state_dir.join(STATE_FILE), text.as_bytes())
    }

    /// The member `name` refers to: `NS/POD`, a pod of `default`, a node, an external host or
    /// `fabric`, in that order.
    pub fn member(&self, name: &str) -> Option<&Member> {
        let find =
            |kind: MemberKind, n: &str| self.members.iter().find(|m| m.kind == kind && m.name == n);
        if name.contains('/') {
            return find(MemberKind::Pod, name);
        }
        find(MemberKind::Pod, &format!("default/{name}"))
            .or_else(|| find(MemberKind::Node, name))
            .or_else(|| find(MemberKind::External, name))
            .or_else(|| find(MemberKind::Fabric, name))
    }
}

/// Writes `path` through a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LabError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| LabError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| LabError::io(path, e))
}

/// What the lab looks like now.
#[derive(Debug, Clone, PartialEq)]
pub struct LabStatus {
    /// State directory.
    pub state_dir: PathBuf,
    /// Members and addresses.
    pub members: Vec<Member>,
    /// Background processes with whether each still runs.
    pub processes: Vec<(ProcessRecord, bool)>,
    /// Whether the agent has written its ready file.
    pub agent_ready: bool,
    /// Address of the resolver pod.
    pub resolver: Option<Ipv4Addr>,
}

impl LabStatus {
    /// The status of the lab described by `state`.
    pub fn from_state(state_dir: &Path, state: &LabState, agent_ready: bool) -> LabStatus {
        LabStatus {
            state_dir: state_dir.to_path_buf(),
            members: state.members.clone(),
            processes: state
                .processes
                .iter()
                .map(|p| (p.clone(), p.running()))
                .collect(),
            agent_ready,
            resolver: state.resolver,
        }
    }

    /// The first IPv4 address of a member, by the names `exec` accepts.
    pub fn ip_of(&self, name: &str) -> Option<Ipv4Addr> {
        let state = LabState {
            members: self.members.clone(),
            ..LabState::default()
        };
        state.member(name)?.ips.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
    }
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 6]> = self
            .members
            .iter()
            .map(|m| {
                let ips: Vec<String> = m.ips.iter().map(ToString::to_string).collect();
                let serves: Vec<String> = self
                    .processes
                    .iter()
                    .filter(|(p, _)| p.member == m.name && p.netns == m.netns)
                    .map(|(p, up)| format!("{}{}", p.role, if *up { "" } else { " (dead)" }))
                    .collect();
                [
                    m.kind.to_string(),
                    m.name.clone(),
                    m.netns.clone(),
                    ips.join(","),
                    m.interface.clone().unwrap_or_default(),
                    serves.join(" "),
                ]
            })
            .collect();
        let header = ["KIND", "NAME", "NETNS", "IPV4", "INTERFACE", "RUNS"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            writeln!(f, "{}", line.join("  ").trim_end())?;
        }
        let resolver = self
            .resolver
            .map(|r| r.to_string())
            .unwrap_or_else(|| "none".into());
        writeln!(f, "resolver: {resolver}")?;
        match self.processes.iter().find(|(p, _)| p.role == "agent") {
            Some((p, up)) => {
                let state = match (up, self.agent_ready) {
                    (true, true) => "running, ready",
                    (true, false) => "running, not ready",
                    (false, _) => "not running",
                };
                writeln!(
                    f,
                    "agent: pid {} in {} ({state}); log {}",
                    p.pid,
                    p.netns,
                    p.log.display()
                )
            }
            None => writeln!(f, "agent: not started"),
        }
    }
}
