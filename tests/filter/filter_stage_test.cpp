// The filter stage through BPF_PROG_TEST_RUN, driven by FilterTable: prefix
// lists, ordered rules on every field, default policy, counters, and
// validation that refuses bad input without changing anything.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "filter_fixture.hpp"

namespace sluice::test {
namespace {

using filter::Action;
using filter::FilterRule;
using filter::PortRange;
using filter::RuleSet;

constexpr auto DROP = SLUICE_VERDICT_DROP;
constexpr auto PASS = SLUICE_VERDICT_PASS;

Bytes tcp4(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport, std::uint8_t flags = TcpFlags::SYN) {
  return ether().ipv4(src, dst).tcp(sport, dport, {.flags = flags}).build();
}
Bytes udp4(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport) {
  return ether().ipv4(src, dst).udp(sport, dport).build();
}
Bytes tcp6(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport) {
  return ether().ipv6(src, dst).tcp(sport, dport).build();
}

FilterRule rule(std::uint32_t priority, Action action) {
  FilterRule r;
  r.priority = priority;
  r.action = action;
  return r;
}

TEST_F(FilterTest, EmptySetPassesEverythingUnchangedUnderPipelineEnd) {
  replace({});
  const Bytes frame = tcp4("198.18.0.1", "198.18.1.1", 1000, 80);
  const RunResult result = send(frame);
  EXPECT_EQ(result.verdict, XDP_PASS);
  EXPECT_EQ(result.output, frame);
  EXPECT_EQ(packets(PASS, SLUICE_REASON_PIPELINE_END), 1u);
}

TEST_F(FilterTest, BlocklistDropsAndAllowlistPassesLongestPrefixWins) {
  RuleSet set;
  set.prefixes = {{cidr("198.18.0.0/15"), Action::Drop}, {cidr("198.18.7.0/24"), Action::Pass},
                  {cidr("2001:db8:bad::/48"), Action::Drop}};
  set.default_policy = filter::DefaultPolicy::Drop;
  replace(set);
  EXPECT_EQ(send(udp4("198.18.3.3", "198.18.200.1", 1, 2)).verdict, XDP_DROP);
  EXPECT_EQ(packets(DROP, SLUICE_REASON_FILTER_BLOCKLIST), 1u);
  EXPECT_EQ(send(udp4("198.18.7.9", "198.18.200.1", 1, 2)).verdict, XDP_PASS);
  EXPECT_EQ(packets(PASS, SLUICE_REASON_FILTER_ALLOWLIST), 1u);
  EXPECT_EQ(send(tcp6("2001:db8:bad::1", "2001:db8::2", 1, 2)).verdict, XDP_DROP);
  EXPECT_EQ(packets(DROP, SLUICE_REASON_FILTER_BLOCKLIST), 2u);
  // not listed: the default policy (drop) decides
  EXPECT_EQ(send(tcp6("2001:db8:beef::1", "2001:db8::2", 1, 2)).verdict, XDP_DROP);
  EXPECT_EQ(packets(DROP, SLUICE_REASON_FILTER_DEFAULT_DROP), 1u);
}

TEST_F(FilterTest, FirstMatchingRuleWinsAndCountsItsHits) {
  RuleSet set;
  FilterRule ssh = rule(10, Action::Drop);
  ssh.protocol = IPPROTO_TCP;
  ssh.dst_ports = PortRange{22, 22};
  FilterRule web = rule(20, Action::Pass);
  web.dst_ports = PortRange{80, 443};
  FilterRule rest = rule(30, Action::Drop);
  rest.dst = cidr("198.18.1.0/24");
  set.rules = {rest, web, ssh};  // given out of order: priority decides
  replace(set);

  const Bytes to_ssh = tcp4("198.18.0.1", "198.18.1.1", 5000, 22);
  const Bytes to_web = tcp4("198.18.0.1", "198.18.1.1", 5000, 443);
  EXPECT_EQ(send(to_ssh).verdict, XDP_DROP);
  EXPECT_EQ(send(to_web).verdict, XDP_PASS);
  EXPECT_EQ(send(udp4("198.18.0.1", "198.18.1.1", 5000, 80)).verdict, XDP_PASS);
  EXPECT_EQ(send(udp4("198.18.0.1", "198.18.1.1", 5000, 444)).verdict, XDP_DROP);  // rest
  EXPECT_EQ(send(udp4("198.18.0.1", "198.18.2.1", 5000, 444)).verdict, XDP_PASS);  // nothing: default pass
  EXPECT_EQ(packets(DROP, SLUICE_REASON_FILTER_RULE_DROP), 2u);
  EXPECT_EQ(packets(PASS, SLUICE_REASON_FILTER_RULE_PASS), 2u);
  EXPECT_EQ(packets(PASS, SLUICE_REASON_PIPELINE_END), 1u);

  auto counters = table_->rule_counters();
  ASSERT_TRUE(counters) << counters.error().message;
  ASSERT_EQ(counters->size(), 3u);
  EXPECT_EQ((*counters)[0].priority, 10u);
  EXPECT_EQ((*counters)[0].total.packets, 1u);
  EXPECT_EQ((*counters)[0].total.bytes, to_ssh.size());
  EXPECT_EQ((*counters)[1].priority, 20u);
  EXPECT_EQ((*counters)[1].total.packets, 2u);
  EXPECT_EQ((*counters)[2].total.packets, 1u);

  auto reasons = table_->reason_counters();
  ASSERT_TRUE(reasons);
  std::uint64_t rule_drops = 0;
  for (const auto& r : *reasons)
    if (r.verdict == DROP && r.reason == SLUICE_REASON_FILTER_RULE_DROP) rule_drops = r.total.packets;
  EXPECT_EQ(rule_drops, 2u);
}

TEST_F(FilterTest, PortRuleNeverMatchesALaterFragmentButAProtocolRuleDoes) {
  RuleSet set;
  FilterRule ports = rule(1, Action::Drop);
  ports.dst_ports = PortRange{0, 65535};
  set.rules = {ports};
  replace(set);
  const Bytes later = ether()
                          .ipv4("198.18.0.1", "198.18.1.1", {.frag_offset_bytes = 64, .protocol_override = IPPROTO_TCP})
                          .payload(Bytes{0x00, 0x16, 0x00, 0x16, 0, 0, 0, 0})
                          .build();
  EXPECT_EQ(send(later).verdict, XDP_PASS);
  EXPECT_EQ(packets(PASS, SLUICE_REASON_FRAGMENT), 1u);
  const Bytes first = ether().ipv4("198.18.0.1", "198.18.1.1", {.more_fragments = true}).tcp(1, 22).build();
  EXPECT_EQ(send(first).verdict, XDP_DROP) << "a first fragment has its ports";

  FilterRule proto = rule(2, Action::Drop);
  proto.protocol = IPPROTO_TCP;
  set.rules.push_back(proto);
  replace(set);
  EXPECT_EQ(send(later).verdict, XDP_DROP);
  EXPECT_EQ(packets(DROP, SLUICE_REASON_FILTER_RULE_DROP), 2u);
}

TEST_F(FilterTest, TcpFlagsIcmpTypeAndIngressInterface) {
  RuleSet set;
  FilterRule syn_only = rule(1, Action::Drop);  // SYN without ACK
  syn_only.tcp_flags = filter::TcpFlagMatch{TcpFlags::SYN | TcpFlags::ACK, TcpFlags::SYN};
  FilterRule echo = rule(2, Action::Drop);
  echo.icmp_type = 8;
  // BPF_PROG_TEST_RUN delivers on loopback (ifindex 1) unless told otherwise
  FilterRule elsewhere = rule(3, Action::Drop);
  elsewhere.ifindex = 999;
  elsewhere.protocol = IPPROTO_UDP;
  FilterRule lo = rule(4, Action::Drop);
  lo.ifindex = 1;
  lo.protocol = 47;
  set.rules = {syn_only, echo, elsewhere, lo};
  replace(set);
  EXPECT_EQ(send(tcp4("198.18.0.1", "198.18.1.1", 1, 2, TcpFlags::SYN)).verdict, XDP_DROP);
  EXPECT_EQ(send(tcp4("198.18.0.1", "198.18.1.1", 1, 2, TcpFlags::SYN | TcpFlags::ACK)).verdict, XDP_PASS);
  EXPECT_EQ(send(ether().ipv4("198.18.0.1", "198.18.1.1").icmp(8, 0).build()).verdict, XDP_DROP);
  EXPECT_EQ(send(ether().ipv4("198.18.0.1", "198.18.1.1").icmp(0, 0).build()).verdict, XDP_PASS);
  EXPECT_EQ(send(ether().ipv6("2001:db8::1", "2001:db8::2").icmpv6(8, 0).build()).verdict, XDP_DROP);
  EXPECT_EQ(send(udp4("198.18.0.1", "198.18.1.1", 1, 2), 1).verdict, XDP_PASS) << "rule for ifindex 999 only";
  const Bytes gre = ether().ipv4("198.18.0.1", "198.18.1.1", {.protocol_override = 47}).payload(Bytes(8, 0)).build();
  EXPECT_EQ(send(gre, 1).verdict, XDP_DROP);
  EXPECT_EQ(packets(DROP, SLUICE_REASON_FILTER_RULE_DROP), 4u);
  auto counters = table_->rule_counters();
  ASSERT_TRUE(counters);
  EXPECT_EQ((*counters)[2].total.packets, 0u);
  EXPECT_EQ((*counters)[3].total.packets, 1u);
}

TEST_F(FilterTest, Ipv6RulesDoNotMatchIpv4AndViceVersa) {
  RuleSet set;
  FilterRule v6 = rule(1, Action::Drop);
  v6.src = cidr("::/0");
  FilterRule v4 = rule(2, Action::Pass);
  v4.dst = cidr("0.0.0.0/0");
  set.rules = {v6, v4};
  set.default_policy = filter::DefaultPolicy::Drop;
  replace(set);
  EXPECT_EQ(send(tcp6("2001:db8::1", "2001:db8::2", 1, 2)).verdict, XDP_DROP);
  EXPECT_EQ(packets(DROP, SLUICE_REASON_FILTER_RULE_DROP), 1u);
  EXPECT_EQ(send(tcp4("198.18.0.1", "198.18.1.1", 1, 2)).verdict, XDP_PASS);
  EXPECT_EQ(packets(PASS, SLUICE_REASON_FILTER_RULE_PASS), 1u);
}

TEST_F(FilterTest, LastOf4096RulesMatchesAcrossEveryBitmapWord) {
  RuleSet set;
  for (std::uint32_t i = 0; i < SLUICE_FILTER_MAX_RULES; ++i) {
    FilterRule r = rule(i, i == SLUICE_FILTER_MAX_RULES - 1 ? Action::Drop : Action::Pass);
    r.dst_ports = PortRange{static_cast<std::uint16_t>(i + 1), static_cast<std::uint16_t>(i + 1)};
    set.rules.push_back(r);
  }
  replace(set);
  EXPECT_EQ(send(udp4("198.18.0.1", "198.18.1.1", 1, SLUICE_FILTER_MAX_RULES)).verdict, XDP_DROP);
  EXPECT_EQ(send(udp4("198.18.0.1", "198.18.1.1", 1, 64)).verdict, XDP_PASS);
  EXPECT_EQ(send(udp4("198.18.0.1", "198.18.1.1", 1, SLUICE_FILTER_MAX_RULES + 1)).verdict, XDP_PASS);
  auto counters = table_->rule_counters();
  ASSERT_TRUE(counters);
  EXPECT_EQ(counters->back().total.packets, 1u);
  EXPECT_EQ((*counters)[63].total.packets, 1u);
  EXPECT_EQ(packets(PASS, SLUICE_REASON_PIPELINE_END), 1u);
}

TEST_F(FilterTest, InvalidInputIsRefusedByNameAndChangesNothing) {
  RuleSet good;
  FilterRule r = rule(5, Action::Drop);
  r.dst_ports = PortRange{22, 22};
  good.rules = {r};
  replace(good);
  const std::uint32_t live = table_->live_generation();
  const Bytes probe = tcp4("198.18.0.1", "198.18.1.1", 1, 22);

  auto expect_refused = [&](const RuleSet& bad, const std::string& needle) {
    auto result = table_->replace(bad);
    ASSERT_FALSE(result) << needle;
    EXPECT_NE(result.error().message.find(needle), std::string::npos) << result.error().message;
    EXPECT_EQ(table_->live_generation(), live);
    EXPECT_EQ(table_->rule_set().rules, good.rules);
    EXPECT_EQ(send(probe).verdict, XDP_DROP) << "the live set still works after refusing " << needle;
  };
  RuleSet bad = good;
  bad.rules[0].dst_ports = PortRange{9, 3};
  expect_refused(bad, "dst_ports 9-3");
  bad = good;
  bad.rules.push_back(rule(5, Action::Pass));
  expect_refused(bad, "priority 5 used by another rule");
  bad = good;
  for (std::uint32_t i = 0; i <= SLUICE_FILTER_MAX_RULES; ++i) bad.rules.push_back(rule(100 + i, Action::Pass));
  expect_refused(bad, "at most 4096");
  bad = good;
  bad.rules[0].action = Action::RateLimit;
  bad.rules[0].rate_class = 9;
  expect_refused(bad, "rate_class 9 is not defined");
  bad = good;
  bad.rules[0].src = cidr("198.18.0.0/15");
  bad.rules[0].dst = cidr("2001:db8::/32");
  expect_refused(bad, "different address families");

  EXPECT_FALSE(maps::parse_prefix("198.18.0.1/15"));  // the API's CIDR parser refuses host bits
  auto proto = filter::parse_protocol("tpc");
  ASSERT_FALSE(proto);
  EXPECT_NE(proto.error().message.find("'tpc'"), std::string::npos);
  auto ports = filter::parse_port_range("9-3");
  ASSERT_FALSE(ports);
  EXPECT_NE(ports.error().message.find("9-3"), std::string::npos);

  EXPECT_FALSE(table_->remove_rule(77));
  EXPECT_FALSE(table_->add_rule(rule(5, Action::Pass)));
  EXPECT_FALSE(table_->remove_prefix(cidr("198.51.100.0/24")));
  EXPECT_EQ(send(probe).verdict, XDP_DROP);
}

TEST_F(FilterTest, AddAndRemoveRulesAndPrefixesOneByOne) {
  const Bytes probe = udp4("198.18.9.9", "198.18.1.1", 1, 53);
  ASSERT_TRUE(table_->add_prefix({cidr("198.18.9.0/24"), Action::Drop}));
  EXPECT_EQ(send(probe).verdict, XDP_DROP);
  ASSERT_TRUE(table_->remove_prefix(cidr("198.18.9.0/24")));
  EXPECT_EQ(send(probe).verdict, XDP_PASS);
  FilterRule dns = rule(1, Action::Drop);
  dns.dst_ports = PortRange{53, 53};
  ASSERT_TRUE(table_->add_rule(dns));
  EXPECT_EQ(send(probe).verdict, XDP_DROP);
  // a prefix added to the live set survives the next whole-set swap
  ASSERT_TRUE(table_->add_prefix({cidr("198.18.9.9/32"), Action::Pass}));
  EXPECT_EQ(send(probe).verdict, XDP_PASS);
  FilterRule other = rule(2, Action::Drop);
  other.protocol = IPPROTO_TCP;
  ASSERT_TRUE(table_->add_rule(other));
  EXPECT_EQ(send(probe).verdict, XDP_PASS);
  EXPECT_EQ(table_->list_prefixes().size(), 1u);
  ASSERT_TRUE(table_->remove_rule(1));
  ASSERT_TRUE(table_->remove_prefix(cidr("198.18.9.9/32")));
  EXPECT_EQ(send(probe).verdict, XDP_PASS);
  EXPECT_EQ(send(tcp4("198.18.9.9", "198.18.1.1", 1, 53)).verdict, XDP_DROP);
  ASSERT_EQ(table_->list_rules().size(), 1u);
  EXPECT_EQ(table_->list_rules()[0].priority, 2u);
}

class TempFile {
 public:
  explicit TempFile(const std::string& text, const std::string& tag = "a")
      : path_(std::filesystem::temp_directory_path() /
              ("sluice-prefixes-" + std::to_string(getpid()) + "-" + tag + ".txt")) {
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST_F(FilterTest, PrefixFileWithABadLineIsRefusedWhole) {
  TempFile file("# blocklist\n198.18.0.0/24\n198.18.1.0/24 pass  # trusted\n\n198.18.2.0/33\n");
  auto loaded = table_->load_prefix_file(file.path());
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find(":5:"), std::string::npos) << loaded.error().message;
  EXPECT_TRUE(table_->list_prefixes().empty());
  EXPECT_EQ(send(udp4("198.18.0.1", "198.18.9.9", 1, 2)).verdict, XDP_PASS);

  TempFile good("# blocklist\n198.18.0.0/24\n198.18.1.0/24 pass  # trusted\n2001:db8:1::/48 drop\n", "good");
  loaded = table_->load_prefix_file(good.path());
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(*loaded, 3u);
  EXPECT_EQ(send(udp4("198.18.0.1", "198.18.9.9", 1, 2)).verdict, XDP_DROP);
  EXPECT_EQ(send(udp4("198.18.1.1", "198.18.9.9", 1, 2)).verdict, XDP_PASS);
  EXPECT_EQ(packets(PASS, SLUICE_REASON_FILTER_ALLOWLIST), 1u);
  EXPECT_EQ(send(tcp6("2001:db8:1::5", "2001:db8::2", 1, 2)).verdict, XDP_DROP);

  TempFile unknown_action("198.18.5.0/24 block\n", "bad");
  loaded = table_->load_prefix_file(unknown_action.path());
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find(":1:"), std::string::npos) << loaded.error().message;
  EXPECT_EQ(table_->list_prefixes().size(), 3u);
}

// Out of tbl8 groups halfway through a prefix load: the load is refused
// with ENOSPC, the undo succeeds (so the error claims no failed rollback),
// and packets see the list as it was.
TEST_F(FilterTest, PrefixLoadOutOfTbl8GroupsIsUndoneCleanly) {
  constexpr std::uint32_t kGroups = 1;  // one /24 may hold longer prefixes
  auto small = dataplane::Dataplane::load({});
  ASSERT_TRUE(small) << small.error().message;
  ASSERT_TRUE(small->install_stages());
  // Any list gets its DIR-24-8 copy (the groups are the copy's).
  auto table = filter::FilterTable::open(*small, {.dir_prefixes = 1, .tbl8_groups_max = kGroups});
  ASSERT_TRUE(table) << table.error().message;
  auto send_small = [&](const Bytes& frame) { return run_xdp(small->entry_prog_fd(), frame).verdict; };
  const Bytes probe = udp4("198.18.0.129", "198.18.9.9", 1, 2);

  // two /24s with longer prefixes need two groups
  auto loaded = table->load_prefix_text("198.18.0.128/25\n198.18.1.128/25\n");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().errnum, ENOSPC) << loaded.error().message;
  EXPECT_EQ(loaded.error().message.find("rollback"), std::string::npos) << loaded.error().message;
  EXPECT_TRUE(table->list_prefixes().empty());
  EXPECT_EQ(send_small(probe), XDP_PASS) << "the half-written /25 was undone";

