// A restarted daemon loads over the pinned maps: the array of Maglev maps
// keeps its inner tables and the connection tables keep their entries, so
// no established flow moves. And LoadOptions::lb_conn_entries sizes both
// connection tables, validated.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "filter_model.hpp"
#include "lb_fixture.hpp"
#include "sluice.skel.h"

namespace sluice::test {
namespace {

class PinDir {
 public:
  PinDir() : path_("/sys/fs/bpf/sluice-lb-test-" + std::to_string(getpid())) { std::filesystem::remove_all(path_); }
  ~PinDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Bytes syn(std::uint16_t sport, std::uint8_t flags = TcpFlags::SYN) {
  return PacketBuilder()
      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
      .ipv4("198.18.2.2", "198.18.0.10")
      .tcp(sport, 80, {.flags = flags})
      .build();
}

Bytes outer_dst(const RunResult& r) { return Bytes(r.output.begin() + 30, r.output.begin() + 34); }

TEST(LbPinning, RestartKeepsMaglevTablesAndConnections) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  constexpr std::uint32_t vip = 3, a = 5, b = 6;
  {
    auto first = dataplane::Dataplane::load({.pin_dir = pins.path()});
    ASSERT_TRUE(first) << first.error().message;
    ASSERT_TRUE(first->install_stages());
    LbMaps maps(*first);
    maps.put_vip(vip_key("198.18.0.10", 80, IPPROTO_TCP), {vip, 0});
    maps.put_backend(a, backend("198.18.1.1", vip));
    maps.put_backend(b, backend("198.18.1.2", vip));
    maps.set_maglev(vip, {3, a, a, a});
    maps.set_settings(lb_settings());
    const auto r = run_xdp(first->entry_prog_fd(), syn(40000));
    ASSERT_EQ(r.verdict, XDP_TX);
    EXPECT_EQ(outer_dst(r), Bytes({198, 18, 1, 1}));
    // the pool changes before the restart: the established flow must stay on a
    maps.set_maglev(vip, {3, b, b, b});
  }
  for (const char* map : {"lb_vips", "lb_maglev", "lb_backends", "lb_conns_v4", "lb_conns", "lb_settings"})
    EXPECT_TRUE(std::filesystem::exists(pins.path() + "/" + map)) << map;

  auto second = dataplane::Dataplane::load({.pin_dir = pins.path()});
  ASSERT_TRUE(second) << second.error().message;
  const auto& reused = second->reused_maps();
  for (const char* map : {"lb_maglev", "lb_conns_v4", "lb_conns", "lb_backends", "lb_vip_counters"})
    EXPECT_NE(std::find(reused.begin(), reused.end(), map), reused.end()) << map << " reused";
  ASSERT_TRUE(second->install_stages());
  auto r = run_xdp(second->entry_prog_fd(), syn(40000, TcpFlags::ACK));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(outer_dst(r), Bytes({198, 18, 1, 1})) << "the connection survived the restart";
  r = run_xdp(second->entry_prog_fd(), syn(40001));
  ASSERT_EQ(r.verdict, XDP_TX);
  EXPECT_EQ(outer_dst(r), Bytes({198, 18, 1, 2})) << "the inner Maglev table survived the restart";
  LbMaps maps(*second);
  EXPECT_EQ(maps.vip_counter(vip).packets, 3u) << "counters survived";
  // a new inner table still goes in after the reuse (the outer map kept its inner-map template)
  maps.set_maglev(vip, {5, a, a, a, a, a});
  r = run_xdp(second->entry_prog_fd(), syn(40002));
  EXPECT_EQ(outer_dst(r), Bytes({198, 18, 1, 1}));
}

TEST(LbPinning, ConnEntriesSizeBothTablesAndAreValidated) {
  SLUICE_REQUIRE_PRIVILEGES();
  for (std::uint32_t bad : {0u, dataplane::kLbConnEntriesMax + 1}) {
    auto refused = dataplane::Dataplane::load({.pin_dir = {}, .lb_conn_entries = bad});
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("lb_conn_entries = " + std::to_string(bad)), std::string::npos)
        << refused.error().message;
  }
  auto sized = dataplane::Dataplane::load({.pin_dir = {}, .lb_conn_entries = 4096});
  ASSERT_TRUE(sized) << sized.error().message;
  EXPECT_EQ(bpf_map__max_entries(sized->skeleton()->maps.lb_conns_v4), 4096u);
  EXPECT_EQ(bpf_map__max_entries(sized->skeleton()->maps.lb_conns), 4096u);
  EXPECT_EQ(bpf_map__map_flags(sized->skeleton()->maps.lb_conns) & BPF_F_NO_COMMON_LRU, 0u) << "shared LRU by default";
  auto per_cpu = dataplane::Dataplane::load({.pin_dir = {}, .lb_conn_entries = 4096, .lb_conn_per_cpu_lru = true});
  ASSERT_TRUE(per_cpu) << per_cpu.error().message;
  for (const bpf_map* conns : {per_cpu->skeleton()->maps.lb_conns_v4, per_cpu->skeleton()->maps.lb_conns}) {
    bpf_map_info info{};
    std::uint32_t length = sizeof info;
    ASSERT_EQ(bpf_obj_get_info_by_fd(bpf_map__fd(conns), &info, &length), 0);
    EXPECT_EQ(info.map_flags & BPF_F_NO_COMMON_LRU, static_cast<std::uint32_t>(BPF_F_NO_COMMON_LRU)) << bpf_map__name(conns);
  }
}

TEST(LbPinning, PinnedConnTablesOfAnotherSizeAreNotSilentlyReplaced) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  {
    auto first = dataplane::Dataplane::load({.pin_dir = pins.path(), .lb_conn_entries = 4096});
    ASSERT_TRUE(first) << first.error().message;
  }
  auto second = dataplane::Dataplane::load({.pin_dir = pins.path(), .lb_conn_entries = 8192});
  ASSERT_FALSE(second) << "a different size would drop every established flow";
  EXPECT_NE(second.error().message.find("max_entries"), std::string::npos) << second.error().message;
}

}  // namespace
}  // namespace sluice::test
