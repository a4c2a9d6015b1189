#include "ops.hpp"

#include <array>
#include <stdexcept>

namespace sluice::protocol {
namespace {

namespace json = boost::json;

constexpr std::array<OpInfo, 49> op_table{{
    {"status", Access::ReadOnly, false},
    {"attach", Access::ChangesState, false},
    {"detach", Access::ChangesState, false},
    {"config.get", Access::ReadOnly, false},
    {"config.set", Access::ChangesState, false},
    {"stats", Access::ReadOnly, false},
    {"events", Access::ReadsPackets, true},
    {"shutdown", Access::ChangesState, false},
    {"block.add", Access::ChangesState, false},
    {"block.del", Access::ChangesState, false},
    {"block.list", Access::ReadOnly, false},
    {"block.load", Access::ChangesState, false},
    {"rule.add", Access::ChangesState, false},
    {"rule.del", Access::ChangesState, false},
    {"rule.list", Access::ReadOnly, false},
    {"limit.set", Access::ChangesState, false},
    {"limit.list", Access::ReadOnly, false},
    {"conn.list", Access::ReadOnly, false},
    {"apply", Access::ChangesState, false},
    {"config.show", Access::ReadOnly, false},
    {"limit.del", Access::ChangesState, false},
    {"filter.policy", Access::ChangesState, false},
    // The load balancer (control/daemon/lb_ops.cpp): changes need what filter changes need.
    {"vip.add", Access::ChangesState, false},
    {"vip.del", Access::ChangesState, false},
    {"vip.list", Access::ReadOnly, false},
    {"backend.add", Access::ChangesState, false},
    {"backend.set", Access::ChangesState, false},
    {"backend.drain", Access::ChangesState, false},
    {"backend.del", Access::ChangesState, false},
    {"backend.list", Access::ReadOnly, false},
    {"lb.set", Access::ChangesState, false},
    {"lb.show", Access::ReadOnly, false},
    // A streamed block load (sluicectl block load FILE): begin, chunks, commit or abort.
    {"block.load.begin", Access::ChangesState, false},
    {"block.load.chunk", Access::ChangesState, false},
    {"block.load.commit", Access::ChangesState, false},
    {"block.load.abort", Access::ChangesState, false},
    // The forward stage (control/daemon/route_ops.cpp).
    {"route.add", Access::ChangesState, false},
    {"route.replace", Access::ChangesState, false},
    {"route.del", Access::ChangesState, false},
    {"route.list", Access::ReadOnly, false},
    {"nexthop.list", Access::ReadOnly, false},
    {"nexthop.group.add", Access::ChangesState, false},
    {"nexthop.group.replace", Access::ChangesState, false},
    {"nexthop.group.del", Access::ChangesState, false},
    {"nexthop.group.list", Access::ReadOnly, false},
    {"forward.set", Access::ChangesState, false},
    {"cpumap.set", Access::ChangesState, false},
    {"forward.show", Access::ReadOnly, false},
    {"route.sync", Access::ChangesState, false},
}};

ArgsResult<std::string> iface_arg(std::string_view op, const json::object& object) {
  // Read with a generous bound first so the error can say what was wrong with the name.
  constexpr std::size_t quoted_bound = 256;
  auto iface = args::required_string(op, object, "iface", quoted_bound);
  if (!iface) return iface.error();
  if (auto problem = interface_name_problem(*iface))
    return args::bad(op, "iface", quote_value(json::string(*iface)) + " is not an interface name: " + *problem);
  return *iface;
}

}  // namespace

void throw_exception_from_error(const ProtocolError& error, const boost::source_location&) {
  throw std::runtime_error(std::string(to_string(error.code)) + ": " + error.message);
}

std::span<const OpInfo> all_ops() { return op_table; }

const OpInfo* find_op(std::string_view name) {
  for (const auto& op : op_table)
    if (op.name == name) return &op;
  return nullptr;
}

std::string_view to_string(Access access) {
  switch (access) {
    case Access::ReadOnly: return "read-only";
    case Access::ChangesState: return "changes state";
    case Access::ReadsPackets: return "reads packet contents";
  }
  return "changes state";
}

std::string_view to_string(Verdict verdict) { return verdict == Verdict::Drop ? "drop" : "pass"; }
std::string_view to_string(AttachMode mode) { return mode == AttachMode::Skb ? "skb" : "native"; }

namespace args {

ProtocolError bad(std::string_view op, std::string_view field, std::string_view problem) {
  return ProtocolError{ErrorCode::BadArgs, std::string(op) + ": " + std::string(field) + ": " + std::string(problem)};
}

ArgsResult<void> only_keys(std::string_view op, const json::object& object, std::initializer_list<std::string_view> allowed) {
  for (const auto& entry : object) {
    bool known = false;
    for (auto key : allowed) known = known || key == entry.key();
    if (known) continue;
    std::string expected;
    for (auto key : allowed) expected += (expected.empty() ? "" : ", ") + std::string(key);
    return bad(op, quote_value(json::string(entry.key())),
               "unknown argument" + (expected.empty() ? std::string(" (this op takes none)") : " (expected " + expected + ")"));
  }
  return {};
}

ArgsResult<std::optional<std::string>> optional_string(std::string_view op, const json::object& object,
                                                       std::string_view key, std::size_t max_bytes) {
  const auto* value = object.if_contains(key);
  if (!value) return std::optional<std::string>{};
  if (!value->is_string()) return bad(op, key, "must be a string, got " + quote_value(*value));
  const auto& text = value->as_string();
  if (text.size() > max_bytes)
    return bad(op, key, "is " + std::to_string(text.size()) + " bytes; the limit is " + std::to_string(max_bytes));
  return std::optional<std::string>{std::string(text)};
}

ArgsResult<std::string> required_string(std::string_view op, const json::object& object, std::string_view key,
                                        std::size_t max_bytes) {
  auto text = optional_string(op, object, key, max_bytes);
  if (!text) return text.error();
  if (!*text) return bad(op, key, "is required");
  return std::move(**text);
}

ArgsResult<std::optional<bool>> optional_bool(std::string_view op, const json::object& object, std::string_view key) {
  const auto* value = object.if_contains(key);
  if (!value) return std::optional<bool>{};
  if (!value->is_bool()) return bad(op, key, "must be true or false, got " + quote_value(*value));
  return std::optional<bool>{value->as_bool()};
}

ArgsResult<std::optional<std::uint64_t>> optional_uint(std::string_view op, const json::object& object,
                                                       std::string_view key, std::uint64_t min, std::uint64_t max) {
  const auto* value = object.if_contains(key);
  if (!value) return std::optional<std::uint64_t>{};
  const std::string range = " (allowed " + std::to_string(min) + ".." + std::to_string(max) + ")";
  std::uint64_t number = 0;
  if (value->is_uint64()) {
    number = value->as_uint64();
  } else if (value->is_int64()) {
    if (value->as_int64() < 0) return bad(op, key, quote_value(*value) + " is out of range" + range);
    number = static_cast<std::uint64_t>(value->as_int64());
  } else {
    return bad(op, key, "must be an integer, got " + quote_value(*value));
  }
  if (number < min || number > max) return bad(op, key, quote_value(*value) + " is out of range" + range);
  return std::optional<std::uint64_t>{number};
}

ArgsResult<std::optional<Verdict>> optional_verdict(std::string_view op, const json::object& object,
                                                    std::string_view key) {
  const auto* value = object.if_contains(key);
  if (!value) return std::optional<Verdict>{};
  if (value->is_string() && value->as_string() == "pass") return std::optional<Verdict>{Verdict::Pass};
  if (value->is_string() && value->as_string() == "drop") return std::optional<Verdict>{Verdict::Drop};
  return bad(op, key, "must be \"pass\" or \"drop\", got " + quote_value(*value));
}

}  // namespace args

ArgsResult<void> parse_no_args(std::string_view op, const json::object& object) { return args::only_keys(op, object, {}); }

ArgsResult<AttachArgs> parse_attach_args(const json::object& object) {
  constexpr std::string_view op = "attach";
  if (auto keys = args::only_keys(op, object, {"iface", "mode"}); !keys) return keys.error();
  auto iface = iface_arg(op, object);
  if (!iface) return iface.error();
  AttachArgs parsed{std::move(*iface), AttachMode::Native};
  if (const auto* mode = object.if_contains("mode")) {
    if (mode->is_string() && mode->as_string() == "native") parsed.mode = AttachMode::Native;
    else if (mode->is_string() && mode->as_string() == "skb") parsed.mode = AttachMode::Skb;
    else return args::bad(op, "mode", "must be \"native\" or \"skb\", got " + quote_value(*mode));
  }
  return parsed;
}

ArgsResult<DetachArgs> parse_detach_args(const json::object& object) {
  constexpr std::string_view op = "detach";
  if (auto keys = args::only_keys(op, object, {"iface"}); !keys) return keys.error();
  auto iface = iface_arg(op, object);
  if (!iface) return iface.error();
  return DetachArgs{std::move(*iface)};
}

ArgsResult<ConfigPatch> parse_config_patch(const json::object& object) {
  constexpr std::string_view op = "config.set";
  // The key of before the split: refused by name, so an old client learns where it went instead of "unknown key".
  if (object.contains("default_verdict"))
    return args::bad(op, "default_verdict",
                     "is now two settings: the filter's policy for what its rules leave undecided is the op "
                     "filter.policy (sluicectl filter policy), the verdict for a packet no stage consumed is "
                     "end_verdict");
  if (auto keys = args::only_keys(op, object,
                                  {"end_verdict", "tail_call_fail_verdict", "malformed_verdict", "non_ip_verdict",
                                   "drop_fragments", "stages", "drop_sample_every"});
      !keys)
    return keys.error();
  if (object.empty()) return args::bad(op, "args", "name at least one config key to change");
  ConfigPatch patch;
  struct VerdictField {
    std::string_view key;
    std::optional<Verdict> ConfigPatch::*member;
  };
  constexpr std::array<VerdictField, 4> verdict_fields{{
      {"end_verdict", &ConfigPatch::end_verdict},
      {"tail_call_fail_verdict", &ConfigPatch::tail_call_fail_verdict},
      {"malformed_verdict", &ConfigPatch::malformed_verdict},
      {"non_ip_verdict", &ConfigPatch::non_ip_verdict},
  }};
  for (const auto& field : verdict_fields) {
    auto verdict = args::optional_verdict(op, object, field.key);
    if (!verdict) return verdict.error();
    patch.*field.member = *verdict;
  }
  auto fragments = args::optional_bool(op, object, "drop_fragments");
  if (!fragments) return fragments.error();
  patch.drop_fragments = *fragments;
  auto sample_every = args::optional_uint(op, object, "drop_sample_every", 0, max_drop_sample_every);
  if (!sample_every) return sample_every.error();
  if (*sample_every) patch.drop_sample_every = static_cast<std::uint32_t>(**sample_every);
  if (const auto* stages = object.if_contains("stages")) {
    if (!stages->is_object()) return args::bad(op, "stages", "must be an object, got " + quote_value(*stages));
    const auto& stage_object = stages->as_object();
    constexpr std::string_view stages_op = "config.set stages";
    if (auto keys = args::only_keys(stages_op, stage_object, {"filter", "lb", "forward"}); !keys) return keys.error();
    auto filter = args::optional_bool(stages_op, stage_object, "filter");
    if (!filter) return filter.error();
    auto lb = args::optional_bool(stages_op, stage_object, "lb");
    if (!lb) return lb.error();
    auto forward = args::optional_bool(stages_op, stage_object, "forward");
    if (!forward) return forward.error();
    patch.stages = StagesPatch{*filter, *lb, *forward};
  }
  return patch;
}

ArgsResult<EventsArgs> parse_events_args(const json::object& object) {
  constexpr std::string_view op = "events";
  if (auto keys = args::only_keys(op, object, {"follow", "max"}); !keys) return keys.error();
  EventsArgs parsed;
  auto follow = args::optional_bool(op, object, "follow");
  if (!follow) return follow.error();
  parsed.follow = follow->value_or(false);
  auto max = args::optional_uint(op, object, "max", 1, max_events_per_request);
  if (!max) return max.error();
  parsed.max = *max;
  return parsed;
}

ArgsResult<ShutdownArgs> parse_shutdown_args(const json::object& object) {
  constexpr std::string_view op = "shutdown";
  if (auto keys = args::only_keys(op, object, {"detach"}); !keys) return keys.error();
  auto detach = args::optional_bool(op, object, "detach");
  if (!detach) return detach.error();
  return ShutdownArgs{detach->value_or(false)};
}

}  // namespace sluice::protocol
