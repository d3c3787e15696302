//! Builds the immutable snapshots the HTTP and DNS proxies enforce from a resolved revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_dnsproxy::{DnsPeer, DnsPortRule, DnsSnapshot, EndpointDns};
use palisade_policy::cluster::ClusterState;
use palisade_policy::resolve::{DirectionPolicy, EndpointPolicy, L7Kind};
use palisade_proxy::{EndpointL7, PeerL7, PolicySnapshot, PortL7};

fn ipcache(state: &ClusterState) -> Vec<(ipnet::IpNet, u32)> {
    state.ipcache.iter().map(|(n, i)| (*n, *i)).collect()
}

fn http_ports(dp: &DirectionPolicy) -> Vec<PortL7> {
    dp.l7
        .iter()
        .filter(|f| f.kind == L7Kind::Http && f.proto == 6)
        .map(|f| PortL7 {
            port: f.port,
            end_port: f.end_port,
            peers: f
                .peers
                .iter()
                .map(|p| PeerL7 {
                    identities: p.identities.as_ref().map(|s| s.iter().copied().collect()),
                    http: p
                        .http
                        .as_ref()
                        .map(|rules| rules.iter().map(|r| r.to_spec()).collect()),
                })
                .collect(),
        })
        .collect()
}

/// The HTTP proxy's snapshot.
pub fn http_snapshot(
    revision: u64,
    state: &ClusterState,
    policies: &BTreeMap<String, Arc<EndpointPolicy>>,
) -> PolicySnapshot {
    let endpoints = policies
        .iter()
        .filter_map(|(name, p)| {
            let ep = state.endpoints.get(name)?;
            Some(EndpointL7 {
                name: name.clone(),
                ips: ep.ips.clone(),
                identity: ep.identity,
                ingress: http_ports(&p.ingress),
                egress: http_ports(&p.egress),
            })
        })
        .collect();
    PolicySnapshot {
        revision,
        ipcache: ipcache(state),
        endpoints,
    }
}

/// The DNS proxy's snapshot (egress `rules.dns` only; UDP and TCP share a port's rules).
pub fn dns_snapshot(
    revision: u64,
    state: &ClusterState,
    policies: &BTreeMap<String, Arc<EndpointPolicy>>,
) -> DnsSnapshot {
    let endpoints = policies
        .iter()
        .filter_map(|(name, p)| {
            let ep = state.endpoints.get(name)?;
            let mut by_port: BTreeMap<u16, Vec<DnsPeer>> = BTreeMap::new();
            for f in p.egress.l7.iter().filter(|f| f.kind == L7Kind::Dns) {
                let peers = by_port.entry(f.port).or_default();
                for peer in &f.peers {
                    let dp = DnsPeer {
                        identities: peer
                            .identities
                            .as_ref()
                            .map(|s| s.iter().copied().collect()),
                        patterns: peer.dns.clone(),
                    };
                    if !peers.contains(&dp) {
                        peers.push(dp);
                    }
                }
            }
            Some(EndpointDns {
                name: name.clone(),
                ips: ep.ips.clone(),
                identity: ep.identity,
                rules: by_port
                    .into_iter()
                    .map(|(port, peers)| DnsPortRule { port, peers })
                    .collect(),
            })
        })
        .collect();
    DnsSnapshot {
        revision,
        ipcache: ipcache(state),
        endpoints,
    }
}
