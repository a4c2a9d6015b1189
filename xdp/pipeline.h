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
	.end_verdict = SLUICE_VERDICT_PASS,
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

/*
 * The parse result of the packet in flight on this CPU. The stages of one
 * packet run back to back by tail calls on one CPU, and XDP runs in softirq
 * (native and generic alike), where no other XDP packet can start on that
 * CPU before this one finishes: one slot per CPU is enough. Stage programs
 * must only be reached through the entry program's tail calls.
 * Not on PREEMPT_RT: there softirqs run in preemptible threads, and a second
 * packet on the same CPU could overwrite the slot between two stages of the
 * first. User space refuses to attach to such a kernel (attach_xdp in
 * control/dataplane/xdp_attachment.cpp).
 */
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
 * A verdict taken from the config (a policy): user space writes only pass
 * or drop. Any other value is corrupt state, not an action to take (TX
 * would bounce the packet back out of the port it came in on).
 */
static __always_inline int pipeline_finish_policy(struct xdp_md *ctx, __u32 verdict, __u32 reason)
{
	if (verdict != SLUICE_VERDICT_PASS && verdict != SLUICE_VERDICT_DROP)
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
	return pipeline_finish(ctx, verdict, reason);
}

/*
 * A tail call whose slot the verifier sees as a constant at this very call
 * instruction, so the JIT patches it into a direct jump (free here) instead
 * of an indirect one through a retpoline (~13 ns here). Plain bpf_tail_call
 * is not enough: clang merges the call sites of an unrolled loop into one
 * call with a computed slot. The asm pins ctx, map and the literal slot into
 * r1-r3 at each site; a macro because "i" needs a literal, not a parameter.
 * "memory": a successful tail call never returns, and the next program reads
 * the per-CPU parse slot (and maps) that this one wrote; without the clobber
 * clang may keep such stores in registers or sink them past the call.
 */
#define TAIL_CALL_CONSTANT_SLOT(ctx, prog_array, slot)                         \
	asm volatile("r1 = %[ctx_reg]\n\t"                                      \
		     "r2 = %[map_reg]\n\t"                                      \
		     "r3 = %[slot_imm]\n\t"                                     \
		     "call 12\n\t" /* BPF_FUNC_tail_call */                     \
		     :                                                         \
		     : [ctx_reg] "r"(ctx), [map_reg] "r"(prog_array),          \
		       [slot_imm] "i"(slot)                                    \
		     : "r0", "r1", "r2", "r3", "r4", "r5", "memory")

/*
 * Hand the packet to `stage` of `bank` (a prog array) if it comes after
 * `done` and is enabled. A tail call that returns means the slot is empty:
 * the configured fail-open / fail-closed verdict applies.
 */
#define PIPELINE_TRY_STAGE(ctx, cfg, done, stage, bank)                        \
	do {                                                                   \
		if ((stage) > (done) &&                                        \
		    ((cfg)->stages_enabled & SLUICE_STAGE_BIT(stage))) {       \
			TAIL_CALL_CONSTANT_SLOT(ctx, bank, stage);             \
			return pipeline_finish_policy(ctx, (cfg)->tail_call_fail_verdict, \
						      SLUICE_REASON_TAIL_CALL_FAILED); \
		}                                                              \
	} while (0)

/*
 * The live bank of stage programs (SLUICE_STAGE_BANKS), read once per packet
 * by the entry program; the stages follow the packet's copy. Out of range
 * (only a corrupt map holds one): SLUICE_STAGE_BANKS, which drops.
 */
static __always_inline __u32 pipeline_live_bank(void)
{
	__u32 slot = 0;
	const __u32 *bank = bpf_map_lookup_elem(&stage_bank, &slot);

	if (!bank || *bank >= SLUICE_STAGE_BANKS)
		return SLUICE_STAGE_BANKS;
	return *bank;
}

/*
 * Tail-call the first enabled stage after `done` (-1: none done yet) from the
 * packet's bank. One branch per bank keeps map and slot constant at every
 * call site (the direct tail call of TAIL_CALL_CONSTANT_SLOT).
 */
static __always_inline int pipeline_next(struct xdp_md *ctx, const struct sluice_config *cfg,
					  const struct sluice_pkt *pkt, int done)
{
	_Static_assert(SLUICE_STAGE_COUNT == 3, "pipeline_next tries every stage");
	_Static_assert(SLUICE_STAGE_BANKS == 2, "pipeline_next has a branch per bank");
	if (pkt->stage_bank == 0) {
		PIPELINE_TRY_STAGE(ctx, cfg, done, SLUICE_STAGE_FILTER, &stage_progs);
		PIPELINE_TRY_STAGE(ctx, cfg, done, SLUICE_STAGE_LB, &stage_progs);
		PIPELINE_TRY_STAGE(ctx, cfg, done, SLUICE_STAGE_FORWARD, &stage_progs);
	} else if (pkt->stage_bank == 1) {
		PIPELINE_TRY_STAGE(ctx, cfg, done, SLUICE_STAGE_FILTER, &stage_progs_b1);
		PIPELINE_TRY_STAGE(ctx, cfg, done, SLUICE_STAGE_LB, &stage_progs_b1);
		PIPELINE_TRY_STAGE(ctx, cfg, done, SLUICE_STAGE_FORWARD, &stage_progs_b1);
	} else {
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_BAD_STAGE_BANK);
	}
	return pipeline_finish_policy(ctx, cfg->end_verdict, pkt->note);
}

/* A stage with nothing to do: hand the packet to the next enabled stage. */
static __always_inline int pipeline_pass_through(struct xdp_md *ctx, int stage)
{
	const struct sluice_config *cfg = pipeline_config();
	const struct sluice_pkt *pkt = pipeline_pkt();

	if (!pkt)
		return pipeline_finish(ctx, SLUICE_VERDICT_ABORTED, SLUICE_REASON_NO_SCRATCH);
	return pipeline_next(ctx, cfg, pkt, stage);
}

#endif /* SLUICE_XDP_PIPELINE_H */
