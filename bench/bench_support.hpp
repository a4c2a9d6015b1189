#pragma once
// Shared by every benchmark: timing a BPF program on one frame with
// BPF_PROG_TEST_RUN (the kernel's own per-repeat average), and a report
// that prints each result as ns/packet and as a ratio to a baseline timed
// in the same run — never an absolute number compared to a constant.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

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

}  // namespace sluice::bench
