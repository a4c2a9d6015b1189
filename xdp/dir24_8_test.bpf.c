// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Test and bench programs for DIR-24-8 (xdp/dir24_8.h): look up the IPv4
 * source address of an untagged Ethernet frame, return XDP_DROP on a match
 * and XDP_PASS otherwise, and record the value found in last_value so a test
 * can check the exact value, not only "matched or not".
 *
 * lpm_src does the same with a kernel LPM trie so the bench compares both
 * structures holding the same prefixes, at the same parsing cost.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "dir24_8.h"
#include "sluice_maps.h"

/* Enough for the 1M-prefix bench set; the trie allocates per element. */
#define DIR24_8_TEST_LPM_MAX_ENTRIES (1u << 20)
/* Returned for frames that are not IPv4 or are truncated: tests expect neither. */
#define DIR24_8_TEST_BAD_FRAME XDP_ABORTED

SLUICE_DIR24_8_MAPS(blocklist);

/* Slot 0: value of the last lookup (SLUICE_DIR24_8_NO_MATCH when none). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} last_value SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, DIR24_8_TEST_LPM_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__type(key, struct sluice_lpm_v4_key);
	__type(value, __u32);
} lpm_blocklist SEC(".maps");

/* The IPv4 header of an untagged frame, or NULL. */
static __always_inline struct iphdr *ipv4_header(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	struct iphdr *ip = (void *)(eth + 1);
	/* Only saddr is read: the fixed 20 bytes are enough. */
	if ((void *)(ip + 1) > data_end)
		return NULL;
	return ip;
}

static __always_inline int verdict_for(__u32 value)
{
	__u32 slot = 0;
	__u32 *last = bpf_map_lookup_elem(&last_value, &slot);

	if (last)
		*last = value;
	return value != SLUICE_DIR24_8_NO_MATCH ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int dir24_8_src(struct xdp_md *ctx)
{
	struct iphdr *ip = ipv4_header(ctx);

	if (!ip)
		return DIR24_8_TEST_BAD_FRAME;
	return verdict_for(dir24_8_lookup(&blocklist_tbl24, &blocklist_tbl8, ip->saddr));
}

SEC("xdp")
int lpm_src(struct xdp_md *ctx)
{
	struct iphdr *ip = ipv4_header(ctx);

	if (!ip)
		return DIR24_8_TEST_BAD_FRAME;
	struct sluice_lpm_v4_key key = {.prefixlen = 32};
	__builtin_memcpy(key.addr, &ip->saddr, sizeof(key.addr));
	__u32 *value = bpf_map_lookup_elem(&lpm_blocklist, &key);
	return verdict_for(value ? *value : SLUICE_DIR24_8_NO_MATCH);
}

char _license[] SEC("license") = "GPL";
