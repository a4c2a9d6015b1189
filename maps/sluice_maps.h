/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The contract between the XDP data plane (xdp/) and user space (control/,
 * tests/, bench/). Every struct, enum and constant that crosses the
 * kernel/user boundary lives here and only here. C++ includes it through
 * maps/contract.hpp, which static_asserts the layout.
 *
 * Rules for this file: fixed-width types only, explicit padding, no
 * bitfields, sizes multiple of 8 where the struct is a map value.
 */
#ifndef SLUICE_MAPS_H
#define SLUICE_MAPS_H

#include <linux/types.h>

/* ---- pipeline stages: also the slot numbers of the stage program array ---- */
enum sluice_stage {
	SLUICE_STAGE_FILTER = 0,
	SLUICE_STAGE_LB = 1,
	SLUICE_STAGE_FORWARD = 2,
	SLUICE_STAGE_COUNT = 3,
};
#define SLUICE_STAGE_BIT(stage) (1u << (stage))
/*
 * Two banks of stage programs (stage_progs = bank 0, stage_progs_b1 = bank 1)
 * and a one-slot array stage_bank naming the live one. The entry program reads
 * stage_bank once per packet and every stage of that packet comes from that
 * bank; an upgrade fills the idle bank, then flips stage_bank with one map
 * write, so no packet runs an old filter with a new lb.
 */
#define SLUICE_STAGE_BANKS 2
#define SLUICE_STAGES_ALL                                                      \
	(SLUICE_STAGE_BIT(SLUICE_STAGE_FILTER) |                                   \
	 SLUICE_STAGE_BIT(SLUICE_STAGE_LB) | SLUICE_STAGE_BIT(SLUICE_STAGE_FORWARD))

/* ---- verdicts: numerically equal to enum xdp_action (asserted in C++) ---- */
enum sluice_verdict {
	SLUICE_VERDICT_ABORTED = 0,
	SLUICE_VERDICT_DROP = 1,
	SLUICE_VERDICT_PASS = 2,
	SLUICE_VERDICT_TX = 3,
	SLUICE_VERDICT_REDIRECT = 4,
	SLUICE_VERDICT_COUNT = 5,
};

/*
 * Reasons: why a packet got its verdict. Every (verdict, reason) pair has
 * its own per-CPU counter. Numbers are ABI: append, never renumber.
 */
enum sluice_reason {
	SLUICE_REASON_PIPELINE_END = 0,  /* went through every enabled stage */
	SLUICE_REASON_NON_IP = 1,        /* not IPv4/IPv6 (ARP, LLDP, ...) */
	SLUICE_REASON_TRUNC_ETH = 2,
	SLUICE_REASON_TRUNC_VLAN = 3,
	SLUICE_REASON_VLAN_TOO_DEEP = 4, /* more than SLUICE_MAX_VLAN_TAGS */
	SLUICE_REASON_TRUNC_IPV4 = 5,
	SLUICE_REASON_IPV4_BAD_VERSION = 6,
	SLUICE_REASON_IPV4_BAD_IHL = 7,
	SLUICE_REASON_IPV4_BAD_TOTLEN = 8,
	SLUICE_REASON_TRUNC_IPV6 = 9,
	SLUICE_REASON_IPV6_BAD_VERSION = 10,
	SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN = 11,
	SLUICE_REASON_IPV6_EXTHDR_CHAIN_TOO_LONG = 12,
	SLUICE_REASON_TRUNC_IPV6_EXTHDR = 13,
	SLUICE_REASON_FRAGMENT = 14,     /* non-first fragment: no L4 header */
	SLUICE_REASON_TRUNC_TCP = 15,
	SLUICE_REASON_TCP_BAD_DOFF = 16,
	SLUICE_REASON_TRUNC_UDP = 17,
	SLUICE_REASON_TRUNC_ICMP = 18,
	SLUICE_REASON_TRUNC_ICMPV6 = 19,
	SLUICE_REASON_FRAGMENT_DROPPED = 20, /* config drop_fragments */
	SLUICE_REASON_TAIL_CALL_FAILED = 21, /* stage slot empty: fail policy */
	SLUICE_REASON_NO_SCRATCH = 22,       /* per-CPU parse area missing */
	SLUICE_REASON_BAD_VERDICT = 23,      /* a stage returned an unknown action */
	SLUICE_REASON_IPV4_BAD_FRAGMENT = 24, /* fragment offset + length beyond 64 KiB */
	SLUICE_REASON_BAD_STAGE_BANK = 25,    /* stage_bank (or the packet's copy) not 0 or 1: drop */
	SLUICE_REASON_CORRUPT_STATE = 26,    /* a map value out of its range (action, index, count): fail closed */
	SLUICE_REASON_FIRST_FILTER = 32,     /* 32..47: filter stage (filter issue) */
	SLUICE_REASON_FIRST_LB = 48,         /* 48..55: load balancer */
	SLUICE_REASON_FIRST_FORWARD = 56,    /* 56..63: forward */
	SLUICE_REASON_MAX = 64,
};

/* Counter index = verdict * SLUICE_REASON_MAX + reason. */
#define SLUICE_COUNTER_SLOTS ((int)SLUICE_VERDICT_COUNT * (int)SLUICE_REASON_MAX)

struct sluice_counter {
	__u64 packets;
	__u64 bytes;
};

/* ---- config array (one slot) read by every packet ---- */
#define SLUICE_CONFIG_VERSION 1u /* 0 means "never written": BPF uses built-in defaults */

struct sluice_config {
	__u32 version;              /* SLUICE_CONFIG_VERSION once user space wrote it */
	__u32 stages_enabled;       /* SLUICE_STAGE_BIT() mask */
	__u32 end_verdict;          /* a packet no stage consumed: PASS (normally) or DROP */
	__u32 tail_call_fail_verdict; /* PASS = fail-open, DROP = fail-closed */
	__u32 malformed_verdict;    /* malformed L2/L3/L4: PASS or DROP */
	__u32 non_ip_verdict;       /* non-IP ethertypes: PASS or DROP */
	__u32 drop_fragments;       /* 1: every IPv4/IPv6 fragment dropped */
	__u32 reserved;
};

/* ---- parse result handed from the entry program to the stages ---- */
#define SLUICE_MAX_VLAN_TAGS 2
#define SLUICE_MAX_IPV6_EXTHDRS 8

enum sluice_frag {
	SLUICE_FRAG_NONE = 0,
	SLUICE_FRAG_FIRST = 1,    /* offset 0, more fragments: L4 header present */
	SLUICE_FRAG_NONFIRST = 2, /* offset > 0: no L4 header, ports unknown */
};

/*
 * Addresses in network byte order; IPv4 in addr[0] with addr[1..3] zero.
 * Ports in host byte order (0 where the packet has no L4 header).
 */
