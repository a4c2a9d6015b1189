#include "desired_state.hpp"

#include <net/if.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "decimal.hpp"
#include "forward_config.hpp"
#include "lb_config.hpp"
#include "names.hpp"
#include "prefix.hpp"
#include "value_rules.hpp"
#include "yaml_walk.hpp"

namespace sluice::config {
namespace {

// The shared walk (yaml_walk.hpp).
using yaml_walk::boolean;
using yaml_walk::column_of;
using yaml_walk::fail;
using yaml_walk::Failure;
using yaml_walk::join;
using yaml_walk::kind_name;
using yaml_walk::line_of;
using yaml_walk::number;
using yaml_walk::quoted;
using yaml_walk::Walker;

// ---- vocabulary tables: one spelling of each value, used both ways ----

struct NamedProtocol {
  std::string_view name;
  std::uint8_t number;
};
// IANA protocol numbers of the protocols the parser decodes.
constexpr std::array<NamedProtocol, 4> kProtocols{{{"icmp", 1}, {"tcp", 6}, {"udp", 17}, {"icmpv6", 58}}};

struct NamedFlag {
  std::string_view name;
  std::uint8_t bit;
};
// TCP header flag bits, in wire order (sluice_pkt.tcp_flags uses the same).
constexpr std::array<NamedFlag, 8> kTcpFlags{{{"fin", 0x01},
                                              {"syn", 0x02},
                                              {"rst", 0x04},
                                              {"psh", 0x08},
                                              {"ack", 0x10},
                                              {"urg", 0x20},
                                              {"ece", 0x40},
                                              {"cwr", 0x80}}};

constexpr std::array<sluice_stage, SLUICE_STAGE_COUNT> kStages{SLUICE_STAGE_FILTER, SLUICE_STAGE_LB,
                                                               SLUICE_STAGE_FORWARD};




// ---- document framing ----

// Sees parse events and keeps nothing: used to count documents.
class IgnoreEvents final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// True when the text holds a second document (or garbage after the first).
// Not YAML::LoadAll: on input such as "{}," yaml-cpp 0.7 reports an endless
// run of empty documents and LoadAll loops forever, allocating (yaml-cpp
// issue #1040, fixed upstream by PR #1319 after 0.7). Asking for at most two
// documents is bounded whatever the parser does.
bool has_second_document(const std::string& text) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  IgnoreEvents ignore;
  if (!parser.HandleNextDocument(ignore)) return false;
  return parser.HandleNextDocument(ignore);
}


std::string index_path(const std::string& path, std::size_t index) { return path + "[" + std::to_string(index) + "]"; }

// ---- value parsers (node -> value); each names the path and the value ----

sluice_verdict pass_or_drop(Walker& w, const YAML::Node& node, const std::string& path) {
  const std::string text = w.scalar(node, path, "pass or drop");
  if (auto verdict = parse_pass_or_drop(text)) return *verdict;
  fail(path, "bad verdict " + quoted(text) + ": expected pass or drop", node);
}



std::string cidr(Walker& w, const YAML::Node& node, const std::string& path) {
  const std::string text = w.scalar(node, path, "a prefix (CIDR)");
  auto prefix = maps::parse_prefix(text);
  if (!prefix) fail(path, prefix.error().message, node);
  return maps::to_string(*prefix);
}

filter::Action action(Walker& w, const YAML::Node& node, const std::string& path) {
  const std::string text = w.scalar(node, path, "an action");
  auto parsed = filter::parse_action(text);
  if (!parsed)
    fail(path, "bad action " + quoted(text) + ": expected " + [] {
      std::string all;
      for (auto a : {filter::Action::Drop, filter::Action::Pass, filter::Action::PassTrack, filter::Action::RateLimit})
        all += (all.empty() ? "" : ", ") + std::string(filter::to_string(a));
      return all;
    }(), node);
  return *parsed;
}

std::string class_reference(Walker& w, const YAML::Node& node, const std::string& path) {
  return w.scalar(node, path, "a limits class name");
}

std::string interface_name(Walker& w, const YAML::Node& node, const std::string& path) {
  const std::string text = w.scalar(node, path, "an interface name");
  if (auto problem = interface_name_problem(text)) fail(path, "bad interface name " + quoted(text) + ": " + *problem, node);
  return text;
}

// ---- sections ----

std::vector<InterfaceSpec> parse_interfaces(Walker& w, const YAML::Node& node) {
  const std::string path = "interfaces";
  w.sequence(node, path);
  std::vector<InterfaceSpec> out;
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string item = index_path(path, i);
    InterfaceSpec spec;
    bool has_name = false;
    for (auto& [key, value] : w.fields(node[i], item, {"name", "mode"})) {
      if (key == "name") {
        spec.name = interface_name(w, value, item + ".name");
        has_name = true;
        if (auto [it, fresh] = seen.emplace(spec.name, i); !fresh)
          fail(item + ".name", "duplicate interface " + quoted(spec.name) + " (also " + index_path(path, it->second) + ")",
               value);
      } else {
        const std::string text = w.scalar(value, item + ".mode", "native or skb");
        auto mode = dataplane::parse_attach_mode(text);
        if (!mode) fail(item + ".mode", "bad mode " + quoted(text) + ": expected native or skb", value);
        spec.mode = *mode;
      }
    }
    if (!has_name) fail(item, "missing required key 'name'", node[i]);
    out.push_back(std::move(spec));
  }
  return out;
}

