//! Tables the CLI prints, in the style of `cilium` and `hubble` (`-o json` prints the views
//! as JSON instead). Every function returns the full text, ending in a newline.

mod clock;
mod datapath;
mod objects;
mod table;
#[cfg(test)]
mod tests;

pub use self::datapath::{render_bpf_policy, render_flow, render_fqdn_cache};
pub use self::objects::{
    render_endpoint_detail, render_endpoints, render_identities, render_policies, render_status,
    render_trace,
};

/// Cilium's reserved identities, by number.
const RESERVED: [&str; 10] = [
    "host",
    "world",
    "unmanaged",
    "health",
    "init",
    "remote-node",
    "kube-apiserver",
    "ingress",
    "world-ipv4",
    "world-ipv6",
];

/// Name of a reserved identity (1..=10).
fn reserved_name(id: u32) -> Option<&'static str> {
    let idx = usize::try_from(id).ok()?.checked_sub(1)?;
    RESERVED.get(idx).copied()
}

/// `80/TCP`, `8080-8090/TCP`, `ANY/UDP` (any port), or `ANY` (any port, any protocol).
fn port_proto(proto: &str, port: u16, end_port: u16) -> String {
    let any_proto = proto.is_empty() || proto.eq_ignore_ascii_case("ANY");
    match (port, any_proto) {
        (0, true) => "ANY".to_owned(),
        (0, false) => format!("ANY/{}", proto.to_ascii_uppercase()),
        _ => {
            let proto = if any_proto {
                "ANY".to_owned()
            } else {
                proto.to_ascii_uppercase()
            };
            if end_port > port {
                format!("{port}-{end_port}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        }
    }
}

/// Labels sorted for display; identity 0 (the wildcard) shows as `ANY`, an identity whose
/// labels the agent did not send shows its number.
fn display_labels(id: u32, labels: &[String]) -> Vec<String> {
    if id == 0 {
        return vec!["ANY".to_owned()];
    }
    if labels.is_empty() {
        return vec![match reserved_name(id) {
            Some(name) => format!("reserved:{name}"),
            None => format!("identity:{id}"),
        }];
    }
    let mut sorted = labels.to_vec();
    sorted.sort();
    sorted
}

/// Title case of a lower-case word (`allow` → `Allow`).
fn title(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}
