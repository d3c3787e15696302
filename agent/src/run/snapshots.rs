//! Builds the immutable snapshots the HTTP and DNS proxies enforce from a resolved revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use palisade_dnsproxy::{DnsPeer, DnsPortRule, DnsSnapshot, EndpointDns};
use palisade_policy::cluster::ClusterState;
use palisade_policy::compile::PortTls;
use palisade_policy::resolve::{DirectionPolicy, EndpointPolicy, L7Kind, L7Peer};
use palisade_proxy::{EndpointL7, PeerL7, PolicySnapshot, PortL7, TlsL7, TlsRole};

use super::secrets::Secrets;

fn ipcache(state: &ClusterState) -> Vec<(ipnet::IpNet, u32)> {
    state.ipcache.iter().map(|(n, i)| (*n, *i)).collect()
}

/// A port's TLS settings with the secrets' contents; a secret that cannot configure its role
/// is logged here, naming the port and the rule, and the proxy resets that port's connections.
fn tls_of(tls: &PortTls, secrets: &Secrets, port: &str, peer: &L7Peer) -> TlsL7 {
    let material = |role: TlsRole, ctx: &palisade_policy::model::TlsContext| {
        let m = secrets.material(role, ctx);
        if let Err(e) = palisade_proxy::check_material(role, &m) {
            tracing::error!(
                "{port} ({}): {e}; connections on this port are reset",
                peer.origin
            );
        }
        m
    };
    TlsL7 {
        server_names: tls.server_names.clone(),
        terminating: tls
            .terminating
            .as_ref()
            .map(|c| material(TlsRole::Terminating, c)),
        originating: tls
            .originating
            .as_ref()
            .map(|c| material(TlsRole::Originating, c)),
    }
}

fn http_ports(dp: &DirectionPolicy, secrets: &Secrets, context: &str) -> Vec<PortL7> {
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
                    tls: p
                        .tls
                        .as_ref()
                        .map(|t| tls_of(t, secrets, &format!("{context} port {}", f.port), p)),
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
    secrets: &Secrets,
) -> PolicySnapshot {
    let endpoints = policies
        .iter()
        .filter_map(|(name, p)| {
            let ep = state.endpoints.get(name)?;
            Some(EndpointL7 {
                name: name.clone(),
                ips: ep.ips.clone(),
                identity: ep.identity,
                ingress: http_ports(&p.ingress, secrets, &format!("{name} ingress")),
                egress: http_ports(&p.egress, secrets, &format!("{name} egress")),
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
