#include "lb_table.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <numeric>
#include <set>
#include <span>
#include <string>

#include "maglev.hpp"
#include "sluice.skel.h"

namespace sluice::lb {
namespace {

using maps::ArrayMap;
using maps::HashMap;
using maps::MapFd;
using maps::PerCpuArrayMap;

constexpr std::size_t kIpv4Bytes = 4;
constexpr std::size_t kIpv6Bytes = 16;
constexpr int kIpVersion4 = 4;
constexpr int kIpVersion6 = 6;
// Kernel name of every Maglev inner array (BPF_OBJ_NAME_LEN - 1 characters at most).
constexpr const char* kInnerMapName = "lb_maglev_tbl";

template <class Handle>
Result<Handle> handle_of(const bpf_map* map) {
  auto fd = MapFd::from_skeleton(map);
  if (!fd) return fd.error();
  return Handle::from(std::move(*fd));
}

Error lb_error(std::string_view operation, std::string_view reason, int errnum = EINVAL) {
  return maps::make_error_because(operation, "lb", reason, errnum);
}

// ---- contract encodings ----

sluice_lb_vip_key encode_key(const VipKey& key) {
  sluice_lb_vip_key out{};
  std::memcpy(out.addr, key.address.bytes.data(), key.address.family == kIpVersion4 ? kIpv4Bytes : kIpv6Bytes);
  out.port = key.port;
  out.proto = static_cast<std::uint8_t>(key.protocol);
  out.ip_version = static_cast<std::uint8_t>(key.address.family);
  return out;
}

Result<Address> decode_address(const __u32 (&addr)[4], unsigned ip_version, std::string_view where) {
  Address address;
  if (ip_version != kIpVersion4 && ip_version != kIpVersion6)
    return lb_error("read", std::string(where) + ": ip_version " + std::to_string(ip_version) + " out of range (4 or 6)");
  address.family = static_cast<int>(ip_version);
  std::memcpy(address.bytes.data(), addr, ip_version == kIpVersion4 ? kIpv4Bytes : kIpv6Bytes);
  return address;
}

Result<VipKey> decode_key(const sluice_lb_vip_key& key) {
  auto address = decode_address(key.addr, key.ip_version, "lb_vips key");
  if (!address) return address.error();
  if (key.proto != static_cast<std::uint8_t>(Protocol::Tcp) && key.proto != static_cast<std::uint8_t>(Protocol::Udp))
    return lb_error("read", "lb_vips key " + to_string(*address) + ": protocol " + std::to_string(key.proto) +
                                " out of range (tcp or udp)");
  return VipKey{.address = *address, .port = key.port, .protocol = static_cast<Protocol>(key.proto)};
}

sluice_lb_vip encode_vip(const Vip& vip, std::uint32_t vip_id) {
  return sluice_lb_vip{.vip_id = vip_id, .flags = vip.l2_dsr ? SLUICE_LB_VIP_F_L2_DSR : 0u};
}

sluice_lb_settings encode_settings(const LbSettings& settings) {
  sluice_lb_settings out{};
  out.version = SLUICE_LB_SETTINGS_VERSION;
  out.flags = settings.entropy_source ? SLUICE_LB_F_ENTROPY_SOURCE : 0u;
  if (settings.encap_source_v4) std::memcpy(&out.encap_src_v4, settings.encap_source_v4->bytes.data(), kIpv4Bytes);
  if (settings.encap_source_v6) std::memcpy(out.encap_src_v6, settings.encap_source_v6->bytes.data(), kIpv6Bytes);
  out.egress = static_cast<std::uint32_t>(settings.egress);
  out.conn_timeout_s = settings.conn_timeout_s;
  if (settings.next_hop_mac) std::memcpy(out.next_hop_mac, settings.next_hop_mac->data(), sizeof(out.next_hop_mac));
  if (settings.src_mac) std::memcpy(out.src_mac, settings.src_mac->data(), sizeof(out.src_mac));
  out.mtu = settings.mtu;
  out.icmp_rate = settings.icmp_rate;
  out.icmp_burst = settings.icmp_burst;
  return out;
}

template <std::size_t N>
bool all_zero(const std::uint8_t (&bytes)[N]) {
  return std::all_of(std::begin(bytes), std::end(bytes), [](std::uint8_t b) { return b == 0; });
}

Result<LbSettings> decode_settings(const sluice_lb_settings& in) {
  LbSettings out;
  if (in.egress >= SLUICE_LB_EGRESS_COUNT)
    return lb_error("read", "lb_settings: egress " + std::to_string(in.egress) + " out of range");
  out.entropy_source = (in.flags & SLUICE_LB_F_ENTROPY_SOURCE) != 0;
  if (in.encap_src_v4 != 0) {
    Address a{.family = kIpVersion4};
    std::memcpy(a.bytes.data(), &in.encap_src_v4, kIpv4Bytes);
    out.encap_source_v4 = a;
  }
  if (std::any_of(std::begin(in.encap_src_v6), std::end(in.encap_src_v6), [](__u32 w) { return w != 0; })) {
    Address a{.family = kIpVersion6};
    std::memcpy(a.bytes.data(), in.encap_src_v6, kIpv6Bytes);
    out.encap_source_v6 = a;
  }
  out.egress = static_cast<sluice_lb_egress>(in.egress);
  out.conn_timeout_s = in.conn_timeout_s;
  std::array<std::uint8_t, 6> mac{};
  if (!all_zero(in.next_hop_mac)) {
    std::memcpy(mac.data(), in.next_hop_mac, mac.size());
    out.next_hop_mac = mac;
  }
  if (!all_zero(in.src_mac)) {
    std::memcpy(mac.data(), in.src_mac, mac.size());
    out.src_mac = mac;
  }
  out.mtu = in.mtu;
  out.icmp_rate = in.icmp_rate;
  out.icmp_burst = in.icmp_burst;
  return out;
}

bool same_bytes(const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

sluice_lb_counter add_counters(const std::vector<sluice_lb_counter>& per_cpu) {
  return maps::sum(per_cpu, [](sluice_lb_counter& total, const sluice_lb_counter& cpu) {
    total.packets += cpu.packets;
    total.bytes += cpu.bytes;
    total.new_conns += cpu.new_conns;
  });
}

// The slot state a backend of a VIP should have in lb_backends.
sluice_lb_backend_state slot_state(const Backend& backend, Health health) {
  if (backend.state == BackendState::Draining) return SLUICE_LB_BACKEND_DRAINING;
  if (health == Health::Down) return SLUICE_LB_BACKEND_DOWN;
  return SLUICE_LB_BACKEND_UP;
}

// What a VIP's table is built from: the UP backends whose health is not Down, and the size.
struct TableInput {
  std::uint32_t table_size = 0;
  std::vector<std::pair<Address, std::uint32_t>> members;  // (address, weight), sorted
  bool operator==(const TableInput&) const = default;
};

}  // namespace

// Per VIP: its id, its backends' slots and health, and what its live table holds.
struct VipRuntime {
  std::uint32_t vip_id = 0;
  std::map<Address, std::uint32_t> slot_of;
  std::map<Address, Health> health;
  // What the live table was built from; empty optional: unknown (read back
  // from pins), so the next change rebuilds it.
  std::optional<TableInput> built;
  std::map<std::uint32_t, std::uint32_t> entries_per_slot;  // census of the live table
};

struct LbTable::State {
  State(HashMap<sluice_lb_vip_key, sluice_lb_vip> vips_, MapFd maglev_, ArrayMap<sluice_lb_backend> backends_,
        HashMap<sluice_lb_flow_v4_key, sluice_lb_conn> conns_v4_, HashMap<sluice_lb_flow_key, sluice_lb_conn> conns_,
        ArrayMap<sluice_lb_settings> settings_, PerCpuArrayMap<sluice_lb_counter> vip_counters_,
        PerCpuArrayMap<sluice_lb_counter> backend_counters_, PerCpuArrayMap<std::uint64_t> event_counters_)
      : vips(std::move(vips_)), maglev(std::move(maglev_)), backends(std::move(backends_)),
        conns_v4(std::move(conns_v4_)), conns(std::move(conns_)), settings(std::move(settings_)),
        vip_counters(std::move(vip_counters_)), backend_counters(std::move(backend_counters_)),
        event_counters(std::move(event_counters_)) {}

