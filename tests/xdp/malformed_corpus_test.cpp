// A corpus of malformed and edge-case frames, each with the verdict and
// reason the entry program must give it, and the counter it must bump.
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include <functional>
#include <string>

#include "packet_builder.hpp"
#include "xdp_fixture.hpp"

namespace sluice::test {
namespace {

PacketBuilder ether() { return PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02"); }
PacketBuilder v4() { return ether().ipv4("198.18.0.1", "198.18.1.1"); }
PacketBuilder v4(Ipv4Opts opts) { return ether().ipv4("198.18.0.1", "198.18.1.1", opts); }
PacketBuilder v6() { return ether().ipv6("2001:db8::1", "2001:db8::2"); }
PacketBuilder v6(Ipv6Opts opts) { return ether().ipv6("2001:db8::1", "2001:db8::2", opts); }

struct CorpusFrame {
  std::string name;
  std::function<Bytes()> frame;
  sluice_verdict verdict;
  sluice_reason reason;
};

// BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, so a
// truncated Ethernet header (TRUNC_ETH) cannot be sent through it; the
// parser's check for it is the same one-line bounds check as every other.
std::vector<CorpusFrame> corpus() {
  constexpr auto DROP = SLUICE_VERDICT_DROP;
  constexpr auto PASS = SLUICE_VERDICT_PASS;
  return {
      {"vlan_tag_cut_short", [] { return ether().vlan(10).ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).truncate_to(16).build(); }, DROP, SLUICE_REASON_TRUNC_VLAN},
      {"qinq_inner_tag_cut_short", [] { return ether().vlan(10, ETH_P_8021AD).vlan(20).ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).truncate_to(20).build(); }, DROP, SLUICE_REASON_TRUNC_VLAN},
      {"three_vlan_tags", [] { return ether().vlan(1, ETH_P_8021AD).vlan(2).vlan(3).ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).build(); }, DROP, SLUICE_REASON_VLAN_TOO_DEEP},
      {"ipv4_header_cut_short", [] { return v4().udp(1, 2).truncate_to(ETH_HLEN + 10).build(); }, DROP, SLUICE_REASON_TRUNC_IPV4},
      {"ipv4_version_6", [] { return v4({.version_override = 6}).udp(1, 2).build(); }, DROP, SLUICE_REASON_IPV4_BAD_VERSION},
      {"ipv4_ihl_4", [] { return v4({.ihl_override = 4}).udp(1, 2).build(); }, DROP, SLUICE_REASON_IPV4_BAD_IHL},
      {"ipv4_ihl_0", [] { return v4({.ihl_override = 0}).udp(1, 2).build(); }, DROP, SLUICE_REASON_IPV4_BAD_IHL},
      {"ipv4_options_beyond_frame", [] { return v4({.ihl_override = 15}).truncate_to(ETH_HLEN + 40).build(); }, DROP, SLUICE_REASON_TRUNC_IPV4},
      {"ipv4_total_length_beyond_frame", [] { return v4({.total_length_override = 1500}).udp(1, 2).build(); }, DROP, SLUICE_REASON_IPV4_BAD_TOTLEN},
      {"ipv4_total_length_below_header", [] { return v4({.total_length_override = 16}).udp(1, 2).build(); }, DROP, SLUICE_REASON_IPV4_BAD_TOTLEN},
      {"ipv4_fragment_past_64k", [] { return v4({.frag_offset_bytes = 65528}).payload(Bytes(64, 0)).build(); }, DROP, SLUICE_REASON_IPV4_BAD_FRAGMENT},
      {"ipv6_header_cut_short", [] { return v6().udp(1, 2).truncate_to(ETH_HLEN + 30).build(); }, DROP, SLUICE_REASON_TRUNC_IPV6},
      {"ipv6_version_4", [] { return v6({.version_override = 4}).udp(1, 2).build(); }, DROP, SLUICE_REASON_IPV6_BAD_VERSION},
      {"ipv6_payload_length_beyond_frame", [] { return v6({.payload_length_override = 400}).udp(1, 2).build(); }, DROP, SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN},
      {"ipv6_payload_length_zero", [] { return v6({.payload_length_override = 0}).udp(1, 2).build(); }, DROP, SLUICE_REASON_IPV6_BAD_PAYLOAD_LEN},
      {"ipv6_nine_extension_headers", [] {
         PacketBuilder b = v6();
         for (int i = 0; i < SLUICE_MAX_IPV6_EXTHDRS + 1; ++i) b.ipv6_dest_opts();
         return b.udp(1, 2).build();
       }, DROP, SLUICE_REASON_IPV6_EXTHDR_CHAIN_TOO_LONG},
      {"ipv6_exthdr_longer_than_payload", [] { return v6().ipv6_dest_opts({.hdr_ext_len_override = 20}).udp(1, 2).build(); }, DROP, SLUICE_REASON_TRUNC_IPV6_EXTHDR},
      {"ipv6_fragment_header_cut_short", [] { return v6({.payload_length_override = 4}).ipv6_fragment(0, true, 1).udp(1, 2).truncate_to(ETH_HLEN + 44).build(); }, DROP, SLUICE_REASON_TRUNC_IPV6_EXTHDR},
      {"ipv6_ah_length_beyond_payload", [] { return v6().ipv6_ah({.payload_len_override = 60}).tcp(1, 2).build(); }, DROP, SLUICE_REASON_TRUNC_IPV6_EXTHDR},
      {"ipv4_tcp_cut_short", [] { return v4({.total_length_override = 30}).tcp(1, 2).truncate_to(ETH_HLEN + 30).build(); }, DROP, SLUICE_REASON_TRUNC_TCP},
      {"ipv4_tcp_doff_4", [] { return v4().tcp(1, 2, {.doff_override = 4}).build(); }, DROP, SLUICE_REASON_TCP_BAD_DOFF},
      {"ipv4_tcp_doff_15_without_options", [] { return v4().tcp(1, 2, {.doff_override = 15}).build(); }, DROP, SLUICE_REASON_TRUNC_TCP},
      {"ipv4_tcp_header_in_padding_only", [] { return v4({.total_length_override = 30}).tcp(1, 2).build(); }, DROP, SLUICE_REASON_TRUNC_TCP},
      {"ipv6_tcp_cut_short", [] { return v6({.payload_length_override = 12}).tcp(1, 2).truncate_to(ETH_HLEN + 52).build(); }, DROP, SLUICE_REASON_TRUNC_TCP},
      {"ipv4_udp_cut_short", [] { return v4({.total_length_override = 24}).udp(1, 2).truncate_to(ETH_HLEN + 24).build(); }, DROP, SLUICE_REASON_TRUNC_UDP},
      {"ipv6_udp_cut_short", [] { return v6({.payload_length_override = 6}).udp(1, 2).truncate_to(ETH_HLEN + 46).build(); }, DROP, SLUICE_REASON_TRUNC_UDP},
      {"icmp_cut_short", [] { return v4({.total_length_override = 22}).icmp(8, 0).truncate_to(ETH_HLEN + 22).build(); }, DROP, SLUICE_REASON_TRUNC_ICMP},
      {"icmpv6_cut_short", [] { return v6({.payload_length_override = 2}).icmpv6(128, 0).truncate_to(ETH_HLEN + 42).build(); }, DROP, SLUICE_REASON_TRUNC_ICMPV6},
      // Edge cases that are not malformed:
      {"arp", [] { return PacketBuilder().eth("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", ETH_P_ARP).raw(Bytes(28, 0)).build(); }, PASS, SLUICE_REASON_NON_IP},
      {"ipv4_later_fragment", [] { return v4({.frag_offset_bytes = 8, .protocol_override = IPPROTO_TCP}).payload(Bytes(40, 0xaa)).build(); }, PASS, SLUICE_REASON_FRAGMENT},
      {"ipv6_later_fragment", [] { return v6().ipv6_fragment(1232, false, 7, {.next_header_override = IPPROTO_TCP}).payload(Bytes(40, 0xaa)).build(); }, PASS, SLUICE_REASON_FRAGMENT},
      {"ipv4_first_fragment", [] { return v4({.more_fragments = true}).tcp(1, 2).payload(Bytes(64, 0)).build(); }, PASS, SLUICE_REASON_PIPELINE_END},
      {"ipv4_with_ethernet_padding", [] { return v4().udp(1, 2).pad_to(60).build(); }, PASS, SLUICE_REASON_PIPELINE_END},
      {"ipv4_gre_addresses_only", [] { return v4({.protocol_override = 47}).payload(Bytes(8, 0)).build(); }, PASS, SLUICE_REASON_PIPELINE_END},
      {"ipv6_no_next_header", [] { return v6({.payload_length_override = 0, .next_header_override = IPPROTO_NONE}).build(); }, PASS, SLUICE_REASON_PIPELINE_END},
      {"ipv6_eight_extension_headers", [] {
         PacketBuilder b = v6();
         for (int i = 0; i < SLUICE_MAX_IPV6_EXTHDRS; ++i) b.ipv6_dest_opts();
         return b.udp(1, 2).build();
       }, PASS, SLUICE_REASON_PIPELINE_END},
      {"icmp_protocol_inside_ipv6", [] { return v6({.next_header_override = IPPROTO_ICMP}).payload(Bytes(8, 0)).build(); }, PASS, SLUICE_REASON_PIPELINE_END},
      {"ipv4_tcp_minimum_options_full", [] { return v4().tcp(1, 2, {.options = Bytes(40, 1)}).build(); }, PASS, SLUICE_REASON_PIPELINE_END},
  };
}

