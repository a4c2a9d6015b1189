/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The lb stage's decision: which VIP a packet is for (exact key, then the
 * address's port-less VIP) and which backend serves its flow (the
 * connection table when its entry still holds, else the VIP's Maglev
 * table, remembered in the connection table). Every id read from a map is
 * range-checked before it indexes anything: out of range fails closed.
 */
#ifndef SLUICE_XDP_LB_SELECT_H
#define SLUICE_XDP_LB_SELECT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "sluice_flow_hash.h"
#include "lb_maps.bpf.h"
#include "filter_conntrack.h" /* ct_now: the per-CPU coarse clock conntrack keeps */

#define LB_NS_PER_SEC 1000000000ull
/*
 * An entry's last_seen_ns is rewritten at most once a second. Writing it on
 * every packet would dirty the entry's cache line on every packet of the
 * flow; when RSS spreads one flow over CPUs (or a VIP's packets land on
 * several queues) that line bounces between them, which costs more than the
 * lookup. Idle timeouts are whole seconds, so a second of staleness is
 * within their resolution.
 */
#define LB_LAST_SEEN_REFRESH_NS LB_NS_PER_SEC
#define LB_TCP_SYN 0x02
#define LB_TCP_ACK 0x10

/* Outcome of the backend choice. */
enum lb_pick {
	LB_PICK_OK = 0,
	LB_PICK_NO_BACKEND = 1, /* no live backend: drop SLUICE_REASON_LB_NO_BACKEND */
	LB_PICK_CORRUPT = 2,    /* a Maglev size or id out of range: drop SLUICE_REASON_CORRUPT_STATE */
};

struct lb_choice {
	__u32 backend_id;
	const struct sluice_lb_backend *backend;
};

static __always_inline void lb_count_event(__u32 slot)
{
	__u64 *ctr = bpf_map_lookup_elem(&lb_event_counters, &slot);

	if (ctr)
		*ctr += 1; /* per-CPU slot: no other writer */
}

static __always_inline void lb_count(void *counters, __u32 id, __u32 bytes, __u32 new_conn, __u32 packet)
{
	struct sluice_lb_counter *ctr = bpf_map_lookup_elem(counters, &id);

	if (!ctr)
		return;
	ctr->packets += packet; /* per-CPU slot: no other writer */
	ctr->bytes += packet ? bytes : 0;
	ctr->new_conns += new_conn;
}

/* The settings if user space wrote them in this build's layout, else 0 (the stage passes everything on). */
static __always_inline const struct sluice_lb_settings *lb_settings_get(void)
{
	__u32 slot = 0;
	const struct sluice_lb_settings *s = bpf_map_lookup_elem(&lb_settings, &slot);

	if (!s || s->version != SLUICE_LB_SETTINGS_VERSION)
		return 0;
	return s;
}

/* Exact (address, port, protocol) first; then the address's port-less VIP. */
static __always_inline const struct sluice_lb_vip *lb_vip_lookup(const struct sluice_pkt *pkt)
{
	struct sluice_lb_vip_key key = {
		.addr = { pkt->dst[0], pkt->dst[1], pkt->dst[2], pkt->dst[3] },
		.port = pkt->dport,
		.proto = pkt->ip_proto,
		.ip_version = pkt->ip_version,
	};
	const struct sluice_lb_vip *vip;

	vip = bpf_map_lookup_elem(&lb_vips, &key);
	if (vip || key.port == 0)
		return vip;
	key.port = 0;
	return bpf_map_lookup_elem(&lb_vips, &key);
}

static __always_inline int lb_is_tcp_syn(const struct sluice_pkt *pkt)
{
	return pkt->ip_proto == IPPROTO_TCP && (pkt->tcp_flags & (LB_TCP_SYN | LB_TCP_ACK)) == LB_TCP_SYN;
}

