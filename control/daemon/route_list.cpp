// route.list (RouteOps, route_ops.hpp) and the route replies it shares
// with the other forward ops (route_list.hpp).
#include "route_list.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "lb_model.hpp"
#include "protocol.hpp"
#include "route_ops.hpp"
#include "value_rules.hpp"

namespace sluice::daemon {

namespace json = boost::json;
namespace args = protocol::args;
using config::ForwardHop;
using config::ForwardRoute;
using protocol::ErrorCode;
using protocol::ProtocolError;

json::object hop_json(const ForwardHop& hop) {
  json::object out{{"next_hop", config::hop_name(hop)},
                   {"via", lb::to_string(hop.via)},
                   {"dev", hop.dev},
                   {"mac", hop.mac ? json::value(lb::mac_to_string(*hop.mac)) : json::value(nullptr)}};  // null: resolved
  if (hop.src_mac) out["src_mac"] = lb::mac_to_string(*hop.src_mac);
  return out;
}

json::object route_json(const ForwardRoute& route) {
  json::object out{{"prefix", route.prefix}};
  switch (route.kind) {
    case ForwardRoute::Kind::Via:
      out["kind"] = "via";
      for (auto& [key, value] : hop_json(route.hop)) out[key] = value;
      break;
    case ForwardRoute::Kind::Group:
      out["kind"] = "group";
      out["group"] = route.group;
      break;
    case ForwardRoute::Kind::ToStack: out["kind"] = "to_stack"; break;
  }
  return out;
}

std::string_view origin_name(route::Origin origin) { return origin == route::Origin::Kernel ? "kernel" : "static"; }

OpResult RouteOps::route_list(const json::object& object) const {
  constexpr std::string_view op = "route.list";
  if (auto keys = args::only_keys(op, object, {"limit", "offset", "order"}); !keys) return keys.error();
  auto limit = args::optional_uint(op, object, "limit", 1, protocol::max_route_list_limit);
  if (!limit) return limit.error();
  auto offset = args::optional_uint(op, object, "offset", 0, std::numeric_limits<std::uint32_t>::max());
  if (!offset) return offset.error();
  constexpr std::size_t order_bytes = 16;
  auto order = args::optional_string(op, object, "order", order_bytes);
  if (!order) return order.error();
  if (*order && **order != "table" && **order != "packets")
    return args::bad(op, "order", "'" + **order + "' is not table or packets");
  const bool by_packets = *order && **order == "packets";
  const std::uint64_t most = limit->value_or(protocol::default_route_list_limit), from = offset->value_or(0);

  auto listed = table_.list_routes();
  if (!listed) return ProtocolError{ErrorCode::Failed, "route.list: " + listed.error().message};
  std::map<std::string, const route::RouteInfo*> statics;
  for (const auto& info : *listed)
    if (info.origin == route::Origin::Static) statics.emplace(maps::to_string(info.prefix), &info);
  // Every route as a row (cheap: pointers); only the page becomes JSON.
  struct Row {
    const ForwardRoute* route;      // a static route, or
    const route::RouteInfo* info;   // its table entry (nullptr: not effective), or the kernel's route
  };
  std::vector<Row> rows;
  rows.reserve(live_.routes.size() + listed->size());
  for (const auto& route : live_.routes) {
    auto it = statics.find(route.prefix);
    rows.push_back({&route, it != statics.end() ? it->second : nullptr});
  }
  // While sync is on: what the mirror holds (a static route for the same prefix hides it: effective false).
  for (const auto& info : *listed)
    if (info.origin == route::Origin::Kernel) rows.push_back({nullptr, &info});
  const std::size_t total = rows.size();
  const std::size_t begin = std::min<std::uint64_t>(from, total), end = std::min<std::uint64_t>(from + most, total);
  if (by_packets) {
    auto packets = [](const Row& row) { return row.info && row.info->counter ? row.info->counter->packets : 0; };
    std::vector<std::size_t> order_of(total);
    for (std::size_t i = 0; i < total; ++i) order_of[i] = i;
    // Only the first `end` need their places: partial, ties by table order.
    std::partial_sort(order_of.begin(), order_of.begin() + static_cast<std::ptrdiff_t>(end), order_of.end(),
                      [&](std::size_t a, std::size_t b) {
                        const auto pa = packets(rows[a]), pb = packets(rows[b]);
                        return pa != pb ? pa > pb : a < b;
                      });
    std::vector<Row> sorted;
    sorted.reserve(end - begin);
    for (std::size_t i = begin; i < end; ++i) sorted.push_back(rows[order_of[i]]);
    rows = std::move(sorted);
  } else {
    rows = std::vector<Row>(rows.begin() + static_cast<std::ptrdiff_t>(begin), rows.begin() + static_cast<std::ptrdiff_t>(end));
  }
  auto add_counter = [](json::object& entry, const route::RouteInfo* info) {
    if (info && info->counter) {
      entry["packets"] = info->counter->packets;
      entry["bytes"] = info->counter->bytes;
    } else {
      entry["packets"] = nullptr;  // no counter of its own (its next hop still counts), or not effective
      entry["bytes"] = nullptr;
    }
  };
  json::array out;
  for (const Row& row : rows) {
    json::object entry;
    if (row.route) {
      entry = route_json(*row.route);
      entry["origin"] = "static";
      entry["effective"] = row.info ? row.info->effective : false;
    } else {
      const route::RouteInfo& info = *row.info;
      entry = json::object{{"prefix", maps::to_string(info.prefix)}};
      switch (info.target.kind) {
        case route::RouteTarget::Kind::NextHop:
          entry["kind"] = "via";
          entry["next_hop"] = info.target.name;
          break;
        case route::RouteTarget::Kind::Group:
          entry["kind"] = "group";
          entry["group"] = info.target.name;
          break;
        case route::RouteTarget::Kind::ToStack: entry["kind"] = "to_stack"; break;
      }
      entry["origin"] = origin_name(info.origin);
      entry["effective"] = info.effective;
    }
    add_counter(entry, row.info);
    out.push_back(std::move(entry));
  }
  return json::value(json::object{{"routes", std::move(out)},
                                  {"total", total},
                                  {"offset", from},
                                  {"limit", most},
                                  {"truncated", begin > 0 || end < total}});
}

}  // namespace sluice::daemon
