#pragma once
// The ops of the control protocol: who may call them, and their arguments
// parsed and validated into typed structs. Validation is complete before the
// daemon touches anything, so a bad request changes nothing; every error
// names the op, the field and the value.
#include <boost/json.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol.hpp"
#include "value_rules.hpp"

namespace sluice::protocol {

template <class T>
using ArgsResult = boost::system::result<T, ProtocolError>;

// Found by ADL from ArgsResult<T>::value() on an error.
[[noreturn]] void throw_exception_from_error(const ProtocolError& error, const boost::source_location& where);

// Who may call an op (docs/sluiced.md, "Access"): the socket's group may connect; the
// admin group (and root) may also change state and read packet contents.
enum class Access {
  ReadOnly,      // anyone who can connect: counts, configuration, rules
  ChangesState,  // uid 0 or a member of the admin group
  ReadsPackets,  // uid 0 or a member of the admin group: packet heads (events, and sluicectl capture)
};
std::string_view to_string(Access access);

struct OpInfo {
  std::string_view name;
  Access access;
  bool streaming;  // replies with event lines before the final result
};

// Every op of the protocol (the daemon may implement a subset: the rest are unknown_op).
std::span<const OpInfo> all_ops();
const OpInfo* find_op(std::string_view name);

enum class Verdict { Pass, Drop };
std::string_view to_string(Verdict verdict);

enum class AttachMode { Native, Skb };
std::string_view to_string(AttachMode mode);

// Interface names: interface_name_problem (value_rules.hpp).

struct AttachArgs {
  std::string iface;
  AttachMode mode = AttachMode::Native;
};
struct DetachArgs {
  std::string iface;
};

struct StagesPatch {
  std::optional<bool> filter, lb, forward;
};
// config.set: any subset of the config keys; absent keys keep their value.
struct ConfigPatch {
  std::optional<Verdict> end_verdict;
  std::optional<Verdict> tail_call_fail_verdict;
  std::optional<Verdict> malformed_verdict;
  std::optional<Verdict> non_ip_verdict;
  std::optional<bool> drop_fragments;
  StagesPatch stages;
  std::optional<std::uint32_t> drop_sample_every;  // 1 in N filter drops to the events; 0 = off
};

// events: follow=false returns the recent events the daemon kept (at most
// max); follow=true streams new events until max is reached (no max: until
// the client closes).
inline constexpr std::uint64_t max_events_per_request = 1'000'000;
struct EventsArgs {
  bool follow = false;
  std::optional<std::uint64_t> max;  // 1..max_events_per_request
};

struct ShutdownArgs {
  bool detach = false;
};

// Ops without arguments: any key is refused (a typo must not pass silently).
ArgsResult<void> parse_no_args(std::string_view op, const boost::json::object& args);
ArgsResult<AttachArgs> parse_attach_args(const boost::json::object& args);
ArgsResult<DetachArgs> parse_detach_args(const boost::json::object& args);
ArgsResult<ConfigPatch> parse_config_patch(const boost::json::object& args);
ArgsResult<EventsArgs> parse_events_args(const boost::json::object& args);
ArgsResult<ShutdownArgs> parse_shutdown_args(const boost::json::object& args);

// Building blocks for the parsers above, shared with other op families.
namespace args {
ProtocolError bad(std::string_view op, std::string_view field, std::string_view problem);
ArgsResult<void> only_keys(std::string_view op, const boost::json::object& args,
                           std::initializer_list<std::string_view> allowed);
ArgsResult<std::string> required_string(std::string_view op, const boost::json::object& args, std::string_view key,
                                        std::size_t max_bytes);
ArgsResult<std::optional<std::string>> optional_string(std::string_view op, const boost::json::object& args,
                                                       std::string_view key, std::size_t max_bytes);
ArgsResult<std::optional<bool>> optional_bool(std::string_view op, const boost::json::object& args,
                                              std::string_view key);
// Integers only (1.0 and "1" are refused), within [min, max].
ArgsResult<std::optional<std::uint64_t>> optional_uint(std::string_view op, const boost::json::object& args,
                                                       std::string_view key, std::uint64_t min, std::uint64_t max);
ArgsResult<std::optional<Verdict>> optional_verdict(std::string_view op, const boost::json::object& args,
                                                    std::string_view key);
}  // namespace args

}  // namespace sluice::protocol
