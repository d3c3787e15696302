/* SPDX-License-Identifier: Apache-2.0 */
/* Packet parsing: Ethernet + IPv4/IPv6 + L4 ports into one flat `struct pal_flow`. */
#ifndef PALISADE_PARSE_H
#define PALISADE_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

#define PAL_PARSE_OK 0
#define PAL_PARSE_NOT_IP 1    /* ARP and friends: not ours to judge */
#define PAL_PARSE_MALFORMED 2
#define PAL_PARSE_ND 3        /* IPv6 link control (neighbour discovery, MLD): always passes */

#define PAL_TCP_FIN 0x01
#define PAL_TCP_SYN 0x02
#define PAL_TCP_RST 0x04
#define PAL_TCP_ACK 0x10

struct pal_flow {
	__u32 saddr[4];
	__u32 daddr[4];
	__be16 sport;   /* conntrack tuple ports (ICMP echo: id, see pal_ct_key) */
	__be16 dport;
	__u16 policy_port; /* host order: L4 destination port, or ICMP type */
	__u8 proto;
	__u8 family;
	__u8 tcp_flags;
	__u8 l4_ok;     /* L4 header present (not a non-first fragment) */
	__u16 pad;
	__u32 len;
	__u32 l3_off;
	__u32 l4_off;
};

/* Multicast Listener Query, Report and Done (MLDv1), MLDv2 Report. */
static __always_inline int pal_is_mld(__u8 type)
{
	return type == 130 || type == 131 || type == 132 || type == 143;
}

/* ff02::/16: link-scope multicast, which no router forwards. */
static __always_inline int pal_link_multicast(const struct pal_flow *f)
{
	return (bpf_ntohl(f->daddr[0]) >> 16) == 0xff02;
}

/*
 * MLD reports come behind a hop-by-hop header (Router Alert). Step over that one header when the
 * packet goes to link-scope multicast, so the reports pods send on their own are link control
 * rather than unknown protocol 0 from an unknown (link-local) source.
 */
static __always_inline void pal_skip_hop_by_hop(struct __sk_buff *skb, struct pal_flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *hbh = data + f->l4_off;

	if (f->proto != IPPROTO_HOPOPTS || !pal_link_multicast(f))
		return;
	if ((void *)(hbh + 2) > end)
		return;
	f->proto = hbh[0];
	f->l4_off += ((__u32)hbh[1] + 1) * 8;
}

static __always_inline int pal_parse_l4(struct __sk_buff *skb, struct pal_flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *l4 = data + f->l4_off;

	switch (f->proto) {
	case IPPROTO_TCP:
		if ((void *)(l4 + 14) > end)
			return PAL_PARSE_MALFORMED;
		f->sport = *(__be16 *)l4;
		f->dport = *(__be16 *)(l4 + 2);
		f->tcp_flags = l4[13];
		break;
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		if ((void *)(l4 + 4) > end)
			return PAL_PARSE_MALFORMED;
		f->sport = *(__be16 *)l4;
		f->dport = *(__be16 *)(l4 + 2);
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		if ((void *)(l4 + 8) > end)
			return PAL_PARSE_MALFORMED;
		__u8 type = l4[0];
		__be16 id = *(__be16 *)(l4 + 4);
		f->policy_port = type;
		/* Echo request: id as source "port"; echo reply: id as destination. */
		if (type == 8 || type == 128)
			f->sport = id;
		else if (type == 0 || type == 129)
			f->dport = id;
		if (f->proto == IPPROTO_ICMPV6 && type >= 133 && type <= 137)
			return PAL_PARSE_ND;
		if (f->proto == IPPROTO_ICMPV6 && pal_is_mld(type) && pal_link_multicast(f))
			return PAL_PARSE_ND;
		return PAL_PARSE_OK;
	}
	default:
		return PAL_PARSE_OK;
	}
	f->policy_port = bpf_ntohs(f->dport);
	return PAL_PARSE_OK;
}

static __always_inline int pal_parse(struct __sk_buff *skb, struct pal_flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return PAL_PARSE_NOT_IP;
	f->len = skb->len;
	f->l3_off = sizeof(*eth);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return PAL_PARSE_MALFORMED;
		if (ip->ihl < 5)
			return PAL_PARSE_MALFORMED;
		f->family = PAL_FAMILY_V4;
		f->saddr[0] = ip->saddr;
		f->daddr[0] = ip->daddr;
		f->proto = ip->protocol;
		f->l4_off = f->l3_off + ip->ihl * 4;
		/* Non-first fragments carry no L4 header: ports stay 0. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return PAL_PARSE_OK;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return PAL_PARSE_MALFORMED;
		f->family = PAL_FAMILY_V6;
		__builtin_memcpy(f->saddr, &ip6->saddr, 16);
		__builtin_memcpy(f->daddr, &ip6->daddr, 16);
		/* Extension headers are not walked: their next-header value is the "protocol". */
		f->proto = ip6->nexthdr;
		f->l4_off = f->l3_off + sizeof(*ip6);
		pal_skip_hop_by_hop(skb, f);
	} else {
		return PAL_PARSE_NOT_IP;
	}
	f->l4_ok = 1;
	return pal_parse_l4(skb, f);
}

#endif