struct sluice_pkt {
	__u32 src[4];
	__u32 dst[4];
	__u32 ifindex;      /* ingress */
	__u32 pkt_len;      /* frame length as received */
	__u16 eth_proto;    /* host order: ETH_P_IP, ETH_P_IPV6 or the non-IP type */
	__u16 l3_off;       /* offset of the IP header in the frame */
	__u16 l4_off;       /* offset of the L4 header, 0 if none */
	__u16 l3_len;       /* IP total length (IPv4) / 40 + payload (IPv6) */
	__u16 vlan_id[SLUICE_MAX_VLAN_TAGS];
	__u16 sport;
	__u16 dport;
	__u8 vlan_depth;
	__u8 ip_version;    /* 4 or 6 */
	__u8 ip_proto;      /* upper-layer protocol after the extension chain */
	__u8 frag;          /* enum sluice_frag */
	__u8 tcp_flags;     /* FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80 */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 has_l4;        /* 1 if ports/flags/type above are valid */
	__u32 note;         /* reason counted if the packet ends the pipeline untouched */
	__u32 tcp_seq;      /* TCP only, host order: sequence number */
	__u32 tcp_ack;      /* TCP only, host order: acknowledgment number */
	__u16 tcp_window;   /* TCP only, host order, as on the wire (unscaled) */
	__u16 tcp_hdr_len;  /* TCP only: doff * 4 */
	__u16 icmp_id;      /* ICMP/ICMPv6 echo request/reply only, host order: identifier */
	__u16 pad;
	__u32 stage_bank;   /* the bank the entry program chose for this packet (SLUICE_STAGE_BANKS) */
};

/* ---- LPM trie keys (struct bpf_lpm_trie_key layout) ---- */
struct sluice_lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct sluice_lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* ---- drop events (ring buffer) ---- */
#define SLUICE_EVENT_HEAD_BYTES 128

struct sluice_drop_event {
	__u64 timestamp_ns;  /* bpf_ktime_get_ns() */
	__u32 ifindex;
	__u32 pkt_len;       /* whole frame */
	__u32 reason;        /* enum sluice_reason */
	__u32 verdict;
	__u32 cap_len;       /* bytes valid in head[] */
	__u32 pad;
	__u8 head[SLUICE_EVENT_HEAD_BYTES];
};

/* ---- DIR-24-8: IPv4 longest-prefix match in two BPF arrays ---- */
/*
 * DPDK-style DIR-24-8 (xdp/dir24_8.h, maps/dir24_8.hpp). Logically, tbl24 has
 * one u32 entry per /24 (index = top 24 bits of the host-order address) and
 * tbl8 holds groups of 256 u32, one per address of a /24 that contains
 * prefixes longer than /24. A tbl24 entry with SLUICE_DIR24_8_GROUP_FLAG set
 * holds a tbl8 group index in its low bits; otherwise it (and every tbl8
 * entry) is the value itself. Values are 1..SLUICE_DIR24_8_VALUE_MAX; 0 means
 * "no prefix matches".
 *
 * Physically both maps are arrays of struct sluice_dir24_8_row (256 u32): the
 * kernel rounds array elements up to 8 bytes, so a u32-valued array would
 * interleave padding in the mmap view; 1 KiB rows leave none, and user space
 * sees each table as one flat u32 array. tbl24 row = one /16 (its 256 /24s);
 * tbl8 row = one group.
 */
#define SLUICE_DIR24_8_TBL24_BITS 24
#define SLUICE_DIR24_8_TBL24_ENTRIES (1u << SLUICE_DIR24_8_TBL24_BITS)
#define SLUICE_DIR24_8_TBL8_BITS (32 - SLUICE_DIR24_8_TBL24_BITS)
#define SLUICE_DIR24_8_GROUP_ENTRIES (1u << SLUICE_DIR24_8_TBL8_BITS)
#define SLUICE_DIR24_8_ROW_ENTRIES SLUICE_DIR24_8_GROUP_ENTRIES
#define SLUICE_DIR24_8_TBL24_ROWS (SLUICE_DIR24_8_TBL24_ENTRIES / SLUICE_DIR24_8_ROW_ENTRIES)
#define SLUICE_DIR24_8_GROUP_FLAG 0x80000000u
#define SLUICE_DIR24_8_NO_MATCH 0u
#define SLUICE_DIR24_8_VALUE_MAX (SLUICE_DIR24_8_GROUP_FLAG - 1)
/* 16 GiB of tbl8: beyond any use, and group * 256 + 255 still fits a u32. */
#define SLUICE_DIR24_8_TBL8_GROUPS_MAX ((1u << SLUICE_DIR24_8_TBL24_BITS) - 1)
/*
 * Default tbl8 size: one group per prefix of a 1M-prefix set, so no set of
 * up to 1,048,576 prefixes can exhaust it, whatever its length mix (each
 * prefix longer than /24 needs at most one group). Costs 1 GiB of kernel
 * memory (+64 MiB tbl24); a user with few long prefixes (routing) declares
 * fewer groups or shrinks it with bpf_map__set_max_entries() before load.
 */
#define SLUICE_DIR24_8_TBL8_GROUPS_DEFAULT (1u << 20)

struct sluice_dir24_8_row {
	__u32 entry[SLUICE_DIR24_8_ROW_ENTRIES];
};
/* ---- end DIR-24-8 ---- */

/* ---- filter stage (xdp/stage_filter.h, control/filter/) ---- */
/*
 * Reasons of the filter stage: SLUICE_REASON_FIRST_FILTER + n (32..47).
 * A packet the filter passes carries its reason on in pkt->note, so the
 * pipeline end counts "passed by rule" apart from "passed by default".
 */
#define SLUICE_REASON_FILTER_BLOCKLIST       (SLUICE_REASON_FIRST_FILTER + 0) /* prefix list: drop */
#define SLUICE_REASON_FILTER_ALLOWLIST       (SLUICE_REASON_FIRST_FILTER + 1) /* prefix list: pass */
#define SLUICE_REASON_FILTER_RULE_DROP       (SLUICE_REASON_FIRST_FILTER + 2)
#define SLUICE_REASON_FILTER_RULE_PASS       (SLUICE_REASON_FIRST_FILTER + 3) /* pass, pass-and-track, within rate */
#define SLUICE_REASON_FILTER_DEFAULT_DROP    (SLUICE_REASON_FIRST_FILTER + 4) /* nothing matched, policy drop */
#define SLUICE_REASON_FILTER_CONNTRACK       (SLUICE_REASON_FIRST_FILTER + 5) /* tracked flow: rules skipped */
#define SLUICE_REASON_FILTER_RATE_LIMITED    (SLUICE_REASON_FIRST_FILTER + 6) /* token bucket empty */
#define SLUICE_REASON_FILTER_SYN_RATE_LIMITED (SLUICE_REASON_FIRST_FILTER + 7) /* SYN-only class empty */
#define SLUICE_REASON_FILTER_AGGREGATE_RATE_LIMITED (SLUICE_REASON_FIRST_FILTER + 8) /* class's shared bucket empty */
#define SLUICE_REASON_FILTER_TCP_INVALID_FLAGS (SLUICE_REASON_FIRST_FILTER + 9) /* flag set no TCP sends (NULL, SYN+FIN, ...) */
#define SLUICE_REASON_FILTER_CT_RELATED      (SLUICE_REASON_FIRST_FILTER + 10) /* ICMP error quoting a tracked flow */
#define SLUICE_REASON_FILTER_LAST            SLUICE_REASON_FILTER_CT_RELATED

