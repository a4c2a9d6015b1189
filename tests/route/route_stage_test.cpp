// The forward stage through BPF_PROG_TEST_RUN: frames built here go through
// the entry program (parse -> filter -> lb -> forward) with routes written by
// RouteTable; verdicts, counters and every rewritten byte are checked.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "route_fixture.hpp"

namespace sluice::test {
namespace {

using route::GroupMember;
using route::RouteTarget;

constexpr std::size_t kEthDst = 0, kEthSrc = 6;
constexpr std::size_t kIp = 14;
constexpr std::size_t kIpTtl = kIp + 8, kIpCheck = kIp + 10;
constexpr std::size_t kIp6HopLimit = kIp + 7;

Bytes udp4(const char* src, const char* dst, std::uint8_t ttl = 64, std::uint16_t sport = 40000, std::uint16_t id = 7) {
  return PacketBuilder()
      .eth(kClientMac, kRouterMac)
      .ipv4(src, dst, {.ttl = ttl, .id = id})
      .udp(sport, 53)
      .payload("routed by XDP")
      .build();
}
Bytes udp6(const char* src, const char* dst, std::uint8_t hop_limit = 64, std::uint16_t sport = 40000) {
  return PacketBuilder()
      .eth(kClientMac, kRouterMac)
      .ipv6(src, dst, {.hop_limit = hop_limit})
      .udp(sport, 53)
      .payload("routed by XDP")
      .build();
}

std::uint8_t dst_tag(const Bytes& frame) { return frame[kEthDst + 5]; }
route::Mac mac_at(const Bytes& frame, std::size_t at) {
  route::Mac mac;
  std::copy_n(frame.begin() + static_cast<long>(at), 6, mac.begin());
  return mac;
}

// Everything but MACs, TTL and checksum is as it came in; those are what routing sets.
void expect_routed_v4(const Bytes& in, const RunResult& out, std::uint8_t tag) {
  ASSERT_EQ(out.verdict, XDP_REDIRECT);
  ASSERT_EQ(out.output.size(), in.size());
  EXPECT_EQ(mac_at(out.output, kEthDst), test_hop(tag).dst_mac);
  EXPECT_EQ(mac_at(out.output, kEthSrc), mac_of(kRouterMac));
  EXPECT_EQ(out.output[kIpTtl], in[kIpTtl] - 1);
  // The checksum verified by recomputing it over the header as sent.
  EXPECT_EQ(ipv4_checksum(std::span(out.output).subspan(kIp, 20)), 0) << "IPv4 header checksum wrong";
  for (std::size_t i = 12; i < in.size(); ++i)
    if (i != kIpTtl && i != kIpCheck && i != kIpCheck + 1) {
      EXPECT_EQ(out.output[i], in[i]) << "byte " << i;
    }
}

class ForwardStage : public RouteStageTest {
 protected:
  void add_hops(std::uint8_t count) {
    for (std::uint8_t tag = 1; tag <= count; ++tag) ASSERT_OK(table_->add_next_hop(name(tag), test_hop(tag)));
  }
  static std::string name(std::uint8_t tag) { return "hop" + std::to_string(tag); }
};

TEST_F(ForwardStage, RoutedIpv4IsRedirectedWithMacsTtlAndChecksumRewritten) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("198.18.1.0/24"), RouteTarget::next_hop("hop1")));
  const auto before = packets(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_ROUTED);
  const Bytes frame = udp4("198.18.0.1", "198.18.1.5");
  expect_routed_v4(frame, run(frame), 1);
  EXPECT_EQ(packets(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_ROUTED), before + 1);
  auto routes = table_->list_routes();
  ASSERT_TRUE(routes);
  ASSERT_EQ(routes->size(), 1u);
  ASSERT_TRUE(routes->front().counter);
  EXPECT_EQ(routes->front().counter->packets, 1u);
  EXPECT_EQ(routes->front().counter->bytes, frame.size());
  auto hops = table_->list_next_hops();
  ASSERT_TRUE(hops);
  EXPECT_EQ(hops->front().counter.packets, 1u);
}

