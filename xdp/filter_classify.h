/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Ordered-rule classification in cost independent of the rule count
 * (bpf-iptables' linear bit vector search): every packet field is looked up
 * once and yields the bitmap of rules that field allows (bit i = rule at
 * position i); the bitmaps are ANDed word by word and the first set bit is
 * the first matching rule. Only ceil(rule_count / 64) words are visited.
 */
#ifndef SLUICE_XDP_FILTER_CLASSIFY_H
#define SLUICE_XDP_FILTER_CLASSIFY_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "filter_bits.h"
#include "filter_maps.bpf.h"

#define SLUICE_FILTER_NO_MATCH (-1)
/*
 * The set's maps hold what user space never writes (a rule count, interval
 * count or matched position out of range, a lookup that cannot fail
 * failing): the caller drops the packet as SLUICE_REASON_CORRUPT_STATE. A
 * corrupt set must not read as "no rule matched", which under a default
 * pass would let everything through.
 */
#define SLUICE_FILTER_CORRUPT (-2)
/* Every SLUICE_FILTER_SKIP_* bit the classifier knows; another one set is corrupt. */
#define SLUICE_FILTER_SKIP_KNOWN                                               \
	(SLUICE_FILTER_SKIP_SRC_V4 | SLUICE_FILTER_SKIP_DST_V4 | SLUICE_FILTER_SKIP_SRC_V6 |     \
	 SLUICE_FILTER_SKIP_DST_V6 | SLUICE_FILTER_SKIP_IFINDEX | SLUICE_FILTER_SKIP_SPORT |     \
	 SLUICE_FILTER_SKIP_DPORT)

/* .rodata (const volatile global): a static table could land in a section libbpf refuses. */
const volatile __u8 sluice_filter_debruijn[SLUICE_FILTER_WORD_BITS] = SLUICE_DEBRUIJN64_TABLE;

/* The compiler forgets what it knows about x: no pattern (e.g. a compare) survives across it. */
#define filter_opaque(x) asm volatile("" : "+r"(x))
/*
 * The value of lookup, then `keep`, an instruction that changes nothing
 * (an empty asm would leave a line-info entry on no instruction, which the
 * kernel refuses): lookups followed by different such instructions are not
 * merged into one call (see filter_classify).
 */
#define FILTER_KEEP_A "%0 = %0"
#define FILTER_KEEP_B "goto +0"
#define filter_kept_lookup(lookup, keep)                                       \
	({                                                                     \
		const struct sluice_filter_bitmap *kept_ = (lookup);           \
		asm volatile(keep : "+r"(kept_));                              \
		kept_;                                                         \
	})

static __always_inline __u32 filter_lowest_bit(__u64 word)
{
	return sluice_filter_debruijn[SLUICE_DEBRUIJN64_SLOT(word) & (SLUICE_FILTER_WORD_BITS - 1)];
}

static __always_inline const struct sluice_filter_bitmap *filter_any_bitmap(__u32 gen, __u32 which)
{
	__u32 key = gen * SLUICE_FILTER_ANY_COUNT + which;

	return bpf_map_lookup_elem(&filter_any_bitmaps, &key);
}

static __always_inline const struct sluice_filter_bitmap *filter_byte_bitmap(__u32 gen, __u32 field, __u8 value)
{
	__u32 key = (gen * SLUICE_FILTER_BYTE_COUNT + field) * SLUICE_FILTER_BYTE_VALUES + value;

	return bpf_map_lookup_elem(&filter_byte_bitmaps, &key);
}

/* Bitmap of the rules whose src (dst) prefix covers the packet's address; a miss: the wildcard rules. */
static __always_inline const struct sluice_filter_bitmap *
filter_prefix_bitmap(__u32 gen, const struct sluice_pkt *pkt, int is_src, __u32 skip)
{
	const __u32 *addr = is_src ? pkt->src : pkt->dst;
	const struct sluice_filter_bitmap *hit;

	if (pkt->ip_version == 4) {
		/* an empty trie (no rule has such a prefix) can only miss: an LPM walk saved */
		if (skip & (is_src ? SLUICE_FILTER_SKIP_SRC_V4 : SLUICE_FILTER_SKIP_DST_V4))
			return filter_any_bitmap(gen, is_src ? SLUICE_FILTER_ANY_SRC_V4 : SLUICE_FILTER_ANY_DST_V4);
		struct sluice_filter_v4_key key = {
			.prefixlen = SLUICE_FILTER_GEN_PREFIX_BITS + 32,
			.generation = gen,
		};
		__builtin_memcpy(key.addr, addr, sizeof(key.addr));
		hit = bpf_map_lookup_elem(is_src ? (void *)&filter_src_v4 : (void *)&filter_dst_v4, &key);
		if (hit)
			return hit;
		return filter_any_bitmap(gen, is_src ? SLUICE_FILTER_ANY_SRC_V4 : SLUICE_FILTER_ANY_DST_V4);
	}
	{
		struct sluice_filter_v6_key key = {
			.prefixlen = SLUICE_FILTER_GEN_PREFIX_BITS + 128,
			.generation = gen,
		};
		if (skip & (is_src ? SLUICE_FILTER_SKIP_SRC_V6 : SLUICE_FILTER_SKIP_DST_V6))
			return filter_any_bitmap(gen, is_src ? SLUICE_FILTER_ANY_SRC_V6 : SLUICE_FILTER_ANY_DST_V6);
		__builtin_memcpy(key.addr, addr, sizeof(key.addr));
		hit = bpf_map_lookup_elem(is_src ? (void *)&filter_src_v6 : (void *)&filter_dst_v6, &key);
		if (hit)
			return hit;
		return filter_any_bitmap(gen, is_src ? SLUICE_FILTER_ANY_SRC_V6 : SLUICE_FILTER_ANY_DST_V6);
	}
}

/*
 * skipped: one interval (no rule has a range on this port), every port is
 * in interval 0. Otherwise the port's interval from the direct index: one
 * load, the same for 1 rule and 4,096 (a binary search over the interval
 * starts took 14 dependent loads).
 */
static __always_inline const struct sluice_filter_bitmap *filter_port_bitmap(__u32 gen, __u32 dir, __u16 port,
									    int skipped)
{
	__u32 key = gen * SLUICE_FILTER_PORT_DIRS + dir;
	const struct sluice_filter_port_index *index;
	__u32 interval = 0;

	if (!skipped) {
		index = bpf_map_lookup_elem(&filter_port_index, &key);
		/* NULL: the caller treats a missing bitmap as a corrupt set */
		if (!index)
			return 0;
		interval = index->interval[port];
		/* past this field's intervals: another direction's or generation's bitmaps */
		if (interval >= SLUICE_FILTER_MAX_PORT_INTERVALS)
			return 0;
	}
	key = key * SLUICE_FILTER_MAX_PORT_INTERVALS + interval;
	return bpf_map_lookup_elem(&filter_port_bitmaps, &key);
}

static __always_inline const struct sluice_filter_bitmap *filter_ifindex_bitmap(__u32 gen, __u32 ifindex, __u32 skip)
{
	struct sluice_filter_ifindex_key key = { .generation = gen, .ifindex = ifindex };
	const struct sluice_filter_bitmap *hit;

	if (skip & SLUICE_FILTER_SKIP_IFINDEX) /* no rule names an interface: the hash can only miss */
		return filter_any_bitmap(gen, SLUICE_FILTER_ANY_IFINDEX);
	hit = bpf_map_lookup_elem(&filter_ifindex, &key);

	return hit ? hit : filter_any_bitmap(gen, SLUICE_FILTER_ANY_IFINDEX);
}

static __always_inline int pkt_has_ports(const struct sluice_pkt *pkt)
{
	return pkt->has_l4 && (pkt->ip_proto == IPPROTO_TCP || pkt->ip_proto == IPPROTO_UDP);
}

static __always_inline int pkt_has_tcp_flags(const struct sluice_pkt *pkt)
{
	return pkt->has_l4 && pkt->ip_proto == IPPROTO_TCP;
}

static __always_inline int pkt_has_icmp_type(const struct sluice_pkt *pkt)
{
	return pkt->has_l4 && (pkt->ip_proto == IPPROTO_ICMP || pkt->ip_proto == IPPROTO_ICMPV6);
}

/* The bitmaps a packet's fields select, one per field (AND of all = rules it matches). */
enum filter_field {
	FILTER_FIELD_SRC,
	FILTER_FIELD_DST,
	FILTER_FIELD_IFINDEX,
	FILTER_FIELD_PROTO,
	FILTER_FIELD_SPORT,
	FILTER_FIELD_DPORT,
	FILTER_FIELD_FLAGS,
	FILTER_FIELD_ICMP,
	FILTER_FIELD_COUNT,
};

/* The word scan's state, on the classifier's stack, handed to the bpf_loop callback. */
struct filter_match {
	const struct sluice_filter_bitmap *field[FILTER_FIELD_COUNT];
	__u64 candidates; /* words still to visit: the AND of every field's summary */
	int rule;         /* the first matching position found, or SLUICE_FILTER_NO_MATCH */
};

#define FILTER_LOOP_CONTINUE 0
#define FILTER_LOOP_STOP 1

/*
 * One candidate word: the lowest word all summaries name. A bpf_loop
 * callback rather than an unrolled or bounded loop: the verifier checks this
 * body once for an unknown word index (masked below), not 64 times per path
 * into the loop, which kept the program at ~420k processed instructions.
 */
static long filter_match_word(__u32 iteration, void *data)
{
	struct filter_match *m = data;
	__u64 candidates = m->candidates, word;
	__u32 w;

	if (!candidates)
		return FILTER_LOOP_STOP;
	/* the table holds 0..63 but the verifier sees a u8: the mask bounds word[w] */
	w = filter_lowest_bit(candidates) & (SLUICE_FILTER_BITMAP_WORDS - 1);
	m->candidates = candidates & (candidates - 1);
	word = m->field[FILTER_FIELD_SRC]->word[w] & m->field[FILTER_FIELD_DST]->word[w] &
	       m->field[FILTER_FIELD_IFINDEX]->word[w] & m->field[FILTER_FIELD_PROTO]->word[w] &
	       m->field[FILTER_FIELD_SPORT]->word[w] & m->field[FILTER_FIELD_DPORT]->word[w] &
	       m->field[FILTER_FIELD_FLAGS]->word[w] & m->field[FILTER_FIELD_ICMP]->word[w];
	if (!word)
		return FILTER_LOOP_CONTINUE;
	m->rule = w * SLUICE_FILTER_WORD_BITS + filter_lowest_bit(word);
	return FILTER_LOOP_STOP;
}

/*
 * Position of the first rule (of rule_count) matching pkt in generation gen,
 * SLUICE_FILTER_NO_MATCH, or SLUICE_FILTER_CORRUPT. A global function: the
 * verifier checks it once on its own, whatever the caller's paths. Only words whose bit is set in
 * every field's summary are visited, lowest first; with no candidate word
 * (a miss on any sparse field) the scan never starts. skip: the set's
 * SLUICE_FILTER_SKIP_* bits, lookups whose answer the compiler knows.
 */
__attribute__((noinline)) int filter_classify(struct sluice_pkt *pkt, __u32 gen, __u32 rule_count, __u32 skip)
{
	struct filter_match m = { .rule = SLUICE_FILTER_NO_MATCH };
	__u64 live_words;
	__u32 words, f;

	if (!pkt)
		return SLUICE_FILTER_CORRUPT;
	if (rule_count > SLUICE_FILTER_MAX_RULES || (skip & ~SLUICE_FILTER_SKIP_KNOWN))
		return SLUICE_FILTER_CORRUPT;
	if (rule_count == 0)
		return SLUICE_FILTER_NO_MATCH;
	gen &= SLUICE_FILTER_GENERATIONS - 1;
	words = (rule_count + SLUICE_FILTER_WORD_BITS - 1) / SLUICE_FILTER_WORD_BITS;
	/* words beyond the rule count hold nothing of this set: never visit them */
	live_words = words >= SLUICE_FILTER_BITMAP_WORDS ? ~0ULL : (1ULL << words) - 1;

	m.field[FILTER_FIELD_SRC] = filter_prefix_bitmap(gen, pkt, 1, skip);
	m.field[FILTER_FIELD_DST] = filter_prefix_bitmap(gen, pkt, 0, skip);
	m.field[FILTER_FIELD_IFINDEX] = filter_ifindex_bitmap(gen, pkt->ifindex, skip);
	m.field[FILTER_FIELD_PROTO] = filter_byte_bitmap(gen, SLUICE_FILTER_BYTE_PROTO, pkt->ip_proto);
	if (pkt_has_ports(pkt)) {
		m.field[FILTER_FIELD_SPORT] = filter_port_bitmap(gen, SLUICE_FILTER_PORT_SRC, pkt->sport,
								 skip & SLUICE_FILTER_SKIP_SPORT);
		m.field[FILTER_FIELD_DPORT] = filter_port_bitmap(gen, SLUICE_FILTER_PORT_DST, pkt->dport,
								 skip & SLUICE_FILTER_SKIP_DPORT);
	} else {
		/* no ports to read (other protocol, later fragment): only rules without port ranges */
		m.field[FILTER_FIELD_SPORT] = filter_any_bitmap(gen, SLUICE_FILTER_ANY_PORTS);
		m.field[FILTER_FIELD_DPORT] = m.field[FILTER_FIELD_SPORT];
	}
	/*
	 * Written plainly, clang sinks the two lookups of each if/else into one
	 * call whose map is chosen at run time, which the verifier cannot
	 * inline (a real helper call through the map's ops): the two different
	 * no-op instructions keep the calls apart, each with its own constant
	 * map, and both are inlined.
	 */
	if (pkt_has_tcp_flags(pkt)) {
		m.field[FILTER_FIELD_FLAGS] = filter_kept_lookup(filter_byte_bitmap(gen, SLUICE_FILTER_BYTE_TCP_FLAGS, pkt->tcp_flags), FILTER_KEEP_A);
	} else {
		m.field[FILTER_FIELD_FLAGS] = filter_kept_lookup(filter_any_bitmap(gen, SLUICE_FILTER_ANY_FLAGS), FILTER_KEEP_B);
	}
	if (pkt_has_icmp_type(pkt)) {
		m.field[FILTER_FIELD_ICMP] = filter_kept_lookup(filter_byte_bitmap(gen, SLUICE_FILTER_BYTE_ICMP_TYPE, pkt->icmp_type), FILTER_KEEP_A);
	} else {
		m.field[FILTER_FIELD_ICMP] = filter_kept_lookup(filter_any_bitmap(gen, SLUICE_FILTER_ANY_ICMP), FILTER_KEEP_B);
	}

	m.candidates = live_words;
	for (f = 0; f < FILTER_FIELD_COUNT; f++) {
		const struct sluice_filter_bitmap *field = m.field[f];

		/* array slots always exist; a missing one (or a bad interval count) means a corrupt set */
		if (!field)
			return SLUICE_FILTER_CORRUPT;
		m.candidates &= field->summary;
	}
	if (!m.candidates)
		return SLUICE_FILTER_NO_MATCH;
	bpf_loop(SLUICE_FILTER_BITMAP_WORDS, filter_match_word, &m, 0);
	/* a bit past the last rule in the last live word: the bitmaps name a rule the set does not have */
	if (m.rule != SLUICE_FILTER_NO_MATCH && (m.rule < 0 || (__u32)m.rule >= rule_count))
		return SLUICE_FILTER_CORRUPT;
	return m.rule;
}

#endif /* SLUICE_XDP_FILTER_CLASSIFY_H */
