// A restart that finds the entry program still attached but its maps gone:
// the pin directory was removed between two runs (or --bpffs changed, or
// bpffs was remounted). The kept program would tail-call an emptied stage
// array and pass everything while status showed the rules. The restarted
// daemon must notice that the attached program does not use its maps and
// replace it atomically, so the restored rules are enforced and new rules
// take effect. Real pings across a namespace lab judge it.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;

constexpr const char* ping_three = "ping -c 3 -i 0.2 -W 1 ";

bool ping_v4_ok(const TwoHostLab& lab) {
  return lab.client.exec(ping_three + std::string(TwoHostLab::box_v4)).exit_code == 0;
}
bool ping_v6_ok(const TwoHostLab& lab) {
  return lab.client.exec(ping_three + std::string(TwoHostLab::box_v6)).exit_code == 0;
}

std::uint32_t attached_prog_id(const json::value& status) {
  return status.at("interfaces").at(0).at("prog_id").to_number<std::uint32_t>();
}

TEST(DaemonRestoreE2E, RemovedPinDirBetweenRunsKeepsRulesEnforcedAndNewRulesTakeEffect) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  std::uint32_t first_prog_id = 0;
  {
    ControlClient client(daemon.socket_path());
    client.result("attach", {{"iface", lab.box_if}});
    ASSERT_TRUE(ping_v4_ok(lab));
    client.result("rule.add", {{"priority", 10},
                               {"src", std::string(TwoHostLab::client_v4) + "/32"},
                               {"proto", "icmp"},
                               {"action", "drop"}});
    ASSERT_FALSE(ping_v4_ok(lab)) << "the drop rule is enforced before the restart";
    first_prog_id = attached_prog_id(client.result("status"));
  }
  // SIGTERM keeps the programs attached (hitless restart); then the pins go.
  ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  std::error_code ec;
  std::filesystem::remove_all(daemon.pin_dir(), ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_FALSE(std::filesystem::exists(daemon.pin_dir()));

  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  const auto status = client.result("status");
  EXPECT_EQ(status.at("interfaces").at(0).at("attached"), json::value(true)) << json::serialize(status);
  EXPECT_NE(attached_prog_id(status), first_prog_id)
      << "the attached entry program uses the removed maps; it must have been replaced\n"
      << daemon.log();
  EXPECT_EQ(status.at("filter").at("rules").to_number<std::uint64_t>(), 1u) << json::serialize(status);
  EXPECT_FALSE(ping_v4_ok(lab)) << "the restored drop rule must be enforced after the restart\n" << daemon.log();
  EXPECT_TRUE(ping_v6_ok(lab)) << "what no rule drops still passes";

  // A new rule reaches the program that is attached.
  client.result("rule.add", {{"priority", 20},
                             {"src", std::string(TwoHostLab::client_v6) + "/128"},
                             {"proto", "icmpv6"},
                             {"action", "drop"}});
  EXPECT_FALSE(ping_v6_ok(lab)) << "a rule added after the restart must take effect\n" << daemon.log();
  const auto stats = client.result("stats");
  const std::string dumped = json::serialize(stats);
  EXPECT_NE(dumped.find("filter_rule_drop"), std::string::npos) << dumped;

  // A second plain restart (pins in place) keeps the now-matching program.
  client.close();
  const std::uint32_t replaced_id = attached_prog_id(status);
  ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  ASSERT_EQ(daemon.start(), "");
  ControlClient again(daemon.socket_path());
  EXPECT_EQ(attached_prog_id(again.result("status")), replaced_id) << "same maps, same build: kept attached";
  EXPECT_FALSE(ping_v4_ok(lab));
}

}  // namespace
}  // namespace sluice::test
