//! Programs the kernel from a resolved revision: ipcache, endpoints, per-endpoint policy
//! entries. Everything is computed and checked against map capacity first; a revision that does
//! not fit is refused whole and the previous one keeps enforcing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use palisade_bpf::{
    Datapath, Direction as BpfDirection, EndpointInfo, PolicyEntry, SyncStats,
    Verdict as BpfVerdict,
};
use palisade_policy::compile::Direction;
use palisade_policy::ports::port_blocks;
use palisade_policy::resolve::{DirectionPolicy, EndpointPolicy, L7Kind, Verdict};

/// Proxy ports redirect verdicts point at.
#[derive(Debug, Clone, Copy)]
pub struct ProxyPorts {
    /// HTTP proxy.
    pub http: u16,
    /// DNS proxy.
    pub dns: u16,
}

/// One local endpoint as the datapath sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredEndpoint {
    /// Datapath endpoint id.
    pub id: u16,
    /// Host-side interface.
    pub ifname: String,
    /// Addresses.
    pub ips: Vec<IpAddr>,
    /// Identity.
    pub identity: u32,
    /// Ingress enforced.
    pub ingress: bool,
    /// Egress enforced.
    pub egress: bool,
    /// Map entries.
    pub entries: Vec<PolicyEntry>,
}

/// Converts one direction of a resolved policy into datapath entries.
pub fn entries_of(dir: Direction, dp: &DirectionPolicy, ports: ProxyPorts) -> Vec<PolicyEntry> {
    let direction = match dir {
        Direction::Ingress => BpfDirection::Ingress,
        Direction::Egress => BpfDirection::Egress,
    };
    dp.entries
        .iter()
        .map(|(k, v)| {
            // The datapath encodes "all ports" as 0..0.
            let (port, end_port) = if k.port == 0 && k.end_port == u16::MAX {
                (0, 0)
            } else {
                (k.port, k.end_port)
            };
            PolicyEntry {
                direction,
                identity: k.identity,
                proto: k.proto,
                port,
                end_port,
                verdict: match v.verdict {
                    Verdict::Allow => BpfVerdict::Allow,
                    Verdict::Deny => BpfVerdict::Deny,
                    Verdict::Redirect(L7Kind::Http) => BpfVerdict::Redirect {
                        proxy_port: ports.http,
                    },
                    Verdict::Redirect(L7Kind::Dns) => BpfVerdict::Redirect {
                        proxy_port: ports.dns,
                    },
                },
            }
        })
        .collect()
}

/// All entries of an endpoint (both directions).
pub fn endpoint_entries(policy: &EndpointPolicy, ports: ProxyPorts) -> Vec<PolicyEntry> {
    let mut out = entries_of(Direction::Ingress, &policy.ingress, ports);
    out.extend(entries_of(Direction::Egress, &policy.egress, ports));
    out
}

/// How many trie keys an entry expands to (ranges become prefix blocks, protocol ANY with
/// ports becomes TCP, UDP and SCTP), as the datapath stores it.
pub fn expanded_size(e: &PolicyEntry) -> usize {
    let all_ports = e.port == 0 && e.end_port == 0;
    let protos = if e.proto == 0 && !all_ports { 3 } else { 1 };
    let blocks = if e.proto == 0 || all_ports {
        1
    } else {
        port_blocks(e.port, e.end_port).len()
    };
    protos * blocks
}

/// What was applied to the kernel for one revision.
#[derive(Debug, Default, Clone)]
pub struct ApplyStats {
    /// Policy keys written.
    pub written: usize,
    /// Policy keys deleted.
    pub deleted: usize,
    /// Endpoints whose policy entries were touched.
    pub endpoints_touched: BTreeSet<String>,
    /// ipcache writes.
    pub ipcache_writes: usize,
}

/// What the kernel currently holds, as far as this agent knows.
#[derive(Debug, Default)]
pub struct Applied {
    /// ipcache contents.
    pub ipcache: BTreeMap<IpNet, u32>,
    /// Endpoints by name.
    pub endpoints: BTreeMap<String, DesiredEndpoint>,
    /// Interfaces with programs attached.
    pub attached: BTreeSet<String>,
}

