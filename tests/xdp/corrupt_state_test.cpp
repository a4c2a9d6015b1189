// Fail closed on bad map contents: a rule set is compiled by FilterTable,
// then one value that indexes or decides is forged in its map, the way a
// bug, a foreign writer or a half-done upgrade would leave it. Each packet
// that meets the forged value must be dropped under SLUICE_REASON_CORRUPT_STATE
// and counted there, never passed as though nothing matched.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "filter_fixture.hpp"
// after the contract: the skeleton names its structs
#include "sluice.skel.h"

namespace sluice::test {
namespace {

using filter::Action;
using filter::FilterRule;
using filter::PortRange;
using filter::RuleSet;

constexpr auto DROP = SLUICE_VERDICT_DROP;
constexpr auto PASS = SLUICE_VERDICT_PASS;

Bytes tcp4_to(std::uint16_t dport, const char* src = "198.18.0.1") {
  return ether().ipv4(src, "198.18.1.1").tcp(40000, dport).build();
}

FilterRule tcp_dport_rule(std::uint32_t priority, std::uint16_t first, std::uint16_t last, Action action) {
  FilterRule r;
  r.priority = priority;
  r.protocol = IPPROTO_TCP;
  r.dst_ports = PortRange{first, last};
  r.action = action;
  return r;
}

class CorruptStateTest : public FilterTest {
 protected:
  int fd(bpf_map* map) const { return bpf_map__fd(map); }
  auto& maps() const { return plane_->skeleton()->maps; }

  template <class Key, class Value>
  Value read(bpf_map* map, const Key& key) {
    Value value{};
    EXPECT_EQ(bpf_map_lookup_elem(fd(map), &key, &value), 0) << "lookup " << bpf_map__name(map);
    return value;
  }
  template <class Key, class Value>
  void forge(bpf_map* map, const Key& key, const Value& value) {
    ASSERT_EQ(bpf_map_update_elem(fd(map), &key, &value, BPF_EXIST), 0) << "forge " << bpf_map__name(map);
  }
  // The slot holds FilterTable's swap count; its low bit names the live generation.
  std::uint32_t live_generation() {
    return read<std::uint32_t, std::uint32_t>(maps().filter_generation, 0u) & (SLUICE_FILTER_GENERATIONS - 1);
  }

