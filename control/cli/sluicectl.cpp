#include "sluicectl.hpp"

#include <net/if.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "contract.hpp"
#include "decimal.hpp"
#include "desired_state.hpp"
#include "filter_rules.hpp"
#include "lb_commands.hpp"
#include "doctor_command.hpp"
#include "top_command.hpp"
#include "route_commands.hpp"
#include "packet_head.hpp"
#include "pcap_writer.hpp"
#include "prefix.hpp"
#include "ops.hpp"
#include "protocol.hpp"
#include "utf8.hpp"
#include "xdp_attachment.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr std::int64_t kNanosPerMicro = 1'000;
// A watch loop sleeps in slices this long so Ctrl-C ends it promptly.
constexpr std::chrono::milliseconds kSleepSlice{100};
constexpr double kMaxWatchSeconds = 86400;
// Column gap of every table.
constexpr std::string_view kGap = "  ";

// ---- errors while rendering a reply: the daemon sent a shape we do not know ----

struct BadReply {
  std::string message;
};

const json::object& as_object(const json::value& value, std::string_view what) {
  if (!value.is_object()) throw BadReply{std::string(what) + " is " + protocol::kind_name(value) + ", expected an object"};
  return value.as_object();
}

const json::array& array_field(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (!value || !value->is_array()) throw BadReply{"field " + std::string(key) + " missing or not a list"};
  return value->as_array();
}

// Any scalar as text; "-" when absent. Tables show what the daemon sent
// without choking on a field a newer daemon renamed.
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

// Whole seconds of a non-negative number of any JSON kind (the daemon may
// send uptime as a fraction).
std::optional<std::uint64_t> seconds_field(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value && value->is_double()) {
    const double seconds = value->as_double();
    // Beyond 2^63 s (or NaN) is not an uptime.
    constexpr double kMaxSeconds = 9.2e18;
    if (seconds >= 0 && seconds < kMaxSeconds) return static_cast<std::uint64_t>(seconds);
    return std::nullopt;
  }
  return uint_field(object, key);
}

// ---- tables ----

class Table {
 public:
  enum class Align { Left, Right };
  struct Column {
    std::string header;
    Align align = Align::Left;
  };
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  void add(std::vector<std::string> row) {
    row.resize(columns_.size());
    rows_.push_back(std::move(row));
  }
  void print(std::ostream& out) const {
    std::vector<std::size_t> widths;
    for (const auto& column : columns_) widths.push_back(column.header.size());
    for (const auto& row : rows_)
      for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    auto line = [&](const std::vector<std::string>& cells) {
      std::string text;
      for (std::size_t i = 0; i < cells.size(); ++i) {
        const bool last = i + 1 == cells.size();
        const std::string pad(widths[i] - cells[i].size(), ' ');
        if (i) text += kGap;
        if (columns_[i].align == Align::Right) text += pad + cells[i];
        else text += last ? cells[i] : cells[i] + pad;
      }
      out << text << '\n';
    };
    std::vector<std::string> headers;
    for (const auto& column : columns_) headers.push_back(column.header);
    line(headers);
    for (const auto& row : rows_) line(row);
  }

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// "key   value" pairs, keys padded to one width.
void print_pairs(std::ostream& out, const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::size_t width = 0;
  for (const auto& [key, value] : pairs) width = std::max(width, key.size());
  for (const auto& [key, value] : pairs) out << key << std::string(width - key.size(), ' ') << kGap << value << '\n';
}

std::string duration_text(std::uint64_t seconds) {
  constexpr std::uint64_t kMinute = 60, kHour = 60 * kMinute, kDay = 24 * kHour;
  std::string out;
  if (seconds >= kDay) out += std::to_string(seconds / kDay) + "d ";
  if (seconds >= kHour) out += std::to_string(seconds % kDay / kHour) + "h ";
  if (seconds >= kMinute) out += std::to_string(seconds % kHour / kMinute) + "m ";
  out += std::to_string(seconds % kMinute) + "s";
  return out;
}

// {"filter":true,"lb":false,...} -> "filter on, lb off, forward on"
std::string stages_object_text(const json::value* value) {
  if (!value || !value->is_object()) return text(value);
  std::string out;
  for (const auto& [name, enabled] : value->as_object()) {
    if (!out.empty()) out += ", ";
    out += std::string(name) + (enabled.is_bool() ? (enabled.as_bool() ? " on" : " off") : " " + text(&enabled));
  }
  return out.empty() ? "none" : out;
}

// "generation 7: 3 rules, 12 prefixes, 1 rate classes"; "-" from a daemon that does not say.
std::string filter_object_text(const json::value* value) {
  if (!value || !value->is_object()) return text(value);
  const json::object& filter = value->as_object();
  return "generation " + field(filter, "generation") + ": " + field(filter, "rules") + " rules, " +
         field(filter, "prefixes") + " prefixes, " + field(filter, "rate_classes") + " rate classes";
}

// UTC "HH:MM:SS.uuuuuu" of a wall-clock nanosecond stamp.
std::string time_of_day(std::int64_t realtime_ns) {
  const time_t seconds = static_cast<time_t>(realtime_ns / kNanosPerSecond);
  const std::int64_t micros = realtime_ns % kNanosPerSecond / kNanosPerMicro;
  tm parts{};
  gmtime_r(&seconds, &parts);
  std::array<char, 32> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%02d:%02d:%02d.%06lld", parts.tm_hour, parts.tm_min, parts.tm_sec,
                static_cast<long long>(micros));
  return buffer.data();
}

// ---- renderers: one per op; each takes the result value ----

void render_status(std::ostream& out, const json::value& result) {
  const json::object& status = as_object(result, "status result");
  std::vector<std::pair<std::string, std::string>> pairs{
      {"version", field(status, "version")},
      {"pid", field(status, "pid")},
      {"uptime", seconds_field(status, "uptime_seconds") ? duration_text(*seconds_field(status, "uptime_seconds"))
                                                         : field(status, "uptime_seconds")},
      {"pin dir", field(status, "pin_dir")},
      {"stages", stages_object_text(status.if_contains("stages"))},
      {"filter", filter_object_text(status.if_contains("filter"))},
  };
  std::string reused;
  if (const auto* maps = status.if_contains("reused_maps"); maps && maps->is_array())
    for (const auto& name : maps->as_array()) reused += (reused.empty() ? "" : ", ") + text(&name);
  pairs.emplace_back("reused maps", reused.empty() ? "none" : reused);
  // Shown only when set, and first: the one line an operator must not miss.
  if (const auto* degraded = status.if_contains("degraded"); degraded && degraded->is_bool() && degraded->as_bool())
    pairs.insert(pairs.begin(), {"DEGRADED", field(status, "restore_error")});
  print_pairs(out, pairs);
  out << '\n';
  const json::array& interfaces = array_field(status, "interfaces");
  if (interfaces.empty()) {
    out << "no interfaces attached\n";
    return;
  }
  Table table({{"INTERFACE"}, {"IFINDEX", Table::Align::Right}, {"MODE"}, {"DISPATCHER"}, {"PROG ID", Table::Align::Right}});
  for (const auto& item : interfaces) {
    const json::object& iface = as_object(item, "interface");
    table.add({field(iface, "name"), field(iface, "ifindex"), field(iface, "mode"), field(iface, "dispatcher"),
               field(iface, "prog_id")});
  }
  table.print(out);
}

void render_config(std::ostream& out, const json::value& result) {
  const json::object& config = as_object(result, "config.get result");
  const auto* fragments = config.if_contains("drop_fragments");
  print_pairs(out, {
                       {"end_verdict", field(config, "end_verdict")},
                       {"tail_call_fail_verdict", field(config, "tail_call_fail_verdict")},
                       {"malformed_verdict", field(config, "malformed_verdict")},
                       {"non_ip_verdict", field(config, "non_ip_verdict")},
                       {"drop_fragments", fragments && fragments->is_bool() ? (fragments->as_bool() ? "on" : "off")
                                                                            : text(fragments)},
                       {"stages", stages_object_text(config.if_contains("stages"))},
                   });
}

void render_stats(std::ostream& out, const json::value& result) {
  const json::object& stats = as_object(result, "stats result");
  const json::array& counters = array_field(stats, "counters");
  if (counters.empty()) {
    out << "no packets counted yet\n";
    return;
  }
  Table table({{"VERDICT"}, {"REASON"}, {"PACKETS", Table::Align::Right}, {"BYTES", Table::Align::Right}});
  std::uint64_t packets = 0, bytes = 0;
  for (const auto& item : counters) {
    const json::object& counter = as_object(item, "counter");
    packets += uint_field(counter, "packets").value_or(0);
    bytes += uint_field(counter, "bytes").value_or(0);
    table.add({field(counter, "verdict"), field(counter, "reason"), field(counter, "packets"), field(counter, "bytes")});
  }
  table.add({"total", "", std::to_string(packets), std::to_string(bytes)});
  table.print(out);
}

