#include "forward_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "names.hpp"
#include "prefix.hpp"
#include "yaml_walk.hpp"

namespace sluice::config {
namespace {

using yaml_walk::boolean;
using yaml_walk::fail;
using yaml_walk::Failure;
using yaml_walk::number;
using yaml_walk::quoted;
using yaml_walk::Walker;

std::string index_path(const std::string& path, std::size_t index) { return path + "[" + std::to_string(index) + "]"; }

bool unicast(const ForwardMac& mac) {
  return (mac[0] & 1u) == 0 && std::any_of(mac.begin(), mac.end(), [](std::uint8_t b) { return b != 0; });
}

lb::Address address(Walker& w, const YAML::Node& node, const std::string& path) {
  const std::string text = w.scalar(node, path, "an IPv4 or IPv6 address");
  auto parsed = lb::parse_address(text);
  if (!parsed) fail(path, parsed.error().message, node);
  return *parsed;
}

ForwardMac mac(Walker& w, const YAML::Node& node, const std::string& path) {
  const std::string text = w.scalar(node, path, "a MAC address");
  auto parsed = lb::parse_mac(text);
  if (!parsed) fail(path, parsed.error().message, node);
  return *parsed;
}

// The via/dev/mac/src_mac keys of a route or a group member (others: `extra`).
struct HopKeys {
  bool via = false, dev = false, mac = false;
};
bool hop_key(Walker& w, const std::string& key, const YAML::Node& value, const std::string& child, ForwardHop& hop,
             HopKeys& seen) {
  if (key == "via") {
    hop.via = address(w, value, child);
    seen.via = true;
  } else if (key == "dev") {
    hop.dev = w.scalar(value, child, "an interface name");
    if (auto problem = interface_name_problem(hop.dev)) fail(child, "bad interface name " + quoted(hop.dev) + ": " + *problem, value);
    seen.dev = true;
  } else if (key == "mac") {
    hop.mac = mac(w, value, child);
    seen.mac = true;
  } else if (key == "src_mac") {
    hop.src_mac = mac(w, value, child);
  } else {
    return false;
  }
  return true;
}

// mac may be left out: the kernel's neighbour table resolves it.
void require_hop(const HopKeys& seen, const std::string& path, const YAML::Node& node) {
  if (!seen.via) fail(path + ".via", "is required (the neighbour's address)", node);
  if (!seen.dev) fail(path + ".dev", "is required (the egress interface)", node);
}

ForwardSync parse_sync(Walker& w, const YAML::Node& node, const std::string& path) {
  ForwardSync out;
  for (auto& [key, value] : w.fields(node, path, {"table"})) {
    const std::string child = path + "." + key;
    out.table = number<std::uint32_t>(w, value, child, 0, std::numeric_limits<std::uint32_t>::max());
    if (auto problem = sync_table_problem(out.table)) fail(child, *problem, value);
  }
  return out;
}

ForwardSettings parse_settings(Walker& w, const YAML::Node& node, const std::string& path) {
  ForwardSettings out;
  for (auto& [key, value] : w.fields(node, path, {"no_route", "icmp_rate", "icmp_burst", "icmp_source_v4",
                                                  "icmp_source_v6", "cpus", "cpumap_queue"})) {
    const std::string child = path + "." + key;
    if (key == "no_route") {
      const std::string text = w.scalar(value, child, "pass or drop");
      auto verdict = parse_pass_or_drop(text);
      if (!verdict) fail(child, "bad verdict " + quoted(text) + ": expected pass or drop", value);
      out.no_route = *verdict;
    } else if (key == "icmp_rate") {
      out.icmp_rate = number<std::uint32_t>(w, value, child, 0, kForwardIcmpMax);
    } else if (key == "icmp_burst") {
      out.icmp_burst = number<std::uint32_t>(w, value, child, 0, kForwardIcmpMax);
    } else if (key == "icmp_source_v4" || key == "icmp_source_v6") {
      const int family = key == "icmp_source_v4" ? 4 : 6;
      const lb::Address source = address(w, value, child);
      if (source.family != family)
        fail(child, quoted(lb::to_string(source)) + " is not an IPv" + std::to_string(family) + " address", value);
      (family == 4 ? out.icmp_source_v4 : out.icmp_source_v6) = source;
    } else if (key == "cpus") {
      w.sequence(value, child);
      for (std::size_t i = 0; i < value.size(); ++i)
        out.cpus.push_back(number<std::uint32_t>(w, value[i], index_path(child, i), 0, SLUICE_FWD_MAX_CPUS - 1));
    } else {
      out.cpumap_queue = number<std::uint32_t>(w, value, child, 1, SLUICE_FWD_CPUMAP_QSIZE_MAX);
    }
  }
  return out;
}

ForwardGroup parse_group(Walker& w, const YAML::Node& node, const std::string& path) {
  ForwardGroup out;
  bool named = false, members = false;
  for (auto& [key, value] : w.fields(node, path, {"name", "next_hops"})) {
    const std::string child = path + "." + key;
    if (key == "name") {
      out.name = w.scalar(value, child, "a group name");
      named = true;
      continue;
    }
    members = true;
    w.sequence(value, child);
    for (std::size_t i = 0; i < value.size(); ++i) {
      const std::string item = index_path(child, i);
      ForwardGroupMember member;
      HopKeys seen;
      for (auto& [k, v] : w.fields(value[i], item, {"via", "dev", "mac", "src_mac", "weight"})) {
        if (hop_key(w, k, v, item + "." + k, member.hop, seen)) continue;
        member.weight = number<std::uint32_t>(w, v, item + "." + k, 1, SLUICE_FWD_WEIGHT_MAX);
      }
      require_hop(seen, item, value[i]);
      out.members.push_back(std::move(member));
    }
  }
  if (!named) fail(path + ".name", "is required", node);
  if (!members) fail(path + ".next_hops", "is required (1.." + std::to_string(SLUICE_FWD_GROUP_MAX_MEMBERS) + " next hops)", node);
  return out;
}

ForwardRoute parse_route(Walker& w, const YAML::Node& node, const std::string& path) {
  ForwardRoute out;
  HopKeys seen;
  bool has_prefix = false, has_group = false, to_stack = false;
  for (auto& [key, value] : w.fields(node, path, {"prefix", "via", "dev", "mac", "src_mac", "group", "to_stack"})) {
    const std::string child = path + "." + key;
    if (hop_key(w, key, value, child, out.hop, seen)) continue;
    if (key == "prefix") {
      const std::string text = w.scalar(value, child, "a prefix");
      auto prefix = maps::parse_prefix(text);
      if (!prefix) fail(child, prefix.error().message, value);
      out.prefix = maps::to_string(*prefix);
      has_prefix = true;
    } else if (key == "group") {
      out.group = w.scalar(value, child, "a group name");
      has_group = true;
    } else {
      to_stack = boolean(w, value, child);
      if (!to_stack) fail(child, "false: give via/dev/mac or group instead", value);
    }
  }
  if (!has_prefix) fail(path + ".prefix", "is required", node);
  const bool via = seen.via || seen.dev || seen.mac || out.hop.src_mac;
  if (int(via) + int(has_group) + int(to_stack) != 1)
    fail(path, "give exactly one of via/dev/mac, group or to_stack: true", node);
  if (via) {
    require_hop(seen, path, node);
    out.kind = ForwardRoute::Kind::Via;
  } else if (has_group) {
    out.kind = ForwardRoute::Kind::Group;
  } else {
    out.kind = ForwardRoute::Kind::ToStack;
  }
  return out;
}

void emit_hop(YAML::Emitter& out, const ForwardHop& hop) {
  out << YAML::Key << "via" << YAML::Value << lb::to_string(hop.via) << YAML::Key << "dev" << YAML::Value << hop.dev;
  if (hop.mac) out << YAML::Key << "mac" << YAML::Value << lb::mac_to_string(*hop.mac);
  if (hop.src_mac) out << YAML::Key << "src_mac" << YAML::Value << lb::mac_to_string(*hop.src_mac);
}

std::string opt_address_text(const std::optional<lb::Address>& address) {
  return address ? lb::to_string(*address) : "(unset)";
}

}  // namespace

std::optional<std::string> sync_table_problem(std::uint32_t table) {
  if (table == kForwardSyncUnspecTable) return "0 is RT_TABLE_UNSPEC, not a routing table (main is 254)";
  if (table == kForwardSyncLocalTable)
    return "255 is the local table (the box's own addresses, which the stack delivers), never synced";
  return std::nullopt;
}

bool is_forward_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxForwardNameBytes) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  });
}