TEST_F(ForwardStage, ChecksumStaysRightForEveryTtlAndHeader) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("198.18.0.0/15"), RouteTarget::next_hop("hop1")));
  std::mt19937 rng(11);
  for (int i = 0; i < 3000; ++i) {
    // Every TTL that is routed, ids and TOS spread so the checksum takes all kinds of values (0xffff edge too).
    const auto ttl = static_cast<std::uint8_t>(2 + i % 254);
    const Bytes frame = PacketBuilder()
                            .eth(kClientMac, kRouterMac)
                            .ipv4("198.18.0.1", "198.19.2.3", {.ttl = ttl, .tos = static_cast<std::uint8_t>(rng()),
                                                               .id = static_cast<std::uint16_t>(rng())})
                            .udp(static_cast<std::uint16_t>(rng()), 53)
                            .build();
    const auto out = run(frame);
    ASSERT_EQ(out.verdict, XDP_REDIRECT);
    ASSERT_EQ(out.output[kIpTtl], ttl - 1);
    ASSERT_EQ(ipv4_checksum(std::span(out.output).subspan(kIp, 20)), 0) << "ttl " << int(ttl) << " frame " << i;
  }
}

TEST_F(ForwardStage, RoutedIpv6DecrementsTheHopLimit) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("2001:db8:1::/48"), RouteTarget::next_hop("hop1")));
  const Bytes frame = udp6("2001:db8::1", "2001:db8:1::5", 9);
  const auto out = run(frame);
  ASSERT_EQ(out.verdict, XDP_REDIRECT);
  EXPECT_EQ(mac_at(out.output, kEthDst), test_hop(1).dst_mac);
  EXPECT_EQ(mac_at(out.output, kEthSrc), mac_of(kRouterMac));
  EXPECT_EQ(out.output[kIp6HopLimit], 8);
  for (std::size_t i = 12; i < frame.size(); ++i)
    if (i != kIp6HopLimit) {
      EXPECT_EQ(out.output[i], frame[i]) << "byte " << i;
    }
}

class LongestPrefix : public ForwardStage, public ::testing::WithParamInterface<bool> {};

TEST_P(LongestPrefix, WinsOverOverlappingRoutesAndTheDefault) {
  // Param: the IPv4 DIR-24-8 copy on (threshold 1) or the trie alone.
  open_table({.dir_threshold = GetParam() ? 1u : 1000000u});
  add_hops(5);
  ASSERT_OK(table_->add_route(prefix("0.0.0.0/0"), RouteTarget::next_hop("hop1")));
  ASSERT_OK(table_->add_route(prefix("198.18.0.0/15"), RouteTarget::next_hop("hop2")));
  ASSERT_OK(table_->add_route(prefix("198.18.1.0/24"), RouteTarget::next_hop("hop3")));
  ASSERT_OK(table_->add_route(prefix("198.18.1.128/25"), RouteTarget::next_hop("hop4")));
  ASSERT_OK(table_->add_route(prefix("198.18.1.200/32"), RouteTarget::next_hop("hop5")));
  EXPECT_EQ(table_->dir24_8_active(), GetParam()) << table_->dir24_8_error();
  const std::map<const char*, std::uint8_t> expected = {
      {"203.0.113.9", 1}, {"198.19.255.1", 2}, {"198.18.1.1", 3}, {"198.18.1.127", 3},
      {"198.18.1.128", 4}, {"198.18.1.199", 4}, {"198.18.1.200", 5}, {"198.18.1.201", 4}, {"198.18.2.1", 2}};
  for (const auto& [dst, tag] : expected) {
    const auto out = run(udp4("198.18.0.1", dst));
    ASSERT_EQ(out.verdict, XDP_REDIRECT) << dst;
    EXPECT_EQ(dst_tag(out.output), tag) << dst;
  }
  // The /25 removed: its addresses fall back to the /24.
  ASSERT_OK(table_->remove_route(prefix("198.18.1.128/25")));
  EXPECT_EQ(dst_tag(run(udp4("198.18.0.1", "198.18.1.130")).output), 3);
  EXPECT_EQ(dst_tag(run(udp4("198.18.0.1", "198.18.1.200")).output), 5);

  ASSERT_OK(table_->add_route(prefix("::/0"), RouteTarget::next_hop("hop1")));
  ASSERT_OK(table_->add_route(prefix("2001:db8::/32"), RouteTarget::next_hop("hop2")));
  ASSERT_OK(table_->add_route(prefix("2001:db8:5::/48"), RouteTarget::next_hop("hop3")));
  ASSERT_OK(table_->add_route(prefix("2001:db8:5::7/128"), RouteTarget::next_hop("hop4")));
  EXPECT_EQ(dst_tag(run(udp6("2001:db8::1", "2001:db9::1")).output), 1);
  EXPECT_EQ(dst_tag(run(udp6("2001:db8::1", "2001:db8:4::1")).output), 2);
  EXPECT_EQ(dst_tag(run(udp6("2001:db8::1", "2001:db8:5::8")).output), 3);
  EXPECT_EQ(dst_tag(run(udp6("2001:db8::1", "2001:db8:5::7")).output), 4);
}
INSTANTIATE_TEST_SUITE_P(Dir24_8, LongestPrefix, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "dir24_8" : "trie"; });

