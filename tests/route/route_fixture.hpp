#pragma once
// The forward stage under test: one loaded data plane per test suite (a load
// costs the filter's large tables), a fresh RouteTable per test (open()
// clears the forward maps), frames through the entry program with
// BPF_PROG_TEST_RUN, and a batch-lookup probe on the same maps.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "dataplane.hpp"
#include "packet_builder.hpp"
#include "route_table.hpp"
#include "xdp_fixture.hpp"

struct route_lookup_probe_bpf;

namespace sluice::test {

// Next hops of the tests leave through loopback: BPF_PROG_TEST_RUN stops at
// the verdict, so the devmap only needs a real interface in its slot.
inline constexpr const char* kTestEgress = "lo";
inline constexpr const char* kRouterMac = "02:00:00:00:00:aa";  // the box's port
inline constexpr const char* kClientMac = "02:00:00:00:00:01";

// A next hop out of kTestEgress whose destination MAC ends in `tag`.
route::NextHopSpec test_hop(std::uint8_t tag);
route::Mac mac_of(const char* text);
maps::Prefix prefix(const char* text);

// Batch lookups through xdp/forward_lookup.h on a plane's forward maps.
class LookupProbe {
 public:
  explicit LookupProbe(const dataplane::Dataplane& plane);
  LookupProbe(const LookupProbe&) = delete;
  LookupProbe& operator=(const LookupProbe&) = delete;
  ~LookupProbe();
  // Route values (0: no route) of IPv4 destinations (network order).
  std::vector<std::uint32_t> lookup_v4(const std::vector<std::uint32_t>& dsts) const;
  std::vector<std::uint32_t> lookup_v6(const std::vector<std::array<std::uint32_t, 4>>& dsts) const;
  int pass_prog_fd() const;

 private:
  route_lookup_probe_bpf* skeleton_ = nullptr;
};

class RouteStageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  RunResult run(const Bytes& frame) const;
  // Total of (verdict, reason) now, over CPUs.
  std::uint64_t packets(sluice_verdict verdict, std::uint32_t reason) const;
  std::uint64_t event(sluice_fwd_event_slot slot) const;
  void open_table(route::RouteTableOptions options = {});
  // The forward maps themselves, for tests that plant corrupt values.
  int map_fd(const char* name) const;

  static std::unique_ptr<dataplane::Dataplane> plane_;
  std::optional<route::RouteTable> table_;
};

#define ASSERT_OK(expr)                                               \
  do {                                                                \
    auto ok_ = (expr);                                                \
    ASSERT_TRUE(ok_) << #expr << ": " << ok_.error().message;         \
  } while (0)

}  // namespace sluice::test
