#include "route_table.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "dir24_8.hpp"
#include "sluice.skel.h"

namespace sluice::route {
namespace {

using maps::ArrayMap;
using maps::LpmTrie;
using maps::MapFd;
using maps::PerCpuArrayMap;

constexpr const char* kObject = "forward";

Error refuse(std::string_view operation, std::string_view reason, int errnum = EINVAL) {
  return maps::make_error_because(operation, kObject, reason, errnum);
}

template <class Handle>
Result<Handle> handle_of(const bpf_map* map) {
  auto fd = MapFd::from_skeleton(map);
  if (!fd) return fd.error();
  return Handle::from(std::move(*fd));
}

std::string mac_text(const Mac& mac) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

bool unicast_mac(const Mac& mac) {
  const bool zero = std::all_of(mac.begin(), mac.end(), [](std::uint8_t b) { return b == 0; });
  return !zero && (mac[0] & 1) == 0;
}

// The MAC of an interface of this network namespace.
Result<Mac> interface_mac(const std::string& name) {
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return maps::make_error("open socket for", name, errno);
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  const int rc = ::ioctl(sock, SIOCGIFHWADDR, &request);
  const int err = errno;
  ::close(sock);
  if (rc < 0) return maps::make_error("read the MAC of interface", name, err);
  Mac mac{};
  std::memcpy(mac.data(), request.ifr_hwaddr.sa_data, mac.size());
  return mac;
}

template <class K>
struct KeyLess {
  bool operator()(const K& a, const K& b) const { return std::memcmp(&a, &b, sizeof(K)) < 0; }
};

// A prefix must be canonical: length in range, no host bits (maps::parse_prefix makes such keys).
template <class K>
bool canonical(const K& key) {
  constexpr unsigned bits = sizeof(key.addr) * 8;
  if (key.prefixlen > bits) return false;
  for (unsigned bit = key.prefixlen; bit < bits; ++bit)
    if (key.addr[bit / 8] & (0x80u >> (bit % 8))) return false;
  return true;
}

// Buckets of a group in proportion to the weights (largest remainder), every member at least one.
std::array<std::uint16_t, SLUICE_FWD_GROUP_BUCKETS> spread_buckets(const std::vector<std::pair<std::uint16_t, std::uint32_t>>& members) {
  const std::size_t n = members.size();
  std::uint64_t total = 0;
  for (const auto& m : members) total += m.second;
  std::vector<std::uint32_t> share(n, 1);  // one each first
  const std::uint32_t spare = SLUICE_FWD_GROUP_BUCKETS - static_cast<std::uint32_t>(n);
  std::vector<std::pair<std::uint64_t, std::size_t>> remainders;
  std::uint32_t given = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t exact = std::uint64_t{spare} * members[i].second;
    share[i] += static_cast<std::uint32_t>(exact / total);
    given += static_cast<std::uint32_t>(exact / total);
    remainders.push_back({exact % total, i});
  }
  std::stable_sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t k = 0; given < spare; ++k, ++given) ++share[remainders[k % n].second];
  // Interleave (bucket b goes to the member whose quota is least used) so neighbouring hashes spread too.
  std::array<std::uint16_t, SLUICE_FWD_GROUP_BUCKETS> buckets{};
  std::vector<std::uint32_t> used(n, 0);
  for (std::uint32_t b = 0; b < SLUICE_FWD_GROUP_BUCKETS; ++b) {
    std::size_t best = n;
    for (std::size_t i = 0; i < n; ++i) {
      if (used[i] >= share[i]) continue;
      if (best == n || std::uint64_t{used[i]} * share[best] < std::uint64_t{used[best]} * share[i]) best = i;
    }
    ++used[best];
    buckets[b] = members[best].first;
  }
  return buckets;
}

class IdPool {
 public:
  explicit IdPool(std::uint32_t limit) : limit_(limit) {}
  std::optional<std::uint32_t> take() {
    if (!free_.empty()) {
      const std::uint32_t id = *free_.begin();
      free_.erase(free_.begin());
      return id;
    }
    if (next_ >= limit_) return std::nullopt;
    return next_++;
  }
  void give(std::uint32_t id) { free_.insert(id); }

 private:
  std::uint32_t limit_;
  std::uint32_t next_ = 1;  // 0 is "none" everywhere
  std::set<std::uint32_t> free_;
};

}  // namespace

struct RouteTable::State {
  struct NextHop {
    NextHopSpec spec;
    std::uint32_t id = 0;
    std::uint32_t ifindex = 0;
    std::uint32_t port = 0;
    std::size_t users = 0;
    bool resolved = true;  // false: resolve_mac and no usable neighbour: routes send to the stack
  };
  struct Group {
    std::vector<GroupMember> members;
    std::uint32_t id = 0;
    std::size_t users = 0;
  };
  struct Route {
    std::optional<RouteTarget> by_static{};
    std::optional<RouteTarget> by_kernel{};
    std::uint32_t slot = 0;  // route counter, 0: none
    std::uint32_t value = 0;  // in the trie: the effective target's
    // Static over Kernel: the operator's explicit word wins.
    const RouteTarget& effective() const { return by_static ? *by_static : *by_kernel; }
    std::optional<RouteTarget>& of(Origin origin) { return origin == Origin::Static ? by_static : by_kernel; }
    bool empty() const { return !by_static && !by_kernel; }
  };
  struct Port {
    std::uint32_t slot = 0;
    std::size_t users = 0;
  };