/*
 * TCP flag combinations a conforming stack sends: Linux conntrack's
 * tcp_valid_flags (nf_conntrack_proto_tcp.c), which nftables' "ct state
 * invalid" inherits. Index = flags & SLUICE_TCP_FLAGS_CHECKED (PSH, ECE and
 * CWR may accompany any of them); bit set = valid. Everything else (NULL,
 * FIN alone, SYN+FIN, SYN+RST, FIN+RST, SYN+ACK+RST, XMAS, ...) is dropped
 * as SLUICE_REASON_FILTER_TCP_INVALID_FLAGS when drop_invalid_tcp_flags is on.
 */
#define SLUICE_TCP_FLAGS_CHECKED 0x37u /* FIN SYN RST ACK URG */
#define SLUICE_TCP_FLAG_SET(flags) (1ull << (flags))
#define SLUICE_TCP_VALID_FLAG_SETS                                              \
	(SLUICE_TCP_FLAG_SET(0x02) /* SYN */ | SLUICE_TCP_FLAG_SET(0x22) /* SYN URG */ | \
	 SLUICE_TCP_FLAG_SET(0x12) /* SYN ACK */ | SLUICE_TCP_FLAG_SET(0x04) /* RST */ | \
	 SLUICE_TCP_FLAG_SET(0x14) /* RST ACK */ | SLUICE_TCP_FLAG_SET(0x11) /* FIN ACK */ | \
	 SLUICE_TCP_FLAG_SET(0x31) /* FIN ACK URG */ | SLUICE_TCP_FLAG_SET(0x10) /* ACK */ | \
	 SLUICE_TCP_FLAG_SET(0x30) /* ACK URG */)

/*
 * Rule set generations: every rule-set map is keyed by a generation (0/1).
 * User space writes the idle generation, then flips filter_generation (one
 * u32 array write); the stage reads the generation once per packet, so a
 * packet is classified wholly by one set.
 */
#define SLUICE_FILTER_GENERATIONS 2
#define SLUICE_FILTER_MAX_RULES 4096
#define SLUICE_FILTER_WORD_BITS 64
#define SLUICE_FILTER_BITMAP_WORDS (SLUICE_FILTER_MAX_RULES / SLUICE_FILTER_WORD_BITS)
/* Prefix lists: 1M IPv4 + 100k IPv6 per generation, both generations full during a swap */
#define SLUICE_FILTER_MAX_V4_PREFIXES (1u << 20)
#define SLUICE_FILTER_MAX_V6_PREFIXES (1u << 17)
/* Each rule adds at most two boundaries (lo, hi + 1) to port 0's interval */
#define SLUICE_FILTER_MAX_PORT_INTERVALS (2 * SLUICE_FILTER_MAX_RULES + 1)
/* Boundary array capacity: a power of two >= intervals, so an index can be masked */
#define SLUICE_FILTER_PORT_BOUNDS_CAP 16384
#define SLUICE_FILTER_PORT_SEARCH_STEPS 14 /* log2(SLUICE_FILTER_PORT_BOUNDS_CAP) */
#define SLUICE_FILTER_MAX_RATE_CLASSES 64
#define SLUICE_FILTER_MAX_IFINDEX_KEYS SLUICE_FILTER_MAX_RULES
#define SLUICE_FILTER_CONNTRACK_ENTRIES (1u << 18)
/* Unreplied flows (no reply seen yet) live apart, per family: filter_ct_unreplied{,_v4} */
#define SLUICE_FILTER_CT_UNREPLIED_ENTRIES (1u << 18)
#define SLUICE_FILTER_RATE_BUCKETS (1u << 18)
/* Spin locks guarding the source buckets, a bucket's chosen by a hash of its key (power of two) */
#define SLUICE_FILTER_RATE_LOCKS 1024
/* Default source prefix lengths of a rate class: an IPv6 site gets a /64, an IPv4 one an address */
#define SLUICE_FILTER_RATE_V4_PREFIX_DEFAULT 32
#define SLUICE_FILTER_RATE_V6_PREFIX_DEFAULT 64
/* Generation is part of every LPM key: prefixlen counts its 32 bits too */
#define SLUICE_FILTER_GEN_PREFIX_BITS 32

/*
 * IPv4 source prefix lists, as the data plane reads them: the LPM trie
 * filter_prefix_v4 (the source of truth) while a generation lists fewer
 * than SLUICE_FILTER_DIR_PREFIXES_DEFAULT IPv4 prefixes (FilterTableOptions
 * sets it), else a DIR-24-8 copy that user space creates and plugs into slot
 * <gen> of the arrays of maps fsrc4_tbl24 / fsrc4_tbl8 (xdp/dir24_8.h,
 * on-demand instances) before the generation goes live: an idle box carries
 * no 64 MiB tbl24. One array load per packet, plus one when the address's
 * /24 holds prefixes longer than /24, instead of a trie walk (~3 ns vs
 * ~110 ns at 1M). Below half the threshold the copy is unplugged again.
 * Entry value: action | rate_class << SLUICE_FILTER_DIR_CLASS_SHIFT; a
 * listed prefix's action is never 0, so no value reads as "no match".
 */
#define SLUICE_FILTER_DIR_ACTION_MASK 0xffu
#define SLUICE_FILTER_DIR_CLASS_SHIFT 8
/* The trie's cost grows with the list (forward's bench: +20 ns at 1, +60 ns at 1,000 prefixes vs DIR-24-8). */
#define SLUICE_FILTER_DIR_PREFIXES_DEFAULT 1024u
/*
 * Most tbl8 groups of a copy by default: one per /24 that holds prefixes
 * longer than /24 (a copy is sized to its list with room to grow; 65,536
 * groups = 64 MiB). More such /24s fail with ENOSPC and change nothing;
 * FilterTableOptions::tbl8_groups_max (sluiced --blocklist-tbl8-groups)
 * raises it, up to SLUICE_DIR24_8_TBL8_GROUPS_MAX (1M holds any list).
 */
