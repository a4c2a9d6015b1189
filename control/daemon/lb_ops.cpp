#include "lb_ops.hpp"

#include <algorithm>
#include <chrono>

#include "lb_config.hpp"
#include "spdlog/spdlog.h"

namespace sluice::daemon {
namespace {

namespace json = boost::json;
using protocol::ErrorCode;
using protocol::ProtocolError;
namespace args = protocol::args;

constexpr std::size_t max_text_arg_bytes = 256;
constexpr std::uint32_t max_check_ms = lb::kCheckIntervalMsMax;
constexpr std::uint32_t max_check_count = lb::kCheckCountMax;
constexpr std::uint32_t max_conn_timeout_s = lb::kConnTimeoutMaxS;

std::string_view health_name(lb::Health health) {
  switch (health) {
    case lb::Health::Up: return "up";
    case lb::Health::Down: return "down";
    case lb::Health::Unchecked: break;
  }
  return "unchecked";
}

protocol::ArgsResult<lb::VipKey> vip_arg(std::string_view op, const json::object& object) {
  auto text = args::required_string(op, object, "vip", max_text_arg_bytes);
  if (!text) return text.error();
  auto key = lb::parse_vip_key(*text);
  if (!key) return args::bad(op, "vip", key.error().message);
  return *key;
}

protocol::ArgsResult<lb::Address> address_arg(std::string_view op, const json::object& object, std::string_view key) {
  auto text = args::required_string(op, object, key, max_text_arg_bytes);
  if (!text) return text.error();
  auto address = lb::parse_address(*text);
  if (!address) return args::bad(op, key, address.error().message);
  return *address;
}

protocol::ArgsResult<std::optional<std::array<std::uint8_t, 6>>> mac_arg(std::string_view op, const json::object& object,
                                                                          std::string_view key) {
  auto text = args::optional_string(op, object, key, max_text_arg_bytes);
  if (!text) return text.error();
  if (!*text) return std::optional<std::array<std::uint8_t, 6>>{};
  auto mac = lb::parse_mac(**text);
  if (!mac) return args::bad(op, key, mac.error().message);
  return std::optional<std::array<std::uint8_t, 6>>{*mac};
}

lb::Vip* find_vip(lb::LbConfig& config, const lb::VipKey& key) {
  auto it = std::find_if(config.vips.begin(), config.vips.end(), [&](const auto& vip) { return vip.key == key; });
  return it == config.vips.end() ? nullptr : &*it;
}

lb::Backend* find_backend(lb::Vip& vip, const lb::Address& address) {
  auto it = std::find_if(vip.backends.begin(), vip.backends.end(), [&](const auto& b) { return b.address == address; });
  return it == vip.backends.end() ? nullptr : &*it;
}

ProtocolError no_vip(std::string_view op, const lb::VipKey& key) {
  return args::bad(op, "vip", lb::to_string(key) + " is not a VIP (vip.list)");
}

ProtocolError no_backend(std::string_view op, const lb::VipKey& key, const lb::Address& address) {
  return args::bad(op, "address", lb::to_string(address) + " is not a backend of " + lb::to_string(key) + " (backend.list)");
}

json::value check_to_json(const std::optional<lb::HealthCheck>& check) {
  if (!check) return nullptr;
  json::object out{{"type", check->kind == lb::HealthCheck::Kind::Http ? "http" : "tcp"},
                   {"port", check->port},
                   {"interval_ms", check->interval_ms},
                   {"timeout_ms", check->timeout_ms},
                   {"rise", check->rise},
                   {"fall", check->fall},
                   {"spec", lb::to_string(*check)}};
  if (check->kind == lb::HealthCheck::Kind::Http) out["path"] = check->http_path;
  return out;
}

json::object settings_to_json(const lb::LbSettings& s) {
  auto address = [](const std::optional<lb::Address>& a) -> json::value {
    return a ? json::value(lb::to_string(*a)) : json::value(nullptr);
  };
  auto mac = [](const std::optional<std::array<std::uint8_t, 6>>& m) -> json::value {
    return m ? json::value(lb::mac_to_string(*m)) : json::value(nullptr);
  };
  return json::object{{"encap_source_v4", address(s.encap_source_v4)},
                      {"encap_source_v6", address(s.encap_source_v6)},
                      {"entropy_source", s.entropy_source},
                      {"egress", config::egress_name(s.egress)},
                      {"next_hop_mac", mac(s.next_hop_mac)},
                      {"src_mac", mac(s.src_mac)},
                      {"mtu", s.mtu},
                      {"conn_timeout_s", s.conn_timeout_s}};
}

void add_counter(json::object& out, const sluice_lb_counter& counter) {
  out["packets"] = counter.packets;
  out["bytes"] = counter.bytes;
  out["new_conns"] = counter.new_conns;
}

const lb::LbConfig& lb_of(const config::DesiredState& state) {
  static const lb::LbConfig none;
  return state.lb ? *state.lb : none;
}

}  // namespace

std::string vip_rule_owner(const lb::VipKey& key) { return "vip " + lb::to_string(key); }

std::vector<config::RuleSpec> vip_pass_rules(const std::vector<lb::Vip>& vips) {
  // FNV-1a over the key's bytes: the same on every run and host.
  constexpr std::uint32_t fnv_offset = 2166136261u, fnv_prime = 16777619u;
  auto hash = [&](const lb::VipKey& key) {
    std::uint32_t h = fnv_offset;
    auto mix = [&](std::uint8_t byte) { h = (h ^ byte) * fnv_prime; };
    for (std::size_t i = 0; i < (key.address.family == 4 ? 4u : 16u); ++i) mix(key.address.bytes[i]);
    mix(static_cast<std::uint8_t>(key.port >> 8));
    mix(static_cast<std::uint8_t>(key.port & 0xff));
    mix(static_cast<std::uint8_t>(key.protocol));
    return h % vip_rule_priorities;
  };
  std::vector<bool> taken(vip_rule_priorities);
  std::vector<config::RuleSpec> out;
  for (const auto& vip : vips) {
    std::uint32_t slot = hash(vip.key);
    while (taken[slot]) slot = (slot + 1) % vip_rule_priorities;  // at most SLUICE_LB_MAX_VIPS are taken
    taken[slot] = true;
    config::RuleSpec rule;
    rule.priority = vip_rule_priority_base + slot;
    const auto& key = vip.key;
    rule.dst = lb::to_string(key.address) + (key.address.family == 4 ? "/32" : "/128");
    rule.proto = static_cast<std::uint8_t>(key.protocol);
    if (key.port != 0) rule.dport = filter::PortRange{key.port, key.port};
    rule.action = filter::Action::Pass;
    out.push_back(std::move(rule));
  }
  return out;
}

LbOps::LbOps(lb::LbTable& table, StateOps& state) : table_(table), state_(state) {}

void LbOps::set_on_change(std::function<void(const lb::LbConfig&)> on_change) {
  on_change_ = std::move(on_change);
  if (on_change_) on_change_(table_.config());
}

// ---- StatePart ----

protocol::ArgsResult<void> LbOps::check(std::string_view op, const config::DesiredState& next,
                                        filter::RuleSet& set) const {
  const lb::LbConfig& config = lb_of(next);
  if (auto valid = lb::validate(config); !valid)
    return ProtocolError{ErrorCode::BadArgs, std::string(op) + ": lb: " + valid.error().message};
  if (config.vips.empty()) return {};
  for (std::size_t i = 0; next.rules && i < next.rules->size(); ++i) {
    const auto priority = (*next.rules)[i].priority;
    if (priority >= vip_rule_priority_base)
      return args::bad(op, "rules[" + std::to_string(i) + "].priority",
                       std::to_string(priority) + ": priorities from " + std::to_string(vip_rule_priority_base) +
                           " up belong to the VIPs' pass rules; give the rule a lower priority");
  }
  // The VIPs' rules as the operator's are converted (no interface, no class: cannot fail on names).
  config::DesiredState rules_only;
  rules_only.rules = vip_pass_rules(config.vips);
  auto converted = config::to_filter_rule_set(rules_only, [](const std::string&) { return std::nullopt; });
  if (!converted) return ProtocolError{ErrorCode::BadArgs, std::string(op) + ": lb: " + converted.error().to_string()};
  set.rules.insert(set.rules.end(), converted->rules.begin(), converted->rules.end());
  if (auto valid = filter::validate(set); !valid)
    return ProtocolError{ErrorCode::BadArgs, std::string(op) + ": the filter with the VIPs' " +
                                                 std::to_string(config.vips.size()) +
                                                 " pass rules: " + config::filter_reason(valid.error())};
  return {};
}

std::uint32_t LbOps::effective_stages(const config::DesiredState& next, std::uint32_t stages) const {
  if (lb_of(next).vips.empty()) stages &= ~SLUICE_STAGE_BIT(SLUICE_STAGE_LB);
  return stages;
}

// Tables read back at start count as a change: only a rebuild makes them
// match the weights of the state (a kill between a change's table swap and
// its persist leaves a table the read-back config cannot tell from the state's).
bool LbOps::changes(const config::DesiredState& next) const {
  return table_.has_read_back_tables() || !(table_.config() == lb_of(next));
}

Result<void> LbOps::make_live(const config::DesiredState& state) {
  if (auto replaced = table_.replace(lb_of(state)); !replaced) return replaced.error();
  if (on_change_) on_change_(table_.config());
  return {};
}

void LbOps::add_baseline(config::DesiredState& baseline) const {
  baseline.lb = table_.config();
  // Without a VIP sluiced itself clears the lb bit: the operator's wish for the stage is not in the config array then.
  if (baseline.defaults && baseline.defaults->stages && table_.config().vips.empty())
    *baseline.defaults->stages |= SLUICE_STAGE_BIT(SLUICE_STAGE_LB);
}

std::vector<std::pair<config::RuleSpec, std::string>> LbOps::owned_rules(const config::DesiredState& state) const {
  std::vector<std::pair<config::RuleSpec, std::string>> out;
  const auto& vips = lb_of(state).vips;
  auto rules = vip_pass_rules(vips);
  for (std::size_t i = 0; i < vips.size(); ++i) out.emplace_back(std::move(rules[i]), vip_rule_owner(vips[i].key));
  // In evaluation order, as rule.list shows the operator's.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first.priority < b.first.priority; });
  return out;
}

Result<lb::ConnTableFill> LbOps::conn_fill() const {
  const auto now = std::chrono::steady_clock::now();
  if (last_fill_ && now - last_fill_->first < conn_count_interval) return last_fill_->second;
  auto fill = table_.conn_fill();
  if (!fill) return fill.error();
  last_fill_.emplace(now, *fill);
  return *fill;
}

// ---- health ----

void LbOps::report_health(const lb::VipKey& vip, const lb::Address& backend, lb::Health health) {
  lb::LbConfig config = table_.config();
  lb::Vip* found = find_vip(config, vip);
  if (!found || !find_backend(*found, backend)) return;  // removed meanwhile
  if (auto set = table_.set_health(vip, backend, health); !set) {
    ++health_stats_.set_health_failures;
    spdlog::error("health of {} backend {}: {}", lb::to_string(vip), lb::to_string(backend), set.error().message);
    return;
  }
  if (health == lb::Health::Down) ++health_stats_.went_down;
  if (health == lb::Health::Up) ++health_stats_.went_up;
  spdlog::info("backend {} of {}: health {}", lb::to_string(backend), lb::to_string(vip), health_name(health));
  if (!events_) return;
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  events_->publish_event(json::object{
      {"type", "lb_health"},
      {"time_ns", static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count())},
      {"vip", lb::to_string(vip)},
      {"backend", lb::to_string(backend)},
      {"health", health_name(health)}});
}

