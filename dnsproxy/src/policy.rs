//! The compiled form of a [`DnsSnapshot`]: endpoints by IP, an ipcache with longest-prefix
//! lookup, and matchers built once per revision so the query path only runs regexes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use palisade_policy::fqdn::FqdnMatcher;

use crate::snapshot::{DnsPeer, DnsSnapshot};

/// Identity of addresses the ipcache does not know.
pub const WORLD_IDENTITY: u32 = 2;

/// Verdict of the policy on a query's first question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward to the resolver; `endpoint` is the asking endpoint's name.
    Allow {
        /// Endpoint name.
        endpoint: String,
    },
    /// Answer REFUSED / NXDOMAIN; `endpoint` is `None` when the source is not a known endpoint.
    Deny {
        /// Endpoint name, if the source was known.
        endpoint: Option<String>,
        /// Why, for logs.
        reason: &'static str,
    },
}

#[derive(Debug)]
struct CompiledPeer {
    identities: Option<Vec<u32>>,
    /// `None` = all names.
    matchers: Option<Vec<FqdnMatcher>>,
}

#[derive(Debug)]
struct CompiledEndpoint {
    name: String,
    /// (port, peers); port 0 = any.
    rules: Vec<(u16, Vec<CompiledPeer>)>,
}

/// A snapshot compiled for fast per-query decisions.
#[derive(Debug, Default)]
pub struct CompiledPolicy {
    revision: u64,
    endpoints: HashMap<IpAddr, Arc<CompiledEndpoint>>,
    /// Prefix length → (masked network → identity), longest lengths first.
    ipcache: Vec<(u8, HashMap<IpNet, u32>)>,
    /// Selectors that failed to compile, as `(endpoint, selector, error)`; they match nothing.
    pub invalid: Vec<(String, String, String)>,
}

impl CompiledPolicy {
    /// Compiles a snapshot. Invalid selectors are recorded in `invalid` and match nothing, so one
    /// bad pattern never opens or closes more than itself.
    pub fn compile(snap: &DnsSnapshot) -> Self {
        let mut invalid = Vec::new();
        let mut endpoints = HashMap::new();
        for ep in &snap.endpoints {
            let rules = ep
                .rules
                .iter()
                .map(|r| {
                    let peers = r
                        .peers
                        .iter()
                        .map(|p| compile_peer(&ep.name, p, &mut invalid))
                        .collect();
                    (r.port, peers)
                })
                .collect();
            let compiled = Arc::new(CompiledEndpoint {
                name: ep.name.clone(),
                rules,
            });
            for ip in &ep.ips {
                endpoints.insert(*ip, compiled.clone());
            }
        }
        let mut by_len: HashMap<u8, HashMap<IpNet, u32>> = HashMap::new();
        for (net, id) in &snap.ipcache {
            by_len
                .entry(net.prefix_len())
                .or_default()
                .insert(net.trunc(), *id);
        }
        let mut ipcache: Vec<_> = by_len.into_iter().collect();
        ipcache.sort_by_key(|e| std::cmp::Reverse(e.0));
        CompiledPolicy {
            revision: snap.revision,
            endpoints,
            ipcache,
            invalid,
        }
    }

    /// The snapshot revision this was compiled from.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Name of the endpoint sending from `ip`, if it is a local endpoint.
    pub fn endpoint_at(&self, ip: IpAddr) -> Option<&str> {
        self.endpoints.get(&ip).map(|e| e.name.as_str())
    }

    /// Identity of `ip` (longest prefix wins; world when unknown).
    pub fn identity_of(&self, ip: IpAddr) -> u32 {
        for (len, nets) in &self.ipcache {
            let Ok(net) = IpNet::new(ip, *len) else {
                continue; // a v6 length > 32 for a v4 address
            };
            if let Some(id) = nets.get(&net.trunc()) {
                return *id;
            }
        }
        WORLD_IDENTITY
    }

    /// Decides a query for `qname` from `src` to the original resolver address `resolver`.
    pub fn decide(&self, src: IpAddr, resolver: SocketAddr, qname: &str) -> Decision {
        let Some(ep) = self.endpoints.get(&src) else {
            return Decision::Deny {
                endpoint: None,
                reason: "source is not a local endpoint",
            };
        };
        let resolver_id = self.identity_of(resolver.ip());
        let mut port_seen = false;
        let mut peer_seen = false;
        for (port, peers) in &ep.rules {
            if *port != 0 && *port != resolver.port() {
                continue;
            }
            port_seen = true;
            for peer in peers.iter().filter(|p| peer_selects(p, resolver_id)) {
                peer_seen = true;
                let allowed = match &peer.matchers {
                    None => true,
                    Some(ms) => ms.iter().any(|m| m.matches(qname)),
                };
                if allowed {
                    return Decision::Allow {
                        endpoint: ep.name.clone(),
                    };
                }
            }
        }
        let reason = match (port_seen, peer_seen) {
            (false, _) => "no DNS rule for this port",
            (true, false) => "no DNS rule for this resolver",
            (true, true) => "name not allowed",
        };
        Decision::Deny {
            endpoint: Some(ep.name.clone()),
            reason,
        }
    }
}

fn peer_selects(peer: &CompiledPeer, resolver_id: u32) -> bool {
    match &peer.identities {
        None => true,
        Some(ids) => ids.iter().any(|id| *id == 0 || *id == resolver_id),
    }
}

fn compile_peer(
    endpoint: &str,
    peer: &DnsPeer,
    invalid: &mut Vec<(String, String, String)>,
) -> CompiledPeer {
    let matchers = peer.patterns.as_ref().map(|sels| {
        sels.iter()
            .filter_map(|s| match s.compile() {
                Ok(m) => Some(m),
                Err(e) => {
                    invalid.push((endpoint.to_string(), s.to_string(), e.to_string()));
                    None
                }
            })
            .collect()
    });
    CompiledPeer {
        identities: peer.identities.clone(),
        matchers,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
