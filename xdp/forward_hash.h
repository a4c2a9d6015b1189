/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The flow hash of the forward stage: which ECMP member and which cpumap CPU
 * a packet takes. Every packet of a flow hashes alike, so a flow stays on one
 * path (no reordering). Fragments hash without ports: a first fragment has
 * them and the rest do not, and all of a datagram's fragments must take the
 * same path.
 */
#ifndef SLUICE_XDP_FORWARD_HASH_H
#define SLUICE_XDP_FORWARD_HASH_H

#include <linux/bpf.h>

#include "sluice_maps.h"

/* MurmurHash3's 32-bit block mix and finaliser: cheap, and every input bit reaches every output bit. */
static __always_inline __u32 fwd_hash_mix(__u32 h, __u32 word)
{
	word *= 0xcc9e2d51u;
	word = (word << 15) | (word >> 17);
	word *= 0x1b873593u;
	h ^= word;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64u;
}

static __always_inline __u32 fwd_hash_final(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 fwd_flow_hash(const struct sluice_pkt *pkt)
{
	__u32 h = pkt->ip_version;

	h = fwd_hash_mix(h, pkt->src[0]);
	h = fwd_hash_mix(h, pkt->dst[0]);
	if (pkt->ip_version == 6) {
		h = fwd_hash_mix(h, pkt->src[1]);
		h = fwd_hash_mix(h, pkt->src[2]);
		h = fwd_hash_mix(h, pkt->src[3]);
		h = fwd_hash_mix(h, pkt->dst[1]);
		h = fwd_hash_mix(h, pkt->dst[2]);
		h = fwd_hash_mix(h, pkt->dst[3]);
	}
	h = fwd_hash_mix(h, pkt->ip_proto);
	if (pkt->frag == SLUICE_FRAG_NONE && pkt->has_l4)
		h = fwd_hash_mix(h, (__u32)pkt->sport << 16 | pkt->dport);
	return fwd_hash_final(h);
}

#endif /* SLUICE_XDP_FORWARD_HASH_H */
