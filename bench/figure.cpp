#include "figure.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>

#include <bpf/libbpf.h>

namespace sluice::bench {
namespace json = boost::json;

namespace {

// Linear interpolation between closest ranks (the usual "type 7" quantile).
double quantile(const std::vector<double>& sorted, double q) {
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const std::size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (position - static_cast<double>(below));
}

json::object to_json(const Spread& spread) {
  return {{"min", spread.min},       {"q1", spread.q1},   {"median", spread.median},
          {"q3", spread.q3},         {"max", spread.max}, {"samples", spread.samples},
          {"too_wide", too_wide(spread)}};
}

const json::value& field(const json::object& object, const char* name) {
  const json::value* value = object.if_contains(name);
  if (value == nullptr) throw std::invalid_argument(std::string("figure: missing field '") + name + "'");
  return *value;
}

std::string string_field(const json::object& object, const char* name) {
  const json::value& value = field(object, name);
  if (!value.is_string())
    throw std::invalid_argument(std::string("figure: field '") + name + "' is not a string: " + json::serialize(value));
  return std::string(value.get_string());
}

double number_field(const json::object& object, const char* name) {
  const json::value& value = field(object, name);
  if (!value.is_number())
    throw std::invalid_argument(std::string("figure: field '") + name + "' is not a number: " + json::serialize(value));
  const double number = value.to_number<double>();
  if (!std::isfinite(number))
    throw std::invalid_argument(std::string("figure: field '") + name + "' is not finite");
  return number;
}

Spread spread_from_json(const json::value& value, const char* name) {
  if (!value.is_object())
    throw std::invalid_argument(std::string("figure: field '") + name + "' is not an object: " + json::serialize(value));
  const json::object& object = value.get_object();
  Spread spread;
  spread.min = number_field(object, "min");
  spread.q1 = number_field(object, "q1");
  spread.median = number_field(object, "median");
  spread.q3 = number_field(object, "q3");
  spread.max = number_field(object, "max");
  const double samples = number_field(object, "samples");
  if (samples < 1 || samples > 1e9 || samples != std::floor(samples))
    throw std::invalid_argument(std::string("figure: field '") + name + ".samples' is not a count: " +
                                std::to_string(samples));
  spread.samples = static_cast<std::uint32_t>(samples);
  if (!(spread.min <= spread.q1 && spread.q1 <= spread.median && spread.median <= spread.q3 && spread.q3 <= spread.max))
    throw std::invalid_argument(std::string("figure: field '") + name + "' is not ordered min <= q1 <= median <= q3 <= max");
  return spread;
}

std::string first_line_of(const char* command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command, "r"), ::pclose);
  if (!pipe) return "unknown";
  std::array<char, 256> line{};
  if (std::fgets(line.data(), line.size(), pipe.get()) == nullptr) return "unknown";
  std::string text(line.data());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

int read_int(const char* path) {
  std::ifstream in(path);
  int value = -1;
  if (!(in >> value)) return -1;
  return value;
}

}  // namespace

Spread summarize(std::vector<double> samples) {
  if (samples.empty()) throw std::invalid_argument("summarize: no samples");
  std::sort(samples.begin(), samples.end());
  Spread spread;
  spread.min = samples.front();
  spread.max = samples.back();
  spread.q1 = quantile(samples, 0.25);
  spread.median = quantile(samples, 0.5);
  spread.q3 = quantile(samples, 0.75);
  spread.samples = static_cast<std::uint32_t>(samples.size());
  return spread;
}

bool too_wide(const Spread& spread) noexcept {
  if (spread.median <= 0) return true;
  return (spread.q3 - spread.q1) / spread.median > too_wide_iqr_share;
}

Machine read_machine(int pinned_cpu) {
  Machine machine;
  machine.pinned_cpu = pinned_cpu;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) machine.cpu_model = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  }
  utsname names{};
  machine.kernel = ::uname(&names) == 0 ? names.release : "unknown";
  machine.clang = first_line_of("clang --version 2>/dev/null");
  machine.bpf_jit_enable = read_int("/proc/sys/net/core/bpf_jit_enable");
  machine.bpf_jit_harden = read_int("/proc/sys/net/core/bpf_jit_harden");
  const int possible = libbpf_num_possible_cpus();
  machine.possible_cpus = possible > 0 ? static_cast<unsigned>(possible) : 0;
  return machine;
}

json::object to_json(const Figure& figure) {
  json::object object{{"section", figure.section}, {"group", figure.group}, {"name", figure.name},
                      {"unit", figure.unit},       {"value", to_json(figure.value)}};
  if (!figure.baseline.empty()) object["baseline"] = figure.baseline;
  if (figure.ratio) object["ratio"] = to_json(*figure.ratio);
  if (!figure.curve.empty()) object["curve"] = figure.curve;
  if (figure.x) object["x"] = *figure.x;
  if (figure.map_bytes) object["map_bytes"] = *figure.map_bytes;
  if (!figure.series.empty()) object["series"] = figure.series;
  if (figure.baseline_value) object["baseline_value"] = to_json(*figure.baseline_value);
  if (!figure.note.empty()) object["note"] = figure.note;
  return object;
}

