/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The lb stage's maps. Key/value types come from the contract
 * (maps/sluice_maps.h); user space reaches them only through
 * control/lb/lb_table.hpp.
 */
#ifndef SLUICE_XDP_LB_MAPS_BPF_H
#define SLUICE_XDP_LB_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"

/* (address, port, protocol) -> VIP; port 0 keys a port-less VIP. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_LB_MAX_VIPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_lb_vip_key);
	__type(value, struct sluice_lb_vip);
} lb_vips SEC(".maps");

/*
 * One Maglev table per VIP (layout at SLUICE_LB_MAGLEV_SIZE_SLOT). Inner
 * arrays may differ in size (BPF_F_INNER_MAP): a VIP's table size is its own.
 */
struct sluice_lb_maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1 + SLUICE_LB_MAGLEV_SIZE_DEFAULT);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, SLUICE_LB_MAX_VIPS);
	__type(key, __u32);
	__array(values, struct sluice_lb_maglev_table);
} lb_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct sluice_lb_backend);
} lb_backends SEC(".maps");

/* Connections, per family; sized at load (LoadOptions::lb_conn_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_LB_CONN_ENTRIES_DEFAULT);
	__type(key, struct sluice_lb_flow_v4_key);
	__type(value, struct sluice_lb_conn);
} lb_conns_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_LB_CONN_ENTRIES_DEFAULT);
	__type(key, struct sluice_lb_flow_key);
	__type(value, struct sluice_lb_conn);
} lb_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_lb_settings);
} lb_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_LB_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct sluice_lb_counter);
} lb_vip_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct sluice_lb_counter);
} lb_backend_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_LB_EVENT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} lb_event_counters SEC(".maps");

/* Per-CPU bucket of the too-big answers (xdp/icmp_guard.h; the forward stage has its own). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_fwd_icmp_bucket);
} lb_icmp_bucket SEC(".maps");

/* SLUICE_LB_EGRESS_REDIRECT: slot 0 is the egress port. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} lb_egress_ports SEC(".maps");

#endif /* SLUICE_XDP_LB_MAPS_BPF_H */
