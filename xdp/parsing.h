/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Packet parsing: one small inline parser per header. Each takes a cursor
 * and data_end, checks bounds right next to the access, advances the cursor
 * and returns SLUICE_PARSE_OK or the reason the header is malformed.
 *
 * The IP layer also records where the datagram really ends (IPv4 total
 * length, IPv6 payload length): Ethernet padding after it is not payload,
 * and an L4 header must fit inside the datagram, not just inside the frame.
 */
#ifndef SLUICE_XDP_PARSING_H
#define SLUICE_XDP_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"

#define SLUICE_PARSE_OK (-1)

/* 802.1Q / 802.1ad tag: not in the uapi headers */
struct sluice_vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};
#define SLUICE_VLAN_VID_MASK 0x0fff

/* IPv4 fragment field */
#define SLUICE_IP_MF 0x2000
#define SLUICE_IP_OFFSET_MASK 0x1fff
/* IPv6 fragment header: offset in 8-byte units in the top 13 bits, M flag in bit 0 */
#define SLUICE_IP6_FRAG_OFFSET_MASK 0xfff8
#define SLUICE_IP6_FRAG_MORE 0x0001

#define SLUICE_IPV4_MIN_IHL 5
#define SLUICE_TCP_MIN_DOFF 5
#define SLUICE_ICMP_MIN_LEN 4 /* type, code, checksum: all a filter reads */
#define SLUICE_ICMP_ECHO_LEN 8 /* + identifier, sequence (echo; also the rest-of-header of errors) */

struct sluice_cursor {
	void *pos;
	void *end;      /* data_end of the frame */
	void *l3_end;   /* end of the IP datagram (<= end) */
};

struct sluice_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

struct sluice_ipv6_opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

static __always_inline int parse_ethhdr(struct sluice_cursor *c, struct sluice_pkt *pkt)
{
	struct ethhdr *eth = c->pos;

	if ((void *)(eth + 1) > c->end)
		return SLUICE_REASON_TRUNC_ETH;
	pkt->eth_proto = bpf_ntohs(eth->h_proto);
	c->pos = eth + 1;
	return SLUICE_PARSE_OK;
}

static __always_inline int is_vlan_proto(__u16 proto)
{
	return proto == ETH_P_8021Q || proto == ETH_P_8021AD;
}

/* Up to SLUICE_MAX_VLAN_TAGS tags; a deeper stack is refused, not skipped. */
static __always_inline int parse_vlan_tags(struct sluice_cursor *c, struct sluice_pkt *pkt)
{
#pragma unroll
	for (int i = 0; i < SLUICE_MAX_VLAN_TAGS; i++) {
		struct sluice_vlan_hdr *vlan = c->pos;

		if (!is_vlan_proto(pkt->eth_proto))
			return SLUICE_PARSE_OK;
		if ((void *)(vlan + 1) > c->end)
			return SLUICE_REASON_TRUNC_VLAN;
		pkt->vlan_id[i] = bpf_ntohs(vlan->tci) & SLUICE_VLAN_VID_MASK;
		pkt->vlan_depth = i + 1;
		pkt->eth_proto = bpf_ntohs(vlan->encapsulated_proto);
		c->pos = vlan + 1;
	}
	if (is_vlan_proto(pkt->eth_proto))
		return SLUICE_REASON_VLAN_TOO_DEEP;
	return SLUICE_PARSE_OK;
}

static __always_inline int parse_ipv4hdr(struct sluice_cursor *c, void *data,
					 struct sluice_pkt *pkt)
{
	struct iphdr *iph = c->pos;
	__u32 hdr_len, tot_len, frag_off;

	if ((void *)(iph + 1) > c->end)
		return SLUICE_REASON_TRUNC_IPV4;
	if (iph->version != 4)
		return SLUICE_REASON_IPV4_BAD_VERSION;
	if (iph->ihl < SLUICE_IPV4_MIN_IHL)
		return SLUICE_REASON_IPV4_BAD_IHL;
	hdr_len = iph->ihl * 4;
	if (c->pos + hdr_len > c->end)
		return SLUICE_REASON_TRUNC_IPV4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < hdr_len || c->pos + tot_len > c->end)
		return SLUICE_REASON_IPV4_BAD_TOTLEN;
	frag_off = bpf_ntohs(iph->frag_off);
	if ((frag_off & SLUICE_IP_OFFSET_MASK) * 8 + (tot_len - hdr_len) > 0xffff)
		return SLUICE_REASON_IPV4_BAD_FRAGMENT; /* reassembly would overflow */

	pkt->ip_version = 4;
	pkt->ip_proto = iph->protocol;
	pkt->src[0] = iph->saddr;
	pkt->dst[0] = iph->daddr;
	pkt->l3_off = c->pos - data;
	pkt->l3_len = tot_len;
	if (frag_off & SLUICE_IP_OFFSET_MASK)
		pkt->frag = SLUICE_FRAG_NONFIRST;
	else if (frag_off & SLUICE_IP_MF)
		pkt->frag = SLUICE_FRAG_FIRST;
	c->l3_end = c->pos + tot_len;
	c->pos += hdr_len;
	return SLUICE_PARSE_OK;
}

