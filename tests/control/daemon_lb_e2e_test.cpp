// The load balancer through sluiced's socket: vip/backend/lb ops change the
// pinned lb maps, vip list and the persisted state.yaml; bad values change
// nothing (not even the file); a restart keeps VIP and backend ids; the lb
// stage bit is on only while a VIP exists; `apply -f` takes the lb section
// atomically with the filter. Under a default-drop filter policy a VIP's
// traffic passes the filter (its generated rule, after the operator's) while
// other traffic is dropped, and an operator's drop rule for a source wins.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"
#include "sluice_maps.h"

namespace sluice::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kVip = "198.18.0.10:80/tcp";
const char* const kBackends[] = {"198.18.1.1", "198.18.1.2", "198.18.1.3"};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool lb_stage_on(ControlClient& client) {
  return client.result("config.get").at("stages").at("lb").as_bool();
}

// The vip_id lb_vips holds for 198.18.0.10:80/tcp, read straight from the pinned map; nullopt when absent.
std::optional<std::uint32_t> pinned_vip_id(const std::string& pin_dir) {
  const int fd = bpf_obj_get((pin_dir + "/lb_vips").c_str());
  if (fd < 0) return std::nullopt;
  sluice_lb_vip_key key{};
  inet_pton(AF_INET, "198.18.0.10", &key.addr[0]);
  key.port = 80;
  key.proto = IPPROTO_TCP;
  key.ip_version = 4;
  sluice_lb_vip value{};
  const int err = bpf_map_lookup_elem(fd, &key, &value);
  ::close(fd);
  if (err != 0) return std::nullopt;
  return value.vip_id;
}

std::map<std::string, std::uint64_t> backend_ids(ControlClient& client) {
  std::map<std::string, std::uint64_t> out;
  const json::value listed = client.result("backend.list", {{"vip", kVip}});
  for (const auto& b : listed.at("backends").as_array())
    out[std::string(b.at("address").as_string())] = b.at("backend_id").to_number<std::uint64_t>();
  return out;
}

std::string error_of(ControlClient& client, const std::string& op, const json::object& args) {
  const auto reply = client.call(op, args);
  EXPECT_TRUE(reply.error) << op << " " << json::serialize(args) << " was accepted";
  return reply.error ? std::string(protocol::to_string(reply.error->code)) + ": " + reply.error->message : "";
}

