/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The lb stage. Per packet:
 *   1. settings not written in this layout, not TCP/UDP, or no VIP
 *      (exact key, then port-less): on to the next stage untouched;
 *   2. a fragment to a VIP: dropped (SLUICE_REASON_LB_FRAGMENT). A later
 *      fragment carries no ports, so it cannot be kept on its flow's
 *      backend, and the backend could not reassemble pieces sent to
 *      different backends; the first fragment is dropped with them, since
 *      alone it is useless to the backend;
 *   3. the backend: the connection table, else the VIP's Maglev table
 *      (lb_select.h);
 *   4. L2 DSR VIPs: destination MAC set to the backend's, XDP_TX;
 *   5. otherwise encapsulated (lb_encap.h) unless it would exceed the
 *      egress MTU, which is answered instead (lb_icmp.h); then out by
 *      XDP_TX, the egress devmap, or the forward stage.
 */
#ifndef SLUICE_XDP_STAGE_LB_H
#define SLUICE_XDP_STAGE_LB_H

#include "pipeline.h"
#include "lb_maps.bpf.h"
#include "lb_select.h"
#include "lb_encap.h"
#include "lb_icmp.h"

static __always_inline int lb_drop(struct xdp_md *ctx, __u32 reason)
{
	return pipeline_finish(ctx, SLUICE_VERDICT_DROP, reason);
}

static __always_inline int lb_corrupt(struct xdp_md *ctx)
{
	lb_count_event(SLUICE_LB_EVENT_CORRUPT_TABLE);
	return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
}

/*
 * L2 DSR: the frame goes out unchanged but for its MACs (destination the
 * backend's; source this port's, so the switch does not learn the
 * client's router behind this port).
 */
static __always_inline int lb_l2_dsr(struct xdp_md *ctx, const struct sluice_lb_settings *s,
				     const struct sluice_lb_backend *be)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return lb_drop(ctx, SLUICE_REASON_LB_ENCAP_FAILED);
	if (!lb_mac_is_zero(s->src_mac))
		__builtin_memcpy(eth->h_source, s->src_mac, ETH_ALEN);
	else
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);
	return pipeline_finish(ctx, SLUICE_VERDICT_TX, SLUICE_REASON_LB_L2_DSR);
}

/*
 * SLUICE_LB_EGRESS_FORWARD: the parse result now describes the outer
 * packet (the forward stage routes by its destination); nothing past the
 * outer header is parsed, so no ports.
 */
static __always_inline void lb_pkt_to_outer(struct xdp_md *ctx, struct sluice_pkt *pkt, const struct lb_outer *outer,
					    __u32 overhead)
{
	__u8 inner_version = pkt->ip_version;

	__builtin_memcpy(pkt->src, outer->src, sizeof(pkt->src));
	__builtin_memcpy(pkt->dst, outer->dst, sizeof(pkt->dst));
	pkt->l3_len = pkt->l3_len + overhead;
	pkt->pkt_len = ctx->data_end - ctx->data;
	pkt->ip_version = outer->version;
	pkt->eth_proto = outer->version == 4 ? ETH_P_IP : ETH_P_IPV6;
	pkt->ip_proto = inner_version == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
	pkt->l4_off = 0;
	pkt->has_l4 = 0;
	pkt->sport = pkt->dport = 0;
	pkt->tcp_flags = 0;
	pkt->frag = SLUICE_FRAG_NONE;
	pkt->note = SLUICE_REASON_LB_FORWARD;
}