void PrintTo(const CorpusFrame& sample, std::ostream* out) { *out << sample.name; }

class MalformedCorpusTest : public XdpPipelineTest, public ::testing::WithParamInterface<CorpusFrame> {};

TEST_P(MalformedCorpusTest, GetsItsVerdictReasonAndCounter) {
  const CorpusFrame& sample = GetParam();
  const Bytes frame = sample.frame();
  const sluice_counter before = count(sample.verdict, sample.reason);
  const RunResult result = run(frame);
  EXPECT_EQ(result.verdict, static_cast<int>(sample.verdict));
  const sluice_counter after = count(sample.verdict, sample.reason);
  EXPECT_EQ(after.packets - before.packets, 1u) << "reason " << sample.reason << " not counted";
  EXPECT_EQ(after.bytes - before.bytes, frame.size());
  auto all = plane_->verdict_counts();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u) << "exactly one (verdict, reason) counter moves per packet";
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedCorpusTest, ::testing::ValuesIn(corpus()),
                         [](const auto& info) { return info.param.name; });

TEST(MalformedCorpus, HasAtLeastTwentyFiveMalformedFrames) {
  std::size_t malformed = 0;
  for (const auto& sample : corpus()) malformed += sample.verdict == SLUICE_VERDICT_DROP;
  EXPECT_GE(malformed, 25u);
}

}  // namespace
}  // namespace sluice::test
