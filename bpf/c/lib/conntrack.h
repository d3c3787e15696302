/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection tracking. One node-wide table keyed in the original direction. A packet whose
 * reversed tuple is a live entry is a reply and passes without policy; original-direction
 * packets are still checked against policy (Cilium enforces on every forward packet, so a
 * policy change cuts established flows). Expiry is a timestamp checked here and by the
 * userspace GC; LRU eviction is only the last resort.
 */
#ifndef PALISADE_CONNTRACK_H
#define PALISADE_CONNTRACK_H

#include "maps.h"
#include "parse.h"

#define PAL_CT_MISS 0
#define PAL_CT_FORWARD 1
#define PAL_CT_REPLY 2

static __always_inline void pal_ct_key_of(const struct pal_flow *f, struct pal_ct_key *k, int rev)
{
	if (rev) {
		__builtin_memcpy(k->saddr, f->daddr, 16);
		__builtin_memcpy(k->daddr, f->saddr, 16);
		k->sport = f->dport;
		k->dport = f->sport;
	} else {
		__builtin_memcpy(k->saddr, f->saddr, 16);
		__builtin_memcpy(k->daddr, f->daddr, 16);
		k->sport = f->sport;
		k->dport = f->dport;
	}
	k->proto = f->proto;
	k->family = f->family;
	k->pad = 0;
}

/* Lifetime after this packet, given the entry's state. */
static __always_inline __u64 pal_ct_lifetime(const struct pal_flow *f, const struct pal_ct_value *v)
{
	if (f->proto != IPPROTO_TCP)
		return PAL_CT_NONTCP_LIFETIME;
	if (v->state == PAL_CT_CLOSING)
		return PAL_CT_CLOSE_TIMEOUT;
	if (v->state == PAL_CT_NEW)
		return PAL_CT_TCP_SYN_TIMEOUT;
	return PAL_CT_TCP_LIFETIME;
}

/* Updates state and expiry of a live entry for a packet in direction `rev`. */
static __always_inline void pal_ct_touch(const struct pal_flow *f, struct pal_ct_value *v, int rev,
					 __u64 now)
{
	__u8 state = v->state;
	__u8 flags = v->flags;

	if (rev && state == PAL_CT_NEW)
		state = PAL_CT_ESTABLISHED;
	if (f->proto == IPPROTO_TCP) {
		if (f->tcp_flags & PAL_TCP_RST)
			state = PAL_CT_CLOSING;
		if (f->tcp_flags & PAL_TCP_FIN)
			flags |= rev ? PAL_CT_SEEN_FIN_REV : PAL_CT_SEEN_FIN_FWD;
		if ((flags & (PAL_CT_SEEN_FIN_FWD | PAL_CT_SEEN_FIN_REV)) ==
		    (PAL_CT_SEEN_FIN_FWD | PAL_CT_SEEN_FIN_REV))
			state = PAL_CT_CLOSING;
	}
	if (state != v->state || flags != v->flags) {
		v->state = state;
		v->flags = flags;
		v->expires_ns = now + pal_ct_lifetime(f, v);
		return;
	}
	/* Write the expiry at most once a second: the entry is shared by all CPUs. */
	__u64 expires = now + pal_ct_lifetime(f, v);
	if (expires > v->expires_ns + PAL_NSEC)
		v->expires_ns = expires;
}

/*
 * Classifies the packet. A closing TCP entry hit by a fresh SYN (either direction) counts as
 * a miss (port reuse), as does an expired entry.
 */
static __always_inline int pal_ct_lookup(const struct pal_flow *f, __u64 now)
{
	struct pal_ct_key k;
	struct pal_ct_value *v;

	int fresh_syn = f->proto == IPPROTO_TCP &&
			(f->tcp_flags & (PAL_TCP_SYN | PAL_TCP_ACK)) == PAL_TCP_SYN;

	pal_ct_key_of(f, &k, 0);
	v = bpf_map_lookup_elem(&pal_ct, &k);
	if (v && v->expires_ns > now && !(fresh_syn && v->state == PAL_CT_CLOSING)) {
		pal_ct_touch(f, v, 0, now);
		return PAL_CT_FORWARD;
	}
	pal_ct_key_of(f, &k, 1);
	v = bpf_map_lookup_elem(&pal_ct, &k);
	if (v && v->expires_ns > now && !(fresh_syn && v->state == PAL_CT_CLOSING)) {
		pal_ct_touch(f, v, 1, now);
		return PAL_CT_REPLY;
	}
	return PAL_CT_MISS;
}

static __always_inline void pal_ct_create(const struct pal_flow *f, __u64 now, __u32 src_id,
					  __u32 dst_id, __u16 proxy_port)
{
	struct pal_ct_key k;
	struct pal_ct_value v = {
		.src_identity = src_id,
		.dst_identity = dst_id,
		.proxy_port = proxy_port,
		.state = PAL_CT_NEW,
	};

	pal_ct_key_of(f, &k, 0);
	if (f->proto == IPPROTO_TCP && (f->tcp_flags & (PAL_TCP_RST | PAL_TCP_FIN)))
		v.state = PAL_CT_CLOSING;
	/* A mid-stream packet (agent restart): treat the flow as established. */
	else if (f->proto == IPPROTO_TCP && !(f->tcp_flags & PAL_TCP_SYN))
		v.state = PAL_CT_ESTABLISHED;
	v.expires_ns = now + pal_ct_lifetime(f, &v);
	bpf_map_update_elem(&pal_ct, &k, &v, BPF_ANY);
}

#endif