json::object to_json(const Machine& machine) {
  return {{"cpu_model", machine.cpu_model},
          {"pinned_cpu", machine.pinned_cpu},
          {"kernel", machine.kernel},
          {"clang", machine.clang},
          {"bpf_jit_enable", machine.bpf_jit_enable},
          {"bpf_jit_harden", machine.bpf_jit_harden},
          {"possible_cpus", machine.possible_cpus}};
}

json::object to_json(const SectionReport& report) {
  json::array figures;
  for (const Figure& figure : report.figures) figures.push_back(to_json(figure));
  json::object object{{"schema", SectionReport::schema},
                      {"section", report.section},
                      {"machine", to_json(report.machine)},
                      {"figures", std::move(figures)}};
  if (!report.notes.empty()) {
    json::array notes;
    for (const std::string& note : report.notes) notes.push_back(json::string(note));
    object["notes"] = std::move(notes);
  }
  return object;
}

Figure figure_from_json(const json::value& value) {
  if (!value.is_object()) throw std::invalid_argument("figure: not an object: " + json::serialize(value));
  const json::object& object = value.get_object();
  Figure figure;
  figure.section = string_field(object, "section");
  figure.group = string_field(object, "group");
  figure.name = string_field(object, "name");
  figure.unit = string_field(object, "unit");
  figure.value = spread_from_json(field(object, "value"), "value");
  if (object.contains("baseline")) figure.baseline = string_field(object, "baseline");
  if (const json::value* ratio = object.if_contains("ratio")) {
    if (figure.baseline.empty()) throw std::invalid_argument("figure '" + figure.name + "': a ratio without a baseline");
    figure.ratio = spread_from_json(*ratio, "ratio");
  }
  if (object.contains("curve")) figure.curve = string_field(object, "curve");
  if (object.contains("x")) figure.x = number_field(object, "x");
  if (object.contains("map_bytes")) {
    const double bytes = number_field(object, "map_bytes");
    if (bytes < 0) throw std::invalid_argument("figure: field 'map_bytes' is negative");
    figure.map_bytes = static_cast<std::uint64_t>(bytes);
  }
  if (object.contains("note")) figure.note = string_field(object, "note");
  if (object.contains("series")) figure.series = string_field(object, "series");
  if (const json::value* floor = object.if_contains("baseline_value")) {
    if (figure.baseline.empty())
      throw std::invalid_argument("figure '" + figure.name + "': a baseline_value without a baseline");
    figure.baseline_value = spread_from_json(*floor, "baseline_value");
  }
  return figure;
}

Machine machine_from_json(const json::value& value) {
  if (!value.is_object()) throw std::invalid_argument("section report: field 'machine' is not an object");
  const json::object& m = value.get_object();
  Machine machine;
  machine.cpu_model = string_field(m, "cpu_model");
  machine.pinned_cpu = static_cast<int>(number_field(m, "pinned_cpu"));
  machine.kernel = string_field(m, "kernel");
  machine.clang = string_field(m, "clang");
  machine.bpf_jit_enable = static_cast<int>(number_field(m, "bpf_jit_enable"));
  machine.bpf_jit_harden = static_cast<int>(number_field(m, "bpf_jit_harden"));
  machine.possible_cpus = static_cast<unsigned>(number_field(m, "possible_cpus"));
  return machine;
}

SectionReport section_from_json(const json::value& value) {
  if (!value.is_object()) throw std::invalid_argument("section report: not an object");
  const json::object& object = value.get_object();
  if (string_field(object, "schema") != SectionReport::schema)
    throw std::invalid_argument("section report: schema '" + string_field(object, "schema") + "', expected '" +
                                SectionReport::schema + "'");
  SectionReport report;
  report.section = string_field(object, "section");
  report.machine = machine_from_json(field(object, "machine"));
  const json::value& figures = field(object, "figures");
  if (!figures.is_array()) throw std::invalid_argument("section report: field 'figures' is not an array");
  for (const json::value& figure : figures.get_array()) report.figures.push_back(figure_from_json(figure));
  if (const json::value* notes = object.if_contains("notes")) {
    if (!notes->is_array()) throw std::invalid_argument("section report: field 'notes' is not an array");
    for (const json::value& note : notes->get_array()) {
      if (!note.is_string()) throw std::invalid_argument("section report: a note is not a string: " + json::serialize(note));
      report.notes.emplace_back(note.get_string());
    }
  }
  return report;
}

SectionReport check_section_output(const std::string& text, const std::string& section) {
  boost::system::error_code error;
  const json::value value = json::parse(text, error);
  if (error) throw std::invalid_argument("section output is not JSON: " + error.message());
  SectionReport report = section_from_json(value);
  if (report.section != section)
    throw std::invalid_argument("section report: section '" + report.section + "', expected '" + section + "'");
  if (report.figures.empty()) throw std::invalid_argument("section report '" + section + "': no figures");
  for (const Figure& figure : report.figures) {
    if (figure.section != section)
      throw std::invalid_argument("figure '" + figure.name + "': section '" + figure.section + "', expected '" +
                                  section + "'");
    if (figure.unit == "ns/packet" && (!figure.ratio || !figure.baseline_value))
      throw std::invalid_argument("figure '" + figure.group + " / " + figure.name + "': ns/packet without " +
                                  (figure.ratio ? "a baseline_value" : "a ratio"));
  }
  return report;
}

}  // namespace sluice::bench
