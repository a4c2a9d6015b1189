#pragma once
// The forward stage's desired state (YAML `forward:`, forward_config.hpp;
// ops route.*, nexthop.*, forward.set, cpumap.set): what control/route's
// RouteTable is brought to by the daemon (control/daemon/route_ops.hpp).
//
// A next hop is not named by the operator: it is the neighbour `via`
// reached out of `dev` with its MAC (or, without one, the MAC the kernel's
// neighbour table holds for it: resolved and followed), written where a
// route or a group uses it, and the daemon gives RouteTable one next hop per
// distinct via@dev ("198.18.1.2@veth1"). The same via@dev must carry the
// same MACs (or the same absence of one) wherever it is written. ECMP groups are named; routes name a group, give
// a next hop, or send the prefix to the local stack.
//
// Pure values and validation: no maps, no interfaces looked up (the daemon
// checks that every dev exists and every CPU is possible).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "contract.hpp"
#include "lb_model.hpp"

namespace sluice::config {

using ForwardMac = std::array<std::uint8_t, 6>;

struct ForwardHop {
  lb::Address via;                     // the neighbour's address (IPv4 or IPv6)
  std::string dev;                     // egress interface
  std::optional<ForwardMac> mac;       // the neighbour's MAC; none: resolved through the kernel's neighbour table
  std::optional<ForwardMac> src_mac;   // default: dev's own MAC
  bool operator==(const ForwardHop&) const = default;
};

struct ForwardGroupMember {
  ForwardHop hop;
  std::uint32_t weight = 1;  // 1..SLUICE_FWD_WEIGHT_MAX
  bool operator==(const ForwardGroupMember&) const = default;
};

struct ForwardGroup {
  std::string name;  // is_forward_name
  std::vector<ForwardGroupMember> members;  // 1..SLUICE_FWD_GROUP_MAX_MEMBERS, distinct hops
  bool operator==(const ForwardGroup&) const = default;
};

struct ForwardRoute {
  enum class Kind { Via, Group, ToStack };
  std::string prefix;  // canonical (maps::to_string of the parsed prefix)
  Kind kind = Kind::ToStack;
  ForwardHop hop;      // Kind::Via
  std::string group;   // Kind::Group
  bool operator==(const ForwardRoute&) const = default;
};

struct ForwardSettings {
  sluice_verdict no_route = SLUICE_VERDICT_PASS;  // pass or drop
  std::uint32_t icmp_rate = SLUICE_FWD_ICMP_RATE_DEFAULT;  // time-exceeded answers per second per CPU; 0: none
  std::uint32_t icmp_burst = SLUICE_FWD_ICMP_BURST_DEFAULT;
  std::optional<lb::Address> icmp_source_v4;  // no source: no ICMP answer
  std::optional<lb::Address> icmp_source_v6;
  std::vector<std::uint32_t> cpus;  // cpumap CPU set; empty: local traffic XDP_PASS
  std::uint32_t cpumap_queue = SLUICE_FWD_CPUMAP_QSIZE_DEFAULT;
  bool operator==(const ForwardSettings&) const = default;
};

// Route sync (`forward.sync`, op route.sync): the kernel routing table
// mirrored as Kernel-origin routes (control/route/kernel_mirror.hpp).
inline constexpr std::uint32_t kForwardSyncDefaultTable = 254;  // RT_TABLE_MAIN
inline constexpr std::uint32_t kForwardSyncUnspecTable = 0;     // RT_TABLE_UNSPEC: no table
inline constexpr std::uint32_t kForwardSyncLocalTable = 255;    // RT_TABLE_LOCAL: the box's own addresses
struct ForwardSync {
  std::uint32_t table = kForwardSyncDefaultTable;  // 1..2^32-1 except 255
  bool operator==(const ForwardSync&) const = default;
};
// Why `table` cannot be synced ("0 is RT_TABLE_UNSPEC ..."); nullopt: it can.
std::optional<std::string> sync_table_problem(std::uint32_t table);

struct ForwardConfig {
  ForwardSettings settings;
  std::optional<ForwardSync> sync;  // none: route sync off
  std::vector<ForwardGroup> groups;
  std::vector<ForwardRoute> routes;
  bool operator==(const ForwardConfig&) const = default;
};

inline constexpr std::size_t kMaxForwardNameBytes = 64;
inline constexpr std::uint32_t kForwardIcmpMax = 1000000;  // route::kIcmpRateMax
bool is_forward_name(std::string_view name);  // 1..64 of A-Z a-z 0-9 _ - .
// "198.18.1.2@veth1": RouteTable's name of the next hop.
std::string hop_name(const ForwardHop& hop);
// "via 198.18.1.2 dev veth1 mac 02:00:00:00:00:01", "group wan", "to-stack".
std::string describe(const ForwardHop& hop);
std::string describe(const ForwardRoute& route);
std::string describe(const ForwardGroup& group);
std::string describe(const ForwardSettings& settings);
// The problem with the section as a whole, naming the path and the value
// ("forward.routes[2].group: 'wan' is not a group"); nullopt: valid.
std::optional<std::string> validate_forward(const ForwardConfig& config);
// Every distinct next hop the section uses, by hop_name (validated: one spec per name).
std::vector<ForwardHop> forward_hops(const ForwardConfig& config);

}  // namespace sluice::config
