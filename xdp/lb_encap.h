/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Encapsulation to the chosen backend: an outer IPv4 (protocol 4) or IPv6
 * (next header 41 for IPv6 inside, 4 for IPv4 inside) header in front of
 * the client's datagram, which stays byte for byte as it came. The
 * backend's family decides the outer header. Ethernet: destination the
 * configured next hop, source the configured MAC or the ingress frame's
 * destination (this box's port); VLAN tags are kept as they came, so the
 * encapsulated frame leaves on the segment the client's arrived on (TX), and
 * the innermost EtherType names the outer family.
 */
#ifndef SLUICE_XDP_LB_ENCAP_H
#define SLUICE_XDP_LB_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"

#define LB_IPV4_HDR_LEN 20
#define LB_IPV6_HDR_LEN 40
#define LB_VLAN_HDR_LEN 4
/* Ethernet and the deepest VLAN stack the parser accepts */
#define LB_L2_MAX_LEN (ETH_HLEN + SLUICE_MAX_VLAN_TAGS * LB_VLAN_HDR_LEN)
#define LB_OUTER_TTL 64
#define LB_IP_DF 0x4000
#define LB_IPV6_FLOW_LABEL_MASK 0xfffffu
#define LB_IPV4_ENTROPY_MASK 0xffffu /* SLUICE_LB_F_ENTROPY_SOURCE: low 16 bits of an IPv4 source */
#define LB_IP_MAX_LEN 0xffff

/* Ethernet + VLAN tags as received, copied out before the head moves. */
struct lb_l2 {
	__u8 bytes[LB_L2_MAX_LEN];
};

/*
 * Length of the frame's L2 header from the parse result, checked against
 * where the parser put the IP header: -1 when they disagree (corrupt
 * scratch), so no offset from the scratch area is used unchecked.
 */
static __always_inline int lb_l2_len(const struct sluice_pkt *pkt)
{
	int len;

	if (pkt->vlan_depth > SLUICE_MAX_VLAN_TAGS)
		return -1;
	len = ETH_HLEN + pkt->vlan_depth * LB_VLAN_HDR_LEN;
	if (pkt->l3_off != len)
		return -1;
	return len;
}

/*
 * Copies LB_L2_MAX_LEN bytes from the frame's head: every TCP/UDP frame
 * holds that many (Ethernet + IPv4 + UDP is already 42), and the bytes past
 * the real L2 header are overwritten by whatever follows it when written back.
 */
static __always_inline int lb_l2_save(struct xdp_md *ctx, struct lb_l2 *l2)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + LB_L2_MAX_LEN > data_end)
		return -1;
	__builtin_memcpy(l2->bytes, data, LB_L2_MAX_LEN);
	return 0;
}

static __always_inline int lb_l2_restore(struct xdp_md *ctx, const struct lb_l2 *l2)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + LB_L2_MAX_LEN > data_end)
		return -1;
	__builtin_memcpy(data, l2->bytes, LB_L2_MAX_LEN);
	return 0;
}

/* The EtherType right before the IP header (after the last VLAN tag). */
static __always_inline void lb_l2_set_proto(struct lb_l2 *l2, __u8 vlan_depth, __u16 proto)
{
	__be16 wire = bpf_htons(proto);

	if (vlan_depth == 0)
		__builtin_memcpy(&l2->bytes[ETH_HLEN - 2], &wire, 2);
	else if (vlan_depth == 1)
		__builtin_memcpy(&l2->bytes[ETH_HLEN + LB_VLAN_HDR_LEN - 2], &wire, 2);
	else
		__builtin_memcpy(&l2->bytes[ETH_HLEN + 2 * LB_VLAN_HDR_LEN - 2], &wire, 2);
}

static __always_inline int lb_mac_is_zero(const __u8 *mac)
{
	return (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0;
}

/* Source MAC of what the stage sends: the configured one, or the MAC the frame was sent to (this port's). */
static __always_inline void lb_l2_set_macs(struct lb_l2 *l2, const __u8 *dst, const __u8 *configured_src)
{
	if (!lb_mac_is_zero(configured_src))
		__builtin_memcpy(&l2->bytes[ETH_ALEN], configured_src, ETH_ALEN);
	else
		__builtin_memcpy(&l2->bytes[ETH_ALEN], &l2->bytes[0], ETH_ALEN);
	__builtin_memcpy(&l2->bytes[0], dst, ETH_ALEN);
}

static __always_inline __u16 lb_csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 lb_ipv4_hdr_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u64 sum = 0;

#pragma unroll
	for (int i = 0; i < LB_IPV4_HDR_LEN / 2; i++)
		sum += w[i];
	return lb_csum_fold(sum);
}

