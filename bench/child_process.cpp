#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

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

// spawn's file actions, destroyed on every path.
struct FileActions {
  posix_spawn_file_actions_t actions{};
  FileActions() { posix_spawn_file_actions_init(&actions); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  ~FileActions() { posix_spawn_file_actions_destroy(&actions); }
};

}  // namespace

ChildResult run_child(const std::vector<std::string>& argv, const std::filesystem::path& stderr_file,
                      std::chrono::seconds deadline, const std::optional<std::filesystem::path>& stdin_file) {
  if (argv.empty()) throw std::invalid_argument("run_child: no program");
  const std::string& program = argv.front();
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw std::runtime_error(program + ": pipe: " + std::strerror(errno));
  Fd read_end(ends[0]), write_end(ends[1]);

  FileActions files;
  const std::string input = stdin_file ? stdin_file->string() : "/dev/null";
  posix_spawn_file_actions_addopen(&files.actions, STDIN_FILENO, input.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&files.actions, write_end.fd, STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&files.actions, STDERR_FILENO, stderr_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, program.c_str(), &files.actions, nullptr, args.data(), environ);
  if (spawned != 0) throw std::runtime_error(program + ": cannot run: " + std::strerror(spawned));
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
