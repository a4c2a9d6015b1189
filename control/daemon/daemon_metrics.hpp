#pragma once
// What /metrics shows: the data plane's verdict counters, the filter's
// per-rule hits, prefix counts and conntrack fill, the control socket's
// requests and the drop-event stream.
#include <string>

#include "dataplane.hpp"
#include "event_hub.hpp"
#include "filter_table.hpp"
#include "prometheus.hpp"
#include "server.hpp"

namespace sluice::daemon {

std::string render_metrics(const dataplane::Dataplane& plane, const filter::FilterTable& table,
                           const RequestMetrics& requests, const EventStats& events);
// The filter's families alone (also used by tests without a daemon).
void add_filter_metrics(metrics::Exposition& out, const filter::FilterTable& table);

}  // namespace sluice::daemon
