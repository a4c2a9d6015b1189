/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The forward stage: a router. Per packet, from what struct sluice_pkt says
 * (after lb's FORWARD egress: the outer header it prepended):
 *   0. never configured (fwd_settings unwritten): handed on untouched;
 *   1. not routable here (multicast, broadcast, link-local, loopback,
 *      VLAN-tagged, IPv4 options, IPv6 hop-by-hop): left to the kernel
 *      through the pipeline end, note SLUICE_REASON_FWD_NOT_ROUTABLE;
 *   2. route lookup (forward_lookup.h): none -> no_route_verdict;
 *   3. local / "to stack" -> cpumap CPU by flow hash, or XDP_PASS;
 *   4. next hop (a group picks one by flow hash); TTL <= 1 -> ICMP time
 *      exceeded (XDP_TX) or drop;
 *   5. TTL - 1, MACs rewritten, bpf_redirect_map through fwd_ports.
 * Fragments are routed like any packet (the flow hash leaves their ports
 * out). A route back out of the ingress port is routed too (hairpin): the
 * next hop says where the packet goes, and a one-armed router needs it.
 */
#ifndef SLUICE_XDP_STAGE_FORWARD_H
#define SLUICE_XDP_STAGE_FORWARD_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#include "pipeline.h"
#include "forward_maps.bpf.h"
#include "forward_hash.h"
#include "forward_lookup.h"
#include "forward_nexthop.h"
#include "forward_rewrite.h"
#include "forward_icmp.h"
#include "icmp_guard.h"

/*
 * The settings, or NULL while user space never wrote them: the stage then
 * hands every packet on untouched, as the pass-through did before routing
 * existed, so a box that does not route keeps its pipeline-end verdicts.
 */
static __always_inline const struct sluice_fwd_settings *fwd_settings_get(void)
{
	__u32 slot = 0;
	const struct sluice_fwd_settings *s = bpf_map_lookup_elem(&fwd_settings, &slot);

	if (!s || s->version != SLUICE_FWD_SETTINGS_VERSION)
		return NULL;
	return s;
}

#define FWD_IPV6_NEXTHDR_HOP 0
/* the I/G bit of a destination MAC: set for broadcast and multicast */
#define FWD_ETH_GROUP_BIT 0x01

static __always_inline int fwd_routable(struct xdp_md *ctx, const struct sluice_pkt *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	/* untagged frames with the IP header right after Ethernet */
	if (pkt->l3_off != ETH_HLEN || (void *)(eth + 1) > data_end)
		return 0;
	/* a group address (broadcast, multicast: the I/G bit) is for the segment: a router that routed it would
	 * duplicate what the segment already delivers */
	if (eth->h_dest[0] & FWD_ETH_GROUP_BIT)
		return 0;
	if (pkt->ip_version == 4) {
		struct iphdr *ip = (void *)(eth + 1);
		if (eth->h_proto != bpf_htons(ETH_P_IP) || (void *)(ip + 1) > data_end)
			return 0;
		/* options (record route, ...) are the kernel's to process */
		if (ip->ihl != sizeof(*ip) / 4)
			return 0;
		/* martians (icmp_guard.h): addresses a router never forwards, or answers */
		return !sluice_v4_martian(pkt->dst[0]) && !sluice_v4_martian(pkt->src[0]);
	}
	if (pkt->ip_version == 6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if (eth->h_proto != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > data_end)
			return 0;
		/* hop-by-hop options are for every router to read: the kernel's */
		if (ip6->nexthdr == FWD_IPV6_NEXTHDR_HOP)
			return 0;
		return !sluice_v6_martian(pkt->dst) && !sluice_v6_martian(pkt->src);
	}
	return 0;
}

static __always_inline int fwd_corrupt(struct xdp_md *ctx)
{
	return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
}

/* Local traffic: a CPU of the configured set by flow hash, or the kernel on this CPU. */
static __always_inline int fwd_to_stack(struct xdp_md *ctx, const struct sluice_fwd_settings *s,
					const struct sluice_pkt *pkt)
{
	const __u32 count = s->cpu_count;

	if (count == 0)
		return pipeline_finish(ctx, SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_TO_STACK);
	if (count > SLUICE_FWD_MAX_CPUS)
		return fwd_corrupt(ctx);
	__u32 index = fwd_flow_hash(pkt) % count;
	/* clang knows index < count <= MAX and would drop the check the verifier needs */
	asm volatile("" : "+r"(index));
	if (index >= SLUICE_FWD_MAX_CPUS)
		return fwd_corrupt(ctx);
	const __u32 cpu = s->cpus[index];
	if (cpu >= SLUICE_FWD_MAX_CPUS)
		return fwd_corrupt(ctx);
	if (bpf_redirect_map(&fwd_cpus, cpu, XDP_PASS) == XDP_REDIRECT)
		return pipeline_finish(ctx, SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_TO_STACK);
	fwd_event(SLUICE_FWD_EVENT_CPUMAP_FALLBACK, ctx->data_end - ctx->data);
	return pipeline_finish(ctx, SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_TO_STACK);
}

static __always_inline int stage_forward(struct xdp_md *ctx)
{
	const struct sluice_config *cfg = pipeline_config();
	struct sluice_pkt *pkt = pipeline_pkt();

	if (!pkt)
		return pipeline_finish(ctx, SLUICE_VERDICT_ABORTED, SLUICE_REASON_NO_SCRATCH);
	const struct sluice_fwd_settings *s = fwd_settings_get();
	if (!s)
		return pipeline_next(ctx, cfg, pkt, SLUICE_STAGE_FORWARD);
	if (!fwd_routable(ctx, pkt)) {
		/* an earlier stage's note (the filter's "passed by rule") says more: keep it */
		if (pkt->note == SLUICE_REASON_PIPELINE_END)
			pkt->note = SLUICE_REASON_FWD_NOT_ROUTABLE;
		return pipeline_next(ctx, cfg, pkt, SLUICE_STAGE_FORWARD);
	}
	const __u32 route = fwd_lookup(pkt);
	if (route == SLUICE_FWD_NO_ROUTE)
		return pipeline_finish_policy(ctx, s->no_route_verdict, SLUICE_REASON_FWD_NO_ROUTE);
	if (route & SLUICE_FWD_ROUTE_RESERVED_BITS)
		return fwd_corrupt(ctx);

	const __u64 bytes = ctx->data_end - ctx->data;
	const __u32 kind = SLUICE_FWD_ROUTE_KIND(route);
	const __u32 target = SLUICE_FWD_ROUTE_TARGET(route);
	__u32 nh_id;

	if (kind == SLUICE_FWD_KIND_LOCAL) {
		fwd_count(&fwd_route_counters, SLUICE_FWD_ROUTE_SLOT(route), bytes);
		return fwd_to_stack(ctx, s, pkt);
	} else if (kind == SLUICE_FWD_KIND_NEXTHOP) {
		nh_id = target;
	} else if (kind == SLUICE_FWD_KIND_GROUP) {
		nh_id = fwd_group_pick(target, fwd_flow_hash(pkt));
	} else {
		return fwd_corrupt(ctx);
	}
	const struct sluice_fwd_nexthop *nh = fwd_nexthop(nh_id);
	if (!nh)
		return fwd_corrupt(ctx);
	fwd_count(&fwd_route_counters, SLUICE_FWD_ROUTE_SLOT(route), bytes);

	const int ttl = fwd_ttl(ctx, pkt);
	if (ttl < 0)
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
	if (ttl <= 1) {
		if (fwd_time_exceeded(ctx, s, pkt) == FWD_ICMP_SENT)
			return pipeline_finish(ctx, SLUICE_VERDICT_TX, SLUICE_REASON_FWD_TTL_EXCEEDED);
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_TTL_EXCEEDED);
	}
	/* port is read before the rewrite: nh lives in a map user space may rewrite meanwhile */
	const __u32 port = nh->port;
	if (port >= SLUICE_FWD_MAX_PORTS)
		return fwd_corrupt(ctx);
	if (fwd_rewrite(ctx, pkt, nh))
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
	fwd_count(&fwd_nexthop_counters, nh_id, bytes);
	if (bpf_redirect_map(&fwd_ports, port, 0) != XDP_REDIRECT)
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_REDIRECT_FAILED);
	return pipeline_finish(ctx, SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_ROUTED);
}

#endif /* SLUICE_XDP_STAGE_FORWARD_H */
