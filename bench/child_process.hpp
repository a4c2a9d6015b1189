#pragma once
// Runs one program of the bench suite (a section, gnuplot, sluiced) as a
// child: argv passed as is (no shell, so no argument is ever interpreted),
// stdout captured, stderr to a file, and a deadline after which the child
// (and only it, by its pid) is killed. sluice-bench's bound on a section
// that hangs.
//
// Every child dies with its parent: it is forked with PR_SET_PDEATHSIG
// (SIGKILL), so a bench that is killed (by a deadline, a test harness, an
// operator's ^C) leaves no section, sluiced or generator running. The death
// signal follows the *thread* that forked: spawn from a thread that outlives
// the child (the main thread, as every bench does).
#include <sys/types.h>

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

// Where a spawned child's standard streams go.
struct ChildIo {
  std::filesystem::path stdin_file = "/dev/null";
  int stdout_fd = -1;                // this fd (a pipe's write end), or else stdout_file
  std::filesystem::path stdout_file;  // created/truncated; empty with stdout_fd -1: /dev/null
  std::filesystem::path stderr_file;  // created/truncated; empty: the same as stdout
};

// Starts argv (argv[0] searched in PATH when it has no '/') and returns its
// pid; the caller reaps it. The child gets SIGKILL when the calling thread
// exits. Throws std::runtime_error naming the program (and the file, for a
// redirect) when it cannot be started.
pid_t spawn_child(const std::vector<std::string>& argv, const ChildIo& io);

// spawn_child, stdout captured, bounded by deadline. stdin is /dev/null or,
// when given, a file.
ChildResult run_child(const std::vector<std::string>& argv, const std::filesystem::path& stderr_file,
                      std::chrono::seconds deadline, const std::optional<std::filesystem::path>& stdin_file = {});

// "exit 3", "killed by signal 9", "timed out after 60 s and killed".
std::string describe(const ChildResult& result, std::chrono::seconds deadline);

}  // namespace sluice::bench
