// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Test harness of the forward stage's route lookup (xdp/forward_lookup.h,
 * the very code sluice_forward runs): one BPF_PROG_TEST_RUN looks up a
 * batch of destinations. The frame is an Ethernet header whose EtherType
 * says the family, then records (IPv4: 4 bytes, IPv6: 16 bytes) each
 * holding a destination in network order; the program overwrites the first
 * 4 bytes of each record with its route value and returns XDP_TX. The maps
 * are the loaded sluice object's (the test reuses their fds), so the lookup
 * sees exactly what RouteTable wrote.
 *
 * route_pass_probe: a bare XDP_PASS, attached to the lab's outer veths so
 * that native redirects into their peers are received (veth delivers
 * XDP-redirected frames only to a peer running NAPI, i.e. with XDP or GRO).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "forward_lookup.h"

#define PROBE_V4_BATCH 512
#define PROBE_V6_BATCH 128
#define PROBE_BAD_FRAME XDP_ABORTED

SEC("xdp")
int route_lookup_probe(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return PROBE_BAD_FRAME;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		for (int i = 0; i < PROBE_V4_BATCH; i++) {
			__u32 *record = (void *)(eth + 1) + i * 4;
			if ((void *)(record + 1) > data_end)
				break;
			*record = fwd_lookup_v4(*record);
		}
		return XDP_TX;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		for (int i = 0; i < PROBE_V6_BATCH; i++) {
			__u32 *record = (void *)(eth + 1) + i * 16;
			if ((void *)(record + 4) > data_end)
				break;
			__u32 dst[4] = {record[0], record[1], record[2], record[3]};
			record[0] = fwd_lookup_v6(dst);
		}
		return XDP_TX;
	}
	return PROBE_BAD_FRAME;
}

SEC("xdp")
int route_pass_probe(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