// The daemon's action back in the CLI's words: "limit:web", "track".
std::string action_text(const json::object& object) {
  const std::string action = field(object, "action");
  if (action == "rate-limit") return "limit:" + field(object, "rate_class");
  if (action == "pass-track") return "track";
  return action;
}

// block list may hold a million prefixes: two passes over the reply instead
// of a Table holding a copy of every row.
void render_block_list(std::ostream& out, const json::value& result) {
  const json::array& prefixes = array_field(as_object(result, "block.list result"), "prefixes");
  if (prefixes.empty()) {
    out << "no prefixes listed\n";
    return;
  }
  constexpr std::string_view kHeader = "PREFIX";
  std::size_t width = kHeader.size();
  for (const auto& item : prefixes) width = std::max(width, field(as_object(item, "prefix entry"), "prefix").size());
  auto line = [&](const std::string& prefix, const std::string& action) {
    out << prefix << std::string(width - prefix.size(), ' ') << kGap << action << '\n';
  };
  line(std::string(kHeader), "ACTION");
  for (const auto& item : prefixes) {
    const json::object& entry = item.as_object();
    line(field(entry, "prefix"), action_text(entry));
  }
}

// "iface eth0 src 198.18.0.0/15 tcp dport 22 flags syn,!ack": the order of config::describe.
std::string rule_match_text(const json::object& rule) {
  std::string out;
  auto word = [&](std::string_view label, std::string value) {
    if (!out.empty()) out += ' ';
    if (!label.empty()) out += std::string(label) + ' ';
    out += value;
  };
  auto present = [&](std::string_view key) {
    const json::value* value = rule.if_contains(key);
    return value && !value->is_null() ? value : nullptr;
  };
  if (present("iface")) word("iface", field(rule, "iface"));
  if (present("src")) word("src", field(rule, "src"));
  if (present("dst")) word("dst", field(rule, "dst"));
  if (const json::value* proto = present("proto")) {
    const auto number = uint_field(rule, "proto");
    word("", number && *number <= 255 ? config::protocol_name(static_cast<std::uint8_t>(*number)) : text(proto));
  }
  if (present("sport")) word("sport", field(rule, "sport"));
  if (present("dport")) word("dport", field(rule, "dport"));
  if (const json::value* flags = present("tcp_flags")) {
    // A string ("syn,!ack") or the match itself ({"mask":18,"value":2}).
    std::string shown = text(flags);
    if (flags->is_object()) {
      const auto mask = uint_field(flags->as_object(), "mask"), value = uint_field(flags->as_object(), "value");
      if (mask && value && *mask <= 0xff && *value <= 0xff)
        shown = config::to_string(config::TcpFlagMatch{static_cast<std::uint8_t>(*mask), static_cast<std::uint8_t>(*value)});
    }
    word("flags", shown);
  }
  if (present("icmp_type")) word("icmp-type", field(rule, "icmp_type"));
  if (present("owner")) word("owned by", field(rule, "owner"));  // a VIP's pass rule
  return out.empty() ? "any" : out;
}

void render_rule_list(std::ostream& out, const json::value& result) {
  const json::object& object = as_object(result, "rule.list result");
  const json::array& rules = array_field(object, "rules");
  // Printed last: the policy is what happens after the last rule.
  const auto print_policy = [&] {
    if (object.if_contains("default_policy")) out << "default policy: " << field(object, "default_policy") << '\n';
  };
  if (rules.empty()) {
    out << "no rules\n";
    print_policy();
    return;
  }
  // A rule's id is its priority unless the daemon says otherwise; the
  // PRIORITY column appears only when some rule's differs from its id.
  bool separate_priority = false;
  for (const auto& item : rules) {
    const json::object& rule = as_object(item, "rule");
    if (rule.if_contains("id") && rule.if_contains("priority") && field(rule, "id") != field(rule, "priority"))
      separate_priority = true;
  }
  std::vector<Table::Column> columns{{"ID", Table::Align::Right}};
  if (separate_priority) columns.push_back({"PRIORITY", Table::Align::Right});
  for (auto column : {Table::Column{"ACTION"}, Table::Column{"PACKETS", Table::Align::Right},
                      Table::Column{"BYTES", Table::Align::Right}, Table::Column{"MATCH"}})
    columns.push_back(column);
  Table table(std::move(columns));
  for (const auto& item : rules) {
    const json::object& rule = item.as_object();
    std::vector<std::string> row{field(rule, rule.if_contains("id") ? "id" : "priority")};
    if (separate_priority) row.push_back(field(rule, "priority"));
    for (auto cell : {action_text(rule), field(rule, "packets"), field(rule, "bytes"), rule_match_text(rule)})
      row.push_back(std::move(cell));
    table.add(std::move(row));
  }
  table.print(out);
  print_policy();
}

void render_limit_list(std::ostream& out, const json::value& result) {
  const json::array& limits = array_field(as_object(result, "limit.list result"), "limits");
  if (limits.empty()) {
    out << "no rate-limit classes\n";
    return;
  }
  Table table({{"CLASS"},
               {"PPS", Table::Align::Right},
               {"BURST", Table::Align::Right},
               {"BPS", Table::Align::Right},
               {"SYN ONLY"},
               {"SOURCE"},
               {"AGGREGATE"}});
  for (const auto& item : limits) {
    const json::object& limit = as_object(item, "limit");
    const json::value* syn_only = limit.if_contains("syn_only");
    // bps 0 (or absent): bytes are not limited.
    const auto bps = uint_field(limit, "bps");
    // What a source is: the address cut to these prefix lengths.
    const std::string source = "/" + field(limit, "v4_prefix_len") + " /" + field(limit, "v6_prefix_len");
    // The bucket all sources share; rates of 0 (or absent): none in that dimension.
    std::string aggregate;
    const auto aggregate_pps = uint_field(limit, "aggregate_pps");
    const auto aggregate_bps = uint_field(limit, "aggregate_bps");
    if (aggregate_pps && *aggregate_pps)
      aggregate = "pps " + std::to_string(*aggregate_pps) + " burst " + field(limit, "aggregate_burst");
    if (aggregate_bps && *aggregate_bps) aggregate += (aggregate.empty() ? "bps " : " bps ") + std::to_string(*aggregate_bps);
    table.add({field(limit, "class"), field(limit, "pps"), field(limit, "burst"),
               bps && *bps ? std::to_string(*bps) : (bps ? "-" : field(limit, "bps")), syn_only ? text(syn_only) : "no",
               source, aggregate.empty() ? "-" : aggregate});
  }
  table.print(out);
}

// "198.18.0.1:40000", "[2001:db8::1]:53", or the address alone.
std::string endpoint_text(const json::object& flow, std::string_view addr_key, std::string_view port_key) {
  const std::string addr = field(flow, addr_key);
  const json::value* port = flow.if_contains(port_key);
  if (!port || port->is_null()) return addr;
  const bool v6 = addr.find(':') != std::string::npos;
  return (v6 ? "[" + addr + "]" : addr) + ":" + text(port);
}

// Per-direction counters ([a->b, b->a]) are shown summed.
std::string counter_text(const json::object& flow, std::string_view key) {
  const json::value* value = flow.if_contains(key);
  if (!value || !value->is_array()) return field(flow, key);
  std::uint64_t sum = 0;
  for (const auto& part : value->as_array()) {
    if (part.is_uint64()) sum += part.as_uint64();
    else if (part.is_int64() && part.as_int64() >= 0) sum += static_cast<std::uint64_t>(part.as_int64());
    else return text(value);
  }
  return std::to_string(sum);
}

void render_conn_list(std::ostream& out, const json::value& result) {
  const json::object& listing = as_object(result, "conn.list result");
  const json::array& flows = array_field(listing, "flows");
  const json::value* truncated = listing.if_contains("truncated");
  const std::string footer = truncated && truncated->is_bool() && truncated->as_bool()
                                 ? "showing " + std::to_string(flows.size()) + " of " + field(listing, "total") +
                                       " tracked flows (--limit N shows more)\n"
                                 : "";
  if (flows.empty()) {
    out << (footer.empty() ? "no tracked flows\n" : footer);
    return;
  }
  Table table({{"PROTO"},
               {"SOURCE"},
               {"DESTINATION"},
               {"STATE"},
               {"PACKETS", Table::Align::Right},
               {"BYTES", Table::Align::Right}});
  for (const auto& item : flows) {
    const json::object& flow = as_object(item, "flow");
    const auto proto = uint_field(flow, "proto");
    table.add({proto && *proto <= 255 ? config::protocol_name(static_cast<std::uint8_t>(*proto)) : field(flow, "proto"),
               endpoint_text(flow, "src", "sport"), endpoint_text(flow, "dst", "dport"), field(flow, "state"),
               counter_text(flow, "packets"), counter_text(flow, "bytes")});
  }
  table.print(out);
  out << footer;
}