TEST_F(ForwardStage, EcmpSpreadsFlowsByWeightAndKeepsEachFlowOnItsPath) {
  add_hops(4);
  ASSERT_OK(table_->add_group("even", {{"hop1", 1}, {"hop2", 1}, {"hop3", 1}, {"hop4", 1}}));
  ASSERT_OK(table_->add_route(prefix("198.18.8.0/24"), RouteTarget::group("even")));
  constexpr int kFlows = 4000;
  std::map<std::uint8_t, int> per_hop;
  std::map<std::uint16_t, std::uint8_t> path_of;
  for (int flow = 0; flow < kFlows; ++flow) {
    const auto sport = static_cast<std::uint16_t>(10000 + flow);
    const auto out = run(udp4("198.18.0.1", "198.18.8.8", 64, sport));
    ASSERT_EQ(out.verdict, XDP_REDIRECT);
    per_hop[dst_tag(out.output)]++;
    path_of[sport] = dst_tag(out.output);
  }
  ASSERT_EQ(per_hop.size(), 4u);
  for (const auto& [tag, n] : per_hop) EXPECT_NEAR(n, kFlows / 4, kFlows / 16) << "hop" << int(tag);
  // Stickiness: the same flows again take the same paths.
  for (int flow = 0; flow < kFlows; flow += 7) {
    const auto sport = static_cast<std::uint16_t>(10000 + flow);
    EXPECT_EQ(dst_tag(run(udp4("198.18.0.1", "198.18.8.8", 30, sport)).output), path_of[sport]);
  }
  // Weighted 1:3.
  ASSERT_OK(table_->add_group("weighted", {{"hop1", 1}, {"hop2", 3}}));
  ASSERT_OK(table_->replace_route(prefix("198.18.8.0/24"), RouteTarget::group("weighted")));
  per_hop.clear();
  for (int flow = 0; flow < kFlows; ++flow)
    per_hop[dst_tag(run(udp4("198.18.0.1", "198.18.8.8", 64, static_cast<std::uint16_t>(20000 + flow))).output)]++;
  ASSERT_EQ(per_hop.size(), 2u);
  EXPECT_NEAR(per_hop[1], kFlows / 4, kFlows / 20);
  EXPECT_NEAR(per_hop[2], 3 * kFlows / 4, kFlows / 20);
}

