#include "top_frame.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

namespace sluice::cli {
namespace {

namespace json = boost::json;

constexpr double percent = 100.0;
constexpr std::uint64_t seconds_per_minute = 60, seconds_per_hour = 3600, seconds_per_day = 86400;
// Of the rows left after the fixed lines: verdicts, VIPs/backends, dropped sources.
constexpr double verdict_share = 0.35, vip_share = 0.45;

const json::value* member(const json::object* object, std::string_view key) {
  return object ? object->if_contains(key) : nullptr;
}

const json::array& array_at(const json::object* object, std::string_view key) {
  static const json::array empty;
  const json::value* value = member(object, key);
  return value && value->is_array() ? value->get_array() : empty;
}

std::string string_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (!value) return "-";
  if (value->is_string()) return terminal_safe(value->get_string());
  if (value->is_bool()) return value->get_bool() ? "yes" : "no";
  if (value->is_null()) return "-";
  return terminal_safe(json::serialize(*value));
}

double number_at(const json::object* object, std::string_view key) {
  const json::value* value = member(object, key);
  if (!value || !value->is_number()) return 0;
  const double number = value->to_number<double>();
  return std::isfinite(number) ? number : 0;
}

bool flag_at(const json::object* object, std::string_view key) {
  const json::value* value = member(object, key);
  return value && value->is_bool() && value->get_bool();
}

std::string compact(double value) {
  char text[32];
  if (value >= 1e9) std::snprintf(text, sizeof text, "%.2fG", value / 1e9);
  else if (value >= 1e6) std::snprintf(text, sizeof text, "%.2fM", value / 1e6);
  else if (value >= 1e4) std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  else if (value == std::floor(value)) std::snprintf(text, sizeof text, "%.0f", value);
  else std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

std::string uptime_text(std::uint64_t seconds) {
  char text[48];
  if (seconds >= seconds_per_day)
    std::snprintf(text, sizeof text, "%llud%02lluh", static_cast<unsigned long long>(seconds / seconds_per_day),
                  static_cast<unsigned long long>(seconds % seconds_per_day / seconds_per_hour));
  else if (seconds >= seconds_per_hour)
    std::snprintf(text, sizeof text, "%lluh%02llum", static_cast<unsigned long long>(seconds / seconds_per_hour),
                  static_cast<unsigned long long>(seconds % seconds_per_hour / seconds_per_minute));
  else
    std::snprintf(text, sizeof text, "%llum%02llus", static_cast<unsigned long long>(seconds / seconds_per_minute),
                  static_cast<unsigned long long>(seconds % seconds_per_minute));
  return text;
}

std::string fill_text(double used, double capacity) {
  char text[64];
  const double share = capacity > 0 ? std::min(1.0, used / capacity) * percent : 0;
  std::snprintf(text, sizeof text, "%s/%s (%.1f%%)", compact(used).c_str(), compact(capacity).c_str(), share);
  return text;
}

// Columns: text padded or cut to `width`, right-aligned when `right`.
std::string column(std::string text, std::size_t width, bool right = false) {
  if (text.size() > width) text = width > 1 ? text.substr(0, width - 1) + "~" : text.substr(0, width);
  const std::string pad(width - text.size(), ' ');
  return right ? pad + text : text + pad;
}

// Packets per second of one counter between the two documents; nullopt on the first frame.
class Rates {
 public:
  Rates(const TopInput& input) : seconds_(input.seconds), first_(input.previous == nullptr) {
    if (first_) return;
    for (const auto& c : array_at(input.previous, "counters"))
      if (c.is_object()) before_["v:" + string_at(c.get_object(), "verdict") + ":" + string_at(c.get_object(), "reason")] = number_at(&c.get_object(), "packets");
    for (const auto& v : array_at(input.previous, "vips")) {
      if (!v.is_object()) continue;
      const std::string vip = string_at(v.get_object(), "vip");
      before_["vip:" + vip] = number_at(&v.get_object(), "packets");
      for (const auto& b : array_at(&v.get_object(), "backends"))
        if (b.is_object()) before_["be:" + vip + ":" + string_at(b.get_object(), "address")] = number_at(&b.get_object(), "packets");
    }
  }
  std::optional<double> of(const std::string& key, double packets) const {
    if (first_ || seconds_ <= 0) return std::nullopt;
    auto found = before_.find(key);
    if (found == before_.end() || packets < found->second) return std::nullopt;  // new, or counters reset
    return (packets - found->second) / seconds_;
  }

 private:
  double seconds_;
  bool first_;
  std::map<std::string, double> before_;
};

std::string rate_text(const std::optional<double>& rate) { return rate ? compact(*rate) : "-"; }

// Rows of one section, at most `room`; the last one says what did not fit.
void add_rows(std::vector<std::string>& frame, std::vector<std::string> rows, std::size_t room, const char* what) {
  if (rows.size() > room && room > 0) {
    const std::size_t shown = room - 1;
    const std::size_t hidden = rows.size() - shown;
    rows.resize(shown);
    rows.push_back("  ... " + std::to_string(hidden) + " more " + what);
  }
  for (auto& row : rows) frame.push_back(std::move(row));
}

}  // namespace

std::string terminal_safe(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return out;
}

std::vector<std::string> render_top_frame(const TopInput& input, std::size_t width, std::size_t height) {
  width = std::max(width, top_min_width);
  height = std::max(height, top_min_height);
  const json::object* doc = input.now;
  const json::value* daemon_value = member(doc, "daemon");
  const json::object* daemon = daemon_value && daemon_value->is_object() ? &daemon_value->get_object() : nullptr;
  const Rates rates(input);
  std::vector<std::string> frame;

  std::string header = "sluice top - sluiced " + (daemon ? string_at(*daemon, "version") : "-") + " pid " +
                       (daemon ? string_at(*daemon, "pid") : "-") + " - up " +
                       uptime_text(static_cast<std::uint64_t>(number_at(daemon, "uptime_seconds")));
  std::string right = input.clock + "  q quits";
  header = column(header, width - right.size() - 1) + " " + right;
  frame.push_back(header);

  std::string interfaces = "interfaces:";
  const auto& attached = array_at(doc, "interfaces");
  if (attached.empty()) interfaces += " none attached";
  for (const auto& i : attached) {
    if (!i.is_object()) continue;
    const auto& row = i.get_object();
    interfaces += " " + string_at(row, "name") + " " + string_at(row, "mode") +
                  (flag_at(&row, "attached") ? "" : " (NOT ATTACHED)") + ",";
  }
  if (interfaces.back() == ',') interfaces.pop_back();
  frame.push_back(interfaces);

  const json::value* stages_value = member(doc, "stages");
  const json::object* stages = stages_value && stages_value->is_object() ? &stages_value->get_object() : nullptr;
  const json::value* ct_value = member(doc, "conntrack");
  const json::object* ct = ct_value && ct_value->is_object() ? &ct_value->get_object() : nullptr;
  std::string stage_line = "stages: filter " + std::string(flag_at(stages, "filter") ? "on" : "off") + ", lb " +
                           (flag_at(stages, "lb") ? "on" : "off") + ", forward " +
                           (flag_at(stages, "forward") ? "on" : "off") + " | conntrack " +
                           fill_text(number_at(ct, "entries"), number_at(ct, "capacity"));
  if (const json::value* lb = member(doc, "lb_connections"); lb && lb->is_object()) {
    const json::object* conns = &lb->get_object();
    stage_line += " | lb conns " + fill_text(number_at(conns, "v4") + number_at(conns, "v6"),
                                             number_at(conns, "v4_capacity") + number_at(conns, "v6_capacity"));
  }
  frame.push_back(stage_line);
  if (flag_at(daemon, "degraded")) {
    std::string why = daemon->if_contains("restore_error") ? string_at(*daemon, "restore_error")
                                                           : string_at(*daemon, "rollback_error");
    frame.push_back("DEGRADED: " + why);
  }
  const auto& errors = array_at(doc, "errors");
  if (!errors.empty()) {
    std::string line = "errors:";
    for (const auto& e : errors) line += " " + (e.is_string() ? terminal_safe(e.get_string()) : std::string("?")) + ";";
    frame.push_back(line);
  }

  // Fixed from here: three section headers, two blank lines.
  constexpr std::size_t section_lines = 5;
  const std::size_t room = height > frame.size() + section_lines ? height - frame.size() - section_lines : 3;
  const auto verdict_room = std::max<std::size_t>(1, static_cast<std::size_t>(room * verdict_share));
  const auto vip_room = std::max<std::size_t>(1, static_cast<std::size_t>(room * vip_share));
  const std::size_t source_room = room > verdict_room + vip_room ? room - verdict_room - vip_room : 1;

  // Verdicts: the busiest first (by rate, then by count); all-zero reasons left out.
  struct VerdictRow {
    std::string verdict, reason;
    double packets;
    std::optional<double> rate;
  };
  std::vector<VerdictRow> verdicts;
  for (const auto& c : array_at(doc, "counters")) {
    if (!c.is_object()) continue;
    const auto& row = c.get_object();
    const double packets = number_at(&row, "packets");
    if (packets <= 0) continue;
    VerdictRow v{string_at(row, "verdict"), string_at(row, "reason"), packets, {}};
    v.rate = rates.of("v:" + v.verdict + ":" + v.reason, packets);
    verdicts.push_back(std::move(v));
  }
  std::stable_sort(verdicts.begin(), verdicts.end(), [](const VerdictRow& a, const VerdictRow& b) {
    const double ra = a.rate.value_or(0), rb = b.rate.value_or(0);
    return ra != rb ? ra > rb : a.packets > b.packets;
  });
  frame.push_back(column("VERDICT", 8) + column("REASON", 34) + column("PPS", 12, true) + column("PACKETS", 14, true));
  std::vector<std::string> rows;
  for (const auto& v : verdicts)
    rows.push_back(column(v.verdict, 8) + column(v.reason, 34) + column(rate_text(v.rate), 12, true) +
                   column(compact(v.packets), 14, true));
  if (rows.empty()) rows.push_back("  no packets judged yet");
  add_rows(frame, std::move(rows), verdict_room, "reasons");
  frame.emplace_back();

  frame.push_back(column("VIP / BACKEND", 30) + column("HEALTH", 10) + column("STATE", 10) + column("SHARE", 7, true) +
                  column("PPS", 10, true) + column("PACKETS", 12, true));
  rows.clear();
  for (const auto& v : array_at(doc, "vips")) {
    if (!v.is_object()) continue;
    const auto& vip = v.get_object();
    const std::string name = string_at(vip, "vip");
    const double packets = number_at(&vip, "packets");
    rows.push_back(column(name, 30) + column("check " + string_at(vip, "check"), 20) + column("", 7) +
                   column(rate_text(rates.of("vip:" + name, packets)), 10, true) + column(compact(packets), 12, true));
    for (const auto& b : array_at(&vip, "backends")) {
      if (!b.is_object()) continue;
      const auto& backend = b.get_object();
      const std::string address = string_at(backend, "address");
      const double backend_packets = number_at(&backend, "packets");
      char share[16];
      std::snprintf(share, sizeof share, "%.1f%%", number_at(&backend, "share") * percent);
      rows.push_back(column("  " + address, 30) + column(string_at(backend, "health"), 10) +
                     column(string_at(backend, "state"), 10) + column(share, 7, true) +
                     column(rate_text(rates.of("be:" + name + ":" + address, backend_packets)), 10, true) +
                     column(compact(backend_packets), 12, true));
    }
  }
  if (rows.empty()) rows.push_back("  no VIPs");
  add_rows(frame, std::move(rows), vip_room, "VIP and backend rows");
  frame.emplace_back();

  frame.push_back("TOP DROPPED SOURCES (of the last " + std::to_string(input.sampled_drops) + " sampled drops)");
  rows.clear();
  if (!input.drop_sources_unavailable.empty()) {
    rows.push_back("  " + terminal_safe(input.drop_sources_unavailable));
  } else {
    for (const auto& [source, count] : input.drop_sources)
      rows.push_back("  " + column(terminal_safe(source), 42) + column(compact(static_cast<double>(count)), 10, true));
    if (rows.empty()) rows.push_back("  no sampled drops");
  }
  add_rows(frame, std::move(rows), source_room, "sources");

  if (frame.size() > height) frame.resize(height);
  for (auto& line : frame) line = column(terminal_safe(line), width);
  // Trailing spaces are the terminal's to keep: a frame line is its text, padded.
  for (auto& line : frame) line.erase(line.find_last_not_of(' ') + 1);
  return frame;
}

}  // namespace sluice::cli
