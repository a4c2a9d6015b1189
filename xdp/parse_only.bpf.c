// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The bare parser, for benchmarks: parse into a per-CPU slot and drop. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "parsing.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_pkt);
} parse_scratch SEC(".maps");

SEC("xdp")
int parse_only(struct xdp_md *ctx)
{
	__u32 slot = 0;
	struct sluice_pkt *pkt = bpf_map_lookup_elem(&parse_scratch, &slot);

	if (!pkt)
		return XDP_ABORTED;
	return parse_packet(ctx, pkt) == SLUICE_PARSE_OK ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