  // what fits still loads, and packets see it
  loaded = table->load_prefix_text("198.18.0.128/25\n");
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(send_small(probe), XDP_DROP);
}

// 1,000,000 IPv4 + 100,000 IPv6 prefixes from files, in seconds, then a swap that keeps them.
TEST_F(FilterTest, MillionPrefixFileLoadsInSecondsAndSurvivesASwap) {
  std::string v4_text, v6_text;
  v4_text.reserve(20'000'000);
  constexpr std::uint32_t v4_count = 1'000'000, v6_count = 100'000;
  for (std::uint32_t i = 0; i < v4_count; ++i) {
    // distinct /32 drops (the file's default action), 13 addresses apart from 10.0.0.0 up
    const std::uint32_t a = 0x0a000000u + i * 13u;
    v4_text += std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." + std::to_string((a >> 8) & 255) + "." +
               std::to_string(a & 255) + "\n";
  }
  for (std::uint32_t i = 0; i < v6_count; ++i) {
    char line[64];
    std::snprintf(line, sizeof(line), "2001:db8:%x:%x::/64\n", i >> 16, i & 0xffff);
    v6_text += line;
  }
  TempFile v4(v4_text);
  const auto start = std::chrono::steady_clock::now();
  auto loaded = table_->load_prefix_file(v4.path());
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(*loaded, v4_count);
  {
    TempFile v6(v6_text, "v6");
    auto loaded6 = table_->load_prefix_file(v6.path());
    ASSERT_TRUE(loaded6) << loaded6.error().message;
    EXPECT_EQ(*loaded6, v6_count);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("loaded %u IPv4 + %u IPv6 prefixes in %.2f s\n", v4_count, v6_count, seconds);
  EXPECT_LT(seconds, 30.0);
  const std::uint32_t last = 0x0a000000u + (v4_count - 1) * 13u;
  const std::string last_addr = std::to_string(last >> 24) + "." + std::to_string((last >> 16) & 255) + "." +
                                std::to_string((last >> 8) & 255) + "." + std::to_string(last & 255);
  EXPECT_EQ(send(udp4(last_addr.c_str(), "198.18.1.1", 1, 2)).verdict, XDP_DROP);
  EXPECT_EQ(send(udp4("10.0.0.1", "198.18.1.1", 1, 2)).verdict, XDP_PASS);
  EXPECT_EQ(send(tcp6("2001:db8:1:869f::7", "2001:db8::2", 1, 2)).verdict, XDP_DROP);
  // a rule change swaps generations: the million prefixes must be there too
  const auto swap_start = std::chrono::steady_clock::now();
  FilterRule r = rule(1, Action::Drop);
  r.protocol = IPPROTO_TCP;
  ASSERT_TRUE(table_->add_rule(r));
  std::printf("first swap with 1.1M prefixes: %.2f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - swap_start).count());
  EXPECT_EQ(send(udp4(last_addr.c_str(), "198.18.1.1", 1, 2)).verdict, XDP_DROP);
  EXPECT_EQ(send(tcp6("2001:db8:1:869f::7", "2001:db8::2", 1, 2)).verdict, XDP_DROP);
  EXPECT_EQ(packets(DROP, SLUICE_REASON_FILTER_BLOCKLIST), 4u);
}

}  // namespace
}  // namespace sluice::test
