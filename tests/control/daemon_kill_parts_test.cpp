// sluiced killed inside the lb and forward step of a change
// (--fault-kill-before lb: before the lb maps, VIPs, backends and Maglev
// tables, are written; forward: after them, before the forward maps are),
// or at any other step of a change made by an lb op, a forward op or an
// apply of both, restarts running exactly what it reports: the change is wholly absent
// (state.yaml was not replaced), in vip.list, backend.list, route.list and
// status as in the maps and packets. The daemon runs in a namespace lab (its
// next hop's interface is there); what it enforces is judged outside it, by
// frames through its own pinned maps (BPF_PROG_TEST_RUN) and by reading the
// Maglev tables from those maps.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "daemon.hpp"
#include "daemon_test_support.hpp"
#include "dataplane.hpp"
#include "maglev.hpp"
#include "netns_lab.hpp"
#include "packet_builder.hpp"
#include "privileges.hpp"
#include "sluice_maps.h"
#include "xdp_fixture.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

constexpr int exit_sigkill = 128 + SIGKILL;
constexpr int exit_usage = 2;
constexpr std::uint16_t kVipPort = 80;
constexpr const char* kVipAddr = "198.18.0.10";
constexpr const char* kVip = "198.18.0.10:80/tcp";
constexpr const char* kVip2Addr = "198.18.0.11";
constexpr const char* kVip2 = "198.18.0.11:80/tcp";
// The base state's route and the one a change adds, each with its own next-hop MAC to tell them apart.
constexpr const char* kBaseRoute = "198.18.4.0/24";
constexpr const char* kBaseRouteDst = "198.18.4.1";
constexpr const char* kBaseHopMac = "02:5d:00:00:04:01";
constexpr const char* kNewRoute = "198.18.5.0/24";
constexpr const char* kNewRouteDst = "198.18.5.1";
constexpr const char* kNewHopMac = "02:5d:00:00:05:01";
constexpr const char* kNewHop = "198.18.0.5";  // not the base route's: one neighbour has one MAC
constexpr std::size_t kEthDst = 0, kOuterDst = 14 + 16;  // the outer IPv4 header follows the Ethernet header

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string mac_text(const std::vector<std::uint8_t>& frame, std::size_t at) {
  char out[18];
  std::snprintf(out, sizeof out, "%02x:%02x:%02x:%02x:%02x:%02x", frame[at], frame[at + 1], frame[at + 2], frame[at + 3],
                frame[at + 4], frame[at + 5]);
  return out;
}

std::string v4_text(const void* bytes) {
  char out[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, bytes, out, sizeof out);
  return out;
}

// The daemon's data plane judged from outside: a second load reusing its
// pins (maps and stage program array: the daemon's own stage programs run
// on its own maps), frames through BPF_PROG_TEST_RUN; the Maglev tables read
// raw from the pinned maps. Nothing is written but the lb connection
// entries the judged SYNs make (each judgement uses a fresh source port).
class PinnedJudge {
 public:
  explicit PinnedJudge(std::string pin_dir) : pin_dir_(std::move(pin_dir)) {
    dataplane::LoadOptions options;
    options.pin_dir = pin_dir_;
    auto loaded = dataplane::Dataplane::load(options);
    if (!loaded) {
      ADD_FAILURE() << "load over the daemon's pins: " << loaded.error().message;
      return;
    }
    plane_.emplace(std::move(*loaded));
    EXPECT_FALSE(plane_->reused_maps().empty()) << "no pins reused: the test would judge its own empty maps";
  }
  bool ok() const { return plane_.has_value(); }

