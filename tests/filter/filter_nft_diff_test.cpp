// A differential test whose oracle is not ours: nftables, the kernel's own
// firewall. Random rule sets (IPv4 and IPv6 prefixes, protocols, port ranges,
// TCP flags, ICMP types, source prefix lists, both default policies) are
// applied to sluice in one namespace and, translated, to an nft netdev
// ingress chain in another. The same frames go to both through veth pairs,
// and what each let through is compared frame by frame.
//
// sluice is configured the way an operator does it: a real sluiced, and each
// rule set sent as a YAML document through `apply` on its control socket, so
// the whole path from the operator's words to the verdict is under test (the
// default-drop bug lived in that path, between two settings of one name).
//
// What got through is recorded the same way on both sides: an nft prerouting
// chain (after XDP on one side, after the netdev ingress filter on the other)
// adds each packet's tag to a set — the IPv4 identification or the IPv6 flow
// label, which no rule looks at, set to the frame's index.
//
// A reference model written beside the code can only catch a wrong
// implementation; this catches a wrong idea (as "default drop drops what the
// rules allow" was).
//
// Where the two legitimately differ, the rule is mapped so they agree:
//  - sluice never reads ports, TCP flags or ICMP types from a non-first
//    fragment (it has none). nft does on IPv6: for a later fragment its
//    transport offset stays at the fragment header, whose bytes it then
//    reads as ports (seen here: `th dport 79-1024` matched offset 400 read
//    as port 401). So a rule with L4 fields says "not a later fragment"
//    explicitly: `ip frag-off & 0x1fff == 0` on IPv4, and on IPv6 one nft rule
//    for `exthdr frag missing` and one for `frag frag-off 0`.
//  - sluice's ports are TCP's and UDP's; nft's `th` reads any transport
//    header, so a port match is bound to `meta l4proto { tcp, udp }`.
//  - an ICMP type is ICMP's on IPv4 and ICMPv6's on IPv6; nft's `icmp`
//    alone would also read an IPv6 packet whose next header is 1.
//  - the prefix lists are a longest-prefix match on the source: emitted
//    longest first, so the first nft match is the longest.
//  - sluice drops TCP flag sets no stack sends (Linux conntrack's
//    tcp_valid_flags, the idea behind nft's `ct state invalid`) after the
//    prefix lists and before the rules (its drop_invalid_tcp_flags setting,
//    on by default); the translation says the same with a `tcp flags`
//    set match in that place.
// Rate limits and conntrack are not compared (time and state).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "daemon_test_support.hpp"
#include "dataplane.hpp"
#include "desired_state.hpp"
#include "filter_model.hpp"
#include "filter_table.hpp"
#include "netns_lab.hpp"
#include "packet_builder.hpp"
#include "prefix.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
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
  const T& pick(const std::vector<T>& from) {
    return from[below(from.size())];
  }

 private:
  std::mt19937_64 rng_;
};

// Small pools so rules and frames meet often.
const std::vector<std::string> v4_hosts = {"198.18.0.1", "198.18.0.2", "198.18.1.7", "198.18.200.9", "198.19.0.1",
                                           "198.19.128.77"};
const std::vector<std::string> v6_hosts = {"2001:db8::1", "2001:db8::2", "2001:db8:0:1::7", "2001:db8:1::9",
                                           "2001:db8:ffff::1"};
const std::vector<std::uint16_t> ports = {22, 53, 79, 80, 81, 443, 1024, 8080, 65535};
const std::vector<std::uint8_t> v4_icmp_types = {0, 3, 8, 11};
const std::vector<std::uint8_t> v6_icmp_types = {1, 2, 3, 128, 129};
constexpr std::uint8_t kGre = 47;