  RouteTableOptions options;
  LpmTrie<sluice_lpm_v4_key, std::uint32_t> routes_v4;
  LpmTrie<sluice_lpm_v6_key, std::uint32_t> routes_v6;
  ArrayMap<sluice_fwd_nexthop> nexthops;
  ArrayMap<sluice_fwd_group> groups;
  ArrayMap<sluice_fwd_settings> settings_map;
  PerCpuArrayMap<sluice_counter> route_counters;
  PerCpuArrayMap<sluice_counter> nexthop_counters;
  PerCpuArrayMap<sluice_counter> event_counters;
  MapFd ports;
  MapFd cpus;
  maps::Dir24_8Slot dir;  // the IPv4 DIR-24-8 copy, plugged only from dir_threshold routes

  sluice_fwd_settings settings{};
  std::map<std::string, NextHop> next_hops{};
  std::map<std::string, Group> group_table{};
  std::map<sluice_lpm_v4_key, Route, KeyLess<sluice_lpm_v4_key>> v4{};
  std::map<sluice_lpm_v6_key, Route, KeyLess<sluice_lpm_v6_key>> v6{};
  std::map<std::uint32_t, Port> port_of_ifindex{};
  NeighbourSource* neighbours = nullptr;
  IdPool nexthop_ids{SLUICE_FWD_MAX_NEXTHOPS};
  IdPool group_ids{SLUICE_FWD_MAX_GROUPS};
  IdPool counter_slots{SLUICE_FWD_ROUTE_COUNTERS};
  std::set<std::uint32_t> free_ports{};  // devmap slots
  std::vector<std::uint32_t> cpumap_entries{};  // CPUs with a cpumap entry now

  Result<void> write_settings() { return settings_map.update(0, settings); }

  // ---- DIR-24-8 copy of the IPv4 routes ----
  std::vector<maps::Dir24_8Entry> dir_entries() const {
    std::vector<maps::Dir24_8Entry> entries;
    entries.reserve(v4.size());
    for (const auto& [key, route] : v4) entries.push_back({key, route.value});
    return entries;
  }
  Result<void> unplug_dir() { return dir.unplug(); }
  Result<void> plug_dir() {
    const auto entries = dir_entries();
    return dir.replace(entries, maps::dir24_8_groups_wanted(entries, SLUICE_DIR24_8_TBL8_GROUPS_MAX));
  }

  // After the v4 trie changed: the copy follows it, or comes or goes with the route count.
  // A copy that cannot follow (tbl8 full) is rebuilt bigger; packets read the trie meanwhile.
  Result<void> sync_dir(const sluice_lpm_v4_key& key, const Route* route) {
    if (dir.plugged()) {
      if (v4.size() * 2 < options.dir_threshold) return unplug_dir();
      Result<void> followed;
      if (route) {
        followed = dir.table()->insert(key, route->value);
      } else if (auto erased = dir.table()->erase(key); !erased) {
        followed = erased.error();
      }
      if (followed) return {};
      if (auto gone = unplug_dir(); !gone) return gone;
      return plug_dir();
    }
    if (v4.size() >= options.dir_threshold && options.dir_threshold > 0) return plug_dir();
    return {};
  }

  // The route change itself is done (the trie is what packets read when the
  // copy is missing): a copy that could not follow is reported, not undone.
  std::string dir_error{};
  Result<void> note_dir(Result<void> synced) {
    dir_error = synced ? std::string() : synced.error().message;
    return {};
  }

  // ---- counters ----
  Result<sluice_counter> summed(const PerCpuArrayMap<sluice_counter>& map, std::uint32_t slot) const {
    auto values = map.lookup(slot);
    if (!values) return values.error();
    sluice_counter total{};
    if (*values)
      for (const auto& v : **values) {
        total.packets += v.packets;
        total.bytes += v.bytes;
      }
    return total;
  }
  Result<void> zero(PerCpuArrayMap<sluice_counter>& map, std::uint32_t slot) {
    return map.update_all_cpus(slot, sluice_counter{});
  }

