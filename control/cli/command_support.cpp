#include "command_support.hpp"

#include "lb_commands.hpp"
#include "lb_model.hpp"

namespace sluice::cli {

namespace json = boost::json;

const json::object& object_of(const json::value& value, std::string_view what) {
  if (!value.is_object()) throw LbBadReply(std::string(what) + " is not an object");
  return value.as_object();
}

const json::array& array_of(const json::object& object, std::string_view key) {
  const auto* value = object.if_contains(key);
  if (!value || !value->is_array()) throw LbBadReply("field " + std::string(key) + " missing or not a list");
  return value->as_array();
}

std::string text(const json::object& object, std::string_view key) {
  const auto* value = object.if_contains(key);
  if (!value || value->is_null()) return "-";
  if (value->is_string()) return std::string(value->as_string());
  if (value->is_bool()) return value->as_bool() ? "yes" : "no";
  if (value->is_uint64()) return std::to_string(value->as_uint64());
  if (value->is_int64()) return std::to_string(value->as_int64());
  return json::serialize(*value);
}

CLI::Validator check_with(std::string name, std::function<std::string(const std::string&)> problem_of) {
  return CLI::Validator([problem_of = std::move(problem_of)](std::string& value) { return problem_of(value); },
                        std::move(name));
}

CLI::Validator address_validator() {
  return check_with("ADDR", [](const std::string& text) -> std::string {
    if (auto address = lb::parse_address(text); !address) return address.error().message;
    return {};
  });
}

CLI::Validator mac_validator() {
  return check_with("MAC", [](const std::string& text) -> std::string {
    if (auto mac = lb::parse_mac(text); !mac) return mac.error().message;
    return {};
  });
}

}  // namespace sluice::cli
