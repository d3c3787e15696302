/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ABI shared between the C datapath and the Rust loader (bpf/src/abi.rs mirrors it).
 *
 * Every struct that crosses the map or ring-buffer boundary lives here, with explicit padding
 * and a _Static_assert on its size, so that a layout change breaks the build on both sides.
 * Addresses are always 16 bytes: IPv4 uses the first 4 (network order), the rest stays zero.
 */
#ifndef PALISADE_ABI_H
#define PALISADE_ABI_H

#include <linux/types.h>

/* Reserved identities (Cilium's numbers). */
#define PAL_ID_ANY 0
#define PAL_ID_HOST 1
#define PAL_ID_WORLD 2

/* Address families as stored in keys (not AF_*: small numbers keep keys obvious). */
#define PAL_FAMILY_V4 4
#define PAL_FAMILY_V6 6

/* Marks (Cilium's values). The proxy port travels in the upper 16 bits of the to-proxy mark. */
#define PAL_MARK_MASK 0xf00
#define PAL_MARK_TO_PROXY 0x200
#define PAL_MARK_FROM_INGRESS_PROXY 0xa00
#define PAL_MARK_FROM_EGRESS_PROXY 0xb00

/* Map sizes. The policy trie is not preallocated (LPM tries never are). */
#define PAL_MAX_ENDPOINTS 4096
#define PAL_IPCACHE_MAX 65536
#define PAL_POLICY_MAX 262144
#define PAL_CT_MAX 262144
#define PAL_EVENTS_BYTES (1 << 20)

/* Policy direction, as seen from the endpoint that owns the rule. */
#define PAL_DIR_INGRESS 0
#define PAL_DIR_EGRESS 1

/* Policy verdicts stored in the policy map. */
#define PAL_VERDICT_ALLOW 1
#define PAL_VERDICT_DENY 2
#define PAL_VERDICT_REDIRECT 3

/* Event kinds. */
#define PAL_EVENT_ALLOW 1
#define PAL_EVENT_DROP 2
#define PAL_EVENT_REDIRECT 3

/* Hooks, reported in events. */
#define PAL_HOOK_FROM_CONTAINER 1 /* TC ingress of the host-side veth = pod egress */
#define PAL_HOOK_TO_CONTAINER 2   /* TC egress of the host-side veth = pod ingress */
#define PAL_HOOK_FROM_NETDEV 3    /* TC ingress of the node's external interface */

/* Drop reasons: the one table shared with userspace (DropReason in abi.rs). */
#define PAL_REASON_NONE 0
#define PAL_REASON_POLICY_DENY 1      /* an explicit deny entry matched */
#define PAL_REASON_POLICY_DEFAULT 2   /* direction enforced, no entry matched */
#define PAL_REASON_REDIRECT_EGRESS 3  /* redirect verdict at a hook without sk_assign */
#define PAL_REASON_PROXY_MISSING 4    /* redirect verdict but no proxy socket found */
#define PAL_REASON_SPOOFED_SOURCE 5   /* pod sent from an address that is not its own */
#define PAL_REASON_MALFORMED 6        /* truncated headers */

/* Endpoint flags. */
#define PAL_EP_INGRESS_ENFORCED 1
#define PAL_EP_EGRESS_ENFORCED 2

/* ipcache: LPM trie, prefixlen = 32 (family word) + address prefix length. */
struct pal_ipcache_key {
	__u32 prefixlen;
	__u32 family;
	__u32 addr[4];
};
_Static_assert(sizeof(struct pal_ipcache_key) == 24, "pal_ipcache_key");

struct pal_ipcache_value {
	__u32 identity;
	__u32 pad;
};
_Static_assert(sizeof(struct pal_ipcache_value) == 8, "pal_ipcache_value");

/* endpoints: hash by address. */
struct pal_endpoint_key {
	__u32 family;
	__u32 addr[4];
};
_Static_assert(sizeof(struct pal_endpoint_key) == 20, "pal_endpoint_key");

struct pal_endpoint_value {
	__u32 identity;
	__u32 ifindex; /* 0 = do not check the source interface */
	__u16 id;
	__u16 flags;
	__u32 pad;
};
_Static_assert(sizeof(struct pal_endpoint_value) == 16, "pal_endpoint_value");

