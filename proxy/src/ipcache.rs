//! Longest-prefix-match map from address to identity, built once per snapshot.
//!
//! One hash map per prefix length, probed from the longest length down: at most 33 (IPv4)
//! or 129 (IPv6) probes, usually a handful since only lengths in use are kept.

use std::collections::HashMap;
use std::net::IpAddr;

/// Identity of addresses the ipcache does not cover (Cilium's `reserved:world`).
pub(crate) const WORLD: u32 = 2;

/// Address → identity by longest prefix.
#[derive(Debug, Default)]
pub(crate) struct IpCache {
    v4: Vec<(u8, HashMap<u32, u32>)>,
    v6: Vec<(u8, HashMap<u128, u32>)>,
}

impl IpCache {
    /// Builds from `(cidr, identity)` pairs; for a CIDR listed twice the last one wins.
    pub(crate) fn new(entries: &[(ipnet::IpNet, u32)]) -> IpCache {
        let mut v4: HashMap<u8, HashMap<u32, u32>> = HashMap::new();
        let mut v6: HashMap<u8, HashMap<u128, u32>> = HashMap::new();
        for (net, id) in entries {
            match net.trunc() {
                ipnet::IpNet::V4(n) => {
                    v4.entry(n.prefix_len())
                        .or_default()
                        .insert(u32::from(n.network()), *id);
                }
                ipnet::IpNet::V6(n) => {
                    v6.entry(n.prefix_len())
                        .or_default()
                        .insert(u128::from(n.network()), *id);
                }
            }
        }
        let mut v4: Vec<_> = v4.into_iter().collect();
        let mut v6: Vec<_> = v6.into_iter().collect();
        v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        IpCache { v4, v6 }
    }

    /// The identity of the longest prefix containing `ip`, if any.
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(ip) => {
                let ip = u32::from(ip);
                self.v4
                    .iter()
                    .find_map(|(len, map)| map.get(&(ip & mask32(*len))).copied())
            }
            IpAddr::V6(ip) => {
                let ip = u128::from(ip);
                self.v6
                    .iter()
                    .find_map(|(len, map)| map.get(&(ip & mask128(*len))).copied())
            }
        }
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let net = |s: &str| s.parse::<ipnet::IpNet>().expect("cidr");
        let cache = IpCache::new(&[
            (net("0.0.0.0/0"), 2),
            (net("10.0.0.0/8"), 100),
            (net("10.96.0.0/12"), 200),
            (net("10.96.1.7/32"), 300),
            (net("fd00::/64"), 400),
        ]);
        let table = [
            ("10.1.2.3", Some(100)),
            ("10.96.5.5", Some(200)),
            ("10.96.1.7", Some(300)),
            ("192.168.1.1", Some(2)),
            ("fd00::1", Some(400)),
            ("fd01::1", None),
        ];
        for (ip, want) in table {
            assert_eq!(cache.lookup(ip.parse().expect("ip")), want, "lookup({ip})");
        }
    }
}
