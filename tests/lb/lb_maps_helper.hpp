#pragma once
// Test-side writer of the lb stage's maps: raw libbpf calls on a loaded
// Dataplane's lb maps, no LbTable, so a test can put in any content,
// including what LbTable would never write (forged sizes and ids). Writes
// a reference::MapState whole, so the data plane and the reference model
// see the same maps. Every failing call throws std::runtime_error naming it.
#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane.hpp"
#include "lb_reference.hpp"

namespace sluice::test {

class LbMaps {
 public:
  explicit LbMaps(const dataplane::Dataplane& plane);

  void set_settings(const sluice_lb_settings& settings);
  void put_vip(const sluice_lb_vip_key& key, const sluice_lb_vip& vip);
  void del_vip(const sluice_lb_vip_key& key);
  // A fresh inner array holding `entries` (entry 0 = size, however wrong), made live with one outer update.
  void set_maglev(std::uint32_t vip_id, const std::vector<std::uint32_t>& entries);
  void del_maglev(std::uint32_t vip_id);
  void put_backend(std::uint32_t id, const sluice_lb_backend& backend);
  void put_conn(const sluice_lb_flow_v4_key& key, const sluice_lb_conn& conn);
  void put_conn(const sluice_lb_flow_key& key, const sluice_lb_conn& conn);
  std::optional<sluice_lb_conn> conn(const sluice_lb_flow_v4_key& key) const;
  std::optional<sluice_lb_conn> conn(const sluice_lb_flow_key& key) const;
  std::size_t conn_count_v4() const;
  // lb_egress_ports[0] = ifindex (0: slot emptied).
  void set_egress_port(std::uint32_t ifindex);

  // Empties every lb map and zeroes its counters.
  void clear();
  // clear(), then every map as `state` holds it.
  void write(const lb::reference::MapState& state);

  sluice_lb_counter vip_counter(std::uint32_t vip_id) const;
  sluice_lb_counter backend_counter(std::uint32_t id) const;
  std::uint64_t event(sluice_lb_event_slot slot) const;

 private:
  int vips_, maglev_, backends_, conns_v4_, conns_, settings_, vip_counters_, backend_counters_, events_, egress_, icmp_bucket_;
  int cpus_;
};

// CLOCK_MONOTONIC_COARSE now, as the stage reads it.
std::uint64_t coarse_now_ns();

}  // namespace sluice::test
