#pragma once
// Changes of the desired state: config.set, rule.*, limit.*, apply, and the
// bookkeeping of the prefix-list ops (filter_ops). One path for all of them:
//
//   validate the whole next state -> make it live in the data plane
//   (filter set by one atomic swap, filter settings, config array,
//   interfaces) -> persist it (state.yaml) -> it is the live state.
//
// A failure at any step re-applies the previous state and reports the step
// that failed: an op never leaves half a change, neither in the kernel nor
// in the file. When an undo fails too, the reply says "rollback incomplete"
// (never "rolled back") and status reports degraded until a restart.
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "daemon_metrics.hpp"
#include "dataplane.hpp"
#include "desired_state.hpp"
#include "filter_table.hpp"
#include "server.hpp"
#include "service.hpp"
#include "state_store.hpp"

namespace sluice::daemon {

// The steps of StateOps::change(), in the order they run.
enum class ChangeStep { FilterSet, FilterSettings, Lb, Config, Interfaces, Persist };
std::string_view to_string(ChangeStep step);  // as failure messages name it: "filter rule set", "persist", ...

// A section of the desired state whose owner lives outside StateOps (the
// load balancer, lb_ops.hpp): checked with the whole next state, made live
// as one step of change() (between the filter settings and the config
// array) and undone with it, restored at start.
class StatePart {
 public:
  virtual ~StatePart() = default;
  // bad_args naming the path and value; on success the filter rules the part
  // needs (a VIP's pass rule) are added to `set`, which stays valid.
  virtual protocol::ArgsResult<void> check(std::string_view op, const config::DesiredState& next,
                                           filter::RuleSet& set) const = 0;
  // The config array's stages for `next` (the lb bit only while a VIP exists).
  virtual std::uint32_t effective_stages(const config::DesiredState& next, std::uint32_t stages) const = 0;
  virtual bool changes(const config::DesiredState& next) const = 0;
  // Brings the part's maps to `state` (also the undo: the state before). Error: nothing changed.
  virtual Result<void> make_live(const config::DesiredState& state) = 0;
  // Startup: the part's section as its maps hold it.
  virtual void add_baseline(config::DesiredState& baseline) const = 0;
  // rule.list: the rules the part adds for `state`, each with who owns it.
  virtual std::vector<std::pair<config::RuleSpec, std::string>> owned_rules(const config::DesiredState& state) const = 0;
  // Startup is done with the part (made live, or failed and reported
  // degraded): what it holds from before this start (the lb's read-back
  // Maglev tables) is no longer a change by itself, so a later change that
  // does not touch the part does not rewrite it.
  virtual void settle_start() {}
};

class StateOps {
 public:
  StateOps(dataplane::Dataplane& plane, filter::FilterTable& table, StateStore& store, Service& service);

  // Startup: what the data plane holds now (the baseline a state file
  // overlays): interfaces of an older interfaces.json, the config array,
  // the recovered prefix lists; no rules and no rate classes (they cannot
  // be read back from the compiled bitmaps).
  config::DesiredState baseline(const std::optional<std::vector<config::InterfaceSpec>>& legacy_interfaces) const;
  // Startup: makes overlay(baseline, wanted) live and persists what is then
  // actually live. The filter's whole set is always written (one hitless
  // generation swap), whatever the maps held: rules cannot be read back, so
  // only a write makes the data plane run what is reported. Rules naming an
  // interface that is not there are left out (they match nothing). A part
  // that cannot be made live otherwise (a rule set that does not convert or
  // a failed swap: the baseline's filter sections go live and are committed
  // instead; filter settings; the config array: they keep what the data
  // plane runs) is reported: state.yaml as it was is kept as
  // state.yaml.rejected, and status reports degraded with restore_error
  // until a change makes a new filter set live. A daemon that refuses to
  // start helps nobody; one that claims a state it does not run misleads.
  // True when persisted.
  bool restore(const config::DesiredState& baseline, const config::DesiredState& wanted);

  // The whole `next` state checked as the data plane will take it; the
  // filter's rule set on success, bad_args naming the path and value otherwise.
  protocol::ArgsResult<filter::RuleSet> check(std::string_view op, const config::DesiredState& next) const;
  // Makes `next` live and persists it, all or nothing (see above).
  OpResult change(std::string_view op, const config::DesiredState& next);

