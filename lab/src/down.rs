//! `lab down`: stop the agent and the servers, delete every namespace, `/etc/netns` directory,
//! bpffs pin and state file of the lab. Works from the state file, and also finds leftovers
//! by the namespace prefix, so it cleans up after a crash or a killed `up`; running it twice
//! is harmless.

use std::path::Path;
use std::time::Duration;

use crate::agent::AgentFiles;
use crate::dns::DnsFiles;
use crate::error::LabError;
use crate::state::{LabState, STATE_FILE};
use crate::up::TOPOLOGY_FILE;
use crate::{netns, process, LabOptions, ETC_NETNS};

/// How long the agent gets to clean up after SIGTERM.
const AGENT_GRACE: Duration = Duration::from_secs(5);
/// How long other processes get after SIGTERM.
const SERVER_GRACE: Duration = Duration::from_secs(2);

/// Removes the lab of `opts` (its state directory and prefix). Errors are collected: it
/// keeps going and reports the first one at the end.
pub fn down(opts: &LabOptions) -> Result<(), LabError> {
    let state = match LabState::load(&opts.state_dir) {
        Ok(state) => Some(state),
        Err(LabError::NotUp(_)) => None,
        // An unreadable state file still leaves the prefix to find everything by.
        Err(e) => {
            tracing::warn!("{e}; cleaning up by prefix {}", opts.prefix);
            None
        }
    };
    let prefix = state
        .as_ref()
        .map(|s| s.prefix.clone())
        .unwrap_or(opts.prefix.clone());
    let mut first_error = None;
    let mut note = |r: Result<(), LabError>| {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    };
    stop_recorded(state.as_ref());
    let mut namespaces = netns::list(&prefix).unwrap_or_default();
    if let Some(state) = &state {
        namespaces.extend(
            state
                .namespaces
                .iter()
                .filter(|n| netns::exists(n))
                .cloned(),
        );
    }
    namespaces.sort();
    namespaces.dedup();
    let pids: Vec<i32> = namespaces.iter().flat_map(|n| netns::pids(n)).collect();
    process::stop(&pids, SERVER_GRACE);
    for ns in &namespaces {
        note(netns::delete(ns));
    }
    note(remove_etc_netns(Path::new(ETC_NETNS), &prefix));
    let pin_dir = state
        .as_ref()
        .map(|s| s.bpf_pin_dir.clone())
        .unwrap_or(opts.bpf_pin_dir.clone());
    note(remove_tree(&pin_dir));
    note(remove_state_dir(&opts.state_dir));
    first_error.map_or(Ok(()), Err)
}

/// Stops the recorded processes: the agent first, so it can detach its programs while its
/// namespace still exists, then the servers (also those whose namespace is already gone).
fn stop_recorded(state: Option<&LabState>) {
    let Some(state) = state else { return };
    // `running` compares start times, so a reused pid is never signalled.
    let pids = |agent: bool| -> Vec<i32> {
        state
            .processes
            .iter()
            .filter(|p| (p.role == "agent") == agent && p.running())
            .map(|p| p.pid)
            .collect()
    };
    process::stop(&pids(true), AGENT_GRACE);
    process::stop(&pids(false), SERVER_GRACE);
}

fn remove_etc_netns(etc: &Path, prefix: &str) -> Result<(), LabError> {
    let Ok(entries) = std::fs::read_dir(etc) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_tree(path: &Path) -> Result<(), LabError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::io(path, e)),
        _ => Ok(()),
    }
}

/// Removes the files the lab writes, then the directory if that left it empty (never a
/// recursive delete of a directory someone pointed `state_dir` at by mistake).
fn remove_state_dir(dir: &Path) -> Result<(), LabError> {
    let agent = AgentFiles::new(dir);
    let dns = DnsFiles::new(dir);
    let agent_state = agent.agent_state.clone();
    let tls_secrets = agent.tls_secrets.clone();
    let files = [
        dir.join(STATE_FILE),
        dir.join(TOPOLOGY_FILE),
        agent.config,
        agent.ready,
        agent.log,
        agent.socket,
        dns.conf,
        dns.hosts,
    ];
    for file in files {
        for path in [file.clone(), file.with_extension(tmp_ext(&file))] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LabError::io(&path, e))
                }
                _ => {}
            }
        }
    }
    remove_tree(&dir.join("logs"))?;
    remove_tree(&agent_state)?;
    remove_tree(&tls_secrets)?;
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::io(dir, e)),
        _ => Ok(()),
    }
}

/// Extension of the temporary file `write_atomic` uses for `file`.
fn tmp_ext(file: &Path) -> String {
    match file.extension() {
        Some(ext) => format!("{}.tmp", ext.to_string_lossy()),
        None => "tmp".into(),
    }
}
