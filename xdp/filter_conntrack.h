/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Connection tracking: one LRU-hash entry per flow, both directions under
 * one key (the lower (addr, port) first, the packet's direction a bit);
 * IPv4 flows in filter_conntrack_v4 (16-byte key), IPv6 in filter_conntrack.
 * A live entry lets the flow skip the rules. A full table evicts the least
 * recently used flow; the packet path never fails on it.
 */
#ifndef SLUICE_XDP_FILTER_CONNTRACK_H
#define SLUICE_XDP_FILTER_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"
#include "filter_maps.bpf.h"

#define SLUICE_TCP_FIN 0x01
#define SLUICE_TCP_SYN 0x02
#define SLUICE_TCP_RST 0x04
#define SLUICE_TCP_ACK 0x10
#define SLUICE_NS_PER_SEC 1000000000ULL
#define SLUICE_CT_BOTH_DIRS ((1u << SLUICE_CT_DIR_A_TO_B) | (1u << SLUICE_CT_DIR_B_TO_A))

/*
 * Conntrack's clock: CLOCK_MONOTONIC_COARSE (the base of bpf_ktime_get_ns,
 * which user space reads last_seen_ns as), advanced once a tick. Idle
 * timeouts are whole seconds, so a tick or two of error is nothing.
 * Per packet, both clock helpers cost too much (measured on the conntrack
 * hit: bpf_ktime_get_ns ~45 ns in a KVM guest, bpf_ktime_get_coarse_ns
 * ~16 ns), while bpf_jiffies64 is inlined by the verifier into one load.
 * So each CPU keeps the coarse time of the current jiffy and reads the
 * helper again only when jiffies moves: once a tick, not once a packet.
 * (The coarse clock itself only moves on a tick; reading it just before
 * the tick updates it costs one more tick of error.)
 */
static __always_inline __u64 ct_now(void)
{
	__u32 slot = 0;
	struct sluice_ct_clock *clock = bpf_map_lookup_elem(&filter_ct_clock, &slot);
	__u64 jiffies = bpf_jiffies64();

	if (!clock) /* a one-slot array always has slot 0; the verifier wants the check */
		return bpf_ktime_get_coarse_ns();
	if (clock->jiffies != jiffies) {
		clock->now_ns = bpf_ktime_get_coarse_ns();
		clock->jiffies = jiffies;
	}
	return clock->now_ns;
}

/* Only flows with a readable L4 header are tracked: later fragments and other protocols go to the rules. */
static __always_inline int ct_trackable(const struct sluice_pkt *pkt)
{
	return pkt->has_l4 && (pkt->ip_proto == IPPROTO_TCP || pkt->ip_proto == IPPROTO_UDP ||
			       pkt->ip_proto == IPPROTO_ICMP || pkt->ip_proto == IPPROTO_ICMPV6);
}

static __always_inline int ct_is_icmp(const struct sluice_pkt *pkt)
{
	return pkt->ip_proto == IPPROTO_ICMP || pkt->ip_proto == IPPROTO_ICMPV6;
}

/* Compares (src, sport) with (dst, dport) word by word in network order: < 0, 0, > 0. */
static __always_inline int ct_endpoint_cmp(const struct sluice_pkt *pkt)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 a = bpf_ntohl(pkt->src[i]), b = bpf_ntohl(pkt->dst[i]);

		if (a != b)
			return a < b ? -1 : 1;
	}
	if (pkt->sport != pkt->dport)
		return pkt->sport < pkt->dport ? -1 : 1;
	return 0;
}