maps::Prefix random_prefix(Random& r, bool v6) {
  maps::Prefix p = *maps::parse_prefix(v6 ? r.pick(v6_hosts) : r.pick(v4_hosts));
  std::visit(
      [&](auto& key) {
        const std::uint32_t max = sizeof(key.addr) * 8;
        const std::vector<std::uint32_t> lengths =
            v6 ? std::vector<std::uint32_t>{32, 48, 64, 96, 127, 128} : std::vector<std::uint32_t>{15, 16, 20, 24, 31, 32};
        key.prefixlen = r.pick(lengths);
        for (std::uint32_t bit = key.prefixlen; bit < max; ++bit)
          key.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
      },
      p);
  return p;
}

bool is_v6(const maps::Prefix& p) { return std::holds_alternative<sluice_lpm_v6_key>(p); }
std::uint32_t length_of(const maps::Prefix& p) {
  return std::visit([](const auto& k) { return static_cast<std::uint32_t>(k.prefixlen); }, p);
}

filter::PortRange random_range(Random& r) {
  std::uint16_t a = r.pick(ports), b = r.chance(0.6) ? a : r.pick(ports);
  if (a > b) std::swap(a, b);
  return {a, b};
}

// Only rules that sluice accepts and nft can say without a contradiction
// (no ports on ICMP, no TCP flags on UDP, no ICMP type on TCP).
filter::RuleSet random_set(Random& r) {
  filter::RuleSet set;
  set.default_policy = r.chance(0.5) ? filter::DefaultPolicy::Drop : filter::DefaultPolicy::Pass;
  const std::size_t prefix_count = r.below(4);
  for (std::size_t i = 0; i < prefix_count; ++i) {
    filter::PrefixEntry e{random_prefix(r, r.chance(0.4)), r.chance(0.5) ? Action::Drop : Action::Pass, 0};
    const bool dup = std::any_of(set.prefixes.begin(), set.prefixes.end(),
                                 [&](const auto& x) { return filter::same_prefix(x.prefix, e.prefix); });
    if (!dup) set.prefixes.push_back(e);
  }
  const std::size_t rule_count = 1 + r.below(12);
  for (std::size_t i = 0; i < rule_count; ++i) {
    FilterRule rule;
    rule.priority = static_cast<std::uint32_t>(10 * (i + 1));
    const int family = static_cast<int>(r.below(3));  // 0 any, 4, 6
    const bool v6 = family == 2;
    if (family != 0 && r.chance(0.6)) rule.src = random_prefix(r, v6);
    if (family != 0 && (!rule.src || r.chance(0.4))) rule.dst = random_prefix(r, v6);
    switch (r.below(6)) {
      case 0: rule.protocol = IPPROTO_TCP; break;
      case 1: rule.protocol = IPPROTO_UDP; break;
      case 2: {
        const bool icmpv6 = family == 0 ? r.chance(0.5) : v6;
        rule.protocol = static_cast<std::uint8_t>(icmpv6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
        break;
      }
      case 3: rule.protocol = kGre; break;
      default: break;  // any protocol
    }
    const bool tcp_or_udp_or_any = !rule.protocol || *rule.protocol == IPPROTO_TCP || *rule.protocol == IPPROTO_UDP;
    if (tcp_or_udp_or_any && r.chance(0.3)) rule.src_ports = random_range(r);
    if (tcp_or_udp_or_any && r.chance(0.5)) rule.dst_ports = random_range(r);
    if ((!rule.protocol || *rule.protocol == IPPROTO_TCP) && r.chance(0.3)) {
      const auto mask = static_cast<std::uint8_t>(r.below(256) | 0x02);
      rule.tcp_flags = filter::TcpFlagMatch{mask, static_cast<std::uint8_t>(r.below(256) & mask)};
    }
    const bool icmp_proto = rule.protocol && (*rule.protocol == IPPROTO_ICMP || *rule.protocol == IPPROTO_ICMPV6);
    if (icmp_proto && r.chance(0.6))
      rule.icmp_type = *rule.protocol == IPPROTO_ICMP ? r.pick(v4_icmp_types) : r.pick(v6_icmp_types);
    rule.action = r.chance(0.5) ? Action::Drop : Action::Pass;
    if (filter::validate(rule, set.rate_classes)) set.rules.push_back(rule);
  }
  return set;
}

// ---- translation to nft ----

std::string nft_rule_body(const FilterRule& rule, int family, const std::string& v6_fragment_guard);

std::string nft_rule_body(const FilterRule& rule, int family) {
  return nft_rule_body(rule, family, "");
}

// v6_fragment_guard: for IPv6, "exthdr frag missing " or "frag frag-off 0 " (see the top).
std::string nft_rule_body(const FilterRule& rule, int family, const std::string& v6_fragment_guard) {
  std::ostringstream out;
  out << (family == 4 ? "meta protocol ip " : "meta protocol ip6 ");
  const char* ip = family == 4 ? "ip" : "ip6";
  if (rule.src) out << ip << " saddr " << maps::to_string(*rule.src) << ' ';
  if (rule.dst) out << ip << " daddr " << maps::to_string(*rule.dst) << ' ';
  const bool l4_fields = rule.src_ports || rule.dst_ports || rule.tcp_flags || rule.icmp_type;
  if (l4_fields && family == 4) out << "ip frag-off & 0x1fff == 0 ";
  if (l4_fields && family == 6) out << v6_fragment_guard;
  if (rule.protocol) out << "meta l4proto " << unsigned{*rule.protocol} << ' ';
  if ((rule.src_ports || rule.dst_ports) && !rule.protocol && !rule.tcp_flags) out << "meta l4proto { tcp, udp } ";
  if (rule.src_ports) out << "th sport " << rule.src_ports->first << '-' << rule.src_ports->last << ' ';
  if (rule.dst_ports) out << "th dport " << rule.dst_ports->first << '-' << rule.dst_ports->last << ' ';
  if (rule.tcp_flags)
    out << "tcp flags & " << unsigned{rule.tcp_flags->mask} << " == " << unsigned{rule.tcp_flags->value} << ' ';
  if (rule.icmp_type) out << (family == 4 ? "icmp type " : "icmpv6 type ") << unsigned{*rule.icmp_type} << ' ';
  out << (rule.action == Action::Drop ? "drop" : "accept");
  return out.str();
}

// 4 or 6 when the rule can only match one family, 0 when it matches both.
int rule_family(const FilterRule& rule) {
  for (const auto* p : {&rule.src, &rule.dst})
    if (*p) return is_v6(**p) ? 6 : 4;
  // An ICMP type is read from ICMP on IPv4 and ICMPv6 on IPv6 only (a protocol alone matches either family).
  if (rule.icmp_type) return rule.protocol == IPPROTO_ICMPV6 ? 6 : 4;
  return 0;
}

std::string nft_ruleset(const filter::RuleSet& set, const std::string& device) {
  std::ostringstream out;
  out << "table netdev sdiff {\n  chain ingress {\n    type filter hook ingress device \"" << device
      << "\" priority 0; policy " << (set.default_policy == filter::DefaultPolicy::Drop ? "drop" : "accept") << ";\n";
  std::vector<filter::PrefixEntry> lists = set.prefixes;
  std::stable_sort(lists.begin(), lists.end(),
                   [](const auto& a, const auto& b) { return length_of(a.prefix) > length_of(b.prefix); });
  for (const auto& e : lists)
    out << "    " << (is_v6(e.prefix) ? "meta protocol ip6 ip6" : "meta protocol ip ip") << " saddr "
        << maps::to_string(e.prefix) << (e.action == Action::Drop ? " drop\n" : " accept\n");
  // The valid flag sets as nft values (maps/sluice_maps.h: SLUICE_TCP_VALID_FLAG_SETS).
  std::string valid;
  for (unsigned flags = 0; flags <= SLUICE_TCP_FLAGS_CHECKED; ++flags)
    if ((SLUICE_TCP_VALID_FLAG_SETS >> flags) & 1) valid += (valid.empty() ? "" : ", ") + std::to_string(flags);
  const std::string invalid = "tcp flags & " + std::to_string(SLUICE_TCP_FLAGS_CHECKED) + " != { " + valid + " } drop\n";
  out << "    meta protocol ip ip frag-off & 0x1fff == 0 " << invalid;
  for (const char* guard : {"exthdr frag missing ", "frag frag-off 0 "}) out << "    meta protocol ip6 " << guard << invalid;
  for (const auto& rule : filter::ordered_rules(set.rules)) {
    const int family = rule_family(rule);
    // A rule of both families is one nft rule per family, next to each other: first match is kept.
    const bool l4_fields = rule.src_ports || rule.dst_ports || rule.tcp_flags || rule.icmp_type;
    for (int f : {4, 6}) {
      if (family != 0 && family != f) continue;
      if (f == 6 && l4_fields) {
        for (const char* guard : {"exthdr frag missing ", "frag frag-off 0 "})
          out << "    " << nft_rule_body(rule, f, guard) << '\n';
      } else {
        out << "    " << nft_rule_body(rule, f) << '\n';
      }
    }
  }
  out << "  }\n}\n";
  return out.str();
}

// What got through, by tag; the same on both sides.
constexpr const char* kRecorder = R"(table inet srec {
  set v4 { typeof ip id; size 65536; flags dynamic; }
  set v6 { typeof ip6 flowlabel; size 65536; flags dynamic; }
  chain pre {
    type filter hook prerouting priority 0; policy accept;
    ip id != 0 add @v4 { ip id }
    ip6 flowlabel != 0 add @v6 { ip6 flowlabel }
  }
}
)";

