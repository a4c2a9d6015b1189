// The balancer's ops in process, wired as daemon.cpp wires them, on a
// loaded data plane: an apply that adds a VIP (its backends, a filter rule,
// the lb stage bit) and fails at any step of change() leaves the lb maps,
// the filter, the config array, config.show and state.yaml as they were;
// a VIP's generated pass rule is judged by the filter through
// BPF_PROG_TEST_RUN under a default-drop policy.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "filter_fixture.hpp"
#include "filter_ops.hpp"
#include "lb_ops.hpp"
#include "lb_table.hpp"
#include "server.hpp"
#include "service.hpp"
#include "state_ops.hpp"
#include "state_store.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
using daemon::ChangeStep;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Bytes tcp_to(const char* dst, std::uint16_t dport, const char* src = "198.18.0.1") {
  return ether().ipv4(src, dst).tcp(40000, dport, {.flags = TcpFlags::SYN}).build();
}

class DaemonLbChangeTest : public FilterTest {
 protected:
  void SetUp() override {
    FilterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char dir[] = "/tmp/sluice-lb-change-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    state_dir_ = dir;
    store_.emplace(state_dir_);
    service_.emplace(*plane_, *table_, *store_, daemon::ServicePaths{"", state_dir_}, "test");
    state_.emplace(*plane_, *table_, *store_, *service_);
    auto opened = lb::LbTable::open(*plane_);
    ASSERT_TRUE(opened) << opened.error().message;
    lb_table_.emplace(std::move(*opened));
    lb_ops_.emplace(*lb_table_, *state_);
    state_->set_part(*lb_ops_);
    ASSERT_TRUE(state_->restore(state_->baseline(std::nullopt), config::DesiredState{}));
    daemon::register_filter_ops(ops_, *table_, *state_);
    state_->register_ops(ops_);
    lb_ops_->register_ops(ops_);
  }
  void TearDown() override {
    if (!state_dir_.empty()) std::filesystem::remove_all(state_dir_);
    FilterTest::TearDown();
  }
  json::value result(const std::string& op, const json::object& args = {}) {
    auto reply = ops_.find(op)->run(args);
    EXPECT_TRUE(reply) << op << ": " << reply.error().message;
    return reply ? *reply : json::value();
  }
  protocol::ProtocolError refused(const std::string& op, const json::object& args) {
    auto reply = ops_.find(op)->run(args);
    EXPECT_FALSE(reply) << op << " was expected to fail";
    return reply ? protocol::ProtocolError{protocol::ErrorCode::Failed, "(ok)"} : reply.error();
  }
  bool lb_bit() const { return (plane_->config()->stages_enabled & SLUICE_STAGE_BIT(SLUICE_STAGE_LB)) != 0; }

  std::string state_dir_;
  std::optional<daemon::StateStore> store_;
  std::optional<daemon::Service> service_;
  std::optional<daemon::StateOps> state_;
  std::optional<lb::LbTable> lb_table_;
  std::optional<daemon::LbOps> lb_ops_;
  daemon::OpRegistry ops_;
};

std::uint64_t owned_rule_packets(const json::value& listed) {
  for (const auto& rule : listed.at("rules").as_array())
    if (rule.as_object().contains("owner")) return rule.at("packets").to_number<std::uint64_t>();
  return 0;
}

const char* const kWanted =
    "rules:\n  - {priority: 10, proto: tcp, dport: 22, action: pass}\n"
    "lb:\n  settings: {encap_source_v4: 198.18.0.2}\n"
    "  vips:\n    - vip: 198.18.1.10:80/tcp\n      table_size: 251\n"
    "      backends: [{address: 198.18.2.1}, {address: 198.18.2.2, weight: 3}]\n";