#define SLUICE_FILTER_BLOCKLIST_TBL8_GROUPS_DEFAULT (1u << 16)

enum sluice_filter_action {
	SLUICE_FILTER_ACTION_NONE = 0,       /* invalid in a rule/prefix */
	SLUICE_FILTER_ACTION_DROP = 1,
	SLUICE_FILTER_ACTION_PASS = 2,
	SLUICE_FILTER_ACTION_PASS_TRACK = 3, /* pass and create a conntrack entry */
	SLUICE_FILTER_ACTION_RATE_LIMIT = 4, /* token bucket of rate_class per source */
};

/*
 * Bit i = the rule at position i in priority order (first match wins).
 * summary: bit w set iff word[w] != 0 (written by the compiler). ANDing the
 * summaries of a packet's bitmaps names the only words that can hold a
 * match, so a miss or a match in a sparse word costs the same with 1 or
 * 4096 rules instead of visiting every word.
 */
struct sluice_filter_bitmap {
	__u64 word[SLUICE_FILTER_BITMAP_WORDS];
	__u64 summary;
};

struct sluice_filter_v4_key {
	__u32 prefixlen;  /* SLUICE_FILTER_GEN_PREFIX_BITS + CIDR length */
	__u32 generation;
	__u8 addr[4];
};

struct sluice_filter_v6_key {
	__u32 prefixlen;  /* SLUICE_FILTER_GEN_PREFIX_BITS + CIDR length */
	__u32 generation;
	__u8 addr[16];
};

/* Prefix-list value and rule action. */
struct sluice_filter_verdict {
	__u32 action;     /* enum sluice_filter_action */
	__u32 rate_class; /* SLUICE_FILTER_ACTION_RATE_LIMIT only */
};

/*
 * Bits of sluice_filter_set.skip_lookups: the compiler sets one when the
 * field's lookup structure of that generation is empty (no rule constrains
 * the field), so the lookup's answer is known without doing it: the miss
 * bitmap for prefixes and ifindex, interval 0 (the whole port space) for
 * ports. 0, what a set written by an older build holds, looks up everything.
 */
#define SLUICE_FILTER_SKIP_SRC_V4  (1u << 0) /* filter_src_v4 has no entry: any[ANY_SRC_V4] */
#define SLUICE_FILTER_SKIP_DST_V4  (1u << 1)
#define SLUICE_FILTER_SKIP_SRC_V6  (1u << 2)
#define SLUICE_FILTER_SKIP_DST_V6  (1u << 3)
#define SLUICE_FILTER_SKIP_IFINDEX (1u << 4) /* filter_ifindex has no entry: any[ANY_IFINDEX] */
#define SLUICE_FILTER_SKIP_SPORT   (1u << 5) /* one port interval: port_bitmaps[.. + 0] */
#define SLUICE_FILTER_SKIP_DPORT   (1u << 6)

/* Header of one generation's rule set (filter_sets[generation]). */
struct sluice_filter_set {
	__u32 rule_count;
	__u32 default_verdict; /* SLUICE_VERDICT_PASS or SLUICE_VERDICT_DROP: nothing matched */
	__u32 skip_lookups;    /* SLUICE_FILTER_SKIP_* */
	__u32 pad;
};

/* Bitmaps used when a field has no lookup hit: filter_any_bitmaps[gen * COUNT + which] */
enum sluice_filter_any {
	SLUICE_FILTER_ANY_SRC_V4 = 0,  /* rules without src prefix that may match IPv4 */
	SLUICE_FILTER_ANY_DST_V4 = 1,
	SLUICE_FILTER_ANY_SRC_V6 = 2,
	SLUICE_FILTER_ANY_DST_V6 = 3,
	SLUICE_FILTER_ANY_IFINDEX = 4, /* rules without ingress interface */
	SLUICE_FILTER_ANY_PORTS = 5,   /* rules on neither port: packets without TCP/UDP header */
	SLUICE_FILTER_ANY_FLAGS = 6,   /* rules without TCP flags: packets without TCP header */
	SLUICE_FILTER_ANY_ICMP = 7,    /* rules without ICMP type: packets without ICMP header */
	SLUICE_FILTER_ANY_COUNT = 8,
};

/* Byte-indexed fields: filter_byte_bitmaps[(gen * COUNT + field) * 256 + byte] */
enum sluice_filter_byte_field {
	SLUICE_FILTER_BYTE_PROTO = 0,
	SLUICE_FILTER_BYTE_TCP_FLAGS = 1,
	SLUICE_FILTER_BYTE_ICMP_TYPE = 2,
	SLUICE_FILTER_BYTE_COUNT = 3,
};
#define SLUICE_FILTER_BYTE_VALUES 256

enum sluice_filter_port_dir {
	SLUICE_FILTER_PORT_SRC = 0,
	SLUICE_FILTER_PORT_DST = 1,
	SLUICE_FILTER_PORT_DIRS = 2,
};

/*
 * Elementary intervals of one port field: start[k] is the first port of
 * interval k, start[0] = 0, strictly increasing. Port p lies in the last k
 * with start[k] <= p; its bitmap is filter_port_bitmaps[(gen * DIRS + dir) *
 * SLUICE_FILTER_MAX_PORT_INTERVALS + k]. Key of filter_port_bounds: gen * DIRS + dir.
 */
struct sluice_filter_port_bounds {
	__u32 count;
	__u32 pad;
	__u16 start[SLUICE_FILTER_PORT_BOUNDS_CAP];
};

/*
 * The same intervals as a direct index, what packets read: interval[p] is
 * the k of port p (one load instead of a search over start[]). Key of
 * filter_port_index: gen * DIRS + dir.
 */
#define SLUICE_FILTER_PORT_SPACE 65536
struct sluice_filter_port_index {
	__u16 interval[SLUICE_FILTER_PORT_SPACE];
};

struct sluice_filter_ifindex_key {
	__u32 generation;
	__u32 ifindex;
};

/* Token-bucket limits; a rate of 0 leaves that dimension unlimited. */
struct sluice_filter_rate_limits {
	__u64 packets_per_sec;
	__u64 packet_burst;
	__u64 bytes_per_sec;
	__u64 byte_burst;
};

/* filter_rate_classes[gen * SLUICE_FILTER_MAX_RATE_CLASSES + class] */
struct sluice_filter_rate_class {
	struct sluice_filter_rate_limits source; /* each source prefix's own bucket */
	__u32 syn_only;  /* 1: only TCP SYN (without ACK) spends tokens; the rest pass */
	__u32 defined;   /* 0: class absent in this generation */
	/* filter_rate_aggregates[class], charged by every packet its source admits; both rates 0: none */
	struct sluice_filter_rate_limits aggregate;
	/*
	 * A source address is ANDed with these (network order) before it keys a
	 * bucket: the class's source prefix length, precomputed by user space so
	 * every bit pattern is a harmless mask and nothing needs a range check.
	 */
	__u32 v4_source_mask;
	__u32 v6_source_mask[4];
	__u32 pad;
};

