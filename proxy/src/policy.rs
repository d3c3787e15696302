//! The snapshot compiled for the request path: endpoints by address, an LPM ipcache, and an
//! `HttpRuleSet` per port/peer entry. Built once per revision, off the request path.

use crate::ipcache::{IpCache, WORLD};
use crate::tls::{CompiledTls, FlowTls};
use crate::{CompileError, PolicySnapshot, PortL7};
use palisade_httpmatch::{Decision, HttpRuleSet, RequestView};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Source of [`CompiledPolicy::generation`]: unique per compiled policy in this process, even
/// if two snapshots carried the same revision.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A compiled snapshot.
#[derive(Debug, Default)]
pub(crate) struct CompiledPolicy {
    pub(crate) revision: u64,
    /// Identifies this compiled policy (0 for the empty default), so connections can keep the
    /// flow they resolved until the policy changes.
    pub(crate) generation: u64,
    ipcache: IpCache,
    endpoints: Vec<CompiledEndpoint>,
    by_ip: HashMap<IpAddr, usize>,
    /// Some entry has TLS settings; without any, flows skip the TLS classification.
    any_tls: bool,
}

#[derive(Debug)]
struct CompiledEndpoint {
    identity: u32,
    ingress: Vec<CompiledPort>,
    egress: Vec<CompiledPort>,
}

#[derive(Debug)]
struct CompiledPort {
    first: u16,
    last: u16,
    peers: Vec<CompiledPeer>,
}

#[derive(Debug)]
struct CompiledPeer {
    /// `None` = any identity.
    identities: Option<HashSet<u32>>,
    /// `None` = allowed without L7 filtering. Shared so a resolved flow can outlive the borrow.
    rules: Option<Arc<HttpRuleSet>>,
    /// `None` = plain traffic (no SNI check, no TLS termination or origination).
    tls: Option<Arc<CompiledTls>>,
}

/// What one direction (the destination's ingress or the source's egress) says about a flow.
#[derive(Debug)]
pub(crate) enum DirectionPolicy {
    /// No entry for this port and peer: this direction has nothing to say.
    Absent,
    /// A matching entry without HTTP rules: allowed at L3/L4, not filtered here.
    Unfiltered,
    /// HTTP rule sets of every matching entry; one of them must allow.
    Filtered(Vec<Arc<HttpRuleSet>>),
}

/// Both directions of one flow, with the identities used. Owned, so a connection resolves its
/// flow once per policy generation and reuses it for every request.
#[derive(Debug)]
pub(crate) struct FlowPolicy {
    /// [`CompiledPolicy::generation`] this was resolved from.
    pub(crate) generation: u64,
    pub(crate) src_identity: u32,
    pub(crate) dst_identity: u32,
    pub(crate) ingress: DirectionPolicy,
    pub(crate) egress: DirectionPolicy,
    /// What TLS handling the connection gets (decided once, when it is accepted).
    pub(crate) tls: FlowTls,
}

