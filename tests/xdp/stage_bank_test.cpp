// An upgrade of the stage programs switches every stage at once. Two loads of
// a probe object (the product's entry program and bank machinery, stages that
// stamp their load's version) share all maps; BPF_PROG_TEST_RUN shows which
// version each stage of a packet ran. Before the flip every stage is old,
// after it every stage is new, the flip is one write of stage_bank, and a
// probe stream running during repeated upgrades never sees a mix.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "dataplane.hpp"
#include "packet_builder.hpp"
#include "program_maps.hpp"
#include "stage_bank_probe.skel.h"
#include "xdp_fixture.hpp"

namespace sluice::test {
namespace {

using Trace = std::array<std::uint32_t, SLUICE_STAGE_COUNT>;
constexpr std::uint32_t kOld = 1;
constexpr std::uint32_t kNew = 2;

struct ProbeDeleter {
  void operator()(stage_bank_probe_bpf* probe) const { stage_bank_probe_bpf__destroy(probe); }
};
using Probe = std::unique_ptr<stage_bank_probe_bpf, ProbeDeleter>;

bool is_internal(const bpf_map* map) { return std::string_view(bpf_map__name(map)).find('.') != std::string_view::npos; }

// Opens and loads the probe with `version`; with `shared`, every map of
// `shared` is reused (as a restarted daemon reuses its pins).
Probe load_probe(std::uint32_t version, const stage_bank_probe_bpf* shared) {
  Probe probe(stage_bank_probe_bpf__open());
  if (!probe) return probe;
  probe->rodata->probe_version = version;
  if (shared) {
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, probe->obj) {
      if (is_internal(map)) continue;
      const bpf_map* same = bpf_object__find_map_by_name(shared->obj, bpf_map__name(map));
      if (!same || bpf_map__reuse_fd(map, bpf_map__fd(same)) != 0) return Probe();
    }
  }
  if (stage_bank_probe_bpf__load(probe.get()) != 0) return Probe();
  return probe;
}

std::array<int, SLUICE_STAGE_COUNT> stage_fds(const stage_bank_probe_bpf* probe) {
  return {bpf_program__fd(probe->progs.probe_filter), bpf_program__fd(probe->progs.probe_lb),
          bpf_program__fd(probe->progs.probe_forward)};
}

maps::StageBanks banks_of(const stage_bank_probe_bpf* probe) {
  auto open_bank = [](const bpf_map* map) {
    auto fd = maps::MapFd::from_skeleton(map);
    return maps::ProgArray::from(std::move(fd.value())).value();
  };
  auto selector = maps::ArrayMap<std::uint32_t>::from(maps::MapFd::from_skeleton(probe->maps.stage_bank).value());
  return maps::StageBanks::from({open_bank(probe->maps.stage_progs), open_bank(probe->maps.stage_progs_b1)},
                                std::move(selector.value()))
      .value();
}

const Bytes& probe_frame() {
  static const Bytes frame =
      PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02").ipv4("198.18.0.1", "198.18.1.1").udp(4000, 53).build();
  return frame;
}

// One packet through `entry`: the version each stage ran (0: the stage did not run).
Trace run_probe(const stage_bank_probe_bpf* probe, int entry_fd) {
  const int trace_fd = bpf_map__fd(probe->maps.stage_trace);
  for (std::uint32_t stage = 0; stage < SLUICE_STAGE_COUNT; ++stage) {
    const std::uint32_t none = 0;
    EXPECT_EQ(bpf_map_update_elem(trace_fd, &stage, &none, BPF_ANY), 0);
  }
  const RunResult result = run_xdp(entry_fd, probe_frame());
  EXPECT_EQ(result.verdict, XDP_PASS);
  Trace trace{};
  for (std::uint32_t stage = 0; stage < SLUICE_STAGE_COUNT; ++stage)
    EXPECT_EQ(bpf_map_lookup_elem(trace_fd, &stage, &trace[stage]), 0);
  return trace;
}

Trace all(std::uint32_t version) { return {version, version, version}; }

std::uint32_t prog_id(int prog_fd) {
  bpf_prog_info info{};
  __u32 length = sizeof info;
  EXPECT_EQ(bpf_obj_get_info_by_fd(prog_fd, &info, &length), 0);
  return info.id;
}

class StageBankTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    old_ = load_probe(kOld, nullptr);
    ASSERT_TRUE(old_) << "load probe version 1";
    new_ = load_probe(kNew, old_.get());
    ASSERT_TRUE(new_) << "load probe version 2 over the maps of version 1";
    banks_.emplace(banks_of(old_.get()));
    ASSERT_TRUE(banks_->install(stage_fds(old_.get())));
  }
  int old_entry() const { return bpf_program__fd(old_->progs.probe_entry); }

  Probe old_;
  Probe new_;
  std::optional<maps::StageBanks> banks_;
};

