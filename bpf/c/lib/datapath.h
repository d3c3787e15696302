/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-packet decision shared by all hooks:
 *   parse -> conntrack (replies pass) -> proxy-marked packets pass (creating conntrack)
 *   -> source egress policy (at the source's own hook) -> destination ingress policy
 *   -> deny: drop | redirect: sk_assign (ingress hooks only) | allow: conntrack + forward.
 */
#ifndef PALISADE_DATAPATH_H
#define PALISADE_DATAPATH_H

#include <linux/pkt_cls.h>
#include "conntrack.h"
#include "events.h"
#include "lookup.h"
#include "policy.h"
#include "redirect.h"

static __always_inline int pal_drop(struct pal_ctx *c, const struct pal_flow *f, __u8 dir,
				    __u16 endpoint, __u8 reason)
{
	c->direction = dir;
	c->endpoint = endpoint;
	pal_count(endpoint, dir, 1, f->len);
	pal_emit(c, f, PAL_EVENT_DROP, reason, 0);
	return TC_ACT_SHOT;
}

/* Forwarded packets are counted once: at the pod's own veth, never at the external device. */
static __always_inline int pal_pass(const struct pal_ctx *c, const struct pal_flow *f)
{
	if (c->hook != PAL_HOOK_FROM_NETDEV)
		pal_count(c->endpoint, c->direction, 0, f->len);
	return TC_ACT_OK;
}

static __always_inline int pal_handle(struct __sk_buff *skb, const __u8 hook)
{
	struct pal_flow f = {};
	struct pal_ctx c = { .hook = hook };
	struct pal_decision d = { .verdict = PAL_VERDICT_ALLOW };
	struct pal_endpoint_value *src_ep, *dst_ep;
	int parsed, ct;
	__u32 mark;

	parsed = pal_parse(skb, &f);
	if (parsed == PAL_PARSE_NOT_IP || parsed == PAL_PARSE_ND)
		return TC_ACT_OK;
	c.now = bpf_ktime_get_ns();
	c.direction = hook == PAL_HOOK_FROM_CONTAINER ? PAL_DIR_EGRESS : PAL_DIR_INGRESS;
	if (parsed == PAL_PARSE_MALFORMED)
		return pal_drop(&c, &f, c.direction, 0, PAL_REASON_MALFORMED);

	src_ep = pal_endpoint(f.family, f.saddr);
	dst_ep = pal_endpoint(f.family, f.daddr);
	if (hook == PAL_HOOK_FROM_CONTAINER) {
		/* The pod may only send from its own address, on its own interface. */
		if (!src_ep || (src_ep->ifindex && src_ep->ifindex != skb->ifindex))
			return pal_drop(&c, &f, PAL_DIR_EGRESS, 0, PAL_REASON_SPOOFED_SOURCE);
		c.endpoint = src_ep->id;
	} else {
		/* Only traffic to local pods is ours; from outside, a local source is forged. */
		if (!dst_ep)
			return TC_ACT_OK;
		c.endpoint = dst_ep->id;
		if (hook == PAL_HOOK_FROM_NETDEV && src_ep)
			return pal_drop(&c, &f, PAL_DIR_INGRESS, dst_ep->id,
					PAL_REASON_SPOOFED_SOURCE);
	}
	c.src_identity = pal_identity_of(src_ep, f.family, f.saddr);
	c.dst_identity = pal_identity_of(dst_ep, f.family, f.daddr);

	ct = pal_ct_lookup(&f, c.now);
	if (ct == PAL_CT_REPLY)
		return pal_pass(&c, &f);

	/* The proxies' upstream sockets: policy was applied by the proxy, keep the replies open. */
	mark = skb->mark & PAL_MARK_MASK;
	if (mark == PAL_MARK_FROM_INGRESS_PROXY || mark == PAL_MARK_FROM_EGRESS_PROXY) {
		if (ct == PAL_CT_MISS)
			pal_ct_create(&f, c.now, c.src_identity, c.dst_identity, 0);
		return pal_pass(&c, &f);
	}

	if (hook == PAL_HOOK_FROM_CONTAINER && (src_ep->flags & PAL_EP_EGRESS_ENFORCED)) {
		d = pal_policy_decide(src_ep->id, PAL_DIR_EGRESS, c.dst_identity, f.proto,
				      f.policy_port);
		if (d.verdict == PAL_VERDICT_DENY)
			return pal_drop(&c, &f, PAL_DIR_EGRESS, src_ep->id, d.reason);
	}
	if (dst_ep && (dst_ep->flags & PAL_EP_INGRESS_ENFORCED)) {
		struct pal_decision in = pal_policy_decide(dst_ep->id, PAL_DIR_INGRESS,
							   c.src_identity, f.proto, f.policy_port);
		if (in.verdict == PAL_VERDICT_DENY)
			return pal_drop(&c, &f, PAL_DIR_INGRESS, dst_ep->id, in.reason);
		/* An egress redirect goes first; the ingress L7 rule then sees the proxy's mark. */
		if (d.verdict != PAL_VERDICT_REDIRECT)
			d = in;
	}

	if (d.verdict == PAL_VERDICT_REDIRECT) {
		if (hook == PAL_HOOK_TO_CONTAINER)
			return pal_drop(&c, &f, PAL_DIR_INGRESS, c.endpoint,
					PAL_REASON_REDIRECT_EGRESS);
		if (pal_redirect(skb, &f, d.proxy_port))
			return pal_drop(&c, &f, c.direction, c.endpoint, PAL_REASON_PROXY_MISSING);
	}
	if (ct == PAL_CT_MISS) {
		pal_ct_create(&f, c.now, c.src_identity, c.dst_identity, d.proxy_port);
		pal_emit(&c, &f,
			 d.verdict == PAL_VERDICT_REDIRECT ? PAL_EVENT_REDIRECT : PAL_EVENT_ALLOW,
			 PAL_REASON_NONE, d.proxy_port);
	}
	return pal_pass(&c, &f);
}

#endif