TEST_F(DaemonLbChangeTest, FailureAtAnyStepRollsTheBalancerBackToo) {
  result("filter.policy", {{"policy", "drop"}});
  ASSERT_FALSE(lb_bit()) << "no VIP: the lb stage bit must be clear";
  ASSERT_EQ(send(tcp_to("198.18.1.10", 80)).verdict, XDP_DROP);
  const std::string shown = result("config.show").at("yaml").as_string().c_str();
  const std::string file = read_text(std::filesystem::path(state_dir_) / "state.yaml");
  const auto config_before = plane_->config();
  ASSERT_TRUE(config_before);

  for (ChangeStep failing : {ChangeStep::FilterSet, ChangeStep::FilterSettings, ChangeStep::Lb, ChangeStep::Config,
                             ChangeStep::Interfaces, ChangeStep::Persist}) {
    SCOPED_TRACE(std::string(daemon::to_string(failing)));
    state_->set_step_hook([&](ChangeStep step) -> maps::Result<void> {
      if (step == failing) return maps::Error{EIO, "injected failure"};
      return {};
    });
    const auto error = refused("apply", {{"yaml", kWanted}});
    state_->set_step_hook(nullptr);
    EXPECT_NE(error.message.find(std::string(daemon::to_string(failing)) + ": injected failure"), std::string::npos)
        << error.message;
    EXPECT_NE(error.message.find("rolled back"), std::string::npos) << error.message;
    EXPECT_EQ(error.message.find("rollback incomplete"), std::string::npos) << error.message;
    EXPECT_FALSE(lb_table_->has_vips()) << "the VIP stayed in the lb maps";
    EXPECT_TRUE(result("vip.list").at("vips").as_array().empty());
    EXPECT_FALSE(lb_bit());
    const auto config_after = plane_->config();
    ASSERT_TRUE(config_after);
    EXPECT_EQ(std::memcmp(&*config_after, &*config_before, sizeof(sluice_config)), 0);
    EXPECT_EQ(result("config.show").at("yaml").as_string(), shown);
    EXPECT_EQ(read_text(std::filesystem::path(state_dir_) / "state.yaml"), file);
    EXPECT_EQ(send(tcp_to("198.18.1.10", 80)).verdict, XDP_DROP) << "the VIP's rule stayed in the filter";
  }

  // Made live: the VIP, its rule (after the operator's), the stage bit, the file.
  result("apply", {{"yaml", kWanted}});
  EXPECT_TRUE(lb_table_->has_vips());
  EXPECT_TRUE(lb_bit()) << "a VIP exists: the lb stage bit must be set";
  const auto status = lb_table_->status();
  ASSERT_TRUE(status);
  ASSERT_EQ(status->size(), 1u);
  ASSERT_EQ(status->at(0).backends.size(), 2u);
  EXPECT_EQ(status->at(0).backends[0].table_entries + status->at(0).backends[1].table_entries, 251u);
  EXPECT_NE(read_text(std::filesystem::path(state_dir_) / "state.yaml").find("198.18.1.10:80/tcp"), std::string::npos);

  // The filter passes the VIP's traffic on (its rule counts it) and still drops the rest.
  const auto before = owned_rule_packets(result("rule.list"));
  send(tcp_to("198.18.1.10", 80));
  EXPECT_EQ(owned_rule_packets(result("rule.list")), before + 1) << "the VIP's pass rule did not take its packet";
  EXPECT_EQ(send(tcp_to("198.18.1.10", 81)).verdict, XDP_DROP);
  EXPECT_EQ(send(tcp_to("198.18.1.11", 80)).verdict, XDP_DROP);
  EXPECT_EQ(owned_rule_packets(result("rule.list")), before + 1);
  // An operator's drop for the source is judged first.
  result("rule.add", {{"src", "198.18.0.66/32"}, {"action", "drop"}});
  EXPECT_EQ(send(tcp_to("198.18.1.10", 80, "198.18.0.66")).verdict, XDP_DROP);
  EXPECT_EQ(owned_rule_packets(result("rule.list")), before + 1);

  // Removing the last VIP clears the bit and the rule.
  result("vip.del", {{"vip", "198.18.1.10:80/tcp"}});
  EXPECT_FALSE(lb_bit());
  EXPECT_EQ(send(tcp_to("198.18.1.10", 80)).verdict, XDP_DROP);
  EXPECT_FALSE(lb_table_->has_vips());
}

