#include "lb_maps_helper.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>

#include "sluice.skel.h"

namespace sluice::test {
namespace {

void check(int err, const std::string& what) {
  if (err < 0) throw std::runtime_error(what + ": " + std::strerror(-err));
}

// Deletes every key of a hash map (keys collected first: deleting while walking skips some).
template <class Key>
void delete_all(int fd, const char* name) {
  std::vector<Key> keys;
  Key key{}, next{};
  const Key* cursor = nullptr;
  while (bpf_map_get_next_key(fd, cursor, &next) == 0) {
    keys.push_back(next);
    key = next;
    cursor = &key;
  }
  for (const Key& k : keys) check(bpf_map_delete_elem(fd, &k), std::string("delete from ") + name);
}

// One batch update of every slot (per-CPU arrays: every CPU's value).
template <class Value>
void zero_array(int fd, std::uint32_t entries, int values_per_slot, const char* name) {
  std::vector<Value> zero(static_cast<std::size_t>(entries) * values_per_slot);
  std::vector<std::uint32_t> keys(entries);
  for (std::uint32_t i = 0; i < entries; ++i) keys[i] = i;
  std::uint32_t count = entries;
  check(bpf_map_update_batch(fd, keys.data(), zero.data(), &count, nullptr), std::string("zero ") + name);
  if (count != entries) throw std::runtime_error(std::string("zero ") + name + ": batch stopped short");
}

template <class Value>
std::vector<Value> read_percpu(int fd, std::uint32_t key, int cpus, const char* name) {
  std::vector<Value> per_cpu(cpus);
  check(bpf_map_lookup_elem(fd, &key, per_cpu.data()), std::string("read ") + name);
  return per_cpu;
}

}  // namespace

std::uint64_t coarse_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

LbMaps::LbMaps(const dataplane::Dataplane& plane) {
  const auto& m = plane.skeleton()->maps;
  vips_ = bpf_map__fd(m.lb_vips);
  maglev_ = bpf_map__fd(m.lb_maglev);
  backends_ = bpf_map__fd(m.lb_backends);
  conns_v4_ = bpf_map__fd(m.lb_conns_v4);
  conns_ = bpf_map__fd(m.lb_conns);
  settings_ = bpf_map__fd(m.lb_settings);
  vip_counters_ = bpf_map__fd(m.lb_vip_counters);
  backend_counters_ = bpf_map__fd(m.lb_backend_counters);
  events_ = bpf_map__fd(m.lb_event_counters);
  icmp_bucket_ = bpf_map__fd(m.lb_icmp_bucket);
  egress_ = bpf_map__fd(m.lb_egress_ports);
  cpus_ = libbpf_num_possible_cpus();
  check(cpus_, "count possible CPUs");
}

void LbMaps::set_settings(const sluice_lb_settings& settings) {
  const std::uint32_t slot = 0;
  check(bpf_map_update_elem(settings_, &slot, &settings, BPF_ANY), "write lb_settings");
}

void LbMaps::put_vip(const sluice_lb_vip_key& key, const sluice_lb_vip& vip) {
  check(bpf_map_update_elem(vips_, &key, &vip, BPF_ANY), "write lb_vips");
}

void LbMaps::del_vip(const sluice_lb_vip_key& key) { check(bpf_map_delete_elem(vips_, &key), "delete from lb_vips"); }

void LbMaps::set_maglev(std::uint32_t vip_id, const std::vector<std::uint32_t>& entries) {
  if (entries.empty()) throw std::invalid_argument("a Maglev inner array has at least one entry");
  LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = BPF_F_INNER_MAP);
  const int inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lb_maglev_test", sizeof(std::uint32_t), sizeof(std::uint32_t),
                                   static_cast<std::uint32_t>(entries.size()), &options);
  check(inner, "create a Maglev inner array");
  std::vector<std::uint32_t> keys(entries.size());
  for (std::uint32_t i = 0; i < keys.size(); ++i) keys[i] = i;
  std::uint32_t count = static_cast<std::uint32_t>(entries.size());
  int err = bpf_map_update_batch(inner, keys.data(), entries.data(), &count, nullptr);
  if (err == 0 && count != entries.size()) err = -EIO;
  if (err == 0) err = bpf_map_update_elem(maglev_, &vip_id, &inner, BPF_ANY);
  ::close(inner);  // the outer map holds its own reference
  check(err, "fill and install a Maglev inner array");
}

void LbMaps::del_maglev(std::uint32_t vip_id) { check(bpf_map_delete_elem(maglev_, &vip_id), "delete from lb_maglev"); }

void LbMaps::put_backend(std::uint32_t id, const sluice_lb_backend& backend) {
  check(bpf_map_update_elem(backends_, &id, &backend, BPF_ANY), "write lb_backends");
}

void LbMaps::put_conn(const sluice_lb_flow_v4_key& key, const sluice_lb_conn& conn) {
  check(bpf_map_update_elem(conns_v4_, &key, &conn, BPF_ANY), "write lb_conns_v4");
}