/*
 * Token buckets per (class, address family, source prefix). The family is
 * part of the key because an IPv4 source only fills addr[0]: without it,
 * a.b.c.d and every IPv6 source whose first word is a.b.c.d (rest zero)
 * would spend one bucket.
 */
struct sluice_filter_rate_key {
	__u32 rate_class;
	__u32 addr[4];   /* network order, masked to the class's prefix; IPv4 in addr[0], the rest zero */
	__u8 ip_version; /* 4 or 6, as sluice_pkt.ip_version */
	__u8 pad[3];     /* zero: hashed with the key */
};

/* last_ns 0: never charged, the bucket is full (a fresh source or aggregate starts with its burst) */
struct sluice_filter_rate_bucket {
	__u64 last_ns;
	__u64 packet_tokens; /* in nano-packets: packets * 1e9 */
	__u64 byte_tokens;   /* in nano-bytes */
};

/*
 * The two values that hold a struct bpf_spin_lock need <linux/bpf.h> first
 * (BPF code and contract.hpp include it); a user of this header that cannot
 * include it (pcap's bpf.h defines struct bpf_insn too) does without them.
 */
#ifdef __LINUX_BPF_H__
/*
 * filter_rate_locks[hash(key) % SLUICE_FILTER_RATE_LOCKS]: the LRU hash of
 * the buckets cannot hold a bpf_spin_lock (the kernel refuses it there), so
 * a bucket is read and written under the lock of its stripe. One stripe per
 * cache line: CPUs on different stripes do not bounce a line.
 */
struct sluice_filter_rate_lock {
	struct bpf_spin_lock lock;
	__u32 pad[15];
};

/* filter_rate_aggregates[class]: one bucket per class for all its sources, a line each */
struct sluice_filter_rate_aggregate {
	struct bpf_spin_lock lock;
	__u32 pad;
	struct sluice_filter_rate_bucket bucket;
	__u64 pad2[4];
};
#endif /* __LINUX_BPF_H__ */

/* Connection tracking. Key normalised: (addr_a, port_a) < (addr_b, port_b). */
enum sluice_ct_state {
	SLUICE_CT_NONE = 0,
	SLUICE_CT_TCP_SYN = 1,         /* opened (SYN, or picked up mid-stream), no valid reply seen yet */
	SLUICE_CT_TCP_ESTABLISHED = 2, /* the reply direction answered the opening (SYN-ACK acking the SYN) */
	SLUICE_CT_TCP_CLOSING = 3,     /* an in-window FIN or RST seen */
	SLUICE_CT_UDP = 4,             /* one direction seen */
	SLUICE_CT_UDP_REPLIED = 5,     /* both directions seen */
	SLUICE_CT_ICMP = 6,            /* echo: requests by identifier, and (once replied) their replies */
	SLUICE_CT_OTHER = 7,
	SLUICE_CT_STATE_COUNT = 8,
};

#define SLUICE_CT_DIR_A_TO_B 0 /* sent by (addr_a, port_a) */
#define SLUICE_CT_DIR_B_TO_A 1

/*
 * IPv6 flows (filter_conntrack); also the form FilterTable reports every
 * flow in. ip_version says which table an entry came from.
 */
struct sluice_ct_key {
	__u32 addr_a[4];
	__u32 addr_b[4];
	__u16 port_a;
	__u16 port_b;
	__u8 proto;
	__u8 ip_version;
	__u16 pad;
};

/*
 * IPv4 flows (filter_conntrack_v4): the same normalisation in 16 bytes, so
 * the hash of a lookup reads 16 bytes instead of 40 (IPv4 is the common
 * case). No family field: the table is IPv4 only.
 */
struct sluice_ct_v4_key {
	__u32 addr_a;     /* network order */
	__u32 addr_b;
	__u16 port_a;     /* host order, 0 for ICMP */
	__u16 port_b;
	__u8 proto;
	__u8 pad[3];
};

/*
 * packets/bytes are plain (not atomic) adds: two CPUs updating one flow at
 * the same instant can lose an increment. RSS keeps a flow's direction on
 * one CPU, so this is rare, and an atomic add per counter cost more than
 * the rest of the hit. last_seen_ns is CLOCK_MONOTONIC_COARSE (a tick of
 * resolution; the same base as CLOCK_MONOTONIC).
 */
struct sluice_ct_entry {
	__u64 last_seen_ns;
	__u64 packets[2]; /* per direction: SLUICE_CT_DIR_* */
	__u64 bytes[2];
	__u32 state;      /* enum sluice_ct_state */
	__u32 dirs_seen;  /* bit per direction */
	/* TCP window tracking, per direction (xdp/filter_conntrack.h) */
	__u32 seq_end[2]; /* highest sequence number + length seen: where the next segment starts */
	__u32 window[2];  /* receive window it last advertised, scaled */
	__u8 orig_dir;    /* direction of the packet that created the entry */
	__u8 replied;     /* 1: a valid reply was seen; the entry lives in the main (replied) table */
	__u8 wscale[2];   /* window scale of its SYN; SLUICE_CT_NO_WSCALE without one */
	__u32 tcp_flags;  /* SLUICE_CT_F_* */
};
#define SLUICE_CT_NO_WSCALE 0xffu
#define SLUICE_CT_F_SEQ_KNOWN_A 0x1u /* seq_end[A_TO_B] holds a seen segment */
#define SLUICE_CT_F_SEQ_KNOWN_B 0x2u
#define SLUICE_CT_F_SYN_OPENED 0x4u  /* created by a SYN: the reply must be a SYN-ACK acking it */
#define SLUICE_CT_F_SYNACK_SEEN 0x8u /* that SYN-ACK seen: the originator's ACK of it establishes */

/* Settings that are not part of a rule set: filter_settings[0]. */
/* 2: drop_invalid_tcp_flags (was padding); a version-1 slot reads as never written */
#define SLUICE_FILTER_SETTINGS_VERSION 2u /* 0: never written, built-in defaults */
struct sluice_filter_settings {
	__u32 version;
	__u32 conntrack_enabled;  /* 0: pass-and-track behaves as pass, no lookups */
	__u32 drop_sample_every;  /* 1 in N filter drops to drop_events; 0 = off */
	__u32 drop_invalid_tcp_flags; /* 1: TCP flag sets outside SLUICE_TCP_VALID_FLAG_SETS are dropped */
	__u32 ct_timeout_s[SLUICE_CT_STATE_COUNT]; /* idle timeout per state */
};

