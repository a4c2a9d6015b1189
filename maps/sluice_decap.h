/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The contract between sluice-decap's XDP program (xdp/decap.bpf.c) and its
 * command (control/decap/). sluice-decap runs on backends, not on the
 * balancer, and shares no map with the sluice data plane, so its contract is
 * a header of its own; the rules are sluice_maps.h's: fixed-width types,
 * explicit padding, numbers are ABI (append, never renumber).
 */
#ifndef SLUICE_DECAP_H
#define SLUICE_DECAP_H

#include <linux/types.h>

/* Outer destinations accepted per interface (its addresses plus --address). */
#define SLUICE_DECAP_MAX_ADDRESSES 256

/* decap_addresses key. Network order, IPv4 in addr[0] with addr[1..3] zero. */
struct sluice_decap_addr_key {
	__u32 addr[4];
	__u8 ip_version; /* 4 or 6 */
	__u8 pad[3];
};

/* decap_addresses value: where the address came from (shown by status). */
enum sluice_decap_addr_origin {
	SLUICE_DECAP_ADDR_INTERFACE = 1, /* the interface's own address at attach time */
	SLUICE_DECAP_ADDR_CONFIGURED = 2, /* given with --address */
};
struct sluice_decap_addr {
	__u32 origin; /* enum sluice_decap_addr_origin */
	__u32 pad;
};

/*
 * Outer sources this interface decapsulates from: the balancers' encap
 * source addresses or prefixes (--source), per family an LPM trie. An
 * encapsulation addressed here from any other source is dropped
 * (SLUICE_DECAP_FOREIGN_SOURCE): decapsulating it would hand the stack an
 * inner packet whose source nobody vouched for. Empty tries accept nothing;
 * --any-source is the two /0 prefixes, marked as such.
 */
#define SLUICE_DECAP_MAX_SOURCES 256 /* per family */

/* LPM trie keys: prefixlen in host order, address in network order (as sluice_lpm_v4_key / v6). */
struct sluice_decap_source4_key {
	__u32 prefixlen;
	__u8 addr[4];
};
struct sluice_decap_source6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

enum sluice_decap_source_origin {
	SLUICE_DECAP_SOURCE_CONFIGURED = 1, /* given with --source */
	SLUICE_DECAP_SOURCE_ANY = 2,        /* the /0 of --any-source */
};
struct sluice_decap_source {
	__u32 origin; /* enum sluice_decap_source_origin */
	__u32 pad;
};

/*
 * What became of a frame: the slot of decap_counters (per CPU). Decapsulated
 * frames and frames not meant for sluice-decap go to the stack (XDP_PASS);
 * a sluice encapsulation addressed to this host that does not hold together
 * is dropped (XDP_DROP): the stack could not make sense of it either, and
 * passing it would hand the stack an IP-in-IP packet it has no tunnel for.
 */
enum sluice_decap_outcome {
	SLUICE_DECAP_4IN4 = 0,            /* outer IPv4, inner IPv4: stripped, passed */
	SLUICE_DECAP_6IN4 = 1,            /* outer IPv4, inner IPv6 (protocol 41) */
	SLUICE_DECAP_4IN6 = 2,            /* outer IPv6, inner IPv4 (next header 4) */
	SLUICE_DECAP_6IN6 = 3,            /* outer IPv6, inner IPv6 (next header 41) */
	SLUICE_DECAP_NOT_ENCAPSULATED = 4, /* not IP-in-IP (or an L2/L3 header we do not walk): passed untouched */
	SLUICE_DECAP_NOT_FOR_US = 5,      /* IP-in-IP to an address not accepted here: passed untouched */
	SLUICE_DECAP_OUTER_BAD_HEADER = 6, /* outer IPv4 IHL / total length, outer IPv6 payload length: dropped */
	SLUICE_DECAP_OUTER_BAD_CHECKSUM = 7, /* outer IPv4 header checksum wrong: dropped */
	SLUICE_DECAP_OUTER_FRAGMENT = 8,  /* outer IPv4 fragment (XDP cannot reassemble): dropped */
	SLUICE_DECAP_INNER_TRUNCATED = 9, /* inner IP header cut short: dropped */
	SLUICE_DECAP_INNER_BAD_HEADER = 10, /* inner IPv4 IHL below 5 or fragment beyond 64 KiB: dropped */
	SLUICE_DECAP_INNER_LENGTH_MISMATCH = 11, /* inner total/payload length is not the outer payload: dropped */
	SLUICE_DECAP_INNER_VERSION_MISMATCH = 12, /* inner version is not the protocol number's: dropped */
	SLUICE_DECAP_STRIP_FAILED = 13,   /* bpf_xdp_adjust_head refused: dropped */
	SLUICE_DECAP_FOREIGN_SOURCE = 14, /* IP-in-IP addressed here from a source not in decap_sources_v4/v6: dropped */
	SLUICE_DECAP_OUTCOME_COUNT = 15,
};
/* decap_counters slots: room to append outcomes without changing the pinned map's size. */
#define SLUICE_DECAP_COUNTER_SLOTS 32

struct sluice_decap_counter {
	__u64 packets;
	__u64 bytes; /* frame length as received */
};

#endif /* SLUICE_DECAP_H */