static __always_inline int stage_lb(struct xdp_md *ctx)
{
	const struct sluice_config *cfg = pipeline_config();
	struct sluice_pkt *pkt = pipeline_pkt();
	const struct sluice_lb_settings *s;
	const struct sluice_lb_vip *vip;
	struct lb_choice choice = {};
	struct lb_outer outer;
	__u32 vip_id, vip_flags, hash, overhead, bytes;
	int l2_len, picked, redirected;

	if (!pkt)
		return pipeline_finish(ctx, SLUICE_VERDICT_ABORTED, SLUICE_REASON_NO_SCRATCH);
	s = lb_settings_get();
	if (!s || (pkt->ip_proto != IPPROTO_TCP && pkt->ip_proto != IPPROTO_UDP))
		return pipeline_next(ctx, cfg, pkt, SLUICE_STAGE_LB);
	vip = lb_vip_lookup(pkt);
	if (!vip)
		return pipeline_next(ctx, cfg, pkt, SLUICE_STAGE_LB);
	vip_id = vip->vip_id;
	vip_flags = vip->flags;
	if (vip_id >= SLUICE_LB_MAX_VIPS)
		return lb_corrupt(ctx);
	if (s->egress >= SLUICE_LB_EGRESS_COUNT) /* no egress user space writes */
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
	bytes = ctx->data_end - ctx->data;
	lb_count(&lb_vip_counters, vip_id, bytes, 0, 1);
	if (pkt->frag != SLUICE_FRAG_NONE || !pkt->has_l4)
		return lb_drop(ctx, SLUICE_REASON_LB_FRAGMENT);
	l2_len = lb_l2_len(pkt);
	if (l2_len < 0)
		return pipeline_finish(ctx, SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);

	hash = sluice_flow_hash(pkt->ip_version, pkt->src, pkt->dst, pkt->sport, pkt->dport, pkt->ip_proto);
	picked = lb_select(pkt, s, vip_id, hash, bytes, &choice);
	if (picked == LB_PICK_CORRUPT)
		return lb_corrupt(ctx);
	if (picked != LB_PICK_OK || !choice.backend)
		return lb_drop(ctx, SLUICE_REASON_LB_NO_BACKEND);

	if (vip_flags & SLUICE_LB_VIP_F_L2_DSR) {
		if (lb_mac_is_zero(choice.backend->mac)) /* no MAC on this segment: unreachable by L2 */
			return lb_drop(ctx, SLUICE_REASON_LB_NO_BACKEND);
		lb_count(&lb_backend_counters, choice.backend_id, bytes, 0, 1);
		return lb_l2_dsr(ctx, s, choice.backend);
	}

	overhead = lb_encap_overhead(pkt, choice.backend);
	if (!overhead || lb_outer_addrs(s, choice.backend, hash, &outer))
		return lb_drop(ctx, SLUICE_REASON_LB_NO_BACKEND); /* no way to reach this backend's family */
	if (s->mtu && pkt->l3_len + overhead > s->mtu) {
		int allowed = lb_toobig_allowed(pkt, s);

		if (allowed != LB_TOOBIG_ANSWER) {
			lb_count_event(allowed);
			return lb_drop(ctx, SLUICE_REASON_LB_TOO_BIG);
		}
		if (lb_answer_too_big(ctx, pkt, l2_len, s, overhead))
			return lb_drop(ctx, SLUICE_REASON_LB_ENCAP_FAILED);
		return pipeline_finish(ctx, SLUICE_VERDICT_TX, SLUICE_REASON_LB_TOO_BIG);
	}
	if (lb_encap(ctx, pkt, l2_len, &outer, s, hash) < 0)
		return lb_drop(ctx, SLUICE_REASON_LB_ENCAP_FAILED);
	lb_count(&lb_backend_counters, choice.backend_id, bytes, 0, 1);

	switch (s->egress) {
	case SLUICE_LB_EGRESS_TX:
		return pipeline_finish(ctx, SLUICE_VERDICT_TX, SLUICE_REASON_LB_ENCAP);
	case SLUICE_LB_EGRESS_REDIRECT:
		redirected = bpf_redirect_map(&lb_egress_ports, 0, 0);
		if (redirected != XDP_REDIRECT) /* no egress port in slot 0 */
			return lb_drop(ctx, SLUICE_REASON_LB_ENCAP_FAILED);
		return pipeline_finish(ctx, SLUICE_VERDICT_REDIRECT, SLUICE_REASON_LB_ENCAP);
	default: /* SLUICE_LB_EGRESS_FORWARD */
		lb_pkt_to_outer(ctx, pkt, &outer, overhead);
		return pipeline_next(ctx, cfg, pkt, SLUICE_STAGE_LB);
	}
}

#endif /* SLUICE_XDP_STAGE_LB_H */
