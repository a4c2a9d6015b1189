#pragma once
// sluicectl's filter commands: rule, filter (its default policy), limit
// (rate classes) and conn (tracked flows) (filter_commands.cpp), registered
// by sluicectl's run() next to the block commands. Also the filter
// vocabulary the block commands share: actions and prefixes on the command
// line, actions in a reply.
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "command_context.hpp"

namespace sluice::cli {

// Adds `rule`, `filter`, `limit` and `conn` to app; the command that parses hands its action to set_action.
void add_filter_commands(CLI::App& app, const std::function<void(Action)>& set_action);

// The CLI's action words and the daemon's: drop, pass, track (pass-track),
// limit:CLASS (rate-limit with rate_class).
struct FilterAction {
  std::string action;
  std::optional<json::value> rate_class;
};

// rule: the action of a rule, which may also be track. nullopt, with problem saying why, for any other word.
std::optional<FilterAction> parse_filter_action(std::string_view text, bool rule, std::string& problem);
CLI::Validator action_validator(bool rule);
CLI::Validator prefix_validator();
// The canonical form of a prefix prefix_validator accepted.
std::string canonical_prefix(const std::string& text);

// The daemon's action back in the CLI's words: "limit:web", "track".
std::string action_text(const json::object& object);

}  // namespace sluice::cli
