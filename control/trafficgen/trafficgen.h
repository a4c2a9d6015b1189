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
/* The headers a receiver may rewrite in place (a router's MACs, TTL and IP
 * checksum): restored from the template before each frame, since live-frame
 * pages come back with what the last receiver left in them. Ethernet + IPv6
 * + the touched L4 bytes. */
#define TRAFFICGEN_HEADER_MAX (TRAFFICGEN_L4_OFFSET_MAX + TRAFFICGEN_L4_TOUCHED_BYTES)
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
	__u32 header_len;   /* bytes of header[] restored per frame: min(frame bytes, TRAFFICGEN_HEADER_MAX) */
	__u8 header[TRAFFICGEN_HEADER_MAX];  /* the frame's first header_len bytes as built */
};

#endif