// ---- ops ----

OpResult LbOps::change_lb(std::string_view op, const std::function<protocol::ArgsResult<void>(lb::LbConfig&)>& edit,
                          json::object result) {
  config::DesiredState next = state_.store().live();
  lb::LbConfig config = lb_of(next);
  if (auto edited = edit(config); !edited) return edited.error();
  next.lb = std::move(config);
  if (auto changed = state_.change(op, next); !changed) return changed;
  return json::value(std::move(result));
}

OpResult LbOps::vip_add(const json::object& object) {
  constexpr std::string_view op = "vip.add";
  if (auto keys = args::only_keys(op, object,
                                  {"vip", "table_size", "l2_dsr", "check", "check_interval_ms", "check_timeout_ms",
                                   "check_rise", "check_fall"});
      !keys)
    return keys.error();
  auto key = vip_arg(op, object);
  if (!key) return key.error();
  lb::Vip vip;
  vip.key = *key;
  auto table_size = args::optional_uint(op, object, "table_size", 1, SLUICE_LB_MAGLEV_SIZE_MAX);
  if (!table_size) return table_size.error();
  if (*table_size) vip.table_size = static_cast<std::uint32_t>(**table_size);
  auto l2 = args::optional_bool(op, object, "l2_dsr");
  if (!l2) return l2.error();
  vip.l2_dsr = l2->value_or(false);
  auto check = args::optional_string(op, object, "check", max_text_arg_bytes);
  if (!check) return check.error();
  if (*check) {
    auto parsed = lb::parse_health_check(**check);
    if (!parsed) return args::bad(op, "check", parsed.error().message);
    vip.check = *parsed;
  }
  struct Tuning {
    std::string_view key;
    std::uint32_t lb::HealthCheck::*member;
    std::uint32_t max;
  };
  for (const Tuning& tuning : {Tuning{"check_interval_ms", &lb::HealthCheck::interval_ms, max_check_ms},
                               Tuning{"check_timeout_ms", &lb::HealthCheck::timeout_ms, max_check_ms},
                               Tuning{"check_rise", &lb::HealthCheck::rise, max_check_count},
                               Tuning{"check_fall", &lb::HealthCheck::fall, max_check_count}}) {
    auto value = args::optional_uint(op, object, tuning.key, 1, tuning.max);
    if (!value) return value.error();
    if (!*value) continue;
    if (!vip.check) return args::bad(op, tuning.key, "only with check");
    (*vip.check).*tuning.member = static_cast<std::uint32_t>(**value);
  }
  if (auto valid = lb::validate(vip); !valid) return args::bad(op, "vip " + lb::to_string(vip.key), valid.error().message);
  json::object result{{"vip", lb::to_string(vip.key)}};
  return change_lb(op, [&](lb::LbConfig& config) -> protocol::ArgsResult<void> {
    if (find_vip(config, vip.key)) return args::bad(op, "vip", lb::to_string(vip.key) + " exists (vip.del it first)");
    if (config.vips.size() >= SLUICE_LB_MAX_VIPS)
      return args::bad(op, "vip", "all " + std::to_string(SLUICE_LB_MAX_VIPS) + " VIPs are defined");
    config.vips.push_back(vip);
    return {};
  }, std::move(result));
}

