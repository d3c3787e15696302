//! Crafted Ethernet/IPv4 frames for BPF_PROG_TEST_RUN (checksums are not checked by TC).

use std::net::{Ipv4Addr, Ipv6Addr};

/// TCP flag bits.
pub const SYN: u8 = 0x02;
/// See [`SYN`].
pub const ACK: u8 = 0x10;
/// See [`SYN`].
pub const RST: u8 = 0x04;

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + l4.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    // Pad to the Ethernet minimum like a real frame.
    f.resize(f.len().max(60), 0);
    f
}

/// A TCP segment with the given flags.
pub fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let mut l4 = [0u8; 20];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    ipv4(src, dst, 6, &l4)
}

/// A UDP datagram.
pub fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut l4 = [0u8; 8];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..6].copy_from_slice(&8u16.to_be_bytes());
    ipv4(src, dst, 17, &l4)
}

/// An ICMP message of `icmp_type` (8 echo request, 0 echo reply) with echo id `id`.
pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, icmp_type: u8, id: u16) -> Vec<u8> {
    let mut l4 = [0u8; 8];
    l4[0] = icmp_type;
    l4[4..6].copy_from_slice(&id.to_be_bytes());
    ipv4(src, dst, 1, &l4)
}

/// An IPv6 packet: `next` is the first next-header value, `payload` everything after the fixed
/// header (extension headers included).
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 0x16]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    ip[6] = next;
    ip[7] = 1;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    f.extend_from_slice(&ip);
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    f
}

/// A hop-by-hop header with the Router Alert option (as MLD uses), followed by `next` and
/// `payload`.
pub fn hop_by_hop(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![next, 0, 5, 2, 0, 0, 1, 0];
    h.extend_from_slice(payload);
    h
}

/// An ICMPv6 message of `icmp_type` with a zeroed body.
pub fn icmpv6_body(icmp_type: u8) -> Vec<u8> {
    let mut m = vec![0u8; 8];
    m[0] = icmp_type;
    m
}
