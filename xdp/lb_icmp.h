/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The too-big answer: a client datagram that would exceed the egress MTU
 * once encapsulated is answered, from the VIP's address, with ICMP
 * "fragmentation needed" (IPv4, type 3 code 4) or ICMPv6 "packet too big"
 * (type 2), whose MTU is the egress MTU minus the outer header. The frame
 * is turned around in place (MACs swapped, VLAN tags kept) and leaves by
 * XDP_TX, so the client's path-MTU discovery lowers its MSS / packet size.
 *
 * IPv4 without DF is answered the same way: the outer packet cannot be
 * fragmented (sluice-decap, in XDP, does not reassemble, and neither
 * would the lb stage of another box: fragments to a VIP are dropped for
 * want of ports), so the datagram could never arrive; the answer at least
 * lowers the sender's route MTU (Linux takes frag-needed without DF).
 *
 * Before any answer, icmp_guard.h's checks, as for the forward stage's
 * time exceeded: a source no answer may go to (unspecified, loopback,
 * multicast, broadcast, link-local) or an empty per-CPU bucket
 * (settings icmp_rate / icmp_burst) means no answer; the datagram, which
 * could not be delivered anyway, is dropped and the event counted.
 *
 * The quote is the start of the client's datagram, in whole 32-bit words:
 * IPv4 keeps the answer within 576 bytes (RFC 1812 4.3.2.3), IPv6 within
 * the minimum MTU of 1280 (RFC 4443 2.4(c)).
 */
#ifndef SLUICE_XDP_LB_ICMP_H
#define SLUICE_XDP_LB_ICMP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"
#include "lb_encap.h"
#include "lb_maps.bpf.h"
#include "icmp_guard.h"
#include "filter_conntrack.h" /* ct_now: the coarse clock the lb stage reads */

#define LB_ICMP_HDR_LEN 8
#define LB_ICMP_DEST_UNREACH 3
#define LB_ICMP_FRAG_NEEDED 4
#define LB_ICMPV6_PKT_TOOBIG 2
#define LB_IPV4_ANSWER_MAX 576
#define LB_IPV6_ANSWER_MAX 1280
#define LB_ICMP_V4_QUOTE_MAX (LB_IPV4_ANSWER_MAX - LB_IPV4_HDR_LEN - LB_ICMP_HDR_LEN) /* 548 */
#define LB_ICMP_V6_QUOTE_MAX (LB_IPV6_ANSWER_MAX - LB_IPV6_HDR_LEN - LB_ICMP_HDR_LEN) /* 1232 */
_Static_assert(LB_ICMP_V4_QUOTE_MAX % 4 == 0 && LB_ICMP_V6_QUOTE_MAX % 4 == 0, "quotes are whole words");

enum lb_toobig_outcome {
	LB_TOOBIG_ANSWER = 0,
	LB_TOOBIG_RATE_LIMITED = SLUICE_LB_EVENT_ICMP_RATE_LIMITED,
	LB_TOOBIG_MARTIAN = SLUICE_LB_EVENT_ICMP_MARTIAN,
};

/* Whether the datagram may be answered: LB_TOOBIG_ANSWER (a token taken), else the event to count. */
static __always_inline int lb_toobig_allowed(const struct sluice_pkt *pkt, const struct sluice_lb_settings *s)
{
	__u32 slot = 0;

	if (pkt->ip_version == 4 ? sluice_v4_martian(pkt->src[0]) : sluice_v6_martian(pkt->src))
		return LB_TOOBIG_MARTIAN;
	if (!sluice_icmp_take_token(bpf_map_lookup_elem(&lb_icmp_bucket, &slot), s->icmp_rate, s->icmp_burst, ct_now()))
		return LB_TOOBIG_RATE_LIMITED;
	return LB_TOOBIG_ANSWER;
}

/* The MTU the answer announces: what is left of the egress MTU for the client's datagram. */
static __always_inline __u32 lb_toobig_mtu(const struct sluice_lb_settings *s, __u32 overhead)
{
	return s->mtu > overhead ? s->mtu - overhead : 0;
}

/*
 * One's-complement sum of `len` bytes (a multiple of 4, at most max_len) at
 * `off`, word by word with the bound next to each access. A loop, not
 * bpf_csum_diff: that helper needs a length the verifier can bound against
 * the packet, which a quote cut to the datagram's length is not.
 */
static __always_inline __u64 lb_csum_words(struct xdp_md *ctx, __u32 off, __u32 len, __u32 max_words)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 sum = 0;

#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < max_words; i++) {
		__u32 *w;

		if (i * 4 >= len)
			break;
		w = data + (off & 0xff) + i * 4;
		if ((void *)(w + 1) > data_end)
			break;
		sum += *w;
	}
	return sum;
}

/*
 * Turns the frame into the answer. `overhead` is the outer header the
 * datagram would have had. Returns 0, or -1 when the frame cannot be
 * reshaped (the stage then drops it).
 */