OpResult LbOps::vip_del(const json::object& object) {
  constexpr std::string_view op = "vip.del";
  if (auto keys = args::only_keys(op, object, {"vip"}); !keys) return keys.error();
  auto key = vip_arg(op, object);
  if (!key) return key.error();
  return change_lb(op, [&](lb::LbConfig& config) -> protocol::ArgsResult<void> {
    if (std::erase_if(config.vips, [&](const auto& vip) { return vip.key == *key; }) == 0) return no_vip(op, *key);
    return {};
  }, json::object{{"vip", lb::to_string(*key)}, {"deleted", true}});
}

OpResult LbOps::vip_list(const json::object& object) const {
  if (auto none = protocol::parse_no_args("vip.list", object); !none) return none.error();
  auto status = table_.status();
  if (!status) return ProtocolError{ErrorCode::Failed, "vip.list: " + status.error().message};
  json::array out;
  for (const auto& vip : *status) {
    json::object entry{{"vip", lb::to_string(vip.vip.key)},
                       {"vip_id", vip.vip_id},
                       {"table_size", vip.vip.table_size},
                       {"l2_dsr", vip.vip.l2_dsr},
                       {"check", check_to_json(vip.vip.check)},
                       {"backends", vip.backends.size()}};
    std::size_t in_table = 0;
    for (const auto& backend : vip.backends) in_table += backend.table_entries > 0;
    entry["backends_in_table"] = in_table;
    add_counter(entry, vip.total);
    out.push_back(std::move(entry));
  }
  return json::value(json::object{{"vips", std::move(out)}});
}