// ---- the command context ----

struct Options {
  std::string socket = kDefaultSocket;
  bool json = false;
  double timeout_seconds = std::chrono::duration<double>(kDefaultReplyTimeout).count();
};

class Context {
 public:
  Context(Env& env, const Options& options) : env_(env), options_(options) {}

  Env& env() { return env_; }
  const Options& options() const { return options_; }

  // Sends one request and hands an ok result to render (or prints it raw
  // with --json). Returns the exit code.
  // idempotent: a read that may be sent again on a new connection when the
  // kept one was closed meanwhile (the daemon closes idle connections:
  // `stats --watch` with a long interval).
  int call(std::string_view op, const json::object& args, const std::function<void(const json::value&)>& render,
           bool idempotent = false) {
    const bool reused = session_ != nullptr;
    Session* session = connect();
    if (!session) return kExitUnavailable;
    auto result = session->call(op, args, timeout());
    if (!result && result.error().transport && reused && idempotent) {
      session_.reset();
      session = connect();
      if (!session) return kExitUnavailable;
      result = session->call(op, args, timeout());
    }
    if (!result) return report(op, result.error());
    return show(op, *result, render);
  }

  int stream(std::string_view op, const json::object& args, const std::function<bool(const json::value&)>& on_event,
             const std::function<void(const json::value&)>& on_result) {
    Session* session = connect();
    if (!session) return kExitUnavailable;
    try {
      auto result = session->stream(op, args, on_event);
      if (!result) {
        if (result.error().transport && result.error().transport->interrupted && env_.interrupted()) return kExitOk;
        return report(op, result.error());
      }
      return show(op, *result, on_result);
    } catch (const BadReply& bad) {
      env_.err << "sluicectl: unexpected reply to " << op << ": " << bad.message << '\n';
      return kExitUnavailable;
    }
  }

  int report(std::string_view op, const CallFailure& failure) {
    if (failure.daemon) {
      // sluiced's messages mostly start with the op already ("block.load: content: ..."): say it once.
      const std::string& message = failure.daemon->message;
      const bool names_op = message.starts_with(std::string(op) + ":");
      env_.err << "sluicectl: " << (names_op ? "" : std::string(op) + ": ") << message << " [" << failure.daemon->code
               << "]\n";
      return kExitFailed;
    }
    env_.err << "sluicectl: " << failure.transport->message << '\n';
    return kExitUnavailable;
  }

  // One request, its result or the failure, nothing printed (multi-request commands: block load).
  CallResult<json::value> raw_call(std::string_view op, const json::object& args) {
    Session* session = connect();
    if (!session) return CallFailure{std::nullopt, TransportError("cannot reach sluiced")};
    return session->call(op, args, timeout());
  }

  // A streaming request, nothing printed (top reads the recent drop events).
  CallResult<json::value> raw_stream(std::string_view op, const json::object& args,
                                     const std::function<bool(const json::value&)>& on_event) {
    Session* session = connect();
    if (!session) return CallFailure{std::nullopt, TransportError("cannot reach sluiced")};
    return session->stream(op, args, on_event);
  }

  int usage(const std::string& message) {
    env_.err << "sluicectl: " << message << '\n';
    return kExitUsage;
  }

 private:
  Session* connect() {
    if (session_) return session_.get();
    auto transport = env_.connect(options_.socket);
    if (!transport) {
      env_.err << "sluicectl: " << transport.error().message << '\n';
      return nullptr;
    }
    session_ = std::make_unique<Session>(std::move(*transport));
    return session_.get();
  }

  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(static_cast<std::int64_t>(options_.timeout_seconds * 1000));
  }

  int show(std::string_view op, const json::value& result, const std::function<void(const json::value&)>& render) {
    if (options_.json) {
      env_.out << json::serialize(result) << '\n';
      return kExitOk;
    }
    try {
      render(result);
    } catch (const BadReply& bad) {
      env_.err << "sluicectl: unexpected reply to " << op << ": " << bad.message << '\n';
      return kExitUnavailable;
    }
    return kExitOk;
  }

  Env& env_;
  const Options& options_;
  std::unique_ptr<Session> session_;
};

// ---- events: shared by `events` and `capture` ----

struct DecodedEvent {
  std::int64_t realtime_ns = 0;
  std::uint32_t ifindex = 0;
  std::uint32_t pkt_len = 0;
  std::string verdict;
  std::string reason;
  std::vector<std::uint8_t> head;
};

DecodedEvent decode_event(const json::value& value, std::int64_t monotonic_to_realtime) {
  const json::object& event = as_object(value, "event");
  DecodedEvent out;
  auto timestamp = uint_field(event, "timestamp_ns");
  auto ifindex = uint_field(event, "ifindex");
  auto pkt_len = uint_field(event, "pkt_len");
  const json::value* head = event.if_contains("head_hex");
  if (!timestamp || !ifindex || *ifindex > UINT32_MAX || !pkt_len || *pkt_len > UINT32_MAX)
    throw BadReply{"event needs unsigned timestamp_ns, ifindex and pkt_len, got " + protocol::quote_value(value)};
  if (!head || !head->is_string()) throw BadReply{"event has no head_hex string"};
  auto bytes = decode_hex(head->as_string(), SLUICE_EVENT_HEAD_BYTES);
  if (!bytes)
    throw BadReply{"event head_hex " + protocol::quote_value(*head) + " is not hex of at most " +
                   std::to_string(SLUICE_EVENT_HEAD_BYTES) + " bytes"};
  out.realtime_ns = static_cast<std::int64_t>(*timestamp) + monotonic_to_realtime;
  out.ifindex = static_cast<std::uint32_t>(*ifindex);
  out.pkt_len = static_cast<std::uint32_t>(*pkt_len);
  out.verdict = field(event, "verdict");
  out.reason = field(event, "reason");
  out.head = std::move(*bytes);
  return out;
}

// Fixed widths: rows print as events arrive, before the widest is known.
constexpr int kTimeWidth = 15, kIfaceWidth = 10, kVerdictWidth = 8, kReasonWidth = 22, kLenWidth = 5;

void print_event_header(std::ostream& out) {
  std::array<char, 128> line{};
  std::snprintf(line.data(), line.size(), "%-*s  %-*s  %-*s  %-*s  %*s  %s", kTimeWidth, "TIME (UTC)", kIfaceWidth,
                "IFACE", kVerdictWidth, "VERDICT", kReasonWidth, "REASON", kLenWidth, "LEN", "PACKET");
  out << line.data() << '\n';
}

void print_event(std::ostream& out, const DecodedEvent& event, const std::string& iface) {
  std::array<char, 128> line{};
  std::snprintf(line.data(), line.size(), "%-*s  %-*s  %-*s  %-*s  %*u  ", kTimeWidth,
                time_of_day(event.realtime_ns).c_str(), kIfaceWidth, iface.c_str(), kVerdictWidth, event.verdict.c_str(),
                kReasonWidth, event.reason.c_str(), kLenWidth, event.pkt_len);
  out << line.data() << describe_packet_head(event.head) << '\n' << std::flush;
}

// ---- local argument checks (the daemon checks again; these catch typos
// before anything is sent) ----

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

// ---- filter vocabulary: prefixes, ports, protocols, flags, actions, rate classes ----

using config::filter_reason;

// Rate classes are named as in the YAML's limits[].class (the daemon's desired state).
std::optional<json::value> class_value(std::string_view text, std::string& problem) {
  if (!config::is_class_name(text)) {
    problem = "bad class '" + std::string(text) + "': " + config::class_name_rule();
    return std::nullopt;
  }
  return json::value(json::string(text));
}

// The CLI's action words and the daemon's: drop, pass, track (pass-track),
// limit:CLASS (rate-limit with rate_class).
struct FilterAction {
  std::string action;
  std::optional<json::value> rate_class;
};