static __always_inline int is_ipv6_exthdr(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_FRAGMENT || nexthdr == IPPROTO_DSTOPTS ||
	       nexthdr == IPPROTO_AH || nexthdr == IPPROTO_MH;
}

static __always_inline int parse_ipv6hdr(struct sluice_cursor *c, void *data,
					 struct sluice_pkt *pkt)
{
	struct ipv6hdr *ip6h = c->pos;
	__u32 payload_len;

	if ((void *)(ip6h + 1) > c->end)
		return SLUICE_REASON_TRUNC_IPV6;
	if (ip6h->version != 6)
		return SLUICE_REASON_IPV6_BAD_VERSION;
	payload_len = bpf_ntohs(ip6h->payload_len);
	/* 0 would announce a jumbogram, which no Ethernet frame can carry */
	if (payload_len == 0 && ip6h->nexthdr != IPPROTO_NONE)
		return SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN;
	if ((void *)(ip6h + 1) + payload_len > c->end)
		return SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN;

	pkt->ip_version = 6;
	pkt->ip_proto = ip6h->nexthdr;
	__builtin_memcpy(pkt->src, &ip6h->saddr, sizeof(pkt->src));
	__builtin_memcpy(pkt->dst, &ip6h->daddr, sizeof(pkt->dst));
	pkt->l3_off = c->pos - data;
	pkt->l3_len = sizeof(*ip6h) + payload_len;
	c->l3_end = (void *)(ip6h + 1) + payload_len;
	c->pos = ip6h + 1;
	return SLUICE_PARSE_OK;
}

/*
 * Past the fixed IP header, parsing works on offsets, not pointers: each
 * offset is masked to SLUICE_PARSE_OFF_MASK before it is turned into a
 * pointer, so every path through the extension chain looks the same to the
 * verifier and its states merge instead of multiplying per header type.
 *
 * The mask is for the verifier only; it must never change an offset. Frames
 * are not bounded by a page: skb (generic) mode linearises a 64 KiB frame
 * (loopback MTU 65536, GRO), and so can 64 KiB-page kernels. So the mask
 * covers the farthest byte the parser can reach in any frame (asserted
 * below), and span_at checks the unmasked offset against it anyway: an
 * offset out of the parser's reach reads as the header being truncated
 * (that header's TRUNC_* reason, so malformed), never as the bytes a
 * wrapped offset would point at. 0x7fff and not 0xffff: offset + length
 * must stay within the verifier's MAX_PACKET_OFF (0xffff), or it would not
 * accept the bounds check against data_end.
 */
#define SLUICE_PARSE_OFF_MASK 0x7fff
/* Every IPv6 extension header is at least 8 bytes (RFC 8200 units) */
#define SLUICE_IPV6_EXTHDR_MIN_LEN 8
/* The longest: Hdr Ext Len 255 in 8-byte units (AH: (255 + 2) * 4 = 1028) */
#define SLUICE_IPV6_EXTHDR_MAX_LEN ((255 + 1) * 8)
#define SLUICE_TCP_MAX_HDR_LEN (15 * 4)
/* Ethernet, two VLAN tags, IPv6, a full extension chain, the longest TCP header */
#define SLUICE_PARSE_MAX_REACH                                                 \
	(ETH_HLEN + SLUICE_MAX_VLAN_TAGS * 4 + 40 +                            \
	 SLUICE_MAX_IPV6_EXTHDRS * SLUICE_IPV6_EXTHDR_MAX_LEN + SLUICE_TCP_MAX_HDR_LEN)
_Static_assert(SLUICE_PARSE_MAX_REACH <= SLUICE_PARSE_OFF_MASK,
	       "the offset mask must cover every byte the parser can reach, or offsets would wrap");
_Static_assert(SLUICE_PARSE_OFF_MASK + SLUICE_IPV6_EXTHDR_MAX_LEN <= 0xffff,
	       "masked offset + length must stay within the verifier's MAX_PACKET_OFF");

struct sluice_l4_span {
	void *data;
	void *end;     /* data_end */
	__u32 l3_end;  /* offset where the datagram ends (<= frame length) */
};

