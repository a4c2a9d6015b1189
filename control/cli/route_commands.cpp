#include "route_commands.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <limits>
#include <memory>
#include <ostream>
#include <vector>

#include "command_support.hpp"
#include "decimal.hpp"
#include "forward_config.hpp"
#include "lb_model.hpp"
#include "prefix.hpp"
#include "value_rules.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;

constexpr std::string_view gap = "  ";

void print_table(std::ostream& out, const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& header : headers) widths.push_back(header.size());
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i) text += gap;
      text += cells[i];
      if (i + 1 < cells.size()) text += std::string(widths[i] - cells[i].size(), ' ');
    }
    out << text << '\n';
  };
  line(headers);
  for (const auto& row : rows) line(row);
}

std::string target_text(const json::object& route) {
  const std::string kind = text(route, "kind");
  if (kind == "via" && !route.contains("via")) return "next hop " + text(route, "next_hop");  // route sync's
  if (kind == "via") {
    const auto* mac = route.if_contains("mac");
    return "via " + text(route, "via") + " dev " + text(route, "dev") + " mac " +
           (mac && mac->is_string() ? text(route, "mac") : std::string("resolved"));
  }
  if (kind == "group") return "group " + text(route, "group");
  return "to-stack";
}

void render_route_list(std::ostream& out, const json::value& result) {
  const auto& routes = array_of(object_of(result, "route.list result"), "routes");
  if (routes.empty()) {
    out << "no routes\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : routes) {
    const auto& route = object_of(item, "route");
    std::string origin = route.contains("origin") ? text(route, "origin") : "static";
    if (route.contains("effective") && text(route, "effective") == "no") origin += " (hidden)";
    rows.push_back({text(route, "prefix"), target_text(route), origin, text(route, "packets"), text(route, "bytes")});
  }
  print_table(out, {"PREFIX", "TARGET", "ORIGIN", "PACKETS", "BYTES"}, rows);
  // A page of a bigger table says so, and how to see the rest.
  const auto& whole = object_of(result, "route.list result");
  const auto* cut = whole.if_contains("truncated");
  const auto* from = whole.if_contains("offset");
  if (cut && cut->is_bool() && cut->as_bool() && from && from->is_number()) {
    const auto first = from->to_number<std::uint64_t>();
    out << "routes " << first + 1 << ".." << first + routes.size() << " of " << text(whole, "total")
        << " (--limit, --offset for others)\n";
  }
}

void render_nexthop_list(std::ostream& out, const json::value& result) {
  const auto& hops = array_of(object_of(result, "nexthop.list result"), "next_hops");
  if (hops.empty()) {
    out << "no next hops\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : hops) {
    const auto& hop = object_of(item, "next hop");
    const std::string resolved = !hop.contains("resolved") ? "-" : text(hop, "resolve_mac") != "yes" ? "given"
                                 : text(hop, "resolved") == "yes"                          ? "yes"
                                                                                           : "no (to stack)";
    rows.push_back({text(hop, "next_hop"), text(hop, "id"), text(hop, "dev"), text(hop, "mac"), resolved,
                    text(hop, "src_mac"), text(hop, "users"), text(hop, "packets"), text(hop, "bytes")});
  }
  print_table(out, {"NEXT HOP", "ID", "DEV", "MAC", "RESOLVED", "SRC MAC", "USERS", "PACKETS", "BYTES"}, rows);
}

void render_group_list(std::ostream& out, const json::value& result) {
  const auto& groups = array_of(object_of(result, "nexthop.group.list result"), "groups");
  if (groups.empty()) {
    out << "no groups\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : groups) {
    const auto& group = object_of(item, "group");
    for (const auto& member_value : array_of(group, "next_hops")) {
      const auto& member = object_of(member_value, "group member");
      rows.push_back({text(group, "name"), text(member, "next_hop"), text(member, "mac"), text(member, "weight"),
                      text(group, "users")});
    }
  }
  print_table(out, {"GROUP", "NEXT HOP", "MAC", "WEIGHT", "ROUTES"}, rows);
}

