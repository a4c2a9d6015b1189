// The limits section's source prefix lengths and aggregate buckets: parsed,
// bounded with errors that name the field and value, printed back (the
// persisted state.yaml is this YAML), and carried into the filter's rate
// classes; a state written before these fields existed loads with the
// defaults (/32, /64, no aggregate).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "desired_state.hpp"

namespace sluice::config {
namespace {

DesiredState parse_ok(const std::string& yaml) {
  auto parsed = parse_desired_state(yaml);
  EXPECT_TRUE(parsed.has_value()) << (parsed ? "" : parsed.error().to_string()) << "\n--- document:\n" << yaml;
  return parsed ? *parsed : DesiredState{};
}

filter::RuleSet rule_set_of(const DesiredState& state) {
  auto set = to_filter_rule_set(state, [](const std::string&) { return std::nullopt; });
  EXPECT_TRUE(set) << set.error().to_string();
  return set ? *set : filter::RuleSet{};
}

TEST(ConfigLimits, SourcePrefixAndAggregateRoundTripIntoTheRateClass) {
  const DesiredState state = parse_ok(
      "limits:\n"
      "  - {class: web, pps: 1000, v4_prefix_len: 24, v6_prefix_len: 48, aggregate_pps: 50000,\n"
      "     aggregate_burst: 60000, aggregate_bps: 9000000}\n"
      "  - {class: any, pps: 5, v4_prefix_len: 0, v6_prefix_len: 128, aggregate_bps: 1000}\n");
  ASSERT_TRUE(state.limits);
  const LimitSpec& web = (*state.limits)[0];
  EXPECT_EQ(web.v4_prefix_len, 24u);
  EXPECT_EQ(web.v6_prefix_len, 48u);
  EXPECT_EQ(web.aggregate_pps, 50000u);
  EXPECT_EQ(web.aggregate_burst, 60000u);
  EXPECT_EQ(web.aggregate_bps, 9000000u);

  // The persisted form: printed, parsed back, the same state; printed again, the same text.
  const std::string yaml = to_yaml(state);
  EXPECT_NE(yaml.find("v6_prefix_len: 48"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("v4_prefix_len: 0"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("aggregate_burst: 60000"), std::string::npos) << yaml;
  EXPECT_EQ(parse_ok(yaml), state) << yaml;
  EXPECT_EQ(to_yaml(parse_ok(yaml)), yaml);

  const filter::RuleSet set = rule_set_of(state);
  ASSERT_EQ(set.rate_classes.size(), 2u);
  const filter::RateClass& c = set.rate_classes[0];
  EXPECT_EQ(c.v4_prefix_len, 24u);
  EXPECT_EQ(c.v6_prefix_len, 48u);
  EXPECT_EQ(c.aggregate_packets_per_sec, 50000u);
  EXPECT_EQ(c.aggregate_packet_burst, 60000u);
  EXPECT_EQ(c.aggregate_bytes_per_sec, 9000000u);
  EXPECT_EQ(c.aggregate_byte_burst, 9000000u) << "one second of aggregate_bps";
  const filter::RateClass& any = set.rate_classes[1];
  EXPECT_EQ(any.v4_prefix_len, 0u);
  EXPECT_EQ(any.v6_prefix_len, 128u);
  EXPECT_EQ(any.aggregate_packets_per_sec, 0u);
  EXPECT_EQ(any.aggregate_bytes_per_sec, 1000u);
  EXPECT_TRUE(any.has_aggregate());

  // A changed field is a change of the class.
  auto changed = state;
  (*changed.limits)[0].v6_prefix_len = 56;
  EXPECT_EQ(diff(state, changed),
            (std::vector<std::string>{"~ limit web: pps 1000 v4-prefix /24 v6-prefix /48 aggregate-pps 50000 aggregate-bps "
                                      "9000000 aggregate-burst 60000 -> pps 1000 v4-prefix /24 v6-prefix /56 "
                                      "aggregate-pps 50000 aggregate-bps 9000000 aggregate-burst 60000"}));
}

TEST(ConfigLimits, StateWrittenBeforeTheFieldsLoadsWithTheDefaults) {
  // limits as a state.yaml of the previous release holds them
  const std::string old_state = "limits:\n"
                                "  - class: web\n"
                                "    pps: 1000\n"
                                "    bps: 8000000\n"
                                "    burst: 200\n"
                                "  - class: syn\n"
                                "    pps: 100\n"
                                "    syn_only: true\n";
  const DesiredState state = parse_ok(old_state);
  ASSERT_TRUE(state.limits);
  for (const LimitSpec& limit : *state.limits) {
    EXPECT_FALSE(limit.v4_prefix_len);
    EXPECT_FALSE(limit.v6_prefix_len);
    EXPECT_FALSE(limit.aggregate_pps);
    EXPECT_FALSE(limit.aggregate_bps);
    EXPECT_FALSE(limit.aggregate_burst);
  }
  EXPECT_EQ(to_yaml(state), old_state) << "rewritten unchanged: nothing is added to an old state";
  const filter::RuleSet set = rule_set_of(state);
  ASSERT_EQ(set.rate_classes.size(), 2u);
  for (const filter::RateClass& c : set.rate_classes) {
    EXPECT_EQ(c.v4_prefix_len, 32u);
    EXPECT_EQ(c.v6_prefix_len, 64u);
    EXPECT_FALSE(c.has_aggregate());
  }
  EXPECT_EQ(set.rate_classes[0].packets_per_sec, 1000u);
  EXPECT_EQ(set.rate_classes[0].packet_burst, 200u);
  EXPECT_TRUE(set.rate_classes[1].syn_only);
}

struct BadLimit {
  const char* name;
  std::string fields;  // inside {class: a, pps: 1, ...}
  std::string path;
  std::string message;
};

class ConfigLimitsBad : public ::testing::TestWithParam<BadLimit> {};

TEST_P(ConfigLimitsBad, NamesTheFieldAndValue) {
  const BadLimit& c = GetParam();
  auto parsed = parse_desired_state("limits:\n  - {class: a, pps: 1, " + c.fields + "}\n");
  ASSERT_FALSE(parsed) << c.fields;
  EXPECT_EQ(parsed.error().path, c.path);
  EXPECT_EQ(parsed.error().message, c.message);
  EXPECT_EQ(parsed.error().line, 2);
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ConfigLimitsBad,
    ::testing::Values(
        BadLimit{"V4TooLong", "v4_prefix_len: 33", "limits[0].v4_prefix_len",
                 "bad number '33': out of range; expected a decimal integer in 0..32"},
        BadLimit{"V6TooLong", "v6_prefix_len: 129", "limits[0].v6_prefix_len",
                 "bad number '129': out of range; expected a decimal integer in 0..128"},
        BadLimit{"V6Negative", "v6_prefix_len: -1", "limits[0].v6_prefix_len",
                 "bad number '-1': a sign is not allowed; expected a decimal integer in 0..128"},
        BadLimit{"V4NotANumber", "v4_prefix_len: /24", "limits[0].v4_prefix_len",
                 "bad number '/24': only the digits 0-9 are allowed; expected a decimal integer in 0..32"},
        BadLimit{"AggregateZero", "aggregate_pps: 0", "limits[0].aggregate_pps",
                 "bad number '0': out of range; expected a decimal integer in 1..18446744073709551615"},
        BadLimit{"AggregateBurstAlone", "aggregate_burst: 10", "limits[0].aggregate_burst",
                 "aggregate_burst 10 needs aggregate_pps (a burst of what rate?)"},
        BadLimit{"AggregateTooLarge", "aggregate_pps: 1000000001", "limits[0]",
                 "rate_classes (id 0): aggregate_packets_per_sec 1000000001 too large"},
        BadLimit{"UnknownKey", "aggregate: 5", "limits[0].aggregate",
                 "unknown key 'aggregate'; expected one of class, pps, bps, burst, syn_only, v4_prefix_len, "
                 "v6_prefix_len, aggregate_pps, aggregate_bps, aggregate_burst"}),
    [](const ::testing::TestParamInfo<BadLimit>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace sluice::config