/* Pointer to len bytes at off, or 0 when they are out of the frame, the datagram or the parser's reach. */
static __always_inline void *span_at(const struct sluice_l4_span *s, __u32 off, __u32 len)
{
	void *p;

	if (off > SLUICE_PARSE_OFF_MASK)
		return 0; /* never masked into range: a wrapped offset would read other bytes */
	/*
	 * clang knows off <= mask here and would drop the mask, but the verifier
	 * may have lost the compare's bound (it is on the 32-bit half of a
	 * spilled 64-bit register): hide the value so the mask stays.
	 */
	asm volatile("" : "+r"(off));
	p = s->data + (off & SLUICE_PARSE_OFF_MASK);
	if (p + len > s->end || (off & SLUICE_PARSE_OFF_MASK) + len > s->l3_end)
		return 0;
	return p;
}

/*
 * Walk at most SLUICE_MAX_IPV6_EXTHDRS extension headers. A longer chain is
 * refused: its L4 header would be out of reach and we never guess.
 * Returns the reason, and the upper-layer header offset in *off.
 */
static __always_inline int parse_ipv6_exthdrs(const struct sluice_l4_span *s,
					      struct sluice_pkt *pkt, __u32 *off)
{
	__u8 nexthdr = pkt->ip_proto;
	__u32 pos = *off;

	for (int i = 0; i < SLUICE_MAX_IPV6_EXTHDRS; i++) {
		__u8 *hdr;
		__u32 len;

		if (!is_ipv6_exthdr(nexthdr))
			break;
		hdr = span_at(s, pos, SLUICE_IPV6_EXTHDR_MIN_LEN);
		if (!hdr)
			return SLUICE_REASON_TRUNC_IPV6_EXTHDR;
		if (nexthdr == IPPROTO_FRAGMENT) {
			struct sluice_ipv6_frag_hdr *fh = (void *)hdr;
			__u16 frag_off = bpf_ntohs(fh->frag_off);

			nexthdr = fh->nexthdr;
			pos += sizeof(*fh);
			if (frag_off & SLUICE_IP6_FRAG_OFFSET_MASK) {
				/* the rest is a later fragment's payload: no L4 header */
				pkt->frag = SLUICE_FRAG_NONFIRST;
				break;
			}
			if (frag_off & SLUICE_IP6_FRAG_MORE)
				pkt->frag = SLUICE_FRAG_FIRST;
			continue;
		}
		/* AH counts 4-byte units minus 2; the others 8-byte units minus 1 */
		if (nexthdr == IPPROTO_AH)
			len = ((__u32)hdr[1] + 2) * 4;
		else
			len = ((__u32)hdr[1] + 1) * 8;
		if (!span_at(s, pos, len))
			return SLUICE_REASON_TRUNC_IPV6_EXTHDR;
		nexthdr = hdr[0];
		pos += len;
	}
	if (is_ipv6_exthdr(nexthdr) && pkt->frag != SLUICE_FRAG_NONFIRST)
		return SLUICE_REASON_IPV6_EXTHDR_CHAIN_TOO_LONG;
	pkt->ip_proto = nexthdr;
	*off = pos;
	return SLUICE_PARSE_OK;
}

static __always_inline int parse_tcphdr(const struct sluice_l4_span *s, __u32 off,
					struct sluice_pkt *pkt)
{
	struct tcphdr *th = span_at(s, off, sizeof(struct tcphdr));

	if (!th)
		return SLUICE_REASON_TRUNC_TCP;
	if (th->doff < SLUICE_TCP_MIN_DOFF)
		return SLUICE_REASON_TCP_BAD_DOFF;
	if (!span_at(s, off, th->doff * 4))
		return SLUICE_REASON_TRUNC_TCP;
	pkt->sport = bpf_ntohs(th->source);
	pkt->dport = bpf_ntohs(th->dest);
	/* byte 13 of the header holds CWR..FIN in wire order */
	pkt->tcp_flags = ((__u8 *)th)[13];
	/* for conntrack's window tracking */
	pkt->tcp_seq = bpf_ntohl(th->seq);
	pkt->tcp_ack = bpf_ntohl(th->ack_seq);
	pkt->tcp_window = bpf_ntohs(th->window);
	pkt->tcp_hdr_len = th->doff * 4;
	return SLUICE_PARSE_OK;
}

static __always_inline int parse_udphdr(const struct sluice_l4_span *s, __u32 off,
					struct sluice_pkt *pkt)
{
	struct udphdr *uh = span_at(s, off, sizeof(struct udphdr));