/*
 * Per-CPU event counters of the filter stage (filter_event_counters[slot]),
 * apart from the verdict counters: an event here never changes how the
 * packet itself is counted.
 */
enum sluice_filter_event_slot {
	SLUICE_FILTER_EVENT_SAMPLE_LOST = 0, /* a sampled drop found drop_events full */
	SLUICE_FILTER_EVENT_SLOTS = 1,
};
/* ---- end filter ---- */

/* ---- lb stage (xdp/stage_lb.h, xdp/lb_*.h; control/lb/) ---- */
/*
 * A VIP is (address, port, protocol); port 0 is a port-less VIP, every port
 * of the address, looked up when the exact key misses. Each VIP owns a slot
 * vip_id in lb_maglev (its Maglev table) and lb_vip_counters. Backends are
 * slots 1..SLUICE_LB_MAX_BACKENDS-1 of lb_backends (0 is "no backend");
 * every Maglev entry and connection names one.
 */
#define SLUICE_LB_MAX_VIPS 1024
#define SLUICE_LB_MAX_BACKENDS 4096
#define SLUICE_LB_NO_BACKEND 0u
#define SLUICE_LB_MAGLEV_SIZE_DEFAULT 65537u
#define SLUICE_LB_MAGLEV_SIZE_MAX 1000003u   /* prime; 4 MB per table */
#define SLUICE_LB_CONN_ENTRIES_DEFAULT (1u << 18) /* LoadOptions::lb_conn_entries */
#define SLUICE_LB_WEIGHT_MAX 1000u

#define SLUICE_REASON_LB_ENCAP        (SLUICE_REASON_FIRST_LB + 0) /* encapsulated to its backend and sent */
#define SLUICE_REASON_LB_L2_DSR       (SLUICE_REASON_FIRST_LB + 1) /* destination MAC set to its backend's, sent */
#define SLUICE_REASON_LB_NO_BACKEND   (SLUICE_REASON_FIRST_LB + 2) /* VIP without a live backend: drop */
#define SLUICE_REASON_LB_TOO_BIG      (SLUICE_REASON_FIRST_LB + 3) /* TX: answered ICMP frag-needed / packet-too-big; DROP: not answered (rate, martian source) */
#define SLUICE_REASON_LB_ENCAP_FAILED (SLUICE_REASON_FIRST_LB + 4) /* no headroom for the outer header: drop */
#define SLUICE_REASON_LB_FRAGMENT     (SLUICE_REASON_FIRST_LB + 5) /* a fragment to a VIP: no ports to keep its flow on one backend, drop */
#define SLUICE_REASON_LB_FORWARD      (SLUICE_REASON_FIRST_LB + 6) /* encapsulated, handed to the forward stage (counted there if it takes it) */
#define SLUICE_REASON_LB_LAST         SLUICE_REASON_LB_FORWARD

/* lb_vips key. Addresses network order, IPv4 in addr[0], addr[1..3] zero. */
struct sluice_lb_vip_key {
	__u32 addr[4];
	__u16 port;       /* host order; 0: port-less VIP */
	__u8 proto;       /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 ip_version;  /* 4 or 6 */
};

#define SLUICE_LB_VIP_F_L2_DSR 0x1u /* rewrite the destination MAC only (backends on this segment) */

struct sluice_lb_vip {
	__u32 vip_id;     /* < SLUICE_LB_MAX_VIPS: slot in lb_maglev and lb_vip_counters */
	__u32 flags;      /* SLUICE_LB_VIP_F_* */
};

enum sluice_lb_backend_state {
	SLUICE_LB_BACKEND_FREE = 0,     /* slot unused (removed): connections naming it pick again */
	SLUICE_LB_BACKEND_UP = 1,       /* in the Maglev tables */
	SLUICE_LB_BACKEND_DRAINING = 2, /* out of the tables; its existing connections stay */
	SLUICE_LB_BACKEND_DOWN = 3,     /* health check failed: out of the tables; TCP connections stay, UDP flows pick again */
	SLUICE_LB_BACKEND_STATE_COUNT = 4,
};

/* lb_backends[backend_id] */
struct sluice_lb_backend {
	__u32 addr[4];    /* network order, IPv4 in addr[0] */
	__u8 ip_version;  /* 4 or 6 */
	__u8 state;       /* enum sluice_lb_backend_state */
	__u8 mac[6];      /* L2 DSR only: the backend's MAC on this segment */
	__u32 epoch;      /* bumped each time the slot is given to a new backend: stale connections pick again */
	__u32 vip_id;     /* the VIP it serves (one slot per VIP and backend): a connection of another VIP picks again */
};

/*
 * A Maglev table (inner array of lb_maglev, one per VIP, replaced whole with
 * one update of the outer map): entry 0 holds the table size N (prime,
 * <= SLUICE_LB_MAGLEV_SIZE_MAX), entries 1..N backend ids; a flow with hash
 * h takes entry 1 + h % N. Size and entries swap together.
 */
#define SLUICE_LB_MAGLEV_SIZE_SLOT 0u

/* Connection tables: lb_conns_v4 (compact key) and lb_conns (IPv6). Ports host order. */
struct sluice_lb_flow_v4_key {
	__u32 src;        /* network order */
	__u32 dst;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct sluice_lb_flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 ip_version;
	__u16 pad;
};

struct sluice_lb_conn {
	__u64 last_seen_ns;   /* CLOCK_MONOTONIC_COARSE */
	__u32 backend_id;
	__u32 backend_epoch;  /* lb_backends[backend_id].epoch when chosen */
	__u32 vip_id;
	__u32 pad;
};

enum sluice_lb_egress {
	SLUICE_LB_EGRESS_TX = 0,        /* XDP_TX: out of the port it came in on */
	SLUICE_LB_EGRESS_REDIRECT = 1,  /* bpf_redirect_map(lb_egress_ports, 0) */
	SLUICE_LB_EGRESS_FORWARD = 2,   /* hand to the forward stage, routed by the outer destination */
	SLUICE_LB_EGRESS_COUNT = 3,
};

#define SLUICE_LB_F_ENTROPY_SOURCE 0x1u /* outer IPv4 source's low 16 bits (IPv6: low 32) from the flow hash */