TEST_F(StageBankTest, BeforeTheFlipAllStagesAreOldAfterItAllAreNewAndTheFlipIsOneMapWrite) {
  ASSERT_EQ(run_probe(old_.get(), old_entry()), all(kOld));
  auto live = banks_->live_bank();
  ASSERT_TRUE(live) << live.error().message;

  // The new stages go into the idle bank: nothing a packet runs changes.
  auto staged = banks_->stage(stage_fds(new_.get()));
  ASSERT_TRUE(staged) << staged.error().message;
  EXPECT_NE(*staged, *live);
  EXPECT_EQ(run_probe(old_.get(), old_entry()), all(kOld)) << "staging must not reach live traffic";

  // The switch is this single write of stage_bank, done here by hand.
  const int selector_fd = banks_->selector().fd();
  const std::uint32_t slot = 0;
  ASSERT_EQ(bpf_map_update_elem(selector_fd, &slot, &*staged, BPF_ANY), 0);
  EXPECT_EQ(run_probe(old_.get(), old_entry()), all(kNew)) << "after the one write every stage is new";
  EXPECT_EQ(run_probe(old_.get(), bpf_program__fd(new_->progs.probe_entry)), all(kNew));
  auto reported = banks_->lookup(SLUICE_STAGE_LB);
  ASSERT_TRUE(reported && reported->has_value());
  EXPECT_EQ(**reported, prog_id(bpf_program__fd(new_->progs.probe_lb))) << "lookup reports the live bank";

  // Going back is one write too: the old bank was left whole.
  ASSERT_EQ(bpf_map_update_elem(selector_fd, &slot, &*live, BPF_ANY), 0);
  EXPECT_EQ(run_probe(old_.get(), old_entry()), all(kOld));

  // What writing the live slots one by one (the installation before banks)
  // lets a packet see between two writes: a new filter with an old lb.
  ASSERT_TRUE(maps::ProgArray::from(maps::MapFd::from_skeleton(*live == 0 ? old_->maps.stage_progs
                                                                            : old_->maps.stage_progs_b1)
                                        .value())
                  .value()
                  .set(SLUICE_STAGE_FILTER, stage_fds(new_.get())[SLUICE_STAGE_FILTER]));
  EXPECT_EQ(run_probe(old_.get(), old_entry()), (Trace{kNew, kOld, kOld}));
}

TEST_F(StageBankTest, AProbeStreamDuringRepeatedUpgradesNeverSeesAMix) {
  constexpr int kUpgrades = 40;
  constexpr int kMaxProbes = 200'000;
  std::atomic<bool> done{false};
  std::atomic<int> failed_installs{0};
  std::thread installer([&] {
    for (int i = 0; i < kUpgrades; ++i) {
      const stage_bank_probe_bpf* next = i % 2 == 0 ? new_.get() : old_.get();
      if (!banks_->install(stage_fds(next))) ++failed_installs;
    }
    done = true;
  });
  int probes = 0;
  int mixed = 0;
  std::array<int, 3> seen{};
  Trace first_mix{};
  while (!done && probes < kMaxProbes) {
    const Trace trace = run_probe(old_.get(), old_entry());
    ++probes;
    if (trace[0] != trace[1] || trace[1] != trace[2] || trace[0] == 0 || trace[0] > kNew) {
      if (mixed++ == 0) first_mix = trace;
      continue;
    }
    ++seen[trace[0]];
  }
  installer.join();
  EXPECT_EQ(failed_installs, 0);
  EXPECT_EQ(mixed, 0) << "a packet ran stages of two builds: " << first_mix[0] << "," << first_mix[1] << ","
                      << first_mix[2] << " (of " << probes << " probes)";
  EXPECT_GT(seen[kOld], 0) << probes << " probes";
  EXPECT_GT(seen[kNew], 0) << probes << " probes";
}

TEST(StageBanks, DataplaneInstallFlipsTheLiveBankAndReportsItsPrograms) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto plane = dataplane::Dataplane::load({});
  ASSERT_TRUE(plane) << plane.error().message;
  ASSERT_TRUE(plane->install_stages());
  auto first = plane->stage_banks().live_bank();
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(plane->install_stages());
  auto second = plane->stage_banks().live_bank();
  ASSERT_TRUE(second);
  EXPECT_NE(*first, *second) << "each installation flips to the other bank";
  for (std::uint32_t stage = 0; stage < SLUICE_STAGE_COUNT; ++stage) {
    auto in_live = plane->installed_stage_id(static_cast<sluice_stage>(stage));
    ASSERT_TRUE(in_live && in_live->has_value()) << "stage " << stage;
    EXPECT_EQ(**in_live, prog_id(plane->stage_prog_fd(static_cast<sluice_stage>(stage))));
  }
  // A corrupt selector is reported, not read as a bank; the data plane drops (bad_stage_bank).
  const std::uint32_t slot = 0;
  const std::uint32_t corrupt = SLUICE_STAGE_BANKS;
  ASSERT_EQ(bpf_map_update_elem(plane->stage_banks().selector().fd(), &slot, &corrupt, BPF_ANY), 0);
  auto bad = plane->stage_banks().live_bank();
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("value 2"), std::string::npos) << bad.error().message;
  const RunResult result = run_xdp(plane->entry_prog_fd(), probe_frame());
  EXPECT_EQ(result.verdict, XDP_DROP);
  auto dropped = plane->verdict_count(SLUICE_VERDICT_DROP, SLUICE_REASON_BAD_STAGE_BANK);
  ASSERT_TRUE(dropped);
  EXPECT_EQ(dropped->packets, 1u);
}

}  // namespace
}  // namespace sluice::test