  // ---- validation ----
  Result<std::uint32_t> target_value(const RouteTarget& target, std::uint32_t slot, std::string_view operation) const {
    switch (target.kind) {
      case RouteTarget::Kind::ToStack:
        return SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_LOCAL, 0, slot);
      case RouteTarget::Kind::NextHop: {
        auto it = next_hops.find(target.name);
        if (it == next_hops.end()) return refuse(operation, "next hop '" + target.name + "' does not exist", ENOENT);
        // Unresolved: the kernel gets the packets (it resolves, forwards or drops), never a zero MAC.
        if (!it->second.resolved) return SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_LOCAL, 0, slot);
        return SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_NEXTHOP, it->second.id, slot);
      }
      case RouteTarget::Kind::Group: {
        auto it = group_table.find(target.name);
        if (it == group_table.end()) return refuse(operation, "group '" + target.name + "' does not exist", ENOENT);
        if (!group_usable(it->second.members)) return SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_LOCAL, 0, slot);
        return SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_GROUP, it->second.id, slot);
      }
    }
    return refuse(operation, "unknown route target kind");
  }
  bool group_usable(const std::vector<GroupMember>& members) const {
    return std::any_of(members.begin(), members.end(), [&](const GroupMember& m) {
      auto it = next_hops.find(m.next_hop);
      return it != next_hops.end() && it->second.resolved;
    });
  }
  void use(const std::optional<RouteTarget>& target, int delta) {
    if (target) use(*target, delta);
  }
  void use(const RouteTarget& target, int delta) {
    if (target.kind == RouteTarget::Kind::NextHop) next_hops[target.name].users += delta;
    if (target.kind == RouteTarget::Kind::Group) group_table[target.name].users += delta;
  }

  struct ResolvedHop {
    std::uint32_t ifindex;
    Mac src;
  };
  Result<ResolvedHop> resolve(const std::string& name, const NextHopSpec& spec, std::string_view operation) const {
    if (name.empty()) return refuse(operation, "next hop name is empty");
    const unsigned ifindex = ::if_nametoindex(spec.interface.c_str());
    if (spec.interface.empty() || ifindex == 0)
      return refuse(operation, "next hop '" + name + "': interface '" + spec.interface + "' does not exist", ENODEV);
    if (spec.resolve_mac) {
      if (!spec.gateway || (spec.gateway->family != AF_INET && spec.gateway->family != AF_INET6))
        return refuse(operation, "next hop '" + name + "': resolve_mac needs a gateway address");
    } else if (!unicast_mac(spec.dst_mac)) {
      return refuse(operation, "next hop '" + name + "': dst_mac " + mac_text(spec.dst_mac) + " is not a unicast MAC");
    }
    Mac src{};
    if (spec.src_mac) {
      src = *spec.src_mac;
    } else {
      auto own = interface_mac(spec.interface);
      if (!own) return own.error();
      src = *own;
    }
    if (!unicast_mac(src))
      return refuse(operation, "next hop '" + name + "': src_mac " + mac_text(src) + " is not a unicast MAC");
    return ResolvedHop{ifindex, src};
  }

  // The MAC a next hop sends to now: the given one, or the neighbour's when the source knows it usable.
  std::optional<Mac> destination(std::uint32_t ifindex, const NextHopSpec& spec) const {
    if (!spec.resolve_mac) return spec.dst_mac;
    if (!neighbours) return std::nullopt;
    auto mac = neighbours->lookup(ifindex, *spec.gateway);
    if (mac && !unicast_mac(*mac)) return std::nullopt;
    return mac;
  }

  // The devmap slot of an egress interface, created on first use.
  Result<std::uint32_t> port_for(std::uint32_t ifindex) {
    if (auto it = port_of_ifindex.find(ifindex); it != port_of_ifindex.end()) return it->second.slot;
    if (free_ports.empty()) return refuse("add next hop", "every one of the " + std::to_string(SLUICE_FWD_MAX_PORTS) +
                                                               " egress port slots is in use", ENOSPC);
    const std::uint32_t slot = *free_ports.begin();
    bpf_devmap_val value{};
    value.ifindex = ifindex;
    if (bpf_map_update_elem(ports.fd(), &slot, &value, BPF_ANY))
      return maps::make_error("add egress interface " + std::to_string(ifindex) + " to", ports.name(), errno);
    free_ports.erase(slot);
    port_of_ifindex[ifindex] = Port{slot, 0};
    return slot;
  }
  void release_port(std::uint32_t ifindex) {
    auto it = port_of_ifindex.find(ifindex);
    if (it == port_of_ifindex.end() || it->second.users > 0) return;
    const std::uint32_t slot = it->second.slot;
    bpf_map_delete_elem(ports.fd(), &slot);  // a stale slot is unreferenced: harmless if this fails
    free_ports.insert(slot);
    port_of_ifindex.erase(it);
  }

  Result<sluice_fwd_group> group_value(const std::vector<GroupMember>& members, std::string_view operation) const {
    if (members.empty()) return refuse(operation, "a group needs at least one next hop");
    if (members.size() > SLUICE_FWD_GROUP_MAX_MEMBERS)
      return refuse(operation, std::to_string(members.size()) + " next hops, at most " +
                                   std::to_string(SLUICE_FWD_GROUP_MAX_MEMBERS) + " per group");
    sluice_fwd_group value{};
    std::vector<std::pair<std::uint16_t, std::uint32_t>> ids;
    std::uint32_t listed = 0;
    std::set<std::string> seen;
    for (const auto& m : members) {
      auto it = next_hops.find(m.next_hop);
      if (it == next_hops.end()) return refuse(operation, "next hop '" + m.next_hop + "' does not exist", ENOENT);
      if (!seen.insert(m.next_hop).second) return refuse(operation, "next hop '" + m.next_hop + "' listed twice");
      if (m.weight == 0 || m.weight > SLUICE_FWD_WEIGHT_MAX)
        return refuse(operation, "weight " + std::to_string(m.weight) + " of next hop '" + m.next_hop +
                                     "' is outside 1.." + std::to_string(SLUICE_FWD_WEIGHT_MAX));
      value.members[listed] = {static_cast<std::uint16_t>(it->second.id), static_cast<std::uint16_t>(m.weight)};
      ++listed;
      if (it->second.resolved) ids.push_back({static_cast<std::uint16_t>(it->second.id), m.weight});
    }
    value.member_count = listed;
    // Buckets only over resolved members; with none, routes to the group go to the stack (target_value).
    if (ids.empty()) return value;
    const auto buckets = spread_buckets(ids);
    std::copy(buckets.begin(), buckets.end(), value.bucket);
    return value;
  }

  // One origin of a prefix added or changed; the trie gets the effective target's value.
  template <class K, class Trie, class Table>
  Result<void> put_route(Trie& trie, Table& table, const K& key, const RouteTarget& target, bool may_exist,
                         Origin origin, std::string_view operation) {
    if (!canonical(key)) return refuse(operation, "bad prefix " + maps::to_string(key) + ": host bits set or length out of range");
    auto existing = table.find(key);
    Route next = existing != table.end() ? existing->second : Route{};
    if (next.of(origin) && !may_exist)
      return refuse(operation, std::string(to_string(origin)) + " route " + maps::to_string(key) + " exists", EEXIST);
    const std::optional<RouteTarget> before = next.of(origin);
    next.of(origin) = target;
    bool fresh_slot = false;
    if (existing == table.end()) {
      if (auto taken = counter_slots.take()) {
        next.slot = *taken;
        fresh_slot = true;
      }
    }
    // The target must exist even when it is not the effective one.
    if (auto checked = target_value(target, next.slot, operation); !checked) {
      if (fresh_slot) counter_slots.give(next.slot);
      return checked.error();
    }
    auto value = target_value(next.effective(), next.slot, operation);
    if (!value) {
      if (fresh_slot) counter_slots.give(next.slot);
      return value.error();
    }
    if (fresh_slot) {
      if (auto zeroed = zero(route_counters, next.slot); !zeroed) {
        counter_slots.give(next.slot);
        return zeroed;
      }
    }
    if (existing == table.end() || existing->second.value != *value) {
      if (auto written = trie.update(key, *value); !written) {
        if (fresh_slot) counter_slots.give(next.slot);
        return written;
      }
    }
    next.value = *value;
    use(before, -1);
    use(target, +1);
    table[key] = std::move(next);
    return {};
  }

  // One origin of a prefix removed; the other one, if any, becomes effective.
  template <class K, class Trie, class Table>
  Result<void> drop_route(Trie& trie, Table& table, const K& key, Origin origin) {
    auto it = table.find(key);
    if (it == table.end() || !it->second.of(origin))
      return refuse("remove route", std::string(to_string(origin)) + " route " + maps::to_string(key) + " does not exist",
                    ENOENT);
    Route next = it->second;
    next.of(origin).reset();
    if (next.empty()) {
      auto erased = trie.erase(key);
      if (!erased) return erased.error();
      use(it->second.of(origin), -1);
      if (it->second.slot) counter_slots.give(it->second.slot);
      table.erase(it);
      return {};
    }
    auto value = target_value(next.effective(), next.slot, "remove route");
    if (!value) return value.error();
    if (*value != next.value) {
      if (auto written = trie.update(key, *value); !written) return written;
    }
    next.value = *value;
    use(it->second.of(origin), -1);
    it->second = std::move(next);
    return {};
  }

  // After next hops' resolution changed: groups' buckets, then routes' values follow.
  // Groups first, so a route that turns to a group never reads stale buckets. A
  // group left with no resolved member keeps its old buckets (valid next hops,
  // their last MACs) until its routes, rewritten to the stack just after, leave it.
  Result<void> refresh_values() {
    for (auto& [name, group] : group_table) {
      auto value = group_value(group.members, "follow neighbours in group");
      if (!value) return value.error();
      if (group_usable(group.members))
        if (auto written = groups.update(group.id, *value); !written) return written;
    }
    auto follow = [&](auto& trie, auto& table, bool is_v4) -> Result<void> {
      for (auto& [key, route] : table) {
        auto value = target_value(route.effective(), route.slot, "follow neighbours");
        if (!value) return value.error();
        if (*value == route.value) continue;
        if (auto written = trie.update(key, *value); !written) return written;
        route.value = *value;
        if constexpr (std::is_same_v<std::decay_t<decltype(key)>, sluice_lpm_v4_key>) {
          if (is_v4) note_dir(sync_dir(key, &route));
        }
      }
      return {};
    };
    if (auto done = follow(routes_v4, v4, true); !done) return done;
    return follow(routes_v6, v6, false);
  }

  // Empties whatever an earlier owner left in the maps.
  Result<void> clear() {
    auto keys4 = routes_v4.keys();
    if (!keys4) return keys4.error();
    for (const auto& k : *keys4)
      if (auto gone = routes_v4.erase(k); !gone) return gone.error();
    auto keys6 = routes_v6.keys();
    if (!keys6) return keys6.error();
    for (const auto& k : *keys6)
      if (auto gone = routes_v6.erase(k); !gone) return gone.error();
    // An absent element (ENOENT) is what clearing wants; anything else is an error.
    auto erase = [](const MapFd& map, std::uint32_t key) -> Result<void> {
      if (bpf_map_delete_elem(map.fd(), &key) && errno != ENOENT)
        return maps::make_error("clear slot " + std::to_string(key) + " of", map.name(), errno);
      return {};
    };
    if (auto gone = dir.unplug(); !gone) return gone;
    for (std::uint32_t id = 0; id < SLUICE_FWD_MAX_NEXTHOPS; ++id)
      if (auto cleared = nexthops.update(id, sluice_fwd_nexthop{}); !cleared) return cleared;
    for (std::uint32_t id = 0; id < SLUICE_FWD_MAX_GROUPS; ++id)
      if (auto cleared = groups.update(id, sluice_fwd_group{}); !cleared) return cleared;
    for (std::uint32_t port = 0; port < SLUICE_FWD_MAX_PORTS; ++port)
      if (auto gone = erase(ports, port); !gone) return gone;
    for (std::uint32_t cpu = 0; cpu < SLUICE_FWD_MAX_CPUS; ++cpu)
      if (auto gone = erase(cpus, cpu); !gone) return gone;
    return {};
  }
};

