// Pure parts of the filter: find-first-set, rule validation, the bitmap
// compiler against the linear rule semantics, the model's parser.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <bit>
#include <random>

#include "filter_bits.h"
#include "filter_compile.hpp"
#include "filter_model.hpp"
#include "packet_builder.hpp"

namespace sluice::test {
namespace {

TEST(FilterBits, DeBruijnFindsTheLowestSetBitOfEveryWord) {
  constexpr std::uint8_t table[64] = SLUICE_DEBRUIJN64_TABLE;
  std::mt19937_64 rng(7);
  for (int bit = 0; bit < 64; ++bit) {
    for (int trial = 0; trial < 64; ++trial) {
      // random bits above `bit`, `bit` set, nothing below
      const std::uint64_t word = (rng() << bit) | (std::uint64_t{1} << bit);
      ASSERT_EQ(table[SLUICE_DEBRUIJN64_SLOT(word)], std::countr_zero(word)) << std::hex << word;
    }
  }
}

TEST(FilterCompile, PortIntervalsSplitAtEveryRangeEdge) {
  filter::RuleSet set;
  filter::FilterRule a;
  a.priority = 1;
  a.dst_ports = filter::PortRange{10, 20};
  filter::FilterRule b;
  b.priority = 2;
  b.dst_ports = filter::PortRange{15, 65535};
  set.rules = {a, b};
  const auto c = filter::compile(set);
  const auto& bounds = *c.port_bounds[SLUICE_FILTER_PORT_DST];
  ASSERT_EQ(bounds.count, 4u);  // [0,9] [10,14] [15,20] [21,65535]
  EXPECT_EQ(bounds.start[1], 10);
  EXPECT_EQ(bounds.start[2], 15);
  EXPECT_EQ(bounds.start[3], 21);
  EXPECT_EQ(c.port_bitmaps[SLUICE_FILTER_PORT_DST][0].word[0], 0u);
  EXPECT_EQ(c.port_bitmaps[SLUICE_FILTER_PORT_DST][1].word[0], 1u);
  EXPECT_EQ(c.port_bitmaps[SLUICE_FILTER_PORT_DST][2].word[0], 3u);
  EXPECT_EQ(c.port_bitmaps[SLUICE_FILTER_PORT_DST][3].word[0], 2u);
  EXPECT_EQ(c.any[SLUICE_FILTER_ANY_PORTS].word[0], 0u) << "both rules constrain ports";
  EXPECT_EQ(c.port_bounds[SLUICE_FILTER_PORT_SRC]->count, 1u);
  EXPECT_EQ(c.port_bitmaps[SLUICE_FILTER_PORT_SRC][0].word[0], 3u);
}

// What packets read: the direct index names, for every port, the interval
// the search over the starts would find (the last k with start[k] <= port).
TEST(FilterCompile, PortIndexNamesEveryPortsInterval) {
  filter::RuleSet set;
  for (std::uint16_t i = 0; i < 3; ++i) {
    filter::FilterRule r;
    r.priority = i;
    r.dst_ports = filter::PortRange{static_cast<std::uint16_t>(1000 * i + 1), static_cast<std::uint16_t>(1000 * i + 500)};
    r.src_ports = filter::PortRange{static_cast<std::uint16_t>(65535 - i), 65535};
    set.rules.push_back(r);
  }
  const auto c = filter::compile(set);
  for (int dir = 0; dir < SLUICE_FILTER_PORT_DIRS; ++dir) {
    const auto& bounds = *c.port_bounds[dir];
    const auto& index = *c.port_index[dir];
    std::uint32_t k = 0;
    for (std::uint32_t port = 0; port < SLUICE_FILTER_PORT_SPACE; ++port) {
      while (k + 1 < bounds.count && bounds.start[k + 1] <= port) ++k;
      ASSERT_EQ(index.interval[port], k) << "dir " << dir << " port " << port;
    }
    EXPECT_EQ(k + 1, bounds.count) << "the last port lies in the last interval";
  }
  EXPECT_EQ(c.port_index[SLUICE_FILTER_PORT_DST]->interval[1000], 2u);  // [0] [1,500] [501,1000] ...
  EXPECT_EQ(c.port_index[SLUICE_FILTER_PORT_SRC]->interval[65535], 3u);
}

// The header names the lookups whose structure is empty (their answer is
// known), and only those: a set from before the field read 0 = look up all.
TEST(FilterCompile, SkipLookupsNamesExactlyTheFieldsNoRuleConstrains) {
  filter::RuleSet set;
  filter::FilterRule web;
  web.priority = 1;
  web.dst = *maps::parse_prefix("198.19.0.0/16");
  web.protocol = IPPROTO_TCP;
  web.dst_ports = filter::PortRange{80, 80};
  set.rules = {web};
  auto c = filter::compile(set);
  EXPECT_EQ(c.header.skip_lookups, SLUICE_FILTER_SKIP_SRC_V4 | SLUICE_FILTER_SKIP_SRC_V6 | SLUICE_FILTER_SKIP_DST_V6 |
                                       SLUICE_FILTER_SKIP_IFINDEX | SLUICE_FILTER_SKIP_SPORT);
  filter::FilterRule other;
  other.priority = 2;
  other.src = *maps::parse_prefix("2001:db8::/32");
  other.ifindex = 7;
  other.src_ports = filter::PortRange{1024, 65535};
  set.rules.push_back(other);
  c = filter::compile(set);
  EXPECT_EQ(c.header.skip_lookups, SLUICE_FILTER_SKIP_SRC_V4 | SLUICE_FILTER_SKIP_DST_V6);
  EXPECT_EQ(filter::compile(filter::RuleSet{}).header.skip_lookups,
            SLUICE_FILTER_SKIP_SRC_V4 | SLUICE_FILTER_SKIP_DST_V4 | SLUICE_FILTER_SKIP_SRC_V6 |
                SLUICE_FILTER_SKIP_DST_V6 | SLUICE_FILTER_SKIP_IFINDEX | SLUICE_FILTER_SKIP_SPORT |
                SLUICE_FILTER_SKIP_DPORT);
}

TEST(FilterCompile, NestedPrefixBitmapsCarryEveryCoveringRule) {
  filter::RuleSet set;
  filter::FilterRule wide, narrow, none, v6;
  wide.priority = 1;
  wide.src = *maps::parse_prefix("198.18.0.0/15");
  narrow.priority = 2;
  narrow.src = *maps::parse_prefix("198.18.4.0/24");
  none.priority = 3;
  v6.priority = 4;
  v6.dst = *maps::parse_prefix("2001:db8::/32");
  set.rules = {v6, none, narrow, wide};
  const auto c = filter::compile(set);
  ASSERT_EQ(c.src_v4.size(), 2u);
  for (const auto& [key, bitmap] : c.src_v4) {
    const std::uint32_t len = key.prefixlen - SLUICE_FILTER_GEN_PREFIX_BITS;
    EXPECT_EQ(bitmap.word[0], len == 24 ? 0b0111u : 0b0101u) << len;
  }
  EXPECT_EQ(c.any[SLUICE_FILTER_ANY_SRC_V4].word[0], 0b0100u) << "only the rule without prefixes; the v6 rule is out";
  EXPECT_EQ(c.any[SLUICE_FILTER_ANY_SRC_V6].word[0], 0b1100u);
}

TEST(FilterModel, ParserAgreesWithTheEntryProgramOnFieldsAndReasons) {
  const Bytes tcp = PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02").vlan(7).ipv4("198.18.0.1", "198.18.1.1")
                        .tcp(1234, 80, {.flags = TcpFlags::SYN | TcpFlags::ACK}).build();
  auto parsed = filter::model::parse(tcp);
  ASSERT_EQ(parsed.reason, filter::model::kParseOk);
  EXPECT_EQ(parsed.pkt.sport, 1234);
  EXPECT_EQ(parsed.pkt.dport, 80);
  EXPECT_EQ(parsed.pkt.tcp_flags, TcpFlags::SYN | TcpFlags::ACK);
  EXPECT_EQ(parsed.pkt.vlan_id[0], 7);
  EXPECT_EQ(parsed.pkt.has_l4, 1);
  Bytes cut = tcp;
  cut.resize(cut.size() - 4);
  EXPECT_EQ(filter::model::parse(cut).reason, SLUICE_REASON_IPV4_BAD_TOTLEN);
}

TEST(FilterRules, ValidationNamesTheFieldAndValue) {
  filter::RuleSet set;
  filter::FilterRule r;
  r.priority = 3;
  r.tcp_flags = filter::TcpFlagMatch{0x02, 0x12};
  set.rules = {r};
  auto checked = filter::validate(set);
  ASSERT_FALSE(checked);
  EXPECT_NE(checked.error().message.find("tcp_flags value 18"), std::string::npos) << checked.error().message;
  filter::RateClass c;
  c.id = 64;
  EXPECT_FALSE(filter::validate(c));
  c.id = 1;
  c.packets_per_sec = 10;
  EXPECT_FALSE(filter::validate(c)) << "a rate without burst passes nothing";
  c.packet_burst = 5;
  EXPECT_TRUE(filter::validate(c));
  set.rules.clear();
  set.prefixes = {{*maps::parse_prefix("198.18.0.0/24")}, {*maps::parse_prefix("198.18.0.0/24")}};
  checked = filter::validate(set);
  ASSERT_FALSE(checked);
  EXPECT_NE(checked.error().message.find("listed twice"), std::string::npos);
  EXPECT_TRUE(filter::parse_protocol("icmpv6"));
  EXPECT_FALSE(filter::parse_protocol("256"));
  EXPECT_FALSE(filter::parse_port_range("65536"));
  EXPECT_FALSE(filter::parse_action("reject"));
}

}  // namespace
}  // namespace sluice::test
