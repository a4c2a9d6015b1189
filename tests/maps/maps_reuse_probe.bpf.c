// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* A minimal object for the reuse_pinned / from_skeleton tests: two hash maps
 * and a program that uses them, opened but not loaded until the test says so.
 * probe_pairs has a struct value whose layout the layout-identity tests vary. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} probe_table SEC(".maps");

struct probe_pair {
	__u32 packets;
	__u32 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct probe_pair);
} probe_pairs SEC(".maps");

SEC("xdp")
int probe_prog(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&probe_table, &key);
	struct probe_pair *pair = bpf_map_lookup_elem(&probe_pairs, &key);

	return value || (pair && pair->packets) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
