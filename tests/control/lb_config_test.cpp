// The `lb:` section of the desired state: a full section round-trips
// through to_yaml (what `config show` prints and `apply -f` takes back),
// hostile values are refused with the exact path and value, and diffs name
// what changes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "desired_state.hpp"
#include "lb_config.hpp"

namespace sluice::config {
namespace {

const char* const kLb = R"(lb:
  settings:
    encap_source_v4: 198.18.0.1
    encap_source_v6: "2001:db8::1"
    entropy_source: true
    egress: forward
    next_hop_mac: "02:00:00:00:00:01"
    src_mac: "02:00:00:00:00:02"
    mtu: 1500
    conn_timeout_s: 120
  vips:
    - vip: 198.18.0.10:80/tcp
      table_size: 251
      check: {type: http, port: 8080, path: /healthz, interval_ms: 500, timeout_ms: 200, rise: 2, fall: 3}
      backends:
        - {address: 198.18.1.1, weight: 2}
        - {address: 198.18.1.2, state: draining}
    - vip: "[2001:db8::10]:443/tcp"
      backends:
        - address: "2001:db8:1::1"
    - vip: 198.18.0.11/udp
      check: {type: tcp, port: 53}
      backends: []
)";

DesiredState parse_ok(const std::string& yaml) {
  auto parsed = parse_desired_state(yaml);
  EXPECT_TRUE(parsed.has_value()) << (parsed ? "" : parsed.error().to_string()) << "\n--- document:\n" << yaml;
  return parsed ? *parsed : DesiredState{};
}

ParseError parse_error(const std::string& yaml) {
  auto parsed = parse_desired_state(yaml);
  EXPECT_FALSE(parsed.has_value()) << "accepted:\n" << yaml;
  return parsed ? ParseError{} : parsed.error();
}

TEST(LbConfig, ParsesEveryField) {
  const DesiredState state = parse_ok(kLb);
  ASSERT_TRUE(state.lb);
  const lb::LbConfig& lb = *state.lb;
  ASSERT_TRUE(lb.settings.encap_source_v4);
  EXPECT_EQ(lb::to_string(*lb.settings.encap_source_v4), "198.18.0.1");
  EXPECT_EQ(lb::to_string(*lb.settings.encap_source_v6), "2001:db8::1");
  EXPECT_TRUE(lb.settings.entropy_source);
  EXPECT_EQ(lb.settings.egress, SLUICE_LB_EGRESS_FORWARD);
  EXPECT_EQ(lb::mac_to_string(*lb.settings.next_hop_mac), "02:00:00:00:00:01");
  EXPECT_EQ(lb.settings.mtu, 1500);
  EXPECT_EQ(lb.settings.conn_timeout_s, 120u);
  ASSERT_EQ(lb.vips.size(), 3u);
  EXPECT_EQ(lb::to_string(lb.vips[0].key), "198.18.0.10:80/tcp");
  EXPECT_EQ(lb.vips[0].table_size, 251u);
  ASSERT_TRUE(lb.vips[0].check);
  EXPECT_EQ(lb.vips[0].check->kind, lb::HealthCheck::Kind::Http);
  EXPECT_EQ(lb.vips[0].check->port, 8080);
  EXPECT_EQ(lb.vips[0].check->http_path, "/healthz");
  EXPECT_EQ(lb.vips[0].check->interval_ms, 500u);
  ASSERT_EQ(lb.vips[0].backends.size(), 2u);
  EXPECT_EQ(lb.vips[0].backends[0].weight, 2u);
  EXPECT_EQ(lb.vips[0].backends[1].state, lb::BackendState::Draining);
  EXPECT_EQ(lb.vips[1].table_size, SLUICE_LB_MAGLEV_SIZE_DEFAULT);
  EXPECT_EQ(lb.vips[1].key.address.family, 6);
  EXPECT_EQ(lb.vips[2].key.port, 0);  // port-less
  EXPECT_FALSE(state.rules);          // other sections stay unmanaged
}

TEST(LbConfig, RoundTripsThroughToYaml) {
  const DesiredState state = parse_ok(kLb);
  const std::string yaml = to_yaml(state);
  const DesiredState again = parse_ok(yaml);
  EXPECT_EQ(again, state) << yaml;
  EXPECT_EQ(to_yaml(again), yaml);  // canonical: a fixed point
  EXPECT_TRUE(diff(state, again).empty());
}

TEST(LbConfig, EmptySectionMeansNoVipsAndDefaultSettings) {
  const DesiredState state = parse_ok("lb: {vips: []}\n");
  ASSERT_TRUE(state.lb);
  EXPECT_EQ(*state.lb, lb::LbConfig{});
  EXPECT_EQ(parse_ok(to_yaml(state)), state);
}

struct BadCase {
  const char* yaml;
  const char* path;
  const char* message_part;
};

class LbConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(LbConfigErrors, NameThePathAndTheValue) {
  const auto& bad = GetParam();
  const ParseError error = parse_error(bad.yaml);
  EXPECT_EQ(error.path, bad.path) << error.to_string();
  EXPECT_NE(error.to_string().find(bad.message_part), std::string::npos) << error.to_string();
  EXPECT_GT(error.line, 0) << error.to_string();
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, LbConfigErrors,
    ::testing::Values(
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/sctp}]}\n", "lb.vips[0].vip", "sctp"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp, table_size: 65536}]}\n", "lb.vips[0]", "65536"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp, table_size: 0x10}]}\n", "lb.vips[0].table_size", "0x10"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp, backends: [{address: 198.18.1.1, weight: 1001}]}]}\n",
                "lb.vips[0].backends[0].weight", "1001"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp, backends: [{address: 198.18.1.1}, {address: 198.18.1.1}]}]}\n",
                "lb.vips[0].backends[1].address", "198.18.1.1"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp, backends: [{address: 198.18.1.300}]}]}\n",
                "lb.vips[0].backends[0].address", "198.18.1.300"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp, backends: [{address: 198.18.1.1, state: down}]}]}\n",
                "lb.vips[0].backends[0].state", "down"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp}, {vip: 198.18.0.10:80/tcp}]}\n", "lb.vips[1].vip",
                "198.18.0.10:80/tcp"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp, check: {type: icmp}}]}\n", "lb.vips[0].check.type", "icmp"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp, check: {port: 80}}]}\n", "lb.vips[0].check.type", "required"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp, colour: red}]}\n", "lb.vips[0].colour", "unknown key"},
        BadCase{"lb: {vips: [{table_size: 251}]}\n", "lb.vips[0].vip", "required"},
        BadCase{"lb: {settings: {egress: teleport}}\n", "lb.settings.egress", "teleport"},
        BadCase{"lb: {settings: {encap_source_v4: \"2001:db8::1\"}}\n", "lb.settings.encap_source_v4", "2001:db8::1"},
        BadCase{"lb: {settings: {next_hop_mac: \"02:00:00:00:00\"}}\n", "lb.settings.next_hop_mac", "02:00:00:00:00"},
        BadCase{"lb: {settings: {mtu: 70000}}\n", "lb.settings.mtu", "70000"},
        BadCase{"lb: {settings: {mtu: 100}}\n", "lb.settings", "100"},
        BadCase{"lb: {settings: {conn_timeout_s: 0}}\n", "lb.settings.conn_timeout_s", "0"},
        BadCase{"lb: {vips: [{vip: 198.18.0.10:80/tcp}], vips: []}\n", "lb.vips", "duplicate"},
        BadCase{"lb: {vips: }\n", "lb.vips", "empty value"},
        BadCase{"lb: [1]\n", "lb", "mapping"}));

