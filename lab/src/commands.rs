//! Commands on a running lab: `exec` in a member's namespace, `label` a pod (the agent sees
//! the rewritten topology), `status`.

use std::os::unix::process::ExitStatusExt;

use nix::sys::signal::Signal;
use palisade_policy::Topology;

use crate::agent::AgentFiles;
use crate::dns::{self, DnsFiles};
use crate::error::LabError;
use crate::state::{write_atomic, LabState, LabStatus};
use crate::up::TOPOLOGY_FILE;
use crate::{netns, process, LabOptions};

/// Runs `cmd` in the namespace of a pod (`NAMESPACE/POD`, or `POD` in `default`), node or
/// external host, with the caller's stdio; returns its exit code (128 + signal if killed).
pub fn exec(opts: &LabOptions, name: &str, cmd: &[String]) -> Result<i32, LabError> {
    let state = LabState::load(&opts.state_dir)?;
    let member = state
        .member(name)
        .ok_or_else(|| LabError::UnknownMember(name.to_string()))?;
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| LabError::Usage("exec needs a command".into()))?;
    let mut command = netns::exec_command(&member.netns, program);
    command.args(args);
    let status = command.status().map_err(|e| LabError::Command {
        command: netns::describe(&command),
        message: e.to_string(),
    })?;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

/// Sets (`key=value`) or removes (`key-`) a label of a pod in the lab's resolved topology,
/// written atomically so the agent watching it never reads half a file. The resolver's
/// records follow (a pod may join or leave a service).
pub fn label(opts: &LabOptions, pod: &str, kv: &str) -> Result<(), LabError> {
    let path = opts.state_dir.join(TOPOLOGY_FILE);
    if !path.exists() {
        return Err(LabError::NotUp(path));
    }
    let mut topology = Topology::load(&path)?;
    let (ns, name) = pod.split_once('/').unwrap_or(("default", pod));
    let target = topology
        .pods
        .iter_mut()
        .find(|p| p.namespace == ns && p.name == name)
        .ok_or_else(|| LabError::UnknownMember(pod.to_string()))?;
    apply_label(&mut target.labels, kv)?;
    let text = serde_yaml_ng::to_string(&topology).map_err(|e| LabError::State {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_atomic(&path, text.as_bytes())?;
    refresh_resolver(opts, &topology)
}

/// Applies `key=value` or `key-` to a label map.
fn apply_label(labels: &mut palisade_policy::topology::LabelMap, kv: &str) -> Result<(), LabError> {
    if let Some((k, v)) = kv.split_once('=') {
        if k.is_empty() {
            return Err(LabError::BadLabel(kv.to_string()));
        }
        labels.insert(k.to_string(), v.to_string());
    } else if let Some(k) = kv.strip_suffix('-').filter(|k| !k.is_empty()) {
        labels.remove(k);
    } else {
        return Err(LabError::BadLabel(kv.to_string()));
    }
    Ok(())
}

/// Rewrites dnsmasq's hosts file and makes it reread it (SIGHUP).
fn refresh_resolver(opts: &LabOptions, topology: &Topology) -> Result<(), LabError> {
    let Ok(state) = LabState::load(&opts.state_dir) else {
        return Ok(());
    };
    let files = DnsFiles::new(&opts.state_dir);
    let dnsmasq: Vec<i32> = state
        .processes
        .iter()
        .filter(|p| p.role.starts_with("dns:") && process::alive(p.pid))
        .map(|p| p.pid)
        .collect();
    if dnsmasq.is_empty() {
        return Ok(());
    }
    write_atomic(&files.hosts, dns::hosts_file(topology).as_bytes())?;
    process::signal_all(&dnsmasq, Signal::SIGHUP);
    Ok(())
}

/// What exists, with addresses and processes.
pub fn status(opts: &LabOptions) -> Result<LabStatus, LabError> {
    let state = LabState::load(&opts.state_dir)?;
    let ready = AgentFiles::new(&opts.state_dir).ready.exists();
    Ok(LabStatus::from_state(&opts.state_dir, &state, ready))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_set_and_remove() {
        let mut labels = palisade_policy::topology::LabelMap::new();
        apply_label(&mut labels, "study=security").expect("set");
        assert_eq!(labels.get("study").map(String::as_str), Some("security"));
        apply_label(&mut labels, "study-").expect("remove");
        assert!(labels.is_empty(), "label removed: {labels:?}");
        assert!(
            apply_label(&mut labels, "nonsense").is_err(),
            "neither form"
        );
        assert!(apply_label(&mut labels, "=x").is_err(), "empty key");
    }
}
