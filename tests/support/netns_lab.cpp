#include "netns_lab.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <stdexcept>
#include <thread>

namespace sluice::test {
namespace {

std::string with_pid(const std::string& base) { return base + "-" + std::to_string(getpid()); }

void must(const CommandResult& result, const std::string& what) {
  if (result.exit_code != 0) throw std::runtime_error(what + " failed (" + std::to_string(result.exit_code) + "): " + result.output);
}

}  // namespace

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

CommandResult run_command(const std::string& command, std::chrono::seconds timeout) {
  // `timeout` bounds every command, so no test can hang on a stuck client.
  const std::string bounded = "timeout -k 2 " + std::to_string(timeout.count()) + " sh -c " + shell_quote(command) + " 2>&1";
  CommandResult result;
  FILE* pipe = popen(bounded.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buf{};
  while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe)) result.output.append(buf.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string missing_netns_support() {
  if (geteuid() != 0) return "needs root to create network namespaces";
  if (run_command("command -v ip").exit_code != 0) return "iproute2 (ip) is not installed";
  return {};
}

Netns::Netns(const std::string& base_name) : name_(with_pid(base_name)) {
  run_command("ip netns del " + name_);  // a leftover from a crashed run with a recycled pid
  must(run_command("ip netns add " + name_), "ip netns add " + name_);
  // A throwing constructor runs no destructor: delete the namespace here.
  if (auto up = exec("ip link set lo up"); up.exit_code != 0) {
    run_command("ip netns del " + name_);
    must(up, "lo up in " + name_);
  }
}

namespace {
// Every spawned command leads its own process group (setpgid in spawn), so
// killing the group also ends what `sh -c` forked (pipelines, redirections).
void kill_group(pid_t leader) {
  kill(-leader, SIGKILL);
  waitpid(leader, nullptr, 0);
}
}  // namespace

Netns::~Netns() {
  for (pid_t pid : children_) kill_group(pid);
  run_command("ip netns del " + name_);
}

CommandResult Netns::exec(const std::string& command, std::chrono::seconds timeout) const {
  return run_command("ip netns exec " + name_ + " sh -c " + shell_quote(command), timeout);
}

pid_t Netns::spawn(const std::string& command) {
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    execl("/usr/sbin/ip", "ip", "netns", "exec", name_.c_str(), "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  children_.push_back(pid);
  return pid;
}

int Netns::wait(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      kill(-pid, SIGKILL);  // whatever the command left running in its group
      std::erase(children_, pid);
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill_group(pid);
  std::erase(children_, pid);
  return -1;
}

EnterNetns::EnterNetns(const Netns& ns) {
  home_fd_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  const std::string path = "/run/netns/" + ns.name();
  const int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (home_fd_ < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
    if (target >= 0) close(target);
    throw std::runtime_error("cannot enter network namespace " + ns.name());
  }
  close(target);
}

EnterNetns::~EnterNetns() {
  if (home_fd_ >= 0) {
    setns(home_fd_, CLONE_NEWNET);
    close(home_fd_);
  }
}

TwoHostLab::TwoHostLab()
    : client_if("vc" + std::to_string(getpid())), box_if("vb" + std::to_string(getpid())) {
  must(run_command("ip link add " + client_if + " netns " + client.name() + " type veth peer name " + box_if + " netns " +
                   box.name()),
       "veth pair");
  must(client.exec("ip addr add " + std::string(client_v4) + "/24 dev " + client_if + " && ip -6 addr add " + client_v6 +
                   "/64 dev " + client_if + " nodad && ip link set " + client_if + " up"),
       "client addresses");
  must(box.exec("ip addr add " + std::string(box_v4) + "/24 dev " + box_if + " && ip -6 addr add " + box_v6 +
                "/64 dev " + box_if + " nodad && ip link set " + box_if + " up"),
       "box addresses");
}

}  // namespace sluice::test