// The rule set in the operator's words: the YAML `apply` takes.
std::string operator_yaml(const filter::RuleSet& set) {
  config::DesiredState state;
  state.filter = config::FilterSection{set.default_policy};
  config::PrefixLists lists;
  for (const auto& e : set.prefixes)
    (e.action == Action::Drop ? lists.block : lists.allow).push_back({maps::to_string(e.prefix), std::nullopt, std::nullopt});
  state.prefix_lists = lists;
  std::vector<config::RuleSpec> rules;
  for (const auto& rule : set.rules) {
    config::RuleSpec spec;
    spec.priority = rule.priority;
    if (rule.src) spec.src = maps::to_string(*rule.src);
    if (rule.dst) spec.dst = maps::to_string(*rule.dst);
    spec.proto = rule.protocol;
    spec.sport = rule.src_ports;
    spec.dport = rule.dst_ports;
    spec.tcp_flags = rule.tcp_flags;
    spec.icmp_type = rule.icmp_type;
    spec.action = rule.action;
    rules.push_back(spec);
  }
  state.rules = rules;
  state.limits.emplace();
  return config::to_yaml(state);
}

// ---- frames ----

struct Frame {
  Bytes bytes;
  bool v6 = false;
  std::uint32_t tag = 0;
};

Frame random_frame(Random& r, std::uint32_t tag, const std::string& src_mac, const std::string& dst_mac) {
  Frame f;
  f.tag = tag;
  f.v6 = r.chance(0.4);
  PacketBuilder b = PacketBuilder().eth(src_mac, dst_mac);
  const std::string src = r.pick(f.v6 ? v6_hosts : v4_hosts), dst = r.pick(f.v6 ? v6_hosts : v4_hosts);
  const bool later_fragment = r.chance(0.08);
  const bool first_fragment = !later_fragment && r.chance(0.05);
  const auto kind = r.below(10);
  const std::uint8_t icmp = static_cast<std::uint8_t>(f.v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
  const std::uint8_t proto = kind < 4 ? std::uint8_t{IPPROTO_TCP} : kind < 7 ? std::uint8_t{IPPROTO_UDP} : kind < 9 ? icmp : kGre;
  if (!f.v6) {
    Ipv4Opts o;
    o.id = static_cast<std::uint16_t>(tag);
    if (later_fragment) o.frag_offset_bytes = static_cast<std::uint16_t>(8 * (1 + r.below(100)));
    o.more_fragments = first_fragment || (later_fragment && r.chance(0.5));
    if (r.chance(0.1)) o.options = Bytes(4, 1);  // NOPs
    if (later_fragment) o.protocol_override = proto;
    b.ipv4(src, dst, o);
  } else {
    b.ipv6(src, dst, {.flow_label = tag});
    if (r.chance(0.1)) b.ipv6_dest_opts();
    if (later_fragment)
      b.ipv6_fragment(static_cast<std::uint16_t>(8 * (1 + r.below(100))), r.chance(0.5), tag, {.next_header_override = proto});
    else if (first_fragment)
      b.ipv6_fragment(0, true, tag);
  }
  if (later_fragment) {
    b.payload(Bytes(16 + r.below(32), 0x16));  // looks like ports 5654 if anyone read it
  } else {
    const std::uint16_t sport = r.chance(0.7) ? r.pick(ports) : static_cast<std::uint16_t>(1 + r.below(65535));
    const std::uint16_t dport = r.chance(0.7) ? r.pick(ports) : static_cast<std::uint16_t>(1 + r.below(65535));
    switch (proto) {
      case IPPROTO_TCP:
        b.tcp(sport, dport, {.flags = static_cast<std::uint8_t>(r.below(256)), .seq = static_cast<std::uint32_t>(r.below(1u << 31))});
        break;
      case IPPROTO_UDP: b.udp(sport, dport); break;
      case IPPROTO_ICMP: b.icmp(r.pick(v4_icmp_types), 0); break;
      case IPPROTO_ICMPV6: b.icmpv6(r.pick(v6_icmp_types), 0); break;
      default: b.payload(Bytes(8, 0)); break;
    }
    b.payload(Bytes(r.below(32), 0xab));
  }
  f.bytes = b.build();
  return f;
}

// ---- the lab: a sender namespace with one veth to each box ----

std::string mac_of(const Netns& ns, const std::string& ifname) {
  const auto r = ns.exec("cat /sys/class/net/" + ifname + "/address");
  std::string mac = r.output;
  while (!mac.empty() && (mac.back() == '\n' || mac.back() == ' ')) mac.pop_back();
  return mac;
}

struct DiffLab {
  Netns gen{"sl-ngen"};
  Netns sl{"sl-nsl"};
  Netns nf{"sl-nnft"};
  const std::string tag = std::to_string(::getpid());
  const std::string gen_sl = "gs" + tag, sl_if = "sg" + tag, gen_nf = "gn" + tag, nf_if = "ng" + tag;
  std::string error;

  DiffLab() {
    for (const auto& [a, a_ns, b, b_ns] : {std::tuple{gen_sl, &gen, sl_if, &sl}, std::tuple{gen_nf, &gen, nf_if, &nf}}) {
      const auto made = run_command("ip link add " + a + " netns " + a_ns->name() + " type veth peer name " + b +
                                    " netns " + b_ns->name());
      if (made.exit_code != 0) error += made.output;
      // The sender's own IPv6 (router solicitations, ND) would reach the recorders with flow labels of its own.
      a_ns->exec("sysctl -qw net.ipv6.conf." + a + ".disable_ipv6=1; ip link set " + a + " up");
      b_ns->exec("ip link set " + b + " up");
    }
  }
};

std::set<std::uint32_t> recorded(const Netns& ns, const char* set_name) {
  const auto listed = ns.exec(std::string("nft list set inet srec ") + set_name);
  std::set<std::uint32_t> tags;
  const auto open = listed.output.find("elements = {");
  if (open == std::string::npos) return tags;
  const auto close = listed.output.find('}', open);
  std::istringstream in(listed.output.substr(open + 12, close - open - 12));
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(std::remove_if(item.begin(), item.end(), [](char c) { return c < '0' || c > '9'; }), item.end());
    if (!item.empty()) tags.insert(static_cast<std::uint32_t>(std::stoul(item)));
  }
  return tags;
}

