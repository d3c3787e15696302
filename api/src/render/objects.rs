//! Tables of agent objects: status, identities, endpoints, policies, traces.

use super::table::Table;
use super::{display_labels, port_proto, title};
use crate::views::{
    DirectionView, EndpointDetail, EndpointView, IdentityView, PolicyListView, StatusView,
    TraceView,
};

/// `palisade status`: one `Key:  value` line per subsystem.
pub fn render_status(s: &StatusView) -> String {
    let ok = |b: bool| if b { "Ok" } else { "Failure" };
    let mut t = Table::default();
    let interfaces = if s.datapath.interfaces.is_empty() {
        "no interfaces attached".to_owned()
    } else {
        format!(
            "{} interfaces: {}",
            s.datapath.interfaces.len(),
            s.datapath.interfaces.join(", ")
        )
    };
    t.row(vec![
        "Datapath:".into(),
        format!("{}   {interfaces}", ok(s.datapath.ok)),
    ]);
    t.row(vec![
        "Proxies:".into(),
        format!(
            "{}   HTTP {}, DNS {}",
            ok(s.proxies.ok),
            s.proxies.http_port,
            s.proxies.dns_port
        ),
    ]);
    t.row(vec![
        "Policy:".into(),
        format!("revision {}, {} policies", s.policy_revision, s.policies),
    ]);
    t.row(vec!["Endpoints:".into(), s.endpoints.to_string()]);
    t.row(vec!["Identities:".into(), s.identities.to_string()]);
    t.row(vec!["FQDN names:".into(), s.fqdn_names.to_string()]);
    t.row(vec![
        "Last error:".into(),
        s.last_error.clone().unwrap_or_else(|| "none".into()),
    ]);
    t.render()
}

/// `palisade identity list`, like `cilium identity list`: `ID  LABELS`, sorted by id (so the
/// reserved identities come first), one label a line.
pub fn render_identities(ids: &[IdentityView]) -> String {
    let mut sorted: Vec<&IdentityView> = ids.iter().collect();
    sorted.sort_by_key(|i| i.id);
    let mut t = Table::with_header(&["ID", "LABELS"]);
    for ident in sorted {
        let mut labels = ident.labels.clone();
        labels.sort();
        let mut labels = labels.into_iter();
        t.row(vec![
            ident.id.to_string(),
            labels.next().unwrap_or_default(),
        ]);
        for label in labels {
            t.continuation(1, vec![label]);
        }
    }
    t.render()
}

/// `palisade endpoint list`: NAME, SECURITY IDENTITY, ENDPOINT STATE, IPV4, IPV6; extra
/// addresses go on continuation lines.
pub fn render_endpoints(eps: &[EndpointView]) -> String {
    let mut sorted: Vec<&EndpointView> = eps.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut t = Table::with_header(&[
        "NAME",
        "SECURITY IDENTITY",
        "ENDPOINT STATE",
        "IPV4",
        "IPV6",
    ]);
    for ep in sorted {
        let lines = ep.ipv4.len().max(ep.ipv6.len()).max(1);
        for i in 0..lines {
            let v4 = ep.ipv4.get(i).cloned().unwrap_or_default();
            let v6 = ep.ipv6.get(i).cloned().unwrap_or_default();
            if i == 0 {
                t.row(vec![
                    ep.name.clone(),
                    ep.security_identity.to_string(),
                    ep.state.clone(),
                    v4,
                    v6,
                ]);
            } else {
                t.continuation(3, vec![v4, v6]);
            }
        }
    }
    t.render()
}

/// `palisade endpoint get NAME`: the endpoint, its labels, and both directions' entries.
pub fn render_endpoint_detail(d: &EndpointDetail) -> String {
    let ep = &d.endpoint;
    let mut t = Table::default();
    t.row(vec!["Endpoint:".into(), ep.name.clone()]);
    t.row(vec![
        "Security identity:".into(),
        ep.security_identity.to_string(),
    ]);
    t.row(vec!["State:".into(), ep.state.clone()]);
    t.row(vec!["IPv4:".into(), ep.ipv4.join(", ")]);
    t.row(vec!["IPv6:".into(), ep.ipv6.join(", ")]);
    let mut labels = d.labels.clone();
    labels.sort();
    let mut labels = labels.into_iter();
    t.row(vec!["Labels:".into(), labels.next().unwrap_or_default()]);
    for label in labels {
        t.continuation(1, vec![label]);
    }
    let mut out = t.render();
    out.push_str(&render_direction("Ingress", &d.ingress));
    out.push_str(&render_direction("Egress", &d.egress));
    out
}

/// One direction of an endpoint's resolved policy.
fn render_direction(name: &str, dir: &DirectionView) -> String {
    let state = match (dir.enforced, dir.entries.is_empty()) {
        (false, _) => "not enforced (all traffic allowed)",
        (true, true) => "enforced, no entries (all traffic denied)",
        (true, false) => "enforced",
    };
    let mut out = format!("\n{name} policy: {state}\n");
    if dir.entries.is_empty() {
        return out;
    }
    let mut t = Table::with_header(&[
        "IDENTITY",
        "LABELS",
        "PORT/PROTO",
        "VERDICT",
        "PROXY PORT",
        "DERIVED FROM",
    ]);
    for e in &dir.entries {
        let mut labels = display_labels(e.identity, &e.identity_labels).into_iter();
        t.row(vec![
            e.identity.to_string(),
            labels.next().unwrap_or_default(),
            port_proto(&e.proto, e.port, e.end_port),
            title(&e.verdict),
            e.proxy_port
                .map_or_else(|| "NONE".into(), |p| p.to_string()),
            e.policies.join(", "),
        ]);
        for label in labels {
            t.continuation(1, vec![label]);
        }
    }
    out.push_str(&t.render());
    out
}

/// `palisade policy list`: the revision, then NAME, NAMESPACE, KIND, SOURCE.
pub fn render_policies(p: &PolicyListView) -> String {
    let mut t = Table::with_header(&["NAME", "NAMESPACE", "KIND", "SOURCE"]);
    for pol in &p.policies {
        let ns = if pol.namespace.is_empty() {
            "-".to_owned()
        } else {
            pol.namespace.clone()
        };
        t.row(vec![
            pol.name.clone(),
            ns,
            pol.kind.clone(),
            pol.source.clone(),
        ]);
    }
    format!("Revision: {}\n{}", p.revision, t.render())
}

/// `palisade policy trace`: the steps, then `Final verdict: ALLOWED|DENIED` like
/// `cilium policy trace`.
pub fn render_trace(v: &TraceView) -> String {
    let mut out = String::new();
    for line in &v.lines {
        out.push_str(line);
        out.push('\n');
    }
    let verdict = if v.allowed { "ALLOWED" } else { "DENIED" };
    out.push_str(&format!("Final verdict: {verdict}\n"));
    out
}
