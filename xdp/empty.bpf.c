// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The cost floor benchmarks compare against: an XDP program that does nothing. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int empty_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/* The kernel's own paths behind XDP (pps_bench's kernel forwarding peer):
 * a veth hands frames sent by XDP to its peer only while the peer runs XDP. */
SEC("xdp")
int empty_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
