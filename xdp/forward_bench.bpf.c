// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Bench programs of the forward stage (bench/forward_bench.cpp).
 * BPF_PROG_TEST_RUN with repeat > 1 runs every repeat on the same buffer
 * without restoring it, so a routed frame would arrive at repeat 2 with its
 * TTL already decremented and its MACs rewritten. Each program here first
 * copies the frame's first BENCH_RESTORE_BYTES back from bench_restore (the
 * same prologue in the baseline, so both sides pay it):
 *   bench_restore_only  the prologue alone, then XDP_DROP: the baseline of the
 *                       routed rows (and, against the bare empty program, the
 *                       harness's own cost);
 *   bench_forward       parse + the forward stage itself (stage_forward.h),
 *                       on the loaded sluice object's maps (reused fds);
 *   bench_fib           a minimal router on the kernel's FIB, as the kernel's
 *                       samples/bpf/xdp_fwd does: bpf_fib_lookup, TTL - 1,
 *                       MACs, bpf_redirect; bench_fib_counters[0] counts its
 *                       routed packets so the bench can prove every repeat was.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"
#include "maps.bpf.h"
#include "parsing.h"
#include "pipeline.h"
#include "stage_forward.h"

#define BENCH_RESTORE_BYTES 64
#define BENCH_AF_INET 2
#define BENCH_AF_INET6 10

struct bench_frame {
	__u8 bytes[BENCH_RESTORE_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_frame);
} bench_restore SEC(".maps");

/* Slot 0: packets bench_fib routed; slot 1: packets it did not. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} bench_fib_counters SEC(".maps");

static __always_inline int bench_restore_frame(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 slot = 0;
	const struct bench_frame *frame = bpf_map_lookup_elem(&bench_restore, &slot);

	if (!frame || data + BENCH_RESTORE_BYTES > data_end)
		return -1;
	__builtin_memcpy(data, frame->bytes, BENCH_RESTORE_BYTES);
	return 0;
}

SEC("xdp")
int bench_restore_only(struct xdp_md *ctx)
{
	return bench_restore_frame(ctx) ? XDP_ABORTED : XDP_DROP;
}

SEC("xdp")
int bench_forward(struct xdp_md *ctx)
{
	struct sluice_pkt *pkt = pipeline_pkt();

	if (bench_restore_frame(ctx) || !pkt)
		return XDP_ABORTED;
	if (parse_packet(ctx, pkt) != SLUICE_PARSE_OK)
		return XDP_ABORTED;
	pkt->stage_bank = 0;
	return stage_forward(ctx);
}

static __always_inline void bench_fib_count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&bench_fib_counters, &slot);

	if (n)
		(*n)++;
}

SEC("xdp")
int bench_fib(struct xdp_md *ctx)
{
	struct bpf_fib_lookup fib = {};

	if (bench_restore_frame(ctx))
		return XDP_ABORTED;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		if ((void *)(ip + 1) > data_end || ip->ttl <= 1)
			return XDP_PASS;
		fib.family = BENCH_AF_INET;
		fib.tos = ip->tos;
		fib.l4_protocol = ip->protocol;
		fib.tot_len = bpf_ntohs(ip->tot_len);
		fib.ipv4_src = ip->saddr;
		fib.ipv4_dst = ip->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		if ((void *)(ip6 + 1) > data_end || ip6->hop_limit <= 1)
			return XDP_PASS;
		fib.family = BENCH_AF_INET6;
		fib.l4_protocol = ip6->nexthdr;
		fib.tot_len = bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(fib.ipv6_src, &ip6->saddr, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, &ip6->daddr, sizeof(fib.ipv6_dst));
	} else {
		return XDP_PASS;
	}
	fib.ifindex = ctx->ingress_ifindex;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS) {
		bench_fib_count(1);
		return XDP_PASS;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		__u32 check = ip->check;
		check += bpf_htons(0x0100);
		ip->check = (__u16)(check + (check >= 0xffff));
		ip->ttl--;
	} else {
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	bench_fib_count(0);
	return bpf_redirect(fib.ifindex, 0);
}

char _license[] SEC("license") = "GPL";