impl CompiledPolicy {
    /// Compiles every rule of the snapshot; the first bad rule fails the whole snapshot.
    pub(crate) fn compile(snap: &PolicySnapshot) -> Result<CompiledPolicy, CompileError> {
        let mut endpoints = Vec::with_capacity(snap.endpoints.len());
        let mut by_ip = HashMap::new();
        for ep in &snap.endpoints {
            let ports = |direction: &'static str, ports: &[PortL7]| {
                ports
                    .iter()
                    .map(|p| {
                        let context = format!("endpoint {} {direction} port {}", ep.name, p.port);
                        compile_port(p, &context).map_err(|source| CompileError {
                            revision: snap.revision,
                            endpoint: ep.name.clone(),
                            direction,
                            port: p.port,
                            source,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            let compiled = CompiledEndpoint {
                identity: ep.identity,
                ingress: ports("ingress", &ep.ingress)?,
                egress: ports("egress", &ep.egress)?,
            };
            for ip in &ep.ips {
                by_ip.insert(*ip, endpoints.len());
            }
            endpoints.push(compiled);
        }
        let any_tls = endpoints.iter().any(|ep: &CompiledEndpoint| {
            ep.ingress
                .iter()
                .chain(&ep.egress)
                .flat_map(|p| &p.peers)
                .any(|peer| peer.tls.is_some())
        });
        Ok(CompiledPolicy {
            any_tls,
            revision: snap.revision,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            ipcache: IpCache::new(&snap.ipcache),
            endpoints,
            by_ip,
        })
    }

    /// Identity of an address: a local endpoint's own identity, else the ipcache, else world.
    pub(crate) fn identity(&self, ip: IpAddr) -> u32 {
        match self.endpoint(ip) {
            Some(ep) => ep.identity,
            None => self.ipcache.lookup(ip).unwrap_or(WORLD),
        }
    }

    fn endpoint(&self, ip: IpAddr) -> Option<&CompiledEndpoint> {
        self.by_ip.get(&ip).map(|&i| &self.endpoints[i])
    }

    /// The rules that apply to a flow from `src` to `dst` in both directions.
    pub(crate) fn flow(&self, src: SocketAddr, dst: SocketAddr) -> FlowPolicy {
        let src_identity = self.identity(src.ip());
        let dst_identity = self.identity(dst.ip());
        let ingress_ports = self.endpoint(dst.ip()).map(|ep| &ep.ingress[..]);
        let egress_ports = self.endpoint(src.ip()).map(|ep| &ep.egress[..]);
        let ingress = ingress_ports.map_or(DirectionPolicy::Absent, |ports| {
            direction(ports, dst.port(), src_identity)
        });
        let egress = egress_ports.map_or(DirectionPolicy::Absent, |ports| {
            direction(ports, dst.port(), dst_identity)
        });
        let tls = if self.any_tls {
            FlowTls::classify(
                &tls_of(ingress_ports, dst.port(), src_identity),
                &tls_of(egress_ports, dst.port(), dst_identity),
            )
        } else {
            FlowTls::Plain
        };
        FlowPolicy {
            generation: self.generation,
            src_identity,
            dst_identity,
            ingress,
            egress,
            tls,
        }
    }
}

impl DirectionPolicy {
    /// `None` when this direction does not filter, else the first allowing decision
    /// (or a deny when no rule set allows).
    pub(crate) fn check(&self, req: &RequestView<'_>) -> Option<Decision> {
        let DirectionPolicy::Filtered(sets) = self else {
            return None;
        };
        let mut last = Decision {
            rule: None,
            actions: Vec::new(),
        };
        for set in sets {
            last = set.check(req);
            if last.allowed() {
                break;
            }
        }
        Some(last)
    }
}

/// TLS settings of each matching entry (`None` for a plain entry).
fn tls_of(ports: Option<&[CompiledPort]>, port: u16, peer: u32) -> Vec<Option<&Arc<CompiledTls>>> {
    matching(ports.unwrap_or_default(), port, peer)
        .map(|e| e.tls.as_ref())
        .collect()
}

/// The peer entries of `ports` that cover `port` and `peer`.
fn matching(ports: &[CompiledPort], port: u16, peer: u32) -> impl Iterator<Item = &CompiledPeer> {
    ports
        .iter()
        .filter(move |p| p.first == 0 || (p.first..=p.last).contains(&port))
        .flat_map(move |p| {
            p.peers
                .iter()
                .filter(move |e| e.identities.as_ref().is_none_or(|ids| ids.contains(&peer)))
        })
}

fn direction(ports: &[CompiledPort], port: u16, peer: u32) -> DirectionPolicy {
    let mut result = DirectionPolicy::Absent;
    let mut sets = Vec::new();
    for peer_entry in matching(ports, port, peer) {
        match &peer_entry.rules {
            // An L3/L4 allow for this peer makes the direction unfiltered, whatever else matches.
            None => return DirectionPolicy::Unfiltered,
            Some(set) => sets.push(set.clone()),
        }
    }
    if !sets.is_empty() {
        result = DirectionPolicy::Filtered(sets);
    }
    result
}

fn compile_port(
    p: &PortL7,
    context: &str,
) -> Result<CompiledPort, palisade_httpmatch::HttpRuleError> {
    let peers = p
        .peers
        .iter()
        .map(|peer| {
            Ok(CompiledPeer {
                // Identity 0 in a policy key is the wildcard.
                identities: match &peer.identities {
                    Some(ids) if !ids.contains(&0) => Some(ids.iter().copied().collect()),
                    _ => None,
                },
                rules: peer
                    .http
                    .as_deref()
                    .map(HttpRuleSet::compile)
                    .transpose()?
                    .map(Arc::new),
                // A bad secret does not reject the snapshot: only this port fails closed.
                tls: peer
                    .tls
                    .as_ref()
                    .map(|t| Arc::new(CompiledTls::compile(t, context))),
            })
        })
        .collect::<Result<_, palisade_httpmatch::HttpRuleError>>()?;
    Ok(CompiledPort {
        first: p.port,
        last: p.end_port.max(p.port),
        peers,
    })
}