OpResult LbOps::backend_add(const json::object& object) {
  constexpr std::string_view op = "backend.add";
  if (auto keys = args::only_keys(op, object, {"vip", "address", "weight", "mac"}); !keys) return keys.error();
  auto key = vip_arg(op, object);
  if (!key) return key.error();
  lb::Backend backend;
  auto address = address_arg(op, object, "address");
  if (!address) return address.error();
  backend.address = *address;
  auto weight = args::optional_uint(op, object, "weight", 1, SLUICE_LB_WEIGHT_MAX);
  if (!weight) return weight.error();
  if (*weight) backend.weight = static_cast<std::uint32_t>(**weight);
  auto mac = mac_arg(op, object, "mac");
  if (!mac) return mac.error();
  backend.mac = *mac;
  return change_lb(op, [&](lb::LbConfig& config) -> protocol::ArgsResult<void> {
    lb::Vip* vip = find_vip(config, *key);
    if (!vip) return no_vip(op, *key);
    if (find_backend(*vip, backend.address))
      return args::bad(op, "address", lb::to_string(backend.address) + " is already a backend of " + lb::to_string(*key));
    if (auto valid = lb::validate(backend, *vip); !valid) return args::bad(op, "backend", valid.error().message);
    vip->backends.push_back(backend);
    return {};
  }, json::object{{"vip", lb::to_string(*key)}, {"address", lb::to_string(backend.address)}});
}

