#pragma once
// Loads the sluice data plane (no pins) and runs frames through the entry
// program with BPF_PROG_TEST_RUN, the way libbpf's prog_tests/xdp_* do:
// the test builds the packet, runs it, and asserts verdict, bytes and counters.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane.hpp"
#include "privileges.hpp"

namespace sluice::test {

struct RunResult {
  int verdict = -1;
  std::vector<std::uint8_t> output;
};

// BPF_PROG_TEST_RUN of one frame through prog_fd; an error fails the test.
RunResult run_xdp(int prog_fd, const std::vector<std::uint8_t>& frame, std::uint32_t ingress_ifindex = 0);

class XdpPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override;
  RunResult run(const std::vector<std::uint8_t>& frame) { return run_xdp(plane_->entry_prog_fd(), frame); }
  sluice_counter count(sluice_verdict verdict, sluice_reason reason) const;
  void set_config(const sluice_config& config);

  std::optional<dataplane::Dataplane> plane_;
};

}  // namespace sluice::test
