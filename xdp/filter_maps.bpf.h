/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Maps of the filter stage. Rule-set maps carry the generation in their key
 * (see sluice_maps.h): user space fills the idle generation and flips
 * filter_generation. State maps (conntrack, rate buckets) have none.
 */
#ifndef SLUICE_XDP_FILTER_MAPS_BPF_H
#define SLUICE_XDP_FILTER_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "dir24_8.h"
#include "filter_state_maps.bpf.h"

/* The live generation: the one u32 whose write makes a new rule set live. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} filter_generation SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS);
	__type(key, __u32);
	__type(value, struct sluice_filter_set);
} filter_sets SEC(".maps");

/* Prefix lists (blocklist/allowlist/rate-limited sources). Both generations may be full during a swap. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_MAX_V4_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_filter_v4_key);
	__type(value, struct sluice_filter_verdict);
} filter_prefix_v4 SEC(".maps");

/*
 * The same prefixes as filter_prefix_v4 as DIR-24-8, slot = generation,
 * plugged only while that generation lists at least the threshold of IPv4
 * prefixes (sluice_maps.h); an empty slot: packets read the trie.
 */
SLUICE_DIR24_8_SLOT_MAPS(fsrc4, SLUICE_FILTER_GENERATIONS);

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_MAX_V6_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_filter_v6_key);
	__type(value, struct sluice_filter_verdict);
} filter_prefix_v6 SEC(".maps");

/* Rule prefixes -> bitmap of every rule whose prefix covers the key (a rule can have two prefixes). */
#define SLUICE_FILTER_RULE_PREFIX_ENTRIES (SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_MAX_RULES)
#define SLUICE_FILTER_RULE_PREFIX_TRIE(name, key_type)                         \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                           \
		__uint(max_entries, SLUICE_FILTER_RULE_PREFIX_ENTRIES);        \
		__uint(map_flags, BPF_F_NO_PREALLOC);                          \
		__type(key, key_type);                                         \
		__type(value, struct sluice_filter_bitmap);                    \
	} name SEC(".maps")

SLUICE_FILTER_RULE_PREFIX_TRIE(filter_src_v4, struct sluice_filter_v4_key);
SLUICE_FILTER_RULE_PREFIX_TRIE(filter_dst_v4, struct sluice_filter_v4_key);
SLUICE_FILTER_RULE_PREFIX_TRIE(filter_src_v6, struct sluice_filter_v6_key);
SLUICE_FILTER_RULE_PREFIX_TRIE(filter_dst_v6, struct sluice_filter_v6_key);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_MAX_IFINDEX_KEYS);
	__type(key, struct sluice_filter_ifindex_key);
	__type(value, struct sluice_filter_bitmap);
} filter_ifindex SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_ANY_COUNT);
	__type(key, __u32);
	__type(value, struct sluice_filter_bitmap);
} filter_any_bitmaps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_BYTE_COUNT * SLUICE_FILTER_BYTE_VALUES);
	__type(key, __u32);
	__type(value, struct sluice_filter_bitmap);
} filter_byte_bitmaps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_PORT_DIRS);
	__type(key, __u32);
	__type(value, struct sluice_filter_port_bounds);
} filter_port_bounds SEC(".maps");

/* Port -> elementary interval, per generation and direction (128 KiB each). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_PORT_DIRS);
	__type(key, __u32);
	__type(value, struct sluice_filter_port_index);
} filter_port_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_PORT_DIRS * SLUICE_FILTER_MAX_PORT_INTERVALS);
	__type(key, __u32);
	__type(value, struct sluice_filter_bitmap);
} filter_port_bitmaps SEC(".maps");

/* Action of the rule at position i: filter_rules[gen * MAX_RULES + i] */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_MAX_RULES);
	__type(key, __u32);
	__type(value, struct sluice_filter_verdict);
} filter_rules SEC(".maps");

/* Hits of the rule at position i, same index as filter_rules */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_MAX_RULES);
	__type(key, __u32);
	__type(value, struct sluice_counter);
} filter_rule_counters SEC(".maps");

/* Events outside the verdict counters (enum sluice_filter_event_slot); packets = events, bytes = frame bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_FILTER_EVENT_SLOTS);
	__type(key, __u32);
	__type(value, struct sluice_counter);
} filter_event_counters SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_GENERATIONS * SLUICE_FILTER_MAX_RATE_CLASSES);
	__type(key, __u32);
	__type(value, struct sluice_filter_rate_class);
} filter_rate_classes SEC(".maps");

/* State: survives rule-set swaps. LRU: a full table evicts, never fails a packet. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_FILTER_RATE_BUCKETS);
	__type(key, struct sluice_filter_rate_key);
	__type(value, struct sluice_filter_rate_bucket);
} filter_rate_buckets SEC(".maps");

/* Locks of the buckets above (a stripe per key hash): the LRU hash cannot hold a bpf_spin_lock itself. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_RATE_LOCKS);
	__type(key, __u32);
	__type(value, struct sluice_filter_rate_lock);
} filter_rate_locks SEC(".maps");

/* State: one bucket per class shared by all its sources (the cap on a flood from many sources). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_FILTER_MAX_RATE_CLASSES);
	__type(key, __u32);
	__type(value, struct sluice_filter_rate_aggregate);
} filter_rate_aggregates SEC(".maps");

#endif /* SLUICE_XDP_FILTER_MAPS_BPF_H */