  HashMap<sluice_lb_vip_key, sluice_lb_vip> vips;
  MapFd maglev;  // ARRAY_OF_MAPS: no typed handle; values are inner map fds (write) / ids (read)
  ArrayMap<sluice_lb_backend> backends;
  HashMap<sluice_lb_flow_v4_key, sluice_lb_conn> conns_v4;
  HashMap<sluice_lb_flow_key, sluice_lb_conn> conns;
  ArrayMap<sluice_lb_settings> settings;
  PerCpuArrayMap<sluice_lb_counter> vip_counters;
  PerCpuArrayMap<sluice_lb_counter> backend_counters;
  PerCpuArrayMap<std::uint64_t> event_counters;

  LbConfig config;
  std::map<VipKey, VipRuntime> runtime;
  bool read_back_settled = false;  // settle_read_back_tables(): the start is done with them
  std::vector<sluice_lb_backend> slots;  // mirror of lb_backends
  std::optional<sluice_lb_settings> settings_written;  // lb_settings[0] when it holds our version
  std::set<std::uint32_t> orphan_tables;  // lb_maglev ids without a VIP (a crash between steps)
  std::set<std::uint32_t> orphan_slots;   // taken slots without a VIP (likewise): freed by the next change

  Result<void> apply(const LbConfig& config, const std::map<VipKey, std::map<Address, Health>>& health);
};

namespace {

// An undo log: each write that succeeded pushes how to take it back.
class Journal {
 public:
  void push(std::string what, std::function<Result<void>()> undo) { steps_.push_back({std::move(what), std::move(undo)}); }
  // Undoes in reverse order; returns the error to report (with "undo incomplete" if an undo failed).
  Error fail(Error error) {
    std::string incomplete;
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
      if (auto undone = it->undo(); !undone) {
        if (!incomplete.empty()) incomplete += "; ";
        incomplete += it->what + ": " + undone.error().message;
      }
    }
    steps_.clear();
    if (!incomplete.empty()) error.message += " (undo incomplete: " + incomplete + ")";
    else error.message += " (nothing changed: undone)";
    return error;
  }
  void commit() { steps_.clear(); }