/* DSCP/ECN of the client's datagram, carried to the outer header. */
static __always_inline int lb_inner_tos(struct xdp_md *ctx, const struct sluice_pkt *pkt, __u32 l2_len, __u8 *tos)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *ip = data + (l2_len & 0xff);

	if ((void *)(ip + 2) > data_end)
		return -1;
	if (pkt->ip_version == 4)
		*tos = ip[1];
	else
		*tos = (__u8)((ip[0] << 4) | (ip[1] >> 4));
	return 0;
}

/* Outer header length for a backend of this family; 0 for a family the stage cannot reach. */
static __always_inline __u32 lb_encap_overhead(const struct sluice_pkt *pkt, const struct sluice_lb_backend *be)
{
	if (be->ip_version == 4)
		return pkt->ip_version == 4 ? LB_IPV4_HDR_LEN : 0; /* no IPv6-in-IPv4 */
	if (be->ip_version == 6)
		return LB_IPV6_HDR_LEN;
	return 0;
}

struct lb_outer {
	__u32 src[4]; /* network order */
	__u32 dst[4];
	__u8 version;
};

/*
 * The L2 header in front of the outer one, written in place with word
 * stores: after the head moves back by `overhead` the received L2 header
 * is still there, `overhead` bytes in; its destination MAC (the source
 * when none is configured) and VLAN tags are read into registers first,
 * since with two tags under an outer IPv4 header the new header's last
 * bytes overlap the old one's first. Unaligned word access is fine for
 * packet data on the JITs this runs on (x86-64, arm64); clang would split
 * a memcpy of byte arrays into single bytes.
 */
static __always_inline int lb_l2_write(struct xdp_md *ctx, __u32 overhead, __u8 vlan_depth, __u16 outer_proto,
				       const struct sluice_lb_settings *s)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *old = data + (overhead & 0x3f);
	__be16 proto = bpf_htons(outer_proto);
	__u32 mac_hi;
	__u16 mac_lo;
	__u64 tags;

	/* every TCP/UDP frame holds that much; both checks, as the verifier tracks each pointer's range */
	if (data + LB_L2_MAX_LEN > data_end || (void *)(old + LB_L2_MAX_LEN) > data_end)
		return -1;
	if (!lb_mac_is_zero(s->src_mac)) {
		mac_hi = *(const __u32 *)&s->src_mac[0];
		mac_lo = *(const __u16 *)&s->src_mac[4];
	} else {
		mac_hi = *(const __u32 *)&old[0];
		mac_lo = *(const __u16 *)&old[4];
	}
	tags = *(const __u64 *)&old[ETH_HLEN - 2]; /* up to two tags, each TPID + TCI */
	*(__u32 *)(data + 0) = *(const __u32 *)&s->next_hop_mac[0];
	*(__u16 *)(data + 4) = *(const __u16 *)&s->next_hop_mac[4];
	*(__u32 *)(data + ETH_ALEN) = mac_hi;
	*(__u16 *)(data + ETH_ALEN + 4) = mac_lo;
	if (vlan_depth == 0) {
		*(__be16 *)(data + ETH_HLEN - 2) = proto;
	} else if (vlan_depth == 1) {
		*(__u32 *)(data + ETH_HLEN - 2) = (__u32)tags;
		*(__be16 *)(data + ETH_HLEN - 2 + LB_VLAN_HDR_LEN) = proto;
	} else {
		*(__u64 *)(data + ETH_HLEN - 2) = tags;
		*(__be16 *)(data + ETH_HLEN - 2 + 2 * LB_VLAN_HDR_LEN) = proto;
	}
	return 0;
}

/*
 * Puts the outer header in front of the datagram (pkt->l3_len bytes at
 * pkt->l3_off) and the L2 header in front of that. Returns the outer
 * header's length, or -1 when the frame cannot grow (no headroom).
 */
