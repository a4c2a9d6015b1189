#pragma once
// The egress observer's attachment: a TC clsact egress filter (libbpf's
// bpf_tc_* API) beside the XDP entry program on each attached interface,
// under a fixed handle and priority of sluice's own, so that re-attaching
// replaces sluice's filter and leaves anyone else's alone. Like the XDP
// attachment it outlives the process (a daemon restart keeps observing);
// detaching is explicit and goes with the XDP program's.
#include <string>

#include "maps.hpp"

namespace sluice::dataplane {

// The filter's identity on the clsact egress hook.
inline constexpr std::uint32_t egress_observer_tc_handle = 0x51c;
inline constexpr std::uint32_t egress_observer_tc_priority = 0x51c;

// Creates the clsact qdisc if there is none, then attaches (or replaces) sluice's egress filter.
maps::Result<void> attach_egress_observer(int prog_fd, const std::string& ifname);
// The id of the program in sluice's egress filter on ifname; 0 when there is none.
maps::Result<std::uint32_t> egress_observer_id(const std::string& ifname);
// Removes sluice's egress filter (the qdisc stays: others may use it). false: there was none.
maps::Result<bool> detach_egress_observer(const std::string& ifname);

}  // namespace sluice::dataplane
