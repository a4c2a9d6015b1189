#include "status_document.hpp"

#include <map>

namespace sluice::protocol {
namespace {

namespace json = boost::json;

// The status option whose tables make up the filter's connection tracking
// (established and unreplied flows, per family): their capacity is the fill's denominator.
constexpr std::string_view conntrack_sizing_option = "conntrack_entries";

class Gatherer {
 public:
  explicit Gatherer(const StatusCall& call) : call_(call) {}

  // The op's result as an object; nullptr (and an error noted) when it failed or is not an object.
  const json::object* object(std::string_view op, const json::object& args = {}) {
    auto [it, fresh] = results_.try_emplace(std::string(op));
    if (fresh) {
      auto answered = call_(op, args);
      if (auto* message = std::get_if<std::string>(&answered)) {
        errors_.emplace_back(std::string(op) + ": " + *message);
      } else if (auto& value = std::get<json::value>(answered); !value.is_object()) {
        errors_.emplace_back(std::string(op) + ": the result is not an object");
      } else {
        it->second = std::move(value.as_object());
      }
    }
    return it->second ? &*it->second : nullptr;
  }

  json::array errors() { return std::move(errors_); }

 private:
  const StatusCall& call_;
  std::map<std::string, std::optional<json::object>, std::less<>> results_;
  json::array errors_;
};

const json::value* member(const json::object* object, std::string_view key) {
  return object ? object->if_contains(key) : nullptr;
}

json::array array_or_empty(const json::object* object, std::string_view key) {
  const json::value* value = member(object, key);
  return value && value->is_array() ? value->as_array() : json::array{};
}

void copy_keys(json::object& to, const json::object* from, std::initializer_list<std::string_view> keys) {
  for (std::string_view key : keys)
    if (const json::value* value = member(from, key)) to[key] = *value;
}

std::uint64_t as_count(const json::value* value) {
  if (!value) return 0;
  if (value->is_uint64()) return value->as_uint64();
  if (value->is_int64() && value->as_int64() > 0) return static_cast<std::uint64_t>(value->as_int64());
  return 0;
}

}  // namespace

json::object compose_status(const StatusCall& call) {
  Gatherer gather(call);
  json::object out;

  const json::object* status = gather.object("status");
  json::object daemon;
  copy_keys(daemon, status, {"version", "pid", "uptime_seconds", "degraded", "restore_error", "rollback_error"});
  out["daemon"] = std::move(daemon);
  out["interfaces"] = array_or_empty(status, "interfaces");

  // What runs, not what is installed: lb and forward are off without a VIP / route.
  const json::object* config = gather.object("config.get");
  const json::value* stages = member(config, "stages");
  out["stages"] = stages && stages->is_object() ? *stages : json::value(json::object{});
  if (const json::value* sampling = member(config, "drop_sample_every")) out["drop_sample_every"] = *sampling;

  json::object filter;
  if (const json::value* summary = member(status, "filter"); summary && summary->is_object()) filter = summary->as_object();
  const json::object* rules = gather.object("rule.list");
  copy_keys(filter, rules, {"default_policy"});
  out["filter"] = std::move(filter);
  out["counters"] = array_or_empty(gather.object("stats"), "counters");

  std::uint64_t capacity = 0;
  for (const auto& table : array_or_empty(status, "tables"))
    if (table.is_object() && table.as_object().if_contains("sized_by") &&
        table.as_object().at("sized_by") == json::value(conntrack_sizing_option))
      capacity += as_count(table.as_object().if_contains("max_entries"));
  // conn.list's total is the last whole count (at most 5 s old); one flow listed keeps the reply small.
  const json::object* flows = gather.object("conn.list", {{"limit", 1}});
  out["conntrack"] = json::object{{"entries", as_count(member(flows, "total"))}, {"capacity", capacity}};

  json::array rule_rows;
  for (const auto& rule : array_or_empty(rules, "rules")) {
    if (!rule.is_object()) continue;
    json::object row;
    copy_keys(row, &rule.as_object(), {"id", "action", "rate_class", "description", "packets", "bytes", "owner"});
    rule_rows.push_back(std::move(row));
  }
  out["rules"] = std::move(rule_rows);

  // Backends under their VIP (vip.list counts them; backend.list lists them).
  std::map<std::string, json::array, std::less<>> backends_of;
  for (const auto& backend : array_or_empty(gather.object("backend.list"), "backends")) {
    if (!backend.is_object()) continue;
    const json::value* vip = backend.as_object().if_contains("vip");
    if (!vip || !vip->is_string()) continue;
    json::object row;
    copy_keys(row, &backend.as_object(),
              {"address", "weight", "state", "health", "share", "table_entries", "packets", "bytes", "new_conns"});
    backends_of[std::string(vip->as_string())].push_back(std::move(row));
  }
  json::array vips;
  for (const auto& vip : array_or_empty(gather.object("vip.list"), "vips")) {
    if (!vip.is_object()) continue;
    json::object row;
    copy_keys(row, &vip.as_object(), {"vip", "table_size", "check", "packets", "bytes", "new_conns"});
    const json::value* name = vip.as_object().if_contains("vip");
    auto found = name && name->is_string() ? backends_of.find(std::string_view(name->as_string())) : backends_of.end();
    row["backends"] = found != backends_of.end() ? std::move(found->second) : json::array{};
    vips.push_back(std::move(row));
  }
  out["vips"] = std::move(vips);
  if (const json::value* conns = member(gather.object("lb.show"), "conns")) out["lb_connections"] = *conns;

  json::object forward;
  copy_keys(forward, gather.object("forward.show"), {"stage_enabled", "routes", "next_hops"});
  out["forward"] = std::move(forward);
  // The busiest routes only: a table of a million would make a document of
  // ~100 MB each second. The totals say how many there are.
  const json::object* routes = gather.object("route.list", {{"limit", status_routes_shown}, {"order", "packets"}});
  out["routes"] = array_or_empty(routes, "routes");
  out["routes_total"] = as_count(member(routes, "total"));
  const json::value* truncated = member(routes, "truncated");
  out["routes_truncated"] = truncated && truncated->is_bool() && truncated->as_bool();
  json::array hops;
  for (const auto& hop : array_or_empty(gather.object("nexthop.list"), "next_hops")) {
    if (!hop.is_object()) continue;
    json::object row;
    copy_keys(row, &hop.as_object(), {"next_hop", "dev", "via", "mac", "resolved", "packets", "bytes"});
    hops.push_back(std::move(row));
  }
  out["next_hops"] = std::move(hops);
  out["errors"] = gather.errors();
  return out;
}

}  // namespace sluice::protocol