 private:
  struct Step {
    std::string what;
    std::function<Result<void>()> undo;
  };
  std::vector<Step> steps_;
};

// The inner map live at lb_maglev[vip_id], as an fd of our own (empty: none).
Result<std::optional<MapFd>> live_table(const MapFd& outer, std::uint32_t vip_id) {
  std::uint32_t inner_id = 0;
  if (bpf_map_lookup_elem(outer.fd(), &vip_id, &inner_id) != 0) {
    if (errno == ENOENT) return std::optional<MapFd>{};
    return maps::make_error("lookup", "lb_maglev[" + std::to_string(vip_id) + "]", errno);
  }
  const int fd = bpf_map_get_fd_by_id(inner_id);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<MapFd>{};  // replaced meanwhile
    return maps::make_error("open by id", "lb_maglev[" + std::to_string(vip_id) + "] inner map", errno);
  }
  auto adopted = MapFd::adopt(fd, "lb_maglev inner map");
  if (!adopted) return adopted.error();
  return std::optional<MapFd>{std::move(*adopted)};
}

Result<void> set_table(const MapFd& outer, std::uint32_t vip_id, const std::optional<MapFd>& inner) {
  const std::string what = "lb_maglev[" + std::to_string(vip_id) + "]";
  if (!inner) {
    if (bpf_map_delete_elem(outer.fd(), &vip_id) != 0 && errno != ENOENT) return maps::make_error("delete", what, errno);
    return {};
  }
  const std::uint32_t fd = static_cast<std::uint32_t>(inner->fd());
  if (bpf_map_update_elem(outer.fd(), &vip_id, &fd, BPF_ANY) != 0) return maps::make_error("update", what, errno);
  return {};
}

// A fresh inner array holding a whole table: entry 0 the size, 1..N the backend ids. Frozen:
// no syscall writes it again, so a live table is never changed in place.
Result<MapFd> make_table(std::uint32_t table_size, const std::vector<std::uint32_t>& backend_ids) {
  auto fd = MapFd::create(BPF_MAP_TYPE_ARRAY, kInnerMapName, sizeof(std::uint32_t), sizeof(std::uint32_t),
                          1 + table_size, BPF_F_INNER_MAP);
  if (!fd) return fd.error();
  std::vector<std::uint32_t> keys(1 + table_size), values(1 + table_size, SLUICE_LB_NO_BACKEND);
  std::iota(keys.begin(), keys.end(), 0u);
  values[SLUICE_LB_MAGLEV_SIZE_SLOT] = table_size;
  std::copy(backend_ids.begin(), backend_ids.end(), values.begin() + 1);
  auto written = maps::detail::update_batch_bytes(*fd, reinterpret_cast<const std::byte*>(keys.data()),
                                                  reinterpret_cast<const std::byte*>(values.data()), keys.size(),
                                                  sizeof(std::uint32_t), maps::UpdateFlag::Any);
  if (!written) return written.error();
  if (*written != keys.size())
    return lb_error("fill", "Maglev table: " + std::to_string(*written) + " of " + std::to_string(keys.size()) +
                                " entries written", EIO);
  if (bpf_map_freeze(fd->fd()) != 0) return maps::make_error("freeze", kInnerMapName, errno);
  return std::move(*fd);
}

// Reads a live inner table: its size (range-checked against the map) and entries.
Result<std::pair<std::uint32_t, std::vector<std::uint32_t>>> read_table(MapFd inner, std::uint32_t vip_id) {
  const std::string what = "lb_maglev[" + std::to_string(vip_id) + "]";
  auto array = ArrayMap<std::uint32_t>::from(std::move(inner));
  if (!array) return array.error();
  auto all = array->lookup_batch();
  if (!all) return all.error();
  std::vector<std::uint32_t> values(all->size());
  for (const auto& [key, value] : *all)
    if (key < values.size()) values[key] = value;
  if (values.empty()) return lb_error("read", what + ": empty table");
  const std::uint32_t size = values[SLUICE_LB_MAGLEV_SIZE_SLOT];
  if (!is_prime(size) || size > SLUICE_LB_MAGLEV_SIZE_MAX || size + 1 != values.size())
    return lb_error("read", what + ": table size " + std::to_string(size) + " out of range for a map of " +
                                std::to_string(values.size()) + " entries");
  values.erase(values.begin());
  return std::pair{size, std::move(values)};
}

}  // namespace

// ---- LbTable ----

LbTable::LbTable(std::unique_ptr<State> state) : state_(std::move(state)) {}
LbTable::LbTable(LbTable&&) noexcept = default;
LbTable& LbTable::operator=(LbTable&&) noexcept = default;
LbTable::~LbTable() = default;

