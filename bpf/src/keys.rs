//! Encoding between API values and map keys: addresses, prefixes, and the expansion of policy
//! entries into prefix-aligned protocol/port blocks of the policy trie.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;

use crate::{
    abi::{self, EndpointKey, IpcacheKey, PolicyKey, PolicyValue},
    DatapathError, Direction, PolicyEntry, Verdict,
};

/// Protocols a "proto any" entry with ports expands to (Cilium's ANY with a port).
const PORT_PROTOS: [u8; 3] = [6, 17, 132];

/// Family word and 16 address bytes (IPv4 in the first 4).
pub(crate) fn addr_bytes(ip: IpAddr) -> (u32, [u8; 16]) {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (abi::FAMILY_V4, out)
        }
        IpAddr::V6(v6) => (abi::FAMILY_V6, v6.octets()),
    }
}

/// Inverse of [`addr_bytes`].
pub(crate) fn addr_from(family: u32, bytes: [u8; 16]) -> IpAddr {
    if family == abi::FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    }
}

pub(crate) fn endpoint_key(ip: IpAddr) -> EndpointKey {
    let (family, addr) = addr_bytes(ip);
    EndpointKey { family, addr }
}

/// ipcache key: 32 family bits, then the network's prefix.
pub(crate) fn ipcache_key(net: IpNet) -> (u32, IpcacheKey) {
    let net = net.trunc();
    let (family, addr) = addr_bytes(net.network());
    (
        32 + u32::from(net.prefix_len()),
        IpcacheKey { family, addr },
    )
}

pub(crate) fn ipcache_net(prefixlen: u32, key: IpcacheKey) -> Option<IpNet> {
    let plen = u8::try_from(prefixlen.checked_sub(32)?).ok()?;
    IpNet::new(addr_from(key.family, key.addr), plen).ok()
}

/// Splits an inclusive port range into prefix-aligned blocks: (start, prefix bits).
pub(crate) fn port_blocks(start: u16, end: u16) -> Vec<(u16, u8)> {
    let mut blocks = Vec::new();
    let mut cur = u32::from(start);
    let end = u32::from(end);
    while cur <= end {
        // Largest aligned block starting at `cur` that does not pass `end`.
        let mut size = if cur == 0 {
            1 << 16
        } else {
            1u32 << cur.trailing_zeros().min(16)
        };
        while cur + size - 1 > end {
            size >>= 1;
        }
        blocks.push((cur as u16, 16 - size.trailing_zeros() as u8));
        cur += size;
    }
    blocks
}

fn dir_raw(d: Direction) -> u8 {
    match d {
        Direction::Ingress => abi::DIR_INGRESS,
        Direction::Egress => abi::DIR_EGRESS,
    }
}

fn verdict_rank(v: Verdict) -> u8 {
    match v {
        Verdict::Allow => 0,
        Verdict::Redirect { .. } => 1,
        Verdict::Deny => 2,
    }
}

/// One trie key: (prefixlen, data) ordered so the diff is deterministic.
pub(crate) type TrieKey = (u32, PolicyKey);

/// Expands entries into trie keys with their verdicts. Identical keys keep the strongest
/// verdict (deny > redirect > allow). Allow/redirect keys that a broader deny of the same
/// identity and direction covers become deny: an LPM lookup only returns the longest match,
/// so without this a narrow allow would hide the deny.
pub(crate) fn expand(
    endpoint: u16,
    entries: &[PolicyEntry],
) -> Result<BTreeMap<TrieKey, Verdict>, DatapathError> {
    let mut out: BTreeMap<TrieKey, Verdict> = BTreeMap::new();
    for e in entries {
        if e.end_port < e.port {
            return Err(DatapathError::InvalidEntry(format!(
                "{e:?}: end_port < port"
            )));
        }
        let all_ports = e.port == 0 && e.end_port == 0;
        let protos: Vec<u8> = match (e.proto, all_ports) {
            (0, false) => PORT_PROTOS.to_vec(),
            (p, _) => vec![p],
        };
        let base = PolicyKey {
            endpoint,
            direction: dir_raw(e.direction),
            identity: e.identity,
            ..PolicyKey::default()
        };
        for proto in protos {
            let mut keys = Vec::new();
            if proto == 0 {
                keys.push((abi::POLICY_FIXED_BITS, base));
            } else if all_ports {
                keys.push((abi::POLICY_FIXED_BITS + 8, PolicyKey { proto, ..base }));
            } else {
                for (start, bits) in port_blocks(e.port, e.end_port) {
                    let k = PolicyKey {
                        proto,
                        port_be: start.to_be_bytes(),
                        ..base
                    };
                    keys.push((abi::POLICY_FIXED_BITS + 16 + u32::from(bits), k));
                }
            }
            for k in keys {
                let slot = out.entry(k).or_insert(e.verdict);
                if verdict_rank(e.verdict) > verdict_rank(*slot) {
                    *slot = e.verdict;
                }
            }
        }
    }
    let denies: Vec<TrieKey> = out
        .iter()
        .filter(|(_, v)| **v == Verdict::Deny)
        .map(|(k, _)| *k)
        .collect();
    for (key, verdict) in out.iter_mut() {
        if *verdict != Verdict::Deny && denies.iter().any(|d| covers(d, key)) {
            *verdict = Verdict::Deny;
        }
    }
    Ok(out)
}

