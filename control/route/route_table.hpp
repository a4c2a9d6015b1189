#pragma once
// RouteTable: the one user-space owner of the forward stage's maps in a
// loaded Dataplane (xdp/forward_maps.bpf.h), as FilterTable is for the
// filter. Next hops and groups have operator-given names; routes name the
// next hop or group they use, or go to the local stack. Every change is
// validated whole before anything is written, and an invalid one changes
// nothing: the error names the field and the value.
//
// The LPM tries are the source of truth for packets. IPv4 gets a DIR-24-8
// copy (64 MiB of tbl24, plus tbl8 groups for /24s holding longer prefixes)
// only while it holds at least `dir_threshold` IPv4 routes; below half of
// that the copy is dropped again and packets read the trie.
//
// Not thread-safe: one writer (the control plane).
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane.hpp"
#include "maps.hpp"

namespace sluice::route {

using maps::Error;
using maps::Prefix;
using maps::Result;
using Mac = std::array<std::uint8_t, 6>;

struct NextHopSpec {
  std::string interface;       // egress interface name, in this process's network namespace
  Mac dst_mac{};               // the neighbour's MAC (unicast)
  std::optional<Mac> src_mac = std::nullopt;  // default: the egress interface's own MAC
};

struct GroupMember {
  std::string next_hop;
  std::uint32_t weight = 1;  // 1..SLUICE_FWD_WEIGHT_MAX
};

struct RouteTarget {
  enum class Kind { NextHop, Group, ToStack };
  Kind kind = Kind::ToStack;
  std::string name;  // the next hop or group; empty for ToStack

  static RouteTarget next_hop(std::string name) { return {Kind::NextHop, std::move(name)}; }
  static RouteTarget group(std::string name) { return {Kind::Group, std::move(name)}; }
  static RouteTarget to_stack() { return {Kind::ToStack, {}}; }
  bool operator==(const RouteTarget&) const = default;
};

struct RouteInfo {
  Prefix prefix;
  RouteTarget target;
  // Packets that matched this route (summed over CPUs). Empty: the route
  // has no counter of its own (more than SLUICE_FWD_ROUTE_COUNTERS - 1
  // routes); its next hop still counts it.
  std::optional<sluice_counter> counter;
};

struct NextHopInfo {
  std::string name;
  NextHopSpec spec;  // src_mac filled in
  std::uint32_t id = 0;
  std::uint32_t ifindex = 0;
  std::size_t users = 0;  // routes and groups naming it
  sluice_counter counter{};  // packets sent to it
};

struct GroupInfo {
  std::string name;
  std::vector<GroupMember> members;
  std::uint32_t id = 0;
  std::size_t users = 0;  // routes naming it
};

struct CpumapSettings {
  std::vector<std::uint32_t> cpus;  // empty: cpumap off, local traffic XDP_PASS
  std::uint32_t queue_size = SLUICE_FWD_CPUMAP_QSIZE_DEFAULT;  // 1..SLUICE_FWD_CPUMAP_QSIZE_MAX
};

struct IcmpSettings {
  std::uint32_t rate_per_sec = SLUICE_FWD_ICMP_RATE_DEFAULT;  // per CPU; 0: never answer
  std::uint32_t burst = SLUICE_FWD_ICMP_BURST_DEFAULT;
  std::optional<std::array<std::uint8_t, 4>> source_v4 = std::nullopt;   // no source: no ICMP answer
  std::optional<std::array<std::uint8_t, 16>> source_v6 = std::nullopt;  // no source: no ICMPv6 answer
};
inline constexpr std::uint32_t kIcmpRateMax = 1000000;

struct RouteTableOptions {
  // IPv4 routes from which packets read a DIR-24-8 copy instead of the trie.
  std::size_t dir_threshold = SLUICE_FWD_DIR_ROUTES_DEFAULT;
};

class RouteTable {
 public:
  // Takes its own handles on the forward maps of `plane` and starts from an
  // empty table: routes, next hops, groups and settings left in the maps by
  // an earlier owner are cleared (persistence belongs to the daemon).
  static Result<RouteTable> open(const dataplane::Dataplane& plane, RouteTableOptions options = {});

  RouteTable(RouteTable&&) noexcept;
  RouteTable& operator=(RouteTable&&) noexcept;
  ~RouteTable();

  // ---- next hops ----
  Result<void> add_next_hop(const std::string& name, const NextHopSpec& spec);      // EEXIST if present
  Result<void> replace_next_hop(const std::string& name, const NextHopSpec& spec);  // ENOENT if absent
  Result<void> remove_next_hop(const std::string& name);  // EBUSY while a route or group uses it
  Result<std::vector<NextHopInfo>> list_next_hops() const;

  // ---- ECMP groups ----
  Result<void> add_group(const std::string& name, const std::vector<GroupMember>& members);
  Result<void> replace_group(const std::string& name, const std::vector<GroupMember>& members);
  Result<void> remove_group(const std::string& name);  // EBUSY while a route uses it
  std::vector<GroupInfo> list_groups() const;

  // ---- routes ----
  Result<void> add_route(const Prefix& prefix, const RouteTarget& target);      // EEXIST if present
  Result<void> replace_route(const Prefix& prefix, const RouteTarget& target);  // adds or changes
  Result<void> remove_route(const Prefix& prefix);                              // ENOENT if absent
  Result<std::vector<RouteInfo>> list_routes() const;
  std::size_t route_count() const noexcept;

  // ---- settings ----
  Result<void> set_no_route_verdict(sluice_verdict verdict);  // PASS or DROP
  Result<void> set_cpumap(const CpumapSettings& cpumap);
  Result<void> set_icmp(const IcmpSettings& icmp);
  const sluice_fwd_settings& settings() const noexcept;

  // ---- diagnostics ----
  // Whether packets read the IPv4 DIR-24-8 copy now (else the trie).
  bool dir24_8_active() const noexcept;
  // Why the copy could not be made or follow the last change (packets then
  // read the trie, which is always right); empty when it is fine.
  const std::string& dir24_8_error() const noexcept;
  // fwd_event_counters summed over CPUs, by enum sluice_fwd_event_slot.
  Result<std::vector<sluice_counter>> event_counters() const;

 private:
  struct State;
  explicit RouteTable(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace sluice::route
