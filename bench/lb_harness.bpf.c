// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Bench harness for paths that rewrite the packet. BPF_PROG_TEST_RUN with
 * repeat > 1 neither restores the bytes nor the data pointers between
 * repeats, so after one encapsulation every later repeat would see the
 * encapsulated frame (and ever less headroom). This program undoes that
 * first: it moves the head back to the original length, writes the
 * original bytes from harness_frame, optionally stamps a fresh flow number
 * into the source address (every repeat a new flow), then tail-calls
 * harness_target[0] (the sluice entry program, or harness_drop for the
 * harness's own cost).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define LB_HARNESS_FRAME_MAX 256
#define LB_HARNESS_FLOW_BYTES 3

struct lb_harness_frame {
	__u32 len;        /* 1..LB_HARNESS_FRAME_MAX */
	__u32 vary_flow;  /* 1: the low LB_HARNESS_FLOW_BYTES of the source address count repeats */
	__u32 flow_off;   /* where those bytes are in the frame */
	__u32 pad;
	__u8 bytes[LB_HARNESS_FRAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_harness_frame);
} harness_frame SEC(".maps");

/* Not per-CPU: the bench thread may move between CPUs, and each repeat must be a flow no CPU used before. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} harness_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} harness_target SEC(".maps");

SEC("xdp")
int lb_harness(struct xdp_md *ctx)
{
	__u32 slot = 0;
	struct lb_harness_frame *frame = bpf_map_lookup_elem(&harness_frame, &slot);
	__u32 len, cur;

	if (!frame)
		return XDP_ABORTED;
	len = frame->len;
	if (len == 0 || len > LB_HARNESS_FRAME_MAX)
		return XDP_ABORTED;
	cur = ctx->data_end - ctx->data;
	if (cur != len && bpf_xdp_adjust_head(ctx, (int)cur - (int)len))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, frame->bytes, len))
		return XDP_ABORTED;
	if (frame->vary_flow) {
		__u64 *seq = bpf_map_lookup_elem(&harness_seq, &slot);
		__u8 flow[LB_HARNESS_FLOW_BYTES];

		if (!seq)
			return XDP_ABORTED;
		*seq += 1; /* one bench thread at a time: a plain add */
		flow[0] = *seq >> 16;
		flow[1] = *seq >> 8;
		flow[2] = *seq;
		if (frame->flow_off > LB_HARNESS_FRAME_MAX - LB_HARNESS_FLOW_BYTES ||
		    bpf_xdp_store_bytes(ctx, frame->flow_off, flow, sizeof(flow)))
			return XDP_ABORTED;
	}
	bpf_tail_call(ctx, &harness_target, 0);
	return XDP_ABORTED;
}

/* The harness's own cost: restore, then this. */
SEC("xdp")
int harness_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/*
 * The harness's cost on an encapsulating path: the head grows by an outer
 * IPv4 header, so the next repeat's restore moves it back (what every
 * encapsulated repeat costs the harness, not the path under test).
 */
#define LB_HARNESS_PUSH_LEN 20
SEC("xdp")
int harness_push_drop(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_head(ctx, -LB_HARNESS_PUSH_LEN))
		return XDP_ABORTED;
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
