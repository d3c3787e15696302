//! Port ranges as the datapath stores them: prefix-aligned blocks in an LPM trie keyed by
//! protocol (8 bits) then port (16 bits). The more specific the block, the longer its prefix.

/// Splits an inclusive port range into aligned blocks `(base, port_prefix_bits)`, where a block
/// covers `2^(16 - bits)` ports starting at `base`.
pub fn port_blocks(start: u16, end: u16) -> Vec<(u16, u8)> {
    let mut out = Vec::new();
    let (mut s, e) = (start as u32, end as u32);
    while s <= e {
        // Largest power of two that `s` is aligned to and that stays within the range.
        let mut size: u32 = if s == 0 {
            1 << 16
        } else {
            1 << s.trailing_zeros()
        };
        while s + size - 1 > e {
            size >>= 1;
        }
        out.push((s as u16, (16 - size.trailing_zeros()) as u8));
        s += size;
    }
    out
}

/// If an entry `(key_proto, start..=end)` matches `proto`/`port`, the prefix length (over the
/// 24 bits of protocol and port) of the block that matches; `key_proto == 0` matches everything
/// with prefix length 0.
pub fn match_prefix_len(key_proto: u8, start: u16, end: u16, proto: u8, port: u16) -> Option<u32> {
    if key_proto == 0 {
        return Some(0);
    }
    if key_proto != proto || port < start || port > end {
        return None;
    }
    port_blocks(start, end)
        .into_iter()
        .find(|(base, bits)| {
            let size = 1u32 << (16 - *bits as u32);
            (*base as u32..*base as u32 + size).contains(&(port as u32))
        })
        .map(|(_, bits)| 8 + bits as u32)
}

/// The name of an IP protocol number as users write it (`TCP`, `ICMP`; `ANY` for 0).
pub fn proto_name(p: u8) -> String {
    match p {
        0 => "ANY".into(),
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_table() {
        assert_eq!(port_blocks(80, 80), vec![(80, 16)]);
        assert_eq!(port_blocks(0, 65535), vec![(0, 0)]);
        assert_eq!(port_blocks(8080, 8083), vec![(8080, 14)]);
        assert_eq!(port_blocks(1, 4), vec![(1, 16), (2, 15), (4, 16)]);
        let blocks = port_blocks(1000, 2000);
        let covered: u32 = blocks.iter().map(|(_, b)| 1u32 << (16 - *b as u32)).sum();
        assert_eq!(covered, 1001);
    }

    #[test]
    fn more_specific_port_has_longer_prefix() {
        let exact = match_prefix_len(6, 80, 80, 6, 80).unwrap();
        let range = match_prefix_len(6, 1, 1000, 6, 80).unwrap();
        let l3 = match_prefix_len(0, 0, 65535, 6, 80).unwrap();
        assert!(exact > range && range > l3, "{exact} {range} {l3}");
        assert_eq!(match_prefix_len(17, 80, 80, 6, 80), None);
        assert_eq!(match_prefix_len(6, 81, 90, 6, 80), None);
    }
}
