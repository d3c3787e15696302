/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every map of the datapath. All are pinned by name, so the two objects (lxc.o, netdev.o)
 * share them and a restarted agent finds its entries again.
 */
#ifndef PALISADE_MAPS_H
#define PALISADE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

/* Remote address -> security identity. Longest prefix wins; no match means world. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PAL_IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pal_ipcache_key);
	__type(value, struct pal_ipcache_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_ipcache SEC(".maps");

/* Local endpoint address -> endpoint id, identity, enforcement flags. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PAL_MAX_ENDPOINTS * 4);
	__type(key, struct pal_endpoint_key);
	__type(value, struct pal_endpoint_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_endpoints SEC(".maps");

/*
 * {endpoint, direction, remote identity, proto, port} -> verdict. See pal_policy_key for
 * the prefix layout; lookups are done twice (remote identity, then identity 0 = any).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PAL_POLICY_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pal_policy_key);
	__type(value, struct pal_policy_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_policy SEC(".maps");

/* Connection tracking, keyed in the original direction of each flow. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PAL_CT_MAX);
	__type(key, struct pal_ct_key);
	__type(value, struct pal_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_ct SEC(".maps");

/* Per-endpoint packet and byte counters, indexed by endpoint id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PAL_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct pal_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_counters SEC(".maps");

/* Verdict events for drops and new flows. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PAL_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_events SEC(".maps");

/* Per-CPU token window that bounds the event rate. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pal_ratelimit);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pal_event_rl SEC(".maps");

#endif
