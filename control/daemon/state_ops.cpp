#include "state_ops.hpp"

#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <unordered_map>

#include "names.hpp"
#include "spdlog/spdlog.h"

namespace sluice::daemon {
namespace {

namespace json = boost::json;
using protocol::ErrorCode;
using protocol::ProtocolError;
namespace args = protocol::args;

constexpr std::size_t max_text_arg_bytes = 256;
constexpr std::uint32_t priority_step = 10;  // auto-assigned priorities leave room to insert between

ProtocolError failed(std::string message) { return {ErrorCode::Failed, std::move(message)}; }

std::optional<std::uint32_t> ifindex_of(const std::string& name) {
  const unsigned index = if_nametoindex(name.c_str());
  return index ? std::optional<std::uint32_t>(index) : std::nullopt;
}

std::string ct_state_name(std::uint32_t state) {
  static constexpr std::array<std::string_view, SLUICE_CT_STATE_COUNT> names{
      "none", "tcp_syn", "tcp_established", "tcp_closing", "udp", "udp_replied", "icmp", "other"};
  return state < names.size() ? std::string(names[state]) : "state_" + std::to_string(state);
}

std::string address_text(const __u32 (&addr)[4], int ip_version) {
  char text[INET6_ADDRSTRLEN] = {};
  if (ip_version == 4) inet_ntop(AF_INET, addr, text, sizeof text);
  else inet_ntop(AF_INET6, addr, text, sizeof text);
  return text;
}

std::string canonical_prefix_key(const maps::Prefix& prefix) { return maps::to_string(prefix); }

// ---- rule.add arguments: JSON -> config::RuleSpec ----

protocol::ArgsResult<std::optional<std::string>> cidr_arg(std::string_view op, const json::object& object,
                                                          std::string_view key) {
  auto text = args::optional_string(op, object, key, max_text_arg_bytes);
  if (!text) return text.error();
  if (!*text) return std::optional<std::string>{};
  auto prefix = maps::parse_prefix(**text);
  if (!prefix) return args::bad(op, key, prefix.error().message);
  return std::optional<std::string>{maps::to_string(*prefix)};
}

// "80", "1000-2000" or 80.
protocol::ArgsResult<std::optional<filter::PortRange>> ports_arg(std::string_view op, const json::object& object,
                                                                 std::string_view key) {
  const auto* value = object.if_contains(key);
  if (!value) return std::optional<filter::PortRange>{};
  if (value->is_string()) {
    if (value->as_string().size() > max_text_arg_bytes) return args::bad(op, key, "too long");
    auto range = filter::parse_port_range(value->as_string());
    if (!range) return args::bad(op, key, config::filter_reason(range.error()));
    return std::optional<filter::PortRange>{*range};
  }
  auto number = args::optional_uint(op, object, key, 0, 65535);
  if (!number) return args::bad(op, key, "must be a port (0..65535) or a range \"first-last\", got " +
                                             protocol::quote_value(*value));
  const auto port = static_cast<std::uint16_t>(**number);
  return std::optional<filter::PortRange>{filter::PortRange{port, port}};
}

// "tcp", "17" or 17.
protocol::ArgsResult<std::optional<std::uint8_t>> proto_arg(std::string_view op, const json::object& object) {
  const auto* value = object.if_contains("proto");
  if (!value) return std::optional<std::uint8_t>{};
  if (value->is_string()) {
    if (value->as_string().size() > max_text_arg_bytes) return args::bad(op, "proto", "too long");
    auto proto = filter::parse_protocol(value->as_string());
    if (!proto) return args::bad(op, "proto", config::filter_reason(proto.error()));
    return std::optional<std::uint8_t>{*proto};
  }
  auto number = args::optional_uint(op, object, "proto", 0, 255);
  if (!number) return args::bad(op, "proto", "must be tcp, udp, icmp, icmpv6 or 0..255, got " + protocol::quote_value(*value));
  return std::optional<std::uint8_t>{static_cast<std::uint8_t>(**number)};
}

// "syn,!ack" or {"mask":18,"value":2}.
protocol::ArgsResult<std::optional<filter::TcpFlagMatch>> tcp_flags_arg(std::string_view op, const json::object& object) {
  const auto* value = object.if_contains("tcp_flags");
  if (!value) return std::optional<filter::TcpFlagMatch>{};
  if (value->is_string()) {
    if (value->as_string().size() > max_text_arg_bytes) return args::bad(op, "tcp_flags", "too long");
    auto flags = config::parse_tcp_flags(value->as_string());
    if (!flags) return args::bad(op, "tcp_flags", flags.error());
    return std::optional<filter::TcpFlagMatch>{*flags};
  }
  if (value->is_object()) {
    const auto& match = value->as_object();
    constexpr std::string_view field = "tcp_flags";
    if (auto keys = args::only_keys(field, match, {"mask", "value"}); !keys) return args::bad(op, "tcp_flags", keys.error().message);
    auto mask = args::optional_uint(field, match, "mask", 1, 255);
    auto bits = args::optional_uint(field, match, "value", 0, 255);
    if (!mask || !*mask) return args::bad(op, "tcp_flags.mask", "must be 1..255");
    if (!bits || !*bits || (**bits & ~**mask)) return args::bad(op, "tcp_flags.value", "must be 0..255 within mask");
    return std::optional<filter::TcpFlagMatch>{
        filter::TcpFlagMatch{static_cast<std::uint8_t>(**mask), static_cast<std::uint8_t>(**bits)}};
  }
  return args::bad(op, "tcp_flags", "must be a string such as \"syn,!ack\", got " + protocol::quote_value(*value));
}

json::object rule_to_json(const config::RuleSpec& rule) {
  json::object out{{"id", rule.priority}, {"priority", rule.priority}};
  if (rule.iface) out["iface"] = *rule.iface;
  if (rule.src) out["src"] = *rule.src;
  if (rule.dst) out["dst"] = *rule.dst;
  if (rule.proto) out["proto"] = *rule.proto;
  if (rule.sport) out["sport"] = config::to_string(*rule.sport);
  if (rule.dport) out["dport"] = config::to_string(*rule.dport);
  if (rule.tcp_flags) out["tcp_flags"] = config::to_string(*rule.tcp_flags);
  if (rule.icmp_type) out["icmp_type"] = *rule.icmp_type;
  out["action"] = filter::to_string(rule.action);
  if (rule.rate_class) out["rate_class"] = *rule.rate_class;
  out["description"] = config::describe(rule);
  return out;
}

}  // namespace

std::string_view to_string(ChangeStep step) {
  switch (step) {
    case ChangeStep::FilterSet: return "filter rule set";
    case ChangeStep::FilterSettings: return "filter settings";
    case ChangeStep::Lb: return "load balancer";
    case ChangeStep::Config: return "config";
    case ChangeStep::Interfaces: return "interfaces";
    case ChangeStep::Persist: return "persist";
  }
  return "step";
}

StateOps::StateOps(dataplane::Dataplane& plane, filter::FilterTable& table, StateStore& store, Service& service)
    : plane_(plane), table_(table), store_(store), service_(service), conntrack_(plane) {}

config::DesiredState StateOps::baseline(const std::optional<std::vector<config::InterfaceSpec>>& legacy_interfaces) const {
  config::DesiredState state;
  state.interfaces = legacy_interfaces.value_or(std::vector<config::InterfaceSpec>{});
  auto config_now = plane_.config();
  auto settings_now = table_.settings();
  state.defaults = defaults_of(config_now ? *config_now : sluice_config{},
                               settings_now ? *settings_now : filter::default_settings());
  if (!config_now) spdlog::error("read config: {}", config_now.error().message);
  state.filter = config::FilterSection{table_.rule_set().default_policy};
  std::vector<filter::PrefixEntry> recovered;
  for (const auto& entry : table_.list_prefixes()) {
    // Rate classes are not recoverable, so neither are prefixes that use one.
    if (entry.action == filter::Action::RateLimit) {
      spdlog::warn("prefix {} (rate-limit class {}) found in the maps is not kept: its class is unknown",
                   maps::to_string(entry.prefix), entry.rate_class);
      continue;
    }
    recovered.push_back(entry);
  }
  state.prefix_lists = prefix_lists_for({}, recovered, {});
  state.rules.emplace();
  state.limits.emplace();
  if (part_) part_->add_baseline(state);
  return state;
}

bool StateOps::restore(const config::DesiredState& baseline, const config::DesiredState& sections) {
  config::DesiredState wanted = overlay(baseline, sections);
  std::vector<std::string> problems;
  // A rule naming an interface that is not there can match no packet: it is
  // left out (and reported) rather than costing the whole set.
  if (wanted.rules) {
    std::vector<config::RuleSpec> kept;
    for (std::size_t i = 0; i < wanted.rules->size(); ++i) {
      const auto& rule = (*wanted.rules)[i];
      if (!rule.iface || ifindex_of(*rule.iface)) {
        kept.push_back(rule);
        continue;
      }
      problems.push_back("rules[" + std::to_string(i) + "].iface: no interface '" + *rule.iface + "': rule " +
                         std::to_string(rule.priority) + " not made live (it matches no packet while it is missing)");
    }
    wanted.rules = std::move(kept);
  }
  config::DesiredState live = wanted;  // becomes what is actually live, part by part
  // The filter's rules and classes cannot be read back from the compiled
  // bitmaps: after open() the table knows none, so comparing the wanted set
  // with it says nothing about what runs (a daemon killed after a swap and
  // before its state.yaml rename, or a degraded start, left another set
  // live). So every start writes the whole set it is going to report, in
  // one hitless generation swap (conntrack and rate buckets are kept).
  auto make_live = [&](const config::DesiredState& state) -> Result<filter::RuleSet> {
    auto set = config::to_filter_rule_set(state, ifindex_of);
    if (!set) return maps::make_error_because("convert", "the rule set", set.error().to_string(), EINVAL);
    if (auto extended = part_ ? part_->check("restore", state, *set) : protocol::ArgsResult<void>{}; !extended)
      return maps::make_error_because("convert", "the rule set", extended.error().message, EINVAL);
    if (auto replaced = table_.replace(*set); !replaced) return replaced.error();
    return std::move(*set);
  };
  auto made = make_live(wanted);
  if (!made) {
    problems.push_back("filter rule set not made live: " + made.error().message);
    // What is reported must be what runs: the baseline's filter sections
    // (the prefixes recovered from the maps; no rules, no rate classes) go
    // live in its place, with the policy the data plane ran before this
    // start (a wanted `drop` with no rules would lock a remote box out).
    live.filter = baseline.filter;
    live.prefix_lists = baseline.prefix_lists;
    live.rules = baseline.rules;
    live.limits = baseline.limits;
    made = make_live(live);
    if (!made) {
      filter_unknown_ = true;
      problems.push_back("the recovered prefix lists could not be made live either (" + made.error().message +
                         "): the filter runs a rule set from before this start that cannot be read back, so "
                         "rule.list and config.show do not show what the filter does");
    }
  }
  if (made)
    spdlog::info("filter: {} rules, {} prefixes, {} rate classes made live (generation {})", made->rules.size(),
                 made->prefixes.size(), made->rate_classes.size(), table_.rule_set_generation());
  if (part_ && part_->changes(live)) {
    if (auto made_lb = part_->make_live(live); !made_lb) {
      problems.push_back("load balancer not made live: " + made_lb.error().message);
      live.lb = baseline.lb;  // what its maps hold
      live.forward = baseline.forward;
      // What is reported must be what runs: the tables read back were built
      // from weights the maps do not hold, so they are rebuilt from the
      // baseline that is reported (no new ids or slots: it is what the maps hold).
      if (part_->changes(live))
        if (auto rebuilt = part_->make_live(live); !rebuilt)
          problems.push_back("the load balancer's tables from before this start could not be rebuilt either (" +
                             rebuilt.error().message + "): they run as read back");
    }
  }
  // Done either way: a change after the start rewrites the parts only where it changes them.
  if (part_) part_->settle_start();
  const config::Defaults defaults = wanted.defaults.value_or(config::Defaults{});
  bool defaults_live = true;
  if (auto settings = table_.settings(); !settings) {
    problems.push_back("filter settings not read: " + settings.error().message);
    defaults_live = false;
  } else if (defaults.drop_sample_every && settings->drop_sample_every != *defaults.drop_sample_every) {
    auto next = *settings;
    next.drop_sample_every = *defaults.drop_sample_every;
    if (auto written = table_.set_settings(next); !written) {
      problems.push_back("filter settings not made live: " + written.error().message);
      defaults_live = false;
    }
  }
  if (auto config_now = plane_.config(); !config_now) {
    problems.push_back("config not read: " + config_now.error().message);
    defaults_live = false;
  } else if (const sluice_config next = with_stages(apply_defaults(*config_now, defaults), live);
             std::memcmp(&next, &*config_now, sizeof next) != 0) {
    if (auto written = plane_.set_config(next); !written) {
      problems.push_back("config not made live: " + written.error().message);
      defaults_live = false;
    }
  }
  // What the data plane holds after the failed writes (each write is all or nothing).
  if (!defaults_live) live.defaults = this->baseline(std::nullopt).defaults;

  if (!problems.empty()) {
    std::string why;
    for (const auto& problem : problems) why += (why.empty() ? "" : "; ") + problem;
    // Keep the operator's file: the commit below overwrites state.yaml with what is live.
    const std::string rejected = store_.path() + std::string(rejected_state_suffix);
    std::error_code copy_error;
    if (store_.persistent() && std::filesystem::exists(store_.path(), copy_error)) {
      std::filesystem::copy_file(store_.path(), rejected, std::filesystem::copy_options::overwrite_existing, copy_error);
      why += copy_error ? "; could not keep the state file as " + rejected + ": " + copy_error.message()
                        : "; the state file that was not applied is kept as " + rejected;
    }
    restore_error_ = why + "; fix the desired state and apply it (sluicectl apply)";
    spdlog::critical("DEGRADED: the desired state was not fully made live at start: {}", *restore_error_);
  }
  auto committed = store_.commit(live);
  if (!committed) {
    // Keep it in memory anyway: it is what the data plane now runs.
    spdlog::error("{} (the state is kept in memory; the next change writes it again)", committed.error().message);
    store_.adopt(live);
  }
  // An interface still running an entry program on other maps enforces none of this: say so.
  if (auto not_enforcing = service_.restore_interfaces(); !not_enforcing.empty()) {
    std::string why = "interfaces not enforcing the desired state: ";
    for (std::size_t i = 0; i < not_enforcing.size(); ++i) why += (i ? "; " : "") + not_enforcing[i];
    restore_error_ = restore_error_ ? *restore_error_ + "; " + why : why;
    spdlog::critical("DEGRADED: {}", why);
  }
  return committed.has_value();
}

protocol::ArgsResult<filter::RuleSet> StateOps::check(std::string_view op, const config::DesiredState& next) const {
  for (std::size_t i = 0; next.interfaces && i < next.interfaces->size(); ++i) {
    const auto& name = (*next.interfaces)[i].name;
    if (!ifindex_of(name))
      return args::bad(op, "interfaces[" + std::to_string(i) + "].name", "no interface '" + name + "'");
  }
  auto set = config::to_filter_rule_set(next, ifindex_of);
  if (!set) return ProtocolError{ErrorCode::BadArgs, std::string(op) + ": " + set.error().to_string()};
  if (part_)
    if (auto valid = part_->check(op, next, *set); !valid) return valid.error();
  return std::move(*set);
}

sluice_config StateOps::with_stages(sluice_config config, const config::DesiredState& state) const {
  if (part_) config.stages_enabled = part_->effective_stages(state, config.stages_enabled);
  return config;
}

OpResult StateOps::change(std::string_view op, const config::DesiredState& next) {
  auto set = check(op, next);
  if (!set) return set.error();
  const config::DesiredState live = store_.live();
  const filter::RuleSet old_set = table_.rule_set();
  auto old_config = plane_.config();
  if (!old_config) return failed(std::string(op) + ": " + old_config.error().message);
  auto old_settings = table_.settings();
  if (!old_settings) return failed(std::string(op) + ": " + old_settings.error().message);
  const config::Defaults defaults = next.defaults.value_or(config::Defaults{});
  const sluice_config new_config = with_stages(apply_defaults(*old_config, defaults), next);
  filter::FilterSettings new_settings = *old_settings;
  new_settings.drop_sample_every = defaults.drop_sample_every.value_or(old_settings->drop_sample_every);
  const auto no_interfaces = std::vector<config::InterfaceSpec>{};
  const auto& old_interfaces = live.interfaces ? *live.interfaces : no_interfaces;
  const auto& new_interfaces = next.interfaces ? *next.interfaces : old_interfaces;

  // After a start that could not write its filter set, what runs is unknown: any change rewrites it.
  const bool filter_changes = filter_unknown_ || !same_rule_set(old_set, *set);
  const bool settings_change = !(new_settings == *old_settings);
  const bool config_changes = std::memcmp(&new_config, &*old_config, sizeof new_config) != 0;
  const bool interfaces_change = old_interfaces != new_interfaces;
  const bool lb_changes = part_ && part_->changes(next);

  // Steps in order; `reached` is the step under way: the ones before it are done and undone in reverse.
  using enum ChangeStep;
  ChangeStep reached = FilterSet;
  auto roll_back = [&](const std::string& what) -> OpResult {
    std::string undo_errors;
    auto undo = [&](ChangeStep which, auto&& run) {
      Result<void> undone = undo_hook_ ? undo_hook_(which) : Result<void>{};
      if (undone) undone = run();
      if (!undone) undo_errors += std::string("; undoing ") + std::string(to_string(which)) + " failed: " + undone.error().message;
    };
    if (reached > Interfaces && interfaces_change)
      undo(Interfaces, [&] { return service_.reconcile_interfaces(new_interfaces, old_interfaces); });
    if (reached > Config && config_changes) undo(Config, [&] { return plane_.set_config(*old_config); });
    if (reached > Lb && lb_changes) undo(Lb, [&] { return part_->make_live(live); });
    if (reached > FilterSettings && settings_change)
      undo(FilterSettings, [&] { return table_.set_settings(*old_settings); });
    if (reached > FilterSet && filter_changes) undo(FilterSet, [&] { return table_.replace(old_set); });
    if (undo_errors.empty()) {
      spdlog::error("{}: {}; rolled back to the previous state", op, what);
      return failed(std::string(op) + ": " + what + "; rolled back to the previous state");
    }
    // Not "rolled back": part of the change may still run while the state says otherwise.
    const std::string message = std::string(op) + ": " + what + "; rollback incomplete" + undo_errors +
                                "; the data plane may not run the reported state: restart sluiced (a restart makes "
                                "the data plane run state.yaml, hitlessly)";
    rollback_error_ = message;
    spdlog::critical("DEGRADED: {}", message);
    return failed(message);
  };
  // Runs one step (when it has work) after the test hook, which may fail it instead.
  auto step = [&](ChangeStep which, bool has_work, auto&& run) -> std::optional<OpResult> {
    reached = which;
    Result<void> done{};
    if (step_hook_) done = step_hook_(which);
    if (done && has_work) done = run();
    if (!done) return roll_back(std::string(to_string(which)) + ": " + done.error().message);
    return std::nullopt;
  };

  // The filter first: one atomic swap, and the step most likely to refuse (map sizes).
  if (auto failure = step(FilterSet, filter_changes, [&] { return table_.replace(*set); })) return *failure;
  if (auto failure = step(FilterSettings, settings_change, [&] { return table_.set_settings(new_settings); })) return *failure;
  if (auto failure = step(Lb, lb_changes, [&] { return part_->make_live(next); })) return *failure;
  if (auto failure = step(Config, config_changes, [&] { return plane_.set_config(new_config); })) return *failure;
  if (auto failure = step(Interfaces, interfaces_change,
                          [&] { return service_.reconcile_interfaces(old_interfaces, new_interfaces); }))
    return *failure;
  if (auto failure = step(Persist, true, [&] { return store_.commit(overlay(live, next)); })) return *failure;
  filter_unknown_ = false;
  if (restore_error_ && filter_changes) {
    // The filter now runs exactly the set the state describes.
    spdlog::info("{}: a new filter set is live; no longer degraded (was: {})", op, *restore_error_);
    restore_error_.reset();
  }
  return json::value(json::object{});
}

Result<void> StateOps::commit_prefix_changes(const std::vector<filter::PrefixEntry>& set,
                                             const std::vector<maps::Prefix>& removed) {
  static const std::vector<config::LimitSpec> no_limits;
  const auto& limits = store_.live().limits ? *store_.live().limits : no_limits;
  std::vector<PrefixChange> changes;
  changes.reserve(set.size() + removed.size());
  for (const auto& prefix : removed) changes.push_back({canonical_prefix_key(prefix), std::nullopt});
  for (const auto& entry : set) {
    std::string key = canonical_prefix_key(entry.prefix);
    // As prefix_lists_for: an entry still meaning what it was written as keeps its spelling and list.
    if (auto old = store_.find_prefix(key)) {
      const filter::Action action = old->spec.action.value_or(old->allow ? filter::Action::Pass : filter::Action::Drop);
      if (action == entry.action &&
          (action != filter::Action::RateLimit ||
           (old->spec.rate_class && entry.rate_class < limits.size() && *old->spec.rate_class == limits[entry.rate_class].class_name)))
        continue;
    }
    ListedPrefix listed;
    listed.spec.prefix = key;
    switch (entry.action) {
      case filter::Action::Drop: break;
      case filter::Action::Pass: listed.allow = true; break;
      case filter::Action::RateLimit:
        listed.spec.action = filter::Action::RateLimit;
        listed.spec.rate_class = entry.rate_class < limits.size() ? limits[entry.rate_class].class_name
                                                                  : std::to_string(entry.rate_class);
        break;
      case filter::Action::PassTrack:
        listed.allow = true;
        listed.spec.action = filter::Action::PassTrack;
        break;
    }
    changes.push_back({std::move(key), std::move(listed)});
  }
  if (changes.empty()) return {};
  return store_.commit_prefix_changes(changes);
}

std::optional<std::uint32_t> StateOps::class_id(const json::value& name_or_id) const {
  const auto& limits = store_.live().limits.value_or(std::vector<config::LimitSpec>{});
  if (name_or_id.is_string()) {
    for (std::size_t i = 0; i < limits.size(); ++i)
      if (limits[i].class_name == name_or_id.as_string()) return static_cast<std::uint32_t>(i);
    return std::nullopt;
  }
  std::uint64_t id = 0;
  if (name_or_id.is_uint64()) id = name_or_id.as_uint64();
  else if (name_or_id.is_int64() && name_or_id.as_int64() >= 0) id = static_cast<std::uint64_t>(name_or_id.as_int64());
  else return std::nullopt;
  if (id >= limits.size()) return std::nullopt;
  return static_cast<std::uint32_t>(id);
}

// ---- the ops ----

OpResult StateOps::config_set(const protocol::ConfigPatch& patch) {
  config::DesiredState next = store_.live();
  config::Defaults defaults = next.defaults.value_or(config::Defaults{});
  auto verdict = [](protocol::Verdict v) { return v == protocol::Verdict::Drop ? SLUICE_VERDICT_DROP : SLUICE_VERDICT_PASS; };
  if (patch.end_verdict) defaults.end_verdict = verdict(*patch.end_verdict);
  if (patch.tail_call_fail_verdict) defaults.tail_call_fail_verdict = verdict(*patch.tail_call_fail_verdict);
  if (patch.malformed_verdict) defaults.malformed_verdict = verdict(*patch.malformed_verdict);
  if (patch.non_ip_verdict) defaults.non_ip_verdict = verdict(*patch.non_ip_verdict);
  if (patch.drop_fragments) defaults.drop_fragments = *patch.drop_fragments;
  if (patch.drop_sample_every) defaults.drop_sample_every = *patch.drop_sample_every;
  std::uint32_t stages = defaults.stages.value_or(SLUICE_STAGES_ALL);
  auto set_stage = [&](const std::optional<bool>& on, sluice_stage stage) {
    if (!on) return;
    if (*on) stages |= SLUICE_STAGE_BIT(stage);
    else stages &= ~SLUICE_STAGE_BIT(stage);
  };
  set_stage(patch.stages.filter, SLUICE_STAGE_FILTER);
  set_stage(patch.stages.lb, SLUICE_STAGE_LB);
  set_stage(patch.stages.forward, SLUICE_STAGE_FORWARD);
  defaults.stages = stages;
  next.defaults = defaults;
  if (auto changed = change("config.set", next); !changed) return changed;
  auto config_now = plane_.config();
  if (!config_now) return failed(config_now.error().message);
  json::object shown = config_to_json(*config_now, defaults.drop_sample_every.value_or(0));
  spdlog::info("config set: {}", json::serialize(shown));
  return json::value(std::move(shown));
}

OpResult StateOps::rule_add(const json::object& object) {
  constexpr std::string_view op = "rule.add";
  if (auto keys = args::only_keys(op, object,
                                  {"priority", "src", "dst", "proto", "sport", "dport", "tcp_flags", "icmp_type", "iface",
                                   "action", "rate_class"});
      !keys)
    return keys.error();
  config::RuleSpec rule;
  const auto& rules = store_.live().rules.value_or(std::vector<config::RuleSpec>{});
  auto priority = args::optional_uint(op, object, "priority", 0, std::numeric_limits<std::uint32_t>::max());
  if (!priority) return priority.error();
  if (*priority) {
    rule.priority = static_cast<std::uint32_t>(**priority);
    for (const auto& taken : rules)
      if (taken.priority == rule.priority)
        return args::bad(op, "priority", std::to_string(rule.priority) + " is taken by rule " +
                                             std::to_string(taken.priority) + " (" + config::describe(taken) +
                                             "); delete it first or choose another priority");
  } else {
    std::uint64_t highest = 0;
    for (const auto& taken : rules) highest = std::max<std::uint64_t>(highest, taken.priority);
    const std::uint64_t next = rules.empty() ? priority_step : highest + priority_step;
    if (next > std::numeric_limits<std::uint32_t>::max())
      return args::bad(op, "priority", "no priority above " + std::to_string(highest) + " is left; give one explicitly");
    rule.priority = static_cast<std::uint32_t>(next);
  }
  auto src = cidr_arg(op, object, "src");
  if (!src) return src.error();
  rule.src = *src;
  auto dst = cidr_arg(op, object, "dst");
  if (!dst) return dst.error();
  rule.dst = *dst;
  auto proto = proto_arg(op, object);
  if (!proto) return proto.error();
  rule.proto = *proto;
  auto sport = ports_arg(op, object, "sport");
  if (!sport) return sport.error();
  rule.sport = *sport;
  auto dport = ports_arg(op, object, "dport");
  if (!dport) return dport.error();
  rule.dport = *dport;
  auto flags = tcp_flags_arg(op, object);
  if (!flags) return flags.error();
  rule.tcp_flags = *flags;
  auto icmp_type = args::optional_uint(op, object, "icmp_type", 0, 255);
  if (!icmp_type) return icmp_type.error();
  if (*icmp_type) rule.icmp_type = static_cast<std::uint8_t>(**icmp_type);
  auto iface = args::optional_string(op, object, "iface", max_text_arg_bytes);
  if (!iface) return iface.error();
  if (*iface) {
    if (auto problem = config::interface_name_problem(**iface))
      return args::bad(op, "iface", "bad interface name " + protocol::quote_value(json::string(**iface)) + ": " + *problem);
    if (!ifindex_of(**iface)) return args::bad(op, "iface", "no interface " + protocol::quote_value(json::string(**iface)));
    rule.iface = **iface;
  }
  auto action_text = args::required_string(op, object, "action", max_text_arg_bytes);
  if (!action_text) return action_text.error();
  auto action = filter::parse_action(*action_text);
  if (!action)
    return args::bad(op, "action", "must be drop, pass, pass-track or rate-limit, got " +
                                       protocol::quote_value(json::string(*action_text)));
  rule.action = *action;
  if (const auto* rate_class = object.if_contains("rate_class")) {
    auto id = class_id(*rate_class);
    if (!id) return args::bad(op, "rate_class", protocol::quote_value(*rate_class) + " is not a defined class (limit.list)");
    rule.rate_class = (*store_.live().limits)[*id].class_name;
  }
  // The rule alone first, so its error speaks of the request and not of its place in the list.
  config::DesiredState alone;
  alone.rules = std::vector<config::RuleSpec>{rule};
  alone.limits = store_.live().limits;
  if (auto valid = config::to_filter_rule_set(alone, ifindex_of); !valid) {
    std::string message = valid.error().to_string();
    if (message.starts_with("rules[0]: ")) message.erase(0, std::string_view("rules[0]: ").size());
    return ProtocolError{ErrorCode::BadArgs, std::string(op) + ": " + message};
  }
  config::DesiredState next = store_.live();
  next.rules->push_back(rule);
  std::stable_sort(next.rules->begin(), next.rules->end(),
                   [](const auto& a, const auto& b) { return a.priority < b.priority; });
  if (auto changed = change(op, next); !changed) return changed;
  spdlog::info("rule {} added: {}", rule.priority, config::describe(rule));
  return json::value(json::object{{"id", rule.priority}});
}

OpResult StateOps::rule_del(const json::object& object) {
  constexpr std::string_view op = "rule.del";
  if (auto keys = args::only_keys(op, object, {"id"}); !keys) return keys.error();
  auto id = args::optional_uint(op, object, "id", 0, std::numeric_limits<std::uint32_t>::max());
  if (!id) return id.error();
  if (!*id) return args::bad(op, "id", "is required");
  config::DesiredState next = store_.live();
  const auto removed = std::erase_if(*next.rules, [&](const auto& rule) { return rule.priority == **id; });
  if (removed == 0) return args::bad(op, "id", "no rule has id (priority) " + std::to_string(**id));
  if (auto changed = change(op, next); !changed) return changed;
  spdlog::info("rule {} deleted", **id);
  return json::value(json::object{{"id", **id}, {"deleted", true}});
}

OpResult StateOps::rule_list(const json::object& object) const {
  if (auto none = protocol::parse_no_args("rule.list", object); !none) return none.error();
  auto counters = table_.rule_counters();
  if (!counters) return failed(counters.error().message);
  std::map<std::uint32_t, sluice_counter> by_priority;
  for (const auto& counter : *counters) by_priority[counter.priority] = counter.total;
  json::array out;
  for (const auto& rule : store_.live().rules.value_or(std::vector<config::RuleSpec>{})) {
    json::object entry = rule_to_json(rule);
    const auto hits = by_priority.find(rule.priority);
    entry["packets"] = hits == by_priority.end() ? 0 : hits->second.packets;
    entry["bytes"] = hits == by_priority.end() ? 0 : hits->second.bytes;
    out.push_back(std::move(entry));
  }
  // Rules a VIP owns (after the operator's): shown, not persisted as rules.
  for (const auto& [rule, owner] : part_ ? part_->owned_rules(store_.live()) : decltype(part_->owned_rules(store_.live())){}) {
    json::object entry = rule_to_json(rule);
    entry["owner"] = owner;
    entry["description"] = owner + ": " + config::describe(rule);
    const auto hits = by_priority.find(rule.priority);
    entry["packets"] = hits == by_priority.end() ? 0 : hits->second.packets;
    entry["bytes"] = hits == by_priority.end() ? 0 : hits->second.bytes;
    out.push_back(std::move(entry));
  }
  const auto& filter = store_.live().filter;
  const auto policy = filter && filter->default_policy ? *filter->default_policy : filter::DefaultPolicy::Pass;
  return json::value(json::object{{"rules", std::move(out)}, {"default_policy", config::policy_name(policy)}});
}

OpResult StateOps::limit_set(const json::object& object) {
  constexpr std::string_view op = "limit.set";
  if (auto keys = args::only_keys(op, object, {"class", "pps", "bps", "burst", "syn_only", "v4_prefix_len", "v6_prefix_len",
                                              "aggregate_pps", "aggregate_bps", "aggregate_burst"});
      !keys)
    return keys.error();
  auto name = args::required_string(op, object, "class", max_text_arg_bytes);
  if (!name) return name.error();
  if (!config::is_class_name(*name))
    return args::bad(op, "class", protocol::quote_value(json::string(*name)) + " is not a class name (" +
                                      config::class_name_rule() + ")");
  auto pps = args::optional_uint(op, object, "pps", 1, filter::kMaxPacketsPerSec);
  if (!pps) return pps.error();
  if (!*pps) return args::bad(op, "pps", "is required");
  auto bps = args::optional_uint(op, object, "bps", 1, filter::kMaxBytesPerSec);
  if (!bps) return bps.error();
  auto burst = args::optional_uint(op, object, "burst", 1, filter::kMaxPacketBurst);
  if (!burst) return burst.error();
  auto syn_only = args::optional_bool(op, object, "syn_only");
  if (!syn_only) return syn_only.error();
  auto v4_prefix_len = args::optional_uint(op, object, "v4_prefix_len", 0, 32);
  if (!v4_prefix_len) return v4_prefix_len.error();
  auto v6_prefix_len = args::optional_uint(op, object, "v6_prefix_len", 0, 128);
  if (!v6_prefix_len) return v6_prefix_len.error();
  auto aggregate_pps = args::optional_uint(op, object, "aggregate_pps", 1, filter::kMaxPacketsPerSec);
  if (!aggregate_pps) return aggregate_pps.error();
  auto aggregate_bps = args::optional_uint(op, object, "aggregate_bps", 1, filter::kMaxBytesPerSec);
  if (!aggregate_bps) return aggregate_bps.error();
  auto aggregate_burst = args::optional_uint(op, object, "aggregate_burst", 1, filter::kMaxPacketBurst);
  if (!aggregate_burst) return aggregate_burst.error();
  if (*aggregate_burst && !*aggregate_pps)
    return args::bad(op, "aggregate_burst", std::to_string(**aggregate_burst) + " needs aggregate_pps");
  const auto narrow = [](const std::optional<std::uint64_t>& v) -> std::optional<std::uint32_t> {
    if (!v) return std::nullopt;
    return static_cast<std::uint32_t>(*v);  // range-checked above: <= 128
  };
  config::LimitSpec spec{*name, **pps, *bps, *burst, syn_only->value_or(false)};
  spec.v4_prefix_len = narrow(*v4_prefix_len);
  spec.v6_prefix_len = narrow(*v6_prefix_len);
  spec.aggregate_pps = *aggregate_pps;
  spec.aggregate_bps = *aggregate_bps;
  spec.aggregate_burst = *aggregate_burst;
  config::DesiredState next = store_.live();
  auto& limits = *next.limits;
  auto same = std::find_if(limits.begin(), limits.end(), [&](const auto& limit) { return limit.class_name == *name; });
  const bool created = same == limits.end();
  if (created) {
    if (limits.size() >= SLUICE_FILTER_MAX_RATE_CLASSES)
      return args::bad(op, "class", "all " + std::to_string(SLUICE_FILTER_MAX_RATE_CLASSES) + " rate classes are defined");
    limits.push_back(spec);
  } else {
    *same = spec;  // redefined in place: its id, and so the rules using it, stay
  }
  if (auto changed = change(op, next); !changed) return changed;
  const auto id = created ? limits.size() - 1 : static_cast<std::size_t>(same - limits.begin());
  return json::value(json::object{{"class", *name}, {"id", id}, {"created", created}});
}

OpResult StateOps::limit_del(const json::object& object) {
  constexpr std::string_view op = "limit.del";
  if (auto keys = args::only_keys(op, object, {"class"}); !keys) return keys.error();
  auto name = args::required_string(op, object, "class", max_text_arg_bytes);
  if (!name) return name.error();
  config::DesiredState next = store_.live();
  if (std::erase_if(*next.limits, [&](const auto& limit) { return limit.class_name == *name; }) == 0)
    return args::bad(op, "class", protocol::quote_value(json::string(*name)) + " is not defined");
  std::vector<std::string> users;
  for (const auto& rule : *next.rules)
    if (rule.rate_class == *name) users.push_back("rule " + std::to_string(rule.priority));
  for (const auto* list : {&next.prefix_lists->block, &next.prefix_lists->allow})
    for (const auto& entry : *list)
      if (entry.rate_class == *name) users.push_back("prefix " + entry.prefix);
  if (!users.empty()) {
    std::string named;
    for (std::size_t i = 0; i < users.size() && i < 5; ++i) named += (i ? ", " : "") + users[i];
    if (users.size() > 5) named += " and " + std::to_string(users.size() - 5) + " more";
    return args::bad(op, "class", protocol::quote_value(json::string(*name)) + " is in use by " + named);
  }
  // Later classes move down one id; the new set goes live in one swap.
  if (auto changed = change(op, next); !changed) return changed;
  return json::value(json::object{{"class", *name}, {"deleted", true}});
}

OpResult StateOps::limit_list(const json::object& object) const {
  if (auto none = protocol::parse_no_args("limit.list", object); !none) return none.error();
  json::array out;
  const auto& limits = store_.live().limits.value_or(std::vector<config::LimitSpec>{});
  for (std::size_t i = 0; i < limits.size(); ++i) {
    const auto& limit = limits[i];
    // Effective values, as the data plane applies them (see control/config's to_rate_class).
    out.push_back(json::object{{"class", limit.class_name},
                               {"id", i},
                               {"pps", limit.pps},
                               {"burst", limit.burst.value_or(limit.pps)},
                               {"bps", limit.bps.value_or(0)},
                               {"syn_only", limit.syn_only},
                               {"v4_prefix_len", limit.v4_prefix_len.value_or(SLUICE_FILTER_RATE_V4_PREFIX_DEFAULT)},
                               {"v6_prefix_len", limit.v6_prefix_len.value_or(SLUICE_FILTER_RATE_V6_PREFIX_DEFAULT)},
                               // 0: no aggregate in that dimension
                               {"aggregate_pps", limit.aggregate_pps.value_or(0)},
                               {"aggregate_burst", limit.aggregate_burst.value_or(limit.aggregate_pps.value_or(0))},
                               {"aggregate_bps", limit.aggregate_bps.value_or(0)}});
  }
  return json::value(json::object{{"limits", std::move(out)}});
}

OpResult StateOps::conn_list(const json::object& object) {
  constexpr std::string_view op = "conn.list";
  if (auto keys = args::only_keys(op, object, {"limit"}); !keys) return keys.error();
  auto limit = args::optional_uint(op, object, "limit", 1, protocol::max_conn_list_limit);
  if (!limit) return limit.error();
  const std::uint64_t most = limit->value_or(protocol::default_conn_list_limit);
  // Bounded (ConntrackView): one flow past `most` tells whether the list is cut; the total is the last count.
  auto flows = conntrack_.first_flows(most + 1);
  if (!flows) return failed(std::string(op) + ": " + flows.error().message);
  auto counted = conntrack_.count();
  if (!counted) return failed(std::string(op) + ": " + counted.error().message);
  const bool truncated = flows->size() > most;
  json::array out;
  for (const auto& flow : *flows) {
    if (out.size() >= most) break;
    const auto& k = flow.key;
    const auto& e = flow.entry;
    const bool has_ports = k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP;
    // The key is normalised (lower endpoint first), so src/dst are the key's a/b, not who opened the flow.
    out.push_back(json::object{{"proto", k.proto},
                               {"ip_version", k.ip_version},
                               {"src", address_text(k.addr_a, k.ip_version)},
                               {"sport", has_ports ? json::value(k.port_a) : json::value(nullptr)},
                               {"dst", address_text(k.addr_b, k.ip_version)},
                               {"dport", has_ports ? json::value(k.port_b) : json::value(nullptr)},
                               {"state", ct_state_name(e.state)},
                               {"replied", e.replied != 0},
                               {"packets", json::array{e.packets[0], e.packets[1]}},
                               {"bytes", json::array{e.bytes[0], e.bytes[1]}},
                               {"last_seen_ns", e.last_seen_ns}});
  }
  // The count may be up to ConntrackView::default_count_interval old; never below what was just listed.
  const std::uint64_t total = std::max<std::uint64_t>(counted->flows, flows->size());
  return json::value(json::object{{"flows", std::move(out)}, {"total", total}, {"truncated", truncated}});
}

OpResult StateOps::apply(const json::object& object) {
  constexpr std::string_view op = "apply";
  if (auto keys = args::only_keys(op, object, {"yaml", "dry_run"}); !keys) return keys.error();
  auto yaml = args::required_string(op, object, "yaml", protocol::max_request_bytes);
  if (!yaml) return yaml.error();
  auto dry_run = args::optional_bool(op, object, "dry_run");
  if (!dry_run) return dry_run.error();
  auto wanted = config::parse_desired_state(*yaml);
  if (!wanted) return ProtocolError{ErrorCode::BadArgs, std::string(op) + ": " + wanted.error().to_string()};
  const config::DesiredState next = overlay(store_.live(), *wanted);
  // The whole state is checked even for a dry run: it must say what a real run would refuse.
  if (auto valid = check(op, next); !valid) return valid.error();
  json::array lines;
  for (auto& line : config::diff(store_.live(), *wanted)) lines.emplace_back(std::move(line));
  const bool applying = !dry_run->value_or(false) && !lines.empty();
  if (applying) {
    if (auto changed = change(op, next); !changed) return changed;
    spdlog::info("applied a desired state: {} changes", lines.size());
  }
  return json::value(json::object{{"diff", std::move(lines)}, {"dry_run", dry_run->value_or(false)}, {"applied", applying}});
}

OpResult StateOps::config_show(const json::object& object) const {
  if (auto none = protocol::parse_no_args("config.show", object); !none) return none.error();
  return json::value(json::object{{"yaml", config::to_yaml(store_.live())}});
}

void StateOps::report_incomplete_rollback(std::string message) {
  spdlog::critical("DEGRADED: {}", message);
  rollback_error_ = std::move(message);
}

void StateOps::add_restore_state(json::object& status) const {
  status["degraded"] = restore_error_.has_value() || rollback_error_.has_value();
  if (restore_error_) status["restore_error"] = *restore_error_;
  if (rollback_error_) status["rollback_error"] = *rollback_error_;
}

void StateOps::register_ops(OpRegistry& ops) {
  auto bind = [this](auto method) {
    return OpRegistry::Handler{[this, method](const json::object& object) { return (this->*method)(object); }, nullptr};
  };
  ops.add("config.set", {[this](const json::object& object) -> OpResult {
                           auto patch = protocol::parse_config_patch(object);
                           if (!patch) return patch.error();
                           return config_set(*patch);
                         },
                         nullptr});
  ops.add("rule.add", bind(&StateOps::rule_add));
  ops.add("rule.del", bind(&StateOps::rule_del));
  ops.add("rule.list", bind(&StateOps::rule_list));
  ops.add("limit.set", bind(&StateOps::limit_set));
  ops.add("limit.del", bind(&StateOps::limit_del));
  ops.add("limit.list", bind(&StateOps::limit_list));
  ops.add("conn.list", bind(&StateOps::conn_list));
  ops.add("apply", bind(&StateOps::apply));
  ops.add("config.show", bind(&StateOps::config_show));
}

}  // namespace sluice::daemon