std::optional<FilterAction> parse_filter_action(std::string_view text, bool rule, std::string& problem) {
  const std::string expected = rule ? "drop, pass, track or limit:CLASS" : "drop, pass or limit:CLASS";
  if (text == "drop" || text == "pass") return FilterAction{std::string(text), std::nullopt};
  if (text == "track") {
    if (rule) return FilterAction{"pass-track", std::nullopt};
    problem = "bad action 'track': tracking is for rules, not prefix lists; expected " + expected;
    return std::nullopt;
  }
  constexpr std::string_view kLimit = "limit:";
  if (text.starts_with(kLimit)) {
    std::string why;
    auto rate_class = class_value(text.substr(kLimit.size()), why);
    if (!rate_class) {
      problem = "bad action '" + std::string(text) + "': " + why;
      return std::nullopt;
    }
    return FilterAction{"rate-limit", std::move(*rate_class)};
  }
  problem = "bad action '" + std::string(text) + "': expected " + expected;
  return std::nullopt;
}

// A check run while CLI11 parses: the error names the option ("--dport: ...").
CLI::Validator check_with(std::string name, std::function<std::string(const std::string&)> problem_of) {
  return CLI::Validator([problem_of = std::move(problem_of)](std::string& value) { return problem_of(value); },
                        std::move(name));
}

// An integer option: decimal only, through the parser every door shares
// (maps/decimal.hpp). Not CLI11's own conversion, which is strtoull with base
// 0: `rule del 010` deleted rule 8 and `--priority 0x20` made rule 32. A bad
// value is a usage error (exit 2) naming the option and the value.
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

CLI::Validator prefix_validator() {
  return check_with("CIDR", [](const std::string& text) -> std::string {
    if (auto prefix = maps::parse_prefix(text); !prefix) return prefix.error().message;
    return {};
  });
}

CLI::Validator port_range_validator() {
  return check_with("PORT[-PORT]", [](const std::string& text) -> std::string {
    if (auto range = filter::parse_port_range(text); !range) return filter_reason(range.error());
    return {};
  });
}

CLI::Validator protocol_validator() {
  return check_with("PROTO", [](const std::string& text) -> std::string {
    if (auto proto = filter::parse_protocol(text); !proto) return filter_reason(proto.error());
    return {};
  });
}

CLI::Validator tcp_flags_validator() {
  return check_with("FLAGS", [](const std::string& text) -> std::string {
    if (auto flags = config::parse_tcp_flags(text); !flags) return flags.error();
    return {};
  });
}

CLI::Validator action_validator(bool rule) {
  return check_with("ACTION", [rule](const std::string& text) -> std::string {
    std::string problem;
    if (!parse_filter_action(text, rule, problem)) return problem;
    return {};
  });
}

CLI::Validator class_validator() {
  return check_with("CLASS", [](const std::string& text) -> std::string {
    std::string problem;
    if (!class_value(text, problem)) return problem;
    return {};
  });
}

// Canonical forms of what the validators above accepted.
std::string canonical_prefix(const std::string& text) { return maps::to_string(maps::parse_prefix(text).value()); }
std::string canonical_ports(const std::string& text) { return config::to_string(filter::parse_port_range(text).value()); }
std::string canonical_protocol(const std::string& text) {
  return config::protocol_name(filter::parse_protocol(text).value());
}
std::string canonical_tcp_flags(const std::string& text) { return config::to_string(*config::parse_tcp_flags(text)); }

std::string plural(std::uint64_t count, std::string_view one, std::string_view many) {
  return std::to_string(count) + " " + std::string(count == 1 ? one : many);
}

// "filter,lb" -> {"filter":true,"lb":true,"forward":false}; "none" -> all off.
std::optional<json::object> parse_stage_list(const std::string& list, std::string& problem) {
  std::uint32_t mask = 0;
  if (list != "none") {
    std::stringstream words(list);
    std::string word;
    while (std::getline(words, word, ',')) {
      auto stage = config::parse_stage(word);
      if (!stage) {
        problem = "bad stage '" + word + "' in --stages '" + list + "': expected filter, lb, forward or none";
        return std::nullopt;
      }
      mask |= SLUICE_STAGE_BIT(*stage);
    }
    if (mask == 0) {
      problem = "empty --stages: name stages (filter,lb,forward) or none";
      return std::nullopt;
    }
  }
  json::object stages;
  for (auto stage : {SLUICE_STAGE_FILTER, SLUICE_STAGE_LB, SLUICE_STAGE_FORWARD})
    stages[config::stage_name(stage)] = (mask & SLUICE_STAGE_BIT(stage)) != 0;
  return stages;
}

// The whole file (or standard input for "-"), at most max_bytes of it;
// beyond that `problem` says so (plus too_large_hint) and nothing is returned.
std::optional<std::string> read_text(Env& env, const std::string& path, std::string& problem,
                                     std::size_t max_bytes = config::kMaxDocumentBytes,
                                     std::string_view too_large_hint = {}) {
  std::string content;
  // One byte past the limit tells "too large" from "exactly at the limit".
  const std::size_t limit = max_bytes + 1;
  auto slurp = [&](std::istream& in) {
    content.resize(limit);
    in.read(content.data(), static_cast<std::streamsize>(limit));
    content.resize(static_cast<std::size_t>(in.gcount()));
    return !in.bad();
  };
  if (path == "-") {
    if (!slurp(env.in)) {
      problem = "cannot read standard input";
      return std::nullopt;
    }
  } else {
    std::ifstream file(path, std::ios::binary);
    if (!file || !slurp(file)) {
      problem = "cannot read " + path + ": " + std::strerror(errno);
      return std::nullopt;
    }
  }
  if (content.size() > max_bytes) {
    problem = path + ": larger than " + std::to_string(max_bytes) + " bytes" + std::string(too_large_hint);
    return std::nullopt;
  }
  return content;
}

void print_lines(std::ostream& out, const json::value& result, std::string_view key, std::string_view when_empty) {
  const json::object& object = as_object(result, "result");
  const json::array& lines = array_field(object, key);
  if (lines.empty()) out << when_empty << '\n';
  for (const auto& line : lines) {
    if (!line.is_string()) throw BadReply{"diff line is " + protocol::kind_name(line) + ", expected a string"};
    out << std::string_view(line.as_string()) << '\n';
  }
}

// ---- the command tree ----

struct Commands {
  // Filled by whichever subcommand parsed; runs after parsing succeeded.
  std::function<int(Context&)> action;

  // Argument storage: CLI11 writes here during parse.
  std::string iface;
  std::string mode = "native";
  std::optional<std::string> end_verdict, tail_call_fail, malformed, non_ip, drop_fragments, stages;
  double watch_seconds = 0;
  bool follow = false;
  std::optional<std::uint64_t> count;
  std::string pcap_path;
  bool detach = false;
  std::string apply_path;
  bool dry_run = false;
  // The filter's commands.
  std::vector<std::string> prefixes;
  std::optional<std::string> filter_action;  // block add / block load
  std::string block_file;
  std::optional<std::uint32_t> priority;
  std::optional<std::uint32_t> drop_sample_every;
  std::optional<std::string> src, dst, proto, sport, dport, tcp_flags, rule_iface;
  std::optional<std::uint8_t> icmp_type;
  std::string rule_action;
  std::optional<std::uint32_t> rule_id;
  std::string class_name;
  std::optional<std::uint64_t> pps;
  std::optional<std::uint64_t> bps, burst;
  bool syn_only = false;
  std::optional<std::uint32_t> v4_prefix_len, v6_prefix_len;
  std::optional<std::uint64_t> aggregate_pps, aggregate_bps, aggregate_burst;
  std::optional<std::uint64_t> conn_limit;
  std::optional<std::string> policy;
};

void add_status(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("status", "Show the daemon: version, uptime, stages, attached interfaces");
  cmd->callback([&c] {
    c.action = [](Context& ctx) {
      return ctx.call("status", {}, [&](const json::value& r) { render_status(ctx.env().out, r); });
    };
  });
}

void add_attach(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("attach", "Attach the sluice entry program to an interface (through libxdp)");
  cmd->add_option("IFACE", c.iface, "Interface name, e.g. eth0")->required()->check(interface_validator());
  cmd->add_option("--mode", c.mode, "native: in the driver (fast, needs driver support); skb: generic XDP (any interface)")
      ->check(CLI::IsMember({"native", "skb"}))
      ->capture_default_str();
  cmd->callback([&c] {
    c.action = [&c](Context& ctx) {
      json::object args{{"iface", c.iface}, {"mode", c.mode}};
      return ctx.call("attach", args, [&](const json::value&) {
        ctx.env().out << "attached to " << c.iface << " (" << c.mode << ")\n";
      });
    };
  });
}

void add_detach(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("detach", "Detach sluice from an interface; traffic there is no longer filtered");
  cmd->add_option("IFACE", c.iface, "Interface name")->required()->check(interface_validator());
  cmd->callback([&c] {
    c.action = [&c](Context& ctx) {
      return ctx.call("detach", {{"iface", c.iface}},
                      [&](const json::value&) { ctx.env().out << "detached from " << c.iface << '\n'; });
    };
  });
}

