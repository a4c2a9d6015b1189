#pragma once
// The load balancer's families on /metrics: per VIP and per backend
// packets, bytes and new connections, backend health and Maglev table
// share, connection-table fill and capacity, the lb stage's events and the
// health checker's transitions.
#include <string>

#include "lb_ops.hpp"
#include "prometheus.hpp"

namespace sluice::daemon {

void add_lb_metrics(metrics::Exposition& out, const LbOps& lb);
// The families alone as exposition text (appended to render_metrics' text).
std::string render_lb_metrics(const LbOps& lb);

}  // namespace sluice::daemon