TEST_F(ForwardStage, FragmentsAreRoutedAndEveryFragmentOfADatagramTakesOnePath) {
  add_hops(4);
  ASSERT_OK(table_->add_group("even", {{"hop1", 1}, {"hop2", 1}, {"hop3", 1}, {"hop4", 1}}));
  ASSERT_OK(table_->add_route(prefix("198.18.8.0/24"), RouteTarget::group("even")));
  std::set<std::uint8_t> first_paths;
  for (std::uint16_t src = 1; src < 64; ++src) {
    const std::string from = "198.18.0." + std::to_string(src);
    const Bytes first = PacketBuilder()
                            .eth(kClientMac, kRouterMac)
                            .ipv4(from, "198.18.8.8", {.id = src, .more_fragments = true})
                            .udp(static_cast<std::uint16_t>(1000 + src), 53)
                            .payload(Bytes(64, 1))
                            .build();
    const Bytes later = PacketBuilder()
                            .eth(kClientMac, kRouterMac)
                            .ipv4(from, "198.18.8.8", {.id = src, .frag_offset_bytes = 72, .protocol_override = 17})
                            .payload(Bytes(40, 2))
                            .build();
    const auto a = run(first), b = run(later);
    ASSERT_EQ(a.verdict, XDP_REDIRECT);
    ASSERT_EQ(b.verdict, XDP_REDIRECT);
    EXPECT_EQ(dst_tag(a.output), dst_tag(b.output)) << from;
    first_paths.insert(dst_tag(a.output));
  }
  EXPECT_GT(first_paths.size(), 1u) << "sources still spread over the group";
}

// The quote and the ICMP answer of an expired IPv4 packet, checked field by field.
void expect_time_exceeded_v4(const Bytes& in, const RunResult& out, const char* icmp_source) {
  ASSERT_EQ(out.verdict, XDP_TX);
  const std::size_t orig_len = in.size() - kIp;
  const std::size_t quote = std::min<std::size_t>(orig_len, SLUICE_FWD_ICMP_QUOTE_MAX);
  ASSERT_EQ(out.output.size(), kIp + 28 + quote);
  EXPECT_EQ(mac_at(out.output, kEthDst), mac_of(kClientMac));
  EXPECT_EQ(mac_at(out.output, kEthSrc), mac_of(kRouterMac));
  const auto ip = std::span(out.output).subspan(kIp, 20);
  EXPECT_EQ(ip[0], 0x45);
  EXPECT_EQ((ip[2] << 8 | ip[3]), 28 + quote);
  EXPECT_EQ(ip[9], IPPROTO_ICMP);
  EXPECT_EQ(ipv4_checksum(ip), 0);
  const auto source = parse_ipv4(icmp_source);
  EXPECT_EQ(Bytes(ip.begin() + 12, ip.begin() + 16), Bytes(source.begin(), source.end()));
  EXPECT_EQ(Bytes(ip.begin() + 16, ip.begin() + 20), Bytes(in.begin() + 26, in.begin() + 30));  // to the sender
  const auto icmp = std::span(out.output).subspan(kIp + 20);
  EXPECT_EQ(icmp[0], 11);  // time exceeded
  EXPECT_EQ(icmp[1], 0);   // TTL exceeded in transit
  EXPECT_EQ(internet_checksum(icmp), 0) << "ICMP checksum wrong";
  EXPECT_EQ(Bytes(icmp.begin() + 8, icmp.end()), Bytes(in.begin() + kIp, in.begin() + static_cast<long>(kIp + quote)));
}

TEST_F(ForwardStage, ExpiredIpv4IsAnsweredWithTimeExceeded) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("198.18.1.0/24"), RouteTarget::next_hop("hop1")));
  ASSERT_OK(table_->set_icmp({.rate_per_sec = 1000, .burst = 1000, .source_v4 = parse_ipv4("198.18.0.254")}));
  const auto before = packets(SLUICE_VERDICT_TX, SLUICE_REASON_FWD_TTL_EXCEEDED);
  for (std::uint8_t ttl : {0, 1}) {
    const Bytes frame = udp4("198.18.0.1", "198.18.1.5", ttl);
    expect_time_exceeded_v4(frame, run(frame), "198.18.0.254");
  }
  // An odd-length datagram, and one longer than the quote.
  const Bytes odd = PacketBuilder().eth(kClientMac, kRouterMac).ipv4("198.18.0.1", "198.18.1.5", {.ttl = 1}).udp(1, 2).payload("odd").build();
  expect_time_exceeded_v4(odd, run(odd), "198.18.0.254");
  const Bytes big = PacketBuilder().eth(kClientMac, kRouterMac).ipv4("198.18.0.1", "198.18.1.5", {.ttl = 1}).udp(1, 2).payload(Bytes(900, 7)).build();
  expect_time_exceeded_v4(big, run(big), "198.18.0.254");
  EXPECT_EQ(packets(SLUICE_VERDICT_TX, SLUICE_REASON_FWD_TTL_EXCEEDED), before + 4);
}