void add_config(CLI::App& app, Commands& c) {
  auto* config = app.add_subcommand("config", "Data-plane defaults (get, set) and the applied YAML (show)");
  config->require_subcommand(1);
  config->fallthrough();

  auto* get = config->add_subcommand("get", "Show the data-plane defaults: verdicts, fragments, enabled stages");
  get->callback([&c] {
    c.action = [](Context& ctx) {
      return ctx.call("config.get", {}, [&](const json::value& r) { render_config(ctx.env().out, r); });
    };
  });

  auto* set = config->add_subcommand(
      "set", "Change data-plane defaults; only the options given change, the rest keep their value");
  set->add_option("--end-verdict", c.end_verdict,
                  "Verdict for a packet no stage consumed, the filter's passes included (normally pass; "
                  "the filter's own default is `filter policy`)")
      ->check(pass_or_drop_validator());
  set->add_option("--tail-call-fail", c.tail_call_fail,
                  "When an enabled stage is missing: pass (fail open) or drop (fail closed)")
      ->check(pass_or_drop_validator());
  set->add_option("--malformed", c.malformed, "Truncated or invalid L2-L4 headers")->check(pass_or_drop_validator());
  set->add_option("--non-ip", c.non_ip, "ARP, LLDP and other non-IP frames")->check(pass_or_drop_validator());
  set->add_option("--drop-fragments", c.drop_fragments, "on: drop every IPv4/IPv6 fragment")
      ->check(CLI::IsMember({"on", "off"}));
  set->add_option("--stages", c.stages, "Enabled stages, comma-separated (filter,lb,forward) or none; others are disabled");
  add_decimal(set, "--drop-sample-every", "--drop-sample-every", c.drop_sample_every, 0, protocol::max_drop_sample_every,
              "Send 1 in N filter drops to events/capture (0: none)");
  set->callback([&c] {
    c.action = [&c](Context& ctx) {
      json::object args;
      if (c.end_verdict) args["end_verdict"] = *c.end_verdict;
      if (c.tail_call_fail) args["tail_call_fail_verdict"] = *c.tail_call_fail;
      if (c.malformed) args["malformed_verdict"] = *c.malformed;
      if (c.non_ip) args["non_ip_verdict"] = *c.non_ip;
      if (c.drop_fragments) args["drop_fragments"] = *c.drop_fragments == "on";
      if (c.stages) {
        std::string problem;
        auto stages = parse_stage_list(*c.stages, problem);
        if (!stages) return ctx.usage(problem);
        args["stages"] = std::move(*stages);
      }
      if (c.drop_sample_every) args["drop_sample_every"] = *c.drop_sample_every;
      if (args.empty())
        return ctx.usage(
            "config set: nothing to change; give at least one of --end-verdict, --tail-call-fail, --malformed, "
            "--non-ip, --drop-fragments, --stages, --drop-sample-every");
      return ctx.call("config.set", args, [&](const json::value& r) {
        // The daemon answers with the config now in force.
        if (r.is_object()) render_config(ctx.env().out, r);
      });
    };
  });

  auto* show = config->add_subcommand("show", "Print the applied desired state as YAML (accepted back by apply -f)");
  show->callback([&c] {
    c.action = [](Context& ctx) {
      return ctx.call("config.show", {}, [&](const json::value& r) {
        const json::value* yaml = as_object(r, "config.show result").if_contains("yaml");
        if (!yaml || !yaml->is_string()) throw BadReply{"field yaml missing or not a string"};
        std::string_view text = yaml->as_string();
        ctx.env().out << text;
        if (!text.empty() && text.back() != '\n') ctx.env().out << '\n';
      });
    };
  });
}

void add_stats(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("stats", "Packet and byte counters for every (verdict, reason)");
  cmd->add_option("--watch", c.watch_seconds, "Repeat every SECONDS until Ctrl-C")
      ->check(CLI::Range(0.1, kMaxWatchSeconds));
  cmd->callback([&c] {
    c.action = [&c](Context& ctx) {
      Env& env = ctx.env();
      auto render = [&](const json::value& r) { render_stats(env.out, r); };
      if (c.watch_seconds <= 0) return ctx.call("stats", {}, render);
      const auto interval = std::chrono::milliseconds(static_cast<std::int64_t>(c.watch_seconds * 1000));
      for (bool first = true; !env.interrupted(); first = false) {
        if (!first) env.out << '\n';
        if (!ctx.options().json) {
          const std::int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count();
          env.out << "--- " << time_of_day(now_ns) << " UTC ---\n";
        }
        if (int code = ctx.call("stats", {}, render, true); code != kExitOk) return code;
        env.out << std::flush;
        for (auto slept = std::chrono::milliseconds{0}; slept < interval && !env.interrupted(); slept += kSleepSlice)
          env.sleep(std::min(kSleepSlice, interval - slept));
      }
      return kExitOk;
    };
  });
}

void add_events(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("events", "Sampled drop events: time, interface, verdict, reason, decoded packet head");
  cmd->add_flag("--follow,-f", c.follow, "Keep streaming new events until Ctrl-C (or -c)");
  add_decimal(cmd, "-c,--count", "--count", c.count, 1, protocol::max_events_per_request, "Stop after N events");
  cmd->callback([&c] {
    c.action = [&c](Context& ctx) {
      Env& env = ctx.env();
      json::object args{{"follow", c.follow}};
      if (c.count) args["max"] = *c.count;
      const std::int64_t offset = env.monotonic_to_realtime_ns();
      bool header = false;
      return ctx.stream(
          "events", args,
          [&](const json::value& event) {
            if (ctx.options().json) {
              env.out << json::serialize(event) << '\n' << std::flush;
              return true;
            }
            if (auto line = lb_event_line(event)) return env.out << *line << '\n' << std::flush, true;
            DecodedEvent decoded = decode_event(event, offset);
            if (!header) print_event_header(env.out);
            header = true;
            print_event(env.out, decoded, env.interface_name(decoded.ifindex));
            return true;
          },
          [&](const json::value& result) {
            const json::object& summary = as_object(result, "events result");
            if (!header) env.out << "no drop events\n";
            else env.out << field(summary, "events") << " events\n";
          });
    };
  });
}

void add_capture(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("capture", "Write drop samples to a pcap file (tcpdump -r FILE reads it)");
  cmd->add_option("-w,--write", c.pcap_path, "Output pcap file (created or truncated)")->required();
  add_decimal(cmd, "-c,--count", "--count", c.count, 1, protocol::max_events_per_request,
              "Stop after N packets (default: until Ctrl-C)");
  cmd->callback([&c] {
    c.action = [&c](Context& ctx) {
      Env& env = ctx.env();
      auto writer = PcapWriter::create(c.pcap_path);
      if (!writer) {
        env.err << "sluicectl: " << writer.error() << '\n';
        return kExitFailed;
      }
      json::object args{{"follow", true}};
      if (c.count) args["max"] = *c.count;
      const std::int64_t offset = env.monotonic_to_realtime_ns();
      std::uint64_t written = 0;
      std::optional<std::string> write_error;
      int code = ctx.stream(
          "events", args,
          [&](const json::value& event) {
            if (lb_event_line(event)) return true;  // a health change carries no packet
            DecodedEvent decoded = decode_event(event, offset);
            auto ok = writer->write(static_cast<std::uint64_t>(std::max<std::int64_t>(decoded.realtime_ns, 0)),
                                    decoded.head, decoded.pkt_len);
            if (!ok) {
              write_error = ok.error();
              return false;
            }
            ++written;
            return true;
          },
          [](const json::value&) {});
      if (write_error) {
        env.err << "sluicectl: " << *write_error << '\n';
        return kExitFailed;
      }
      // Whatever ended the capture, say what is in the file.
      env.err << "sluicectl: " << written << " packets written to " << c.pcap_path << '\n';
      return code;
    };
  });
}

void add_shutdown(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("shutdown", "Stop sluiced; programs stay attached unless --detach");
  cmd->add_flag("--detach", c.detach, "Also detach from every interface (traffic is no longer filtered)");
  cmd->callback([&c] {
    c.action = [&c](Context& ctx) {
      return ctx.call("shutdown", {{"detach", c.detach}},
                      [&](const json::value&) { ctx.env().out << "sluiced is shutting down\n"; });
    };
  });
}

