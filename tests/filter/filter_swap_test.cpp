// Atomic replacement: two rule sets that treat a probe packet oppositely
// (and by different stages of the filter) are swapped thousands of times
// while another thread runs the probe continuously. Every probe must be
// classified wholly by one set: its (verdict, reason) is one of the two sets'
// outcomes, never a third one that a half-old, half-new set would produce.
//   SLUICE_FILTER_SWAPS=<n>  swaps per run (default 2000)
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <algorithm>
#include <vector>

#include "filter_fixture.hpp"

namespace sluice::test {
namespace {

using filter::Action;
using filter::FilterRule;

constexpr std::uint32_t filler_rules = 300;
constexpr std::uint32_t probe_position = 150;

// Fillers never match the probe (other dst port); the rule at probe_position does.
filter::RuleSet make_set(bool drop_probe) {
  filter::RuleSet set;
  for (std::uint32_t i = 0; i < filler_rules; ++i) {
    FilterRule r;
    r.priority = i * 2 + (drop_probe ? 0 : 1);  // different priorities: positions, not numbers, matter
    r.dst_ports = filter::PortRange{static_cast<std::uint16_t>(1000 + i), static_cast<std::uint16_t>(1000 + i)};
    r.action = i % 2 ? Action::Pass : Action::Drop;
    if (i == probe_position) {
      r.dst_ports = filter::PortRange{80, 80};
      r.src = cidr("198.18.0.0/16");
      r.action = drop_probe ? Action::Drop : Action::Pass;
    }
    set.rules.push_back(r);
  }
  set.prefixes = {{cidr("198.19.0.0/16"), Action::Drop}};
  if (!drop_probe) set.prefixes.push_back({cidr("198.18.0.1/32"), Action::Pass});  // B passes the probe earlier, by allowlist
  set.default_policy = drop_probe ? filter::DefaultPolicy::Pass : filter::DefaultPolicy::Drop;
  return set;
}

TEST_F(FilterTest, EveryProbeSeesOneWholeRuleSetAcrossThousandsOfSwaps) {
  const char* env = std::getenv("SLUICE_FILTER_SWAPS");
  const std::uint64_t swaps = env ? std::strtoull(env, nullptr, 10) : 2000;
  const filter::RuleSet drop_set = make_set(true), pass_set = make_set(false);
  const Bytes probe = ether().ipv4("198.18.0.1", "198.18.1.1").tcp(40000, 80).build();
  replace(drop_set);
  ASSERT_EQ(send(probe).verdict, XDP_DROP);
  replace(pass_set);
  ASSERT_EQ(send(probe).verdict, XDP_PASS);
  const auto drops_before = packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP);
  const auto passes_before = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_ALLOWLIST);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> probes{0}, drops{0}, passes{0}, other{0};
  const int prog = plane_->entry_prog_fd();
  std::thread prober([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const RunResult result = run_xdp(prog, probe);
      probes++;
      if (result.verdict == XDP_DROP) drops++;
      else if (result.verdict == XDP_PASS) passes++;
      else other++;
    }
  });
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < swaps; ++i) {
    auto replaced = table_->replace(i % 2 ? pass_set : drop_set);
    if (!replaced) {
      stop = true;
      prober.join();
      FAIL() << "swap " << i << ": " << replaced.error().message;
    }
  }
  stop = true;
  prober.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%llu swaps in %.1f s (%.2f ms each), %llu probes: %llu dropped, %llu passed\n",
              static_cast<unsigned long long>(swaps), seconds, seconds * 1000 / swaps,
              static_cast<unsigned long long>(probes.load()), static_cast<unsigned long long>(drops.load()),
              static_cast<unsigned long long>(passes.load()));
  EXPECT_EQ(other.load(), 0u);
  EXPECT_GT(drops.load(), 0u) << "the probe must have seen the drop set";
  EXPECT_GT(passes.load(), 0u) << "the probe must have seen the pass set";
  // Reasons: every drop came from set A's rule, every pass from set B's allowlist.
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP) - drops_before, drops.load());
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_ALLOWLIST) - passes_before, passes.load());
  auto all = plane_->verdict_counts();
  ASSERT_TRUE(all);
  for (const auto& c : *all) {
    const bool expected = (c.verdict == SLUICE_VERDICT_DROP && c.reason == SLUICE_REASON_FILTER_RULE_DROP) ||
                          (c.verdict == SLUICE_VERDICT_PASS && c.reason == SLUICE_REASON_FILTER_ALLOWLIST);
    EXPECT_TRUE(expected) << c.total.packets << " probes got verdict " << c.verdict << " reason " << c.reason
                          << ": a mix of the two sets";
  }
}