TEST_F(ForwardStage, ExpiredIpv6IsAnsweredWithTimeExceeded) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("2001:db8:1::/48"), RouteTarget::next_hop("hop1")));
  ASSERT_OK(table_->set_icmp({.rate_per_sec = 1000, .burst = 1000, .source_v6 = parse_ipv6("2001:db8::fe")}));
  const Bytes frame = udp6("2001:db8::1", "2001:db8:1::5", 1);
  const auto out = run(frame);
  ASSERT_EQ(out.verdict, XDP_TX);
  const std::size_t quote = std::min<std::size_t>(frame.size() - kIp, SLUICE_FWD_ICMP_QUOTE_MAX);
  ASSERT_EQ(out.output.size(), kIp + 48 + quote);
  EXPECT_EQ(mac_at(out.output, kEthDst), mac_of(kClientMac));
  const auto ip6 = std::span(out.output).subspan(kIp, 40);
  EXPECT_EQ(ip6[0] >> 4, 6);
  EXPECT_EQ((ip6[4] << 8 | ip6[5]), 8 + quote);
  EXPECT_EQ(ip6[6], IPPROTO_ICMPV6);
  const auto src = parse_ipv6("2001:db8::fe");
  EXPECT_TRUE(std::equal(src.begin(), src.end(), ip6.begin() + 8));
  EXPECT_TRUE(std::equal(frame.begin() + 22, frame.begin() + 38, ip6.begin() + 24));  // to the sender
  const auto icmp6 = std::span(out.output).subspan(kIp + 40);
  EXPECT_EQ(icmp6[0], 3);
  EXPECT_EQ(icmp6[1], 0);
  // Checksum with the pseudo header: addresses, length, next header.
  std::uint64_t sum = checksum_add(ip6.subspan(8, 32));
  const std::uint8_t tail[8] = {0, 0, static_cast<std::uint8_t>(icmp6.size() >> 8), static_cast<std::uint8_t>(icmp6.size()), 0, 0, 0, IPPROTO_ICMPV6};
  sum = checksum_add(tail, sum);
  EXPECT_EQ(internet_checksum(icmp6, sum), 0) << "ICMPv6 checksum wrong";
  EXPECT_TRUE(std::equal(icmp6.begin() + 8, icmp6.end(), frame.begin() + kIp));
}

TEST_F(ForwardStage, TimeExceededIsRateLimitedAndNeverAboutErrors) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("198.18.1.0/24"), RouteTarget::next_hop("hop1")));
  // No source configured: never answered.
  const auto dropped = packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_TTL_EXCEEDED);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.1.5", 1)).verdict, XDP_DROP);
  EXPECT_EQ(event(SLUICE_FWD_EVENT_ICMP_NO_SOURCE), 1u);
  // A burst of 3 at 1/s: a flood of 50 gets 3 answers (test runs are one CPU each... so 3 per CPU at most).
  ASSERT_OK(table_->set_icmp({.rate_per_sec = 1, .burst = 3, .source_v4 = parse_ipv4("198.18.0.254")}));
  int answered = 0;
  for (int i = 0; i < 50; ++i) answered += run(udp4("198.18.0.1", "198.18.1.5", 1)).verdict == XDP_TX;
  const int cpus = libbpf_num_possible_cpus();
  EXPECT_GE(answered, 3);
  EXPECT_LE(answered, 3 * cpus + 1);  // +1: a refill tick during the loop
  EXPECT_GE(event(SLUICE_FWD_EVENT_ICMP_RATE_LIMITED), static_cast<std::uint64_t>(50 - answered));
  // An ICMP error whose TTL ran out gets no error back.
  ASSERT_OK(table_->set_icmp({.rate_per_sec = 1000, .burst = 1000, .source_v4 = parse_ipv4("198.18.0.254")}));
  const Bytes error = PacketBuilder().eth(kClientMac, kRouterMac).ipv4("198.18.0.1", "198.18.1.5", {.ttl = 1}).icmp(3, 1).payload(Bytes(28, 0)).build();
  EXPECT_EQ(run(error).verdict, XDP_DROP);
  EXPECT_EQ(event(SLUICE_FWD_EVENT_ICMP_SUPPRESSED), 1u);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_TTL_EXCEEDED), dropped + 1 + (50 - answered) + 1);
}

