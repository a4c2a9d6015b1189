/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * From a route value to the next hop a packet leaves by. Every id read from
 * a map is range-checked here; out of range is corrupt state (the caller
 * drops), never a guess.
 */
#ifndef SLUICE_XDP_FORWARD_NEXTHOP_H
#define SLUICE_XDP_FORWARD_NEXTHOP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "sluice_maps.h"
#include "forward_maps.bpf.h"

/* The next hop with this id, or NULL when the id or the slot is not a valid next hop. */
static __always_inline const struct sluice_fwd_nexthop *fwd_nexthop(__u32 id)
{
	if (id == 0 || id >= SLUICE_FWD_MAX_NEXTHOPS)
		return NULL;
	const struct sluice_fwd_nexthop *nh = bpf_map_lookup_elem(&fwd_nexthops, &id);
	if (!nh || nh->ifindex == 0 || nh->port >= SLUICE_FWD_MAX_PORTS)
		return NULL;
	return nh;
}

/* The next-hop id the flow hash picks in group id; 0 when the group is not a valid one. */
static __always_inline __u32 fwd_group_pick(__u32 id, __u32 hash)
{
	if (id == 0 || id >= SLUICE_FWD_MAX_GROUPS)
		return 0;
	const struct sluice_fwd_group *group = bpf_map_lookup_elem(&fwd_groups, &id);
	if (!group || group->member_count == 0 || group->member_count > SLUICE_FWD_GROUP_MAX_MEMBERS)
		return 0;
	return group->bucket[hash & (SLUICE_FWD_GROUP_BUCKETS - 1)];
}

static __always_inline void fwd_count(void *counters, __u32 slot, __u64 bytes)
{
	struct sluice_counter *ctr = bpf_map_lookup_elem(counters, &slot);

	if (!ctr)
		return;
	ctr->packets++;
	ctr->bytes += bytes;
}

static __always_inline void fwd_event(__u32 slot, __u64 bytes)
{
	fwd_count(&fwd_event_counters, slot, bytes);
}

#endif /* SLUICE_XDP_FORWARD_NEXTHOP_H */
