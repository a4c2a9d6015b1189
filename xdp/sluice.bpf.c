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
#include "stage_filter.h"
#include "stage_lb.h"
#include "stage_forward.h"

/* Dispatcher metadata for libxdp on kernels that can run its dispatcher. */
struct {
	__uint(priority, 10);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(sluice_entry);

static __always_inline int is_parse_failure(int reason)
{
	return reason != SLUICE_PARSE_OK && reason != SLUICE_REASON_NON_IP;
}

SEC("xdp")
int sluice_entry(struct xdp_md *ctx)
{
	const struct sluice_config *cfg = pipeline_config();
	struct sluice_pkt *pkt = pipeline_pkt();
	int reason;

	if (!pkt)
		return pipeline_finish(ctx, SLUICE_VERDICT_ABORTED, SLUICE_REASON_NO_SCRATCH);

	reason = parse_packet(ctx, pkt);
	if (reason == SLUICE_REASON_NON_IP)
		return pipeline_finish(ctx, cfg->non_ip_verdict, SLUICE_REASON_NON_IP);
	if (is_parse_failure(reason))
		return pipeline_finish(ctx, cfg->malformed_verdict, reason);
	if (pkt->frag != SLUICE_FRAG_NONE && cfg->drop_fragments)
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_FRAGMENT_DROPPED);
	return pipeline_next(ctx, cfg, pkt, -1);
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
