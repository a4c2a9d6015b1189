#include "daemon_metrics.hpp"

#include <map>
#include <stdexcept>

#include "names.hpp"
#include "prometheus.hpp"

namespace sluice::daemon {

using metrics::MetricType;
using metrics::sample;
using metrics::Sample;

void add_filter_metrics(metrics::Exposition& out, const filter::FilterTable& table) {
  auto rules = table.rule_counters();
  if (!rules) throw std::runtime_error(rules.error().message);
  std::vector<Sample> rule_packets, rule_bytes;
  for (const auto& rule : *rules) {
    std::vector<metrics::Label> labels{{"priority", std::to_string(rule.priority)}};
    rule_packets.push_back(sample(labels, rule.total.packets));
    rule_bytes.push_back(sample(labels, rule.total.bytes));
  }
  // Counters restart at 0 when a new rule set goes live; Prometheus treats that as a counter reset.
  out.add("sluice_filter_rule_packets_total", "Packets matched by each filter rule of the live set, by priority.",
          MetricType::Counter, rule_packets);
  out.add("sluice_filter_rule_bytes_total", "Bytes of the packets matched by each filter rule of the live set, by priority.",
          MetricType::Counter, rule_bytes);
  out.add("sluice_filter_rules", "Rules in the live filter rule set.", MetricType::Gauge,
          {sample({}, rules->size())});

  // Every (family, action) pair, zeros included: a series that vanishes is harder to alert on than a 0.
  std::map<std::pair<std::string, std::string>, std::uint64_t> prefixes;
  for (const char* family : {"ipv4", "ipv6"})
    for (auto action : {filter::Action::Drop, filter::Action::Pass, filter::Action::RateLimit})
      prefixes[{family, std::string(filter::to_string(action))}] = 0;
  for (const auto& entry : table.list_prefixes())
    ++prefixes[{filter::family_of(entry.prefix) == 4 ? "ipv4" : "ipv6", std::string(filter::to_string(entry.action))}];
  std::vector<Sample> prefix_samples;
  for (const auto& [key, count] : prefixes)
    prefix_samples.push_back(sample({{"family", key.first}, {"action", key.second}}, count));
  out.add("sluice_filter_prefixes", "Prefixes in the filter's prefix lists, by address family and action.",
          MetricType::Gauge, prefix_samples);
  out.add("sluice_filter_rate_classes", "Rate-limit classes defined.", MetricType::Gauge,
          {sample({}, table.rule_set().rate_classes.size())});

  auto flows = table.tracked_flows();
  if (!flows) throw std::runtime_error(flows.error().message);
  out.add("sluice_conntrack_entries", "Flows in the filter's connection table (expired ones until evicted).",
          MetricType::Gauge, {sample({}, flows->size())});
}

std::string render_metrics(const dataplane::Dataplane& plane, const filter::FilterTable& table,
                           const RequestMetrics& requests, const EventStats& events) {
  metrics::Exposition out;
  auto counts = plane.verdict_counts();
  if (!counts) throw std::runtime_error(counts.error().message);  // the HTTP server answers 500 with it
  std::vector<Sample> packets, bytes;
  for (const auto& count : *counts) {
    std::vector<metrics::Label> labels{{"verdict", std::string(dataplane::verdict_name(count.verdict))},
                                       {"reason", dataplane::reason_name(count.reason)}};
    packets.push_back(sample(labels, count.total.packets));
    bytes.push_back(sample(labels, count.total.bytes));
  }
  out.add("sluice_packets_total", "Packets judged by the XDP pipeline, by verdict and reason.", MetricType::Counter,
          packets);
  out.add("sluice_bytes_total", "Bytes of the packets judged by the XDP pipeline, by verdict and reason.",
          MetricType::Counter, bytes);

  add_filter_metrics(out, table);

  std::vector<Sample> request_samples;
  for (const auto& [key, value] : requests.requests)
    request_samples.push_back(sample({{"op", key.first}, {"result", key.second}}, value));
  out.add("sluice_control_requests_total", "Control-socket requests by op and result (ok or error code).",
          MetricType::Counter, request_samples);
  out.add("sluice_control_connections_total", "Control-socket connections accepted.", MetricType::Counter,
          {sample({}, requests.connections_total)});
  out.add("sluice_control_connections", "Control-socket connections open now.", MetricType::Gauge,
          {sample({}, requests.connections_open)});
  out.add("sluice_control_connections_refused_total", "Control-socket connections refused over the connection limit.",
          MetricType::Counter, {sample({}, requests.connections_refused)});
  out.add("sluice_control_write_timeouts_total", "Clients cut off for not reading their replies in time.",
          MetricType::Counter, {sample({}, requests.write_timeouts)});

  out.add("sluice_drop_events_total", "Drop events read from the drop_events ring buffer.", MetricType::Counter,
          {sample({}, events.received)});
  out.add("sluice_drop_events_malformed_total", "Ring buffer records of an unexpected size (ignored).",
          MetricType::Counter, {sample({}, events.malformed)});
  out.add("sluice_drop_events_lost_total",
          "Drop events not delivered to an events subscriber because its queue was full.", MetricType::Counter,
          {sample({}, events.subscriber_dropped)});
  out.add("sluice_drop_events_read_errors_total", "Failed reads of the drop_events ring buffer.", MetricType::Counter,
          {sample({}, events.read_errors)});
  return out.text();
}

}  // namespace sluice::daemon