TEST_F(ForwardStage, NoRouteTakesTheConfiguredVerdict) {
  const auto passed = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_NO_ROUTE);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.1.5")).verdict, XDP_PASS);
  EXPECT_EQ(run(udp6("2001:db8::1", "2001:db8:1::5")).verdict, XDP_PASS);
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_NO_ROUTE), passed + 2);
  ASSERT_OK(table_->set_no_route_verdict(SLUICE_VERDICT_DROP));
  const auto dropped = packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_NO_ROUTE);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.1.5")).verdict, XDP_DROP);
  EXPECT_EQ(run(udp6("2001:db8::1", "2001:db8:1::5")).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_NO_ROUTE), dropped + 2);
  EXPECT_FALSE(table_->set_no_route_verdict(SLUICE_VERDICT_TX));
  EXPECT_EQ(table_->settings().no_route_verdict, SLUICE_VERDICT_DROP);
}

TEST_F(ForwardStage, LocalTrafficGoesToTheStackThroughTheCpumapOrPass) {
  ASSERT_OK(table_->add_route(prefix("198.18.0.2/32"), RouteTarget::to_stack()));
  ASSERT_OK(table_->add_route(prefix("2001:db8::2/128"), RouteTarget::to_stack()));
  const auto passed = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_TO_STACK);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.0.2", 1)).verdict, XDP_PASS) << "TTL 1 to the box is delivered";
  EXPECT_EQ(run(udp6("2001:db8::1", "2001:db8::2")).verdict, XDP_PASS);
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_TO_STACK), passed + 2);
  ASSERT_OK(table_->set_cpumap({.cpus = {0}, .queue_size = 256}));
  const auto redirected = packets(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_TO_STACK);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.0.2")).verdict, XDP_REDIRECT);
  EXPECT_EQ(packets(SLUICE_VERDICT_REDIRECT, SLUICE_REASON_FWD_TO_STACK), redirected + 1);
  ASSERT_OK(table_->set_cpumap({.cpus = {}}));
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.0.2")).verdict, XDP_PASS);
}

TEST_F(ForwardStage, PacketsARouterMustNotRouteAreLeftToTheKernel) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("0.0.0.0/0"), RouteTarget::next_hop("hop1")));
  ASSERT_OK(table_->add_route(prefix("::/0"), RouteTarget::next_hop("hop1")));
  const auto before = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_NOT_ROUTABLE);
  const std::vector<Bytes> frames = {
      udp4("198.18.0.1", "224.0.0.5"), udp4("198.18.0.1", "255.255.255.255"), udp4("198.18.0.1", "169.254.1.1"),
      udp4("169.254.1.1", "198.18.1.1"), udp4("198.18.0.1", "127.0.0.1"), udp4("0.0.0.0", "198.18.1.1"),
      udp6("2001:db8::1", "ff02::1"), udp6("2001:db8::1", "fe80::1"), udp6("fe80::1", "2001:db8:1::1"),
      PacketBuilder().eth(kClientMac, kRouterMac).vlan(10).ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build(),
      PacketBuilder().eth(kClientMac, kRouterMac).ipv4("198.18.0.1", "198.18.1.1", {.options = {7, 7, 4}}).udp(1, 2).build(),
      PacketBuilder().eth(kClientMac, kRouterMac).ipv6("2001:db8::1", "2001:db8:1::1").ipv6_hop_by_hop().udp(1, 2).build(),
      // Sent to the segment, not to this router: a flooded or broadcast frame routed would arrive twice.
      PacketBuilder().eth(kClientMac, "ff:ff:ff:ff:ff:ff").ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build(),
      PacketBuilder().eth(kClientMac, "01:00:5e:00:00:05").ipv4("198.18.0.1", "198.18.1.1").udp(1, 2).build(),
      PacketBuilder().eth(kClientMac, "33:33:00:00:00:01").ipv6("2001:db8::1", "2001:db8:1::1").udp(1, 2).build(),
  };
  for (std::size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(run(frames[i]).verdict, XDP_PASS) << "frame " << i;
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FWD_NOT_ROUTABLE), before + frames.size());
}

