/* SPDX-License-Identifier: Apache-2.0 */
/* Address lookups: local endpoints (exact) and the ipcache (longest prefix, default world). */
#ifndef PALISADE_LOOKUP_H
#define PALISADE_LOOKUP_H

#include "maps.h"

static __always_inline struct pal_endpoint_value *pal_endpoint(__u8 family, const __u32 *addr)
{
	struct pal_endpoint_key k = { .family = family };

	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&pal_endpoints, &k);
}

static __always_inline __u32 pal_ipcache_identity(__u8 family, const __u32 *addr)
{
	struct pal_ipcache_key k = { .prefixlen = 32 + 128, .family = family };
	struct pal_ipcache_value *v;

	__builtin_memcpy(k.addr, addr, 16);
	v = bpf_map_lookup_elem(&pal_ipcache, &k);
	return v ? v->identity : PAL_ID_WORLD;
}

/* A local endpoint's identity wins over the ipcache (they agree when the agent is consistent). */
static __always_inline __u32 pal_identity_of(struct pal_endpoint_value *ep, __u8 family,
					     const __u32 *addr)
{
	return ep ? ep->identity : pal_ipcache_identity(family, addr);
}

#endif
