// SPDX-License-Identifier: GPL-2.0
/*
 * Programs on each endpoint's host-side veth.
 *   from_container: TC ingress = the pod's egress (source egress + local destination ingress
 *                   policy, L7 redirect possible here).
 *   to_container:   TC egress = the pod's ingress (ingress policy; redirect impossible, so a
 *                   redirect verdict for unmarked traffic is a drop).
 */
#include "lib/datapath.h"

SEC("classifier/from_container")
int from_container(struct __sk_buff *skb)
{
	return pal_handle(skb, PAL_HOOK_FROM_CONTAINER);
}

SEC("classifier/to_container")
int to_container(struct __sk_buff *skb)
{
	return pal_handle(skb, PAL_HOOK_TO_CONTAINER);
}

char LICENSE[] SEC("license") = "GPL";