/* Settings of the lb stage: lb_settings[0]. */
#define SLUICE_LB_SETTINGS_VERSION 1u /* 0: never written: the stage passes everything on */
struct sluice_lb_settings {
	__u32 version;
	__u32 flags;             /* SLUICE_LB_F_* */
	__u32 encap_src_v4;      /* network order; 0: IPv4 backends unreachable (drop, NO_BACKEND) */
	__u32 encap_src_v6[4];   /* all zero: IPv6 backends unreachable */
	__u32 egress;            /* enum sluice_lb_egress */
	__u32 conn_timeout_s;    /* an idle connection older than this picks again */
	__u8 next_hop_mac[6];    /* destination MAC of an encapsulated frame */
	__u8 src_mac[6];         /* its source MAC; all zero: the ingress frame's destination MAC */
	__u16 mtu;               /* egress MTU (L3); 0: no check */
	__u16 icmp_burst;        /* too-big answers: bucket depth per CPU (xdp/icmp_guard.h) */
	__u32 icmp_rate;         /* too-big answers per second per CPU; 0: never answer (56 bytes in all) */
};

/* Per-CPU, lb_vip_counters[vip_id] and lb_backend_counters[backend_id]. */
struct sluice_lb_counter {
	__u64 packets;
	__u64 bytes;
	__u64 new_conns;
	__u64 pad;
};

/* Per-CPU event counters of the lb stage: lb_event_counters[slot]. */
enum sluice_lb_event_slot {
	SLUICE_LB_EVENT_CONN_INSERT_FAILED = 0, /* connection table update failed: the packet still went */
	SLUICE_LB_EVENT_RESELECTED = 1,         /* an entry named a freed, reused or idle backend: picked again */
	SLUICE_LB_EVENT_CORRUPT_TABLE = 2,      /* a Maglev size or backend id out of range: dropped */
	SLUICE_LB_EVENT_ICMP_RATE_LIMITED = 3,  /* too big, but this CPU's answer bucket was empty: dropped unanswered */
	SLUICE_LB_EVENT_ICMP_MARTIAN = 4,       /* too big from a source no answer may go to (icmp_guard.h): dropped */
	SLUICE_LB_EVENT_SLOTS = 5,
};
/* ---- end lb ---- */

/* ---- forward stage (xdp/stage_forward.h, xdp/forward_*.h; control/route/) ---- */
/*
 * A router in XDP. The destination (of the outer header, when lb hands an
 * encapsulated packet over: the stage reads struct sluice_pkt only) is looked
 * up in LPM tries, fwd_routes_v4 / fwd_routes_v6, the source of truth. IPv4
 * may instead read a DIR-24-8 copy of fwd_routes_v4 that user space creates
 * only when the route count makes it pay (SLUICE_FWD_DIR_ROUTES_DEFAULT) and
 * plugs into the one-slot array-of-maps fwd_dir4_tbl24 / fwd_dir4_tbl8: an
 * idle box carries no 64 MiB tbl24. An empty slot (either) means "read the
 * trie", which is always right, so plugging and unplugging need no flip.
 */
#define SLUICE_REASON_FWD_ROUTED          (SLUICE_REASON_FIRST_FORWARD + 0) /* TTL decremented, MACs rewritten, redirected to the egress port */
#define SLUICE_REASON_FWD_NO_ROUTE        (SLUICE_REASON_FIRST_FORWARD + 1) /* no prefix covers the destination: no_route_verdict */
#define SLUICE_REASON_FWD_TTL_EXCEEDED    (SLUICE_REASON_FIRST_FORWARD + 2) /* TX: ICMP time exceeded sent back; DROP: not answered (rate, no source, error about an error) */
#define SLUICE_REASON_FWD_REDIRECT_FAILED (SLUICE_REASON_FIRST_FORWARD + 3) /* the next hop's devmap slot is empty: drop */
#define SLUICE_REASON_FWD_TO_STACK        (SLUICE_REASON_FIRST_FORWARD + 4) /* local or "to stack" prefix: REDIRECT into the cpumap, or PASS */
#define SLUICE_REASON_FWD_NOT_ROUTABLE    (SLUICE_REASON_FIRST_FORWARD + 5) /* note only: multicast, broadcast, link-local, loopback, VLAN-tagged: left to the kernel */
#define SLUICE_REASON_FWD_LAST            SLUICE_REASON_FWD_NOT_ROUTABLE

/*
 * A route value (trie value and DIR-24-8 entry alike, one u32; never 0 and
 * never with bit 31, the DIR-24-8 group flag):
 *   bits 28..29 kind (enum sluice_fwd_kind, never 0),
 *   bits 14..27 target: next-hop id (NEXTHOP) or group id (GROUP), 0 for LOCAL,
 *   bits  0..13 counter slot in fwd_route_counters (0: the route is not
 *               counted on its own; its next hop still is).
 */
enum sluice_fwd_kind {
	SLUICE_FWD_KIND_NONE = 0,    /* never stored */
	SLUICE_FWD_KIND_NEXTHOP = 1,
	SLUICE_FWD_KIND_GROUP = 2,
	SLUICE_FWD_KIND_LOCAL = 3,   /* to the local stack (cpumap or XDP_PASS) */
};
#define SLUICE_FWD_SLOT_BITS 14
#define SLUICE_FWD_TARGET_BITS 14
#define SLUICE_FWD_TARGET_SHIFT SLUICE_FWD_SLOT_BITS
#define SLUICE_FWD_KIND_SHIFT (SLUICE_FWD_SLOT_BITS + SLUICE_FWD_TARGET_BITS)
#define SLUICE_FWD_SLOT_MASK ((1u << SLUICE_FWD_SLOT_BITS) - 1)
#define SLUICE_FWD_TARGET_MASK ((1u << SLUICE_FWD_TARGET_BITS) - 1)
#define SLUICE_FWD_KIND_MASK 0x3u
#define SLUICE_FWD_ROUTE_VALUE(kind, target, slot)                            \
	(((__u32)(kind) << SLUICE_FWD_KIND_SHIFT) | ((__u32)(target) << SLUICE_FWD_TARGET_SHIFT) | (__u32)(slot))
#define SLUICE_FWD_ROUTE_KIND(value) (((value) >> SLUICE_FWD_KIND_SHIFT) & SLUICE_FWD_KIND_MASK)
#define SLUICE_FWD_ROUTE_TARGET(value) (((value) >> SLUICE_FWD_TARGET_SHIFT) & SLUICE_FWD_TARGET_MASK)
#define SLUICE_FWD_ROUTE_SLOT(value) ((value) & SLUICE_FWD_SLOT_MASK)
/* Bits a valid value never has (bit 30 and 31): the data plane fails closed on them. */
#define SLUICE_FWD_ROUTE_RESERVED_BITS (~((SLUICE_FWD_KIND_MASK << SLUICE_FWD_KIND_SHIFT) | \
	(SLUICE_FWD_TARGET_MASK << SLUICE_FWD_TARGET_SHIFT) | SLUICE_FWD_SLOT_MASK))

