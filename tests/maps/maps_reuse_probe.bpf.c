// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* A minimal object for the reuse_pinned / from_skeleton tests: one hash map
 * and a program that uses it, opened but not loaded until the test says so. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} probe_table SEC(".maps");

SEC("xdp")
int probe_prog(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&probe_table, &key);

	return value ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
