/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Token buckets of a rate class: packets/s and bytes/s, each with a burst.
 * Tokens are kept in nano-units (1 packet = 1e9) so a refill of
 * elapsed_ns * rate needs no division. A rate of 0 leaves that dimension
 * unlimited.
 *
 * Each source *prefix* has a bucket (the class's v4/v6 prefix length, /32
 * and /64 by default: a /64 holder gets one bucket, not 2^64). Source
 * buckets live in an LRU hash: a flood of sources evicts old buckets instead
 * of failing. A class may also have an aggregate bucket that every packet
 * its source bucket admits charges too; a packet passes only when both have
 * tokens, and spends tokens only when it passes (refused by the aggregate,
 * it is given back to its source), so one heavy source cannot drain the
 * aggregate with packets that are dropped anyway.
 *
 * Concurrency: a bucket is refilled and charged under a bpf_spin_lock, so
 * two CPUs charging one bucket admit exactly its burst (kernel 5.1+; the
 * LRU hash cannot hold the lock, a stripe of filter_rate_locks guards it).
 * The clock is read before the lock (no helper call may run under it) and a
 * bucket's stamp only moves forward.
 *
 * A packet the source bucket must refuse is refused without the lock
 * (rate_cannot_admit): the lock, its release and the stripe lookup cost a
 * rate-limited drop about 35 ns here (9.3x -> 7.8x the empty program,
 * bench/filter_bench). Only admitting takes the lock, so no packet passes
 * that the locked path would refuse. The lock-free read may only
 * overestimate the tokens, never underestimate them: under the lock a
 * bucket's tokens are stored before its stamp (rate_take), and the reader
 * loads the stamp first, with a fully ordered atomic, then the tokens. A
 * read torn between two charges thus pairs an older stamp with newer
 * tokens, so it refills over more time than passed: at worst a refusal
 * that could have been made lock-free takes the lock. A refusal leaves the
 * bucket as it was, which is what the locked path's refill-and-stamp
 * amounts to (the refill is additive up to the burst).
 *
 * Not covered: an LRU element evicted and
 * reused for another key while a CPU still charges it (LRU hash elements are
 * reused without a grace period); that needs a table full of fresh sources
 * and only affects the evicted source's count.
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

/* The buckets of a class's source and aggregate (below). */
static __always_inline int rate_charge(__u32 class_idx, const struct sluice_filter_rate_class *rc,
				       const struct sluice_pkt *pkt);

/* SLUICE_RATE_ALLOW, or the drop reason when the bucket of (class, source) is empty. */
static __always_inline int rate_check(__u32 gen, __u32 class_id, const struct sluice_pkt *pkt)
{
	__u32 slot = gen * SLUICE_FILTER_MAX_RATE_CLASSES + (class_id & (SLUICE_FILTER_MAX_RATE_CLASSES - 1));
	const struct sluice_filter_rate_class *rc = bpf_map_lookup_elem(&filter_rate_classes, &slot);

	/* user space never points at an undefined class; if it did, the set is corrupt: fail closed */
	if (!rc || !rc->defined)
		return SLUICE_REASON_CORRUPT_STATE;
	if (rc->syn_only && !rate_is_syn(pkt))
		return SLUICE_RATE_ALLOW;
	return rate_charge(class_id & (SLUICE_FILTER_MAX_RATE_CLASSES - 1), rc, pkt);
}

/* Tokens up to the burst: saturating, a corrupt burst near 2^64 must not wrap to an empty bucket. */
static __always_inline __u64 rate_add(__u64 tokens, __u64 add, __u64 burst_nano)
{
	if (tokens >= burst_nano)
		return burst_nano;
	return add >= burst_nano - tokens ? burst_nano : tokens + add;
}

/*
 * Refills b to `now` under `lim` and spends one packet of byte_cost from it
 * when both dimensions have the tokens; 1 when it did. The caller holds the
 * bucket's lock: plain arithmetic only, no helper calls.
 */
