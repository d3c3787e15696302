//! Rust mirror of `c/lib/abi.h`: every struct that crosses a map or the ring buffer, with
//! explicit padding and compile-time size/offset checks against the C layout.

#![allow(unsafe_code)] // aya::Pod impls: plain-old-data structs with no padding holes.

use std::mem::{offset_of, size_of};

/// Wildcard identity in policy keys.
pub const ID_ANY: u32 = 0;
/// Reserved identity of the local host.
pub const ID_HOST: u32 = 1;
/// Reserved identity of everything outside the cluster (ipcache miss).
pub const ID_WORLD: u32 = 2;

/// Address family tags as stored in keys.
pub const FAMILY_V4: u32 = 4;
/// See [`FAMILY_V4`].
pub const FAMILY_V6: u32 = 6;

/// Mark bits the policy routing matches on.
pub const MARK_MASK: u32 = 0xf00;
/// Set by the datapath on packets assigned to a proxy socket (port in the upper 16 bits).
pub const MARK_TO_PROXY: u32 = 0x200;
/// `SO_MARK` of the ingress L7 proxy's upstream sockets.
pub const MARK_FROM_INGRESS_PROXY: u32 = 0xa00;
/// `SO_MARK` of the egress L7 proxy's upstream sockets.
pub const MARK_FROM_EGRESS_PROXY: u32 = 0xb00;

/// Highest endpoint id + 1 (size of the counters array).
pub const MAX_ENDPOINTS: u32 = 4096;
/// Capacity of the node-wide policy trie.
pub const POLICY_MAX: usize = 262_144;
/// Bits of a policy key that are always matched (endpoint, direction, pad, identity).
pub const POLICY_FIXED_BITS: u32 = 64;

/// Direction values in policy keys.
pub const DIR_INGRESS: u8 = 0;
/// See [`DIR_INGRESS`].
pub const DIR_EGRESS: u8 = 1;

/// Verdict values in the policy map.
pub const VERDICT_ALLOW: u8 = 1;
/// See [`VERDICT_ALLOW`].
pub const VERDICT_DENY: u8 = 2;
/// See [`VERDICT_ALLOW`].
pub const VERDICT_REDIRECT: u8 = 3;

/// Event kinds.
pub const EVENT_ALLOW: u8 = 1;
/// See [`EVENT_ALLOW`].
pub const EVENT_DROP: u8 = 2;
/// See [`EVENT_ALLOW`].
pub const EVENT_REDIRECT: u8 = 3;

/// Endpoint flags.
pub const EP_INGRESS_ENFORCED: u16 = 1;
/// See [`EP_INGRESS_ENFORCED`].
pub const EP_EGRESS_ENFORCED: u16 = 2;

/// Key of the ipcache LPM trie: prefixlen counts the 32-bit family word plus the address bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcacheKey {
    /// Family word (4 or 6).
    pub family: u32,
    /// Address, network order; IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
}

/// Value of the ipcache.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcacheValue {
    /// Security identity.
    pub identity: u32,
    /// Explicit padding.
    pub pad: u32,
}

/// Key of the endpoints hash.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    /// Family word (4 or 6).
    pub family: u32,
    /// Address, network order.
    pub addr: [u8; 16],
}

/// Value of the endpoints hash.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointValue {
    /// Security identity of the endpoint.
    pub identity: u32,
    /// Host-side ifindex the pod must send from (0 = unchecked).
    pub ifindex: u32,
    /// Endpoint id (policy and counter key).
    pub id: u16,
    /// `EP_*` flags.
    pub flags: u16,
    /// Explicit padding.
    pub pad: u32,
}

/// Data part of a policy trie key (the `prefixlen` word is added by `aya::maps::lpm_trie::Key`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    /// Endpoint id.
    pub endpoint: u16,
    /// `DIR_*`.
    pub direction: u8,
    /// Explicit padding, always 0.
    pub pad1: u8,
    /// Remote identity, 0 = any.
    pub identity: u32,
    /// IP protocol, 0 = any.
    pub proto: u8,
    /// Explicit padding, always 0.
    pub pad2: u8,
    /// Port, network order.
    pub port_be: [u8; 2],
}

/// Value of the policy trie.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyValue {
    /// Proxy port for `VERDICT_REDIRECT`.
    pub proxy_port: u16,
    /// `VERDICT_*`.
    pub verdict: u8,
    /// Key prefixlen minus [`POLICY_FIXED_BITS`] (LPM lookups return only the value).
    pub specificity: u8,
    /// Explicit padding.
    pub pad: u32,
}

/// Key of the conntrack table (original direction).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtKey {
    /// Source address.
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
    /// Source port (ICMP echo: id), network order.
    pub sport_be: [u8; 2],
    /// Destination port, network order.
    pub dport_be: [u8; 2],
    /// IP protocol.
    pub proto: u8,
    /// Family (4 or 6).
    pub family: u8,
    /// Explicit padding.
    pub pad: u16,
}

