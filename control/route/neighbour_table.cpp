#include "neighbour_table.hpp"

#include <linux/neighbour.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/route/neighbour.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "netlink.hpp"

namespace sluice::route {
namespace {

// The kernel's NUD_VALID: states in which it sends to the neighbour's address.
constexpr int kUsableStates = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY;
// The discard service: a probe datagram asks nothing of the gateway; it only makes the kernel resolve it.
constexpr std::uint16_t kDiscardPort = 9;

struct NeighPut {
  void operator()(rtnl_neigh* neigh) const noexcept { rtnl_neigh_put(neigh); }
};

std::optional<Mac> usable_mac(rtnl_neigh* neigh) {
  if (!neigh || !(rtnl_neigh_get_state(neigh) & kUsableStates)) return std::nullopt;
  const nl_addr* lladdr = rtnl_neigh_get_lladdr(neigh);
  if (!lladdr || nl_addr_get_len(lladdr) != sizeof(Mac)) return std::nullopt;
  Mac mac{};
  std::memcpy(mac.data(), nl_addr_get_binary_addr(lladdr), mac.size());
  return mac;
}

}  // namespace

struct NeighbourTable::State {
  RouteTable* table = nullptr;
  netlink::CacheManager events;
  netlink::Socket dumps;
  nl_cache* cache = nullptr;  // owned by the manager
  NeighbourTableStats stats{};
  std::optional<Error> callback_error{};  // the first table error inside a libnl callback
  std::map<std::pair<std::uint32_t, IpAddress>, std::chrono::steady_clock::time_point> last_probe{};

  // Makes the kernel resolve (ifindex, address): a datagram it must send through that neighbour.
  void probe(std::uint32_t ifindex, const IpAddress& address) {
    const auto now = std::chrono::steady_clock::now();
    // Keyed by whatever gateways next hops ever named (route sync churns
    // them): past the most next hops there can be, forget the entries whose
    // interval has passed, which cannot suppress a probe any more.
    if (last_probe.size() >= SLUICE_FWD_MAX_NEXTHOPS)
      std::erase_if(last_probe, [&](const auto& entry) { return now - entry.second >= kProbeInterval; });
    auto [it, fresh] = last_probe.try_emplace({ifindex, address}, now);
    if (!fresh && now - it->second < kProbeInterval) return;
    it->second = now;
    char ifname[IF_NAMESIZE] = {};
    if (!::if_indextoname(ifindex, ifname)) {
      ++stats.probe_errors;
      return;
    }
    const int sock = ::socket(address.family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sock < 0) {
      ++stats.probe_errors;
      return;
    }
    sockaddr_storage to{};
    socklen_t to_len = 0;
    if (address.family == AF_INET) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&to);
      v4->sin_family = AF_INET;
      v4->sin_port = htons(kDiscardPort);
      std::memcpy(&v4->sin_addr, address.bytes.data(), 4);
      to_len = sizeof(*v4);
    } else {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&to);
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(kDiscardPort);
      std::memcpy(&v6->sin6_addr, address.bytes.data(), 16);
      v6->sin6_scope_id = ifindex;  // a link-local gateway (routing daemons use them) needs it
      to_len = sizeof(*v6);
    }
    const bool sent = ::setsockopt(sock, SOL_SOCKET, SO_BINDTODEVICE, ifname, std::strlen(ifname)) == 0 &&
                      ::sendto(sock, "", 0, 0, reinterpret_cast<sockaddr*>(&to), to_len) == 0;
    ::close(sock);
    ++(sent ? stats.probes : stats.probe_errors);
  }

  std::optional<Mac> cached(std::uint32_t ifindex, const IpAddress& address) {
    auto dst = netlink::addr_of(address);
    if (!dst) return std::nullopt;
    std::unique_ptr<rtnl_neigh, NeighPut> neigh(rtnl_neigh_get(cache, static_cast<int>(ifindex), dst.get()));
    return usable_mac(neigh.get());
  }

  void changed(nl_object* object, int action) {
    auto* neigh = reinterpret_cast<rtnl_neigh*>(object);
    ++stats.changes;
    const int family = rtnl_neigh_get_family(neigh);
    if (family != AF_INET && family != AF_INET6) return;  // bridge FDB entries and the like
    const auto address = netlink::ip_of(rtnl_neigh_get_dst(neigh));
    const int ifindex = rtnl_neigh_get_ifindex(neigh);
    if (!address || ifindex <= 0) return;
    const auto ifx = static_cast<std::uint32_t>(ifindex);
    if (!table->wants_neighbour(ifx, *address)) return;
    const auto mac = action == NL_ACT_DEL ? std::nullopt : usable_mac(neigh);
    if (auto followed = table->neighbour_changed(ifx, *address, mac); !followed && !callback_error)
      callback_error = followed.error();
    if (!mac && (action == NL_ACT_DEL || (rtnl_neigh_get_state(neigh) & (NUD_FAILED | NUD_NONE)) ||
                 rtnl_neigh_get_state(neigh) == 0))
      probe(ifx, *address);  // gone or failed: ask again (rate-limited)
  }

  static void on_change(nl_cache*, nl_object* object, int action, void* self) {
    static_cast<State*>(self)->changed(object, action);
  }
};