const LbConfig& LbTable::config() const noexcept { return state_->config; }
bool LbTable::has_vips() const noexcept { return !state_->config.vips.empty(); }
bool LbTable::has_read_back_tables() const noexcept {
  return !state_->read_back_settled &&
         std::any_of(state_->runtime.begin(), state_->runtime.end(), [](const auto& vip) { return !vip.second.built; });
}
void LbTable::settle_read_back_tables() noexcept { state_->read_back_settled = true; }

Result<LbTable> LbTable::open(const dataplane::Dataplane& plane) {
  const sluice_bpf* skel = plane.skeleton();
  if (!skel) return lb_error("open", "no loaded data plane");
  auto vips = handle_of<HashMap<sluice_lb_vip_key, sluice_lb_vip>>(skel->maps.lb_vips);
  if (!vips) return vips.error();
  auto maglev = MapFd::from_skeleton(skel->maps.lb_maglev);
  if (!maglev) return maglev.error();
  if (maglev->type() != BPF_MAP_TYPE_ARRAY_OF_MAPS || maglev->max_entries() != SLUICE_LB_MAX_VIPS)
    return lb_error("open", "lb_maglev: not an array of " + std::to_string(SLUICE_LB_MAX_VIPS) + " maps");
  auto backends = handle_of<ArrayMap<sluice_lb_backend>>(skel->maps.lb_backends);
  if (!backends) return backends.error();
  if (backends->map().max_entries() != SLUICE_LB_MAX_BACKENDS)
    return lb_error("open", "lb_backends: " + std::to_string(backends->map().max_entries()) + " slots, expected " +
                                std::to_string(SLUICE_LB_MAX_BACKENDS));
  auto conns_v4 = handle_of<HashMap<sluice_lb_flow_v4_key, sluice_lb_conn>>(skel->maps.lb_conns_v4);
  if (!conns_v4) return conns_v4.error();
  auto conns = handle_of<HashMap<sluice_lb_flow_key, sluice_lb_conn>>(skel->maps.lb_conns);
  if (!conns) return conns.error();
  auto settings = handle_of<ArrayMap<sluice_lb_settings>>(skel->maps.lb_settings);
  if (!settings) return settings.error();
  auto vip_counters = handle_of<PerCpuArrayMap<sluice_lb_counter>>(skel->maps.lb_vip_counters);
  if (!vip_counters) return vip_counters.error();
  auto backend_counters = handle_of<PerCpuArrayMap<sluice_lb_counter>>(skel->maps.lb_backend_counters);
  if (!backend_counters) return backend_counters.error();
  auto events = handle_of<PerCpuArrayMap<std::uint64_t>>(skel->maps.lb_event_counters);
  if (!events) return events.error();

  auto state = std::make_unique<State>(std::move(*vips), std::move(*maglev), std::move(*backends),
                                                std::move(*conns_v4), std::move(*conns), std::move(*settings),
                                                std::move(*vip_counters), std::move(*backend_counters),
                                                std::move(*events));

  // Settings: ours when they carry our version; otherwise the defaults (written with the first change).
  auto written = state->settings.lookup(0);
  if (!written) return written.error();
  if (*written && (*written)->version == SLUICE_LB_SETTINGS_VERSION) {
    auto decoded = decode_settings(**written);
    if (!decoded) return decoded.error();
    state->config.settings = *decoded;
    state->settings_written = **written;
  }

  // VIPs, by id.
  auto entries = state->vips.entries();
  if (!entries) return entries.error();
  std::map<std::uint32_t, std::size_t> vip_at_id;  // vip_id -> index in config.vips
  for (const auto& [raw_key, value] : *entries) {
    auto key = decode_key(raw_key);
    if (!key) return key.error();
    const std::string where = "lb_vips " + to_string(*key);
    if (value.vip_id >= SLUICE_LB_MAX_VIPS)
      return lb_error("read", where + ": vip_id " + std::to_string(value.vip_id) + " out of range 0.." +
                                  std::to_string(SLUICE_LB_MAX_VIPS - 1));
    if (vip_at_id.contains(value.vip_id))
      return lb_error("read", where + ": vip_id " + std::to_string(value.vip_id) + " also names another VIP");
    Vip vip;
    vip.key = *key;
    vip.l2_dsr = (value.flags & SLUICE_LB_VIP_F_L2_DSR) != 0;
    vip_at_id[value.vip_id] = state->config.vips.size();
    state->config.vips.push_back(vip);
    state->runtime[*key].vip_id = value.vip_id;
  }

  // Tables: the size each VIP has, and which ids hold a table without a VIP.
  std::map<std::uint32_t, std::vector<std::uint32_t>> table_entries;
  for (std::uint32_t vip_id = 0; vip_id < SLUICE_LB_MAX_VIPS; ++vip_id) {
    auto inner = live_table(state->maglev, vip_id);
    if (!inner) return inner.error();
    if (!*inner) continue;
    const bool owned = std::any_of(state->runtime.begin(), state->runtime.end(),
                                   [&](const auto& r) { return r.second.vip_id == vip_id; });
    if (!owned) {
      state->orphan_tables.insert(vip_id);
      continue;
    }
    // A table that does not read back (size out of range) is not trusted: the
    // next change rebuilds it (the data plane drops on it meanwhile, CORRUPT_TABLE).
    auto table = read_table(std::move(**inner), vip_id);
    if (!table) continue;
    for (Vip& vip : state->config.vips)
      if (state->runtime[vip.key].vip_id == vip_id) vip.table_size = table->first;
    table_entries[vip_id] = std::move(table->second);
  }

  // Backend slots: each taken slot belongs to its VIP by vip_id; the rest are orphans.
  auto slots = state->backends.lookup_batch();
  if (!slots) return slots.error();
  state->slots.assign(SLUICE_LB_MAX_BACKENDS, sluice_lb_backend{});
  for (const auto& [slot, value] : *slots)
    if (slot < SLUICE_LB_MAX_BACKENDS) state->slots[slot] = value;
  for (std::uint32_t slot = 1; slot < SLUICE_LB_MAX_BACKENDS; ++slot) {
    const sluice_lb_backend& value = state->slots[slot];
    if (value.state == SLUICE_LB_BACKEND_FREE) continue;
    const std::string where = "lb_backends[" + std::to_string(slot) + "]";
    if (value.state >= SLUICE_LB_BACKEND_STATE_COUNT)
      return lb_error("read", where + ": state " + std::to_string(value.state) + " out of range");
    auto address = decode_address(value.addr, value.ip_version, where);
    if (!address) return address.error();
    auto owner = vip_at_id.find(value.vip_id);
    if (owner == vip_at_id.end()) {
      state->orphan_slots.insert(slot);
      continue;
    }
    Vip& vip = state->config.vips[owner->second];
    VipRuntime& runtime = state->runtime[vip.key];
    if (runtime.slot_of.contains(*address)) {
      state->orphan_slots.insert(slot);
      continue;
    }
    Backend backend;
    backend.address = *address;
    backend.weight = 1;  // not in the maps: the caller's replace() brings the real weights
    backend.state = value.state == SLUICE_LB_BACKEND_DRAINING ? BackendState::Draining : BackendState::Up;
    if (vip.l2_dsr) {
      std::array<std::uint8_t, 6> mac{};
      std::memcpy(mac.data(), value.mac, mac.size());
      backend.mac = mac;
    }
    vip.backends.push_back(backend);
    runtime.slot_of[*address] = slot;
    runtime.health[*address] = value.state == SLUICE_LB_BACKEND_DOWN ? Health::Down : Health::Unchecked;
  }
  for (auto& [vip_id, values] : table_entries) {
    auto owner = vip_at_id.find(vip_id);
    if (owner == vip_at_id.end()) continue;
    VipRuntime& runtime = state->runtime[state->config.vips[owner->second].key];
    for (std::uint32_t id : values) ++runtime.entries_per_slot[id];
  }
  std::sort(state->config.vips.begin(), state->config.vips.end(),
            [&](const Vip& a, const Vip& b) { return state->runtime.at(a.key).vip_id < state->runtime.at(b.key).vip_id; });
  return LbTable(std::move(state));
}

