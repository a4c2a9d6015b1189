#pragma once
// Shared by every benchmark: timing a BPF program on one frame with
// BPF_PROG_TEST_RUN (the kernel's own per-repeat average), and a report
// that prints each result as ns/packet and as a ratio to a baseline timed
// in the same run — never an absolute number compared to a constant.
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "figure.hpp"

namespace CLI {
class App;
}

namespace sluice::bench {

struct Timing {
  double ns_per_packet = 0;  // median over rounds
  std::uint32_t verdict = 0;
};

// repeat: packets per BPF_PROG_TEST_RUN call; rounds: calls, median taken.
// Throws std::runtime_error naming the program on a failed test run.
Timing time_xdp(int prog_fd, const std::vector<std::uint8_t>& frame, std::uint32_t repeat, int rounds,
                const std::string& what);

struct Row {
  std::string group;     // e.g. "ipv4/tcp"
  std::string name;      // e.g. "pipeline (3 pass-through stages)"
  double ns_per_packet;
  double baseline_ns;    // the same group's baseline, same run
  std::uint32_t verdict;
};

class Report {
 public:
  explicit Report(std::string title, std::string baseline_name)
      : title_(std::move(title)), baseline_name_(std::move(baseline_name)) {}
  void add(Row row) { rows_.push_back(std::move(row)); }
  const std::vector<Row>& rows() const noexcept { return rows_; }
  void print_table(std::ostream& out) const;
  void print_json(std::ostream& out) const;

 private:
  std::string title_;
  std::string baseline_name_;
  std::vector<Row> rows_;
};

// Fails (throws) below this: the issue asks for at least a million packets per timing.
constexpr std::uint32_t min_repeat = 1'000'000;

// ---- paired rounds (what every section times with) ----

// One BPF_PROG_TEST_RUN round: the kernel's per-repeat average and the verdict.
struct RoundTiming {
  double ns_per_packet = 0;
  std::uint32_t verdict = 0;
};
// ingress_ifindex: 0 runs without a context (the kernel's loopback default).
// Throws std::runtime_error naming `what` on a failed run or, when
// expect_verdict is set, on any other verdict (a broken path must not time).
RoundTiming run_xdp_round(int prog_fd, const std::vector<std::uint8_t>& frame, std::uint32_t repeat,
                          const std::string& what, std::optional<std::uint32_t> expect_verdict = std::nullopt,
                          std::uint32_t ingress_ifindex = 0);

// A round of one side: times it (>= min_repeat repeats) and returns ns/packet.
using TimedRound = std::function<double()>;

struct Paired {
  Spread value;     // the path, ns/packet over the rounds
  Spread baseline;  // the baseline, ns/packet over the same rounds
  Spread ratio;     // per round: path / the baseline timed just before it
};
// rounds x (baseline, path), interleaved, so a noisy neighbour hits both
// sides of each ratio alike; every ratio is of one round's pair.
Paired time_paired(const TimedRound& baseline, const TimedRound& path, int rounds);

// ---- CPU pinning ----

// The last possible CPU if this process may run there, else the highest one it may.
int default_bench_cpu();
// Pins the calling thread (at start-up: the process) to `cpu`, so every
// BPF_PROG_TEST_RUN runs there. Throws std::runtime_error naming the CPU.
void pin_to_cpu(int cpu);

// ---- a section program ----

// The options every section shares: --json, --quick, --cpu N, --repeat N, --rounds N.
struct SectionOptions {
  std::uint32_t repeat = min_repeat;
  int rounds = 9;
  int quick_rounds = 3;  // --quick without --rounds
  bool json = false;
  bool quick = false;
  int cpu = -1;  // -1: default_bench_cpu()
};
void add_section_options(CLI::App& app, SectionOptions& options);
// After parsing: resolves --quick's rounds and pins to the CPU; returns the CPU.
int apply_section_options(CLI::App& app, SectionOptions& options);

// Collects one section's figures and prints them (table, or JSON with --json).
class SectionWriter {
 public:
  SectionWriter(std::string section, int pinned_cpu);
  // A paired figure in ns/packet, its ratio to `baseline_name`.
  Figure& add_paired(const std::string& group, const std::string& name, const Paired& timing,
                     const std::string& baseline_name, const std::string& note = {});
  // A figure without a ratio.
  Figure& add_value(const std::string& group, const std::string& name, const std::string& unit, const Spread& value,
                    const std::string& note = {});
  void note(std::string text) { report_.notes.push_back(std::move(text)); }
  const SectionReport& report() const noexcept { return report_; }
  void emit(std::ostream& out, bool json) const;

 private:
  SectionReport report_;
};

// The table sluice-bench and every section print: rows grouped by section and
// group; value, ratio median [q1-q3] (min-max with fewer than 4 rounds), and
// `too_wide_mark` on a row whose spread is too wide to judge.
constexpr const char* too_wide_mark = "~";
void print_figure_table(std::ostream& out, const std::vector<Figure>& figures);
bool judged_too_wide(const Figure& figure);
std::string format_spread(const Spread& spread, int precision);

}  // namespace sluice::bench
