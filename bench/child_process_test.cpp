// child_process: output and exit status, a failed start named, the deadline,
// and the property the bench relies on to leave nothing behind: a child
// dies with the process that spawned it. The owner here is a forked copy of
// the test that runs a child and is then killed; the test, a subreaper, gets
// the orphan and must see it killed by SIGKILL (not still sleeping).
#include "child_process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace {

namespace bench = sluice::bench;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path scratch(const std::string& name) {
  return fs::temp_directory_path() / ("sluice-child-process-test." + std::to_string(::getpid()) + "." + name);
}

// waitpid with a bound: the status, or nullopt if pid did not end in time.
std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds bound) {
  const auto until = std::chrono::steady_clock::now() + bound;
  do {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < until);
  return std::nullopt;
}

TEST(ChildProcess, CapturesStdoutStderrAndExitCode) {
  const fs::path errors = scratch("err");
  const auto result = bench::run_child({"sh", "-c", "echo out; echo err >&2; exit 3"}, errors, 10s);
  EXPECT_EQ(result.out, "out\n");
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_FALSE(result.timed_out);
  std::ifstream in(errors);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "err");
  fs::remove(errors);
}

TEST(ChildProcess, AProgramThatCannotRunIsNamed) {
  try {
    bench::run_child({"/nonexistent/sluice-no-such-program"}, "/dev/null", 10s);
    FAIL() << "started a program that does not exist";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/sluice-no-such-program: cannot run"), std::string::npos) << e.what();
  }
}

TEST(ChildProcess, AnUnwritableStderrFileIsNamed) {
  try {
    bench::run_child({"true"}, "/nonexistent/dir/err", 10s);
    FAIL() << "ran with an stderr file that cannot be opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open stderr /nonexistent/dir/err"), std::string::npos) << e.what();
  }
}

TEST(ChildProcess, KilledAtTheDeadline) {
  const auto begun = std::chrono::steady_clock::now();
  const auto result = bench::run_child({"sleep", "30"}, "/dev/null", 1s);
  EXPECT_TRUE(result.timed_out);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_LT(std::chrono::steady_clock::now() - begun, 10s);
}

TEST(ChildProcess, DiesWithItsOwner) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);  // orphans come to this test, which can wait for them
  const fs::path pid_file = scratch("pid");
  const pid_t owner = ::fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    // The owner: a child that writes its pid, then would sleep far past the test.
    bench::run_child({"sh", "-c", "echo $$ >&2; exec sleep 60"}, pid_file, 120s);
    ::_exit(0);
  }
  pid_t child = 0;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!child && std::chrono::steady_clock::now() < until) {
    std::ifstream in(pid_file);
    if (!(in >> child)) child = 0;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GT(child, 0) << "the owner's child never wrote its pid";
  ::kill(owner, SIGKILL);
  const auto owner_status = wait_for(owner, 5s);
  ASSERT_TRUE(owner_status && WIFSIGNALED(*owner_status));
  // The orphan is this test's now; it must end, killed, well before its sleep would.
  const auto status = wait_for(child, 5s);
  if (!status) ::kill(child, SIGKILL);  // do not leave it behind when the test fails
  ASSERT_TRUE(status) << "pid " << child << " outlived its owner";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
  fs::remove(pid_file);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
}

}  // namespace