/* The backend record of a connection-table or Maglev id; 0 for id 0 or out of range. */
static __always_inline const struct sluice_lb_backend *lb_backend_get(__u32 id)
{
	if (id == SLUICE_LB_NO_BACKEND || id >= SLUICE_LB_MAX_BACKENDS)
		return 0;
	return bpf_map_lookup_elem(&lb_backends, &id);
}

/*
 * Does a connection entry still hold? Its backend slot must be in use
 * (UP, DRAINING or DOWN keep their connections; FREE does not), still the
 * backend it named (epoch) of this VIP, and the entry not idle past the
 * timeout (0: no idle limit, the LRU alone ages entries). A new TCP
 * connection (SYN) on a reused 5-tuple goes to a backend taking new flows:
 * only UP holds it. A UDP flow (QUIC, DNS, ...) has no end for draining to
 * wait for: DOWN does not hold it (DRAINING, the operator's choice, does).
 */
static __always_inline const struct sluice_lb_backend *
lb_conn_backend(const struct sluice_lb_conn *conn, __u32 id, __u32 vip_id, const struct sluice_lb_settings *s,
		const struct sluice_pkt *pkt, __u64 now)
{
	const struct sluice_lb_backend *be = lb_backend_get(id);

	if (!be)
		return 0;
	if (be->state != SLUICE_LB_BACKEND_UP && be->state != SLUICE_LB_BACKEND_DRAINING &&
	    be->state != SLUICE_LB_BACKEND_DOWN)
		return 0;
	if (be->epoch != conn->backend_epoch || be->vip_id != conn->vip_id || conn->vip_id != vip_id)
		return 0;
	/* last_seen may be ahead of this CPU's clock (another CPU's tick wrote it): not idle */
	if (s->conn_timeout_s && now > conn->last_seen_ns &&
	    now - conn->last_seen_ns > (__u64)s->conn_timeout_s * LB_NS_PER_SEC)
		return 0;
	if (lb_is_tcp_syn(pkt) && be->state != SLUICE_LB_BACKEND_UP)
		return 0;
	/* a UDP flow never ends: on a backend whose check failed it picks a live one (TCP drains) */
	if (be->state == SLUICE_LB_BACKEND_DOWN && pkt->ip_proto == IPPROTO_UDP)
		return 0;
	return be;
}

/*
 * The VIP's Maglev entry for `hash`. The inner array's slot 0 holds the
 * table size N; a size outside 1..SLUICE_LB_MAGLEV_SIZE_MAX, an entry past
 * the inner array's end (N larger than the array) or an id past
 * lb_backends is corrupt state. Id 0, or a backend not UP or of another
 * VIP, leaves the flow without a backend.
 */
static __always_inline int lb_maglev_pick(__u32 vip_id, __u32 hash, struct lb_choice *out)
{
	const struct sluice_lb_backend *be;
	const __u32 *size, *entry;
	__u32 slot = SLUICE_LB_MAGLEV_SIZE_SLOT, n, id;
	void *table;

	table = bpf_map_lookup_elem(&lb_maglev, &vip_id);
	if (!table)
		return LB_PICK_NO_BACKEND; /* no table (yet): the VIP has no backend */
	size = bpf_map_lookup_elem(table, &slot);
	if (!size)
		return LB_PICK_CORRUPT;
	n = *size;
	if (n == 0 || n > SLUICE_LB_MAGLEV_SIZE_MAX)
		return LB_PICK_CORRUPT;
	slot = 1 + hash % n;
	entry = bpf_map_lookup_elem(table, &slot);
	if (!entry)
		return LB_PICK_CORRUPT;
	id = *entry;
	if (id >= SLUICE_LB_MAX_BACKENDS)
		return LB_PICK_CORRUPT;
	if (id == SLUICE_LB_NO_BACKEND)
		return LB_PICK_NO_BACKEND;
	be = bpf_map_lookup_elem(&lb_backends, &id);
	if (!be || be->state != SLUICE_LB_BACKEND_UP || be->vip_id != vip_id)
		return LB_PICK_NO_BACKEND;
	out->backend_id = id;
	out->backend = be;
	return LB_PICK_OK;
}