std::uint32_t parse_stages(Walker& w, const YAML::Node& node, const std::string& path) {
  w.sequence(node, path);
  std::uint32_t mask = 0;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string item = index_path(path, i);
    const std::string text = w.scalar(node[i], item, "a stage name");
    auto stage = parse_stage(text);
    if (!stage) fail(item, "unknown stage " + quoted(text) + ": expected filter, lb or forward", node[i]);
    if (mask & SLUICE_STAGE_BIT(*stage)) fail(item, "duplicate stage " + quoted(text), node[i]);
    mask |= SLUICE_STAGE_BIT(*stage);
  }
  return mask;
}

// legacy_policy: where a document of before the split gave defaults.default_verdict.
Defaults parse_defaults(Walker& w, const YAML::Node& node, std::optional<sluice_verdict>& legacy_policy) {
  const std::string path = "defaults";
  Defaults out;
  for (auto& [key, value] : w.fields(node, path,
                                     {"end_verdict", "tail_call_fail_verdict", "malformed_verdict", "non_ip_verdict",
                                      "drop_fragments", "stages", "drop_sample_every",
                                      kLegacyDefaultVerdictKey})) {
    const std::string child = path + "." + key;
    if (key == kLegacyDefaultVerdictKey) legacy_policy = pass_or_drop(w, value, child);
    else if (key == "end_verdict") out.end_verdict = pass_or_drop(w, value, child);
    else if (key == "tail_call_fail_verdict") out.tail_call_fail_verdict = pass_or_drop(w, value, child);
    else if (key == "malformed_verdict") out.malformed_verdict = pass_or_drop(w, value, child);
    else if (key == "non_ip_verdict") out.non_ip_verdict = pass_or_drop(w, value, child);
    else if (key == "drop_fragments") out.drop_fragments = boolean(w, value, child);
    else if (key == "drop_sample_every")
      out.drop_sample_every = number<std::uint32_t>(w, value, child, 0, protocol::max_drop_sample_every);
    else out.stages = parse_stages(w, value, child);
  }
  return out;
}

// Each entry: "198.18.0.0/15" or {prefix: "198.18.0.0/15", action: drop}.
std::vector<PrefixEntry> parse_prefix_list(Walker& w, const YAML::Node& node, const std::string& path,
                                           std::map<std::string, std::string>& seen) {
  w.sequence(node, path);
  std::vector<PrefixEntry> out;
  out.reserve(node.size());
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string item = index_path(path, i);
    const YAML::Node entry = node[i];
    PrefixEntry parsed;
    YAML::Node prefix_node = entry;
    std::string prefix_path = item;
    if (entry.IsMap()) {
      bool has_prefix = false;
      for (auto& [key, value] : w.fields(entry, item, {"prefix", "action", "rate_class"})) {
        if (key == "prefix") {
          prefix_node = value;
          prefix_path = item + ".prefix";
          has_prefix = true;
        } else if (key == "action") {
          parsed.action = action(w, value, item + ".action");
        } else {
          parsed.rate_class = class_reference(w, value, item + ".rate_class");
        }
      }
      if (!has_prefix) fail(item, "missing required key 'prefix'", entry);
    }
    parsed.prefix = cidr(w, prefix_node, prefix_path);
    // The same prefix twice (in one list or across block/allow) has no single
    // meaning; say where the first one is.
    if (auto [it, fresh] = seen.emplace(parsed.prefix, item); !fresh)
      fail(prefix_path, "duplicate prefix " + quoted(parsed.prefix) + " (also " + it->second + ")", prefix_node);
    out.push_back(std::move(parsed));
  }
  return out;
}

PrefixLists parse_prefix_lists(Walker& w, const YAML::Node& node) {
  const std::string path = "prefix_lists";
  PrefixLists out;
  std::map<std::string, std::string> seen;
  for (auto& [key, value] : w.fields(node, path, {"block", "allow"})) {
    auto& list = key == "block" ? out.block : out.allow;
    list = parse_prefix_list(w, value, path + "." + key, seen);
  }
  return out;
}

RuleSpec parse_rule(Walker& w, const YAML::Node& node, const std::string& path) {
  RuleSpec rule;
  bool has_priority = false;
  bool has_action = false;
  for (auto& [key, value] : w.fields(node, path,
                                     {"priority", "src", "dst", "proto", "sport", "dport", "tcp_flags", "icmp_type",
                                      "iface", "action", "rate_class"})) {
    const std::string child = path + "." + key;
    if (key == "priority") {
      rule.priority = number<std::uint32_t>(w, value, child, 0, std::numeric_limits<std::uint32_t>::max());
      has_priority = true;
    } else if (key == "src") {
      rule.src = cidr(w, value, child);
    } else if (key == "dst") {
      rule.dst = cidr(w, value, child);
    } else if (key == "proto") {
      const std::string text = w.scalar(value, child, "a protocol");
      auto proto = filter::parse_protocol(text);
      if (!proto) fail(child, filter_reason(proto.error()), value);
      rule.proto = *proto;
    } else if (key == "sport" || key == "dport") {
      const std::string text = w.scalar(value, child, "a port or port range");
      auto range = filter::parse_port_range(text);
      if (!range) fail(child, filter_reason(range.error()), value);
      (key == "sport" ? rule.sport : rule.dport) = *range;
    } else if (key == "tcp_flags") {
      const std::string text = w.scalar(value, child, "TCP flags");
      auto flags = parse_tcp_flags(text);
      if (!flags) fail(child, flags.error(), value);
      rule.tcp_flags = *flags;
    } else if (key == "icmp_type") {
      rule.icmp_type = number<std::uint8_t>(w, value, child, 0, std::numeric_limits<std::uint8_t>::max());
    } else if (key == "iface") {
      rule.iface = interface_name(w, value, child);
    } else if (key == "rate_class") {
      rule.rate_class = class_reference(w, value, child);
    } else {
      rule.action = action(w, value, child);
      has_action = true;
    }
  }
  if (!has_priority) fail(path, "missing required key 'priority'", node);
  if (!has_action) fail(path, "missing required key 'action'", node);
  return rule;
}

