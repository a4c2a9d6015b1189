#pragma once
// KernelMirror: `route sync`. Follows one kernel routing table (main, 254,
// by default) through libnl-route-3's cache manager (RTNLGRP_IPV4_ROUTE and
// RTNLGRP_IPV6_ROUTE), dumps it once, then applies every route added,
// changed or removed to a RouteTable as Origin::Kernel routes, so a routing
// daemon (BIRD, FRR) that installs routes in the kernel steers the XDP fast
// path. Static routes win over mirrored ones for the same prefix
// (route_table.hpp).
//
// What a kernel route becomes:
// - unicast via a gateway on a device: a next hop "kernel:<dev>:<gateway>"
//   with resolve_mac (its MAC from the kernel's neighbour table, through the
//   RouteTable's NeighbourSource: open a NeighbourTable on the same table),
//   shared by every route through that neighbour;
// - multipath (RTA_MULTIPATH, up to 16 live paths): a group
//   "kernel:ecmp:<members>" of such next hops, weighted as the kernel weighs
//   them; dead paths (RTNH_F_DEAD) left out;
// - a device route without gateway (a connected subnet: every destination
//   is its own neighbour, which one next hop cannot express), local,
//   broadcast, anycast, blackhole, unreachable, prohibit and throw: to the
//   local stack, so the kernel does with those packets exactly what its own
//   table says (delivers, resolves and forwards, drops, answers ICMP);
// - the same for unicast routes sluice cannot express (a gateway of the
//   other family (RTA_VIA), an MPLS encap, more than 16 paths, an interface
//   whose name cannot be read): to the stack, counted as unexpressible;
// - skipped and counted, leaving packets to whatever else covers them: TOS
//   routes and IPv6 source-specific routes (a lookup key sluice does not
//   have; the plain route for the prefix is mirrored), multicast and NAT
//   types.
// For one prefix the kernel route with the lowest metric (priority) is the
// one mirrored. Nothing is ever mistranslated to a different next hop.
//
// Bounded: at most `max_routes` prefixes are mirrored; more are refused and
// counted (refused_full), as are those RouteTable refuses (ids, tries full);
// a refused prefix is retried at the next resync.
//
// A kernel route whose translation cannot be installed (no room for its
// next hop or group, its interface gone) goes to the stack instead, counted
// (fallbacks): the kernel forwards it, never the prefix's old next hop.
//
// An overrun of the notification socket (ENOBUFS) makes it dump the table
// again and reconcile: idempotent, only differences are written. So does a
// link going down or away (the kernel flushes IPv4 routes without a
// notification per route), at most once per kLinkResyncSpacing: the dump
// is due at next_deadline(), which the caller must honour by calling
// process_pending() then even without a notification (NetlinkWatch does). stop() (and
// the destructor) removes every Kernel route and the next hops and groups it
// made. Event driven like NeighbourTable: poll fd(), call process_pending()
// in the network namespace it was opened in. Routes through next hops on
// kernel nexthop objects (RTA_NH_ID, FRR 8+) are seen expanded while
// net.ipv4.nexthop_compat_mode is 1 (the kernel's default).
#include <chrono>
#include <cstdint>
#include <optional>
#include <memory>
#include <string>

#include "route_table.hpp"

namespace sluice::route {

inline constexpr std::uint32_t kMainTable = 254;   // RT_TABLE_MAIN
inline constexpr std::uint32_t kLocalTable = 255;  // RT_TABLE_LOCAL: the box's own addresses, never mirrored

struct KernelMirrorOptions {
  std::uint32_t table = kMainTable;  // 1..2^32-1 except 255 (local)
  std::size_t max_routes = SLUICE_FWD_MAX_V4_ROUTES + SLUICE_FWD_MAX_V6_ROUTES;
  int receive_buffer_bytes = 0;  // SO_RCVBUF of the notification socket; 0: libnl's default
};

struct KernelMirrorStats {
  // Now, over the kernel routes of the table:
  std::size_t via_next_hop = 0;   // to one auto next hop
  std::size_t via_group = 0;      // ECMP: to an auto group
  std::size_t to_stack = 0;       // device routes and kernel-handled types
  std::size_t unexpressible = 0;  // to the stack because sluice cannot express them
  std::size_t skipped = 0;        // TOS, source-specific, multicast, NAT
  std::size_t refused_full = 0;   // not mirrored: max_routes or the RouteTable is full
  // Since open:
  std::uint64_t changes = 0;  // route notifications handled
  std::uint64_t resyncs = 0;  // dumps after an overrun or a link change
  std::uint64_t fallbacks = 0;  // routes sent to the stack because their next hop could not be installed
  std::uint64_t errors = 0;   // RouteTable refusals other than full (last_error says which)
  std::string last_error;
};

class KernelMirror {
 public:
  // Opens the netlink sockets in the calling thread's network namespace and
  // mirrors the table as it is now. `table` must outlive this object.
  static Result<std::unique_ptr<KernelMirror>> open(RouteTable& table, KernelMirrorOptions options = {});
  KernelMirror(const KernelMirror&) = delete;
  KernelMirror& operator=(const KernelMirror&) = delete;
  ~KernelMirror();  // stop(), errors ignored

  inline static constexpr std::chrono::milliseconds kLinkResyncSpacing{500};

  int fd() const;
  // Reads queued notifications; runs a resync that is due.
  Result<void> process_pending();
  // When process_pending() must run again without a notification (a resync
  // spaced after a link change); nullopt: only when fd() is readable.
  std::optional<std::chrono::steady_clock::time_point> next_deadline() const;
  // Dumps the kernel table again and makes the Kernel routes match it.
  Result<void> resync();
  // Removes every Kernel route and the next hops and groups the mirror made.
  Result<void> stop();

  KernelMirrorStats stats() const;
  std::uint32_t table_id() const noexcept;

 private:
  struct State;
  explicit KernelMirror(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace sluice::route