// The IPv4 lists switch between the trie and a DIR-24-8 copy inside the
// generation swap: sets D1 and D2 list enough prefixes for a copy (from
// kDirFrom on) and block the probe's source, set T lists one prefix (the
// trie) and allows it. Cycling D1, D2, T over the two generations makes each
// generation plug, rebuild and unplug its copy while it is idle. Every probe
// is blocked by the blocklist or passed by the allowlist, nothing else:
// never a generation whose copy is missing, half plugged or stale.
class FilterDirSwapTest : public FilterTest {
 public:
  static constexpr std::size_t kDirFrom = 64;

 protected:
  FilterDirSwapTest() { table_options_.dir_prefixes = kDirFrom; }
};

filter::RuleSet listed_set(std::uint32_t variant) {
  filter::RuleSet set;
  set.default_policy = filter::DefaultPolicy::Drop;  // a lost allowlist entry shows as a default drop
  if (variant == 2) {
    set.prefixes = {{cidr("198.18.0.1/32"), Action::Pass}};
    return set;
  }
  // /32s with their own tbl8 groups plus /24s, all away from the probe; the probe's /16 is blocked.
  for (std::uint32_t i = 0; i < 2 * FilterDirSwapTest::kDirFrom; ++i) {
    const std::string third = std::to_string(i + 1), fourth = std::to_string(variant * 100 + i % 100 + 1);
    set.prefixes.push_back({cidr("198.19." + third + "." + fourth + "/32"), Action::Drop});
    set.prefixes.push_back({cidr("198.19." + std::to_string(128 + i % 100) + ".0/24"), Action::Drop});
  }
  std::sort(set.prefixes.begin(), set.prefixes.end(),
            [](const auto& a, const auto& b) { return maps::to_string(a.prefix) < maps::to_string(b.prefix); });
  set.prefixes.erase(std::unique(set.prefixes.begin(), set.prefixes.end(),
                                 [](const auto& a, const auto& b) { return filter::same_prefix(a.prefix, b.prefix); }),
                     set.prefixes.end());
  set.prefixes.push_back({cidr("198.18.0.0/16"), Action::Drop});
  return set;
}

