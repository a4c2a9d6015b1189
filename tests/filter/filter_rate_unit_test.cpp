// Pure parts of rate classes: the source masks the data plane keys buckets
// with, their validation, and what the compiler writes for the data plane.
#include <gtest/gtest.h>
#include <arpa/inet.h>

#include <cstring>
#include <random>

#include "filter_compile.hpp"

namespace sluice::test {
namespace {

std::string validation_error(const filter::RateClass& c) {
  auto checked = filter::validate(c);
  return checked ? std::string("(valid)") : checked.error().message;
}

TEST(FilterRateClass, SourceMasksCutTheAddressToThePrefixLength) {
  EXPECT_EQ(filter::v4_source_mask(32), htonl(0xffffffffu));
  EXPECT_EQ(filter::v4_source_mask(24), htonl(0xffffff00u));
  EXPECT_EQ(filter::v4_source_mask(1), htonl(0x80000000u));
  EXPECT_EQ(filter::v4_source_mask(0), 0u);
  using Mask = std::array<std::uint32_t, 4>;
  EXPECT_EQ(filter::v6_source_mask(64), (Mask{~0u, ~0u, 0, 0}));
  EXPECT_EQ(filter::v6_source_mask(128), (Mask{~0u, ~0u, ~0u, ~0u}));
  EXPECT_EQ(filter::v6_source_mask(0), (Mask{0, 0, 0, 0}));
  EXPECT_EQ(filter::v6_source_mask(65), (Mask{~0u, ~0u, htonl(0x80000000u), 0}));
  EXPECT_EQ(filter::v6_source_mask(100), (Mask{~0u, ~0u, ~0u, htonl(0xf0000000u)}));
  EXPECT_EQ(filter::v6_source_mask(31), (Mask{htonl(0xfffffffeu), 0, 0, 0}));
}

// The masked address is the network of the address at that length: it
// contains the address, and nothing past the length survives.
TEST(FilterRateClass, MaskedSourceIsTheNetworkOfItsPrefix) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::uint32_t len = rng() % 129;
    std::uint32_t addr[4], masked[4];
    for (auto& word : addr) word = rng();
    const auto mask = filter::v6_source_mask(len);
    for (int i = 0; i < 4; ++i) masked[i] = addr[i] & mask[i];
    sluice_lpm_v6_key net{};
    net.prefixlen = len;
    std::memcpy(net.addr, masked, sizeof(net.addr));
    const maps::Prefix prefix = net;
    ASSERT_TRUE(filter::contains(prefix, reinterpret_cast<const std::uint8_t*>(addr), 6)) << "/" << len;
    // masked == the canonical network: every bit past len is zero
    auto canonical = maps::parse_prefix(maps::to_string(prefix));
    ASSERT_TRUE(canonical);
    ASSERT_TRUE(filter::same_prefix(*canonical, prefix)) << maps::to_string(prefix);
  }
  for (int trial = 0; trial < 500; ++trial) {
    const std::uint32_t len = rng() % 33;
    const std::uint32_t addr = rng();
    sluice_lpm_v4_key net{};
    net.prefixlen = len;
    const std::uint32_t masked = addr & filter::v4_source_mask(len);
    std::memcpy(net.addr, &masked, sizeof(net.addr));
    const maps::Prefix prefix = net;
    ASSERT_TRUE(filter::contains(prefix, reinterpret_cast<const std::uint8_t*>(&addr), 4)) << "/" << len;
    auto canonical = maps::parse_prefix(maps::to_string(prefix));
    ASSERT_TRUE(canonical);
    ASSERT_TRUE(filter::same_prefix(*canonical, prefix)) << maps::to_string(prefix);
  }
}

TEST(FilterRateClass, DefaultsAreASlash32AndASlash64WithoutAggregate) {
  const filter::RateClass c;
  EXPECT_EQ(c.v4_prefix_len, 32u);
  EXPECT_EQ(c.v6_prefix_len, 64u);
  EXPECT_FALSE(c.has_aggregate());
}

