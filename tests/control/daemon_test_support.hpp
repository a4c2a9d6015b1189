#pragma once
// Helpers of the sluiced tests: a blocking control-socket client with
// timeouts, a sluiced child process (optionally inside a network namespace)
// with its own socket, state dir and pin dir, all removed on destruction.
#include <sys/types.h>

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol.hpp"

namespace sluice::test {

// One connection to the control socket. Every read is bounded by a timeout,
// so a daemon that never answers fails the test instead of hanging it.
class ControlClient {
 public:
  static constexpr std::chrono::milliseconds default_timeout{10'000};

  explicit ControlClient(const std::string& socket_path);
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;
  ~ControlClient();

  bool connected() const noexcept { return fd_ >= 0; }
  // The daemon ended the connection (EOF or reset seen by read_line), as opposed to a read timing out.
  bool peer_closed() const noexcept { return peer_closed_; }
  const std::string& connect_error() const noexcept { return connect_error_; }

  // Writes raw bytes (tests of framing write partial and hostile lines).
  bool send_raw(const std::string& bytes);
  // The next reply line; nullopt on timeout or EOF.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = default_timeout);
  // Sends {"id":id,"op":op,"args":args} and parses the next reply line.
  protocol::Reply call(const std::string& op, const boost::json::object& args = {},
                       std::chrono::milliseconds timeout = default_timeout);
  // The result of an ok reply; fails the calling test otherwise.
  boost::json::value result(const std::string& op, const boost::json::object& args = {});
  void close();

 private:
  int fd_ = -1;
  std::string connect_error_;
  std::string pending_;
  std::int64_t next_id_ = 1;
  bool peer_closed_ = false;
};

// A protocol::Reply for "the daemon said nothing": ok=false, error failed, with the why.
protocol::Reply no_reply(const std::string& why);

struct SluicedOptions {
  std::optional<std::string> netns;  // run inside this named namespace (nsenter --net)
  std::string metrics = "off";
  std::optional<std::string> socket_path;  // default: a fresh one per instance
  std::vector<std::string> extra_args;
};

// sluiced as a child process. Paths are unique per instance; the pin dir is
// under /sys/fs/bpf so it is on the host's bpffs.
//
// Why nsenter and not `ip netns exec`: ip netns exec also enters a private
// mount namespace and mounts a fresh sysfs on /sys, which hides the host's
// bpffs at /sys/fs/bpf; sluiced would mount a new bpffs there and its pins
// would vanish with the command. nsenter --net switches only the network
// namespace, so pins land on the host bpffs and survive a daemon restart.
class SluicedProcess {
 public:
  explicit SluicedProcess(SluicedOptions options = {});
  SluicedProcess(const SluicedProcess&) = delete;
  SluicedProcess& operator=(const SluicedProcess&) = delete;
  // Kills the daemon if running, removes socket dir, state dir and pin dir.
  ~SluicedProcess();

  // Starts the daemon and waits (bounded) until it answers status. Empty on
  // success, otherwise why not (with the daemon's log).
  std::string start(std::chrono::seconds timeout = std::chrono::seconds(60));
  // SIGKILL: no cleanup at all, as after a crash.
  void kill_hard();
  // Sends a signal and waits for the exit; the exit code or -1 (killed after timeout).
  int stop(int signal_number, std::chrono::seconds timeout = std::chrono::seconds(10));
  // Waits for an exit that is under way (after the shutdown op).
  int wait_exit(std::chrono::seconds timeout = std::chrono::seconds(10));
  bool running() const noexcept { return pid_ > 0; }
  // For the next start(): same socket, state dir and pin dir, other options.
  void set_extra_args(std::vector<std::string> args) { options_.extra_args = std::move(args); }
  pid_t pid() const noexcept { return pid_; }

  const std::string& socket_path() const noexcept { return socket_path_; }
  const std::string& pin_dir() const noexcept { return pin_dir_; }
  const std::string& state_dir() const noexcept { return state_dir_; }
  std::string log() const;

 private:
  SluicedOptions options_;
  std::string base_dir_;
  std::string socket_path_;
  std::string state_dir_;
  std::string pin_dir_;
  std::string log_path_;
  pid_t pid_ = -1;
};

// Runs fn in a forked child with the given credentials (setgroups, setgid,
// setuid) and returns what it wrote; bounded by a timeout.
std::string run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<std::string()>& fn,
                   std::chrono::seconds timeout = std::chrono::seconds(20));

// Path of the sluiced executable under test (SLUICED_PATH at compile time).
const char* sluiced_path();

}  // namespace sluice::test