TEST_F(ForwardStage, MalformedAndTruncatedFramesAreNeverRouted) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("0.0.0.0/0"), RouteTarget::next_hop("hop1")));
  ASSERT_OK(table_->add_route(prefix("::/0"), RouteTarget::next_hop("hop1")));
  const Bytes good4 = udp4("198.18.0.1", "198.18.1.5"), good6 = udp6("2001:db8::1", "2001:db8:1::5");
  // BPF_PROG_TEST_RUN refuses frames shorter than Ethernet.
  for (std::size_t len = ETH_HLEN; len < good4.size(); ++len) {
    const Bytes cut(good4.begin(), good4.begin() + static_cast<long>(len));
    EXPECT_NE(run(cut).verdict, XDP_REDIRECT) << "IPv4 cut to " << len;
  }
  for (std::size_t len = ETH_HLEN; len < good6.size(); ++len) {
    const Bytes cut(good6.begin(), good6.begin() + static_cast<long>(len));
    EXPECT_NE(run(cut).verdict, XDP_REDIRECT) << "IPv6 cut to " << len;
  }
  const Bytes bad_len = PacketBuilder().eth(kClientMac, kRouterMac).ipv4("198.18.0.1", "198.18.1.5", {.total_length_override = 400}).udp(1, 2).build();
  EXPECT_EQ(run(bad_len).verdict, XDP_DROP);
}