static __always_inline int lb_answer_too_big(struct xdp_md *ctx, const struct sluice_pkt *pkt, __u32 l2_len,
					     const struct sluice_lb_settings *s, __u32 overhead)
{
	__u32 hdrs = pkt->ip_version == 4 ? LB_IPV4_HDR_LEN + LB_ICMP_HDR_LEN : LB_IPV6_HDR_LEN + LB_ICMP_HDR_LEN;
	__u32 quote_max = pkt->ip_version == 4 ? LB_ICMP_V4_QUOTE_MAX : LB_ICMP_V6_QUOTE_MAX;
	__u32 quote = pkt->l3_len < quote_max ? pkt->l3_len : quote_max;
	__u32 frame_len = ctx->data_end - ctx->data;
	__u32 mtu = lb_toobig_mtu(s, overhead);
	__u8 mac[ETH_ALEN];
	struct lb_l2 l2;
	void *data, *data_end;
	__u64 sum;
	int shrink;

	quote &= ~3u;
	if (lb_l2_save(ctx, &l2))
		return -1;
	/* back to the client: its MAC becomes the destination, the one it sent to the source */
	__builtin_memcpy(mac, &l2.bytes[0], ETH_ALEN);
	__builtin_memcpy(&l2.bytes[0], &l2.bytes[ETH_ALEN], ETH_ALEN);
	__builtin_memcpy(&l2.bytes[ETH_ALEN], mac, ETH_ALEN);
	if (bpf_xdp_adjust_head(ctx, -(int)hdrs))
		return -1;
	/* cut the frame after the quote; frame_len - l2_len >= l3_len >= quote */
	shrink = (int)(frame_len - l2_len) - (int)quote;
	if (shrink > 0 && bpf_xdp_adjust_tail(ctx, -shrink))
		return -1;
	if (lb_l2_restore(ctx, &l2))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (pkt->ip_version == 4) {
		struct iphdr *iph = data + (l2_len & 0xff);
		__u8 *icmp = (__u8 *)(iph + 1);
		struct iphdr h = {
			.version = 4,
			.ihl = LB_IPV4_HDR_LEN / 4,
			.tot_len = bpf_htons(hdrs + quote),
			.ttl = LB_OUTER_TTL,
			.protocol = IPPROTO_ICMP,
			.saddr = pkt->dst[0], /* from the VIP */
			.daddr = pkt->src[0],
		};
		__be16 next_mtu = bpf_htons((__u16)mtu);

		if ((void *)(icmp + LB_ICMP_HDR_LEN) > data_end)
			return -1;
		h.check = lb_ipv4_hdr_csum(&h);
		__builtin_memcpy(iph, &h, sizeof(h));
		icmp[0] = LB_ICMP_DEST_UNREACH;
		icmp[1] = LB_ICMP_FRAG_NEEDED;
		icmp[2] = icmp[3] = 0;
		icmp[4] = icmp[5] = 0;
		__builtin_memcpy(&icmp[6], &next_mtu, 2);
		sum = lb_csum_words(ctx, l2_len + LB_IPV4_HDR_LEN, LB_ICMP_HDR_LEN + quote,
				    (LB_ICMP_HDR_LEN + LB_ICMP_V4_QUOTE_MAX) / 4);
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		icmp = data + (l2_len & 0xff) + LB_IPV4_HDR_LEN;
		if ((void *)(icmp + LB_ICMP_HDR_LEN) > data_end)
			return -1;
		*(__u16 *)&icmp[2] = lb_csum_fold(sum);
		return 0;
	}
	{
		struct ipv6hdr *ip6h = data + (l2_len & 0xff);
		__u8 *icmp = (__u8 *)(ip6h + 1);
		struct ipv6hdr h = {};
		__be32 next_mtu = bpf_htonl(mtu);
		__u64 pseudo = 0;

		if ((void *)(icmp + LB_ICMP_HDR_LEN) > data_end)
			return -1;
		h.version = 6;
		h.payload_len = bpf_htons(LB_ICMP_HDR_LEN + quote);
		h.nexthdr = IPPROTO_ICMPV6;
		h.hop_limit = LB_OUTER_TTL;
		__builtin_memcpy(&h.saddr, pkt->dst, sizeof(h.saddr)); /* from the VIP */
		__builtin_memcpy(&h.daddr, pkt->src, sizeof(h.daddr));
		__builtin_memcpy(ip6h, &h, sizeof(h));
		icmp[0] = LB_ICMPV6_PKT_TOOBIG;
		icmp[1] = 0;
		icmp[2] = icmp[3] = 0;
		__builtin_memcpy(&icmp[4], &next_mtu, 4);
#pragma unroll
		for (int i = 0; i < 4; i++)
			pseudo += (__u64)pkt->src[i] + pkt->dst[i];
		pseudo += bpf_htonl(LB_ICMP_HDR_LEN + quote);
		pseudo += bpf_htonl(IPPROTO_ICMPV6);
		sum = pseudo + lb_csum_words(ctx, l2_len + LB_IPV6_HDR_LEN, LB_ICMP_HDR_LEN + quote,
					     (LB_ICMP_HDR_LEN + LB_ICMP_V6_QUOTE_MAX) / 4);
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		icmp = data + (l2_len & 0xff) + LB_IPV6_HDR_LEN;
		if ((void *)(icmp + LB_ICMP_HDR_LEN) > data_end)
			return -1;
		*(__u16 *)&icmp[2] = lb_csum_fold(sum);
		return 0;
	}
}

#endif /* SLUICE_XDP_LB_ICMP_H */
