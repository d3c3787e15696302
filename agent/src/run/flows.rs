//! Verdicts from the datapath and the proxies become flow events (for `monitor`) and metrics.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_api::{FlowEvent, FlowKind};
use palisade_bpf::{DropReason, Event, EventKind};
use palisade_dnsproxy::DnsFlowRecord;
use palisade_proxy::HttpFlowRecord;
use tokio::sync::mpsc;

use palisade_policy::ports::proto_name;

use super::agent::Agent;

fn now_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn reason_name(r: DropReason) -> &'static str {
    match r {
        DropReason::None => "",
        DropReason::PolicyDeny => "Policy denied by denylist",
        DropReason::PolicyDefault => "Policy denied",
        DropReason::RedirectAtEgress => "Proxy redirect not possible here",
        DropReason::ProxyMissing => "Proxy not listening",
        DropReason::SpoofedSource => "Source address not the endpoint's",
        DropReason::Malformed => "Invalid packet",
        _ => "Unknown",
    }
}

/// Names of the endpoints owning a flow's source and destination (empty when none).
fn owners(agent: &Agent, src: std::net::IpAddr, dst: std::net::IpAddr) -> (String, String) {
    let inner = agent.lock();
    let name = |ip| inner.endpoint_by_ip.get(&ip).cloned().unwrap_or_default();
    (name(src), name(dst))
}

fn endpoint_name(agent: &Agent, id: u16) -> String {
    let inner = agent.lock();
    inner
        .endpoint_ids
        .iter()
        .find(|(_, v)| **v == id)
        .map(|(k, _)| k.clone())
        .unwrap_or_default()
}

fn datapath_event(agent: &Agent, ev: &Event) -> FlowEvent {
    let direction = format!("{:?}", ev.direction).to_ascii_lowercase();
    let (kind, verdict) = match ev.kind {
        EventKind::Drop => (FlowKind::Drop, "DROPPED"),
        EventKind::Allow => (FlowKind::Allow, "FORWARDED"),
        EventKind::Redirect { .. } => (FlowKind::Allow, "REDIRECTED"),
    };
    match ev.kind {
        EventKind::Drop => agent
            .metrics
            .drop_count
            .with_label_values(&[reason_name(ev.reason), &direction])
            .inc(),
        _ => agent
            .metrics
            .forward_count
            .with_label_values(&[&direction])
            .inc(),
    }
    let (src_endpoint, dst_endpoint) = owners(agent, ev.src.ip(), ev.dst.ip());
    FlowEvent {
        src_endpoint,
        dst_endpoint,
        time_unix_ms: now_ms(SystemTime::now()),
        kind,
        verdict: verdict.into(),
        reason: reason_name(ev.reason).into(),
        direction,
        endpoint: endpoint_name(agent, ev.endpoint),
        src: ev.src.to_string(),
        dst: ev.dst.to_string(),
        src_identity: ev.src_identity,
        dst_identity: ev.dst_identity,
        proto: proto_name(ev.proto),
        summary: match ev.kind {
            EventKind::Redirect { proxy_port } => format!("to-proxy port {proxy_port}"),
            _ => String::new(),
        },
    }
}

/// Reads datapath events until the agent stops (a blocking thread: the ring buffer is polled
/// every 20 ms, which keeps `monitor` prompt without a busy loop).
pub async fn datapath_events(agent: Arc<Agent>) -> anyhow::Result<()> {
    let mut reader = agent.lock().datapath.events()?;
    tokio::task::spawn_blocking(move || loop {
        for ev in reader.poll() {
            let fe = datapath_event(&agent, &ev);
            let _ = agent.flows.send(fe);
        }
        std::thread::sleep(Duration::from_millis(20));
    })
    .await?;
    Ok(())
}

/// HTTP proxy flow records → events and metrics.
pub async fn http_flows(agent: Arc<Agent>, mut rx: mpsc::Receiver<HttpFlowRecord>) {
    while let Some(r) = rx.recv().await {
        let verdict = format!("{:?}", r.verdict).to_ascii_uppercase();
        agent
            .metrics
            .http_requests
            .with_label_values(&[&verdict.to_ascii_lowercase(), &r.method])
            .inc();
        agent
            .metrics
            .proxy_upstream_latency
            .observe(r.latency.as_secs_f64());
        let (src_endpoint, dst_endpoint) = owners(&agent, r.src.ip(), r.dst.ip());
        // The destination's ingress rules decide when it is a local endpoint, else the
        // source's egress rules.
        let (endpoint, direction) = if !dst_endpoint.is_empty() {
            (dst_endpoint.clone(), "ingress")
        } else {
            (src_endpoint.clone(), "egress")
        };
        let ev = FlowEvent {
            src_endpoint,
            dst_endpoint,
            time_unix_ms: now_ms(r.time),
            kind: FlowKind::L7Http,
            verdict,
            reason: String::new(),
            direction: direction.into(),
            endpoint,
            src: r.src.to_string(),
            dst: r.dst.to_string(),
            src_identity: r.src_identity,
            dst_identity: r.dst_identity,
            proto: "HTTP".into(),
            summary: format!("{} http://{}{} => {}", r.method, r.host, r.path, r.status),
        };
        let _ = agent.flows.send(ev);
    }
}

/// DNS proxy flow records → events and metrics.
pub async fn dns_flows(agent: Arc<Agent>, mut rx: mpsc::Receiver<DnsFlowRecord>) {
    while let Some(r) = rx.recv().await {
        let verdict = format!("{:?}", r.verdict).to_ascii_uppercase();
        let rcode = r.rcode_name().to_string();
        agent
            .metrics
            .dns_queries
            .with_label_values(&[&verdict.to_ascii_lowercase(), &rcode])
            .inc();
        if let Some(l) = r.learn_latency {
            agent.metrics.dns_release_latency.observe(l.as_secs_f64());
        }
        let (src_endpoint, dst_endpoint) = owners(&agent, r.src.ip(), r.resolver.ip());
        let ev = FlowEvent {
            src_endpoint,
            dst_endpoint,
            time_unix_ms: now_ms(r.time),
            kind: FlowKind::Dns,
            verdict,
            reason: String::new(),
            direction: "egress".into(),
            endpoint: r.endpoint.clone().unwrap_or_default(),
            src: r.src.to_string(),
            dst: r.resolver.to_string(),
            src_identity: 0,
            dst_identity: 0,
            proto: "DNS".into(),
            summary: format!("{} {} => {}", r.qtype, r.qname, rcode),
        };
        let _ = agent.flows.send(ev);
    }
}

/// Periodic work: conntrack GC, FQDN expiry, RSS gauge.
pub async fn housekeeping(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let a = agent.clone();
        let _ = tokio::task::spawn_blocking(move || {
            a.expire_fqdns();
            a.save_fqdns_if_dirty();
            a.conntrack_gc();
        })
        .await;
    }
}