  // After a prefix-list op changed the table's lists directly: the desired
  // state takes the entries `set` (as the table now lists them) and loses
  // `removed`, persisted in O(request) (a journal record; a bulk change
  // becomes a new snapshot). Error: nothing persisted (the caller undoes
  // its table change).
  Result<void> commit_prefix_changes(const std::vector<filter::PrefixEntry>& set, const std::vector<maps::Prefix>& removed);
  // The id a rate class has in the live state (its index in limits), by name or id.
  std::optional<std::uint32_t> class_id(const boost::json::value& name_or_id) const;

  void register_ops(OpRegistry& ops);
  // The load balancer's section (set once, before restore()).
  void set_part(StatePart& part) { part_ = &part; }

  // Fault injection, for tests only (no op reaches it): called before every
  // step of change(), whether or not the step has work; an error fails that
  // step as the step's own failure would, so rollback can be proven.
  using StepHook = std::function<Result<void>(ChangeStep)>;
  void set_step_hook(StepHook hook) { step_hook_ = std::move(hook); }
  // Likewise before undoing a step in a rollback: an error fails that undo,
  // so an incomplete rollback can be proven to say so.
  void set_undo_hook(StepHook hook) { undo_hook_ = std::move(hook); }

  const StateStore& store() const noexcept { return store_; }
  StateStore& store() noexcept { return store_; }
  // The bounded reader of the connection tables, shared with /metrics so both see one count per interval.
  ConntrackView& conntrack() noexcept { return conntrack_; }
  // Why the start could not make the whole desired state live; empty when it did.
  const std::optional<std::string>& restore_error() const noexcept { return restore_error_; }
  // A rollback whose undo failed: the data plane may run part of a change
  // the state does not hold, until a restart (which makes it run
  // state.yaml). Empty when every rollback was complete.
  const std::optional<std::string>& rollback_error() const noexcept { return rollback_error_; }
  // An op that changed the table directly (block.*) could not fully undo
  // itself: status is degraded with `message` until a restart.
  void report_incomplete_rollback(std::string message);
  // status: "degraded" (bool) and, when degraded, "restore_error" and/or
  // "rollback_error" (the why).
  void add_restore_state(boost::json::object& status) const;

 private:
  OpResult config_set(const protocol::ConfigPatch& patch);
  OpResult rule_add(const boost::json::object& args);
  OpResult rule_del(const boost::json::object& args);
  OpResult rule_list(const boost::json::object& args) const;
  OpResult limit_set(const boost::json::object& args);
  OpResult limit_del(const boost::json::object& args);
  OpResult limit_list(const boost::json::object& args) const;
  OpResult conn_list(const boost::json::object& args);
  OpResult apply(const boost::json::object& args);
  OpResult config_show(const boost::json::object& args) const;
  // The config array's stages as the part wants them for `state`.
  sluice_config with_stages(sluice_config config, const config::DesiredState& state) const;

  dataplane::Dataplane& plane_;
  filter::FilterTable& table_;
  StateStore& store_;
  Service& service_;
  StatePart* part_ = nullptr;
  StepHook step_hook_;
  StepHook undo_hook_;
  std::optional<std::string> restore_error_;
  std::optional<std::string> rollback_error_;
  // The start could not write a filter set: the live one is not what table_.rule_set() says.
  bool filter_unknown_ = false;
  ConntrackView conntrack_;
};

// Next to state.yaml: the state file that could not be made live at start.
inline constexpr std::string_view rejected_state_suffix = ".rejected";

// Prefix lists for the table's entries, keeping how `old` wrote an entry
// (which list, explicit action) when it still means the same; new entries
// go to block (drop, rate-limit) or allow (pass).
config::PrefixLists prefix_lists_for(const config::PrefixLists& old, const std::vector<filter::PrefixEntry>& entries,
                                     const std::vector<config::LimitSpec>& limits);

// Equal sets: same prefixes (any order), rules, classes and policy.
bool same_rule_set(const filter::RuleSet& a, const filter::RuleSet& b);

}  // namespace sluice::daemon
