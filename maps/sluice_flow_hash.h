/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The lb stage's flow hash: one definition, pure C, for the data plane
 * (xdp/lb_select.h) and the C++ reference model (control/lb/lb_reference.cpp).
 * It picks the Maglev entry of a new flow (1 + hash % size) and the entropy
 * bits of the outer source address, so it must give the same value for the
 * same flow on every box behind one ECMP group: it reads the addresses as
 * big-endian numbers (never as host words), has a fixed seed, and uses only
 * 32-bit integer arithmetic, which BPF and every C++ compiler do alike.
 *
 * MurmurHash3's 32-bit block mix and finaliser (public domain, Austin
 * Appleby) over the 32-bit words of (source, destination, ports, protocol):
 * a few multiplies per word, no tables, good avalanche for Maglev's modulo.
 */
#ifndef SLUICE_FLOW_HASH_H
#define SLUICE_FLOW_HASH_H

#include <linux/types.h>

#define SLUICE_FLOW_HASH_SEED 0x51ce1b0du

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SLUICE_FLOW_HASH_BE32(word) __builtin_bswap32(word)
#else
#define SLUICE_FLOW_HASH_BE32(word) (word)
#endif

static inline __attribute__((always_inline)) __u32 sluice_flow_hash_rotl(__u32 x, __u32 r)
{
	return (x << r) | (x >> (32 - r));
}

static inline __attribute__((always_inline)) __u32 sluice_flow_hash_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51u;
	k = sluice_flow_hash_rotl(k, 15);
	k *= 0x1b873593u;
	h ^= k;
	h = sluice_flow_hash_rotl(h, 13);
	return h * 5u + 0xe6546b64u;
}

static inline __attribute__((always_inline)) __u32 sluice_flow_hash_final(__u32 h, __u32 len)
{
	h ^= len;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/*
 * src/dst: addresses in network order as sluice_pkt holds them (IPv4 in
 * word 0, only that word hashed); ports in host order.
 */
static inline __attribute__((always_inline)) __u32 sluice_flow_hash(__u8 ip_version, const __u32 *src,
								    const __u32 *dst, __u16 sport, __u16 dport,
								    __u8 proto)
{
	__u32 h = SLUICE_FLOW_HASH_SEED;
	__u32 words = 4;

	if (ip_version == 6) {
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(src[0]));
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(src[1]));
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(src[2]));
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(src[3]));
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(dst[0]));
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(dst[1]));
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(dst[2]));
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(dst[3]));
		words = 10;
	} else {
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(src[0]));
		h = sluice_flow_hash_mix(h, SLUICE_FLOW_HASH_BE32(dst[0]));
	}
	h = sluice_flow_hash_mix(h, ((__u32)sport << 16) | dport);
	h = sluice_flow_hash_mix(h, ((__u32)ip_version << 8) | proto);
	return sluice_flow_hash_final(h, words * 4);
}

#endif /* SLUICE_FLOW_HASH_H */
