// sluiced's start and the load balancer's Maglev tables:
// - a start whose lb part cannot go live (degraded) is done with the
//   read-back tables: a later filter-only change does not redo the lb
//   step (seen by --fault-kill-before lb, which kills only when the lb step
//   is reached);
// - the lb and forward kill steps fire in a change that reaches them, never
//   in the start's own make_live;
// - build_maglev is deterministic: the same VIPs and backends built by two
//   daemons, and rebuilt by a restart through the pins, give byte-identical
//   tables (ECMP across boxes relies on it).
// The tables are read raw from the pinned maps (lb_vips -> vip_id ->
// lb_maglev[vip_id], the inner array of slot ids).
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "daemon_test_support.hpp"
#include "maglev.hpp"
#include "privileges.hpp"
#include "sluice_maps.h"

namespace sluice::test {
namespace {

namespace json = boost::json;

constexpr int exit_sigkill = 128 + SIGKILL;
constexpr const char* kVipAddr = "198.18.0.10";
constexpr const char* kVip = "198.18.0.10:80/tcp";
constexpr std::uint16_t kVipPort = 80;

// `count` backend addresses from 198.18.<base>.0 up (no traffic goes to them).
std::string backends_yaml(std::uint32_t base, std::size_t count, bool weighted = false) {
  std::string out = "[";
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint32_t host = (base << 8) + static_cast<std::uint32_t>(i);
    out += (i ? ", " : "") + std::string("{address: 198.18.") + std::to_string(host >> 8) + "." +
           std::to_string(host & 0xff) + (weighted ? ", weight: " + std::to_string(1 + i % 3) : "") + "}";
  }
  return out + "]";
}

std::string vip_yaml(const char* vip, std::uint32_t table_size, const std::string& backends) {
  return std::string("    - vip: ") + vip + "\n      table_size: " + std::to_string(table_size) +
         "\n      backends: " + backends + "\n";
}

// The raw inner Maglev array of addr:80/tcp (size slot, then slot ids); empty when there is none.
std::vector<std::uint32_t> raw_table(const std::string& pin_dir, const char* addr) {
  std::vector<std::uint32_t> out;
  const int vips = bpf_obj_get((pin_dir + "/lb_vips").c_str());
  const int maglev = bpf_obj_get((pin_dir + "/lb_maglev").c_str());
  sluice_lb_vip_key key{};
  inet_pton(AF_INET, addr, &key.addr[0]);
  key.port = kVipPort;
  key.proto = IPPROTO_TCP;
  key.ip_version = 4;
  sluice_lb_vip vip{};
  std::uint32_t inner_id = 0;
  if (vips >= 0 && maglev >= 0 && bpf_map_lookup_elem(vips, &key, &vip) == 0 &&
      bpf_map_lookup_elem(maglev, &vip.vip_id, &inner_id) == 0) {
    const int inner = bpf_map_get_fd_by_id(inner_id);
    bpf_map_info info{};
    __u32 length = sizeof info;
    if (inner >= 0 && bpf_obj_get_info_by_fd(inner, &info, &length) == 0) {
      out.resize(info.max_entries);
      for (std::uint32_t i = 0; i < info.max_entries; ++i) bpf_map_lookup_elem(inner, &i, &out[i]);
    }
    if (inner >= 0) ::close(inner);
  }
  for (int fd : {vips, maglev})
    if (fd >= 0) ::close(fd);
  return out;
}

TEST(DaemonLbStart, BuildMaglevIsDeterministic) {
  std::vector<lb::MaglevBackend> backends;
  for (std::uint32_t i = 0; i < 40; ++i)
    backends.push_back({*lb::parse_address("198.18.9." + std::to_string(i + 1)), 1 + i % 3});
  constexpr std::uint32_t table_size = 65537;
  const auto first = lb::build_maglev(backends, table_size);
  const auto second = lb::build_maglev(backends, table_size);
  ASSERT_TRUE(first && second);
  ASSERT_EQ(first->size(), table_size);
  EXPECT_EQ(*first, *second);
  // Another box may list the same backends in another order: the same address at every entry.
  std::vector<lb::MaglevBackend> reversed(backends.rbegin(), backends.rend());
  const auto other_order = lb::build_maglev(reversed, table_size);
  ASSERT_TRUE(other_order);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < table_size; ++i)
    differ += !(backends[(*first)[i]].address == reversed[(*other_order)[i]].address);
  EXPECT_EQ(differ, 0u);
}