const char* to_string(Origin origin) noexcept { return origin == Origin::Static ? "static" : "kernel"; }

std::optional<IpAddress> IpAddress::parse(const std::string& text) {
  IpAddress address;
  if (::inet_pton(AF_INET, text.c_str(), address.bytes.data()) == 1) {
    address.family = AF_INET;
    return address;
  }
  if (::inet_pton(AF_INET6, text.c_str(), address.bytes.data()) == 1) {
    address.family = AF_INET6;
    return address;
  }
  return std::nullopt;
}

std::string IpAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family != AF_INET && family != AF_INET6) return "(no address)";
  ::inet_ntop(family, bytes.data(), text, sizeof(text));
  return text;
}

RouteTable::RouteTable(std::unique_ptr<State> state) : state_(std::move(state)) {}
RouteTable::RouteTable(RouteTable&&) noexcept = default;
RouteTable& RouteTable::operator=(RouteTable&&) noexcept = default;
RouteTable::~RouteTable() = default;

Result<RouteTable> RouteTable::open(const dataplane::Dataplane& plane, RouteTableOptions options) {
  const auto& m = plane.skeleton()->maps;
  auto v4 = handle_of<LpmTrie<sluice_lpm_v4_key, std::uint32_t>>(m.fwd_routes_v4);
  if (!v4) return v4.error();
  auto v6 = handle_of<LpmTrie<sluice_lpm_v6_key, std::uint32_t>>(m.fwd_routes_v6);
  if (!v6) return v6.error();
  auto nexthops = handle_of<ArrayMap<sluice_fwd_nexthop>>(m.fwd_nexthops);
  if (!nexthops) return nexthops.error();
  auto groups = handle_of<ArrayMap<sluice_fwd_group>>(m.fwd_groups);
  if (!groups) return groups.error();
  auto settings = handle_of<ArrayMap<sluice_fwd_settings>>(m.fwd_settings);
  if (!settings) return settings.error();
  auto route_counters = handle_of<PerCpuArrayMap<sluice_counter>>(m.fwd_route_counters);
  if (!route_counters) return route_counters.error();
  auto nexthop_counters = handle_of<PerCpuArrayMap<sluice_counter>>(m.fwd_nexthop_counters);
  if (!nexthop_counters) return nexthop_counters.error();
  auto event_counters = handle_of<PerCpuArrayMap<sluice_counter>>(m.fwd_event_counters);
  if (!event_counters) return event_counters.error();
  auto ports = MapFd::from_skeleton(m.fwd_ports);
  if (!ports) return ports.error();
  auto cpus = MapFd::from_skeleton(m.fwd_cpus);
  if (!cpus) return cpus.error();
  auto t24 = MapFd::from_skeleton(m.fwd_dir4_tbl24);
  if (!t24) return t24.error();
  auto t8 = MapFd::from_skeleton(m.fwd_dir4_tbl8);
  if (!t8) return t8.error();
  auto dir = maps::Dir24_8Slot::open(std::move(*t24), std::move(*t8), 0, "fwd_dir4");
  if (!dir) return dir.error();

  auto state = std::unique_ptr<State>(new State{
      .options = options,
      .routes_v4 = std::move(*v4),
      .routes_v6 = std::move(*v6),
      .nexthops = std::move(*nexthops),
      .groups = std::move(*groups),
      .settings_map = std::move(*settings),
      .route_counters = std::move(*route_counters),
      .nexthop_counters = std::move(*nexthop_counters),
      .event_counters = std::move(*event_counters),
      .ports = std::move(*ports),
      .cpus = std::move(*cpus),
      .dir = std::move(*dir),
  });
  for (std::uint32_t port = 0; port < SLUICE_FWD_MAX_PORTS; ++port) state->free_ports.insert(port);
  if (auto cleared = state->clear(); !cleared) return cleared.error();
  state->settings = sluice_fwd_settings{};
  state->settings.version = SLUICE_FWD_SETTINGS_VERSION;
  state->settings.no_route_verdict = SLUICE_VERDICT_PASS;
  state->settings.icmp_rate = SLUICE_FWD_ICMP_RATE_DEFAULT;
  state->settings.icmp_burst = SLUICE_FWD_ICMP_BURST_DEFAULT;
  if (auto written = state->write_settings(); !written) return written.error();
  return RouteTable(std::move(state));
}