TEST(FilterRateClass, ValidationNamesTheFieldAndValue) {
  filter::RateClass c{.id = 1, .packets_per_sec = 10, .packet_burst = 10};
  EXPECT_EQ(validation_error(c), "(valid)");
  c.v4_prefix_len = 33;
  EXPECT_NE(validation_error(c).find("v4_prefix_len 33: must be 0..32"), std::string::npos) << validation_error(c);
  c.v4_prefix_len = 0;
  EXPECT_EQ(validation_error(c), "(valid)");
  c.v6_prefix_len = 129;
  EXPECT_NE(validation_error(c).find("v6_prefix_len 129: must be 0..128"), std::string::npos) << validation_error(c);
  c.v6_prefix_len = 128;
  EXPECT_EQ(validation_error(c), "(valid)");

  c.aggregate_packets_per_sec = 100;
  EXPECT_NE(validation_error(c).find("aggregate_packet_burst 0 with an aggregate packet rate"), std::string::npos);
  c.aggregate_packet_burst = 100;
  EXPECT_EQ(validation_error(c), "(valid)");
  EXPECT_TRUE(c.has_aggregate());
  c.aggregate_packets_per_sec = filter::kMaxPacketsPerSec + 1;
  EXPECT_NE(validation_error(c).find("aggregate_packets_per_sec 1000000001 too large"), std::string::npos);
  c.aggregate_packets_per_sec = 0;
  EXPECT_NE(validation_error(c).find("aggregate_packet_burst 100 without aggregate_packets_per_sec"), std::string::npos);
  c.aggregate_packet_burst = 0;
  c.aggregate_bytes_per_sec = 1000;
  EXPECT_NE(validation_error(c).find("aggregate_byte_burst 0 with an aggregate byte rate"), std::string::npos);
  c.aggregate_byte_burst = filter::kMaxByteBurst + 1;
  EXPECT_NE(validation_error(c).find("aggregate_byte_burst 10000000001 too large"), std::string::npos);
  c.aggregate_byte_burst = 1000;
  EXPECT_EQ(validation_error(c), "(valid)");
  c.aggregate_bytes_per_sec = 0;
  EXPECT_NE(validation_error(c).find("aggregate_byte_burst 1000 without aggregate_bytes_per_sec"), std::string::npos);
}

TEST(FilterRateClass, CompiledClassCarriesTheMasksAndTheAggregate) {
  filter::RuleSet set;
  filter::RateClass c{.id = 9, .packets_per_sec = 10, .packet_burst = 20, .bytes_per_sec = 3000, .byte_burst = 4000};
  c.v4_prefix_len = 24;
  c.v6_prefix_len = 48;
  c.aggregate_packets_per_sec = 500;
  c.aggregate_packet_burst = 600;
  c.aggregate_bytes_per_sec = 70000;
  c.aggregate_byte_burst = 80000;
  set.rate_classes = {c, filter::RateClass{.id = 2, .packets_per_sec = 1, .packet_burst = 1}};
  ASSERT_TRUE(filter::validate(set));
  const auto compiled = filter::compile(set);
  const sluice_filter_rate_class& wire = compiled.rate_classes[9];
  EXPECT_EQ(wire.defined, 1u);
  EXPECT_EQ(wire.source.packets_per_sec, 10u);
  EXPECT_EQ(wire.source.packet_burst, 20u);
  EXPECT_EQ(wire.source.bytes_per_sec, 3000u);
  EXPECT_EQ(wire.source.byte_burst, 4000u);
  EXPECT_EQ(wire.aggregate.packets_per_sec, 500u);
  EXPECT_EQ(wire.aggregate.packet_burst, 600u);
  EXPECT_EQ(wire.aggregate.bytes_per_sec, 70000u);
  EXPECT_EQ(wire.aggregate.byte_burst, 80000u);
  EXPECT_EQ(wire.v4_source_mask, htonl(0xffffff00u));
  EXPECT_EQ(wire.v6_source_mask[0], ~0u);
  EXPECT_EQ(wire.v6_source_mask[1], htonl(0xffff0000u));
  EXPECT_EQ(wire.v6_source_mask[2], 0u);
  EXPECT_EQ(wire.v6_source_mask[3], 0u);
  // Defaults: /32 and /64, no aggregate.
  const sluice_filter_rate_class& plain = compiled.rate_classes[2];
  EXPECT_EQ(plain.v4_source_mask, ~0u);
  EXPECT_EQ(plain.v6_source_mask[1], ~0u);
  EXPECT_EQ(plain.v6_source_mask[2], 0u);
  EXPECT_EQ(plain.aggregate.packets_per_sec, 0u);
  EXPECT_EQ(plain.aggregate.bytes_per_sec, 0u);
  EXPECT_EQ(compiled.rate_classes[3].defined, 0u);
}

}  // namespace
}  // namespace sluice::test