NeighbourTable::NeighbourTable(std::unique_ptr<State> state) : state_(std::move(state)) {}

NeighbourTable::~NeighbourTable() {
  if (state_ && state_->table) state_->table->set_neighbour_source(nullptr);
}

Result<std::unique_ptr<NeighbourTable>> NeighbourTable::open(RouteTable& table, NeighbourTableOptions options) {
  auto state = std::make_unique<State>();
  state->table = &table;
  auto events = netlink::CacheManager::open("neighbours", options.receive_buffer_bytes);
  if (!events) return events.error();
  state->events = std::move(*events);
  auto dumps = netlink::connect_route_socket("neighbour dumps");
  if (!dumps) return dumps.error();
  state->dumps = std::move(*dumps);
  // Subscribes to RTNLGRP_NEIGH and dumps the table once.
  if (int rc = nl_cache_mngr_add(state->events.manager.get(), "route/neigh", &State::on_change, state.get(), &state->cache);
      rc < 0)
    return netlink::nl_error("follow the kernel's neighbours", rc);
  std::unique_ptr<NeighbourTable> out(new NeighbourTable(std::move(state)));
  table.set_neighbour_source(out.get());
  if (auto refreshed = table.refresh_neighbours(); !refreshed) return refreshed.error();
  return out;
}

int NeighbourTable::fd() const { return state_->events.fd(); }

Result<void> NeighbourTable::process_pending() {
  auto& s = *state_;
  const int rc = nl_cache_mngr_data_ready(s.events.manager.get());
  if (rc == -NLE_NOMEM) return resync();  // ENOBUFS: notifications were lost
  if (rc < 0 && rc != -NLE_AGAIN) return netlink::nl_error("read neighbour notifications", rc);
  if (s.callback_error) {
    Error error = std::move(*s.callback_error);
    s.callback_error.reset();
    return error;
  }
  return {};
}

Result<void> NeighbourTable::resync() {
  auto& s = *state_;
  ++s.stats.resyncs;
  if (int rc = nl_cache_refill(s.dumps.get(), s.cache); rc < 0) return netlink::nl_error("dump the kernel's neighbours", rc);
  return s.table->refresh_neighbours();
}

std::optional<Mac> NeighbourTable::lookup(std::uint32_t ifindex, const IpAddress& address) {
  auto mac = state_->cached(ifindex, address);
  if (!mac) state_->probe(ifindex, address);
  return mac;
}

const NeighbourTableStats& NeighbourTable::stats() const noexcept { return state_->stats; }

}  // namespace sluice::route
