#pragma once
// One measured figure, in the form every section of sluice-bench reports it.
// A section is a program (filter_bench, lb_bench, forward_bench, pps_bench,
// control_bench, ...) that prints one SectionReport as JSON with --json;
// sluice-bench runs the sections, merges their figures, prints the table,
// writes the JSON file and draws the plots. This header is that contract.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/fwd.hpp>

namespace sluice::bench {

// Distribution of one quantity over the rounds that measured it.
struct Spread {
  double min = 0, q1 = 0, median = 0, q3 = 0, max = 0;
  std::uint32_t samples = 0;
};

// Throws std::invalid_argument on an empty sample set.
Spread summarize(std::vector<double> samples);

// A row whose interquartile range exceeds this share of its median is
// flagged: the machine was too noisy to judge it.
constexpr double too_wide_iqr_share = 0.25;
bool too_wide(const Spread& spread) noexcept;

struct Figure {
  std::string section;  // "filter", "lb", "forward", "pipeline", "pps", "control"
  std::string group;    // rows printed together: "ipv4/tcp", "rules", "1 core"
  std::string name;     // what was measured: "rule match, last of 4,096 rules"
  std::string unit;     // "ns/packet", "pps", "ms", "updates/s", "bytes"
  Spread value;         // over the rounds
  // What `ratio` divides by ("empty XDP_DROP", "XDP_DROP ceiling",
  // "xdp-filter"); empty when the figure has no ratio.
  std::string baseline;
  // Per-round value/baseline from interleaved, paired rounds (baseline,
  // path, baseline, path, ...), summarized; never a ratio of two medians.
  std::optional<Spread> ratio;
  std::string curve;                       // scaling curve ("rules", "prefixes"); empty: none
  // Abscissa on that curve. A figure with a curve but no x is a reference
  // (a peer measured once, e.g. xdp-filter): drawn as a horizontal line.
  std::optional<double> x;
  // The line on the curve's plot this point belongs to ("sluice, last rule",
  // "bpf_fib_lookup router"); empty: the figure's name.
  std::string series;
  // The baseline's own value over the same paired rounds (the floor drawn
  // under a curve); absent when the section did not time one.
  std::optional<Spread> baseline_value;
  std::optional<std::uint64_t> map_bytes;  // BPF map memory at this point
  std::string note;                        // e.g. "verdict XDP_DROP, 1,000,000 repeats checked by counters"
};

// The machine a run measured on, stated in every report.
struct Machine {
  std::string cpu_model;
  int pinned_cpu = -1;  // -1: not pinned
  std::string kernel;   // uname -r
  std::string clang;    // clang --version, first line
  int bpf_jit_enable = -1, bpf_jit_harden = -1;  // /proc/sys/net/core, -1: unreadable
  unsigned possible_cpus = 0;
};
Machine read_machine(int pinned_cpu);

struct SectionReport {
  static constexpr const char* schema = "sluice-bench/1";
  std::string section;
  Machine machine;
  std::vector<Figure> figures;
  std::vector<std::string> notes;  // free text printed under the section's table ("memory, idle: 12 MiB")
};

boost::json::object to_json(const Figure& figure);
boost::json::object to_json(const Machine& machine);
boost::json::object to_json(const SectionReport& report);  // {"schema", "section", "machine", "figures"[, "notes"]}
Machine machine_from_json(const boost::json::value& value);
// Throws std::invalid_argument naming the field and value that is missing or malformed.
Figure figure_from_json(const boost::json::value& value);
SectionReport section_from_json(const boost::json::value& value);

// What sluice-bench takes from a section's --json output: one SectionReport
// of `section` with at least one figure, and every ns/packet figure with its
// ratio and the baseline's own value (a time without its floor means nothing
// on a shared machine). Throws std::invalid_argument naming what is wrong.
SectionReport check_section_output(const std::string& text, const std::string& section);

}  // namespace sluice::bench
