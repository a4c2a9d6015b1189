#pragma once
// The load balancer on the control socket: vip.*, backend.*, lb.set and
// lb.show, over control/lb's LbTable.
//
// Every change op edits the `lb` section of the desired state and goes
// through StateOps::change(): validated with the whole next state, made
// live (LbTable::replace, one step between the filter and the config
// array), persisted in state.yaml, or rolled back. LbOps is that step
// (StatePart), so `apply -f` changes the filter and the balancer together.
//
// It also owns what the balancer adds elsewhere:
//  - the stage bit: SLUICE_STAGE_LB is set in the config array only while a
//    VIP exists, so without VIPs the stage costs nothing, not even its tail call;
//  - one generated filter rule per VIP (dst VIP address, protocol, port:
//    pass), after every operator rule (priorities from vip_rule_priority_base),
//    so a default-drop policy lets VIP traffic reach lb while an operator's
//    drop rule for a source still wins. rule.list shows them with their owner;
//    they are derived from the VIPs, never persisted as rules.
//  - health: the checker's reports go to LbTable::set_health, the event
//    stream and the metrics.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "event_hub.hpp"
#include "lb_table.hpp"
#include "server.hpp"
#include "state_ops.hpp"

namespace sluice::daemon {

// Operator rules must stay below this (checked while a VIP exists); the
// VIPs' pass rules take priorities in [base, base + vip_rule_priorities).
inline constexpr std::uint32_t vip_rule_priority_base = 0xFFFF0000u;
inline constexpr std::uint32_t vip_rule_priorities = 0x10000u;
static_assert(SLUICE_LB_MAX_VIPS <= vip_rule_priorities, "every VIP's rule has a priority");

// The owner text of a VIP's rule in rule.list: "vip 198.18.0.10:80/tcp".
std::string vip_rule_owner(const lb::VipKey& key);
// The pass rule of each VIP, in `vips` order. A rule's priority comes from a
// hash of its VIP's key (the next free one on a collision), so it stays
// when other VIPs come and go and the rule's hit counter stays its own.
std::vector<config::RuleSpec> vip_pass_rules(const std::vector<lb::Vip>& vips);

// Health transitions, for /metrics.
struct LbHealthStats {
  std::uint64_t went_down = 0;
  std::uint64_t went_up = 0;
  std::uint64_t set_health_failures = 0;
};

class LbOps final : public StatePart {
 public:
  LbOps(lb::LbTable& table, StateOps& state);

  void register_ops(OpRegistry& ops);
  // Events of health changes go here once the daemon's io_context exists.
  void set_events(EventHub& events) { events_ = &events; }
  // Called after every change that made a new lb section live (and once at
  // start): the health checker follows the VIPs and their checks.
  void set_on_change(std::function<void(const lb::LbConfig&)> on_change);

  // From the health checker. A report for a VIP or backend that no longer
  // exists is ignored (the checker follows changes asynchronously).
  void report_health(const lb::VipKey& vip, const lb::Address& backend, lb::Health health);
  const LbHealthStats& health_stats() const noexcept { return health_stats_; }
  // The connection tables' fill: a whole walk of both, so done at most once
  // per conn_count_interval (lb.show and /metrics share the last count).
  static constexpr std::chrono::seconds conn_count_interval{5};
  Result<lb::ConnTableFill> conn_fill() const;
  const lb::LbTable& table() const noexcept { return table_; }

  // StatePart
  protocol::ArgsResult<void> check(std::string_view op, const config::DesiredState& next,
                                   filter::RuleSet& set) const override;
  std::uint32_t effective_stages(const config::DesiredState& next, std::uint32_t stages) const override;
  bool changes(const config::DesiredState& next) const override;
  Result<void> make_live(const config::DesiredState& state) override;
  void add_baseline(config::DesiredState& baseline) const override;
  std::vector<std::pair<config::RuleSpec, std::string>> owned_rules(const config::DesiredState& state) const override;
  // The start rebuilt the read-back tables, or could not (reported degraded): they stop counting as a change.
  void settle_start() override { table_.settle_read_back_tables(); }

 private:
  OpResult vip_add(const boost::json::object& args);
  OpResult vip_del(const boost::json::object& args);
  OpResult vip_list(const boost::json::object& args) const;
  OpResult backend_add(const boost::json::object& args);
  OpResult backend_set(const boost::json::object& args);
  OpResult backend_drain(const boost::json::object& args);
  OpResult backend_del(const boost::json::object& args);
  OpResult backend_list(const boost::json::object& args) const;
  OpResult lb_set(const boost::json::object& args);
  OpResult lb_show(const boost::json::object& args) const;
  // The live lb section with `edit` applied, made live and persisted.
  OpResult change_lb(std::string_view op, const std::function<protocol::ArgsResult<void>(lb::LbConfig&)>& edit,
                     boost::json::object result);

  lb::LbTable& table_;
  StateOps& state_;
  EventHub* events_ = nullptr;
  std::function<void(const lb::LbConfig&)> on_change_;
  LbHealthStats health_stats_;
  mutable std::optional<std::pair<std::chrono::steady_clock::time_point, lb::ConnTableFill>> last_fill_;
};

}  // namespace sluice::daemon