/* IPv6: fills the normalised key; returns the packet's direction (SLUICE_CT_DIR_*). */
static __always_inline __u32 ct_make_key(const struct sluice_pkt *pkt, struct sluice_ct_key *key)
{
	__u32 dir = ct_endpoint_cmp(pkt) <= 0 ? SLUICE_CT_DIR_A_TO_B : SLUICE_CT_DIR_B_TO_A;

	__builtin_memset(key, 0, sizeof(*key));
	if (dir == SLUICE_CT_DIR_A_TO_B) {
		__builtin_memcpy(key->addr_a, pkt->src, sizeof(key->addr_a));
		__builtin_memcpy(key->addr_b, pkt->dst, sizeof(key->addr_b));
		key->port_a = pkt->sport;
		key->port_b = pkt->dport;
	} else {
		__builtin_memcpy(key->addr_a, pkt->dst, sizeof(key->addr_a));
		__builtin_memcpy(key->addr_b, pkt->src, sizeof(key->addr_b));
		key->port_a = pkt->dport;
		key->port_b = pkt->sport;
	}
	if (ct_is_icmp(pkt)) /* ICMP has no ports: a host pair is one pseudo-flow */
		key->port_a = key->port_b = 0;
	key->proto = pkt->ip_proto;
	key->ip_version = pkt->ip_version;
	return dir;
}

/* IPv4: the same normalisation as ct_make_key, on one address word. */
static __always_inline __u32 ct_make_key_v4(const struct sluice_pkt *pkt, struct sluice_ct_v4_key *key)
{
	__u32 src = bpf_ntohl(pkt->src[0]), dst = bpf_ntohl(pkt->dst[0]);
	__u32 dir = (src < dst || (src == dst && pkt->sport <= pkt->dport)) ? SLUICE_CT_DIR_A_TO_B
									     : SLUICE_CT_DIR_B_TO_A;

	__builtin_memset(key, 0, sizeof(*key));
	if (dir == SLUICE_CT_DIR_A_TO_B) {
		key->addr_a = pkt->src[0];
		key->addr_b = pkt->dst[0];
		key->port_a = pkt->sport;
		key->port_b = pkt->dport;
	} else {
		key->addr_a = pkt->dst[0];
		key->addr_b = pkt->src[0];
		key->port_a = pkt->dport;
		key->port_b = pkt->sport;
	}
	if (ct_is_icmp(pkt))
		key->port_a = key->port_b = 0;
	key->proto = pkt->ip_proto;
	return dir;
}

static __always_inline __u32 ct_initial_state(const struct sluice_pkt *pkt)
{
	if (pkt->ip_proto == IPPROTO_TCP) {
		if (pkt->tcp_flags & (SLUICE_TCP_FIN | SLUICE_TCP_RST))
			return SLUICE_CT_TCP_CLOSING;
		if ((pkt->tcp_flags & (SLUICE_TCP_SYN | SLUICE_TCP_ACK)) == SLUICE_TCP_SYN)
			return SLUICE_CT_TCP_SYN;
		return SLUICE_CT_TCP_ESTABLISHED; /* picked up mid-stream */
	}
	if (pkt->ip_proto == IPPROTO_UDP)
		return SLUICE_CT_UDP;
	return SLUICE_CT_ICMP;
}

static __always_inline __u64 ct_timeout_ns(const struct sluice_filter_settings *settings, __u32 state)
{
	if (state >= SLUICE_CT_STATE_COUNT)
		return 0;
	return (__u64)settings->ct_timeout_s[state] * SLUICE_NS_PER_SEC;
}

/* Idle past its state's timeout. Another CPU may have stamped the entry after we read the clock: not idle. */
static __always_inline int ct_expired(const struct sluice_filter_settings *settings, const struct sluice_ct_entry *ct,
				      __u64 now)
{
	return now > ct->last_seen_ns && now - ct->last_seen_ns > ct_timeout_ns(settings, ct->state);
}

