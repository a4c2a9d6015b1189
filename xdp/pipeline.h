/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The tail-call pipeline: entry -> filter -> lb -> forward. Every stage ends
 * either with a verdict (pipeline_finish, which counts it) or by handing
 * the packet to the next enabled stage (pipeline_next).
 */
#ifndef SLUICE_XDP_PIPELINE_H
#define SLUICE_XDP_PIPELINE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "maps.bpf.h"

/*
 * Used until user space writes the config slot: pass everything through.
 * A global (not static) const lands in .rodata, which libbpf turns into a
 * frozen array; a static one would land in .rodata.cst32, which it refuses.
 */
const volatile struct sluice_config sluice_default_config = {
	.version = SLUICE_CONFIG_VERSION,
	.stages_enabled = SLUICE_STAGES_ALL,
	.default_verdict = SLUICE_VERDICT_PASS,
	.tail_call_fail_verdict = SLUICE_VERDICT_PASS,
	.malformed_verdict = SLUICE_VERDICT_DROP,
	.non_ip_verdict = SLUICE_VERDICT_PASS,
	.drop_fragments = 0,
};

static __always_inline const struct sluice_config *pipeline_config(void)
{
	__u32 slot = 0;
	const struct sluice_config *cfg = bpf_map_lookup_elem(&config, &slot);

	if (!cfg || cfg->version != SLUICE_CONFIG_VERSION)
		return (const struct sluice_config *)&sluice_default_config;
	return cfg;
}

static __always_inline struct sluice_pkt *pipeline_pkt(void)
{
	__u32 slot = 0;

	return bpf_map_lookup_elem(&pkt_scratch, &slot);
}

static __always_inline void count_verdict(struct xdp_md *ctx, __u32 verdict, __u32 reason)
{
	__u32 idx = verdict * SLUICE_REASON_MAX + reason;
	struct sluice_counter *ctr;

	if (idx >= SLUICE_COUNTER_SLOTS)
		return;
	ctr = bpf_map_lookup_elem(&verdict_counters, &idx);
	if (!ctr)
		return;
	ctr->packets++;
	ctr->bytes += ctx->data_end - ctx->data;
}

/* The single exit of the pipeline: every packet is counted exactly once. */
static __always_inline int pipeline_finish(struct xdp_md *ctx, __u32 verdict, __u32 reason)
{
	if (verdict >= SLUICE_VERDICT_COUNT || reason >= SLUICE_REASON_MAX) {
		verdict = SLUICE_VERDICT_ABORTED;
		reason = SLUICE_REASON_BAD_VERDICT;
	}
	count_verdict(ctx, verdict, reason);
	return verdict;
}

/*
 * Tail-call the first enabled stage after `done` (-1: none done yet). The
 * loop is unrolled so each bpf_tail_call has a constant slot, which the
 * verifier turns into a direct jump. A failed tail call (empty slot) falls
 * through to the configured fail-open / fail-closed verdict.
 */
static __always_inline int pipeline_next(struct xdp_md *ctx, const struct sluice_config *cfg,
					  const struct sluice_pkt *pkt, int done)
{
#pragma unroll
	for (int stage = 0; stage < SLUICE_STAGE_COUNT; stage++) {
		if (stage <= done || !(cfg->stages_enabled & SLUICE_STAGE_BIT(stage)))
			continue;
		bpf_tail_call(ctx, &stage_progs, stage);
		return pipeline_finish(ctx, cfg->tail_call_fail_verdict,
				       SLUICE_REASON_TAIL_CALL_FAILED);
	}
	return pipeline_finish(ctx, cfg->default_verdict, pkt->note);
}

#endif /* SLUICE_XDP_PIPELINE_H */
