// A default-drop firewall through sluiced, judged by real clients: the
// filter's policy (filter.policy) and the end-of-pipeline verdict
// (end_verdict) are two settings, so what the rules allow gets through while
// everything else is dropped; and a state.yaml written before the split
// (defaults.default_verdict) comes back meaning what its operator meant.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::uint16_t kTrackedPort = 22;  // the firewall's one TCP service
constexpr std::uint16_t kClosedPort = 23;   // listening, but no rule admits it
constexpr std::uint16_t kUdpPort = 9000;

bool ping_ok(const TwoHostLab& lab) {
  return lab.client.exec("ping -c 3 -i 0.2 -W 1 " + std::string(TwoHostLab::box_v4)).exit_code == 0;
}

// A TCP connection from the client that carries a line to a listener in the box.
bool tcp_line_arrives(TwoHostLab& lab, std::uint16_t port, const std::string& scratch) {
  const std::string out = scratch + "/tcp-" + std::to_string(port) + ".out";
  std::filesystem::remove(out);
  const pid_t server = lab.box.spawn("exec timeout 10 nc -N -l " + std::to_string(port) + " < /dev/null > " + out);
  for (int i = 0; i < 100; ++i) {
    if (lab.box.exec("ss -ltnH | grep -q ':" + std::to_string(port) + " '").exit_code == 0) break;
    std::this_thread::sleep_for(20ms);
  }
  const auto sent = lab.client.exec("printf 'hello-" + std::to_string(port) + "\\n' | nc -N -w 2 " +
                                        std::string(TwoHostLab::box_v4) + " " + std::to_string(port),
                                    10s);
  lab.box.exec("kill " + std::to_string(server) + " 2>/dev/null");
  lab.box.wait(server, 2000ms);
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  return sent.exit_code == 0 && line == "hello-" + std::to_string(port);
}

// A UDP datagram from the client that a listener in the box receives.
bool udp_datagram_arrives(TwoHostLab& lab, const std::string& scratch) {
  const std::string out = scratch + "/udp.out";
  std::filesystem::remove(out);
  const pid_t server = lab.box.spawn("exec timeout 5 nc -u -l " + std::to_string(kUdpPort) + " < /dev/null > " + out);
  std::this_thread::sleep_for(200ms);
  lab.client.exec("printf 'dgram\\n' | nc -u -w 1 " + std::string(TwoHostLab::box_v4) + " " +
                  std::to_string(kUdpPort));
  std::this_thread::sleep_for(300ms);
  lab.box.exec("kill " + std::to_string(server) + " 2>/dev/null");
  lab.box.wait(server, 2000ms);
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  return line == "dgram";
}

std::uint64_t counted(const json::value& stats, std::string_view verdict, std::string_view reason) {
  for (const auto& row : stats.at("counters").as_array())
    if (row.at("verdict") == json::value(verdict) && row.at("reason") == json::value(reason))
      return row.at("packets").to_number<std::uint64_t>();
  return 0;
}

TEST(DaemonPolicyE2E, DefaultDropFirewallAdmitsExactlyWhatItsRulesAllow) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  const std::string scratch = std::filesystem::path(daemon.state_dir()).parent_path().string();
  ControlClient client(daemon.socket_path());
  client.result("attach", {{"iface", lab.box_if}});

  EXPECT_EQ(client.result("filter.policy", {{"policy", "drop"}}).at("default_policy"), json::value("drop"));
  client.result("rule.add", {{"proto", "icmp"}, {"action", "pass"}});
  client.result("rule.add", {{"proto", "tcp"}, {"dport", kTrackedPort}, {"action", "pass-track"}});
  EXPECT_EQ(client.result("rule.list").at("default_policy"), json::value("drop"));
  EXPECT_EQ(client.result("config.get").at("end_verdict"), json::value("pass"));

  EXPECT_TRUE(ping_ok(lab)) << "an allowed ping got no answer under default drop";
  EXPECT_TRUE(tcp_line_arrives(lab, kTrackedPort, scratch)) << "the allowed TCP service is unreachable";
  EXPECT_FALSE(tcp_line_arrives(lab, kClosedPort, scratch)) << "a port no rule allows was reached";
  EXPECT_FALSE(udp_datagram_arrives(lab, scratch)) << "UDP no rule allows was delivered";

  const auto stats = client.result("stats");
  EXPECT_GE(counted(stats, "pass", "filter_rule_pass"), 3u) << json::serialize(stats);
  EXPECT_EQ(counted(stats, "drop", "filter_rule_pass"), 0u) << "allowed packets dropped at the end: "
                                                            << json::serialize(stats);
  EXPECT_GE(counted(stats, "drop", "filter_default_drop"), 1u) << json::serialize(stats);

  // The old single knob is refused by name, and changes nothing.
  const auto old = client.call("config.set", {{"default_verdict", "pass"}});
  ASSERT_TRUE(old.error) << "config.set default_verdict was accepted";
  EXPECT_NE(old.error->message.find("filter.policy"), std::string::npos) << old.error->message;
  EXPECT_EQ(client.result("rule.list").at("default_policy"), json::value("drop"));

  // The policy survives a restart, and pass opens the box again.
  client.close();
  daemon.kill_hard();
  ASSERT_EQ(daemon.start(), "");
  ControlClient again(daemon.socket_path());
  EXPECT_EQ(again.result("rule.list").at("default_policy"), json::value("drop"));
  EXPECT_FALSE(tcp_line_arrives(lab, kClosedPort, scratch)) << "default drop lost across the restart";
  EXPECT_TRUE(ping_ok(lab));
  again.result("filter.policy", {{"policy", "pass"}});
  EXPECT_TRUE(tcp_line_arrives(lab, kClosedPort, scratch)) << "policy pass still drops";
}

// A state file of before the split: `defaults.default_verdict: drop` with an
// ICMP allow rule. Its operator meant a default-drop firewall; the daemon
// runs exactly that (ping answered, other TCP dropped) and says so.
TEST(DaemonPolicyE2E, LegacyDefaultVerdictStateComesBackAsTheFilterPolicy) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  const std::string scratch = std::filesystem::path(daemon.state_dir()).parent_path().string();
  std::filesystem::create_directories(daemon.state_dir());
  {
    std::ofstream state(daemon.state_dir() + "/state.yaml");
    state << "interfaces:\n  - {name: " << lab.box_if << ", mode: native}\n"
          << "defaults:\n  default_verdict: drop\n"
          << "rules:\n  - {priority: 10, proto: icmp, action: pass}\n";
  }
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  const auto status = client.result("status");
  EXPECT_EQ(status.at("degraded"), json::value(false)) << json::serialize(status);
  const std::string shown = client.result("config.show").at("yaml").as_string().c_str();
  EXPECT_NE(shown.find("default_policy: drop"), std::string::npos) << shown;
  EXPECT_NE(shown.find("end_verdict: pass"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("default_verdict"), std::string::npos) << shown;
  EXPECT_TRUE(ping_ok(lab)) << "the migrated firewall drops what its rule allows";
  EXPECT_FALSE(tcp_line_arrives(lab, kClosedPort, scratch)) << "the migrated firewall lost its default drop";
}

}  // namespace
}  // namespace sluice::test
