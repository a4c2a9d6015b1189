#pragma once
// Pieces the stage command files (lb_commands, route_commands) share: reading
// a reply's fields for a table, and local checks of option values (sluiced
// checks again; these catch typos before anything is sent).
#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <functional>
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

}  // namespace sluice::cli
