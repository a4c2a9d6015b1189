/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The filter stage. Per packet, in order:
 *   1. source prefix lists (drop / pass / rate-limit class),
 *   2. invalid TCP flag sets dropped; connection tracking (a live flow, or
 *      an ICMP error about one, skips the rules),
 *   3. ordered rules, first match wins (filter_classify.h),
 *   4. token buckets for rate-limit actions,
 *   5. the rule set's default policy.
 * The rule-set generation is read once, here, so every lookup of a packet
 * sees one whole rule set. A pass hands the packet to the next stage with
 * the filter's reason in pkt->note; the default pass leaves the note alone.
 */
#ifndef SLUICE_XDP_STAGE_FILTER_H
#define SLUICE_XDP_STAGE_FILTER_H

#include "pipeline.h"
#include "filter_maps.bpf.h"
#include "filter_prefix.h"
#include "filter_classify.h"
#include "filter_conntrack.h"
#include "filter_ratelimit.h"

/* Used until user space writes filter_settings: no tracking, no sampling. */
const volatile struct sluice_filter_settings sluice_filter_default_settings = {
	.version = SLUICE_FILTER_SETTINGS_VERSION,
	.conntrack_enabled = 0,
	.drop_sample_every = 0,
	.drop_invalid_tcp_flags = 1,
};

static __always_inline const struct sluice_filter_settings *filter_settings_get(void)
{
	__u32 slot = 0;
	const struct sluice_filter_settings *s = bpf_map_lookup_elem(&filter_settings, &slot);

	if (!s || s->version != SLUICE_FILTER_SETTINGS_VERSION)
		return (const struct sluice_filter_settings *)&sluice_filter_default_settings;
	return s;
}

/*
 * The live generation (a never-written slot reads 0: the empty set). The
 * slot holds FilterTable's swap count, whose low bit names the generation:
 * every value is valid, so masking is reading it, not hiding corruption.
 */
static __always_inline __u32 filter_live_generation(void)
{
	__u32 slot = 0;
	const __u32 *gen = bpf_map_lookup_elem(&filter_generation, &slot);

	return gen ? (*gen & (SLUICE_FILTER_GENERATIONS - 1)) : 0;
}

/*
 * A map value that indexes or decides is out of its range (see
 * SLUICE_FILTER_CORRUPT): drop, under a reason of its own, never guess.
 */
static __always_inline int filter_corrupt(struct xdp_md *ctx)
{
	return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
}

/* A prefix-list value user space can write: no entry, drop, pass, or rate-limit with a class id in the table. */
static __always_inline int filter_listed_valid(const struct sluice_filter_verdict *listed)
{
	switch (listed->action) {
	case SLUICE_FILTER_ACTION_NONE:
	case SLUICE_FILTER_ACTION_DROP:
	case SLUICE_FILTER_ACTION_PASS:
		return 1;
	case SLUICE_FILTER_ACTION_RATE_LIMIT:
		return listed->rate_class < SLUICE_FILTER_MAX_RATE_CLASSES;
	default: /* pass-track is for rules only; anything else is no action */
		return 0;
	}
}

/*
 * The set header's default policy: pass or drop; an all-zero header is a
 * generation never written (the empty set, which passes).
 */
static __always_inline int filter_set_valid(const struct sluice_filter_set *set)
{
	if (set->default_verdict == SLUICE_VERDICT_PASS || set->default_verdict == SLUICE_VERDICT_DROP)
		return 1;
	return set->default_verdict == 0 && set->rule_count == 0 && set->skip_lookups == 0;
}

static __always_inline void filter_sample_drop(struct xdp_md *ctx, const struct sluice_filter_settings *settings,
					       __u32 reason)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct sluice_drop_event *ev;
	__u32 len = data_end - data;
	__u32 cap;

	/*
	 * len now, in a register: else clang may keep ctx->data (a u32 field)
	 * across the helper call below in a 4-byte stack slot, which the
	 * verifier refuses for the packet pointer it is ("invalid size of
	 * register spill").
	 */
	asm volatile("" : "+r"(len));
	cap = len;
	if (!settings->drop_sample_every || bpf_get_prandom_u32() % settings->drop_sample_every)
		return;
	ev = bpf_ringbuf_reserve(&drop_events, sizeof(*ev), 0);
	if (!ev) {
		/*
		 * Ring full (user space too slow): the sample is lost. Count it
		 * apart from the verdict counters, so the drop itself is counted
		 * once, under its own reason, and operators see the loss.
		 */
		__u32 slot = SLUICE_FILTER_EVENT_SAMPLE_LOST;
		struct sluice_counter *lost = bpf_map_lookup_elem(&filter_event_counters, &slot);

		if (lost) {
			lost->packets++; /* per-CPU slot: no other writer */
			lost->bytes += len;
		}
		return;
	}
	if (cap > SLUICE_EVENT_HEAD_BYTES)
		cap = SLUICE_EVENT_HEAD_BYTES;
	ev->timestamp_ns = bpf_ktime_get_ns();
	ev->ifindex = ctx->ingress_ifindex;
	ev->pkt_len = len;
	ev->reason = reason;
	ev->verdict = SLUICE_VERDICT_DROP;
	ev->pad = 0;
	__builtin_memset(ev->head, 0, sizeof(ev->head));
	if (cap == 0 || bpf_xdp_load_bytes(ctx, 0, ev->head, cap) != 0)
		cap = 0;
	ev->cap_len = cap;
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline int filter_drop(struct xdp_md *ctx, const struct sluice_filter_settings *settings, __u32 reason)
{
	filter_sample_drop(ctx, settings, reason);
	return pipeline_finish(ctx, SLUICE_VERDICT_DROP, reason);
}

