/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Maps of the pipeline shared by every stage. Defined BTF-style so that
 * `bpftool map dump` shows field names. Key/value types come from the
 * contract, maps/sluice_maps.h.
 */
#ifndef SLUICE_XDP_MAPS_BPF_H
#define SLUICE_XDP_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"

/* Stage programs, indexed by enum sluice_stage. Filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SLUICE_STAGE_COUNT);
	__type(key, __u32);
	__type(value, __u32);
} stage_progs SEC(".maps");

/* Bank 1 of the stage programs (stage_progs is bank 0); see SLUICE_STAGE_BANKS. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SLUICE_STAGE_COUNT);
	__type(key, __u32);
	__type(value, __u32);
} stage_progs_b1 SEC(".maps");

/* One slot: the live bank of stage programs, read once per packet by the entry program. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} stage_bank SEC(".maps");

/* One slot: what every packet consults. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_config);
} config SEC(".maps");

/* The parse result handed down the tail-call chain (same CPU throughout). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_pkt);
} pkt_scratch SEC(".maps");

/* Packets and bytes per (verdict, reason): index verdict * SLUICE_REASON_MAX + reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_counter);
} verdict_counters SEC(".maps");

/* Sampled drop events for user space. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SLUICE_DROP_EVENTS_BYTES);
} drop_events SEC(".maps");

#endif /* SLUICE_XDP_MAPS_BPF_H */
