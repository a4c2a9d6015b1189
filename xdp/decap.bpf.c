/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * sluice-decap: the backend side of sluice's load balancer. The lb stage
 * sends a client's IP packet to a backend inside an outer IPv4 header
 * (protocol 4 or 41) or an outer IPv6 header (next header 41 or 4) whose
 * destination is the backend's own address. This program, attached to the
 * backend's interface, strips that outer header when its destination is one
 * of decap_addresses and passes the inner packet to the stack, which delivers
 * it to the VIP held on loopback; the reply goes to the client directly.
 * Only an outer source in decap_sources_v4/v6 (the balancers' encap sources)
 * is decapsulated: anyone else's tunnel would smuggle an inner source past
 * the edge's rules (and, on a host that forwards, make it an open relay), so
 * it is dropped and counted.
 *
 * Layer 2 is kept as it arrived: the Ethernet header and up to two VLAN tags
 * are moved up to the inner packet and the innermost EtherType names the
 * inner family, so the packet reaches the stack on the (VLAN) device the
 * outer one came in on. Frames that are not a sluice encapsulation addressed
 * here are passed untouched (this program must be invisible to the host's
 * other traffic); one that is addressed here but does not hold together is
 * dropped and counted by what is wrong with it.
 *
 * An outer IPv6 header with extension headers is not recognised (passed
 * untouched): sluice never adds any. Kernel: bpf_xdp_adjust_head and bounded
 * loops, 5.3 or later (LPM tries: 4.11).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "parsing.h"
#include "decap_maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Ethernet header and the VLAN tags parse_vlan_tags accepts, as one block. */
struct decap_l2 {
	struct ethhdr eth;
	struct sluice_vlan_hdr vlan[SLUICE_MAX_VLAN_TAGS];
};
_Static_assert(sizeof(struct decap_l2) == ETH_HLEN + SLUICE_MAX_VLAN_TAGS * sizeof(struct sluice_vlan_hdr),
	       "decap_l2 must have no padding: it is copied as the frame's bytes");

#define DECAP_IPV4_MAX_HDR_WORDS (15 * 4 / 2) /* IHL 15, in 16-bit words */
/* Smallest frame that can be decapsulated: Ethernet, two IP headers. */
#define DECAP_MIN_FRAME (ETH_HLEN + 2 * sizeof(struct iphdr))
_Static_assert(sizeof(struct decap_l2) <= DECAP_MIN_FRAME,
	       "the L2 block is read whole from any frame that is decapsulated");

/* What classify_* found: an outcome, or "strip outer_len bytes". */
#define DECAP_STRIP (-1)

struct decap_plan {
	__u32 outer_len;  /* bytes of outer header to remove */
	__u16 inner_proto; /* EtherType of the inner packet */
	__u32 outcome;    /* SLUICE_DECAP_4IN4 .. 6IN6 */
};

static __always_inline void count(__u32 outcome, __u64 bytes)
{
	struct sluice_decap_counter *c = bpf_map_lookup_elem(&decap_counters, &outcome);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline int accepted(const __u32 *addr, __u8 ip_version)
{
	struct sluice_decap_addr_key key = { .ip_version = ip_version };

	if (ip_version == 4)
		key.addr[0] = addr[0];
	else
		__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	return bpf_map_lookup_elem(&decap_addresses, &key) != 0;
}

/* The outer source is one of the balancers' (decap_sources_v4/v6). */
static __always_inline int source_allowed4(__be32 saddr)
{
	struct sluice_decap_source4_key key = { .prefixlen = 32 };

	__builtin_memcpy(key.addr, &saddr, sizeof(key.addr));
	return bpf_map_lookup_elem(&decap_sources_v4, &key) != 0;
}

static __always_inline int source_allowed6(const struct in6_addr *saddr)
{
	struct sluice_decap_source6_key key = { .prefixlen = 128 };

	__builtin_memcpy(key.addr, saddr, sizeof(key.addr));
	return bpf_map_lookup_elem(&decap_sources_v6, &key) != 0;
}

/* RFC 1071 over the IHL words: the sum of a correct header folds to 0xffff. */
static __always_inline int ipv4_header_checksum_ok(const struct iphdr *iph, void *data_end)
{
	const __u16 *word = (const void *)iph;
	__u32 words = iph->ihl * 2;
	__u32 sum = 0;

	for (int i = 0; i < DECAP_IPV4_MAX_HDR_WORDS; i++) {
		if (i >= words)
			break;
		/* keep clang from folding the bound into data_end arithmetic */
		asm volatile("" : "+r"(word));
		if ((void *)(word + 1) > data_end)
			return 0;
		sum += *word;
		word++;
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/*
 * The inner header at c->pos, which must fill exactly payload_len bytes (the
 * outer datagram's payload): version from the protocol number, then the one
 * parser of that header.
 */
static __always_inline int check_inner(struct sluice_cursor *c, void *data, struct sluice_pkt *inner,
				       __u8 protocol, __u32 payload_len, struct decap_plan *plan)
{
	__u8 *first = c->pos;
	int reason;

	if ((void *)(first + 1) > c->end)
		return SLUICE_DECAP_INNER_TRUNCATED;
	if (protocol == IPPROTO_IPIP) {
		if ((*first >> 4) != 4)
			return SLUICE_DECAP_INNER_VERSION_MISMATCH;
		reason = parse_ipv4hdr(c, data, inner);
		plan->inner_proto = ETH_P_IP;
	} else {
		if ((*first >> 4) != 6)
			return SLUICE_DECAP_INNER_VERSION_MISMATCH;
		reason = parse_ipv6hdr(c, data, inner);
		plan->inner_proto = ETH_P_IPV6;
	}
	switch (reason) {
	case SLUICE_PARSE_OK:
		break;
	case SLUICE_REASON_TRUNC_IPV4:
	case SLUICE_REASON_TRUNC_IPV6:
		return SLUICE_DECAP_INNER_TRUNCATED;
	case SLUICE_REASON_IPV4_BAD_TOTLEN:
	case SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN:
		return SLUICE_DECAP_INNER_LENGTH_MISMATCH;
	default: /* bad IHL, fragment beyond 64 KiB */
		return SLUICE_DECAP_INNER_BAD_HEADER;
	}
	/* the inner datagram is the outer payload, no more, no less */
	if (inner->l3_len != payload_len)
		return SLUICE_DECAP_INNER_LENGTH_MISMATCH;
	return DECAP_STRIP;
}

static __always_inline int classify_ipv4(struct sluice_cursor *c, void *data, struct sluice_pkt *pkt,
					 struct decap_plan *plan)
{
	struct iphdr *iph = c->pos;
	__u32 hdr_len, payload_len;
	__u8 protocol;
	int reason;

	/* Not ours to judge until it is IP-in-IP to an accepted address. */
	if ((void *)(iph + 1) > c->end || iph->version != 4)
		return SLUICE_DECAP_NOT_ENCAPSULATED;
	protocol = iph->protocol;
	if (protocol != IPPROTO_IPIP && protocol != IPPROTO_IPV6)
		return SLUICE_DECAP_NOT_ENCAPSULATED;
	if (!accepted(&iph->daddr, 4))
		return SLUICE_DECAP_NOT_FOR_US;
	if (!source_allowed4(iph->saddr))
		return SLUICE_DECAP_FOREIGN_SOURCE;

	reason = parse_ipv4hdr(c, data, pkt);
	if (reason == SLUICE_REASON_IPV4_BAD_FRAGMENT)
		return SLUICE_DECAP_OUTER_FRAGMENT;
	if (reason != SLUICE_PARSE_OK)
		return SLUICE_DECAP_OUTER_BAD_HEADER;
	if (pkt->frag != SLUICE_FRAG_NONE)
		return SLUICE_DECAP_OUTER_FRAGMENT;
	if (!ipv4_header_checksum_ok(iph, c->end))
		return SLUICE_DECAP_OUTER_BAD_CHECKSUM;
	hdr_len = iph->ihl * 4;
	payload_len = pkt->l3_len - hdr_len; /* parse_ipv4hdr: l3_len >= hdr_len */
	plan->outer_len = hdr_len;
	plan->outcome = protocol == IPPROTO_IPIP ? SLUICE_DECAP_4IN4 : SLUICE_DECAP_6IN4;
	return check_inner(c, data, pkt, protocol, payload_len, plan);
}

static __always_inline int classify_ipv6(struct sluice_cursor *c, void *data, struct sluice_pkt *pkt,
					 struct decap_plan *plan)
{
	struct ipv6hdr *ip6h = c->pos;
	__u8 protocol;
	int reason;

	if ((void *)(ip6h + 1) > c->end || ip6h->version != 6)
		return SLUICE_DECAP_NOT_ENCAPSULATED;
	protocol = ip6h->nexthdr;
	if (protocol != IPPROTO_IPIP && protocol != IPPROTO_IPV6)
		return SLUICE_DECAP_NOT_ENCAPSULATED;
	if (!accepted(ip6h->daddr.in6_u.u6_addr32, 6))
		return SLUICE_DECAP_NOT_FOR_US;
	if (!source_allowed6(&ip6h->saddr))
		return SLUICE_DECAP_FOREIGN_SOURCE;

	reason = parse_ipv6hdr(c, data, pkt);
	if (reason != SLUICE_PARSE_OK)
		return SLUICE_DECAP_OUTER_BAD_HEADER;
	plan->outer_len = sizeof(*ip6h);
	plan->outcome = protocol == IPPROTO_IPIP ? SLUICE_DECAP_4IN6 : SLUICE_DECAP_6IN6;
	return check_inner(c, data, pkt, protocol, pkt->l3_len - sizeof(*ip6h), plan);
}

/*
 * Move the L2 header (l2_len bytes: Ethernet and vlan_depth tags) up to the
 * inner packet and drop the outer header in front of it. The L2 block is
 * copied out before bpf_xdp_adjust_head (which invalidates every packet
 * pointer) and written back after, at the new start of the frame.
 */
static __always_inline int strip_outer(struct xdp_md *ctx, __u8 vlan_depth, const struct decap_plan *plan)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct decap_l2 l2;
	struct decap_l2 *head;
	__be16 inner_proto = bpf_htons(plan->inner_proto);

	if (data + sizeof(l2) > data_end)
		return -1; /* cannot happen: classify_* saw two IP headers after L2 */
	__builtin_memcpy(&l2, data, sizeof(l2));
	if (vlan_depth == 0)
		l2.eth.h_proto = inner_proto;
	else if (vlan_depth == 1)
		l2.vlan[0].encapsulated_proto = inner_proto;
	else
		l2.vlan[1].encapsulated_proto = inner_proto;

	if (bpf_xdp_adjust_head(ctx, (int)plan->outer_len))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	head = data;
	if ((void *)&head->vlan[0] > data_end)
		return -1;
	__builtin_memcpy(&head->eth, &l2.eth, sizeof(l2.eth));
	if (vlan_depth >= 1) {
		if ((void *)&head->vlan[1] > data_end)
			return -1;
		head->vlan[0] = l2.vlan[0];
	}
	if (vlan_depth >= 2) {
		if ((void *)(head + 1) > data_end)
			return -1;
		head->vlan[1] = l2.vlan[1];
	}
	return 0;
}

static __always_inline int is_decapsulated(int outcome)
{
	return outcome == DECAP_STRIP;
}

static __always_inline int passes_untouched(int outcome)
{
	return outcome == SLUICE_DECAP_NOT_ENCAPSULATED || outcome == SLUICE_DECAP_NOT_FOR_US;
}

SEC("xdp")
int sluice_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 frame_len = data_end - data;
	struct sluice_cursor c = { .pos = data, .end = data_end, .l3_end = data_end };
	struct decap_plan plan = {};
	/* one parse result, reused: L2, then the outer header, then the inner one */
	struct sluice_pkt pkt = {};
	__u8 vlan_depth = 0;
	int outcome;

	if (parse_ethhdr(&c, &pkt) != SLUICE_PARSE_OK || parse_vlan_tags(&c, &pkt) != SLUICE_PARSE_OK) {
		outcome = SLUICE_DECAP_NOT_ENCAPSULATED; /* the stack judges frames we do not walk */
	} else {
		vlan_depth = pkt.vlan_depth;
		if (pkt.eth_proto == ETH_P_IP)
			outcome = classify_ipv4(&c, data, &pkt, &plan);
		else if (pkt.eth_proto == ETH_P_IPV6)
			outcome = classify_ipv6(&c, data, &pkt, &plan);
		else
			outcome = SLUICE_DECAP_NOT_ENCAPSULATED;
	}

	if (passes_untouched(outcome)) {
		count(outcome, frame_len);
		return XDP_PASS;
	}
	if (!is_decapsulated(outcome)) {
		count(outcome, frame_len);
		return XDP_DROP;
	}
	if (strip_outer(ctx, vlan_depth, &plan)) {
		count(SLUICE_DECAP_STRIP_FAILED, frame_len);
		return XDP_DROP;
	}
	count(plan.outcome, frame_len);
	return XDP_PASS;
}