std::vector<RuleSpec> parse_rules(Walker& w, const YAML::Node& node) {
  const std::string path = "rules";
  w.sequence(node, path);
  std::vector<RuleSpec> out;
  std::map<std::uint32_t, std::size_t> seen;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string item = index_path(path, i);
    RuleSpec rule = parse_rule(w, node[i], item);
    // Priorities order the first-match table and name rules in diffs: two
    // rules at one priority would have no defined order.
    if (auto [it, fresh] = seen.emplace(rule.priority, i); !fresh)
      fail(item + ".priority",
           "duplicate priority " + std::to_string(rule.priority) + " (also " + index_path(path, it->second) + ")",
           node[i]["priority"]);
    out.push_back(std::move(rule));
  }
  return out;
}

std::vector<LimitSpec> parse_limits(Walker& w, const YAML::Node& node) {
  const std::string path = "limits";
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  w.sequence(node, path);
  std::vector<LimitSpec> out;
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string item = index_path(path, i);
    LimitSpec limit;
    bool has_class = false;
    bool has_pps = false;
    for (auto& [key, value] : w.fields(node[i], item, {"class", "pps", "bps", "burst", "syn_only", "v4_prefix_len",
                                                       "v6_prefix_len", "aggregate_pps", "aggregate_bps",
                                                       "aggregate_burst"})) {
      const std::string child = item + "." + key;
      if (key == "class") {
        limit.class_name = w.scalar(value, child, "a class name");
        if (!is_class_name(limit.class_name))
          fail(child, "bad class name " + quoted(limit.class_name) + ": " + class_name_rule(), value);
        if (auto [it, fresh] = seen.emplace(limit.class_name, i); !fresh)
          fail(child, "duplicate class " + quoted(limit.class_name) + " (also " + index_path(path, it->second) + ")",
               value);
        has_class = true;
      } else if (key == "pps") {
        limit.pps = number<std::uint64_t>(w, value, child, 1, kMax);
        has_pps = true;
      } else if (key == "bps") {
        limit.bps = number<std::uint64_t>(w, value, child, 1, kMax);
      } else if (key == "syn_only") {
        limit.syn_only = boolean(w, value, child);
      } else if (key == "v4_prefix_len") {
        limit.v4_prefix_len = number<std::uint32_t>(w, value, child, 0, 32);
      } else if (key == "v6_prefix_len") {
        limit.v6_prefix_len = number<std::uint32_t>(w, value, child, 0, 128);
      } else if (key == "aggregate_pps") {
        limit.aggregate_pps = number<std::uint64_t>(w, value, child, 1, kMax);
      } else if (key == "aggregate_bps") {
        limit.aggregate_bps = number<std::uint64_t>(w, value, child, 1, kMax);
      } else if (key == "aggregate_burst") {
        limit.aggregate_burst = number<std::uint64_t>(w, value, child, 1, kMax);
      } else {
        limit.burst = number<std::uint64_t>(w, value, child, 1, kMax);
      }
    }
    if (!has_class) fail(item, "missing required key 'class'", node[i]);
    if (!has_pps) fail(item, "missing required key 'pps'", node[i]);
    if (limit.aggregate_burst && !limit.aggregate_pps)
      fail(item + ".aggregate_burst",
           "aggregate_burst " + std::to_string(*limit.aggregate_burst) + " needs aggregate_pps (a burst of what rate?)",
           node[i]["aggregate_burst"]);
    out.push_back(std::move(limit));
  }
  return out;
}

// ---- the filter's view: names -> ids, text -> values, then filter::validate ----

// Rate classes get ids in limits order; rules and prefix entries refer to
// them by name.
struct ClassTable {
  std::vector<filter::RateClass> classes;
  std::map<std::string, std::uint32_t> ids;
};

filter::RateClass to_rate_class(const LimitSpec& limit, std::uint32_t id) {
  filter::RateClass out;
  out.id = id;
  out.packets_per_sec = limit.pps;
  out.packet_burst = limit.burst.value_or(limit.pps);  // one second of rate
  out.bytes_per_sec = limit.bps.value_or(0);            // 0: bytes unlimited
  out.byte_burst = limit.bps.value_or(0);
  out.syn_only = limit.syn_only;
  out.v4_prefix_len = limit.v4_prefix_len.value_or(SLUICE_FILTER_RATE_V4_PREFIX_DEFAULT);
  out.v6_prefix_len = limit.v6_prefix_len.value_or(SLUICE_FILTER_RATE_V6_PREFIX_DEFAULT);
  out.aggregate_packets_per_sec = limit.aggregate_pps.value_or(0);  // 0 (and no aggregate_bps): no aggregate
  out.aggregate_packet_burst = limit.aggregate_burst.value_or(limit.aggregate_pps.value_or(0));
  out.aggregate_bytes_per_sec = limit.aggregate_bps.value_or(0);
  out.aggregate_byte_burst = limit.aggregate_bps.value_or(0);
  return out;
}

ClassTable class_table(const DesiredState& state) {
  ClassTable table;
  if (!state.limits) return table;
  for (std::size_t i = 0; i < state.limits->size(); ++i) {
    const auto id = static_cast<std::uint32_t>(i);
    table.classes.push_back(to_rate_class((*state.limits)[i], id));
    table.ids.emplace((*state.limits)[i].class_name, id);
  }
  return table;
}

