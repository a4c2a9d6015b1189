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
// in the file.
#include <string>
#include <string_view>

#include "dataplane.hpp"
#include "desired_state.hpp"
#include "filter_table.hpp"
#include "server.hpp"
#include "service.hpp"
#include "state_store.hpp"

namespace sluice::daemon {

class StateOps {
 public:
  StateOps(dataplane::Dataplane& plane, filter::FilterTable& table, StateStore& store, Service& service);

  // Startup: what the data plane holds now (the baseline a state file
  // overlays): interfaces of an older interfaces.json, the config array,
  // the recovered prefix lists; no rules and no rate classes (they cannot
  // be read back from the compiled bitmaps).
  config::DesiredState baseline(const std::optional<std::vector<config::InterfaceSpec>>& legacy_interfaces) const;
  // Startup: makes `wanted` (a whole state) live and persists it. Problems
  // are logged and the rest goes on: a daemon that refuses to start helps
  // nobody, and the pinned data plane keeps what it had. True when persisted.
  bool restore(const config::DesiredState& wanted);

  // The whole `next` state checked as the data plane will take it; the
  // filter's rule set on success, bad_args naming the path and value otherwise.
  protocol::ArgsResult<filter::RuleSet> check(std::string_view op, const config::DesiredState& next) const;
  // Makes `next` live and persists it, all or nothing (see above).
  OpResult change(std::string_view op, const config::DesiredState& next);

  // After a prefix-list op changed the table's lists directly: the desired
  // state takes the table's lists and is persisted. Error: nothing
  // persisted (the caller undoes its table change).
  Result<void> commit_prefix_lists();
  // The id a rate class has in the live state (its index in limits), by name or id.
  std::optional<std::uint32_t> class_id(const boost::json::value& name_or_id) const;

  void register_ops(OpRegistry& ops);

  const StateStore& store() const noexcept { return store_; }

 private:
  OpResult config_set(const protocol::ConfigPatch& patch);
  OpResult rule_add(const boost::json::object& args);
  OpResult rule_del(const boost::json::object& args);
  OpResult rule_list(const boost::json::object& args) const;
  OpResult limit_set(const boost::json::object& args);
  OpResult limit_del(const boost::json::object& args);
  OpResult limit_list(const boost::json::object& args) const;
  OpResult conn_list(const boost::json::object& args) const;
  OpResult apply(const boost::json::object& args);
  OpResult config_show(const boost::json::object& args) const;

  dataplane::Dataplane& plane_;
  filter::FilterTable& table_;
  StateStore& store_;
  Service& service_;
};

// Prefix lists for the table's entries, keeping how `old` wrote an entry
// (which list, explicit action) when it still means the same; new entries
// go to block (drop, rate-limit) or allow (pass).
config::PrefixLists prefix_lists_for(const config::PrefixLists& old, const std::vector<filter::PrefixEntry>& entries,
                                     const std::vector<config::LimitSpec>& limits);

// Equal sets: same prefixes (any order), rules, classes and policy.
bool same_rule_set(const filter::RuleSet& a, const filter::RuleSet& b);

}  // namespace sluice::daemon
