// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The cost floor benchmarks compare against: an XDP program that does nothing. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int empty_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