// Error text (no path) or the id of a named class; 0 when no class is named.
boost::system::result<std::uint32_t, std::string> class_id(const ClassTable& table,
                                                           const std::optional<std::string>& name,
                                                           filter::Action action) {
  if (!name) {
    if (action == filter::Action::RateLimit) return std::string("action rate-limit needs rate_class (a limits[].class)");
    return 0u;
  }
  if (action != filter::Action::RateLimit) return "rate_class " + quoted(*name) + " needs action rate-limit";
  auto it = table.ids.find(*name);
  if (it == table.ids.end()) return "rate_class " + quoted(*name) + " is not a class of this document's limits";
  return it->second;
}

maps::Prefix must_prefix(const std::string& canonical) {
  // Canonical text came out of maps::to_string(parse_prefix(...)): parses.
  return *maps::parse_prefix(canonical);
}

// The rule without its interface (resolved by the caller), checked by the filter.
boost::system::result<filter::FilterRule, std::string> to_filter_rule(const RuleSpec& spec, const ClassTable& table) {
  filter::FilterRule rule;
  rule.priority = spec.priority;
  if (spec.src) rule.src = must_prefix(*spec.src);
  if (spec.dst) rule.dst = must_prefix(*spec.dst);
  rule.protocol = spec.proto;
  rule.src_ports = spec.sport;
  rule.dst_ports = spec.dport;
  rule.tcp_flags = spec.tcp_flags;
  rule.icmp_type = spec.icmp_type;
  rule.action = spec.action;
  auto id = class_id(table, spec.rate_class, spec.action);
  if (!id) return id.error();
  rule.rate_class = *id;
  if (auto ok = filter::validate(rule, table.classes); !ok) return filter_reason(ok.error());
  return rule;
}

boost::system::result<filter::PrefixEntry, std::string> to_filter_prefix(const PrefixEntry& spec,
                                                                         filter::Action list_action,
                                                                         const ClassTable& table) {
  filter::PrefixEntry entry;
  entry.prefix = must_prefix(spec.prefix);
  entry.action = spec.action.value_or(list_action);
  auto id = class_id(table, spec.rate_class, entry.action);
  if (!id) return id.error();
  entry.rate_class = *id;
  if (auto ok = filter::validate(entry, table.classes); !ok) return filter_reason(ok.error());
  return entry;
}

// After every section is read (a rule may name a class defined below it):
// the filter's own validation, reported at the YAML path and line.
void check_filter_sections(const DesiredState& state, const YAML::Node& root) {
  const ClassTable table = class_table(state);
  for (std::size_t i = 0; state.limits && i < state.limits->size(); ++i)
    if (auto ok = filter::validate(table.classes[i]); !ok)
      fail(index_path("limits", i), filter_reason(ok.error()), root["limits"][i]);
  for (std::size_t i = 0; state.rules && i < state.rules->size(); ++i)
    if (auto rule = to_filter_rule((*state.rules)[i], table); !rule)
      fail(index_path("rules", i), rule.error(), root["rules"][i]);
  if (!state.prefix_lists) return;
  for (const auto& [list, action] : {std::pair{"block", filter::Action::Drop}, std::pair{"allow", filter::Action::Pass}}) {
    const auto& entries = std::string_view(list) == "block" ? state.prefix_lists->block : state.prefix_lists->allow;
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (auto entry = to_filter_prefix(entries[i], action, table); !entry)
        fail(index_path(std::string("prefix_lists.") + list, i), entry.error(), root["prefix_lists"][list][i]);
  }
}

FilterSection parse_filter_section(Walker& w, const YAML::Node& node) {
  const std::string path = "filter";
  FilterSection out;
  for (auto& [key, value] : w.fields(node, path, {"default_policy"})) {
    const std::string child = path + "." + key;
    const std::string text = w.scalar(value, child, "pass or drop");
    out.default_policy = parse_policy(text);
    if (!out.default_policy) fail(child, "bad policy " + quoted(text) + ": expected pass or drop", value);
  }
  return out;
}

// defaults.default_verdict of a document from before the split (see kLegacyDefaultVerdictKey).
void migrate_legacy_policy(DesiredState& state, sluice_verdict legacy, const YAML::Node& root) {
  const std::string path = "defaults." + std::string(kLegacyDefaultVerdictKey);
  if (state.filter && state.filter->default_policy)
    fail(path, "is the old spelling of filter.default_policy, which the document also gives: keep only the new key",
         root["defaults"][std::string(kLegacyDefaultVerdictKey)]);
  FilterSection& filter = state.filter ? *state.filter : state.filter.emplace();
  filter.default_policy = legacy == SLUICE_VERDICT_DROP ? filter::DefaultPolicy::Drop : filter::DefaultPolicy::Pass;
  if (!state.defaults->end_verdict) state.defaults->end_verdict = SLUICE_VERDICT_PASS;
}

DesiredState parse_document(Walker& w, const YAML::Node& root) {
  DesiredState state;
  std::optional<sluice_verdict> legacy_policy;
  // An empty document manages nothing; anything else must be a mapping.
  if (root.IsNull()) return state;
  for (auto& [key, value] :
       w.fields(root, "", {"interfaces", "defaults", "filter", "prefix_lists", "rules", "limits", "lb", "forward"})) {
    if (key == "interfaces") state.interfaces = parse_interfaces(w, value);
    else if (key == "defaults") state.defaults = parse_defaults(w, value, legacy_policy);
    else if (key == "filter") state.filter = parse_filter_section(w, value);
    else if (key == "prefix_lists") state.prefix_lists = parse_prefix_lists(w, value);
    else if (key == "rules") state.rules = parse_rules(w, value);
    else if (key == "lb") {
      auto section = parse_lb_section(value);  // lb_config.cpp
      if (!section) throw Failure{section.error()};
      state.lb = std::move(*section);
    } else if (key == "forward") {
      auto section = parse_forward_section(value);  // forward_config.cpp
      if (!section) throw Failure{section.error()};
      state.forward = std::move(*section);
    }
    else state.limits = parse_limits(w, value);
  }
  if (legacy_policy) migrate_legacy_policy(state, *legacy_policy, root);
  check_filter_sections(state, root);
  return state;
}

