#include "kernel_mirror.hpp"

#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/route/link.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "netlink.hpp"

namespace sluice::route {
namespace {

struct PrefixLess {
  bool operator()(const Prefix& a, const Prefix& b) const {
    if (a.index() != b.index()) return a.index() < b.index();
    if (const auto* x = std::get_if<sluice_lpm_v4_key>(&a))
      return std::memcmp(x, &std::get<sluice_lpm_v4_key>(b), sizeof(*x)) < 0;
    return std::memcmp(&std::get<sluice_lpm_v6_key>(a), &std::get<sluice_lpm_v6_key>(b), sizeof(sluice_lpm_v6_key)) < 0;
  }
};

struct Path {
  std::uint32_t ifindex = 0;
  std::string ifname;
  IpAddress gateway;
  std::uint32_t weight = 1;
  auto operator<=>(const Path&) const = default;
};

enum class How { NextHop, Group, ToStack, Unexpressible };

// What sluice should do with one kernel route.
struct Wanted {
  How how = How::ToStack;
  std::vector<Path> paths;  // NextHop: one; Group: 2..16, sorted
  bool operator==(const Wanted&) const = default;
};

// A kernel route as libnl parsed it: its prefix, metric and translation; or why it is skipped.
struct Translated {
  Prefix prefix;
  std::uint32_t priority = 0;
  std::optional<Wanted> wanted;  // empty: skipped
  std::string identity;          // for the skipped set: prefix, tos, source, metric
};

std::string hop_name(const Path& path) { return "kernel:" + path.ifname + ":" + path.gateway.to_string(); }

// IFF_LOWER_UP is in linux/if.h, which clashes with net/if.h; its value is ABI.
constexpr unsigned kIffLowerUp = 1u << 16;
constexpr unsigned kLinkStateFlags = IFF_UP | IFF_RUNNING | kIffLowerUp;

bool is_full(int errnum) { return errnum == ENOSPC || errnum == E2BIG; }

std::optional<Prefix> prefix_of(int family, const nl_addr* dst) {
  const unsigned len = dst ? nl_addr_get_len(dst) : 0;
  const unsigned bits = dst ? nl_addr_get_prefixlen(dst) : 0;
  const auto* bytes = dst ? static_cast<const std::uint8_t*>(nl_addr_get_binary_addr(dst)) : nullptr;
  auto fill = [&](auto key) -> std::optional<Prefix> {
    constexpr unsigned size = sizeof(key.addr);
    if (bits > size * 8 || (len != 0 && len != size)) return std::nullopt;
    key.prefixlen = bits;
    if (len) std::memcpy(key.addr, bytes, size);
    for (unsigned bit = bits; bit < size * 8; ++bit) key.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    return Prefix{key};
  };
  if (family == AF_INET) return fill(sluice_lpm_v4_key{});
  if (family == AF_INET6) return fill(sluice_lpm_v6_key{});
  return std::nullopt;
}

// Only the table's v4/v6 routes are ours; anything else is no concern (nullopt).
std::optional<Translated> translate(rtnl_route* route, std::uint32_t table) {
  const int family = rtnl_route_get_family(route);
  if ((family != AF_INET && family != AF_INET6) || rtnl_route_get_table(route) != table) return std::nullopt;
  if (rtnl_route_get_flags(route) & RTM_F_CLONED) return std::nullopt;  // a route cache entry, not a route
  auto prefix = prefix_of(family, rtnl_route_get_dst(route));
  if (!prefix) return std::nullopt;
  Translated out{*prefix, rtnl_route_get_priority(route), std::nullopt, {}};
  const nl_addr* src = rtnl_route_get_src(route);
  const unsigned src_len = src ? nl_addr_get_prefixlen(src) : 0;
  out.identity = maps::to_string(*prefix) + " tos " + std::to_string(rtnl_route_get_tos(route)) + " from /" +
                 std::to_string(src_len) + " metric " + std::to_string(out.priority);
  if (rtnl_route_get_tos(route) != 0 || src_len > 0) return out;  // a lookup key sluice does not have

  Wanted wanted;
  switch (rtnl_route_get_type(route)) {
    case RTN_UNICAST:
      break;
    case RTN_LOCAL:
    case RTN_BROADCAST:
    case RTN_ANYCAST:
    case RTN_BLACKHOLE:
    case RTN_UNREACHABLE:
    case RTN_PROHIBIT:
    case RTN_THROW:
      out.wanted = Wanted{How::ToStack, {}};  // the kernel does what its table says
      return out;
    default:
      return out;  // multicast, NAT, ...: skipped
  }
  bool device_only = false;
  const int count = rtnl_route_get_nnexthops(route);
  for (int i = 0; i < count; ++i) {
    rtnl_nexthop* nh = rtnl_route_nexthop_n(route, i);
    if (!nh || (rtnl_route_nh_get_flags(nh) & RTNH_F_DEAD)) continue;  // the kernel does not use dead paths
    if (rtnl_route_nh_get_via(nh) || rtnl_route_nh_get_encap_mpls_dst(nh)) {
      out.wanted = Wanted{How::Unexpressible, {}};
      return out;
    }
    const auto gateway = netlink::ip_of(rtnl_route_nh_get_gateway(nh));
    const int ifindex = rtnl_route_nh_get_ifindex(nh);
    char ifname[IF_NAMESIZE] = {};
    if (ifindex <= 0 || !::if_indextoname(static_cast<unsigned>(ifindex), ifname)) {
      out.wanted = Wanted{How::Unexpressible, {}};
      return out;
    }
    if (!gateway) {
      device_only = true;
      continue;
    }
    if (gateway->family != family) {
      out.wanted = Wanted{How::Unexpressible, {}};
      return out;
    }
    // The kernel's rtnh_hops is weight - 1 (1..256 on the wire as 0..255).
    const std::uint32_t weight = std::min<std::uint32_t>(rtnl_route_nh_get_weight(nh) + 1u, SLUICE_FWD_WEIGHT_MAX);
    wanted.paths.push_back({static_cast<std::uint32_t>(ifindex), ifname, *gateway, weight});
  }
  if (device_only || wanted.paths.empty()) {
    // A connected subnet (each destination its own neighbour), or no live path: the kernel's to handle.
    out.wanted = Wanted{How::ToStack, {}};
    return out;
  }
  if (wanted.paths.size() > SLUICE_FWD_GROUP_MAX_MEMBERS) {
    out.wanted = Wanted{How::Unexpressible, {}};
    return out;
  }
  std::sort(wanted.paths.begin(), wanted.paths.end());
  if (wanted.paths.size() == 1) {
    wanted.how = How::NextHop;
    wanted.paths.front().weight = 1;
  } else {
    wanted.how = How::Group;
  }
  out.wanted = std::move(wanted);
  return out;
}

}  // namespace

struct KernelMirror::State {
  struct Installed {
    Wanted wanted;
    std::vector<std::string> hops;
    std::string group;
  };

