#pragma once
// Shared by every benchmark: timing a BPF program on one frame with
// BPF_PROG_TEST_RUN (the kernel's own per-repeat average) in rounds paired
// with a baseline, and the section writer that prints each figure as
// ns/packet and as the per-round ratio to that baseline — never an absolute
// number compared to a constant.
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
