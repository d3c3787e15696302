/* SPDX-License-Identifier: Apache-2.0 */
/* Verdict events (ring buffer, rate-limited per CPU) and per-endpoint counters. */
#ifndef PALISADE_EVENTS_H
#define PALISADE_EVENTS_H

#include "maps.h"
#include "parse.h"

struct pal_ctx {
	__u64 now;
	__u8 hook;
	__u8 direction;  /* whose policy decided: PAL_DIR_* */
	__u16 endpoint;  /* endpoint the event and counters belong to (0 = none) */
	__u32 src_identity;
	__u32 dst_identity;
};

/* Fixed one-second windows: cheap and enough to keep a drop flood from filling the ring. */
static __always_inline int pal_event_allowed(__u64 now)
{
	__u32 zero = 0;
	struct pal_ratelimit *rl = bpf_map_lookup_elem(&pal_event_rl, &zero);

	if (!rl)
		return 0;
	if (now - rl->window_start_ns > PAL_NSEC) {
		rl->window_start_ns = now;
		rl->count = 0;
	}
	if (rl->count >= PAL_EVENTS_PER_SEC_PER_CPU)
		return 0;
	rl->count++;
	return 1;
}

static __always_inline void pal_emit(const struct pal_ctx *c, const struct pal_flow *f, __u8 kind,
				     __u8 reason, __u16 proxy_port)
{
	struct pal_event *e;

	if (!pal_event_allowed(c->now))
		return;
	e = bpf_ringbuf_reserve(&pal_events, sizeof(*e), 0);
	if (!e)
		return;
	e->ts_ns = c->now;
	__builtin_memcpy(e->saddr, f->saddr, 16);
	__builtin_memcpy(e->daddr, f->daddr, 16);
	/* Events carry real ports: for ICMP echo both are zero and the type is in dport. */
	if (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6) {
		e->sport = 0;
		e->dport = bpf_htons(f->policy_port);
	} else {
		e->sport = f->sport;
		e->dport = f->dport;
	}
	e->proto = f->proto;
	e->family = f->family;
	e->kind = kind;
	e->reason = reason;
	e->direction = c->direction;
	e->hook = c->hook;
	e->endpoint = c->endpoint;
	e->src_identity = c->src_identity;
	e->dst_identity = c->dst_identity;
	e->proxy_port = proxy_port;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void pal_count(__u16 endpoint, __u8 dir, int dropped, __u32 len)
{
	__u32 idx = endpoint;
	struct pal_counters *c;

	if (!endpoint)
		return;
	c = bpf_map_lookup_elem(&pal_counters, &idx);
	if (!c)
		return;
	if (dir == PAL_DIR_INGRESS) {
		if (dropped) {
			c->ingress_drop_packets++;
			c->ingress_drop_bytes += len;
		} else {
			c->ingress_fwd_packets++;
			c->ingress_fwd_bytes += len;
		}
	} else {
		if (dropped) {
			c->egress_drop_packets++;
			c->egress_drop_bytes += len;
		} else {
			c->egress_fwd_packets++;
			c->egress_fwd_bytes += len;
		}
	}
}

#endif
