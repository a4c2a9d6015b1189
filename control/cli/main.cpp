// sluicectl: the operator's command line for sluiced. All logic lives in
// the sluice_cli library (sluicectl.hpp); this file wires the real world in.
#include <signal.h>

#include <atomic>
#include <iostream>
#include <string>
#include <vector>

#include "sluicectl.hpp"

namespace {

std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int) { interrupted.store(true); }

}  // namespace

int main(int argc, char** argv) {
  // Ctrl-C ends `stats --watch`, `events --follow` and `capture` cleanly
  // (exit 0, pcap complete). No SA_RESTART: a blocked poll() must return.
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // A closed stdout (sluicectl events | head) is an error return, not a kill.
  signal(SIGPIPE, SIG_IGN);

  sluice::cli::Env env(std::cout, std::cerr, std::cin);
  env.interrupted = [] { return interrupted.load(); };
  return sluice::cli::run(std::vector<std::string>(argv + 1, argv + argc), env);
}