void render_settings(std::ostream& out, const json::object& s) {
  std::string cpus;
  if (const auto* list = s.if_contains("cpus"); list && list->is_array()) {
    std::vector<std::uint32_t> numbers;
    for (const auto& cpu : list->as_array())
      if (cpu.is_uint64() || cpu.is_int64()) numbers.push_back(static_cast<std::uint32_t>(cpu.to_number<std::uint64_t>()));
    cpus = numbers.empty() ? "off (local traffic passed)" : config::cpu_list_text(numbers);
  }
  const std::vector<std::pair<std::string, std::string>> pairs{
      {"no route", text(s, "no_route")},
      {"icmp rate", text(s, "icmp_rate") + "/s per CPU, burst " + text(s, "icmp_burst")},
      {"icmp source v4", text(s, "icmp_source_v4")},
      {"icmp source v6", text(s, "icmp_source_v6")},
      {"cpumap cpus", cpus},
      {"cpumap queue", text(s, "cpumap_queue")}};
  std::size_t width = 0;
  for (const auto& [key, value] : pairs) width = std::max(width, key.size());
  for (const auto& [key, value] : pairs) out << key << std::string(width - key.size(), ' ') << gap << value << '\n';
}

void render_forward_show(std::ostream& out, const json::value& result) {
  const auto& show = object_of(result, "forward.show result");
  const auto* settings = show.if_contains("settings");
  if (!settings || !settings->is_object()) throw LbBadReply("field settings missing");
  render_settings(out, settings->as_object());
  out << "routes          " << text(show, "routes") << ", groups " << text(show, "groups") << ", next hops "
      << text(show, "next_hops") << '\n';
  out << "stage           " << (text(show, "stage_enabled") == "yes" ? "on" : "off (no route)") << '\n';
  if (const auto* sync = show.if_contains("sync"); sync && sync->is_object())
    out << "route sync      table " << text(sync->as_object(), "table") << '\n';
  else
    out << "route sync      off\n";
  if (const auto* stats = show.if_contains("sync_stats"); stats && stats->is_object()) {
    const auto& s = stats->as_object();
    out << "synced          next hop " << text(s, "via_next_hop") << ", group " << text(s, "via_group") << ", to stack "
        << text(s, "to_stack") << ", unexpressible " << text(s, "unexpressible") << ", skipped " << text(s, "skipped")
        << ", refused " << text(s, "refused_full") << ", changes " << text(s, "changes") << ", errors "
        << text(s, "errors") << '\n';
  }
  if (const auto* events = show.if_contains("events"); events && events->is_object()) {
    const auto& e = events->as_object();
    out << "events          icmp rate limited " << text(e, "icmp_rate_limited") << ", icmp no source "
        << text(e, "icmp_no_source") << ", icmp suppressed " << text(e, "icmp_suppressed") << ", cpumap fallback "
        << text(e, "cpumap_fallback") << '\n';
  }
}

// ---- local checks (sluiced checks again; these catch typos before anything is sent) ----

CLI::Validator prefix_validator() {
  return check_with("PREFIX", [](const std::string& text) -> std::string {
    if (auto prefix = maps::parse_prefix(text); !prefix) return prefix.error().message;
    return {};
  });
}

CLI::Validator name_validator() {
  return check_with("NAME", [](const std::string& text) -> std::string {
    if (!config::is_forward_name(text))
      return "bad group name '" + text.substr(0, config::kMaxForwardNameBytes) + "': 1.." +
             std::to_string(config::kMaxForwardNameBytes) + " of A-Z a-z 0-9 _ - .";
    return {};
  });
}

std::optional<std::uint64_t> decimal(const std::string& flag, const std::string& text, std::uint64_t min, std::uint64_t max) {
  const auto parsed = maps::parse_decimal(text, min, max);
  if (!parsed.value) throw CLI::ValidationError(flag, parsed.problem);
  return parsed.value;
}

struct RouteArgs {
  std::string prefix;
  std::optional<std::string> via, dev, mac, src_mac, group;
  bool to_stack = false;
  std::string name;
  // nexthop group: every occurrence, in order (parse_order says which --weight follows which --via)
  std::vector<std::string> vias, devs, macs, src_macs, weights;
  std::optional<std::string> cpus;
  std::optional<std::string> queue;
  std::optional<std::string> no_route, icmp_rate, icmp_burst;
  std::vector<std::string> icmp_sources;
  std::string sync_state;
  std::optional<std::string> sync_table;
  std::optional<std::uint64_t> list_limit, list_offset;
  bool by_packets = false;
};