// ---- next hops ----
Result<void> RouteTable::add_next_hop(const std::string& name, const NextHopSpec& spec) {
  auto& s = *state_;
  constexpr std::string_view op = "add next hop";
  if (s.next_hops.count(name)) return refuse(op, "next hop '" + name + "' exists", EEXIST);
  auto hop = s.resolve(name, spec, op);
  if (!hop) return hop.error();
  auto id = s.nexthop_ids.take();
  if (!id) return refuse(op, "every next-hop id is in use", ENOSPC);
  auto port = s.port_for(hop->ifindex);
  if (!port) {
    s.nexthop_ids.give(*id);
    return port.error();
  }
  const auto dst = s.destination(hop->ifindex, spec);
  sluice_fwd_nexthop value{};
  value.ifindex = hop->ifindex;
  value.port = *port;
  std::memcpy(value.src_mac, hop->src.data(), 6);
  std::memcpy(value.dst_mac, dst.value_or(Mac{}).data(), 6);
  Result<void> written = s.zero(s.nexthop_counters, *id);
  if (written) written = s.nexthops.update(*id, value);
  if (!written) {
    s.nexthop_ids.give(*id);
    s.release_port(hop->ifindex);
    return written;
  }
  NextHopSpec stored = spec;
  stored.src_mac = hop->src;
  if (dst) stored.dst_mac = *dst;
  s.port_of_ifindex[hop->ifindex].users++;
  s.next_hops[name] = State::NextHop{stored, *id, hop->ifindex, *port, 0, dst.has_value()};
  return {};
}