  RouteTable* table = nullptr;
  KernelMirrorOptions options;
  netlink::CacheManager events;
  netlink::Socket dumps;
  nl_cache* cache = nullptr;  // owned by the manager
  nl_cache* links = nullptr;  // owned by the manager
  bool stopped = false;
  // A link went down or away: IPv4 flushes its routes without a notification per route.
  bool links_changed = false;
  std::map<int, unsigned> link_flags{};

  // The kernel's routes of the table, by prefix and metric (only the translated ones).
  std::map<Prefix, std::map<std::uint32_t, Wanted>, PrefixLess> kernel{};
  std::set<std::string> skipped{};
  std::map<Prefix, Installed, PrefixLess> installed{};
  std::set<Prefix, PrefixLess> refused{};
  std::map<std::string, std::size_t> hop_refs{}, group_refs{};
  std::uint64_t changes = 0, resyncs = 0, errors = 0, fallbacks = 0;
  // A link event asks for a dump; dumps are spaced by kLinkResyncSpacing so
  // a flapping link costs one dump per spacing, not one per flap.
  std::optional<std::chrono::steady_clock::time_point> resync_due{};
  std::chrono::steady_clock::time_point last_resync{};
  std::string last_error{};
  std::optional<Error> callback_error{};

  void note(const Error& error) {
    ++errors;
    last_error = error.message;
  }

