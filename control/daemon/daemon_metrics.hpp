#pragma once
// What /metrics shows: the data plane's verdict counters, the control
// socket's requests and the drop-event stream.
#include <string>

#include "dataplane.hpp"
#include "event_hub.hpp"
#include "server.hpp"

namespace sluice::daemon {

std::string render_metrics(const dataplane::Dataplane& plane, const RequestMetrics& requests, const EventStats& events);

}  // namespace sluice::daemon