static __always_inline void ct_advance(struct sluice_ct_entry *ct, const struct sluice_pkt *pkt, __u32 dir)
{
	ct->dirs_seen |= 1u << dir;
	if (pkt->ip_proto == IPPROTO_TCP) {
		if (pkt->tcp_flags & (SLUICE_TCP_FIN | SLUICE_TCP_RST)) {
			ct->state = SLUICE_CT_TCP_CLOSING;
		} else if (ct->state == SLUICE_CT_TCP_SYN) {
			/*
			 * Both directions seen: the reply came through here. Or
			 * the originator (the only direction seen in TCP_SYN: a
			 * reply would have left the state) sends ACK without SYN:
			 * the handshake's third packet, which it sends only after
			 * the SYN-ACK reached it. That SYN-ACK may have taken a
			 * path XDP never sees (the box is the endpoint, or
			 * routing is asymmetric); without this the flow would
			 * stay in TCP_SYN and its short timeout would cut it.
			 */
			if (ct->dirs_seen == SLUICE_CT_BOTH_DIRS ||
			    (pkt->tcp_flags & (SLUICE_TCP_SYN | SLUICE_TCP_ACK)) == SLUICE_TCP_ACK)
				ct->state = SLUICE_CT_TCP_ESTABLISHED;
		}
	} else if (pkt->ip_proto == IPPROTO_UDP && ct->dirs_seen == SLUICE_CT_BOTH_DIRS) {
		ct->state = SLUICE_CT_UDP_REPLIED;
	}
}

/* Plain adds, not atomic: see struct sluice_ct_entry for what that may lose. */
static __always_inline void ct_account(struct sluice_ct_entry *ct, __u32 dir, __u64 len, __u64 now)
{
	dir &= 1;
	ct->last_seen_ns = now;
	ct->packets[dir] += 1;
	ct->bytes[dir] += len;
}

/* 1 when pkt belongs to a live tracked flow (entry updated); an expired entry is removed. */
static __always_inline int ct_lookup(const struct sluice_filter_settings *settings, const struct sluice_pkt *pkt)
{
	struct sluice_ct_entry *ct;
	__u64 now;
	__u32 dir;

	if (!ct_trackable(pkt))
		return 0;
	now = ct_now();
	if (pkt->ip_version == 4) {
		struct sluice_ct_v4_key key;

		dir = ct_make_key_v4(pkt, &key);
		ct = bpf_map_lookup_elem(&filter_conntrack_v4, &key);
		if (!ct)
			return 0;
		if (ct_expired(settings, ct, now)) {
			bpf_map_delete_elem(&filter_conntrack_v4, &key);
			return 0;
		}
	} else {
		struct sluice_ct_key key;

		dir = ct_make_key(pkt, &key);
		ct = bpf_map_lookup_elem(&filter_conntrack, &key);
		if (!ct)
			return 0;
		if (ct_expired(settings, ct, now)) {
			bpf_map_delete_elem(&filter_conntrack, &key);
			return 0;
		}
	}
	ct_advance(ct, pkt, dir);
	ct_account(ct, dir, pkt->pkt_len, now);
	return 1;
}

/* Pass-and-track: a new entry for pkt's flow (LRU: may evict the oldest). */
static __always_inline void ct_create(const struct sluice_pkt *pkt)
{
	struct sluice_ct_entry ct = {};
	__u32 dir;

	if (!ct_trackable(pkt))
		return;
	if (pkt->ip_version == 4) {
		struct sluice_ct_v4_key key;

		dir = ct_make_key_v4(pkt, &key) & 1;
		ct.state = ct_initial_state(pkt);
		ct.dirs_seen = 1u << dir;
		ct.last_seen_ns = ct_now();
		ct.packets[dir] = 1;
		ct.bytes[dir] = pkt->pkt_len;
		bpf_map_update_elem(&filter_conntrack_v4, &key, &ct, BPF_ANY);
	} else {
		struct sluice_ct_key key;

		dir = ct_make_key(pkt, &key) & 1;
		ct.state = ct_initial_state(pkt);
		ct.dirs_seen = 1u << dir;
		ct.last_seen_ns = ct_now();
		ct.packets[dir] = 1;
		ct.bytes[dir] = pkt->pkt_len;
		bpf_map_update_elem(&filter_conntrack, &key, &ct, BPF_ANY);
	}
}

#endif /* SLUICE_XDP_FILTER_CONNTRACK_H */
