//! Thin wrappers around `ip` (iproute2) and `sysctl`: create, list and delete network
//! namespaces, run `ip` batches inside them, list the processes living in them. Everything
//! is addressed by namespace name; nothing here touches the root namespace's own networking.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::error::LabError;

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let line = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command {
            command: line.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: line,
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out)
}

/// A command line for error messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `ip -batch -` (in `netns` when given) with one `ip` command per line.
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<(), LabError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"]);
    let line = format!("{} <<< {}", describe(&cmd), lines.join("; "));
    let spawn_err = |e: std::io::Error| LabError::Command {
        command: line.clone(),
        message: e.to_string(),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all((lines.join("\n") + "\n").as_bytes())
        .map_err(spawn_err)?;
    drop(stdin);
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: line,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Creates a network namespace.
pub fn add(name: &str) -> Result<(), LabError> {
    run(Command::new("ip").args(["netns", "add", name])).map(drop)
}

/// Deletes a network namespace (its interfaces and their veth peers go with it).
pub fn delete(name: &str) -> Result<(), LabError> {
    run(Command::new("ip").args(["netns", "del", name])).map(drop)
}

/// Names of existing network namespaces starting with `prefix`.
pub fn list(prefix: &str) -> Result<Vec<String>, LabError> {
    let out = run(Command::new("ip").args(["netns", "list"]))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect())
}

/// Whether the namespace exists.
pub fn exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// Process ids living in a namespace.
pub fn pids(name: &str) -> Vec<i32> {
    run(Command::new("ip").args(["netns", "pids", name]))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Sets sysctls (`key=value`) inside a namespace.
pub fn sysctl(netns: &str, settings: &[&str]) -> Result<(), LabError> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, "sysctl", "-q", "-w"])
        .args(settings);
    run(&mut cmd).map(drop)
}

/// A `Command` that runs `program` inside `netns` (`ip netns exec`, which also bind-mounts
/// `/etc/netns/<netns>/*` over `/etc`, giving pods their own `resolv.conf`).
pub fn exec_command(netns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, program]);
    cmd
}