/*
 * policy: one LPM trie for all endpoints. The first 64 data bits (endpoint, direction, pad,
 * identity) are always matched in full; then 8 bits of protocol, 8 bits of zero padding and
 * up to 16 bits of port (network order, so a prefix is a port-aligned block).
 *   prefixlen 64       = any protocol, any port (incl. ICMP)
 *   prefixlen 72       = this protocol, any port
 *   prefixlen 80 + n   = this protocol, ports sharing the top n bits
 */
#define PAL_POLICY_FIXED_BITS 64
#define PAL_POLICY_FULL_BITS 96
struct pal_policy_key {
	__u32 prefixlen;
	__u16 endpoint;
	__u8 direction;
	__u8 pad1;
	__u32 identity;
	__u8 proto;
	__u8 pad2;
	__be16 port;
};
_Static_assert(sizeof(struct pal_policy_key) == 16, "pal_policy_key");

/* specificity = prefixlen - 64, stored because an LPM lookup returns only the value. */
struct pal_policy_value {
	__u16 proxy_port;
	__u8 verdict;
	__u8 specificity;
	__u32 pad;
};
_Static_assert(sizeof(struct pal_policy_value) == 8, "pal_policy_value");

/*
 * conntrack: LRU hash, key in the flow's original direction. ICMP echo: request has
 * sport = echo id, dport = 0; a reply has sport = 0, dport = id, so its reverse is the request.
 */
struct pal_ct_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};
_Static_assert(sizeof(struct pal_ct_key) == 40, "pal_ct_key");

#define PAL_CT_NEW 0          /* only the original direction seen */
#define PAL_CT_ESTABLISHED 1  /* a reply was seen */
#define PAL_CT_CLOSING 2      /* RST, or FIN in both directions */

#define PAL_CT_SEEN_FIN_FWD 1
#define PAL_CT_SEEN_FIN_REV 2

struct pal_ct_value {
	__u64 expires_ns; /* bpf_ktime_get_ns() clock (CLOCK_MONOTONIC) */
	__u32 src_identity;
	__u32 dst_identity;
	__u16 proxy_port;
	__u8 state;
	__u8 flags;
	__u32 pad;
};
_Static_assert(sizeof(struct pal_ct_value) == 24, "pal_ct_value");

/* Timeouts (Cilium's defaults). */
#define PAL_NSEC 1000000000ULL
#define PAL_CT_TCP_SYN_TIMEOUT (60 * PAL_NSEC)
#define PAL_CT_TCP_LIFETIME (21600 * PAL_NSEC)
#define PAL_CT_CLOSE_TIMEOUT (10 * PAL_NSEC)
#define PAL_CT_NONTCP_LIFETIME (60 * PAL_NSEC)

/* counters: per-CPU array indexed by endpoint id. */
struct pal_counters {
	__u64 ingress_fwd_packets;
	__u64 ingress_fwd_bytes;
	__u64 ingress_drop_packets;
	__u64 ingress_drop_bytes;
	__u64 egress_fwd_packets;
	__u64 egress_fwd_bytes;
	__u64 egress_drop_packets;
	__u64 egress_drop_bytes;
};
_Static_assert(sizeof(struct pal_counters) == 64, "pal_counters");

/* events: ring buffer records, one per drop and per new flow (rate-limited per CPU). */
#define PAL_EVENTS_PER_SEC_PER_CPU 2000
struct pal_event {
	__u64 ts_ns;
	__u32 saddr[4];
	__u32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 kind;
	__u8 reason;
	__u8 direction;
	__u8 hook;
	__u16 endpoint;
	__u32 src_identity;
	__u32 dst_identity;
	__u16 proxy_port;
	__u16 pad;
};
_Static_assert(sizeof(struct pal_event) == 64, "pal_event");

/* Per-CPU event rate limiter state. */
struct pal_ratelimit {
	__u64 window_start_ns;
	__u64 count;
};
_Static_assert(sizeof(struct pal_ratelimit) == 16, "pal_ratelimit");

#endif
