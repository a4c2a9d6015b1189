/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* sluice-decap's maps (one set per interface, pinned by the command). */
#ifndef SLUICE_XDP_DECAP_MAPS_BPF_H
#define SLUICE_XDP_DECAP_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_decap.h"

/* Outer destinations this interface decapsulates for. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_DECAP_MAX_ADDRESSES);
	__type(key, struct sluice_decap_addr_key);
	__type(value, struct sluice_decap_addr);
} decap_addresses SEC(".maps");

/* Outer sources this interface decapsulates from (the balancers' encap sources). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_DECAP_MAX_SOURCES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_decap_source4_key);
	__type(value, struct sluice_decap_source);
} decap_sources_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_DECAP_MAX_SOURCES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_decap_source6_key);
	__type(value, struct sluice_decap_source);
} decap_sources_v6 SEC(".maps");

/* One slot per enum sluice_decap_outcome (and spare slots for later ones). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_DECAP_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_decap_counter);
} decap_counters SEC(".maps");
_Static_assert(SLUICE_DECAP_OUTCOME_COUNT <= SLUICE_DECAP_COUNTER_SLOTS, "one counter slot per outcome");

#endif /* SLUICE_XDP_DECAP_MAPS_BPF_H */
