/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* What sluice-trafficgen's XDP program and its user space share: where the
 * L4 header is in the generated frame and how to vary its flow. */
#ifndef SLUICE_TRAFFICGEN_H
#define SLUICE_TRAFFICGEN_H

#include <linux/types.h>

/* The L4 header starts within this many bytes (Ethernet + IPv6). */
#define TRAFFICGEN_L4_OFFSET_MAX 64
/* The generator reads and writes this much of the L4 header (ports, and
 * the TCP checksum at offset 16): a frame is at least this long after it. */
#define TRAFFICGEN_L4_TOUCHED_BYTES 18
/* L4 checksum handling of a rewritten source port. */
enum trafficgen_csum {
	TRAFFICGEN_CSUM_NONE = 0,        /* UDP over IPv4 sent with checksum 0 */
	TRAFFICGEN_CSUM_UDP = 1,         /* offset 6 of the L4 header */
	TRAFFICGEN_CSUM_TCP = 2,         /* offset 16 */
};

struct trafficgen_config {
	__u32 l4_offset;    /* from the frame's first byte; <= TRAFFICGEN_L4_OFFSET_MAX */
	__u32 csum;         /* enum trafficgen_csum */
	__u32 flows;        /* 1..65535: source ports base_sport .. base_sport + flows - 1 */
	__u32 base_sport;   /* host order */
};

#endif