/// Applies a revision: capacity check, then ipcache additions, policy entries, endpoint records,
/// and only then removals, so no packet sees a half-written state that allows more than either
/// revision.
pub fn apply(
    dp: &mut Datapath,
    applied: &mut Applied,
    ipcache: &BTreeMap<IpNet, u32>,
    endpoints: &BTreeMap<String, DesiredEndpoint>,
    external: Option<&str>,
) -> Result<ApplyStats> {
    let needed: usize = endpoints
        .values()
        .flat_map(|e| e.entries.iter())
        .map(expanded_size)
        .sum();
    let capacity = palisade_bpf::policy_map_capacity();
    if needed > capacity {
        bail!("policy needs {needed} map entries but the policy map holds {capacity}: revision refused, the previous policy stays in force");
    }
    let mut stats = ApplyStats::default();
    for (net, id) in ipcache {
        if applied.ipcache.get(net) != Some(id) {
            dp.set_ipcache(*net, *id)
                .with_context(|| format!("ipcache {net} → {id}"))?;
            applied.ipcache.insert(*net, *id);
            stats.ipcache_writes += 1;
        }
    }
    if let Some(ext) = external {
        if !applied.attached.contains(ext) {
            dp.attach_external(ext)
                .with_context(|| format!("attaching to {ext}"))?;
            applied.attached.insert(ext.to_string());
        }
    }
    for (name, ep) in endpoints {
        let old = applied.endpoints.get(name);
        if old.map(|o| &o.entries) != Some(&ep.entries) {
            let SyncStats {
                written, deleted, ..
            } = dp
                .sync_policy(ep.id, &ep.entries)
                .with_context(|| format!("policy of {name}"))?;
            if written + deleted > 0 {
                stats.endpoints_touched.insert(name.clone());
            }
            stats.written += written;
            stats.deleted += deleted;
        }
        let info_changed = old.is_none_or(|o| {
            (o.identity, o.ingress, o.egress, &o.ips)
                != (ep.identity, ep.ingress, ep.egress, &ep.ips)
        });
        if info_changed {
            let ifindex = ifindex(&ep.ifname)?;
            for ip in &ep.ips {
                dp.set_endpoint(
                    *ip,
                    EndpointInfo {
                        id: ep.id,
                        identity: ep.identity,
                        ifindex,
                        ingress_enforced: ep.ingress,
                        egress_enforced: ep.egress,
                    },
                )
                .with_context(|| format!("endpoint {name}"))?;
            }
        }
        if !applied.attached.contains(&ep.ifname) {
            dp.attach_endpoint(&ep.ifname)
                .with_context(|| format!("attaching to {} of {name}", ep.ifname))?;
            applied.attached.insert(ep.ifname.clone());
        }
        applied.endpoints.insert(name.clone(), ep.clone());
    }
    // Removals last.
    let gone: Vec<String> = applied
        .endpoints
        .keys()
        .filter(|n| !endpoints.contains_key(*n))
        .cloned()
        .collect();
    for name in gone {
        if let Some(ep) = applied.endpoints.remove(&name) {
            for ip in &ep.ips {
                let _ = dp.remove_endpoint(*ip);
            }
            let _ = dp.sync_policy(ep.id, &[]);
            if applied.attached.remove(&ep.ifname) {
                let _ = dp.detach(&ep.ifname);
            }
        }
    }
    let stale: Vec<IpNet> = applied
        .ipcache
        .keys()
        .filter(|n| !ipcache.contains_key(*n))
        .copied()
        .collect();
    for net in stale {
        dp.remove_ipcache(net)
            .with_context(|| format!("removing ipcache {net}"))?;
        applied.ipcache.remove(&net);
        stats.ipcache_writes += 1;
    }
    Ok(stats)
}

/// Interface index in the agent's network namespace.
fn ifindex(name: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(name).with_context(|| format!("interface {name} not found"))
}