void add_route(CLI::App& app, const std::shared_ptr<RouteArgs>& a, const std::function<void(LbAction)>& set_action) {
  auto* route = app.add_subcommand("route", "The forward stage's routes: destination prefix to a next hop, a group or the local stack");
  route->require_subcommand(1);
  for (const bool replace : {false, true}) {
    auto* add = route->add_subcommand(replace ? "replace" : "add",
                                      replace ? "Add a route or change where it goes" : "Add a route (the forward stage runs while one exists)");
    add->add_option("PREFIX", a->prefix, "Destination, e.g. 198.18.2.0/24, 2001:db8:2::/48, 0.0.0.0/0")
        ->required()
        ->check(prefix_validator());
    add->add_option("--via", a->via, "The next hop's address")->check(address_validator());
    add->add_option("--dev", a->dev, "The egress interface (sluice attached to it)");
    add->add_option("--mac", a->mac, "The next hop's MAC (default: the kernel's neighbour table resolves it)")
        ->check(mac_validator());
    add->add_option("--src-mac", a->src_mac, "Source MAC (default: the egress interface's own)")->check(mac_validator());
    add->add_option("--group", a->group, "An ECMP group (nexthop group add)")->check(name_validator());
    add->add_flag("--to-stack", a->to_stack, "Hand the prefix's packets to the local stack (cpumap when set)");
    add->callback([a, set_action, replace] {
      set_action([a, replace](LbContext& ctx) {
        json::object args{{"prefix", a->prefix}};
        const bool via = a->via || a->dev || a->mac || a->src_mac;
        if (int(via) + int(a->group.has_value()) + int(a->to_stack) != 1)
          return ctx.usage("give exactly one of --via ADDR --dev IFACE --mac MAC, --group NAME or --to-stack");
        if (via) {
          if (!a->via || !a->dev) return ctx.usage("--via and --dev go together (--mac optional: resolved without it)");
          args["via"] = *a->via;
          args["dev"] = *a->dev;
          if (a->mac) args["mac"] = *a->mac;
          if (a->src_mac) args["src_mac"] = *a->src_mac;
        } else if (a->group) {
          args["group"] = *a->group;
        } else {
          args["to_stack"] = true;
        }
        const std::string op = replace ? "route.replace" : "route.add";
        return ctx.call(op, args, [&](const json::value& r) {
          const auto& o = object_of(r, op + " result");
          ctx.out << (replace ? "route " : "added route ") << text(o, "prefix") << " " << target_text(o) << '\n';
        });
      });
    });
  }
  auto* sync = route->add_subcommand("sync", "Mirror a kernel routing table (a routing daemon's routes) into the forward stage");
  sync->add_option("STATE", a->sync_state, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
  sync->add_option("--table", a->sync_table, "Kernel table id (default 254, main; not 0 or 255)");
  sync->callback([a, set_action] {
    json::object args{{"enabled", a->sync_state == "on"}};
    if (a->sync_table) {
      if (a->sync_state != "on") throw CLI::ValidationError("--table", "goes with on (off stops whatever table is synced)");
      const auto table = *decimal("--table", *a->sync_table, 0, std::numeric_limits<std::uint32_t>::max());
      if (auto problem = config::sync_table_problem(static_cast<std::uint32_t>(table)))
        throw CLI::ValidationError("--table", *problem);
      args["table"] = table;
    }
    set_action([args = std::move(args)](LbContext& ctx) {
      return ctx.call("route.sync", args, [&](const json::value& r) {
        const auto& o = object_of(r, "route.sync result");
        if (text(o, "enabled") == "yes") ctx.out << "route sync on: kernel table " << text(o, "table") << '\n';
        else ctx.out << "route sync off\n";
      });
    });
  });
  auto* del = route->add_subcommand("del", "Remove a route");
  del->add_option("PREFIX", a->prefix, "As route list shows it")->required()->check(prefix_validator());
  del->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      return ctx.call("route.del", {{"prefix", a->prefix}}, [&](const json::value& r) {
        ctx.out << "deleted route " << text(object_of(r, "route.del result"), "prefix") << '\n';
      });
    });
  });
  auto* list = route->add_subcommand("list", "Show the routes with their counters (a page: --limit, --offset)");
  add_decimal(list, "--limit", a->list_limit, 1, protocol::max_route_list_limit,
              "Routes in the page (default " + std::to_string(protocol::default_route_list_limit) + ")");
  add_decimal(list, "--offset", a->list_offset, 0, std::numeric_limits<std::uint32_t>::max(),
              "Routes skipped before the page");
  list->add_flag("--by-packets", a->by_packets, "Most packets first (default: table order)");
  list->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      json::object args;
      if (a->list_limit) args["limit"] = *a->list_limit;
      if (a->list_offset) args["offset"] = *a->list_offset;
      if (a->by_packets) args["order"] = "packets";
      return ctx.call("route.list", args, [&](const json::value& r) { render_route_list(ctx.out, r); });
    });
  });
}