/// Bits 64.. of the key data as one number: proto(8) pad(8) port(16).
fn tail_bits(k: &PolicyKey) -> u32 {
    (u32::from(k.proto) << 24) | u32::from(u16::from_be_bytes(k.port_be))
}

/// Whether trie key `outer` contains every packet `inner` matches.
fn covers(outer: &TrieKey, inner: &TrieKey) -> bool {
    let (ol, ok) = outer;
    let (il, ik) = inner;
    if ok.endpoint != ik.endpoint || ok.direction != ik.direction || ok.identity != ik.identity {
        return false;
    }
    if ol > il {
        return false;
    }
    let bits = ol - abi::POLICY_FIXED_BITS;
    if bits == 0 {
        return true;
    }
    let mask = u32::MAX << (32 - bits);
    tail_bits(ok) & mask == tail_bits(ik) & mask
}

pub(crate) fn value_of(prefixlen: u32, v: Verdict) -> PolicyValue {
    let (verdict, proxy_port) = match v {
        Verdict::Allow => (abi::VERDICT_ALLOW, 0),
        Verdict::Deny => (abi::VERDICT_DENY, 0),
        Verdict::Redirect { proxy_port } => (abi::VERDICT_REDIRECT, proxy_port),
    };
    PolicyValue {
        proxy_port,
        verdict,
        specificity: (prefixlen - abi::POLICY_FIXED_BITS) as u8,
        pad: 0,
    }
}

/// Decodes a stored key/value back into an entry (one prefix block per entry).
pub(crate) fn decode(prefixlen: u32, k: &PolicyKey, v: &PolicyValue) -> PolicyEntry {
    let direction = if k.direction == abi::DIR_EGRESS {
        Direction::Egress
    } else {
        Direction::Ingress
    };
    let verdict = match v.verdict {
        abi::VERDICT_DENY => Verdict::Deny,
        abi::VERDICT_REDIRECT => Verdict::Redirect {
            proxy_port: v.proxy_port,
        },
        _ => Verdict::Allow,
    };
    let port_bits = prefixlen.saturating_sub(abi::POLICY_FIXED_BITS + 16);
    let (port, end_port) = if port_bits == 0 {
        (0, 0)
    } else {
        let start = u16::from_be_bytes(k.port_be);
        let size = 1u32 << (16 - port_bits);
        (start, (u32::from(start) + size - 1) as u16)
    };
    PolicyEntry {
        direction,
        identity: k.identity,
        proto: k.proto,
        port,
        end_port,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_blocks_cover_range_exactly() {
        for (s, e) in [
            (80, 80),
            (1, 65535),
            (0, 65535),
            (1000, 2000),
            (8080, 8090),
            (0, 0),
        ] {
            let blocks = port_blocks(s, e);
            let mut next = u32::from(s);
            for (start, bits) in &blocks {
                assert_eq!(u32::from(*start), next, "blocks of {s}-{e} not contiguous");
                let size = 1u32 << (16 - bits);
                assert_eq!(
                    u32::from(*start) % size,
                    0,
                    "block {start}/{bits} not aligned"
                );
                next += size;
            }
            assert_eq!(next, u32::from(e) + 1, "blocks of {s}-{e} end at {next}");
        }
        assert_eq!(port_blocks(80, 80), vec![(80, 16)]);
        assert_eq!(port_blocks(0, 65535), vec![(0, 0)]);
    }

    #[test]
    fn deny_covering_allow_turns_it_into_deny() {
        let allow = PolicyEntry {
            direction: Direction::Ingress,
            identity: 300,
            proto: 6,
            port: 80,
            end_port: 80,
            verdict: Verdict::Allow,
        };
        let deny = PolicyEntry {
            port: 0,
            end_port: 1023,
            verdict: Verdict::Deny,
            ..allow
        };
        let other = PolicyEntry {
            identity: 301,
            ..allow
        };
        let keys = expand(7, &[allow, deny, other]).expect("expand");
        let v80 = keys
            .iter()
            .find(|((l, k), _)| *l == 96 && k.identity == 300)
            .map(|x| *x.1);
        assert_eq!(
            v80,
            Some(Verdict::Deny),
            "allow inside deny range must become deny"
        );
        let v301 = keys
            .iter()
            .find(|((_, k), _)| k.identity == 301)
            .map(|x| *x.1);
        assert_eq!(v301, Some(Verdict::Allow), "other identity untouched");
    }

    #[test]
    fn decode_round_trips_blocks() {
        let e = PolicyEntry {
            direction: Direction::Egress,
            identity: 0,
            proto: 17,
            port: 8080,
            end_port: 8087,
            verdict: Verdict::Redirect { proxy_port: 15001 },
        };
        let keys = expand(3, &[e]).expect("expand");
        assert_eq!(keys.len(), 1, "8080-8087 is one aligned block");
        let ((plen, k), v) = keys.iter().next().expect("one key");
        assert_eq!(decode(*plen, k, &value_of(*plen, *v)), e);
    }
}
