/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * ICMP time exceeded (IPv4 type 11, ICMPv6 type 3, code 0), built in place
 * from the packet whose TTL ran out and sent back out of the port it came
 * in on (XDP_TX). The frame becomes: Ethernet (addresses swapped), a new IP
 * header from the configured ICMP source to the packet's source, the ICMP
 * header, and the quote: the start of the original datagram, at most
 * SLUICE_FWD_ICMP_QUOTE_MAX bytes (its header and more than the 8 bytes
 * RFC 792 asks for; RFC 4443 asks for as much as fits in 1280).
 *
 * Never answered (RFC 1812 4.3.2.7, RFC 4443 2.4): ICMP errors, non-first
 * fragments; multicast/broadcast sources never get here (fwd_routable).
 * A per-CPU token bucket caps the answers, so the box cannot be made a
 * reflector by a flood of TTL-1 packets.
 */
#ifndef SLUICE_XDP_FORWARD_ICMP_H
#define SLUICE_XDP_FORWARD_ICMP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"
#include "forward_maps.bpf.h"
#include "forward_nexthop.h"
#include "icmp_guard.h"

/* <linux/icmp.h> pulls in libc's socket headers, which do not build for BPF */
#define FWD_ICMP_DEST_UNREACH 3
#define FWD_ICMP_SOURCE_QUENCH 4
#define FWD_ICMP_REDIRECT 5
#define FWD_ICMP_TIME_EXCEEDED 11
#define FWD_ICMP_PARAMETERPROB 12
#define FWD_ICMP_EXC_TTL 0

struct fwd_icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 unused;
};

#define FWD_ICMP_TTL 64
#define FWD_IPV4_TOS_INTERNETWORK_CONTROL 0xc0
#define FWD_ICMP_HDR_LEN 8
/* 16-bit words summed over the ICMP header and the quote */
#define FWD_ICMP_CSUM_WORDS ((FWD_ICMP_HDR_LEN + SLUICE_FWD_ICMP_QUOTE_MAX) / 2)

enum fwd_icmp_outcome {
	FWD_ICMP_SENT = 0,
	FWD_ICMP_NOT_SENT = 1,
};

/* One token of this CPU's bucket (icmp_guard.h), if there is one. */
static __always_inline int fwd_icmp_take_token(const struct sluice_fwd_settings *s)
{
	__u32 slot = 0;

	return sluice_icmp_take_token(bpf_map_lookup_elem(&fwd_icmp_bucket, &slot), s->icmp_rate, s->icmp_burst,
				      bpf_ktime_get_ns());
}

static __always_inline int fwd_icmp4_is_error(__u8 type)
{
	return type == FWD_ICMP_DEST_UNREACH || type == FWD_ICMP_SOURCE_QUENCH || type == FWD_ICMP_REDIRECT ||
	       type == FWD_ICMP_TIME_EXCEEDED || type == FWD_ICMP_PARAMETERPROB;
}

/* RFC 4443 2.1: types below 128 are errors */
#define FWD_ICMP6_FIRST_INFO 128

/* Whether the packet may be answered at all (ICMP errors and later fragments never are). */
static __always_inline int fwd_icmp_answerable(const struct sluice_pkt *pkt)
{
	if (pkt->frag == SLUICE_FRAG_NONFIRST)
		return 0;
	if (pkt->ip_version == 4 && pkt->ip_proto == IPPROTO_ICMP)
		return pkt->has_l4 && !fwd_icmp4_is_error(pkt->icmp_type);
	if (pkt->ip_version == 6 && pkt->ip_proto == IPPROTO_ICMPV6)
		return pkt->has_l4 && pkt->icmp_type >= FWD_ICMP6_FIRST_INFO;
	return 1;
}

static __always_inline __u16 fwd_csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * One's-complement sum of len bytes from start (the ICMP header at a fixed
 * offset), in native 16-bit words (the sum is byte-order independent,
 * RFC 1071), an odd last byte padded with zero. -1 past the frame.
 */
static __always_inline int fwd_csum_add(void *start, void *data_end, __u32 len, __u64 *sum)
{
	__u64 acc = *sum;

	for (int i = 0; i < FWD_ICMP_CSUM_WORDS; i++) {
		const __u32 off = i * 2;
		__u8 *p = (__u8 *)start + off;

		if (off >= len)
			break;
		if (off + 1 == len) { /* odd tail */
			if ((void *)(p + 1) > data_end)
				return -1;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			acc += *p;
#else
			acc += (__u32)*p << 8;
#endif
			break;
		}
		if ((void *)(p + 2) > data_end)
			return -1;
		acc += *(__u16 *)p;
	}
	*sum = acc;
	return 0;
}

static __always_inline __u32 fwd_icmp_quote_len(const struct sluice_pkt *pkt)
{
	return pkt->l3_len < SLUICE_FWD_ICMP_QUOTE_MAX ? pkt->l3_len : SLUICE_FWD_ICMP_QUOTE_MAX;
}

/*
 * Cuts the frame to Ethernet + quote and grows `outer` bytes in front, with
 * the Ethernet header rebuilt there, addresses swapped. 0, or -1 when the
 * kernel refused the resize (the frame is then unusable: drop it).
 */
