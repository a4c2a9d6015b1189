#pragma once
// Runs one program of the bench suite (a section, gnuplot) as a child:
// argv passed as is (no shell, so no argument is ever interpreted), stdout
// captured, stderr to a file, and a deadline after which the child (and only
// it, by its pid) is killed. sluice-bench's bound on a section that hangs.
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sluice::bench {

struct ChildResult {
  std::string out;          // everything the child wrote to stdout, up to max_output_bytes
  int exit_code = -1;       // its exit status; -1 if it did not exit normally
  int signal = 0;           // the signal that ended it, 0 if none
  bool timed_out = false;   // killed at the deadline
  bool output_cut = false;  // stdout passed max_output_bytes (and the child was killed)
};

// Bound on what a section may print: its JSON is far smaller.
constexpr std::size_t max_output_bytes = 64u << 20;

// argv[0] is the path run (searched in PATH when it has no '/'). stdin is
// /dev/null or, when given, a file. Throws std::runtime_error naming the
// program when it cannot be started.
ChildResult run_child(const std::vector<std::string>& argv, const std::filesystem::path& stderr_file,
                      std::chrono::seconds deadline, const std::optional<std::filesystem::path>& stdin_file = {});

// "exit 3", "killed by signal 9", "timed out after 60 s and killed".
std::string describe(const ChildResult& result, std::chrono::seconds deadline);

}  // namespace sluice::bench
