//! The local API's view of the agent: converts the revision in force into the API's plain
//! views. Read-only except for `trace`, which resolves against a copy.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use palisade_api::{
    AgentApi, BpfPolicyEntryView, DatapathStatus, DirectionView, EndpointDetail, EndpointView,
    FlowEvent, FqdnCacheView, IdentityView, PolicyEntryView, PolicyListView, PolicyView,
    ProxiesStatus, StatusView, TraceRequest, TraceView,
};
use palisade_bpf::{Direction as BpfDirection, Verdict as BpfVerdict};
use palisade_policy::cluster::Endpoint;
use palisade_policy::identity::Allocator;
use palisade_policy::resolve::{DirectionPolicy, L7Kind, Verdict};
use palisade_policy::Engine;
use tokio::sync::broadcast;

use palisade_policy::ports::proto_name;

use super::agent::{Agent, Inner};

/// The API backed by the running agent.
pub struct Api(pub Arc<Agent>);

fn labels(alloc: &Allocator, id: u32) -> Vec<String> {
    alloc
        .get(id)
        .map(|i| i.labels.iter().map(|l| l.to_string()).collect())
        .unwrap_or_default()
}

fn endpoint_view(e: &Endpoint) -> EndpointView {
    EndpointView {
        name: e.name.clone(),
        security_identity: e.identity,
        state: "ready".into(),
        ipv4: e
            .ips
            .iter()
            .filter(|i| i.is_ipv4())
            .map(|i| i.to_string())
            .collect(),
        ipv6: e
            .ips
            .iter()
            .filter(|i| i.is_ipv6())
            .map(|i| i.to_string())
            .collect(),
    }
}

fn direction_view(
    inner: &Inner,
    dp: &DirectionPolicy,
    ports: super::datapath_sync::ProxyPorts,
) -> DirectionView {
    DirectionView {
        enforced: dp.enforced,
        entries: dp
            .entries
            .iter()
            .map(|(k, v)| PolicyEntryView {
                identity: k.identity,
                identity_labels: labels(&inner.alloc, k.identity),
                proto: proto_name(k.proto),
                port: k.port,
                end_port: k.end_port,
                verdict: match v.verdict {
                    Verdict::Allow => "allow",
                    Verdict::Deny => "deny",
                    Verdict::Redirect(_) => "redirect",
                }
                .into(),
                proxy_port: match v.verdict {
                    Verdict::Redirect(L7Kind::Http) => Some(ports.http),
                    Verdict::Redirect(L7Kind::Dns) => Some(ports.dns),
                    _ => None,
                },
                policies: v.derived_from.iter().map(|o| o.to_string()).collect(),
            })
            .collect(),
    }
}

fn engine_of(inner: &Inner) -> Option<&Engine> {
    inner.engine.as_ref()
}

impl AgentApi for Api {
    fn status(&self) -> StatusView {
        let inner = self.0.lock();
        let engine = engine_of(&inner);
        StatusView {
            datapath: DatapathStatus {
                ok: true,
                interfaces: inner.applied.attached.iter().cloned().collect(),
            },
            proxies: ProxiesStatus {
                ok: true,
                http_port: self.0.ports.http,
                dns_port: self.0.ports.dns,
            },
            policy_revision: inner.revision,
            endpoints: engine.map(|e| e.state.endpoints.len() as u64).unwrap_or(0),
            identities: inner.alloc.all().count() as u64,
            policies: engine.map(|e| e.policies.len() as u64).unwrap_or(0),
            fqdn_names: inner.learned().len() as u64,
            last_error: inner.last_error.clone(),
        }
    }

    fn identities(&self) -> Vec<IdentityView> {
        let inner = self.0.lock();
        inner
            .alloc
            .all()
            .map(|i| IdentityView {
                id: i.id,
                labels: labels(&inner.alloc, i.id),
            })
            .collect()
    }

    fn identity(&self, id: u32) -> Option<IdentityView> {
        let inner = self.0.lock();
        inner.alloc.get(id).map(|i| IdentityView {
            id: i.id,
            labels: labels(&inner.alloc, i.id),
        })
    }

