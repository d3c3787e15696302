//! `down` after a crash: with a state file but some namespaces already gone, and with no state
//! file at all (an `up` killed early) — everything with the prefix is removed, processes too.

#[path = "support/helpers.rs"]
mod helpers;

use std::process::Command;

use helpers::{assert_gone, options, topology_file, LabGuard};

#[test]
fn down_cleans_up_after_a_crash() {
    let opts = options("crash");
    let _ = palisade_lab::down(&opts);
    let _guard = LabGuard(opts.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "nodes: [{name: n1}]\npods:\n- {name: dns, serve: [{kind: dns}]}\n- {name: web, serve: [{kind: http}]}\n";
    let topo = topology_file(dir.path(), yaml);
    let status = palisade_lab::up(&topo, dir.path(), &opts).expect("lab up");
    let pids: Vec<i32> = status.processes.iter().map(|(p, _)| p.pid).collect();
    assert_eq!(pids.len(), 2, "dnsmasq and http run: {status}");

    // Simulate a crash: one namespace vanished, the state file stayed.
    let web = status
        .members
        .iter()
        .find(|m| m.name == "default/web")
        .expect("web pod");
    let del = Command::new("ip")
        .args(["netns", "del", &web.netns])
        .status()
        .expect("ip");
    assert!(del.success(), "delete {}", web.netns);
    palisade_lab::down(&opts).expect("down after crash");
    assert_gone(&opts);
    for pid in pids {
        assert!(!running(pid), "process {pid} left running");
    }
    palisade_lab::down(&opts).expect("down is idempotent");
}

#[test]
fn down_without_state_finds_leftovers_by_prefix() {
    let opts = options("nostate");
    let _guard = LabGuard(opts.clone());
    for ns in [format!("{}a", opts.prefix), format!("{}b", opts.prefix)] {
        let ok = Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .expect("ip");
        assert!(ok.success(), "create {ns}");
    }
    std::fs::create_dir_all(format!("/etc/netns/{}a", opts.prefix)).expect("etc netns");
    palisade_lab::down(&opts).expect("down without state");
    assert_gone(&opts);
}

/// Whether a process runs (a zombie child of this test does not count: it is dead).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
