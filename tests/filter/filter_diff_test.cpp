// Differential test: random rule sets of 1..4096 rules and a million random
// and adversarial frames (IPv4/IPv6, VLAN, fragments, extension headers,
// truncated and malformed headers, boundary ports and prefixes) through the
// data plane (BPF_PROG_TEST_RUN) and the reference model; every frame must
// get the same verdict and the same reason counter from both.
//   SLUICE_FILTER_DIFF_SEED=<n>     replay a run (the seed is printed)
//   SLUICE_FILTER_DIFF_PACKETS=<n>  packets per run (default 1,000,000)
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <random>

#include "filter_fixture.hpp"
// after the contract: the skeleton names its structs
#include "sluice.skel.h"
#include "filter_model.hpp"

namespace sluice::test {
namespace {

using filter::Action;
using filter::FilterRule;

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  return text ? std::strtoull(text, nullptr, 10) : fallback;
}

class Random {
 public:
  explicit Random(std::uint64_t seed) : rng_(seed) {}
  std::uint64_t below(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <class T>
  const T& pick(const std::vector<T>& from) { return from[below(from.size())]; }

 private:
  std::mt19937_64 rng_;
};

// Small pools so rules and packets meet often, with the edges of each range.
const std::vector<std::string> v4_hosts = {"198.18.0.0", "198.18.0.1", "198.18.0.255", "198.18.1.1", "198.18.128.7",
                                           "198.19.255.255", "198.19.0.1", "198.18.64.64"};
const std::vector<std::string> v6_hosts = {"2001:db8::", "2001:db8::1", "2001:db8:0:1::1", "2001:db8:ffff::ffff",
                                           "2001:db8:1::", "2001:db9::1"};
const std::vector<std::uint16_t> ports = {0, 1, 22, 53, 79, 80, 81, 443, 1023, 1024, 8080, 32768, 65534, 65535};
const std::vector<std::uint8_t> protos = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, 47, 0};
const std::vector<std::uint8_t> icmp_types = {0, 3, 8, 11, 128, 129, 135, 255};

std::string v4_text(std::uint32_t host_order) {
  return std::to_string(host_order >> 24) + "." + std::to_string((host_order >> 16) & 255) + "." +
         std::to_string((host_order >> 8) & 255) + "." + std::to_string(host_order & 255);
}

maps::Prefix random_prefix(Random& r, bool v6) {
  // a pool host with its host bits cleared to a random length
  auto parsed = maps::parse_prefix(v6 ? r.pick(v6_hosts) : r.pick(v4_hosts));
  maps::Prefix p = *parsed;
  std::visit(
      [&](auto& key) {
        const std::uint32_t max = sizeof(key.addr) * 8;
        const std::uint32_t len = r.chance(0.2) ? max : static_cast<std::uint32_t>(r.below(max + 1));
        key.prefixlen = len;
        for (std::uint32_t bit = len; bit < max; ++bit) key.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
      },
      p);
  return p;
}

filter::PortRange random_range(Random& r) {
  std::uint16_t a = r.chance(0.7) ? r.pick(ports) : static_cast<std::uint16_t>(r.below(65536));
  std::uint16_t b = r.chance(0.5) ? a : (r.chance(0.7) ? r.pick(ports) : static_cast<std::uint16_t>(r.below(65536)));
  if (a > b) std::swap(a, b);
  return {a, b};
}

filter::RuleSet random_set(Random& r, std::size_t rule_count) {
  filter::RuleSet set;
  set.rate_classes = {filter::RateClass{.id = 3}};  // unlimited: never runs dry, so stateless
  set.default_policy = r.chance(0.5) ? filter::DefaultPolicy::Drop : filter::DefaultPolicy::Pass;
  const std::size_t prefix_count = r.below(8);
  for (std::size_t i = 0; i < prefix_count; ++i) {
    filter::PrefixEntry e{random_prefix(r, r.chance(0.4)), Action::Drop, 0};
    if (std::visit([](const auto& k) { return k.prefixlen; }, e.prefix) < 8) continue;  // /0../7 would swallow the run
    const auto kind = r.below(3);
    e.action = kind == 0 ? Action::Drop : kind == 1 ? Action::Pass : Action::RateLimit;
    e.rate_class = 3;
    const bool dup = std::any_of(set.prefixes.begin(), set.prefixes.end(),
                                 [&](const auto& x) { return filter::same_prefix(x.prefix, e.prefix); });
    if (!dup) set.prefixes.push_back(e);
  }
  // distinct priorities, shuffled
  std::vector<std::uint32_t> priorities(rule_count);
  for (std::size_t i = 0; i < rule_count; ++i) priorities[i] = static_cast<std::uint32_t>(i * 3 + r.below(3));
  for (std::size_t i = 0; i < rule_count; ++i) {
    FilterRule rule;
    rule.priority = priorities[i];
    // small sets: loose rules that match often; big sets: specific rules, so packets reach deep positions
    const double p = std::min(0.92, 0.3 + 0.06 * std::log2(static_cast<double>(rule_count)));
    const bool v6 = r.chance(0.4);
    if (r.chance(p)) rule.src = random_prefix(r, v6);
    if (r.chance(p)) rule.dst = random_prefix(r, v6);
    if (r.chance(p)) rule.protocol = r.pick(protos);
    if (r.chance(p * 0.6)) rule.src_ports = random_range(r);
    if (r.chance(p)) rule.dst_ports = random_range(r);
    if (r.chance(p * 0.5)) {
      const auto mask = static_cast<std::uint8_t>(r.below(256));
      rule.tcp_flags = filter::TcpFlagMatch{mask, static_cast<std::uint8_t>(r.below(256) & mask)};
    }
    if (r.chance(p * 0.5)) rule.icmp_type = r.pick(icmp_types);
    if (r.chance(p * 0.3)) rule.ifindex = static_cast<std::uint32_t>(1 + r.below(2));
    const auto kind = r.below(4);
    rule.action = kind == 0 ? Action::Drop : kind == 1 ? Action::Pass : kind == 2 ? Action::PassTrack : Action::RateLimit;
    if (rule.action == Action::RateLimit) rule.rate_class = 3;
    // An ICMP type under the other family's ICMP protocol is refused by validation (no packet can match it).
    if (!filter::validate(rule, set.rate_classes)) rule.icmp_type.reset();
    set.rules.push_back(rule);
  }
  return set;
}

Bytes random_frame(Random& r) {
  if (r.chance(0.02))  // ARP: non-IP
    return PacketBuilder().eth("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", 0x0806).raw(Bytes(28, 0x11)).build();
  PacketBuilder b = PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02");
  const auto vlans = r.chance(0.8) ? 0 : r.below(4);  // 3: too deep
  for (std::uint64_t i = 0; i < vlans; ++i) b.vlan(static_cast<std::uint16_t>(r.below(4096)), i == 0 && vlans > 1 ? 0x88a8 : 0x8100);
  const bool v6 = r.chance(0.4);
  auto host = [&](const std::vector<std::string>& pool, bool is_v6) -> std::string {
    if (r.chance(0.75)) return r.pick(pool);
    if (!is_v6) return v4_text(0xc6120000u | static_cast<std::uint32_t>(r.below(1u << 17)));  // 198.18.0.0/15
    char text[64];
    std::snprintf(text, sizeof(text), "2001:db8:%x::%x", static_cast<unsigned>(r.below(3)), static_cast<unsigned>(r.below(65536)));
    return text;
  };
  const std::string src = host(v6 ? v6_hosts : v4_hosts, v6), dst = host(v6 ? v6_hosts : v4_hosts, v6);
  const bool later_fragment = r.chance(0.08);
  const bool first_fragment = !later_fragment && r.chance(0.05);
  const auto proto_pick = r.below(10);
  if (!v6) {
    Ipv4Opts o;
    if (later_fragment) o.frag_offset_bytes = static_cast<std::uint16_t>(8 * (1 + r.below(100)));
    o.more_fragments = first_fragment || (later_fragment && r.chance(0.5));
    if (r.chance(0.1)) o.options = Bytes(4 * (1 + r.below(3)), 1);
    if (r.chance(0.01)) o.ihl_override = static_cast<std::uint8_t>(r.below(16));
    if (r.chance(0.01)) o.total_length_override = static_cast<std::uint16_t>(r.below(200));
    if (later_fragment || proto_pick == 9) o.protocol_override = r.pick(protos);
    b.ipv4(src, dst, o);
  } else {
    Ipv6Opts o;
    if (r.chance(0.01)) o.payload_length_override = static_cast<std::uint16_t>(r.below(200));
    b.ipv6(src, dst, o);
    const auto exts = r.chance(0.8) ? 0 : r.below(10);
    for (std::uint64_t i = 0; i < exts; ++i) {
      switch (r.below(3)) {
        case 0: b.ipv6_dest_opts(); break;
        case 1: b.ipv6_hop_by_hop(); break;
        default: b.ipv6_ah(); break;
      }
    }
    if (later_fragment)
      b.ipv6_fragment(static_cast<std::uint16_t>(8 * (1 + r.below(100))), r.chance(0.5), 1, {.next_header_override = r.pick(protos)});
    else if (first_fragment)
      b.ipv6_fragment(0, true, 1);
  }
  if (later_fragment) {
    b.payload(Bytes(8 + r.below(32), 0x16));
  } else {
    const std::uint16_t sport = r.chance(0.6) ? r.pick(ports) : static_cast<std::uint16_t>(r.below(65536));
    const std::uint16_t dport = r.chance(0.6) ? r.pick(ports) : static_cast<std::uint16_t>(r.below(65536));
    switch (proto_pick) {
      case 0: case 1: case 2: case 3:
        b.tcp(sport, dport, {.flags = static_cast<std::uint8_t>(r.below(256)),
                             .doff_override = r.chance(0.01) ? std::optional<std::uint8_t>(r.below(16)) : std::nullopt});
        break;
      case 4: case 5: case 6: b.udp(sport, dport); break;
      case 7: case 8:
        if (v6) b.icmpv6(r.pick(icmp_types), 0);
        else b.icmp(r.pick(icmp_types), 0);
        break;
      default: b.payload(Bytes(r.below(16), 0)); break;
    }
    if (r.chance(0.3)) b.payload(Bytes(r.below(64), 0xab));
  }
  if (r.chance(0.05)) b.pad_to(60 + r.below(20));
  Bytes frame = b.build();
  if (r.chance(0.04) && frame.size() > 15) frame.resize(14 + r.below(frame.size() - 14));
  return frame;
}

std::size_t random_rule_count(Random& r, std::size_t round) {
  if (round == 0) return 1;
  if (round == 1) return SLUICE_FILTER_MAX_RULES;
  // log-uniform in 1..4096: small and big sets alike
  return static_cast<std::size_t>(std::exp2(static_cast<double>(r.below(1200)) / 100.0)) + 1;
}

// The IPv4 lists are read through the trie below FilterTableOptions::dir_prefixes
// and through a DIR-24-8 copy from it on. With 3, the random sets (0..7
// prefixes) fall on both sides, so generations switch between the two
// with the swaps; with the default every set stays on the trie.
struct DiffRun {
  std::size_t dir_prefixes;
  std::uint64_t packets_divisor;  // of SLUICE_FILTER_DIFF_PACKETS
};
class FilterDiffTest : public FilterTest, public ::testing::WithParamInterface<DiffRun> {
 protected:
  FilterDiffTest() { table_options_.dir_prefixes = GetParam().dir_prefixes; }
};

TEST_P(FilterDiffTest, DataPlaneAndModelAgreeOnEveryPacket) {
  const std::uint64_t seed = env_or("SLUICE_FILTER_DIFF_SEED", std::random_device{}());
  const std::uint64_t total = env_or("SLUICE_FILTER_DIFF_PACKETS", 1'000'000) / GetParam().packets_divisor;
  std::printf("filter differential test: SLUICE_FILTER_DIFF_SEED=%llu SLUICE_FILTER_DIFF_PACKETS=%llu\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(total));
  RecordProperty("seed", std::to_string(seed));
  Random r(seed);

  filter::FilterSettings settings = filter::default_settings();
  settings.conntrack = false;  // stateless: the model has no conntrack
  ASSERT_TRUE(table_->set_settings(settings));
  const sluice_config config = dataplane::default_config();
  constexpr std::uint32_t ingress = 1;  // loopback: a real ifindex for the test run
  constexpr std::size_t rounds = 24;

  auto verdict_counters = maps::PerCpuArrayMap<sluice_counter>::from(*maps::MapFd::from_skeleton(plane_->skeleton()->maps.verdict_counters));
  ASSERT_TRUE(verdict_counters);
  auto read_slot = [&](std::uint32_t verdict, std::uint32_t reason) {
    auto v = verdict_counters->lookup(contract::counter_index(verdict, reason));
    std::uint64_t n = 0;
    if (v && *v)
      for (const auto& c : **v) n += c.packets;
    return n;
  };

  std::uint64_t sent = 0;
  std::size_t dir_rounds = 0;  // rounds whose IPv4 lists packets read through DIR-24-8
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> outcomes;  // (verdict, reason) -> packets
  std::uint64_t deep_matches = 0;  // matched a rule beyond the first bitmap word
  // Under a default-drop policy, packets a rule passes must leave the pipeline passed (not dropped at its end).
  std::uint64_t allowed_under_default_drop = 0;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t round = 0; round < rounds && sent < total; ++round) {
    const std::size_t rule_count = random_rule_count(r, round);
    const filter::RuleSet set = random_set(r, rule_count);
    replace(set);
    dir_rounds += table_->prefix_dir(table_->live_generation())->plugged;
    const auto ordered = filter::ordered_rules(set.rules);
    const std::uint64_t budget = (total - sent) / (rounds - round);
    for (std::uint64_t i = 0; i < budget; ++i, ++sent) {
      const Bytes frame = random_frame(r);
      if (frame.size() < 14) continue;
      const auto expected = filter::model::classify(set, ordered, frame, config, ingress);
      outcomes[{expected.verdict, expected.reason}]++;
      if (set.default_policy == filter::DefaultPolicy::Drop && expected.verdict == SLUICE_VERDICT_PASS &&
          expected.reason == SLUICE_REASON_FILTER_RULE_PASS)
        ++allowed_under_default_drop;
      deep_matches += expected.rule_position >= SLUICE_FILTER_WORD_BITS;
      const std::uint64_t before = read_slot(expected.verdict, expected.reason);
      const RunResult got = send(frame, ingress);
      const std::uint64_t after = read_slot(expected.verdict, expected.reason);
      if (got.verdict != static_cast<int>(expected.verdict) || after != before + 1) {
        std::string hex;
        for (std::uint8_t byte : frame) {
          char two[4];
          std::snprintf(two, sizeof(two), "%02x", byte);
          hex += two;
        }
        FAIL() << "seed " << seed << " round " << round << " (" << rule_count << " rules) packet " << i
               << ": model says verdict " << expected.verdict << " reason " << expected.reason << " (rule position "
               << expected.rule_position << "), data plane verdict " << got.verdict << ", expected reason counted "
               << (after - before) << " times\nframe " << hex;
      }
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%llu packets agreed in %.1f s\n", static_cast<unsigned long long>(sent), seconds);
  EXPECT_GE(sent, total - rounds);
  for (const auto& [key, n] : outcomes) std::printf("  verdict %u reason %2u: %llu\n", key.first, key.second, static_cast<unsigned long long>(n));
  std::printf("  matches beyond rule 64: %llu\n", static_cast<unsigned long long>(deep_matches));
  std::printf("  rounds read through DIR-24-8: %zu of %zu\n", dir_rounds, rounds);
  if (GetParam().dir_prefixes == SLUICE_FILTER_DIR_PREFIXES_DEFAULT) EXPECT_EQ(dir_rounds, 0u);
  else EXPECT_TRUE(dir_rounds > 0 && dir_rounds < rounds) << "both sides of the threshold must be exercised";
  // The mix must exercise every path of the stage, or agreement proves little.
  if (total >= 100'000) {
    for (auto [verdict, reason] : {std::pair{SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_RULE_DROP},
                                   {SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_RULE_PASS},
                                   {SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_BLOCKLIST},
                                   {SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_ALLOWLIST},
                                   {SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_DEFAULT_DROP},
                                   {SLUICE_VERDICT_PASS, SLUICE_REASON_PIPELINE_END},
                                   {SLUICE_VERDICT_PASS, SLUICE_REASON_FRAGMENT},
                                   {SLUICE_VERDICT_PASS, SLUICE_REASON_NON_IP},
                                   {SLUICE_VERDICT_DROP, SLUICE_REASON_TRUNC_TCP},
                                   {SLUICE_VERDICT_DROP, SLUICE_REASON_IPV4_BAD_TOTLEN}})
      EXPECT_GT((outcomes[{static_cast<std::uint32_t>(verdict), static_cast<std::uint32_t>(reason)}]), 100u)
          << "verdict " << verdict << " reason " << reason << " barely exercised";
    EXPECT_GT(deep_matches, 1000u);
    EXPECT_GT(allowed_under_default_drop, 100u) << "default-drop sets with passing rules barely exercised";
  }
}

INSTANTIATE_TEST_SUITE_P(PrefixListPaths, FilterDiffTest,
                         ::testing::Values(DiffRun{3, 1}, DiffRun{SLUICE_FILTER_DIR_PREFIXES_DEFAULT, 4}),
                         [](const ::testing::TestParamInfo<DiffRun>& info) {
                           return info.param.dir_prefixes == SLUICE_FILTER_DIR_PREFIXES_DEFAULT
                                      ? std::string("TrieOnly")
                                      : "DirFrom" + std::to_string(info.param.dir_prefixes);
                         });

}  // namespace
}  // namespace sluice::test