static __always_inline int filter_pass(struct xdp_md *ctx, const struct sluice_config *cfg, struct sluice_pkt *pkt,
				       __u32 reason)
{
	pkt->note = reason;
	return pipeline_next(ctx, cfg, pkt, SLUICE_STAGE_FILTER);
}

static __always_inline void filter_count_rule(struct xdp_md *ctx, __u32 gen, __u32 rule)
{
	__u32 key = gen * SLUICE_FILTER_MAX_RULES + rule;
	struct sluice_counter *ctr = bpf_map_lookup_elem(&filter_rule_counters, &key);

	if (!ctr)
		return;
	ctr->packets++; /* per-CPU slot: no other writer */
	ctr->bytes += ctx->data_end - ctx->data;
}

static __always_inline int stage_filter(struct xdp_md *ctx)
{
	const struct sluice_config *cfg = pipeline_config();
	struct sluice_pkt *pkt = pipeline_pkt();
	const struct sluice_filter_settings *settings;
	const struct sluice_filter_verdict *action;
	struct sluice_filter_verdict listed;
	const struct sluice_filter_set *set;
	struct ct_frame frame = {};
	__u32 gen, key;
	int rule, limited, tracked;

	if (!pkt)
		return pipeline_finish(ctx, SLUICE_VERDICT_ABORTED, SLUICE_REASON_NO_SCRATCH);
	gen = filter_live_generation(); /* once: the whole packet sees this set */
	set = bpf_map_lookup_elem(&filter_sets, &gen);
	if (!set || !filter_set_valid(set))
		return filter_corrupt(ctx);
	settings = filter_settings_get();

	/* 1. prefix lists */
	listed = filter_lookup_src(gen, pkt);
	if (!filter_listed_valid(&listed))
		return filter_corrupt(ctx);
	if (listed.action == SLUICE_FILTER_ACTION_DROP)
		return filter_drop(ctx, settings, SLUICE_REASON_FILTER_BLOCKLIST);
	if (listed.action == SLUICE_FILTER_ACTION_PASS)
		return filter_pass(ctx, cfg, pkt, SLUICE_REASON_FILTER_ALLOWLIST);
	if (listed.action == SLUICE_FILTER_ACTION_RATE_LIMIT) {
		limited = rate_check(gen, listed.rate_class, pkt);
		if (limited != SLUICE_RATE_ALLOW)
			return filter_drop(ctx, settings, limited);
	}

	/* 2. TCP flag sets no stack sends (scans, state forging), then connection tracking */
	if (settings->drop_invalid_tcp_flags && ct_tcp_flags_invalid(pkt))
		return filter_drop(ctx, settings, SLUICE_REASON_FILTER_TCP_INVALID_FLAGS);
	if (settings->conntrack_enabled) {
		ct_frame_init(&frame, ctx, (void *)(long)ctx->data, (void *)(long)ctx->data_end, pkt);
		tracked = ct_lookup(settings, &frame, pkt);
		if (tracked == SLUICE_CT_HIT)
			return filter_pass(ctx, cfg, pkt, SLUICE_REASON_FILTER_CONNTRACK);
		if (tracked == SLUICE_CT_RELATED)
			return filter_pass(ctx, cfg, pkt, SLUICE_REASON_FILTER_CT_RELATED);
	}

	/* 3. ordered rules */
	rule = filter_classify(pkt, gen, set->rule_count, set->skip_lookups);
	if (rule != SLUICE_FILTER_NO_MATCH) {
		/* classify checked the position against the count; its contract is checked here again, cheaply */
		if (rule < 0 || rule >= SLUICE_FILTER_MAX_RULES)
			return filter_corrupt(ctx);
		key = gen * SLUICE_FILTER_MAX_RULES + rule;
		action = bpf_map_lookup_elem(&filter_rules, &key);
		if (!action)
			return filter_corrupt(ctx);
		{
			filter_count_rule(ctx, gen, rule);
			switch (action->action) {
			case SLUICE_FILTER_ACTION_DROP:
				return filter_drop(ctx, settings, SLUICE_REASON_FILTER_RULE_DROP);
			case SLUICE_FILTER_ACTION_PASS_TRACK:
				if (settings->conntrack_enabled)
					ct_create(&frame, pkt);
				return filter_pass(ctx, cfg, pkt, SLUICE_REASON_FILTER_RULE_PASS);
			case SLUICE_FILTER_ACTION_RATE_LIMIT:
				/* 4. token buckets; a class id past the table would alias another class */
				if (action->rate_class >= SLUICE_FILTER_MAX_RATE_CLASSES)
					return filter_corrupt(ctx);
				limited = rate_check(gen, action->rate_class, pkt);
				if (limited != SLUICE_RATE_ALLOW)
					return filter_drop(ctx, settings, limited);
				return filter_pass(ctx, cfg, pkt, SLUICE_REASON_FILTER_RULE_PASS);
			case SLUICE_FILTER_ACTION_PASS:
				return filter_pass(ctx, cfg, pkt, SLUICE_REASON_FILTER_RULE_PASS);
			default: /* 0 or out of range: no action user space writes */
				return filter_corrupt(ctx);
			}
		}
	}

	/* 5. default policy */
	if (set->default_verdict == SLUICE_VERDICT_DROP)
		return filter_drop(ctx, settings, SLUICE_REASON_FILTER_DEFAULT_DROP);
	return pipeline_next(ctx, cfg, pkt, SLUICE_STAGE_FILTER);
}

#endif /* SLUICE_XDP_STAGE_FILTER_H */