// A VIP's rule keeps its priority (and so its hit counter) when another VIP goes.
TEST_F(DaemonLbChangeTest, VipRulesKeepTheirPriorityWhenOthersGo) {
  result("apply", {{"yaml", std::string(kWanted) + "    - vip: 198.18.1.12/udp\n      table_size: 251\n"
                                                   "      backends: [{address: 198.18.2.1}]\n"}});
  auto priorities = [&] {
    std::map<std::string, std::uint64_t> out;
    const json::value listed = result("rule.list");
    std::uint64_t last = 0;
    for (const auto& rule : listed.at("rules").as_array()) {
      const auto priority = rule.at("priority").to_number<std::uint64_t>();
      EXPECT_GT(priority, last) << "rule.list is not in evaluation order";
      last = priority;
      if (rule.as_object().contains("owner")) {
        EXPECT_GE(priority, daemon::vip_rule_priority_base) << "a VIP's rule ahead of an operator's";
        out[std::string(rule.at("owner").as_string())] = priority;
      }
    }
    return out;
  };
  const auto before = priorities();
  ASSERT_EQ(before.size(), 2u);
  // A hit for the second VIP; then the first (earlier in the list) goes.
  send(ether().ipv4("198.18.0.1", "198.18.1.12").udp(40000, 5353).build());
  result("vip.del", {{"vip", "198.18.1.10:80/tcp"}});
  const auto after = priorities();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after.at("vip 198.18.1.12/udp"), before.at("vip 198.18.1.12/udp"));
  EXPECT_EQ(owned_rule_packets(result("rule.list")), 1u) << "the remaining VIP's rule lost its hits";
}

// A refused op changes nothing: not the maps, not the file.
TEST_F(DaemonLbChangeTest, BadValuesChangeNothing) {
  result("apply", {{"yaml", kWanted}});
  const std::string file = read_text(std::filesystem::path(state_dir_) / "state.yaml");
  const lb::LbConfig before = lb_table_->config();
  struct Bad {
    const char* op;
    json::object args;
    const char* names;
  };
  const std::vector<Bad> cases{
      {"vip.add", {{"vip", "198.18.1.11:80/tcp"}, {"table_size", 100}}, "table_size 100"},
      {"vip.add", {{"vip", "198.18.1.11:80/tcp"}, {"check", "tcp:0"}}, "check"},
      {"vip.add", {{"vip", "198.18.1.11:80/tcp"}, {"check", "tcp:80"}, {"check_rise", 0}}, "check_rise"},
      {"vip.add", {{"vip", "198.18.1.11:80/tcp"}, {"check_fall", 2}}, "only with check"},
      {"vip.add", {{"vip", "198.18.1.11:80/tcp"}, {"table_size", "251"}}, "table_size"},
      {"vip.add", {{"vip", "198.18.1.11/tcp"}, {"check", "tcp:80"}, {"check_interval_ms", 5}}, "interval_ms"},
      {"backend.add", {{"vip", "198.18.1.10:80/tcp"}, {"address", "198.18.2.3"}, {"weight", 0}}, "weight"},
      {"backend.add", {{"vip", "198.18.1.10:80/tcp"}, {"address", "0.0.0.0"}}, "0.0.0.0"},
      {"backend.add", {{"vip", "198.18.1.10:80/tcp"}, {"address", "198.18.2.3"}, {"mac", "01:00:00:00:00:00:00"}}, "mac"},
      {"backend.set", {{"vip", "198.18.1.10:80/tcp"}, {"address", "198.18.2.1"}}, "weight"},
      {"backend.drain", {{"vip", "198.18.1.10:81/tcp"}, {"address", "198.18.2.1"}}, "198.18.1.10:81/tcp"},
      {"backend.del", {{"vip", "198.18.1.10:80/tcp"}, {"address", "198.18.2.9"}}, "198.18.2.9"},
      {"lb.set", {}, "name at least one"},
      {"lb.set", {{"conn_timeout_s", 0}}, "conn_timeout_s"},
      {"lb.set", {{"next_hop_mac", "aa:bb"}}, "next_hop_mac"},
      {"lb.set", {{"encap_source_v4", "2001:db8::1"}}, "encap_source_v4"},
      {"vip.list", {{"all", true}}, "unknown argument"},
  };
  for (const auto& bad : cases) {
    SCOPED_TRACE(std::string(bad.op) + " " + json::serialize(bad.args));
    const auto error = refused(bad.op, bad.args);
    EXPECT_EQ(error.code, protocol::ErrorCode::BadArgs) << error.message;
    EXPECT_NE(error.message.find(bad.names), std::string::npos) << error.message;
    EXPECT_EQ(lb_table_->config(), before);
    EXPECT_EQ(read_text(std::filesystem::path(state_dir_) / "state.yaml"), file);
  }
}

}  // namespace
}  // namespace sluice::test
