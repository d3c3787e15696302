//! `policy trace`: explains, like `cilium policy trace`, what the datapath and the proxies would
//! decide for one flow, and ends with `Final verdict: ALLOWED` or `Final verdict: DENIED`.

use std::net::IpAddr;

use crate::compile::Direction;
use crate::engine::Engine;
use crate::fqdn::FqdnSelector;
use crate::identity;
use crate::labels::display_set;
use crate::ports::proto_name;
use crate::resolve::{DirectionPolicy, L7Kind, Lookup, Resolver, Verdict};

/// An HTTP request to evaluate against L7 rules.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// Method (`GET` when omitted).
    pub method: Option<String>,
    /// Path with query (`/` when omitted).
    pub path: Option<String>,
    /// Host header.
    pub host: Option<String>,
    /// Headers `(name, value)`.
    pub headers: Vec<(String, String)>,
}

/// What to trace.
#[derive(Debug, Clone)]
pub struct TraceRequest {
    /// `NAMESPACE/POD`, `node:NAME` or an IP address.
    pub from: String,
    /// Same forms as `from`.
    pub to: String,
    /// Destination port (ICMP: type).
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// L7 HTTP request, if any.
    pub http: Option<HttpRequest>,
    /// DNS query name: trace the DNS proxy's decision instead.
    pub dns_name: Option<String>,
}

/// Trace output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceResult {
    /// Explanation lines; the last is the final verdict.
    pub lines: Vec<String>,
    /// The final verdict.
    pub allowed: bool,
}

/// Errors of a trace request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The endpoint is not in the topology and is not an address.
    #[error("unknown endpoint {0:?}: expected NAMESPACE/POD, node:NAME or an IP address")]
    UnknownEndpoint(String),
    /// An L7 rule failed to compile (cannot happen for validated policies).
    #[error("L7 rule: {0}")]
    L7(String),
}

struct Peer {
    desc: String,
    identity: u32,
    endpoint: Option<String>,
}

fn peer(engine: &Engine, ep: &str) -> Result<Peer, TraceError> {
    let state = &engine.state;
    if let Ok(ip) = ep.parse::<IpAddr>() {
        let id = state.identity_of(ip);
        let endpoint = state.endpoint_by_ip(ip).map(|e| e.name.clone());
        return Ok(Peer {
            desc: ip.to_string(),
            identity: id,
            endpoint,
        });
    }
    if let Some(name) = ep.strip_prefix("node:") {
        let node = engine
            .topology
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| TraceError::UnknownEndpoint(ep.into()))?;
        let local = engine
            .topology
            .local_node()
            .map(|n| n.name == node.name)
            .unwrap_or(false);
        let id = if local {
            identity::HOST
        } else {
            node.ips
                .first()
                .map(|ip| state.identity_of(*ip))
                .unwrap_or(identity::REMOTE_NODE)
        };
        return Ok(Peer {
            desc: format!("node {name}"),
            identity: id,
            endpoint: None,
        });
    }
    let pod = engine
        .topology
        .pod(ep)
        .ok_or_else(|| TraceError::UnknownEndpoint(ep.into()))?;
    let name = format!("{}/{}", pod.namespace, pod.name);
    let e = &state.endpoints[&name];
    Ok(Peer {
        desc: name.clone(),
        identity: e.identity,
        endpoint: Some(name),
    })
}