TEST(LbConfig, DiffNamesVipsBackendsAndSettings) {
  const DesiredState live = parse_ok(kLb);
  DesiredState wanted = live;
  auto& vips = wanted.lb->vips;
  vips[0].backends[0].weight = 5;
  vips[0].backends.pop_back();
  vips[0].backends.push_back(lb::Backend{*lb::parse_address("198.18.1.3")});
  vips.erase(vips.begin() + 1);
  wanted.lb->settings.mtu = 9000;
  const std::vector<std::string> lines = diff(live, wanted);
  const std::vector<std::string> expected{
      "~ lb.settings.mtu: 1500 -> 9000",
      "- vip [2001:db8::10]:443/tcp",
      "~ backend 198.18.0.10:80/tcp 198.18.1.1: weight 2 -> weight 5",
      "- backend 198.18.0.10:80/tcp 198.18.1.2",
      "+ backend 198.18.0.10:80/tcp 198.18.1.3: weight 1",
  };
  for (const auto& line : expected)
    EXPECT_NE(std::find(lines.begin(), lines.end(), line), lines.end()) << "missing: " << line;
  EXPECT_EQ(lines.size(), expected.size());
  // A document without lb manages no lb: no lines.
  EXPECT_TRUE(diff(live, parse_ok("rules: []\n")).empty());
}

TEST(LbConfig, VocabularyRoundTrips) {
  for (auto egress : {SLUICE_LB_EGRESS_TX, SLUICE_LB_EGRESS_REDIRECT, SLUICE_LB_EGRESS_FORWARD})
    EXPECT_EQ(parse_egress(egress_name(egress)), egress);
  EXPECT_FALSE(parse_egress("TX"));
  for (auto state : {lb::BackendState::Up, lb::BackendState::Draining})
    EXPECT_EQ(parse_backend_state(backend_state_name(state)), state);
}

}  // namespace
}  // namespace sluice::config