// Two daemons given the same VIPs and backends build the same tables, byte
// for byte; a restart through the pins rebuilds them identically.
TEST(DaemonLbStart, TheSameConfigBuildsByteIdenticalTablesAcrossDaemonsAndRestarts) {
  SLUICE_REQUIRE_BPFFS();
  const std::string yaml = "lb:\n  settings: {encap_source_v4: 198.18.0.2}\n  vips:\n" +
                           vip_yaml(kVip, 4099, backends_yaml(16, 37, true)) +
                           vip_yaml("198.18.0.11:80/tcp", 251, backends_yaml(20, 5));
  SluicedProcess one, other;
  ASSERT_EQ(one.start(), "");
  ASSERT_EQ(other.start(), "");
  ControlClient(one.socket_path()).result("apply", {{"yaml", yaml}});
  ControlClient(other.socket_path()).result("apply", {{"yaml", yaml}});
  for (const char* addr : {kVipAddr, "198.18.0.11"}) {
    SCOPED_TRACE(addr);
    const auto built = raw_table(one.pin_dir(), addr);
    ASSERT_FALSE(built.empty()) << "no table read";
    EXPECT_EQ(built, raw_table(other.pin_dir(), addr)) << "two daemons, one config, two tables";
  }
  const auto before = raw_table(one.pin_dir(), kVipAddr);
  ASSERT_EQ(one.stop(SIGTERM), 0) << one.log();
  ASSERT_EQ(one.start(), "");
  EXPECT_EQ(raw_table(one.pin_dir(), kVipAddr), before) << "the restart rebuilt another table";
  EXPECT_EQ(ControlClient(one.socket_path()).result("status").at("degraded"), json::value(false));
}

// The kill steps of the lb and forward parts fire in a change that reaches
// them, never during the start's own make_live of those parts.
TEST(DaemonLbStart, TheLbKillStepFiresInAChangeNotInTheStart) {
  SLUICE_REQUIRE_BPFFS();
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  ControlClient(daemon.socket_path())
      .result("apply", {{"yaml", "lb:\n  settings: {encap_source_v4: 198.18.0.2}\n  vips:\n" +
                                     vip_yaml(kVip, 251, backends_yaml(16, 3))}});
  ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  // The start rebuilds the read-back table (the lb part's make_live): no kill there.
  daemon.set_extra_args({"--fault-kill-before", "lb"});
  ASSERT_EQ(daemon.start(), "") << "killed during the start";
  {
    ControlClient client(daemon.socket_path());
    EXPECT_EQ(client.result("status").at("degraded"), json::value(false));
    // A filter-only change does not reach the lb step.
    const auto filter_only = client.call("rule.add", {{"proto", "udp"}, {"dport", 7}, {"action", "drop"}});
    EXPECT_TRUE(filter_only.ok) << "a filter-only change reached the lb step";
  }
  {
    ControlClient client(daemon.socket_path());
    const auto lb_change = client.call("backend.add", {{"vip", kVip}, {"address", "198.18.30.1"}});
    EXPECT_FALSE(lb_change.ok) << "the daemon answered an lb change instead of dying before its lb step";
  }
  EXPECT_EQ(daemon.wait_exit(), exit_sigkill) << daemon.log();
}

// A start whose wanted lb section cannot go live (it needs new backend
// slots while the read-back ones still hold theirs) reports degraded and
// runs the tables rebuilt from the baseline it reports; after it, a
// filter-only change does not redo the lb step.
TEST(DaemonLbStart, AfterADegradedLbStartAFilterOnlyChangeDoesNotRedoTheLbStep) {
  SLUICE_REQUIRE_BPFFS();
  // More than half the backend slots each: the second set cannot be placed while the first holds its slots.
  constexpr std::size_t half_and_more = SLUICE_LB_MAX_BACKENDS / 2 + 50;
  constexpr std::uint32_t table_size = 4099;  // prime, over the backend count
  const std::string settings = "lb:\n  settings: {encap_source_v4: 198.18.0.2}\n  vips:\n";
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  ControlClient(daemon.socket_path())
      .result("apply", {{"yaml", settings + vip_yaml(kVip, table_size, backends_yaml(16, half_and_more))}});
  const auto table_before = raw_table(daemon.pin_dir(), kVipAddr);
  ASSERT_FALSE(table_before.empty());
  ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  {
    std::ofstream file(daemon.state_dir() + "/state.yaml");
    file << settings << vip_yaml(kVip, table_size, backends_yaml(64, half_and_more));
  }
  daemon.set_extra_args({"--fault-kill-before", "lb"});
  ASSERT_EQ(daemon.start(), "") << "killed during the start";
  {
    ControlClient client(daemon.socket_path());
    const json::value status = client.result("status");
    ASSERT_EQ(status.at("degraded"), json::value(true)) << json::serialize(status);
    const std::string why(status.at("restore_error").as_string());
    EXPECT_NE(why.find("load balancer not made live"), std::string::npos) << why;
    EXPECT_EQ(why.find("could not be rebuilt"), std::string::npos) << why;
    // What runs is what is reported: the first set, every backend weight 1, as the maps hold it.
    EXPECT_EQ(client.result("backend.list", {{"vip", kVip}}).at("backends").as_array().size(), half_and_more);
    EXPECT_EQ(raw_table(daemon.pin_dir(), kVipAddr), table_before);
    const auto filter_only = client.call("rule.add", {{"proto", "udp"}, {"dport", 7}, {"action", "drop"}});
    EXPECT_TRUE(filter_only.ok) << "a filter-only change after the start redid the lb step";
  }
  // Still alive and answering.
  EXPECT_TRUE(ControlClient(daemon.socket_path()).call("status").ok);
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

}  // namespace
}  // namespace sluice::test