/// Traces one flow.
pub fn trace(engine: &Engine, req: &TraceRequest) -> Result<TraceResult, TraceError> {
    let src = peer(engine, &req.from)?;
    let dst = peer(engine, &req.to)?;
    let resolver = engine.resolver();
    let mut lines = Vec::new();
    let label_line = |id: u32| {
        engine
            .alloc
            .get(id)
            .map(|i| display_set(&i.labels))
            .unwrap_or_else(|| "?".into())
    };
    lines.push(format!(
        "Tracing From: {} (identity {}) [{}]",
        src.desc,
        src.identity,
        label_line(src.identity)
    ));
    lines.push(format!(
        "Tracing To:   {} (identity {}) [{}]",
        dst.desc,
        dst.identity,
        label_line(dst.identity)
    ));
    lines.push(format!("Port: {}/{}", req.dport, proto_name(req.proto)));

    let mut redirects: Vec<(Direction, &str, DirectionPolicy)> = Vec::new();
    let steps = [
        (Direction::Egress, src.endpoint.as_deref(), dst.identity),
        (Direction::Ingress, dst.endpoint.as_deref(), src.identity),
    ];
    for (dir, ep_name, remote) in steps {
        let Some(ep_name) = ep_name else { continue };
        let ep = &engine.state.endpoints[ep_name];
        let policy = resolver.endpoint(ep);
        let dp = policy.direction(dir).clone();
        lines.push(String::new());
        lines.push(format!(
            "{} of {ep_name}:",
            if dir == Direction::Egress {
                "Egress"
            } else {
                "Ingress"
            }
        ));
        if dp.policies.is_empty() {
            lines.push(format!("  no policy selects {ep_name} with {dir} rules"));
        } else {
            for p in &dp.policies {
                lines.push(format!("  selected by {p}"));
            }
        }
        let lookup = dp.lookup(remote, req.proto, req.dport);
        lines.push(format!("  {}", describe(&lookup)));
        match lookup.verdict {
            Verdict::Deny => return Ok(finish(lines, false)),
            Verdict::Redirect(_) => redirects.push((dir, ep_name, dp)),
            Verdict::Allow => {}
        }
    }

    if let Some(name) = &req.dns_name {
        return dns_verdict(&resolver, &redirects, &src, &dst, req, name, lines);
    }
    for (dir, ep_name, dp) in &redirects {
        let remote = if *dir == Direction::Egress {
            dst.identity
        } else {
            src.identity
        };
        let Some(filter) = dp.l7_filter(req.proto, req.dport) else {
            continue;
        };
        if filter.kind != L7Kind::Http {
            continue;
        }
        for tls in filter.peers_for(remote).filter_map(|p| p.tls.as_ref()) {
            lines.push(format!("  TLS: {ep_name} {dir}: {}", describe_tls(tls)));
        }
        let Some(http) = &req.http else {
            lines.push(format!("  {dir} HTTP rules of {ep_name} apply; give --http-method/--http-path to evaluate them"));
            continue;
        };
        let peers: Vec<_> = filter.peers_for(remote).collect();
        if peers.iter().any(|p| p.http.is_none()) {
            lines.push(format!(
                "  L7: {ep_name} {dir}: peer allowed without HTTP rules"
            ));
            continue;
        }
        let specs: Vec<_> = peers
            .iter()
            .flat_map(|p| p.http.iter().flatten().map(|r| r.to_spec()))
            .collect();
        let set = palisade_httpmatch::HttpRuleSet::compile(&specs)
            .map_err(|e| TraceError::L7(e.to_string()))?;
        let method = http.method.clone().unwrap_or_else(|| "GET".into());
        let raw_path = http.path.clone().unwrap_or_else(|| "/".into());
        let path = match palisade_httpmatch::normalize_path(&raw_path) {
            Ok(p) => p,
            Err(e) => {
                lines.push(format!("  L7: path {raw_path:?} rejected: {e}"));
                return Ok(finish(lines, false));
            }
        };
        let mut headers = http::HeaderMap::new();
        for (k, v) in &http.headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                headers.append(name, value);
            }
        }
        let view = palisade_httpmatch::RequestView {
            method: &method,
            path: &path,
            host: http.host.as_deref().unwrap_or(""),
            headers: &headers,
        };
        let decision = set.check(&view);
        if decision.allowed() {
            lines.push(format!(
                "  L7: {method} {path} allowed by {ep_name} {dir} HTTP rule #{}",
                decision.rule.unwrap_or(0)
            ));
        } else {
            lines.push(format!(
                "  L7: {method} {path} matches no {dir} HTTP rule of {ep_name}: 403 Forbidden"
            ));
            return Ok(finish(lines, false));
        }
    }
    Ok(finish(lines, true))
}

