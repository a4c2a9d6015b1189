/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Per-source token buckets within a rate class: packets/s and bytes/s, each
 * with a burst. Tokens are kept in nano-units (1 packet = 1e9) so a refill
 * of elapsed_ns * rate needs no division. A rate of 0 leaves that dimension
 * unlimited. Buckets live in an LRU hash: a flood of sources evicts old
 * buckets instead of failing. Updates are not atomic across CPUs: two CPUs
 * refilling one bucket at once can over-admit by a packet, never block.
 */
#ifndef SLUICE_XDP_FILTER_RATELIMIT_H
#define SLUICE_XDP_FILTER_RATELIMIT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "filter_maps.bpf.h"
#include "filter_conntrack.h"

#define SLUICE_RATE_ALLOW 0

static __always_inline int rate_is_syn(const struct sluice_pkt *pkt)
{
	return pkt->has_l4 && pkt->ip_proto == IPPROTO_TCP &&
	       (pkt->tcp_flags & (SLUICE_TCP_SYN | SLUICE_TCP_ACK)) == SLUICE_TCP_SYN;
}

/*
 * Tokens after elapsed_ns at rate per second, capped at burst (all in
 * nano-units). Saturating at every step: at the largest validated limits
 * (byte burst 1e10 -> 1e19 nano-bytes, rate 1e11/s) both elapsed * rate and
 * tokens + refill can exceed 2^64, and a wrapped sum would leave a long-idle
 * source with an almost empty bucket.
 */
static __always_inline __u64 rate_refill(__u64 tokens, __u64 elapsed_ns, __u64 rate, __u64 burst_nano)
{
	__u64 max_elapsed, add;

	if (rate == 0)
		return burst_nano;
	if (tokens >= burst_nano)
		return burst_nano;
	/* past burst / rate the bucket is full anyway; capping keeps elapsed * rate <= burst, no overflow */
	max_elapsed = burst_nano / rate;
	if (elapsed_ns > max_elapsed)
		return burst_nano;
	add = elapsed_ns * rate;
	/* tokens < burst here, so burst - tokens cannot wrap; the comparison replaces an overflowing sum */
	return add >= burst_nano - tokens ? burst_nano : tokens + add;
}

/* SLUICE_RATE_ALLOW, or the drop reason when the bucket of (class, source) is empty. */
static __always_inline int rate_check(__u32 gen, __u32 class_id, const struct sluice_pkt *pkt)
{
	__u32 slot = gen * SLUICE_FILTER_MAX_RATE_CLASSES + (class_id & (SLUICE_FILTER_MAX_RATE_CLASSES - 1));
	const struct sluice_filter_rate_class *rc = bpf_map_lookup_elem(&filter_rate_classes, &slot);
	struct sluice_filter_rate_key key = { .rate_class = class_id, .ip_version = pkt->ip_version };
	struct sluice_filter_rate_bucket *bucket;
	__u64 pkt_burst, byte_burst, pkt_cost = SLUICE_NS_PER_SEC, byte_cost, ptokens, btokens, elapsed, now;

	/* user space never points at an undefined class; if it did, the set is corrupt: fail closed */
	if (!rc || !rc->defined)
		return SLUICE_REASON_CORRUPT_STATE;
	if (rc->syn_only && !rate_is_syn(pkt))
		return SLUICE_RATE_ALLOW;
	/*
	 * The precise clock, read only here: a refill at a packet rate needs
	 * sub-millisecond steps (the coarse clock advances once a tick), and
	 * only rate-limited packets pay for it (~15 ns in a KVM guest).
	 */
	now = bpf_ktime_get_ns();
	pkt_burst = rc->packet_burst * SLUICE_NS_PER_SEC;
	byte_burst = rc->byte_burst * SLUICE_NS_PER_SEC;
	byte_cost = (__u64)pkt->pkt_len * SLUICE_NS_PER_SEC;
	__builtin_memcpy(key.addr, pkt->src, sizeof(key.addr));

	bucket = bpf_map_lookup_elem(&filter_rate_buckets, &key);
	if (!bucket) {
		/* a new source starts with a full bucket, minus this packet */
		struct sluice_filter_rate_bucket fresh = { .last_ns = now };

		fresh.packet_tokens = rc->packets_per_sec && pkt_burst >= pkt_cost ? pkt_burst - pkt_cost : pkt_burst;
		fresh.byte_tokens = rc->bytes_per_sec && byte_burst >= byte_cost ? byte_burst - byte_cost : byte_burst;
		if ((rc->packets_per_sec && pkt_burst < pkt_cost) || (rc->bytes_per_sec && byte_burst < byte_cost))
			return rc->syn_only ? SLUICE_REASON_FILTER_SYN_RATE_LIMITED : SLUICE_REASON_FILTER_RATE_LIMITED;
		bpf_map_update_elem(&filter_rate_buckets, &key, &fresh, BPF_ANY);
		return SLUICE_RATE_ALLOW;
	}
	/* another CPU may have stamped the bucket after we read the clock */
	elapsed = now > bucket->last_ns ? now - bucket->last_ns : 0;
	ptokens = rate_refill(bucket->packet_tokens, elapsed, rc->packets_per_sec, pkt_burst);
	btokens = rate_refill(bucket->byte_tokens, elapsed, rc->bytes_per_sec, byte_burst);
	bucket->last_ns = now;
	if ((rc->packets_per_sec && ptokens < pkt_cost) || (rc->bytes_per_sec && btokens < byte_cost)) {
		bucket->packet_tokens = ptokens;
		bucket->byte_tokens = btokens;
		return rc->syn_only ? SLUICE_REASON_FILTER_SYN_RATE_LIMITED : SLUICE_REASON_FILTER_RATE_LIMITED;
	}
	bucket->packet_tokens = rc->packets_per_sec ? ptokens - pkt_cost : ptokens;
	bucket->byte_tokens = rc->bytes_per_sec ? btokens - byte_cost : btokens;
	return SLUICE_RATE_ALLOW;
}

#endif /* SLUICE_XDP_FILTER_RATELIMIT_H */
