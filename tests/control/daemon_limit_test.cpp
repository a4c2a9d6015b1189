// limit.set's source prefix lengths and aggregate bucket, in process on a
// loaded data plane (BPF_PROG_TEST_RUN): bad values are refused naming the
// field and value and change nothing; good ones are listed, persisted in
// state.yaml (a store opened again reads them back) and enforced.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "filter_fixture.hpp"
#include "filter_ops.hpp"
#include "server.hpp"
#include "service.hpp"
#include "state_ops.hpp"
#include "state_store.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The daemon's objects over the fixture's data plane, wired as daemon.cpp wires them.
class DaemonLimitTest : public FilterTest {
 protected:
  void SetUp() override {
    FilterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char dir[] = "/tmp/sluice-limit-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    state_dir_ = dir;
    store_.emplace(state_dir_);
    service_.emplace(*plane_, *table_, *store_, daemon::ServicePaths{"", state_dir_}, "test");
    state_.emplace(*plane_, *table_, *store_, *service_);
    ASSERT_TRUE(state_->restore(state_->baseline(std::nullopt), config::DesiredState{}));
    daemon::register_filter_ops(ops_, *table_, *state_);
    state_->register_ops(ops_);
  }
  void TearDown() override {
    if (!state_dir_.empty()) std::filesystem::remove_all(state_dir_);
    FilterTest::TearDown();
  }
  std::string refused(const std::string& op, const json::object& args) {
    auto reply = ops_.find(op)->run(args);
    EXPECT_FALSE(reply) << op << " was expected to fail: " << json::serialize(*reply);
    return reply ? "(ok)" : reply.error().message;
  }
  json::value result(const std::string& op, const json::object& args = {}) {
    auto reply = ops_.find(op)->run(args);
    EXPECT_TRUE(reply) << op << ": " << reply.error().message;
    return reply ? *reply : json::value();
  }
  int udp_passed(const std::string& src) {
    return send(ether().ipv6(src, "2001:db8:ffff::1").udp(1000, 53).build()).verdict == XDP_PASS;
  }

  std::string state_dir_;
  std::optional<daemon::StateStore> store_;
  std::optional<daemon::Service> service_;
  std::optional<daemon::StateOps> state_;
  daemon::OpRegistry ops_;
};

TEST_F(DaemonLimitTest, BadPrefixLengthsAndAggregatesAreRefusedNamingFieldAndValue) {
  const std::string before = read_text(std::filesystem::path(state_dir_) / "state.yaml");
  const std::vector<std::pair<json::object, std::string>> cases = {
      {{{"class", "a"}, {"pps", 1}, {"v4_prefix_len", 33}}, "limit.set: v4_prefix_len: 33 is out of range (allowed 0..32)"},
      {{{"class", "a"}, {"pps", 1}, {"v6_prefix_len", 129}},
       "limit.set: v6_prefix_len: 129 is out of range (allowed 0..128)"},
      {{{"class", "a"}, {"pps", 1}, {"v6_prefix_len", -1}}, "limit.set: v6_prefix_len: -1 is out of range (allowed 0..128)"},
      {{{"class", "a"}, {"pps", 1}, {"v6_prefix_len", "64"}}, "limit.set: v6_prefix_len: must be an integer, got \"64\""},
      {{{"class", "a"}, {"pps", 1}, {"aggregate_pps", 0}},
       "limit.set: aggregate_pps: 0 is out of range (allowed 1..1000000000)"},
      {{{"class", "a"}, {"pps", 1}, {"aggregate_burst", 5}}, "limit.set: aggregate_burst: 5 needs aggregate_pps"},
      {{{"class", "a"}, {"pps", 1}, {"aggregate", 5}}, "limit.set: \"aggregate\": unknown argument"},
  };
  for (const auto& [args, message] : cases)
    EXPECT_NE(refused("limit.set", args).find(message), std::string::npos) << json::serialize(args);
  EXPECT_TRUE(result("limit.list").at("limits").as_array().empty()) << "nothing was defined";
  EXPECT_EQ(read_text(std::filesystem::path(state_dir_) / "state.yaml"), before);
}

TEST_F(DaemonLimitTest, PrefixAndAggregateAreListedPersistedAndEnforced) {
  result("limit.set", {{"class", "site"}, {"pps", 1}, {"burst", 1}, {"v6_prefix_len", 48}, {"v4_prefix_len", 24},
                       {"aggregate_pps", 1}, {"aggregate_burst", 3}});
  result("limit.set", {{"class", "plain"}, {"pps", 10}});
  result("rule.add", {{"priority", 1}, {"proto", "udp"}, {"action", "rate-limit"}, {"rate_class", "site"}});

  const json::value list = result("limit.list");  // kept: `listed` refers into it
  const json::array& listed = list.at("limits").as_array();
  ASSERT_EQ(listed.size(), 2u);
  const json::object& site = listed[0].as_object();
  EXPECT_EQ(site.at("v4_prefix_len"), json::value(24));
  EXPECT_EQ(site.at("v6_prefix_len"), json::value(48));
  EXPECT_EQ(site.at("aggregate_pps"), json::value(1));
  EXPECT_EQ(site.at("aggregate_burst"), json::value(3));
  EXPECT_EQ(site.at("aggregate_bps"), json::value(0));
  const json::object& plain = listed[1].as_object();
  EXPECT_EQ(plain.at("v4_prefix_len"), json::value(32)) << "the effective defaults";
  EXPECT_EQ(plain.at("v6_prefix_len"), json::value(64));
  EXPECT_EQ(plain.at("aggregate_pps"), json::value(0));

  // Persisted: a store opened on the same directory (a restarted daemon) reads the fields back.
  daemon::StateStore reopened(state_dir_);
  auto read = reopened.read();
  ASSERT_TRUE(read) << read.error().message;
  ASSERT_TRUE(*read && (*read)->limits);
  const config::LimitSpec& spec = (*read)->limits->at(0);
  EXPECT_EQ(spec.v6_prefix_len, 48u);
  EXPECT_EQ(spec.v4_prefix_len, 24u);
  EXPECT_EQ(spec.aggregate_pps, 1u);
  EXPECT_EQ(spec.aggregate_burst, 3u);
  EXPECT_EQ(*(*read)->limits, *store_->live().limits);

  // Enforced: one bucket per /48, and three packets for all sources together.
  EXPECT_EQ(udp_passed("2001:db8:1:1::1"), 1);
  EXPECT_EQ(udp_passed("2001:db8:1:2::1"), 0) << "same /48: its bucket is spent";
  EXPECT_EQ(udp_passed("2001:db8:2::1"), 1);
  EXPECT_EQ(udp_passed("2001:db8:3::1"), 1);
  EXPECT_EQ(udp_passed("2001:db8:4::1"), 0) << "the aggregate's 3 are spent";
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RATE_LIMITED), 1u);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_AGGREGATE_RATE_LIMITED), 1u);
}

}  // namespace
}  // namespace sluice::test