void add_nexthop(CLI::App& app, const std::shared_ptr<RouteArgs>& a, const std::function<void(LbAction)>& set_action) {
  auto* nexthop = app.add_subcommand("nexthop", "Next hops (the neighbours routes use) and ECMP groups of them");
  nexthop->require_subcommand(1);
  auto* list = nexthop->add_subcommand("list", "Show the next hops with their counters");
  list->callback([set_action] {
    set_action([](LbContext& ctx) {
      return ctx.call("nexthop.list", {}, [&](const json::value& r) { render_nexthop_list(ctx.out, r); });
    });
  });
  auto* group = nexthop->add_subcommand("group", "ECMP groups: up to 16 weighted next hops, one per flow");
  group->require_subcommand(1);
  for (const bool replace : {false, true}) {
    auto* add = group->add_subcommand(replace ? "replace" : "add",
                                      replace ? "Give a group new next hops" : "Add a group: --via ADDR --dev IFACE [--mac MAC] [--weight N] per next hop");
    add->add_option("NAME", a->name, "Group name (1..64 of A-Z a-z 0-9 _ - .)")->required()->check(name_validator());
    auto* via = add->add_option("--via", a->vias, "A next hop's address (starts the next hop the flags after it describe)")
                    ->check(address_validator())
                    ->required();
    add->add_option("--dev", a->devs, "Its egress interface");
    add->add_option("--mac", a->macs, "Its MAC (default: resolved by the kernel's neighbour table)")->check(mac_validator());
    add->add_option("--src-mac", a->src_macs, "Its source MAC (default: the interface's own)")->check(mac_validator());
    add->add_option("--weight", a->weights, "Its weight, 1.." + std::to_string(SLUICE_FWD_WEIGHT_MAX) + " (default 1)");
    add->callback([a, set_action, replace, add, via] {
      // Each flag belongs to the --via before it: walk them in the order given.
      json::array hops;
      std::map<const CLI::Option*, std::size_t> used;
      for (const CLI::Option* option : add->parse_order()) {
        const std::string flag = option->get_name();
        if (option == via) {
          hops.push_back(json::object{{"via", a->vias.at(used[option]++)}});
          continue;
        }
        const std::vector<std::string>* values = flag == "--dev"       ? &a->devs
                                                 : flag == "--mac"     ? &a->macs
                                                 : flag == "--src-mac" ? &a->src_macs
                                                 : flag == "--weight"  ? &a->weights
                                                                       : nullptr;
        if (!values) continue;
        if (hops.empty()) throw CLI::ValidationError(flag, "comes before any --via (each next hop starts with --via)");
        const std::string& value = values->at(used[option]++);
        json::object& hop = hops.back().as_object();
        const std::string key = flag == "--src-mac" ? "src_mac" : flag.substr(2);
        if (hop.contains(key)) throw CLI::ValidationError(flag, "given twice for the next hop via " + text(hop, "via"));
        if (key == "weight") hop[key] = *decimal(flag, value, 1, SLUICE_FWD_WEIGHT_MAX);
        else hop[key] = value;
      }
      for (const auto& hop : hops)
        for (const char* key : {"dev"})
          if (!hop.as_object().contains(key))
            throw CLI::ValidationError(std::string("--") + key, "missing for the next hop via " + text(hop.as_object(), "via"));
      set_action([a, replace, hops = std::move(hops)](LbContext& ctx) {
        const std::string op = replace ? "nexthop.group.replace" : "nexthop.group.add";
        return ctx.call(op, {{"name", a->name}, {"next_hops", hops}}, [&](const json::value& r) {
          const auto& o = object_of(r, op + " result");
          ctx.out << (replace ? "group " : "added group ") << text(o, "name") << ": " << array_of(o, "next_hops").size()
                  << " next hop(s)\n";
        });
      });
    });
  }
  auto* del = group->add_subcommand("del", "Remove a group (no route may use it)");
  del->add_option("NAME", a->name, "Group name")->required()->check(name_validator());
  del->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      return ctx.call("nexthop.group.del", {{"name", a->name}}, [&](const json::value& r) {
        ctx.out << "deleted group " << text(object_of(r, "nexthop.group.del result"), "name") << '\n';
      });
    });
  });
  auto* glist = group->add_subcommand("list", "Show the groups and their next hops");
  glist->callback([set_action] {
    set_action([](LbContext& ctx) {
      return ctx.call("nexthop.group.list", {}, [&](const json::value& r) { render_group_list(ctx.out, r); });
    });
  });
}

