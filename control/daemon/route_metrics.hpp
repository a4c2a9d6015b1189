#pragma once
// The forward stage's families on /metrics: per route (the routes with a
// counter of their own) and per next hop packets and bytes, the stage's
// outcomes (routed, no route, TTL expired, redirect failed, to the stack)
// and events (ICMP answers refused, cpumap fallbacks), and the cpumap's
// settings.
#include <string>

#include "dataplane.hpp"
#include "prometheus.hpp"
#include "route_ops.hpp"

namespace sluice::daemon {

void add_route_metrics(metrics::Exposition& out, const dataplane::Dataplane& plane, const RouteOps& routes);
// The families alone as exposition text (appended to render_metrics' text).
std::string render_route_metrics(const dataplane::Dataplane& plane, const RouteOps& routes);

}  // namespace sluice::daemon
