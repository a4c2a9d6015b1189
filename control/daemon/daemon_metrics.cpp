#include "daemon_metrics.hpp"

#include "names.hpp"
#include "prometheus.hpp"

namespace sluice::daemon {

using metrics::MetricType;
using metrics::sample;
using metrics::Sample;

std::string render_metrics(const dataplane::Dataplane& plane, const RequestMetrics& requests, const EventStats& events) {
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