Result<void> LbTable::State::apply(const LbConfig& want, const std::map<VipKey, std::map<Address, Health>>& health) {
  if (auto valid = validate(want); !valid) return valid.error();

  // ---- plan: ids and slots (nothing written yet) ----
  std::map<VipKey, VipRuntime> next;
  std::set<std::uint32_t> ids_taken;
  for (const Vip& vip : want.vips)
    if (auto kept = runtime.find(vip.key); kept != runtime.end()) ids_taken.insert(kept->second.vip_id);
  std::set<std::uint32_t> ids_busy = ids_taken;  // avoid ids freed by this change while others are free
  for (const auto& [key, r] : runtime) ids_busy.insert(r.vip_id);
  ids_busy.insert(orphan_tables.begin(), orphan_tables.end());
  auto next_id = [&]() -> std::optional<std::uint32_t> {
    for (const std::set<std::uint32_t>* avoid : {&ids_busy, &ids_taken})
      for (std::uint32_t id = 0; id < SLUICE_LB_MAX_VIPS; ++id)
        if (!avoid->contains(id) && !ids_taken.contains(id)) return id;
    return std::nullopt;
  };
  // Slots come from those free before this change (lowest first); slots this change frees
  // are freed last, after no table names them.
  std::vector<std::uint32_t> free_slots;
  for (std::uint32_t slot = 1; slot < SLUICE_LB_MAX_BACKENDS; ++slot)
    if (slots[slot].state == SLUICE_LB_BACKEND_FREE && !orphan_slots.contains(slot)) free_slots.push_back(slot);
  std::size_t free_used = 0;
  for (const Vip& vip : want.vips) {
    VipRuntime r;
    const auto kept = runtime.find(vip.key);
    if (kept != runtime.end()) {
      r.vip_id = kept->second.vip_id;
      r.built = kept->second.built;
      r.entries_per_slot = kept->second.entries_per_slot;
    } else {
      auto id = next_id();
      if (!id) return lb_error("add vip " + to_string(vip.key), "no free vip_id", ENOSPC);
      r.vip_id = *id;
      ids_taken.insert(*id);
    }
    const auto wanted_health = health.find(vip.key);
    for (const Backend& backend : vip.backends) {
      Health h = Health::Unchecked;
      if (vip.check && wanted_health != health.end())
        if (auto found = wanted_health->second.find(backend.address); found != wanted_health->second.end())
          h = found->second;
      r.health[backend.address] = h;
      if (kept != runtime.end())
        if (auto slot = kept->second.slot_of.find(backend.address); slot != kept->second.slot_of.end()) {
          r.slot_of[backend.address] = slot->second;
          continue;
        }
      if (free_used == free_slots.size())
        return lb_error("add backend " + to_string(backend.address) + " to vip " + to_string(vip.key),
                        "no free backend slot (" + std::to_string(free_slots.size()) +
                            " were free; slots freed by this change are free only after it)",
                        ENOSPC);
      r.slot_of[backend.address] = free_slots[free_used++];
    }
    next[vip.key] = std::move(r);
  }

  // Desired content of every slot this config uses.
  std::vector<sluice_lb_backend> want_slots = slots;
  std::set<std::uint32_t> freed;  // slots this change frees
  for (const auto& [key, r] : runtime)
    for (const auto& [address, slot] : r.slot_of) {
      auto n = next.find(key);
      if (n == next.end() || !n->second.slot_of.contains(address)) freed.insert(slot);
    }
  freed.insert(orphan_slots.begin(), orphan_slots.end());
  for (std::uint32_t slot : freed) {
    want_slots[slot] = sluice_lb_backend{};
    want_slots[slot].epoch = slots[slot].epoch;
  }
  for (const Vip& vip : want.vips) {
    const VipRuntime& r = next[vip.key];
    for (const Backend& backend : vip.backends) {
      const std::uint32_t slot = r.slot_of.at(backend.address);
      sluice_lb_backend value{};
      std::memcpy(value.addr, backend.address.bytes.data(),
                  backend.address.family == kIpVersion4 ? kIpv4Bytes : kIpv6Bytes);
      value.ip_version = static_cast<std::uint8_t>(backend.address.family);
      value.state = static_cast<std::uint8_t>(slot_state(backend, r.health.at(backend.address)));
      if (vip.l2_dsr && backend.mac) std::memcpy(value.mac, backend.mac->data(), sizeof(value.mac));
      const bool fresh = slots[slot].state == SLUICE_LB_BACKEND_FREE;
      value.epoch = fresh ? slots[slot].epoch + 1 : slots[slot].epoch;  // a new owner: stale connections pick again
      value.vip_id = r.vip_id;
      want_slots[slot] = value;
    }
  }

  // ---- execute, undoing on failure ----
  Journal journal;
  auto write_slot = [&](std::uint32_t slot) -> Result<void> {
    if (same_bytes(slots[slot], want_slots[slot])) return {};
    const sluice_lb_backend old = slots[slot];
    if (old.state == SLUICE_LB_BACKEND_FREE) {
      // A new owner starts from zero counters (not undone: a free slot's counters mean nothing).
      if (auto reset = backend_counters.update_all_cpus(slot, sluice_lb_counter{}); !reset) return reset.error();
    }
    if (auto written = backends.update(slot, want_slots[slot]); !written) return written.error();
    journal.push("lb_backends[" + std::to_string(slot) + "]", [this, slot, old]() { return backends.update(slot, old); });
    return {};
  };
  auto swap_table = [&](std::uint32_t vip_id, std::optional<MapFd> fresh) -> Result<void> {
    auto old = live_table(maglev, vip_id);
    if (!old) return old.error();
    if (!fresh && !*old) return {};
    if (auto set = set_table(maglev, vip_id, fresh); !set) return set.error();
    auto keep = std::make_shared<std::optional<MapFd>>(std::move(*old));
    journal.push("lb_maglev[" + std::to_string(vip_id) + "]",
                 [this, vip_id, keep]() { return set_table(maglev, vip_id, *keep); });
    return {};
  };
  auto put_vip = [&](const VipKey& key, const sluice_lb_vip& value) -> Result<void> {
    const auto raw = encode_key(key);
    auto old = vips.lookup(raw);
    if (!old) return old.error();
    if (*old && same_bytes(**old, value)) return {};
    if (auto written = vips.update(raw, value); !written) return written.error();
    journal.push("lb_vips " + to_string(key), [this, raw, before = *old]() -> Result<void> {
      if (before) return vips.update(raw, *before);
      auto gone = vips.erase(raw);
      if (!gone) return gone.error();
      return {};
    });
    return {};
  };
  auto del_vip = [&](const VipKey& key) -> Result<void> {
    const auto raw = encode_key(key);
    auto old = vips.lookup(raw);
    if (!old) return old.error();
    if (!*old) return {};
    auto gone = vips.erase(raw);
    if (!gone) return gone.error();
    journal.push("lb_vips " + to_string(key), [this, raw, before = **old]() { return vips.update(raw, before); });
    return {};
  };
  auto table_input = [&](const Vip& vip, const VipRuntime& r) {
    TableInput input;
    input.table_size = vip.table_size;
    for (const Backend& backend : vip.backends)
      if (slot_state(backend, r.health.at(backend.address)) == SLUICE_LB_BACKEND_UP)
        input.members.emplace_back(backend.address, backend.weight);
    std::sort(input.members.begin(), input.members.end());
    return input;
  };
  auto build_table = [&](const Vip& vip, VipRuntime& r, const TableInput& input) -> Result<std::optional<MapFd>> {
    std::vector<MaglevBackend> members;
    for (const auto& [address, weight] : input.members) members.push_back({address, weight});
    auto table = build_maglev(members, input.table_size);
    if (!table) return table.error();
    std::vector<std::uint32_t> ids(table->size());
    r.entries_per_slot.clear();
    for (std::size_t i = 0; i < table->size(); ++i) {
      ids[i] = r.slot_of.at(members[(*table)[i]].address);
      ++r.entries_per_slot[ids[i]];
    }
    auto made = make_table(vip.table_size, ids);
    if (!made) return made.error();
    r.built = input;
    return std::optional<MapFd>{std::move(*made)};
  };
  auto fail = [&](const Error& error) { return journal.fail(error); };

  // 1. VIPs that go: their lb_vips entry first, then the table; their slots are freed at the end.
  for (const auto& [key, r] : runtime) {
    if (next.contains(key)) continue;
    if (auto gone = del_vip(key); !gone) return fail(gone.error());
    if (auto gone = swap_table(r.vip_id, std::nullopt); !gone) return fail(gone.error());
  }
  for (std::uint32_t vip_id : orphan_tables) {
    if (ids_taken.contains(vip_id)) continue;  // a new VIP's table replaces it below
    if (auto gone = swap_table(vip_id, std::nullopt); !gone) return fail(gone.error());
  }
  // 2. VIPs that stay or come: slots entering the table, the table, the lb_vips entry,
  // then slots leaving the table (draining, down: out of the table before they say so).
  for (const Vip& vip : want.vips) {
    VipRuntime& r = next[vip.key];
    for (const auto& [address, slot] : r.slot_of)
      if (want_slots[slot].state == SLUICE_LB_BACKEND_UP)
        if (auto written = write_slot(slot); !written) return fail(written.error());
    const TableInput input = table_input(vip, r);
    if (!r.built || !(*r.built == input) || orphan_tables.contains(r.vip_id)) {
      auto table = build_table(vip, r, input);
      if (!table) return fail(table.error());
      if (auto swapped = swap_table(r.vip_id, std::move(*table)); !swapped) return fail(swapped.error());
    }
    for (const auto& [address, slot] : r.slot_of)
      if (auto written = write_slot(slot); !written) return fail(written.error());
    if (!runtime.contains(vip.key)) {
      if (auto reset = vip_counters.update_all_cpus(r.vip_id, sluice_lb_counter{}); !reset) return fail(reset.error());
    }
    if (auto put = put_vip(vip.key, encode_vip(vip, r.vip_id)); !put) return fail(put.error());
  }
  // 3. Slots no table names any more: FREE (epoch kept; bumped when reused).
  for (std::uint32_t slot : freed)
    if (auto written = write_slot(slot); !written) return fail(written.error());
  // 4. Settings (written with the first change, so the stage sees a version).
  const sluice_lb_settings settings_value = encode_settings(want.settings);
  if (!settings_written || !same_bytes(*settings_written, settings_value)) {
    auto old = settings.lookup(0);
    if (!old) return fail(old.error());
    if (auto written = settings.update(0, settings_value); !written) return fail(written.error());
    journal.push("lb_settings", [this, before = old->value_or(sluice_lb_settings{})]() { return settings.update(0, before); });
  }

  journal.commit();
  config = want;
  runtime = std::move(next);
  slots = std::move(want_slots);
  settings_written = settings_value;
  orphan_tables.clear();
  orphan_slots.clear();
  return {};
}

