// SPDX-License-Identifier: GPL-2.0
/*
 * Counts the XDP redirects that fail after the program returned
 * (struct sluice_redirect_error_key in sluice_maps.h), on three raw
 * tracepoints of the kernel's xdp events:
 *   xdp_redirect_err  xdp_do_redirect refused a frame sluice redirected into
 *                     one of its devmaps or its cpumap (target down, a port
 *                     that takes no XDP frames now, ...): per receiving
 *                     device, map index, errno;
 *   xdp_devmap_xmit   a devmap bulk flush whose driver took fewer frames than
 *                     it was given (a full TX ring, a veth peer gone from
 *                     NAPI mode); it names no map, so this counts any XDP
 *                     program's bulk transmit from sluice's netns, and only in
 *                     native mode (generic XDP has no bulk queue);
 *   xdp_cpumap_enqueue frames dropped on a full cpumap CPU queue.
 * Tracepoints are global, so each program keeps only what happened in
 * sluice's network namespace (the device's netns inode, read through CO-RE)
 * and, for the cpumap, only sluice's cpumap (its map id). Both are set in
 * .rodata before load. Needs raw tracepoints, BTF of the running kernel
 * (CO-RE) and the tracepoints' current argument lists (xdp_redirect_err with
 * map type, map id and index; xdp_devmap_xmit with the two devices first):
 * user space checks them against the kernel's BTF and leaves out a
 * tracepoint whose arguments differ.
 *
 * The structs below are not copies of the kernel's: preserve_access_index
 * makes every field access a CO-RE relocation that libbpf resolves against
 * the running kernel's BTF, so only the field names must exist.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "sluice_maps.h"

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

const volatile __u32 sluice_netns_inum = 0;
const volatile __u32 sluice_cpumap_id = 0;
/* sluice's redirect maps (devmaps, cpumap): another program's failed redirect is not sluice's to count; 0 unused */
const volatile __u32 sluice_redirect_map_ids[SLUICE_REDIRECT_ERR_MAX_MAPS] = {};

static __always_inline int sluice_redirect_map(__u32 map_id)
{
	if (map_id == 0)
		return 0;
	for (int i = 0; i < SLUICE_REDIRECT_ERR_MAX_MAPS; i++)
		if (sluice_redirect_map_ids[i] == map_id)
			return 1;
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SLUICE_REDIRECT_ERR_MAX_KEYS);
	__type(key, struct sluice_redirect_error_key);
	__type(value, __u64);
} redirect_errors SEC(".maps");

/* Frames not counted because redirect_errors was full (slot 0). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} redirect_errors_unkeyed SEC(".maps");

static __always_inline int in_sluice_netns(const struct net_device *dev)
{
	return dev && BPF_CORE_READ(dev, nd_net.net, ns.inum) == sluice_netns_inum;
}

static __always_inline void count_error(const struct sluice_redirect_error_key *key, __u64 frames)
{
	__u64 *n = bpf_map_lookup_elem(&redirect_errors, key);

	if (!n) {
		__u64 zero = 0;

		/* Another CPU may have made it meanwhile: BPF_NOEXIST fails then, and the lookup finds it. */
		bpf_map_update_elem(&redirect_errors, key, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&redirect_errors, key);
	}
	if (n) {
		*n += frames;
		return;
	}
	__u32 slot = 0;
	__u64 *unkeyed = bpf_map_lookup_elem(&redirect_errors_unkeyed, &slot);
	if (unkeyed)
		*unkeyed += frames;
}

/* (dev, xdp prog, target, err, map type, map id, index) */
SEC("raw_tp/xdp_redirect_err")
int sluice_redirect_err(struct bpf_raw_tracepoint_args *ctx)
{
	const struct net_device *dev = (const void *)ctx->args[0];

	if (!sluice_redirect_map((__u32)ctx->args[5]) || !in_sluice_netns(dev))
		return 0;
	struct sluice_redirect_error_key key = {
		.kind = SLUICE_REDIRECT_ERR_REDIRECT,
		.ifindex = BPF_CORE_READ(dev, ifindex),
		.to = (__s32)ctx->args[6],
		.err = (__s32)ctx->args[3],
	};
	count_error(&key, 1);
	return 0;
}

/* (from dev, to dev, sent, drops, err): runs on every bulk flush, so it leaves at once when nothing was dropped. */
SEC("raw_tp/xdp_devmap_xmit")
int sluice_devmap_xmit(struct bpf_raw_tracepoint_args *ctx)
{
	const int drops = (int)ctx->args[3];

	if (drops <= 0)
		return 0;
	const struct net_device *from = (const void *)ctx->args[0];
	const struct net_device *to = (const void *)ctx->args[1];
	if (!in_sluice_netns(from) || !to)
		return 0;
	struct sluice_redirect_error_key key = {
		.kind = SLUICE_REDIRECT_ERR_XMIT,
		.ifindex = BPF_CORE_READ(from, ifindex),
		.to = BPF_CORE_READ(to, ifindex),
		.err = (__s32)ctx->args[4],
	};
	count_error(&key, (__u64)drops);
	return 0;
}

/* (map id, processed, drops, to CPU) */
SEC("raw_tp/xdp_cpumap_enqueue")
int sluice_cpumap_enqueue(struct bpf_raw_tracepoint_args *ctx)
{
	const unsigned int drops = (unsigned int)ctx->args[2];

	if (drops == 0 || (__u32)ctx->args[0] != sluice_cpumap_id)
		return 0;
	struct sluice_redirect_error_key key = {
		.kind = SLUICE_REDIRECT_ERR_CPUMAP,
		.to = (__s32)ctx->args[3],
	};
	count_error(&key, drops);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