// ---- YAML output ----

void emit_prefix_list(YAML::Emitter& out, std::string_view key, const std::vector<PrefixEntry>& list) {
  out << YAML::Key << std::string(key) << YAML::Value;
  if (list.empty()) {
    out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
    return;
  }
  out << YAML::BeginSeq;
  for (const auto& entry : list) {
    if (!entry.action && !entry.rate_class) {
      out << entry.prefix;
      continue;
    }
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "prefix" << YAML::Value << entry.prefix;
    if (entry.action) out << YAML::Key << "action" << YAML::Value << std::string(filter::to_string(*entry.action));
    if (entry.rate_class) out << YAML::Key << "rate_class" << YAML::Value << *entry.rate_class;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

// ---- diff helpers ----

std::string verdict_text(const std::optional<sluice_verdict>& verdict) {
  return verdict ? std::string(dataplane::verdict_name(*verdict)) : "(unset)";
}

std::string bool_text(const std::optional<bool>& value) {
  return value ? (*value ? "true" : "false") : "(unset)";
}

std::string number_text(const std::optional<std::uint32_t>& value) {
  return value ? std::to_string(*value) : "(unset)";
}

std::string stages_opt_text(const std::optional<std::uint32_t>& mask) {
  return mask ? stages_text(*mask) : "(unset)";
}

void diff_field(std::vector<std::string>& out, std::string_view field, const std::string& live,
                const std::string& wanted) {
  if (live != wanted) out.push_back("~ defaults." + std::string(field) + ": " + live + " -> " + wanted);
}

std::string prefix_action_text(const PrefixEntry& entry) {
  std::string out = entry.action ? std::string(filter::to_string(*entry.action)) : "(list default)";
  if (entry.rate_class) out += " class " + *entry.rate_class;
  return out;
}

std::string prefix_entry_text(const PrefixEntry& entry) {
  return entry.action || entry.rate_class ? entry.prefix + " action " + prefix_action_text(entry) : entry.prefix;
}

void diff_prefix_list(std::vector<std::string>& out, std::string_view list_name, const std::vector<PrefixEntry>& live,
                      const std::vector<PrefixEntry>& wanted) {
  std::map<std::string, const PrefixEntry*> live_by_prefix;
  for (const auto& entry : live) live_by_prefix.emplace(entry.prefix, &entry);
  std::map<std::string, const PrefixEntry*> wanted_by_prefix;
  for (const auto& entry : wanted) wanted_by_prefix.emplace(entry.prefix, &entry);
  const std::string name(list_name);
  for (const auto& [prefix, entry] : live_by_prefix)
    if (!wanted_by_prefix.contains(prefix)) out.push_back("- " + name + " " + prefix_entry_text(*entry));
  for (const auto& [prefix, entry] : wanted_by_prefix) {
    auto it = live_by_prefix.find(prefix);
    if (it == live_by_prefix.end()) {
      out.push_back("+ " + name + " " + prefix_entry_text(*entry));
    } else if (!(*it->second == *entry)) {
      out.push_back("~ " + name + " " + prefix + ": action " + prefix_action_text(*it->second) + " -> " +
                    prefix_action_text(*entry));
    }
  }
}

std::string limit_text(const LimitSpec& limit) {
  std::string out = "pps " + std::to_string(limit.pps);
  if (limit.bps) out += " bps " + std::to_string(*limit.bps);
  if (limit.burst) out += " burst " + std::to_string(*limit.burst);
  if (limit.syn_only) out += " syn-only";
  if (limit.v4_prefix_len) out += " v4-prefix /" + std::to_string(*limit.v4_prefix_len);
  if (limit.v6_prefix_len) out += " v6-prefix /" + std::to_string(*limit.v6_prefix_len);
  if (limit.aggregate_pps) out += " aggregate-pps " + std::to_string(*limit.aggregate_pps);
  if (limit.aggregate_bps) out += " aggregate-bps " + std::to_string(*limit.aggregate_bps);
  if (limit.aggregate_burst) out += " aggregate-burst " + std::to_string(*limit.aggregate_burst);
  return out;
}

// Removals, then additions and changes, each in key order: stable output
// whatever the order of the documents.
template <class Item, class Key, class Describe, class Label>
void diff_keyed(std::vector<std::string>& out, const std::vector<Item>& live, const std::vector<Item>& wanted,
                Key key_of, Describe describe_item, Label label) {
  using K = decltype(key_of(std::declval<const Item&>()));
  std::map<K, const Item*> live_by_key;
  for (const auto& item : live) live_by_key.emplace(key_of(item), &item);
  std::map<K, const Item*> wanted_by_key;
  for (const auto& item : wanted) wanted_by_key.emplace(key_of(item), &item);
  for (const auto& [key, item] : live_by_key)
    if (!wanted_by_key.contains(key)) out.push_back("- " + label(*item));
  for (const auto& [key, item] : wanted_by_key) {
    auto it = live_by_key.find(key);
    if (it == live_by_key.end()) {
      out.push_back("+ " + label(*item) + ": " + describe_item(*item));
    } else if (!(*it->second == *item)) {
      out.push_back("~ " + label(*item) + ": " + describe_item(*it->second) + " -> " + describe_item(*item));
    }
  }
}

}  // namespace

std::string filter_reason(const maps::Error& error) {
  std::string_view text = error.message;
  for (std::string_view prefix : {"validate filter: ", "parse filter: "})
    if (text.starts_with(prefix)) text.remove_prefix(prefix.size());
  if (const auto paren = text.rfind(" ("); paren != std::string_view::npos && text.ends_with(")"))
    text = text.substr(0, paren);
  return std::string(text);
}

bool is_class_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxClassNameBytes && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  });
}