Result<void> RouteTable::replace_next_hop(const std::string& name, const NextHopSpec& spec) {
  auto& s = *state_;
  constexpr std::string_view op = "replace next hop";
  auto it = s.next_hops.find(name);
  if (it == s.next_hops.end()) return refuse(op, "next hop '" + name + "' does not exist", ENOENT);
  auto hop = s.resolve(name, spec, op);
  if (!hop) return hop.error();
  auto port = s.port_for(hop->ifindex);
  if (!port) return port.error();
  const auto dst = s.destination(hop->ifindex, spec);
  const bool was_resolved = it->second.resolved;
  if (!dst && was_resolved) {
    // Routes leave this next hop (to the stack) before its entry changes.
    it->second.resolved = false;
    if (auto left = s.refresh_values(); !left) {
      it->second.resolved = true;
      s.release_port(hop->ifindex);
      return left;
    }
  }
  sluice_fwd_nexthop value{};
  value.ifindex = hop->ifindex;
  value.port = *port;
  std::memcpy(value.src_mac, hop->src.data(), 6);
  std::memcpy(value.dst_mac, dst.value_or(Mac{}).data(), 6);
  // One array element: a packet reads the old or the new next hop.
  if (auto written = s.nexthops.update(it->second.id, value); !written) {
    s.release_port(hop->ifindex);
    return written;
  }
  const std::uint32_t old_ifindex = it->second.ifindex;
  s.port_of_ifindex[hop->ifindex].users++;
  s.port_of_ifindex[old_ifindex].users--;
  s.release_port(old_ifindex);
  it->second.spec = spec;
  it->second.spec.src_mac = hop->src;
  if (dst) it->second.spec.dst_mac = *dst;
  it->second.ifindex = hop->ifindex;
  it->second.port = *port;
  it->second.resolved = dst.has_value();
  if (dst && !was_resolved) return s.refresh_values();  // routes come back to it
  return {};
}

Result<void> RouteTable::remove_next_hop(const std::string& name) {
  auto& s = *state_;
  auto it = s.next_hops.find(name);
  if (it == s.next_hops.end()) return refuse("remove next hop", "next hop '" + name + "' does not exist", ENOENT);
  if (it->second.users > 0)
    return refuse("remove next hop", "next hop '" + name + "' is used by " + std::to_string(it->second.users) +
                                         " route(s) or group(s)", EBUSY);
  if (auto cleared = s.nexthops.update(it->second.id, sluice_fwd_nexthop{}); !cleared) return cleared;
  s.nexthop_ids.give(it->second.id);
  const std::uint32_t ifindex = it->second.ifindex;
  s.next_hops.erase(it);
  s.port_of_ifindex[ifindex].users--;
  s.release_port(ifindex);
  return {};
}

Result<std::vector<NextHopInfo>> RouteTable::list_next_hops() const {
  std::vector<NextHopInfo> out;
  for (const auto& [name, hop] : state_->next_hops) {
    auto counter = state_->summed(state_->nexthop_counters, hop.id);
    if (!counter) return counter.error();
    out.push_back({name, hop.spec, hop.id, hop.ifindex, hop.users, *counter, hop.resolved});
  }
  return out;
}

// ---- groups ----
Result<void> RouteTable::add_group(const std::string& name, const std::vector<GroupMember>& members) {
  auto& s = *state_;
  constexpr std::string_view op = "add group";
  if (name.empty()) return refuse(op, "group name is empty");
  if (s.group_table.count(name)) return refuse(op, "group '" + name + "' exists", EEXIST);
  auto value = s.group_value(members, op);
  if (!value) return value.error();
  auto id = s.group_ids.take();
  if (!id) return refuse(op, "every group id is in use", ENOSPC);
  if (auto written = s.groups.update(*id, *value); !written) {
    s.group_ids.give(*id);
    return written;
  }
  for (const auto& m : members) s.next_hops[m.next_hop].users++;
  s.group_table[name] = State::Group{members, *id, 0};
  return {};
}

Result<void> RouteTable::replace_group(const std::string& name, const std::vector<GroupMember>& members) {
  auto& s = *state_;
  constexpr std::string_view op = "replace group";
  auto it = s.group_table.find(name);
  if (it == s.group_table.end()) return refuse(op, "group '" + name + "' does not exist", ENOENT);
  auto value = s.group_value(members, op);
  if (!value) return value.error();
  // With no resolved member the buckets stay as they were (valid next hops) while its routes turn to the stack.
  if (s.group_usable(members))
    if (auto written = s.groups.update(it->second.id, *value); !written) return written;
  const bool was_usable = s.group_usable(it->second.members);
  for (const auto& m : it->second.members) s.next_hops[m.next_hop].users--;
  for (const auto& m : members) s.next_hops[m.next_hop].users++;
  it->second.members = members;
  if (was_usable != s.group_usable(members)) return s.refresh_values();
  return {};
}

Result<void> RouteTable::remove_group(const std::string& name) {
  auto& s = *state_;
  auto it = s.group_table.find(name);
  if (it == s.group_table.end()) return refuse("remove group", "group '" + name + "' does not exist", ENOENT);
  if (it->second.users > 0)
    return refuse("remove group", "group '" + name + "' is used by " + std::to_string(it->second.users) + " route(s)",
                  EBUSY);
  if (auto cleared = s.groups.update(it->second.id, sluice_fwd_group{}); !cleared) return cleared;
  s.group_ids.give(it->second.id);
  for (const auto& m : it->second.members) s.next_hops[m.next_hop].users--;
  s.group_table.erase(it);
  return {};
}

std::vector<GroupInfo> RouteTable::list_groups() const {
  std::vector<GroupInfo> out;
  for (const auto& [name, group] : state_->group_table) out.push_back({name, group.members, group.id, group.users});
  return out;
}

