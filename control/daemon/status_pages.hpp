#pragma once
// What sluiced's HTTP endpoint serves: /metrics (Prometheus text), the
// status page at / and its data at /status.json. The JSON is the status
// document of control/protocol/status_document.hpp, built by calling the
// read-only ops in-process through the registry: the page shows exactly
// what `sluicectl` would, and nothing an op does not already expose.
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "http_server.hpp"
#include "server.hpp"

namespace sluice::daemon {

// The status document as /status.json sends it.
std::string render_status_json(const OpRegistry& ops);

// --status-page on|off|auto for the metrics listener at `endpoint`: whether
// / and /status.json are served beside /metrics. They show interfaces,
// rules with their descriptions, VIPs, backends and routes to anyone who
// reaches the address, so `auto` (the default) serves them only on a
// loopback listener; a management address needs an explicit `on`. An
// error names the option and the value.
std::variant<bool, std::string> status_page_enabled(std::string_view option, const boost::asio::ip::tcp::endpoint& endpoint);

// /metrics always; the status page and its JSON only with `status_page`
// (without it they answer 404 like any other path).
std::vector<metrics::Page> http_pages(const OpRegistry& ops, std::function<std::string()> render_metrics,
                                      bool status_page);

}  // namespace sluice::daemon
