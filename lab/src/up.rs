//! `lab up`: resolve the topology, record the state, build the namespaces, start the servers
//! and the agent, and wait until the agent is ready. The lab keeps running after the caller
//! exits; `down` removes it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use palisade_policy::topology::{Serve, ServeKind};
use palisade_policy::Topology;

use crate::agent::{self, AgentFiles};
use crate::dns::{self, DnsFiles};
use crate::error::LabError;
use crate::plan::{self, Plan, UPLINK_IF};
use crate::process::{self, Proto};
use crate::state::{write_atomic, LabState, LabStatus, Member, MemberKind, ProcessRecord};
use crate::{netns, LabOptions, ETC_NETNS};

/// Name of the resolved topology in the state directory (the agent watches it).
pub const TOPOLOGY_FILE: &str = "topology.yaml";

/// How long a server may take to listen.
const SERVER_START: Duration = Duration::from_secs(10);

/// Builds the lab described by `topology_file`, starts its servers and (unless
/// `opts.start_agent` is off) the agent with `policies_dir`, and waits until the agent is
/// ready. When building fails everything is removed again; when only the agent fails the lab
/// stays up for inspection and the error carries the agent log's tail.
pub fn up(
    topology_file: &Path,
    policies_dir: &Path,
    opts: &LabOptions,
) -> Result<LabStatus, LabError> {
    // Absolute, because the agent and dnsmasq get these paths in their config files.
    let opts = &LabOptions {
        state_dir: std::path::absolute(&opts.state_dir)
            .map_err(|e| LabError::io(&opts.state_dir, e))?,
        ..opts.clone()
    };
    let topology = Topology::load(topology_file)?;
    let plan = plan::resolve(&topology, &opts.prefix)?;
    ensure_not_up(opts)?;
    std::fs::create_dir_all(opts.state_dir.join("logs"))
        .map_err(|e| LabError::io(&opts.state_dir, e))?;
    let mut state = initial_state(&plan, opts);
    state.save(&opts.state_dir)?;
    let mut children = Vec::new();
    if let Err(e) = build(&plan, &mut state, &mut children, opts) {
        let _ = crate::down(opts);
        return Err(e);
    }
    if opts.start_agent {
        start_agent(&plan, &mut state, policies_dir, opts)?;
    }
    let ready = AgentFiles::new(&opts.state_dir).ready.exists();
    Ok(LabStatus::from_state(&opts.state_dir, &state, ready))
}

/// Refuses to build over a lab that is up (or its leftovers).
fn ensure_not_up(opts: &LabOptions) -> Result<(), LabError> {
    let state_file = opts.state_dir.join(crate::state::STATE_FILE);
    if state_file.exists() {
        return Err(LabError::AlreadyUp(state_file.display().to_string()));
    }
    let leftovers = netns::list(&opts.prefix)?;
    if let Some(first) = leftovers.first() {
        return Err(LabError::AlreadyUp(format!("namespace {first} exists")));
    }
    Ok(())
}

fn initial_state(plan: &Plan, opts: &LabOptions) -> LabState {
    let v4 = |ips: &[std::net::Ipv4Addr]| ips.iter().copied().map(IpAddr::V4).collect();
    let mut members = vec![Member {
        kind: MemberKind::Fabric,
        name: "fabric".into(),
        netns: plan.fabric_netns.clone(),
        ips: plan.gateways.iter().map(|g| IpAddr::V4(g.addr())).collect(),
        node: None,
        interface: None,
    }];
    for (node, topo) in plan.nodes.iter().zip(&plan.topology.nodes) {
        members.push(Member {
            kind: MemberKind::Node,
            name: node.name.clone(),
            netns: node.netns.clone(),
            ips: topo.ips.clone(),
            node: None,
            interface: Some(UPLINK_IF.into()),
        });
    }
    for pod in &plan.pods {
        members.push(Member {
            kind: MemberKind::Pod,
            name: pod.key(),
            netns: pod.netns.clone(),
            ips: v4(&pod.ips),
            node: Some(plan.nodes[pod.node].name.clone()),
            interface: Some(pod.host_if.clone()),
        });
    }
    for ext in &plan.externals {
        members.push(Member {
            kind: MemberKind::External,
            name: ext.name.clone(),
            netns: ext.netns.clone(),
            ips: v4(&ext.ips),
            node: None,
            interface: None,
        });
    }
    LabState {
        prefix: opts.prefix.clone(),
        namespaces: crate::network::namespaces(plan),
        etc_netns: Vec::new(),
        bpf_pin_dir: opts.bpf_pin_dir.clone(),
        members,
        processes: Vec::new(),
        resolver: plan.resolver,
    }
}

