#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace sluice::bench {
namespace {

// Closes on scope exit: a failed spawn must not leak the pipe.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

}  // namespace

pid_t spawn_child(const std::vector<std::string>& argv, const ChildIo& io) {
  if (argv.empty()) throw std::invalid_argument("spawn_child: no program");
  const std::string& program = argv.front();
  // Everything the child needs is built before fork: between fork and exec
  // a multi-threaded parent's child may only make async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const std::string input = io.stdin_file.string();
  const std::string output = io.stdout_file.empty() ? "/dev/null" : io.stdout_file.string();
  const std::string errors = io.stderr_file.string();
  // The child reports a failed redirect or exec through this pipe (closed by
  // a successful exec): {step, errno}.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw std::runtime_error(program + ": pipe: " + std::strerror(errno));
  Fd report_read(report[0]), report_write(report[1]);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(program + ": fork: " + std::strerror(errno));
  if (pid == 0) {
    int failure[2] = {0, 0};
    auto die = [&](int step) {
      failure[0] = step;
      failure[1] = errno;
      (void)!::write(report_write.fd, failure, sizeof failure);
      ::_exit(127);
    };
    // Dies with the parent; if the parent is already gone (it died between
    // fork and here), the signal was never armed for it: leave now.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die(0);
    if (::getppid() != parent) ::_exit(127);
    auto onto = [&](const char* path, int flags, int target, int step) {
      const int fd = ::open(path, flags, 0644);
      if (fd < 0) die(step);
      if (fd != target) {
        if (::dup2(fd, target) < 0) die(step);
        ::close(fd);
      }
    };
    onto(input.c_str(), O_RDONLY, STDIN_FILENO, 1);
    if (io.stdout_fd >= 0) {
      if (::dup2(io.stdout_fd, STDOUT_FILENO) < 0) die(2);
    } else {
      onto(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, STDOUT_FILENO, 2);
    }
    if (errors.empty()) {
      if (::dup2(STDOUT_FILENO, STDERR_FILENO) < 0) die(3);
    } else {
      onto(errors.c_str(), O_WRONLY | O_CREAT | O_TRUNC, STDERR_FILENO, 3);
    }
    ::execvp(args[0], args.data());
    die(4);
  }
  report_write.reset();
  int failure[2] = {0, 0};
  ssize_t got;
  while ((got = ::read(report_read.fd, failure, sizeof failure)) < 0 && errno == EINTR) {
  }
  if (got <= 0) return pid;  // EOF: exec closed the pipe, the program runs
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  static constexpr const char* steps[] = {"cannot arm its death signal", "cannot open stdin ", "cannot open stdout ",
                                          "cannot open stderr ", "cannot run"};
  std::string what = program + ": " + steps[failure[0] >= 0 && failure[0] <= 4 ? failure[0] : 4];
  if (failure[0] == 1) what += input;
  if (failure[0] == 2) what += io.stdout_fd >= 0 ? "(a pipe)" : output;
  if (failure[0] == 3) what += errors;
  throw std::runtime_error(what + ": " + std::strerror(failure[1]));
}

ChildResult run_child(const std::vector<std::string>& argv, const std::filesystem::path& stderr_file,
                      std::chrono::seconds deadline, const std::optional<std::filesystem::path>& stdin_file) {
  if (argv.empty()) throw std::invalid_argument("run_child: no program");
  const std::string& program = argv.front();
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw std::runtime_error(program + ": pipe: " + std::strerror(errno));
  Fd read_end(ends[0]), write_end(ends[1]);
  ChildIo io;
  if (stdin_file) io.stdin_file = *stdin_file;
  io.stdout_fd = write_end.fd;
  // stderr must not share the captured stdout: an empty name is /dev/null here.
  io.stderr_file = stderr_file.empty() ? std::filesystem::path("/dev/null") : stderr_file;
  const pid_t pid = spawn_child(argv, io);
  write_end.reset();

  ChildResult result;
  const auto until = std::chrono::steady_clock::now() + deadline;
  char buffer[1 << 16];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd waiting{.fd = read_end.fd, .events = POLLIN, .revents = 0};
    const int ready = ::poll(&waiting, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t got = ::read(read_end.fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the child closed stdout (it is exiting)
    if (result.out.size() + static_cast<std::size_t>(got) > max_output_bytes) {
      result.output_cut = true;
      break;
    }
    result.out.append(buffer, static_cast<std::size_t>(got));
  }
  // A child that closed stdout may still run: it gets until the deadline too.
  constexpr auto exit_poll = std::chrono::milliseconds(20);
  int status = 0;
  pid_t reaped = 0;
  if (!result.timed_out && !result.output_cut) {
    while ((reaped = ::waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(exit_poll);
    if (reaped == 0) result.timed_out = true;
  }
  if (reaped <= 0) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

std::string describe(const ChildResult& result, std::chrono::seconds deadline) {
  if (result.timed_out) return "timed out after " + std::to_string(deadline.count()) + " s and killed";
  if (result.output_cut) return "printed more than " + std::to_string(max_output_bytes >> 20) + " MiB and was killed";
  if (result.signal) return "killed by signal " + std::to_string(result.signal);
  return "exit " + std::to_string(result.exit_code);
}

}  // namespace sluice::bench
