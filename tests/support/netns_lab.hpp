#pragma once
// End-to-end labs: network namespaces and veth pairs that a test creates
// itself and removes on exit (also on failure: the destructor runs during
// stack unwinding and at ASSERT returns). Names carry the test's pid so
// parallel runs never collide. Addresses come only from 198.18.0.0/15 and
// 2001:db8::/32.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace sluice::test {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs argv-style through /bin/sh -c; the caller quotes. Bounded by timeout.
// Single-quotes text for sh: ' becomes '\''.
std::string shell_quote(const std::string& text);

CommandResult run_command(const std::string& command, std::chrono::seconds timeout = std::chrono::seconds(30));

// One network namespace, deleted (with every interface in it) on destruction.
class Netns {
 public:
  // name gets "-<pid>" appended.
  explicit Netns(const std::string& base_name);
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns();

  const std::string& name() const noexcept { return name_; }
  // Runs a shell command inside the namespace.
  CommandResult exec(const std::string& command, std::chrono::seconds timeout = std::chrono::seconds(30)) const;
  // Starts a background command inside the namespace, leading its own process
  // group; the group is killed on destruction (only processes this test started).
  pid_t spawn(const std::string& command);
  // Waits for a spawned command (bounded); returns its exit code or -1 on timeout (then kills it).
  int wait(pid_t pid, std::chrono::milliseconds timeout);

 private:
  std::string name_;
  std::vector<pid_t> children_;
};

// The calling thread works inside ns until this object is destroyed; the
// process's own namespace is restored afterwards.
class EnterNetns {
 public:
  explicit EnterNetns(const Netns& ns);
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;
  ~EnterNetns();

 private:
  int home_fd_ = -1;
};

// Two hosts joined by a veth pair: client (198.18.0.1, 2001:db8::1) and box
// (198.18.0.2, 2001:db8::2), both /24 and /64, links up.
struct TwoHostLab {
  TwoHostLab();
  Netns client{"sl-client"};
  Netns box{"sl-box"};
  std::string client_if;  // in client
  std::string box_if;     // in box
  static constexpr const char* client_v4 = "198.18.0.1";
  static constexpr const char* box_v4 = "198.18.0.2";
  static constexpr const char* client_v6 = "2001:db8::1";
  static constexpr const char* box_v6 = "2001:db8::2";
};

// Empty when namespaces can be made here (root, `ip` present); otherwise why not.
std::string missing_netns_support();

}  // namespace sluice::test

#define SLUICE_REQUIRE_NETNS()                                                        \
  do {                                                                                \
    SLUICE_REQUIRE_PRIVILEGES();                                                      \
    if (auto why_ = ::sluice::test::missing_netns_support(); !why_.empty())           \
      SLUICE_SKIP_OR_FAIL("skipped: " + why_);                                        \
  } while (0)