std::string hop_name(const ForwardHop& hop) { return lb::to_string(hop.via) + "@" + hop.dev; }

std::string describe(const ForwardHop& hop) {
  std::string out = "via " + lb::to_string(hop.via) + " dev " + hop.dev + " mac " +
                    (hop.mac ? lb::mac_to_string(*hop.mac) : std::string("resolved"));
  if (hop.src_mac) out += " src_mac " + lb::mac_to_string(*hop.src_mac);
  return out;
}

std::string describe(const ForwardRoute& route) {
  switch (route.kind) {
    case ForwardRoute::Kind::Via: return describe(route.hop);
    case ForwardRoute::Kind::Group: return "group " + route.group;
    case ForwardRoute::Kind::ToStack: break;
  }
  return "to-stack";
}

std::string describe(const ForwardGroup& group) {
  std::string out;
  for (const auto& member : group.members)
    out += (out.empty() ? "" : ", ") + describe(member.hop) + " weight " + std::to_string(member.weight);
  return out;
}

std::string describe(const ForwardSettings& s) {
  return "no_route " + std::string(dataplane::verdict_name(s.no_route)) + " icmp " + std::to_string(s.icmp_rate) + "/" +
         std::to_string(s.icmp_burst) + " cpus [" + cpu_list_text(s.cpus) + "] queue " + std::to_string(s.cpumap_queue);
}