std::string class_name_rule() { return "1.." + std::to_string(kMaxClassNameBytes) + " of A-Z a-z 0-9 _ - ."; }

// ---- public vocabulary ----

std::string ParseError::to_string() const {
  std::string out = path.empty() ? message : path + ": " + message;
  if (line > 0) out += " (line " + std::to_string(line) + ", column " + std::to_string(column) + ")";
  return out;
}

void throw_exception_from_error(const ParseError& error, const boost::source_location&) {
  throw std::invalid_argument(error.to_string());
}

std::optional<sluice_verdict> parse_pass_or_drop(std::string_view text) {
  auto verdict = dataplane::parse_verdict_name(text);
  if (verdict == SLUICE_VERDICT_PASS || verdict == SLUICE_VERDICT_DROP) return verdict;
  return std::nullopt;
}

std::optional<filter::DefaultPolicy> parse_policy(std::string_view text) {
  if (text == "pass") return filter::DefaultPolicy::Pass;
  if (text == "drop") return filter::DefaultPolicy::Drop;
  return std::nullopt;
}

std::string_view policy_name(filter::DefaultPolicy policy) {
  return policy == filter::DefaultPolicy::Drop ? "drop" : "pass";
}

std::string_view stage_name(sluice_stage stage) {
  switch (stage) {
    case SLUICE_STAGE_FILTER: return "filter";
    case SLUICE_STAGE_LB: return "lb";
    case SLUICE_STAGE_FORWARD: return "forward";
    case SLUICE_STAGE_COUNT: break;
  }
  return "unknown";
}

std::optional<sluice_stage> parse_stage(std::string_view text) {
  for (sluice_stage stage : kStages)
    if (stage_name(stage) == text) return stage;
  return std::nullopt;
}

std::string stages_text(std::uint32_t mask) {
  std::vector<std::string_view> names;
  for (sluice_stage stage : kStages)
    if (mask & SLUICE_STAGE_BIT(stage)) names.push_back(stage_name(stage));
  return "[" + join(names, ", ") + "]";
}

std::string protocol_name(std::uint8_t proto) {
  for (const auto& known : kProtocols)
    if (known.number == proto) return std::string(known.name);
  return std::to_string(proto);
}

std::string to_string(const PortRange& range) {
  if (range.first == range.last) return std::to_string(range.first);
  return std::to_string(range.first) + "-" + std::to_string(range.last);
}

boost::system::result<TcpFlagMatch, std::string> parse_tcp_flags(std::string_view text) {
  const std::string bad = "bad tcp_flags " + quoted(text);
  if (text.empty()) return bad + ": empty; expected e.g. syn,!ack";
  TcpFlagMatch match;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    std::string_view word = text.substr(start, comma - start);
    const bool clear = !word.empty() && word.front() == '!';
    if (clear) word.remove_prefix(1);
    auto flag = std::find_if(kTcpFlags.begin(), kTcpFlags.end(), [&](const NamedFlag& f) { return f.name == word; });
    if (flag == kTcpFlags.end())
      return bad + ": unknown flag " + quoted(word) + "; expected fin syn rst psh ack urg ece cwr, '!' for clear";
    if (match.mask & flag->bit) return bad + ": flag " + quoted(word) + " given twice";
    match.mask |= flag->bit;
    if (!clear) match.value |= flag->bit;
    start = comma + 1;
  }
  return match;
}

std::string to_string(const TcpFlagMatch& flags) {
  std::string out;
  for (const auto& flag : kTcpFlags) {
    if (!(flags.mask & flag.bit)) continue;
    if (!out.empty()) out += ',';
    if (!(flags.value & flag.bit)) out += '!';
    out += flag.name;
  }
  return out;
}

std::string describe(const RuleSpec& rule) {
  std::vector<std::string> words;
  if (rule.iface) words.push_back("iface " + *rule.iface);
  if (rule.src) words.push_back("src " + *rule.src);
  if (rule.dst) words.push_back("dst " + *rule.dst);
  if (rule.proto) words.push_back(protocol_name(*rule.proto));
  if (rule.sport) words.push_back("sport " + to_string(*rule.sport));
  if (rule.dport) words.push_back("dport " + to_string(*rule.dport));
  if (rule.tcp_flags) words.push_back("flags " + to_string(*rule.tcp_flags));
  if (rule.icmp_type) words.push_back("icmp-type " + std::to_string(*rule.icmp_type));
  words.push_back(std::string(filter::to_string(rule.action)));
  if (rule.rate_class) words.push_back("class " + *rule.rate_class);
  std::string out;
  for (const auto& word : words) out += (out.empty() ? "" : " ") + word;
  return out;
}

// ---- the three entry points ----

Result<DesiredState> parse_desired_state(std::string_view yaml) {
  if (yaml.size() > kMaxDocumentBytes)
    return ParseError{"", "document too large: " + std::to_string(yaml.size()) + " bytes, limit " +
                              std::to_string(kMaxDocumentBytes)};
  // yaml-cpp reads C strings in places; an embedded NUL would silently cut
  // the document short.
  if (auto nul = yaml.find('\0'); nul != std::string_view::npos)
    return ParseError{"", "document contains a NUL byte at offset " + std::to_string(nul)};
  try {
    const std::string text(yaml);
    if (has_second_document(text)) return ParseError{"", "more than one YAML document; expected exactly one"};
    Walker walker;
    return parse_document(walker, YAML::Load(text));
  } catch (const Failure& failure) {
    return failure.error;
  } catch (const YAML::Exception& e) {
    return ParseError{"", "invalid YAML: " + e.msg, line_of(e.mark), column_of(e.mark)};
  } catch (const std::exception& e) {
    // yaml-cpp can throw standard exceptions on hostile input (e.g. bad_alloc).
    return ParseError{"", std::string("invalid YAML: ") + e.what()};
  }
}