/* The connection table's key of this flow, per family. */
union lb_flow_key {
	struct sluice_lb_flow_v4_key v4;
	struct sluice_lb_flow_key v6;
};

static __always_inline void lb_flow_key_v4(const struct sluice_pkt *pkt, struct sluice_lb_flow_v4_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->src = pkt->src[0];
	key->dst = pkt->dst[0];
	key->sport = pkt->sport;
	key->dport = pkt->dport;
	key->proto = pkt->ip_proto;
}

static __always_inline void lb_flow_key_v6(const struct sluice_pkt *pkt, struct sluice_lb_flow_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	__builtin_memcpy(key->src, pkt->src, sizeof(key->src));
	__builtin_memcpy(key->dst, pkt->dst, sizeof(key->dst));
	key->sport = pkt->sport;
	key->dport = pkt->dport;
	key->proto = pkt->ip_proto;
	key->ip_version = 6;
}

/*
 * The backend of this packet's flow, from one family's connection table
 * (`conns`, keyed by `key`). A held connection entry wins (its last_seen
 * refreshed at most once a second); otherwise Maglev picks and the pick is
 * remembered. An entry that no longer holds counts SLUICE_LB_EVENT_RESELECTED.
 */
static __always_inline int lb_select_in(void *conns, const void *key, const struct sluice_pkt *pkt,
					const struct sluice_lb_settings *s, __u32 vip_id, __u32 hash, __u32 bytes,
					struct lb_choice *out)
{
	struct sluice_lb_conn *conn, fresh = {};
	const struct sluice_lb_backend *be;
	__u64 now = ct_now();
	int picked;

	conn = bpf_map_lookup_elem(conns, key);
	if (conn) {
		__u32 id = conn->backend_id; /* read once: the entry is shared with other CPUs */

		be = lb_conn_backend(conn, id, vip_id, s, pkt, now);
		if (be) {
			if (now > conn->last_seen_ns + LB_LAST_SEEN_REFRESH_NS)
				conn->last_seen_ns = now;
			out->backend_id = id;
			out->backend = be;
			return LB_PICK_OK;
		}
		lb_count_event(SLUICE_LB_EVENT_RESELECTED);
	}
	picked = lb_maglev_pick(vip_id, hash, out);
	if (picked != LB_PICK_OK)
		return picked;
	fresh.last_seen_ns = now;
	fresh.backend_id = out->backend_id;
	fresh.backend_epoch = out->backend->epoch;
	fresh.vip_id = vip_id;
	if (bpf_map_update_elem(conns, key, &fresh, BPF_ANY))
		lb_count_event(SLUICE_LB_EVENT_CONN_INSERT_FAILED); /* the packet still goes to its pick */
	lb_count(&lb_vip_counters, vip_id, bytes, 1, 0);
	lb_count(&lb_backend_counters, out->backend_id, bytes, 1, 0);
	return LB_PICK_OK;
}

/*
 * One inlined copy of lb_select_in per family, so that each lookup and
 * update names one map: the verifier then inlines the LRU lookup and calls
 * the map's own functions. A single call site with the map chosen at run
 * time (what clang makes of a lookup in each branch of an if) goes through
 * the generic helper's indirect call instead (20-40 ns here on an
 * established flow, lb_bench).
 */
static __always_inline int lb_select(const struct sluice_pkt *pkt, const struct sluice_lb_settings *s, __u32 vip_id,
				     __u32 hash, __u32 bytes, struct lb_choice *out)
{
	union lb_flow_key key;

	if (pkt->ip_version == 4) {
		lb_flow_key_v4(pkt, &key.v4);
		return lb_select_in(&lb_conns_v4, &key.v4, pkt, s, vip_id, hash, bytes, out);
	}
	lb_flow_key_v6(pkt, &key.v6);
	return lb_select_in(&lb_conns, &key.v6, pkt, s, vip_id, hash, bytes, out);
}

#endif /* SLUICE_XDP_LB_SELECT_H */
