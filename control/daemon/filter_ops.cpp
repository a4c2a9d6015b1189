#include "filter_ops.hpp"

#include <map>

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

std::optional<filter::PrefixEntry> find_entry(const std::vector<filter::PrefixEntry>& entries, const maps::Prefix& prefix) {
  for (const auto& entry : entries)
    if (filter::same_prefix(entry.prefix, prefix)) return entry;
  return std::nullopt;
}

// Puts the table's prefix lists back to `before` (entries added since are
// removed, changed or removed ones written again). Used when a request fails
// half way or its state cannot be persisted. Returns what could not be put
// back ("" when everything was).
std::string restore_prefixes(filter::FilterTable& table, const std::vector<filter::PrefixEntry>& before,
                             std::string_view op) {
  std::string undo_errors;
  auto note = [&](const maps::Error& error) {
    spdlog::error("{} rollback: {}", op, error.message);
    undo_errors += (undo_errors.empty() ? "" : "; ") + error.message;
  };
  std::map<std::string, filter::PrefixEntry> was;
  for (const auto& entry : before) was.emplace(maps::to_string(entry.prefix), entry);
  std::map<std::string, filter::PrefixEntry> now;
  for (const auto& entry : table.list_prefixes()) now.emplace(maps::to_string(entry.prefix), entry);
  for (const auto& [key, entry] : now)
    if (!was.contains(key))
      if (auto undone = table.remove_prefix(entry.prefix); !undone) note(undone.error());
  for (const auto& [key, entry] : was) {
    auto it = now.find(key);
    if (it != now.end() && it->second == entry) continue;
    if (auto undone = table.add_prefix(entry); !undone) note(undone.error());
  }
  return undo_errors;
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

// The table changed; the desired state follows, or the table goes back.
OpResult persist_or_undo(filter::FilterTable& table, StateOps& state, const std::vector<filter::PrefixEntry>& before,
                         std::string_view op, json::object result) {
  if (auto committed = state.commit_prefix_lists(); !committed) {
    return failed_after_undo(state, op, committed.error().message, restore_prefixes(table, before, op));
  }
  return json::value(std::move(result));
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
  ops.add("block.add", {[&table, &state](const json::object& args) -> OpResult {
                          constexpr std::string_view op = "block.add";
                          if (auto keys = protocol::args::only_keys(op, args, {"prefixes", "action", "rate_class"}); !keys)
                            return keys.error();
                          auto prefixes = prefixes_arg(op, args);
                          if (!prefixes) return prefixes.error();
                          auto action = action_arg(op, args, state);
                          if (!action) return action.error();
                          // Validate every entry before writing any.
                          const auto before = table.list_prefixes();
                          std::vector<filter::PrefixEntry> entries;
                          for (const auto& prefix : *prefixes) {
                            filter::PrefixEntry entry{prefix, action->action, action->rate_class};
                            if (auto valid = filter::validate(entry, table.rule_set().rate_classes); !valid)
                              return ProtocolError{ErrorCode::BadArgs, "block.add: " + valid.error().message};
                            entries.push_back(entry);
                          }
                          for (std::size_t i = 0; i < entries.size(); ++i) {
                            if (auto added = table.add_prefix(entries[i]); !added) {
                              // Roll back what this request wrote: earlier entries return to their old state.
                              return failed_after_undo(state, op, added.error().message,
                                                       restore_prefixes(table, before, op));
                            }
                          }
                          return persist_or_undo(table, state, before, op, json::object{{"added", entries.size()}});
                        },
                        nullptr});
  ops.add("block.del", {[&table, &state](const json::object& args) -> OpResult {
                          constexpr std::string_view op = "block.del";
                          if (auto keys = protocol::args::only_keys(op, args, {"prefixes"}); !keys) return keys.error();
                          auto prefixes = prefixes_arg(op, args);
                          if (!prefixes) return prefixes.error();
                          const auto before = table.list_prefixes();
                          std::vector<filter::PrefixEntry> removing;
                          for (const auto& prefix : *prefixes) {
                            auto entry = find_entry(before, prefix);
                            if (!entry)
                              return ProtocolError{ErrorCode::BadArgs,
                                                   "block.del: prefixes: " + maps::to_string(prefix) + " is not listed"};
                            removing.push_back(*entry);
                          }
                          for (std::size_t i = 0; i < removing.size(); ++i) {
                            if (auto removed = table.remove_prefix(removing[i].prefix); !removed) {
                              return failed_after_undo(state, op, removed.error().message,
                                                       restore_prefixes(table, before, op));
                            }
                          }
                          return persist_or_undo(table, state, before, op, json::object{{"removed", removing.size()}});
                        },
                        nullptr});
  ops.add("block.list", {[&table](const json::object& args) -> OpResult {
                           if (auto none = protocol::parse_no_args("block.list", args); !none) return none.error();
                           json::array list;
                           for (const auto& entry : table.list_prefixes()) list.push_back(prefix_to_json(entry));
                           return json::value(json::object{{"prefixes", std::move(list)}});
                         },
                         nullptr});
  ops.add("block.load", {[&table, &state](const json::object& args) -> OpResult {
                           constexpr std::string_view op = "block.load";
                           if (auto keys = protocol::args::only_keys(op, args, {"content", "action", "rate_class"}); !keys)
                             return keys.error();
                           auto content = protocol::args::required_string(op, args, "content", protocol::max_request_bytes);
                           if (!content) return content.error();
                           auto action = action_arg(op, args, state);
                           if (!action) return action.error();
                           if (action->action == filter::Action::RateLimit)
                             return protocol::args::bad(op, "action", "rate-limit needs a class per line in the content");
                           const auto before = table.list_prefixes();
                           auto loaded = table.load_prefix_text(*content, action->action);
                           if (!loaded) {
                             // A bad line is refused before anything is written ("line N: reason"): bad input.
                             const bool input = loaded.error().errnum == EINVAL;
                             return ProtocolError{input ? ErrorCode::BadArgs : ErrorCode::Failed,
                                                  std::string(op) + (input ? ": content: " : ": ") + loaded.error().message};
                           }
                           return persist_or_undo(table, state, before, op, json::object{{"loaded", *loaded}});
                         },
                         nullptr});
}

}  // namespace sluice::daemon