/// Value of the conntrack table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtValue {
    /// Expiry on the CLOCK_MONOTONIC clock, ns.
    pub expires_ns: u64,
    /// Identity of the source.
    pub src_identity: u32,
    /// Identity of the destination.
    pub dst_identity: u32,
    /// Proxy port if the flow was redirected.
    pub proxy_port: u16,
    /// Connection state.
    pub state: u8,
    /// FIN seen flags.
    pub flags: u8,
    /// Explicit padding.
    pub pad: u32,
}

/// Per-endpoint counters (one per CPU in the map).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawCounters {
    /// Packets delivered to the pod.
    pub ingress_fwd_packets: u64,
    /// Bytes delivered to the pod.
    pub ingress_fwd_bytes: u64,
    /// Packets to the pod dropped.
    pub ingress_drop_packets: u64,
    /// Bytes to the pod dropped.
    pub ingress_drop_bytes: u64,
    /// Packets sent by the pod and forwarded.
    pub egress_fwd_packets: u64,
    /// Bytes sent by the pod and forwarded.
    pub egress_fwd_bytes: u64,
    /// Packets sent by the pod and dropped.
    pub egress_drop_packets: u64,
    /// Bytes sent by the pod and dropped.
    pub egress_drop_bytes: u64,
}

/// Ring buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawEvent {
    /// Timestamp, CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    /// Source address.
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
    /// Source port, network order.
    pub sport_be: [u8; 2],
    /// Destination port (ICMP: type), network order.
    pub dport_be: [u8; 2],
    /// IP protocol.
    pub proto: u8,
    /// Family.
    pub family: u8,
    /// `EVENT_*`.
    pub kind: u8,
    /// Drop reason.
    pub reason: u8,
    /// `DIR_*` of the deciding policy.
    pub direction: u8,
    /// Hook (1 from container, 2 to container, 3 from netdev).
    pub hook: u8,
    /// Endpoint the event belongs to.
    pub endpoint: u16,
    /// Source identity.
    pub src_identity: u32,
    /// Destination identity.
    pub dst_identity: u32,
    /// Proxy port of a redirect.
    pub proxy_port: u16,
    /// Explicit padding.
    pub pad: u16,
}

// SAFETY: all of these are repr(C), Copy, made of integers and byte arrays, with every
// padding byte spelled out as a field, so any bit pattern is valid and none is uninitialized.
unsafe impl aya::Pod for IpcacheKey {}
unsafe impl aya::Pod for IpcacheValue {}
unsafe impl aya::Pod for EndpointKey {}
unsafe impl aya::Pod for EndpointValue {}
unsafe impl aya::Pod for PolicyKey {}
unsafe impl aya::Pod for PolicyValue {}
unsafe impl aya::Pod for CtKey {}
unsafe impl aya::Pod for CtValue {}
unsafe impl aya::Pod for RawCounters {}

// Layout checks against c/lib/abi.h (sizes there are _Static_assert-ed too). The LPM keys
// here omit the leading u32 prefixlen, which aya's Key<K> adds.
const _: () = {
    assert!(size_of::<IpcacheKey>() + 4 == 24);
    assert!(size_of::<IpcacheValue>() == 8);
    assert!(size_of::<EndpointKey>() == 20);
    assert!(offset_of!(EndpointKey, addr) == 4);
    assert!(size_of::<EndpointValue>() == 16);
    assert!(offset_of!(EndpointValue, id) == 8);
    assert!(offset_of!(EndpointValue, flags) == 10);
    assert!(size_of::<PolicyKey>() + 4 == 16);
    assert!(offset_of!(PolicyKey, identity) == 4);
    assert!(offset_of!(PolicyKey, proto) == 8);
    assert!(offset_of!(PolicyKey, port_be) == 10);
    assert!(size_of::<PolicyValue>() == 8);
    assert!(offset_of!(PolicyValue, verdict) == 2);
    assert!(offset_of!(PolicyValue, specificity) == 3);
    assert!(size_of::<CtKey>() == 40);
    assert!(offset_of!(CtKey, sport_be) == 32);
    assert!(offset_of!(CtKey, proto) == 36);
    assert!(size_of::<CtValue>() == 24);
    assert!(offset_of!(CtValue, proxy_port) == 16);
    assert!(offset_of!(CtValue, state) == 18);
    assert!(size_of::<RawCounters>() == 64);
    assert!(size_of::<RawEvent>() == 64);
    assert!(offset_of!(RawEvent, sport_be) == 40);
    assert!(offset_of!(RawEvent, proto) == 44);
    assert!(offset_of!(RawEvent, kind) == 46);
    assert!(offset_of!(RawEvent, direction) == 48);
    assert!(offset_of!(RawEvent, endpoint) == 50);
    assert!(offset_of!(RawEvent, src_identity) == 52);
    assert!(offset_of!(RawEvent, dst_identity) == 56);
    assert!(offset_of!(RawEvent, proxy_port) == 60);
};
