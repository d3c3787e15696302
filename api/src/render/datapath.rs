//! Tables of datapath state: kernel policy map, FQDN cache, and flow lines.

use super::table::Table;
use super::{clock, display_labels, port_proto, reserved_name, title};
use crate::flow::FlowEvent;
use crate::views::{BpfPolicyEntryView, FqdnCacheView};

/// `palisade bpf policy get EP`, like `cilium bpf policy get`: POLICY, DIRECTION,
/// LABELS (source:key[=value]), PORT/PROTO, PROXY PORT, and BYTES/PACKETS when the datapath
/// counts them. Ingress first, then by identity and port; extra labels on continuation lines.
pub fn render_bpf_policy(entries: &[BpfPolicyEntryView]) -> String {
    let mut sorted: Vec<&BpfPolicyEntryView> = entries.iter().collect();
    sorted.sort_by_key(|e| {
        let dir_rank = u8::from(!e.direction.eq_ignore_ascii_case("ingress"));
        (dir_rank, e.identity, e.proto.clone(), e.port, e.end_port)
    });
    let counters = entries
        .iter()
        .any(|e| e.bytes.is_some() || e.packets.is_some());
    let mut header = vec![
        "POLICY",
        "DIRECTION",
        "LABELS (source:key[=value])",
        "PORT/PROTO",
        "PROXY PORT",
    ];
    if counters {
        header.extend(["BYTES", "PACKETS"]);
    }
    let mut t = Table::with_header(&header);
    for e in sorted {
        let mut labels = display_labels(e.identity, &e.identity_labels).into_iter();
        let mut row = vec![
            title(&e.verdict),
            title(&e.direction),
            labels.next().unwrap_or_default(),
            port_proto(&e.proto, e.port, e.end_port),
            e.proxy_port
                .map_or_else(|| "NONE".into(), |p| p.to_string()),
        ];
        if counters {
            let n = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
            row.extend([n(e.bytes), n(e.packets)]);
        }
        t.row(row);
        for label in labels {
            t.continuation(2, vec![label]);
        }
    }
    t.render()
}

/// `palisade fqdn cache list`, like `cilium fqdn cache list`: Endpoint, Source, FQDN, TTL,
/// ExpirationTime (RFC 3339, UTC), IPs (comma-separated).
pub fn render_fqdn_cache(entries: &[FqdnCacheView]) -> String {
    let mut sorted: Vec<&FqdnCacheView> = entries.iter().collect();
    sorted.sort_by(|a, b| (&a.endpoint, &a.name).cmp(&(&b.endpoint, &b.name)));
    let mut t = Table::with_header(&["Endpoint", "Source", "FQDN", "TTL", "ExpirationTime", "IPs"]);
    for e in sorted {
        t.row(vec![
            e.endpoint.clone(),
            e.source.clone(),
            e.name.clone(),
            e.ttl.to_string(),
            clock::rfc3339(e.expires_unix),
            e.ips.join(","),
        ]);
    }
    t.render()
}

/// One `palisade monitor` line, like `hubble observe`:
/// `Jun  5 03:04:05.120: SRC (ID:256) -> DST (ID:257) REASON VERDICT (SUMMARY)`.
pub fn render_flow(ev: &FlowEvent) -> String {
    let mut line = format!(
        "{}: {} ({}) -> {} ({}) {} {}",
        clock::hubble(ev.time_unix_ms),
        ev.src,
        identity_tag(ev.src_identity),
        ev.dst,
        identity_tag(ev.dst_identity),
        ev.reason,
        ev.verdict,
    );
    if !ev.summary.is_empty() {
        line.push_str(&format!(" ({})", ev.summary));
    }
    line
}

/// Hubble shows reserved identities by name and others as `ID:n`.
fn identity_tag(id: u32) -> String {
    match reserved_name(id) {
        Some(name) => name.to_owned(),
        None => format!("ID:{id}"),
    }
}
