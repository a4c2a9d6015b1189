#include "prefix.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::maps {
namespace {

struct GoodPrefix {
  std::string text;
  std::string canonical;
  unsigned prefixlen;
  std::vector<std::uint8_t> addr;
};

class ParsePrefixGood : public ::testing::TestWithParam<GoodPrefix> {};

TEST_P(ParsePrefixGood, ParsesToContractKey) {
  const GoodPrefix& want = GetParam();
  auto parsed = parse_prefix(want.text);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(to_string(*parsed), want.canonical);
  std::visit(
      [&](const auto& key) {
        EXPECT_EQ(key.prefixlen, want.prefixlen);
        ASSERT_EQ(sizeof(key.addr), want.addr.size());
        EXPECT_EQ(std::vector<std::uint8_t>(key.addr, key.addr + sizeof(key.addr)), want.addr);
      },
      *parsed);
  // Canonical text parses back to itself.
  auto again = parse_prefix(want.canonical);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(to_string(*again), want.canonical);
}

std::vector<std::uint8_t> v6(std::initializer_list<std::uint8_t> head) {
  std::vector<std::uint8_t> bytes(16, 0);
  std::copy(head.begin(), head.end(), bytes.begin());
  return bytes;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParsePrefixGood,
    ::testing::Values(
        GoodPrefix{"198.18.0.0/15", "198.18.0.0/15", 15, {198, 18, 0, 0}},
        GoodPrefix{"10.0.0.0/8", "10.0.0.0/8", 8, {10, 0, 0, 0}},
        GoodPrefix{"0.0.0.0/0", "0.0.0.0/0", 0, {0, 0, 0, 0}},
        GoodPrefix{"192.0.2.1/32", "192.0.2.1/32", 32, {192, 0, 2, 1}},
        GoodPrefix{"192.0.2.1", "192.0.2.1/32", 32, {192, 0, 2, 1}},  // bare address: host route
        GoodPrefix{"255.255.255.255/32", "255.255.255.255/32", 32, {255, 255, 255, 255}},
        GoodPrefix{"192.0.2.128/25", "192.0.2.128/25", 25, {192, 0, 2, 128}},
        GoodPrefix{"0.0.0.0", "0.0.0.0/32", 32, {0, 0, 0, 0}},
        GoodPrefix{"2001:db8::/32", "2001:db8::/32", 32, v6({0x20, 0x01, 0x0d, 0xb8})},
        GoodPrefix{"2001:DB8::/32", "2001:db8::/32", 32, v6({0x20, 0x01, 0x0d, 0xb8})},
        GoodPrefix{"::/0", "::/0", 0, v6({})},
        GoodPrefix{"::1", "::1/128", 128, v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})},
        GoodPrefix{"2001:db8:0:0:0:0:0:1/128", "2001:db8::1/128", 128,
                   v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})},
        GoodPrefix{"fe80::/10", "fe80::/10", 10, v6({0xfe, 0x80})},
        GoodPrefix{"::ffff:192.0.2.0/120", "::ffff:192.0.2.0/120", 120,
                   v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 0})},
        GoodPrefix{"2001:db8:8000::/33", "2001:db8:8000::/33", 33, v6({0x20, 0x01, 0x0d, 0xb8, 0x80})}));

struct BadPrefix {
  std::string text;
  std::string reason;  // expected in the message after "bad prefix '<text>': "
};

class ParsePrefixBad : public ::testing::TestWithParam<BadPrefix> {};

TEST_P(ParsePrefixBad, RejectsWithTextAndReason) {
  const BadPrefix& bad = GetParam();
  auto parsed = parse_prefix(bad.text);
  ASSERT_FALSE(parsed) << bad.text << " parsed as " << to_string(*parsed);
  EXPECT_EQ(parsed.error().errnum, EINVAL);
  EXPECT_EQ(parsed.error().message.rfind("bad prefix '" + bad.text + "': ", 0), 0u) << parsed.error().message;
  EXPECT_NE(parsed.error().message.find(bad.reason), std::string::npos) << parsed.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParsePrefixBad,
    ::testing::Values(
        BadPrefix{"198.18.0.0/33", "prefix length 33 out of range 0..32"},
        BadPrefix{"2001:db8::/129", "prefix length 129 out of range 0..128"},
        BadPrefix{"10.0.0.0/99999999999999999999", "out of range 0..32"},
        BadPrefix{"198.18.0.1/15", "host bits set beyond /15"},
        BadPrefix{"10.0.0.1/8", "host bits set"},
        BadPrefix{"0.0.0.1/0", "host bits set"},
        BadPrefix{"2001:db8::1/64", "host bits set beyond /64"},
        BadPrefix{"2001:db8:8000::/32", "host bits set"},
        BadPrefix{"", "empty"},
        BadPrefix{"/8", "missing address"},
        BadPrefix{"10.0.0.0/", "missing prefix length"},
        BadPrefix{"10.0.0.0/08", "leading zero"},
        BadPrefix{"10.0.0.0/+8", "not a decimal number"},
        BadPrefix{"10.0.0.0/-8", "not a decimal number"},
        BadPrefix{"10.0.0.0/8/8", "not a decimal number"},
        BadPrefix{"10.0.0.0/0x8", "not a decimal number"},
        BadPrefix{" 10.0.0.0/8", "whitespace"},
        BadPrefix{"10.0.0.0/8 ", "whitespace"},
        BadPrefix{"10.0.0.0 /8", "whitespace"},
        BadPrefix{"10.0.0.0/8\n", "whitespace"},
        BadPrefix{"010.0.0.0/8", "leading zero is ambiguous"},
        BadPrefix{"10.0.0.00/32", "leading zero is ambiguous"},
        BadPrefix{"256.0.0.0/8", "is not an IPv4 address"},
        BadPrefix{"10.0.0/24", "is not an IPv4 address"},
        BadPrefix{"10.0.0.0.0/8", "is not an IPv4 address"},
        BadPrefix{"ten.0.0.0/8", "is not an IPv4 address"},
        BadPrefix{"10..0.0/8", "is not an IPv4 address"},
        BadPrefix{"2001:db8:::/48", "is not an IPv6 address"},
        BadPrefix{"fe80::1%eth0/128", "is not an IPv6 address"},
        BadPrefix{"2001:db8::g/128", "is not an IPv6 address"},
        BadPrefix{"garbage", "is not an IPv4 address"}));

TEST(PrefixToString, FormatsBothFamilies) {
  sluice_lpm_v4_key v4{24, {192, 0, 2, 0}};
  EXPECT_EQ(to_string(v4), "192.0.2.0/24");
  sluice_lpm_v6_key v6key{48, {0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34}};
  EXPECT_EQ(to_string(v6key), "2001:db8:1234::/48");
  EXPECT_EQ(to_string(Prefix{v6key}), "2001:db8:1234::/48");
}

TEST(ParsePrefix, FamilyFollowsTheAddress) {
  auto v4 = parse_prefix("203.0.113.0/24");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(std::holds_alternative<sluice_lpm_v4_key>(*v4));
  auto v6 = parse_prefix("2001:db8::/48");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(std::holds_alternative<sluice_lpm_v6_key>(*v6));
}

}  // namespace
}  // namespace sluice::maps
