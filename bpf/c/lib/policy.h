/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy lookup for one endpoint and direction. Two LPM lookups: the remote identity and the
 * wildcard identity 0. A deny in either wins. Otherwise the entry with the longer
 * protocol/port prefix wins, ties go to the specific identity. That yields Cilium's order:
 * L3+L4 > L4-only (any identity) > L3-only > allow-all. Userspace already turns an allow
 * that a broader deny of the same identity covers into a deny, because a single LPM lookup
 * only ever returns the longest match.
 */
#ifndef PALISADE_POLICY_H
#define PALISADE_POLICY_H

#include "maps.h"

struct pal_decision {
	__u8 verdict;     /* PAL_VERDICT_* */
	__u8 reason;      /* PAL_REASON_* when dropped */
	__u16 proxy_port; /* redirect target */
};

static __always_inline struct pal_policy_value *pal_policy_get(__u16 endpoint, __u8 dir,
							       __u32 identity, __u8 proto,
							       __u16 port)
{
	struct pal_policy_key k = {
		.prefixlen = PAL_POLICY_FULL_BITS,
		.endpoint = endpoint,
		.direction = dir,
		.identity = identity,
		.proto = proto,
		.port = bpf_htons(port),
	};

	return bpf_map_lookup_elem(&pal_policy, &k);
}

static __always_inline struct pal_decision pal_policy_decide(__u16 endpoint, __u8 dir,
							     __u32 identity, __u8 proto,
							     __u16 port)
{
	struct pal_decision d = { .verdict = PAL_VERDICT_DENY, .reason = PAL_REASON_POLICY_DEFAULT };
	struct pal_policy_value *spec = pal_policy_get(endpoint, dir, identity, proto, port);
	struct pal_policy_value *any = pal_policy_get(endpoint, dir, PAL_ID_ANY, proto, port);
	struct pal_policy_value *win;

	if ((spec && spec->verdict == PAL_VERDICT_DENY) ||
	    (any && any->verdict == PAL_VERDICT_DENY)) {
		d.reason = PAL_REASON_POLICY_DENY;
		return d;
	}
	if (spec && any)
		win = any->specificity > spec->specificity ? any : spec;
	else
		win = spec ? spec : any;
	if (!win)
		return d;
	d.verdict = win->verdict;
	d.reason = PAL_REASON_NONE;
	d.proxy_port = win->verdict == PAL_VERDICT_REDIRECT ? win->proxy_port : 0;
	return d;
}

#endif
