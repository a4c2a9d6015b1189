/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Route lookup: the destination's route value (sluice_maps.h, forward
 * section), 0 when no prefix covers it. IPv4 reads the DIR-24-8 copy when
 * user space has plugged one in (both slots of fwd_dir4_*), else the trie;
 * IPv6 always reads the trie.
 */
#ifndef SLUICE_XDP_FORWARD_LOOKUP_H
#define SLUICE_XDP_FORWARD_LOOKUP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "dir24_8.h"
#include "forward_maps.bpf.h"

#define SLUICE_FWD_NO_ROUTE 0u

/* dst in network order. A corrupt DIR-24-8 answers SLUICE_DIR24_8_CORRUPT, which no route value is. */
static __always_inline __u32 fwd_lookup_v4(__u32 dst)
{
	__u32 value;

	if (dir24_8_slot_lookup(&fwd_dir4_tbl24, &fwd_dir4_tbl8, 0, dst, &value))
		return value;
	struct sluice_lpm_v4_key key = {.prefixlen = 32};
	__builtin_memcpy(key.addr, &dst, sizeof(key.addr));
	const __u32 *route = bpf_map_lookup_elem(&fwd_routes_v4, &key);
	return route ? *route : SLUICE_FWD_NO_ROUTE;
}

static __always_inline __u32 fwd_lookup_v6(const __u32 *dst)
{
	struct sluice_lpm_v6_key key = {.prefixlen = 128};

	__builtin_memcpy(key.addr, dst, sizeof(key.addr));
	const __u32 *value = bpf_map_lookup_elem(&fwd_routes_v6, &key);
	return value ? *value : SLUICE_FWD_NO_ROUTE;
}

static __always_inline __u32 fwd_lookup(const struct sluice_pkt *pkt)
{
	if (pkt->ip_version == 4)
		return fwd_lookup_v4(pkt->dst[0]);
	return fwd_lookup_v6(pkt->dst);
}

#endif /* SLUICE_XDP_FORWARD_LOOKUP_H */
