// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The sluice data plane: the entry program attached to each interface and
 * the stage programs it tail-calls through stage_progs.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

#include "sluice_maps.h"
#include "maps.bpf.h"
#include "parsing.h"
#include "pipeline.h"
#include "entry.h"
#include "stage_filter.h"
#include "lb_maps.bpf.h"
#include "stage_lb.h"
#include "stage_forward.h"

/* Dispatcher metadata for libxdp on kernels that can run its dispatcher. */
struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(sluice_entry);

SEC("xdp")
int sluice_entry(struct xdp_md *ctx)
{
	return pipeline_entry(ctx);
}

SEC("xdp")
int sluice_filter(struct xdp_md *ctx)
{
	return stage_filter(ctx);
}

SEC("xdp")
int sluice_lb(struct xdp_md *ctx)
{
	return stage_lb(ctx);
}

SEC("xdp")
int sluice_forward(struct xdp_md *ctx)
{
	return stage_forward(ctx);
}

char _license[] SEC("license") = "GPL";