std::optional<std::vector<std::uint32_t>> parse_cpu_list(std::string_view text) {
  std::set<std::uint32_t> cpus;
  if (text.empty()) return std::vector<std::uint32_t>{};
  std::size_t start = 0;
  auto number = [](std::string_view word) -> std::optional<std::uint32_t> {
    const auto parsed = maps::parse_decimal(word, std::uint64_t{0}, std::uint64_t{SLUICE_FWD_MAX_CPUS - 1});
    if (!parsed.value) return std::nullopt;
    return static_cast<std::uint32_t>(*parsed.value);
  };
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view word = text.substr(start, comma - start);
    const std::size_t dash = word.find('-');
    auto first = number(word.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : number(word.substr(dash + 1));
    if (!first || !last || *last < *first) return std::nullopt;
    for (std::uint32_t cpu = *first; cpu <= *last; ++cpu) cpus.insert(cpu);
    start = comma + 1;
  }
  return std::vector<std::uint32_t>(cpus.begin(), cpus.end());
}

std::string cpu_list_text(const std::vector<std::uint32_t>& cpus) {
  std::vector<std::uint32_t> sorted = cpus;
  std::sort(sorted.begin(), sorted.end());
  std::string out;
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(sorted[i]);
    if (j > i) out += "-" + std::to_string(sorted[j]);
    i = j + 1;
  }
  return out;
}

std::vector<ForwardHop> forward_hops(const ForwardConfig& config) {
  std::map<std::string, ForwardHop> hops;
  for (const auto& group : config.groups)
    for (const auto& member : group.members) hops.emplace(hop_name(member.hop), member.hop);
  for (const auto& route : config.routes)
    if (route.kind == ForwardRoute::Kind::Via) hops.emplace(hop_name(route.hop), route.hop);
  std::vector<ForwardHop> out;
  for (auto& [name, hop] : hops) out.push_back(std::move(hop));
  return out;
}