void add_apply(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand(
      "apply", "Make the box match a YAML desired state; prints what changes (sections not in the file are left alone)");
  cmd->add_option("-f,--file", c.apply_path, "The YAML file; - reads standard input")->required();
  cmd->add_flag("--dry-run", c.dry_run, "Only print the changes; change nothing");
  cmd->callback([&c] {
    c.action = [&c](Context& ctx) {
      std::string problem;
      auto content = read_text(ctx.env(), c.apply_path, problem);
      if (!content) return ctx.usage(problem);
      // Checked here too so a typo shows its line before anything is sent.
      if (auto parsed = config::parse_desired_state(*content); !parsed)
        return ctx.usage(c.apply_path + ": " + parsed.error().to_string());
      json::object args{{"yaml", *content}, {"dry_run", c.dry_run}};
      return ctx.call("apply", args, [&](const json::value& r) {
        print_lines(ctx.env().out, r, "diff", "no changes");
        if (c.dry_run) ctx.env().out << "(dry run: nothing changed)\n";
      });
    };
  });
}

// ---- the filter: prefix lists, ordered rules, rate classes, tracked flows ----

// A prefix file of any size, streamed to sluiced in one load: begin,
// chunks of whole lines, commit; the daemon parses and checks every line
// and makes the whole file live at commit or nothing of it. Lines a JSON
// request cannot carry (invalid UTF-8) or that are over the line limit are
// refused here with FILE:LINE, and the load aborted. A progress line is
// drawn on a terminal only.
constexpr std::size_t kLoadChunkBytes = 128 * 1024;  // even all escaped (\u00XX) it fits one request
constexpr std::size_t kLoadReadBytes = 64 * 1024;
constexpr std::size_t kLoadLineBytes = 4096;  // as filter::kMaxPrefixFileLineBytes

int stream_block_load(Context& ctx, const std::string& path, const std::optional<std::string>& action) {
  const std::string source = path == "-" ? "standard input" : path;
  std::ifstream file;
  std::istream* in = &ctx.env().in;
  std::optional<std::uintmax_t> total;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) return ctx.usage("cannot read " + path + ": " + std::strerror(errno));
    std::error_code size_error;
    if (const auto size = std::filesystem::file_size(path, size_error); !size_error) total = size;
    in = &file;
  }
  const bool show_progress = ::isatty(STDOUT_FILENO) == 1 && !ctx.options().json;
  json::object begin_args{{"source", source}};
  if (action) begin_args["action"] = *action;
  auto begun = ctx.raw_call("block.load.begin", begin_args);
  if (!begun) return ctx.report("block.load.begin", begun.error());
  const auto id = begun->is_object() ? uint_field(begun->as_object(), "load") : std::nullopt;
  if (!id) return ctx.report("block.load.begin", CallFailure{std::nullopt, TransportError("no load id in the reply")});
  auto give_up = [&](int code) {
    if (show_progress) ctx.env().out << "\r\033[K" << std::flush;
    (void)ctx.raw_call("block.load.abort", {{"load", *id}});  // nothing was committed either way
    return code;
  };
  std::uintmax_t sent = 0;
  std::size_t line = 0;
  std::string pending, buffer(kLoadReadBytes, '\0');
  auto send = [&]() -> std::optional<int> {
    auto done = ctx.raw_call("block.load.chunk", {{"load", *id}, {"data", pending}});
    if (!done) {
      if (show_progress) ctx.env().out << "\r\033[K" << std::flush;
      return ctx.report("block.load.chunk", done.error());  // the daemon ended the load: FILE:LINE: reason
    }
    sent += pending.size();
    pending.clear();
    if (show_progress) {
      ctx.env().out << "\rloading " << source << ": " << line << " lines";
      if (total && *total) ctx.env().out << " (" << sent * 100 / *total << "%)";
      ctx.env().out << std::flush;
    }
    return std::nullopt;
  };
  std::string carry;  // a line whose newline has not been read yet
  auto check_line = [&](std::string_view text) -> std::optional<std::string> {
    ++line;
    const std::string where = source + ":" + std::to_string(line) + ": ";
    if (text.size() > kLoadLineBytes)
      return where + "a line of " + std::to_string(text.size()) + " bytes, over the " + std::to_string(kLoadLineBytes) + "-byte limit";
    if (auto bad = filter::invalid_utf8_at(text)) {
      std::ostringstream hex;
      hex << "invalid UTF-8 at byte " << *bad + 1 << ": '";
      for (std::size_t i = 0; i < text.size() && i < 40; ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte >= 0x20 && byte < 0x7f) hex << text[i];
        else hex << "\\x" << "0123456789abcdef"[byte >> 4] << "0123456789abcdef"[byte & 15];
      }
      hex << (text.size() > 40 ? "'..." : "'");
      return where + hex.str();
    }
    return std::nullopt;
  };
  for (;;) {
    in->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<std::size_t>(in->gcount());
    if (in->bad()) return give_up(ctx.usage("cannot read " + source));
    std::string_view data(buffer.data(), got);
    while (!data.empty()) {
      const std::size_t end = data.find('\n');
      if (end == std::string_view::npos) {
        carry.append(data);
        if (carry.size() > kLoadLineBytes) {
          if (auto problem = check_line(carry)) return give_up(ctx.usage(*problem));
        }
        break;
      }
      std::string_view text = data.substr(0, end);
      if (!carry.empty()) {
        carry.append(text);
        text = carry;
      }
      if (auto problem = check_line(text)) return give_up(ctx.usage(*problem));
      pending.append(text);
      pending += '\n';
      carry.clear();
      data.remove_prefix(end + 1);
      if (pending.size() >= kLoadChunkBytes)
        if (auto failed = send()) return *failed;
    }
    if (got < buffer.size()) break;
  }
  if (!carry.empty()) {
    // Sent without a newline: the daemon refuses a cut-off last line at commit, naming it.
    if (auto problem = check_line(carry)) return give_up(ctx.usage(*problem));
    pending.append(carry);
  }
  if (!pending.empty())
    if (auto failed = send()) return *failed;
  auto committed = ctx.raw_call("block.load.commit", {{"load", *id}});
  if (show_progress) ctx.env().out << "\r\033[K" << std::flush;
  if (!committed) return ctx.report("block.load.commit", committed.error());
  if (ctx.options().json) {
    ctx.env().out << json::serialize(*committed) << '\n';
    return kExitOk;
  }
  const auto loaded = committed->is_object() ? uint_field(committed->as_object(), "loaded") : std::nullopt;
  ctx.env().out << "loaded " << plural(loaded.value_or(0), "prefix", "prefixes") << " from " << source << '\n';
  return kExitOk;
}

void add_block(CLI::App& app, Commands& c) {
  auto* block = app.add_subcommand("block", "Source prefix lists: drop, pass or rate-limit whole prefixes");
  block->require_subcommand(1);

  auto* add = block->add_subcommand("add", "Add source prefixes (or change their action)");
  add->add_option("CIDR", c.prefixes, "IPv4/IPv6 prefixes; a bare address is a /32 or /128")
      ->required()
      ->check(prefix_validator());
  add->add_option("--action", c.filter_action, "drop (default), pass, or limit:CLASS (rate-limit per source)")
      ->check(action_validator(false));
  add->callback([&c] {
    c.action = [&c](Context& ctx) {
      json::array prefixes;
      for (const auto& prefix : c.prefixes) prefixes.push_back(json::string(canonical_prefix(prefix)));
      json::object args{{"prefixes", std::move(prefixes)}};
      if (c.filter_action) {
        std::string problem;
        auto action = parse_filter_action(*c.filter_action, false, problem);
        if (!action) return ctx.usage("--action: " + problem);
        args["action"] = action->action;
        if (action->rate_class) args["rate_class"] = *action->rate_class;
      }
      return ctx.call("block.add", args, [&](const json::value& r) {
        const auto added = uint_field(as_object(r, "block.add result"), "added").value_or(c.prefixes.size());
        ctx.env().out << "added " << plural(added, "prefix", "prefixes") << '\n';
      });
    };
  });

  auto* del = block->add_subcommand("del", "Remove source prefixes (each must be listed)");
  del->add_option("CIDR", c.prefixes, "Prefixes exactly as listed")->required()->check(prefix_validator());
  del->callback([&c] {
    c.action = [&c](Context& ctx) {
      json::array prefixes;
      for (const auto& prefix : c.prefixes) prefixes.push_back(json::string(canonical_prefix(prefix)));
      return ctx.call("block.del", {{"prefixes", std::move(prefixes)}}, [&](const json::value& r) {
        const auto removed = uint_field(as_object(r, "block.del result"), "removed").value_or(c.prefixes.size());
        ctx.env().out << "removed " << plural(removed, "prefix", "prefixes") << '\n';
      });
    };
  });

  auto* load = block->add_subcommand(
      "load", "Add every prefix of a file: one CIDR per line, optional action word after it, # comments");
  load->add_option("FILE", c.block_file, "The file; - reads standard input")->required();
  load->add_option("--action", c.filter_action, "Action of lines that name none: drop (default) or pass")
      ->check(CLI::IsMember({"drop", "pass"}));
  load->callback([&c] {
    c.action = [&c](Context& ctx) { return stream_block_load(ctx, c.block_file, c.filter_action); };
  });

  auto* list = block->add_subcommand("list", "Show the prefix lists: prefix and action");
  list->callback([&c] {
    c.action = [](Context& ctx) {
      return ctx.call("block.list", {}, [&](const json::value& r) { render_block_list(ctx.env().out, r); });
    };
  });
}