namespace {

std::map<VipKey, std::map<Address, Health>> health_of(const std::map<VipKey, VipRuntime>& runtime) {
  std::map<VipKey, std::map<Address, Health>> out;
  for (const auto& [key, r] : runtime) out[key] = r.health;
  return out;
}

Vip* find_vip(LbConfig& config, const VipKey& key) {
  for (Vip& vip : config.vips)
    if (vip.key == key) return &vip;
  return nullptr;
}

Error no_vip(std::string_view operation, const VipKey& key) {
  return maps::make_error_because(operation, "vip " + to_string(key), "no such VIP", ENOENT);
}

Result<Backend*> find_backend(LbConfig& config, const VipKey& key, const Address& address, std::string_view operation) {
  Vip* vip = find_vip(config, key);
  if (!vip) return no_vip(operation, key);
  for (Backend& backend : vip->backends)
    if (backend.address == address) return &backend;
  return maps::make_error_because(operation, "vip " + to_string(key),
                                  "backend " + to_string(address) + ": no such backend", ENOENT);
}

}  // namespace

Result<void> LbTable::replace(const LbConfig& config) { return state_->apply(config, health_of(state_->runtime)); }

Result<void> LbTable::add_vip(const Vip& vip) {
  LbConfig want = state_->config;
  if (find_vip(want, vip.key))
    return maps::make_error_because("add vip", "vip " + to_string(vip.key), "exists", EEXIST);
  want.vips.push_back(vip);
  return state_->apply(want, health_of(state_->runtime));
}