static __always_inline int fwd_icmp_reframe(struct xdp_md *ctx, __u32 quote, int outer, __u16 eth_proto)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 peer[ETH_ALEN], self[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(peer, eth->h_source, ETH_ALEN);
	__builtin_memcpy(self, eth->h_dest, ETH_ALEN);
	const int frame = data_end - data;
	const int want = ETH_HLEN + quote;
	if (frame > want && bpf_xdp_adjust_tail(ctx, want - frame))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -outer))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, peer, ETH_ALEN);
	__builtin_memcpy(eth->h_source, self, ETH_ALEN);
	eth->h_proto = bpf_htons(eth_proto);
	return 0;
}

static __always_inline int fwd_icmp4_build(struct xdp_md *ctx, const struct sluice_fwd_settings *s,
					   const struct sluice_pkt *pkt)
{
	const __u32 quote = fwd_icmp_quote_len(pkt);
	const __u32 to = pkt->src[0];
	const int outer = sizeof(struct iphdr) + FWD_ICMP_HDR_LEN;

	if (fwd_icmp_reframe(ctx, quote, outer, ETH_P_IP))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	struct fwd_icmphdr *icmp = (void *)(ip + 1);
	if ((void *)icmp + FWD_ICMP_HDR_LEN > data_end)
		return -1;
	ip->version = 4;
	ip->ihl = sizeof(*ip) / 4;
	ip->tos = FWD_IPV4_TOS_INTERNETWORK_CONTROL;
	ip->tot_len = bpf_htons(outer + quote);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = FWD_ICMP_TTL;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = s->icmp_src_v4;
	ip->daddr = to;
	__u64 sum = 0;
	if (fwd_csum_add(ip, data_end, sizeof(*ip), &sum))
		return -1;
	ip->check = fwd_csum_fold(sum);

	icmp->type = FWD_ICMP_TIME_EXCEEDED;
	icmp->code = FWD_ICMP_EXC_TTL;
	icmp->checksum = 0;
	icmp->unused = 0;
	sum = 0;
	if (fwd_csum_add(icmp, data_end, FWD_ICMP_HDR_LEN + quote, &sum))
		return -1;
	icmp->checksum = fwd_csum_fold(sum);
	return 0;
}

static __always_inline int fwd_icmp6_build(struct xdp_md *ctx, const struct sluice_fwd_settings *s,
					   const struct sluice_pkt *pkt)
{
	const __u32 quote = fwd_icmp_quote_len(pkt);
	__u32 to[4];
	const int outer = sizeof(struct ipv6hdr) + FWD_ICMP_HDR_LEN;

	__builtin_memcpy(to, pkt->src, sizeof(to));
	if (fwd_icmp_reframe(ctx, quote, outer, ETH_P_IPV6))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct icmp6hdr *icmp6 = (void *)(ip6 + 1);
	if ((void *)icmp6 + FWD_ICMP_HDR_LEN > data_end)
		return -1;
	const __u16 payload = FWD_ICMP_HDR_LEN + quote;
	*(__be32 *)ip6 = bpf_htonl(0x60000000u); /* version 6, traffic class 0, flow label 0 */
	ip6->payload_len = bpf_htons(payload);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = FWD_ICMP_TTL;
	__builtin_memcpy(&ip6->saddr, s->icmp_src_v6, sizeof(ip6->saddr));
	__builtin_memcpy(&ip6->daddr, to, sizeof(ip6->daddr));

	icmp6->icmp6_type = ICMPV6_TIME_EXCEED;
	icmp6->icmp6_code = ICMPV6_EXC_HOPLIMIT;
	icmp6->icmp6_cksum = 0;
	icmp6->icmp6_dataun.un_data32[0] = 0;
	/* pseudo header: both addresses, upper-layer length, next header (RFC 8200 8.1) */
	__u64 sum = bpf_htons(payload) + bpf_htons(IPPROTO_ICMPV6);
	if (fwd_csum_add(&ip6->saddr, data_end, 2 * sizeof(ip6->saddr), &sum))
		return -1;
	if (fwd_csum_add(icmp6, data_end, payload, &sum))
		return -1;
	icmp6->icmp6_cksum = fwd_csum_fold(sum);
	return 0;
}

/* FWD_ICMP_SENT: the frame is the answer, to be sent with XDP_TX. */
static __always_inline int fwd_time_exceeded(struct xdp_md *ctx, const struct sluice_fwd_settings *s,
					     const struct sluice_pkt *pkt)
{
	const __u64 bytes = ctx->data_end - ctx->data;
	int has_source;

	if (!fwd_icmp_answerable(pkt)) {
		fwd_event(SLUICE_FWD_EVENT_ICMP_SUPPRESSED, bytes);
		return FWD_ICMP_NOT_SENT;
	}
	if (pkt->ip_version == 4)
		has_source = s->icmp_src_v4 != 0;
	else
		has_source = (s->icmp_src_v6[0] | s->icmp_src_v6[1] | s->icmp_src_v6[2] | s->icmp_src_v6[3]) != 0;
	if (!has_source) {
		fwd_event(SLUICE_FWD_EVENT_ICMP_NO_SOURCE, bytes);
		return FWD_ICMP_NOT_SENT;
	}
	if (!fwd_icmp_take_token(s)) {
		fwd_event(SLUICE_FWD_EVENT_ICMP_RATE_LIMITED, bytes);
		return FWD_ICMP_NOT_SENT;
	}
	const int built = pkt->ip_version == 4 ? fwd_icmp4_build(ctx, s, pkt) : fwd_icmp6_build(ctx, s, pkt);
	return built ? FWD_ICMP_NOT_SENT : FWD_ICMP_SENT;
}

#endif /* SLUICE_XDP_FORWARD_ICMP_H */