  // The backend a new TCP flow to vip_addr:80 is tunnelled to (outer IPv4 destination), or nullopt when not balanced.
  std::optional<std::string> balanced_to(const char* vip_addr) {
    const Bytes frame = PacketBuilder()
                            .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                            .ipv4("198.18.0.1", vip_addr)
                            .tcp(next_port_++, kVipPort)
                            .build();
    const auto out = run_xdp(plane_->entry_prog_fd(), frame);
    if (out.verdict != XDP_TX || out.output.size() < kOuterDst + 4 || out.output[14 + 9] != IPPROTO_IPIP)
      return std::nullopt;
    return v4_text(&out.output[kOuterDst]);
  }
  // The destination MAC a UDP datagram to `dst` is routed with, or nullopt when the forward stage does not route it.
  std::optional<std::string> routed_to(const char* dst) {
    const Bytes frame =
        PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02").ipv4("198.18.0.1", dst).udp(40000, 53).build();
    const auto out = run_xdp(plane_->entry_prog_fd(), frame);
    if (out.verdict != XDP_REDIRECT) return std::nullopt;
    return mac_text(out.output, kEthDst);
  }
  std::uint32_t stages() {
    auto config = plane_->config();
    EXPECT_TRUE(config) << config.error().message;
    return config ? config->stages_enabled : 0;
  }
  // The live Maglev table of vip_addr:80/tcp as backend addresses, entry by
  // entry; nullopt when lb_vips has no such VIP. Read raw: lb_vips ->
  // vip_id -> lb_maglev[vip_id] (inner array: size, then slot ids) -> lb_backends.
  std::optional<std::vector<std::string>> maglev_table(const char* vip_addr) {
    const int vips = bpf_obj_get((pin_dir_ + "/lb_vips").c_str());
    const int maglev = bpf_obj_get((pin_dir_ + "/lb_maglev").c_str());
    const int backends = bpf_obj_get((pin_dir_ + "/lb_backends").c_str());
    std::optional<std::vector<std::string>> out;
    [&] {
      ASSERT_GE(vips, 0) << "lb_vips pin";
      ASSERT_GE(maglev, 0) << "lb_maglev pin";
      ASSERT_GE(backends, 0) << "lb_backends pin";
      sluice_lb_vip_key key{};
      inet_pton(AF_INET, vip_addr, &key.addr[0]);
      key.port = kVipPort;
      key.proto = IPPROTO_TCP;
      key.ip_version = 4;
      sluice_lb_vip vip{};
      if (bpf_map_lookup_elem(vips, &key, &vip) != 0) return;
      out.emplace();
      std::uint32_t inner_id = 0;
      if (bpf_map_lookup_elem(maglev, &vip.vip_id, &inner_id) != 0) return;  // a VIP without a table: no entry
      const int inner = bpf_map_get_fd_by_id(inner_id);
      ASSERT_GE(inner, 0) << "lb_maglev[" << vip.vip_id << "] inner map";
      std::uint32_t size_slot = SLUICE_LB_MAGLEV_SIZE_SLOT, size = 0;
      EXPECT_EQ(bpf_map_lookup_elem(inner, &size_slot, &size), 0);
      for (std::uint32_t entry = 1; entry <= size; ++entry) {
        std::uint32_t slot = 0;
        sluice_lb_backend backend{};
        EXPECT_EQ(bpf_map_lookup_elem(inner, &entry, &slot), 0) << entry;
        EXPECT_EQ(bpf_map_lookup_elem(backends, &slot, &backend), 0) << slot;
        out->push_back(v4_text(&backend.addr[0]));
      }
      ::close(inner);
    }();
    for (int fd : {vips, maglev, backends})
      if (fd >= 0) ::close(fd);
    return out;
  }

 private:
  std::string pin_dir_;
  std::optional<dataplane::Dataplane> plane_;
  std::uint16_t next_port_ = 40000;
};

// What the daemon reports of one VIP: its backends (address, weight, state)
// and the Maglev table those imply; nullopt when vip.list has no such VIP.
struct ReportedVip {
  std::vector<std::string> backends;  // "address weight state"
  std::vector<std::string> table;     // what build_maglev makes of the up backends and their weights
};

std::optional<ReportedVip> reported_vip(ControlClient& client, const char* vip) {
  const json::value vips = client.result("vip.list");
  std::optional<std::uint32_t> table_size;
  for (const auto& listed : vips.at("vips").as_array())
    if (listed.at("vip") == json::value(vip)) table_size = listed.at("table_size").to_number<std::uint32_t>();
  if (!table_size) return std::nullopt;
  ReportedVip out;
  std::vector<lb::MaglevBackend> members;
  const json::value listed = client.result("backend.list", {{"vip", vip}});
  for (const auto& b : listed.at("backends").as_array()) {
    const std::string address(b.at("address").as_string());
    const auto weight = b.at("weight").to_number<std::uint32_t>();
    const std::string state(b.at("state").as_string());
    out.backends.push_back(address + " " + std::to_string(weight) + " " + state);
    if (state != "up" || b.at("health") == json::value("down")) continue;
    auto parsed = lb::parse_address(address);
    EXPECT_TRUE(parsed) << address;
    if (parsed) members.push_back({*parsed, weight});
  }
  std::sort(out.backends.begin(), out.backends.end());
  auto table = lb::build_maglev(members, *table_size);
  EXPECT_TRUE(table) << table.error().message;
  if (table)
    for (std::uint32_t index : *table) out.table.push_back(lb::to_string(members[index].address));
  return out;
}