  void record(const Translated& t, bool present) {
    if (!t.wanted) {
      if (present) skipped.insert(t.identity);
      else skipped.erase(t.identity);
      return;
    }
    if (present) {
      kernel[t.prefix][t.priority] = *t.wanted;
      return;
    }
    auto it = kernel.find(t.prefix);
    if (it == kernel.end()) return;
    it->second.erase(t.priority);
    if (it->second.empty()) kernel.erase(it);
  }

  Result<void> take_hop(const Path& path) {
    const std::string name = hop_name(path);
    if (auto it = hop_refs.find(name); it != hop_refs.end()) {
      ++it->second;
      return {};
    }
    if (table->has_next_hop(name))
      return Error{EEXIST, "mirror kernel route: next hop '" + name + "' exists and is not the mirror's"};
    NextHopSpec spec;
    spec.interface = path.ifname;
    spec.gateway = path.gateway;
    spec.resolve_mac = true;
    if (auto added = table->add_next_hop(name, spec); !added) return added;
    hop_refs[name] = 1;
    return {};
  }

  void give_hop(const std::string& name) {
    auto it = hop_refs.find(name);
    if (it == hop_refs.end() || --it->second > 0) return;
    hop_refs.erase(it);
    if (auto gone = table->remove_next_hop(name); !gone) note(gone.error());
  }

  void give(const Installed& inst) {
    if (!inst.group.empty()) {
      auto it = group_refs.find(inst.group);
      if (it != group_refs.end() && --it->second == 0) {
        group_refs.erase(it);
        if (auto gone = table->remove_group(inst.group); !gone) note(gone.error());
      }
    }
    for (const auto& hop : inst.hops) give_hop(hop);
  }

  // Next hops and group for `wanted`, taken (counted) by the mirror; the route's target.
  Result<RouteTarget> take(const Wanted& wanted, Installed& inst) {
    inst.wanted = wanted;
    if (wanted.how == How::ToStack || wanted.how == How::Unexpressible) return RouteTarget::to_stack();
    for (const auto& path : wanted.paths) {
      if (auto taken = take_hop(path); !taken) {
        give(inst);
        return taken.error();
      }
      inst.hops.push_back(hop_name(path));
    }
    if (wanted.how == How::NextHop) return RouteTarget::next_hop(inst.hops.front());
    std::string name = "kernel:ecmp";
    std::vector<GroupMember> members;
    for (std::size_t i = 0; i < wanted.paths.size(); ++i) {
      name += (i ? "," : ":") + inst.hops[i] + "*" + std::to_string(wanted.paths[i].weight);
      members.push_back({inst.hops[i], wanted.paths[i].weight});
    }
    if (auto it = group_refs.find(name); it != group_refs.end()) {
      ++it->second;
    } else if (table->has_group(name)) {
      give(inst);
      return Error{EEXIST, "mirror kernel route: group '" + name + "' exists and is not the mirror's"};
    } else if (auto added = table->add_group(name, members); !added) {
      give(inst);
      return added.error();
    } else {
      group_refs[name] = 1;
    }
    inst.group = name;
    return RouteTarget::group(name);
  }