OpResult LbOps::backend_set(const json::object& object) {
  constexpr std::string_view op = "backend.set";
  if (auto keys = args::only_keys(op, object, {"vip", "address", "weight"}); !keys) return keys.error();
  auto key = vip_arg(op, object);
  if (!key) return key.error();
  auto address = address_arg(op, object, "address");
  if (!address) return address.error();
  auto weight = args::optional_uint(op, object, "weight", 1, SLUICE_LB_WEIGHT_MAX);
  if (!weight) return weight.error();
  if (!*weight) return args::bad(op, "weight", "is required");
  return change_lb(op, [&](lb::LbConfig& config) -> protocol::ArgsResult<void> {
    lb::Vip* vip = find_vip(config, *key);
    if (!vip) return no_vip(op, *key);
    lb::Backend* backend = find_backend(*vip, *address);
    if (!backend) return no_backend(op, *key, *address);
    backend->weight = static_cast<std::uint32_t>(**weight);
    return {};
  }, json::object{{"vip", lb::to_string(*key)}, {"address", lb::to_string(*address)}, {"weight", **weight}});
}

OpResult LbOps::backend_drain(const json::object& object) {
  constexpr std::string_view op = "backend.drain";
  if (auto keys = args::only_keys(op, object, {"vip", "address"}); !keys) return keys.error();
  auto key = vip_arg(op, object);
  if (!key) return key.error();
  auto address = address_arg(op, object, "address");
  if (!address) return address.error();
  return change_lb(op, [&](lb::LbConfig& config) -> protocol::ArgsResult<void> {
    lb::Vip* vip = find_vip(config, *key);
    if (!vip) return no_vip(op, *key);
    lb::Backend* backend = find_backend(*vip, *address);
    if (!backend) return no_backend(op, *key, *address);
    backend->state = lb::BackendState::Draining;
    return {};
  }, json::object{{"vip", lb::to_string(*key)}, {"address", lb::to_string(*address)}, {"state", "draining"}});
}

