/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The filter's state maps that the egress observer (egress_observer.bpf.c)
 * shares with the filter stage: settings, conntrack's clock and its tables.
 * User space loads the observer with the XDP object's map fds
 * (bpf_map__reuse_fd), so both programs work on the very same maps.
 */
#ifndef SLUICE_XDP_FILTER_STATE_MAPS_BPF_H
#define SLUICE_XDP_FILTER_STATE_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_filter_settings);
} filter_settings SEC(".maps");

/* The coarse time of the current jiffy, per CPU (ct_now in filter_conntrack.h). Kernel-only. */
struct sluice_ct_clock {
	__u64 jiffies;
	__u64 now_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_ct_clock);
} filter_ct_clock SEC(".maps");

/*
 * Connection tracking, one table per family: IPv4 flows under a 16-byte
 * key (the hash and the key compare of every lookup read 16 bytes, not 40),
 * IPv6 flows under the full key. Each holds SLUICE_FILTER_CONNTRACK_ENTRIES.
 * A shared LRU list, not BPF_F_NO_COMMON_LRU: per-CPU lists would split the
 * capacity by CPU and evict a flow whose packets arrive on a busy CPU while
 * other CPUs' lists hold idle ones.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_FILTER_CONNTRACK_ENTRIES);
	__type(key, struct sluice_ct_v4_key);
	__type(value, struct sluice_ct_entry);
} filter_conntrack_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_FILTER_CONNTRACK_ENTRIES);
	__type(key, struct sluice_ct_key);
	__type(value, struct sluice_ct_entry);
} filter_conntrack SEC(".maps");

/*
 * Unreplied flows: created by a pass-and-track rule, no valid reply seen
 * yet. Apart from the replied tables above, so a flood of spoofed openings
 * (which never get a reply) evicts only other unreplied entries, never an
 * established flow; a valid reply moves the entry into the replied table.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_FILTER_CT_UNREPLIED_ENTRIES);
	__type(key, struct sluice_ct_v4_key);
	__type(value, struct sluice_ct_entry);
} filter_ct_unreplied_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_FILTER_CT_UNREPLIED_ENTRIES);
	__type(key, struct sluice_ct_key);
	__type(value, struct sluice_ct_entry);
} filter_ct_unreplied SEC(".maps");

#endif /* SLUICE_XDP_FILTER_STATE_MAPS_BPF_H */