    fn endpoints(&self) -> Vec<EndpointView> {
        let inner = self.0.lock();
        engine_of(&inner)
            .map(|e| {
                e.state
                    .endpoints
                    .values()
                    .filter(|e| e.local)
                    .map(endpoint_view)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn endpoint(&self, name: &str) -> Option<EndpointDetail> {
        let inner = self.0.lock();
        let engine = engine_of(&inner)?;
        let ep = engine
            .state
            .endpoints
            .get(name)
            .or_else(|| engine.state.endpoints.get(&format!("default/{name}")))?;
        let policy = inner
            .resolved
            .get(&ep.name)
            .cloned()
            .unwrap_or_else(|| engine.resolver().endpoint(ep));
        Some(EndpointDetail {
            endpoint: endpoint_view(ep),
            labels: ep.labels.iter().map(|l| l.to_string()).collect(),
            ingress: direction_view(&inner, &policy.ingress, self.0.ports),
            egress: direction_view(&inner, &policy.egress, self.0.ports),
        })
    }

    fn policies(&self) -> PolicyListView {
        let inner = self.0.lock();
        PolicyListView {
            revision: inner.revision,
            policies: engine_of(&inner)
                .map(|e| {
                    e.policies
                        .iter()
                        .map(|p| PolicyView {
                            name: p.name.clone(),
                            namespace: p.namespace.clone().unwrap_or_default(),
                            kind: p.kind.to_string(),
                            source: p.location.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn trace(&self, req: TraceRequest) -> Result<TraceView, String> {
        let inner = self.0.lock();
        let engine = engine_of(&inner).ok_or("no policy revision applied yet")?;
        let mut learned = inner.learned();
        let extra = crate::offline::parse_answers(&req.dns_answers).map_err(|e| e.to_string())?;
        for (k, v) in extra {
            learned.entry(k).or_default().extend(v);
        }
        let copy = Engine::new(
            engine.topology.clone(),
            engine.policies.clone(),
            &learned,
            inner.alloc.clone(),
            engine.opts.clone(),
        );
        drop(inner);
        let proto = req.proto.clone().unwrap_or_else(|| "TCP".into());
        let dport = format!("{}/{proto}", req.dport);
        let (dport, proto) = crate::offline::parse_dport(&dport).map_err(|e| e.to_string())?;
        let headers =
            crate::offline::parse_headers(&req.http_headers).map_err(|e| e.to_string())?;
        let http = (req.http_method.is_some()
            || req.http_path.is_some()
            || req.http_host.is_some()
            || !headers.is_empty())
        .then(|| palisade_policy::trace::HttpRequest {
            method: req.http_method.clone(),
            path: req.http_path.clone(),
            host: req.http_host.clone(),
            headers,
        });
        let tr = palisade_policy::trace::TraceRequest {
            from: req.from,
            to: req.to,
            dport,
            proto,
            http,
            dns_name: req.dns_name,
        };
        let r = palisade_policy::trace::trace(&copy, &tr).map_err(|e| e.to_string())?;
        Ok(TraceView {
            lines: r.lines,
            allowed: r.allowed,
        })
    }

    fn bpf_policy(&self, endpoint: &str) -> Result<Vec<BpfPolicyEntryView>, String> {
        let inner = self.0.lock();
        let name = if endpoint.contains('/') {
            endpoint.to_string()
        } else {
            format!("default/{endpoint}")
        };
        let id = *inner
            .endpoint_ids
            .get(&name)
            .ok_or_else(|| format!("endpoint {name} is not enforced on this node"))?;
        let entries = inner
            .datapath
            .policy_entries(id)
            .map_err(|e| e.to_string())?;
        Ok(entries
            .into_iter()
            .map(|e| BpfPolicyEntryView {
                direction: match e.direction {
                    BpfDirection::Ingress => "ingress",
                    BpfDirection::Egress => "egress",
                }
                .into(),
                identity: e.identity,
                identity_labels: labels(&inner.alloc, e.identity),
                proto: proto_name(e.proto),
                port: e.port,
                end_port: e.end_port,
                verdict: match e.verdict {
                    BpfVerdict::Allow => "allow",
                    BpfVerdict::Deny => "deny",
                    BpfVerdict::Redirect { .. } => "redirect",
                }
                .into(),
                proxy_port: match e.verdict {
                    BpfVerdict::Redirect { proxy_port } => Some(proxy_port),
                    _ => None,
                },
                bytes: None,
                packets: None,
            })
            .collect())
    }

    fn fqdn_cache(&self) -> Vec<FqdnCacheView> {
        let inner = self.0.lock();
        inner
            .fqdn
            .entries()
            .into_iter()
            .map(|e| FqdnCacheView {
                endpoint: e.endpoint,
                source: "lookup".into(),
                name: e.name,
                ttl: e.ttl,
                expires_unix: e
                    .expiry
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                ips: e.ips.iter().map(|i| i.to_string()).collect(),
            })
            .collect()
    }

    fn subscribe_flows(&self) -> broadcast::Receiver<FlowEvent> {
        self.0.flows.subscribe()
    }
}