  // Makes the Kernel route of `prefix` what the kernel's lowest-metric route says.
  void apply(const Prefix& prefix) {
    const Wanted* desired = nullptr;
    if (auto it = kernel.find(prefix); it != kernel.end() && !it->second.empty()) desired = &it->second.begin()->second;
    auto inst = installed.find(prefix);
    if (!desired) {
      refused.erase(prefix);
      if (inst == installed.end()) return;
      if (auto gone = table->remove_route(prefix, Origin::Kernel); !gone && gone.error().errnum != ENOENT) {
        note(gone.error());
        return;
      }
      give(inst->second);
      installed.erase(inst);
      return;
    }
    if (inst != installed.end() && inst->second.wanted == *desired) return;
    if (inst == installed.end() && installed.size() >= options.max_routes) {
      refused.insert(prefix);
      return;
    }
    Installed next;
    auto target = take(*desired, next);
    Result<void> put = target ? table->replace_route(prefix, *target, Origin::Kernel) : Result<void>(target.error());
    if (!put) {
      if (target) give(next);
      if (!is_full(put.error().errnum)) note(put.error());
      // What the kernel says cannot be installed (no room for its next hop,
      // an interface gone): the kernel forwards it. Never the route's old
      // next hop (a gateway the kernel left), never a shorter prefix's.
      next = Installed{Wanted{How::Unexpressible, {}}, {}, {}};
      if (inst != installed.end() && inst->second.wanted == next.wanted) return;
      if (auto stacked = table->replace_route(prefix, RouteTarget::to_stack(), Origin::Kernel); !stacked) {
        if (!is_full(stacked.error().errnum)) note(stacked.error());
        if (inst != installed.end()) {
          // Not even that: off the table, so the old next hop carries nothing.
          if (auto gone = table->remove_route(prefix, Origin::Kernel); !gone && gone.error().errnum != ENOENT)
            note(gone.error());
          give(inst->second);
          installed.erase(inst);
        }
        refused.insert(prefix);
        return;
      }
      ++fallbacks;
    }
    refused.erase(prefix);
    if (inst != installed.end()) {
      give(inst->second);  // after the route left them
      inst->second = std::move(next);
    } else {
      installed.emplace(prefix, std::move(next));
    }
  }

  void changed(nl_object* object, int action) {
    auto translated = translate(reinterpret_cast<rtnl_route*>(object), options.table);
    if (!translated) return;
    ++changes;
    record(*translated, action != NL_ACT_DEL);
    apply(translated->prefix);
  }

  static void on_change(nl_cache*, nl_object* object, int action, void* self) {
    static_cast<State*>(self)->changed(object, action);
  }

  // The kernel removes IPv4 routes through a link that goes down or away (and marks
  // multipath legs dead) without telling route listeners: a link event means resync.
  static void on_link(nl_cache*, nl_object* object, int action, void* self) {
    auto& s = *static_cast<State*>(self);
    auto* link = reinterpret_cast<rtnl_link*>(object);
    const int ifindex = rtnl_link_get_ifindex(link);
    const unsigned flags = rtnl_link_get_flags(link) & kLinkStateFlags;
    auto it = s.link_flags.find(ifindex);
    if (action == NL_ACT_DEL) {
      s.link_flags.erase(ifindex);
      s.links_changed = true;
      return;
    }
    if (it != s.link_flags.end() && it->second != flags) s.links_changed = true;
    s.link_flags[ifindex] = flags;
  }