std::string to_yaml(const DesiredState& state) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  if (state.interfaces) {
    out << YAML::Key << "interfaces" << YAML::Value;
    if (state.interfaces->empty()) {
      out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
    } else {
      out << YAML::BeginSeq;
      for (const auto& spec : *state.interfaces)
        out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << spec.name << YAML::Key << "mode" << YAML::Value
            << std::string(dataplane::to_string(spec.mode)) << YAML::EndMap;
      out << YAML::EndSeq;
    }
  }
  if (state.defaults) {
    const Defaults& d = *state.defaults;
    out << YAML::Key << "defaults" << YAML::Value;
    if (d == Defaults{}) {
      out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    } else {
      out << YAML::BeginMap;
      auto verdict = [&](const char* key, const std::optional<sluice_verdict>& v) {
        if (v) out << YAML::Key << key << YAML::Value << std::string(dataplane::verdict_name(*v));
      };
      verdict("end_verdict", d.end_verdict);
      verdict("tail_call_fail_verdict", d.tail_call_fail_verdict);
      verdict("malformed_verdict", d.malformed_verdict);
      verdict("non_ip_verdict", d.non_ip_verdict);
      if (d.drop_fragments) out << YAML::Key << "drop_fragments" << YAML::Value << (*d.drop_fragments ? "true" : "false");
      if (d.stages) {
        out << YAML::Key << "stages" << YAML::Value << YAML::Flow << YAML::BeginSeq;
        for (sluice_stage stage : kStages)
          if (*d.stages & SLUICE_STAGE_BIT(stage)) out << std::string(stage_name(stage));
        out << YAML::EndSeq;
      }
      if (d.drop_sample_every) out << YAML::Key << "drop_sample_every" << YAML::Value << *d.drop_sample_every;
      out << YAML::EndMap;
    }
  }
  if (state.filter) {
    out << YAML::Key << "filter" << YAML::Value;
    if (!state.filter->default_policy) {
      out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    } else {
      out << YAML::BeginMap << YAML::Key << "default_policy" << YAML::Value
          << std::string(policy_name(*state.filter->default_policy)) << YAML::EndMap;
    }
  }
  if (state.prefix_lists) {
    out << YAML::Key << "prefix_lists" << YAML::Value << YAML::BeginMap;
    emit_prefix_list(out, "block", state.prefix_lists->block);
    emit_prefix_list(out, "allow", state.prefix_lists->allow);
    out << YAML::EndMap;
  }
  if (state.rules) {
    out << YAML::Key << "rules" << YAML::Value;
    if (state.rules->empty()) {
      out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
    } else {
      out << YAML::BeginSeq;
      for (const auto& rule : *state.rules) {
        out << YAML::BeginMap << YAML::Key << "priority" << YAML::Value << rule.priority;
        if (rule.src) out << YAML::Key << "src" << YAML::Value << *rule.src;
        if (rule.dst) out << YAML::Key << "dst" << YAML::Value << *rule.dst;
        if (rule.proto) out << YAML::Key << "proto" << YAML::Value << protocol_name(*rule.proto);
        // Quoted: an unquoted 22 would be fine, but "1000-2000" keeps one form for both.
        if (rule.sport) out << YAML::Key << "sport" << YAML::Value << YAML::DoubleQuoted << to_string(*rule.sport);
        if (rule.dport) out << YAML::Key << "dport" << YAML::Value << YAML::DoubleQuoted << to_string(*rule.dport);
        if (rule.tcp_flags)
          out << YAML::Key << "tcp_flags" << YAML::Value << YAML::DoubleQuoted << to_string(*rule.tcp_flags);
        if (rule.icmp_type) out << YAML::Key << "icmp_type" << YAML::Value << static_cast<unsigned>(*rule.icmp_type);
        if (rule.iface) out << YAML::Key << "iface" << YAML::Value << *rule.iface;
        out << YAML::Key << "action" << YAML::Value << std::string(filter::to_string(rule.action));
        if (rule.rate_class) out << YAML::Key << "rate_class" << YAML::Value << *rule.rate_class;
        out << YAML::EndMap;
      }
      out << YAML::EndSeq;
    }
  }
  if (state.limits) {
    out << YAML::Key << "limits" << YAML::Value;
    if (state.limits->empty()) {
      out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
    } else {
      out << YAML::BeginSeq;
      for (const auto& limit : *state.limits) {
        out << YAML::BeginMap << YAML::Key << "class" << YAML::Value << limit.class_name << YAML::Key << "pps"
            << YAML::Value << limit.pps;
        if (limit.bps) out << YAML::Key << "bps" << YAML::Value << *limit.bps;
        if (limit.burst) out << YAML::Key << "burst" << YAML::Value << *limit.burst;
        if (limit.syn_only) out << YAML::Key << "syn_only" << YAML::Value << "true";
        if (limit.v4_prefix_len) out << YAML::Key << "v4_prefix_len" << YAML::Value << *limit.v4_prefix_len;
        if (limit.v6_prefix_len) out << YAML::Key << "v6_prefix_len" << YAML::Value << *limit.v6_prefix_len;
        if (limit.aggregate_pps) out << YAML::Key << "aggregate_pps" << YAML::Value << *limit.aggregate_pps;
        if (limit.aggregate_bps) out << YAML::Key << "aggregate_bps" << YAML::Value << *limit.aggregate_bps;
        if (limit.aggregate_burst) out << YAML::Key << "aggregate_burst" << YAML::Value << *limit.aggregate_burst;
        out << YAML::EndMap;
      }
      out << YAML::EndSeq;
    }
  }
  if (state.lb) emit_lb_section(out, *state.lb);
  if (state.forward) emit_forward_section(out, *state.forward);
  out << YAML::EndMap;
  // An empty state is an empty mapping: "{}", which parses back to nothing managed.
  std::string text = out.c_str();
  text += '\n';
  return text;
}

