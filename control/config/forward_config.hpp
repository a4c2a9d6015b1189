#pragma once
// The `forward:` section of the desired state: the forward stage's
// settings, ECMP groups and routes (forward_model.hpp).
//
//   forward:
//     settings:
//       no_route: pass             # pass | drop: a packet no route covers
//       icmp_rate: 100             # time-exceeded answers per second per CPU
//       icmp_burst: 50
//       icmp_source_v4: 198.18.0.1 # unset: no ICMP answer
//       cpus: [0, 1]               # cpumap CPU set for local traffic; [] off
//       cpumap_queue: 2048
//     sync: {table: 254}           # route sync of a kernel table ({}: main); absent: off
//     groups:
//       - name: wan
//         next_hops:
//           - {via: 198.18.1.2, dev: veth1, mac: 02:00:00:00:01:02, weight: 2}
//     routes:
//       - {prefix: 198.18.2.0/24, via: 198.18.1.2, dev: veth1, mac: 02:00:00:00:01:02}
//       - {prefix: 0.0.0.0/0, group: wan}
//       - {prefix: 198.18.3.0/24, via: 198.18.1.3, dev: veth1}  # no mac: the kernel's neighbour
//       - {prefix: 198.18.0.1/32, to_stack: true}
//
// Like every section, `forward` present is the whole truth for the stage
// (a route missing from `routes` is removed; settings absent are the
// defaults); absent, it is not managed. Errors name the path, the value and
// the line; validate_forward() then checks what the values mean together.
#include <string>
#include <vector>

#include "desired_state.hpp"
#include "forward_model.hpp"

namespace YAML {
class Node;
class Emitter;
}  // namespace YAML

namespace sluice::config {

Result<ForwardConfig> parse_forward_section(const YAML::Node& node);
// Emits `forward: ...` (key and value) into a mapping being written.
void emit_forward_section(YAML::Emitter& out, const ForwardConfig& config);
// "+ route 198.18.2.0/24: via 198.18.1.2 dev veth1 mac ...", "- group wan",
// "~ forward.settings.no_route: pass -> drop".
void diff_forward_section(std::vector<std::string>& out, const ForwardConfig& live, const ForwardConfig& wanted);

// "pass"/"drop" for no_route; a CPU list "0,2-3" (sorted, distinct) for cpumap.set and sluicectl.
std::optional<std::vector<std::uint32_t>> parse_cpu_list(std::string_view text);
std::string cpu_list_text(const std::vector<std::uint32_t>& cpus);  // "0-1,3"; "" for none

}  // namespace sluice::config
