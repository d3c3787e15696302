// SPDX-License-Identifier: GPL-2.0
/*
 * Program on the node's external interface, TC ingress: traffic from other nodes or the
 * world to local pods. Applies the destination's ingress policy here, where an ingress L7
 * redirect (bpf_sk_assign) is still possible.
 */
#include "lib/datapath.h"

SEC("classifier/from_netdev")
int from_netdev(struct __sk_buff *skb)
{
	return pal_handle(skb, PAL_HOOK_FROM_NETDEV);
}

char LICENSE[] SEC("license") = "GPL";
