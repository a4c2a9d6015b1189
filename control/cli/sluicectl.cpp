#include "sluicectl.hpp"

#include <net/if.h>
#include <time.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <thread>

#include "block_commands.hpp"
#include "command_context.hpp"
#include "contract.hpp"
#include "desired_state.hpp"
#include "filter_commands.hpp"
#include "lb_commands.hpp"
#include "doctor_command.hpp"
#include "top_command.hpp"
#include "route_commands.hpp"
#include "packet_head.hpp"
#include "pcap_writer.hpp"
#include "ops.hpp"
#include "protocol.hpp"
#include "xdp_attachment.hpp"

namespace sluice::cli {
namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr std::int64_t kNanosPerMicro = 1'000;
// A watch loop sleeps in slices this long so Ctrl-C ends it promptly.
constexpr std::chrono::milliseconds kSleepSlice{100};
constexpr double kMaxWatchSeconds = 86400;

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
  Action action;

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
  std::optional<std::uint32_t> drop_sample_every;
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
  // The filter's commands keep their arguments to themselves.
  auto set_action = [&commands](Action action) { commands.action = std::move(action); };
  add_block_commands(app, set_action);
  add_filter_commands(app, set_action);
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