OpResult LbOps::backend_del(const json::object& object) {
  constexpr std::string_view op = "backend.del";
  if (auto keys = args::only_keys(op, object, {"vip", "address"}); !keys) return keys.error();
  auto key = vip_arg(op, object);
  if (!key) return key.error();
  auto address = address_arg(op, object, "address");
  if (!address) return address.error();
  return change_lb(op, [&](lb::LbConfig& config) -> protocol::ArgsResult<void> {
    lb::Vip* vip = find_vip(config, *key);
    if (!vip) return no_vip(op, *key);
    if (std::erase_if(vip->backends, [&](const auto& b) { return b.address == *address; }) == 0)
      return no_backend(op, *key, *address);
    return {};
  }, json::object{{"vip", lb::to_string(*key)}, {"address", lb::to_string(*address)}, {"deleted", true}});
}

OpResult LbOps::backend_list(const json::object& object) const {
  constexpr std::string_view op = "backend.list";
  if (auto keys = args::only_keys(op, object, {"vip"}); !keys) return keys.error();
  std::optional<lb::VipKey> only;
  if (object.contains("vip")) {
    auto key = vip_arg(op, object);
    if (!key) return key.error();
    only = *key;
  }
  auto status = table_.status();
  if (!status) return ProtocolError{ErrorCode::Failed, std::string(op) + ": " + status.error().message};
  bool found = !only;
  json::array out;
  for (const auto& vip : *status) {
    if (only && !(vip.vip.key == *only)) continue;
    found = true;
    for (const auto& backend : vip.backends) {
      json::object entry{{"vip", lb::to_string(vip.vip.key)},
                         {"address", lb::to_string(backend.backend.address)},
                         {"backend_id", backend.backend_id},
                         {"weight", backend.backend.weight},
                         {"state", config::backend_state_name(backend.backend.state)},
                         {"health", health_name(backend.health)},
                         {"table_entries", backend.table_entries},
                         // Share of the VIP's Maglev table: what new flows it takes.
                         {"share", vip.vip.table_size ? static_cast<double>(backend.table_entries) / vip.vip.table_size : 0.0}};
      if (backend.backend.mac) entry["mac"] = lb::mac_to_string(*backend.backend.mac);
      add_counter(entry, backend.total);
      out.push_back(std::move(entry));
    }
  }
  if (!found) return no_vip(op, *only);
  return json::value(json::object{{"backends", std::move(out)}});
}