TEST(DaemonLbE2E, OpsChangeMapsStateAndSurviveRestart) {
  SLUICE_REQUIRE_PRIVILEGES();
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  EXPECT_FALSE(lb_stage_on(client)) << "no VIP: the lb stage must be off (not even its tail call)";
  EXPECT_TRUE(client.result("vip.list").at("vips").as_array().empty());

  client.result("lb.set", {{"encap_source", "198.18.0.2"}});
  client.result("vip.add", {{"vip", kVip}, {"table_size", 251}, {"check", "tcp:80"}});
  EXPECT_TRUE(lb_stage_on(client)) << "a VIP exists: the lb stage must be on";
  for (std::size_t i = 0; i < 3; ++i)
    client.result("backend.add", {{"vip", kVip}, {"address", kBackends[i]}, {"weight", i + 1}});

  const auto vips = client.result("vip.list").at("vips").as_array();
  ASSERT_EQ(vips.size(), 1u);
  EXPECT_EQ(vips[0].at("vip"), json::value(kVip));
  const auto vip_id = vips[0].at("vip_id").to_number<std::uint32_t>();
  EXPECT_EQ(pinned_vip_id(daemon.pin_dir()), vip_id) << "lb_vips does not hold the VIP";

  const auto backends = client.result("backend.list", {{"vip", kVip}}).at("backends").as_array();
  ASSERT_EQ(backends.size(), 3u);
  std::uint64_t entries = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& b = backends[i].as_object();
    EXPECT_EQ(b.at("state"), json::value("up"));
    entries += b.at("table_entries").to_number<std::uint64_t>();
    // Weights 1:2:3 over 251 entries: each share near weight/6.
    EXPECT_NEAR(b.at("share").to_number<double>(), static_cast<double>(i + 1) / 6, 0.02) << json::serialize(b);
  }
  EXPECT_EQ(entries, 251u) << "every Maglev entry names a backend";

  // Persisted.
  const std::string state_path = daemon.state_dir() + "/state.yaml";
  const std::string persisted = read_file(state_path);
  EXPECT_NE(persisted.find(kVip), std::string::npos) << persisted;
  EXPECT_NE(persisted.find("198.18.1.3"), std::string::npos) << persisted;
  EXPECT_NE(persisted.find("encap_source_v4: 198.18.0.2"), std::string::npos) << persisted;

  // Bad input: a clear error naming the field and value, nothing changed (maps, list, file).
  const auto ids_before = backend_ids(client);
  EXPECT_NE(error_of(client, "backend.add", {{"vip", kVip}, {"address", "198.18.1.4"}, {"weight", 1001}}).find("weight"),
            std::string::npos);
  EXPECT_NE(error_of(client, "backend.add", {{"vip", kVip}, {"address", "198.18.1.1"}}).find("already a backend"),
            std::string::npos);
  EXPECT_NE(error_of(client, "backend.add", {{"vip", "198.18.0.11:80/tcp"}, {"address", "198.18.1.1"}}).find("not a VIP"),
            std::string::npos);
  EXPECT_NE(error_of(client, "vip.add", {{"vip", "198.18.0.12:80/tcp"}, {"table_size", 65536}}).find("65536"),
            std::string::npos);
  EXPECT_NE(error_of(client, "vip.add", {{"vip", "198.18.0.12:80/sctp"}}).find("sctp"), std::string::npos);
  EXPECT_NE(error_of(client, "vip.add", {{"vip", kVip}}).find("exists"), std::string::npos);
  EXPECT_NE(error_of(client, "backend.set", {{"vip", kVip}, {"address", "198.18.1.9"}, {"weight", 2}}).find("198.18.1.9"),
            std::string::npos);
  EXPECT_NE(error_of(client, "lb.set", {{"mtu", 100}}).find("mtu"), std::string::npos);
  EXPECT_NE(error_of(client, "lb.set", {{"egress", "teleport"}}).find("teleport"), std::string::npos);
  EXPECT_NE(error_of(client, "lb.set", {{"encap_source_v6", "198.18.0.2"}}).find("encap_source_v6"), std::string::npos);
  EXPECT_NE(error_of(client, "vip.del", {{"vip", "198.18.0.99:80/tcp"}}).find("not a VIP"), std::string::npos);
  EXPECT_NE(error_of(client, "backend.add", {{"vip", kVip}, {"address", "2001:db8::1"}, {"colour", "red"}})
                .find("unknown argument"),
            std::string::npos);
  EXPECT_EQ(read_file(state_path), persisted) << "a refused op changed state.yaml";
  EXPECT_EQ(backend_ids(client), ids_before);
  EXPECT_EQ(client.result("vip.list").at("vips").as_array().size(), 1u);

  // Weight, drain: the table follows, the file too.
  client.result("backend.set", {{"vip", kVip}, {"address", kBackends[0]}, {"weight", 3}});
  client.result("backend.drain", {{"vip", kVip}, {"address", kBackends[1]}});
  const json::value after_drain = client.result("backend.list", {{"vip", kVip}});
  for (const auto& b : after_drain.at("backends").as_array()) {
    if (b.at("address") == json::value(kBackends[1])) {
      EXPECT_EQ(b.at("state"), json::value("draining"));
      EXPECT_EQ(b.at("table_entries").to_number<std::uint64_t>(), 0u) << "a draining backend takes no new flows";
    }
    if (b.at("address") == json::value(kBackends[0])) {
      EXPECT_EQ(b.at("weight").to_number<std::uint64_t>(), 3u);
    }
  }
  EXPECT_NE(read_file(state_path).find("state: draining"), std::string::npos);

  // Restart: same VIP id, same backend slots, same config.
  const auto ids = backend_ids(client);
  const auto shown = client.result("config.show").at("yaml");
  client.close();
  daemon.kill_hard();
  ASSERT_EQ(daemon.start(), "");
  ControlClient again(daemon.socket_path());
  EXPECT_EQ(again.result("vip.list").at("vips").as_array().at(0).at("vip_id").to_number<std::uint32_t>(), vip_id);
  EXPECT_EQ(pinned_vip_id(daemon.pin_dir()), vip_id);
  EXPECT_EQ(backend_ids(again), ids) << "a restart moved backend slots";
  EXPECT_EQ(again.result("config.show").at("yaml"), shown);
  EXPECT_TRUE(lb_stage_on(again));

  // config show round-trips through apply: nothing to do.
  const auto dry = again.result("apply", {{"yaml", shown}, {"dry_run", true}});
  EXPECT_TRUE(dry.at("diff").as_array().empty()) << json::serialize(dry);

  // Removal: maps, stage bit and file follow.
  again.result("backend.del", {{"vip", kVip}, {"address", kBackends[2]}});
  EXPECT_EQ(backend_ids(again).size(), 2u);
  again.result("vip.del", {{"vip", kVip}});
  EXPECT_FALSE(pinned_vip_id(daemon.pin_dir()));
  EXPECT_FALSE(lb_stage_on(again)) << "the last VIP went: the stage must be off again";
  EXPECT_EQ(read_file(state_path).find(kVip), std::string::npos);
}

