/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What every ICMP error sluice sends itself (the forward stage's time
 * exceeded, the lb stage's packet too big) must pass first: one concept,
 * one place.
 *
 *  - a per-CPU token bucket (struct sluice_fwd_icmp_bucket), so a flood of
 *    packets that each earn an answer cannot turn the box into a reflector;
 *  - the address answered must be one a router could deliver to: never an
 *    unspecified, loopback, multicast, broadcast or link-local source
 *    (RFC 1812 4.3.2.7, RFC 4443 2.4(e)): such a source is forged or lost,
 *    and answering it hands a forger a way to aim the box's answers.
 *
 * The bucket holds nano-tokens (answers * 1e9): `rate` answers per second
 * refill it up to `burst` answers. `now` is the caller's clock (each stage
 * passes the one its model reads); the first call finds a full bucket.
 */
#ifndef SLUICE_XDP_ICMP_GUARD_H
#define SLUICE_XDP_ICMP_GUARD_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"

#define SLUICE_ICMP_NS_PER_SEC 1000000000ull
/* Refill at most this much idle time: keeps idle * rate far from overflow (rate <= 1e6 by user space). */
#define SLUICE_ICMP_MAX_IDLE_NS (10 * SLUICE_ICMP_NS_PER_SEC)

/* One token of bucket b, if there is one (rate 0: never). */
static __always_inline int sluice_icmp_take_token(struct sluice_fwd_icmp_bucket *b, __u32 rate, __u32 burst,
						  __u64 now)
{
	const __u64 cap = (__u64)burst * SLUICE_ICMP_NS_PER_SEC;
	__u64 tokens = cap;

	if (!b || rate == 0)
		return 0;
	if (b->last_ns != 0) {
		__u64 idle = now > b->last_ns ? now - b->last_ns : 0;

		if (idle > SLUICE_ICMP_MAX_IDLE_NS)
			idle = SLUICE_ICMP_MAX_IDLE_NS;
		tokens = b->tokens + idle * rate;
		if (tokens > cap)
			tokens = cap;
	}
	b->last_ns = now;
	if (tokens < SLUICE_ICMP_NS_PER_SEC) {
		b->tokens = tokens;
		return 0;
	}
	b->tokens = tokens - SLUICE_ICMP_NS_PER_SEC;
	return 1;
}

#define SLUICE_V4_FIRST_OCTET_MULTICAST 224 /* 224/4 multicast, 240/4 reserved, 255.255.255.255 */
#define SLUICE_V4_LINK_LOCAL_HI16 0xa9fe    /* 169.254/16 */

/* An IPv4 address (network order) no one is reachable at: 0/8, 127/8, 169.254/16, 224/3 and above. */
static __always_inline int sluice_v4_martian(__u32 addr)
{
	const __u32 host = bpf_ntohl(addr);
	const __u32 first = host >> 24;

	return first == 0 || first == 127 || first >= SLUICE_V4_FIRST_OCTET_MULTICAST ||
	       (host >> 16) == SLUICE_V4_LINK_LOCAL_HI16;
}

/* An IPv6 address (network order words) of the same kind: ::, ::1, ff00::/8, fe80::/10. */
static __always_inline int sluice_v6_martian(const __u32 *addr)
{
	const __u32 first = bpf_ntohl(addr[0]);

	if ((first >> 24) == 0xff) /* multicast */
		return 1;
	if ((first >> 22) == (0xfe80u >> 6)) /* fe80::/10 link-local */
		return 1;
	return addr[0] == 0 && addr[1] == 0 && addr[2] == 0 && (addr[3] == 0 || addr[3] == bpf_htonl(1));
}

#endif /* SLUICE_XDP_ICMP_GUARD_H */
