//! Public value types of the datapath API: endpoints, policy entries, events, counters.

use std::net::SocketAddr;

/// A local endpoint (pod) as the datapath sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Endpoint id, 1..4096 (policy and counters key).
    pub id: u16,
    /// Security identity.
    pub identity: u32,
    /// Host-side veth ifindex the pod sends from; 0 disables the source interface check.
    pub ifindex: u32,
    /// Ingress policy enforced (default deny) for this endpoint.
    pub ingress_enforced: bool,
    /// Egress policy enforced (default deny) for this endpoint.
    pub egress_enforced: bool,
}

/// Traffic direction, from the endpoint's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Traffic to the endpoint.
    Ingress,
    /// Traffic from the endpoint.
    Egress,
}

/// What a policy entry does with matching traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Forward.
    Allow,
    /// Drop silently.
    Deny,
    /// Hand to the local proxy listening on `proxy_port`.
    Redirect {
        /// Proxy listener port in the node namespace.
        proxy_port: u16,
    },
}

/// One policy entry of an endpoint. `port == 0 && end_port == 0` means all ports; a single
/// port has `end_port == port`. `proto == 0` with ports means TCP, UDP and SCTP; `proto == 0`
/// without ports means every protocol, ICMP included. For ICMP the "port" is the ICMP type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyEntry {
    /// Direction.
    pub direction: Direction,
    /// Remote identity, 0 = any.
    pub identity: u32,
    /// IP protocol, 0 = any.
    pub proto: u8,
    /// First port.
    pub port: u16,
    /// Last port (inclusive).
    pub end_port: u16,
    /// Verdict.
    pub verdict: Verdict,
}

/// What a `sync_policy` call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Keys written (new or changed).
    pub written: usize,
    /// Stale keys deleted.
    pub deleted: usize,
    /// Keys already as desired.
    pub unchanged: usize,
}

/// Per-endpoint counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets delivered to the endpoint.
    pub ingress_forwarded_packets: u64,
    /// Bytes delivered to the endpoint.
    pub ingress_forwarded_bytes: u64,
    /// Packets to the endpoint dropped.
    pub ingress_dropped_packets: u64,
    /// Bytes to the endpoint dropped.
    pub ingress_dropped_bytes: u64,
    /// Packets from the endpoint forwarded.
    pub egress_forwarded_packets: u64,
    /// Bytes from the endpoint forwarded.
    pub egress_forwarded_bytes: u64,
    /// Packets from the endpoint dropped.
    pub egress_dropped_packets: u64,
    /// Bytes from the endpoint dropped.
    pub egress_dropped_bytes: u64,
}

/// Kind of a verdict event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A new flow was allowed.
    Allow,
    /// A packet was dropped.
    Drop,
    /// A new flow was redirected to a proxy.
    Redirect {
        /// The proxy port.
        proxy_port: u16,
    },
}

/// Why a packet was dropped (the table in c/lib/abi.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a drop.
    None,
    /// An explicit deny entry matched.
    PolicyDeny,
    /// Direction enforced and no entry matched (default deny).
    PolicyDefault,
    /// Redirect verdict at a TC egress hook where sk_assign is impossible (fail closed).
    RedirectAtEgress,
    /// Redirect verdict but no proxy socket listening.
    ProxyMissing,
    /// A pod sent from an address that is not its own, or a local address arrived from outside.
    SpoofedSource,
    /// Truncated headers.
    Malformed,
    /// A reason this version does not know.
    Unknown(u8),
}

impl DropReason {
    pub(crate) fn from_raw(v: u8) -> Self {
        match v {
            0 => DropReason::None,
            1 => DropReason::PolicyDeny,
            2 => DropReason::PolicyDefault,
            3 => DropReason::RedirectAtEgress,
            4 => DropReason::ProxyMissing,
            5 => DropReason::SpoofedSource,
            6 => DropReason::Malformed,
            other => DropReason::Unknown(other),
        }
    }
}

/// Where the datapath decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// TC ingress of an endpoint's host-side veth (pod egress).
    FromContainer,
    /// TC egress of an endpoint's host-side veth (pod ingress).
    ToContainer,
    /// TC ingress of the node's external interface.
    FromNetdev,
}

/// One verdict event from the ring buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Allow (new flow), drop, or redirect (new flow).
    pub kind: EventKind,
    /// Drop reason (`None` unless `kind` is `Drop`).
    pub reason: DropReason,
    /// Direction of the policy that decided (ingress of `endpoint` or egress of it).
    pub direction: Direction,
    /// Hook that decided.
    pub hook: Hook,
    /// Endpoint the event belongs to (0 when unknown, e.g. a spoofed source).
    pub endpoint: u16,
    /// Source identity.
    pub src_identity: u32,
    /// Destination identity.
    pub dst_identity: u32,
    /// Source address and port (ICMP: port 0).
    pub src: SocketAddr,
    /// Destination address and port (ICMP: the ICMP type).
    pub dst: SocketAddr,
    /// IP protocol.
    pub proto: u8,
}
