/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The forward stage's maps. Key/value types come from the contract
 * (maps/sluice_maps.h, forward section); user space reaches them only
 * through control/route/route_table.hpp.
 */
#ifndef SLUICE_XDP_FORWARD_MAPS_BPF_H
#define SLUICE_XDP_FORWARD_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "dir24_8.h"

/* Destination prefix -> route value (SLUICE_FWD_ROUTE_VALUE): the source of truth. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_FWD_MAX_V4_ROUTES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_lpm_v4_key);
	__type(value, __u32);
} fwd_routes_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_FWD_MAX_V6_ROUTES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_lpm_v6_key);
	__type(value, __u32);
} fwd_routes_v6 SEC(".maps");

/*
 * The IPv4 DIR-24-8 copy of fwd_routes_v4, created by user space only when
 * it pays (sluice_maps.h): one slot, empty = read the trie (xdp/dir24_8.h,
 * on-demand instances).
 */
SLUICE_DIR24_8_SLOT_MAPS(fwd_dir4, 1);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FWD_MAX_NEXTHOPS);
	__type(key, __u32);
	__type(value, struct sluice_fwd_nexthop);
} fwd_nexthops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FWD_MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct sluice_fwd_group);
} fwd_groups SEC(".maps");

/*
 * Egress ports, a slot per interface a next hop leaves through. No egress
 * program in the entries: the stage rewrites both MACs from the next hop
 * before the redirect, so a second program run per packet (and kernel 5.8+
 * for devmap programs) would buy nothing.
 */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, SLUICE_FWD_MAX_PORTS);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} fwd_ports SEC(".maps");

/* Local traffic spread over CPUs (key = CPU number; user space fills the configured set). */
struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, SLUICE_FWD_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} fwd_cpus SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_fwd_settings);
} fwd_settings SEC(".maps");

/* Packets/bytes per route counter slot (slot 0: routes without one) and per next hop. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_FWD_ROUTE_COUNTERS);
	__type(key, __u32);
	__type(value, struct sluice_counter);
} fwd_route_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_FWD_MAX_NEXTHOPS);
	__type(key, __u32);
	__type(value, struct sluice_counter);
} fwd_nexthop_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_FWD_EVENT_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_counter);
} fwd_event_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_fwd_icmp_bucket);
} fwd_icmp_bucket SEC(".maps");

#endif /* SLUICE_XDP_FORWARD_MAPS_BPF_H */