void add_cpumap(CLI::App& app, const std::shared_ptr<RouteArgs>& a, const std::function<void(LbAction)>& set_action) {
  auto* cpumap = app.add_subcommand("cpumap", "Where local traffic the forward stage hands to the stack is processed");
  cpumap->require_subcommand(1);
  auto* set = cpumap->add_subcommand("set", "Spread local traffic over CPUs by flow hash (cpumap)");
  set->add_option("--cpus", a->cpus, "CPU list, e.g. 0-1,3; none: off (plain XDP_PASS)");
  set->add_option("--queue", a->queue, "Queue size per CPU, 1.." + std::to_string(SLUICE_FWD_CPUMAP_QSIZE_MAX));
  set->callback([a, set_action] {
    json::object args;
    if (a->cpus) {
      auto cpus = *a->cpus == "none" ? std::optional<std::vector<std::uint32_t>>{std::vector<std::uint32_t>{}}
                                     : config::parse_cpu_list(*a->cpus);
      if (!cpus || (a->cpus->empty()))
        throw CLI::ValidationError("--cpus", "bad CPU list '" + a->cpus->substr(0, 64) + "': expected e.g. 0-1,3 or none");
      json::array list;
      for (std::uint32_t cpu : *cpus) list.push_back(cpu);
      args["cpus"] = std::move(list);
    }
    if (a->queue) args["queue"] = *decimal("--queue", *a->queue, 1, SLUICE_FWD_CPUMAP_QSIZE_MAX);
    set_action([args = std::move(args)](LbContext& ctx) {
      if (args.empty()) return ctx.usage("give --cpus and/or --queue");
      return ctx.call("cpumap.set", args, [&](const json::value& r) { render_settings(ctx.out, object_of(r, "cpumap.set result")); });
    });
  });
}

void add_forward(CLI::App& app, const std::shared_ptr<RouteArgs>& a, const std::function<void(LbAction)>& set_action) {
  auto* forward = app.add_subcommand("forward", "The forward stage's settings");
  forward->require_subcommand(1);
  auto* set = forward->add_subcommand("set", "Change forward settings");
  set->add_option("--no-route", a->no_route, "A packet no route covers: pass (to the kernel) or drop")
      ->check(CLI::IsMember({"pass", "drop"}));
  set->add_option("--icmp-rate", a->icmp_rate, "Time-exceeded answers per second per CPU (0: none)");
  set->add_option("--icmp-burst", a->icmp_burst, "Their burst");
  set->add_option("--icmp-source", a->icmp_sources, "Source address of those answers (IPv4 and/or IPv6; repeatable)")
      ->check(address_validator());
  set->callback([a, set_action] {
    json::object args;
    if (a->no_route) args["no_route"] = *a->no_route;
    if (a->icmp_rate) args["icmp_rate"] = *decimal("--icmp-rate", *a->icmp_rate, 0, config::kForwardIcmpMax);
    if (a->icmp_burst) args["icmp_burst"] = *decimal("--icmp-burst", *a->icmp_burst, 0, config::kForwardIcmpMax);
    for (const auto& source : a->icmp_sources) {
      auto address = lb::parse_address(source);
      const std::string key = address && address->family == 6 ? "icmp_source_v6" : "icmp_source_v4";
      if (args.contains(key)) throw CLI::ValidationError("--icmp-source", "two IPv" + std::string(key == "icmp_source_v6" ? "6" : "4") + " sources");
      args[key] = source;
    }
    set_action([args = std::move(args)](LbContext& ctx) {
      if (args.empty()) return ctx.usage("name at least one setting (--no-route, --icmp-rate, --icmp-burst, --icmp-source)");
      return ctx.call("forward.set", args, [&](const json::value& r) { render_settings(ctx.out, object_of(r, "forward.set result")); });
    });
  });
  auto* show = forward->add_subcommand("show", "Settings, counts and events of the forward stage");
  show->callback([set_action] {
    set_action([](LbContext& ctx) {
      return ctx.call("forward.show", {}, [&](const json::value& r) { render_forward_show(ctx.out, r); });
    });
  });
}

}  // namespace

void add_route_commands(CLI::App& app, const std::function<void(LbAction)>& set_action) {
  auto args = std::make_shared<RouteArgs>();
  add_route(app, args, set_action);
  add_nexthop(app, args, set_action);
  add_cpumap(app, args, set_action);
  add_forward(app, args, set_action);
}

}  // namespace sluice::cli
