#include "prometheus.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace sluice::metrics {
namespace {

bool name_char(char c, bool first, bool allow_colon) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
  return first ? alpha : alpha || (c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0, allow_colon)) return false;
  return true;
}

// HELP text escapes backslash and newline only.
std::string escape_help(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace


Sample sample(std::vector<Label> labels, double value) {
  if (std::isnan(value)) return Sample{std::move(labels), "NaN"};
  if (std::isinf(value)) return Sample{std::move(labels), value > 0 ? "+Inf" : "-Inf"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  return Sample{std::move(labels), buf};
}

bool valid_metric_name(std::string_view name) { return valid_name(name, true); }
bool valid_label_name(std::string_view name) { return valid_name(name, false) && !name.starts_with("__"); }

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void Exposition::add(std::string_view name, std::string_view help, MetricType type, const std::vector<Sample>& samples) {
  if (!valid_metric_name(name)) throw std::invalid_argument("invalid metric name " + std::string(name));
  if (std::find(families_.begin(), families_.end(), name) != families_.end())
    throw std::invalid_argument("metric family added twice: " + std::string(name));
  families_.emplace_back(name);
  text_ += "# HELP " + std::string(name) + " " + escape_help(help) + "\n";
  text_ += "# TYPE " + std::string(name) + (type == MetricType::Counter ? " counter\n" : " gauge\n");
  for (const auto& s : samples) {
    text_ += name;
    if (!s.labels.empty()) {
      text_ += '{';
      bool first = true;
      for (const auto& label : s.labels) {
        if (!valid_label_name(label.name)) throw std::invalid_argument("invalid label name " + label.name);
        if (!first) text_ += ',';
        first = false;
        text_ += label.name + "=\"" + escape_label_value(label.value) + "\"";
      }
      text_ += '}';
    }
    text_ += ' ' + s.value + '\n';
  }
}

}  // namespace sluice::metrics
