/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Connection tracking: one LRU-hash entry per flow, both directions under
 * one key (the lower (addr, port) first, the packet's direction a bit).
 *
 * Two tables per family (xdp/filter_state_maps.bpf.h): a pass-and-track
 * rule creates the entry in the unreplied table; it moves to the replied
 * (main) table only when a valid reply is seen: a SYN-ACK acking the SYN,
 * any UDP datagram back, the echo reply of an echo request's identifier.
 * Only a reply makes a flow established; unreplied entries keep their
 * opening state's short timeout, and a flood of them (spoofed openings)
 * evicts only other unreplied entries, never a replied flow.
 *
 * Replies are seen by the filter stage (XDP ingress) when they come in
 * through an attached interface, and by the egress observer
 * (egress_observer.bpf.c, TC egress on every attached interface) when they
 * leave through one: the host itself answering, or a reply that came in
 * through an interface sluice does not own. Both run ct_see() below.
 *
 * TCP is tracked per direction: where the next segment starts (seq_end)
 * and the receive window the other side advertised. A segment outside that
 * window (a blind guess) still rides the flow but changes nothing: a RST or
 * FIN out of window does not move it to CLOSING.
 *
 * ICMP: echo is keyed by its identifier (in both port fields); an echo
 * request rides its entry, an echo reply only in the reply direction of a
 * replied (or just replying) entry. Errors (unreachable, packet too big,
 * time exceeded, parameter problem) are admitted as related when the packet
 * they quote belongs to a tracked flow. Other ICMP types are never tracked.
 *
 * A full table evicts the least recently used flow; the packet path never
 * fails on it.
 */
#ifndef SLUICE_XDP_FILTER_CONNTRACK_H
#define SLUICE_XDP_FILTER_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"
#include "filter_state_maps.bpf.h"

#define SLUICE_TCP_FIN 0x01
#define SLUICE_TCP_SYN 0x02
#define SLUICE_TCP_RST 0x04
#define SLUICE_TCP_ACK 0x10
#define SLUICE_NS_PER_SEC 1000000000ULL
#define SLUICE_CT_BOTH_DIRS ((1u << SLUICE_CT_DIR_A_TO_B) | (1u << SLUICE_CT_DIR_B_TO_A))

#define SLUICE_ICMP_ECHO_REPLY 0
#define SLUICE_ICMP_DEST_UNREACH 3
#define SLUICE_ICMP_ECHO_REQUEST 8
#define SLUICE_ICMP_TIME_EXCEEDED 11
#define SLUICE_ICMP_PARAM_PROBLEM 12
#define SLUICE_ICMPV6_DEST_UNREACH 1
#define SLUICE_ICMPV6_PACKET_TOO_BIG 2
#define SLUICE_ICMPV6_TIME_EXCEEDED 3
#define SLUICE_ICMPV6_PARAM_PROBLEM 4
#define SLUICE_ICMPV6_ECHO_REQUEST 128
#define SLUICE_ICMPV6_ECHO_REPLY 129
#define SLUICE_ICMP_ERROR_HDR_LEN 8 /* type, code, checksum, 4 bytes unused/MTU/pointer; then the quote */
#define SLUICE_ICMP_QUOTED_L4_LEN 8 /* RFC 792: at least 8 bytes of the quoted datagram's payload */

/*
 * The window a segment's sequence number must fall in, at least: the
 * largest unscaled window. Below it a window scale we missed (a flow
 * picked up mid-stream, segments lost before the box) would stall the
 * tracker; a blind guess still needs ~2^15 tries per hit.
 */
#define SLUICE_CT_TCP_MIN_WINDOW 65535u
#define SLUICE_CT_TCP_MAX_WINDOW (1u << 30) /* RFC 7323: scale 14 of 65535 */
#define SLUICE_CT_TCP_MAX_WSCALE 14
#define SLUICE_CT_TCP_OPT_WSCALE 3
#define SLUICE_CT_TCP_OPT_WSCALE_LEN 3
#define SLUICE_CT_TCP_MAX_OPT_LEN 40
/* Offsets conntrack itself reads at stay below this: pointer + offset + length never overflows 64 KiB */
#define SLUICE_CT_MAX_READ_OFF 0x7fffu

/* The packet bytes (data .. data_end) of an XDP or TC context (ct_frame_init). */
struct ct_frame {
	void *ctx;     /* struct xdp_md, or struct __sk_buff with SLUICE_CT_SKB */
	void *data;
	void *end;
	__u8 wscale;   /* a SYN's window scale option; SLUICE_CT_NO_WSCALE */
};

/*
 * Bytes of the packet into buf (len <= SLUICE_CT_TCP_MAX_OPT_LEN). The
 * including program says which context it has: the egress observer
 * defines SLUICE_CT_SKB.
 */
static __always_inline long ct_load_bytes(const struct ct_frame *f, __u32 off, void *buf, __u32 len)
{
#ifdef SLUICE_CT_SKB
	return bpf_skb_load_bytes(f->ctx, off, buf, len);
#else
	return bpf_xdp_load_bytes(f->ctx, off, buf, len);
#endif
}

/* What a packet is to the entry it found. */
enum ct_fit {
	CT_FIT_NONE = 0,    /* not this flow's packet: the rules judge it */
	CT_FIT_ADMIT = 1,   /* rides the flow */
	CT_FIT_REPLY = 2,   /* the first valid reply of an unreplied entry: promote it */
};

/* Returns of ct_lookup. */
#define SLUICE_CT_MISS 0
#define SLUICE_CT_HIT 1     /* a packet of a tracked flow */
#define SLUICE_CT_RELATED 2 /* an ICMP error quoting a tracked flow */

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

/* A TCP flag combination no conforming stack sends (SLUICE_TCP_VALID_FLAG_SETS). */
static __always_inline int ct_tcp_flags_invalid(const struct sluice_pkt *pkt)
{
	if (!pkt->has_l4 || pkt->ip_proto != IPPROTO_TCP)
		return 0;
	return !((SLUICE_TCP_VALID_FLAG_SETS >> (pkt->tcp_flags & SLUICE_TCP_FLAGS_CHECKED)) & 1);
}

static __always_inline int ct_is_icmp(const struct sluice_pkt *pkt)
{
	return pkt->ip_proto == IPPROTO_ICMP || pkt->ip_proto == IPPROTO_ICMPV6;
}

/* ICMP of the packet's own family (the parser reads ICMPv4 only in IPv4, ICMPv6 only in IPv6). */
static __always_inline int ct_is_echo_request(const struct sluice_pkt *pkt)
{
	return pkt->ip_version == 4 ? pkt->icmp_type == SLUICE_ICMP_ECHO_REQUEST
				    : pkt->icmp_type == SLUICE_ICMPV6_ECHO_REQUEST;
}

static __always_inline int ct_is_echo_reply(const struct sluice_pkt *pkt)
{
	return pkt->ip_version == 4 ? pkt->icmp_type == SLUICE_ICMP_ECHO_REPLY
				    : pkt->icmp_type == SLUICE_ICMPV6_ECHO_REPLY;
}

static __always_inline int ct_is_icmp_error(const struct sluice_pkt *pkt)
{
	__u8 t = pkt->icmp_type;

	if (pkt->ip_version == 4)
		return t == SLUICE_ICMP_DEST_UNREACH || t == SLUICE_ICMP_TIME_EXCEEDED || t == SLUICE_ICMP_PARAM_PROBLEM;
	return t == SLUICE_ICMPV6_DEST_UNREACH || t == SLUICE_ICMPV6_PACKET_TOO_BIG ||
	       t == SLUICE_ICMPV6_TIME_EXCEEDED || t == SLUICE_ICMPV6_PARAM_PROBLEM;
}

/*
 * Only flows with a readable L4 header are tracked: later fragments and
 * other protocols go to the rules. Of ICMP, only echo (by identifier).
 */
static __always_inline int ct_trackable(const struct sluice_pkt *pkt)
{
	if (!pkt->has_l4)
		return 0;
	if (pkt->ip_proto == IPPROTO_TCP || pkt->ip_proto == IPPROTO_UDP)
		return 1;
	if (pkt->ip_proto == IPPROTO_ICMP && pkt->ip_version == 4)
		return ct_is_echo_request(pkt) || ct_is_echo_reply(pkt);
	if (pkt->ip_proto == IPPROTO_ICMPV6 && pkt->ip_version == 6)
		return ct_is_echo_request(pkt) || ct_is_echo_reply(pkt);
	return 0;
}

/* The flow's (src, dst, sport, dport, proto) as conntrack keys it: ICMP echo by identifier in both ports. */
struct ct_tuple {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 ip_version;
};

/* Compares (src, sport) with (dst, dport) word by word in network order: < 0, 0, > 0. */
static __always_inline int ct_endpoint_cmp(const struct ct_tuple *t)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 a = bpf_ntohl(t->src[i]), b = bpf_ntohl(t->dst[i]);

		if (a != b)
			return a < b ? -1 : 1;
	}
	if (t->sport != t->dport)
		return t->sport < t->dport ? -1 : 1;
	return 0;
}

