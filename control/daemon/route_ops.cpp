#include "route_ops.hpp"

#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <limits>
#include <map>

#include <bpf/libbpf.h>

#include "forward_config.hpp"
#include "route_list.hpp"
#include "names.hpp"
#include "spdlog/spdlog.h"

namespace sluice::daemon {
namespace {

namespace json = boost::json;
using config::ForwardConfig;
using config::ForwardGroup;
using config::ForwardGroupMember;
using config::ForwardHop;
using config::ForwardRoute;
using protocol::ErrorCode;
using protocol::ProtocolError;
namespace args = protocol::args;

constexpr std::size_t max_text_arg_bytes = 256;

const ForwardConfig& forward_of(const config::DesiredState& state) {
  static const ForwardConfig none;
  return state.forward ? *state.forward : none;
}

// ---- arguments ----

protocol::ArgsResult<std::string> prefix_arg(std::string_view op, const json::object& object) {
  auto text = args::required_string(op, object, "prefix", max_text_arg_bytes);
  if (!text) return text.error();
  auto prefix = maps::parse_prefix(*text);
  if (!prefix) return args::bad(op, "prefix", prefix.error().message);
  return maps::to_string(*prefix);
}

protocol::ArgsResult<config::ForwardMac> mac_value(std::string_view op, std::string_view field, const json::value& value) {
  if (!value.is_string()) return args::bad(op, field, protocol::quote_value(value) + " is not a MAC address");
  auto mac = lb::parse_mac(std::string_view(value.as_string()).substr(0, max_text_arg_bytes));
  if (!mac) return args::bad(op, field, mac.error().message);
  return *mac;
}

// {via, dev, mac, src_mac?} of a route or a group member; `path` prefixes the field names ("next_hops[1].").
protocol::ArgsResult<ForwardHop> hop_arg(std::string_view op, const json::object& object, const std::string& path) {
  ForwardHop hop;
  auto field = [&](std::string_view key) { return path + std::string(key); };
  for (std::string_view key : {"via", "dev"})  // no mac: the kernel's neighbour table resolves it
    if (!object.contains(key)) return args::bad(op, field(key), "is required");
  const json::value& via = object.at("via");
  if (!via.is_string()) return args::bad(op, field("via"), protocol::quote_value(via) + " is not an address");
  auto address = lb::parse_address(std::string_view(via.as_string()).substr(0, max_text_arg_bytes));
  if (!address) return args::bad(op, field("via"), address.error().message);
  hop.via = *address;
  const json::value& dev = object.at("dev");
  if (!dev.is_string()) return args::bad(op, field("dev"), protocol::quote_value(dev) + " is not an interface name");
  hop.dev = std::string(dev.as_string());
  if (auto problem = protocol::interface_name_problem(hop.dev))
    return args::bad(op, field("dev"), protocol::quote_value(dev) + " is not an interface name: " + *problem);
  if (object.contains("mac")) {
    auto mac = mac_value(op, field("mac"), object.at("mac"));
    if (!mac) return mac.error();
    hop.mac = *mac;
  }
  if (object.contains("src_mac")) {
    auto src = mac_value(op, field("src_mac"), object.at("src_mac"));
    if (!src) return src.error();
    hop.src_mac = *src;
  }
  return hop;
}

protocol::ArgsResult<std::string> group_name_arg(std::string_view op, const json::object& object, std::string_view key) {
  auto name = args::required_string(op, object, key, max_text_arg_bytes);
  if (!name) return name.error();
  if (!config::is_forward_name(*name))
    return args::bad(op, key, protocol::quote_value(json::string(*name)) + " is not a group name (1.." +
                                  std::to_string(config::kMaxForwardNameBytes) + " of A-Z a-z 0-9 _ - .)");
  return *name;
}

ProtocolError no_route(std::string_view op, const std::string& prefix) {
  return args::bad(op, "prefix", prefix + " is not a route (route.list)");
}

// ---- replies ----

json::object group_json(const ForwardGroup& group) {
  json::array members;
  for (const auto& member : group.members) {
    json::object entry = hop_json(member.hop);
    entry["weight"] = member.weight;
    members.push_back(std::move(entry));
  }
  return json::object{{"name", group.name}, {"next_hops", std::move(members)}};
}

json::object settings_json(const config::ForwardSettings& s) {
  auto address = [](const std::optional<lb::Address>& a) -> json::value {
    return a ? json::value(lb::to_string(*a)) : json::value(nullptr);
  };
  json::array cpus;
  for (std::uint32_t cpu : s.cpus) cpus.push_back(cpu);
  return json::object{{"no_route", dataplane::verdict_name(s.no_route)},
                      {"icmp_rate", s.icmp_rate},
                      {"icmp_burst", s.icmp_burst},
                      {"icmp_source_v4", address(s.icmp_source_v4)},
                      {"icmp_source_v6", address(s.icmp_source_v6)},
                      {"cpus", std::move(cpus)},
                      {"cpumap_queue", s.cpumap_queue}};
}

// ---- RouteTable's values ----

route::IpAddress ip_of(const lb::Address& address) {
  route::IpAddress out;
  out.family = address.family == 4 ? AF_INET : AF_INET6;
  std::copy_n(address.bytes.begin(), address.family == 4 ? 4 : 16, out.bytes.begin());
  return out;
}

// A hop without a MAC follows the kernel's neighbour (via on dev).
route::NextHopSpec spec_of(const ForwardHop& hop) {
  if (hop.mac) return {hop.dev, *hop.mac, hop.src_mac, ip_of(hop.via), false};
  return {hop.dev, {}, hop.src_mac, ip_of(hop.via), true};
}

bool kernel_owned(std::string_view name) { return name.starts_with("kernel:"); }


std::vector<route::GroupMember> members_of(const ForwardGroup& group) {
  std::vector<route::GroupMember> out;
  for (const auto& member : group.members) out.push_back({config::hop_name(member.hop), member.weight});
  return out;
}

route::RouteTarget target_of(const ForwardRoute& route) {
  switch (route.kind) {
    case ForwardRoute::Kind::Via: return route::RouteTarget::next_hop(config::hop_name(route.hop));
    case ForwardRoute::Kind::Group: return route::RouteTarget::group(route.group);
    case ForwardRoute::Kind::ToStack: break;
  }
  return route::RouteTarget::to_stack();
}

route::IcmpSettings icmp_of(const config::ForwardSettings& s) {
  route::IcmpSettings out;
  out.rate_per_sec = s.icmp_rate;
  out.burst = s.icmp_burst;
  if (s.icmp_source_v4) {
    std::array<std::uint8_t, 4> v4{};
    std::copy_n(s.icmp_source_v4->bytes.begin(), 4, v4.begin());
    out.source_v4 = v4;
  }
  if (s.icmp_source_v6) out.source_v6 = s.icmp_source_v6->bytes;
  return out;
}

route::CpumapSettings cpumap_of(const config::ForwardSettings& s) { return {s.cpus, s.cpumap_queue}; }

template <class T>
std::map<std::string, const T*> by_key(const std::vector<T>& items, auto key) {
  std::map<std::string, const T*> out;
  for (const auto& item : items) out.emplace(key(item), &item);
  return out;
}

}  // namespace

RouteOps::RouteOps(route::RouteTable& table, StateOps& state, boost::asio::io_context& io)
    : table_(table), state_(state), io_(io) {
  // What RouteTable::open() wrote: an empty table with its default settings.
  live_.settings.no_route = static_cast<sluice_verdict>(table_.settings().no_route_verdict);
  live_.settings.icmp_rate = table_.settings().icmp_rate;
  live_.settings.icmp_burst = table_.settings().icmp_burst;
  auto neighbours = route::NeighbourTable::open(table_);
  if (!neighbours) {
    spdlog::error("forward: neighbour table: {} (next hops without a MAC stay unresolved: their packets go to the stack)",
                  neighbours.error().message);
    return;
  }
  neighbours_ = std::move(*neighbours);
  route::NeighbourTable* source = neighbours_.get();
  neighbour_watch_ = std::make_unique<route::NetlinkWatch>(
      io_, neighbours_->fd(), [source] { return source->process_pending(); },
      [](const Error& error) { spdlog::warn("forward: neighbour table: {}", error.message); });
}

RouteOps::~RouteOps() = default;

std::optional<route::NeighbourTableStats> RouteOps::neighbour_stats() const {
  if (!neighbours_) return std::nullopt;
  return neighbours_->stats();
}

std::optional<route::KernelMirrorStats> RouteOps::mirror_stats() const {
  if (!mirror_) return std::nullopt;
  return mirror_->stats();
}

Result<void> RouteOps::set_sync(const std::optional<config::ForwardSync>& sync) {
  if (mirror_) {
    mirror_watch_.reset();
    auto stopped = mirror_->stop();
    mirror_.reset();
    if (!stopped) return stopped.error();
  }
  if (!sync) return {};
  route::KernelMirrorOptions options;
  options.table = sync->table;
  auto mirror = route::KernelMirror::open(table_, options);
  if (!mirror) return mirror.error();
  mirror_ = std::move(*mirror);
  route::KernelMirror* source = mirror_.get();
  mirror_watch_ = std::make_unique<route::NetlinkWatch>(
      io_, mirror_->fd(), [source] { return source->process_pending(); },
      [](const Error& error) { spdlog::warn("forward: route sync: {}", error.message); },
      [source] { return source->next_deadline(); });
  return {};
}

// ---- StatePart ----

protocol::ArgsResult<void> RouteOps::check(std::string_view op, const config::DesiredState& next, filter::RuleSet&) const {
  const ForwardConfig& config = forward_of(next);
  if (auto problem = config::validate_forward(config))
    return ProtocolError{ErrorCode::BadArgs, std::string(op) + ": " + *problem};
  // lb's egress `forward` hands encapsulated packets to this stage: without a route it is off.
  if (next.lb && !next.lb->vips.empty() && next.lb->settings.egress == SLUICE_LB_EGRESS_FORWARD && config.routes.empty() &&
      !config.sync)
    return args::bad(op, "lb.settings.egress",
                     "forward: the VIPs' encapsulated packets go to the forward stage, which is off without a route "
                     "(add a route first, or set egress tx or redirect)");
  // What only this host can say: the interfaces and the CPUs. Not at start
  // ("restore"): a missing interface must not cost the filter its rule set;
  // make_live refuses the section then and the start reports it (degraded).
  if (op == "restore") return {};
  for (std::size_t r = 0; r < config.routes.size(); ++r)
    if (config.routes[r].kind == ForwardRoute::Kind::Via && ::if_nametoindex(config.routes[r].hop.dev.c_str()) == 0)
      return args::bad(op, "forward.routes[" + std::to_string(r) + "].dev",
                       "no interface '" + config.routes[r].hop.dev + "' (route " + config.routes[r].prefix + ")");
  for (std::size_t g = 0; g < config.groups.size(); ++g)
    for (std::size_t m = 0; m < config.groups[g].members.size(); ++m)
      if (::if_nametoindex(config.groups[g].members[m].hop.dev.c_str()) == 0)
        return args::bad(op, "forward.groups[" + std::to_string(g) + "].next_hops[" + std::to_string(m) + "].dev",
                         "no interface '" + config.groups[g].members[m].hop.dev + "' (group " + config.groups[g].name + ")");
  const int possible = libbpf_num_possible_cpus();
  for (std::size_t i = 0; i < config.settings.cpus.size(); ++i)
    if (possible <= 0 || config.settings.cpus[i] >= static_cast<std::uint32_t>(possible))
      return args::bad(op, "forward.settings.cpus[" + std::to_string(i) + "]",
                       "CPU " + std::to_string(config.settings.cpus[i]) + " does not exist (possible CPUs: 0.." +
                           std::to_string(possible - 1) + ")");
  return {};
}

std::uint32_t RouteOps::effective_stages(const config::DesiredState& next, std::uint32_t stages) const {
  // Synced routes are routes: the stage runs while sync is on, even before the kernel table holds one.
  if (forward_of(next).routes.empty() && !forward_of(next).sync) stages &= ~SLUICE_STAGE_BIT(SLUICE_STAGE_FORWARD);
  return stages;
}

bool RouteOps::changes(const config::DesiredState& next) const { return !(live_ == forward_of(next)); }

Result<void> RouteOps::make_live(const config::DesiredState& state) {
  const ForwardConfig& to = forward_of(state);
  const ForwardConfig& from = live_;
  // Each step done pushes its undo; a failure runs them in reverse, so an error changed nothing.
  std::vector<std::function<Result<void>()>> undo;
  auto fail = [&](const Error& error) -> Result<void> {
    std::string undo_errors;
    for (auto it = undo.rbegin(); it != undo.rend(); ++it)
      if (auto undone = (*it)(); !undone) undo_errors += "; undo failed: " + undone.error().message;
    if (!undo_errors.empty()) {
      const std::string message = "forward: " + error.message + undo_errors;
      state_.report_incomplete_rollback(message + "; the forward maps may not hold the reported state: restart sluiced");
      return maps::make_error_because("make live", "forward", message, error.errnum);
    }
    return error;
  };
  // by_key points into these lists: they live as long as the maps.
  const auto new_hop_list = config::forward_hops(to);
  auto new_hops = by_key(new_hop_list, config::hop_name);
  const auto old_hop_list = config::forward_hops(from);
  auto old_hops = by_key(old_hop_list, config::hop_name);
  auto group_name = [](const ForwardGroup& g) { return g.name; };
  auto old_groups = by_key(from.groups, group_name);
  auto new_groups = by_key(to.groups, group_name);
  auto prefix_of = [](const ForwardRoute& r) { return r.prefix; };
  auto old_routes = by_key(from.routes, prefix_of);
  auto new_routes = by_key(to.routes, prefix_of);

  // 1. next hops new or changed (before anything names them)
  for (const auto& [name, hop] : new_hops) {
    auto was = old_hops.find(name);
    if (was == old_hops.end()) {
      if (auto added = table_.add_next_hop(name, spec_of(*hop)); !added) return fail(added.error());
      undo.push_back([this, name = name] { return table_.remove_next_hop(name); });
    } else if (!(*was->second == *hop)) {
      if (auto replaced = table_.replace_next_hop(name, spec_of(*hop)); !replaced) return fail(replaced.error());
      undo.push_back([this, name = name, old = *was->second] { return table_.replace_next_hop(name, spec_of(old)); });
    }
  }
  // 2. groups new or changed
  for (const auto& [name, group] : new_groups) {
    auto was = old_groups.find(name);
    if (was == old_groups.end()) {
      if (auto added = table_.add_group(name, members_of(*group)); !added) return fail(added.error());
      undo.push_back([this, name = name] { return table_.remove_group(name); });
    } else if (!(*was->second == *group)) {
      if (auto replaced = table_.replace_group(name, members_of(*group)); !replaced) return fail(replaced.error());
      undo.push_back([this, name = name, old = *was->second] { return table_.replace_group(name, members_of(old)); });
    }
  }
  // 3. routes: gone, then new or changed
  for (const auto& [prefix, route] : old_routes) {
    if (new_routes.contains(prefix)) continue;
    auto parsed = maps::parse_prefix(prefix);
    if (!parsed) return fail(parsed.error());
    if (auto removed = table_.remove_route(*parsed); !removed) return fail(removed.error());
    undo.push_back([this, p = *parsed, old = *route] { return table_.add_route(p, target_of(old)); });
  }
  for (const auto& [prefix, route] : new_routes) {
    auto was = old_routes.find(prefix);
    if (was != old_routes.end() && *was->second == *route) continue;
    auto parsed = maps::parse_prefix(prefix);
    if (!parsed) return fail(parsed.error());
    if (was == old_routes.end()) {
      if (auto added = table_.add_route(*parsed, target_of(*route)); !added) return fail(added.error());
      undo.push_back([this, p = *parsed] { return table_.remove_route(p); });
    } else {
      if (auto replaced = table_.replace_route(*parsed, target_of(*route)); !replaced) return fail(replaced.error());
      undo.push_back([this, p = *parsed, old = *was->second] { return table_.replace_route(p, target_of(old)); });
    }
  }
  // 4. groups and next hops nothing names any more
  for (const auto& [name, group] : old_groups) {
    if (new_groups.contains(name)) continue;
    if (auto removed = table_.remove_group(name); !removed) return fail(removed.error());
    undo.push_back([this, name = name, old = *group] { return table_.add_group(name, members_of(old)); });
  }
  for (const auto& [name, hop] : old_hops) {
    if (new_hops.contains(name)) continue;
    if (auto removed = table_.remove_next_hop(name); !removed) return fail(removed.error());
    undo.push_back([this, name = name, old = *hop] { return table_.add_next_hop(name, spec_of(old)); });
  }
  // 5. settings
  const config::ForwardSettings& was = from.settings;
  const config::ForwardSettings& now = to.settings;
  if (was.no_route != now.no_route) {
    if (auto set = table_.set_no_route_verdict(now.no_route); !set) return fail(set.error());
    undo.push_back([this, old = was.no_route] { return table_.set_no_route_verdict(old); });
  }
  if (was.icmp_rate != now.icmp_rate || was.icmp_burst != now.icmp_burst || was.icmp_source_v4 != now.icmp_source_v4 ||
      was.icmp_source_v6 != now.icmp_source_v6) {
    if (auto set = table_.set_icmp(icmp_of(now)); !set) return fail(set.error());
    undo.push_back([this, old = was] { return table_.set_icmp(icmp_of(old)); });
  }
  if (was.cpus != now.cpus || was.cpumap_queue != now.cpumap_queue) {
    if (auto set = table_.set_cpumap(cpumap_of(now)); !set) return fail(set.error());
    undo.push_back([this, old = was] { return table_.set_cpumap(cpumap_of(old)); });
  }
  // 6. route sync last: a failure to open it undoes the static part; its own undo brings the old mirror back.
  if (from.sync != to.sync) {
    if (auto set = set_sync(to.sync); !set) {
      if (auto back = set_sync(from.sync); !back)
        undo.push_back([back = back.error()]() -> Result<void> { return back; });
      return fail(set.error());
    }
  }
  live_ = to;
  return {};
}

void RouteOps::add_baseline(config::DesiredState& baseline) const {
  baseline.forward = live_;
  // Without a route sluiced itself clears the forward bit: the operator's wish for the stage is not in the config array then.
  if (baseline.defaults && baseline.defaults->stages && live_.routes.empty() && !live_.sync)
    *baseline.defaults->stages |= SLUICE_STAGE_BIT(SLUICE_STAGE_FORWARD);
}

std::vector<std::pair<config::RuleSpec, std::string>> RouteOps::owned_rules(const config::DesiredState&) const {
  return {};
}

// ---- ops ----

OpResult RouteOps::change_forward(std::string_view op,
                                  const std::function<protocol::ArgsResult<void>(ForwardConfig&)>& edit,
                                  json::object result) {
  config::DesiredState next = state_.store().live();
  ForwardConfig config = forward_of(next);
  if (auto edited = edit(config); !edited) return edited.error();
  next.forward = std::move(config);
  if (auto changed = state_.change(op, next); !changed) return changed;
  return json::value(std::move(result));
}

OpResult RouteOps::route_add(const json::object& object, bool replace) {
  const std::string_view op = replace ? "route.replace" : "route.add";
  if (auto keys = args::only_keys(op, object, {"prefix", "via", "dev", "mac", "src_mac", "group", "to_stack"}); !keys)
    return keys.error();
  auto prefix = prefix_arg(op, object);
  if (!prefix) return prefix.error();
  ForwardRoute route;
  route.prefix = *prefix;
  const bool via = object.contains("via") || object.contains("dev") || object.contains("mac") || object.contains("src_mac");
  const bool group = object.contains("group");
  auto to_stack = args::optional_bool(op, object, "to_stack");
  if (!to_stack) return to_stack.error();
  if (*to_stack && !**to_stack) return args::bad(op, "to_stack", "false: give via/dev/mac or group instead");
  if (int(via) + int(group) + int(to_stack->has_value()) != 1)
    return args::bad(op, "args", "give exactly one of via/dev/mac, group or to_stack");
  if (via) {
    auto hop = hop_arg(op, object, "");
    if (!hop) return hop.error();
    route.kind = ForwardRoute::Kind::Via;
    route.hop = *hop;
  } else if (group) {
    auto name = group_name_arg(op, object, "group");
    if (!name) return name.error();
    route.kind = ForwardRoute::Kind::Group;
    route.group = *name;
  }
  json::object result = route_json(route);
  return change_forward(op, [&](ForwardConfig& config) -> protocol::ArgsResult<void> {
    if (route.kind == ForwardRoute::Kind::Group &&
        std::none_of(config.groups.begin(), config.groups.end(), [&](const auto& g) { return g.name == route.group; }))
      return args::bad(op, "group", "'" + route.group + "' is not a group (nexthop.group.list)");
    auto it = std::find_if(config.routes.begin(), config.routes.end(), [&](const auto& r) { return r.prefix == route.prefix; });
    if (it == config.routes.end()) {
      config.routes.push_back(route);
    } else {
      if (!replace) return args::bad(op, "prefix", route.prefix + " is a route already (route.replace changes it)");
      *it = route;
    }
    return {};
  }, std::move(result));
}

OpResult RouteOps::route_del(const json::object& object) {
  constexpr std::string_view op = "route.del";
  if (auto keys = args::only_keys(op, object, {"prefix"}); !keys) return keys.error();
  auto prefix = prefix_arg(op, object);
  if (!prefix) return prefix.error();
  return change_forward(op, [&](ForwardConfig& config) -> protocol::ArgsResult<void> {
    if (std::erase_if(config.routes, [&](const auto& r) { return r.prefix == *prefix; }) == 0) return no_route(op, *prefix);
    return {};
  }, json::object{{"prefix", *prefix}, {"deleted", true}});
}

OpResult RouteOps::nexthop_list(const json::object& object) const {
  if (auto none = protocol::parse_no_args("nexthop.list", object); !none) return none.error();
  auto listed = table_.list_next_hops();
  if (!listed) return ProtocolError{ErrorCode::Failed, "nexthop.list: " + listed.error().message};
  const auto hop_list = config::forward_hops(live_);  // by_key points into it: it must outlive `hops`
  auto hops = by_key(hop_list, config::hop_name);
  json::array out;
  for (const auto& info : *listed) {
    auto it = hops.find(info.name);
    json::object entry = it != hops.end() ? hop_json(*it->second) : json::object{{"next_hop", info.name}};
    if (it == hops.end()) {  // a kernel:* next hop of route sync
      entry["dev"] = info.spec.interface;
      entry["via"] = info.spec.gateway ? json::value(info.spec.gateway->to_string()) : json::value(nullptr);
    }
    entry["origin"] = kernel_owned(info.name) ? "kernel" : "static";
    // The MAC in use: given, or what the neighbour table resolved (none while unresolved).
    entry["mac"] = info.resolved ? json::value(lb::mac_to_string(info.spec.dst_mac)) : json::value(nullptr);
    entry["resolve_mac"] = info.spec.resolve_mac;
    entry["resolved"] = info.resolved;
    entry["id"] = info.id;
    entry["ifindex"] = info.ifindex;
    entry["src_mac"] = lb::mac_to_string(info.spec.src_mac.value_or(config::ForwardMac{}));
    entry["users"] = info.users;
    entry["packets"] = info.counter.packets;
    entry["bytes"] = info.counter.bytes;
    out.push_back(std::move(entry));
  }
  return json::value(json::object{{"next_hops", std::move(out)}});
}

OpResult RouteOps::group_add(const json::object& object, bool replace) {
  const std::string_view op = replace ? "nexthop.group.replace" : "nexthop.group.add";
  if (auto keys = args::only_keys(op, object, {"name", "next_hops"}); !keys) return keys.error();
  auto name = group_name_arg(op, object, "name");
  if (!name) return name.error();
  ForwardGroup group;
  group.name = *name;
  const json::value* hops = object.if_contains("next_hops");
  if (!hops || !hops->is_array() || hops->as_array().empty() || hops->as_array().size() > SLUICE_FWD_GROUP_MAX_MEMBERS)
    return args::bad(op, "next_hops", "is required: a list of 1.." + std::to_string(SLUICE_FWD_GROUP_MAX_MEMBERS) +
                                          " {via, dev, mac[, src_mac, weight]}");
  for (std::size_t i = 0; i < hops->as_array().size(); ++i) {
    const std::string path = "next_hops[" + std::to_string(i) + "]";
    const json::value& item = hops->as_array()[i];
    if (!item.is_object()) return args::bad(op, path, "is not an object {via, dev, mac[, src_mac, weight]}");
    const json::object& member_args = item.as_object();
    for (const auto& [key, value] : member_args)
      if (key != "via" && key != "dev" && key != "mac" && key != "src_mac" && key != "weight")
        return args::bad(op, path + "." + std::string(key), "unknown key; expected via, dev, mac, src_mac, weight");
    ForwardGroupMember member;
    auto hop = hop_arg(op, member_args, path + ".");
    if (!hop) return hop.error();
    member.hop = *hop;
    auto weight = args::optional_uint(op, member_args, "weight", 1, SLUICE_FWD_WEIGHT_MAX);
    if (!weight) return args::bad(op, path + ".weight", "is not an integer in 1.." + std::to_string(SLUICE_FWD_WEIGHT_MAX));
    if (*weight) member.weight = static_cast<std::uint32_t>(**weight);
    group.members.push_back(std::move(member));
  }
  json::object result = group_json(group);
  return change_forward(op, [&](ForwardConfig& config) -> protocol::ArgsResult<void> {
    auto it = std::find_if(config.groups.begin(), config.groups.end(), [&](const auto& g) { return g.name == group.name; });
    if (it == config.groups.end()) {
      if (replace) return args::bad(op, "name", "'" + group.name + "' is not a group (nexthop.group.add makes it)");
      config.groups.push_back(group);
    } else {
      if (!replace) return args::bad(op, "name", "group '" + group.name + "' exists (nexthop.group.replace changes it)");
      *it = group;
    }
    return {};
  }, std::move(result));
}

OpResult RouteOps::group_del(const json::object& object) {
  constexpr std::string_view op = "nexthop.group.del";
  if (auto keys = args::only_keys(op, object, {"name"}); !keys) return keys.error();
  auto name = group_name_arg(op, object, "name");
  if (!name) return name.error();
  return change_forward(op, [&](ForwardConfig& config) -> protocol::ArgsResult<void> {
    std::string users;
    std::size_t count = 0;
    for (const auto& route : config.routes)
      if (route.kind == ForwardRoute::Kind::Group && route.group == *name && count++ < 3)
        users += (users.empty() ? "" : ", ") + route.prefix;
    if (count)
      return args::bad(op, "name", "group '" + *name + "' is used by " + std::to_string(count) + " route(s) (" + users +
                                       (count > 3 ? ", ..." : "") + "): delete or change them first");
    if (std::erase_if(config.groups, [&](const auto& g) { return g.name == *name; }) == 0)
      return args::bad(op, "name", "'" + *name + "' is not a group (nexthop.group.list)");
    return {};
  }, json::object{{"name", *name}, {"deleted", true}});
}

OpResult RouteOps::group_list(const json::object& object) const {
  if (auto none = protocol::parse_no_args("nexthop.group.list", object); !none) return none.error();
  std::map<std::string, route::GroupInfo> infos;
  for (auto& info : table_.list_groups()) infos.emplace(info.name, info);
  json::array out;
  for (const auto& group : live_.groups) {
    json::object entry = group_json(group);
    entry["origin"] = "static";
    if (auto it = infos.find(group.name); it != infos.end()) {
      entry["id"] = it->second.id;
      entry["users"] = it->second.users;
    }
    out.push_back(std::move(entry));
  }
  for (const auto& [name, info] : infos) {  // route sync's ECMP groups
    if (!kernel_owned(name)) continue;
    json::array members;
    for (const auto& member : info.members) members.push_back(json::object{{"next_hop", member.next_hop}, {"weight", member.weight}});
    out.push_back(json::object{{"name", name}, {"next_hops", std::move(members)}, {"origin", "kernel"},
                               {"id", info.id}, {"users", info.users}});
  }
  return json::value(json::object{{"groups", std::move(out)}});
}

OpResult RouteOps::forward_set(const json::object& object) {
  constexpr std::string_view op = "forward.set";
  if (auto keys = args::only_keys(op, object, {"no_route", "icmp_rate", "icmp_burst", "icmp_source_v4", "icmp_source_v6"});
      !keys)
    return keys.error();
  if (object.empty()) return args::bad(op, "args", "name at least one setting to change");
  config::ForwardSettings settings = forward_of(state_.store().live()).settings;
  auto no_route = args::optional_string(op, object, "no_route", max_text_arg_bytes);
  if (!no_route) return no_route.error();
  if (*no_route) {
    auto verdict = config::parse_pass_or_drop(**no_route);
    if (!verdict) return args::bad(op, "no_route", protocol::quote_value(json::string(**no_route)) + " is not pass or drop");
    settings.no_route = *verdict;
  }
  auto rate = args::optional_uint(op, object, "icmp_rate", 0, config::kForwardIcmpMax);
  if (!rate) return rate.error();
  if (*rate) settings.icmp_rate = static_cast<std::uint32_t>(**rate);
  auto burst = args::optional_uint(op, object, "icmp_burst", 0, config::kForwardIcmpMax);
  if (!burst) return burst.error();
  if (*burst) settings.icmp_burst = static_cast<std::uint32_t>(**burst);
  for (std::string_view key : {"icmp_source_v4", "icmp_source_v6"}) {
    auto text = args::optional_string(op, object, key, max_text_arg_bytes);
    if (!text) return text.error();
    if (!*text) continue;
    auto& source = key == "icmp_source_v4" ? settings.icmp_source_v4 : settings.icmp_source_v6;
    if (text->value().empty()) {  // "": no source, no answers
      source.reset();
      continue;
    }
    auto address = lb::parse_address(**text);
    if (!address) return args::bad(op, key, address.error().message);
    const int family = key == "icmp_source_v4" ? 4 : 6;
    if (address->family != family)
      return args::bad(op, key, lb::to_string(*address) + " is not an IPv" + std::to_string(family) + " address");
    source = *address;
  }
  return change_forward(op, [&](ForwardConfig& config) -> protocol::ArgsResult<void> {
    config.settings = settings;
    return {};
  }, settings_json(settings));
}

OpResult RouteOps::cpumap_set(const json::object& object) {
  constexpr std::string_view op = "cpumap.set";
  if (auto keys = args::only_keys(op, object, {"cpus", "queue"}); !keys) return keys.error();
  if (object.empty()) return args::bad(op, "args", "name cpus and/or queue");
  config::ForwardSettings settings = forward_of(state_.store().live()).settings;
  if (const json::value* cpus = object.if_contains("cpus")) {
    if (!cpus->is_array()) return args::bad(op, "cpus", protocol::quote_value(*cpus) + " is not a list of CPU numbers");
    if (cpus->as_array().size() > SLUICE_FWD_MAX_CPUS)
      return args::bad(op, "cpus", std::to_string(cpus->as_array().size()) + " CPUs, at most " + std::to_string(SLUICE_FWD_MAX_CPUS));
    settings.cpus.clear();
    const int possible = libbpf_num_possible_cpus();
    for (std::size_t i = 0; i < cpus->as_array().size(); ++i) {
      const json::value& cpu = cpus->as_array()[i];
      const std::string field = "cpus[" + std::to_string(i) + "]";
      if (!cpu.is_uint64() && !(cpu.is_int64() && cpu.as_int64() >= 0))
        return args::bad(op, field, protocol::quote_value(cpu) + " is not a CPU number");
      const std::uint64_t n = cpu.is_uint64() ? cpu.as_uint64() : static_cast<std::uint64_t>(cpu.as_int64());
      if (possible <= 0 || n >= static_cast<std::uint64_t>(possible) || n >= SLUICE_FWD_MAX_CPUS)
        return args::bad(op, field, "CPU " + std::to_string(n) + " does not exist (possible CPUs: 0.." +
                                        std::to_string(possible - 1) + ")");
      if (std::find(settings.cpus.begin(), settings.cpus.end(), n) != settings.cpus.end())
        return args::bad(op, field, "CPU " + std::to_string(n) + " is listed twice");
      settings.cpus.push_back(static_cast<std::uint32_t>(n));
    }
  }
  auto queue = args::optional_uint(op, object, "queue", 1, SLUICE_FWD_CPUMAP_QSIZE_MAX);
  if (!queue) return queue.error();
  if (*queue) settings.cpumap_queue = static_cast<std::uint32_t>(**queue);
  return change_forward(op, [&](ForwardConfig& config) -> protocol::ArgsResult<void> {
    config.settings = settings;
    return {};
  }, settings_json(settings));
}

OpResult RouteOps::route_sync(const json::object& object) {
  constexpr std::string_view op = "route.sync";
  if (auto keys = args::only_keys(op, object, {"enabled", "table"}); !keys) return keys.error();
  auto enabled = args::optional_bool(op, object, "enabled");
  if (!enabled) return enabled.error();
  if (!*enabled) return args::bad(op, "enabled", "is required (true: mirror a kernel table, false: stop)");
  auto table = args::optional_uint(op, object, "table", 0, std::numeric_limits<std::uint32_t>::max());
  if (!table) return table.error();
  std::optional<config::ForwardSync> sync;
  if (**enabled) {
    sync.emplace();
    if (*table) {
      if (auto problem = config::sync_table_problem(static_cast<std::uint32_t>(**table)))
        return args::bad(op, "table", *problem);
      sync->table = static_cast<std::uint32_t>(**table);
    }
  } else if (*table) {
    return args::bad(op, "table", std::to_string(**table) + " with enabled false: there is no table to stop syncing");
  }
  json::object result{{"enabled", sync.has_value()},
                      {"table", sync ? json::value(sync->table) : json::value(nullptr)}};
  return change_forward(op, [&](ForwardConfig& config) -> protocol::ArgsResult<void> {
    config.sync = sync;
    return {};
  }, std::move(result));
}

OpResult RouteOps::forward_show(const json::object& object) const {
  if (auto none = protocol::parse_no_args("forward.show", object); !none) return none.error();
  json::object out{{"settings", settings_json(live_.settings)},
                   {"routes", live_.routes.size()},
                   {"groups", live_.groups.size()},
                   {"next_hops", config::forward_hops(live_).size()},
                   {"stage_enabled", !live_.routes.empty() || live_.sync.has_value()},
                   {"sync", live_.sync ? json::value(json::object{{"table", live_.sync->table}}) : json::value(nullptr)},
                   {"dir24_8_active", table_.dir24_8_active()}};
  if (!table_.dir24_8_error().empty()) out["dir24_8_error"] = table_.dir24_8_error();
  if (auto stats = mirror_stats()) {
    out["sync_stats"] = json::object{{"via_next_hop", stats->via_next_hop}, {"via_group", stats->via_group},
                                     {"to_stack", stats->to_stack},         {"unexpressible", stats->unexpressible},
                                     {"skipped", stats->skipped},           {"refused_full", stats->refused_full},
                                     {"changes", stats->changes},           {"resyncs", stats->resyncs},
                                     {"fallbacks", stats->fallbacks},
                                     {"errors", stats->errors},             {"last_error", stats->last_error}};
  }
  out["neighbour_table"] = neighbours_ != nullptr;
  auto events = table_.event_counters();
  if (!events) return ProtocolError{ErrorCode::Failed, "forward.show: " + events.error().message};
  auto event = [&](std::size_t slot) { return slot < events->size() ? (*events)[slot].packets : 0; };
  out["events"] = json::object{{"icmp_rate_limited", event(SLUICE_FWD_EVENT_ICMP_RATE_LIMITED)},
                               {"icmp_no_source", event(SLUICE_FWD_EVENT_ICMP_NO_SOURCE)},
                               {"icmp_suppressed", event(SLUICE_FWD_EVENT_ICMP_SUPPRESSED)},
                               {"cpumap_fallback", event(SLUICE_FWD_EVENT_CPUMAP_FALLBACK)}};
  return json::value(std::move(out));
}

void RouteOps::register_ops(OpRegistry& ops) {
  auto bind = [this](auto method) {
    return OpRegistry::Handler{[this, method](const json::object& object) { return (this->*method)(object); }, nullptr};
  };
  auto bind_replace = [this](auto method, bool replace) {
    return OpRegistry::Handler{[this, method, replace](const json::object& object) { return (this->*method)(object, replace); },
                               nullptr};
  };
  ops.add("route.add", bind_replace(&RouteOps::route_add, false));
  ops.add("route.replace", bind_replace(&RouteOps::route_add, true));
  ops.add("route.del", bind(&RouteOps::route_del));
  ops.add("route.list", bind(&RouteOps::route_list));
  ops.add("nexthop.list", bind(&RouteOps::nexthop_list));
  ops.add("nexthop.group.add", bind_replace(&RouteOps::group_add, false));
  ops.add("nexthop.group.replace", bind_replace(&RouteOps::group_add, true));
  ops.add("nexthop.group.del", bind(&RouteOps::group_del));
  ops.add("nexthop.group.list", bind(&RouteOps::group_list));
  ops.add("forward.set", bind(&RouteOps::forward_set));
  ops.add("cpumap.set", bind(&RouteOps::cpumap_set));
  ops.add("forward.show", bind(&RouteOps::forward_show));
  ops.add("route.sync", bind(&RouteOps::route_sync));
}

}  // namespace sluice::daemon