std::vector<std::string> reported_routes(ControlClient& client) {
  std::vector<std::string> out;
  const json::value listed = client.result("route.list");
  for (const auto& route : listed.at("routes").as_array()) out.emplace_back(route.at("prefix").as_string());
  std::sort(out.begin(), out.end());
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Reported == enforced, for both VIPs, both routes and the stage bits.
void expect_enforced_as_reported(ControlClient& client, PinnedJudge& judge) {
  for (const auto& [vip, addr] : {std::pair{kVip, kVipAddr}, std::pair{kVip2, kVip2Addr}}) {
    SCOPED_TRACE(vip);
    const auto reported = reported_vip(client, vip);
    const auto live_table = judge.maglev_table(addr);
    ASSERT_EQ(reported.has_value(), live_table.has_value()) << "vip.list and lb_vips disagree";
    const auto to = judge.balanced_to(addr);
    ASSERT_EQ(to.has_value(), reported.has_value()) << "a reported VIP is not balanced, or an unreported one is";
    if (!reported) continue;
    // Entry by entry: the table packets read is the one the reported backends and weights make.
    EXPECT_EQ(*live_table, reported->table) << "the Maglev table is not built from the reported weights";
    EXPECT_TRUE(contains(reported->table, *to)) << *to << " is not a reported backend of " << vip;
  }
  const auto routes = reported_routes(client);
  for (const auto& [prefix, dst, mac] :
       {std::tuple{kBaseRoute, kBaseRouteDst, kBaseHopMac}, std::tuple{kNewRoute, kNewRouteDst, kNewHopMac}}) {
    SCOPED_TRACE(prefix);
    const auto routed = judge.routed_to(dst);
    EXPECT_EQ(routed.has_value(), contains(routes, prefix)) << "route.list and the forward stage disagree";
    if (routed) {
      EXPECT_EQ(*routed, mac);
    }
  }
  const json::value stages = client.result("config.get").at("stages");
  EXPECT_EQ(stages.at("lb").as_bool(), (judge.stages() & SLUICE_STAGE_BIT(SLUICE_STAGE_LB)) != 0);
  EXPECT_EQ(stages.at("forward").as_bool(), (judge.stages() & SLUICE_STAGE_BIT(SLUICE_STAGE_FORWARD)) != 0);
}

// What a restart must report exactly as before the killed change.
std::string reported_state(ControlClient& client) {
  std::string out;
  for (const char* vip : {kVip, kVip2}) {
    const auto reported = reported_vip(client, vip);
    out += std::string(vip) + ": ";
    if (!reported) out += "absent";
    for (const auto& b : reported ? reported->backends : std::vector<std::string>{}) out += b + "; ";
    out += "\n";
  }
  for (const auto& route : reported_routes(client)) out += "route " + route + "\n";
  return out;
}

// A step name that is none of them is refused, naming the value and the
// steps, before any directory is created (none of these paths is made).
TEST(DaemonStartLbForward, AnUnknownKillStepIsRefusedNamingItAndTheSteps) {
  const std::string base = "/tmp/sluiced-kill-step-" + std::to_string(::getpid());
  const auto refused = run_command(std::string("timeout 20 ") + sluiced_path() + " --metrics off --socket " + base +
                                       "/run/s.sock --bpffs " + base + "/pins --state-dir " + base +
                                       "/state --fault-kill-before lb-maps 2>&1",
                                   std::chrono::seconds(40));
  EXPECT_EQ(refused.exit_code, exit_usage) << refused.output;
  EXPECT_NE(refused.output.find("--fault-kill-before 'lb-maps'"), std::string::npos) << refused.output;
  for (std::string_view step : daemon::fault_kill_part_steps)
    EXPECT_NE(refused.output.find(std::string(" ") + std::string(step) + ","), std::string::npos) << step << ": " << refused.output;
  EXPECT_FALSE(fs::exists(base)) << "a refused option created " << base;
}

TEST(DaemonStartLbForward, KilledInsideTheLbOrForwardStepItRestartsRunningWhatItReports) {
  SLUICE_REQUIRE_NETNS();
  TwoHostLab lab;
  const std::string base_yaml = std::string("lb:\n  settings: {encap_source_v4: 198.18.0.2}\n  vips:\n") +
                                "    - vip: " + kVip + "\n      table_size: 251\n" +
                                "      backends: [{address: 198.18.1.1}, {address: 198.18.1.2}]\n" +
                                "forward:\n  routes:\n    - {prefix: " + kBaseRoute + ", via: 198.18.0.1, dev: " +
                                lab.box_if + ", mac: '" + kBaseHopMac + "'}\n";
  // A second VIP and a second route at once: one apply with work in both parts.
  std::string both_yaml = base_yaml;
  both_yaml.insert(both_yaml.find("forward:"), std::string("    - vip: ") + kVip2 +
                                                   "\n      table_size: 251\n      backends: [{address: 198.18.1.3}]\n");
  both_yaml += std::string("    - {prefix: ") + kNewRoute + ", via: " + kNewHop + ", dev: " + lab.box_if + ", mac: '" +
               kNewHopMac + "'}\n";
  struct Change {
    const char* what;
    std::string op;
    json::object args;
  };
  const std::vector<Change> changes = {
      {"backend.add", "backend.add", {{"vip", kVip}, {"address", "198.18.1.3"}, {"weight", 2}}},
      // Only the table changes: the maps hold no weights, a restart must not keep a table built from this one.
      {"backend.set weight", "backend.set", {{"vip", kVip}, {"address", "198.18.1.2"}, {"weight", 3}}},
      {"route.add",
       "route.add",
       {{"prefix", kNewRoute}, {"via", kNewHop}, {"dev", lab.box_if}, {"mac", kNewHopMac}}},
      {"apply lb and forward", "apply", {{"yaml", both_yaml}}},
  };

  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient(daemon.socket_path()).result("apply", {{"yaml", base_yaml}});
  PinnedJudge judge(daemon.pin_dir());
  ASSERT_TRUE(judge.ok());
  const std::string state_path = daemon.state_dir() + "/state.yaml";
  // The new steps and, around them, every step of StateOps::change: a kill
  // after the lb maps were written (forward, config, ... rename) leaves maps
  // the restart must bring back to state.yaml, weights included.
  std::vector<std::string_view> steps(std::begin(daemon::fault_kill_steps), std::end(daemon::fault_kill_steps));
  steps.insert(std::find(steps.begin(), steps.end(), "config"), std::begin(daemon::fault_kill_part_steps),
               std::end(daemon::fault_kill_part_steps));
  for (std::string_view step : steps) {
    for (const auto& change : changes) {
      SCOPED_TRACE("killed before " + std::string(step) + " in " + change.what);
      std::string before, file_before;
      {
        ControlClient client(daemon.socket_path());
        before = reported_state(client);
        ASSERT_EQ(before.find(kVip2 + std::string(": absent")) != std::string::npos, true) << before;
        expect_enforced_as_reported(client, judge);
      }
      file_before = read_text(state_path);
      ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
      daemon.set_extra_args({"--fault-kill-before", std::string(step)});
      ASSERT_EQ(daemon.start(), "");
      std::string answer;
      {
        ControlClient client(daemon.socket_path());
        const auto reply = client.call(change.op, change.args);
        EXPECT_FALSE(reply.ok) << "the daemon answered instead of dying";
        if (reply.error) answer = reply.error->message;
      }
      ASSERT_EQ(daemon.wait_exit(), exit_sigkill) << answer << "\n" << daemon.log();

      daemon.set_extra_args({});
      ASSERT_EQ(daemon.start(), "");
      ControlClient client(daemon.socket_path());
      const json::value status = client.result("status");
      EXPECT_EQ(status.at("degraded"), json::value(false)) << json::serialize(status);
      // state.yaml was not replaced: the change is wholly absent from what is reported...
      EXPECT_EQ(reported_state(client), before);
      EXPECT_EQ(read_text(state_path), file_before);
      // ...and from what runs.
      expect_enforced_as_reported(client, judge);

      // The change made after the restart goes live and is enforced; then back to the base state.
      client.result(change.op, change.args);
      EXPECT_NE(reported_state(client), before) << "the change changed nothing reported";
      expect_enforced_as_reported(client, judge);
      client.result("apply", {{"yaml", base_yaml}});
      EXPECT_EQ(reported_state(client), before);
    }
  }
  {
    ControlClient client(daemon.socket_path());
    expect_enforced_as_reported(client, judge);
  }
  EXPECT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
}

}  // namespace
}  // namespace sluice::test