std::optional<std::string> validate_forward(const ForwardConfig& config) {
  const ForwardSettings& s = config.settings;
  if (s.no_route != SLUICE_VERDICT_PASS && s.no_route != SLUICE_VERDICT_DROP)
    return "forward.settings.no_route: " + std::string(dataplane::verdict_name(s.no_route)) + " is neither pass nor drop";
  if (s.icmp_rate > kForwardIcmpMax) return "forward.settings.icmp_rate: " + std::to_string(s.icmp_rate) + " is above " + std::to_string(kForwardIcmpMax);
  if (s.icmp_burst > kForwardIcmpMax) return "forward.settings.icmp_burst: " + std::to_string(s.icmp_burst) + " is above " + std::to_string(kForwardIcmpMax);
  if (s.icmp_rate > 0 && s.icmp_burst == 0) return "forward.settings.icmp_burst: 0 with icmp_rate " + std::to_string(s.icmp_rate) + ": no answer could ever go";
  if (s.icmp_source_v4 && s.icmp_source_v4->family != 4) return "forward.settings.icmp_source_v4: " + lb::to_string(*s.icmp_source_v4) + " is not an IPv4 address";
  if (s.icmp_source_v6 && s.icmp_source_v6->family != 6) return "forward.settings.icmp_source_v6: " + lb::to_string(*s.icmp_source_v6) + " is not an IPv6 address";
  if (s.cpus.size() > SLUICE_FWD_MAX_CPUS) return "forward.settings.cpus: " + std::to_string(s.cpus.size()) + " CPUs, at most " + std::to_string(SLUICE_FWD_MAX_CPUS);
  std::set<std::uint32_t> cpus;
  for (std::size_t i = 0; i < s.cpus.size(); ++i) {
    if (s.cpus[i] >= SLUICE_FWD_MAX_CPUS) return index_path("forward.settings.cpus", i) + ": CPU " + std::to_string(s.cpus[i]) + " is beyond " + std::to_string(SLUICE_FWD_MAX_CPUS - 1);
    if (!cpus.insert(s.cpus[i]).second) return index_path("forward.settings.cpus", i) + ": CPU " + std::to_string(s.cpus[i]) + " is listed twice";
  }
  if (s.cpumap_queue == 0 || s.cpumap_queue > SLUICE_FWD_CPUMAP_QSIZE_MAX)
    return "forward.settings.cpumap_queue: " + std::to_string(s.cpumap_queue) + " is outside 1.." + std::to_string(SLUICE_FWD_CPUMAP_QSIZE_MAX);

  // One spec per next hop, wherever it is written.
  std::map<std::string, std::pair<ForwardHop, std::string>> hops;
  auto check_hop = [&](const ForwardHop& hop, const std::string& path) -> std::optional<std::string> {
    if (auto problem = interface_name_problem(hop.dev)) return path + ".dev: bad interface name '" + hop.dev + "': " + *problem;
    if (hop.mac && !unicast(*hop.mac)) return path + ".mac: " + lb::mac_to_string(*hop.mac) + " is not a unicast MAC";
    if (hop.src_mac && !unicast(*hop.src_mac)) return path + ".src_mac: " + lb::mac_to_string(*hop.src_mac) + " is not a unicast MAC";
    auto [it, fresh] = hops.emplace(hop_name(hop), std::pair{hop, path});
    if (!fresh && !(it->second.first == hop))
      return path + ": next hop " + hop_name(hop) + " is " + describe(hop) + " but " + it->second.second + " gives it " +
             describe(it->second.first) + " (one neighbour, one MAC)";
    return std::nullopt;
  };
  if (config.sync)
    if (auto problem = sync_table_problem(config.sync->table)) return "forward.sync.table: " + *problem;
  std::set<std::string> groups;
  if (config.groups.size() >= SLUICE_FWD_MAX_GROUPS)
    return "forward.groups: " + std::to_string(config.groups.size()) + " groups, at most " + std::to_string(SLUICE_FWD_MAX_GROUPS - 1);
  for (std::size_t g = 0; g < config.groups.size(); ++g) {
    const ForwardGroup& group = config.groups[g];
    const std::string path = index_path("forward.groups", g);
    if (!is_forward_name(group.name))
      return path + ".name: bad group name '" + group.name.substr(0, kMaxForwardNameBytes) + "': 1.." + std::to_string(kMaxForwardNameBytes) + " of A-Z a-z 0-9 _ - .";
    if (!groups.insert(group.name).second) return path + ".name: group '" + group.name + "' is defined twice";
    if (group.members.empty() || group.members.size() > SLUICE_FWD_GROUP_MAX_MEMBERS)
      return path + ".next_hops: " + std::to_string(group.members.size()) + " next hops, expected 1.." + std::to_string(SLUICE_FWD_GROUP_MAX_MEMBERS);
    std::set<std::string> members;
    for (std::size_t m = 0; m < group.members.size(); ++m) {
      const std::string item = index_path(path + ".next_hops", m);
      const auto& member = group.members[m];
      if (member.weight == 0 || member.weight > SLUICE_FWD_WEIGHT_MAX)
        return item + ".weight: " + std::to_string(member.weight) + " is outside 1.." + std::to_string(SLUICE_FWD_WEIGHT_MAX);
      if (auto problem = check_hop(member.hop, item)) return problem;
      if (!members.insert(hop_name(member.hop)).second) return item + ": next hop " + hop_name(member.hop) + " is twice in group '" + group.name + "'";
    }
  }
  std::set<std::string> prefixes;
  std::size_t v4 = 0, v6 = 0;
  for (std::size_t r = 0; r < config.routes.size(); ++r) {
    const ForwardRoute& route = config.routes[r];
    const std::string path = index_path("forward.routes", r);
    auto prefix = maps::parse_prefix(route.prefix);
    if (!prefix) return path + ".prefix: " + prefix.error().message;
    if (maps::to_string(*prefix) != route.prefix) return path + ".prefix: '" + route.prefix + "' is not canonical (" + maps::to_string(*prefix) + ")";
    (std::holds_alternative<sluice_lpm_v4_key>(*prefix) ? v4 : v6)++;
    if (!prefixes.insert(route.prefix).second) return path + ".prefix: route " + route.prefix + " is defined twice";
    if (route.kind == ForwardRoute::Kind::Via) {
      if (auto problem = check_hop(route.hop, path)) return problem;
    } else if (route.kind == ForwardRoute::Kind::Group && !groups.contains(route.group)) {
      return path + ".group: '" + route.group.substr(0, kMaxForwardNameBytes) + "' is not a group";
    }
  }
  if (v4 > SLUICE_FWD_MAX_V4_ROUTES) return "forward.routes: " + std::to_string(v4) + " IPv4 routes, at most " + std::to_string(SLUICE_FWD_MAX_V4_ROUTES);
  if (v6 > SLUICE_FWD_MAX_V6_ROUTES) return "forward.routes: " + std::to_string(v6) + " IPv6 routes, at most " + std::to_string(SLUICE_FWD_MAX_V6_ROUTES);
  if (hops.size() >= SLUICE_FWD_MAX_NEXTHOPS)
    return "forward: " + std::to_string(hops.size()) + " distinct next hops, at most " + std::to_string(SLUICE_FWD_MAX_NEXTHOPS - 1);
  return std::nullopt;
}

