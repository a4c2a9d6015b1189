#pragma once
// Pieces the stage command files (lb_commands, route_commands) share: reading
// a reply's fields for a table, and local checks of option values (sluiced
// checks again; these catch typos before anything is sent).
#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include "decimal.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::cli {

// Reply access: a missing or malformed object or list throws LbBadReply; a
// missing scalar reads "-" rather than failing the table.
const boost::json::object& object_of(const boost::json::value& value, std::string_view what);
const boost::json::array& array_of(const boost::json::object& object, std::string_view key);
std::string text(const boost::json::object& object, std::string_view key);

// A validator named `name` whose problem_of returns an error message, or empty when the value is fine.
CLI::Validator check_with(std::string name, std::function<std::string(const std::string&)> problem_of);
CLI::Validator address_validator();  // an IPv4 or IPv6 address (lb::parse_address)
CLI::Validator mac_validator();      // a unicast MAC (lb::parse_mac)

// An integer option: decimal only, through the parser every door shares
// (maps/decimal.hpp). Not CLI11's own conversion, which is strtoull with base
// 0: `rule del 010` deleted rule 8 and `--priority 0x20` made rule 32. A bad
// value is a usage error (exit 2) naming `name` and the value.
template <class T>
CLI::Option* add_decimal(CLI::App* command, const std::string& flags, const std::string& name, std::optional<T>& target,
                         std::uint64_t min, std::uint64_t max, const std::string& description) {
  auto* option = command->add_option_function<std::string>(
      flags,
      [&target, name, min, max](const std::string& text) {
        const auto parsed = maps::parse_decimal(text, min, max);
        if (!parsed.value) throw CLI::ValidationError(name, parsed.problem);
        target = static_cast<T>(*parsed.value);
      },
      description);
  return option->type_name("N");
}

// The same, named by its one flag ("--weight").
template <class T>
CLI::Option* add_decimal(CLI::App* command, const std::string& flag, std::optional<T>& target, std::uint64_t min,
                         std::uint64_t max, const std::string& description) {
  return add_decimal(command, flag, flag, target, min, max, description);
}

}  // namespace sluice::cli