// Map values only a corrupt (or hostile) writer leaves: dropped as corrupt state, never sent somewhere.
TEST_F(ForwardStage, CorruptMapValuesFailClosed) {
  add_hops(1);
  ASSERT_OK(table_->add_group("g", {{"hop1", 1}}));
  const int routes = map_fd("fwd_routes_v4");
  auto plant = [&](const char* dst_prefix, std::uint32_t value) {
    auto key = std::get<sluice_lpm_v4_key>(prefix(dst_prefix));
    ASSERT_EQ(bpf_map_update_elem(routes, &key, &value, BPF_ANY), 0);
  };
  plant("198.18.10.0/24", SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_NEXTHOP, 4000, 0));   // a free next-hop slot
  plant("198.18.11.0/24", SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_NEXTHOP, 0, 0));      // next hop 0
  plant("198.18.12.0/24", SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_GROUP, 900, 0));      // a free group slot
  plant("198.18.13.0/24", SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_NEXTHOP, 1, 0) | 0x40000000u);  // reserved bit
  plant("198.18.14.0/24", 0xffffffffu);
  // A group whose bucket names a next-hop id beyond the table, and one with too many members.
  sluice_fwd_group bad_group{};
  bad_group.member_count = 1;
  std::fill(std::begin(bad_group.bucket), std::end(bad_group.bucket), std::uint16_t{SLUICE_FWD_MAX_NEXTHOPS});
  std::uint32_t gid = 901;
  ASSERT_EQ(bpf_map_update_elem(map_fd("fwd_groups"), &gid, &bad_group, BPF_ANY), 0);
  plant("198.18.15.0/24", SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_GROUP, 901, 0));
  bad_group.member_count = SLUICE_FWD_GROUP_MAX_MEMBERS + 1;
  gid = 902;
  ASSERT_EQ(bpf_map_update_elem(map_fd("fwd_groups"), &gid, &bad_group, BPF_ANY), 0);
  plant("198.18.16.0/24", SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_GROUP, 902, 0));
  // A next hop whose port is beyond the devmap.
  sluice_fwd_nexthop bad_hop{.ifindex = 1, .port = SLUICE_FWD_MAX_PORTS, .src_mac = {2}, .dst_mac = {2}, .pad = 0};
  std::uint32_t nid = 3000;
  ASSERT_EQ(bpf_map_update_elem(map_fd("fwd_nexthops"), &nid, &bad_hop, BPF_ANY), 0);
  plant("198.18.17.0/24", SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_NEXTHOP, 3000, 0));
  const auto before = packets(SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE);
  int n = 0;
  for (int net = 10; net <= 17; ++net, ++n) {
    const std::string dst = "198.18." + std::to_string(net) + ".1";
    EXPECT_EQ(run(udp4("198.18.0.1", dst.c_str())).verdict, XDP_DROP) << dst;
  }
  // cpumap settings out of range.
  ASSERT_OK(table_->add_route(prefix("198.18.0.2/32"), RouteTarget::to_stack()));
  sluice_fwd_settings bad = table_->settings();
  bad.cpu_count = SLUICE_FWD_MAX_CPUS + 1;
  std::uint32_t zero = 0;
  ASSERT_EQ(bpf_map_update_elem(map_fd("fwd_settings"), &zero, &bad, BPF_ANY), 0);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.0.2")).verdict, XDP_DROP);
  bad.cpu_count = 1;
  bad.cpus[0] = SLUICE_FWD_MAX_CPUS;
  ASSERT_EQ(bpf_map_update_elem(map_fd("fwd_settings"), &zero, &bad, BPF_ANY), 0);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.0.2")).verdict, XDP_DROP);
  bad = table_->settings();
  bad.no_route_verdict = SLUICE_VERDICT_TX;
  ASSERT_EQ(bpf_map_update_elem(map_fd("fwd_settings"), &zero, &bad, BPF_ANY), 0);
  EXPECT_EQ(run(udp4("198.18.0.1", "203.0.113.1")).verdict, XDP_DROP) << "a no-route verdict of TX is not obeyed";
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_CORRUPT_STATE), before + n + 3);
}

TEST_F(ForwardStage, AnEmptyDevmapSlotIsARedirectFailure) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("198.18.1.0/24"), RouteTarget::next_hop("hop1")));
  auto hops = table_->list_next_hops();
  ASSERT_TRUE(hops);
  sluice_fwd_nexthop hop{};
  std::uint32_t id = hops->front().id;
  ASSERT_EQ(bpf_map_lookup_elem(map_fd("fwd_nexthops"), &id, &hop), 0);
  ASSERT_EQ(bpf_map_delete_elem(map_fd("fwd_ports"), &hop.port), 0);
  const auto before = packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_REDIRECT_FAILED);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.1.5")).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FWD_REDIRECT_FAILED), before + 1);
}

// Before anyone configured routing (fwd_settings never written, as on every
// box running the filter alone), the stage hands packets on untouched: the
// pipeline end's verdict and the filter's note are what they were before the
// stage existed.
TEST_F(ForwardStage, AnUnconfiguredStageLeavesThePipelineEndAlone) {
  add_hops(1);
  ASSERT_OK(table_->add_route(prefix("0.0.0.0/0"), RouteTarget::next_hop("hop1")));
  std::uint32_t zero = 0;
  const sluice_fwd_settings never_written{};
  ASSERT_EQ(bpf_map_update_elem(map_fd("fwd_settings"), &zero, &never_written, BPF_ANY), 0);
  const auto passed = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.1.5")).verdict, XDP_PASS) << "not routed while unconfigured";
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END), passed + 1);
  auto config = dataplane::default_config();
  config.end_verdict = SLUICE_VERDICT_DROP;
  ASSERT_OK(plane_->set_config(config));
  const auto dropped = packets(SLUICE_VERDICT_DROP, SLUICE_REASON_PIPELINE_END);
  EXPECT_EQ(run(udp4("198.18.0.1", "198.18.1.5")).verdict, XDP_DROP);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_PIPELINE_END), dropped + 1);
}

}  // namespace
}  // namespace sluice::test
