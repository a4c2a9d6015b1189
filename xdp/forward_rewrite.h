/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What routing does to a packet's bytes: TTL / hop limit minus one (the
 * IPv4 header checksum updated incrementally) and the Ethernet addresses of
 * the next hop. The IP header sits at ETH_HLEN: the stage routes untagged
 * frames only (fwd_routable).
 */
#ifndef SLUICE_XDP_FORWARD_REWRITE_H
#define SLUICE_XDP_FORWARD_REWRITE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"

/* The TTL / hop limit of the frame's IP header; -1 when the header is not in the frame. */
static __always_inline int fwd_ttl(struct xdp_md *ctx, const struct sluice_pkt *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (pkt->ip_version == 4) {
		struct iphdr *ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > data_end)
			return -1;
		return ip->ttl;
	}
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	if ((void *)(ip6 + 1) > data_end)
		return -1;
	return ip6->hop_limit;
}

/*
 * TTL - 1 and the checksum with it, as RFC 1624 eqn. 3 (HC' = ~(~HC + ~m +
 * m')) works out for a TTL decrement: the 16-bit word (TTL, protocol) drops
 * by 0x0100, so the checksum rises by it, with the end-around carry (the
 * kernel's ip_decrease_ttl). Then the next hop's MACs. 0, or -1 when the
 * headers are not in the frame (the parser saw them: cannot happen).
 */
static __always_inline int fwd_rewrite(struct xdp_md *ctx, const struct sluice_pkt *pkt,
				       const struct sluice_fwd_nexthop *nh)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if (pkt->ip_version == 4) {
		struct iphdr *ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > data_end)
			return -1;
		__u32 check = ip->check;
		check += bpf_htons(0x0100);
		ip->check = (__u16)(check + (check >= 0xffff));
		ip->ttl--;
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, nh->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->src_mac, ETH_ALEN);
	return 0;
}

#endif /* SLUICE_XDP_FORWARD_REWRITE_H */