TEST(DaemonLbE2E, ApplyTakesTheLbSectionWithTheFilterAllOrNothing) {
  SLUICE_REQUIRE_PRIVILEGES();
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  const std::string good =
      "rules:\n  - {priority: 10, proto: tcp, dport: 22, action: drop}\n"
      "lb:\n  settings: {encap_source_v4: 198.18.0.2}\n"
      "  vips:\n    - vip: 198.18.0.10:80/tcp\n      table_size: 251\n"
      "      backends: [{address: 198.18.1.1}, {address: 198.18.1.2, weight: 2}]\n";
  // A dry run says what would change and changes nothing.
  const auto dry = client.result("apply", {{"yaml", good}, {"dry_run", true}});
  EXPECT_FALSE(dry.at("diff").as_array().empty());
  EXPECT_TRUE(client.result("vip.list").at("vips").as_array().empty());

  // A bad lb section refuses the whole document: the good rule does not go live either.
  std::string bad = good;
  bad.replace(bad.find("table_size: 251"), 15, "table_size: 250");
  const auto refused = client.call("apply", {{"yaml", bad}});
  ASSERT_TRUE(refused.error);
  EXPECT_NE(refused.error->message.find("lb.vips[0]"), std::string::npos) << refused.error->message;
  EXPECT_NE(refused.error->message.find("250"), std::string::npos) << refused.error->message;
  EXPECT_TRUE(client.result("rule.list").at("rules").as_array().empty());
  EXPECT_TRUE(client.result("vip.list").at("vips").as_array().empty());

  // An operator rule in the VIPs' priority range is refused while a VIP exists, naming it.
  const auto clash = client.call(
      "apply", {{"yaml", "rules:\n  - {priority: 4294967295, proto: udp, action: drop}\n" + good.substr(good.find("lb:"))}});
  ASSERT_TRUE(clash.error);
  EXPECT_NE(clash.error->message.find("rules[0].priority"), std::string::npos) << clash.error->message;

  client.result("apply", {{"yaml", good}});
  EXPECT_EQ(client.result("vip.list").at("vips").as_array().size(), 1u);
  const auto rules = client.result("rule.list").at("rules").as_array();
  ASSERT_EQ(rules.size(), 2u) << json::serialize(rules);
  EXPECT_EQ(rules[0].at("priority").to_number<std::uint64_t>(), 10u);
  EXPECT_EQ(rules[1].at("owner"), json::value("vip 198.18.0.10:80/tcp"));
  EXPECT_EQ(rules[1].at("dst"), json::value("198.18.0.10/32"));
  EXPECT_EQ(rules[1].at("action"), json::value("pass"));
  // The VIP's rule is derived, not persisted as a rule.
  const auto shown = std::string(client.result("config.show").at("yaml").as_string());
  EXPECT_EQ(shown.find("priority: 42949"), std::string::npos) << shown;
}

std::uint64_t rule_packets(ControlClient& client, const std::string& owner) {
  const json::value listed = client.result("rule.list");
  for (const auto& rule : listed.at("rules").as_array())
    if (rule.as_object().contains("owner") && rule.at("owner") == json::value(owner))
      return rule.at("packets").to_number<std::uint64_t>();
  return 0;
}

std::uint64_t counted(const json::value& stats, std::string_view verdict, std::string_view reason) {
  for (const auto& row : stats.at("counters").as_array())
    if (row.at("verdict") == json::value(verdict) && row.at("reason") == json::value(reason))
      return row.at("packets").to_number<std::uint64_t>();
  return 0;
}

