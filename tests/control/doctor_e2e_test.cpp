// sluicectl doctor against a real sluiced in a lab, run as an operator runs
// it on the box (nsenter into the box's network namespace): a healthy box
// has nothing to report; then each breakage is made on purpose and doctor
// must name it with its subject, and it goes away once fixed.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <filesystem>
#include <set>
#include <thread>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

struct Doctor {
  int exit_code = -1;
  std::multiset<std::pair<std::string, std::string>> findings;  // (check, subject)
  std::string output;
};

Doctor run_doctor(const TwoHostLab& lab, const SluicedProcess& daemon) {
  const auto ran = run_command("nsenter --net=/run/netns/" + lab.box.name() + " " + SLUICECTL_PATH + " --socket " +
                               daemon.socket_path() + " doctor --json 2>/dev/null");
  Doctor out{ran.exit_code, {}, ran.output};
  try {
    const json::value report = json::parse(ran.output);
    for (const auto& f : report.at("problems").as_array())
      out.findings.emplace(std::string(f.at("check").as_string()), std::string(f.at("subject").as_string()));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "doctor --json: " << e.what() << ": " << ran.output;
  }
  return out;
}

bool has(const Doctor& d, const std::string& check, const std::string& subject) {
  return d.findings.count({check, subject}) > 0;
}

TEST(DoctorE2E, EachBreakageMadeOnPurposeIsNamedAndGoesAwayWhenFixed) {
  SLUICE_REQUIRE_NETNS();
  SLUICE_REQUIRE_BPFFS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  ASSERT_TRUE(client.connected()) << client.connect_error();

  // Nothing attached yet: the one thing to say.
  Doctor d = run_doctor(lab, daemon);
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_EQ(d.findings, (std::multiset<std::pair<std::string, std::string>>{{"no_interface", "sluiced"}})) << d.output;

  client.result("attach", {{"iface", lab.box_if}});
  ASSERT_EQ(lab.box.exec("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf." + lab.box_if + ".rp_filter=0").exit_code, 0);
  d = run_doctor(lab, daemon);
  EXPECT_EQ(d.exit_code, 0) << d.output;
  EXPECT_TRUE(d.findings.empty()) << d.output;

  // Strict rp_filter on the box's interface.
  ASSERT_EQ(lab.box.exec("sysctl -qw net.ipv4.conf." + lab.box_if + ".rp_filter=1").exit_code, 0);
  d = run_doctor(lab, daemon);
  EXPECT_TRUE(has(d, "rp_filter", lab.box_if)) << d.output;
  ASSERT_EQ(lab.box.exec("sysctl -qw net.ipv4.conf." + lab.box_if + ".rp_filter=2").exit_code, 0);
  EXPECT_FALSE(has(run_doctor(lab, daemon), "rp_filter", lab.box_if));

  // A VIP whose one backend has no server: down, the VIP with none up, and no lb MTU set.
  const std::string vip = "198.18.1.10:80/tcp";
  client.result("vip.add", {{"vip", vip}, {"check", "tcp:9"}, {"check_interval_ms", 100}, {"check_timeout_ms", 50},
                            {"check_rise", 1}, {"check_fall", 1}});
  client.result("backend.add", {{"vip", vip}, {"address", "198.18.0.3"}});
  bool named = false;
  for (int i = 0; i < 50 && !named; ++i) {
    d = run_doctor(lab, daemon);
    named = has(d, "backend_down", vip + " 198.18.0.3");
    if (!named) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(named) << d.output;
  EXPECT_TRUE(has(d, "vip_no_backend", vip)) << d.output;
  EXPECT_TRUE(has(d, "lb_mtu", "lb settings")) << d.output;
  client.result("lb.set", {{"mtu", 1480}});
  EXPECT_FALSE(has(run_doctor(lab, daemon), "lb_mtu", "lb settings"));
  client.result("vip.del", {{"vip", vip}});

  // A route through a next hop nobody answers for.
  client.result("route.add", {{"prefix", "198.18.7.0/24"}, {"via", "198.18.0.77"}, {"dev", lab.box_if}});
  d = run_doctor(lab, daemon);
  EXPECT_TRUE(has(d, "next_hop_unresolved", "198.18.0.77@" + lab.box_if)) << d.output;
  EXPECT_NE(d.output.find("ping -c 1 -I " + lab.box_if + " 198.18.0.77 "), std::string::npos) << d.output;
  client.result("route.del", {{"prefix", "198.18.7.0/24"}});

  // Generic XDP.
  client.result("detach", {{"iface", lab.box_if}});
  client.result("attach", {{"iface", lab.box_if}, {"mode", "skb"}});
  d = run_doctor(lab, daemon);
  EXPECT_TRUE(has(d, "attach_mode", lab.box_if)) << d.output;

  // The program taken off behind sluiced's back.
  ASSERT_EQ(lab.box.exec("ip link set dev " + lab.box_if + " xdpgeneric off").exit_code, 0);
  d = run_doctor(lab, daemon);
  EXPECT_TRUE(has(d, "not_attached", lab.box_if)) << d.output;
  client.result("attach", {{"iface", lab.box_if}});
  EXPECT_FALSE(has(run_doctor(lab, daemon), "not_attached", lab.box_if));

  // The pins removed under a running daemon.
  std::filesystem::remove_all(daemon.pin_dir());
  d = run_doctor(lab, daemon);
  EXPECT_TRUE(has(d, "pin_dir", daemon.pin_dir())) << d.output;

  // The text form names each problem with its fix.
  const auto text = run_command("nsenter --net=/run/netns/" + lab.box.name() + " " + SLUICECTL_PATH + " --socket " +
                                daemon.socket_path() + " doctor");
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_NE(text.output.find("ERROR   sluiced's pin directory"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("fix:   systemctl restart sluiced"), std::string::npos) << text.output;
}

TEST(DoctorE2E, AnUnreachableDaemonIsExitThreeNotAClean) {
  const auto ran = run_command(std::string(SLUICECTL_PATH) + " --socket /nonexistent/sluice.sock doctor");
  EXPECT_EQ(ran.exit_code, 3) << ran.output;
}

}  // namespace
}  // namespace sluice::test
