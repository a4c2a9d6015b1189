#pragma once
// What sluiced's HTTP endpoint serves: /metrics (Prometheus text), the
// status page at / and its data at /status.json. The JSON is the status
// document of control/protocol/status_document.hpp, built by calling the
// read-only ops in-process through the registry: the page shows exactly
// what `sluicectl` would, and nothing an op does not already expose.
#include <functional>
#include <string>
#include <vector>

#include "http_server.hpp"
#include "server.hpp"

namespace sluice::daemon {

// The status document as /status.json sends it.
std::string render_status_json(const OpRegistry& ops);

std::vector<metrics::Page> http_pages(const OpRegistry& ops, std::function<std::string()> render_metrics);

}  // namespace sluice::daemon
