// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * sluice-trafficgen's generator, run by BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES: every repeat is one frame built from the
 * test-run input, given its flow (the source port, round robin over the
 * configured flows, checksum updated incrementally) and sent out of the
 * ingress interface with XDP_TX. frames_run counts the frames handed to the
 * driver, per CPU.
 */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "trafficgen.h"

const volatile struct trafficgen_config trafficgen_config = {.flows = 1};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} frames_run SEC(".maps");

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), in 32 bits then folded. */
static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new_value)
{
	__u32 sum = (__u16)~check + (__u16)~old + new_value;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int trafficgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const __u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&frames_run, &zero);
	__u32 l4 = trafficgen_config.l4_offset;

	if (!count || l4 > TRAFFICGEN_L4_OFFSET_MAX)
		return XDP_ABORTED;
	if (data + l4 + TRAFFICGEN_L4_TOUCHED_BYTES > data_end)
		return XDP_ABORTED;
	/* A receiver on the other end (a router rewriting MACs and TTL) may have
	 * changed the page this frame reuses: put the headers back first. */
	__u32 header_len = trafficgen_config.header_len;
	if (header_len > TRAFFICGEN_HEADER_MAX)
		return XDP_ABORTED;
	if (data + TRAFFICGEN_HEADER_MAX <= data_end) {
		__builtin_memcpy(data, (const void *)trafficgen_config.header, TRAFFICGEN_HEADER_MAX);
	} else {
		for (__u32 i = 0; i < TRAFFICGEN_HEADER_MAX; i++) {
			if (i >= header_len || data + i + 1 > data_end)
				break;
			((__u8 *)data)[i] = trafficgen_config.header[i];
		}
	}
	__u8 *l4h = data + l4;
	__u32 flows = trafficgen_config.flows ? trafficgen_config.flows : 1;
	__u16 sport = (__u16)(trafficgen_config.base_sport + (__u32)(*count % flows));
	/* The delta from the port the frame holds now: live-frame pages are
	 * recycled with the bytes the last repeat left in them. */
	__u16 old_net = *(__u16 *)l4h;
	__u16 new_net = bpf_htons(sport);

	*(__u16 *)l4h = new_net;
	if (trafficgen_config.csum == TRAFFICGEN_CSUM_UDP) {
		__u16 *check = (__u16 *)(l4h + 6);
		*check = csum_replace16(*check, old_net, new_net);
		if (*check == 0)
			*check = 0xffff;  /* 0 means "no checksum" in UDP */
	} else if (trafficgen_config.csum == TRAFFICGEN_CSUM_TCP) {
		__u16 *check = (__u16 *)(l4h + 16);
		*check = csum_replace16(*check, old_net, new_net);
	}
	*count += 1;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
