#pragma once
// sluicectl as a library: command-line arguments -> request JSON -> reply
// JSON -> tables on stdout, errors on stderr, an exit code. Everything
// outside (the socket, the clock, interface names, Ctrl-C) comes in through
// Env, so tests drive whole commands against canned replies.
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "client.hpp"

namespace sluice::cli {

// Exit codes (documented in sluicectl.1).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // the daemon refused or failed the request
inline constexpr int kExitUsage = 2;        // bad arguments or input file: nothing was sent
inline constexpr int kExitUnavailable = 3;  // cannot reach the daemon, or it answered nonsense

inline constexpr const char* kDefaultSocket = "/run/sluice/sluice.sock";

struct Env {
  std::ostream& out;
  std::ostream& err;
  std::istream& in;  // `apply -f -`
  Connector connect = connect_unix;
  // ifindex -> name for event lines; "if<N>" when unknown.
  std::function<std::string(std::uint32_t)> interface_name;
  // Offset added to bpf_ktime_get_ns() (CLOCK_MONOTONIC) stamps to get wall
  // clock (CLOCK_REALTIME) nanoseconds for event times and pcap records.
  std::function<std::int64_t()> monotonic_to_realtime_ns;
  // True once the operator pressed Ctrl-C: watch loops end cleanly.
  std::function<bool()> interrupted = [] { return false; };
  std::function<void(std::chrono::milliseconds)> sleep;

  Env(std::ostream& out_, std::ostream& err_, std::istream& in_);
};

// args excludes the program name. Never throws.
int run(const std::vector<std::string>& args, Env& env);

}  // namespace sluice::cli