// ---- routes ----
Result<void> RouteTable::add_route(const Prefix& prefix, const RouteTarget& target, Origin origin) {
  auto& s = *state_;
  if (const auto* key = std::get_if<sluice_lpm_v4_key>(&prefix)) {
    if (auto put = s.put_route(s.routes_v4, s.v4, *key, target, false, origin, "add route"); !put) return put;
    return s.note_dir(s.sync_dir(*key, &s.v4.at(*key)));
  }
  return s.put_route(s.routes_v6, s.v6, std::get<sluice_lpm_v6_key>(prefix), target, false, origin, "add route");
}

Result<void> RouteTable::replace_route(const Prefix& prefix, const RouteTarget& target, Origin origin) {
  auto& s = *state_;
  if (const auto* key = std::get_if<sluice_lpm_v4_key>(&prefix)) {
    if (auto put = s.put_route(s.routes_v4, s.v4, *key, target, true, origin, "replace route"); !put) return put;
    return s.note_dir(s.sync_dir(*key, &s.v4.at(*key)));
  }
  return s.put_route(s.routes_v6, s.v6, std::get<sluice_lpm_v6_key>(prefix), target, true, origin, "replace route");
}

Result<void> RouteTable::remove_route(const Prefix& prefix, Origin origin) {
  auto& s = *state_;
  if (const auto* key = std::get_if<sluice_lpm_v4_key>(&prefix)) {
    if (auto gone = s.drop_route(s.routes_v4, s.v4, *key, origin); !gone) return gone;
    auto left = s.v4.find(*key);
    return s.note_dir(s.sync_dir(*key, left == s.v4.end() ? nullptr : &left->second));
  }
  return s.drop_route(s.routes_v6, s.v6, std::get<sluice_lpm_v6_key>(prefix), origin);
}

Result<std::vector<RouteInfo>> RouteTable::list_routes() const {
  std::vector<RouteInfo> out;
  auto add = [&](const Prefix& prefix, const State::Route& route) -> Result<void> {
    std::optional<sluice_counter> counter;
    if (route.slot) {
      auto summed = state_->summed(state_->route_counters, route.slot);
      if (!summed) return summed.error();
      counter = *summed;
    }
    if (route.by_static) out.push_back({prefix, *route.by_static, counter, Origin::Static, true});
    if (route.by_kernel)
      out.push_back({prefix, *route.by_kernel, route.by_static ? std::nullopt : counter, Origin::Kernel, !route.by_static});
    return {};
  };
  for (const auto& [key, route] : state_->v4)
    if (auto added = add(key, route); !added) return added.error();
  for (const auto& [key, route] : state_->v6)
    if (auto added = add(key, route); !added) return added.error();
  return out;
}

bool RouteTable::has_route(const Prefix& prefix, Origin origin) const {
  auto& s = *state_;
  if (const auto* key = std::get_if<sluice_lpm_v4_key>(&prefix)) {
    auto it = s.v4.find(*key);
    return it != s.v4.end() && (origin == Origin::Static ? it->second.by_static : it->second.by_kernel);
  }
  auto it = s.v6.find(std::get<sluice_lpm_v6_key>(prefix));
  return it != s.v6.end() && (origin == Origin::Static ? it->second.by_static : it->second.by_kernel);
}

bool RouteTable::has_next_hop(const std::string& name) const { return state_->next_hops.count(name) > 0; }
bool RouteTable::has_group(const std::string& name) const { return state_->group_table.count(name) > 0; }

// ---- neighbours ----
void RouteTable::set_neighbour_source(NeighbourSource* source) noexcept { state_->neighbours = source; }

Result<void> RouteTable::neighbour_changed(std::uint32_t ifindex, const IpAddress& address, std::optional<Mac> mac) {
  auto& s = *state_;
  if (mac && !unicast_mac(*mac)) mac.reset();  // a neighbour "resolved" to a multicast/zero MAC is not usable
  bool changed = false;
  for (auto& [name, hop] : s.next_hops) {
    if (!hop.spec.resolve_mac || hop.ifindex != ifindex || hop.spec.gateway != address) continue;
    if (mac) {
      if (hop.resolved && hop.spec.dst_mac == *mac) continue;
      sluice_fwd_nexthop value{};
      value.ifindex = hop.ifindex;
      value.port = hop.port;
      std::memcpy(value.src_mac, hop.spec.src_mac->data(), 6);
      std::memcpy(value.dst_mac, mac->data(), 6);
      // One element: a packet reads the old MAC or the new one.
      if (auto written = s.nexthops.update(hop.id, value); !written) return written;
      hop.spec.dst_mac = *mac;
      changed |= !hop.resolved;
      hop.resolved = true;
    } else if (hop.resolved) {
      hop.resolved = false;  // the map keeps the last MAC until no route reads this next hop
      changed = true;
    }
  }
  if (!changed) return {};
  return s.refresh_values();
}

bool RouteTable::wants_neighbour(std::uint32_t ifindex, const IpAddress& address) const {
  for (const auto& [name, hop] : state_->next_hops)
    if (hop.spec.resolve_mac && hop.ifindex == ifindex && hop.spec.gateway == address) return true;
  return false;
}

Result<void> RouteTable::refresh_neighbours() {
  auto& s = *state_;
  if (!s.neighbours) return {};
  std::vector<std::pair<std::uint32_t, IpAddress>> wanted;
  for (const auto& [name, hop] : s.next_hops)
    if (hop.spec.resolve_mac) wanted.push_back({hop.ifindex, *hop.spec.gateway});
  for (const auto& [ifindex, address] : wanted)
    if (auto followed = neighbour_changed(ifindex, address, s.neighbours->lookup(ifindex, address)); !followed)
      return followed;
  return {};
}