/* IPv6: fills the normalised key; returns the tuple's direction (SLUICE_CT_DIR_*). */
static __always_inline __u32 ct_make_key(const struct ct_tuple *t, struct sluice_ct_key *key)
{
	__u32 dir = ct_endpoint_cmp(t) <= 0 ? SLUICE_CT_DIR_A_TO_B : SLUICE_CT_DIR_B_TO_A;

	__builtin_memset(key, 0, sizeof(*key));
	if (dir == SLUICE_CT_DIR_A_TO_B) {
		__builtin_memcpy(key->addr_a, t->src, sizeof(key->addr_a));
		__builtin_memcpy(key->addr_b, t->dst, sizeof(key->addr_b));
		key->port_a = t->sport;
		key->port_b = t->dport;
	} else {
		__builtin_memcpy(key->addr_a, t->dst, sizeof(key->addr_a));
		__builtin_memcpy(key->addr_b, t->src, sizeof(key->addr_b));
		key->port_a = t->dport;
		key->port_b = t->sport;
	}
	key->proto = t->proto;
	key->ip_version = t->ip_version;
	return dir;
}

/* IPv4: the same normalisation as ct_make_key, on one address word. */
static __always_inline __u32 ct_make_key_v4(const struct ct_tuple *t, struct sluice_ct_v4_key *key)
{
	__u32 src = bpf_ntohl(t->src[0]), dst = bpf_ntohl(t->dst[0]);
	__u32 dir = (src < dst || (src == dst && t->sport <= t->dport)) ? SLUICE_CT_DIR_A_TO_B
									 : SLUICE_CT_DIR_B_TO_A;

	__builtin_memset(key, 0, sizeof(*key));
	if (dir == SLUICE_CT_DIR_A_TO_B) {
		key->addr_a = t->src[0];
		key->addr_b = t->dst[0];
		key->port_a = t->sport;
		key->port_b = t->dport;
	} else {
		key->addr_a = t->dst[0];
		key->addr_b = t->src[0];
		key->port_a = t->dport;
		key->port_b = t->sport;
	}
	key->proto = t->proto;
	return dir;
}