// SYNs from the client to the box's port (answered or not: the counters judge).
void knock(TwoHostLab& lab, std::uint16_t port, int times = 2) {
  for (int i = 0; i < times; ++i)
    lab.client.exec("nc -z -w 1 " + std::string(TwoHostLab::box_v4) + " " + std::to_string(port), 5s);
}

TEST(DaemonLbE2E, DefaultDropPolicyLetsVipTrafficThroughAndDropsTheRest) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  client.result("attach", {{"iface", lab.box_if}});
  client.result("filter.policy", {{"policy", "drop"}});
  const std::string vip = std::string(TwoHostLab::box_v4) + ":7000/tcp";
  const std::string owner = "vip " + vip;
  client.result("vip.add", {{"vip", vip}, {"table_size", 251}});
  client.result("backend.add", {{"vip", vip}, {"address", "198.18.1.1"}});

  const auto dropped_before = counted(client.result("stats"), "drop", "filter_default_drop");
  knock(lab, 7000);
  const auto vip_passed = rule_packets(client, owner);
  EXPECT_GE(vip_passed, 2u) << "the VIP's traffic did not pass the filter under default drop";
  knock(lab, 7001);
  const auto dropped_after = counted(client.result("stats"), "drop", "filter_default_drop");
  EXPECT_GE(dropped_after - dropped_before, 2u) << "traffic to a port no VIP or rule has was not dropped";
  EXPECT_EQ(rule_packets(client, owner), vip_passed) << "other traffic matched the VIP's rule";

  // An operator's drop rule for the source comes first and wins over the VIP's pass rule.
  client.result("rule.add", {{"src", std::string(TwoHostLab::client_v4) + "/32"}, {"action", "drop"}});
  const auto drops_before = counted(client.result("stats"), "drop", "filter_rule_drop");
  knock(lab, 7000);
  EXPECT_EQ(rule_packets(client, owner), vip_passed) << "the VIP's rule passed a source the operator drops";
  EXPECT_GE(counted(client.result("stats"), "drop", "filter_rule_drop") - drops_before, 2u);

  // The VIP gone, its rule goes with it.
  client.result("vip.del", {{"vip", vip}});
  const json::value rules_after = client.result("rule.list");
  for (const auto& rule : rules_after.at("rules").as_array())
    EXPECT_FALSE(rule.as_object().contains("owner")) << json::serialize(rule);
}

