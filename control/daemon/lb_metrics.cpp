#include "lb_metrics.hpp"

#include "spdlog/spdlog.h"

namespace sluice::daemon {

using metrics::MetricType;
using metrics::sample;
using metrics::Sample;

void add_lb_metrics(metrics::Exposition& out, const LbOps& lb) {
  const lb::LbTable& table = lb.table();
  std::vector<Sample> vip_packets, vip_bytes, vip_conns, be_packets, be_bytes, be_conns, be_health, be_share;
  if (auto status = table.status(); status) {
    for (const auto& vip : *status) {
      const std::string name = lb::to_string(vip.vip.key);
      vip_packets.push_back(sample({{"vip", name}}, vip.total.packets));
      vip_bytes.push_back(sample({{"vip", name}}, vip.total.bytes));
      vip_conns.push_back(sample({{"vip", name}}, vip.total.new_conns));
      for (const auto& backend : vip.backends) {
        const std::vector<metrics::Label> labels{{"vip", name}, {"backend", lb::to_string(backend.backend.address)}};
        be_packets.push_back(sample(labels, backend.total.packets));
        be_bytes.push_back(sample(labels, backend.total.bytes));
        be_conns.push_back(sample(labels, backend.total.new_conns));
        // 1 in the table for new flows (health up or unchecked, not draining), 0 otherwise.
        const bool serving = backend.health != lb::Health::Down && backend.backend.state == lb::BackendState::Up;
        be_health.push_back(sample(labels, static_cast<unsigned>(serving)));
        const double share = vip.vip.table_size ? static_cast<double>(backend.table_entries) / vip.vip.table_size : 0.0;
        be_share.push_back(sample(labels, share));
      }
    }
  } else {
    spdlog::warn("metrics: lb status: {}", status.error().message);
  }
  out.add("sluice_lb_vip_packets_total", "Packets the lb stage sent for a VIP.", MetricType::Counter, vip_packets);
  out.add("sluice_lb_vip_bytes_total", "Bytes the lb stage sent for a VIP.", MetricType::Counter, vip_bytes);
  out.add("sluice_lb_vip_new_connections_total", "New connections of a VIP (Maglev picks).", MetricType::Counter,
          vip_conns);
  out.add("sluice_lb_backend_packets_total", "Packets sent to a backend.", MetricType::Counter, be_packets);
  out.add("sluice_lb_backend_bytes_total", "Bytes sent to a backend.", MetricType::Counter, be_bytes);
  out.add("sluice_lb_backend_new_connections_total", "New connections given to a backend.", MetricType::Counter,
          be_conns);
  out.add("sluice_lb_backend_up",
          "1 while a backend takes new flows (healthy or unchecked, not draining), 0 while it is down or draining.",
          MetricType::Gauge, be_health);
  out.add("sluice_lb_backend_table_share", "Share of its VIP's Maglev table a backend holds (0..1).", MetricType::Gauge,
          be_share);
  std::vector<Sample> fill, capacity;
  if (auto conns = lb.conn_fill(); conns) {
    fill = {sample({{"family", "ipv4"}}, conns->v4), sample({{"family", "ipv6"}}, conns->v6)};
    capacity = {sample({{"family", "ipv4"}}, conns->v4_capacity), sample({{"family", "ipv6"}}, conns->v6_capacity)};
  }
  out.add("sluice_lb_connections", "Entries of the lb connection tables.", MetricType::Gauge, fill);
  out.add("sluice_lb_connections_capacity", "Capacity of the lb connection tables.", MetricType::Gauge, capacity);
  std::vector<Sample> events;
  if (auto counted = table.events(); counted) {
    events = {sample({{"event", "conn_insert_failed"}}, (*counted)[SLUICE_LB_EVENT_CONN_INSERT_FAILED]),
              sample({{"event", "reselected"}}, (*counted)[SLUICE_LB_EVENT_RESELECTED]),
              sample({{"event", "corrupt_table"}}, (*counted)[SLUICE_LB_EVENT_CORRUPT_TABLE]),
              sample({{"event", "icmp_rate_limited"}}, (*counted)[SLUICE_LB_EVENT_ICMP_RATE_LIMITED]),
              sample({{"event", "icmp_martian"}}, (*counted)[SLUICE_LB_EVENT_ICMP_MARTIAN])};
  }
  out.add("sluice_lb_events_total", "Events of the lb stage: failed connection inserts, flows that picked again, "
          "corrupt tables met, too-big answers withheld (rate, martian source).", MetricType::Counter, events);
  const auto& health = lb.health_stats();
  out.add("sluice_lb_health_transitions_total", "Backend health changes the checker reported.", MetricType::Counter,
          {sample({{"to", "down"}}, health.went_down), sample({{"to", "up"}}, health.went_up)});
  out.add("sluice_lb_health_set_failures_total", "Health changes that could not be written to the lb maps.",
          MetricType::Counter, {sample({}, health.set_health_failures)});
  out.add("sluice_lb_vips", "VIPs configured.", MetricType::Gauge, {sample({}, table.config().vips.size())});
}

std::string render_lb_metrics(const LbOps& lb) {
  metrics::Exposition out;
  add_lb_metrics(out, lb);
  return out.text();
}

}  // namespace sluice::daemon