static __always_inline int rate_take(struct sluice_filter_rate_bucket *b, const struct sluice_filter_rate_limits *lim,
				     __u64 now, __u64 byte_cost)
{
	__u64 pkt_burst = lim->packet_burst * SLUICE_NS_PER_SEC, byte_burst = lim->byte_burst * SLUICE_NS_PER_SEC;
	__u64 elapsed, ptokens, btokens;
	int admit;

	if (b->last_ns == 0) {
		ptokens = pkt_burst;
		btokens = byte_burst;
	} else {
		/* another CPU read a later clock and took the lock first: nothing elapsed for us */
		elapsed = now > b->last_ns ? now - b->last_ns : 0;
		ptokens = rate_refill(b->packet_tokens, elapsed, lim->packets_per_sec, pkt_burst);
		btokens = rate_refill(b->byte_tokens, elapsed, lim->bytes_per_sec, byte_burst);
	}
	admit = !(lim->packets_per_sec && ptokens < SLUICE_NS_PER_SEC) && !(lim->bytes_per_sec && btokens < byte_cost);
	if (admit && lim->packets_per_sec)
		ptokens -= SLUICE_NS_PER_SEC;
	if (admit && lim->bytes_per_sec)
		btokens -= byte_cost;
	b->packet_tokens = ptokens;
	b->byte_tokens = btokens;
	/*
	 * Forward only: a stamp moved back would refill the same interval
	 * twice. Stored after the tokens, by a fully ordered exchange, for
	 * rate_cannot_admit's lock-free read (see the top of this file).
	 */
	if (now > b->last_ns)
		__sync_lock_test_and_set(&b->last_ns, now);
	return admit;
}

/*
 * 1 when a bucket holding ptokens and btokens, elapsed_ns after its stamp,
 * is short under lim of a packet of byte_cost: rate_take's test without
 * its writes. A global function, so the verifier checks its branches once
 * and not again at every caller's path (rate_charge is inlined twice).
 */
__attribute__((noinline)) int rate_short(const struct sluice_filter_rate_limits *lim, __u64 elapsed_ns, __u64 ptokens,
					 __u64 btokens, __u64 byte_cost)
{
	if (!lim)
		return 0;
	ptokens = rate_refill(ptokens, elapsed_ns, lim->packets_per_sec, lim->packet_burst * SLUICE_NS_PER_SEC);
	btokens = rate_refill(btokens, elapsed_ns, lim->bytes_per_sec, lim->byte_burst * SLUICE_NS_PER_SEC);
	return (lim->packets_per_sec && ptokens < SLUICE_NS_PER_SEC) || (lim->bytes_per_sec && btokens < byte_cost);
}

/*
 * 1 when b certainly has too few tokens for a packet of byte_cost at `now`,
 * on a lock-free read of b (stamp first, then tokens; any tearing
 * overestimates, see the top of this file). 0: the locked path decides. A
 * never-charged bucket (stamp 0) is full.
 */
static __always_inline int rate_cannot_admit(struct sluice_filter_rate_bucket *b,
					     const struct sluice_filter_rate_limits *lim, __u64 now, __u64 byte_cost)
{
	/* adding 0 is the load: an atomic with fetch is fully ordered, so the token loads below come after it */
	__u64 last = __sync_fetch_and_add(&b->last_ns, 0);

	if (last == 0)
		return 0;
	return rate_short(lim, now > last ? now - last : 0, *(volatile __u64 *)&b->packet_tokens,
			  *(volatile __u64 *)&b->byte_tokens, byte_cost);
}

/* Gives back what rate_take spent (the aggregate refused the packet). Under the bucket's lock. */
static __always_inline void rate_give_back(struct sluice_filter_rate_bucket *b, const struct sluice_filter_rate_limits *lim,
					   __u64 byte_cost)
{
	if (lim->packets_per_sec)
		b->packet_tokens = rate_add(b->packet_tokens, SLUICE_NS_PER_SEC, lim->packet_burst * SLUICE_NS_PER_SEC);
	if (lim->bytes_per_sec)
		b->byte_tokens = rate_add(b->byte_tokens, byte_cost, lim->byte_burst * SLUICE_NS_PER_SEC);
}

/* The source's bucket key: its address masked to the class's prefix length. */
static __always_inline void rate_source_key(struct sluice_filter_rate_key *key, const struct sluice_filter_rate_class *rc,
					    const struct sluice_pkt *pkt)
{
	if (pkt->ip_version == 6) {
		key->addr[0] = pkt->src[0] & rc->v6_source_mask[0];
		key->addr[1] = pkt->src[1] & rc->v6_source_mask[1];
		key->addr[2] = pkt->src[2] & rc->v6_source_mask[2];
		key->addr[3] = pkt->src[3] & rc->v6_source_mask[3];
	} else {
		key->addr[0] = pkt->src[0] & rc->v4_source_mask;
	}
}

