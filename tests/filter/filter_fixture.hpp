#pragma once
// A loaded data plane with a FilterTable on it, and helpers to build rules.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "filter_table.hpp"
#include "packet_builder.hpp"
#include "xdp_fixture.hpp"

namespace sluice::test {

class FilterTest : public XdpPipelineTest {
 protected:
  void SetUp() override;
  // Runs the frame through the entry program; expects no test-run error.
  RunResult send(const Bytes& frame, std::uint32_t ifindex = 0) { return run_xdp(plane_->entry_prog_fd(), frame, ifindex); }
  void replace(const filter::RuleSet& set);
  std::uint64_t packets(sluice_verdict verdict, std::uint32_t reason) const {
    return count(verdict, static_cast<sluice_reason>(reason)).packets;
  }
  std::optional<filter::FilterTable> table_;
  // What SetUp opens the table with (a subclass sets it in its constructor).
  filter::FilterTableOptions table_options_{};
};

// "198.18.0.0/15" -> Prefix; a bad literal fails the test at once (throws).
maps::Prefix cidr(const std::string& text);
PacketBuilder ether();

}  // namespace sluice::test