#define SLUICE_FWD_MAX_V4_ROUTES (1u << 20)
#define SLUICE_FWD_MAX_V6_ROUTES (1u << 18)
#define SLUICE_FWD_MAX_NEXTHOPS 4096        /* ids 1..4095; 0 is "none" */
#define SLUICE_FWD_MAX_GROUPS 1024          /* ids 1..1023 */
#define SLUICE_FWD_ROUTE_COUNTERS 4096      /* slots 1..4095: the first routes added get one */
#define SLUICE_FWD_MAX_PORTS 256            /* devmap slots: egress interfaces */
#define SLUICE_FWD_MAX_CPUS 128             /* cpumap entries (key = CPU number) */
#define SLUICE_FWD_GROUP_MAX_MEMBERS 16
#define SLUICE_FWD_GROUP_BUCKETS 256        /* power of two: hash & (BUCKETS - 1) */
#define SLUICE_FWD_WEIGHT_MAX 256
#define SLUICE_FWD_CPUMAP_QSIZE_DEFAULT 2048
#define SLUICE_FWD_CPUMAP_QSIZE_MAX 16384   /* the kernel's cpumap limit */
/*
 * DIR-24-8 for IPv4 from this many IPv4 routes on. bench/forward_bench: the
 * trie costs ~20 ns more per packet than DIR-24-8 at 1 route, ~60 ns at
 * 1,000, ~80 ns at 10,000; DIR-24-8 costs 64 MiB of tbl24 at any size.
 */
#define SLUICE_FWD_DIR_ROUTES_DEFAULT 4096u
/* ICMP error quote: original IP header and as much after it as fits (RFC 792 asks for header + 8 bytes). */
#define SLUICE_FWD_ICMP_QUOTE_MAX 128
/* Built-in ICMP time-exceeded budget per CPU, until user space sets one. */
#define SLUICE_FWD_ICMP_RATE_DEFAULT 100    /* per second */
#define SLUICE_FWD_ICMP_BURST_DEFAULT 50

/* fwd_nexthops[id]: ifindex 0 = free slot (a route naming it is corrupt state). */
struct sluice_fwd_nexthop {
	__u32 ifindex;       /* egress interface */
	__u32 port;          /* its slot in fwd_ports (devmap), < SLUICE_FWD_MAX_PORTS */
	__u8 src_mac[6];     /* the egress interface's MAC */
	__u8 dst_mac[6];     /* the next hop's (neighbour's) MAC */
	__u32 pad;
};

/*
 * fwd_groups[id]: ECMP. The flow hash picks bucket[hash & (BUCKETS - 1)], a
 * next-hop id; user space spreads the buckets over the members in
 * proportion to their weights. members[] is the operator's view (listing).
 */
struct sluice_fwd_group_member {
	__u16 nexthop;
	__u16 weight;        /* 1..SLUICE_FWD_WEIGHT_MAX */
};

struct sluice_fwd_group {
	__u32 member_count;  /* 1..SLUICE_FWD_GROUP_MAX_MEMBERS; 0 = free slot */
	__u32 pad;
	struct sluice_fwd_group_member members[SLUICE_FWD_GROUP_MAX_MEMBERS];
	__u16 bucket[SLUICE_FWD_GROUP_BUCKETS];
};

/* fwd_settings[0] */
#define SLUICE_FWD_SETTINGS_VERSION 1u /* 0: never written (no RouteTable yet): the stage hands every packet on untouched */
struct sluice_fwd_settings {
	__u32 version;
	__u32 no_route_verdict;   /* SLUICE_VERDICT_PASS or SLUICE_VERDICT_DROP */
	__u32 cpu_count;          /* 0: cpumap off, local traffic XDP_PASS; else cpus[0..cpu_count) */
	__u32 icmp_rate;          /* time-exceeded answers per second per CPU; 0: never answer */
	__u32 icmp_burst;         /* bucket depth per CPU */
	__u32 icmp_src_v4;        /* network order: source of ICMP time exceeded; 0: no answer */
	__u32 icmp_src_v6[4];     /* all zero: no ICMPv6 answer */
	__u32 cpus[SLUICE_FWD_MAX_CPUS]; /* cpumap keys, each < SLUICE_FWD_MAX_CPUS */
};

/* Per-CPU ICMP answer bucket: fwd_icmp_bucket[0]. */
struct sluice_fwd_icmp_bucket {
	__u64 last_ns;
	__u64 tokens;        /* nano-tokens: answers * 1e9 */
};

/* Per-CPU event counters of the forward stage: fwd_event_counters[slot] (packets = events). */
enum sluice_fwd_event_slot {
	SLUICE_FWD_EVENT_ICMP_RATE_LIMITED = 0, /* a time-exceeded answer the bucket refused */
	SLUICE_FWD_EVENT_ICMP_NO_SOURCE = 1,    /* no ICMP source address configured */
	SLUICE_FWD_EVENT_ICMP_SUPPRESSED = 2,   /* about an ICMP error or a non-first fragment: never answered */
	SLUICE_FWD_EVENT_CPUMAP_FALLBACK = 3,   /* cpumap slot empty: passed instead */
	SLUICE_FWD_EVENT_SLOTS = 4,
};
/* ---- end forward ---- */

/* ---- map sizes ---- */
#define SLUICE_DROP_EVENTS_BYTES (256 * 1024)

/* ---- redirect errors (xdp/redirect_errors.bpf.c) ----
 * A redirect that the program asked for can still fail after it returned:
 * the target port refuses the frame (down, no XDP on a veth peer, a full
 * ring) or a cpumap queue is full. The kernel reports these only on its xdp
 * tracepoints; raw tracepoint programs count them per key here, in sluice's
 * own network namespace and for sluice's own redirect maps only (the devmap
 * bulk transmit names no map: any program's, in that namespace).
 */
enum sluice_redirect_error_kind {
	/* xdp_do_redirect refused: `to` is the map index, `err` the errno. */
	SLUICE_REDIRECT_ERR_REDIRECT = 1,
	/* devmap bulk transmit: frames the egress driver did not take. */
	SLUICE_REDIRECT_ERR_XMIT = 2,
	/* cpumap enqueue: frames dropped on a full CPU queue (`to` the CPU). */
	SLUICE_REDIRECT_ERR_CPUMAP = 3,
};
#define SLUICE_REDIRECT_ERR_MAX_KEYS 1024
/* sluice's redirect maps the xdp_redirect_err program matches (fwd_ports, lb_egress_ports, fwd_cpus) */
#define SLUICE_REDIRECT_ERR_MAX_MAPS 4

struct sluice_redirect_error_key {
	__u32 kind;    /* enum sluice_redirect_error_kind */
	__s32 ifindex; /* receiving device; 0 for the cpumap */
	__s32 to;      /* egress ifindex / map index / CPU */
	__s32 err;     /* negative errno as the kernel reports it; 0 none */
};

#endif /* SLUICE_MAPS_H */