Result<void> LbTable::remove_vip(const VipKey& key) {
  LbConfig want = state_->config;
  const auto before = want.vips.size();
  std::erase_if(want.vips, [&](const Vip& vip) { return vip.key == key; });
  if (want.vips.size() == before) return no_vip("remove vip", key);
  return state_->apply(want, health_of(state_->runtime));
}

Result<void> LbTable::add_backend(const VipKey& key, const Backend& backend) {
  LbConfig want = state_->config;
  Vip* vip = find_vip(want, key);
  if (!vip) return no_vip("add backend " + to_string(backend.address), key);
  vip->backends.push_back(backend);
  return state_->apply(want, health_of(state_->runtime));
}

Result<void> LbTable::set_weight(const VipKey& key, const Address& address, std::uint32_t weight) {
  LbConfig want = state_->config;
  auto backend = find_backend(want, key, address, "set weight");
  if (!backend) return backend.error();
  (*backend)->weight = weight;
  return state_->apply(want, health_of(state_->runtime));
}

Result<void> LbTable::drain_backend(const VipKey& key, const Address& address) {
  LbConfig want = state_->config;
  auto backend = find_backend(want, key, address, "drain backend");
  if (!backend) return backend.error();
  (*backend)->state = BackendState::Draining;
  return state_->apply(want, health_of(state_->runtime));
}