void LbMaps::put_conn(const sluice_lb_flow_key& key, const sluice_lb_conn& conn) {
  check(bpf_map_update_elem(conns_, &key, &conn, BPF_ANY), "write lb_conns");
}

std::optional<sluice_lb_conn> LbMaps::conn(const sluice_lb_flow_v4_key& key) const {
  sluice_lb_conn value{};
  if (bpf_map_lookup_elem(conns_v4_, &key, &value) != 0) return std::nullopt;
  return value;
}

std::optional<sluice_lb_conn> LbMaps::conn(const sluice_lb_flow_key& key) const {
  sluice_lb_conn value{};
  if (bpf_map_lookup_elem(conns_, &key, &value) != 0) return std::nullopt;
  return value;
}

std::size_t LbMaps::conn_count_v4() const {
  std::size_t n = 0;
  sluice_lb_flow_v4_key key{}, next{};
  const sluice_lb_flow_v4_key* cursor = nullptr;
  while (bpf_map_get_next_key(conns_v4_, cursor, &next) == 0) {
    ++n;
    key = next;
    cursor = &key;
  }
  return n;
}

void LbMaps::set_egress_port(std::uint32_t ifindex) {
  const std::uint32_t slot = 0;
  if (ifindex == 0) {
    const int err = bpf_map_delete_elem(egress_, &slot);
    if (err != -ENOENT) check(err, "empty lb_egress_ports[0]");
    return;
  }
  bpf_devmap_val value{};
  value.ifindex = ifindex;
  value.bpf_prog.fd = -1;
  check(bpf_map_update_elem(egress_, &slot, &value, BPF_ANY), "write lb_egress_ports");
}

void LbMaps::clear() {
  set_settings(sluice_lb_settings{});
  delete_all<sluice_lb_vip_key>(vips_, "lb_vips");
  for (std::uint32_t vip_id = 0; vip_id < SLUICE_LB_MAX_VIPS; ++vip_id) {  // an array: every slot is a key
    const int err = bpf_map_delete_elem(maglev_, &vip_id);
    if (err != -ENOENT) check(err, "delete from lb_maglev");
  }
  zero_array<sluice_lb_backend>(backends_, SLUICE_LB_MAX_BACKENDS, 1, "lb_backends");
  delete_all<sluice_lb_flow_v4_key>(conns_v4_, "lb_conns_v4");
  delete_all<sluice_lb_flow_key>(conns_, "lb_conns");
  zero_array<sluice_lb_counter>(vip_counters_, SLUICE_LB_MAX_VIPS, cpus_, "lb_vip_counters");
  zero_array<sluice_lb_counter>(backend_counters_, SLUICE_LB_MAX_BACKENDS, cpus_, "lb_backend_counters");
  zero_array<std::uint64_t>(events_, SLUICE_LB_EVENT_SLOTS, cpus_, "lb_event_counters");
  zero_array<sluice_fwd_icmp_bucket>(icmp_bucket_, 1, cpus_, "lb_icmp_bucket");  // full again on every CPU
  set_egress_port(0);
}

void LbMaps::write(const lb::reference::MapState& state) {
  clear();
  for (const auto& [key, vip] : state.vips) put_vip(key, vip);
  for (const auto& [vip_id, entries] : state.maglev) set_maglev(vip_id, entries);
  for (std::uint32_t id = 0; id < state.backends.size(); ++id) {
    static const sluice_lb_backend empty{};
    if (std::memcmp(&state.backends[id], &empty, sizeof empty) != 0) put_backend(id, state.backends[id]);
  }
  for (const auto& [key, conn] : state.conns_v4) put_conn(key, conn);
  for (const auto& [key, conn] : state.conns_v6) put_conn(key, conn);
  if (state.egress_port_present) set_egress_port(1);  // loopback: any device will do for BPF_PROG_TEST_RUN
  set_settings(state.settings);
}

sluice_lb_counter LbMaps::vip_counter(std::uint32_t vip_id) const {
  sluice_lb_counter total{};
  for (const auto& c : read_percpu<sluice_lb_counter>(vip_counters_, vip_id, cpus_, "lb_vip_counters")) {
    total.packets += c.packets;
    total.bytes += c.bytes;
    total.new_conns += c.new_conns;
  }
  return total;
}

sluice_lb_counter LbMaps::backend_counter(std::uint32_t id) const {
  sluice_lb_counter total{};
  for (const auto& c : read_percpu<sluice_lb_counter>(backend_counters_, id, cpus_, "lb_backend_counters")) {
    total.packets += c.packets;
    total.bytes += c.bytes;
    total.new_conns += c.new_conns;
  }
  return total;
}

std::uint64_t LbMaps::event(sluice_lb_event_slot slot) const {
  std::uint64_t total = 0;
  for (std::uint64_t v : read_percpu<std::uint64_t>(events_, slot, cpus_, "lb_event_counters")) total += v;
  return total;
}

}  // namespace sluice::test