void add_rule(CLI::App& app, Commands& c) {
  auto* rule = app.add_subcommand("rule", "Ordered first-match filter rules");
  rule->require_subcommand(1);

  auto* add = rule->add_subcommand("add", "Add a rule; every option given must match. Prints the new rule's id");
  add_decimal(add, "--priority", "--priority", c.priority, 0, std::numeric_limits<std::uint32_t>::max(),
              "Lower matches first (default: the daemon picks one after the last rule)");
  add->add_option("--src", c.src, "Source prefix")->check(prefix_validator());
  add->add_option("--dst", c.dst, "Destination prefix")->check(prefix_validator());
  add->add_option("--proto", c.proto, "tcp, udp, icmp, icmpv6 or a protocol number 0..255")->check(protocol_validator());
  add->add_option("--sport", c.sport, "Source port or range A-B (TCP/UDP)")->check(port_range_validator());
  add->add_option("--dport", c.dport, "Destination port or range A-B (TCP/UDP)")->check(port_range_validator());
  add->add_option("--tcp-flags", c.tcp_flags, "Comma-separated fin syn rst psh ack urg ece cwr; !flag: must be clear")
      ->check(tcp_flags_validator());
  add_decimal(add, "--icmp-type", "--icmp-type", c.icmp_type, 0, 255, "ICMP/ICMPv6 type 0..255");
  add->add_option("--iface", c.rule_iface, "Ingress interface")->check(interface_validator());
  add->add_option("--action", c.rule_action, "drop, pass, track (pass and track the connection) or limit:CLASS")
      ->required()
      ->check(action_validator(true));
  add->callback([&c] {
    c.action = [&c](Context& ctx) {
      // Combinations that can never match are typos, not rules.
      std::optional<std::uint8_t> proto;
      if (c.proto) proto = filter::parse_protocol(*c.proto).value();
      if (c.src && c.dst &&
          filter::family_of(maps::parse_prefix(*c.src).value()) != filter::family_of(maps::parse_prefix(*c.dst).value()))
        return ctx.usage("--src " + *c.src + " and --dst " + *c.dst + " are of different address families: no packet matches both");
      const bool ports_proto = !proto || *proto == IPPROTO_TCP || *proto == IPPROTO_UDP;
      if (c.sport && !ports_proto) return ctx.usage("--sport " + *c.sport + " needs --proto tcp or udp, not " + *c.proto);
      if (c.dport && !ports_proto) return ctx.usage("--dport " + *c.dport + " needs --proto tcp or udp, not " + *c.proto);
      if (c.tcp_flags && proto && *proto != IPPROTO_TCP)
        return ctx.usage("--tcp-flags " + *c.tcp_flags + " needs --proto tcp, not " + *c.proto);
      if (c.icmp_type && proto && *proto != IPPROTO_ICMP && *proto != IPPROTO_ICMPV6)
        return ctx.usage("--icmp-type " + std::to_string(*c.icmp_type) + " needs --proto icmp or icmpv6, not " + *c.proto);
      if (c.icmp_type && (c.sport || c.dport || c.tcp_flags))
        return ctx.usage("--icmp-type cannot be combined with ports or --tcp-flags: no packet has both");
      {
        filter::FilterRule shape;  // the model's own check (the daemon refuses the same)
        if (c.src) shape.src = maps::parse_prefix(*c.src).value();
        if (c.dst) shape.dst = maps::parse_prefix(*c.dst).value();
        shape.protocol = proto;
        shape.icmp_type = c.icmp_type;
        if (auto problem = filter::unmatchable_icmp_problem(shape))
          return ctx.usage("--icmp-type " + std::to_string(*c.icmp_type) + " --proto " + *c.proto + ": " + *problem);
      }

      json::object args;
      if (c.priority) args["priority"] = *c.priority;
      if (c.src) args["src"] = canonical_prefix(*c.src);
      if (c.dst) args["dst"] = canonical_prefix(*c.dst);
      if (c.proto) args["proto"] = canonical_protocol(*c.proto);
      if (c.sport) args["sport"] = canonical_ports(*c.sport);
      if (c.dport) args["dport"] = canonical_ports(*c.dport);
      if (c.tcp_flags) args["tcp_flags"] = canonical_tcp_flags(*c.tcp_flags);
      if (c.icmp_type) args["icmp_type"] = static_cast<unsigned>(*c.icmp_type);
      if (c.rule_iface) args["iface"] = *c.rule_iface;
      std::string problem;
      auto action = parse_filter_action(c.rule_action, true, problem);
      if (!action) return ctx.usage("--action: " + problem);
      args["action"] = action->action;
      if (action->rate_class) args["rate_class"] = *action->rate_class;
      return ctx.call("rule.add", args, [&](const json::value& r) {
        const json::value* id = as_object(r, "rule.add result").if_contains("id");
        if (!id || !(id->is_int64() || id->is_uint64())) throw BadReply{"field id missing or not a number"};
        ctx.env().out << text(id) << '\n';
      });
    };
  });

  auto* del = rule->add_subcommand("del", "Delete a rule by id");
  add_decimal(del, "ID", "ID", c.rule_id, 0, std::numeric_limits<std::uint32_t>::max(),
              "The id rule add printed (rule list shows them)")
      ->required();
  del->callback([&c] {
    c.action = [&c](Context& ctx) {
      return ctx.call("rule.del", {{"id", *c.rule_id}},
                      [&](const json::value&) { ctx.env().out << "deleted rule " << *c.rule_id << '\n'; });
    };
  });

  auto* list = rule->add_subcommand("list", "Show the rules in evaluation order with their hit counters");
  list->callback([&c] {
    c.action = [](Context& ctx) {
      return ctx.call("rule.list", {}, [&](const json::value& r) { render_rule_list(ctx.env().out, r); });
    };
  });
}

void add_filter(CLI::App& app, Commands& c) {
  auto* filter = app.add_subcommand("filter", "The filter as a whole: its default policy");
  filter->require_subcommand(1);
  auto* policy = filter->add_subcommand(
      "policy", "Show or set what happens to a packet no prefix-list entry, tracked flow or rule decided");
  policy->add_option("POLICY", c.policy, "drop (a default-drop firewall: allow with pass/track rules) or pass")
      ->check(pass_or_drop_validator());
  policy->callback([&c] {
    c.action = [&c](Context& ctx) {
      if (!c.policy)
        return ctx.call("rule.list", {}, [&](const json::value& r) {
          ctx.env().out << field(as_object(r, "rule.list result"), "default_policy") << '\n';
        });
      return ctx.call("filter.policy", {{"policy", *c.policy}}, [&](const json::value& r) {
        ctx.env().out << "default policy: " << field(as_object(r, "filter.policy result"), "default_policy") << '\n';
      });
    };
  });
}