Result<void> LbTable::remove_backend(const VipKey& key, const Address& address) {
  LbConfig want = state_->config;
  Vip* vip = find_vip(want, key);
  if (!vip) return no_vip("remove backend " + to_string(address), key);
  const auto before = vip->backends.size();
  std::erase_if(vip->backends, [&](const Backend& b) { return b.address == address; });
  if (vip->backends.size() == before)
    return maps::make_error_because("remove backend", "vip " + to_string(key),
                                    "backend " + to_string(address) + ": no such backend", ENOENT);
  return state_->apply(want, health_of(state_->runtime));
}

Result<void> LbTable::set_settings(const LbSettings& settings) {
  LbConfig want = state_->config;
  want.settings = settings;
  return state_->apply(want, health_of(state_->runtime));
}

Result<void> LbTable::set_health(const VipKey& key, const Address& address, Health health) {
  LbConfig want = state_->config;
  auto backend = find_backend(want, key, address, "set health");
  if (!backend) return backend.error();
  if (!find_vip(want, key)->check && health != Health::Unchecked)
    return maps::make_error_because("set health", "vip " + to_string(key), "has no health check", EINVAL);
  auto all = health_of(state_->runtime);
  all[key][address] = health;
  return state_->apply(want, all);
}

Result<std::vector<VipStatus>> LbTable::status() const {
  std::vector<VipStatus> out;
  for (const Vip& vip : state_->config.vips) {
    const VipRuntime& r = state_->runtime.at(vip.key);
    VipStatus status;
    status.vip = vip;
    status.vip_id = r.vip_id;
    auto counters = state_->vip_counters.lookup(r.vip_id);
    if (!counters) return counters.error();
    if (*counters) status.total = add_counters(**counters);
    for (const Backend& backend : vip.backends) {
      const std::uint32_t slot = r.slot_of.at(backend.address);
      BackendStatus b{.backend = backend, .health = r.health.at(backend.address), .backend_id = slot};
      if (auto entries = r.entries_per_slot.find(slot); entries != r.entries_per_slot.end())
        b.table_entries = entries->second;
      auto per_cpu = state_->backend_counters.lookup(slot);
      if (!per_cpu) return per_cpu.error();
      if (*per_cpu) b.total = add_counters(**per_cpu);
      status.backends.push_back(std::move(b));
    }
    out.push_back(std::move(status));
  }
  return out;
}

Result<ConnTableFill> LbTable::conn_fill() const {
  ConnTableFill fill{.v4_capacity = state_->conns_v4.map().max_entries(), .v6_capacity = state_->conns.map().max_entries()};
  auto v4 = state_->conns_v4.lookup_batch();
  if (!v4) return v4.error();
  auto v6 = state_->conns.lookup_batch();
  if (!v6) return v6.error();
  fill.v4 = v4->size();
  fill.v6 = v6->size();
  return fill;
}

Result<std::array<std::uint64_t, SLUICE_LB_EVENT_SLOTS>> LbTable::events() const {
  std::array<std::uint64_t, SLUICE_LB_EVENT_SLOTS> out{};
  for (std::uint32_t slot = 0; slot < SLUICE_LB_EVENT_SLOTS; ++slot) {
    auto per_cpu = state_->event_counters.lookup(slot);
    if (!per_cpu) return per_cpu.error();
    if (*per_cpu) out[slot] = maps::sum(**per_cpu);
  }
  return out;
}

}  // namespace sluice::lb
