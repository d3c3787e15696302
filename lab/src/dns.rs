//! The lab's DNS: the hosts file and configuration of the resolver pod's `dnsmasq` (external
//! hosts, services as headless names, extra records), and each pod's `resolv.conf`
//! (`/etc/netns/<netns>/resolv.conf`, bind-mounted by `ip netns exec`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use palisade_policy::topology::Topology;

use crate::error::LabError;

/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Every name the resolver answers, with its addresses.
pub fn records(topology: &Topology) -> BTreeMap<String, Vec<IpAddr>> {
    let mut names: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    let mut add = |name: String, ips: &[IpAddr]| {
        let entry = names.entry(name.to_ascii_lowercase()).or_default();
        for ip in ips {
            if !entry.contains(ip) {
                entry.push(*ip);
            }
        }
    };
    for ext in &topology.externals {
        add(ext.name.clone(), &ext.ips);
    }
    for svc in &topology.services {
        // No kube-proxy in the lab: a service name resolves to its backends (headless style).
        let backends: Vec<IpAddr> = match &svc.selector {
            Some(sel) => topology
                .pods
                .iter()
                .filter(|p| p.namespace == svc.namespace)
                .filter(|p| sel.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
                .flat_map(|p| p.ips.iter().copied())
                .collect(),
            None => svc.endpoints.clone(),
        };
        let (name, ns) = (&svc.name, &svc.namespace);
        add(name.clone(), &backends);
        add(format!("{name}.{ns}"), &backends);
        add(format!("{name}.{ns}.svc"), &backends);
        add(format!("{name}.{ns}.svc.{CLUSTER_DOMAIN}"), &backends);
    }
    for (name, ips) in &topology.dns.hosts {
        add(name.clone(), ips);
    }
    names.retain(|_, ips| !ips.is_empty());
    names
}

/// The hosts file dnsmasq reads (`addn-hosts`), one `IP NAME` line per address.
pub fn hosts_file(topology: &Topology) -> String {
    let mut out = String::from("# written by palisade lab; rewritten on `lab label`\n");
    for (name, ips) in records(topology) {
        for ip in ips {
            let _ = writeln!(out, "{ip} {name}");
        }
    }
    out
}

/// Paths of the resolver's files under the state directory.
pub struct DnsFiles {
    /// dnsmasq configuration.
    pub conf: PathBuf,
    /// Hosts file.
    pub hosts: PathBuf,
}

impl DnsFiles {
    /// Files under `state_dir`.
    pub fn new(state_dir: &Path) -> DnsFiles {
        DnsFiles {
            conf: state_dir.join("dnsmasq.conf"),
            hosts: state_dir.join("dnsmasq.hosts"),
        }
    }
}

/// dnsmasq's configuration: only local data, on the resolver's address, every name not known
/// answered NXDOMAIN (so search lists move on), queries logged.
pub fn dnsmasq_conf(topology: &Topology, files: &DnsFiles, listen: Ipv4Addr, port: u16) -> String {
    let mut out = format!(
        "# written by palisade lab\n\
         no-resolv\nno-hosts\nno-negcache\n\
         addn-hosts={hosts}\n\
         listen-address={listen}\nbind-interfaces\nport={port}\n\
         local-ttl={ttl}\nauth-ttl={ttl}\n\
         local=/#/\n\
         user=root\npid-file=\nlog-queries\nlog-facility=-\n",
        hosts = files.hosts.display(),
        ttl = topology.dns.ttl,
    );
    for (alias, target) in &topology.dns.cnames {
        let _ = writeln!(out, "cname={alias},{target},{}", topology.dns.ttl);
    }
    out
}

/// A pod's `resolv.conf`, as the kubelet writes it for `ClusterFirst` pods.
pub fn resolv_conf(namespace: &str, resolver: Ipv4Addr) -> String {
    format!(
        "# written by palisade lab\n\
         search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n\
         nameserver {resolver}\n\
         options ndots:5\n"
    )
}

/// Writes `/etc/netns/<netns>/resolv.conf` (under `etc_netns`), returning its directory.
pub fn write_resolv_conf(
    etc_netns: &Path,
    netns: &str,
    namespace: &str,
    resolver: Ipv4Addr,
) -> Result<PathBuf, LabError> {
    let dir = etc_netns.join(netns);
    std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    let file = dir.join("resolv.conf");
    std::fs::write(&file, resolv_conf(namespace, resolver)).map_err(|e| LabError::io(&file, e))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPO: &str = r#"
nodes: [{name: n1}]
pods:
- {name: web1, labels: {app: web}, ips: [172.20.0.10]}
- {name: web2, labels: {app: web}, ips: [172.20.0.11]}
- {name: other, namespace: prod, labels: {app: web}, ips: [172.20.0.12]}
services:
- {name: web, selector: {app: web}}
- {name: legacy, namespace: prod, endpoints: [10.1.1.1]}
externals:
- {name: api.github.com, ips: [203.0.113.10]}
dns:
  ttl: 5
  hosts: {extra.example: [198.51.100.7]}
  cnames: {alias.example: api.github.com}
"#;

    fn topo() -> Topology {
        Topology::parse(TOPO, Path::new("t.yaml")).expect("valid topology")
    }

    #[test]
    fn services_resolve_to_backends_in_their_namespace() {
        let r = records(&topo());
        let web: Vec<String> = r["web.default.svc.cluster.local"]
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            web,
            ["172.20.0.10", "172.20.0.11"],
            "both replicas, not prod/other"
        );
        assert_eq!(r["web"], r["web.default"], "short names too");
        assert_eq!(
            r["legacy.prod"][0].to_string(),
            "10.1.1.1",
            "selector-less endpoints"
        );
        assert_eq!(r["api.github.com"][0].to_string(), "203.0.113.10");
        assert_eq!(r["extra.example"][0].to_string(), "198.51.100.7");
    }

    #[test]
    fn conf_has_ttl_cname_and_listen_address() {
        let files = DnsFiles::new(Path::new("/s"));
        let conf = dnsmasq_conf(&topo(), &files, Ipv4Addr::new(172, 20, 0, 5), 53);
        assert!(conf.contains("listen-address=172.20.0.5\n"), "{conf}");
        assert!(conf.contains("local-ttl=5\n"), "{conf}");
        assert!(
            conf.contains("cname=alias.example,api.github.com,5\n"),
            "{conf}"
        );
        assert!(conf.contains("addn-hosts=/s/dnsmasq.hosts\n"), "{conf}");
    }

    #[test]
    fn resolv_conf_searches_the_pod_namespace_first() {
        let text = resolv_conf("prod", Ipv4Addr::new(172, 20, 0, 5));
        assert!(text.contains("search prod.svc.cluster.local svc.cluster.local cluster.local\n"));
        assert!(text.contains("nameserver 172.20.0.5\n"));
    }
}
