#include "route_metrics.hpp"

#include <map>

#include "forward_config.hpp"
#include "names.hpp"
#include "spdlog/spdlog.h"

namespace sluice::daemon {

using metrics::MetricType;
using metrics::sample;
using metrics::Sample;

void add_route_metrics(metrics::Exposition& out, const dataplane::Dataplane& plane, const RouteOps& routes) {
  const route::RouteTable& table = routes.table();
  std::vector<Sample> route_packets, route_bytes;
  if (auto listed = table.list_routes(); listed) {
    for (const auto& info : *listed) {
      if (!info.counter) continue;  // no counter of its own: its next hop counts it
      const std::vector<metrics::Label> labels{{"prefix", maps::to_string(info.prefix)}};
      route_packets.push_back(sample(labels, info.counter->packets));
      route_bytes.push_back(sample(labels, info.counter->bytes));
    }
  } else {
    spdlog::warn("metrics: route list: {}", listed.error().message);
  }
  out.add("sluice_forward_route_packets_total", "Packets that matched a route (routes with a counter of their own).",
          MetricType::Counter, route_packets);
  out.add("sluice_forward_route_bytes_total", "Bytes of the packets that matched a route.", MetricType::Counter,
          route_bytes);
  std::vector<Sample> hop_packets, hop_bytes;
  if (auto listed = table.list_next_hops(); listed) {
    for (const auto& info : *listed) {
      const std::vector<metrics::Label> labels{{"next_hop", info.name}, {"dev", info.spec.interface}};
      hop_packets.push_back(sample(labels, info.counter.packets));
      hop_bytes.push_back(sample(labels, info.counter.bytes));
    }
  } else {
    spdlog::warn("metrics: next hop list: {}", listed.error().message);
  }
  out.add("sluice_forward_next_hop_packets_total", "Packets the forward stage sent to a next hop.", MetricType::Counter,
          hop_packets);
  out.add("sluice_forward_next_hop_bytes_total", "Bytes the forward stage sent to a next hop.", MetricType::Counter,
          hop_bytes);

  // The stage's outcomes are its reasons in the verdict counters (summed over verdicts).
  static constexpr std::pair<std::uint32_t, std::string_view> outcomes[] = {
      {SLUICE_REASON_FWD_ROUTED, "routed"},
      {SLUICE_REASON_FWD_NO_ROUTE, "no_route"},
      {SLUICE_REASON_FWD_TTL_EXCEEDED, "ttl_exceeded"},
      {SLUICE_REASON_FWD_REDIRECT_FAILED, "redirect_failed"},
      {SLUICE_REASON_FWD_TO_STACK, "to_stack"},
  };
  std::map<std::uint32_t, std::uint64_t> by_reason;
  for (const auto& [reason, name] : outcomes) by_reason[reason] = 0;
  if (auto counts = plane.verdict_counts(); counts) {
    for (const auto& count : *counts)
      if (auto it = by_reason.find(count.reason); it != by_reason.end()) it->second += count.total.packets;
  } else {
    spdlog::warn("metrics: verdict counts: {}", counts.error().message);
  }
  std::vector<Sample> outcome_samples;
  for (const auto& [reason, name] : outcomes) outcome_samples.push_back(sample({{"outcome", std::string(name)}}, by_reason[reason]));
  out.add("sluice_forward_packets_total",
          "Packets the forward stage decided, by outcome (redirect_failed: the next hop's port refused the redirect).",
          MetricType::Counter, outcome_samples);
  std::vector<Sample> events;
  if (auto counted = table.event_counters(); counted && counted->size() >= SLUICE_FWD_EVENT_SLOTS) {
    events = {sample({{"event", "icmp_rate_limited"}}, (*counted)[SLUICE_FWD_EVENT_ICMP_RATE_LIMITED].packets),
              sample({{"event", "icmp_no_source"}}, (*counted)[SLUICE_FWD_EVENT_ICMP_NO_SOURCE].packets),
              sample({{"event", "icmp_suppressed"}}, (*counted)[SLUICE_FWD_EVENT_ICMP_SUPPRESSED].packets),
              sample({{"event", "cpumap_fallback"}}, (*counted)[SLUICE_FWD_EVENT_CPUMAP_FALLBACK].packets)};
  }
  out.add("sluice_forward_events_total",
          "Events of the forward stage: time-exceeded answers refused (rate, no source, about an error), local "
          "packets passed because their cpumap slot was empty.",
          MetricType::Counter, events);
  const config::ForwardConfig& live = routes.live();
  std::size_t v4 = 0;
  for (const auto& route : live.routes) v4 += route.prefix.find(':') == std::string::npos;
  out.add("sluice_forward_routes", "Routes configured.", MetricType::Gauge,
          {sample({{"family", "ipv4"}}, v4), sample({{"family", "ipv6"}}, live.routes.size() - v4)});
  out.add("sluice_forward_stage_enabled", "1 while the forward stage runs (a route exists or route sync is on).",
          MetricType::Gauge, {sample({}, static_cast<unsigned>(!live.routes.empty() || live.sync.has_value()))});
  std::vector<Sample> unresolved;
  if (auto listed = table.list_next_hops(); listed) {
    std::size_t count = 0;
    for (const auto& info : *listed) count += !info.resolved;
    unresolved.push_back(sample({}, count));
  }
  out.add("sluice_forward_next_hops_unresolved", "Next hops without a MAC whose neighbour the kernel does not hold usable "
          "(their routes send to the stack).", MetricType::Gauge, unresolved);
  const auto neighbours = routes.neighbour_stats();
  auto neighbour_counter = [&](std::uint64_t route::NeighbourTableStats::*field) {
    std::vector<Sample> out_samples;
    if (neighbours) out_samples.push_back(sample({}, (*neighbours).*field));
    return out_samples;
  };
  out.add("sluice_forward_neighbour_changes_total", "Kernel neighbour notifications the neighbour table handled.",
          MetricType::Counter, neighbour_counter(&route::NeighbourTableStats::changes));
  out.add("sluice_forward_neighbour_resyncs_total", "Neighbour table dumps after a netlink overrun.", MetricType::Counter,
          neighbour_counter(&route::NeighbourTableStats::resyncs));
  out.add("sluice_forward_neighbour_probes_total", "Datagrams sent to make the kernel resolve a next hop's neighbour.",
          MetricType::Counter, neighbour_counter(&route::NeighbourTableStats::probes));
  out.add("sluice_forward_neighbour_probe_errors_total", "Those datagrams that could not be sent.", MetricType::Counter,
          neighbour_counter(&route::NeighbourTableStats::probe_errors));
  const auto mirror = routes.mirror_stats();
  out.add("sluice_forward_sync_enabled", "1 while route sync mirrors a kernel table.", MetricType::Gauge,
          {sample({}, static_cast<unsigned>(mirror.has_value()))});
  std::vector<Sample> synced;
  if (mirror) {
    const std::string table_id = std::to_string(live.sync ? live.sync->table : 0);
    for (const auto& [as, count] : std::initializer_list<std::pair<const char*, std::size_t>>{
             {"next_hop", mirror->via_next_hop}, {"group", mirror->via_group}, {"to_stack", mirror->to_stack},
             {"unexpressible", mirror->unexpressible}, {"skipped", mirror->skipped}, {"refused_full", mirror->refused_full}})
      synced.push_back(sample({{"table", table_id}, {"as", as}}, count));
  }
  out.add("sluice_forward_sync_routes", "Kernel routes of the synced table, by what they became (next_hop, group, "
          "to_stack; unexpressible: to the stack; skipped; refused_full: not mirrored).", MetricType::Gauge, synced);
  auto mirror_counter = [&](std::uint64_t route::KernelMirrorStats::*field) {
    std::vector<Sample> out_samples;
    if (mirror) out_samples.push_back(sample({}, (*mirror).*field));
    return out_samples;
  };
  out.add("sluice_forward_sync_changes_total", "Kernel route notifications route sync handled.", MetricType::Counter,
          mirror_counter(&route::KernelMirrorStats::changes));
  out.add("sluice_forward_sync_resyncs_total", "Dumps of the synced table after a netlink overrun or a link change.",
          MetricType::Counter, mirror_counter(&route::KernelMirrorStats::resyncs));
  out.add("sluice_forward_sync_fallbacks_total",
          "Kernel routes sent to the stack because their next hop or group could not be installed.", MetricType::Counter,
          mirror_counter(&route::KernelMirrorStats::fallbacks));
  out.add("sluice_forward_sync_errors_total", "Kernel routes the route table refused for a reason other than being full.",
          MetricType::Counter, mirror_counter(&route::KernelMirrorStats::errors));
  std::vector<Sample> cpus;
  for (std::uint32_t cpu : live.settings.cpus) cpus.push_back(sample({{"cpu", std::to_string(cpu)}}, 1u));
  out.add("sluice_forward_cpumap_cpu", "1 for each CPU of the cpumap set local traffic is spread over.", MetricType::Gauge,
          cpus);
  out.add("sluice_forward_cpumap_queue_size", "Queue size of each cpumap CPU.", MetricType::Gauge,
          {sample({}, live.settings.cpumap_queue)});
}

std::string render_route_metrics(const dataplane::Dataplane& plane, const RouteOps& routes) {
  metrics::Exposition out;
  add_route_metrics(out, plane, routes);
  return out.text();
}

}  // namespace sluice::daemon
