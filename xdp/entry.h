/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The entry program's logic: parse once, apply the parse-level policies
 * (non-IP, malformed, fragments), then hand the packet down the pipeline.
 * One definition for the product and for the pipeline benchmark object.
 */
#ifndef SLUICE_XDP_ENTRY_H
#define SLUICE_XDP_ENTRY_H

#include "parsing.h"
#include "pipeline.h"

static __always_inline int is_parse_failure(int reason)
{
	return reason != SLUICE_PARSE_OK && reason != SLUICE_REASON_NON_IP;
}

static __always_inline int pipeline_entry(struct xdp_md *ctx)
{
	const struct sluice_config *cfg = pipeline_config();
	struct sluice_pkt *pkt = pipeline_pkt();
	int reason;

	if (!pkt)
		return pipeline_finish(ctx, SLUICE_VERDICT_ABORTED, SLUICE_REASON_NO_SCRATCH);

	reason = parse_packet(ctx, pkt);
	if (reason == SLUICE_REASON_NON_IP)
		return pipeline_finish_policy(ctx, cfg->non_ip_verdict, SLUICE_REASON_NON_IP);
	if (is_parse_failure(reason))
		return pipeline_finish_policy(ctx, cfg->malformed_verdict, reason);
	if (pkt->frag != SLUICE_FRAG_NONE && cfg->drop_fragments)
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_FRAGMENT_DROPPED);
	/* Every stage of this packet comes from the bank read here (an upgrade flips it between packets). */
	pkt->stage_bank = pipeline_live_bank();
	return pipeline_next(ctx, cfg, pkt, -1);
}

#endif /* SLUICE_XDP_ENTRY_H */
