// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The product's entry program and bank machinery (entry.h, pipeline.h) with
 * three stages that stamp their load's version into stage_trace before
 * passing the packet on. Two loads sharing every map (versions 1 and 2) show
 * which build's stages a packet ran: all of one, or a mix.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "maps.bpf.h"
#include "entry.h"

/* Set before load; one value per load. */
const volatile __u32 probe_version = 0;

/* Slot = stage: the version of the stage program that ran last in it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_STAGE_COUNT);
	__type(key, __u32);
	__type(value, __u32);
} stage_trace SEC(".maps");

static __always_inline int probe_stage(struct xdp_md *ctx, __u32 stage)
{
	__u32 *seen = bpf_map_lookup_elem(&stage_trace, &stage);

	if (seen)
		*seen = probe_version;
	return pipeline_pass_through(ctx, stage);
}

SEC("xdp")
int probe_entry(struct xdp_md *ctx)
{
	return pipeline_entry(ctx);
}

SEC("xdp")
int probe_filter(struct xdp_md *ctx)
{
	return probe_stage(ctx, SLUICE_STAGE_FILTER);
}

SEC("xdp")
int probe_lb(struct xdp_md *ctx)
{
	return probe_stage(ctx, SLUICE_STAGE_LB);
}

SEC("xdp")
int probe_forward(struct xdp_md *ctx)
{
	return probe_stage(ctx, SLUICE_STAGE_FORWARD);
}

char _license[] SEC("license") = "GPL";
