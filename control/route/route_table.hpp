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
// Routes have an origin: Static (the operator's, through this API or the
// daemon) or Kernel (mirrored from a kernel routing table by KernelMirror).
// One prefix may hold both; the one packets use (the effective one, written
// to the maps) is the Static route when there is one, else the Kernel one.
// The operator's explicit word wins over what a routing daemon installed,
// and removing the static route reveals the synced one again without a
// resync. Each origin is added, replaced and removed on its own.
//
// Next hops with `resolve_mac` take their destination MAC from the kernel's
// neighbour table for (interface, gateway), through a NeighbourSource
// (NeighbourTable, over netlink) that calls neighbour_changed() as the
// kernel's entry changes. Until the neighbour is usable (it is unknown,
// INCOMPLETE or FAILED) the next hop is unresolved: a route that uses it,
// or a group none of whose members is resolved, sends its packets to the
// local stack (XDP_PASS or the cpumap, reason fwd_to_stack, the route's
// counter counts them), so the kernel forwards them (and resolves the
// neighbour itself) or drops them as it would without sluice. A group uses
// only its resolved members. list_next_hops() says which are unresolved.
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

// An IPv4 or IPv6 address (a next hop's gateway, a neighbour).
struct IpAddress {
  int family = 0;                         // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> bytes{};   // network order; AF_INET uses the first 4
  auto operator<=>(const IpAddress&) const = default;
  // "198.18.1.1" or "2001:db8::1"; empty when it is neither.
  static std::optional<IpAddress> parse(const std::string& text);
  std::string to_string() const;
};

struct NextHopSpec {
  std::string interface;       // egress interface name, in this process's network namespace
  Mac dst_mac{};               // the neighbour's MAC (unicast); ignored with resolve_mac
  std::optional<Mac> src_mac = std::nullopt;  // default: the egress interface's own MAC
  // The neighbour's address on `interface`. Required with resolve_mac; informative otherwise.
  std::optional<IpAddress> gateway = std::nullopt;
  // Take dst_mac from the kernel's neighbour table for (interface, gateway) and follow it.
  bool resolve_mac = false;
};

enum class Origin { Static, Kernel };
const char* to_string(Origin origin) noexcept;

// Where next hops with resolve_mac learn their MAC (NeighbourTable, or a test's stand-in).
class NeighbourSource {
 public:
  virtual ~NeighbourSource() = default;
  // The neighbour's MAC when the kernel holds it usable now; empty otherwise
  // (the source may then ask the kernel to resolve it, and report it later
  // through RouteTable::neighbour_changed).
  virtual std::optional<Mac> lookup(std::uint32_t ifindex, const IpAddress& address) = 0;
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
  // routes); its next hop still counts it. Only the effective entry has it.
  std::optional<sluice_counter> counter;
  Origin origin = Origin::Static;
  bool effective = true;  // the one written to the maps (Static over Kernel)
};

struct NextHopInfo {
  std::string name;
  NextHopSpec spec;  // src_mac filled in
  std::uint32_t id = 0;
  std::uint32_t ifindex = 0;
  std::size_t users = 0;  // routes and groups naming it
  sluice_counter counter{};  // packets sent to it
  bool resolved = true;  // false: resolve_mac and the neighbour is not usable (yet)
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
  // Each origin of a prefix is its own entry: EEXIST / ENOENT are about that origin.
  Result<void> add_route(const Prefix& prefix, const RouteTarget& target, Origin origin = Origin::Static);
  Result<void> replace_route(const Prefix& prefix, const RouteTarget& target, Origin origin = Origin::Static);
  Result<void> remove_route(const Prefix& prefix, Origin origin = Origin::Static);
  // One entry per (prefix, origin); a prefix with both lists Static (effective) then Kernel.
  Result<std::vector<RouteInfo>> list_routes() const;
  std::size_t route_count() const noexcept;  // prefixes (written to the maps)
  bool has_route(const Prefix& prefix, Origin origin) const;
  bool has_next_hop(const std::string& name) const;
  bool has_group(const std::string& name) const;

  // ---- neighbours (next hops with resolve_mac) ----
  // Not owned; nullptr: none (MAC-less next hops stay unresolved until neighbour_changed).
  void set_neighbour_source(NeighbourSource* source) noexcept;
  // The kernel's neighbour (ifindex, address) is now usable with `mac`, or not usable (empty).
  // Every resolve_mac next hop on it follows; routes and groups using them with it.
  Result<void> neighbour_changed(std::uint32_t ifindex, const IpAddress& address, std::optional<Mac> mac);
  // Whether a resolve_mac next hop waits on or follows this neighbour.
  bool wants_neighbour(std::uint32_t ifindex, const IpAddress& address) const;
  // Asks the source again for every resolve_mac next hop (after its cache was rebuilt).
  Result<void> refresh_neighbours();

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
