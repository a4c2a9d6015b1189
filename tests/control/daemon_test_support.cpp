#include "daemon_test_support.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace sluice::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

// Pin dirs and socket dirs get this prefix plus pid and a counter.
constexpr const char* pin_root = "/sys/fs/bpf";
constexpr std::chrono::milliseconds poll_step{50};

int next_instance() {
  static int counter = 0;
  return ++counter;
}

std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
}

// Waits for pid with a deadline; its exit code, or -1 (then SIGKILLed and reaped).
int wait_pid(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (done < 0) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

}  // namespace

const char* sluiced_path() { return SLUICED_PATH; }

protocol::Reply no_reply(const std::string& why) {
  protocol::Reply reply;
  reply.ok = false;
  reply.error = protocol::ProtocolError{protocol::ErrorCode::Failed, "test client: " + why};
  return reply;
}

ControlClient::ControlClient(const std::string& socket_path) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  socket_path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    connect_error_ = "connect " + socket_path + ": " + std::strerror(errno);
    close();
  }
}

ControlClient::~ControlClient() { close(); }

void ControlClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool ControlClient::send_raw(const std::string& bytes) {
  std::size_t sent = 0;
  while (fd_ >= 0 && sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return fd_ >= 0;
}

std::optional<std::string> ControlClient::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (const auto newline = pending_.find('\n'); newline != std::string::npos) {
      std::string line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      return line;
    }
    const auto left = remaining(deadline);
    if (fd_ < 0 || left.count() <= 0) return std::nullopt;
    pollfd waiting{fd_, POLLIN, 0};
    if (::poll(&waiting, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      peer_closed_ = true;
      return std::nullopt;
    }
    pending_.append(buf, static_cast<std::size_t>(n));
  }
}

protocol::Reply ControlClient::call(const std::string& op, const json::object& args, std::chrono::milliseconds timeout) {
  const std::int64_t id = next_id_++;
  json::object request{{"id", id}, {"op", op}};
  if (!args.empty()) request["args"] = args;
  if (!send_raw(json::serialize(request) + "\n")) return no_reply("could not send " + op);
  auto line = read_line(timeout);
  if (!line) return no_reply("no reply to " + op);
  auto parsed = protocol::parse_reply(*line);
  if (auto* error = std::get_if<std::string>(&parsed)) return no_reply(*error + ": " + *line);
  auto reply = std::get<protocol::Reply>(parsed);
  if (!(reply.id.is_int64() && reply.id.as_int64() == id)) return no_reply("reply id mismatch: " + *line);
  return reply;
}

json::value ControlClient::result(const std::string& op, const json::object& args) {
  auto reply = call(op, args);
  EXPECT_TRUE(reply.ok) << op << ": " << (reply.error ? reply.error->message : std::string("?"));
  return reply.result.value_or(nullptr);
}

SluicedProcess::SluicedProcess(SluicedOptions options) : options_(std::move(options)) {
  const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(next_instance());
  base_dir_ = "/tmp/sluiced-test-" + tag;
  fs::remove_all(base_dir_);
  fs::create_directories(base_dir_ + "/run");
  // World-traversable so tests may connect as an unprivileged user.
  fs::permissions(base_dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                 fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(base_dir_ + "/run", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                          fs::perms::others_read | fs::perms::others_exec);
  socket_path_ = options_.socket_path.value_or(base_dir_ + "/run/sluice.sock");
  state_dir_ = base_dir_ + "/state";
  log_path_ = base_dir_ + "/sluiced.log";
  pin_dir_ = std::string(pin_root) + "/sluiced-test-" + tag;
}

SluicedProcess::~SluicedProcess() {
  if (pid_ > 0) kill_hard();
  std::error_code ec;
  fs::remove_all(pin_dir_, ec);  // bpffs: unlinking a pin drops only the reference
  fs::remove_all(base_dir_, ec);
}

std::string SluicedProcess::start(std::chrono::seconds timeout) {
  std::vector<std::string> argv;
  if (options_.netns) {
    argv = {"/usr/bin/nsenter", "--net=/run/netns/" + *options_.netns, sluiced_path()};
  } else {
    argv = {sluiced_path()};
  }
  for (const std::string& arg : {std::string("--socket"), socket_path_, std::string("--bpffs"), pin_dir_,
                                 std::string("--state-dir"), state_dir_, std::string("--metrics"), options_.metrics})
    argv.push_back(arg);
  for (const auto& arg : options_.extra_args) argv.push_back(arg);
  std::vector<char*> raw;
  for (auto& arg : argv) raw.push_back(arg.data());
  raw.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log >= 0) {
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
    }
    ::execv(raw[0], raw.data());
    ::_exit(127);
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return "sluiced exited during startup (status " + std::to_string(status) + "): " + log();
    }
    // Only this child counts: another daemon may answer on a shared socket path.
    ControlClient client(socket_path_);
    if (client.connected()) {
      auto status = client.call("status");
      const auto* pid = status.ok && status.result && status.result->is_object() ? status.result->as_object().if_contains("pid") : nullptr;
      if (pid && pid->is_int64() && pid->as_int64() == pid_) return {};
    }
    std::this_thread::sleep_for(poll_step);
  }
  kill_hard();
  return "sluiced did not answer within " + std::to_string(timeout.count()) + " s: " + log();
}

void SluicedProcess::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int SluicedProcess::stop(int signal_number, std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signal_number);
  return wait_exit(timeout);
}

int SluicedProcess::wait_exit(std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  const int code = wait_pid(pid_, timeout);
  pid_ = -1;
  return code;
}

std::string SluicedProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<std::string()>& fn,
                   std::chrono::seconds timeout) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::string out;
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
      out = "could not drop privileges";
    } else {
      out = fn();
    }
    (void)!::write(pipe_fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = remaining(deadline);
    if (left.count() <= 0) break;
    pollfd waiting{pipe_fds[0], POLLIN, 0};
    if (::poll(&waiting, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  wait_pid(pid, std::chrono::milliseconds(1000));
  return out;
}

}  // namespace sluice::test
