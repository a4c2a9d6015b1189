/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Source prefix lists (blocklist / allowlist / rate-limited sources). The
 * LPM tries are the source of truth; IPv4 sources are looked up in the
 * DIR-24-8 copy of the live generation when it has one (big lists,
 * sluice_maps.h, filter section), else in the trie; IPv6 sources in the trie.
 */
#ifndef SLUICE_XDP_FILTER_PREFIX_H
#define SLUICE_XDP_FILTER_PREFIX_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "filter_maps.bpf.h"

/*
 * addr: network order. The listed action of generation gen's longest prefix
 * covering addr: from its DIR-24-8 when one is plugged, else from the trie.
 */
static __always_inline struct sluice_filter_verdict filter_lookup_src_v4(__u32 gen, __u32 addr)
{
	struct sluice_filter_verdict listed = { .action = SLUICE_FILTER_ACTION_NONE };
	__u32 value;

	if (dir24_8_slot_lookup(&fsrc4_tbl24, &fsrc4_tbl8, gen, addr, &value)) {
		listed.action = value & SLUICE_FILTER_DIR_ACTION_MASK;
		listed.rate_class = value >> SLUICE_FILTER_DIR_CLASS_SHIFT;
		return listed;
	}
	struct sluice_filter_v4_key key = {
		.prefixlen = SLUICE_FILTER_GEN_PREFIX_BITS + 32,
		.generation = gen,
	};
	__builtin_memcpy(key.addr, &addr, sizeof(key.addr));
	const struct sluice_filter_verdict *trie = bpf_map_lookup_elem(&filter_prefix_v4, &key);
	return trie ? *trie : listed;
}

static __always_inline const struct sluice_filter_verdict *filter_lookup_src_v6(__u32 gen, const __u32 *addr)
{
	struct sluice_filter_v6_key key = {
		.prefixlen = SLUICE_FILTER_GEN_PREFIX_BITS + 128,
		.generation = gen,
	};

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	return bpf_map_lookup_elem(&filter_prefix_v6, &key);
}

/* The listed action of pkt's source; action SLUICE_FILTER_ACTION_NONE when no prefix covers it. */
static __always_inline struct sluice_filter_verdict filter_lookup_src(__u32 gen, const struct sluice_pkt *pkt)
{
	struct sluice_filter_verdict listed = { .action = SLUICE_FILTER_ACTION_NONE };
	const struct sluice_filter_verdict *v6;

	if (pkt->ip_version == 4)
		return filter_lookup_src_v4(gen, pkt->src[0]);
	v6 = filter_lookup_src_v6(gen, pkt->src);
	return v6 ? *v6 : listed;
}

#endif /* SLUICE_XDP_FILTER_PREFIX_H */
