// The entry program and the tail-call pipeline: parse results, stage
// switching, fail-open/fail-closed, config policies, counters.
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <sched.h>

#include "packet_builder.hpp"
#include "xdp_fixture.hpp"
// after the contract: the skeleton names its structs
#include "sluice.skel.h"

namespace sluice::test {
namespace {

constexpr const char* client_mac = "02:00:00:00:00:01";
constexpr const char* box_mac = "02:00:00:00:00:02";

PacketBuilder ether() { return PacketBuilder().eth(client_mac, box_mac); }

Bytes ipv4_tcp_syn() { return ether().ipv4("198.18.0.1", "198.18.1.1").tcp(40000, 80).build(); }

// Reads the parse result the entry program left in its per-CPU slot. The
// test process is pinned to one CPU so "the slot of the CPU that ran it" is known.
class ParseResultTest : public XdpPipelineTest {
 protected:
  void SetUp() override {
    cpu_set_t one{};
    CPU_ZERO(&one);
    CPU_SET(test_cpu, &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
    XdpPipelineTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto fd = maps::MapFd::from_skeleton(plane_->skeleton()->maps.pkt_scratch);
    ASSERT_TRUE(fd) << fd.error().message;
    auto scratch = maps::PerCpuArrayMap<sluice_pkt>::from(std::move(*fd));
    ASSERT_TRUE(scratch) << scratch.error().message;
    scratch_.emplace(std::move(*scratch));
  }
  void TearDown() override {
    cpu_set_t all{};
    CPU_ZERO(&all);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, &all);
    sched_setaffinity(0, sizeof(all), &all);
  }
  sluice_pkt parse(const Bytes& frame) {
    EXPECT_EQ(run(frame).verdict, XDP_PASS);
    auto per_cpu = scratch_->lookup(0);
    EXPECT_TRUE(per_cpu && *per_cpu);
    return (**per_cpu)[test_cpu];
  }
  static constexpr int test_cpu = 0;
  std::optional<maps::PerCpuArrayMap<sluice_pkt>> scratch_;
};

std::array<std::uint8_t, 4> v4_bytes(const std::uint32_t* addr) {
  std::array<std::uint8_t, 4> out{};
  std::memcpy(out.data(), addr, 4);
  return out;
}

TEST_F(XdpPipelineTest, Ipv4TcpGoesThroughEveryStageAndPassesUnchanged) {
  const Bytes frame = ipv4_tcp_syn();
  const auto before = count(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END);
  const RunResult result = run(frame);
  EXPECT_EQ(result.verdict, XDP_PASS);
  EXPECT_EQ(result.output, frame);
  const auto after = count(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END);
  EXPECT_EQ(after.packets - before.packets, 1u);
  EXPECT_EQ(after.bytes - before.bytes, frame.size());
}

TEST_F(XdpPipelineTest, DefaultVerdictAppliesAtPipelineEnd) {
  auto config = dataplane::default_config();
  config.end_verdict = SLUICE_VERDICT_DROP;
  set_config(config);
  EXPECT_EQ(run(ipv4_tcp_syn()).verdict, XDP_DROP);
  EXPECT_EQ(count(SLUICE_VERDICT_DROP, SLUICE_REASON_PIPELINE_END).packets, 1u);
}

TEST_F(XdpPipelineTest, AllStagesOffStillGivesTheDefaultVerdict) {
  auto config = dataplane::default_config();
  config.stages_enabled = 0;
  config.end_verdict = SLUICE_VERDICT_DROP;
  set_config(config);
  // No stage runs, so removing every stage program changes nothing.
  for (unsigned stage = 0; stage < SLUICE_STAGE_COUNT; ++stage)
    ASSERT_TRUE(plane_->remove_stage(static_cast<sluice_stage>(stage)));
  EXPECT_EQ(run(ipv4_tcp_syn()).verdict, XDP_DROP);
  EXPECT_EQ(count(SLUICE_VERDICT_DROP, SLUICE_REASON_TAIL_CALL_FAILED).packets, 0u);
}

TEST_F(XdpPipelineTest, MissingStageFailsOpenByDefault) {
  ASSERT_TRUE(plane_->remove_stage(SLUICE_STAGE_LB));
  EXPECT_EQ(run(ipv4_tcp_syn()).verdict, XDP_PASS);
  EXPECT_EQ(count(SLUICE_VERDICT_PASS, SLUICE_REASON_TAIL_CALL_FAILED).packets, 1u);
  EXPECT_EQ(count(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END).packets, 0u);
}

TEST_F(XdpPipelineTest, MissingStageFailsClosedWhenConfigured) {
  auto config = dataplane::default_config();
  config.tail_call_fail_verdict = SLUICE_VERDICT_DROP;
  set_config(config);
  ASSERT_TRUE(plane_->remove_stage(SLUICE_STAGE_FORWARD));
  EXPECT_EQ(run(ipv4_tcp_syn()).verdict, XDP_DROP);
  EXPECT_EQ(count(SLUICE_VERDICT_DROP, SLUICE_REASON_TAIL_CALL_FAILED).packets, 1u);
}

TEST_F(XdpPipelineTest, DisabledStageIsSkippedEvenWhenItsSlotIsEmpty) {
  auto config = dataplane::default_config();
  config.stages_enabled = SLUICE_STAGE_BIT(SLUICE_STAGE_FILTER) | SLUICE_STAGE_BIT(SLUICE_STAGE_FORWARD);
  config.tail_call_fail_verdict = SLUICE_VERDICT_DROP;
  set_config(config);
  ASSERT_TRUE(plane_->remove_stage(SLUICE_STAGE_LB));
  EXPECT_EQ(run(ipv4_tcp_syn()).verdict, XDP_PASS);
  EXPECT_EQ(count(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END).packets, 1u);
}

TEST_F(XdpPipelineTest, NonIpPassesByDefaultAndDropsWhenConfigured) {
  const Bytes arp = PacketBuilder().eth(client_mac, "ff:ff:ff:ff:ff:ff", ETH_P_ARP).raw(Bytes(28, 0x11)).build();
  EXPECT_EQ(run(arp).verdict, XDP_PASS);
  EXPECT_EQ(count(SLUICE_VERDICT_PASS, SLUICE_REASON_NON_IP).packets, 1u);
  auto config = dataplane::default_config();
  config.non_ip_verdict = SLUICE_VERDICT_DROP;
  set_config(config);
  EXPECT_EQ(run(arp).verdict, XDP_DROP);
  EXPECT_EQ(count(SLUICE_VERDICT_DROP, SLUICE_REASON_NON_IP).packets, 1u);
}

TEST_F(XdpPipelineTest, MalformedDropsByDefaultAndPassesWhenConfigured) {
  const Bytes bad_ihl = ether().ipv4("198.18.0.1", "198.18.1.1", {.ihl_override = 4}).tcp(1, 2).build();
  EXPECT_EQ(run(bad_ihl).verdict, XDP_DROP);
  auto config = dataplane::default_config();
  config.malformed_verdict = SLUICE_VERDICT_PASS;
  set_config(config);
  EXPECT_EQ(run(bad_ihl).verdict, XDP_PASS);
  EXPECT_EQ(count(SLUICE_VERDICT_DROP, SLUICE_REASON_IPV4_BAD_IHL).packets, 1u);
  EXPECT_EQ(count(SLUICE_VERDICT_PASS, SLUICE_REASON_IPV4_BAD_IHL).packets, 1u);
}

TEST_F(XdpPipelineTest, FragmentsDropOnlyWhenConfigured) {
  const Bytes first = ether().ipv4("198.18.0.1", "198.18.1.1", {.more_fragments = true}).udp(53, 53).payload(Bytes(64, 0)).build();
  const Bytes later = ether()
                          .ipv4("198.18.0.1", "198.18.1.1", {.frag_offset_bytes = 72, .protocol_override = IPPROTO_UDP})
                          .payload(Bytes(64, 0))
                          .build();
  EXPECT_EQ(run(first).verdict, XDP_PASS);
  EXPECT_EQ(run(later).verdict, XDP_PASS);
  EXPECT_EQ(count(SLUICE_VERDICT_PASS, SLUICE_REASON_FRAGMENT).packets, 1u);
  auto config = dataplane::default_config();
  config.drop_fragments = 1;
  set_config(config);
  EXPECT_EQ(run(first).verdict, XDP_DROP);
  EXPECT_EQ(run(later).verdict, XDP_DROP);
  EXPECT_EQ(count(SLUICE_VERDICT_DROP, SLUICE_REASON_FRAGMENT_DROPPED).packets, 2u);
}

TEST_F(XdpPipelineTest, IngressInterfaceIsRecordedAsGiven) {
  // test_run only accepts a real ifindex: loopback is always 1.
  const RunResult result = run_xdp(plane_->entry_prog_fd(), ipv4_tcp_syn(), 1);
  EXPECT_EQ(result.verdict, XDP_PASS);
}

TEST(DataplaneConfig, RejectsBadFieldsByNameAndValue) {
  auto config = dataplane::default_config();
  config.malformed_verdict = 7;
  auto checked = dataplane::validate_config(config);
  ASSERT_FALSE(checked);
  EXPECT_NE(checked.error().message.find("malformed_verdict = 7"), std::string::npos) << checked.error().message;

  config = dataplane::default_config();
  config.stages_enabled = 0x10;
  checked = dataplane::validate_config(config);
  ASSERT_FALSE(checked);
  EXPECT_NE(checked.error().message.find("stages_enabled = 16"), std::string::npos) << checked.error().message;

  config = dataplane::default_config();
  config.drop_fragments = 2;
  EXPECT_FALSE(dataplane::validate_config(config));
  EXPECT_TRUE(dataplane::validate_config(dataplane::default_config()));
}

TEST_F(XdpPipelineTest, RejectedConfigLeavesLiveConfigUntouched) {
  auto config = dataplane::default_config();
  config.end_verdict = SLUICE_VERDICT_TX;
  EXPECT_FALSE(plane_->set_config(config));
  auto live = plane_->config();
  ASSERT_TRUE(live);
  EXPECT_EQ(live->end_verdict, static_cast<std::uint32_t>(SLUICE_VERDICT_PASS));
}

TEST_F(ParseResultTest, Ipv4TcpFields) {
  const Bytes frame = ether().ipv4("198.18.0.1", "198.18.1.1").tcp(40000, 443, {.flags = TcpFlags::SYN | TcpFlags::ACK}).build();
  const sluice_pkt pkt = parse(frame);
  EXPECT_EQ(pkt.ip_version, 4);
  EXPECT_EQ(pkt.ip_proto, IPPROTO_TCP);
  EXPECT_EQ(v4_bytes(pkt.src), (std::array<std::uint8_t, 4>{198, 18, 0, 1}));
  EXPECT_EQ(v4_bytes(pkt.dst), (std::array<std::uint8_t, 4>{198, 18, 1, 1}));
  EXPECT_EQ(pkt.sport, 40000);
  EXPECT_EQ(pkt.dport, 443);
  EXPECT_EQ(pkt.tcp_flags, TcpFlags::SYN | TcpFlags::ACK);
  EXPECT_EQ(pkt.has_l4, 1);
  EXPECT_EQ(pkt.l3_off, ETH_HLEN);
  EXPECT_EQ(pkt.l4_off, ETH_HLEN + 20);
  EXPECT_EQ(pkt.pkt_len, frame.size());
  EXPECT_EQ(pkt.frag, SLUICE_FRAG_NONE);
}

TEST_F(ParseResultTest, DoubleVlanIpv6UdpBehindExtensionHeaders) {
  const Bytes frame = ether()
                          .vlan(300, ETH_P_8021AD)
                          .vlan(42)
                          .ipv6("2001:db8::1", "2001:db8::2")
                          .ipv6_hop_by_hop()
                          .ipv6_routing({"2001:db8::3"})
                          .ipv6_dest_opts()
                          .ipv6_ah()
                          .udp(5353, 53)
                          .payload("q")
                          .build();
  const sluice_pkt pkt = parse(frame);
  EXPECT_EQ(pkt.vlan_depth, 2);
  EXPECT_EQ(pkt.vlan_id[0], 300);
  EXPECT_EQ(pkt.vlan_id[1], 42);
  EXPECT_EQ(pkt.eth_proto, ETH_P_IPV6);
  EXPECT_EQ(pkt.ip_version, 6);
  EXPECT_EQ(pkt.ip_proto, IPPROTO_UDP);
  EXPECT_EQ(pkt.sport, 5353);
  EXPECT_EQ(pkt.dport, 53);
  EXPECT_EQ(pkt.l3_off, ETH_HLEN + 8);
  // 40 fixed + 8 HBH + 24 routing (one address) + 8 dest opts + 24 AH
  EXPECT_EQ(pkt.l4_off, ETH_HLEN + 8 + 40 + 8 + 24 + 8 + 24);
}

TEST_F(ParseResultTest, Ipv4OptionsMoveTheL4Header) {
  const Bytes frame = ether().ipv4("198.18.0.1", "198.18.1.1", {.options = Bytes{0x94, 0x04, 0, 0}}).udp(1000, 2000).build();
  const sluice_pkt pkt = parse(frame);
  EXPECT_EQ(pkt.l4_off, ETH_HLEN + 24);
  EXPECT_EQ(pkt.sport, 1000);
  EXPECT_EQ(pkt.dport, 2000);
}

// xdp-filter reads "ports" out of a later fragment's payload; sluice must not.
TEST_F(ParseResultTest, NonFirstIpv4FragmentHasNoPorts) {
  const Bytes looks_like_ports{0x00, 0x50, 0x00, 0x16, 0xde, 0xad, 0xbe, 0xef};
  const Bytes frame = ether()
                          .ipv4("198.18.0.1", "198.18.1.1", {.frag_offset_bytes = 1480, .protocol_override = IPPROTO_TCP})
                          .payload(looks_like_ports)
                          .build();
  const sluice_pkt pkt = parse(frame);
  EXPECT_EQ(pkt.frag, SLUICE_FRAG_NONFIRST);
  EXPECT_EQ(pkt.ip_proto, IPPROTO_TCP);
  EXPECT_EQ(pkt.has_l4, 0);
  EXPECT_EQ(pkt.sport, 0);
  EXPECT_EQ(pkt.dport, 0);
  EXPECT_EQ(pkt.note, SLUICE_REASON_FRAGMENT);
}

TEST_F(ParseResultTest, NonFirstIpv6FragmentHasNoPorts) {
  const Bytes frame = ether()
                          .ipv6("2001:db8::1", "2001:db8::2")
                          .ipv6_fragment(8, true, 99, {.next_header_override = IPPROTO_UDP})
                          .payload(Bytes{0x00, 0x35, 0x00, 0x35, 0, 8, 0, 0})
                          .build();
  const sluice_pkt pkt = parse(frame);
  EXPECT_EQ(pkt.frag, SLUICE_FRAG_NONFIRST);
  EXPECT_EQ(pkt.ip_proto, IPPROTO_UDP);
  EXPECT_EQ(pkt.has_l4, 0);
  EXPECT_EQ(pkt.dport, 0);
}

TEST_F(ParseResultTest, FirstIpv6FragmentKeepsItsPorts) {
  const Bytes frame = ether().ipv6("2001:db8::1", "2001:db8::2").ipv6_fragment(0, true, 99).tcp(1234, 22).build();
  const sluice_pkt pkt = parse(frame);
  EXPECT_EQ(pkt.frag, SLUICE_FRAG_FIRST);
  EXPECT_EQ(pkt.has_l4, 1);
  EXPECT_EQ(pkt.dport, 22);
}

TEST_F(ParseResultTest, IcmpTypesAreRead) {
  sluice_pkt pkt = parse(ether().ipv4("198.18.0.1", "198.18.1.1").icmp(8, 0, icmp_echo_rest(1, 1)).build());
  EXPECT_EQ(pkt.icmp_type, 8);
  EXPECT_EQ(pkt.has_l4, 1);
  pkt = parse(ether().ipv6("2001:db8::1", "2001:db8::2").icmpv6(135, 0).payload(Bytes(20, 0)).build());
  EXPECT_EQ(pkt.icmp_type, 135);
  EXPECT_EQ(pkt.ip_proto, IPPROTO_ICMPV6);
}

TEST_F(ParseResultTest, EthernetPaddingIsNotPayload) {
  const Bytes frame = ether().ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).pad_to(60).build();
  ASSERT_EQ(frame.size(), 60u);
  const sluice_pkt pkt = parse(frame);
  EXPECT_EQ(pkt.l3_len, 28);
  EXPECT_EQ(pkt.pkt_len, 60u);
}

}  // namespace
}  // namespace sluice::test