// The health checker inside sluiced: a backend whose server is not there
// goes down (out of the table, an event, a metric), and comes back when the
// server listens.
TEST(DaemonLbE2E, HealthChecksTakeBackendsOutAndBack) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  SluicedOptions options;
  options.netns = lab.box.name();
  options.metrics = "127.0.0.1:9631";
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  constexpr int check_port = 9100;
  const std::string vip = "198.18.0.10:80/tcp";
  client.result("vip.add", {{"vip", vip},
                            {"table_size", 251},
                            {"check", "tcp:" + std::to_string(check_port)},
                            {"check_interval_ms", 100},
                            {"check_timeout_ms", 50},
                            {"check_rise", 2},
                            {"check_fall", 2}});
  client.result("backend.add", {{"vip", vip}, {"address", TwoHostLab::client_v4}});
  client.result("backend.add", {{"vip", vip}, {"address", "198.18.0.3"}});  // nobody: always down
  auto health_of = [&](const std::string& address) {
    const json::value listed = client.result("backend.list", {{"vip", vip}});
    for (const auto& b : listed.at("backends").as_array())
      if (b.at("address") == json::value(address))
        return std::pair{std::string(b.at("health").as_string()), b.at("table_entries").to_number<std::uint64_t>()};
    return std::pair{std::string("missing"), std::uint64_t{0}};
  };
  auto wait_for = [&](const std::string& address, const std::string& health) {
    for (int i = 0; i < 100; ++i) {
      if (health_of(address).first == health) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  };
  ASSERT_TRUE(wait_for(TwoHostLab::client_v4, "down")) << "no server: the backend must go down";
  ASSERT_TRUE(wait_for("198.18.0.3", "down")) << "no host: the backend must go down at the timeout";
  EXPECT_EQ(health_of(TwoHostLab::client_v4).second, 0u) << "a down backend keeps no table entries";
  EXPECT_EQ(health_of("198.18.0.3").second, 0u);

  const pid_t server = lab.client.spawn("exec timeout 20 nc -lk " + std::string(TwoHostLab::client_v4) + " " +
                                        std::to_string(check_port) + " > /dev/null");
  ASSERT_TRUE(wait_for(TwoHostLab::client_v4, "up")) << "the server listens: the backend must come back";
  EXPECT_EQ(health_of(TwoHostLab::client_v4).second, 251u) << "the one healthy backend takes the whole table";
  lab.client.exec("kill " + std::to_string(server) + " 2>/dev/null");
  lab.client.wait(server, 2000ms);

  // Each change was an event on the stream.
  ASSERT_TRUE(client.send_raw(R"({"id":900,"op":"events","args":{"max":50}})" "\n"));
  int health_events = 0;
  for (int i = 0; i < 60; ++i) {
    auto line = client.read_line();
    ASSERT_TRUE(line) << "events ended without a result";
    if (line->find("\"lb_health\"") != std::string::npos) ++health_events;
    if (line->find("\"result\"") != std::string::npos) break;
  }
  EXPECT_GE(health_events, 3) << "down, down, up: each change an event";

  // And a metric.
  const auto scrape = lab.box.exec("curl -sf http://127.0.0.1:9631/metrics");
  ASSERT_EQ(scrape.exit_code, 0) << scrape.output;
  EXPECT_NE(scrape.output.find("sluice_lb_health_transitions_total{to=\"up\"} 1"), std::string::npos) << scrape.output;
  EXPECT_NE(scrape.output.find("sluice_lb_backend_up{vip=\"198.18.0.10:80/tcp\",backend=\"198.18.0.3\"} 0"),
            std::string::npos)
      << scrape.output;
  EXPECT_NE(scrape.output.find("sluice_lb_vips 1"), std::string::npos);
  if (run_command("command -v promtool").exit_code == 0) {
    const auto checked = lab.box.exec("curl -sf http://127.0.0.1:9631/metrics | promtool check metrics");
    EXPECT_EQ(checked.output, "") << "promtool lint findings";
  }
}

// lb changes need what filter changes need: a socket-group member without
// the admin group may list, not change; the refused change leaves nothing.
TEST(DaemonLbE2E, ChangesNeedTheAdminGroup) {
  SLUICE_REQUIRE_PRIVILEGES();
  if (run_command("getent group users && getent group nogroup").exit_code != 0)
    SLUICE_SKIP_OR_FAIL("skipped: groups users and nogroup are needed");
  constexpr uid_t nobody_uid = 65534;
  constexpr gid_t nobody_gid = 65534;
  const gid_t admin_gid = static_cast<gid_t>(std::stoul(run_command("getent group users | cut -d: -f3").output));
  SluicedOptions options;
  options.extra_args = {"--admin-group", "users", "--socket-group", "nogroup"};
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  const std::string socket = daemon.socket_path();
  auto as_nobody = [&](std::vector<gid_t> groups) {
    return run_as(nobody_uid, nobody_gid, groups, [&] {
      ControlClient client(socket);
      if (!client.connected()) return "connect failed: " + client.connect_error();
      std::string out;
      for (const auto& [op, args] : std::vector<std::pair<std::string, json::object>>{
               {"vip.list", {}},
               {"lb.show", {}},
               {"vip.add", {{"vip", kVip}}},
               {"backend.add", {{"vip", kVip}, {"address", "198.18.1.1"}}},
               {"lb.set", {{"mtu", 1500}}}}) {
        auto reply = client.call(op, args);
        out += op + "=" + (reply.ok ? std::string("ok") : std::string(protocol::to_string(reply.error->code))) + ";";
      }
      return out;
    });
  };
  EXPECT_EQ(as_nobody({}), "vip.list=ok;lb.show=ok;vip.add=forbidden;backend.add=forbidden;lb.set=forbidden;");
  ControlClient root(socket);
  EXPECT_TRUE(root.result("vip.list").at("vips").as_array().empty()) << "a refused vip.add left a VIP";
  EXPECT_EQ(as_nobody({admin_gid}), "vip.list=ok;lb.show=ok;vip.add=ok;backend.add=ok;lb.set=ok;");
  EXPECT_EQ(root.result("vip.list").at("vips").as_array().size(), 1u);
}

}  // namespace
}  // namespace sluice::test