static __always_inline int lb_encap(struct xdp_md *ctx, const struct sluice_pkt *pkt, __u32 l2_len,
				    const struct lb_outer *outer, const struct sluice_lb_settings *s, __u32 hash)
{
	void *data, *data_end;
	__u32 overhead = outer->version == 4 ? LB_IPV4_HDR_LEN : LB_IPV6_HDR_LEN;
	__u32 inner_len = pkt->l3_len;
	__u8 tos;

	if (inner_len + overhead > LB_IP_MAX_LEN || pkt->vlan_depth > SLUICE_MAX_VLAN_TAGS)
		return -1;
	if (lb_inner_tos(ctx, pkt, l2_len, &tos))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)overhead))
		return -1;
	if (lb_l2_write(ctx, overhead, pkt->vlan_depth, outer->version == 4 ? ETH_P_IP : ETH_P_IPV6, s))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (outer->version == 4) {
		struct iphdr *iph = data + (l2_len & 0xff);
		struct iphdr h = {
			.version = 4,
			.ihl = LB_IPV4_HDR_LEN / 4,
			.tos = tos,
			.tot_len = bpf_htons(inner_len + LB_IPV4_HDR_LEN),
			.id = 0,
			.frag_off = bpf_htons(LB_IP_DF), /* the outer packet is never fragmented: too big is answered */
			.ttl = LB_OUTER_TTL,
			.protocol = IPPROTO_IPIP,
			.check = 0,
			.saddr = outer->src[0],
			.daddr = outer->dst[0],
		};

		if ((void *)(iph + 1) > data_end)
			return -1;
		h.check = lb_ipv4_hdr_csum(&h);
		__builtin_memcpy(iph, &h, sizeof(h));
		return LB_IPV4_HDR_LEN;
	}
	{
		struct ipv6hdr *ip6h = data + (l2_len & 0xff);
		struct ipv6hdr h = {};
		__u32 flow = hash & LB_IPV6_FLOW_LABEL_MASK; /* flow entropy for ECMP on the way to the backend */

		if ((void *)(ip6h + 1) > data_end)
			return -1;
		h.version = 6;
		h.priority = tos >> 4;
		h.flow_lbl[0] = (__u8)(((tos & 0xf) << 4) | (flow >> 16));
		h.flow_lbl[1] = (__u8)(flow >> 8);
		h.flow_lbl[2] = (__u8)flow;
		h.payload_len = bpf_htons(inner_len);
		h.nexthdr = pkt->ip_version == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
		h.hop_limit = LB_OUTER_TTL;
		__builtin_memcpy(&h.saddr, outer->src, sizeof(h.saddr));
		__builtin_memcpy(&h.daddr, outer->dst, sizeof(h.daddr));
		__builtin_memcpy(ip6h, &h, sizeof(h));
		return LB_IPV6_HDR_LEN;
	}
}

/*
 * The outer addresses: the backend's, and the configured source (0 when
 * the family has none: the backend is unreachable). With
 * SLUICE_LB_F_ENTROPY_SOURCE the source's low bits come from the flow hash
 * (as Katran does), so ECMP and RSS on the way spread flows of one VIP.
 */
static __always_inline int lb_outer_addrs(const struct sluice_lb_settings *s, const struct sluice_lb_backend *be,
					  __u32 hash, struct lb_outer *outer)
{
	__builtin_memset(outer, 0, sizeof(*outer));
	outer->version = be->ip_version;
	__builtin_memcpy(outer->dst, be->addr, sizeof(outer->dst));
	if (be->ip_version == 4) {
		outer->dst[1] = outer->dst[2] = outer->dst[3] = 0;
		if (s->encap_src_v4 == 0)
			return -1;
		outer->src[0] = s->encap_src_v4;
		if (s->flags & SLUICE_LB_F_ENTROPY_SOURCE)
			outer->src[0] = (s->encap_src_v4 & bpf_htonl(~LB_IPV4_ENTROPY_MASK)) |
					bpf_htonl(hash & LB_IPV4_ENTROPY_MASK);
		return 0;
	}
	if ((s->encap_src_v6[0] | s->encap_src_v6[1] | s->encap_src_v6[2] | s->encap_src_v6[3]) == 0)
		return -1;
	__builtin_memcpy(outer->src, s->encap_src_v6, sizeof(outer->src));
	if (s->flags & SLUICE_LB_F_ENTROPY_SOURCE)
		outer->src[3] = bpf_htonl(hash);
	return 0;
}

#endif /* SLUICE_XDP_LB_ENCAP_H */
