/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Transparent redirect to a local proxy socket (TC ingress only: bpf_sk_assign is refused at
 * egress). TCP: the packet's own tuple first (an established proxy connection), else the
 * listener on proxy_port. UDP: the proxy's socket on proxy_port. The mark 0x200 | port << 16
 * makes the node's policy routing (fwmark 0x200/0xf00 -> table 2004, local route) deliver it.
 */
#ifndef PALISADE_REDIRECT_H
#define PALISADE_REDIRECT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "parse.h"

static __always_inline __u32 pal_tuple_of(const struct pal_flow *f, struct bpf_sock_tuple *t,
					  __u16 proxy_port, int listener)
{
	__be16 dport = listener ? bpf_htons(proxy_port) : f->dport;

	if (f->family == PAL_FAMILY_V4) {
		t->ipv4.saddr = f->saddr[0];
		t->ipv4.daddr = f->daddr[0];
		t->ipv4.sport = f->sport;
		t->ipv4.dport = dport;
		return sizeof(t->ipv4);
	}
	__builtin_memcpy(t->ipv6.saddr, f->saddr, 16);
	__builtin_memcpy(t->ipv6.daddr, f->daddr, 16);
	t->ipv6.sport = f->sport;
	t->ipv6.dport = dport;
	return sizeof(t->ipv6);
}

/* Returns 0 when the packet was assigned to a proxy socket. */
static __always_inline int pal_redirect(struct __sk_buff *skb, const struct pal_flow *f,
					__u16 proxy_port)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk = 0;
	__u32 len;
	long ret;

	if (f->proto == IPPROTO_TCP) {
		len = pal_tuple_of(f, &t, proxy_port, 0);
		sk = bpf_skc_lookup_tcp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
		if (sk && sk->state == BPF_TCP_LISTEN) {
			bpf_sk_release(sk);
			sk = 0;
		}
		if (!sk) {
			len = pal_tuple_of(f, &t, proxy_port, 1);
			sk = bpf_skc_lookup_tcp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
		}
	} else if (f->proto == IPPROTO_UDP) {
		len = pal_tuple_of(f, &t, proxy_port, 1);
		sk = bpf_sk_lookup_udp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return -1;
	ret = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (ret)
		return -1;
	skb->mark = PAL_MARK_TO_PROXY | ((__u32)proxy_port << 16);
	return 0;
}

#endif