Result<filter::RuleSet> to_filter_rule_set(
    const DesiredState& state, const std::function<std::optional<std::uint32_t>(const std::string&)>& ifindex_of) {
  filter::RuleSet set;
  const ClassTable table = class_table(state);
  set.rate_classes = table.classes;
  if (state.filter && state.filter->default_policy) set.default_policy = *state.filter->default_policy;
  for (std::size_t i = 0; state.rules && i < state.rules->size(); ++i) {
    const RuleSpec& spec = (*state.rules)[i];
    auto rule = to_filter_rule(spec, table);
    if (!rule) return ParseError{index_path("rules", i), rule.error()};
    if (spec.iface) {
      rule->ifindex = ifindex_of(*spec.iface);
      if (!rule->ifindex) return ParseError{index_path("rules", i) + ".iface", "no interface " + quoted(*spec.iface)};
    }
    set.rules.push_back(std::move(*rule));
  }
  if (state.prefix_lists) {
    for (const auto& [list, action] : {std::pair{"block", filter::Action::Drop}, std::pair{"allow", filter::Action::Pass}}) {
      const auto& entries = std::string_view(list) == "block" ? state.prefix_lists->block : state.prefix_lists->allow;
      for (std::size_t i = 0; i < entries.size(); ++i) {
        auto entry = to_filter_prefix(entries[i], action, table);
        if (!entry) return ParseError{index_path(std::string("prefix_lists.") + list, i), entry.error()};
        set.prefixes.push_back(std::move(*entry));
      }
    }
  }
  if (auto ok = filter::validate(set); !ok) return ParseError{"", filter_reason(ok.error())};
  return set;
}

std::vector<std::string> diff(const DesiredState& live, const DesiredState& wanted) {
  std::vector<std::string> out;
  if (wanted.interfaces) {
    diff_keyed(
        out, live.interfaces.value_or(std::vector<InterfaceSpec>{}), *wanted.interfaces,
        [](const InterfaceSpec& spec) { return spec.name; },
        [](const InterfaceSpec& spec) { return "mode " + std::string(dataplane::to_string(spec.mode)); },
        [](const InterfaceSpec& spec) { return "interface " + spec.name; });
  }
  if (wanted.defaults) {
    const Defaults l = live.defaults.value_or(Defaults{});
    const Defaults& w = *wanted.defaults;
    // Only keys the document sets are managed.
    if (w.end_verdict) diff_field(out, "end_verdict", verdict_text(l.end_verdict), verdict_text(w.end_verdict));
    if (w.tail_call_fail_verdict)
      diff_field(out, "tail_call_fail_verdict", verdict_text(l.tail_call_fail_verdict),
                 verdict_text(w.tail_call_fail_verdict));
    if (w.malformed_verdict)
      diff_field(out, "malformed_verdict", verdict_text(l.malformed_verdict), verdict_text(w.malformed_verdict));
    if (w.non_ip_verdict) diff_field(out, "non_ip_verdict", verdict_text(l.non_ip_verdict), verdict_text(w.non_ip_verdict));
    if (w.drop_fragments) diff_field(out, "drop_fragments", bool_text(l.drop_fragments), bool_text(w.drop_fragments));
    if (w.stages) diff_field(out, "stages", stages_opt_text(l.stages), stages_opt_text(w.stages));
    if (w.drop_sample_every)
      diff_field(out, "drop_sample_every", number_text(l.drop_sample_every), number_text(w.drop_sample_every));
  }
  if (wanted.filter && wanted.filter->default_policy) {
    const auto policy_text = [](const std::optional<FilterSection>& f) {
      return f && f->default_policy ? std::string(policy_name(*f->default_policy)) : std::string("(unset)");
    };
    const std::string l = policy_text(live.filter), w = policy_text(wanted.filter);
    if (l != w) out.push_back("~ filter.default_policy: " + l + " -> " + w);
  }
  if (wanted.prefix_lists) {
    const PrefixLists l = live.prefix_lists.value_or(PrefixLists{});
    diff_prefix_list(out, "block", l.block, wanted.prefix_lists->block);
    diff_prefix_list(out, "allow", l.allow, wanted.prefix_lists->allow);
  }
  if (wanted.rules) {
    diff_keyed(
        out, live.rules.value_or(std::vector<RuleSpec>{}), *wanted.rules, [](const RuleSpec& rule) { return rule.priority; },
        [](const RuleSpec& rule) { return describe(rule); },
        [](const RuleSpec& rule) { return "rule " + std::to_string(rule.priority); });
  }
  if (wanted.limits) {
    diff_keyed(
        out, live.limits.value_or(std::vector<LimitSpec>{}), *wanted.limits,
        [](const LimitSpec& limit) { return limit.class_name; }, limit_text,
        [](const LimitSpec& limit) { return "limit " + limit.class_name; });
  }
  if (wanted.lb) diff_lb_section(out, live.lb.value_or(lb::LbConfig{}), *wanted.lb);
  if (wanted.forward) diff_forward_section(out, live.forward.value_or(ForwardConfig{}), *wanted.forward);
  return out;
}

}  // namespace sluice::config