/* The lock stripe of a key: a multiplicative hash, so neighbouring prefixes spread over the stripes. */
static __always_inline __u32 rate_stripe(const struct sluice_filter_rate_key *key)
{
	__u32 h = key->rate_class * 0x9e3779b1u;

	h = (h ^ key->addr[0]) * 0x85ebca6bu;
	h = (h ^ key->addr[1]) * 0xc2b2ae35u;
	h = (h ^ key->addr[2]) * 0x85ebca6bu;
	h = (h ^ key->addr[3] ^ key->ip_version) * 0xc2b2ae35u;
	return (h ^ (h >> 16)) & (SLUICE_FILTER_RATE_LOCKS - 1);
}

/* SLUICE_RATE_ALLOW, or the drop reason: the source's bucket or the class's aggregate is empty. */
static __always_inline int rate_charge(__u32 class_idx, const struct sluice_filter_rate_class *rc,
				       const struct sluice_pkt *pkt)
{
	const int limited = rc->syn_only ? SLUICE_REASON_FILTER_SYN_RATE_LIMITED : SLUICE_REASON_FILTER_RATE_LIMITED;
	struct sluice_filter_rate_key key = { .rate_class = class_idx, .ip_version = pkt->ip_version };
	const struct sluice_filter_rate_bucket fresh = {};
	struct sluice_filter_rate_aggregate *aggregate = NULL;
	struct sluice_filter_rate_bucket *bucket;
	struct sluice_filter_rate_lock *stripe;
	__u64 byte_cost = (__u64)pkt->pkt_len * SLUICE_NS_PER_SEC, now;
	__u32 stripe_idx;
	int admit;

	rate_source_key(&key, rc, pkt);
	bucket = bpf_map_lookup_elem(&filter_rate_buckets, &key);
	if (!bucket) {
		/*
		 * A new source starts full (last_ns 0). NOEXIST: of two CPUs creating
		 * one bucket, the second keeps the first's (an overwrite would hand
		 * out the burst twice); either way the packet is charged below.
		 */
		bpf_map_update_elem(&filter_rate_buckets, &key, &fresh, BPF_NOEXIST);
		bucket = bpf_map_lookup_elem(&filter_rate_buckets, &key);
		/* evicted at once (the table is churning with new sources) or not insertable: fail closed */
		if (!bucket)
			return limited;
	}
	/*
	 * The precise clock, read only here: a refill at a packet rate needs
	 * sub-millisecond steps (the coarse clock advances once a tick), and
	 * only rate-limited packets pay for it (~15 ns in a KVM guest).
	 */
	now = bpf_ktime_get_ns();
	if (rate_cannot_admit(bucket, &rc->source, now, byte_cost))
		return limited; /* refused without the lock: nothing to spend, nothing to stamp */
	stripe_idx = rate_stripe(&key);
	stripe = bpf_map_lookup_elem(&filter_rate_locks, &stripe_idx);
	if (!stripe)
		return limited;
	if (rc->aggregate.packets_per_sec || rc->aggregate.bytes_per_sec) {
		aggregate = bpf_map_lookup_elem(&filter_rate_aggregates, &class_idx);
		if (!aggregate)
			return SLUICE_REASON_FILTER_AGGREGATE_RATE_LIMITED;
	}

	bpf_spin_lock(&stripe->lock);
	admit = rate_take(bucket, &rc->source, now, byte_cost);
	bpf_spin_unlock(&stripe->lock);
	if (!admit)
		return limited;
	if (!aggregate)
		return SLUICE_RATE_ALLOW;

	bpf_spin_lock(&aggregate->lock);
	admit = rate_take(&aggregate->bucket, &rc->aggregate, now, byte_cost);
	bpf_spin_unlock(&aggregate->lock);
	if (admit)
		return SLUICE_RATE_ALLOW;
	bpf_spin_lock(&stripe->lock);
	rate_give_back(bucket, &rc->source, byte_cost);
	bpf_spin_unlock(&stripe->lock);
	return SLUICE_REASON_FILTER_AGGREGATE_RATE_LIMITED;
}

#endif /* SLUICE_XDP_FILTER_RATELIMIT_H */
