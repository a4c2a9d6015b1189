#include "command_context.hpp"

#include "desired_state.hpp"
#include "protocol.hpp"

namespace sluice::cli {

const json::object& as_object(const json::value& value, std::string_view what) {
  if (!value.is_object()) throw BadReply{std::string(what) + " is " + protocol::kind_name(value) + ", expected an object"};
  return value.as_object();
}

const json::array& array_field(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (!value || !value->is_array()) throw BadReply{"field " + std::string(key) + " missing or not a list"};
  return value->as_array();
}

std::string text(const json::value* value) {
  if (!value || value->is_null()) return "-";
  switch (value->kind()) {
    case json::kind::string: return std::string(value->as_string());
    case json::kind::bool_: return value->as_bool() ? "yes" : "no";
    case json::kind::int64: return std::to_string(value->as_int64());
    case json::kind::uint64: return std::to_string(value->as_uint64());
    case json::kind::double_: return json::serialize(*value);
    default: return json::serialize(*value);
  }
}

std::string field(const json::object& object, std::string_view key) { return text(object.if_contains(key)); }

std::optional<std::uint64_t> uint_field(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (!value) return std::nullopt;
  if (value->is_uint64()) return value->as_uint64();
  if (value->is_int64() && value->as_int64() >= 0) return static_cast<std::uint64_t>(value->as_int64());
  return std::nullopt;
}

CLI::Validator interface_validator() {
  return CLI::Validator(
      [](std::string& name) -> std::string {
        if (auto problem = config::interface_name_problem(name)) return "bad interface name '" + name + "': " + *problem;
        return {};
      },
      "IFACE");
}

CLI::Validator pass_or_drop_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!config::parse_pass_or_drop(value)) return "bad verdict '" + value + "': expected pass or drop";
        return {};
      },
      "pass|drop");
}

}  // namespace sluice::cli
