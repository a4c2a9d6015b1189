#include "filter_ops.hpp"

#include <map>
#include <tuple>
#include <unordered_map>

#include "spdlog/spdlog.h"

namespace sluice::daemon {
namespace {

namespace json = boost::json;
using protocol::ErrorCode;
using protocol::ProtocolError;

// A block.add/block.del request names at most this many prefixes; bigger
// lists go through block.load (batch writes).
constexpr std::size_t max_prefixes_per_request = 10'000;
constexpr std::size_t max_prefix_text_bytes = 64;


protocol::ArgsResult<std::vector<maps::Prefix>> prefixes_arg(std::string_view op, const json::object& args) {
  const auto* list = args.if_contains("prefixes");
  if (!list) return protocol::args::bad(op, "prefixes", "is required");
  if (!list->is_array() || list->as_array().empty())
    return protocol::args::bad(op, "prefixes", "must be a non-empty array of CIDR strings, got " + protocol::quote_value(*list));
  if (list->as_array().size() > max_prefixes_per_request)
    return protocol::args::bad(op, "prefixes", std::to_string(list->as_array().size()) + " entries; the limit is " +
                                                   std::to_string(max_prefixes_per_request) + " (use block.load)");
  std::vector<maps::Prefix> prefixes;
  std::size_t index = 0;
  for (const auto& item : list->as_array()) {
    const std::string field = "prefixes[" + std::to_string(index++) + "]";
    if (!item.is_string() || item.as_string().size() > max_prefix_text_bytes)
      return protocol::args::bad(op, field, "must be a CIDR string, got " + protocol::quote_value(item));
    auto prefix = maps::parse_prefix(item.as_string());
    if (!prefix) return protocol::args::bad(op, field, prefix.error().message);
    prefixes.push_back(*prefix);
  }
  return prefixes;
}

struct ActionArgs {
  filter::Action action = filter::Action::Drop;
  std::uint32_t rate_class = 0;
};

protocol::ArgsResult<ActionArgs> action_arg(std::string_view op, const json::object& args, const StateOps& state) {
  ActionArgs parsed;
  auto text = protocol::args::optional_string(op, args, "action", max_prefix_text_bytes);
  if (!text) return text.error();
  if (*text) {
    auto action = filter::parse_action(**text);
    if (!action || *action == filter::Action::PassTrack)
      return protocol::args::bad(op, "action", "must be \"drop\", \"pass\" or \"rate-limit\", got " +
                                                   protocol::quote_value(json::string(**text)));
    parsed.action = *action;
  }
  // A class by name (limits[].class) or by id (its index in limit.list).
  const auto* rate_class = args.if_contains("rate_class");
  if (rate_class && parsed.action != filter::Action::RateLimit)
    return protocol::args::bad(op, "rate_class", "only with action \"rate-limit\"");
  if (rate_class) {
    auto id = state.class_id(*rate_class);
    if (!id) return protocol::args::bad(op, "rate_class", protocol::quote_value(*rate_class) + " is not a defined class (limit.list)");
    parsed.rate_class = *id;
  }
  return parsed;
}

json::object prefix_to_json(const filter::PrefixEntry& entry) {
  json::object out{{"prefix", maps::to_string(entry.prefix)}, {"action", filter::to_string(entry.action)}};
  if (entry.action == filter::Action::RateLimit) out["rate_class"] = entry.rate_class;
  return out;
}

// The reply of a failed block.* op after its undo: "rolled back" only when it was.
OpResult failed_after_undo(StateOps& state, std::string_view op, const std::string& what, const std::string& undo_errors) {
  if (undo_errors.empty()) return ProtocolError{ErrorCode::Failed, std::string(op) + ": " + what + "; rolled back"};
  const std::string message = std::string(op) + ": " + what + "; rollback incomplete (" + undo_errors +
                              "): the prefix lists may not be what block.list reports; restart sluiced (a restart "
                              "makes the data plane run state.yaml)";
  state.report_incomplete_rollback(message);
  return ProtocolError{ErrorCode::Failed, message};
}

std::string undo_message(const maps::Error& undo, std::string_view op) {
  spdlog::error("{} rollback: {}", op, undo.message);
  return undo.message;
}

}  // namespace

void register_filter_ops(OpRegistry& ops, filter::FilterTable& table, StateOps& state) {
  // The rule set's default policy is part of the desired state (filter.default_policy), so it
  // takes the same validated, all-or-nothing, persisted path as a rule change.
  ops.add("filter.policy", {[&state](const json::object& args) -> OpResult {
                              constexpr std::string_view op = "filter.policy";
                              if (auto keys = protocol::args::only_keys(op, args, {"policy"}); !keys) return keys.error();
                              constexpr std::size_t policy_bound = 16;
                              auto text = protocol::args::required_string(op, args, "policy", policy_bound);
                              if (!text) return text.error();
                              auto policy = config::parse_policy(*text);
                              if (!policy)
                                return protocol::args::bad(op, "policy", "'" + *text + "' is neither pass nor drop");
                              config::DesiredState next = state.store().live();
                              next.filter = config::FilterSection{*policy};
                              if (auto changed = state.change(op, next); !changed) return changed;
                              spdlog::info("filter policy: {}", config::policy_name(*policy));
                              return json::value(json::object{{"default_policy", config::policy_name(*policy)}});
                            },
                            nullptr});
  // O(request): checked against the table's index, written element by
  // element into the live generation, persisted as one journal record.
  ops.add("block.add", {[&table, &state](const json::object& args) -> OpResult {
                          constexpr std::string_view op = "block.add";
                          if (auto keys = protocol::args::only_keys(op, args, {"prefixes", "action", "rate_class"}); !keys)
                            return keys.error();
                          auto prefixes = prefixes_arg(op, args);
                          if (!prefixes) return prefixes.error();
                          auto action = action_arg(op, args, state);
                          if (!action) return action.error();
                          // Validate every entry before writing any.
                          std::vector<filter::PrefixEntry> entries;
                          std::unordered_map<filter::PrefixKey, std::size_t, filter::PrefixKeyHash> index_of;
                          std::size_t new_v4 = 0, new_v6 = 0;
                          for (std::size_t i = 0; i < prefixes->size(); ++i) {
                            filter::PrefixEntry entry{(*prefixes)[i], action->action, action->rate_class};
                            if (auto valid = filter::validate(entry, table.rule_set().rate_classes); !valid)
                              return ProtocolError{ErrorCode::BadArgs, "block.add: " + valid.error().message};
                            if (auto [seen, fresh] = index_of.try_emplace(filter::prefix_key(entry.prefix), i); !fresh)
                              return protocol::args::bad(op, "prefixes[" + std::to_string(i) + "]",
                                                         maps::to_string(entry.prefix) + " is also prefixes[" +
                                                             std::to_string(seen->second) + "]");
                            if (!table.find_prefix(entry.prefix)) ++(entry.prefix.index() == 0 ? new_v4 : new_v6);
                            entries.push_back(entry);
                          }
                          for (auto [family, fresh, capacity] : {std::tuple{4, new_v4, std::size_t{SLUICE_FILTER_MAX_V4_PREFIXES}},
                                                                 std::tuple{6, new_v6, std::size_t{SLUICE_FILTER_MAX_V6_PREFIXES}}})
                            if (table.prefix_count(family) + fresh > capacity)
                              return protocol::args::bad(op, "prefixes", "the IPv" + std::to_string(family) + " list would hold " +
                                                                             std::to_string(table.prefix_count(family) + fresh) +
                                                                             " prefixes, over its capacity of " + std::to_string(capacity));
                          auto replaced = table.add_prefixes(entries);
                          if (!replaced) return ProtocolError{ErrorCode::Failed, std::string(op) + ": " + replaced.error().message};
                          if (auto persisted = state.commit_prefix_changes(entries, {}); !persisted) {
                            // Back to what was: new entries go, replaced ones return.
                            std::vector<maps::Prefix> added;
                            std::vector<filter::PrefixEntry> previous;
                            for (std::size_t i = 0; i < entries.size(); ++i) {
                              if ((*replaced)[i]) previous.push_back(*(*replaced)[i]);
                              else added.push_back(entries[i].prefix);
                            }
                            std::string undo_errors;
                            if (!added.empty())
                              if (auto gone = table.remove_prefixes(added); !gone) undo_errors = undo_message(gone.error(), op);
                            if (!previous.empty())
                              if (auto back = table.add_prefixes(previous); !back) {
                                const std::string more = undo_message(back.error(), op);
                                undo_errors += (undo_errors.empty() ? "" : "; ") + more;
                              }
                            return failed_after_undo(state, op, "persist: " + persisted.error().message, undo_errors);
                          }
                          return json::value(json::object{{"added", entries.size()}});
                        },
                        nullptr});
  ops.add("block.del", {[&table, &state](const json::object& args) -> OpResult {
                          constexpr std::string_view op = "block.del";
                          if (auto keys = protocol::args::only_keys(op, args, {"prefixes"}); !keys) return keys.error();
                          auto prefixes = prefixes_arg(op, args);
                          if (!prefixes) return prefixes.error();
                          std::unordered_map<filter::PrefixKey, std::size_t, filter::PrefixKeyHash> index_of;
                          for (std::size_t i = 0; i < prefixes->size(); ++i) {
                            const auto& prefix = (*prefixes)[i];
                            if (!table.find_prefix(prefix))
                              return ProtocolError{ErrorCode::BadArgs,
                                                   "block.del: prefixes: " + maps::to_string(prefix) + " is not listed"};
                            if (auto [seen, fresh] = index_of.try_emplace(filter::prefix_key(prefix), i); !fresh)
                              return protocol::args::bad(op, "prefixes[" + std::to_string(i) + "]",
                                                         maps::to_string(prefix) + " is also prefixes[" + std::to_string(seen->second) + "]");
                          }
                          auto removed = table.remove_prefixes(*prefixes);
                          if (!removed) return ProtocolError{ErrorCode::Failed, std::string(op) + ": " + removed.error().message};
                          if (auto persisted = state.commit_prefix_changes({}, *prefixes); !persisted) {
                            std::string undo_errors;
                            if (auto back = table.add_prefixes(*removed); !back) undo_errors = undo_message(back.error(), op);
                            return failed_after_undo(state, op, "persist: " + persisted.error().message, undo_errors);
                          }
                          return json::value(json::object{{"removed", removed->size()}});
                        },
                        nullptr});
  ops.add("block.list", {[&table](const json::object& args) -> OpResult {
                           if (auto none = protocol::parse_no_args("block.list", args); !none) return none.error();
                           json::array list;
                           for (const auto& entry : table.prefixes()) list.push_back(prefix_to_json(entry));
                           return json::value(json::object{{"prefixes", std::move(list)}});
                         },
                         nullptr});
}

}  // namespace sluice::daemon
