// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The egress observer: a TC clsact egress program that sluiced attaches
 * beside the XDP entry program on every attached interface. XDP sees only
 * what comes in; a reply that leaves through an attached interface without
 * having come in through one (the host itself answering, or a reply routed
 * in through an interface sluice does not own) is seen here, and marks the
 * flow's conntrack entry replied (filter_conntrack.h, ct_see) so that the
 * flow is established exactly when its reply direction was seen.
 *
 * It never drops, never creates entries and never changes the packet: it
 * only reads it and updates entries the filter stage created. Its maps are
 * the XDP object's own (user space loads it with their fds). Returns
 * TC_ACT_UNSPEC, so other egress filters still run after it.
 * Needs clsact and direct packet access for TC (Linux 4.5+); the helpers it
 * uses (bpf_jiffies64, bpf_ktime_get_coarse_ns) need 5.11+, as XDP's do.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>

/* conntrack reads packet bytes with bpf_skb_load_bytes here */
#define SLUICE_CT_SKB 1

#include "sluice_maps.h"
#include "parsing.h"
#include "filter_state_maps.bpf.h"
#include "filter_conntrack.h"

/* Headers the observer reads (Ethernet, 2 VLAN tags, IPv6 + extension headers, TCP with options). */
#define SLUICE_OBSERVER_HEAD_BYTES 256

/* The settings the filter stage runs with; NULL when never written (conntrack is off then). */
static __always_inline const struct sluice_filter_settings *observer_settings(void)
{
	__u32 slot = 0;
	const struct sluice_filter_settings *s = bpf_map_lookup_elem(&filter_settings, &slot);

	if (!s || s->version != SLUICE_FILTER_SETTINGS_VERSION)
		return 0;
	return s;
}

/* The L4 part of parsing (parsing.h's parse_upper_span) on an skb's bytes. */
static __always_inline int observer_parse_upper(void *data, void *data_end, struct sluice_pkt *pkt, __u32 off,
						__u32 l3_end)
{
	struct sluice_l4_span s = { .data = data, .end = data_end, .l3_end = l3_end };

	return parse_upper_span(&s, pkt, off);
}

/*
 * The IP header, as parsing.h's parsers, except that the datagram may
 * extend past the linear part (a GSO packet of the local stack carries its
 * payload in pages): its length is checked against skb->len, and only the
 * headers must be linear. Returns the datagram's end offset, 0 if malformed.
 */
static __always_inline __u32 observer_parse_ip(struct __sk_buff *skb, struct sluice_cursor *c, void *data,
					       struct sluice_pkt *pkt)
{
	__u32 l3 = c->pos - data;

	if (pkt->eth_proto == ETH_P_IP) {
		struct iphdr *iph = c->pos;
		__u32 hdr_len, tot_len, frag_off;

		if ((void *)(iph + 1) > c->end || iph->version != 4 || iph->ihl < SLUICE_IPV4_MIN_IHL)
			return 0;
		hdr_len = iph->ihl * 4;
		tot_len = bpf_ntohs(iph->tot_len);
		if (c->pos + hdr_len > c->end || tot_len < hdr_len || l3 + tot_len > skb->len)
			return 0;
		frag_off = bpf_ntohs(iph->frag_off);
		pkt->ip_version = 4;
		pkt->ip_proto = iph->protocol;
		pkt->src[0] = iph->saddr;
		pkt->dst[0] = iph->daddr;
		pkt->l3_off = l3;
		pkt->l3_len = tot_len;
		if (frag_off & SLUICE_IP_OFFSET_MASK)
			pkt->frag = SLUICE_FRAG_NONFIRST;
		else if (frag_off & SLUICE_IP_MF)
			pkt->frag = SLUICE_FRAG_FIRST;
		c->pos += hdr_len;
		return l3 + tot_len;
	}
	if (pkt->eth_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6h = c->pos;
		__u32 payload_len;

		if ((void *)(ip6h + 1) > c->end || ip6h->version != 6)
			return 0;
		payload_len = bpf_ntohs(ip6h->payload_len);
		if (payload_len == 0 || l3 + sizeof(*ip6h) + payload_len > skb->len) /* 0: a BIG TCP packet */
			return 0;
		pkt->ip_version = 6;
		pkt->ip_proto = ip6h->nexthdr;
		__builtin_memcpy(pkt->src, &ip6h->saddr, sizeof(pkt->src));
		__builtin_memcpy(pkt->dst, &ip6h->daddr, sizeof(pkt->dst));
		pkt->l3_off = l3;
		pkt->l3_len = sizeof(*ip6h) + payload_len;
		c->pos = ip6h + 1;
		return l3 + sizeof(*ip6h) + payload_len;
	}
	return 0;
}

SEC("tc")
int sluice_egress_observer(struct __sk_buff *skb)
{
	const struct sluice_filter_settings *settings = observer_settings();
	struct sluice_pkt pkt;
	struct sluice_cursor c;
	struct ct_frame frame;
	void *data, *data_end;
	__u32 l3_end;

	if (!settings || !settings->conntrack_enabled)
		return TC_ACT_UNSPEC;
	/*
	 * Headers outside the linear part are unreadable by direct access;
	 * pull only then (pulling a clone, as TCP's retransmit queue hands
	 * out, copies its head).
	 */
	if (skb->data + SLUICE_OBSERVER_HEAD_BYTES > skb->data_end && skb->len > skb->data_end - skb->data)
		bpf_skb_pull_data(skb, skb->len < SLUICE_OBSERVER_HEAD_BYTES ? skb->len : SLUICE_OBSERVER_HEAD_BYTES);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;

	__builtin_memset(&pkt, 0, sizeof(pkt));
	pkt.ifindex = skb->ifindex;
	pkt.pkt_len = skb->len;
	c.pos = data;
	c.end = data_end;
	c.l3_end = data_end;
	if (parse_ethhdr(&c, &pkt) != SLUICE_PARSE_OK || parse_vlan_tags(&c, &pkt) != SLUICE_PARSE_OK)
		return TC_ACT_UNSPEC;
	l3_end = observer_parse_ip(skb, &c, data, &pkt);
	if (!l3_end)
		return TC_ACT_UNSPEC;
	if (observer_parse_upper(data, data_end, &pkt, c.pos - data, l3_end) != SLUICE_PARSE_OK)
		return TC_ACT_UNSPEC;
	if (ct_tcp_flags_invalid(&pkt))
		return TC_ACT_UNSPEC; /* never lets such a packet advance a flow */
	ct_frame_init(&frame, skb, data, data_end, &pkt);
	ct_see(settings, &frame, &pkt, 0);
	return TC_ACT_UNSPEC;
}

char _license[] SEC("license") = "GPL";