TEST_F(FilterDirSwapTest, ProbesSeeWholeSetsWhileListsSwitchBetweenTrieAndDir24_8) {
  const filter::RuleSet sets[] = {listed_set(0), listed_set(1), listed_set(2)};
  const Bytes probe = ether().ipv4("198.18.0.1", "198.18.1.1").tcp(40000, 80).build();
  replace(sets[0]);
  ASSERT_TRUE(table_->prefix_dir(table_->live_generation())->plugged);
  ASSERT_EQ(send(probe).verdict, XDP_DROP);
  replace(sets[2]);
  ASSERT_FALSE(table_->prefix_dir(table_->live_generation())->plugged);
  ASSERT_EQ(send(probe).verdict, XDP_PASS);
  const auto drops_before = packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_BLOCKLIST);
  const auto passes_before = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_ALLOWLIST);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> probes{0}, drops{0}, passes{0}, other{0};
  const int prog = plane_->entry_prog_fd();
  std::thread prober([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const RunResult result = run_xdp(prog, probe);
      probes++;
      if (result.verdict == XDP_DROP) drops++;
      else if (result.verdict == XDP_PASS) passes++;
      else other++;
    }
  });
  // Each swap that plugs a copy builds a 64 MiB tbl24: few swaps, each switching a generation.
  constexpr std::uint32_t swaps = 24;
  std::uint32_t plugs = 0, unplugs = 0;
  for (std::uint32_t i = 0; i < swaps; ++i) {
    const std::uint32_t idle = table_->live_generation() ^ 1;
    const bool had = table_->prefix_dir(idle)->plugged;
    auto replaced = table_->replace(sets[i % 3]);
    if (!replaced) {
      stop = true;
      prober.join();
      FAIL() << "swap " << i << ": " << replaced.error().message;
    }
    const bool has = table_->prefix_dir(table_->live_generation())->plugged;
    EXPECT_EQ(has, i % 3 != 2) << "swap " << i;
    plugs += !had && has;
    unplugs += had && !has;
  }
  stop = true;
  prober.join();
  std::printf("%u swaps (%u plugged a copy, %u unplugged one), %llu probes: %llu dropped, %llu passed\n", swaps, plugs,
              unplugs, static_cast<unsigned long long>(probes.load()), static_cast<unsigned long long>(drops.load()),
              static_cast<unsigned long long>(passes.load()));
  EXPECT_GT(plugs, 0u);
  EXPECT_GT(unplugs, 0u);
  EXPECT_EQ(other.load(), 0u);
  EXPECT_GT(drops.load(), 0u);
  EXPECT_GT(passes.load(), 0u);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_BLOCKLIST) - drops_before, drops.load());
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_ALLOWLIST) - passes_before, passes.load());
  auto all = plane_->verdict_counts();
  ASSERT_TRUE(all);
  for (const auto& c : *all) {
    const bool expected = (c.verdict == SLUICE_VERDICT_DROP && c.reason == SLUICE_REASON_FILTER_BLOCKLIST) ||
                          (c.verdict == SLUICE_VERDICT_PASS && c.reason == SLUICE_REASON_FILTER_ALLOWLIST);
    EXPECT_TRUE(expected) << c.total.packets << " probes got verdict " << c.verdict << " reason " << c.reason
                          << ": a generation read half switched";
  }
}

// Single prefix changes on the live generation: its copy comes at kDirFrom
// prefixes and goes below half of that, and packets see every prefix all along.
TEST_F(FilterDirSwapTest, LiveListGainsAndLosesItsCopyWithSinglePrefixChanges) {
  const Bytes listed_probe = ether().ipv4("198.19.0.1", "198.18.1.1").tcp(40000, 80).build();
  const Bytes unlisted_probe = ether().ipv4("198.18.0.1", "198.18.1.1").tcp(40000, 80).build();
  auto live_plugged = [&] { return table_->prefix_dir(table_->live_generation())->plugged; };
  std::vector<maps::Prefix> added;
  for (std::uint32_t i = 0; i < kDirFrom; ++i) {
    added.push_back(cidr("198.19." + std::to_string(i) + ".1/32"));
    ASSERT_TRUE(table_->add_prefix({added.back(), Action::Drop, 0}));
    EXPECT_EQ(live_plugged(), i + 1 >= kDirFrom) << i + 1 << " prefixes";
    ASSERT_EQ(send(listed_probe).verdict, XDP_DROP) << i + 1 << " prefixes";
    ASSERT_EQ(send(unlisted_probe).verdict, XDP_PASS) << i + 1 << " prefixes";
  }
  while (added.size() > 1) {
    ASSERT_TRUE(table_->remove_prefix(added.back()));
    added.pop_back();
    EXPECT_EQ(live_plugged(), added.size() * 2 >= kDirFrom) << added.size() << " prefixes";
    ASSERT_EQ(send(listed_probe).verdict, XDP_DROP) << added.size() << " prefixes";
  }
  ASSERT_TRUE(table_->remove_prefix(added.back()));
  EXPECT_EQ(send(listed_probe).verdict, XDP_PASS);
  EXPECT_TRUE(table_->prefix_dir_error().empty()) << table_->prefix_dir_error();
}

}  // namespace
}  // namespace sluice::test