void add_limit(CLI::App& app, Commands& c) {
  auto* limit = app.add_subcommand("limit", "Rate-limit classes: token buckets per source prefix, and for all sources");
  limit->require_subcommand(1);

  auto* set = limit->add_subcommand("set", "Define or redefine a class (rules and prefixes use it as limit:CLASS)");
  set->add_option("CLASS", c.class_name, "Class name: " + config::class_name_rule())
      ->required()
      ->check(class_validator());
  add_decimal(set, "--pps", "--pps", c.pps, 1, filter::kMaxPacketsPerSec, "Packets per second per source")->required();
  add_decimal(set, "--bps", "--bps", c.bps, 1, filter::kMaxBytesPerSec, "Bytes per second per source (default: unlimited)");
  add_decimal(set, "--burst", "--burst", c.burst, 1, filter::kMaxPacketBurst,
              "Packets a source may send at once (default: one second of --pps)");
  set->add_flag("--syn-only", c.syn_only, "Only TCP SYNs (without ACK) spend tokens: a SYN-flood limit");
  set->add_option("--v4-prefix-len", c.v4_prefix_len,
                  "IPv4 sources sharing one bucket: the address cut to this length (default: 32)")
      ->check(CLI::Range(0u, 32u));
  set->add_option("--v6-prefix-len", c.v6_prefix_len,
                  "IPv6 sources sharing one bucket: the address cut to this length (default: 64, a site)")
      ->check(CLI::Range(0u, 128u));
  auto* aggregate_pps =
      set->add_option("--aggregate-pps", c.aggregate_pps,
                      "Packets per second of all sources together (a bucket they share; default: none)")
          ->check(CLI::Range(std::uint64_t{1}, filter::kMaxPacketsPerSec));
  set->add_option("--aggregate-bps", c.aggregate_bps, "Bytes per second of all sources together (default: none)")
      ->check(CLI::Range(std::uint64_t{1}, filter::kMaxBytesPerSec));
  set->add_option("--aggregate-burst", c.aggregate_burst,
                  "Packets all sources may send at once (default: one second of --aggregate-pps)")
      ->check(CLI::Range(std::uint64_t{1}, filter::kMaxPacketBurst))
      ->needs(aggregate_pps);
  set->callback([&c] {
    c.action = [&c](Context& ctx) {
      std::string problem;
      auto class_id = class_value(c.class_name, problem);
      if (!class_id) return ctx.usage("CLASS: " + problem);
      json::object args{{"class", *class_id}, {"pps", *c.pps}};
      if (c.bps) args["bps"] = *c.bps;
      if (c.burst) args["burst"] = *c.burst;
      if (c.syn_only) args["syn_only"] = true;
      if (c.v4_prefix_len) args["v4_prefix_len"] = *c.v4_prefix_len;
      if (c.v6_prefix_len) args["v6_prefix_len"] = *c.v6_prefix_len;
      if (c.aggregate_pps) args["aggregate_pps"] = *c.aggregate_pps;
      if (c.aggregate_bps) args["aggregate_bps"] = *c.aggregate_bps;
      if (c.aggregate_burst) args["aggregate_burst"] = *c.aggregate_burst;
      return ctx.call("limit.set", args, [&](const json::value& r) {
        const json::value* created = as_object(r, "limit.set result").if_contains("created");
        const bool redefined = created && created->is_bool() && !created->as_bool();
        ctx.env().out << "rate class " << c.class_name << (redefined ? " redefined" : " created") << '\n';
      });
    };
  });

  auto* del = limit->add_subcommand("del", "Delete a class (refused while a rule or prefix uses it)");
  del->add_option("CLASS", c.class_name, "Class name")->required()->check(class_validator());
  del->callback([&c] {
    c.action = [&c](Context& ctx) {
      std::string problem;
      auto class_id = class_value(c.class_name, problem);
      if (!class_id) return ctx.usage("CLASS: " + problem);
      return ctx.call("limit.del", {{"class", *class_id}},
                      [&](const json::value&) { ctx.env().out << "rate class " << c.class_name << " deleted\n"; });
    };
  });

  auto* list = limit->add_subcommand("list", "Show the rate-limit classes");
  list->callback([&c] {
    c.action = [](Context& ctx) {
      return ctx.call("limit.list", {}, [&](const json::value& r) { render_limit_list(ctx.env().out, r); });
    };
  });
}

void add_conn(CLI::App& app, Commands& c) {
  auto* conn = app.add_subcommand("conn", "The connection-tracking table");
  conn->require_subcommand(1);
  auto* list = conn->add_subcommand("list", "Show tracked flows (made by rules with --action track)");
  add_decimal(list, "--limit", "--limit", c.conn_limit, 1, protocol::max_conn_list_limit,
              "Show at most N flows (default: " + std::to_string(protocol::default_conn_list_limit) + ")");
  list->callback([&c] {
    c.action = [&c](Context& ctx) {
      json::object args;
      if (c.conn_limit) args["limit"] = *c.conn_limit;
      return ctx.call("conn.list", args, [&](const json::value& r) { render_conn_list(ctx.env().out, r); });
    };
  });
}

std::string default_interface_name(std::uint32_t ifindex) {
  std::array<char, IF_NAMESIZE> name{};
  if (if_indextoname(ifindex, name.data())) return name.data();
  return "if" + std::to_string(ifindex);
}

std::int64_t default_monotonic_to_realtime_ns() {
  timespec realtime{}, monotonic{};
  clock_gettime(CLOCK_REALTIME, &realtime);
  clock_gettime(CLOCK_MONOTONIC, &monotonic);
  return (static_cast<std::int64_t>(realtime.tv_sec) - monotonic.tv_sec) * kNanosPerSecond +
         (static_cast<std::int64_t>(realtime.tv_nsec) - monotonic.tv_nsec);
}

}  // namespace

Env::Env(std::ostream& out_, std::ostream& err_, std::istream& in_)
    : out(out_),
      err(err_),
      in(in_),
      interface_name(default_interface_name),
      monotonic_to_realtime_ns(default_monotonic_to_realtime_ns),
      sleep([](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }) {}

int run(const std::vector<std::string>& args, Env& env) {
  CLI::App app{
      "sluicectl: control the sluice XDP filter / load balancer through sluiced's socket.\n"
      "Exit status: 0 ok, 1 the daemon refused or failed, 2 bad arguments or file (nothing sent), "
      "3 daemon unreachable or unexpected reply.",
      "sluicectl"};
  // At most one command; "none" and unknown words are reported below with
  // the word itself, which CLI11's "A subcommand is required" would not name.
  app.require_subcommand(0, 1);
  app.fallthrough();
  app.set_version_flag("--version", "sluicectl " SLUICE_VERSION);
  Options options;
  app.add_option("--socket", options.socket, "Control socket of sluiced")
      ->envname("SLUICE_SOCKET")
      ->capture_default_str();
  app.add_flag("--json", options.json, "Print the daemon's raw JSON result instead of tables");
  app.add_option("--timeout", options.timeout_seconds, "Seconds to wait for a reply (not for streams)")
      ->check(CLI::Range(0.1, kMaxWatchSeconds))
      ->capture_default_str();

  Commands commands;
  add_status(app, commands);
  add_attach(app, commands);
  add_detach(app, commands);
  add_config(app, commands);
  add_stats(app, commands);
  add_events(app, commands);
  add_capture(app, commands);
  add_shutdown(app, commands);
  add_apply(app, commands);
  add_block(app, commands);
  add_rule(app, commands);
  add_filter(app, commands);
  add_limit(app, commands);
  add_conn(app, commands);
  // The lb and forward commands share one context.
  auto context_action = [&commands](LbAction run) {
    commands.action = [run](Context& ctx) {
      LbContext lb{[&ctx](std::string_view op, const json::object& args, const std::function<void(const json::value&)>& render) {
                     return ctx.call(op, args, [&](const json::value& r) {
                       try {
                         render(r);
                       } catch (const LbBadReply& bad) {
                         throw BadReply{bad.what()};
                       }
                     });
                   },
                   [&ctx](const std::string& message) { return ctx.usage(message); }, ctx.env().out};
      return run(lb);
    };
  };
  add_lb_commands(app, context_action);
  add_route_commands(app, context_action);
  // top and doctor read through one context: read-only calls, nothing printed.
  auto read_action = [&commands](std::function<int(TopContext&)> run) {
    commands.action = [run](Context& ctx) {
      TopContext reader{[&ctx](std::string_view op, const json::object& args) { return ctx.raw_call(op, args); },
                        [&ctx](std::string_view op, const json::object& args,
                               const std::function<bool(const json::value&)>& on_event) {
                          return ctx.raw_stream(op, args, on_event);
                        },
                        ctx.env(), ctx.options().json};
      return run(reader);
    };
  };
  add_top_command(app, read_action);
  add_doctor_command(app, read_action);

  // Set after the subcommands exist so they do not inherit it: only words
  // no command claims land in app.remaining().
  app.allow_extras();

  std::vector<const char*> argv{"sluicectl"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, env.out, env.err);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (const auto extras = app.remaining(); !extras.empty()) {
    env.err << "sluicectl: " << (commands.action ? "unexpected argument '" : "unknown command '") << extras.front()
            << "'; see sluicectl --help\n";
    return kExitUsage;
  }
  if (!commands.action) {
    env.err << "sluicectl: a command is required; see sluicectl --help\n";
    return kExitUsage;
  }
  Context context(env, options);
  try {
    return commands.action(context);
  } catch (const BadReply& bad) {
    env.err << "sluicectl: unexpected reply: " << bad.message << '\n';
    return kExitUnavailable;
  } catch (const std::exception& e) {
    env.err << "sluicectl: " << e.what() << '\n';
    return kExitFailed;
  }
}

}  // namespace sluice::cli
