// Pinned maps: a second load (a restarted daemon) reuses them, so counters
// and config survive; and every map carries BTF, so bpftool shows field names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "netns_lab.hpp"
#include "packet_builder.hpp"
#include "xdp_fixture.hpp"

namespace sluice::test {
namespace {

class PinDir {
 public:
  PinDir() : path_("/sys/fs/bpf/sluice-test-" + std::to_string(getpid())) { std::filesystem::remove_all(path_); }
  ~PinDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Bytes probe() {
  return PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02").ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).build();
}

TEST(Pinning, SecondLoadReusesMapsWithTheirState) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  {
    auto first = dataplane::Dataplane::load({.pin_dir = pins.path()});
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_TRUE(first->reused_maps().empty());
    ASSERT_TRUE(first->install_stages());
    auto config = dataplane::default_config();
    config.non_ip_verdict = SLUICE_VERDICT_DROP;
    ASSERT_TRUE(first->set_config(config));
    EXPECT_EQ(run_xdp(first->entry_prog_fd(), probe()).verdict, XDP_PASS);
  }
  for (const char* map :
       {"verdict_counters", "config", "stage_progs", "stage_progs_b1", "stage_bank", "pkt_scratch", "drop_events"})
    EXPECT_TRUE(std::filesystem::exists(pins.path() + "/" + map)) << map;

  auto second = dataplane::Dataplane::load({.pin_dir = pins.path()});
  ASSERT_TRUE(second) << second.error().message;
  // every map the first load pinned (stages add their own maps) is reused
  const auto pinned = std::distance(std::filesystem::directory_iterator(pins.path()), std::filesystem::directory_iterator());
  EXPECT_EQ(second->reused_maps().size(), static_cast<std::size_t>(pinned));
  auto config = second->config();
  ASSERT_TRUE(config);
  EXPECT_EQ(config->non_ip_verdict, static_cast<std::uint32_t>(SLUICE_VERDICT_DROP)) << "config survived the reload";
  auto counted = second->verdict_count(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END);
  ASSERT_TRUE(counted);
  EXPECT_EQ(counted->packets, 1u) << "counters survived the reload";
  ASSERT_TRUE(second->install_stages());
  EXPECT_EQ(run_xdp(second->entry_prog_fd(), probe()).verdict, XDP_PASS);
  counted = second->verdict_count(SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END);
  EXPECT_EQ(counted->packets, 2u);
}

// A pin of the right sizes whose layout cannot be proven (no BTF) is not
// reinterpreted: the load stops and names the map.
TEST(Pinning, SameSizedPinWithoutLayoutIsRefusedNamingTheMap) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  auto impostor = maps::MapFd::create(BPF_MAP_TYPE_ARRAY, "config", sizeof(std::uint32_t), sizeof(sluice_config), 1);
  ASSERT_TRUE(impostor) << impostor.error().message;
  std::filesystem::create_directories(pins.path());
  ASSERT_TRUE(impostor->pin(pins.path() + "/config"));
  auto plane = dataplane::Dataplane::load({.pin_dir = pins.path()});
  ASSERT_FALSE(plane) << "a pinned config map without BTF was reused";
  EXPECT_NE(plane.error().message.find("reuse pin for config"), std::string::npos) << plane.error().message;
  EXPECT_NE(plane.error().message.find("carries no BTF"), std::string::npos) << plane.error().message;
}

TEST(Pinning, BpftoolDumpShowsFieldNames) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  auto plane = dataplane::Dataplane::load({.pin_dir = pins.path()});
  ASSERT_TRUE(plane) << plane.error().message;
  const auto counters = run_command("bpftool map dump pinned " + pins.path() + "/verdict_counters | head -40");
  EXPECT_NE(counters.output.find("\"packets\""), std::string::npos) << counters.output;
  EXPECT_NE(counters.output.find("\"bytes\""), std::string::npos) << counters.output;
  const auto config = run_command("bpftool map dump pinned " + pins.path() + "/config");
  EXPECT_NE(config.output.find("\"malformed_verdict\""), std::string::npos) << config.output;
}

}  // namespace
}  // namespace sluice::test
