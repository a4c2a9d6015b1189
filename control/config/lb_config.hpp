#pragma once
// The `lb:` section of the desired state: the load balancer's settings and
// its VIPs with their backends and health checks (control/lb's LbConfig).
//
//   lb:
//     settings:
//       encap_source_v4: 198.18.0.1
//       egress: tx               # tx | redirect | forward
//       conn_timeout_s: 300
//     vips:
//       - vip: 198.18.0.10:80/tcp
//         table_size: 65537
//         check: {type: http, port: 80, path: /healthz, interval_ms: 2000, timeout_ms: 1000, rise: 2, fall: 3}
//         backends:
//           - {address: 198.18.1.1, weight: 2}
//           - {address: 198.18.1.2, state: draining}
//
// Like every section, `lb` present is the whole truth for the balancer (a VIP
// missing from `vips` is removed; settings absent are the defaults); absent,
// it is not managed. Errors name the path ("lb.vips[1].backends[0].weight"),
// the value and the line; the model's validate() then checks what the values
// mean together (prime table sizes, duplicate backends, families).
#include <string>
#include <vector>

#include "desired_state.hpp"
#include "lb_model.hpp"

namespace YAML {
class Node;
class Emitter;
}  // namespace YAML

namespace sluice::config {

// The node under `lb:`. Nodes visited (aliases each time) are bounded by
// kMaxVisitedNodes, as the rest of the document is.
Result<lb::LbConfig> parse_lb_section(const YAML::Node& node);
// Emits `lb: ...` (key and value) into a mapping being written.
void emit_lb_section(YAML::Emitter& out, const lb::LbConfig& config);
// "+ vip 198.18.0.10:80/tcp: ...", "- backend 198.18.0.10:80/tcp 198.18.1.1",
// "~ lb.settings.encap_source_v4: (unset) -> 198.18.0.1".
void diff_lb_section(std::vector<std::string>& out, const lb::LbConfig& live, const lb::LbConfig& wanted);

// Vocabulary shared with the control protocol and sluicectl.
std::string_view egress_name(sluice_lb_egress egress);  // "tx", "redirect", "forward"
std::optional<sluice_lb_egress> parse_egress(std::string_view text);
std::string_view backend_state_name(lb::BackendState state);  // "up", "draining"
std::optional<lb::BackendState> parse_backend_state(std::string_view text);
// One line of a VIP's shape, for diffs and logs: "table 65537 l2 check http:80/healthz".
std::string describe(const lb::Vip& vip);
std::string describe(const lb::Backend& backend);  // "weight 2 draining mac aa:bb:..."

}  // namespace sluice::config