bool nft_load(const Netns& ns, const std::string& text, const std::string& path, std::string& why) {
  {
    std::ofstream out(path);
    out << text;
  }
  const auto loaded = ns.exec("nft -f " + path);
  if (loaded.exit_code != 0) why = loaded.output + "\n" + text;
  return loaded.exit_code == 0;
}

std::string hex(const Bytes& bytes) {
  std::string out;
  char two[4];
  for (auto b : bytes) {
    std::snprintf(two, sizeof(two), "%02x", b);
    out += two;
  }
  return out;
}

std::string describe(const filter::RuleSet& set) {
  std::ostringstream out;
  out << "policy " << (set.default_policy == filter::DefaultPolicy::Drop ? "drop" : "pass") << "\n";
  for (const auto& e : set.prefixes)
    out << "  prefix " << maps::to_string(e.prefix) << (e.action == Action::Drop ? " drop\n" : " pass\n");
  for (const auto& rule : filter::ordered_rules(set.rules)) out << "  rule " << nft_rule_body(rule, rule_family(rule) == 6 ? 6 : 4) << "\n";
  return out.str();
}

TEST(FilterNftDiff, SluiceAndNftablesAgreeFrameByFrame) {
  SLUICE_REQUIRE_NETNS();
  if (run_command("command -v nft").exit_code != 0) SLUICE_SKIP_OR_FAIL("skipped: nft (nftables) is not installed");
  const std::uint64_t seed = env_or("SLUICE_NFT_DIFF_SEED", std::random_device{}());
  const std::uint64_t rounds = env_or("SLUICE_NFT_DIFF_ROUNDS", 12);
  const std::uint64_t per_round = std::min<std::uint64_t>(env_or("SLUICE_NFT_DIFF_FRAMES", 300), 5000);
  std::printf("nftables differential: SLUICE_NFT_DIFF_SEED=%llu rounds %llu, %llu frames each\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(rounds),
              static_cast<unsigned long long>(per_round));
  RecordProperty("seed", std::to_string(seed));
  Random r(seed);

  DiffLab lab;
  ASSERT_EQ(lab.error, "");
  SluicedOptions options;
  options.netns = lab.sl.name();
  SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  client.result("attach", {{"iface", lab.sl_if}});
  char scratch_name[] = "/tmp/sluice-nftdiff-XXXXXX";
  ASSERT_NE(mkdtemp(scratch_name), nullptr);
  const std::string scratch = scratch_name;
  std::string why;
  ASSERT_TRUE(nft_load(lab.sl, kRecorder, scratch + "/rec.nft", why)) << why;
  ASSERT_TRUE(nft_load(lab.nf, kRecorder, scratch + "/rec.nft", why)) << why;
  const std::string sl_mac = mac_of(lab.sl, lab.sl_if), nf_mac = mac_of(lab.nf, lab.nf_if);
  const std::string gen_sl_mac = mac_of(lab.gen, lab.gen_sl), gen_nf_mac = mac_of(lab.gen, lab.gen_nf);

  // Raw sockets in the sender namespace, one per veth.
  int sock_sl = -1, sock_nf = -1;
  sockaddr_ll to_sl{}, to_nf{};
  {
    EnterNetns in_gen(lab.gen);
    for (auto [sock, to, name] : {std::tuple{&sock_sl, &to_sl, lab.gen_sl}, std::tuple{&sock_nf, &to_nf, lab.gen_nf}}) {
      *sock = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
      ASSERT_GE(*sock, 0);
      to->sll_family = AF_PACKET;
      to->sll_ifindex = static_cast<int>(if_nametoindex(name.c_str()));
      to->sll_halen = 6;
      ASSERT_NE(to->sll_ifindex, 0) << name;
    }
  }

  std::uint64_t compared = 0, passed = 0, dropped = 0, disagreements = 0;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    const filter::RuleSet set = random_set(r);
    // No track rules: conntrack holds nothing, so both sides are stateless.
    const auto applied = client.call("apply", {{"yaml", operator_yaml(set)}});
    ASSERT_TRUE(applied.ok) << (applied.error ? applied.error->message : "") << "\n" << operator_yaml(set);
    lab.nf.exec("nft delete table netdev sdiff 2>/dev/null");
    ASSERT_TRUE(nft_load(lab.nf, nft_ruleset(set, lab.nf_if), scratch + "/set.nft", why)) << why;
    for (const Netns* ns : {&lab.sl, &lab.nf}) ns->exec("nft flush set inet srec v4; nft flush set inet srec v6");

    std::vector<Frame> frames;
    for (std::uint64_t i = 0; i < per_round; ++i) {
      const auto tag = static_cast<std::uint32_t>(1 + i);  // 0 means "untagged" to the recorder
      Frame f = random_frame(r, tag, gen_sl_mac, sl_mac);
      frames.push_back(f);
      // The same bytes to the nft box, but for the destination MAC (each box accepts only its own).
      Bytes to_nft = f.bytes;
      const Mac mac = parse_mac(nf_mac);
      std::copy(mac.begin(), mac.end(), to_nft.begin());
      const Mac gen_mac = parse_mac(gen_nf_mac);
      std::copy(gen_mac.begin(), gen_mac.end(), to_nft.begin() + 6);
      ASSERT_EQ(::sendto(sock_sl, f.bytes.data(), f.bytes.size(), 0, reinterpret_cast<sockaddr*>(&to_sl), sizeof(to_sl)),
                static_cast<ssize_t>(f.bytes.size()));
      ASSERT_EQ(::sendto(sock_nf, to_nft.data(), to_nft.size(), 0, reinterpret_cast<sockaddr*>(&to_nf), sizeof(to_nf)),
                static_cast<ssize_t>(to_nft.size()));
      if (i % 32 == 31) std::this_thread::sleep_for(2ms);  // well below the receive backlog
    }
    std::this_thread::sleep_for(200ms);
    const auto sl4 = recorded(lab.sl, "v4"), sl6 = recorded(lab.sl, "v6");
    const auto nf4 = recorded(lab.nf, "v4"), nf6 = recorded(lab.nf, "v6");
    const auto ordered = filter::ordered_rules(set.rules);
    for (const Frame& f : frames) {
      const bool by_sluice = (f.v6 ? sl6 : sl4).count(f.tag) != 0;
      const bool by_nft = (f.v6 ? nf6 : nf4).count(f.tag) != 0;
      ++compared;
      (by_nft ? passed : dropped)++;
      if (by_sluice == by_nft) continue;
      if (++disagreements <= 5) {
        const auto model = filter::model::classify(set, ordered, f.bytes, dataplane::default_config(), 0);
        ADD_FAILURE() << "seed " << seed << " round " << round << " frame " << f.tag << ": sluice "
                      << (by_sluice ? "passed" : "dropped") << ", nftables " << (by_nft ? "passed" : "dropped")
                      << " (model: verdict " << model.verdict << " reason " << model.reason << ")\nframe "
                      << hex(f.bytes) << "\nrule set:\n"
                      << describe(set) << "nft:\n"
                      << nft_ruleset(set, lab.nf_if);
      }
    }
  }
  ::close(sock_sl);
  ::close(sock_nf);
  std::filesystem::remove_all(scratch);
  std::printf("%llu frames compared: %llu passed, %llu dropped, %llu disagreements\n",
              static_cast<unsigned long long>(compared), static_cast<unsigned long long>(passed),
              static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(disagreements));
  EXPECT_EQ(disagreements, 0u) << "seed " << seed;
  // Agreement on a run where everything passed (or nothing did) would prove little.
  EXPECT_GT(passed, compared / 10) << "seed " << seed;
  EXPECT_GT(dropped, compared / 10) << "seed " << seed;
}

}  // namespace
}  // namespace sluice::test