OpResult LbOps::lb_set(const json::object& object) {
  constexpr std::string_view op = "lb.set";
  if (auto keys = args::only_keys(op, object,
                                  {"encap_source", "encap_source_v4", "encap_source_v6", "entropy_source", "egress",
                                   "next_hop_mac", "src_mac", "mtu", "conn_timeout_s"});
      !keys)
    return keys.error();
  if (object.empty()) return args::bad(op, "args", "name at least one setting to change");
  lb::LbSettings settings = lb_of(state_.store().live()).settings;
  for (std::string_view key : {"encap_source", "encap_source_v4", "encap_source_v6"}) {
    if (!object.contains(key)) continue;
    auto address = address_arg(op, object, key);
    if (!address) return address.error();
    if (key == "encap_source_v4" && address->family != 4)
      return args::bad(op, key, lb::to_string(*address) + " is not an IPv4 address");
    if (key == "encap_source_v6" && address->family != 6)
      return args::bad(op, key, lb::to_string(*address) + " is not an IPv6 address");
    (address->family == 4 ? settings.encap_source_v4 : settings.encap_source_v6) = *address;
  }
  auto entropy = args::optional_bool(op, object, "entropy_source");
  if (!entropy) return entropy.error();
  if (*entropy) settings.entropy_source = **entropy;
  auto egress = args::optional_string(op, object, "egress", max_text_arg_bytes);
  if (!egress) return egress.error();
  if (*egress) {
    auto parsed = config::parse_egress(**egress);
    if (!parsed)
      return args::bad(op, "egress", protocol::quote_value(json::string(**egress)) + " is not tx, redirect or forward");
    settings.egress = *parsed;
  }
  for (std::string_view key : {"next_hop_mac", "src_mac"}) {
    auto mac = mac_arg(op, object, key);
    if (!mac) return mac.error();
    if (*mac) (key == "next_hop_mac" ? settings.next_hop_mac : settings.src_mac) = *mac;
  }
  auto mtu = args::optional_uint(op, object, "mtu", 0, 65535);
  if (!mtu) return mtu.error();
  if (*mtu) settings.mtu = static_cast<std::uint16_t>(**mtu);
  auto timeout = args::optional_uint(op, object, "conn_timeout_s", 1, max_conn_timeout_s);
  if (!timeout) return timeout.error();
  if (*timeout) settings.conn_timeout_s = static_cast<std::uint32_t>(**timeout);
  if (auto valid = lb::validate(settings); !valid) return args::bad(op, "settings", valid.error().message);
  return change_lb(op, [&](lb::LbConfig& config) -> protocol::ArgsResult<void> {
    config.settings = settings;
    return {};
  }, settings_to_json(settings));
}

OpResult LbOps::lb_show(const json::object& object) const {
  if (auto none = protocol::parse_no_args("lb.show", object); !none) return none.error();
  json::object out{{"settings", settings_to_json(table_.config().settings)},
                   {"vips", table_.config().vips.size()},
                   {"stage_enabled", table_.has_vips()}};
  if (auto fill = conn_fill(); fill) {
    out["conns"] = json::object{{"v4", fill->v4},
                                {"v6", fill->v6},
                                {"v4_capacity", fill->v4_capacity},
                                {"v6_capacity", fill->v6_capacity}};
  } else {
    return ProtocolError{ErrorCode::Failed, "lb.show: " + fill.error().message};
  }
  if (auto events = table_.events(); events) {
    out["events"] = json::object{{"conn_insert_failed", (*events)[SLUICE_LB_EVENT_CONN_INSERT_FAILED]},
                                 {"reselected", (*events)[SLUICE_LB_EVENT_RESELECTED]},
                                 {"corrupt_table", (*events)[SLUICE_LB_EVENT_CORRUPT_TABLE]},
                                 {"icmp_rate_limited", (*events)[SLUICE_LB_EVENT_ICMP_RATE_LIMITED]},
                                 {"icmp_martian", (*events)[SLUICE_LB_EVENT_ICMP_MARTIAN]}};
  } else {
    return ProtocolError{ErrorCode::Failed, "lb.show: " + events.error().message};
  }
  out["health"] = json::object{{"went_down", health_stats_.went_down},
                               {"went_up", health_stats_.went_up},
                               {"set_health_failures", health_stats_.set_health_failures}};
  return json::value(std::move(out));
}

void LbOps::register_ops(OpRegistry& ops) {
  auto bind = [this](auto method) {
    return OpRegistry::Handler{[this, method](const json::object& object) { return (this->*method)(object); }, nullptr};
  };
  ops.add("vip.add", bind(&LbOps::vip_add));
  ops.add("vip.del", bind(&LbOps::vip_del));
  ops.add("vip.list", bind(&LbOps::vip_list));
  ops.add("backend.add", bind(&LbOps::backend_add));
  ops.add("backend.set", bind(&LbOps::backend_set));
  ops.add("backend.drain", bind(&LbOps::backend_drain));
  ops.add("backend.del", bind(&LbOps::backend_del));
  ops.add("backend.list", bind(&LbOps::backend_list));
  ops.add("lb.set", bind(&LbOps::lb_set));
  ops.add("lb.show", bind(&LbOps::lb_show));
}

}  // namespace sluice::daemon
