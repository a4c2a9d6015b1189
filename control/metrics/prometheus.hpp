#pragma once
// Prometheus text exposition format (version 0.0.4), built family by family
// so every family has exactly one HELP and one TYPE line and its samples
// together — what `promtool check metrics` demands.
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace sluice::metrics {

enum class MetricType { Counter, Gauge };

struct Label {
  std::string name;
  std::string value;
};

struct Sample {
  std::vector<Label> labels;
  std::string value;  // already formatted: integers stay exact beyond 2^53
};

// Integers print exactly (any unsigned width: __u64 and uint64_t differ in type).
template <class Unsigned>
  requires std::is_unsigned_v<Unsigned>
Sample sample(std::vector<Label> labels, Unsigned value) {
  return Sample{std::move(labels), std::to_string(value)};
}
Sample sample(std::vector<Label> labels, double value);

// Metric and label names: [a-zA-Z_:][a-zA-Z0-9_:]* (labels without ':').
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);
// Backslash, double quote and newline escaped as the format requires.
std::string escape_label_value(std::string_view value);

class Exposition {
 public:
  // Appends one family. Names are ours (constants), so an invalid one is a
  // programming error: it throws std::invalid_argument.
  void add(std::string_view name, std::string_view help, MetricType type, const std::vector<Sample>& samples);
  const std::string& text() const noexcept { return text_; }

 private:
  std::string text_;
  std::vector<std::string> families_;
};

inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace sluice::metrics
