//! Network namespaces for integration tests: a guard that deletes them (and stops the processes
//! started in them) on drop, even when the test panics.

use std::process::{Child, Command, Output};

/// Runs a command and panics with its output when it fails.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `args` inside namespace `ns`, panicking on failure.
pub fn in_ns(ns: &str, args: &[&str]) -> Output {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    sh(&full)
}

/// Owns a set of namespaces and child processes; removes all of it on drop.
#[derive(Default)]
pub struct NsGuard {
    names: Vec<String>,
    children: Vec<Child>,
}

impl NsGuard {
    /// Creates namespace `name` (removing a stale one first) with `lo` up.
    pub fn add(&mut self, name: &str) {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        sh(&["ip", "netns", "add", name]);
        self.names.push(name.to_string());
        in_ns(name, &["ip", "link", "set", "lo", "up"]);
    }

    /// Keeps a child process to kill on drop.
    pub fn keep(&mut self, child: Child) {
        self.children.push(child);
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            // Deleting a namespace removes its veths and iptables rules with it.
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// True when running as root (the netns tests need it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
