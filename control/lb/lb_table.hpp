#pragma once
// LbTable: the one user-space owner of the lb stage's maps in a loaded
// Dataplane (xdp/lb_maps.bpf.h). Every change is validated against the
// whole resulting LbConfig first and changes nothing on error. A VIP's
// Maglev table is built in user space (maglev.hpp) into a fresh inner array
// and made live with one update of lb_maglev, so no packet sees half a
// table. Backend slots are allocated here; a freed slot's epoch is bumped
// when it is reused, so connections that named the old backend pick again.
#include <cstdint>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "dataplane.hpp"
#include "lb_model.hpp"

namespace sluice::lb {

// What the health checker reports for one backend of one VIP.
enum class Health { Unchecked, Up, Down };

struct BackendStatus {
  Backend backend;
  Health health = Health::Unchecked;
  std::uint32_t backend_id = 0;      // slot in lb_backends
  std::uint32_t table_entries = 0;   // entries of the VIP's Maglev table naming it
  sluice_lb_counter total{};         // summed over possible CPUs
};

struct VipStatus {
  Vip vip;
  std::uint32_t vip_id = 0;
  sluice_lb_counter total{};
  std::vector<BackendStatus> backends;
};

struct ConnTableFill {
  std::uint64_t v4 = 0, v6 = 0;          // live entries
  std::uint64_t v4_capacity = 0, v6_capacity = 0;
};

class LbTable {
 public:
  // Takes its own handles on the lb maps of `plane`. A reused (pinned) set
  // of maps is read back, so a restarted daemon keeps VIP ids, backend ids
  // and the connection table (no established flow moves). Weights and
  // health checks are not in the maps: config() after open() has weight 1
  // and no check, so call replace(persisted config) before other changes.
  // One LbTable per loaded data plane: it mirrors the maps it writes.
  static Result<LbTable> open(const dataplane::Dataplane& plane);

  LbTable(LbTable&&) noexcept;
  LbTable& operator=(LbTable&&) noexcept;
  LbTable(const LbTable&) = delete;
  LbTable& operator=(const LbTable&) = delete;
  ~LbTable();

  const LbConfig& config() const noexcept;
  // Brings the maps to `config` (VIPs added, removed, tables rebuilt where
  // their backends, weights, states or health changed). Error: nothing changed.
  Result<void> replace(const LbConfig& config);

  Result<void> add_vip(const Vip& vip);
  Result<void> remove_vip(const VipKey& key);
  Result<void> add_backend(const VipKey& key, const Backend& backend);
  Result<void> set_weight(const VipKey& key, const Address& backend, std::uint32_t weight);
  Result<void> drain_backend(const VipKey& key, const Address& backend);
  Result<void> remove_backend(const VipKey& key, const Address& backend);
  Result<void> set_settings(const LbSettings& settings);
  // From the health checker: Down takes the backend out of the table for new flows.
  Result<void> set_health(const VipKey& key, const Address& backend, Health health);

  // True when at least one VIP exists: the daemon enables the stage bit only then.
  bool has_vips() const noexcept;
  // True while a VIP's live Maglev table is one open() read back rather
  // than one this LbTable built: what it was built from is not all in the
  // maps (weights are not), so config() may not describe it. A daemon
  // killed after a change's table swap and before that change was persisted
  // leaves such a table built from weights its state does not hold, and
  // config() after open() (weight 1 each) may equal that state. replace()
  // rebuilds every such table, so call it even when config() is what is wanted.
  bool has_read_back_tables() const noexcept;
  // The start is done with the read-back tables: rebuilt by replace(), or
  // they could not be (the start reports it, degraded). Either way
  // has_read_back_tables() is false from now on, so only a change of
  // config() calls for a replace() (which still rebuilds any table read back).
  void settle_read_back_tables() noexcept;

  Result<std::vector<VipStatus>> status() const;
  Result<ConnTableFill> conn_fill() const;
  Result<std::array<std::uint64_t, SLUICE_LB_EVENT_SLOTS>> events() const;

 private:
  struct State;
  explicit LbTable(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace sluice::lb