  // From the cache as it is: what the kernel has, then every prefix made to match.
  void reconcile() {
    kernel.clear();
    skipped.clear();
    for (nl_object* object = nl_cache_get_first(cache); object; object = nl_cache_get_next(object))
      if (auto translated = translate(reinterpret_cast<rtnl_route*>(object), options.table))
        record(*translated, true);
    std::set<Prefix, PrefixLess> prefixes(refused.begin(), refused.end());
    for (const auto& [prefix, routes] : kernel) prefixes.insert(prefix);
    for (const auto& [prefix, inst] : installed) prefixes.insert(prefix);
    // Removals first: they free room for refused prefixes.
    for (const auto& prefix : prefixes)
      if (!kernel.count(prefix)) apply(prefix);
    for (const auto& prefix : prefixes)
      if (kernel.count(prefix)) apply(prefix);
  }
};

KernelMirror::KernelMirror(std::unique_ptr<State> state) : state_(std::move(state)) {}

KernelMirror::~KernelMirror() {
  if (state_) (void)stop();
}

Result<std::unique_ptr<KernelMirror>> KernelMirror::open(RouteTable& table, KernelMirrorOptions options) {
  if (options.table == 0 || options.table == kLocalTable)
    return Error{EINVAL, "route sync: table " + std::to_string(options.table) +
                             " cannot be mirrored (0 is unspecified, 255 holds the box's own addresses)"};
  auto state = std::make_unique<State>();
  state->table = &table;
  state->options = options;
  auto events = netlink::CacheManager::open("kernel routes", options.receive_buffer_bytes);
  if (!events) return events.error();
  state->events = std::move(*events);
  auto dumps = netlink::connect_route_socket("kernel route dumps");
  if (!dumps) return dumps.error();
  state->dumps = std::move(*dumps);
  // Subscribes to the IPv4 and IPv6 route groups and dumps every table once; the callback is
  // not called for the dump (reconcile reads it).
  if (int rc = nl_cache_mngr_add(state->events.manager.get(), "route/route", &State::on_change, state.get(), &state->cache);
      rc < 0)
    return netlink::nl_error("follow the kernel's routes", rc);
  if (int rc = nl_cache_mngr_add(state->events.manager.get(), "route/link", &State::on_link, state.get(), &state->links);
      rc < 0)
    return netlink::nl_error("follow the kernel's links", rc);
  for (nl_object* object = nl_cache_get_first(state->links); object; object = nl_cache_get_next(object)) {
    auto* link = reinterpret_cast<rtnl_link*>(object);
    state->link_flags[rtnl_link_get_ifindex(link)] = rtnl_link_get_flags(link) & kLinkStateFlags;
  }
  state->reconcile();
  return std::unique_ptr<KernelMirror>(new KernelMirror(std::move(state)));
}

int KernelMirror::fd() const { return state_->events.fd(); }

Result<void> KernelMirror::process_pending() {
  auto& s = *state_;
  if (s.stopped) return {};
  const int rc = nl_cache_mngr_data_ready(s.events.manager.get());
  if (rc == -NLE_NOMEM) return resync();  // ENOBUFS: notifications were lost
  if (rc < 0 && rc != -NLE_AGAIN) return netlink::nl_error("read route notifications", rc);
  const auto now = std::chrono::steady_clock::now();
  if (s.links_changed) {
    s.links_changed = false;
    if (!s.resync_due) s.resync_due = std::max(now, s.last_resync + kLinkResyncSpacing);
  }
  if (s.resync_due && now >= *s.resync_due) return resync();
  return {};
}

std::optional<std::chrono::steady_clock::time_point> KernelMirror::next_deadline() const {
  return state_->stopped ? std::nullopt : state_->resync_due;
}

Result<void> KernelMirror::resync() {
  auto& s = *state_;
  if (s.stopped) return {};
  ++s.resyncs;
  s.resync_due.reset();
  s.last_resync = std::chrono::steady_clock::now();
  if (int rc = nl_cache_refill(s.dumps.get(), s.cache); rc < 0) return netlink::nl_error("dump the kernel's routes", rc);
  if (int rc = nl_cache_refill(s.dumps.get(), s.links); rc < 0) return netlink::nl_error("dump the kernel's links", rc);
  s.reconcile();
  return {};
}

Result<void> KernelMirror::stop() {
  auto& s = *state_;
  if (s.stopped) return {};
  std::optional<Error> first;
  for (auto& [prefix, inst] : s.installed) {
    if (auto gone = s.table->remove_route(prefix, Origin::Kernel); !gone && gone.error().errnum != ENOENT) {
      s.note(gone.error());
      if (!first) first = gone.error();
    }
    s.give(inst);
  }
  s.installed.clear();
  s.refused.clear();
  s.kernel.clear();
  s.stopped = true;
  if (first) return *first;
  return {};
}

KernelMirrorStats KernelMirror::stats() const {
  const auto& s = *state_;
  KernelMirrorStats out;
  for (const auto& [prefix, inst] : s.installed) {
    switch (inst.wanted.how) {
      case How::NextHop: ++out.via_next_hop; break;
      case How::Group: ++out.via_group; break;
      case How::ToStack: ++out.to_stack; break;
      case How::Unexpressible: ++out.unexpressible; break;
    }
  }
  out.skipped = s.skipped.size();
  out.refused_full = s.refused.size();
  out.changes = s.changes;
  out.resyncs = s.resyncs;
  out.fallbacks = s.fallbacks;
  out.errors = s.errors;
  out.last_error = s.last_error;
  return out;
}

std::uint32_t KernelMirror::table_id() const noexcept { return state_->options.table; }

}  // namespace sluice::route
