//! Background processes of the lab (servers, dnsmasq, the agent): started detached in their
//! namespace with their output in a log file, watched until they listen, and stopped with
//! SIGTERM then SIGKILL. Processes are found again after a crash through `ip netns pids`.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::LabError;
use crate::netns;

/// How often waits poll.
const POLL: Duration = Duration::from_millis(20);

/// How a process enters its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enter {
    /// `ip netns exec`: network namespace plus a private mount namespace with the namespace's
    /// own `/sys` and `/etc/netns/<netns>/*` bind-mounted over `/etc` (pods' `resolv.conf`).
    /// That fresh `/sys` has no bpffs at `/sys/fs/bpf`.
    IpNetnsExec,
    /// `nsenter --net`: only the network namespace, so the machine's bpffs stays visible
    /// (the agent pins its maps and links there).
    NetOnly,
}

/// Starts `program args…` inside `netns` in its own session (it outlives the caller), with
/// stdout and stderr appended to `log`. `setsid`, `ip netns exec` and `nsenter` all exec, so
/// the child's pid is the program's.
pub fn spawn_detached(
    netns: &str,
    enter: Enter,
    program: &Path,
    args: &[String],
    log: &Path,
) -> Result<Child, LabError> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io(log, e))?;
    let err = out.try_clone().map_err(|e| LabError::io(log, e))?;
    let mut cmd = Command::new("setsid");
    match enter {
        Enter::IpNetnsExec => cmd.args(["ip", "netns", "exec", netns]),
        Enter::NetOnly => cmd.args(["nsenter", &format!("--net=/run/netns/{netns}")]),
    };
    cmd.arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    cmd.spawn().map_err(|e| LabError::Command {
        command: netns::describe(&cmd),
        message: e.to_string(),
    })
}

/// Transport of a listener to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A TCP socket in LISTEN state.
    Tcp,
    /// A bound UDP socket.
    Udp,
}

/// Waits until the namespace of `child` has a listener on `port`, reading `/proc/PID/net/*`
/// (the namespace's own socket tables) so no packet is ever sent to check.
pub fn wait_listening(
    child: &mut Child,
    proto: Proto,
    port: u16,
    timeout: Duration,
) -> Result<(), String> {
    let table = match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let path = format!("/proc/{}/net/{table}", child.id());
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            if has_listener(&text, proto, port) {
                return Ok(());
            }
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "not listening on {table} port {port} after {timeout:?}"
            ));
        }
        sleep(POLL);
    }
}

/// Whether a `/proc/net/{tcp,udp}` table has a socket bound to `port` (listening, for TCP).
fn has_listener(table: &str, proto: Proto, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let local_port = cols
            .get(1)
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        let state = cols.get(3).copied().unwrap_or("");
        local_port == Some(port) && (proto == Proto::Udp || state == "0A")
    })
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            // The state follows the parenthesised command name.
            let state = s.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(
                state.and_then(|r| r.chars().next()),
                Some('Z') | Some('X') | None
            )
        })
        .unwrap_or(false)
}

/// When a process started (clock ticks since boot, `/proc/PID/stat` field 22): with the pid,
/// it tells a process apart from a later one that reuses the pid.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state); field 22 is the 20th after it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Sends `signal` to each pid, ignoring those already gone.
pub fn signal_all(pids: &[i32], signal: Signal) {
    for pid in pids {
        let _ = kill(Pid::from_raw(*pid), signal);
    }
}

/// SIGTERM, then SIGKILL for whatever is still alive after `grace`.
pub fn stop(pids: &[i32], grace: Duration) {
    signal_all(pids, Signal::SIGTERM);
    let start = Instant::now();
    while pids.iter().any(|p| alive(*p)) && start.elapsed() < grace {
        sleep(POLL);
    }
    let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    signal_all(&left, Signal::SIGKILL);
    let start = Instant::now();
    while left.iter().any(|p| alive(*p)) && start.elapsed() < Duration::from_secs(2) {
        sleep(POLL);
    }
}

/// The last `n` lines of a log file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
        0: 00000000:0050 00000000:0000 0A 00000000:00000000\n   \
        1: 0100007F:1F90 0100007F:C350 01 00000000:00000000\n";

    #[test]
    fn finds_tcp_listener_only_in_listen_state() {
        assert!(has_listener(TCP, Proto::Tcp, 80), "port 80 listens");
        assert!(
            !has_listener(TCP, Proto::Tcp, 8080),
            "8080 is an established socket"
        );
        assert!(
            has_listener(TCP, Proto::Udp, 8080),
            "any bound UDP socket counts"
        );
    }

    #[test]
    fn tail_keeps_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\n").expect("write");
        assert_eq!(tail(&path, 2), "b\nc");
    }
}