fn dns_verdict(
    _resolver: &Resolver<'_>,
    redirects: &[(Direction, &str, DirectionPolicy)],
    _src: &Peer,
    dst: &Peer,
    req: &TraceRequest,
    name: &str,
    mut lines: Vec<String>,
) -> Result<TraceResult, TraceError> {
    let egress = redirects.iter().find(|(d, _, _)| *d == Direction::Egress);
    let Some((_, ep_name, dp)) = egress else {
        lines.push(format!(
            "  DNS: query for {name} is not redirected to the DNS proxy (no DNS rules)"
        ));
        return Ok(finish(lines, true));
    };
    let Some(filter) = dp
        .l7_filter(req.proto, req.dport)
        .filter(|f| f.kind == L7Kind::Dns)
    else {
        lines.push("  DNS: no DNS rules on this port".into());
        return Ok(finish(lines, true));
    };
    for p in filter.peers_for(dst.identity) {
        match &p.dns {
            None => {
                lines.push(format!(
                    "  DNS: {name} allowed: peer not DNS-filtered ({})",
                    p.origin
                ));
                return Ok(finish(lines, true));
            }
            Some(sels) => {
                if let Some(s) = sels.iter().find(|s| matches(s, name)) {
                    lines.push(format!("  DNS: {name} allowed by {s} ({})", p.origin));
                    return Ok(finish(lines, true));
                }
            }
        }
    }
    lines.push(format!(
        "  DNS: {name} matches no DNS rule of {ep_name}: REFUSED"
    ));
    Ok(finish(lines, false))
}

fn matches(s: &FqdnSelector, name: &str) -> bool {
    s.compile().map(|m| m.matches(name)).unwrap_or(false)
}

fn describe(l: &Lookup) -> String {
    match &l.entry {
        Some((k, v)) => {
            let who = if k.identity == identity::ANY {
                "any identity".to_string()
            } else {
                format!("identity {}", k.identity)
            };
            let ports = if k.is_l3_only() {
                "all ports".to_string()
            } else if k.port == k.end_port {
                format!("{}/{}", k.port, proto_name(k.proto))
            } else {
                format!("{}-{}/{}", k.port, k.end_port, proto_name(k.proto))
            };
            let from: Vec<String> = v.derived_from.iter().map(|o| o.to_string()).collect();
            format!("{}: entry {who} {ports} from {}", l.reason, from.join("; "))
        }
        None => l.reason.clone(),
    }
}

fn finish(mut lines: Vec<String>, allowed: bool) -> TraceResult {
    lines.push(String::new());
    lines.push(format!(
        "Final verdict: {}",
        if allowed { "ALLOWED" } else { "DENIED" }
    ));
    TraceResult { lines, allowed }
}

/// What the proxy does with TLS on a port, for trace output.
fn describe_tls(tls: &crate::compile::PortTls) -> String {
    let secret = |c: &crate::model::TlsContext| {
        format!(
            "{}/{}",
            c.secret.namespace.as_deref().unwrap_or("default"),
            c.secret.name
        )
    };
    let mut parts = Vec::new();
    if !tls.server_names.is_empty() {
        parts.push(format!(
            "SNI must be one of [{}] (else reset)",
            tls.server_names.join(", ")
        ));
    }
    match &tls.terminating {
        Some(c) => parts.push(format!("terminated with secret {}", secret(c))),
        None if !tls.server_names.is_empty() => parts.push("relayed undecrypted".into()),
        None => {}
    }
    if let Some(c) = &tls.originating {
        parts.push(format!(
            "re-encrypted upstream, server verified with secret {}",
            secret(c)
        ));
    }
    parts.join("; ")
}