  // The frame is dropped as corrupt state, counted once there, and passes nowhere.
  void expect_corrupt_drop(const Bytes& frame) {
    const std::uint64_t corrupt_before = packets(DROP, SLUICE_REASON_CORRUPT_STATE);
    const std::uint64_t passed_before = passed();
    EXPECT_EQ(send(frame).verdict, XDP_DROP);
    EXPECT_EQ(packets(DROP, SLUICE_REASON_CORRUPT_STATE) - corrupt_before, 1u);
    EXPECT_EQ(passed() - passed_before, 0u);
  }
  std::uint64_t passed() const {
    return packets(PASS, SLUICE_REASON_PIPELINE_END) + packets(PASS, SLUICE_REASON_FILTER_RULE_PASS) +
           packets(PASS, SLUICE_REASON_FILTER_ALLOWLIST);
  }
};

TEST_F(CorruptStateTest, UnknownRuleActionDropsInsteadOfPassing) {
  RuleSet set;
  set.rules = {tcp_dport_rule(10, 80, 80, Action::Pass)};
  replace(set);
  ASSERT_EQ(send(tcp4_to(80)).verdict, XDP_PASS);  // the set works before the forgery
  const std::uint32_t key = live_generation() * SLUICE_FILTER_MAX_RULES + 0;
  for (std::uint32_t bad_action : {std::uint32_t{SLUICE_FILTER_ACTION_NONE}, 5u, 0xffffffffu}) {
    SCOPED_TRACE(bad_action);
    forge(maps().filter_rules, key, sluice_filter_verdict{.action = bad_action, .rate_class = 0});
    expect_corrupt_drop(tcp4_to(80));
  }
}

TEST_F(CorruptStateTest, MatchedRuleBeyondTheRuleCountDrops) {
  RuleSet set;
  set.rules = {tcp_dport_rule(10, 22, 22, Action::Drop), tcp_dport_rule(20, 80, 80, Action::Pass)};
  replace(set);
  ASSERT_EQ(send(tcp4_to(80)).verdict, XDP_PASS);
  // The header now claims one rule; the bitmaps still name rule 1 for port 80.
  const std::uint32_t gen = live_generation();
  auto header = read<std::uint32_t, sluice_filter_set>(maps().filter_sets, gen);
  header.rule_count = 1;
  forge(maps().filter_sets, gen, header);
  expect_corrupt_drop(tcp4_to(80));
  // A count past the maximum is corrupt as well, not "no rule".
  header.rule_count = SLUICE_FILTER_MAX_RULES + 1;
  forge(maps().filter_sets, gen, header);
  expect_corrupt_drop(tcp4_to(80));
}

// Packets read a port's interval from the direct index: one past this
// field's intervals would read another direction's or generation's bitmaps.
TEST_F(CorruptStateTest, PortIntervalOutOfRangeDrops) {
  RuleSet set;
  set.rules = {tcp_dport_rule(10, 80, 80, Action::Drop)};
  replace(set);
  ASSERT_EQ(send(tcp4_to(80)).verdict, XDP_DROP);
  ASSERT_EQ(send(tcp4_to(81)).verdict, XDP_PASS);
  const std::uint32_t key = live_generation() * SLUICE_FILTER_PORT_DIRS + SLUICE_FILTER_PORT_DST;
  auto index = std::make_unique<sluice_filter_port_index>(
      read<std::uint32_t, sluice_filter_port_index>(maps().filter_port_index, key));
  ASSERT_EQ(index->interval[80], 1u);  // the range made intervals: the lookup is not skipped
  ASSERT_EQ(index->interval[81], 2u);
  for (std::uint32_t bad : {std::uint32_t{SLUICE_FILTER_MAX_PORT_INTERVALS}, 0xffffu}) {
    SCOPED_TRACE(bad);
    index->interval[81] = static_cast<std::uint16_t>(bad);
    forge(maps().filter_port_index, key, *index);
    expect_corrupt_drop(tcp4_to(81));
  }
}

TEST_F(CorruptStateTest, UndefinedOrOutOfRangeRateClassDrops) {
  constexpr std::uint32_t kClass = 1;
  RuleSet set;
  set.rate_classes = {filter::RateClass{.id = kClass, .packets_per_sec = 1000, .packet_burst = 1000}};
  FilterRule limited = tcp_dport_rule(10, 80, 80, Action::RateLimit);
  limited.rate_class = kClass;
  set.rules = {limited};
  replace(set);
  ASSERT_EQ(send(tcp4_to(80)).verdict, XDP_PASS);  // within the rate
  const std::uint32_t gen = live_generation();

  // A class id past the table would alias class (id & 63) = 1, which is defined.
  forge(maps().filter_rules, gen * SLUICE_FILTER_MAX_RULES + 0,
        sluice_filter_verdict{.action = SLUICE_FILTER_ACTION_RATE_LIMIT,
                              .rate_class = SLUICE_FILTER_MAX_RATE_CLASSES + kClass});
  expect_corrupt_drop(tcp4_to(80));

  // The rule points at its class again, but the class is no longer defined.
  forge(maps().filter_rules, gen * SLUICE_FILTER_MAX_RULES + 0,
        sluice_filter_verdict{.action = SLUICE_FILTER_ACTION_RATE_LIMIT, .rate_class = kClass});
  const std::uint32_t class_slot = gen * SLUICE_FILTER_MAX_RATE_CLASSES + kClass;
  auto rate_class = read<std::uint32_t, sluice_filter_rate_class>(maps().filter_rate_classes, class_slot);
  rate_class.defined = 0;
  forge(maps().filter_rate_classes, class_slot, rate_class);
  expect_corrupt_drop(tcp4_to(80));
}

TEST_F(CorruptStateTest, SetHeaderPolicyOrSkipBitsOutOfRangeDrop) {
  RuleSet set;
  set.rules = {tcp_dport_rule(10, 22, 22, Action::Drop)};
  replace(set);
  ASSERT_EQ(send(tcp4_to(80)).verdict, XDP_PASS);  // no rule: default pass
  const std::uint32_t gen = live_generation();
  const auto good = read<std::uint32_t, sluice_filter_set>(maps().filter_sets, gen);

  auto header = good;
  header.default_verdict = SLUICE_VERDICT_COUNT + 2;
  forge(maps().filter_sets, gen, header);
  expect_corrupt_drop(tcp4_to(80));

  header = good;
  header.skip_lookups |= 1u << 31;  // no such lookup
  forge(maps().filter_sets, gen, header);
  expect_corrupt_drop(tcp4_to(80));
}

TEST_F(CorruptStateTest, PrefixListActionOutOfRangeDrops) {
  RuleSet set;
  set.prefixes = {{cidr("2001:db8:bad::/48"), Action::Drop}};
  replace(set);
  const Bytes from_listed = ether().ipv6("2001:db8:bad::1", "2001:db8::2").tcp(40000, 80).build();
  ASSERT_EQ(send(from_listed).verdict, XDP_DROP);
  sluice_filter_v6_key key{};
  key.prefixlen = SLUICE_FILTER_GEN_PREFIX_BITS + 48;
  key.generation = live_generation();
  const auto addr = parse_ipv6("2001:db8:bad::");
  std::memcpy(key.addr, addr.data(), sizeof(key.addr));
  // pass-track is for rules only; 9 is no action at all; a rate class past the table.
  const sluice_filter_verdict forged[] = {
      {.action = SLUICE_FILTER_ACTION_PASS_TRACK, .rate_class = 0},
      {.action = 9, .rate_class = 0},
      {.action = SLUICE_FILTER_ACTION_RATE_LIMIT, .rate_class = SLUICE_FILTER_MAX_RATE_CLASSES},
  };
  for (const auto& value : forged) {
    SCOPED_TRACE(value.action);
    forge(maps().filter_prefix_v6, key, value);
    expect_corrupt_drop(from_listed);
  }
}

TEST_F(CorruptStateTest, Dir24_8GroupPastTheTableDrops) {
  // Every list gets its DIR-24-8 copy (plugged into fsrc4_tbl24/_tbl8, slot = generation).
  table_.reset();
  auto reopened = filter::FilterTable::open(*plane_, {.dir_prefixes = 1});
  ASSERT_TRUE(reopened) << reopened.error().message;
  table_.emplace(std::move(*reopened));
  // A /25 puts 198.18.0.0/24 into a tbl8 group: its tbl24 entry carries the group flag.
  RuleSet set;
  set.prefixes = {{cidr("198.18.0.0/25"), Action::Drop}};
  replace(set);
  ASSERT_EQ(send(tcp4_to(80, "198.18.0.1")).verdict, XDP_DROP);
  const std::uint32_t gen = live_generation();
  ASSERT_TRUE(table_->prefix_dir(gen)->plugged);
  // The plugged inner maps, by the ids the outer maps hold.
  auto inner = [&](bpf_map* outer) {
    std::uint32_t id = 0;
    EXPECT_EQ(bpf_map_lookup_elem(fd(outer), &gen, &id), 0) << bpf_map__name(outer);
    auto map = maps::MapFd::adopt(bpf_map_get_fd_by_id(id), bpf_map__name(outer));
    EXPECT_TRUE(map);
    return std::move(*map);
  };
  const maps::MapFd tbl24 = inner(maps().fsrc4_tbl24), tbl8 = inner(maps().fsrc4_tbl8);
  auto read_row = [](const maps::MapFd& map, std::uint32_t row) {
    auto entries = std::make_unique<sluice_dir24_8_row>();
    EXPECT_EQ(bpf_map_lookup_elem(map.fd(), &row, entries.get()), 0) << "lookup " << map.name();
    return entries;
  };
  auto forge_row = [](const maps::MapFd& map, std::uint32_t row, const sluice_dir24_8_row& entries) {
    ASSERT_EQ(bpf_map_update_elem(map.fd(), &row, &entries, BPF_EXIST), 0) << "forge " << map.name();
  };
  constexpr std::uint32_t host = 198u << 24 | 18u << 16;  // 198.18.0.0
  const std::uint32_t row = host >> 16, column = (host >> 8) & (SLUICE_DIR24_8_ROW_ENTRIES - 1);
  auto entries = read_row(tbl24, row);
  ASSERT_NE(entries->entry[column] & SLUICE_DIR24_8_GROUP_FLAG, 0u);
  const std::uint32_t group = entries->entry[column] & ~SLUICE_DIR24_8_GROUP_FLAG;

  // A group index past tbl8 used to read as "no prefix": the blocklisted source passed.
  const std::uint32_t saved = entries->entry[column];
  entries->entry[column] = SLUICE_DIR24_8_GROUP_FLAG | tbl8.max_entries();
  forge_row(tbl24, row, *entries);
  expect_corrupt_drop(tcp4_to(80, "198.18.0.1"));

  // A tbl8 entry that is itself a group reference is no value either.
  entries->entry[column] = saved;
  forge_row(tbl24, row, *entries);
  auto group_entries = read_row(tbl8, group);
  group_entries->entry[1] = SLUICE_DIR24_8_GROUP_FLAG | SLUICE_FILTER_ACTION_PASS;  // 198.18.0.1
  forge_row(tbl8, group, *group_entries);
  expect_corrupt_drop(tcp4_to(80, "198.18.0.1"));
}

TEST_F(CorruptStateTest, ConfigVerdictOtherThanPassOrDropDrops) {
  replace({});
  // set_config refuses these; a forged slot must not make the pipeline bounce packets (XDP_TX).
  auto config = dataplane::default_config();
  config.end_verdict = SLUICE_VERDICT_TX;
  forge(maps().config, 0u, config);
  expect_corrupt_drop(tcp4_to(80));

  config = dataplane::default_config();
  config.malformed_verdict = SLUICE_VERDICT_TX;
  forge(maps().config, 0u, config);
  Bytes truncated = tcp4_to(80);
  truncated.resize(ETH_HLEN + 10);  // half an IPv4 header
  expect_corrupt_drop(truncated);

  config = dataplane::default_config();
  config.non_ip_verdict = SLUICE_VERDICT_REDIRECT;
  forge(maps().config, 0u, config);
  expect_corrupt_drop(
      PacketBuilder().eth("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", ETH_P_ARP).raw(Bytes(28, 0x11)).build());
}

}  // namespace
}  // namespace sluice::test