/// Namespaces, links, DNS files and servers.
fn build(
    plan: &Plan,
    state: &mut LabState,
    children: &mut Vec<(Child, Proto, u16, usize)>,
    opts: &LabOptions,
) -> Result<(), LabError> {
    let dir = &opts.state_dir;
    let topo_text = serde_yaml_ng::to_string(&plan.topology).map_err(|e| LabError::State {
        path: dir.join(TOPOLOGY_FILE),
        message: e.to_string(),
    })?;
    write_atomic(&dir.join(TOPOLOGY_FILE), topo_text.as_bytes())?;
    crate::network::create_namespaces(plan)?;
    crate::network::wire(plan)?;
    if let Some(resolver) = plan.resolver {
        let files = DnsFiles::new(dir);
        write_atomic(&files.hosts, dns::hosts_file(&plan.topology).as_bytes())?;
        for pod in &plan.pods {
            let etc =
                dns::write_resolv_conf(Path::new(ETC_NETNS), &pod.netns, &pod.namespace, resolver)?;
            state.etc_netns.push(etc);
        }
        state.save(dir)?;
    }
    for pod in &plan.pods {
        for serve in &pod.serve {
            let child = start_server(plan, serve, &pod.netns, &pod.name, &pod.key(), state, opts)?;
            children.push(child);
        }
    }
    for ext in &plan.externals {
        for serve in &ext.serve {
            let child = start_server(plan, serve, &ext.netns, &ext.name, &ext.name, state, opts)?;
            children.push(child);
        }
    }
    state.save(dir)?;
    // Start them all first, then wait: they come up in parallel.
    for (child, proto, port, idx) in children.iter_mut() {
        let rec = &state.processes[*idx];
        if let Err(message) = process::wait_listening(child, *proto, *port, SERVER_START) {
            return Err(LabError::ServerStart {
                what: rec.role.clone(),
                netns: rec.netns.clone(),
                message: format!("{message}\n{}", process::tail(&rec.log, 10)),
            });
        }
    }
    Ok(())
}

/// Starts one server and records it; returns what to wait for.
fn start_server(
    plan: &Plan,
    serve: &Serve,
    netns: &str,
    host: &str,
    member: &str,
    state: &mut LabState,
    opts: &LabOptions,
) -> Result<(Child, Proto, u16, usize), LabError> {
    let (kind, proto, default_port) = match serve.kind {
        ServeKind::Http => ("http", Proto::Tcp, 80),
        ServeKind::Whoami => ("whoami", Proto::Tcp, 80),
        ServeKind::Dns => ("dns", Proto::Udp, 53),
    };
    let port = serve.port.unwrap_or(default_port);
    let log = opts
        .state_dir
        .join("logs")
        .join(format!("{netns}.{kind}-{port}.log"));
    let (program, args): (PathBuf, Vec<String>) = if serve.kind == ServeKind::Dns {
        let files = DnsFiles::new(&opts.state_dir);
        let listen = plan
            .pods
            .iter()
            .find(|p| p.netns == netns)
            .map(|p| p.ips[0])
            .ok_or_else(|| LabError::Plan(format!("{member}: dns is served by pods only")))?;
        let conf = dns::dnsmasq_conf(&plan.topology, &files, listen, port);
        write_atomic(&files.conf, conf.as_bytes())?;
        let conf_arg = format!("--conf-file={}", files.conf.display());
        (
            "dnsmasq".into(),
            vec!["--keep-in-foreground".into(), conf_arg],
        )
    } else {
        let args = [
            "lab",
            "serve",
            kind,
            "--port",
            &port.to_string(),
            "--name",
            host,
        ];
        (opts.agent_exe.clone(), args.map(String::from).to_vec())
    };
    let child = process::spawn_detached(netns, process::Enter::IpNetnsExec, &program, &args, &log)?;
    state.processes.push(ProcessRecord {
        role: format!("{kind}:{port}"),
        member: member.to_string(),
        netns: netns.to_string(),
        pid: child.id() as i32,
        start_time: process::start_time(child.id() as i32),
        log,
    });
    Ok((child, proto, port, state.processes.len() - 1))
}

fn start_agent(
    plan: &Plan,
    state: &mut LabState,
    policies_dir: &Path,
    opts: &LabOptions,
) -> Result<(), LabError> {
    let local = plan
        .topology
        .local_node()
        .and_then(|n| plan.nodes.iter().find(|p| p.name == n.name))
        .expect("a plan has at least one node");
    let files = AgentFiles::new(&opts.state_dir);
    let policies = std::path::absolute(policies_dir).map_err(|e| LabError::io(policies_dir, e))?;
    agent::write_config(&files, &opts.state_dir.join(TOPOLOGY_FILE), &policies, opts)?;
    let mut child = agent::spawn(&files, &local.netns, opts)?;
    state.processes.push(ProcessRecord {
        role: "agent".into(),
        member: local.name.clone(),
        netns: local.netns.clone(),
        pid: child.id() as i32,
        start_time: process::start_time(child.id() as i32),
        log: files.log.clone(),
    });
    state.save(&opts.state_dir)?;
    agent::wait_ready(&mut child, &files, opts.ready_timeout)
}
