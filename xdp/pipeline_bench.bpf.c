// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The pipeline's own cost, for bench/pipeline_bench: the product's entry
 * program and tail-call machinery with three stages that only pass the
 * packet on, whatever the real stages grow into.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "maps.bpf.h"
#include "entry.h"

SEC("xdp")
int bench_entry(struct xdp_md *ctx)
{
	return pipeline_entry(ctx);
}

SEC("xdp")
int bench_stage_filter(struct xdp_md *ctx)
{
	return pipeline_pass_through(ctx, SLUICE_STAGE_FILTER);
}

SEC("xdp")
int bench_stage_lb(struct xdp_md *ctx)
{
	return pipeline_pass_through(ctx, SLUICE_STAGE_LB);
}

SEC("xdp")
int bench_stage_forward(struct xdp_md *ctx)
{
	return pipeline_pass_through(ctx, SLUICE_STAGE_FORWARD);
}

char _license[] SEC("license") = "GPL";
