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
// (maps/decimal.hpp), not CLI11's base-0 strtoull (which took 010 as 8 and
// 0x20 as 32). A bad value is a usage error naming the option and the value.
template <class T>
CLI::Option* add_decimal(CLI::App* command, const std::string& flag, std::optional<T>& target, std::uint64_t min,
                         std::uint64_t max, const std::string& description) {
  auto* option = command->add_option_function<std::string>(
      flag,
      [&target, flag, min, max](const std::string& text) {
        const auto parsed = maps::parse_decimal(text, min, max);
        if (!parsed.value) throw CLI::ValidationError(flag, parsed.problem);
        target = static_cast<T>(*parsed.value);
      },
      description);
  return option->type_name("N");
}

}  // namespace sluice::cli
