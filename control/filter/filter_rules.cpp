#include "filter_rules.hpp"

#include "prefix_index.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "decimal.hpp"

namespace sluice::filter {
namespace {

Error bad(std::string_view what, std::string_view reason) {
  return maps::make_error_because("validate", "filter", std::string(what) + ": " + std::string(reason), EINVAL);
}

std::uint32_t prefix_len(const Prefix& p) {
  return std::visit([](const auto& key) { return key.prefixlen; }, p);
}

const std::uint8_t* prefix_bytes(const Prefix& p) {
  return std::visit([](const auto& key) { return static_cast<const std::uint8_t*>(key.addr); }, p);
}

bool has_rate_class(const std::vector<RateClass>& classes, std::uint32_t id) {
  return std::any_of(classes.begin(), classes.end(), [&](const RateClass& c) { return c.id == id; });
}

Result<void> check_action(std::string_view what, Action action, std::uint32_t rate_class,
                          const std::vector<RateClass>& classes, bool allow_track) {
  switch (action) {
    case Action::Drop:
    case Action::Pass:
      return {};
    case Action::PassTrack:
      if (!allow_track) return bad(what, "action pass-track is for rules, not prefix lists");
      return {};
    case Action::RateLimit:
      if (!has_rate_class(classes, rate_class))
        return bad(what, "rate_class " + std::to_string(rate_class) + " is not defined");
      return {};
  }
  return bad(what, "action " + std::to_string(static_cast<std::uint32_t>(action)) + " is unknown");
}

std::string rule_name(std::size_t index, const FilterRule& rule) {
  return "rules[" + std::to_string(index) + "] (priority " + std::to_string(rule.priority) + ")";
}

Result<void> check_ports(std::string_view what, const char* field, const std::optional<PortRange>& range) {
  if (range && range->first > range->last)
    return bad(what, std::string(field) + " " + std::to_string(range->first) + "-" + std::to_string(range->last) +
                         ": first port above last");
  return {};
}

}  // namespace

bool same_prefix(const Prefix& a, const Prefix& b) {
  return a.index() == b.index() && prefix_len(a) == prefix_len(b) &&
         std::memcmp(prefix_bytes(a), prefix_bytes(b), a.index() == 0 ? 4 : 16) == 0;
}

bool PrefixEntry::operator==(const PrefixEntry& other) const {
  return same_prefix(prefix, other.prefix) && action == other.action && rate_class == other.rate_class;
}

bool FilterRule::operator==(const FilterRule& o) const {
  auto same = [](const std::optional<Prefix>& a, const std::optional<Prefix>& b) {
    if (a.has_value() != b.has_value()) return false;
    return !a || same_prefix(*a, *b);
  };
  return priority == o.priority && same(src, o.src) && same(dst, o.dst) && protocol == o.protocol &&
         src_ports == o.src_ports && dst_ports == o.dst_ports && tcp_flags == o.tcp_flags && icmp_type == o.icmp_type &&
         ifindex == o.ifindex && action == o.action && rate_class == o.rate_class;
}

std::string_view to_string(Action action) {
  switch (action) {
    case Action::Drop: return "drop";
    case Action::Pass: return "pass";
    case Action::PassTrack: return "pass-track";
    case Action::RateLimit: return "rate-limit";
  }
  return "unknown";
}

Result<Action> parse_action(std::string_view text) {
  for (Action a : {Action::Drop, Action::Pass, Action::PassTrack, Action::RateLimit})
    if (text == to_string(a)) return a;
  return bad("action '" + std::string(text) + "'", "expected drop, pass, pass-track or rate-limit");
}

Result<std::uint8_t> parse_protocol(std::string_view text) {
  if (text == "tcp") return std::uint8_t{IPPROTO_TCP};
  if (text == "udp") return std::uint8_t{IPPROTO_UDP};
  if (text == "icmp") return std::uint8_t{IPPROTO_ICMP};
  if (text == "icmpv6") return std::uint8_t{IPPROTO_ICMPV6};
  const auto number = maps::parse_decimal(text, 0, 255);
  if (!number.value)
    return bad("protocol '" + std::string(text) + "'", "expected tcp, udp, icmp, icmpv6 or a number: " + number.reason);
  return static_cast<std::uint8_t>(*number.value);
}

Result<PortRange> parse_port_range(std::string_view text) {
  std::string problem;
  auto parse_port = [&problem](std::string_view part) -> std::optional<std::uint16_t> {
    const auto port = maps::parse_decimal(part, 0, 65535);
    if (!port.value) {
      if (problem.empty()) problem = "port " + port.problem;  // the first bad part
      return std::nullopt;
    }
    return static_cast<std::uint16_t>(*port.value);
  };
  // From the second character: a leading '-' is a sign (refused as one), not the range's dash.
  const auto dash = text.find('-', 1);
  auto first = parse_port(text.substr(0, dash));
  auto last = dash == std::string_view::npos ? first : parse_port(text.substr(dash + 1));
  if (!first || !last)
    return bad("port range '" + std::string(text) + "'", "expected PORT or FIRST-LAST: " + problem);
  PortRange range{*first, *last};
  if (auto checked = check_ports("port range '" + std::string(text) + "'", "ports", range); !checked) return checked.error();
  return range;
}

int family_of(const Prefix& prefix) { return prefix.index() == 0 ? 4 : 6; }

int family_of(const FilterRule& rule) {
  if (rule.src) return family_of(*rule.src);
  if (rule.dst) return family_of(*rule.dst);
  return 0;
}

bool contains(const Prefix& prefix, const std::uint8_t* addr, int family) {
  if (family_of(prefix) != family) return false;
  const std::uint32_t len = prefix_len(prefix);
  const std::uint8_t* net = prefix_bytes(prefix);
  const std::uint32_t full = len / 8, rest = len % 8;
  if (std::memcmp(net, addr, full) != 0) return false;
  if (rest == 0) return true;
  const std::uint8_t mask = static_cast<std::uint8_t>(0xff00 >> rest);
  return (net[full] & mask) == (addr[full] & mask);
}

bool covers(const Prefix& outer, const Prefix& inner) {
  return family_of(outer) == family_of(inner) && prefix_len(outer) <= prefix_len(inner) &&
         contains(outer, prefix_bytes(inner), family_of(inner));
}

Result<void> validate(const RateClass& c) {
  const std::string what = "rate_classes (id " + std::to_string(c.id) + ")";
  if (c.id >= SLUICE_FILTER_MAX_RATE_CLASSES)
    return bad(what, "id " + std::to_string(c.id) + " beyond " + std::to_string(SLUICE_FILTER_MAX_RATE_CLASSES - 1));
  if (c.packets_per_sec > kMaxPacketsPerSec) return bad(what, "packets_per_sec " + std::to_string(c.packets_per_sec) + " too large");
  if (c.bytes_per_sec > kMaxBytesPerSec) return bad(what, "bytes_per_sec " + std::to_string(c.bytes_per_sec) + " too large");
  if (c.packet_burst > kMaxPacketBurst) return bad(what, "packet_burst " + std::to_string(c.packet_burst) + " too large");
  if (c.byte_burst > kMaxByteBurst) return bad(what, "byte_burst " + std::to_string(c.byte_burst) + " too large");
  if (c.packets_per_sec && c.packet_burst == 0) return bad(what, "packet_burst 0 with a packet rate: nothing would pass");
  if (c.bytes_per_sec && c.byte_burst == 0) return bad(what, "byte_burst 0 with a byte rate: nothing would pass");
  if (c.v4_prefix_len > 32) return bad(what, "v4_prefix_len " + std::to_string(c.v4_prefix_len) + ": must be 0..32");
  if (c.v6_prefix_len > 128) return bad(what, "v6_prefix_len " + std::to_string(c.v6_prefix_len) + ": must be 0..128");
  if (c.aggregate_packets_per_sec > kMaxPacketsPerSec)
    return bad(what, "aggregate_packets_per_sec " + std::to_string(c.aggregate_packets_per_sec) + " too large");
  if (c.aggregate_bytes_per_sec > kMaxBytesPerSec)
    return bad(what, "aggregate_bytes_per_sec " + std::to_string(c.aggregate_bytes_per_sec) + " too large");
  if (c.aggregate_packet_burst > kMaxPacketBurst)
    return bad(what, "aggregate_packet_burst " + std::to_string(c.aggregate_packet_burst) + " too large");
  if (c.aggregate_byte_burst > kMaxByteBurst)
    return bad(what, "aggregate_byte_burst " + std::to_string(c.aggregate_byte_burst) + " too large");
  if (c.aggregate_packets_per_sec && c.aggregate_packet_burst == 0)
    return bad(what, "aggregate_packet_burst 0 with an aggregate packet rate: nothing would pass");
  if (c.aggregate_bytes_per_sec && c.aggregate_byte_burst == 0)
    return bad(what, "aggregate_byte_burst 0 with an aggregate byte rate: nothing would pass");
  if (!c.aggregate_packets_per_sec && c.aggregate_packet_burst)
    return bad(what, "aggregate_packet_burst " + std::to_string(c.aggregate_packet_burst) +
                         " without aggregate_packets_per_sec: a burst needs a rate");
  if (!c.aggregate_bytes_per_sec && c.aggregate_byte_burst)
    return bad(what, "aggregate_byte_burst " + std::to_string(c.aggregate_byte_burst) +
                         " without aggregate_bytes_per_sec: a burst needs a rate");
  return {};
}

std::uint32_t v4_source_mask(std::uint32_t prefix_len) {
  const std::uint32_t bits = std::min<std::uint32_t>(prefix_len, 32);
  return htonl(bits == 0 ? 0u : ~0u << (32 - bits));
}

std::array<std::uint32_t, 4> v6_source_mask(std::uint32_t prefix_len) {
  std::array<std::uint32_t, 4> mask{};
  for (std::uint32_t word = 0; word < mask.size(); ++word) {
    const std::uint32_t start = word * 32;
    mask[word] = v4_source_mask(prefix_len > start ? prefix_len - start : 0);
  }
  return mask;
}

Result<void> validate(const PrefixEntry& entry, const std::vector<RateClass>& classes) {
  return check_action("prefix " + maps::to_string(entry.prefix), entry.action, entry.rate_class, classes, false);
}

std::optional<std::string> unmatchable_icmp_problem(const FilterRule& rule) {
  // The parser reads the ICMP header of IPv4 packets with protocol icmp and
  // of IPv6 packets with next header icmpv6 only (xdp/parsing.h): the type
  // under the other family's ICMP protocol is never read, so no packet matches.
  if (!rule.icmp_type || !rule.protocol) return std::nullopt;
  const int family = family_of(rule);
  if (family == 6 && *rule.protocol == IPPROTO_ICMP)
    return "icmp_type " + std::to_string(*rule.icmp_type) +
           " with protocol icmp and an IPv6 address: IPv6 carries ICMP as icmpv6; no packet can match";
  if (family == 4 && *rule.protocol == IPPROTO_ICMPV6)
    return "icmp_type " + std::to_string(*rule.icmp_type) +
           " with protocol icmpv6 and an IPv4 address: IPv4 carries ICMP as icmp; no packet can match";
  return std::nullopt;
}

Result<void> validate(const FilterRule& rule, const std::vector<RateClass>& classes) {
  const std::string what = "rule (priority " + std::to_string(rule.priority) + ")";
  if (rule.src && rule.dst && family_of(*rule.src) != family_of(*rule.dst))
    return bad(what, "src " + maps::to_string(*rule.src) + " and dst " + maps::to_string(*rule.dst) +
                         " are of different address families");
  if (auto ok = check_ports(what, "src_ports", rule.src_ports); !ok) return ok;
  if (auto ok = check_ports(what, "dst_ports", rule.dst_ports); !ok) return ok;
  if (auto problem = unmatchable_icmp_problem(rule)) return bad(what, *problem);
  if (rule.tcp_flags && (rule.tcp_flags->value & ~rule.tcp_flags->mask))
    return bad(what, "tcp_flags value " + std::to_string(rule.tcp_flags->value) + " has bits outside mask " +
                         std::to_string(rule.tcp_flags->mask) + ": can never match");
  return check_action(what, rule.action, rule.rate_class, classes, true);
}

Result<void> validate(const RuleSet& set) {
  if (set.rules.size() > SLUICE_FILTER_MAX_RULES)
    return bad("rules", std::to_string(set.rules.size()) + " rules, at most " + std::to_string(SLUICE_FILTER_MAX_RULES));
  if (set.default_policy != DefaultPolicy::Pass && set.default_policy != DefaultPolicy::Drop)
    return bad("default_policy", std::to_string(static_cast<std::uint32_t>(set.default_policy)) + " is neither pass nor drop");
  std::set<std::uint32_t> class_ids;
  for (const RateClass& c : set.rate_classes) {
    if (auto ok = validate(c); !ok) return ok;
    if (!class_ids.insert(c.id).second) return bad("rate_classes", "id " + std::to_string(c.id) + " defined twice");
  }
  std::set<std::uint32_t> priorities;
  for (std::size_t i = 0; i < set.rules.size(); ++i) {
    if (auto ok = validate(set.rules[i], set.rate_classes); !ok) return ok;
    if (!priorities.insert(set.rules[i].priority).second)
      return bad(rule_name(i, set.rules[i]), "priority " + std::to_string(set.rules[i].priority) + " used by another rule");
  }
  std::size_t v4 = 0, v6 = 0;
  // Fixed-size keys, sorted once: a million prefixes are checked in well under a second.
  std::vector<std::pair<PrefixKey, std::size_t>> seen;
  seen.reserve(set.prefixes.size());
  for (std::size_t i = 0; i < set.prefixes.size(); ++i) {
    const PrefixEntry& entry = set.prefixes[i];
    if (auto ok = validate(entry, set.rate_classes); !ok) return ok;
    (entry.prefix.index() == 0 ? v4 : v6)++;
    seen.emplace_back(prefix_key(entry.prefix), i);
  }
  std::sort(seen.begin(), seen.end(), [](const auto& a, const auto& b) { return a.first.bytes < b.first.bytes; });
  if (auto twice = std::adjacent_find(seen.begin(), seen.end(), [](const auto& a, const auto& b) { return a.first == b.first; });
      twice != seen.end())
    return bad("prefix " + maps::to_string(set.prefixes[twice->second].prefix), "listed twice");
  if (v4 > SLUICE_FILTER_MAX_V4_PREFIXES)
    return bad("prefixes", std::to_string(v4) + " IPv4 prefixes, at most " + std::to_string(SLUICE_FILTER_MAX_V4_PREFIXES));
  if (v6 > SLUICE_FILTER_MAX_V6_PREFIXES)
    return bad("prefixes", std::to_string(v6) + " IPv6 prefixes, at most " + std::to_string(SLUICE_FILTER_MAX_V6_PREFIXES));
  return {};
}

FilterSettings default_settings() {
  FilterSettings s;
  s.conntrack = true;
  s.drop_invalid_tcp_flags = true;
  s.drop_sample_every = 0;
  s.ct_timeout_s[SLUICE_CT_NONE] = 1;
  s.ct_timeout_s[SLUICE_CT_TCP_SYN] = 30;
  s.ct_timeout_s[SLUICE_CT_TCP_ESTABLISHED] = 3600;
  s.ct_timeout_s[SLUICE_CT_TCP_CLOSING] = 10;
  s.ct_timeout_s[SLUICE_CT_UDP] = 30;
  s.ct_timeout_s[SLUICE_CT_UDP_REPLIED] = 180;
  s.ct_timeout_s[SLUICE_CT_ICMP] = 30;
  s.ct_timeout_s[SLUICE_CT_OTHER] = 60;
  return s;
}

Result<void> validate(const FilterSettings& s) {
  constexpr std::uint32_t week = 7 * 24 * 3600;
  for (std::size_t state = SLUICE_CT_TCP_SYN; state < SLUICE_CT_STATE_COUNT; ++state)
    if (s.ct_timeout_s[state] == 0 || s.ct_timeout_s[state] > week)
      return bad("settings", "ct_timeout_s[" + std::to_string(state) + "] = " + std::to_string(s.ct_timeout_s[state]) +
                                 ": must be 1.." + std::to_string(week));
  return {};
}

sluice_filter_settings to_wire(const FilterSettings& s) {
  sluice_filter_settings wire{};
  wire.version = SLUICE_FILTER_SETTINGS_VERSION;
  wire.conntrack_enabled = s.conntrack ? 1 : 0;
  wire.drop_sample_every = s.drop_sample_every;
  wire.drop_invalid_tcp_flags = s.drop_invalid_tcp_flags ? 1 : 0;
  for (std::size_t i = 0; i < SLUICE_CT_STATE_COUNT; ++i) wire.ct_timeout_s[i] = s.ct_timeout_s[i];
  return wire;
}

}  // namespace sluice::filter
