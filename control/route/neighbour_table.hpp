#pragma once
// NeighbourTable: the kernel's neighbour table (ARP and NDP), read through
// libnl-route-3's cache manager, as the NeighbourSource of a RouteTable: a
// next hop with resolve_mac gets the MAC the kernel holds for (egress
// ifindex, gateway), v4 and v6, and follows it as it changes.
//
// Usable neighbour states are the kernel's NUD_VALID ones (REACHABLE, STALE,
// DELAY, PROBE, PERMANENT, NOARP) with a 6-byte link-layer address;
// INCOMPLETE, FAILED, NONE or a deleted entry make the next hop unresolved
// (its routes send to the stack, see route_table.hpp). For a neighbour a next
// hop wants and the kernel does not hold usable, the table makes the kernel
// resolve it: one empty UDP datagram to the gateway's discard port (9) out of
// the egress interface, again whenever the kernel reports it FAILED or gone
// (at most once per kProbeInterval). The kernel only re-confirms a STALE
// neighbour when it sends through it itself; for entries that must stay
// fresh without local traffic, kernel 5.16+ managed neighbours
// (`ip neigh add ADDR dev IF managed extern_learn`) keep them probed.
//
// Event driven, no thread of its own: poll fd() (readable) and call
// process_pending(), from the network namespace it was opened in (e.g. an
// asio posix::stream_descriptor on fd() in sluiced's io_context). A netlink
// overrun (ENOBUFS) is healed by a fresh dump and a refresh of every next
// hop. Not thread-safe, like RouteTable.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "route_table.hpp"

namespace sluice::route {

struct NeighbourTableOptions {
  int receive_buffer_bytes = 0;  // the notification socket's SO_RCVBUF; 0: libnl's default
};

struct NeighbourTableStats {
  std::uint64_t changes = 0;  // neighbour notifications handled
  std::uint64_t resyncs = 0;  // dumps after an overrun
  std::uint64_t probes = 0;   // datagrams sent to make the kernel resolve a neighbour
  std::uint64_t probe_errors = 0;
};

class NeighbourTable final : public NeighbourSource {
 public:
  inline static constexpr std::chrono::milliseconds kProbeInterval{1000};

  // Opens the netlink sockets in the calling thread's network namespace,
  // dumps the neighbours, becomes `table`'s neighbour source and resolves the
  // next hops already in it. `table` must outlive this object.
  static Result<std::unique_ptr<NeighbourTable>> open(RouteTable& table, NeighbourTableOptions options = {});
  NeighbourTable(const NeighbourTable&) = delete;
  NeighbourTable& operator=(const NeighbourTable&) = delete;
  ~NeighbourTable() override;  // stops being the table's source (its next hops keep their last MACs)

  int fd() const;
  // Reads every notification queued now (non-blocking) and applies it to the table.
  Result<void> process_pending();
  // Dumps the kernel's neighbours again and refreshes every resolve_mac next hop.
  Result<void> resync();

  std::optional<Mac> lookup(std::uint32_t ifindex, const IpAddress& address) override;
  const NeighbourTableStats& stats() const noexcept;

 private:
  struct State;
  explicit NeighbourTable(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace sluice::route
