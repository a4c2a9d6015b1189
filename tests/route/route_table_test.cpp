// RouteTable's validation: invalid input is refused with an error naming the
// field and value, and nothing changes. And the verifier accepts sluice_forward
// within a budget of processed instructions.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <gtest/gtest.h>

#include "route_fixture.hpp"
#include "sluice.skel.h"

namespace sluice::test {
namespace {

using route::RouteTarget;

class RouteTableValidation : public RouteStageTest {};

void expect_refused(const maps::Result<void>& result, int errnum, const std::string& mentions) {
  ASSERT_FALSE(result) << "accepted; expected an error mentioning " << mentions;
  EXPECT_EQ(result.error().errnum, errnum) << result.error().message;
  EXPECT_NE(result.error().message.find(mentions), std::string::npos) << result.error().message;
}

TEST_F(RouteTableValidation, BadInputIsRefusedAndChangesNothing) {
  ASSERT_OK(table_->add_next_hop("a", test_hop(1)));
  ASSERT_OK(table_->add_route(prefix("198.18.1.0/24"), RouteTarget::next_hop("a")));

  sluice_lpm_v4_key host_bits{.prefixlen = 24, .addr = {198, 18, 1, 1}};
  expect_refused(table_->add_route(host_bits, RouteTarget::next_hop("a")), EINVAL, "198.18.1.1/24");
  sluice_lpm_v4_key too_long{.prefixlen = 33, .addr = {198, 18, 1, 1}};
  expect_refused(table_->add_route(too_long, RouteTarget::next_hop("a")), EINVAL, "bad prefix");
  expect_refused(table_->add_route(prefix("198.18.1.0/24"), RouteTarget::next_hop("a")), EEXIST, "exists");
  expect_refused(table_->add_route(prefix("198.18.2.0/24"), RouteTarget::next_hop("nope")), ENOENT, "'nope'");
  expect_refused(table_->add_route(prefix("198.18.2.0/24"), RouteTarget::group("nope")), ENOENT, "'nope'");
  expect_refused(table_->remove_route(prefix("198.18.9.0/24")), ENOENT, "198.18.9.0/24");

  auto no_dev = test_hop(2);
  no_dev.interface = "sl-nosuch0";
  expect_refused(table_->add_next_hop("b", no_dev), ENODEV, "'sl-nosuch0'");
  auto multicast = test_hop(2);
  multicast.dst_mac = mac_of("01:00:5e:00:00:01");
  expect_refused(table_->add_next_hop("b", multicast), EINVAL, "01:00:5e:00:00:01");
  expect_refused(table_->add_next_hop("a", test_hop(3)), EEXIST, "'a'");
  expect_refused(table_->remove_next_hop("a"), EBUSY, "used by 1");

  std::vector<route::GroupMember> seventeen;
  for (int i = 0; i < 17; ++i) seventeen.push_back({"a", 1});
  expect_refused(table_->add_group("g", seventeen), EINVAL, "17 next hops");
  expect_refused(table_->add_group("g", {{"a", 0}}), EINVAL, "weight 0");
  expect_refused(table_->add_group("g", {{"a", SLUICE_FWD_WEIGHT_MAX + 1}}), EINVAL, "weight 257");
  expect_refused(table_->add_group("g", {{"a", 1}, {"a", 2}}), EINVAL, "twice");
  expect_refused(table_->add_group("g", {{"ghost", 1}}), ENOENT, "'ghost'");
  expect_refused(table_->add_group("g", {}), EINVAL, "at least one");
  ASSERT_OK(table_->add_group("g", {{"a", 1}}));
  expect_refused(table_->remove_next_hop("a"), EBUSY, "'a'");

  const auto settings_before = table_->settings();
  expect_refused(table_->set_cpumap({.cpus = {0, 9999}}), ENODEV, "CPU 9999");
  expect_refused(table_->set_cpumap({.cpus = {0, 0}}), EINVAL, "twice");
  expect_refused(table_->set_cpumap({.cpus = {0}, .queue_size = 0}), EINVAL, "queue size 0");
  expect_refused(table_->set_cpumap({.cpus = {0}, .queue_size = SLUICE_FWD_CPUMAP_QSIZE_MAX + 1}), EINVAL, "queue size");
  expect_refused(table_->set_icmp({.rate_per_sec = route::kIcmpRateMax + 1}), EINVAL, "rate");
  EXPECT_EQ(std::memcmp(&settings_before, &table_->settings(), sizeof(sluice_fwd_settings)), 0);
  std::uint32_t cpu = 0;
  bpf_cpumap_val entry{};
  EXPECT_NE(bpf_map_lookup_elem(map_fd("fwd_cpus"), &cpu, &entry), 0) << "a refused set left a cpumap entry";

  // What was there is still there, and only that.
  auto routes = table_->list_routes();
  ASSERT_TRUE(routes);
  ASSERT_EQ(routes->size(), 1u);
  EXPECT_EQ(maps::to_string(routes->front().prefix), "198.18.1.0/24");
  auto hops = table_->list_next_hops();
  ASSERT_TRUE(hops);
  ASSERT_EQ(hops->size(), 1u);
  EXPECT_EQ(hops->front().users, 2u);
  EXPECT_EQ(table_->list_groups().size(), 1u);

  // Unused again: removable.
  ASSERT_OK(table_->remove_route(prefix("198.18.1.0/24")));
  ASSERT_OK(table_->remove_group("g"));
  ASSERT_OK(table_->remove_next_hop("a"));
  EXPECT_TRUE(table_->list_next_hops()->empty());
}

TEST_F(RouteTableValidation, CpumapSetWritesOnlyTheChosenCpus) {
  const int cpus = libbpf_num_possible_cpus();
  ASSERT_OK(table_->set_cpumap({.cpus = {0}, .queue_size = 512}));
  std::uint32_t cpu = 0;
  bpf_cpumap_val entry{};
  ASSERT_EQ(bpf_map_lookup_elem(map_fd("fwd_cpus"), &cpu, &entry), 0);
  EXPECT_EQ(entry.qsize, 512u);
  EXPECT_EQ(table_->settings().cpu_count, 1u);
  if (cpus > 1) {
    ASSERT_OK(table_->set_cpumap({.cpus = {1}, .queue_size = 64}));
    EXPECT_NE(bpf_map_lookup_elem(map_fd("fwd_cpus"), &cpu, &entry), 0) << "CPU 0 left in the cpumap";
    cpu = 1;
    ASSERT_EQ(bpf_map_lookup_elem(map_fd("fwd_cpus"), &cpu, &entry), 0);
    EXPECT_EQ(entry.qsize, 64u);
  }
}

TEST_F(RouteTableValidation, Dir24_8IsPluggedOnlyAboveTheThresholdAndFollowsTheRoutes) {
  open_table({.dir_threshold = 4});
  ASSERT_OK(table_->add_next_hop("a", test_hop(1)));
  const char* nets[] = {"198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24", "198.18.3.128/25", "198.18.4.0/24"};
  for (int i = 0; i < 3; ++i) ASSERT_OK(table_->add_route(prefix(nets[i]), RouteTarget::next_hop("a")));
  EXPECT_FALSE(table_->dir24_8_active());
  ASSERT_OK(table_->add_route(prefix(nets[3]), RouteTarget::next_hop("a")));
  EXPECT_TRUE(table_->dir24_8_active()) << table_->dir24_8_error();
  std::uint32_t slot = 0, inner_id = 0;
  EXPECT_EQ(bpf_map_lookup_elem(map_fd("fwd_dir4_tbl24"), &slot, &inner_id), 0) << "tbl24 plugged in";
  // Below half the threshold it goes again.
  for (int i = 0; i < 3; ++i) ASSERT_OK(table_->remove_route(prefix(nets[i])));
  EXPECT_FALSE(table_->dir24_8_active());
  EXPECT_NE(bpf_map_lookup_elem(map_fd("fwd_dir4_tbl24"), &slot, &inner_id), 0) << "tbl24 unplugged";
}

int capture_nothing(libbpf_print_level, const char*, va_list) { return 0; }

// The forward stage loads, and the verifier's work on it stays within a budget.
TEST(ForwardVerifier, SluiceForwardLoadsWithinItsBudget) {
  SLUICE_REQUIRE_PRIVILEGES();
  // Processed instructions when this was written: 11,411; the budget leaves room, not a blank cheque.
  constexpr std::uint32_t kBudget = 60000;
  libbpf_print_fn_t previous = libbpf_set_print(capture_nothing);
  sluice_bpf* skeleton = sluice_bpf__open_and_load();
  libbpf_set_print(previous);
  ASSERT_NE(skeleton, nullptr);
  bpf_prog_info info{};
  std::uint32_t len = sizeof(info);
  ASSERT_EQ(bpf_obj_get_info_by_fd(bpf_program__fd(skeleton->progs.sluice_forward), &info, &len), 0);
  EXPECT_GT(info.verified_insns, 0u);
  EXPECT_LT(info.verified_insns, kBudget) << "sluice_forward costs the verifier " << info.verified_insns;
  std::printf("sluice_forward: %u instructions verified\n", info.verified_insns);
  sluice_bpf__destroy(skeleton);
}

}  // namespace
}  // namespace sluice::test
