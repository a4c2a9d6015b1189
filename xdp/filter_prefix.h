/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Source prefix lists (blocklist / allowlist / rate-limited sources). The
 * LPM tries are the source of truth; the IPv4 lookup sits behind
 * filter_lookup_src_v4() alone so that a faster structure (DIR-24-8) built
 * from the same trie can replace it without touching the stage.
 */
#ifndef SLUICE_XDP_FILTER_PREFIX_H
#define SLUICE_XDP_FILTER_PREFIX_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "filter_maps.bpf.h"

/* addr: network order. NULL when no prefix of generation gen covers it. */
static __always_inline const struct sluice_filter_verdict *filter_lookup_src_v4(__u32 gen, __u32 addr)
{
	struct sluice_filter_v4_key key = {
		.prefixlen = SLUICE_FILTER_GEN_PREFIX_BITS + 32,
		.generation = gen,
	};

	__builtin_memcpy(key.addr, &addr, sizeof(key.addr));
	return bpf_map_lookup_elem(&filter_prefix_v4, &key);
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

static __always_inline const struct sluice_filter_verdict *filter_lookup_src(__u32 gen, const struct sluice_pkt *pkt)
{
	if (pkt->ip_version == 4)
		return filter_lookup_src_v4(gen, pkt->src[0]);
	return filter_lookup_src_v6(gen, pkt->src);
}

#endif /* SLUICE_XDP_FILTER_PREFIX_H */
