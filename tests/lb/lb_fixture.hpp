#pragma once
// One loaded data plane per test binary (loading verifies ~170k insns of
// the filter: a second each), lb maps and verdict counters emptied before
// every test, and builders of the lb contract's values from text.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string_view>

#include "lb_maps_helper.hpp"
#include "packet_builder.hpp"
#include "xdp_fixture.hpp"

namespace sluice::test {

class LbStageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  RunResult send(const Bytes& frame) { return run_xdp(plane().entry_prog_fd(), frame); }
  std::uint64_t packets(sluice_verdict verdict, std::uint32_t reason) const;
  void set_config(const sluice_config& config);
  static dataplane::Dataplane& plane() { return *plane_; }
  LbMaps& maps() { return *maps_; }

  static std::unique_ptr<dataplane::Dataplane> plane_;
  static std::unique_ptr<LbMaps> maps_;
};

// "198.18.0.10" or "2001:db8::10" into the contract's address words (network order).
void put_addr(std::uint32_t (&words)[4], std::string_view text);
sluice_lb_vip_key vip_key(std::string_view addr, std::uint16_t port, std::uint8_t proto);
sluice_lb_backend backend(std::string_view addr, std::uint32_t vip_id, std::uint32_t epoch = 1,
                          sluice_lb_backend_state state = SLUICE_LB_BACKEND_UP, std::string_view mac = "02:00:00:00:0b:01");
// Version, both encapsulation sources, next hop 02:00:00:00:00:fe, egress TX, timeout 300 s.
sluice_lb_settings lb_settings(std::string_view src_v4 = "198.18.0.1", std::string_view src_v6 = "2001:db8::1");

}  // namespace sluice::test