Result<ForwardConfig> parse_forward_section(const YAML::Node& node) {
  const std::string path = "forward";
  try {
    Walker w;
    ForwardConfig out;
    for (auto& [key, value] : w.fields(node, path, {"settings", "sync", "groups", "routes"})) {
      const std::string child = path + "." + key;
      if (key == "settings") {
        out.settings = parse_settings(w, value, child);
        continue;
      }
      if (key == "sync") {
        out.sync = parse_sync(w, value, child);
        continue;
      }
      w.sequence(value, child);
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (key == "groups")
          out.groups.push_back(parse_group(w, value[i], index_path(child, i)));
        else
          out.routes.push_back(parse_route(w, value[i], index_path(child, i)));
      }
    }
    if (auto problem = validate_forward(out)) {
      // The message starts with its path: split it off so the error reads "path: message (line ...)".
      const std::size_t colon = problem->find(": ");
      return ParseError{problem->substr(0, colon), colon == std::string::npos ? *problem : problem->substr(colon + 2),
                        yaml_walk::line_of(node.Mark()), yaml_walk::column_of(node.Mark())};
    }
    return out;
  } catch (const Failure& failure) {
    return failure.error;
  }
}

void emit_forward_section(YAML::Emitter& out, const ForwardConfig& config) {
  const ForwardSettings& s = config.settings;
  out << YAML::Key << "forward" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "settings" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "no_route" << YAML::Value << std::string(dataplane::verdict_name(s.no_route));
  out << YAML::Key << "icmp_rate" << YAML::Value << s.icmp_rate << YAML::Key << "icmp_burst" << YAML::Value << s.icmp_burst;
  if (s.icmp_source_v4) out << YAML::Key << "icmp_source_v4" << YAML::Value << lb::to_string(*s.icmp_source_v4);
  if (s.icmp_source_v6) out << YAML::Key << "icmp_source_v6" << YAML::Value << lb::to_string(*s.icmp_source_v6);
  out << YAML::Key << "cpus" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (std::uint32_t cpu : s.cpus) out << cpu;
  out << YAML::EndSeq;
  out << YAML::Key << "cpumap_queue" << YAML::Value << s.cpumap_queue;
  out << YAML::EndMap;
  if (config.sync)
    out << YAML::Key << "sync" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "table" << YAML::Value
        << config.sync->table << YAML::EndMap;
  out << YAML::Key << "groups" << YAML::Value;
  if (config.groups.empty()) {
    out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
  } else {
    out << YAML::BeginSeq;
    for (const auto& group : config.groups) {
      out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << group.name << YAML::Key << "next_hops" << YAML::Value
          << YAML::BeginSeq;
      for (const auto& member : group.members) {
        out << YAML::Flow << YAML::BeginMap;
        emit_hop(out, member.hop);
        out << YAML::Key << "weight" << YAML::Value << member.weight << YAML::EndMap;
      }
      out << YAML::EndSeq << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::Key << "routes" << YAML::Value;
  if (config.routes.empty()) {
    out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
  } else {
    out << YAML::BeginSeq;
    for (const auto& route : config.routes) {
      out << YAML::Flow << YAML::BeginMap << YAML::Key << "prefix" << YAML::Value << route.prefix;
      switch (route.kind) {
        case ForwardRoute::Kind::Via: emit_hop(out, route.hop); break;
        case ForwardRoute::Kind::Group: out << YAML::Key << "group" << YAML::Value << route.group; break;
        case ForwardRoute::Kind::ToStack: out << YAML::Key << "to_stack" << YAML::Value << "true"; break;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
}

void diff_forward_section(std::vector<std::string>& out, const ForwardConfig& live, const ForwardConfig& wanted) {
  const ForwardSettings& l = live.settings;
  const ForwardSettings& w = wanted.settings;
  auto field = [&](std::string_view name, const std::string& from, const std::string& to) {
    if (from != to) out.push_back("~ forward.settings." + std::string(name) + ": " + from + " -> " + to);
  };
  field("no_route", std::string(dataplane::verdict_name(l.no_route)), std::string(dataplane::verdict_name(w.no_route)));
  field("icmp_rate", std::to_string(l.icmp_rate), std::to_string(w.icmp_rate));
  field("icmp_burst", std::to_string(l.icmp_burst), std::to_string(w.icmp_burst));
  field("icmp_source_v4", opt_address_text(l.icmp_source_v4), opt_address_text(w.icmp_source_v4));
  field("icmp_source_v6", opt_address_text(l.icmp_source_v6), opt_address_text(w.icmp_source_v6));
  field("cpus", "[" + cpu_list_text(l.cpus) + "]", "[" + cpu_list_text(w.cpus) + "]");
  field("cpumap_queue", std::to_string(l.cpumap_queue), std::to_string(w.cpumap_queue));
  auto sync_text = [](const std::optional<ForwardSync>& sync) {
    return sync ? "table " + std::to_string(sync->table) : std::string("off");
  };
  if (sync_text(live.sync) != sync_text(wanted.sync))
    out.push_back("~ forward.sync: " + sync_text(live.sync) + " -> " + sync_text(wanted.sync));

  std::map<std::string, const ForwardGroup*> live_groups, wanted_groups;
  for (const auto& group : live.groups) live_groups.emplace(group.name, &group);
  for (const auto& group : wanted.groups) wanted_groups.emplace(group.name, &group);
  for (const auto& [name, group] : live_groups)
    if (!wanted_groups.contains(name)) out.push_back("- group " + name);
  for (const auto& [name, group] : wanted_groups) {
    auto it = live_groups.find(name);
    if (it == live_groups.end())
      out.push_back("+ group " + name + ": " + describe(*group));
    else if (!(*it->second == *group))
      out.push_back("~ group " + name + ": " + describe(*it->second) + " -> " + describe(*group));
  }
  std::map<std::string, const ForwardRoute*> live_routes, wanted_routes;
  for (const auto& route : live.routes) live_routes.emplace(route.prefix, &route);
  for (const auto& route : wanted.routes) wanted_routes.emplace(route.prefix, &route);
  for (const auto& [prefix, route] : live_routes)
    if (!wanted_routes.contains(prefix)) out.push_back("- route " + prefix);
  for (const auto& [prefix, route] : wanted_routes) {
    auto it = live_routes.find(prefix);
    if (it == live_routes.end())
      out.push_back("+ route " + prefix + ": " + describe(*route));
    else if (!(*it->second == *route))
      out.push_back("~ route " + prefix + ": " + describe(*it->second) + " -> " + describe(*route));
  }
}

}  // namespace sluice::config