std::size_t RouteTable::route_count() const noexcept { return state_->v4.size() + state_->v6.size(); }

// ---- settings ----
Result<void> RouteTable::set_no_route_verdict(sluice_verdict verdict) {
  if (verdict != SLUICE_VERDICT_PASS && verdict != SLUICE_VERDICT_DROP)
    return refuse("set no-route verdict", "verdict " + std::to_string(verdict) + " is neither pass nor drop");
  auto next = state_->settings;
  next.no_route_verdict = verdict;
  if (auto written = state_->settings_map.update(0, next); !written) return written;
  state_->settings = next;
  return {};
}

Result<void> RouteTable::set_cpumap(const CpumapSettings& cpumap) {
  auto& s = *state_;
  constexpr std::string_view op = "set cpumap";
  const int possible_count = libbpf_num_possible_cpus();
  if (possible_count <= 0) return maps::make_error("count possible CPUs for", "cpumap", -possible_count);
  const auto* possible = &possible_count;
  if (cpumap.cpus.size() > SLUICE_FWD_MAX_CPUS)
    return refuse(op, std::to_string(cpumap.cpus.size()) + " CPUs, at most " + std::to_string(SLUICE_FWD_MAX_CPUS));
  if (cpumap.queue_size == 0 || cpumap.queue_size > SLUICE_FWD_CPUMAP_QSIZE_MAX)
    return refuse(op, "queue size " + std::to_string(cpumap.queue_size) + " is outside 1.." +
                          std::to_string(SLUICE_FWD_CPUMAP_QSIZE_MAX));
  std::set<std::uint32_t> seen;
  for (std::uint32_t cpu : cpumap.cpus) {
    if (cpu >= static_cast<std::uint32_t>(*possible) || cpu >= SLUICE_FWD_MAX_CPUS)
      return refuse(op, "CPU " + std::to_string(cpu) + " does not exist (possible CPUs: 0.." +
                            std::to_string(*possible - 1) + ")", ENODEV);
    if (!seen.insert(cpu).second) return refuse(op, "CPU " + std::to_string(cpu) + " listed twice");
  }
  // Entries first, then the settings that make packets use them; stale entries last.
  for (std::uint32_t cpu : cpumap.cpus) {
    bpf_cpumap_val value{};
    value.qsize = cpumap.queue_size;
    if (bpf_map_update_elem(s.cpus.fd(), &cpu, &value, BPF_ANY)) {
      const int err = errno;
      for (std::uint32_t added : cpumap.cpus) {
        if (added == cpu) break;
        if (std::find(s.cpumap_entries.begin(), s.cpumap_entries.end(), added) == s.cpumap_entries.end())
          bpf_map_delete_elem(s.cpus.fd(), &added);
      }
      return maps::make_error("add CPU " + std::to_string(cpu) + " to", s.cpus.name(), err);
    }
  }
  auto next = s.settings;
  next.cpu_count = static_cast<std::uint32_t>(cpumap.cpus.size());
  std::fill(std::begin(next.cpus), std::end(next.cpus), 0u);
  std::copy(cpumap.cpus.begin(), cpumap.cpus.end(), next.cpus);
  if (auto written = s.settings_map.update(0, next); !written) return written;
  s.settings = next;
  for (std::uint32_t cpu : s.cpumap_entries)
    if (!seen.count(cpu)) bpf_map_delete_elem(s.cpus.fd(), &cpu);  // unused by packets now: harmless if it stays
  s.cpumap_entries = cpumap.cpus;
  return {};
}

Result<void> RouteTable::set_icmp(const IcmpSettings& icmp) {
  constexpr std::string_view op = "set icmp";
  if (icmp.rate_per_sec > kIcmpRateMax)
    return refuse(op, "rate " + std::to_string(icmp.rate_per_sec) + " is above " + std::to_string(kIcmpRateMax));
  if (icmp.burst > kIcmpRateMax)
    return refuse(op, "burst " + std::to_string(icmp.burst) + " is above " + std::to_string(kIcmpRateMax));
  if (icmp.rate_per_sec > 0 && icmp.burst == 0) return refuse(op, "burst 0 with a rate: no answer could ever go");
  auto next = state_->settings;
  next.icmp_rate = icmp.rate_per_sec;
  next.icmp_burst = icmp.burst;
  next.icmp_src_v4 = 0;
  std::fill(std::begin(next.icmp_src_v6), std::end(next.icmp_src_v6), 0u);
  if (icmp.source_v4) std::memcpy(&next.icmp_src_v4, icmp.source_v4->data(), 4);
  if (icmp.source_v6) std::memcpy(next.icmp_src_v6, icmp.source_v6->data(), 16);
  if (auto written = state_->settings_map.update(0, next); !written) return written;
  state_->settings = next;
  return {};
}

const sluice_fwd_settings& RouteTable::settings() const noexcept { return state_->settings; }

bool RouteTable::dir24_8_active() const noexcept { return state_->dir.plugged(); }
const std::string& RouteTable::dir24_8_error() const noexcept { return state_->dir_error; }

Result<std::vector<sluice_counter>> RouteTable::event_counters() const {
  std::vector<sluice_counter> out;
  for (std::uint32_t slot = 0; slot < SLUICE_FWD_EVENT_SLOTS; ++slot) {
    auto counter = state_->summed(state_->event_counters, slot);
    if (!counter) return counter.error();
    out.push_back(*counter);
  }
  return out;
}

}  // namespace sluice::route