static __always_inline void ct_tuple_of(const struct sluice_pkt *pkt, struct ct_tuple *t)
{
	__builtin_memcpy(t->src, pkt->src, sizeof(t->src));
	__builtin_memcpy(t->dst, pkt->dst, sizeof(t->dst));
	if (ct_is_icmp(pkt)) {
		t->sport = t->dport = pkt->icmp_id;
	} else {
		t->sport = pkt->sport;
		t->dport = pkt->dport;
	}
	t->proto = pkt->ip_proto;
	t->ip_version = pkt->ip_version;
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

/* ---- TCP window tracking ---- */

static __always_inline __u32 ct_seq_known_bit(__u32 dir)
{
	return dir == SLUICE_CT_DIR_A_TO_B ? SLUICE_CT_F_SEQ_KNOWN_A : SLUICE_CT_F_SEQ_KNOWN_B;
}

/* Where the segment after this one starts: SYN and FIN take a sequence number each. */
static __always_inline __u32 ct_tcp_seq_end(const struct sluice_pkt *pkt)
{
	__u32 l4_len = (__u32)pkt->l3_off + pkt->l3_len - pkt->l4_off; /* the parser checked it fits */
	__u32 payload = l4_len > pkt->tcp_hdr_len ? l4_len - pkt->tcp_hdr_len : 0;

	return pkt->tcp_seq + payload + !!(pkt->tcp_flags & SLUICE_TCP_SYN) + !!(pkt->tcp_flags & SLUICE_TCP_FIN);
}

/* Walking a SYN's options for the window scale (bpf_loop callback state). */
struct ct_opt_walk {
	__u8 opts[SLUICE_CT_TCP_MAX_OPT_LEN];
	__u32 len;
	__u32 pos;
	__u8 wscale;
};

static long ct_opt_step(__u64 index, void *ctx)
{
	struct ct_opt_walk *w = ctx;
	__u32 pos = w->pos;
	__u8 kind, len;

	if (pos >= w->len || pos >= SLUICE_CT_TCP_MAX_OPT_LEN)
		return 1;
	kind = w->opts[pos];
	if (kind == 0) /* end of options */
		return 1;
	if (kind == 1) { /* no-op */
		w->pos = pos + 1;
		return 0;
	}
	if (pos + 1 >= SLUICE_CT_TCP_MAX_OPT_LEN)
		return 1;
	len = w->opts[pos + 1];
	if (len < 2)
		return 1;
	if (kind == SLUICE_CT_TCP_OPT_WSCALE && len == SLUICE_CT_TCP_OPT_WSCALE_LEN) {
		if (pos + 2 < SLUICE_CT_TCP_MAX_OPT_LEN && pos + 2 < w->len)
			w->wscale = w->opts[pos + 2] > SLUICE_CT_TCP_MAX_WSCALE ? SLUICE_CT_TCP_MAX_WSCALE
										: w->opts[pos + 2];
		return 1;
	}
	w->pos = pos + len;
	return 0;
}

/*
 * The window scale option of a SYN (RFC 7323): SLUICE_CT_NO_WSCALE when
 * absent or unreadable. The option bytes are copied out of the packet
 * (bpf_xdp_load_bytes / bpf_skb_load_bytes) and walked by bpf_loop (Linux
 * 5.17+), whose callback the verifier checks once instead of per path.
 */
static __always_inline __u8 ct_tcp_wscale(const struct ct_frame *f, const struct sluice_pkt *pkt)
{
	struct ct_opt_walk w = {};
	__u32 len;

	if (pkt->ip_proto != IPPROTO_TCP || !(pkt->tcp_flags & SLUICE_TCP_SYN) || pkt->tcp_hdr_len <= 20)
		return SLUICE_CT_NO_WSCALE;
	len = pkt->tcp_hdr_len - 20;
	if (len > SLUICE_CT_TCP_MAX_OPT_LEN)
		return SLUICE_CT_NO_WSCALE;
	if (ct_load_bytes(f, (__u32)pkt->l4_off + 20, w.opts, len) != 0)
		return SLUICE_CT_NO_WSCALE;
	w.len = len;
	w.wscale = SLUICE_CT_NO_WSCALE;
	bpf_loop(SLUICE_CT_TCP_MAX_OPT_LEN, ct_opt_step, &w, 0);
	return w.wscale;
}

/* The frame of an XDP or TC context, and what of it conntrack reads once per packet. */
static __always_inline void ct_frame_init(struct ct_frame *f, void *ctx, void *data, void *end,
					  const struct sluice_pkt *pkt)
{
	f->ctx = ctx;
	f->data = data;
	f->end = end;
	f->wscale = ct_tcp_wscale(f, pkt);
}

/* The receive window the segment advertises, scaled once both SYNs agreed to scale (RFC 7323: never a SYN's). */
static __always_inline __u32 ct_tcp_window(const struct sluice_ct_entry *ct, const struct sluice_pkt *pkt, __u32 dir)
{
	__u32 win = pkt->tcp_window;
	__u8 scale = ct->wscale[dir & 1];

	if (!(pkt->tcp_flags & SLUICE_TCP_SYN) && scale != SLUICE_CT_NO_WSCALE &&
	    ct->wscale[(dir ^ 1) & 1] != SLUICE_CT_NO_WSCALE && scale <= SLUICE_CT_TCP_MAX_WSCALE)
		win <<= scale;
	return win;
}

/* Whether seq lies within the window of direction dir: around where it was expected next. */
static __always_inline int ct_tcp_in_window(const struct sluice_ct_entry *ct, __u32 dir, __u32 seq)
{
	__u32 other = (dir ^ 1) & 1, win = SLUICE_CT_TCP_MIN_WINDOW;
	__u32 expected = ct->seq_end[dir & 1];

	if ((ct->tcp_flags & ct_seq_known_bit(other)) && ct->window[other] > win)
		win = ct->window[other];
	if (win > SLUICE_CT_TCP_MAX_WINDOW)
		win = SLUICE_CT_TCP_MAX_WINDOW;
	/*
	 * Serial arithmetic, mod 2^32. Only ahead of the expected sequence: a
	 * window behind it too would double a blind RST's odds.
	 */
	return seq - expected <= win;
}

/* An in-window segment moves the direction's tracking forward. */
static __always_inline void ct_tcp_record(struct sluice_ct_entry *ct, const struct sluice_pkt *pkt, __u32 dir)
{
	__u32 end = ct_tcp_seq_end(pkt);

	dir &= 1;
	if (!(ct->tcp_flags & ct_seq_known_bit(dir)) || (__s32)(end - ct->seq_end[dir]) > 0)
		ct->seq_end[dir] = end;
	ct->tcp_flags |= ct_seq_known_bit(dir);
	if (pkt->tcp_flags & (SLUICE_TCP_ACK | SLUICE_TCP_SYN))
		ct->window[dir] = ct_tcp_window(ct, pkt, dir);
}

/*
 * The first packet of the reply direction on an unreplied TCP entry. Valid
 * only if it acknowledges what the originator sent: exactly its SYN for a
 * SYN-opened entry (and then it must be a SYN-ACK), within the window for
 * one picked up mid-stream. A blind spoofer of the originator never sees
 * the SYN-ACK, and the box never makes one up: the entry stays unreplied.
 */
static __always_inline int ct_tcp_acks_opening(const struct sluice_ct_entry *ct, const struct sluice_pkt *pkt)
{
	__u32 orig = ct->orig_dir & 1;
	__u32 expected = ct->seq_end[orig];

	if (!(pkt->tcp_flags & SLUICE_TCP_ACK))
		return 0;
	if (ct->tcp_flags & SLUICE_CT_F_SYN_OPENED)
		return pkt->tcp_ack == expected;
	return expected - pkt->tcp_ack <= SLUICE_CT_TCP_MIN_WINDOW;
}

static __always_inline enum ct_fit ct_tcp_fit(struct sluice_ct_entry *ct, const struct ct_frame *f,
					      const struct sluice_pkt *pkt, __u32 dir)
{
	__u8 flags = pkt->tcp_flags;

	if (!ct->replied && dir != ct->orig_dir) {
		if (!ct_tcp_acks_opening(ct, pkt))
			return CT_FIT_NONE; /* a guess, not a reply: the rules judge it */
		if (flags & SLUICE_TCP_RST) {
			ct->state = SLUICE_CT_TCP_CLOSING; /* refused by the responder: closing, still unreplied */
			return CT_FIT_ADMIT;
		}
		if (ct->tcp_flags & SLUICE_CT_F_SYN_OPENED) {
			if (!(flags & SLUICE_TCP_SYN))
				return CT_FIT_NONE;
			ct->wscale[dir & 1] = f->wscale;
			if (ct->wscale[dir & 1] == SLUICE_CT_NO_WSCALE) /* both or neither (RFC 7323) */
				ct->wscale[ct->orig_dir & 1] = SLUICE_CT_NO_WSCALE;
		} else if (flags & SLUICE_TCP_SYN) {
			return CT_FIT_NONE;
		}
		ct->tcp_flags &= ~ct_seq_known_bit(dir);
		ct_tcp_record(ct, pkt, dir);
		if (ct->tcp_flags & SLUICE_CT_F_SYN_OPENED) {
			/*
			 * A responder answers every SYN, spoofed ones too: its
			 * SYN-ACK proves nothing about the originator. The
			 * entry stays unreplied (short timeout, its own table)
			 * until the originator acknowledges the responder's
			 * ISN, which a blind spoofer never saw.
			 */
			ct->tcp_flags |= SLUICE_CT_F_SYNACK_SEEN;
			return CT_FIT_ADMIT;
		}
		if (ct->state != SLUICE_CT_TCP_CLOSING)
			ct->state = SLUICE_CT_TCP_ESTABLISHED;
		return CT_FIT_REPLY;
	}
	if (!ct->replied && dir == ct->orig_dir && (ct->tcp_flags & SLUICE_CT_F_SYNACK_SEEN) &&
	    (flags & (SLUICE_TCP_SYN | SLUICE_TCP_ACK | SLUICE_TCP_RST)) == SLUICE_TCP_ACK &&
	    pkt->tcp_ack == ct->seq_end[(dir ^ 1) & 1]) {
		/* the third packet of the handshake, acking exactly the SYN-ACK */
		ct_tcp_record(ct, pkt, dir);
		if (ct->state != SLUICE_CT_TCP_CLOSING)
			ct->state = SLUICE_CT_TCP_ESTABLISHED;
		return CT_FIT_REPLY;
	}
	if (!(ct->tcp_flags & ct_seq_known_bit(dir))) {
		ct_tcp_record(ct, pkt, dir);
		return CT_FIT_ADMIT;
	}
	if (!ct_tcp_in_window(ct, dir, pkt->tcp_seq))
		return CT_FIT_ADMIT; /* rides the flow (the endpoint judges it) but changes nothing */
	ct_tcp_record(ct, pkt, dir);
	if (flags & (SLUICE_TCP_FIN | SLUICE_TCP_RST))
		ct->state = SLUICE_CT_TCP_CLOSING;
	return CT_FIT_ADMIT;
}

/* How pkt, in direction dir, fits the flow's entry; updates the entry's state. */
static __always_inline enum ct_fit ct_fit(struct sluice_ct_entry *ct, const struct ct_frame *f,
					  const struct sluice_pkt *pkt, __u32 dir)
{
	if (pkt->ip_proto == IPPROTO_TCP)
		return ct_tcp_fit(ct, f, pkt, dir);
	if (pkt->ip_proto == IPPROTO_UDP) {
		if (!ct->replied && dir != ct->orig_dir) {
			ct->state = SLUICE_CT_UDP_REPLIED;
			return CT_FIT_REPLY;
		}
		return CT_FIT_ADMIT;
	}
	/* ICMP echo: requests from the originator, replies back to it */
	if (dir == ct->orig_dir)
		return ct_is_echo_request(pkt) ? CT_FIT_ADMIT : CT_FIT_NONE;
	if (!ct_is_echo_reply(pkt))
		return CT_FIT_NONE;
	return ct->replied ? CT_FIT_ADMIT : CT_FIT_REPLY;
}

/* Plain adds, not atomic: see struct sluice_ct_entry for what that may lose. */
static __always_inline void ct_account(struct sluice_ct_entry *ct, __u32 dir, __u64 len, __u64 now, int count)
{
	dir &= 1;
	ct->last_seen_ns = now;
	ct->dirs_seen |= 1u << dir;
	if (!count)
		return;
	ct->packets[dir] += 1;
	ct->bytes[dir] += len;
}

/*
 * A SYN without ACK on a closing flow opens a new connection on the same
 * ports (a client reusing them): the old entry must not swallow it.
 */
static __always_inline int ct_reopens(const struct sluice_ct_entry *ct, const struct sluice_pkt *pkt)
{
	return pkt->ip_proto == IPPROTO_TCP && ct->state == SLUICE_CT_TCP_CLOSING &&
	       (pkt->tcp_flags & (SLUICE_TCP_SYN | SLUICE_TCP_ACK)) == SLUICE_TCP_SYN;
}

/*
 * The packet against one family's tables (replied first, then unreplied);
 * `count`: add it to the entry's packet and byte counters (XDP ingress does,
 * the egress observer does not: what it sees may also cross XDP elsewhere).
 * A valid reply to an unreplied entry moves it into the replied table.
 */
static __always_inline int ct_see_in(const struct sluice_filter_settings *settings, void *replied_map,
				     void *unreplied_map, const void *key, __u32 dir, const struct ct_frame *f,
				     const struct sluice_pkt *pkt, int count)
{
	struct sluice_ct_entry *ct;
	enum ct_fit fit;
	__u64 now = ct_now();

	ct = bpf_map_lookup_elem(replied_map, key);
	if (ct) {
		if (ct_expired(settings, ct, now) || ct_reopens(ct, pkt)) {
			bpf_map_delete_elem(replied_map, key);
			return SLUICE_CT_MISS;
		}
		fit = ct_fit(ct, f, pkt, dir);
		if (fit == CT_FIT_NONE)
			return SLUICE_CT_MISS;
		ct_account(ct, dir, pkt->pkt_len, now, count);
		return SLUICE_CT_HIT;
	}
	ct = bpf_map_lookup_elem(unreplied_map, key);
	if (!ct)
		return SLUICE_CT_MISS;
	if (ct_expired(settings, ct, now) || ct_reopens(ct, pkt)) {
		bpf_map_delete_elem(unreplied_map, key);
		return SLUICE_CT_MISS;
	}
	fit = ct_fit(ct, f, pkt, dir);
	if (fit == CT_FIT_NONE)
		return SLUICE_CT_MISS;
	ct_account(ct, dir, pkt->pkt_len, now, count);
	if (fit == CT_FIT_REPLY) {
		ct->replied = 1;
		/*
		 * Into the replied table. If that write fails the entry stays
		 * unreplied (and still admits the flow); a failed delete leaves
		 * a stale copy that only times out.
		 */
		if (bpf_map_update_elem(replied_map, key, ct, BPF_ANY) == 0)
			bpf_map_delete_elem(unreplied_map, key);
		else
			ct->replied = 0;
	}
	return SLUICE_CT_HIT;
}

/* The packet's flow in either table of its family. */
static __always_inline int ct_see(const struct sluice_filter_settings *settings, const struct ct_frame *f,
				  const struct sluice_pkt *pkt, int count)
{
	struct ct_tuple t;
	__u32 dir;

	if (!ct_trackable(pkt))
		return SLUICE_CT_MISS;
	ct_tuple_of(pkt, &t);
	if (pkt->ip_version == 4) {
		struct sluice_ct_v4_key key;

		dir = ct_make_key_v4(&t, &key);
		return ct_see_in(settings, &filter_conntrack_v4, &filter_ct_unreplied_v4, &key, dir, f, pkt, count);
	} else {
		struct sluice_ct_key key;

		dir = ct_make_key(&t, &key);
		return ct_see_in(settings, &filter_conntrack, &filter_ct_unreplied, &key, dir, f, pkt, count);
	}
}

/* A live entry (either table) under key. */
static __always_inline int ct_tracked(const struct sluice_filter_settings *settings, void *replied_map,
				      void *unreplied_map, const void *key)
{
	struct sluice_ct_entry *ct;
	__u64 now = ct_now();

	ct = bpf_map_lookup_elem(replied_map, key);
	if (ct && !ct_expired(settings, ct, now))
		return 1;
	ct = bpf_map_lookup_elem(unreplied_map, key);
	return ct && !ct_expired(settings, ct, now);
}

/*
 * An ICMP error whose quoted packet belongs to a tracked flow, sent back
 * to that packet's sender (the outer destination is the quoted source).
 * Reads the quote from the frame, bounds-checked: the inner IP header
 * (IPv4 with options; IPv6 without extension headers: a quote with them is
 * not matched) and the first 8 bytes of its L4 header (ports, or an echo's
 * identifier). Lookups only: the error changes no state.
 */
static __always_inline int ct_related(const struct sluice_filter_settings *settings, const struct ct_frame *f,
				      const struct sluice_pkt *pkt)
{
	__u32 off = pkt->l4_off + SLUICE_ICMP_ERROR_HDR_LEN, l4;
	struct ct_tuple t = {};
	__u8 *inner;

	if (!pkt->has_l4 || !ct_is_icmp_error(pkt) || off > SLUICE_CT_MAX_READ_OFF)
		return 0;
	if (pkt->ip_version == 4) {
		struct iphdr *iph = f->data + off;

		if ((void *)(iph + 1) > f->end || iph->version != 4 || iph->ihl < 5)
			return 0;
		if (bpf_ntohs(iph->frag_off) & 0x1fff) /* a later fragment quotes no L4 header */
			return 0;
		if (iph->saddr != pkt->dst[0])
			return 0;
		t.src[0] = iph->saddr;
		t.dst[0] = iph->daddr;
		t.proto = iph->protocol;
		l4 = off + iph->ihl * 4;
	} else {
		struct ipv6hdr *ip6h = f->data + off;

		if ((void *)(ip6h + 1) > f->end || ip6h->version != 6)
			return 0;
		__builtin_memcpy(t.src, &ip6h->saddr, sizeof(t.src));
		__builtin_memcpy(t.dst, &ip6h->daddr, sizeof(t.dst));
		if (t.src[0] != pkt->dst[0] || t.src[1] != pkt->dst[1] || t.src[2] != pkt->dst[2] ||
		    t.src[3] != pkt->dst[3])
			return 0;
		t.proto = ip6h->nexthdr;
		l4 = off + sizeof(*ip6h);
	}
	t.ip_version = pkt->ip_version;
	if (l4 > SLUICE_CT_MAX_READ_OFF)
		return 0;
	inner = f->data + l4;
	if ((void *)(inner + SLUICE_ICMP_QUOTED_L4_LEN) > f->end)
		return 0;
	if (t.proto == IPPROTO_TCP || t.proto == IPPROTO_UDP) {
		t.sport = ((__u16)inner[0] << 8) | inner[1];
		t.dport = ((__u16)inner[2] << 8) | inner[3];
	} else if ((t.proto == IPPROTO_ICMP && t.ip_version == 4 &&
		    (inner[0] == SLUICE_ICMP_ECHO_REQUEST || inner[0] == SLUICE_ICMP_ECHO_REPLY)) ||
		   (t.proto == IPPROTO_ICMPV6 && t.ip_version == 6 &&
		    (inner[0] == SLUICE_ICMPV6_ECHO_REQUEST || inner[0] == SLUICE_ICMPV6_ECHO_REPLY))) {
		t.sport = t.dport = ((__u16)inner[4] << 8) | inner[5];
	} else {
		return 0;
	}
	if (t.ip_version == 4) {
		struct sluice_ct_v4_key key;

		ct_make_key_v4(&t, &key);
		return ct_tracked(settings, &filter_conntrack_v4, &filter_ct_unreplied_v4, &key);
	} else {
		struct sluice_ct_key key;

		ct_make_key(&t, &key);
		return ct_tracked(settings, &filter_conntrack, &filter_ct_unreplied, &key);
	}
}

/* Filter stage: SLUICE_CT_HIT for a packet of a tracked flow, SLUICE_CT_RELATED for an error about one. */
static __always_inline int ct_lookup(const struct sluice_filter_settings *settings, const struct ct_frame *f,
				     const struct sluice_pkt *pkt)
{
	if (ct_is_icmp(pkt) && pkt->has_l4 && ct_is_icmp_error(pkt))
		return ct_related(settings, f, pkt) ? SLUICE_CT_RELATED : SLUICE_CT_MISS;
	return ct_see(settings, f, pkt, 1);
}

static __always_inline __u32 ct_initial_state(const struct sluice_pkt *pkt)
{
	if (pkt->ip_proto == IPPROTO_TCP) {
		if (pkt->tcp_flags & (SLUICE_TCP_FIN | SLUICE_TCP_RST))
			return SLUICE_CT_TCP_CLOSING;
		return SLUICE_CT_TCP_SYN; /* a SYN, or picked up mid-stream: unreplied either way */
	}
	if (pkt->ip_proto == IPPROTO_UDP)
		return SLUICE_CT_UDP;
	return SLUICE_CT_ICMP;
}

/*
 * Pass-and-track: a new unreplied entry for pkt's flow (LRU: may evict the
 * oldest unreplied one). ICMP: only an echo request opens an entry. An
 * entry already there (the packet did not fit it, e.g. a spoofed packet of
 * the other direction) is kept, not overwritten with the roles reversed.
 */
/*
 * The new entry of a flow opened in direction dir. Called with a constant
 * dir: the entry is on the stack, where the verifier refuses an index it
 * does not know.
 */
static __always_inline void ct_init_entry(struct sluice_ct_entry *ct, const struct ct_frame *f,
					  const struct sluice_pkt *pkt, const __u32 dir)
{
	ct->state = ct_initial_state(pkt);
	ct->last_seen_ns = ct_now();
	ct->wscale[0] = ct->wscale[1] = SLUICE_CT_NO_WSCALE;
	ct->orig_dir = dir;
	ct->dirs_seen = 1u << dir;
	ct->packets[dir] = 1;
	ct->bytes[dir] = pkt->pkt_len;
	if (pkt->ip_proto == IPPROTO_TCP) {
		if (pkt->tcp_flags & SLUICE_TCP_SYN) {
			ct->tcp_flags |= SLUICE_CT_F_SYN_OPENED;
			ct->wscale[dir] = f->wscale;
		}
		ct_tcp_record(ct, pkt, dir);
	}
}

static __always_inline void ct_init_entry_dir(struct sluice_ct_entry *ct, const struct ct_frame *f,
					      const struct sluice_pkt *pkt, __u32 dir)
{
	if (dir == SLUICE_CT_DIR_A_TO_B)
		ct_init_entry(ct, f, pkt, SLUICE_CT_DIR_A_TO_B);
	else
		ct_init_entry(ct, f, pkt, SLUICE_CT_DIR_B_TO_A);
}

/*
 * Pass-and-track: a new unreplied entry for pkt's flow (LRU: may evict the
 * oldest unreplied one). ICMP: only an echo request opens an entry. An
 * entry already there (the packet did not fit it, e.g. a spoofed packet of
 * the other direction) is kept, not overwritten with the roles reversed.
 */
static __always_inline void ct_create(const struct ct_frame *f, const struct sluice_pkt *pkt)
{
	struct sluice_ct_entry ct = {};
	struct ct_tuple t;

	if (!ct_trackable(pkt) || (ct_is_icmp(pkt) && !ct_is_echo_request(pkt)))
		return;
	ct_tuple_of(pkt, &t);
	if (pkt->ip_version == 4) {
		struct sluice_ct_v4_key key;

		ct_init_entry_dir(&ct, f, pkt, ct_make_key_v4(&t, &key));
		bpf_map_update_elem(&filter_ct_unreplied_v4, &key, &ct, BPF_NOEXIST);
	} else {
		struct sluice_ct_key key;

		ct_init_entry_dir(&ct, f, pkt, ct_make_key(&t, &key));
		bpf_map_update_elem(&filter_ct_unreplied, &key, &ct, BPF_NOEXIST);
	}
}

#endif /* SLUICE_XDP_FILTER_CONNTRACK_H */