	if (!uh)
		return SLUICE_REASON_TRUNC_UDP;
	pkt->sport = bpf_ntohs(uh->source);
	pkt->dport = bpf_ntohs(uh->dest);
	return SLUICE_PARSE_OK;
}

static __always_inline int parse_icmphdr(const struct sluice_l4_span *s, __u32 off,
					 struct sluice_pkt *pkt, int trunc_reason)
{
	__u8 *icmp = span_at(s, off, SLUICE_ICMP_MIN_LEN);

	if (!icmp)
		return trunc_reason;
	pkt->icmp_type = icmp[0];
	pkt->icmp_code = icmp[1];
	/* echo request/reply: conntrack keys them by identifier (bytes 4-5); 0 if cut short */
	icmp = span_at(s, off, SLUICE_ICMP_ECHO_LEN);
	if (icmp)
		pkt->icmp_id = ((__u16)icmp[4] << 8) | icmp[5];
	return SLUICE_PARSE_OK;
}

/*
 * IPv6 extension chain and L4 header. Inlined: a BPF-to-BPF call costs
 * ~7 ns per packet here, and the masked offsets above already keep the
 * verifier's state count small (about 13k instructions processed).
 */
/* The same on any bytes (an xdp_md's or an skb's: the egress observer). */
static __always_inline int parse_upper_span(const struct sluice_l4_span *s, struct sluice_pkt *pkt, __u32 off)
{
	int reason;

	if (pkt->ip_version == 6) {
		reason = parse_ipv6_exthdrs(s, pkt, &off);
		if (reason != SLUICE_PARSE_OK)
			return reason;
	}
	if (pkt->frag == SLUICE_FRAG_NONFIRST) {
		/* never read ports from a later fragment's payload */
		pkt->note = SLUICE_REASON_FRAGMENT;
		return SLUICE_PARSE_OK;
	}
	switch (pkt->ip_proto) {
	case IPPROTO_TCP:
		reason = parse_tcphdr(s, off, pkt);
		break;
	case IPPROTO_UDP:
		reason = parse_udphdr(s, off, pkt);
		break;
	case IPPROTO_ICMP:
		if (pkt->ip_version != 4)
			return SLUICE_PARSE_OK;
		reason = parse_icmphdr(s, off, pkt, SLUICE_REASON_TRUNC_ICMP);
		break;
	case IPPROTO_ICMPV6:
		if (pkt->ip_version != 6)
			return SLUICE_PARSE_OK;
		reason = parse_icmphdr(s, off, pkt, SLUICE_REASON_TRUNC_ICMPV6);
		break;
	default:
		return SLUICE_PARSE_OK; /* other protocols: addresses only */
	}
	if (reason != SLUICE_PARSE_OK)
		return reason;
	pkt->has_l4 = 1;
	pkt->l4_off = off & SLUICE_PARSE_OFF_MASK;
	return SLUICE_PARSE_OK;
}

static __always_inline int sluice_parse_upper(struct xdp_md *ctx, struct sluice_pkt *pkt,
						 __u32 off, __u32 l3_end)
{
	struct sluice_l4_span s = {
		.data = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
		.l3_end = l3_end,
	};

	if (!pkt)
		return SLUICE_REASON_NO_SCRATCH;
	return parse_upper_span(&s, pkt, off);
}

/*
 * Parse the whole frame into *pkt. Returns SLUICE_PARSE_OK for an IP packet
 * the stages can judge, SLUICE_REASON_NON_IP for other ethertypes, or the
 * reason the frame is malformed.
 */
static __always_inline int parse_packet(struct xdp_md *ctx, struct sluice_pkt *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct sluice_cursor c = { .pos = data, .end = data_end, .l3_end = data_end };
	int reason;

	__builtin_memset(pkt, 0, sizeof(*pkt));
	pkt->ifindex = ctx->ingress_ifindex;
	pkt->pkt_len = data_end - data;

	reason = parse_ethhdr(&c, pkt);
	if (reason != SLUICE_PARSE_OK)
		return reason;
	reason = parse_vlan_tags(&c, pkt);
	if (reason != SLUICE_PARSE_OK)
		return reason;

	if (pkt->eth_proto == ETH_P_IP)
		reason = parse_ipv4hdr(&c, data, pkt);
	else if (pkt->eth_proto == ETH_P_IPV6)
		reason = parse_ipv6hdr(&c, data, pkt);
	else
		return SLUICE_REASON_NON_IP;
	if (reason != SLUICE_PARSE_OK)
		return reason;
	return sluice_parse_upper(ctx, pkt, c.pos - data, c.l3_end - data);
}

#endif /* SLUICE_XDP_PARSING_H */
